//! The reference terminal's key store kept in a file between runs (`keymother-terminal --store FILE`), as a PIN pad's secure memory keeps its keys: the installed keys and whether the appliance confirmed each.
//!
//! A TEST terminal's file: it holds the keys IN THE CLEAR (hex), as the secure memory of a
//! real PIN pad holds them, where a real pad's memory is tamper-responsive and this file is
//! not. Use it only with test keys. It is written with mode 0600, atomically (a temporary
//! file in the same directory, written, synced, renamed over the store, the directory
//! synced) after every change, so a terminal killed at any moment finds either the store
//! before the change or after it; a store others can read is refused. It is bound to one
//! hardware serial. The format, one item per line:
//!
//! ```text
//! # keymother-terminal key store: TEST keys in the clear
//! keymother-terminal-store 1
//! serial 123L013K
//! master 00000042 TDES-2KEY <key hex> unconfirmed
//! dukpt PIN 1234567800000100 AES-128 <key hex> confirmed
//! ```
//!
//! The TTK and the certificate-mode identity are not kept: they are given on every run.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use keymother_crypto::dukpt::InitialKeyIdentity;
use keymother_crypto::{KeyAlgorithm, SecretKey};
use zeroize::Zeroizing;

/// The format line.
const FORMAT_LINE: &str = "keymother-terminal-store 1";

/// The first line: what the file is.
const COMMENT_LINE: &str = "# keymother-terminal key store: TEST keys in the clear, as a PIN pad's secure memory holds them";

/// Why a store file could not be read or written; never quotes a key.
#[derive(Debug, thiserror::Error)]
pub enum StoreFileError {
    // The I/O error is part of the message, not a `source` (printed once, not twice).
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: io::Error },
    #[error(
        "{path}: others may read it (mode {mode:03o}); it holds clear keys: chmod 600 it, or start a new store"
    )]
    Exposed { path: PathBuf, mode: u32 },
    #[error("{path}: line {line}: {problem}")]
    Malformed {
        path: PathBuf,
        line: usize,
        problem: String,
    },
    #[error("{path} is the key store of terminal {stored}, not of {serial}")]
    OtherTerminal {
        path: PathBuf,
        stored: String,
        serial: String,
    },
}

/// A master key as the store keeps it.
pub(crate) struct StoredMaster {
    pub(crate) key_index: u32,
    pub(crate) key: SecretKey,
    pub(crate) confirmed: bool,
}

/// A DUKPT initial key as the store keeps it.
pub(crate) struct StoredDukpt {
    pub(crate) label: String,
    pub(crate) identity: InitialKeyIdentity,
    pub(crate) key: SecretKey,
    pub(crate) confirmed: bool,
}

/// What a store file holds.
#[derive(Default)]
pub(crate) struct StoredKeys {
    pub(crate) master: Option<StoredMaster>,
    pub(crate) dukpt: Vec<StoredDukpt>,
}

/// The file a key store is kept in, for one terminal.
#[derive(Debug, Clone)]
pub(crate) struct StoreFile {
    path: PathBuf,
    serial: String,
}

fn confirmation_word(confirmed: bool) -> &'static str {
    if confirmed {
        "confirmed"
    } else {
        "unconfirmed"
    }
}

impl StoreFile {
    pub(crate) fn new(path: &Path, serial: &str) -> StoreFile {
        StoreFile {
            path: path.to_path_buf(),
            serial: serial.to_owned(),
        }
    }

    fn io(&self, error: io::Error) -> StoreFileError {
        StoreFileError::Io {
            path: self.path.clone(),
            error,
        }
    }

    /// The keys the file holds; none when it does not exist yet.
    pub(crate) fn load(&self) -> Result<StoredKeys, StoreFileError> {
        let metadata = match fs::metadata(&self.path) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Ok(StoredKeys::default());
            }
            Err(error) => return Err(self.io(error)),
        };
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(StoreFileError::Exposed {
                path: self.path.clone(),
                mode,
            });
        }
        let text = Zeroizing::new(fs::read_to_string(&self.path).map_err(|error| self.io(error))?);
        self.parse(&text)
    }

    fn parse(&self, text: &str) -> Result<StoredKeys, StoreFileError> {
        let mut keys = StoredKeys::default();
        let mut header = text
            .lines()
            .enumerate()
            .map(|(index, line)| (index + 1, line))
            .filter(|(_, line)| !line.starts_with('#') && !line.is_empty());
        let malformed = |line: usize, problem: String| StoreFileError::Malformed {
            path: self.path.clone(),
            line,
            problem,
        };
        match header.next() {
            Some((_, FORMAT_LINE)) => {}
            Some((line, _)) => {
                return Err(malformed(
                    line,
                    format!("expected {FORMAT_LINE:?}: this is not a keymother-terminal store"),
                ));
            }
            None => return Err(malformed(1, "the file is empty".to_owned())),
        }
        match header.next() {
            Some((_, line)) if line.strip_prefix("serial ") == Some(self.serial.as_str()) => {}
            Some((_, line)) if line.starts_with("serial ") => {
                return Err(StoreFileError::OtherTerminal {
                    path: self.path.clone(),
                    stored: line["serial ".len()..].to_owned(),
                    serial: self.serial.clone(),
                });
            }
            other => {
                let line = other.map_or(2, |(line, _)| line);
                return Err(malformed(line, "expected the serial line".to_owned()));
            }
        }
        for (line, item) in header {
            read_item(item, &mut keys).map_err(|problem| malformed(line, problem))?;
        }
        Ok(keys)
    }

    /// Writes `keys` over the file, atomically and durably, mode 0600.
    pub(crate) fn save(
        &self,
        master: Option<(u32, &SecretKey, bool)>,
        dukpt: &[(&str, InitialKeyIdentity, &SecretKey, bool)],
    ) -> Result<(), StoreFileError> {
        let mut text = Zeroizing::new(format!(
            "{COMMENT_LINE}\n{FORMAT_LINE}\nserial {}\n",
            self.serial
        ));
        if let Some((key_index, key, confirmed)) = master {
            text.push_str(&format!(
                "master {key_index:08} {} {} {}\n",
                key.algorithm().name(),
                key.expose_secret_hex().as_str(),
                confirmation_word(confirmed)
            ));
        }
        for (label, identity, key, confirmed) in dukpt {
            text.push_str(&format!(
                "dukpt {label} {identity} {} {} {}\n",
                key.algorithm().name(),
                key.expose_secret_hex().as_str(),
                confirmation_word(*confirmed)
            ));
        }
        self.write_atomically(text.as_bytes())
            .map_err(|error| self.io(error))
    }

    fn write_atomically(&self, bytes: &[u8]) -> io::Result<()> {
        let directory = match self.path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = self
            .path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| "store".to_owned());
        let temporary = directory.join(format!(".{name}.new"));
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)?;
        // A temporary file left by an older umask keeps its mode: make sure.
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temporary, &self.path)?;
        fs::File::open(&directory)?.sync_all()
    }
}

/// One `master` or `dukpt` line into `keys`; the problem never quotes the key.
fn read_item(item: &str, keys: &mut StoredKeys) -> Result<(), String> {
    let fields: Vec<&str> = item.split(' ').collect();
    let confirmed = |word: &str| match word {
        "confirmed" => Ok(true),
        "unconfirmed" => Ok(false),
        other => Err(format!(
            "expected \"confirmed\" or \"unconfirmed\", found {other:?}"
        )),
    };
    let key = |algorithm: &str, hex: &str| -> Result<SecretKey, String> {
        let algorithm: KeyAlgorithm = algorithm
            .parse()
            .map_err(|_| format!("unknown key algorithm {algorithm:?}"))?;
        SecretKey::from_hex(algorithm, hex).map_err(|_| {
            // "an AES-128 key", "a TDES-2KEY key".
            let article = if algorithm.name().starts_with('A') {
                "an"
            } else {
                "a"
            };
            format!("the key is not {article} {algorithm} key in hex")
        })
    };
    match fields.as_slice() {
        ["master", index, algorithm, hex, state] => {
            if keys.master.is_some() {
                return Err("a second master key".to_owned());
            }
            let key_index = index
                .parse()
                .ok()
                .filter(|_| index.len() == 8)
                .ok_or_else(|| format!("key index {index:?} is not 8 digits"))?;
            keys.master = Some(StoredMaster {
                key_index,
                key: key(algorithm, hex)?,
                confirmed: confirmed(state)?,
            });
        }
        ["dukpt", label, identity, algorithm, hex, state] => {
            let bytes = hex_bytes(identity)
                .ok_or_else(|| format!("initial KSN {identity:?} is not hex"))?;
            let identity = InitialKeyIdentity::from_bytes(&bytes)
                .map_err(|error| format!("initial KSN {identity:?}: {error}"))?;
            if keys.dukpt.iter().any(|held| held.label == *label) {
                return Err(format!("a second DUKPT key {label:?}"));
            }
            keys.dukpt.push(StoredDukpt {
                label: (*label).to_owned(),
                identity,
                key: key(algorithm, hex)?,
                confirmed: confirmed(state)?,
            });
        }
        _ => {
            return Err(
                "expected \"master INDEX ALGORITHM KEY STATE\" or \"dukpt LABEL KSN ALGORITHM KEY STATE\""
                    .to_owned(),
            );
        }
    }
    Ok(())
}

/// Upper- or lower-case hex as bytes.
fn hex_bytes(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok())
        .collect()
}
