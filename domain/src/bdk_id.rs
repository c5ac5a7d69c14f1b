//! A BDK's identifier as DUKPT carries it: TDES, the 40-bit key set identifier of the KSN (10 hex digits); AES, the 32-bit BDK ID (8 hex digits).

use std::fmt;
use std::str::FromStr;

use crate::algorithm::KeyFamily;
use crate::hex_text::{self, HexError};

/// Bytes of a TDES key set identifier (the KSN's first 40 bits).
pub const TDES_BDK_ID_LENGTH: usize = 5;
/// Bytes of an AES BDK ID (the initial key ID's first 32 bits).
pub const AES_BDK_ID_LENGTH: usize = 4;

/// A BDK's identifier: the key set identifier (TDES, ANSI X9.24-1-2009) or the BDK ID (AES,
/// ANSI X9.24-3-2017). Not secret. Shown as upper-case hex; the length tells the kinds apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BdkId {
    /// The 40-bit key set identifier of a TDES DUKPT KSN.
    Tdes([u8; TDES_BDK_ID_LENGTH]),
    /// The 32-bit BDK ID of an AES DUKPT initial key ID.
    Aes([u8; AES_BDK_ID_LENGTH]),
}

/// Why text or bytes are not a BDK identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BdkIdError {
    #[error("a {family} BDK identifier is {expected} hex digits, got {found}")]
    WrongLength {
        family: KeyFamily,
        expected: usize,
        found: usize,
    },
    #[error(
        "a BDK identifier is 10 hex digits (TDES key set identifier) or 8 (AES BDK ID), got {found}"
    )]
    UnknownLength { found: usize },
    #[error("BDK identifier {0}")]
    Hex(HexError),
}

impl BdkId {
    /// Length in bytes of the identifier of a BDK of `family`.
    pub fn length_for(family: KeyFamily) -> usize {
        match family {
            KeyFamily::Tdes => TDES_BDK_ID_LENGTH,
            KeyFamily::Aes => AES_BDK_ID_LENGTH,
        }
    }

    /// The identifier of a `family` BDK from exactly its bytes.
    pub fn from_bytes(family: KeyFamily, bytes: &[u8]) -> Result<BdkId, BdkIdError> {
        let wrong_length = || BdkIdError::WrongLength {
            family,
            expected: BdkId::length_for(family) * 2,
            found: bytes.len() * 2,
        };
        match family {
            KeyFamily::Tdes => bytes.try_into().map(BdkId::Tdes),
            KeyFamily::Aes => bytes.try_into().map(BdkId::Aes),
        }
        .map_err(|_| wrong_length())
    }

    /// Parses the identifier of a `family` BDK from hex (either case).
    pub fn from_hex(family: KeyFamily, text: &str) -> Result<BdkId, BdkIdError> {
        let expected = BdkId::length_for(family) * 2;
        if text.len() != expected {
            return Err(BdkIdError::WrongLength {
                family,
                expected,
                found: text.len(),
            });
        }
        let bytes = hex_text::decode(text).map_err(BdkIdError::Hex)?;
        BdkId::from_bytes(family, &bytes)
    }

    /// The kind of DUKPT (and of BDK) this identifier belongs to.
    pub fn family(&self) -> KeyFamily {
        match self {
            BdkId::Tdes(_) => KeyFamily::Tdes,
            BdkId::Aes(_) => KeyFamily::Aes,
        }
    }

    /// The identifier's bytes (5 for TDES, 4 for AES).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            BdkId::Tdes(bytes) => bytes,
            BdkId::Aes(bytes) => bytes,
        }
    }
}

impl FromStr for BdkId {
    type Err = BdkIdError;

    /// Hex of either kind, told apart by length: 10 digits TDES, 8 digits AES.
    fn from_str(text: &str) -> Result<BdkId, BdkIdError> {
        match text.len() {
            10 => BdkId::from_hex(KeyFamily::Tdes, text),
            8 => BdkId::from_hex(KeyFamily::Aes, text),
            found => Err(BdkIdError::UnknownLength { found }),
        }
    }
}

impl fmt::Display for BdkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&hex::encode_upper(self.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_length_tells_the_kinds_apart() {
        let tdes: BdkId = "ffff987654".parse().unwrap();
        assert_eq!(tdes, BdkId::Tdes([0xFF, 0xFF, 0x98, 0x76, 0x54]));
        assert_eq!(
            (tdes.family(), tdes.to_string()),
            (KeyFamily::Tdes, "FFFF987654".to_owned())
        );
        let aes: BdkId = "12345678".parse().unwrap();
        assert_eq!(
            (aes.family(), aes.as_bytes()),
            (KeyFamily::Aes, &[0x12, 0x34, 0x56, 0x78][..])
        );
        assert_eq!(BdkId::from_bytes(KeyFamily::Aes, aes.as_bytes()), Ok(aes));
    }

    #[test]
    fn errors_name_the_length_or_the_position() {
        assert_eq!(
            "1234".parse::<BdkId>(),
            Err(BdkIdError::UnknownLength { found: 4 })
        );
        assert_eq!(
            BdkId::from_hex(KeyFamily::Aes, "FFFF987654"),
            Err(BdkIdError::WrongLength {
                family: KeyFamily::Aes,
                expected: 8,
                found: 10
            })
        );
        assert_eq!(
            "1234567G".parse::<BdkId>(),
            Err(BdkIdError::Hex(HexError::NotHex { position: 8 }))
        );
        assert!(BdkId::from_bytes(KeyFamily::Tdes, &[1, 2, 3, 4]).is_err());
    }
}
