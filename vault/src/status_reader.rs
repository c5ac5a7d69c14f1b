//! Reading what a status screen shows on a read-only connection of its own, so that keymotherd's ports never wait for a count.

use std::path::Path;

use crate::inventory::{count_available, count_inventory};
use crate::secrets::secret_info_on;
use crate::{InstalledSecret, InventorySummary, SecretName, VaultError};

/// The counts and records a status shows, read in one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultCounts {
    /// Keys per state, and per batch ([`crate::Vault::inventory`]).
    pub inventory: InventorySummary,
    /// Every secret role and what is recorded of it, if installed.
    pub secrets: Vec<(SecretName, Option<InstalledSecret>)>,
    /// Rows of the SMN registry.
    pub smn_rows: u64,
    /// Keys available now ([`crate::Vault::available_keys`]).
    pub available: u64,
}

/// A read-only connection to a vault for status screens: the counts it reads (every available
/// key's index entry, every key's row for the inventory: about 10 ms and a few hundred ms with
/// a million keys) never hold the connection a reservation needs. A zeroized vault's rows are
/// blank, so its caller says 0 available keys from what it knows.
pub struct StatusReader {
    connection: rusqlite::Connection,
}

impl StatusReader {
    /// Opens the reader on the vault in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<StatusReader, VaultError> {
        let connection =
            crate::zeroized::read_only_connection(&data_dir.join(crate::DATABASE_FILE))?;
        // The counts read pages once: caching them would only hold memory (the kernel's page
        // cache keeps them), as for the background check's readers.
        connection.pragma_update(None, "cache_size", crate::integrity::BACKGROUND_CACHE_KIB)?;
        Ok(StatusReader { connection })
    }

    /// Keys available now; a batch still being imported is not counted.
    pub fn available_keys(&self) -> Result<u64, VaultError> {
        count_available(&self.connection)
    }

    /// Everything `status` shows of the vault, in one snapshot.
    pub fn counts(&self) -> Result<VaultCounts, VaultError> {
        let snapshot = self.connection.unchecked_transaction()?;
        let inventory = count_inventory(&snapshot)?;
        let secrets = SecretName::ALL
            .into_iter()
            .map(|name| Ok((name, secret_info_on(&snapshot, name)?)))
            .collect::<Result<Vec<_>, VaultError>>()?;
        let smn_rows: i64 =
            snapshot.query_row("SELECT count(*) FROM smn_registry", [], |row| row.get(0))?;
        let available = count_available(&snapshot)?;
        snapshot.finish()?;
        Ok(VaultCounts {
            inventory,
            secrets,
            smn_rows: smn_rows.max(0) as u64,
            available,
        })
    }
}
