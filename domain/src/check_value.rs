//! Key check values (ANSI X9.24-1-2017) as values: 3 bytes for TDES keys, 5 for AES keys. The crypto crate computes them.

use std::fmt;

use crate::algorithm::KeyFamily;
use crate::hex_text::{self, HexError};

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

    /// The check value of a `family` key whose check computation began with `leading` (the
    /// first eight bytes of a cipher block; the check value is the first 3 or 5 of them).
    pub fn from_leading_bytes(family: KeyFamily, leading: [u8; 8]) -> Kcv {
        let length = Kcv::length_for(family);
        let mut bytes = [0u8; 5];
        bytes[..length].copy_from_slice(&leading[..length]);
        Kcv {
            bytes,
            length: length as u8,
        }
    }

    /// A check value of `family` from exactly its bytes.
    pub fn from_bytes(family: KeyFamily, bytes: &[u8]) -> Result<Kcv, KcvError> {
        let expected = Kcv::length_for(family);
        if bytes.len() != expected {
            return Err(KcvError::WrongLength {
                family,
                expected: expected * 2,
                found: bytes.len() * 2,
            });
        }
        let mut stored = [0u8; 5];
        stored[..expected].copy_from_slice(bytes);
        Ok(Kcv {
            bytes: stored,
            length: expected as u8,
        })
    }

    /// A check value of either family, told apart by length (3 or 5 bytes).
    pub fn from_bytes_any(bytes: &[u8]) -> Result<Kcv, KcvError> {
        match bytes.len() {
            3 => Kcv::from_bytes(KeyFamily::Tdes, bytes),
            5 => Kcv::from_bytes(KeyFamily::Aes, bytes),
            found => Err(KcvError::UnknownLength { found: found * 2 }),
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
        let decoded = hex_text::decode(text).map_err(KcvError::Hex)?;
        Kcv::from_bytes(family, &decoded)
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

    /// The check value as upper-case hex (how it is written everywhere), without allocating:
    /// an import stores a million of them.
    pub fn to_hex(&self) -> KcvHex {
        const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
        let mut text = [0u8; 10];
        for (pair, byte) in text.chunks_exact_mut(2).zip(self.as_bytes()) {
            pair[0] = DIGITS[usize::from(byte >> 4)];
            pair[1] = DIGITS[usize::from(byte & 0x0f)];
        }
        KcvHex {
            text,
            length: self.length * 2,
        }
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

/// A check value's upper-case hex digits ([`Kcv::to_hex`]).
#[derive(Clone, Copy)]
pub struct KcvHex {
    text: [u8; 10],
    length: u8,
}

impl KcvHex {
    /// The digits: 6 for a TDES key's check value, 10 for an AES key's.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and letters are ever written into `text`.
        std::str::from_utf8(&self.text[..usize::from(self.length)]).unwrap_or_default()
    }
}

impl fmt::Display for Kcv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.to_hex().as_str())
    }
}

impl fmt::Debug for Kcv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kcv({self})")
    }
}

impl std::str::FromStr for Kcv {
    type Err = KcvError;

    /// Upper- or lower-case hex of either family (6 or 10 digits).
    fn from_str(text: &str) -> Result<Kcv, KcvError> {
        Kcv::from_hex_any(text)
    }
}

/// A check value equals its upper-case hex (as it is shown and stored).
impl PartialEq<str> for Kcv {
    fn eq(&self, other: &str) -> bool {
        const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
        other.len() == self.as_bytes().len() * 2
            && self
                .as_bytes()
                .iter()
                .flat_map(|byte| {
                    [
                        DIGITS[usize::from(byte >> 4)],
                        DIGITS[usize::from(byte & 15)],
                    ]
                })
                .eq(other.bytes())
    }
}

impl PartialEq<&str> for Kcv {
    fn eq(&self, other: &&str) -> bool {
        *self == **other
    }
}

impl PartialEq<String> for Kcv {
    fn eq(&self, other: &String) -> bool {
        *self == *other.as_str()
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
    Hex(HexError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_bytes_agree() {
        let kcv = Kcv::from_hex_any("08D7B4").unwrap();
        assert_eq!(kcv.family(), KeyFamily::Tdes);
        assert_eq!(kcv.to_string(), "08D7B4");
        assert!(kcv == "08D7B4" && kcv != "08d7b4" && kcv != "08D7B");
        assert_eq!(Kcv::from_bytes_any(kcv.as_bytes()), Ok(kcv));
        let aes = Kcv::from_hex(KeyFamily::Aes, "c1b9d3f8a2").unwrap();
        assert_eq!(aes.to_string(), "C1B9D3F8A2");
        assert_eq!(
            Kcv::from_leading_bytes(KeyFamily::Aes, [0xC1, 0xB9, 0xD3, 0xF8, 0xA2, 9, 9, 9]),
            aes
        );
        assert_eq!(
            Kcv::from_leading_bytes(KeyFamily::Tdes, [8, 0xD7, 0xB4, 1, 2, 3, 4, 5]),
            kcv
        );
    }

    #[test]
    fn errors_name_the_length_or_the_position() {
        assert_eq!(
            Kcv::from_hex_any("08D7"),
            Err(KcvError::UnknownLength { found: 4 })
        );
        assert_eq!(
            Kcv::from_hex(KeyFamily::Tdes, "08D7BZ"),
            Err(KcvError::Hex(HexError::NotHex { position: 6 }))
        );
        assert_eq!(
            Kcv::from_bytes_any(&[1, 2, 3, 4]),
            Err(KcvError::UnknownLength { found: 8 })
        );
    }

    proptest::proptest! {
        #[test]
        fn the_hex_is_the_bytes_upper_case_and_parses_back(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 5),
            aes in proptest::prelude::any::<bool>(),
        ) {
            let bytes = if aes { &bytes[..] } else { &bytes[..3] };
            let kcv = Kcv::from_bytes_any(bytes).unwrap();
            let hex = kcv.to_hex();
            proptest::prop_assert_eq!(hex.as_str(), hex::encode_upper(bytes));
            proptest::prop_assert_eq!(kcv.to_string(), hex.as_str());
            proptest::prop_assert_eq!(Kcv::from_hex_any(hex.as_str()), Ok(kcv));
        }
    }
}
