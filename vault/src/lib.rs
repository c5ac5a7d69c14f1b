//! The vault: one SQLite database holding the device identity, sealed secrets, key batches and the master-key inventory.
//!
//! Only the daemon's user may read the data directory. Secrets at rest are TR-31 key blocks
//! under the device storage key (see docs/SECURITY.md for what that does and does not
//! protect against on a Raspberry Pi). Master keys stay in the inventory exactly as they
//! arrived: key blocks under the KEK.

mod audit;
mod ceremony;
pub mod clock;
mod dispense;
mod dukpt;
mod error;
mod expected;
mod export_file;
mod import;
mod integrity;
mod inventory;
mod kdh;
mod mac;
mod operator;
mod pending;
mod recommission;
mod reinjection;
mod report;
mod schema;
mod secrets;
mod smn_export;
mod staging;
mod status_reader;
mod storage_key;
mod tamper;
mod withdrawal;
mod zeroized;

use std::path::{Path, PathBuf};

use keymother_keyfiles::DeviceId;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

pub use audit::{
    AUDIT_EXPORT_COLUMNS, AUDIT_EXPORT_MAGIC, AuditEvent, AuditExportError, AuditExportReport,
    AuditFailure, AuditReport, AuditRow, GENESIS_HASH, HeadMacStatus, verify_audit_export,
};
pub use audit::{AuditChainChecker, AuditCheckpoint, ChainWalkFailure, WalkedChain};
pub use audit::{InjectionFailureCause, UnknownFailureCause};
pub use ceremony::{
    CeremonyRecord, CheckedCeremony, ComponentEntry, Custodian, CustodianName, FailedCeremony,
    MAX_CUSTODIAN_NAME, MAX_CUSTODIANS, MIN_CUSTODIANS, check_ceremony,
};
pub use dispense::{ConfirmationReport, ConfirmedInjection, DispenseError, Reservation, SmnRow};
pub use dukpt::{
    BdkImportError, BdkSource, BdkStatus, ConfirmedDukpt, DUKPT_EXPORT_COLUMNS, DUKPT_EXPORT_MAGIC,
    DerivedKeyFacts, DukptAllocation, DukptConfirmation, DukptError, DukptExportDraft,
    DukptReservation, DukptRow, ExportedDukpt, NewBdk, ReserveDukptError, VerifiedDukptExport,
    VoidedDukpt, verify_dukpt_export,
};
pub use error::VaultError;
pub use expected::{
    Counts, EXPECTED_COLUMNS_SERIAL, EXPECTED_COLUMNS_SERIAL_MODEL, EXPECTED_LIST_MAGIC,
    ExpectedDevice, ExpectedError, ExpectedList, InjectedDevice, InjectedKey, KeyRef, ListFile,
    ListFileError, ListName, ListReconciliation, MAX_EXPECTED_DEVICES, MAX_LIST_NAME,
    PendingDevice, PendingKey, RECONCILE_EXPORT_COLUMNS, RECONCILE_EXPORT_MAGIC,
    ReconcileExportDraft, ReconcileRow, Reconciliation, RefusedDevice, RowStatus,
    VerifiedReconcileExport, list_rows, read_list_file, seal_expected_list,
    verify_reconcile_export,
};
pub use export_file::{ExportError, ExportFileError, WriteStage};
pub use import::{HeldTurn, ImportError, ImportProgress, ImportReport, Importer, WriteTurn};
pub use integrity::{IntegrityChecker, IntegrityFailure, IntegrityReport};
pub use inventory::{BatchSummary, InventorySummary, KeyState};
pub use kdh::{KDH_KEY_BITS, KdhIdentity, KdhStatus};
pub use operator::{VoidError, VoidedKey, ZeroizeReport};
pub use pending::{PendingInjection, PendingSlot, VoidSerialError};
pub use reinjection::{Admission, GrantState, KeySlot, ReinjectionError, ReinjectionGrant};
pub use report::{
    INJECTION_FAILED_EVENT, Report, ReportCounts, ReportGroup, ReportPeriod, ReportRow,
};
pub use secrets::{InstalledSecret, SecretName};
pub use smn_export::{
    ExportReport, ExportedSmn, SMN_EXPORT_COLUMNS, SMN_EXPORT_MAGIC, SmnExportDraft,
    VerifiedExport, verify_smn_export,
};
pub use status_reader::{StatusReader, VaultCounts};

pub use recommission::{Predecessor, Recommissioned};
pub use tamper::{TamperOutstanding, TamperReport};
pub use withdrawal::{WithdrawError, WithdrawnBatch};
pub use zeroized::{Registry, ZeroizeRecord};

use storage_key::StorageKey;

/// The database file inside the data directory.
pub const DATABASE_FILE: &str = "vault.sqlite";

/// An open vault. The daemon is its only user; every method runs in its own transaction.
pub struct Vault {
    connection: Connection,
    data_dir: PathBuf,
    /// `None` once the vault is zeroized, or when it was opened for audit without the key.
    storage_key: Option<StorageKey>,
    device_id: DeviceId,
    /// The vault was zeroized: it delivers its final exports and its audit trail, nothing else.
    zeroized: bool,
    /// Held by the one process that owns the vault (see [`Vault::open_as_owner`]).
    owner_lock: Option<nix::fcntl::Flock<std::fs::File>>,
}

/// The storage key, or the error saying it is gone.
pub(crate) fn live_key<'k>(
    storage_key: &'k Option<StorageKey>,
    data_dir: &Path,
) -> Result<&'k StorageKey, VaultError> {
    storage_key
        .as_ref()
        .ok_or_else(|| VaultError::Zeroized(data_dir.to_path_buf()))
}

/// The lock file that marks the vault's owner.
const OWNER_LOCK_FILE: &str = "owner.lock";

/// Opens (creating it, mode 0600) the lock file `name` of `data_dir`, to be locked with flock.
pub(crate) fn open_lock_file(data_dir: &Path, name: &str) -> Result<std::fs::File, VaultError> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = data_dir.join(name);
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|error| VaultError::Io { path, error })
}

/// Takes the owner lock of `data_dir` (see [`Vault::open_as_owner`]); held until dropped.
pub(crate) fn lock_owner(data_dir: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, VaultError> {
    let file = open_lock_file(data_dir, OWNER_LOCK_FILE)?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(
        |(_, errno)| {
            if errno == nix::errno::Errno::EWOULDBLOCK {
                VaultError::Refused(format!(
                    "the vault in {} is in use by another process (keymotherd is running: use the keymother commands that talk to it)",
                    data_dir.display()
                ))
            } else {
                VaultError::Io {
                    path: data_dir.join(OWNER_LOCK_FILE),
                    error: std::io::Error::from(errno),
                }
            }
        },
    )
}

impl Vault {
    /// Opens the vault as its one owner: keymotherd, or an offline maintenance command while
    /// keymotherd is stopped. A second owner is refused, so the daemon really is the only
    /// process that changes the vault and holds its secrets while it runs.
    pub fn open_as_owner(data_dir: &Path) -> Result<Vault, VaultError> {
        let lock = lock_owner(data_dir)?;
        let mut vault = Vault::open(data_dir)?;
        vault.owner_lock = Some(lock);
        Ok(vault)
    }

    /// [`Vault::open_as_owner`] without the whole-database check, for keymotherd: it checks
    /// what guards a dispense before READY and runs the whole-database check in the
    /// background after ([`Vault::integrity_checker`]). A vault whose last integrity row is a
    /// failure (`integrity-failed`) still gets the full check here, before anything else:
    /// refused if still damaged, else an `integrity-verified` row is recorded.
    pub fn open_as_owner_deferring_integrity(data_dir: &Path) -> Result<Vault, VaultError> {
        let lock = lock_owner(data_dir)?;
        let mut vault = Vault::open_with(data_dir, false)?;
        vault.owner_lock = Some(lock);
        Ok(vault)
    }

    /// Creates a new vault in `data_dir` (made with mode 0700 if missing; it must not already
    /// hold a vault) bound to `device_id`, with a fresh storage key.
    pub fn create(data_dir: &Path, device_id: &DeviceId) -> Result<Vault, VaultError> {
        let first = AuditEvent::ConfigChange {
            what: format!("vault created for device {device_id}"),
            operator: None,
        };
        Vault::create_with(data_dir, device_id, &first, |_, _| Ok(()))
    }

    /// [`Vault::create`] with `first` as the chain's first row; `record` adds to the same
    /// transaction, given the row's sequence number.
    pub(crate) fn create_with(
        data_dir: &Path,
        device_id: &DeviceId,
        first: &AuditEvent,
        record: impl FnOnce(&rusqlite::Transaction<'_>, u64) -> Result<(), VaultError>,
    ) -> Result<Vault, VaultError> {
        storage_key::prepare_directory(data_dir)?;
        let database = data_dir.join(DATABASE_FILE);
        if database.exists() || storage_key::path(data_dir).exists() {
            return Err(VaultError::AlreadyExists(data_dir.to_path_buf()));
        }
        let storage_key = StorageKey::create(data_dir)?;
        let mut connection = open_connection(&database, true)?;
        schema::migrate(&mut connection, Some(&storage_key))?;
        let transaction = connection.transaction()?;
        transaction.execute(
            "INSERT INTO device_identity (singleton, device_id, created_at) VALUES (1, ?1, ?2)",
            (device_id.as_str(), now_text()),
        )?;
        let row = audit::append(&transaction, storage_key.audit_head(), first)?;
        record(&transaction, row.sequence)?;
        transaction.commit()?;
        Ok(Vault {
            connection,
            data_dir: data_dir.to_path_buf(),
            storage_key: Some(storage_key),
            device_id: device_id.clone(),
            zeroized: false,
            owner_lock: None,
        })
    }

    /// Opens an existing vault: checks directory permissions, the storage key, the
    /// database's integrity and schema version, and applies pending migrations.
    pub fn open(data_dir: &Path) -> Result<Vault, VaultError> {
        Vault::open_with(data_dir, true)
    }

    /// [`Vault::open`]; with `full_check` false the whole-database check is left to the caller
    /// unless the last one recorded failed.
    fn open_with(data_dir: &Path, full_check: bool) -> Result<Vault, VaultError> {
        storage_key::check_directory(data_dir)?;
        let database = data_dir.join(DATABASE_FILE);
        if !database.exists() {
            return Err(VaultError::NotFound(data_dir.to_path_buf()));
        }
        // Also when the storage key file is still there: a zeroize a crash interrupted, which
        // `Vault::open_zeroized_as_owner` finishes.
        if was_zeroized(&database) {
            return Err(VaultError::Zeroized(data_dir.to_path_buf()));
        }
        let storage_key = StorageKey::load(data_dir)?;
        let mut connection = open_connection(&database, false)?;
        // Deferred only when the audit trail says the last check did not fail.
        let (check_now, recheck) = match (full_check, integrity::last_check_failed(&connection)) {
            (true, _) => (true, false),
            (false, Ok(failed)) => (failed, failed),
            // A trail that cannot be read (a vault from before it) pays the full check now.
            (false, Err(_)) => (true, false),
        };
        if check_now {
            check_integrity(&connection)?;
        }
        schema::migrate(&mut connection, Some(&storage_key))?;
        let device_id = read_device_id(&connection)?;
        if recheck {
            // Best effort: a chain that refuses the row (a head that fails) is the daemon's
            // to report; this vault then pays the full check again at its next open.
            let _ = integrity::record_verified(&mut connection, &storage_key);
        }
        // An import a crash interrupted: its staged keys were never dispensable; they go now.
        staging::remove_interrupted(&mut connection, data_dir, storage_key.audit_head())?;
        Ok(Vault {
            connection,
            data_dir: data_dir.to_path_buf(),
            storage_key: Some(storage_key),
            device_id,
            zeroized: false,
            owner_lock: None,
        })
    }

    /// Opens a vault read-only for the security officer: the audit trail and the SMN
    /// registry can be read, verified and exported (SMN export needs the KEK, so not after a
    /// zeroize). Works after a zeroize; the storage key, when present, is loaded so the audit
    /// head's MAC is checked. Nothing can be changed through this handle.
    pub fn open_for_audit(data_dir: &Path) -> Result<Vault, VaultError> {
        storage_key::check_directory(data_dir)?;
        let database = data_dir.join(DATABASE_FILE);
        if !database.exists() {
            return Err(VaultError::NotFound(data_dir.to_path_buf()));
        }
        let storage_key = zeroized::storage_key_if_present(data_dir)?;
        Vault::open_read_only(data_dir, &database, storage_key)
    }

    /// Opens `database` read-only with `storage_key` (when there is one, the audit head's MAC
    /// is checked). The schema must be at this build's version, or, for a vault without its
    /// storage key (zeroized, archived), at least the audit chain's.
    pub(crate) fn open_read_only(
        data_dir: &Path,
        database: &Path,
        storage_key: Option<StorageKey>,
    ) -> Result<Vault, VaultError> {
        let connection = zeroized::read_only_connection(database)?;
        check_integrity(&connection)?;
        let version = schema::version(&connection)?;
        if version > schema::LATEST_VERSION {
            return Err(VaultError::SchemaTooNew {
                found: version,
                supported: schema::LATEST_VERSION,
            });
        }
        let readable = if storage_key.is_some() {
            schema::LATEST_VERSION
        } else {
            schema::AUDIT_VERSION
        };
        if version < readable {
            return Err(VaultError::Refused(format!(
                "the vault's schema version is {version}; open it once with Vault::open to upgrade it (version {}) before auditing",
                schema::LATEST_VERSION
            )));
        }
        let device_id = read_device_id(&connection)?;
        let zeroized = storage_key.is_none()
            && audit::last_event(&connection).as_deref() == Some(AuditEvent::ZEROIZE_NAME);
        Ok(Vault {
            connection,
            data_dir: data_dir.to_path_buf(),
            storage_key,
            device_id,
            zeroized,
            owner_lock: None,
        })
    }

    /// The appliance's device id, to which key files are bound.
    pub fn device_id(&self) -> &DeviceId {
        &self.device_id
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

fn read_device_id(connection: &Connection) -> Result<DeviceId, VaultError> {
    let device_id: Option<String> = connection
        .query_row(
            "SELECT device_id FROM device_identity WHERE singleton = 1",
            [],
            |row| row.get(0),
        )
        .optional()?;
    device_id
        .ok_or(VaultError::Corrupt(
            "the device identity row is missing".to_owned(),
        ))?
        .parse()
        .map_err(|reason| VaultError::Corrupt(format!("stored device id: {reason}")))
}

/// True when the database's last audit row is a zeroize (its storage key was destroyed).
pub(crate) fn was_zeroized(database: &Path) -> bool {
    Connection::open_with_flags(database, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .ok()
        .and_then(|connection| audit::last_event(&connection))
        .is_some_and(|event| event == AuditEvent::ZEROIZE_NAME)
}

pub(crate) fn open_connection(database: &Path, create: bool) -> Result<Connection, VaultError> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let mut connection = Connection::open_with_flags(database, flags)?;
    // WAL for crash safety with one writer; FULL so a commit is on disk when it returns.
    let mode: String = connection.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(VaultError::Corrupt(format!(
            "could not switch the database to WAL (journal mode is {mode})"
        )));
    }
    connection.execute_batch(
        "PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA secure_delete = ON;",
    )?;
    connection.busy_handler(Some(wait_for_the_lock))?;
    Ok(connection)
}

/// Tries for the write lock another connection holds every 0.5 ms, for 5 s at most.
/// SQLite's own wait (`busy_timeout`) sleeps 1, 2, 5, 10... up to 100 ms between tries: a
/// reservation waiting behind an import's chunk would often sleep past the gap between two
/// chunks. Polling this often finds the gap (an import releases the lock between chunks).
fn wait_for_the_lock(attempts: i32) -> bool {
    use std::time::{Duration, Instant};
    const POLL: Duration = Duration::from_micros(500);
    const MOST: Duration = Duration::from_secs(5);
    thread_local! {
        /// When this thread's current wait began (SQLite calls the handler on the waiting
        /// thread, with `attempts` 0 first).
        static WAITING_SINCE: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
    }
    let now = Instant::now();
    let since = WAITING_SINCE.with(|since| {
        if attempts == 0 || since.get().is_none() {
            since.set(Some(now));
        }
        since.get().unwrap_or(now)
    });
    // 5 s of wall-clock time, however long each sleep took on a loaded machine.
    if now.duration_since(since) >= MOST {
        return false;
    }
    std::thread::sleep(POLL);
    true
}

pub(crate) fn check_integrity(connection: &Connection) -> Result<(), VaultError> {
    // A page SQLite cannot read at all stops the check with an error rather than a finding.
    let unreadable =
        |error: rusqlite::Error| VaultError::Corrupt(format!("integrity check failed: {error}"));
    let mut statement = connection
        .prepare("PRAGMA integrity_check")
        .map_err(unreadable)?;
    let findings: Vec<String> = statement
        .query_map([], |row| row.get(0))
        .map_err(unreadable)?
        .collect::<Result<_, _>>()
        .map_err(unreadable)?;
    if findings.len() == 1 && findings[0] == "ok" {
        Ok(())
    } else {
        Err(VaultError::Corrupt(format!(
            "integrity check failed: {}",
            findings.into_iter().take(5).collect::<Vec<_>>().join("; ")
        )))
    }
}

/// The current time as stored in the vault (RFC 3339, UTC).
pub(crate) fn now_text() -> String {
    let now = time::OffsetDateTime::from(clock::now());
    now.replace_nanosecond(0)
        .unwrap_or(now)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| String::from("1970-01-01T00:00:00Z"))
}
