//! The audit chain: hash-chained rows, a head MACed under a key derived from the storage key, verification that names the broken row, and the security officer's export.
//!
//! Row `n` stores `hash = SHA-256(encoding of sequence, at, event, actor, details,
//! previous_hash)` and `previous_hash` = row `n - 1`'s hash (64 zeros for row 1), so an
//! edited, inserted or deleted row breaks the chain where it happened. Deleting the newest
//! rows leaves a shorter chain that is still consistent; the head (last sequence, last hash)
//! therefore carries an HMAC under a key derived from the device storage key, which someone
//! who can write the database but not read the storage key cannot forge. Every row is
//! appended, and the head moved, in the same transaction as the action it records. The
//! encodings and the export file are specified in docs/SMN-EXPORT.md ("The audit export").

mod checkpoint;
mod event;
mod export;
mod failure;
mod site_fields;
mod verify;
mod walker;

use hmac::Mac;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use sha2::{Digest, Sha256};

use crate::mac::{AUDIT_HEAD_LABEL, MacKey, verify_hex};
use crate::{Vault, VaultError, now_text};

pub use checkpoint::AuditCheckpoint;
pub use event::AuditEvent;
pub use export::{
    AUDIT_EXPORT_COLUMNS, AUDIT_EXPORT_MAGIC, AuditExportError, AuditExportReport,
    verify_audit_export,
};
pub use failure::{InjectionFailureCause, UnknownFailureCause};
pub use verify::{AuditFailure, AuditReport, HeadMacStatus};
pub use walker::{AuditChainChecker, ChainWalkFailure, WalkedChain};

use event::escape;

/// The `previous_hash` of the first row: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Domain separation for a row's hash.
const ROW_DOMAIN: &[u8] = b"KEYMOTHER-AUDIT-ROW/1\x00";

/// One row of the audit chain, as stored and as exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub sequence: u64,
    /// RFC 3339, UTC, whole seconds.
    pub at: String,
    pub event: String,
    pub actor: String,
    pub details: String,
    pub previous_hash: String,
    pub hash: String,
}

impl AuditRow {
    /// The hash this row's content calls for (lower-case hex), to compare with `hash`.
    pub fn computed_hash(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(ROW_DOMAIN);
        hasher.update(self.sequence.to_be_bytes());
        for field in [
            &self.at,
            &self.event,
            &self.actor,
            &self.details,
            &self.previous_hash,
        ] {
            hasher.update((field.len() as u64).to_be_bytes());
            hasher.update(field.as_bytes());
        }
        hex::encode(hasher.finalize())
    }
}

/// The head as stored.
#[derive(Debug)]
struct Head {
    last_sequence: u64,
    last_hash: String,
    mac: String,
}

fn head_mac(key: &MacKey, last_sequence: u64, last_hash: &str) -> hmac::Hmac<Sha256> {
    let mut mac = key.start();
    mac.update(AUDIT_HEAD_LABEL);
    mac.update(&[0]);
    mac.update(&last_sequence.to_be_bytes());
    mac.update(last_hash.as_bytes());
    mac
}

fn head_mac_hex(key: &MacKey, last_sequence: u64, last_hash: &str) -> String {
    hex::encode(
        head_mac(key, last_sequence, last_hash)
            .finalize()
            .into_bytes(),
    )
}

fn head_verifies(key: &MacKey, head: &Head) -> bool {
    verify_hex(
        head_mac(key, head.last_sequence, &head.last_hash),
        &head.mac,
    )
}

fn read_head(connection: &Connection) -> Result<Option<Head>, VaultError> {
    let head: Option<(i64, String, String)> = connection
        .prepare_cached("SELECT last_sequence, last_hash, mac FROM audit_head WHERE singleton = 1")?
        .query_row([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .optional()?;
    head.map(|(last_sequence, last_hash, mac)| {
        Ok(Head {
            last_sequence: u64::try_from(last_sequence).map_err(|_| {
                VaultError::AuditTampered(format!("the audit head records row {last_sequence}"))
            })?,
            last_hash,
            mac,
        })
    })
    .transpose()
}

/// Starts an empty chain: the head at row 0 with the genesis hash, MACed.
pub(crate) fn start_chain(connection: &Connection, key: &MacKey) -> Result<(), VaultError> {
    connection.execute(
        "INSERT INTO audit_head (singleton, last_sequence, last_hash, mac) VALUES (1, 0, ?1, ?2)",
        params![GENESIS_HASH, head_mac_hex(key, 0, GENESIS_HASH)],
    )?;
    Ok(())
}

/// Appends `event` inside the caller's transaction and moves the head. Refuses to build on
/// a head that does not verify or does not match the last row: that would bless a forgery.
pub(crate) fn append(
    connection: &Connection,
    key: &MacKey,
    event: &AuditEvent,
) -> Result<AuditRow, VaultError> {
    let head = read_head(connection)?
        .ok_or_else(|| VaultError::AuditTampered("the audit head is missing".to_owned()))?;
    if !head_verifies(key, &head) {
        return Err(VaultError::AuditTampered(format!(
            "the audit head (row {}) does not verify under the storage key",
            head.last_sequence
        )));
    }
    if head.last_sequence > 0 {
        let last: Option<String> = connection
            .prepare_cached("SELECT hash FROM audit_log WHERE sequence = ?1")?
            .query_row([head.last_sequence as i64], |row| row.get(0))
            .optional()?;
        if last.as_deref() != Some(head.last_hash.as_str()) {
            return Err(VaultError::AuditTampered(format!(
                "audit row {} is missing or is not the row the head records",
                head.last_sequence
            )));
        }
    }
    let mut row = AuditRow {
        sequence: head.last_sequence + 1,
        at: now_text(),
        event: event.name().to_owned(),
        actor: escape(&event.actor()),
        details: event.details(),
        previous_hash: head.last_hash,
        hash: String::new(),
    };
    row.hash = row.computed_hash();
    connection
        .prepare_cached(
            "INSERT INTO audit_log (sequence, at, event, actor, details, previous_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            row.sequence as i64,
            row.at,
            row.event,
            row.actor,
            row.details,
            row.previous_hash,
            row.hash
        ])?;
    connection
        .prepare_cached(
            "UPDATE audit_head SET last_sequence = ?1, last_hash = ?2, mac = ?3 WHERE singleton = 1",
        )?
        .execute(params![
            row.sequence as i64,
            row.hash,
            head_mac_hex(key, row.sequence, &row.hash)
        ])?;
    Ok(row)
}

const SELECT_ROWS: &str = "SELECT sequence, at, event, actor, details, previous_hash, hash
                             FROM audit_log ORDER BY sequence";

/// The rows after a sequence number (`?1`), in order.
const SELECT_ROWS_AFTER: &str = "SELECT sequence, at, event, actor, details, previous_hash, hash
                             FROM audit_log WHERE sequence > ?1 ORDER BY sequence";

fn row_from_sql(row: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, AuditRow)> {
    Ok((
        row.get(0)?,
        AuditRow {
            sequence: 0,
            at: row.get(1)?,
            event: row.get(2)?,
            actor: row.get(3)?,
            details: row.get(4)?,
            previous_hash: row.get(5)?,
            hash: row.get(6)?,
        },
    ))
}

fn with_sequence((sequence, row): (i64, AuditRow)) -> Result<AuditRow, AuditFailure> {
    let valid = u64::try_from(sequence).map_err(|_| AuditFailure::BadSequence { sequence })?;
    Ok(AuditRow {
        sequence: valid,
        ..row
    })
}

impl Vault {
    /// Appends `event` to the audit chain in its own transaction. Vault operations that are
    /// security events (ceremony, import, injection, export, void, zeroize) record themselves
    /// inside their own transactions; this is for events that happen outside the vault
    /// (login, logout, tamper, configuration changes).
    pub fn record_audit(&mut self, event: AuditEvent) -> Result<AuditRow, VaultError> {
        let key = crate::live_key(&self.storage_key, &self.data_dir)?;
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let row = append(&transaction, key.audit_head(), &event)?;
        transaction.commit()?;
        Ok(row)
    }

    /// The details of the most recent row of `event` (e.g. "config-change"), if any.
    pub fn last_audit_details(&self, event: &str) -> Result<Option<String>, VaultError> {
        Ok(self
            .connection
            .query_row(
                "SELECT details FROM audit_log WHERE event = ?1 ORDER BY sequence DESC LIMIT 1",
                [event],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// When the last audit row was written: the time the appliance's clock must never be set
    /// before without saying so.
    pub fn last_audit_at(&self) -> Result<Option<std::time::SystemTime>, VaultError> {
        let at: Option<String> = self
            .connection
            .query_row(
                "SELECT at FROM audit_log ORDER BY sequence DESC LIMIT 1",
                [],
                |row| row.get(0),
            )
            .optional()?;
        Ok(at.and_then(|at| {
            time::OffsetDateTime::parse(&at, &time::format_description::well_known::Rfc3339)
                .ok()
                .map(std::time::SystemTime::from)
        }))
    }

    /// Every audit row, oldest first.
    pub fn audit_rows(&self) -> Result<Vec<AuditRow>, VaultError> {
        let mut statement = self.connection.prepare(SELECT_ROWS)?;
        let rows = statement
            .query_map([], row_from_sql)?
            .map(|row| {
                let row = row?;
                with_sequence(row).map_err(|failure| VaultError::AuditTampered(failure.to_string()))
            })
            .collect::<Result<_, VaultError>>()?;
        Ok(rows)
    }
}

/// Reads the last audit event of a database without the storage key (to tell a zeroized
/// vault from a missing key file).
pub(crate) fn last_event(connection: &Connection) -> Option<String> {
    connection
        .query_row(
            "SELECT event FROM audit_log ORDER BY sequence DESC LIMIT 1",
            [],
            |row| row.get(0),
        )
        .ok()
}
