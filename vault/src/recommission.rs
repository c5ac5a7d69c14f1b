//! Recommissioning a zeroized appliance: the zeroized vault is archived read-only beside a fresh one, whose audit chain starts with a row naming the archive and the head of its chain.
//!
//! Offline, under the owner lock (keymotherd stopped): the old chain is verified first, the
//! database is turned into a single self-contained file (rollback journal, no write-ahead
//! log) and renamed `vault-zeroized-YYYY-MM-DD.sqlite` (`-2`, `-3`... when taken), mode 0400.
//! Then a fresh vault with a new storage key is created in the same directory; its first
//! audit row (`recommission`) and its `predecessor` row name the archive, its SHA-256, and the
//! last sequence and hash of its chain, so the chains link: a later edit of the archive, or a
//! cut and re-hashed end of its chain, no longer matches what the new, MACed chain recorded.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use keymother_keyfiles::DeviceId;
use rusqlite::{OptionalExtension, params};
use sha2::{Digest, Sha256};

use crate::audit::AuditEvent;
use crate::{DATABASE_FILE, Vault, VaultError, now_text};

/// The name archives start with.
const ARCHIVE_PREFIX: &str = "vault-zeroized-";

/// What a recommission did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recommissioned {
    /// The archived vault file.
    pub archive: PathBuf,
    /// The archive's predecessor record, as the new vault holds it.
    pub predecessor: Predecessor,
    /// The new vault's device id.
    pub device_id: DeviceId,
}

/// The zeroized vault a vault succeeds, as its `predecessor` row records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Predecessor {
    /// The archive's file name, in the data directory.
    pub archive: String,
    pub archive_sha256: String,
    pub device_id: String,
    /// The last row of the archived chain, and its hash.
    pub last_sequence: u64,
    pub last_hash: String,
    /// The `recommission` row in the new chain.
    pub audit_sequence: u64,
    pub recommissioned_at: String,
}

impl Vault {
    /// Archives the zeroized vault in `data_dir` and creates a fresh one there (see the
    /// module). Refused unless the vault is zeroized and its audit chain verifies; `device_id`
    /// defaults to the old vault's. Returns the new vault, its owner lock held.
    pub fn recommission(
        data_dir: &Path,
        device_id: Option<&DeviceId>,
        reason: &str,
        operator: &str,
    ) -> Result<(Vault, Recommissioned), VaultError> {
        if reason.trim().is_empty() || operator.trim().is_empty() {
            return Err(VaultError::Refused(
                "recommissioning needs a reason and the officer's name".to_owned(),
            ));
        }
        let mut old = Vault::open_zeroized_as_owner(data_dir).map_err(|error| match error {
            VaultError::Refused(words) if words.ends_with("is not zeroized") => {
                VaultError::Refused(format!(
                    "{words}: only a zeroized vault is recommissioned (keymother zeroize first)"
                ))
            }
            other => other,
        })?;
        let head = old.verify_audit().map_err(|failure| {
            VaultError::AuditTampered(format!(
                "the zeroized vault's chain does not verify, so it is not archived: {failure}"
            ))
        })?;
        let previous_device_id = old.device_id.clone();
        let lock = old.owner_lock.take();
        drop(old);
        let archive = archive_database(data_dir)?;
        let archive_sha256 = file_sha256(&archive)?;
        let archive_name = archive
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let device_id = device_id.unwrap_or(&previous_device_id).clone();
        let event = AuditEvent::Recommission {
            archive: archive_name.clone(),
            archive_sha256: archive_sha256.clone(),
            previous_device_id: previous_device_id.to_string(),
            last_sequence: head.rows,
            last_hash: head.head_hash.clone(),
            reason: reason.to_owned(),
            operator: operator.to_owned(),
        };
        let at = now_text();
        let mut vault =
            Vault::create_with(data_dir, &device_id, &event, |transaction, sequence| {
                transaction.execute(
                    "INSERT INTO predecessor (archive, archive_sha256, device_id, last_sequence,
                                          last_hash, audit_sequence, recommissioned_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        archive_name,
                        archive_sha256,
                        previous_device_id.as_str(),
                        head.rows as i64,
                        head.head_hash,
                        sequence as i64,
                        at
                    ],
                )?;
                Ok(())
            })?;
        vault.owner_lock = lock;
        let predecessor = vault.predecessor()?.ok_or_else(|| {
            VaultError::Corrupt("the predecessor row just written is missing".to_owned())
        })?;
        Ok((
            vault,
            Recommissioned {
                archive,
                predecessor,
                device_id,
            },
        ))
    }

    /// The zeroized vault this one succeeds, if it was recommissioned.
    pub fn predecessor(&self) -> Result<Option<Predecessor>, VaultError> {
        let row = self
            .connection
            .query_row(
                "SELECT archive, archive_sha256, device_id, last_sequence, last_hash,
                        audit_sequence, recommissioned_at
                   FROM predecessor ORDER BY audit_sequence DESC LIMIT 1",
                [],
                |row| {
                    Ok(Predecessor {
                        archive: row.get(0)?,
                        archive_sha256: row.get(1)?,
                        device_id: row.get(2)?,
                        last_sequence: row.get::<_, i64>(3)?.max(0) as u64,
                        last_hash: row.get(4)?,
                        audit_sequence: row.get::<_, i64>(5)?.max(0) as u64,
                        recommissioned_at: row.get(6)?,
                    })
                },
            )
            .optional()?;
        Ok(row)
    }

    /// Checks that the archive at `archive` is the one this vault's predecessor row names,
    /// unchanged: the same file (SHA-256) and a chain ending at the recorded row and hash.
    /// `Ok(false)` when this vault does not name that file.
    pub fn check_archive_link(&self, archive: &Path) -> Result<bool, VaultError> {
        let Some(predecessor) = self.predecessor()? else {
            return Ok(false);
        };
        let name = archive
            .file_name()
            .map(|name| name.to_string_lossy().into_owned());
        if name.as_deref() != Some(predecessor.archive.as_str()) {
            return Ok(false);
        }
        let sha256 = file_sha256(archive)?;
        if sha256 != predecessor.archive_sha256 {
            return Err(VaultError::AuditTampered(format!(
                "{} changed since it was archived: its SHA-256 is {sha256}, the successor's row {} recorded {}",
                archive.display(),
                predecessor.audit_sequence,
                predecessor.archive_sha256
            )));
        }
        let report = Vault::open_archive(archive)?
            .verify_audit()
            .map_err(|failure| VaultError::AuditTampered(failure.to_string()))?;
        if report.rows != predecessor.last_sequence || report.head_hash != predecessor.last_hash {
            return Err(VaultError::AuditTampered(format!(
                "{}'s chain ends at row {} ({}), not at the row {} ({}) its successor recorded",
                archive.display(),
                report.rows,
                report.head_hash,
                predecessor.last_sequence,
                predecessor.last_hash
            )));
        }
        Ok(true)
    }
}

/// Turns the database into one self-contained file and renames it to a free archive name
/// with today's date, read-only; returns its path.
fn archive_database(data_dir: &Path) -> Result<PathBuf, VaultError> {
    let database = data_dir.join(DATABASE_FILE);
    {
        let connection = crate::open_connection(&database, false)?;
        // Checkpoints the write-ahead log into the file and removes it.
        let mode: String =
            connection.query_row("PRAGMA journal_mode = DELETE", [], |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("delete") {
            return Err(VaultError::Corrupt(format!(
                "could not take the database out of WAL before archiving (journal mode is {mode})"
            )));
        }
    }
    let date = now_text().chars().take(10).collect::<String>();
    let archive = (1..)
        .map(|attempt| {
            let suffix = if attempt == 1 {
                String::new()
            } else {
                format!("-{attempt}")
            };
            data_dir.join(format!("{ARCHIVE_PREFIX}{date}{suffix}.sqlite"))
        })
        .find(|candidate| !candidate.exists())
        .unwrap_or_else(|| unreachable!("an unbounded range always finds a free name"));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |error| VaultError::Io { path, error }
    };
    fs::rename(&database, &archive).map_err(io(&archive))?;
    fs::set_permissions(&archive, fs::Permissions::from_mode(0o400)).map_err(io(&archive))?;
    for leftover in ["-wal", "-shm"] {
        let path = data_dir.join(format!("{DATABASE_FILE}{leftover}"));
        if path.exists() {
            fs::remove_file(&path).map_err(io(&path))?;
        }
    }
    fs::File::open(data_dir)
        .and_then(|directory| directory.sync_all())
        .map_err(io(data_dir))?;
    Ok(archive)
}

/// SHA-256 of a file, lower-case hex.
fn file_sha256(path: &Path) -> Result<String, VaultError> {
    let bytes = fs::read(path).map_err(|error| VaultError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}
