//! Operator actions: voiding a key that was sent but never confirmed, and zeroizing the device.

use keymother_domain::{HardwareSerial, KeyIndex};
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use crate::audit::{self, AuditEvent};
use crate::{KeyState, Vault, VaultError, live_key, storage_key};

/// A key that was voided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoidedKey {
    pub key_index: KeyIndex,
    /// The terminal the key had been reserved for; it may now be given another key.
    pub hardware_serial: HardwareSerial,
    pub previous_state: KeyState,
    /// The Void row's sequence number in the audit chain.
    pub audit_sequence: u64,
}

/// A void was refused; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum VoidError {
    #[error("key {0:08} is not in the inventory")]
    NotFound(u32),
    #[error(
        "key {key_index:08} is {state}; only a reserved or sent key that was never confirmed can be voided"
    )]
    NotPending { key_index: u32, state: KeyState },
    #[error("voiding key {0:08} needs a reason")]
    NoReason(u32),
    #[error("voiding key {0:08} needs the operator's name")]
    NoOperator(u32),
    #[error(transparent)]
    Vault(#[from] VaultError),
}

impl From<rusqlite::Error> for VoidError {
    fn from(error: rusqlite::Error) -> Self {
        VoidError::Vault(VaultError::Database(error))
    }
}

/// What a zeroize destroyed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZeroizeReport {
    /// The Zeroize row's sequence number: the last row the head's MAC vouches for.
    pub audit_sequence: u64,
    /// Sealed secrets deleted (KEK, TTK).
    pub secrets_deleted: u64,
    /// Master-key blocks blanked in the inventory.
    pub key_blocks_erased: u64,
    /// DUKPT BDK blocks erased (sealed under the storage key, like the KEK and TTK); the BDK
    /// rows stay, so the audit and the allocations still name them.
    pub bdks_erased: u64,
    /// Final exports sealed under the KEK before it went (SMN and DUKPT, all rows and only
    /// new rows: 4), which the zeroized vault delivers; 0 when none could be.
    pub final_exports: u64,
    /// Why no final export was sealed (no KEK was loaded), if so.
    pub final_export_problem: Option<String>,
}

impl Vault {
    /// Voids a key that was reserved or sent but never confirmed (cable pulled, terminal
    /// dead), so its terminal may be given another key. The key is never dispensed again;
    /// the reason and the operator go to the audit chain in the same transaction. Any other
    /// state is refused.
    pub fn void_key(
        &mut self,
        key_index: KeyIndex,
        reason: &str,
        operator: &str,
    ) -> Result<VoidedKey, VoidError> {
        let typed_index = key_index;
        let key_index = key_index.value();
        if reason.trim().is_empty() {
            return Err(VoidError::NoReason(key_index));
        }
        if operator.trim().is_empty() {
            return Err(VoidError::NoOperator(key_index));
        }
        let storage_key = live_key(&self.storage_key, &self.data_dir)?;
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let row: Option<(String, Option<HardwareSerial>)> = transaction
            .query_row(
                "SELECT state, hardware_serial FROM key_inventory WHERE key_index = ?1",
                [key_index],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        let (state, hardware_serial) = row.ok_or(VoidError::NotFound(key_index))?;
        let state = KeyState::from_stored(&state).ok_or_else(|| {
            VaultError::Corrupt(format!("key {key_index:08} has state {state:?}"))
        })?;
        let hardware_serial = match (state, hardware_serial) {
            (KeyState::Reserved | KeyState::Sent, Some(serial)) => serial,
            _ => return Err(VoidError::NotPending { key_index, state }),
        };
        let changed = transaction.execute(
            "UPDATE key_inventory SET state = 'void'
              WHERE key_index = ?1 AND state IN ('reserved', 'sent')",
            params![key_index],
        )?;
        if changed != 1 {
            return Err(
                VaultError::Corrupt(format!("key {key_index:08} changed under a void")).into(),
            );
        }
        let row = audit::append(
            &transaction,
            storage_key.audit_head(),
            &AuditEvent::Void {
                key_index,
                reason: reason.to_owned(),
                operator: operator.to_owned(),
            },
        )?;
        transaction.commit()?;
        Ok(VoidedKey {
            key_index: typed_index,
            hardware_serial,
            previous_state: state,
            audit_sequence: row.sequence,
        })
    }

    /// Destroys the device's secrets. First seals the final SMN and DUKPT exports under the
    /// KEK (`zeroized.rs`), kept in the vault with a `final-export` row each; then records a
    /// Zeroize row (its head MAC is the last one the storage key makes) and deletes the sealed KEK and TTK and every BDK's key block in one
    /// transaction, forgets the
    /// storage key, overwrites and removes its file, blanks every master-key block, and
    /// truncates the write-ahead log that still held old page copies.
    ///
    /// Afterwards nothing can be dispensed, imported, sealed or exported under the KEK; the
    /// audit trail and the SMN registry stay readable ([`Vault::open_for_audit`]) and the
    /// chain still verifies, but without the storage key the head's MAC can no longer be
    /// checked ([`crate::HeadMacStatus::NotChecked`]).
    pub fn zeroize(
        &mut self,
        reason: &str,
        operator: Option<&str>,
    ) -> Result<ZeroizeReport, VaultError> {
        live_key(&self.storage_key, &self.data_dir)?;
        // Before the transaction: each export reads its own snapshot.
        let mut finals = self.seal_final_exports();
        let storage_key = live_key(&self.storage_key, &self.data_dir)?;
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let final_exports = crate::zeroized::store_final_exports(
            &transaction,
            storage_key.audit_head(),
            &mut finals.exports,
            operator,
        )?;
        let row = audit::append(
            &transaction,
            storage_key.audit_head(),
            &AuditEvent::Zeroize {
                reason: reason.to_owned(),
                operator: operator.map(str::to_owned),
            },
        )?;
        let secrets_deleted = transaction.execute("DELETE FROM sealed_secret", [])? as u64
            + transaction.execute("DELETE FROM kdh_identity", [])? as u64;
        let bdks_erased = erase_bdks(&transaction)?;
        transaction.commit()?;
        self.zeroized = true;
        // Dropping the key zeroizes it in memory; then the file goes. Both before the slower
        // blanking of the inventory, so a tamper response destroys what matters first.
        self.storage_key = None;
        let destroyed = storage_key::destroy(&self.data_dir);
        // Master keys are blocks under the KEK, which the front end still holds.
        let key_blocks_erased = self.connection.execute(
            "UPDATE key_inventory SET key_block = '' WHERE key_block <> ''",
            [],
        )? as u64;
        self.connection
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        destroyed?;
        Ok(ZeroizeReport {
            audit_sequence: row.sequence,
            secrets_deleted,
            key_blocks_erased,
            bdks_erased,
            final_exports,
            final_export_problem: finals.problem,
        })
    }
}

/// Erases every DUKPT BDK's key block inside the caller's transaction, keeping the rows (their
/// allocations name them); returns how many were erased.
pub(crate) fn erase_bdks(connection: &rusqlite::Connection) -> Result<u64, VaultError> {
    Ok(connection.execute("UPDATE bdk SET key_block = '' WHERE key_block <> ''", [])? as u64)
}
