//! Importing a key file: every check of FORMAT.md in one streaming pass, stored in one transaction or not at all.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use keymother_keyfiles::{
    Halt, KeyFileError, KeyFileHeader, KeyFileReader, Problem, Record, RecordOpener, SealKey,
    Stopped, open_records_in_order,
};
use rusqlite::{ErrorCode, OptionalExtension, TransactionBehavior};
use sha2::{Digest, Sha256};

use crate::audit::{self, AuditEvent};
use crate::{SecretName, Vault, VaultError, live_key, now_text};

/// How far an import has come; reported every few thousand records and at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportProgress {
    pub records_done: u32,
    pub records_total: u32,
}

/// What a successful import stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    pub batch_id: String,
    pub issuer: String,
    pub algorithm: String,
    pub records: u32,
    pub first_index: u32,
    pub last_index: u32,
    pub file_sha256: String,
}

/// An import was refused; the vault is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file is wrong: names the file, the line and the problem.
    #[error(transparent)]
    File(#[from] KeyFileError),
    /// The vault could not take the import.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The caller cancelled the import (its client went away); nothing was stored.
    #[error(
        "{file}: the import was cancelled after {records_done} of {records_total} records; nothing was stored"
    )]
    Cancelled {
        file: String,
        records_done: u32,
        records_total: u32,
    },
}

/// Why storing records stopped before the end: the database, or a cancellation.
enum StoreHalt {
    Database(rusqlite::Error),
    /// Cancelled after this many records were stored (and will be rolled back).
    Cancelled(u32),
}

impl From<rusqlite::Error> for ImportError {
    fn from(error: rusqlite::Error) -> Self {
        ImportError::Vault(VaultError::Database(error))
    }
}

/// Records between two progress reports.
const PROGRESS_EVERY: u32 = 4096;

/// Hashes everything read through it, for the batch's file digest.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.hasher.update(&buffer[..read]);
        Ok(read)
    }
}

impl Vault {
    /// Imports the key file at `path` into the inventory. Either every record is stored,
    /// with its batch and an Import audit row, or nothing is. A refused file is recorded as
    /// ImportRefused (best effort: a failure to record it does not hide the refusal).
    pub fn import_key_file(
        &mut self,
        path: &Path,
        progress: &mut dyn FnMut(ImportProgress),
    ) -> Result<ImportReport, ImportError> {
        let name = path.display().to_string();
        // Without a KEK nothing can be imported: say that before anything about the file.
        drop(self.load_secret(SecretName::Kek)?);
        let file = match File::open(path) {
            Ok(file) => file,
            Err(error) => {
                let error = KeyFileError {
                    file: name,
                    line: 0,
                    problem: Problem::Io(error.to_string()),
                };
                self.audit_refusal(&error);
                return Err(error.into());
            }
        };
        self.import_key_stream(file, &name, progress, &AtomicBool::new(false))
    }

    /// Imports a key file read from `source` (for the daemon, the bytes a client streamed
    /// over the control socket), named `name` in errors and the audit trail. Setting `cancel`
    /// stops the import at the next progress step: nothing is stored, the error is
    /// [`ImportError::Cancelled`] and an `import-cancelled` row records it.
    pub fn import_key_stream(
        &mut self,
        source: impl Read,
        name: &str,
        progress: &mut dyn FnMut(ImportProgress),
        cancel: &AtomicBool,
    ) -> Result<ImportReport, ImportError> {
        let imported = self.import_verified(source, name, progress, cancel);
        match &imported {
            Err(ImportError::File(error)) => self.audit_refusal(error),
            Err(ImportError::Cancelled {
                records_done,
                records_total,
                ..
            }) => {
                let _ = self.record_audit(AuditEvent::ImportCancelled {
                    file: name.to_owned(),
                    reason: format!(
                        "cancelled by its client after {records_done} of {records_total} records"
                    ),
                });
            }
            _ => {}
        }
        imported
    }

    /// Records a refused file (best effort: a failure to record it does not hide the
    /// refusal). The reason is the line and the problem, which never quote the file.
    fn audit_refusal(&mut self, error: &KeyFileError) {
        let reason = if error.line == 0 {
            error.problem.to_string()
        } else {
            format!("line {}: {}", error.line, error.problem)
        };
        let _ = self.record_audit(AuditEvent::ImportRefused {
            file: error.file.clone(),
            reason,
        });
    }

    /// The header checks that need the vault (the KEK, the device, batches imported
    /// before), then the opener of the records. Line numbers are those of FORMAT.md.
    fn check_header<B: std::io::BufRead>(
        &self,
        reader: &mut KeyFileReader<B>,
        kek: &keymother_crypto::SecretKey,
    ) -> Result<RecordOpener, ImportError> {
        let header = reader.header().clone();
        if header.kek_kcv != kek.kcv() {
            // The seal cannot be checked under a different KEK, so this error stands alone.
            return Err(reader
                .error_at(
                    7,
                    Problem::WrongKek {
                        file_kcv: header.kek_kcv,
                        loaded_kcv: kek.kcv(),
                    },
                )
                .into());
        }
        if &header.device_id != self.device_id() {
            let error = reader.error_at(
                6,
                Problem::WrongDevice {
                    file_device: header.device_id.to_string(),
                    appliance_device: self.device_id().to_string(),
                },
            );
            return Err(reader.check_seal_after(error).into());
        }
        let imported_at: Option<String> = self
            .connection
            .query_row(
                "SELECT imported_at FROM batch WHERE batch_id = ?1",
                [header.batch_id.as_str()],
                |row| row.get(0),
            )
            .optional()?;
        if let Some(imported_at) = imported_at {
            let error = reader.error_at(
                2,
                Problem::BatchAlreadyImported {
                    batch: header.batch_id.to_string(),
                    imported_at,
                },
            );
            return Err(reader.check_seal_after(error).into());
        }
        match RecordOpener::new(kek, &header) {
            Ok(opener) => Ok(opener),
            Err(problem) => {
                let error = reader.error_at(4, problem);
                Err(reader.check_seal_after(error).into())
            }
        }
    }

    fn import_verified(
        &mut self,
        source: impl Read,
        name: &str,
        progress: &mut dyn FnMut(ImportProgress),
        cancel: &AtomicBool,
    ) -> Result<ImportReport, ImportError> {
        let name = name.to_owned();
        let kek = self.load_secret(SecretName::Kek)?;
        let hashing = HashingReader {
            inner: source,
            hasher: Sha256::new(),
        };
        let mut reader = KeyFileReader::open(
            BufReader::with_capacity(1 << 16, hashing),
            name.clone(),
            &SealKey::derive(&kek),
        )?;
        let header = reader.header().clone();

        let opener = self.check_header(&mut reader, &kek)?;

        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        transaction.execute(
            "INSERT INTO batch (batch_id, issuer, algorithm, record_count, kek_kcv, created_at,
                                imported_at, file_name, file_sha256)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, '')",
            (
                header.batch_id.as_str(),
                header.issuer.as_str(),
                header.algorithm.name(),
                i64::from(header.record_count),
                header.kek_kcv.to_string(),
                header.created.to_string(),
                now_text(),
                &name,
            ),
        )?;
        let total = header.record_count;
        let range = match store_records(
            &transaction,
            &mut reader,
            &opener,
            &header,
            progress,
            cancel,
        ) {
            Ok(range) => range,
            Err(Stopped::File(error)) => return Err(error.into()),
            Err(Stopped::Other(StoreHalt::Database(error))) => return Err(error.into()),
            Err(Stopped::Other(StoreHalt::Cancelled(stored))) => {
                return Err(ImportError::Cancelled {
                    file: name,
                    records_done: stored,
                    records_total: total,
                });
            }
        };
        let StoredRange {
            first_index,
            last_index,
            stored,
        } = range;
        // The reader returned None: record count, seal and end of file all verified. A
        // cancellation that came after the last progress step still wins: nothing is kept.
        if cancel.load(Ordering::Relaxed) {
            return Err(ImportError::Cancelled {
                file: name,
                records_done: stored,
                records_total: total,
            });
        }
        let file_sha256 = hex::encode(reader.into_inner().into_inner().hasher.finalize());
        transaction.execute(
            "UPDATE batch SET file_sha256 = ?1 WHERE batch_id = ?2",
            (&file_sha256, header.batch_id.as_str()),
        )?;
        audit::append(
            &transaction,
            live_key(&self.storage_key, &self.data_dir)?.audit_head(),
            &AuditEvent::Import {
                batch: header.batch_id.to_string(),
                records: total,
                file_sha256: file_sha256.clone(),
            },
        )?;
        transaction.commit()?;
        progress(ImportProgress {
            records_done: total,
            records_total: total,
        });
        Ok(ImportReport {
            batch_id: header.batch_id.to_string(),
            issuer: header.issuer.to_string(),
            algorithm: header.algorithm.to_string(),
            records: total,
            first_index,
            last_index,
            file_sha256,
        })
    }
}

/// What the records of a file filled: the lowest and highest index, and how many.
struct StoredRange {
    first_index: u32,
    last_index: u32,
    stored: u32,
}

/// Opens every record in file order and inserts it into `key_inventory` within
/// `transaction`, reporting progress and honouring `cancel` every [`PROGRESS_EVERY`] records.
fn store_records<R: std::io::BufRead>(
    transaction: &rusqlite::Transaction<'_>,
    reader: &mut KeyFileReader<R>,
    opener: &RecordOpener,
    header: &KeyFileHeader,
    progress: &mut dyn FnMut(ImportProgress),
    cancel: &AtomicBool,
) -> Result<StoredRange, Stopped<StoreHalt>> {
    let total = header.record_count;
    let mut first_index = u32::MAX;
    let mut last_index = 0;
    let mut stored = 0u32;
    let database = |error| Stopped::Other(StoreHalt::Database(error));
    let mut insert = transaction
        .prepare(
            "INSERT INTO key_inventory (key_index, batch_id, source_line, key_block, kcv)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .map_err(database)?;
    let mut find = transaction
        .prepare("SELECT batch_id, source_line FROM key_inventory WHERE key_index = ?1")
        .map_err(database)?;
    progress(ImportProgress {
        records_done: 0,
        records_total: total,
    });
    let mut store = |record: Record| -> Result<(), Halt<StoreHalt>> {
        let index = record.index.value();
        let inserted = insert.execute((
            i64::from(index),
            header.batch_id.as_str(),
            record.line as i64,
            &record.key_block,
            record.kcv.to_string(),
        ));
        match inserted {
            Ok(_) => {}
            Err(rusqlite::Error::SqliteFailure(failure, _))
                if failure.code == ErrorCode::ConstraintViolation =>
            {
                let (batch, first_line): (String, i64) = find
                    .query_row([i64::from(index)], |row| Ok((row.get(0)?, row.get(1)?)))
                    .map_err(|error| Halt::Other(StoreHalt::Database(error)))?;
                let problem = if batch == header.batch_id.as_str() {
                    Problem::DuplicateInFile {
                        index: record.index.to_string(),
                        first_line: first_line as u64,
                    }
                } else {
                    Problem::AlreadyInInventory {
                        index: record.index.to_string(),
                        batch,
                    }
                };
                return Err(Halt::Problem {
                    line: record.line,
                    problem,
                });
            }
            Err(error) => return Err(Halt::Other(StoreHalt::Database(error))),
        }
        first_index = first_index.min(index);
        last_index = last_index.max(index);
        stored += 1;
        if stored.is_multiple_of(PROGRESS_EVERY) {
            if cancel.load(Ordering::Relaxed) {
                return Err(Halt::Other(StoreHalt::Cancelled(stored)));
            }
            progress(ImportProgress {
                records_done: stored,
                records_total: total,
            });
        }
        Ok(())
    };
    open_records_in_order(reader, opener, &mut store)?;
    Ok(StoredRange {
        first_index,
        last_index,
        stored,
    })
}
