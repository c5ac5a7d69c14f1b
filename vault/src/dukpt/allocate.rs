//! Allocating device ids: the lowest free id of a BDK's range is reserved for one terminal, durably, before any byte leaves; the same terminal asking again gets the same id.

use keymother_domain::{BdkName, DukptDeviceId, HardwareSerial, KeyFamily};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::bdk::{BdkRow, live_bdk};
use super::{DerivedKeyFacts, DukptError, DukptReservation, ReserveDukptError, stored_device};
use crate::reinjection::{Admission, GrantUse, KeySlot, admission, use_grant};
use crate::{Vault, live_key, now_text};

/// Where the search for a free device id of `bdk` starts: every id of its range below it is
/// allocated.
fn search_start(bdk: &BdkRow) -> i64 {
    bdk.allocated_below
        .max(i64::from(bdk.range.first().value()))
}

/// The lowest device id of `bdk`'s range that no allocation holds, if any.
///
/// Allocations are never deleted and always take the lowest free id, so the walk along the
/// primary key from [`search_start`] stops after a step or two (or at the end of a run a
/// changed range left).
pub(super) fn lowest_free(
    connection: &Connection,
    bdk: &BdkRow,
) -> Result<Option<DukptDeviceId>, DukptError> {
    let (start, last) = (search_start(bdk), i64::from(bdk.range.last().value()));
    if start > last {
        return Ok(None);
    }
    let free: Option<i64> = connection
        .prepare_cached(
            "SELECT CASE
                 WHEN NOT EXISTS (SELECT 1 FROM dukpt_allocation
                                   WHERE bdk_name = ?1 AND device_id = ?2) THEN ?2
                 ELSE (SELECT taken.device_id + 1 FROM dukpt_allocation AS taken
                        WHERE taken.bdk_name = ?1 AND taken.device_id >= ?2
                          AND taken.device_id < ?3
                          AND NOT EXISTS (SELECT 1 FROM dukpt_allocation AS next
                                           WHERE next.bdk_name = ?1
                                             AND next.device_id = taken.device_id + 1)
                        ORDER BY taken.device_id LIMIT 1)
             END",
        )?
        .query_row(params![bdk.name, start, last], |row| row.get(0))?;
    free.map(|number| stored_device(bdk.kind, &bdk.name, number))
        .transpose()
}

/// How many device ids of `bdk`'s range were never allocated.
pub(super) fn remaining(connection: &Connection, bdk: &BdkRow) -> Result<u64, DukptError> {
    let (start, last) = (search_start(bdk), i64::from(bdk.range.last().value()));
    if start > last {
        return Ok(0);
    }
    let taken: i64 = connection
        .prepare_cached(
            "SELECT count(*) FROM dukpt_allocation
              WHERE bdk_name = ?1 AND device_id BETWEEN ?2 AND ?3",
        )?
        .query_row(params![bdk.name, start, last], |row| row.get(0))?;
    Ok((last - start + 1 - taken) as u64)
}

/// Refuses derived-key facts that do not belong to `device_id` of `bdk`: a key type the BDK
/// cannot derive (ANSI X9.24-1: TDES-2KEY from a TDES BDK; ANSI X9.24-3: never stronger
/// than the BDK), a check value of another family, or an initial KSN (TDES, 20 hex digits) or
/// initial key ID (AES, 16) of the wrong form or not beginning with the BDK's identifier.
/// Returns the initial KSN in upper case, as it is stored.
fn check_facts(
    bdk: &BdkRow,
    device_id: DukptDeviceId,
    facts: &DerivedKeyFacts,
) -> Result<String, DukptError> {
    let too_strong = match bdk.kind {
        KeyFamily::Tdes => facts.key_type != keymother_domain::KeyAlgorithm::Tdes2Key,
        KeyFamily::Aes => facts.key_type.strength_bits() > bdk.algorithm.strength_bits(),
    };
    if too_strong {
        return Err(DukptError::DerivedKeyTooStrong {
            bdk: bdk.name.clone(),
            key_type: facts.key_type,
            bdk_algorithm: bdk.algorithm,
        });
    }
    let refuse = |problem: String| DukptError::BadDerivedKey {
        bdk: bdk.name.clone(),
        device_id,
        problem,
    };
    if facts.kcv.family() != facts.key_type.family() {
        return Err(refuse(format!(
            "its check value is {} {} check value, but the key is {}",
            if facts.kcv.family() == KeyFamily::Aes {
                "an"
            } else {
                "a"
            },
            facts.kcv.family(),
            facts.key_type
        )));
    }
    let (what, digits) = match bdk.kind {
        KeyFamily::Tdes => ("initial KSN", 20),
        KeyFamily::Aes => ("initial key ID", 16),
    };
    let text = facts.initial_ksn.to_ascii_uppercase();
    if text.len() != digits || !text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(refuse(format!("its {what} is not {digits} hex digits")));
    }
    if !text.starts_with(&bdk.bdk_id.to_string()) {
        return Err(refuse(format!(
            "its {what} does not begin with the BDK's identifier {}",
            bdk.bdk_id
        )));
    }
    Ok(text)
}

/// The reservation a terminal already holds under `bdk` (reserved or sent), if any.
fn pending_reservation(
    connection: &Connection,
    bdk: &BdkRow,
    serial: &HardwareSerial,
) -> Result<Option<DukptReservation>, DukptError> {
    let pending = connection
        .prepare_cached(
            "SELECT device_id, initial_ksn, key_type, kcv, operator FROM dukpt_allocation
              WHERE bdk_name = ?1 AND hardware_serial = ?2 AND state IN ('reserved', 'sent')",
        )?
        .query_row(params![bdk.name, serial], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
            ))
        })
        .optional()?;
    pending
        .map(|(device, initial_ksn, key_type, kcv, operator)| {
            Ok(DukptReservation {
                bdk: bdk.name.clone(),
                bdk_id: bdk.bdk_id,
                device_id: stored_device(bdk.kind, &bdk.name, device)?,
                initial_ksn,
                key_type,
                kcv,
                resumed: true,
                operator,
            })
        })
        .transpose()
}

impl Vault {
    /// Reserves a device id of the BDK `bdk` for the terminal `serial` on `port`, committed
    /// before this returns. A terminal with a reserved or sent allocation under this BDK gets
    /// it again (`resumed`, `derive` not called). A terminal holding a confirmed initial key
    /// of this BDK is refused ([`DukptError::AlreadyInjected`]) unless an open re-injection
    /// grant admits it, which this reservation then uses up. Otherwise the lowest free device id of the
    /// BDK's range is offered to `derive`, which derives the initial key and returns its
    /// facts; they are checked and stored with the allocation. A used-up range is
    /// [`DukptError::RangeExhausted`]; then, and on any error of `derive` or of the facts,
    /// nothing is written.
    ///
    /// `derive` runs inside the write transaction (other reservations wait for it): it should
    /// only derive. `operator` is recorded with a new allocation, for good.
    pub fn reserve_dukpt<E>(
        &mut self,
        bdk: &BdkName,
        serial: &HardwareSerial,
        port: &str,
        operator: Option<&str>,
        derive: &mut dyn FnMut(DukptDeviceId) -> Result<DerivedKeyFacts, E>,
    ) -> Result<DukptReservation, ReserveDukptError<E>> {
        // Nothing is allocated from a zeroized vault.
        let storage_key = live_key(&self.storage_key, &self.data_dir)?;
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let row = live_bdk(&transaction, bdk)?;
        if let Some(pending) = pending_reservation(&transaction, &row, serial)? {
            return Ok(pending);
        }
        let slot = KeySlot::Dukpt(bdk.clone());
        // A terminal holding a confirmed initial key of this BDK gets another only under a grant.
        let grant = match admission(&transaction, serial, &slot)? {
            Admission::AlreadyInjected { injected } => {
                return Err(DukptError::AlreadyInjected {
                    bdk: bdk.clone(),
                    hardware_serial: serial.clone(),
                    initial_ksn: injected,
                }
                .into());
            }
            Admission::Granted { grant, .. } => Some(grant),
            Admission::New | Admission::Resume => None,
        };
        let device_id = lowest_free(&transaction, &row)?.ok_or(DukptError::RangeExhausted {
            bdk: bdk.clone(),
            range: row.range,
        })?;
        let facts = derive(device_id).map_err(|source| ReserveDukptError::Derive {
            bdk: bdk.clone(),
            device_id,
            source,
        })?;
        let initial_ksn = check_facts(&row, device_id, &facts)?;
        transaction.execute(
            "INSERT INTO dukpt_allocation
                 (bdk_name, device_id, hardware_serial, initial_ksn, key_type, kcv, port,
                  operator, reserved_at, reinjection_grant)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                bdk,
                device_id,
                serial,
                initial_ksn,
                facts.key_type,
                facts.kcv,
                port,
                operator,
                now_text(),
                grant.map(|id| id as i64)
            ],
        )?;
        if let Some(grant) = grant {
            use_grant(
                &transaction,
                storage_key.audit_head(),
                GrantUse {
                    grant,
                    hardware_serial: serial,
                    slot,
                    key: initial_ksn.clone(),
                    port,
                    operator,
                },
            )?;
        }
        // Every id of the range up to this one is now allocated.
        transaction.execute(
            "UPDATE bdk SET allocated_below = ?2 WHERE name = ?1",
            params![bdk, i64::from(device_id) + 1],
        )?;
        transaction.commit()?;
        Ok(DukptReservation {
            bdk: bdk.clone(),
            bdk_id: row.bdk_id,
            device_id,
            initial_ksn,
            key_type: facts.key_type,
            kcv: facts.kcv,
            resumed: false,
            operator: operator.map(str::to_owned),
        })
    }

    /// Records that the initial key of `device_id` was written to the terminal's port.
    ///
    /// Like [`Vault::mark_sent`], this one commit skips the fsync: lost in a power cut, the
    /// allocation stays `reserved` for the same terminal, which is just as safe.
    pub fn mark_dukpt_sent(
        &mut self,
        bdk: &BdkName,
        device_id: DukptDeviceId,
        serial: &HardwareSerial,
    ) -> Result<(), DukptError> {
        self.connection
            .pragma_update(None, "synchronous", "NORMAL")?;
        let changed = self.connection.execute(
            "UPDATE dukpt_allocation SET state = 'sent'
              WHERE bdk_name = ?1 AND device_id = ?2 AND hardware_serial = ?3
                AND state IN ('reserved', 'sent')",
            params![bdk, device_id, serial],
        );
        self.connection.pragma_update(None, "synchronous", "FULL")?;
        if changed? != 1 {
            return Err(DukptError::NotDeliveredTo {
                bdk: bdk.clone(),
                device_id,
                hardware_serial: serial.clone(),
            });
        }
        Ok(())
    }
}
