//! Confirming a DUKPT injection (the allocation used, its registry row and audit row in one transaction), voiding a pending allocation, and reading the allocations and the registry.

use keymother_domain::{BdkId, BdkName, DukptDeviceId, HardwareSerial, Kcv, KeyAlgorithm};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::bdk::{BdkRow, read_bdk};
use super::{
    ConfirmedDukpt, DukptAllocation, DukptConfirmation, DukptError, DukptRow, VoidedDukpt,
    stored_device, stored_state,
};
use crate::audit::{self, AuditEvent};
use crate::storage_key::StorageKey;
use crate::{KeyState, Vault, live_key, now_text};

/// An allocation as a confirmation or a void reads it.
struct AllocationRow {
    bound_to: HardwareSerial,
    state: KeyState,
    initial_ksn: String,
    key_type: KeyAlgorithm,
    kcv: Kcv,
    failures: u32,
    /// The operator the device id was reserved under.
    reserved_by: Option<String>,
}

/// The BDK `bdk` and its allocation of `device_id`, if both exist and are of one kind.
fn read_allocation(
    connection: &Connection,
    bdk: &BdkName,
    device_id: DukptDeviceId,
) -> Result<Option<(BdkRow, AllocationRow)>, DukptError> {
    let Some(bdk_row) = read_bdk(connection, bdk)? else {
        return Ok(None);
    };
    if bdk_row.kind != device_id.family() {
        return Ok(None);
    }
    let allocation = connection
        .prepare_cached(
            "SELECT hardware_serial, state, initial_ksn, key_type, kcv, failed_confirmations,
                    operator
               FROM dukpt_allocation WHERE bdk_name = ?1 AND device_id = ?2",
        )?
        .query_row(params![bdk, device_id], |row| {
            Ok((
                row.get(0)?,
                row.get::<_, String>(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get::<_, i64>(5)?,
                row.get(6)?,
            ))
        })
        .optional()?;
    let Some((bound_to, state, initial_ksn, key_type, kcv, failures, reserved_by)) = allocation
    else {
        return Ok(None);
    };
    let allocation = AllocationRow {
        bound_to,
        state: stored_state(bdk, &state)?,
        initial_ksn,
        key_type,
        kcv,
        failures: u32::try_from(failures).unwrap_or(u32::MAX),
        reserved_by,
    };
    Ok(Some((bdk_row, allocation)))
}

/// A retransmitted confirmation of a used allocation: succeeds again, without change, when
/// the registry row is this terminal's with this check value.
fn confirmed_again(
    transaction: &Transaction<'_>,
    report: &DukptConfirmation<'_>,
    allocation: &AllocationRow,
) -> Result<Option<ConfirmedDukpt>, DukptError> {
    let recorded: Option<(BdkId, Option<String>)> = transaction
        .query_row(
            "SELECT bdk_id, operator FROM dukpt_registry
              WHERE bdk_name = ?1 AND device_id = ?2 AND hardware_serial = ?3 AND kcv = ?4",
            params![
                report.bdk,
                report.device_id,
                report.hardware_serial,
                report.kcv
            ],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    Ok(recorded.map(|(bdk_id, operator)| ConfirmedDukpt {
        bdk: report.bdk.clone(),
        bdk_id,
        device_id: report.device_id,
        initial_ksn: allocation.initial_ksn.clone(),
        key_type: allocation.key_type,
        already_confirmed: true,
        operator,
    }))
}

/// Counts a wrong check value and quarantines the allocation at `quarantine_after` failures
/// (recorded in the audit chain), commits, and returns the mismatch to report.
fn count_failure(
    storage_key: &StorageKey,
    transaction: Transaction<'_>,
    report: &DukptConfirmation<'_>,
    allocation: &AllocationRow,
    quarantine_after: u32,
) -> Result<DukptError, DukptError> {
    let failures = allocation.failures.saturating_add(1);
    let quarantined = failures >= quarantine_after;
    transaction.execute(
        "UPDATE dukpt_allocation
            SET failed_confirmations = ?3,
                state = CASE WHEN ?4 THEN 'quarantined' ELSE state END
          WHERE bdk_name = ?1 AND device_id = ?2",
        params![report.bdk, report.device_id, failures, quarantined],
    )?;
    if quarantined {
        audit::append(
            &transaction,
            storage_key.audit_head(),
            &AuditEvent::DukptQuarantine {
                bdk: report.bdk.clone(),
                device_id: report.device_id,
                hardware_serial: report.hardware_serial.clone(),
                failures,
            },
        )?;
    }
    transaction.commit()?;
    Ok(DukptError::KcvMismatch {
        bdk: report.bdk.clone(),
        device_id: report.device_id,
        reported: report.kcv,
        expected: allocation.kcv,
        failures,
        quarantined,
    })
}

/// Marks the allocation used and writes its registry row and its `dukpt-injection` audit
/// row, inside the caller's transaction.
fn record_injection(
    transaction: &Transaction<'_>,
    storage_key: &StorageKey,
    report: &DukptConfirmation<'_>,
    bdk_id: BdkId,
    allocation: &AllocationRow,
    operator: Option<&str>,
) -> Result<(), DukptError> {
    transaction.execute(
        "UPDATE dukpt_allocation SET state = 'used' WHERE bdk_name = ?1 AND device_id = ?2",
        params![report.bdk, report.device_id],
    )?;
    transaction.execute(
        "INSERT INTO dukpt_registry
             (hardware_serial, bdk_name, bdk_id, device_id, initial_ksn, key_type, kcv, port,
              terminal_model, operator, injected_at, replaces)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11,
                 CASE WHEN (SELECT reinjection_grant FROM dukpt_allocation
                             WHERE bdk_name = ?2 AND device_id = ?4) IS NULL THEN NULL
                      ELSE (SELECT initial_ksn FROM dukpt_registry
                             WHERE bdk_name = ?2 AND hardware_serial = ?1
                             ORDER BY rowid DESC LIMIT 1) END)",
        params![
            report.hardware_serial,
            report.bdk,
            bdk_id,
            report.device_id,
            allocation.initial_ksn,
            allocation.key_type,
            allocation.kcv,
            report.port,
            report.terminal_model,
            operator,
            now_text()
        ],
    )?;
    audit::append(
        transaction,
        storage_key.audit_head(),
        &AuditEvent::DukptInjection {
            bdk: report.bdk.clone(),
            bdk_id,
            device_id: report.device_id,
            initial_ksn: allocation.initial_ksn.clone(),
            key_type: allocation.key_type,
            kcv: allocation.kcv,
            hardware_serial: report.hardware_serial.clone(),
            port: report.port.to_owned(),
            operator: operator.map(str::to_owned),
        },
    )?;
    Ok(())
}

impl Vault {
    /// Checks a terminal's confirmation against the initial key its device id was given and,
    /// when the check value matches, marks the allocation used and writes its registry row
    /// and its `dukpt-injection` audit row in one transaction. A wrong check value counts a
    /// failure; at `quarantine_after` failures the allocation is quarantined (audited) and
    /// its device id never given again. Confirming a used allocation again (a
    /// retransmission) succeeds without change.
    ///
    /// The operator named is the one the device id was reserved under; `operator` is named
    /// only for an allocation reserved without one.
    pub fn confirm_dukpt(
        &mut self,
        report: &DukptConfirmation<'_>,
        quarantine_after: u32,
        operator: Option<&str>,
    ) -> Result<ConfirmedDukpt, DukptError> {
        let storage_key = live_key(&self.storage_key, &self.data_dir)?;
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let not_delivered = || DukptError::NotDeliveredTo {
            bdk: report.bdk.clone(),
            device_id: report.device_id,
            hardware_serial: report.hardware_serial.clone(),
        };
        let Some((bdk, allocation)) = read_allocation(&transaction, report.bdk, report.device_id)?
        else {
            return Err(not_delivered());
        };
        if allocation.bound_to != *report.hardware_serial {
            return Err(not_delivered());
        }
        match allocation.state {
            KeyState::Used => {
                return confirmed_again(&transaction, report, &allocation)?
                    .ok_or_else(not_delivered);
            }
            KeyState::Reserved | KeyState::Sent => {}
            _ => return Err(not_delivered()),
        }
        if allocation.kcv != report.kcv {
            return Err(count_failure(
                storage_key,
                transaction,
                report,
                &allocation,
                quarantine_after,
            )?);
        }
        let operator = allocation
            .reserved_by
            .clone()
            .or_else(|| operator.map(str::to_owned));
        record_injection(
            &transaction,
            storage_key,
            report,
            bdk.bdk_id,
            &allocation,
            operator.as_deref(),
        )?;
        transaction.commit()?;
        Ok(ConfirmedDukpt {
            bdk: report.bdk.clone(),
            bdk_id: bdk.bdk_id,
            device_id: report.device_id,
            initial_ksn: allocation.initial_ksn,
            key_type: allocation.key_type,
            already_confirmed: false,
            operator,
        })
    }

    /// Voids an allocation that was reserved or sent but never confirmed, so its terminal may
    /// be given another device id. The device id is never given again; the reason and the
    /// operator go to the audit chain (`dukpt-void`) in the same transaction.
    pub fn void_dukpt(
        &mut self,
        bdk: &BdkName,
        device_id: DukptDeviceId,
        reason: &str,
        operator: &str,
    ) -> Result<VoidedDukpt, DukptError> {
        if reason.trim().is_empty() || operator.trim().is_empty() {
            return Err(DukptError::VoidNeedsReasonAndOperator {
                bdk: bdk.clone(),
                device_id,
            });
        }
        let storage_key = live_key(&self.storage_key, &self.data_dir)?;
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (_, allocation) = read_allocation(&transaction, bdk, device_id)?.ok_or_else(|| {
            DukptError::NotAllocated {
                bdk: bdk.clone(),
                device_id,
            }
        })?;
        if !matches!(allocation.state, KeyState::Reserved | KeyState::Sent) {
            return Err(DukptError::NotPending {
                bdk: bdk.clone(),
                device_id,
                state: allocation.state,
            });
        }
        transaction.execute(
            "UPDATE dukpt_allocation SET state = 'void'
              WHERE bdk_name = ?1 AND device_id = ?2 AND state IN ('reserved', 'sent')",
            params![bdk, device_id],
        )?;
        let row = audit::append(
            &transaction,
            storage_key.audit_head(),
            &AuditEvent::DukptVoid {
                bdk: bdk.clone(),
                device_id,
                reason: reason.to_owned(),
                operator: operator.to_owned(),
            },
        )?;
        transaction.commit()?;
        Ok(VoidedDukpt {
            bdk: bdk.clone(),
            device_id,
            hardware_serial: allocation.bound_to,
            previous_state: allocation.state,
            audit_sequence: row.sequence,
        })
    }

    /// The DUKPT registry: every confirmed injection, oldest first.
    pub fn dukpt_rows(&self) -> Result<Vec<DukptRow>, DukptError> {
        let mut statement = self.connection.prepare(
            "SELECT r.hardware_serial, r.bdk_name, r.bdk_id, r.device_id, r.initial_ksn,
                    r.key_type, r.kcv, r.port, r.terminal_model, r.operator, r.injected_at,
                    r.replaces,
                    (SELECT later.initial_ksn FROM dukpt_registry AS later
                      WHERE later.replaces = r.initial_ksn),
                    g.id, g.reason
               FROM dukpt_registry AS r
               JOIN dukpt_allocation AS a
                 ON a.bdk_name = r.bdk_name AND a.device_id = r.device_id
               LEFT JOIN reinjection_grant AS g ON g.id = a.reinjection_grant
              ORDER BY r.injected_at, r.rowid",
        )?;
        let mut rows = statement.query([])?;
        let mut registry = Vec::new();
        while let Some(row) = rows.next()? {
            let bdk: BdkName = row.get(1)?;
            let bdk_id: BdkId = row.get(2)?;
            registry.push(DukptRow {
                hardware_serial: row.get(0)?,
                device_id: stored_device(bdk_id.family(), &bdk, row.get(3)?)?,
                bdk,
                bdk_id,
                initial_ksn: row.get(4)?,
                key_type: row.get(5)?,
                kcv: row.get(6)?,
                port: row.get(7)?,
                terminal_model: row.get(8)?,
                operator: row.get(9)?,
                injected_at: row.get(10)?,
                replaces: row.get(11)?,
                replaced_by: row.get(12)?,
                reinjection_grant: row
                    .get::<_, Option<i64>>(13)?
                    .zip(row.get::<_, Option<String>>(14)?)
                    .map(|(id, reason)| (id as u64, reason)),
            });
        }
        Ok(registry)
    }

    /// Every DUKPT allocation, by BDK and device id. For status screens, audits and tests.
    pub fn dukpt_allocations(&self) -> Result<Vec<DukptAllocation>, DukptError> {
        let mut statement = self.connection.prepare(
            "SELECT a.bdk_name, b.kind, a.device_id, a.hardware_serial, a.state, a.initial_ksn,
                    a.key_type, a.kcv, a.port, a.operator, a.reserved_at, a.failed_confirmations
               FROM dukpt_allocation AS a JOIN bdk AS b ON b.name = a.bdk_name
              ORDER BY a.bdk_name, a.device_id",
        )?;
        let mut rows = statement.query([])?;
        let mut allocations = Vec::new();
        while let Some(row) = rows.next()? {
            let bdk: BdkName = row.get(0)?;
            let kind: String = row.get(1)?;
            let kind = super::kind_from_stored(&kind)
                .ok_or_else(|| super::corrupt(format!("BDK {bdk} has kind {kind:?}")))?;
            let state: String = row.get(4)?;
            allocations.push(DukptAllocation {
                device_id: stored_device(kind, &bdk, row.get(2)?)?,
                hardware_serial: row.get(3)?,
                state: stored_state(&bdk, &state)?,
                initial_ksn: row.get(5)?,
                key_type: row.get(6)?,
                kcv: row.get(7)?,
                port: row.get(8)?,
                operator: row.get(9)?,
                reserved_at: row.get(10)?,
                failed_confirmations: u32::try_from(row.get::<_, i64>(11)?).unwrap_or(u32::MAX),
                bdk,
            });
        }
        Ok(allocations)
    }
}
