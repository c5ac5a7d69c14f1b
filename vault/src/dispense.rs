//! Dispensing: available -> reserved (bound to one terminal, durably) -> sent -> used with its SMN row, or quarantined.
//!
//! Every step is one committed transaction. The schema backs the rules up: a key bound to a
//! terminal can never be bound to another, never becomes available again, a terminal has at
//! most one pending key, and SMN rows are never rewritten (triggers and unique indexes of
//! migration 2).

use keymother_domain::{BatchId, HardwareSerial, Kcv, KeyIndex, Smn, TerminalModel};
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use crate::audit::{self, AuditEvent};
use crate::reinjection::{self, Admission, GrantUse, KeySlot};
use crate::{KeyState, Vault, VaultError, live_key, now_text};

/// A key reserved for a terminal, still wrapped under the KEK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub key_index: KeyIndex,
    /// The master key as imported: a TR-31 block under the KEK.
    pub key_block: String,
    /// The master key's check value, which the terminal must report back.
    pub kcv: Kcv,
    pub batch_id: BatchId,
    /// True when this terminal already had this key reserved or sent (it asked again).
    pub resumed: bool,
    /// The operator whose session the key was first reserved under (kept when the terminal
    /// asks again later, whoever is logged in then); `None` when no operator was logged in.
    pub operator: Option<String>,
}

/// What a terminal reports after installing its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmationReport<'a> {
    pub key_index: KeyIndex,
    pub hardware_serial: &'a HardwareSerial,
    /// The check value the terminal computed.
    pub kcv: Kcv,
    /// The SMN as the terminal built it; it must be [`Smn::new`] of serial and index.
    pub smn: &'a Smn,
    pub port: &'a str,
    pub terminal_model: &'a TerminalModel,
}

/// A confirmed injection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmedInjection {
    pub key_index: KeyIndex,
    pub smn: Smn,
    pub batch_id: BatchId,
    /// True when the confirmation had already been recorded (a retransmission).
    pub already_confirmed: bool,
    /// The operator the SMN row and the audit row name.
    pub operator: Option<String>,
}

/// One row of the SMN registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmnRow {
    pub smn: Smn,
    pub hardware_serial: HardwareSerial,
    pub key_index: KeyIndex,
    pub kcv: Kcv,
    pub batch_id: BatchId,
    pub port: String,
    pub terminal_model: String,
    pub injected_at: String,
    /// The operator of the injection; `None` when no operator was logged in.
    pub operator: Option<String>,
    /// A re-injection: the SMN of the terminal's earlier row this one replaces.
    pub replaces: Option<Smn>,
    /// Re-injected since: the SMN of the terminal's later row that replaces this one.
    pub replaced_by: Option<Smn>,
    /// A re-injection: the grant its key was reserved under, and the grant's reason.
    pub reinjection_grant: Option<(u64, String)>,
}

/// Why a key was not dispensed or not confirmed. Nothing was handed to anyone else.
#[derive(Debug, thiserror::Error)]
pub enum DispenseError {
    #[error("no keys are available; import a key file")]
    NoKeysAvailable,
    #[error("key {key_index} was not delivered to terminal {hardware_serial}")]
    NotDeliveredTo {
        key_index: KeyIndex,
        hardware_serial: HardwareSerial,
    },
    #[error(
        "the SMN {smn} is not the terminal's hardware serial followed by key index {key_index}"
    )]
    SmnMismatch { key_index: KeyIndex, smn: Smn },
    #[error("check value {reported} for key {key_index} does not match {expected} (failure {failures}{})",
        if *quarantined { "; the key is quarantined" } else { "" })]
    KcvMismatch {
        key_index: KeyIndex,
        reported: Kcv,
        expected: Kcv,
        failures: u32,
        quarantined: bool,
    },
    #[error(
        "hardware serial {hardware_serial} already holds a confirmed master key (SMN {smn}); an operator must grant a re-injection (keymother reinject grant)"
    )]
    AlreadyInjected {
        hardware_serial: HardwareSerial,
        /// The SMN of its last confirmed master key.
        smn: String,
    },
    #[error(transparent)]
    Vault(#[from] VaultError),
}

impl From<rusqlite::Error> for DispenseError {
    fn from(error: rusqlite::Error) -> Self {
        DispenseError::Vault(VaultError::Database(error))
    }
}

/// Reserves the lowest available key for `hardware_serial` (under `grant`, when the terminal
/// already holds a confirmed master key). Keys of a batch still being imported are skipped
/// (and the database would refuse them): while one stages, a reservation walks past its
/// staged keys whose indexes are lower than the first dispensable one.
fn reserve_available(
    transaction: &rusqlite::Transaction<'_>,
    hardware_serial: &HardwareSerial,
    port: &str,
    operator: Option<&str>,
    grant: Option<u64>,
    terminal_model: Option<&TerminalModel>,
) -> Result<Reservation, DispenseError> {
    let next = transaction
        .query_row(
            "SELECT key_index, key_block, kcv, batch_id FROM key_inventory
              WHERE state = 'available'
                AND NOT EXISTS (SELECT 1 FROM batch_staging s
                                 WHERE s.batch_id = key_inventory.batch_id)
              ORDER BY key_index LIMIT 1",
            [],
            |row| {
                Ok((
                    row.get::<_, KeyIndex>(0)?,
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                ))
            },
        )
        .optional()?;
    let (key_index, key_block, kcv, batch_id): (KeyIndex, String, Kcv, BatchId) =
        next.ok_or(DispenseError::NoKeysAvailable)?;
    let changed = transaction.execute(
        "UPDATE key_inventory
            SET state = 'reserved', hardware_serial = ?2, port = ?3, reserved_at = ?4,
                operator = ?5, reinjection_grant = ?6, terminal_model = ?7
          WHERE key_index = ?1 AND state = 'available'",
        params![
            key_index,
            hardware_serial,
            port,
            now_text(),
            operator,
            grant.map(|id| id as i64),
            terminal_model
        ],
    )?;
    if changed != 1 {
        return Err(
            VaultError::Corrupt(format!("key {key_index} changed under a reservation")).into(),
        );
    }
    Ok(Reservation {
        key_index,
        key_block,
        kcv,
        batch_id,
        resumed: false,
        operator: operator.map(str::to_owned),
    })
}

/// A key's inventory row as a confirmation reads it.
struct KeyRow {
    bound_to: Option<HardwareSerial>,
    state: String,
    kcv: Kcv,
    batch_id: BatchId,
    failures: i64,
    /// The operator the key was reserved under.
    reserved_by: Option<String>,
}

impl Vault {
    /// Reserves a key for the terminal with `hardware_serial` on `port`, committed before
    /// this returns. A terminal that already has a reserved or sent key gets that key again;
    /// otherwise it gets the lowest available index. No operator is recorded; see
    /// [`Vault::reserve_key_by`].
    pub fn reserve_key(
        &mut self,
        hardware_serial: &HardwareSerial,
        port: &str,
    ) -> Result<Reservation, DispenseError> {
        self.reserve_key_by(hardware_serial, port, None)
    }

    /// [`Vault::reserve_key`] under an operator's session: a newly reserved key records
    /// `operator` (for good), and its confirmation will name that operator. A key already
    /// pending for the terminal keeps the operator it was reserved under.
    pub fn reserve_key_by(
        &mut self,
        hardware_serial: &HardwareSerial,
        port: &str,
        operator: Option<&str>,
    ) -> Result<Reservation, DispenseError> {
        self.reserve_key_for(hardware_serial, port, operator, None)
    }

    /// [`Vault::reserve_key_by`], recording the terminal's model (from its HELLO) with a
    /// newly reserved key, for `pending` and reports. A key already pending for the terminal
    /// keeps what its reservation recorded.
    pub fn reserve_key_for(
        &mut self,
        hardware_serial: &HardwareSerial,
        port: &str,
        operator: Option<&str>,
        terminal_model: Option<&TerminalModel>,
    ) -> Result<Reservation, DispenseError> {
        // Nothing is dispensed from a zeroized vault.
        let storage_key = live_key(&self.storage_key, &self.data_dir)?;
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let pending = transaction
            .query_row(
                "SELECT key_index, key_block, kcv, batch_id, operator FROM key_inventory
                  WHERE hardware_serial = ?1 AND state IN ('reserved', 'sent')",
                [hardware_serial],
                |row| {
                    Ok(Reservation {
                        key_index: row.get(0)?,
                        key_block: row.get(1)?,
                        kcv: row.get(2)?,
                        batch_id: row.get(3)?,
                        resumed: true,
                        operator: row.get(4)?,
                    })
                },
            )
            .optional()?;
        let reservation = match pending {
            Some(resumed) => resumed,
            None => {
                // A terminal holding a confirmed master key gets another only under a grant.
                let grant = match reinjection::admission(
                    &transaction,
                    hardware_serial,
                    &KeySlot::Master,
                )? {
                    Admission::AlreadyInjected { injected } => {
                        return Err(DispenseError::AlreadyInjected {
                            hardware_serial: hardware_serial.clone(),
                            smn: injected,
                        });
                    }
                    Admission::Granted { grant, .. } => Some(grant),
                    Admission::New | Admission::Resume => None,
                };
                let reservation = reserve_available(
                    &transaction,
                    hardware_serial,
                    port,
                    operator,
                    grant,
                    terminal_model,
                )?;
                if let Some(grant) = grant {
                    reinjection::use_grant(
                        &transaction,
                        storage_key.audit_head(),
                        GrantUse {
                            grant,
                            hardware_serial,
                            slot: KeySlot::Master,
                            key: reservation.key_index.to_string(),
                            port,
                            operator,
                        },
                    )?;
                }
                reservation
            }
        };
        transaction.commit()?;
        Ok(reservation)
    }

    /// Records that the key's delivery was written to the terminal's port.
    ///
    /// This one commit skips the fsync (`synchronous = NORMAL` in WAL mode): after a power
    /// cut it may be lost, leaving the key `reserved` for the same terminal, which is just as
    /// safe. It becomes durable with the next synchronous commit, the confirmation.
    pub fn mark_sent(
        &mut self,
        key_index: KeyIndex,
        hardware_serial: &HardwareSerial,
    ) -> Result<(), DispenseError> {
        self.connection
            .pragma_update(None, "synchronous", "NORMAL")?;
        let changed = self.connection.execute(
            "UPDATE key_inventory SET state = 'sent'
              WHERE key_index = ?1 AND hardware_serial = ?2 AND state IN ('reserved', 'sent')",
            params![key_index, hardware_serial],
        );
        self.connection.pragma_update(None, "synchronous", "FULL")?;
        let changed = changed?;
        if changed != 1 {
            return Err(DispenseError::NotDeliveredTo {
                key_index,
                hardware_serial: hardware_serial.clone(),
            });
        }
        Ok(())
    }

    /// Checks a terminal's confirmation against the key it was given and, when the check
    /// value matches, marks the key used and writes its SMN row in one transaction. A wrong
    /// check value counts a failure; at `quarantine_after` failures the key is quarantined
    /// and never dispensed again. Confirming an already confirmed key again (a
    /// retransmission) succeeds without change. A new confirmation is recorded in the audit
    /// chain in the same transaction; see [`Vault::confirm_key_by`] to name the operator.
    pub fn confirm_key(
        &mut self,
        report: &ConfirmationReport<'_>,
        quarantine_after: u32,
    ) -> Result<ConfirmedInjection, DispenseError> {
        self.confirm_key_by(report, quarantine_after, None)
    }

    /// [`Vault::confirm_key`], naming an operator in the SMN row and the audit row.
    ///
    /// The operator named is the one the key was reserved under: the key left the appliance
    /// during that session, even when the terminal confirms after it ended. `operator` is
    /// named only for a key reserved without one (no operator was logged in then).
    pub fn confirm_key_by(
        &mut self,
        report: &ConfirmationReport<'_>,
        quarantine_after: u32,
        operator: Option<&str>,
    ) -> Result<ConfirmedInjection, DispenseError> {
        if *report.smn != Smn::new(report.hardware_serial, report.key_index) {
            return Err(DispenseError::SmnMismatch {
                key_index: report.key_index,
                smn: report.smn.clone(),
            });
        }
        let storage_key = live_key(&self.storage_key, &self.data_dir)?;
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let row = transaction
            .query_row(
                "SELECT hardware_serial, state, kcv, batch_id, failed_confirmations, operator
                   FROM key_inventory WHERE key_index = ?1",
                [report.key_index],
                |row| {
                    Ok(KeyRow {
                        bound_to: row.get(0)?,
                        state: row.get(1)?,
                        kcv: row.get(2)?,
                        batch_id: row.get(3)?,
                        failures: row.get(4)?,
                        reserved_by: row.get(5)?,
                    })
                },
            )
            .optional()?;
        let not_delivered = || DispenseError::NotDeliveredTo {
            key_index: report.key_index,
            hardware_serial: report.hardware_serial.clone(),
        };
        let Some(KeyRow {
            bound_to: Some(bound_to),
            state,
            kcv,
            batch_id,
            failures,
            reserved_by,
        }) = row
        else {
            return Err(not_delivered());
        };
        if bound_to != *report.hardware_serial {
            return Err(not_delivered());
        }
        if state == KeyState::Used.as_str() {
            let recorded: Option<(Smn, Option<String>)> = transaction
                .query_row(
                    "SELECT smn, operator FROM smn_registry WHERE key_index = ?1",
                    [report.key_index],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            return match recorded {
                Some((smn, recorded_operator)) if smn == *report.smn && kcv == report.kcv => {
                    Ok(ConfirmedInjection {
                        key_index: report.key_index,
                        smn,
                        batch_id,
                        already_confirmed: true,
                        operator: recorded_operator,
                    })
                }
                _ => Err(not_delivered()),
            };
        }
        if state != KeyState::Reserved.as_str() && state != KeyState::Sent.as_str() {
            return Err(not_delivered());
        }
        if kcv != report.kcv {
            let failures = failures as u32 + 1;
            let quarantined = failures >= quarantine_after;
            transaction.execute(
                "UPDATE key_inventory
                    SET failed_confirmations = ?2,
                        state = CASE WHEN ?3 THEN 'quarantined' ELSE state END
                  WHERE key_index = ?1",
                params![report.key_index, failures, quarantined],
            )?;
            transaction.commit()?;
            return Err(DispenseError::KcvMismatch {
                key_index: report.key_index,
                reported: report.kcv,
                expected: kcv,
                failures,
                quarantined,
            });
        }
        let operator = reserved_by.or_else(|| operator.map(str::to_owned));
        transaction.execute(
            "UPDATE key_inventory SET state = 'used' WHERE key_index = ?1",
            [report.key_index],
        )?;
        // A key reserved under a re-injection grant replaces its terminal's last SMN row.
        transaction.execute(
            "INSERT INTO smn_registry
                 (smn, hardware_serial, key_index, kcv, batch_id, port, terminal_model, injected_at,
                  operator, replaces)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,
                     CASE WHEN (SELECT reinjection_grant FROM key_inventory WHERE key_index = ?3)
                               IS NULL THEN NULL
                          ELSE (SELECT smn FROM smn_registry WHERE hardware_serial = ?2
                                 ORDER BY rowid DESC LIMIT 1) END)",
            params![
                report.smn,
                report.hardware_serial,
                report.key_index,
                kcv,
                batch_id,
                report.port,
                report.terminal_model,
                now_text(),
                operator
            ],
        )?;
        audit::append(
            &transaction,
            storage_key.audit_head(),
            &AuditEvent::Injection {
                key_index: report.key_index.value(),
                hardware_serial: report.hardware_serial.to_string(),
                smn: report.smn.to_string(),
                port: report.port.to_owned(),
                operator: operator.clone(),
            },
        )?;
        transaction.commit()?;
        Ok(ConfirmedInjection {
            key_index: report.key_index,
            smn: report.smn.clone(),
            batch_id,
            already_confirmed: false,
            operator,
        })
    }

    /// The SMN registry, oldest first.
    pub fn smn_rows(&self) -> Result<Vec<SmnRow>, VaultError> {
        let mut statement = self.connection.prepare(
            "SELECT r.smn, r.hardware_serial, r.key_index, r.kcv, r.batch_id, r.port,
                    r.terminal_model, r.injected_at, r.operator, r.replaces,
                    (SELECT later.smn FROM smn_registry AS later WHERE later.replaces = r.smn),
                    g.id, g.reason
               FROM smn_registry AS r
               JOIN key_inventory AS k ON k.key_index = r.key_index
               LEFT JOIN reinjection_grant AS g ON g.id = k.reinjection_grant
              ORDER BY r.injected_at, r.key_index",
        )?;
        let rows = statement
            .query_map([], |row| {
                let grant: Option<i64> = row.get(11)?;
                let reason: Option<String> = row.get(12)?;
                Ok(SmnRow {
                    smn: row.get(0)?,
                    hardware_serial: row.get(1)?,
                    key_index: row.get(2)?,
                    kcv: row.get(3)?,
                    batch_id: row.get(4)?,
                    port: row.get(5)?,
                    terminal_model: row.get(6)?,
                    injected_at: row.get(7)?,
                    operator: row.get(8)?,
                    replaces: row.get(9)?,
                    replaced_by: row.get(10)?,
                    reinjection_grant: grant.zip(reason).map(|(id, reason)| (id as u64, reason)),
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Every key bound to a terminal: index, hardware serial, state. For audits and tests.
    pub fn key_assignments(&self) -> Result<Vec<(u32, String, KeyState)>, VaultError> {
        let mut statement = self.connection.prepare(
            "SELECT key_index, hardware_serial, state FROM key_inventory
              WHERE hardware_serial IS NOT NULL ORDER BY key_index",
        )?;
        let rows = statement
            .query_map([], |row| {
                Ok((
                    row.get::<_, i64>(0)? as u32,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(index, serial, state)| {
                let state = KeyState::ALL
                    .into_iter()
                    .find(|candidate| candidate.as_str() == state)
                    .ok_or_else(|| {
                        VaultError::Corrupt(format!("key {index:08} has state {state:?}"))
                    })?;
                Ok((index, serial, state))
            })
            .collect()
    }
}
