//! Key check values (ANSI X9.24-1-2017): 3 bytes of TDES(zeros) for TDES, 5 bytes of AES-CMAC(zeros) for AES.

use std::fmt;

use crate::block_cipher::BlockCipher;
use crate::key::{KeyError, KeyFamily, SecretKey};

/// A key check value: 3 bytes for TDES keys, 5 bytes for AES keys. Not secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Kcv {
    bytes: [u8; 5],
    length: u8,
}

impl Kcv {
    /// Length in bytes of the check value of a key of `family`.
    pub fn length_for(family: KeyFamily) -> usize {
        match family {
            KeyFamily::Tdes => 3,
            KeyFamily::Aes => 5,
        }
    }

    /// Computes the check value of `key`.
    ///
    /// AES uses the CMAC method of X9.24-1-2017 (CMAC over one zero block), not the legacy
    /// ECB-of-zeros method, which leaks one block of known plaintext/ciphertext.
    pub fn of(key: &SecretKey) -> Kcv {
        let cipher = BlockCipher::new(key);
        let family = key.algorithm().family();
        let full = match family {
            KeyFamily::Tdes => {
                let mut block = [0u8; 8];
                cipher.encrypt_block(&mut block);
                block.to_vec()
            }
            KeyFamily::Aes => cipher.cmac(&[&[0u8; 16]]),
        };
        let length = Kcv::length_for(family);
        let mut bytes = [0u8; 5];
        bytes[..length].copy_from_slice(&full[..length]);
        Kcv {
            bytes,
            length: length as u8,
        }
    }

    /// Parses a check value from hex; its length must be the family's.
    pub fn from_hex(family: KeyFamily, text: &str) -> Result<Kcv, KcvError> {
        let expected = Kcv::length_for(family);
        if text.len() != expected * 2 {
            return Err(KcvError::WrongLength {
                family,
                expected: expected * 2,
                found: text.len(),
            });
        }
        let decoded = crate::key::decode_hex_secret(text).map_err(KcvError::Hex)?;
        let mut bytes = [0u8; 5];
        bytes[..expected].copy_from_slice(&decoded);
        Ok(Kcv {
            bytes,
            length: expected as u8,
        })
    }

    /// Parses a check value of either family, telling them apart by length (6 or 10 hex digits).
    pub fn from_hex_any(text: &str) -> Result<Kcv, KcvError> {
        match text.len() {
            6 => Kcv::from_hex(KeyFamily::Tdes, text),
            10 => Kcv::from_hex(KeyFamily::Aes, text),
            found => Err(KcvError::UnknownLength { found }),
        }
    }

    /// The check value bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.length)]
    }

    /// The family this check value belongs to.
    pub fn family(&self) -> KeyFamily {
        if self.length == 3 {
            KeyFamily::Tdes
        } else {
            KeyFamily::Aes
        }
    }
}

impl fmt::Display for Kcv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode_upper(self.as_bytes()))
    }
}

impl fmt::Debug for Kcv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kcv({self})")
    }
}

/// Why a check value could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KcvError {
    #[error("a {family} check value is {expected} hex digits, got {found}")]
    WrongLength {
        family: KeyFamily,
        expected: usize,
        found: usize,
    },
    #[error("a check value is 6 hex digits (TDES) or 10 (AES), got {found}")]
    UnknownLength { found: usize },
    #[error("check value {0}")]
    Hex(KeyError),
}
