//! The device storage key: 32 random bytes in a file only the daemon's user can read, sealing the vault's secrets.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use keymother_crypto::kdf::{counter_mode_cmac, labelled_fixed_input};
use keymother_crypto::tr31::KeyBlockProtectionKey;
use keymother_crypto::{KeyAlgorithm, SecretKey};
use zeroize::Zeroizing;

use crate::VaultError;
use crate::mac::{AUDIT_HEAD_LABEL, MacKey};

const FILE_NAME: &str = "storage.key";
const KEY_LENGTH: usize = 32;
/// Label of the KDH private key's passphrase, derived from the storage key.
const KDH_KEY_LABEL: &[u8] = b"KEYMOTHER-KDH-KEY/1";
const KDH_PASSPHRASE_LENGTH: usize = 32;

/// Where the storage key lives in a data directory.
pub(crate) fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> VaultError + '_ {
    move |error| VaultError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// Creates the data directory with mode 0700 if it is missing, then checks it.
pub(crate) fn prepare_directory(data_dir: &Path) -> Result<(), VaultError> {
    if !data_dir.exists() {
        fs::create_dir_all(data_dir).map_err(io_error(data_dir))?;
        fs::set_permissions(data_dir, fs::Permissions::from_mode(0o700))
            .map_err(io_error(data_dir))?;
    }
    check_directory(data_dir)
}

/// Refuses a data directory that anyone but its owner can enter or read.
pub(crate) fn check_directory(data_dir: &Path) -> Result<(), VaultError> {
    let metadata = fs::metadata(data_dir).map_err(io_error(data_dir))?;
    if !metadata.is_dir() {
        return Err(VaultError::Permissions {
            path: data_dir.to_path_buf(),
            problem: "is not a directory".to_owned(),
        });
    }
    refuse_shared_mode(data_dir, metadata.permissions().mode(), "chmod 700")
}

fn refuse_shared_mode(path: &Path, mode: u32, remedy: &str) -> Result<(), VaultError> {
    if mode & 0o077 != 0 {
        return Err(VaultError::Permissions {
            path: path.to_path_buf(),
            problem: format!(
                "group or others have access (mode {:04o}); keymother refuses it ({remedy})",
                mode & 0o7777
            ),
        });
    }
    Ok(())
}

/// The storage key with its derived keys ready: the TR-31 keys that seal the secrets and the
/// audit head's MAC key. Zeroized on drop.
pub(crate) struct StorageKey {
    protection: KeyBlockProtectionKey,
    audit_head: MacKey,
    kdh_passphrase: Zeroizing<String>,
}

impl StorageKey {
    /// Generates a new storage key and writes it, mode 0600, refusing to overwrite.
    pub(crate) fn create(data_dir: &Path) -> Result<StorageKey, VaultError> {
        let key =
            SecretKey::generate(KeyAlgorithm::Aes256).map_err(|error| VaultError::StorageKey {
                path: path(data_dir),
                problem: error.to_string(),
            })?;
        let file_path = path(data_dir);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&file_path)
            .map_err(io_error(&file_path))?;
        file.write_all(key.expose_secret_bytes())
            .and_then(|()| file.sync_all())
            .map_err(io_error(&file_path))?;
        File::open(data_dir)
            .and_then(|directory| directory.sync_all())
            .map_err(io_error(data_dir))?;
        Ok(StorageKey::from_key(&key))
    }

    /// Reads the storage key, refusing a file others can read or one of the wrong size.
    pub(crate) fn load(data_dir: &Path) -> Result<StorageKey, VaultError> {
        let file_path = path(data_dir);
        let problem = |problem: String| VaultError::StorageKey {
            path: file_path.clone(),
            problem,
        };
        let mut file = File::open(&file_path).map_err(|error| problem(error.to_string()))?;
        let metadata = file
            .metadata()
            .map_err(|error| problem(error.to_string()))?;
        refuse_shared_mode(&file_path, metadata.permissions().mode(), "chmod 600")?;
        if metadata.len() != KEY_LENGTH as u64 {
            return Err(problem(format!(
                "is {} bytes long, expected {KEY_LENGTH}",
                metadata.len()
            )));
        }
        let mut bytes = Zeroizing::new([0u8; KEY_LENGTH]);
        file.read_exact(bytes.as_mut_slice())
            .map_err(|error| problem(error.to_string()))?;
        let key = SecretKey::from_bytes(KeyAlgorithm::Aes256, bytes.as_slice())
            .map_err(|error| problem(error.to_string()))?;
        Ok(StorageKey::from_key(&key))
    }

    fn from_key(key: &SecretKey) -> StorageKey {
        let kdh_secret = counter_mode_cmac(
            key,
            &labelled_fixed_input(KDH_KEY_LABEL, b"", KDH_PASSPHRASE_LENGTH),
            KDH_PASSPHRASE_LENGTH,
        );
        StorageKey {
            protection: KeyBlockProtectionKey::new(key),
            audit_head: MacKey::derive(key, AUDIT_HEAD_LABEL),
            kdh_passphrase: Zeroizing::new(hex::encode(kdh_secret.as_slice())),
        }
    }

    /// The key-block protection key that seals the vault's secrets.
    pub(crate) fn protection(&self) -> &KeyBlockProtectionKey {
        &self.protection
    }

    /// The passphrase of the sealed KDH private key (encrypted PKCS#8), hex of 32 derived bytes.
    pub(crate) fn kdh_passphrase(&self) -> &str {
        &self.kdh_passphrase
    }

    /// The key that MACs the audit head, so a truncated or rewritten chain is detected.
    pub(crate) fn audit_head(&self) -> &MacKey {
        &self.audit_head
    }
}

/// Destroys the storage key file: overwrites it with random bytes, then zeros, syncing each
/// pass, removes it and syncs the directory. On flash storage an overwrite is not a
/// guaranteed erase (wear levelling may keep the old blocks, readable by a forensic read of
/// the raw chip); docs/SECURITY.md says what that leaves.
pub(crate) fn destroy(data_dir: &Path) -> Result<(), VaultError> {
    let file_path = path(data_dir);
    let mut file = OpenOptions::new()
        .write(true)
        .open(&file_path)
        .map_err(io_error(&file_path))?;
    let length = usize::try_from(
        file.metadata()
            .map_err(io_error(&file_path))?
            .len()
            .max(KEY_LENGTH as u64),
    )
    .unwrap_or(KEY_LENGTH);
    let mut random = Zeroizing::new(vec![0u8; length]);
    keymother_crypto::key::fill_random(&mut random).map_err(|error| VaultError::StorageKey {
        path: file_path.clone(),
        problem: format!("no randomness to overwrite it: {error}"),
    })?;
    let zeros = vec![0u8; length];
    for pass in [random.as_slice(), zeros.as_slice()] {
        file.seek(SeekFrom::Start(0))
            .and_then(|_| file.write_all(pass))
            .and_then(|()| file.sync_all())
            .map_err(io_error(&file_path))?;
    }
    drop(file);
    fs::remove_file(&file_path).map_err(io_error(&file_path))?;
    File::open(data_dir)
        .and_then(|directory| directory.sync_all())
        .map_err(io_error(data_dir))
}
