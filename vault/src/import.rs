//! Importing a key file: every check of FORMAT.md in one streaming pass, staged in small transactions on a connection of its own and made dispensable in one, or not at all.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use keymother_crypto::SecretKey;
use keymother_keyfiles::{
    Halt, KeyFileError, KeyFileHeader, KeyFileReader, Problem, Record, RecordOpener, SealKey,
    Stopped, open_records_in_order_with,
};
use rusqlite::{Connection, ErrorCode, OptionalExtension};
use sha2::{Digest, Sha256};

use crate::audit::AuditEvent;
use crate::mac::MacKey;
use crate::staging::{self, CHECKPOINT_EVERY_CHUNKS, CHUNK_RECORDS, CHUNK_RECORDS_BESIDE_PORTS};
use crate::{DATABASE_FILE, SecretName, Vault, VaultError, live_key};

/// How far an import has come: reported once the batch is staged (0 records), after each
/// chunk of records is stored, and once more when the batch is whole.
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

/// Why storing records stopped before the end: the vault, or a cancellation.
enum StoreHalt {
    Vault(VaultError),
    /// Cancelled after this many records were staged (and will be removed).
    Cancelled(u32),
}

impl From<rusqlite::Error> for StoreHalt {
    fn from(error: rusqlite::Error) -> Self {
        StoreHalt::Vault(VaultError::Database(error))
    }
}

impl From<rusqlite::Error> for ImportError {
    fn from(error: rusqlite::Error) -> Self {
        ImportError::Vault(VaultError::Database(error))
    }
}

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

/// The daemon's turn at the vault, held by an import beside live ports while it writes a
/// chunk ([`Importer::taking_turns`]): a reservation waits for at most one chunk and is woken
/// the moment it is written, rather than trying SQLite's lock every 0.5 ms and finding the
/// next chunk already started.
pub trait WriteTurn: Send {
    /// Waits for the turn, after the writers already waiting for it, and holds it until the
    /// returned value is dropped.
    fn take(&self) -> Box<dyn HeldTurn + '_>;
}

/// A [`WriteTurn`] held; dropping it gives the turn back.
pub trait HeldTurn {}

impl<T> HeldTurn for T {}

/// An import on a connection of its own ([`Vault::importer`]): it holds the vault's write
/// lock only for a chunk of records at a time, so that reservations go on while it runs,
/// and the batch becomes dispensable only in its last, small transaction.
pub struct Importer {
    connection: Connection,
    data_dir: PathBuf,
    device_id: keymother_keyfiles::DeviceId,
    kek: SecretKey,
    audit_key: MacKey,
    chunk_records: u32,
    /// Checkpoint the write-ahead log after every this many chunks (None: SQLite's own).
    checkpoint_every: Option<u32>,
    /// Held while each chunk is written (None: SQLite's lock alone).
    turn: Option<Box<dyn WriteTurn>>,
    /// Run first on each of the threads that open records.
    worker_start: fn(),
}

impl Vault {
    /// An importer for this vault: its own connection to the database, the KEK and the
    /// audit head's key. Refused without a KEK (nothing can be imported then).
    pub fn importer(&self) -> Result<Importer, VaultError> {
        let kek = self.load_secret(SecretName::Kek)?;
        let audit_key = live_key(&self.storage_key, &self.data_dir)?
            .audit_head()
            .duplicate();
        let connection = crate::open_connection(&self.data_dir.join(DATABASE_FILE), false)?;
        Ok(Importer {
            connection,
            data_dir: self.data_dir.clone(),
            device_id: self.device_id.clone(),
            kek,
            audit_key,
            chunk_records: CHUNK_RECORDS,
            checkpoint_every: None,
            turn: None,
            worker_start: || {},
        })
    }

    /// Imports the key file at `path` into the inventory ([`Importer::import_key_file`]).
    pub fn import_key_file(
        &mut self,
        path: &Path,
        progress: &mut dyn FnMut(ImportProgress),
    ) -> Result<ImportReport, ImportError> {
        self.importer()?.import_key_file(path, progress)
    }

    /// Imports a key file read from `source` ([`Importer::import_key_stream`]).
    pub fn import_key_stream(
        &mut self,
        source: impl Read + Send,
        name: &str,
        progress: &mut dyn FnMut(ImportProgress),
        cancel: &AtomicBool,
    ) -> Result<ImportReport, ImportError> {
        self.importer()?
            .import_key_stream(source, name, progress, cancel)
    }
}

impl Importer {
    /// Stages at most `records` records per transaction (at least 1; 2048 unless set).
    pub fn with_chunk_records(mut self, records: u32) -> Importer {
        self.chunk_records = records.max(1);
        self
    }

    /// For an import while terminals are served from the same vault (keymotherd): chunks of
    /// 256 records (the lock is never held much more than a quarter of a millisecond), and
    /// the importer checkpoints the write-ahead log itself after every eighth chunk, so that a
    /// reservation's commit never finds the log past SQLite's automatic checkpoint and pays
    /// for copying the import's pages. Alone (the offline command), bigger chunks and
    /// SQLite's own checkpoints import faster.
    pub fn beside_live_ports(mut self) -> Importer {
        self.chunk_records = CHUNK_RECORDS_BESIDE_PORTS;
        self.checkpoint_every = Some(CHECKPOINT_EVERY_CHUNKS);
        self
    }

    /// Holds `turn` while each chunk is written: keymotherd's turn at its vault, so that its
    /// ports never wait for SQLite's lock behind the import.
    pub fn taking_turns(mut self, turn: Box<dyn WriteTurn>) -> Importer {
        self.turn = Some(turn);
        self
    }

    /// Runs `start` first on each thread that opens records (keymotherd lowers their
    /// priority: the importer's own thread holds the turn and stays at the ports' priority).
    pub fn with_worker_start(mut self, start: fn()) -> Importer {
        self.worker_start = start;
        self
    }

    /// Imports the key file at `path` into the inventory. Either every record is stored,
    /// with its batch and an Import audit row, and dispensable from one instant on, or
    /// nothing is left. A refused file is recorded as ImportRefused (best effort: a failure
    /// to record it does not hide the refusal).
    pub fn import_key_file(
        &mut self,
        path: &Path,
        progress: &mut dyn FnMut(ImportProgress),
    ) -> Result<ImportReport, ImportError> {
        let name = path.display().to_string();
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
    /// stops the import at the next chunk: nothing is kept, the error is
    /// [`ImportError::Cancelled`] and an `import-cancelled` row records it.
    pub fn import_key_stream(
        &mut self,
        source: impl Read + Send,
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
            }) => self.audit(&AuditEvent::ImportCancelled {
                file: name.to_owned(),
                reason: format!(
                    "cancelled by its client after {records_done} of {records_total} records"
                ),
            }),
            Err(ImportError::Vault(VaultError::Refused(reason))) => {
                self.audit(&AuditEvent::ImportRefused {
                    file: name.to_owned(),
                    reason: reason.clone(),
                });
            }
            _ => {}
        }
        imported
    }

    /// Appends `event`, best effort, unless the vault was zeroized meanwhile.
    fn audit(&mut self, event: &AuditEvent) {
        let _ = staging::audit_unless_zeroized(&mut self.connection, &self.audit_key, event);
    }

    /// Records a refused file (best effort: a failure to record it does not hide the
    /// refusal). The reason is the line and the problem, which never quote the file.
    fn audit_refusal(&mut self, error: &KeyFileError) {
        let reason = if error.line == 0 {
            error.problem.to_string()
        } else {
            format!("line {}: {}", error.line, error.problem)
        };
        self.audit(&AuditEvent::ImportRefused {
            file: error.file.clone(),
            reason,
        });
    }

    /// The header checks that need the vault (the KEK, the device, batches imported
    /// before), then the opener of the records. Line numbers are those of FORMAT.md.
    fn check_header<B: std::io::BufRead>(
        &self,
        reader: &mut KeyFileReader<B>,
    ) -> Result<RecordOpener, ImportError> {
        let kek = &self.kek;
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
        if header.device_id != self.device_id {
            let error = reader.error_at(
                6,
                Problem::WrongDevice {
                    file_device: header.device_id.to_string(),
                    appliance_device: self.device_id.to_string(),
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

    /// Reads and checks the header, then stages the batch: its rows are removed again when
    /// anything stops the import before its last transaction.
    fn import_verified(
        &mut self,
        source: impl Read + Send,
        name: &str,
        progress: &mut dyn FnMut(ImportProgress),
        cancel: &AtomicBool,
    ) -> Result<ImportReport, ImportError> {
        let hashing = HashingReader {
            inner: source,
            hasher: Sha256::new(),
        };
        let mut reader = KeyFileReader::open(
            BufReader::with_capacity(1 << 16, hashing),
            name.to_owned(),
            &SealKey::derive(&self.kek),
        )?;
        let opener = self.check_header(&mut reader)?;
        let batch = reader.header().batch_id.to_string();
        // Held until the batch is whole or removed: an open of the vault meanwhile leaves
        // its staged rows alone.
        let _import = staging::lock_imports(&self.data_dir)?.ok_or_else(|| {
            VaultError::Refused(
                "another import is running on this vault; try again when it has ended".to_owned(),
            )
        })?;
        // Staged rows need no durability (a crash discards them): NORMAL, which in WAL mode
        // still never corrupts the database; the last transaction runs with FULL.
        self.connection
            .execute_batch("PRAGMA synchronous = NORMAL")?;
        staging::begin_batch(&mut self.connection, reader.header(), name)?;
        let staged = self.stage(reader, &opener, name, progress, cancel);
        if staged.is_err() {
            // Best effort: what a failure here leaves, the next open removes.
            let _ = staging::remove_staged(
                &mut self.connection,
                &batch,
                self.chunk_records.max(CHUNK_RECORDS),
                &self.audit_key,
                |_| None,
            );
        }
        let _ = self.connection.execute_batch("PRAGMA synchronous = FULL");
        staged
    }

    /// Stages every record, checks the end of the file, then makes the batch whole.
    fn stage<S: Read + Send>(
        &mut self,
        mut reader: KeyFileReader<BufReader<HashingReader<S>>>,
        opener: &RecordOpener,
        name: &str,
        progress: &mut dyn FnMut(ImportProgress),
        cancel: &AtomicBool,
    ) -> Result<ImportReport, ImportError> {
        let header = reader.header().clone();
        let total = header.record_count;
        let cancelled = |records_done| ImportError::Cancelled {
            file: name.to_owned(),
            records_done,
            records_total: total,
        };
        progress(ImportProgress {
            records_done: 0,
            records_total: total,
        });
        let chunks = Chunks {
            connection: &self.connection,
            data_dir: &self.data_dir,
            kek_kcv: self.kek.kcv(),
            chunk_records: self.chunk_records,
            checkpoint_every: self.checkpoint_every,
            turn: self.turn.as_deref(),
            worker_start: self.worker_start,
            file: name,
        };
        let range = match chunks.store(&mut reader, opener, &header, progress, cancel) {
            Ok(range) => range,
            Err(Stopped::File(error)) => return Err(error.into()),
            Err(Stopped::Other(StoreHalt::Vault(error))) => return Err(error.into()),
            Err(Stopped::Other(StoreHalt::Cancelled(stored))) => return Err(cancelled(stored)),
        };
        // The reader returned None: record count, seal and end of file all verified. A
        // cancellation that came after the last chunk still wins: nothing is kept.
        if cancel.load(Ordering::Relaxed) {
            return Err(cancelled(range.stored));
        }
        let file_sha256 = hex::encode(reader.into_inner().into_inner().hasher.finalize());
        staging::finish_batch(
            &mut self.connection,
            &self.kek,
            &self.data_dir,
            &self.audit_key,
            &AuditEvent::Import {
                batch: header.batch_id.to_string(),
                records: total,
                file_sha256: file_sha256.clone(),
            },
            header.batch_id.as_str(),
            &file_sha256,
        )?;
        progress(ImportProgress {
            records_done: total,
            records_total: total,
        });
        Ok(ImportReport {
            batch_id: header.batch_id.to_string(),
            issuer: header.issuer.to_string(),
            algorithm: header.algorithm.to_string(),
            records: total,
            first_index: range.first_index,
            last_index: range.last_index,
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

/// A record gathered for the next chunk; its key block is a range of [`Gathered::blocks`].
struct Row {
    line: u64,
    index: keymother_keyfiles::KeyIndex,
    kcv: keymother_crypto::Kcv,
    block: std::ops::Range<usize>,
}

/// The records of the next chunk. Their key blocks are copied into one text kept from chunk
/// to chunk, and each record dropped at once, as when every record was inserted on arrival:
/// holding a chunk's records (a string each) and freeing them together made the allocator
/// give memory back and take it again at every chunk (the import took twice as long).
#[derive(Default)]
struct Gathered {
    rows: Vec<Row>,
    blocks: String,
}

impl Gathered {
    fn push(&mut self, record: Record) {
        let start = self.blocks.len();
        self.blocks.push_str(&record.key_block);
        self.rows.push(Row {
            line: record.line,
            index: record.index,
            kcv: record.kcv,
            block: start..self.blocks.len(),
        });
    }

    fn clear(&mut self) {
        self.rows.clear();
        self.blocks.clear();
    }
}

/// Where and how a chunked store writes: the importer's connection, `chunk_records`
/// records per transaction, each checking that the vault still holds the KEK.
struct Chunks<'c> {
    connection: &'c Connection,
    data_dir: &'c Path,
    kek_kcv: keymother_crypto::Kcv,
    chunk_records: u32,
    /// Checkpoint the write-ahead log after every this many chunks (None: SQLite's own).
    checkpoint_every: Option<u32>,
    /// Held while each chunk is written.
    turn: Option<&'c dyn WriteTurn>,
    /// Run first on each of the threads that open records.
    worker_start: fn(),
    /// The file's name, for a problem found once the reader has finished.
    file: &'c str,
}

impl Chunks<'_> {
    /// Opens every record in file order and stages it in `key_inventory`: the records are
    /// gathered `chunk_records` at a time and each chunk is written in one transaction, so
    /// the write lock is held only while rows are inserted, never while the file is read
    /// or its records opened. Progress is reported and `cancel` honoured after each chunk.
    /// The chunks committed before a stop are the caller's to remove.
    fn store<R: std::io::BufRead + Send>(
        &self,
        reader: &mut KeyFileReader<R>,
        opener: &RecordOpener,
        header: &KeyFileHeader,
        progress: &mut dyn FnMut(ImportProgress),
        cancel: &AtomicBool,
    ) -> Result<StoredRange, Stopped<StoreHalt>> {
        let mut range = StoredRange {
            first_index: u32::MAX,
            last_index: 0,
            stored: 0,
        };
        let mut pending = Gathered::default();
        let outcome =
            open_records_in_order_with(reader, opener, self.worker_start, &mut |record: Record| {
                pending.push(record);
                if pending.rows.len() >= self.chunk_records as usize {
                    self.flush(&mut pending, header, &mut range)?;
                    progress(ImportProgress {
                        records_done: range.stored,
                        records_total: header.record_count,
                    });
                    if cancel.load(Ordering::Relaxed) {
                        return Err(Halt::Other(StoreHalt::Cancelled(range.stored)));
                    }
                }
                Ok(())
            });
        match outcome {
            Ok(()) if pending.rows.is_empty() => Ok(range),
            // The file is whole and sealed: a record of the last chunk that clashes with the
            // inventory is the problem of its line.
            Ok(()) => match self.flush(&mut pending, header, &mut range) {
                Ok(()) => {
                    progress(ImportProgress {
                        records_done: range.stored,
                        records_total: header.record_count,
                    });
                    Ok(range)
                }
                Err(Halt::Problem { line, problem }) => Err(Stopped::File(KeyFileError {
                    file: self.file.to_owned(),
                    line,
                    problem,
                })),
                Err(Halt::Other(halt)) => Err(Stopped::Other(halt)),
            },
            // A record gathered before the problem may clash with the inventory: being
            // earlier in the file, that is the problem to report.
            Err(Stopped::File(error)) if !pending.rows.is_empty() => {
                match self.flush(&mut pending, header, &mut range) {
                    Err(Halt::Problem { line, problem }) => {
                        Err(Stopped::File(earlier(error, line, problem)))
                    }
                    _ => Err(Stopped::File(error)),
                }
            }
            Err(stopped) => Err(stopped),
        }
    }

    /// Writes the gathered records in one transaction, once the vault is known to still
    /// hold the KEK; on any problem the transaction is rolled back before it is reported.
    fn flush(
        &self,
        pending: &mut Gathered,
        header: &KeyFileHeader,
        range: &mut StoredRange,
    ) -> Result<(), Halt<StoreHalt>> {
        let database = |error: rusqlite::Error| Halt::Other(StoreHalt::from(error));
        let turn = self.turn.map(|turn| turn.take());
        self.connection
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(database)?;
        let mut chunk = StoredRange {
            first_index: range.first_index,
            last_index: range.last_index,
            stored: range.stored,
        };
        let written = staging::check_kek(self.connection, &self.kek_kcv, self.data_dir)
            .map_err(|error| Halt::Other(StoreHalt::Vault(error)))
            .and_then(|()| {
                // Looked up once a chunk: a statement-cache lookup per record made the import
                // of 1,000,000 keys measurably slower.
                let mut insert = self
                    .connection
                    .prepare_cached(
                        "INSERT INTO key_inventory (key_index, batch_id, source_line, key_block, kcv)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )
                    .map_err(database)?;
                insert
                    .raw_bind_parameter(2, header.batch_id.as_str())
                    .map_err(database)?;
                pending.rows.iter().try_for_each(|row| {
                    let block = &pending.blocks[row.block.clone()];
                    self.insert(&mut insert, row, block, header, &mut chunk)
                })
            })
            .and_then(|()| {
                self.connection
                    .prepare_cached(
                        "UPDATE batch_staging SET staged = staged + ?1 WHERE batch_id = ?2",
                    )
                    .and_then(|mut update| {
                        update.execute((
                            i64::from(chunk.stored - range.stored),
                            header.batch_id.as_str(),
                        ))
                    })
                    .map_err(database)
                    .and_then(|updated| {
                        // Keys join only a batch still being imported (never a withdrawn
                        // or a whole one): its staging row must still be there.
                        if updated == 1 {
                            Ok(())
                        } else {
                            Err(Halt::Other(StoreHalt::Vault(VaultError::Refused(
                                "the batch is no longer being imported; nothing was stored"
                                    .to_owned(),
                            ))))
                        }
                    })
            })
            .and_then(|()| self.connection.execute_batch("COMMIT").map_err(database));
        pending.clear();
        if written.is_err() && !self.connection.is_autocommit() {
            let _ = self.connection.execute_batch("ROLLBACK");
        }
        drop(turn);
        written?;
        let chunks = chunk.stored.div_ceil(self.chunk_records);
        *range = chunk;
        // Outside the turn: a checkpoint takes no write lock.
        if self
            .checkpoint_every
            .is_some_and(|every| chunks.is_multiple_of(every))
        {
            self.connection
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                .map_err(database)?;
        }
        Ok(())
    }

    /// Inserts one record; an index already in the inventory is a problem of its line.
    fn insert(
        &self,
        insert: &mut rusqlite::CachedStatement<'_>,
        record: &Row,
        key_block: &str,
        header: &KeyFileHeader,
        range: &mut StoredRange,
    ) -> Result<(), Halt<StoreHalt>> {
        let database = |error: rusqlite::Error| Halt::Other(StoreHalt::from(error));
        let index = record.index.value();
        // The batch (?2) is bound once a chunk (`flush`); the rest here, and bindings stay
        // until rebound.
        let inserted = insert
            .raw_bind_parameter(1, i64::from(index))
            .and_then(|()| insert.raw_bind_parameter(3, record.line as i64))
            .and_then(|()| insert.raw_bind_parameter(4, key_block))
            .and_then(|()| insert.raw_bind_parameter(5, record.kcv.to_hex().as_str()))
            .and_then(|()| insert.raw_execute());
        match inserted {
            Ok(_) => {}
            Err(rusqlite::Error::SqliteFailure(failure, _))
                if failure.code == ErrorCode::ConstraintViolation =>
            {
                let (batch, first_line): (String, i64) = self
                    .connection
                    .prepare_cached(
                        "SELECT batch_id, source_line FROM key_inventory WHERE key_index = ?1",
                    )
                    .map_err(database)?
                    .query_row([i64::from(index)], |row| Ok((row.get(0)?, row.get(1)?)))
                    .map_err(database)?;
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
            Err(error) => return Err(database(error)),
        }
        range.first_index = range.first_index.min(index);
        range.last_index = range.last_index.max(index);
        range.stored += 1;
        Ok(())
    }
}

/// `error`, the reader's, with a record's problem at `line` (earlier in the file) put first:
/// when the seal failed, the file was altered and that stays the headline, with the record's
/// problem as its first symptom.
fn earlier(error: KeyFileError, line: u64, problem: Problem) -> KeyFileError {
    match error.problem {
        Problem::SealMismatch { first_problem }
            if first_problem.as_ref().is_none_or(|first| first.0 > line) =>
        {
            KeyFileError {
                problem: Problem::SealMismatch {
                    first_problem: Some(Box::new((line, problem))),
                },
                ..error
            }
        }
        Problem::SealMismatch { .. } => error,
        _ if error.line > line => KeyFileError {
            file: error.file,
            line,
            problem,
        },
        _ => error,
    }
}
