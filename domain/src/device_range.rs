//! The range of DUKPT device ids a BDK assigns to this appliance (`first-last`, inclusive), so that two appliances of one site never overlap.

use std::fmt;
use std::str::FromStr;

use crate::algorithm::KeyFamily;
use crate::dukpt_device::{DukptDeviceId, DukptDeviceIdError};

/// Device ids `first` to `last`, both included, of one kind; never empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceRange {
    first: DukptDeviceId,
    last: DukptDeviceId,
}

/// Why two ids or a text are not a device range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceRangeError {
    #[error("a device range is first-last in hex (e.g. 00000-7FFFF or 00000000-0000FFFF)")]
    Format,
    #[error("a device range runs from a {first} to a {last} device id; both ends are of one kind")]
    KindsDiffer { first: KeyFamily, last: KeyFamily },
    #[error("the device range {first}-{last} is empty: its first id is above its last")]
    Empty {
        first: DukptDeviceId,
        last: DukptDeviceId,
    },
    #[error(transparent)]
    Id(#[from] DukptDeviceIdError),
}

impl DeviceRange {
    /// The ids `first` to `last` (both included), of one kind, `first <= last`.
    pub fn new(first: DukptDeviceId, last: DukptDeviceId) -> Result<DeviceRange, DeviceRangeError> {
        if first.family() != last.family() {
            return Err(DeviceRangeError::KindsDiffer {
                first: first.family(),
                last: last.family(),
            });
        }
        if first.value() > last.value() {
            return Err(DeviceRangeError::Empty { first, last });
        }
        Ok(DeviceRange { first, last })
    }

    /// The range `first` to `last` of a `family` BDK, from numbers (as SQLite stores them).
    pub fn from_numbers(
        family: KeyFamily,
        first: i64,
        last: i64,
    ) -> Result<DeviceRange, DeviceRangeError> {
        DeviceRange::new(
            DukptDeviceId::from_number(family, first)?,
            DukptDeviceId::from_number(family, last)?,
        )
    }

    /// Every device id a `family` BDK has.
    pub fn whole(family: KeyFamily) -> DeviceRange {
        DeviceRange {
            first: DukptDeviceId::lowest(family),
            last: DukptDeviceId::highest(family),
        }
    }

    pub fn first(&self) -> DukptDeviceId {
        self.first
    }

    pub fn last(&self) -> DukptDeviceId {
        self.last
    }

    /// The kind of DUKPT (and of BDK) the range belongs to.
    pub fn family(&self) -> KeyFamily {
        self.first.family()
    }

    /// How many device ids the range holds (at least 1).
    pub fn len(&self) -> u64 {
        u64::from(self.last.value()) - u64::from(self.first.value()) + 1
    }

    /// Never true: a range holds at least its first id.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether `id` is of the range's kind and within it.
    pub fn contains(&self, id: DukptDeviceId) -> bool {
        id.family() == self.family()
            && (self.first.value()..=self.last.value()).contains(&id.value())
    }
}

impl FromStr for DeviceRange {
    type Err = DeviceRangeError;

    /// `first-last`, each end in hex of its kind (5 digits TDES, 8 digits AES).
    fn from_str(text: &str) -> Result<DeviceRange, DeviceRangeError> {
        let (first, last) = text.split_once('-').ok_or(DeviceRangeError::Format)?;
        DeviceRange::new(first.parse()?, last.parse()?)
    }
}

impl fmt::Display for DeviceRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&format!("{}-{}", self.first, self.last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> DukptDeviceId {
        text.parse().unwrap()
    }

    #[test]
    fn a_range_is_first_to_last_of_one_kind() {
        let range: DeviceRange = "00100-001FF".parse().unwrap();
        assert_eq!((range.family(), range.len()), (KeyFamily::Tdes, 256));
        assert_eq!(range.to_string(), "00100-001FF");
        assert!(range.contains(id("00100")) && range.contains(id("001FF")));
        assert!(!range.contains(id("000FF")) && !range.contains(id("00200")));
        assert!(
            !range.contains(id("00000100")),
            "an AES id is never in a TDES range"
        );
        assert_eq!("00005-00005".parse::<DeviceRange>().unwrap().len(), 1);
        assert_eq!(
            DeviceRange::whole(KeyFamily::Tdes).to_string(),
            "00000-7FFFF"
        );
        assert_eq!(DeviceRange::whole(KeyFamily::Aes).len(), 1 << 32);
        assert_eq!(
            DeviceRange::from_numbers(KeyFamily::Aes, 16, 31)
                .unwrap()
                .to_string(),
            "00000010-0000001F"
        );
    }

    #[test]
    fn refusals_say_why() {
        assert_eq!(
            "001FF-00100"
                .parse::<DeviceRange>()
                .unwrap_err()
                .to_string(),
            "the device range 001FF-00100 is empty: its first id is above its last"
        );
        assert_eq!(
            "00100-00000200".parse::<DeviceRange>(),
            Err(DeviceRangeError::KindsDiffer {
                first: KeyFamily::Tdes,
                last: KeyFamily::Aes
            })
        );
        assert_eq!(
            "00100".parse::<DeviceRange>(),
            Err(DeviceRangeError::Format)
        );
        assert!(matches!(
            "00100-80000".parse::<DeviceRange>(),
            Err(DeviceRangeError::Id(DukptDeviceIdError::TooLarge { .. }))
        ));
        assert!(DeviceRange::from_numbers(KeyFamily::Tdes, 0, 0x80000).is_err());
    }
}
