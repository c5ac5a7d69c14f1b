//! The key index: which master key of the inventory, 0 to 99,999,999, written with eight digits.

use std::fmt;
use std::str::FromStr;

/// The largest key index: an SMN carries the index in eight digits.
pub const MAX_KEY_INDEX: u32 = 99_999_999;

/// A key index, 0 to 99,999,999. Shown (and written in key files and SMNs) as eight digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyIndex(u32);

/// Why a number or text is not a key index.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyIndexError {
    #[error("key index {0} does not fit the SMN's eight digits (maximum 99999999)")]
    TooLarge(u64),
    #[error("a key index is exactly eight digits 0-9")]
    NotEightDigits,
}

impl KeyIndex {
    /// The largest key index, as a number.
    pub const MAX: u32 = MAX_KEY_INDEX;
    /// The first key index.
    pub const ZERO: KeyIndex = KeyIndex(0);

    /// The index `value`, if it has at most eight digits.
    pub fn new(value: u32) -> Option<KeyIndex> {
        (value <= KeyIndex::MAX).then_some(KeyIndex(value))
    }

    /// The number.
    pub fn value(self) -> u32 {
        self.0
    }

    /// The index `count` places after this one, if it still has eight digits.
    pub fn checked_add(self, count: u32) -> Option<KeyIndex> {
        self.0.checked_add(count).and_then(KeyIndex::new)
    }
}

impl TryFrom<u32> for KeyIndex {
    type Error = KeyIndexError;

    fn try_from(value: u32) -> Result<KeyIndex, KeyIndexError> {
        KeyIndex::new(value).ok_or(KeyIndexError::TooLarge(u64::from(value)))
    }
}

impl TryFrom<i64> for KeyIndex {
    type Error = KeyIndexError;

    fn try_from(value: i64) -> Result<KeyIndex, KeyIndexError> {
        u32::try_from(value)
            .ok()
            .and_then(KeyIndex::new)
            .ok_or(KeyIndexError::TooLarge(value.unsigned_abs()))
    }
}

impl From<KeyIndex> for u32 {
    fn from(index: KeyIndex) -> u32 {
        index.0
    }
}

impl From<KeyIndex> for i64 {
    fn from(index: KeyIndex) -> i64 {
        i64::from(index.0)
    }
}

impl FromStr for KeyIndex {
    type Err = KeyIndexError;

    /// Exactly eight digits, as key files and SMNs write it.
    fn from_str(text: &str) -> Result<Self, KeyIndexError> {
        if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(KeyIndexError::NotEightDigits);
        }
        text.parse()
            .map(KeyIndex)
            .map_err(|_| KeyIndexError::NotEightDigits)
    }
}

impl fmt::Display for KeyIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08}", self.0)
    }
}

/// A key index compares with its number, so a test or a caller holding a `u32` reads naturally.
impl PartialEq<u32> for KeyIndex {
    fn eq(&self, other: &u32) -> bool {
        self.0 == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn eight_digits_both_ways() {
        assert_eq!("00000278".parse::<KeyIndex>().unwrap().value(), 278);
        assert_eq!(KeyIndex::new(278).unwrap().to_string(), "00000278");
        assert_eq!(
            KeyIndex::try_from(99_999_999u32).unwrap().to_string(),
            "99999999"
        );
        assert_eq!(
            KeyIndex::try_from(100_000_000u32),
            Err(KeyIndexError::TooLarge(100_000_000))
        );
        assert_eq!(KeyIndex::try_from(-1i64), Err(KeyIndexError::TooLarge(1)));
        for bad in ["278", "0000027X", "000000278", "+0000278", ""] {
            assert_eq!(
                bad.parse::<KeyIndex>(),
                Err(KeyIndexError::NotEightDigits),
                "{bad}"
            );
        }
        assert_eq!(
            KeyIndex::new(99_999_998).unwrap().checked_add(1),
            KeyIndex::new(99_999_999)
        );
        assert_eq!(KeyIndex::new(99_999_999).unwrap().checked_add(1), None);
    }

    proptest! {
        #[test]
        fn every_index_round_trips(value in 0u32..=MAX_KEY_INDEX) {
            let index = KeyIndex::new(value).unwrap();
            prop_assert_eq!(index.to_string().parse::<KeyIndex>(), Ok(index));
            prop_assert_eq!(KeyIndex::try_from(i64::from(index)), Ok(index));
        }
    }
}
