//! A DUKPT device id: TDES, the 19-bit device part of the KSN (0 to 7FFFF, 5 hex digits); AES, the 32-bit derivation ID (8 hex digits).

use std::fmt;
use std::str::FromStr;

use crate::algorithm::KeyFamily;
use crate::hex_text::HexError;

/// The largest TDES device id: the KSN's device part has 19 bits.
pub const MAX_TDES_DEVICE_ID: u32 = 0x7_FFFF;
/// The largest AES device id (derivation ID): 32 bits.
pub const MAX_AES_DEVICE_ID: u32 = u32::MAX;

/// Which device under a BDK: the part of the initial KSN (TDES) or initial key ID (AES) that
/// tells the terminals of one BDK apart. Knows its kind, so a TDES id never exceeds 19 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DukptDeviceId {
    family: KeyFamily,
    value: u32,
}

/// Why a number or text is not a device id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DukptDeviceIdError {
    #[error("a {family} DUKPT device id is at most {max:X} (hex), got {value:X}")]
    TooLarge {
        family: KeyFamily,
        value: u64,
        max: u32,
    },
    #[error("a DUKPT device id is 5 hex digits (TDES) or 8 (AES), got {found}")]
    UnknownLength { found: usize },
    #[error("DUKPT device id {0}")]
    Hex(HexError),
}

impl DukptDeviceId {
    /// The largest device id of a `family` BDK.
    pub fn max_for(family: KeyFamily) -> u32 {
        match family {
            KeyFamily::Tdes => MAX_TDES_DEVICE_ID,
            KeyFamily::Aes => MAX_AES_DEVICE_ID,
        }
    }

    /// Hex digits of a `family` device id as text shows it.
    pub fn digits_for(family: KeyFamily) -> usize {
        match family {
            KeyFamily::Tdes => 5,
            KeyFamily::Aes => 8,
        }
    }

    /// The device id `value` under a `family` BDK, if it fits the family's bits.
    pub fn new(family: KeyFamily, value: u32) -> Result<DukptDeviceId, DukptDeviceIdError> {
        DukptDeviceId::from_number(family, i64::from(value))
    }

    /// The device id `value` (as SQLite stores it) under a `family` BDK.
    pub fn from_number(family: KeyFamily, value: i64) -> Result<DukptDeviceId, DukptDeviceIdError> {
        let max = DukptDeviceId::max_for(family);
        u32::try_from(value)
            .ok()
            .filter(|value| *value <= max)
            .map(|value| DukptDeviceId { family, value })
            .ok_or(DukptDeviceIdError::TooLarge {
                family,
                value: value.unsigned_abs(),
                max,
            })
    }

    /// Device id 0 of a `family` BDK.
    pub fn lowest(family: KeyFamily) -> DukptDeviceId {
        DukptDeviceId { family, value: 0 }
    }

    /// The largest device id of a `family` BDK.
    pub fn highest(family: KeyFamily) -> DukptDeviceId {
        DukptDeviceId {
            family,
            value: DukptDeviceId::max_for(family),
        }
    }

    /// The number.
    pub fn value(self) -> u32 {
        self.value
    }

    /// The kind of DUKPT the id belongs to.
    pub fn family(self) -> KeyFamily {
        self.family
    }

    /// The id `count` places after this one, if it still fits the family's bits.
    pub fn checked_add(self, count: u32) -> Option<DukptDeviceId> {
        self.value
            .checked_add(count)
            .and_then(|value| DukptDeviceId::new(self.family, value).ok())
    }
}

impl From<DukptDeviceId> for i64 {
    fn from(id: DukptDeviceId) -> i64 {
        i64::from(id.value)
    }
}

impl FromStr for DukptDeviceId {
    type Err = DukptDeviceIdError;

    /// Hex of either kind, told apart by length: 5 digits TDES, 8 digits AES.
    fn from_str(text: &str) -> Result<DukptDeviceId, DukptDeviceIdError> {
        let family = match text.len() {
            5 => KeyFamily::Tdes,
            8 => KeyFamily::Aes,
            found => return Err(DukptDeviceIdError::UnknownLength { found }),
        };
        if let Some(position) = text
            .chars()
            .position(|character| !character.is_ascii_hexdigit())
        {
            return Err(DukptDeviceIdError::Hex(HexError::NotHex {
                position: position + 1,
            }));
        }
        // Five or eight hex digits, each checked: always a u32.
        let value = u32::from_str_radix(text, 16)
            .map_err(|_| DukptDeviceIdError::UnknownLength { found: text.len() })?;
        DukptDeviceId::new(family, value)
    }
}

impl fmt::Display for DukptDeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = format!(
            "{:0width$X}",
            self.value,
            width = DukptDeviceId::digits_for(self.family)
        );
        f.pad(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tdes_ids_have_nineteen_bits_and_aes_ids_thirty_two() {
        let tdes: DukptDeviceId = "19087".parse().unwrap();
        assert_eq!((tdes.family(), tdes.value()), (KeyFamily::Tdes, 0x19087));
        assert_eq!(tdes.to_string(), "19087");
        assert_eq!(
            "7FFFF".parse::<DukptDeviceId>().unwrap().value(),
            MAX_TDES_DEVICE_ID
        );
        assert_eq!(
            "80000".parse::<DukptDeviceId>(),
            Err(DukptDeviceIdError::TooLarge {
                family: KeyFamily::Tdes,
                value: 0x80000,
                max: 0x7FFFF
            })
        );
        let aes: DukptDeviceId = "fffffffe".parse().unwrap();
        assert_eq!(aes.to_string(), "FFFFFFFE");
        assert_eq!(aes.checked_add(1).map(DukptDeviceId::value), Some(u32::MAX));
        assert_eq!(aes.checked_add(2), None);
        assert_eq!(
            DukptDeviceId::new(KeyFamily::Tdes, 0x7FFFF)
                .unwrap()
                .checked_add(1),
            None
        );
        assert!(DukptDeviceId::from_number(KeyFamily::Aes, -1).is_err());
        assert_eq!(
            DukptDeviceId::new(KeyFamily::Aes, 1).unwrap().to_string(),
            "00000001"
        );
    }

    #[test]
    fn errors_name_the_length_or_the_position() {
        assert_eq!(
            "123".parse::<DukptDeviceId>(),
            Err(DukptDeviceIdError::UnknownLength { found: 3 })
        );
        assert_eq!(
            "1234X".parse::<DukptDeviceId>(),
            Err(DukptDeviceIdError::Hex(HexError::NotHex { position: 5 }))
        );
        assert_eq!(
            "X2345678".parse::<DukptDeviceId>(),
            Err(DukptDeviceIdError::Hex(HexError::NotHex { position: 1 }))
        );
    }

    proptest! {
        #[test]
        fn every_id_round_trips(tdes in 0u32..=MAX_TDES_DEVICE_ID, aes in any::<u32>()) {
            for id in [
                DukptDeviceId::new(KeyFamily::Tdes, tdes).unwrap(),
                DukptDeviceId::new(KeyFamily::Aes, aes).unwrap(),
            ] {
                prop_assert_eq!(id.to_string().parse::<DukptDeviceId>(), Ok(id));
                prop_assert_eq!(DukptDeviceId::from_number(id.family(), i64::from(id)), Ok(id));
            }
        }
    }
}
