//! What can go wrong opening or using the vault, each error saying what to do about it.

use std::path::PathBuf;

/// A vault operation failed; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("{0} already holds a vault; refusing to overwrite it")]
    AlreadyExists(PathBuf),
    #[error("no vault in {0} (create one first)")]
    NotFound(PathBuf),
    #[error("{path}: {problem}")]
    Permissions { path: PathBuf, problem: String },
    // The I/O error is part of the message and not a `source`: as both, it was printed
    // twice by every caller printing the chain.
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("storage key {path}: {problem}")]
    StorageKey { path: PathBuf, problem: String },
    #[error("the vault database is damaged: {0}")]
    Corrupt(String),
    #[error(
        "the vault's schema version {found} is newer than this software understands ({supported}); install a newer keymother"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("no {0} is loaded; run the {0} key ceremony first")]
    SecretMissing(crate::SecretName),
    #[error(
        "the stored {name} does not open under the storage key ({reason}); the vault was tampered with or the storage key replaced"
    )]
    SecretUnsealable {
        name: crate::SecretName,
        reason: String,
    },
    #[error("{0}")]
    Refused(String),
    #[error(
        "the audit chain was tampered with ({0}); nothing was done: verify the audit trail and call the security officer"
    )]
    AuditTampered(String),
    #[error(
        "the vault in {0} was zeroized: its secrets and storage key are destroyed; only its audit trail and SMN registry can still be read (open it for audit)"
    )]
    Zeroized(PathBuf),
    /// The database's error is in the message, not a `source`: as both, it was printed twice
    /// by callers printing the error's chain.
    #[error("database: {0}")]
    Database(rusqlite::Error),
}

impl From<rusqlite::Error> for VaultError {
    fn from(error: rusqlite::Error) -> Self {
        VaultError::Database(error)
    }
}
