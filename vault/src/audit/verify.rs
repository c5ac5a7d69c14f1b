//! Verification of the audit chain: the walk that names the first broken row, the head's check, and the report or failure they give.

use std::collections::VecDeque;

use rusqlite::Connection;

use super::{
    AuditRow, GENESIS_HASH, Head, SELECT_ROWS, checkpoint, head_verifies, read_head, row_from_sql,
    with_sequence,
};
use crate::mac::MacKey;
use crate::{Vault, VaultError};

/// How many recent rows the verifier remembers to tell an inserted row from a rewritten one.
const RECENT_ROWS: usize = 64;

/// Whether the head's MAC was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadMacStatus {
    /// The head verified under the storage key: no row was removed from the end, and the
    /// chain was not rewritten, by anyone without the storage key.
    Verified,
    /// The storage key is gone (the vault was zeroized) or this is an offline export: the
    /// chain is consistent, but truncation or a consistent rewrite cannot be ruled out.
    NotChecked,
}

/// A chain that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    /// Rows in the chain (also the last sequence number).
    pub rows: u64,
    /// The last row's hash as the head records it.
    pub head_hash: String,
    pub head_mac: HeadMacStatus,
    /// The first row walked: 1 for a whole walk; the row after the last verified point for
    /// the check before READY ([`Vault::verify_audit_since_checkpoint`]).
    pub first_walked: u64,
}

/// "row 3 was" or "rows 3 to 5 were", for messages about a run of rows.
fn rows_were(first: u64, last: u64) -> String {
    if first == last {
        format!("row {first} was")
    } else {
        format!("rows {first} to {last} were")
    }
}

/// What is wrong with the chain, naming the row.
#[derive(Debug, thiserror::Error)]
pub enum AuditFailure {
    #[error("audit row {sequence} was edited: its content does not match its hash")]
    RowEdited { sequence: u64 },
    #[error(
        "audit {} inserted: row {} links to row {}",
        rows_were(*first, *last),
        last + 1,
        first - 1
    )]
    RowsInserted { first: u64, last: u64 },
    #[error(
        "audit row {sequence} does not link to row {}: row {} was rewritten (its hash recomputed), or rows were removed or inserted before row {sequence}",
        sequence - 1,
        sequence - 1
    )]
    LinkBroken { sequence: u64 },
    #[error("audit row 1 does not start the chain: its previous hash is not 64 zeros")]
    BadGenesis,
    #[error("audit {} deleted: the chain jumps from row {} to row {}", rows_were(*first, *last), first - 1, last + 1)]
    RowsMissing { first: u64, last: u64 },
    #[error("audit row {sequence} is out of order (after row {after})")]
    OutOfOrder { sequence: u64, after: u64 },
    #[error("audit row {sequence} has an impossible sequence number")]
    BadSequence { sequence: i64 },
    #[error("the audit head is missing: the chain's end cannot be checked")]
    HeadMissing,
    #[error(
        "the audit head (last row {last_sequence}) does not verify under the storage key: it was forged, so the chain was rewritten or cut and the head adjusted"
    )]
    HeadForged { last_sequence: u64 },
    #[error(
        "audit {} deleted from the end of the chain: the head records row {last}",
        rows_were(*first, *last)
    )]
    RowsTruncated { first: u64, last: u64 },
    #[error(
        "audit {} inserted after the head's last row {}",
        rows_were(*first, *last),
        first - 1
    )]
    RowsBeyondHead { first: u64, last: u64 },
    #[error(
        "audit row {sequence} is not the row the head records: row {sequence} or the chain before it was rewritten"
    )]
    HeadMismatch { sequence: u64 },
    #[error(
        "the audit checkpoint (row {sequence}) does not verify under the storage key: it was forged or edited"
    )]
    CheckpointForged { sequence: u64 },
    #[error(
        "audit row {sequence} is not the row the checkpoint verified: row {sequence} or the chain before it was rewritten"
    )]
    CheckpointMismatch { sequence: u64 },
    #[error(
        "audit row {sequence}, the checkpoint's last verified row, is missing: rows were deleted"
    )]
    CheckpointRowMissing { sequence: u64 },
    #[error(transparent)]
    Vault(#[from] VaultError),
}

impl AuditFailure {
    /// The row the failure is about (for the head: the row it records), if any.
    pub fn sequence(&self) -> Option<u64> {
        match self {
            AuditFailure::RowEdited { sequence }
            | AuditFailure::LinkBroken { sequence }
            | AuditFailure::OutOfOrder { sequence, .. }
            | AuditFailure::HeadMismatch { sequence }
            | AuditFailure::CheckpointForged { sequence }
            | AuditFailure::CheckpointMismatch { sequence }
            | AuditFailure::CheckpointRowMissing { sequence } => Some(*sequence),
            AuditFailure::RowsInserted { first, .. }
            | AuditFailure::RowsMissing { first, .. }
            | AuditFailure::RowsTruncated { first, .. }
            | AuditFailure::RowsBeyondHead { first, .. } => Some(*first),
            AuditFailure::BadGenesis => Some(1),
            AuditFailure::HeadForged { last_sequence } => Some(*last_sequence),
            AuditFailure::BadSequence { .. }
            | AuditFailure::HeadMissing
            | AuditFailure::Vault(_) => None,
        }
    }
}

impl From<rusqlite::Error> for AuditFailure {
    fn from(error: rusqlite::Error) -> Self {
        AuditFailure::Vault(VaultError::Database(error))
    }
}

/// Walks a chain row by row, remembering just enough to name what broke.
pub(super) struct ChainWalk {
    first: u64,
    expected: u64,
    previous_hash: String,
    recent: VecDeque<(u64, String)>,
    /// A verified point (sequence, hash) the walk must pass through unchanged.
    confirm: Option<(u64, String)>,
}

impl ChainWalk {
    pub(super) fn new() -> ChainWalk {
        ChainWalk::after(0, GENESIS_HASH.to_owned())
    }

    /// A walk that starts after row `sequence`, whose hash is `hash` (already verified).
    pub(super) fn after(sequence: u64, hash: String) -> ChainWalk {
        let mut recent = VecDeque::with_capacity(RECENT_ROWS);
        if sequence > 0 {
            recent.push_back((sequence, hash.clone()));
        }
        ChainWalk {
            first: sequence + 1,
            expected: sequence + 1,
            previous_hash: hash,
            recent,
            confirm: None,
        }
    }

    /// The walk also checks that row `sequence` hashes to `hash` (a checkpoint's row).
    pub(super) fn confirming(mut self, sequence: u64, hash: String) -> ChainWalk {
        self.confirm = Some((sequence, hash));
        self
    }

    pub(super) fn push(&mut self, row: AuditRow) -> Result<(), AuditFailure> {
        if row.sequence > self.expected {
            return Err(AuditFailure::RowsMissing {
                first: self.expected,
                last: row.sequence - 1,
            });
        }
        if row.sequence < self.expected {
            return Err(AuditFailure::OutOfOrder {
                sequence: row.sequence,
                after: self.expected - 1,
            });
        }
        if row.previous_hash != self.previous_hash {
            // A row that links to an older row: the rows between were inserted (and the rest
            // renumbered to make room).
            if let Some((linked, _)) = self
                .recent
                .iter()
                .rev()
                .find(|(_, hash)| *hash == row.previous_hash)
            {
                return Err(AuditFailure::RowsInserted {
                    first: linked + 1,
                    last: row.sequence - 1,
                });
            }
            return Err(if row.sequence == 1 {
                AuditFailure::BadGenesis
            } else {
                AuditFailure::LinkBroken {
                    sequence: row.sequence,
                }
            });
        }
        if row.computed_hash() != row.hash {
            return Err(AuditFailure::RowEdited {
                sequence: row.sequence,
            });
        }
        if let Some((sequence, hash)) = &self.confirm
            && *sequence == row.sequence
            && *hash != row.hash
        {
            return Err(AuditFailure::CheckpointMismatch {
                sequence: row.sequence,
            });
        }
        if self.recent.len() == RECENT_ROWS {
            self.recent.pop_front();
        }
        self.recent.push_back((row.sequence, row.hash.clone()));
        self.previous_hash = row.hash;
        self.expected += 1;
        Ok(())
    }

    /// Checks the head against the end of the chain; `key` is `None` when the MAC cannot be
    /// checked (no storage key, or an offline export).
    pub(super) fn finish(
        self,
        head: Option<&Head>,
        key: Option<&MacKey>,
    ) -> Result<AuditReport, AuditFailure> {
        let head = head.ok_or(AuditFailure::HeadMissing)?;
        let head_mac = match key {
            Some(key) if !head_verifies(key, head) => {
                return Err(AuditFailure::HeadForged {
                    last_sequence: head.last_sequence,
                });
            }
            Some(_) => HeadMacStatus::Verified,
            None => HeadMacStatus::NotChecked,
        };
        let last = self.expected - 1;
        if head.last_sequence > last {
            return Err(AuditFailure::RowsTruncated {
                first: last + 1,
                last: head.last_sequence,
            });
        }
        if head.last_sequence < last {
            return Err(AuditFailure::RowsBeyondHead {
                first: head.last_sequence + 1,
                last,
            });
        }
        if head.last_hash != self.previous_hash {
            return Err(AuditFailure::HeadMismatch { sequence: last });
        }
        if let Some((sequence, _)) = self.confirm
            && sequence > last
        {
            return Err(AuditFailure::CheckpointRowMissing { sequence });
        }
        Ok(AuditReport {
            rows: last,
            head_hash: head.last_hash.clone(),
            head_mac,
            first_walked: self.first,
        })
    }
}

/// Verifies the stored chain and head inside the caller's read transaction. With the storage
/// key, a last verified point is checked too: its MAC, and that the walk passes through it.
pub(super) fn verify_stored(
    connection: &Connection,
    key: Option<&MacKey>,
) -> Result<AuditReport, AuditFailure> {
    let mut walk = ChainWalk::new();
    if let Some(key) = key
        && let Some(checkpoint) = checkpoint::read(connection)?
    {
        checkpoint.verify(key)?;
        walk = walk.confirming(checkpoint.sequence, checkpoint.hash);
    }
    let mut statement = connection.prepare(SELECT_ROWS)?;
    for row in statement.query_map([], row_from_sql)? {
        walk.push(with_sequence(row?)?)?;
    }
    let head = read_head(connection)?;
    walk.finish(head.as_ref(), key)
}

impl Vault {
    /// Walks the whole chain and checks the head: the first edited, inserted or deleted row,
    /// or a forged head, is reported by its sequence number. After a zeroize the head's MAC
    /// can no longer be checked; the report says so ([`HeadMacStatus::NotChecked`]).
    pub fn verify_audit(&self) -> Result<AuditReport, AuditFailure> {
        // One read transaction: rows and head from the same snapshot.
        let transaction = self.connection.unchecked_transaction()?;
        let key = self.storage_key.as_ref().map(|key| key.audit_head());
        verify_stored(&transaction, key)
    }
}
