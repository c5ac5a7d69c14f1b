//! The audit chain's last verified point: the sequence and hash of the last row of a whole-chain walk that passed, MACed, so that the check before READY walks only the rows after it.
//!
//! The checkpoint's MAC is an HMAC under the audit head's key (derived from the storage key)
//! over `KEYMOTHER-AUDIT-CHECKPOINT/1 || 0x00 || sequence (8 bytes, big-endian) || hash`; the
//! head's MAC input starts with `KEYMOTHER-AUDIT-HEAD/1 || 0x00`. Neither label holds a zero
//! byte, so no head MAC is ever a checkpoint MAC or the other way round. The table holds one
//! row; it only moves forward and is never deleted (triggers, schema.rs).

use hmac::Mac;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use sha2::Sha256;

use super::verify::{AuditFailure, AuditReport, ChainWalk, verify_stored};
use super::{AuditRow, SELECT_ROWS_AFTER, read_head, row_from_sql, with_sequence};
use crate::mac::{MacKey, verify_hex};
use crate::{Vault, VaultError, now_text};

/// The label that starts a checkpoint's MAC input.
const CHECKPOINT_LABEL: &[u8] = b"KEYMOTHER-AUDIT-CHECKPOINT/1";

/// A recorded last verified point, as stored (its MAC not yet checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Checkpoint {
    pub(super) sequence: u64,
    pub(super) hash: String,
    mac: String,
}

/// The last verified point of the audit chain: its whole walk passed up to this row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCheckpoint {
    /// The last row of the walk that passed.
    pub sequence: u64,
    /// That row's hash.
    pub hash: String,
    /// When the checkpoint was recorded (RFC 3339, UTC).
    pub verified_at: String,
}

fn mac(key: &MacKey, sequence: u64, hash: &str) -> hmac::Hmac<Sha256> {
    let mut mac = key.start();
    mac.update(CHECKPOINT_LABEL);
    mac.update(&[0]);
    mac.update(&sequence.to_be_bytes());
    mac.update(hash.as_bytes());
    mac
}

impl Checkpoint {
    /// Refuses a checkpoint whose MAC does not verify under `key`.
    pub(super) fn verify(&self, key: &MacKey) -> Result<(), AuditFailure> {
        if verify_hex(mac(key, self.sequence, &self.hash), &self.mac) {
            Ok(())
        } else {
            Err(AuditFailure::CheckpointForged {
                sequence: self.sequence,
            })
        }
    }
}

/// Whether the schema has the checkpoint table (an archive or export of an older vault may not).
fn table_exists(connection: &Connection) -> Result<bool, VaultError> {
    Ok(connection
        .query_row(
            "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'audit_checkpoint'",
            [],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// The stored checkpoint, if any.
pub(super) fn read(connection: &Connection) -> Result<Option<Checkpoint>, AuditFailure> {
    if !table_exists(connection)? {
        return Ok(None);
    }
    let stored: Option<(i64, String, String)> = connection
        .prepare_cached("SELECT sequence, hash, mac FROM audit_checkpoint WHERE singleton = 1")?
        .query_row([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .optional()?;
    stored
        .map(|(sequence, hash, mac)| {
            Ok(Checkpoint {
                sequence: u64::try_from(sequence)
                    .map_err(|_| AuditFailure::BadSequence { sequence })?,
                hash,
                mac,
            })
        })
        .transpose()
}

/// Records (`sequence`, `hash`) as the last verified point inside the caller's transaction,
/// when it is past the current one. The current one must verify: a forged checkpoint is never
/// overwritten (it stays to be found).
pub(super) fn advance(
    connection: &Connection,
    key: &MacKey,
    sequence: u64,
    hash: &str,
) -> Result<bool, AuditFailure> {
    if sequence == 0 {
        return Ok(false);
    }
    if let Some(current) = read(connection)? {
        current.verify(key)?;
        if current.sequence >= sequence {
            return Ok(false);
        }
    }
    let mac = hex::encode(mac(key, sequence, hash).finalize().into_bytes());
    connection
        .prepare_cached(
            "INSERT INTO audit_checkpoint (singleton, sequence, hash, mac, verified_at)
             VALUES (1, ?1, ?2, ?3, ?4)
             ON CONFLICT (singleton) DO UPDATE SET sequence = excluded.sequence,
                 hash = excluded.hash, mac = excluded.mac, verified_at = excluded.verified_at",
        )?
        .execute(params![sequence as i64, hash, mac, now_text()])?;
    Ok(true)
}

/// Whether an `audit-chain-failed` row was written after row `sequence`: no whole walk passed
/// since (it would have moved the checkpoint past it).
fn failure_since(connection: &Connection, sequence: u64) -> Result<bool, VaultError> {
    Ok(connection
        .prepare_cached("SELECT 1 FROM audit_log WHERE sequence > ?1 AND event = ?2 LIMIT 1")?
        .query_row(
            params![sequence as i64, super::AuditEvent::AUDIT_CHAIN_FAILED_NAME],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// The row at `sequence`, if stored.
fn row_at(connection: &Connection, sequence: u64) -> Result<Option<AuditRow>, AuditFailure> {
    let row = connection
        .prepare_cached(
            "SELECT sequence, at, event, actor, details, previous_hash, hash
               FROM audit_log WHERE sequence = ?1",
        )?
        .query_row([sequence as i64], row_from_sql)
        .optional()?;
    row.map(with_sequence).transpose()
}

/// The check before READY, inside the caller's read transaction: the checkpoint's MAC, its
/// row's hash recomputed from its content, the rows after it linked from it to the head, and
/// the head's MAC. Without a checkpoint, or when a chain failure was recorded after it, the
/// whole chain is walked.
pub(super) fn verify_since(
    connection: &Connection,
    key: &MacKey,
) -> Result<AuditReport, AuditFailure> {
    let checkpoint = match read(connection)? {
        Some(checkpoint) if !failure_since(connection, checkpoint.sequence)? => checkpoint,
        _ => return verify_stored(connection, Some(key)),
    };
    checkpoint.verify(key)?;
    let row =
        row_at(connection, checkpoint.sequence)?.ok_or(AuditFailure::CheckpointRowMissing {
            sequence: checkpoint.sequence,
        })?;
    if row.computed_hash() != row.hash {
        return Err(AuditFailure::RowEdited {
            sequence: row.sequence,
        });
    }
    if row.hash != checkpoint.hash {
        return Err(AuditFailure::CheckpointMismatch {
            sequence: row.sequence,
        });
    }
    let mut walk = ChainWalk::after(checkpoint.sequence, checkpoint.hash);
    let mut statement = connection.prepare(SELECT_ROWS_AFTER)?;
    for row in statement.query_map([checkpoint.sequence as i64], row_from_sql)? {
        walk.push(with_sequence(row?)?)?;
    }
    let head = read_head(connection)?;
    walk.finish(head.as_ref(), Some(key))
}

impl Vault {
    /// The check keymotherd makes before READY: the audit chain from its last verified point
    /// (see [`Vault::audit_checkpoint`]) to the head, the checkpoint's and the head's MACs
    /// under the storage key. A row edited before the checkpoint is not seen here: the whole
    /// walk ([`Vault::verify_audit`], and keymotherd's background walk) sees it. Without a
    /// checkpoint, or after a recorded chain failure, it is the whole walk. A zeroized vault
    /// (no storage key) gets the whole walk, its head not checked.
    pub fn verify_audit_since_checkpoint(&self) -> Result<AuditReport, AuditFailure> {
        let transaction = self.connection.unchecked_transaction()?;
        match self.storage_key.as_ref() {
            Some(key) => verify_since(&transaction, key.audit_head()),
            None => verify_stored(&transaction, None),
        }
    }

    /// Walks the whole chain ([`Vault::verify_audit`]) and, when it passes with the head's
    /// MAC verified, records its last row as the last verified point. It holds the write lock
    /// for the walk: for offline use; keymotherd walks on a read-only connection
    /// ([`Vault::audit_chain_checker`], [`Vault::record_audit_walk`]).
    pub fn verify_audit_recording_checkpoint(&mut self) -> Result<AuditReport, AuditFailure> {
        let key = crate::live_key(&self.storage_key, &self.data_dir)?;
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let report = verify_stored(&transaction, Some(key.audit_head()))?;
        advance(
            &transaction,
            key.audit_head(),
            report.rows,
            &report.head_hash,
        )?;
        transaction.commit()?;
        Ok(report)
    }

    /// The audit chain's last verified point, if one was recorded (its MAC is not checked
    /// here: the audit checks do that).
    pub fn audit_checkpoint(&self) -> Result<Option<AuditCheckpoint>, VaultError> {
        if !table_exists(&self.connection)? {
            return Ok(None);
        }
        let stored: Option<(i64, String, String)> = self
            .connection
            .query_row(
                "SELECT sequence, hash, verified_at FROM audit_checkpoint WHERE singleton = 1",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()?;
        Ok(stored.map(|(sequence, hash, verified_at)| AuditCheckpoint {
            sequence: u64::try_from(sequence).unwrap_or(0),
            hash,
            verified_at,
        }))
    }
}
