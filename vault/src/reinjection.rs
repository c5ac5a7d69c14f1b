//! Re-injection control: a terminal that holds a confirmed key of a slot gets another only under an operator's grant for that serial and slot, which one reservation uses up.
//!
//! A key slot is the master key (`master`, whatever the mode delivered it: tr31, certificate,
//! a profile's master key) or one DUKPT slot, named by its BDK. [`admission`] decides, inside
//! the reservation's transaction: a terminal with a pending (reserved or sent) key of the
//! slot resumes it; one that never had a key confirmed in the slot is new; one that had is
//! refused, unless an open grant admits it, and the reservation then uses the grant up
//! ([`use_grant`]). Grants, revocations and uses are audited. The schema backs the rule up
//! (the migration's triggers): a key or allocation for a terminal holding a confirmed one of
//! its slot names a grant of that terminal and slot, and a grant admits one key.

use std::fmt;
use std::str::FromStr;

use keymother_domain::{BdkName, HardwareSerial};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::audit::{self, AuditEvent};
use crate::{Vault, VaultError, live_key, now_text};

/// A key slot of a terminal: its master key, or the DUKPT initial key of one BDK.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeySlot {
    Master,
    Dukpt(BdkName),
}

impl KeySlot {
    /// The slot's name: `master`, or the BDK's name (which is upper case, so never `master`).
    pub fn name(&self) -> &str {
        match self {
            KeySlot::Master => "master",
            KeySlot::Dukpt(bdk) => bdk.as_str(),
        }
    }
}

impl fmt::Display for KeySlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KeySlot {
    type Err = String;

    /// `master`, or a BDK's name (as profiles label their DUKPT slots).
    fn from_str(text: &str) -> Result<KeySlot, String> {
        if text == "master" {
            return Ok(KeySlot::Master);
        }
        text.parse::<BdkName>()
            .map(KeySlot::Dukpt)
            .map_err(|error| {
                format!("slot {text:?} is neither \"master\" nor a BDK's name: {error}")
            })
    }
}

/// Where a grant is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantState {
    /// Not used yet: the terminal's next reservation of the slot uses it.
    Open,
    /// A reservation used it.
    Used,
    /// An operator revoked it before it was used.
    Revoked,
}

impl GrantState {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantState::Open => "open",
            GrantState::Used => "used",
            GrantState::Revoked => "revoked",
        }
    }

    fn from_stored(text: &str) -> Option<GrantState> {
        [GrantState::Open, GrantState::Used, GrantState::Revoked]
            .into_iter()
            .find(|state| state.as_str() == text)
    }
}

impl fmt::Display for GrantState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A re-injection grant as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReinjectionGrant {
    pub id: u64,
    pub hardware_serial: HardwareSerial,
    pub slot: KeySlot,
    pub reason: String,
    pub granted_by: String,
    pub granted_at: String,
    pub state: GrantState,
    /// When it was used or revoked.
    pub closed_at: Option<String>,
    /// Who revoked it, or the operator of the reservation that used it (if one was named).
    pub closed_by: Option<String>,
    /// Used: the key index or initial KSN reserved under it; revoked: the reason.
    pub closing: Option<String>,
}

/// What a terminal asking for a key of a slot gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// It never had a key of this slot confirmed: a new key.
    New,
    /// It holds a key of this slot reserved or sent and not confirmed: that key again.
    Resume,
    /// It holds a confirmed key of this slot and an open grant admits another.
    Granted { grant: u64, replaces: String },
    /// It holds a confirmed key of this slot (`injected`: its SMN, or its initial KSN or key
    /// ID) and no grant: refused.
    AlreadyInjected { injected: String },
}

/// Why a grant or a revocation was refused; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum ReinjectionError {
    #[error(
        "hardware serial {hardware_serial} holds no confirmed {slot} key: there is nothing to re-inject"
    )]
    NothingToReinject {
        hardware_serial: HardwareSerial,
        slot: KeySlot,
    },
    #[error(
        "hardware serial {hardware_serial} already has an open grant for slot {slot} (grant {grant})"
    )]
    AlreadyGranted {
        hardware_serial: HardwareSerial,
        slot: KeySlot,
        grant: u64,
    },
    #[error("a re-injection grant needs a reason (1 to 1024 bytes) and the operator's name")]
    NeedsReasonAndOperator,
    #[error("there is no re-injection grant {0}")]
    UnknownGrant(u64),
    #[error("re-injection grant {grant} is {state}; only an open grant can be revoked")]
    NotOpen { grant: u64, state: GrantState },
    #[error(transparent)]
    Vault(#[from] VaultError),
}

impl From<rusqlite::Error> for ReinjectionError {
    fn from(error: rusqlite::Error) -> Self {
        ReinjectionError::Vault(VaultError::Database(error))
    }
}

/// What a terminal asking for a key of `slot` gets now (see [`Admission`]). Run it inside the
/// reservation's transaction for a decision that holds.
pub(crate) fn admission(
    connection: &Connection,
    serial: &HardwareSerial,
    slot: &KeySlot,
) -> Result<Admission, rusqlite::Error> {
    let (pending, injected) = match slot {
        KeySlot::Master => (
            "SELECT 1 FROM key_inventory
              WHERE hardware_serial = ?1 AND state IN ('reserved', 'sent') AND ?2 = 'master'",
            "SELECT smn FROM smn_registry WHERE hardware_serial = ?1 AND ?2 = 'master'
              ORDER BY rowid DESC LIMIT 1",
        ),
        KeySlot::Dukpt(_) => (
            "SELECT 1 FROM dukpt_allocation
              WHERE bdk_name = ?2 AND hardware_serial = ?1 AND state IN ('reserved', 'sent')",
            "SELECT initial_ksn FROM dukpt_registry WHERE bdk_name = ?2 AND hardware_serial = ?1
              ORDER BY rowid DESC LIMIT 1",
        ),
    };
    let slot_name = slot.name();
    let is_pending = connection
        .prepare_cached(pending)?
        .query_row(params![serial, slot_name], |_| Ok(()))
        .optional()?
        .is_some();
    if is_pending {
        return Ok(Admission::Resume);
    }
    let last: Option<String> = connection
        .prepare_cached(injected)?
        .query_row(params![serial, slot_name], |row| row.get(0))
        .optional()?;
    let Some(injected) = last else {
        return Ok(Admission::New);
    };
    Ok(match open_grant(connection, serial, slot)? {
        Some(grant) => Admission::Granted {
            grant,
            replaces: injected,
        },
        None => Admission::AlreadyInjected { injected },
    })
}

/// The open grant of `serial` for `slot`, if any.
fn open_grant(
    connection: &Connection,
    serial: &HardwareSerial,
    slot: &KeySlot,
) -> Result<Option<u64>, rusqlite::Error> {
    connection
        .prepare_cached(
            "SELECT id FROM reinjection_grant
              WHERE hardware_serial = ?1 AND slot = ?2 AND state = 'open'",
        )?
        .query_row(params![serial, slot.name()], |row| row.get::<_, i64>(0))
        .optional()
        .map(|id| id.map(|id| id as u64))
}

/// A reservation made under `grant` uses it up (in the reservation's transaction), audited as
/// `reinjection-used`; `key` is the key index or initial KSN reserved.
pub(crate) struct GrantUse<'a> {
    pub(crate) grant: u64,
    pub(crate) hardware_serial: &'a HardwareSerial,
    pub(crate) slot: KeySlot,
    pub(crate) key: String,
    pub(crate) port: &'a str,
    pub(crate) operator: Option<&'a str>,
}

pub(crate) fn use_grant(
    transaction: &rusqlite::Transaction<'_>,
    audit_head: &crate::mac::MacKey,
    used: GrantUse<'_>,
) -> Result<(), VaultError> {
    let changed = transaction.execute(
        "UPDATE reinjection_grant SET state = 'used', closed_at = ?2, closed_by = ?3, closing = ?4
          WHERE id = ?1 AND state = 'open'",
        params![used.grant as i64, now_text(), used.operator, used.key],
    )?;
    if changed != 1 {
        return Err(VaultError::Corrupt(format!(
            "re-injection grant {} changed under a reservation",
            used.grant
        )));
    }
    audit::append(
        transaction,
        audit_head,
        &AuditEvent::ReinjectionUsed {
            grant: used.grant,
            hardware_serial: used.hardware_serial.clone(),
            slot: used.slot,
            key: used.key,
            port: used.port.to_owned(),
            operator: used.operator.map(str::to_owned),
        },
    )?;
    Ok(())
}

const GRANT_COLUMNS: &str = "id, hardware_serial, slot, reason, granted_by, granted_at, state, closed_at, closed_by, closing";

fn grant_from_row(row: &rusqlite::Row<'_>) -> Result<ReinjectionGrant, rusqlite::Error> {
    let id = row.get::<_, i64>(0)? as u64;
    let bad = |what: String| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("re-injection grant {id}: {what}").into(),
        )
    };
    let slot: String = row.get(2)?;
    let state: String = row.get(6)?;
    Ok(ReinjectionGrant {
        id,
        hardware_serial: row.get(1)?,
        slot: slot.parse().map_err(bad)?,
        reason: row.get(3)?,
        granted_by: row.get(4)?,
        granted_at: row.get(5)?,
        state: GrantState::from_stored(&state).ok_or_else(|| bad(format!("state {state:?}")))?,
        closed_at: row.get(7)?,
        closed_by: row.get(8)?,
        closing: row.get(9)?,
    })
}

fn grant_by_id(connection: &Connection, id: u64) -> Result<Option<ReinjectionGrant>, VaultError> {
    Ok(connection
        .query_row(
            &format!("SELECT {GRANT_COLUMNS} FROM reinjection_grant WHERE id = ?1"),
            [id as i64],
            grant_from_row,
        )
        .optional()?)
}

impl Vault {
    /// What a terminal asking now for a key of `slot` would get (the reservation decides again
    /// in its own transaction).
    pub fn reinjection_admission(
        &self,
        serial: &HardwareSerial,
        slot: &KeySlot,
    ) -> Result<Admission, VaultError> {
        Ok(admission(&self.connection, serial, slot)?)
    }

    /// Grants one re-injection of `slot` to the terminal `serial`, which must hold a confirmed
    /// key of it and no open grant for it; audited as `reinjection-grant` under `operator`.
    pub fn grant_reinjection(
        &mut self,
        serial: &HardwareSerial,
        slot: &KeySlot,
        reason: &str,
        operator: &str,
    ) -> Result<ReinjectionGrant, ReinjectionError> {
        if reason.trim().is_empty() || reason.len() > 1024 || operator.is_empty() {
            return Err(ReinjectionError::NeedsReasonAndOperator);
        }
        let storage_key = live_key(&self.storage_key, &self.data_dir)?;
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let nothing = || ReinjectionError::NothingToReinject {
            hardware_serial: serial.clone(),
            slot: slot.clone(),
        };
        match admission(&transaction, serial, slot)? {
            Admission::New => return Err(nothing()),
            Admission::Granted { grant, .. } => {
                return Err(ReinjectionError::AlreadyGranted {
                    hardware_serial: serial.clone(),
                    slot: slot.clone(),
                    grant,
                });
            }
            // A pending key is resumed without a grant, but a confirmed key before it makes a
            // grant meaningful for after it: allowed when the slot has a registry row.
            Admission::Resume if !has_confirmed(&transaction, serial, slot)? => {
                return Err(nothing());
            }
            Admission::Resume | Admission::AlreadyInjected { .. } => {}
        }
        if let Some(grant) = open_grant(&transaction, serial, slot)? {
            return Err(ReinjectionError::AlreadyGranted {
                hardware_serial: serial.clone(),
                slot: slot.clone(),
                grant,
            });
        }
        transaction.execute(
            "INSERT INTO reinjection_grant (hardware_serial, slot, reason, granted_by, granted_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![serial, slot.name(), reason, operator, now_text()],
        )?;
        let id = transaction.last_insert_rowid() as u64;
        audit::append(
            &transaction,
            storage_key.audit_head(),
            &AuditEvent::ReinjectionGranted {
                grant: id,
                hardware_serial: serial.clone(),
                slot: slot.clone(),
                reason: reason.to_owned(),
                operator: operator.to_owned(),
            },
        )?;
        let grant = grant_by_id(&transaction, id)?.ok_or(ReinjectionError::UnknownGrant(id))?;
        transaction.commit()?;
        Ok(grant)
    }

    /// Revokes the open grant `id`; audited as `reinjection-revoke` under `operator`.
    pub fn revoke_reinjection(
        &mut self,
        id: u64,
        reason: &str,
        operator: &str,
    ) -> Result<ReinjectionGrant, ReinjectionError> {
        if reason.trim().is_empty() || reason.len() > 1024 || operator.is_empty() {
            return Err(ReinjectionError::NeedsReasonAndOperator);
        }
        let storage_key = live_key(&self.storage_key, &self.data_dir)?;
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let grant = grant_by_id(&transaction, id)?.ok_or(ReinjectionError::UnknownGrant(id))?;
        if grant.state != GrantState::Open {
            return Err(ReinjectionError::NotOpen {
                grant: id,
                state: grant.state,
            });
        }
        transaction.execute(
            "UPDATE reinjection_grant
                SET state = 'revoked', closed_at = ?2, closed_by = ?3, closing = ?4
              WHERE id = ?1",
            params![id as i64, now_text(), operator, reason],
        )?;
        audit::append(
            &transaction,
            storage_key.audit_head(),
            &AuditEvent::ReinjectionRevoked {
                grant: id,
                hardware_serial: grant.hardware_serial.clone(),
                slot: grant.slot.clone(),
                reason: reason.to_owned(),
                operator: operator.to_owned(),
            },
        )?;
        let revoked = grant_by_id(&transaction, id)?.ok_or(ReinjectionError::UnknownGrant(id))?;
        transaction.commit()?;
        Ok(revoked)
    }

    /// The re-injection grants, oldest first: only the open ones, or all.
    pub fn reinjection_grants(&self, all: bool) -> Result<Vec<ReinjectionGrant>, VaultError> {
        let mut statement = self.connection.prepare(&format!(
            "SELECT {GRANT_COLUMNS} FROM reinjection_grant
              WHERE ?1 OR state = 'open' ORDER BY id"
        ))?;
        let grants = statement
            .query_map([all], grant_from_row)?
            .collect::<Result<_, _>>()?;
        Ok(grants)
    }
}

/// Whether `serial` has a registry row in `slot` (a confirmed key, whatever is pending now).
fn has_confirmed(
    connection: &Connection,
    serial: &HardwareSerial,
    slot: &KeySlot,
) -> Result<bool, rusqlite::Error> {
    let query = match slot {
        KeySlot::Master => {
            "SELECT 1 FROM smn_registry WHERE hardware_serial = ?1 AND ?2 = 'master' LIMIT 1"
        }
        KeySlot::Dukpt(_) => {
            "SELECT 1 FROM dukpt_registry WHERE hardware_serial = ?1 AND bdk_name = ?2 LIMIT 1"
        }
    };
    Ok(connection
        .query_row(query, params![serial, slot.name()], |_| Ok(()))
        .optional()?
        .is_some())
}
