//! Counting the inventory: keys per state and per batch, for status screens and reports.

use std::fmt;

use crate::{Vault, VaultError};

/// Where a master key is in its life. Only `available` keys may be offered to a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyState {
    Available,
    Reserved,
    Sent,
    Used,
    Quarantined,
    /// Voided one by one: reserved or sent, never confirmed.
    Void,
    /// Taken out of service with its batch while still available (withdrawal.rs). Stored as
    /// `void` with the `withdrawn` mark; counted apart.
    Withdrawn,
}

impl KeyState {
    /// Every state, in life-cycle order.
    pub const ALL: [KeyState; 7] = [
        KeyState::Available,
        KeyState::Reserved,
        KeyState::Sent,
        KeyState::Used,
        KeyState::Quarantined,
        KeyState::Void,
        KeyState::Withdrawn,
    ];

    /// The name stored in the database (a withdrawn key is stored as `void` with its mark),
    /// and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Available => "available",
            KeyState::Reserved => "reserved",
            KeyState::Sent => "sent",
            KeyState::Used => "used",
            KeyState::Quarantined => "quarantined",
            KeyState::Void => "void",
            KeyState::Withdrawn => "withdrawn",
        }
    }

    /// The state a stored name stands for.
    pub(crate) fn from_stored(name: &str) -> Option<KeyState> {
        KeyState::ALL
            .into_iter()
            .find(|state| state.as_str() == name)
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One imported batch and how many of its keys are still available.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSummary {
    pub batch_id: String,
    pub issuer: String,
    pub algorithm: String,
    pub record_count: u64,
    pub available: u64,
    /// Keys withdrawn with the batch (withdrawal.rs); 0 unless it was withdrawn.
    pub withdrawn: u64,
    pub imported_at: String,
    pub file_sha256: String,
}

/// A key whose block a zeroize blanked before it was used: `available`, `reserved` or `sent`
/// with no key material left. It can never be dispensed, so it is counted as erased, not
/// in its state.
const ERASED: &str = "key_block = '' AND state IN ('available', 'reserved', 'sent')";

/// Keys per state and the batches they came from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InventorySummary {
    /// Count per state, in [`KeyState::ALL`] order; erased keys are not counted here.
    pub by_state: Vec<(KeyState, u64)>,
    /// Keys a zeroize erased before they were used (their state is kept in the row).
    pub erased: u64,
    pub batches: Vec<BatchSummary>,
}

impl InventorySummary {
    /// How many keys are in `state`.
    pub fn count(&self, state: KeyState) -> u64 {
        self.by_state
            .iter()
            .find(|(candidate, _)| *candidate == state)
            .map_or(0, |(_, count)| *count)
    }

    /// How many keys the inventory holds in all, erased ones included.
    pub fn total(&self) -> u64 {
        self.by_state.iter().map(|(_, count)| count).sum::<u64>() + self.erased
    }
}

impl Vault {
    /// How many keys are available, counted on the partial index of available keys (cheap
    /// enough for a status line refreshed every few seconds: 0.45 ms for 48,000 keys, where
    /// also reading each row's block to leave out erased ones took 4.5 ms). A zeroized vault
    /// has none: the zeroize blanked every block (and [`Vault::inventory`] counts them erased).
    /// Keys of a batch still being imported are not counted.
    pub fn available_keys(&self) -> Result<u64, VaultError> {
        if self.zeroized {
            return Ok(0);
        }
        count_available(&self.connection)
    }

    /// Counts the inventory. A batch still being imported, and its keys, are not in it yet.
    pub fn inventory(&self) -> Result<InventorySummary, VaultError> {
        count_inventory(&self.connection)
    }
}

/// [`Vault::inventory`] on `connection` (the vault's, or a [`crate::StatusReader`]'s).
pub(crate) fn count_inventory(
    connection: &rusqlite::Connection,
) -> Result<InventorySummary, VaultError> {
    {
        let mut counts = connection.prepare(&format!(
            "SELECT CASE WHEN {ERASED} THEN 'erased' WHEN withdrawn = 1 THEN 'withdrawn'
                         ELSE state END, count(*)
                   FROM key_inventory
                  WHERE batch_id NOT IN (SELECT batch_id FROM batch_staging)
                  GROUP BY 1"
        ))?;
        let rows: Vec<(String, i64)> = counts
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let by_state = KeyState::ALL
            .into_iter()
            .map(|state| {
                let count = rows
                    .iter()
                    .find(|(name, _)| name == state.as_str())
                    .map_or(0, |(_, count)| *count as u64);
                (state, count)
            })
            .collect();
        let erased = rows
            .iter()
            .find(|(name, _)| name == "erased")
            .map_or(0, |(_, count)| *count as u64);
        let mut batches = connection.prepare(
            "SELECT batch_id, issuer, algorithm, record_count, imported_at, file_sha256,
                    (SELECT count(*) FROM key_inventory k
                      WHERE k.batch_id = b.batch_id AND k.state = 'available'
                        AND k.key_block <> ''),
                    coalesce((SELECT keys FROM batch_withdrawal w
                               WHERE w.batch_id = b.batch_id), 0)
               FROM batch b
              WHERE b.batch_id NOT IN (SELECT batch_id FROM batch_staging)
              ORDER BY imported_at, batch_id",
        )?;
        let batches = batches
            .query_map([], |row| {
                Ok(BatchSummary {
                    batch_id: row.get(0)?,
                    issuer: row.get(1)?,
                    algorithm: row.get(2)?,
                    record_count: row.get::<_, i64>(3)? as u64,
                    imported_at: row.get(4)?,
                    file_sha256: row.get(5)?,
                    available: row.get::<_, i64>(6)? as u64,
                    withdrawn: row.get::<_, i64>(7)? as u64,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(InventorySummary {
            by_state,
            erased,
            batches,
        })
    }
}

/// Available keys less the staged ones of a batch still being imported, both read in one
/// snapshot (an import's chunk committed between two reads would count it once too often
/// or too few): a read transaction of its own, unless `connection` is in one already.
pub(crate) fn count_available(connection: &rusqlite::Connection) -> Result<u64, VaultError> {
    let snapshot = match connection.is_autocommit() {
        true => Some(connection.unchecked_transaction()?),
        false => None,
    };
    let count: i64 = connection.query_row(
        "SELECT count(*) FROM key_inventory INDEXED BY key_inventory_available
          WHERE state = 'available'",
        [],
        |row| row.get(0),
    )?;
    // Keys of a batch still being imported are not available yet. They never leave
    // 'available' while it stages, and its staging row counts them (in the transactions
    // that write them): no row of theirs is read.
    let staged: i64 = connection.query_row(
        "SELECT coalesce(sum(staged), 0) FROM batch_staging",
        [],
        |row| row.get(0),
    )?;
    if let Some(snapshot) = snapshot {
        snapshot.finish()?;
    }
    Ok(count.saturating_sub(staged).max(0) as u64)
}
