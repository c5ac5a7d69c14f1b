//! Terminal identities: hardware serial, model, and the security module number (SMN) built from serial and key index (the SMN rule, written once).

use std::fmt;
use std::str::FromStr;

use crate::index::KeyIndex;

/// Longest hardware serial.
pub const MAX_HARDWARE_SERIAL_LENGTH: usize = 24;
/// Longest terminal model name.
pub const MAX_TERMINAL_MODEL_LENGTH: usize = 32;
/// Digits of the key index in an SMN.
pub const SMN_INDEX_DIGITS: usize = 8;
/// Shortest SMN: one serial character and the eight index digits.
pub const MIN_SMN_LENGTH: usize = 1 + SMN_INDEX_DIGITS;
/// Longest SMN: a 24-character serial and the eight index digits.
pub const MAX_SMN_LENGTH: usize = MAX_HARDWARE_SERIAL_LENGTH + SMN_INDEX_DIGITS;

/// Why an identity is not valid. Names what was being checked and where it went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("{what} is empty; it needs 1 to {max} characters")]
    Empty { what: &'static str, max: usize },
    #[error("{what} is {length} characters long; at most {max} are allowed")]
    TooLong {
        what: &'static str,
        length: usize,
        max: usize,
    },
    #[error("{what}: character {position} is {found:?}; allowed: {allowed}")]
    BadCharacter {
        what: &'static str,
        position: usize,
        found: char,
        allowed: &'static str,
    },
    #[error(
        "an SMN is {length} characters long; it needs 9 to 32 (a 1-24 character hardware serial and 8 index digits)"
    )]
    SmnLength { length: usize },
    #[error(
        "SMN: character {position} is {found:?}; the last 8 characters are the key index digits 0-9"
    )]
    SmnIndexNotDigits { position: usize, found: char },
}

const SERIAL_CHARACTERS: &str = "A-Z and 0-9";
const PRINTABLE: &str = "printable ASCII (0x20-0x7E)";

fn is_serial_character(character: char) -> bool {
    character.is_ascii_uppercase() || character.is_ascii_digit()
}

fn is_printable(character: char) -> bool {
    (' '..='~').contains(&character)
}

/// Checks length and characters of an identity field.
fn check(
    what: &'static str,
    text: &str,
    max: usize,
    allowed: &'static str,
    is_allowed: fn(char) -> bool,
) -> Result<(), IdentityError> {
    if let Some((position, found)) = text
        .chars()
        .enumerate()
        .find(|&(_, character)| !is_allowed(character))
    {
        return Err(IdentityError::BadCharacter {
            what,
            position: position + 1,
            found,
            allowed,
        });
    }
    match text.len() {
        0 => Err(IdentityError::Empty { what, max }),
        length if length > max => Err(IdentityError::TooLong { what, length, max }),
        _ => Ok(()),
    }
}

/// A terminal's hardware serial: 1 to 24 characters, `A-Z` and `0-9` (upper case).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HardwareSerial(String);

impl HardwareSerial {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for HardwareSerial {
    type Err = IdentityError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        check(
            "hardware serial",
            text,
            MAX_HARDWARE_SERIAL_LENGTH,
            SERIAL_CHARACTERS,
            is_serial_character,
        )?;
        Ok(HardwareSerial(text.to_owned()))
    }
}

impl fmt::Display for HardwareSerial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// A terminal's model name: 1 to 32 printable ASCII characters (0x20-0x7E).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TerminalModel(String);

impl TerminalModel {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for TerminalModel {
    type Err = IdentityError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        check(
            "terminal model",
            text,
            MAX_TERMINAL_MODEL_LENGTH,
            PRINTABLE,
            is_printable,
        )?;
        Ok(TerminalModel(text.to_owned()))
    }
}

impl fmt::Display for TerminalModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// Security module number: the hardware serial followed by the key index zero-padded to eight
/// digits (`123L013K` and 278 give `123L013K00000278`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Smn(String);

impl Smn {
    /// The SMN of the terminal `serial` holding the key `key_index`.
    pub fn new(serial: &HardwareSerial, key_index: KeyIndex) -> Smn {
        Smn(format!("{serial}{key_index}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hardware serial part (everything before the last eight characters).
    pub fn hardware_serial(&self) -> HardwareSerial {
        HardwareSerial(self.0[..self.0.len() - SMN_INDEX_DIGITS].to_owned())
    }

    /// The key index part (the last eight digits).
    pub fn key_index(&self) -> KeyIndex {
        let value = self.0[self.0.len() - SMN_INDEX_DIGITS..]
            .bytes()
            .fold(0, |value, digit| value * 10 + u32::from(digit - b'0'));
        // Eight digits are at most 99,999,999: always a key index.
        KeyIndex::new(value).unwrap_or(KeyIndex::ZERO)
    }
}

impl FromStr for Smn {
    type Err = IdentityError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let length = text.chars().count();
        if !(MIN_SMN_LENGTH..=MAX_SMN_LENGTH).contains(&length) {
            return Err(IdentityError::SmnLength { length });
        }
        let serial_length = length - SMN_INDEX_DIGITS;
        if let Some((position, found)) = text
            .chars()
            .enumerate()
            .skip(serial_length)
            .find(|(_, character)| !character.is_ascii_digit())
        {
            return Err(IdentityError::SmnIndexNotDigits {
                position: position + 1,
                found,
            });
        }
        // Every character so far checked is ASCII, so the byte split is a character split.
        let serial: String = text.chars().take(serial_length).collect();
        check(
            "SMN hardware serial",
            &serial,
            MAX_HARDWARE_SERIAL_LENGTH,
            SERIAL_CHARACTERS,
            is_serial_character,
        )?;
        Ok(Smn(text.to_owned()))
    }
}

impl fmt::Display for Smn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smn_of_the_brief() {
        let serial: HardwareSerial = "123L013K".parse().unwrap();
        let smn = Smn::new(&serial, KeyIndex::new(278).unwrap());
        assert_eq!(smn.as_str(), "123L013K00000278");
        assert_eq!(smn.hardware_serial(), serial);
        assert_eq!(smn.key_index().value(), 278);
        assert_eq!("123L013K00000278".parse::<Smn>().unwrap(), smn);
    }

    #[test]
    fn smn_index_limit() {
        let serial: HardwareSerial = "A".parse().unwrap();
        let largest = KeyIndex::new(99_999_999).unwrap();
        assert_eq!(Smn::new(&serial, largest).as_str(), "A99999999");
        assert_eq!(KeyIndex::new(100_000_000), None);
    }

    #[test]
    fn serial_errors_name_the_problem() {
        assert!(matches!(
            "".parse::<HardwareSerial>(),
            Err(IdentityError::Empty { .. })
        ));
        assert!(matches!(
            "A".repeat(25).parse::<HardwareSerial>(),
            Err(IdentityError::TooLong { length: 25, .. })
        ));
        assert_eq!(
            "12a4".parse::<HardwareSerial>(),
            Err(IdentityError::BadCharacter {
                what: "hardware serial",
                position: 3,
                found: 'a',
                allowed: SERIAL_CHARACTERS,
            })
        );
        assert!("A".repeat(24).parse::<HardwareSerial>().is_ok());
    }

    #[test]
    fn model_errors() {
        assert!("Ingenico Move/5000 F".parse::<TerminalModel>().is_ok());
        assert!(matches!(
            "tab\there".parse::<TerminalModel>(),
            Err(IdentityError::BadCharacter { position: 4, .. })
        ));
        assert!(matches!(
            "é".parse::<TerminalModel>(),
            Err(IdentityError::BadCharacter { .. })
        ));
        assert!(matches!(
            "M".repeat(33).parse::<TerminalModel>(),
            Err(IdentityError::TooLong { length: 33, .. })
        ));
    }

    #[test]
    fn smn_parse_errors() {
        assert_eq!(
            "12345678".parse::<Smn>(),
            Err(IdentityError::SmnLength { length: 8 })
        );
        assert_eq!(
            "ABC0000027X".parse::<Smn>(),
            Err(IdentityError::SmnIndexNotDigits {
                position: 11,
                found: 'X'
            })
        );
        assert!(matches!(
            "abc00000278".parse::<Smn>(),
            Err(IdentityError::BadCharacter { position: 1, .. })
        ));
    }
}
