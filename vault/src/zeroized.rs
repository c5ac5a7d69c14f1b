//! The zeroized vault: the final exports a zeroize seals under the KEK before destroying it, and the vault opened in its zeroized state, which still delivers its registries and its audit trail.
//!
//! A zeroize destroys the KEK, so no export can be sealed afterwards. Nothing can be dispensed
//! after it either, so the SMN and DUKPT registries never change again: the zeroize seals
//! their final exports first (all rows, and the rows never exported), keeps the files in the
//! vault (migration `final_export`) and records each with a `final-export` row just before
//! its own. A zeroized vault then opens read-only: it delivers those files unchanged, and its
//! audit trail can be read, verified and exported; nothing is ever written to it again.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, params};

use crate::audit::{self, AuditEvent};
use crate::export_file::ExportError;
use crate::mac::MacKey;
use crate::storage_key::{self, StorageKey};
use crate::{DATABASE_FILE, SecretName, Vault, VaultError, schema};

/// A registry the front end receives as a sealed export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registry {
    /// The SMN registry (master keys): `export-smn`.
    Smn,
    /// The DUKPT registry (initial keys): `export-dukpt`.
    Dukpt,
}

impl Registry {
    /// Both, in the order a zeroize seals them.
    pub const ALL: [Registry; 2] = [Registry::Smn, Registry::Dukpt];

    /// The name stored and audited.
    pub fn as_str(self) -> &'static str {
        match self {
            Registry::Smn => "smn",
            Registry::Dukpt => "dukpt",
        }
    }
}

impl fmt::Display for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A final export kept in a zeroized vault: the file as sealed at the zeroize.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct FinalExport {
    pub(crate) registry: Registry,
    pub(crate) only_new: bool,
    pub(crate) rows: u64,
    pub(crate) exported_at: String,
    pub(crate) file_sha256: String,
    pub(crate) content: Vec<u8>,
    /// Its `final-export` audit row (0 until stored).
    pub(crate) audit_sequence: u64,
}

/// When and by which row a vault was zeroized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZeroizeRecord {
    /// The zeroize row's sequence number: the last row the old head's MAC vouched for.
    pub audit_sequence: u64,
    /// When (RFC 3339, UTC).
    pub at: String,
}

/// The final exports a zeroize could seal, and why any could not be.
pub(crate) struct SealedFinals {
    pub(crate) exports: Vec<FinalExport>,
    /// Why none were sealed (no KEK loaded, a registry row unfit for an export), if so.
    pub(crate) problem: Option<String>,
}

impl Vault {
    /// Seals the final exports of both registries, all rows and only new rows, under the KEK
    /// (the zeroize calls it before it destroys the KEK). Never fails: a zeroize must always
    /// go ahead, so a problem (no KEK loaded: a tamper deleted it) is returned as words and
    /// nothing is sealed.
    pub(crate) fn seal_final_exports(&self) -> SealedFinals {
        let mut exports = Vec::new();
        if let Err(error) = self.load_secret(SecretName::Kek) {
            return SealedFinals {
                exports,
                problem: Some(format!("no final export was sealed: {error}")),
            };
        }
        for registry in Registry::ALL {
            for only_new in [false, true] {
                match self.seal_one(registry, only_new) {
                    Ok(export) => exports.push(export),
                    Err(error) => {
                        return SealedFinals {
                            exports: Vec::new(),
                            problem: Some(format!(
                                "no final export was sealed: the {registry} export failed: {error}"
                            )),
                        };
                    }
                }
            }
        }
        SealedFinals {
            exports,
            problem: None,
        }
    }

    fn seal_one(&self, registry: Registry, only_new: bool) -> Result<FinalExport, ExportError> {
        let label = Path::new("final export");
        let mut content = Vec::new();
        let (rows, exported_at, file_sha256) = match registry {
            Registry::Smn => {
                let draft = self.write_smn_export(&mut content, only_new, label)?;
                (draft.rows, draft.exported_at, draft.file_sha256)
            }
            Registry::Dukpt => {
                let draft = self.write_dukpt_export(&mut content, only_new, label)?;
                (draft.rows, draft.exported_at, draft.file_sha256)
            }
        };
        Ok(FinalExport {
            registry,
            only_new,
            rows,
            exported_at,
            file_sha256,
            content,
            audit_sequence: 0,
        })
    }

    /// Whether this vault was zeroized: its secrets and storage key are destroyed, and it
    /// only delivers its final exports and its audit trail.
    pub fn is_zeroized(&self) -> bool {
        self.zeroized
    }

    /// The zeroize that ended this vault, if it was zeroized.
    pub fn zeroize_record(&self) -> Result<Option<ZeroizeRecord>, VaultError> {
        if !self.zeroized {
            return Ok(None);
        }
        let row: Option<(i64, String)> = self
            .connection
            .query_row(
                "SELECT sequence, at FROM audit_log WHERE event = ?1 ORDER BY sequence DESC LIMIT 1",
                [AuditEvent::ZEROIZE_NAME],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        Ok(row.map(|(sequence, at)| ZeroizeRecord {
            audit_sequence: sequence.max(0) as u64,
            at,
        }))
    }

    /// The final export of `registry` a zeroize sealed (`only_new`: the rows never exported
    /// before it), written to `out` unchanged. Refused for a vault that was not zeroized, and
    /// when the zeroize could seal none (no KEK was loaded).
    pub(crate) fn deliver_final_export(
        &self,
        registry: Registry,
        only_new: bool,
        out: &mut dyn Write,
        label: &Path,
    ) -> Result<FinalExport, ExportError> {
        let stored = self
            .connection
            .query_row(
                "SELECT rows, exported_at, file_sha256, content, audit_sequence
                   FROM final_export WHERE registry = ?1 AND only_new = ?2",
                params![registry.as_str(), only_new],
                |row| {
                    Ok(FinalExport {
                        registry,
                        only_new,
                        rows: row.get::<_, i64>(0)?.max(0) as u64,
                        exported_at: row.get(1)?,
                        file_sha256: row.get(2)?,
                        content: row.get(3)?,
                        audit_sequence: row.get::<_, i64>(4)?.max(0) as u64,
                    })
                },
            )
            .optional()?
            .ok_or_else(|| {
                VaultError::Refused(format!(
                    "the vault in {} was zeroized without a final {registry} export (no KEK was loaded then): read the rows with smn-rows or the audit export",
                    self.data_dir.display()
                ))
            })?;
        out.write_all(&stored.content)
            .map_err(|source| ExportError::writing(label, source))?;
        Ok(stored)
    }

    /// Opens a zeroized vault as its one owner (keymotherd in its zeroized state, or an
    /// offline command): finishes a zeroize a crash interrupted (the storage key file, the
    /// master-key blocks), brings the schema up to date, then opens it read-only. A vault
    /// that was not zeroized is refused.
    pub fn open_zeroized_as_owner(data_dir: &Path) -> Result<Vault, VaultError> {
        let lock = crate::lock_owner(data_dir)?;
        storage_key::check_directory(data_dir)?;
        let database = data_dir.join(DATABASE_FILE);
        if !database.exists() {
            return Err(VaultError::NotFound(data_dir.to_path_buf()));
        }
        if !crate::was_zeroized(&database) {
            return Err(VaultError::Refused(format!(
                "the vault in {} is not zeroized",
                data_dir.display()
            )));
        }
        finish_zeroize(data_dir, &database)?;
        let mut vault = Vault::open_read_only(data_dir, &database, None)?;
        vault.owner_lock = Some(lock);
        Ok(vault)
    }

    /// Opens an archived vault file (`vault recommission` made it) read-only, to verify or
    /// export its audit trail. Its head's MAC cannot be checked: its storage key is gone.
    pub fn open_archive(archive: &Path) -> Result<Vault, VaultError> {
        if !archive.is_file() {
            return Err(VaultError::NotFound(archive.to_path_buf()));
        }
        let directory = match archive.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut vault = Vault::open_read_only(&directory, archive, None)?;
        vault.zeroized = true;
        Ok(vault)
    }
}

/// Completes a zeroize a crash interrupted between its transaction and the end (the storage
/// key file still there, key blocks not yet blanked) and applies pending migrations.
fn finish_zeroize(data_dir: &Path, database: &Path) -> Result<(), VaultError> {
    let mut connection = crate::open_connection(database, false)?;
    crate::check_integrity(&connection)?;
    if storage_key::path(data_dir).exists() {
        storage_key::destroy(data_dir)?;
    }
    schema::migrate(&mut connection, None)?;
    connection.execute(
        "UPDATE key_inventory SET key_block = '' WHERE key_block <> ''",
        [],
    )?;
    crate::operator::erase_bdks(&connection)?;
    connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}

/// Stores the sealed final exports inside the zeroize's transaction, each with its
/// `final-export` audit row; returns how many.
pub(crate) fn store_final_exports(
    transaction: &Transaction<'_>,
    audit_head: &MacKey,
    exports: &mut [FinalExport],
    operator: Option<&str>,
) -> Result<u64, VaultError> {
    for export in exports.iter_mut() {
        let row = audit::append(
            transaction,
            audit_head,
            &AuditEvent::FinalExport {
                registry: export.registry,
                rows: export.rows,
                only_new: export.only_new,
                file_sha256: export.file_sha256.clone(),
                operator: operator.map(str::to_owned),
            },
        )?;
        export.audit_sequence = row.sequence;
        transaction.execute(
            "INSERT INTO final_export
                 (registry, only_new, rows, exported_at, file_sha256, content, audit_sequence)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                export.registry.as_str(),
                export.only_new,
                export.rows as i64,
                export.exported_at,
                export.file_sha256,
                export.content,
                export.audit_sequence as i64
            ],
        )?;
    }
    Ok(exports.len() as u64)
}

/// A read-only connection to `database`, for audit.
pub(crate) fn read_only_connection(database: &Path) -> Result<Connection, VaultError> {
    let connection = Connection::open_with_flags(
        database,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    connection.execute_batch("PRAGMA query_only = ON; PRAGMA busy_timeout = 5000;")?;
    Ok(connection)
}

/// Used by [`Vault::open_read_only`]: loads the storage key when its file is there.
pub(crate) fn storage_key_if_present(data_dir: &Path) -> Result<Option<StorageKey>, VaultError> {
    if storage_key::path(data_dir).exists() {
        Ok(Some(StorageKey::load(data_dir)?))
    } else {
        Ok(None)
    }
}
