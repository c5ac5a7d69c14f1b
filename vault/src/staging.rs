//! Staged imports: a batch's keys arrive in small transactions, invisible to dispensing until one small transaction makes the batch whole; what a refusal or a crash leaves is removed.

use std::path::Path;

use keymother_crypto::{Kcv, SecretKey};
use rusqlite::{Connection, OptionalExtension};

use crate::audit::{self, AuditEvent};
use crate::mac::MacKey;
use crate::{VaultError, now_text};

/// Records staged, or deleted, per transaction: the write lock that reservations need is
/// released between two (a chunk of 2048 records takes a few milliseconds to insert).
pub(crate) const CHUNK_RECORDS: u32 = 2048;

/// Records per transaction of an import beside live ports ([`crate::Importer::beside_live_ports`]):
/// about a quarter of a millisecond of insertion, the longest a reservation waits behind it
/// (512 measured p99 1.9x idle during a 1,000,000-key import, 256 1.5-1.6x: docs/BENCHMARKS.md).
pub(crate) const CHUNK_RECORDS_BESIDE_PORTS: u32 = 256;

/// Beside live ports the importer checkpoints the write-ahead log itself after this many
/// chunks (PASSIVE: it never waits for, nor blocks, a reader or a writer), so that the log
/// never reaches SQLite's automatic checkpoint (1000 pages): otherwise the reservation that
/// commits first past it pays for copying the import's pages into the database.
pub(crate) const CHECKPOINT_EVERY_CHUNKS: u32 = 8;

/// The lock file an import holds while it runs, so that an open of the vault by another
/// handle never removes the staged rows of an import still running.
const IMPORT_LOCK_FILE: &str = "import.lock";

/// Takes the import lock of `data_dir`, or says that another import holds it (`None`).
pub(crate) fn lock_imports(
    data_dir: &Path,
) -> Result<Option<nix::fcntl::Flock<std::fs::File>>, VaultError> {
    let file = crate::open_lock_file(data_dir, IMPORT_LOCK_FILE)?;
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Some(lock)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, errno)) => Err(VaultError::Io {
            path: data_dir.join(IMPORT_LOCK_FILE),
            error: std::io::Error::from(errno),
        }),
    }
}

/// Checks, inside a chunk's transaction, that the vault still holds the KEK the import
/// opens its records under: a zeroize or a tamper response removed it, and then not one
/// more key block is written.
pub(crate) fn check_kek(
    connection: &Connection,
    kek_kcv: &Kcv,
    data_dir: &Path,
) -> Result<(), VaultError> {
    let stored: Option<String> = connection
        .prepare_cached("SELECT kcv FROM sealed_secret WHERE name = 'KEK'")?
        .query_row([], |row| row.get(0))
        .optional()?;
    match stored {
        Some(stored) if *kek_kcv == stored => Ok(()),
        _ if zeroized(connection) => Err(VaultError::Zeroized(data_dir.to_path_buf())),
        Some(_) => Err(VaultError::Refused(
            "the KEK was replaced while the import ran; nothing of the file was stored".to_owned(),
        )),
        None => Err(VaultError::Refused(
            "the KEK was removed while the import ran (a tamper response); nothing of the file was stored"
                .to_owned(),
        )),
    }
}

/// True when the chain's last row is a zeroize: nothing may be appended after it.
pub(crate) fn zeroized(connection: &Connection) -> bool {
    audit::last_event(connection).as_deref() == Some(AuditEvent::ZEROIZE_NAME)
}

/// Appends `event` in its own transaction unless the vault was zeroized (its chain ends at
/// the zeroize).
pub(crate) fn audit_unless_zeroized(
    connection: &mut Connection,
    key: &MacKey,
    event: &AuditEvent,
) -> Result<(), VaultError> {
    let transaction =
        connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    if !zeroized(&transaction) {
        audit::append(&transaction, key, event)?;
    }
    transaction.commit()?;
    Ok(())
}

/// Deletes the keys staged for `batch`, `chunk` at a time, each deletion its own
/// transaction (the write lock released in between), then the batch row with its staging row
/// and, when given and the vault is not zeroized, appends `event` in that same last
/// transaction. Returns how many keys were removed. A batch without a staging row is never
/// touched (the database refuses it too).
pub(crate) fn remove_staged(
    connection: &mut Connection,
    batch: &str,
    chunk: u32,
    audit_key: &MacKey,
    event: impl FnOnce(u64) -> Option<AuditEvent>,
) -> Result<u64, VaultError> {
    let mut removed = 0u64;
    let mut after = -1i64;
    loop {
        let transaction =
            connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if !is_staging(&transaction, batch)? {
            return Ok(removed);
        }
        let indexes: Vec<i64> = transaction
            .prepare_cached(
                "SELECT key_index FROM key_inventory WHERE key_index > ?1 AND batch_id = ?2
                  ORDER BY key_index LIMIT ?3",
            )?
            .query_map((after, batch, i64::from(chunk.max(1))), |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        let Some(&last) = indexes.last() else {
            break;
        };
        let mut delete =
            transaction.prepare_cached("DELETE FROM key_inventory WHERE key_index = ?1")?;
        for index in &indexes {
            delete.execute([index])?;
        }
        drop(delete);
        transaction
            .prepare_cached(
                "UPDATE batch_staging SET staged = max(staged - ?1, 0) WHERE batch_id = ?2",
            )?
            .execute((indexes.len() as i64, batch))?;
        transaction.commit()?;
        removed += indexes.len() as u64;
        after = last;
    }
    // The last transaction is durable whatever the import ran with.
    connection.execute_batch("PRAGMA synchronous = FULL")?;
    let transaction =
        connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    transaction.execute(
        "DELETE FROM batch WHERE batch_id = ?1
            AND EXISTS (SELECT 1 FROM batch_staging WHERE batch_id = ?1)",
        [batch],
    )?;
    if let Some(event) = event(removed) {
        if !zeroized(&transaction) {
            audit::append(&transaction, audit_key, &event)?;
        }
    }
    transaction.commit()?;
    Ok(removed)
}

fn is_staging(connection: &Connection, batch: &str) -> Result<bool, VaultError> {
    Ok(connection
        .prepare_cached("SELECT 1 FROM batch_staging WHERE batch_id = ?1")?
        .query_row([batch], |_| Ok(()))
        .optional()?
        .is_some())
}

/// At an open that may write: the batches a crash left staging (no import holds the import
/// lock) are removed, each with an `import-interrupted` row. Their keys were never
/// dispensable. An import running in this or another process is left alone.
pub(crate) fn remove_interrupted(
    connection: &mut Connection,
    data_dir: &Path,
    audit_key: &MacKey,
) -> Result<(), VaultError> {
    let staging: Vec<(String, String)> = connection
        .prepare(
            "SELECT s.batch_id, b.file_name FROM batch_staging s JOIN batch b USING (batch_id)
              ORDER BY s.started_at, s.batch_id",
        )?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    if staging.is_empty() {
        return Ok(());
    }
    let Some(_lock) = lock_imports(data_dir)? else {
        return Ok(());
    };
    for (batch, file) in staging {
        remove_staged(connection, &batch, CHUNK_RECORDS, audit_key, |removed| {
            Some(AuditEvent::ImportInterrupted {
                batch: batch.clone(),
                file: file.clone(),
                removed,
            })
        })?;
    }
    Ok(())
}

/// Stage 1: the batch row and its staging row, in one small transaction.
pub(crate) fn begin_batch(
    connection: &mut Connection,
    header: &keymother_keyfiles::KeyFileHeader,
    file_name: &str,
) -> Result<(), VaultError> {
    let transaction =
        connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let now = now_text();
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
            &now,
            file_name,
        ),
    )?;
    transaction.execute(
        "INSERT INTO batch_staging (batch_id, started_at) VALUES (?1, ?2)",
        (header.batch_id.as_str(), &now),
    )?;
    transaction.commit()?;
    Ok(())
}

/// Stage 3: the one small transaction that makes the batch whole and dispensable: its
/// staging row goes, its file digest is set and the Import row appended.
pub(crate) fn finish_batch(
    connection: &mut Connection,
    kek: &SecretKey,
    data_dir: &Path,
    audit_key: &MacKey,
    event: &AuditEvent,
    batch: &str,
    file_sha256: &str,
) -> Result<(), VaultError> {
    connection.execute_batch("PRAGMA synchronous = FULL")?;
    let transaction =
        connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    check_kek(&transaction, &kek.kcv(), data_dir)?;
    let unstaged = transaction.execute("DELETE FROM batch_staging WHERE batch_id = ?1", [batch])?;
    if unstaged != 1 {
        return Err(VaultError::Corrupt(format!(
            "batch {batch} lost its staging row during its import"
        )));
    }
    transaction.execute(
        "UPDATE batch SET file_sha256 = ?1 WHERE batch_id = ?2",
        (file_sha256, batch),
    )?;
    audit::append(&transaction, audit_key, event)?;
    transaction.commit()?;
    Ok(())
}
