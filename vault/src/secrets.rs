//! The KEK and the TTK at rest: TR-31 key blocks under the storage key, bound to their role by key usage.

use std::fmt;
use std::str::FromStr;

use keymother_crypto::tr31::{Algorithm, Exportability, Header, KeyUsage, ModeOfUse, Version};
use keymother_crypto::{Kcv, KeyAlgorithm, KeyFamily, SecretKey};
use rusqlite::{OptionalExtension, TransactionBehavior};

use crate::audit::{self, AuditEvent};
use crate::ceremony::CeremonyRecord;
use crate::{Vault, VaultError, live_key, now_text};

/// The secrets a vault holds, each loaded by a key ceremony.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecretName {
    /// The key-encryption key the front end wraps master keys under.
    Kek,
    /// The terminal transport key: the TR-31 key-block protection key shared with terminals.
    Ttk,
}

impl SecretName {
    /// Both secrets.
    pub const ALL: [SecretName; 2] = [SecretName::Kek, SecretName::Ttk];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SecretName::Kek => "KEK",
            SecretName::Ttk => "TTK",
        }
    }

    /// The TR-31 key usage that binds a stored block to this role: a swapped row fails.
    fn key_usage(self) -> KeyUsage {
        match self {
            SecretName::Kek => KeyUsage::KeyEncryption,
            SecretName::Ttk => KeyUsage::KeyBlockProtection,
        }
    }
}

impl fmt::Display for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SecretName {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.to_ascii_uppercase().as_str() {
            "KEK" => Ok(SecretName::Kek),
            "TTK" => Ok(SecretName::Ttk),
            _ => Err(format!("unknown secret {text:?} (expected kek or ttk)")),
        }
    }
}

/// What is on record about an installed secret (never the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledSecret {
    pub name: SecretName,
    pub algorithm: KeyAlgorithm,
    pub kcv: Kcv,
    pub component_count: u32,
    pub loaded_at: String,
    /// From [`Vault::install_secret`]: the check value of the key the ceremony replaced, if
    /// one was loaded. `None` from [`Vault::secret_info`].
    pub replaced: Option<Kcv>,
}

impl Vault {
    /// Seals `key` under the storage key and stores it as `name`, and records the ceremony
    /// with its custodians in the audit chain (same transaction). A loaded key is replaced
    /// only when `ceremony` says so (`--replace`), and the row records the replaced check
    /// value. A KEK is not replaced while keys imported under another KEK are still unused:
    /// they could never be opened again. A key whose TDES parts repeat is refused.
    pub fn install_secret(
        &mut self,
        name: SecretName,
        key: &SecretKey,
        ceremony: &CeremonyRecord,
    ) -> Result<InstalledSecret, VaultError> {
        let kcv = key.kcv();
        let component_count = ceremony.custodians().len();
        key.check_strength()
            .map_err(|weak| VaultError::Refused(format!("the {name}: {weak}")))?;
        let storage_key = live_key(&self.storage_key, &self.data_dir)?;
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let loaded: Option<String> = transaction
            .query_row(
                "SELECT kcv FROM sealed_secret WHERE name = ?1",
                [name.as_str()],
                |row| row.get(0),
            )
            .optional()?;
        let replaced = match loaded {
            Some(loaded) if !ceremony.replace() => {
                return Err(VaultError::Refused(format!(
                    "a {name} is loaded (KCV {loaded}); a {name} ceremony replaces it only when \
                     asked to (keymother ceremony --replace, \"replace\": true)"
                )));
            }
            Some(loaded) => Some(
                Kcv::from_hex_any(&loaded)
                    .map_err(|_| VaultError::Corrupt(format!("stored {name} check value")))?,
            ),
            None => None,
        };
        if name == SecretName::Kek {
            let stranded: i64 = transaction.query_row(
                "SELECT count(*) FROM key_inventory JOIN batch USING (batch_id)
                 WHERE state IN ('available', 'reserved', 'sent') AND batch.kek_kcv <> ?1",
                [kcv.to_string()],
                |row| row.get(0),
            )?;
            if stranded > 0 {
                return Err(VaultError::Refused(format!(
                    "{stranded} keys imported under the current KEK are not yet used; a KEK with \
                     check value {kcv} would strand them"
                )));
            }
        }
        let algorithm = match key.algorithm().family() {
            KeyFamily::Tdes => Algorithm::Tdes,
            KeyFamily::Aes => Algorithm::Aes,
        };
        let header = Header::new(
            Version::D,
            name.key_usage(),
            algorithm,
            ModeOfUse::EncryptDecrypt,
            Exportability::NonExportable,
        );
        let block = storage_key
            .protection()
            .wrap(&header, key)
            .map_err(|error| VaultError::Refused(format!("sealing the {name}: {error}")))?;
        let loaded_at = now_text();
        transaction.execute(
            "INSERT OR REPLACE INTO sealed_secret
                 (name, algorithm, kcv, key_block, component_count, loaded_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            (
                name.as_str(),
                key.algorithm().name(),
                kcv.to_string(),
                block,
                component_count as i64,
                &loaded_at,
            ),
        )?;
        audit::append(
            &transaction,
            storage_key.audit_head(),
            &AuditEvent::Ceremony {
                secret: name,
                algorithm: key.algorithm(),
                kcv,
                components: component_count as u32,
                custodians: ceremony.names_text(),
                component_kcvs: ceremony.kcvs_text(),
                replaced,
                peer: ceremony.peer().map(str::to_owned),
            },
        )?;
        transaction.commit()?;
        Ok(InstalledSecret {
            name,
            algorithm: key.algorithm(),
            kcv,
            component_count: component_count as u32,
            loaded_at,
            replaced,
        })
    }

    /// What is recorded about `name`, if it is installed.
    pub fn secret_info(&self, name: SecretName) -> Result<Option<InstalledSecret>, VaultError> {
        secret_info_on(&self.connection, name)
    }

    /// Unseals `name`. The block must open under the storage key, carry the role's key
    /// usage, and match the recorded check value.
    pub fn load_secret(&self, name: SecretName) -> Result<SecretKey, VaultError> {
        let storage_key = live_key(&self.storage_key, &self.data_dir)?;
        let row: Option<(String, String)> = self
            .connection
            .query_row(
                "SELECT key_block, kcv FROM sealed_secret WHERE name = ?1",
                [name.as_str()],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        let (block, recorded_kcv) = row.ok_or(VaultError::SecretMissing(name))?;
        let unsealable = |reason: String| VaultError::SecretUnsealable { name, reason };
        let unwrapped = storage_key
            .protection()
            .unwrap(&block)
            .map_err(|error| unsealable(error.to_string()))?;
        if unwrapped.header.key_usage != name.key_usage() {
            return Err(unsealable(format!(
                "its key usage is {}, not {}",
                unwrapped.header.key_usage,
                name.key_usage()
            )));
        }
        if unwrapped.key.kcv() != recorded_kcv {
            return Err(unsealable(
                "its check value differs from the recorded one".to_owned(),
            ));
        }
        Ok(unwrapped.key)
    }
}

/// [`Vault::secret_info`] on `connection` (the vault's, or a [`crate::StatusReader`]'s).
pub(crate) fn secret_info_on(
    connection: &rusqlite::Connection,
    name: SecretName,
) -> Result<Option<InstalledSecret>, VaultError> {
    let row: Option<(String, String, i64, String)> = connection
        .query_row(
            "SELECT algorithm, kcv, component_count, loaded_at FROM sealed_secret WHERE name = ?1",
            [name.as_str()],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .optional()?;
    let Some((algorithm, kcv, component_count, loaded_at)) = row else {
        return Ok(None);
    };
    let corrupt = |what: &str| VaultError::Corrupt(format!("stored {name} {what}"));
    let algorithm: KeyAlgorithm = algorithm.parse().map_err(|_| corrupt("algorithm"))?;
    Ok(Some(InstalledSecret {
        name,
        algorithm,
        kcv: Kcv::from_hex(algorithm.family(), &kcv).map_err(|_| corrupt("check value"))?,
        component_count: u32::try_from(component_count).map_err(|_| corrupt("count"))?,
        loaded_at,
        replaced: None,
    }))
}
