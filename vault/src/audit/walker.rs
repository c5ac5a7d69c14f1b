//! The whole audit chain walked in the background: a read-only connection of its own, pausing as the integrity check does; a walk that passes moves the last verified point forward.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::{Connection, TransactionBehavior};

use super::checkpoint::{self, Checkpoint};
use super::verify::{AuditFailure, AuditReport, ChainWalk, HeadMacStatus};
use super::{Head, SELECT_ROWS, head_verifies, read_head, row_from_sql, with_sequence};
use crate::{AuditEvent, AuditRow, Vault, VaultError};

/// Why the background walk did not pass.
#[derive(Debug, thiserror::Error)]
pub enum ChainWalkFailure {
    /// The chain does not verify: the row or the head that broke.
    #[error("the audit chain does not verify: {0}")]
    Chain(AuditFailure),
    /// The walk was stopped before it finished (the daemon is stopping).
    #[error("the audit chain walk was stopped before it finished")]
    Stopped,
}

impl ChainWalkFailure {
    /// Whether the chain was found broken (a stop says nothing about it).
    pub fn is_broken(&self) -> bool {
        matches!(self, ChainWalkFailure::Chain(_))
    }
}

/// A whole walk that found every row's hash and link right, read from one snapshot; the head's
/// and the checkpoint's MACs are checked when it is recorded ([`Vault::record_audit_walk`]).
#[derive(Debug)]
pub struct WalkedChain {
    report: AuditReport,
    head: Head,
    checkpoint: Option<Checkpoint>,
}

impl WalkedChain {
    /// Rows walked (the chain's last sequence).
    pub fn rows(&self) -> u64 {
        self.report.rows
    }
}

/// Walks the whole chain of one vault file on a read-only connection of its own.
#[derive(Debug, Clone)]
pub struct AuditChainChecker {
    database: PathBuf,
    stop: Arc<AtomicBool>,
}

impl AuditChainChecker {
    /// A walker of the database file `database`, stopped when `stop` is set.
    pub(crate) fn new(database: &Path, stop: Arc<AtomicBool>) -> AuditChainChecker {
        AuditChainChecker {
            database: database.to_path_buf(),
            stop,
        }
    }

    /// Asks a running walk to stop (it returns [`ChainWalkFailure::Stopped`]).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// Walks every row in one read transaction, pausing as the integrity check does; never
    /// takes the write lock. Blocks until done: run it on its own thread.
    pub fn run(&self) -> Result<WalkedChain, ChainWalkFailure> {
        let chain = |failure| ChainWalkFailure::Chain(failure);
        let mut connection = crate::zeroized::read_only_connection(&self.database)
            .map_err(|error| chain(AuditFailure::Vault(error)))?;
        crate::integrity::pace(&mut connection, Arc::clone(&self.stop))
            .map_err(|error| chain(error.into()))?;
        let outcome = walk(&connection);
        if self.stop.load(Ordering::Acquire) {
            return Err(ChainWalkFailure::Stopped);
        }
        outcome.map_err(chain)
    }
}

/// The whole walk without the storage key: hashes, links, the head's end, and that the walk
/// passes through the checkpoint's row unchanged.
fn walk(connection: &Connection) -> Result<WalkedChain, AuditFailure> {
    let transaction = connection.unchecked_transaction()?;
    let checkpoint = checkpoint::read(&transaction)?;
    let mut walk = ChainWalk::new();
    if let Some(checkpoint) = &checkpoint {
        walk = walk.confirming(checkpoint.sequence, checkpoint.hash.clone());
    }
    let mut statement = transaction.prepare(SELECT_ROWS)?;
    for row in statement.query_map([], row_from_sql)? {
        walk.push(with_sequence(row?)?)?;
    }
    let head = read_head(&transaction)?.ok_or(AuditFailure::HeadMissing)?;
    let report = walk.finish(Some(&head), None)?;
    Ok(WalkedChain {
        report,
        head,
        checkpoint,
    })
}

impl Vault {
    /// A walker of this vault's whole audit chain, to run on a thread of its own; `stop` stops
    /// it (keymotherd shares the integrity check's).
    pub fn audit_chain_checker(&self, stop: Arc<AtomicBool>) -> AuditChainChecker {
        AuditChainChecker::new(&self.data_dir.join(crate::DATABASE_FILE), stop)
    }

    /// Finishes a background walk: checks the walked head's MAC and the checkpoint's under the
    /// storage key, then moves the last verified point to the walk's last row (one small write
    /// transaction). A zeroized vault (no storage key) records nothing.
    pub fn record_audit_walk(&mut self, walked: &WalkedChain) -> Result<AuditReport, AuditFailure> {
        let Some(storage_key) = self.storage_key.as_ref() else {
            return Ok(walked.report.clone());
        };
        let key = storage_key.audit_head();
        if !head_verifies(key, &walked.head) {
            return Err(AuditFailure::HeadForged {
                last_sequence: walked.head.last_sequence,
            });
        }
        if let Some(checkpoint) = &walked.checkpoint {
            checkpoint.verify(key)?;
        }
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        checkpoint::advance(
            &transaction,
            key,
            walked.report.rows,
            &walked.report.head_hash,
        )?;
        transaction.commit()?;
        Ok(AuditReport {
            head_mac: HeadMacStatus::Verified,
            ..walked.report.clone()
        })
    }

    /// Records a failed audit chain walk in the audit trail (the `audit-chain-failed` row),
    /// when the chain's head still lets a row be written.
    pub fn record_audit_chain_failure(&mut self, failure: &str) -> Result<AuditRow, VaultError> {
        self.record_audit(AuditEvent::AuditChainFailed {
            failure: failure.to_owned(),
        })
    }
}
