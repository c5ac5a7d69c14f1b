//! The whole-database check (SQLite's `integrity_check`) paid after start: its own read-only connection, yielding the processor as it goes, never holding the write lock.
//!
//! keymotherd opens the vault with the cheap checks that guard a dispense (schema version,
//! device identity; the daemon adds the audit chain and the sealed secrets) and becomes READY;
//! an [`IntegrityChecker`] then reads every page of the database in the background. A vault
//! whose last integrity row is a failure gets the full check again before it is opened at all
//! (see [`Vault::open_as_owner_deferring_integrity`]). See docs/SECURITY.md, "Start-up checks".

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension};

use crate::audit::AuditEvent;
use crate::{Vault, VaultError};

/// SQLite virtual-machine steps between two looks at the clock and the stop flag.
const PROGRESS_OPS: i32 = 10_000;
/// The check works this long before it pauses...
const WORK_SLICE: Duration = Duration::from_millis(20);
/// ...for this long, leaving the processor to the ports and the control socket.
const PAUSE: Duration = Duration::from_millis(5);

/// A background reader's page cache: negative is KiB in SQLite's `cache_size`.
pub(crate) const BACKGROUND_CACHE_KIB: i64 = -128;

/// At most this many of SQLite's findings are kept (the first ones say where).
const MAX_FINDINGS: usize = 5;

/// A passed whole-database check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntegrityReport {
    /// The database's size in pages, all of them read.
    pub pages: u64,
}

/// Why the whole-database check did not pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntegrityFailure {
    /// SQLite found damage: its findings (pages, tables and indexes, never a row's content).
    #[error("the vault database is damaged: {findings}")]
    Damaged { findings: String },
    /// The check was stopped before it finished (the daemon is stopping).
    #[error("the integrity check was stopped before it finished")]
    Stopped,
}

impl IntegrityFailure {
    /// Whether the database was found damaged (a stop says nothing about it).
    pub fn is_damage(&self) -> bool {
        matches!(self, IntegrityFailure::Damaged { .. })
    }
}

/// Runs the whole-database check of one vault file on its own read-only connection.
#[derive(Debug, Clone)]
pub struct IntegrityChecker {
    database: PathBuf,
    stop: Arc<AtomicBool>,
}

impl IntegrityChecker {
    /// A checker of the database file `database`.
    pub fn new(database: &Path) -> IntegrityChecker {
        IntegrityChecker {
            database: database.to_path_buf(),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Asks a running check to stop (it returns [`IntegrityFailure::Stopped`]).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// The flag [`IntegrityChecker::stop`] sets, to stop a walk of the audit chain with it.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop)
    }

    /// Reads every page (`PRAGMA integrity_check`) in one read transaction of its own,
    /// pausing [`PAUSE`] after every [`WORK_SLICE`] of work. Blocks until done: run it on
    /// its own thread. In WAL mode a reader never blocks the writer, nor the writer it.
    pub fn run(&self) -> Result<IntegrityReport, IntegrityFailure> {
        let mut connection = crate::zeroized::read_only_connection(&self.database)
            .map_err(|error| damaged_or(error.to_string()))?;
        pace(&mut connection, Arc::clone(&self.stop))
            .map_err(|error| damaged_or(error.to_string()))?;
        let outcome = integrity_findings(&connection);
        if self.stop.load(Ordering::Acquire) {
            return Err(IntegrityFailure::Stopped);
        }
        let (pages, findings) = outcome.map_err(|error| damaged_or(error.to_string()))?;
        if findings.len() == 1 && findings[0] == "ok" {
            Ok(IntegrityReport { pages })
        } else {
            Err(IntegrityFailure::Damaged {
                findings: findings
                    .into_iter()
                    .take(MAX_FINDINGS)
                    .collect::<Vec<_>>()
                    .join("; "),
            })
        }
    }
}

/// Makes `connection` pause [`PAUSE`] after every [`WORK_SLICE`] of work, and interrupt its
/// statement once `stop` is set (SQLite's progress handler). A background reader reads each
/// page once, so its page cache is kept small: a cache buys it nothing, and under mlockall
/// the memory it once held stays resident (2 MiB by default, 128 KiB here).
pub(crate) fn pace(connection: &mut Connection, stop: Arc<AtomicBool>) -> rusqlite::Result<()> {
    connection.pragma_update(None, "cache_size", BACKGROUND_CACHE_KIB)?;
    let mut worked_since = Instant::now();
    connection.progress_handler(
        PROGRESS_OPS,
        Some(move || {
            if stop.load(Ordering::Acquire) {
                return true;
            }
            if worked_since.elapsed() >= WORK_SLICE {
                std::thread::sleep(PAUSE);
                worked_since = Instant::now();
            }
            false
        }),
    )
}

/// An error while reading the database during the check: the check did not pass, and SQLite
/// says why (a malformed page is reported as an error rather than as a finding).
fn damaged_or(words: String) -> IntegrityFailure {
    IntegrityFailure::Damaged { findings: words }
}

/// The page count and SQLite's findings, read in one transaction.
fn integrity_findings(connection: &Connection) -> Result<(u64, Vec<String>), rusqlite::Error> {
    let transaction = connection.unchecked_transaction()?;
    let pages: i64 = transaction.query_row("PRAGMA page_count", [], |row| row.get(0))?;
    let pages = u64::try_from(pages).unwrap_or(0);
    let mut statement = transaction.prepare("PRAGMA integrity_check")?;
    let findings = statement
        .query_map([], |row| row.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok((pages, findings))
}

/// Whether the vault's last integrity row (if any) is a failure.
pub(crate) fn last_check_failed(connection: &Connection) -> Result<bool, VaultError> {
    let last: Option<String> = connection
        .query_row(
            "SELECT event FROM audit_log WHERE event IN (?1, ?2) ORDER BY sequence DESC LIMIT 1",
            [
                AuditEvent::INTEGRITY_FAILED_NAME,
                AuditEvent::INTEGRITY_VERIFIED_NAME,
            ],
            |row| row.get(0),
        )
        .optional()?;
    Ok(last.as_deref() == Some(AuditEvent::INTEGRITY_FAILED_NAME))
}

/// Records an `integrity-verified` row: the full check passed after a recorded failure.
pub(crate) fn record_verified(
    connection: &mut Connection,
    storage_key: &crate::storage_key::StorageKey,
) -> Result<(), VaultError> {
    let pages: i64 = connection.query_row("PRAGMA page_count", [], |row| row.get(0))?;
    let pages = u64::try_from(pages).unwrap_or(0);
    let transaction = connection.transaction()?;
    crate::audit::append(
        &transaction,
        storage_key.audit_head(),
        &AuditEvent::IntegrityVerified { pages },
    )?;
    transaction.commit()?;
    Ok(())
}

impl Vault {
    /// A checker for this vault's database, to run on a thread of its own.
    pub fn integrity_checker(&self) -> IntegrityChecker {
        IntegrityChecker::new(&self.data_dir.join(crate::DATABASE_FILE))
    }

    /// Records a failed whole-database check in the audit trail (the `integrity-failed` row).
    pub fn record_integrity_failure(
        &mut self,
        findings: &str,
    ) -> Result<crate::AuditRow, VaultError> {
        self.record_audit(AuditEvent::IntegrityFailed {
            findings: findings.to_owned(),
        })
    }
}
