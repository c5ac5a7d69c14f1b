//! Serde conversions (feature `serde`): the key index as a number, every other value as its text; deserializing applies every rule.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::{
    BatchId, BdkId, BdkName, DeviceId, DeviceRange, DukptDeviceId, HardwareSerial, Kcv,
    KeyAlgorithm, KeyIndex, Smn, TerminalModel,
};

impl Serialize for KeyIndex {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u32(self.value())
    }
}

impl<'de> Deserialize<'de> for KeyIndex {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let number = u32::deserialize(deserializer)?;
        KeyIndex::try_from(number).map_err(de::Error::custom)
    }
}

/// Reads a string and parses it with the type's `FromStr`.
struct TextVisitor<T>(std::marker::PhantomData<T>, &'static str);

impl<T> Visitor<'_> for TextVisitor<T>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    type Value = T;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.1)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
        text.parse().map_err(E::custom)
    }
}

macro_rules! text_serde {
    ($($name:ty => $expecting:literal),*) => {$(
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_str(TextVisitor(std::marker::PhantomData, $expecting))
            }
        }
    )*};
}
text_serde!(
    HardwareSerial => "a hardware serial (1-24 characters A-Z 0-9)",
    TerminalModel => "a terminal model (1-32 printable ASCII characters)",
    Smn => "an SMN (a hardware serial and 8 index digits)",
    BatchId => "a batch id",
    DeviceId => "a device id",
    Kcv => "a check value (6 or 10 hex digits)",
    KeyAlgorithm => "a key algorithm",
    BdkName => "a BDK name (1-16 characters A-Z 0-9 - _)",
    BdkId => "a BDK identifier (10 hex digits TDES, 8 AES)",
    DukptDeviceId => "a DUKPT device id (5 hex digits TDES, 8 AES)",
    DeviceRange => "a DUKPT device range (first-last in hex)"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_carries_numbers_and_text_and_checks_them() {
        let index: KeyIndex = serde_json::from_str("278").unwrap();
        assert_eq!(serde_json::to_string(&index).unwrap(), "278");
        assert!(serde_json::from_str::<KeyIndex>("100000000").is_err());
        let smn: Smn = serde_json::from_str("\"123L013K00000278\"").unwrap();
        assert_eq!(smn.key_index(), index);
        assert_eq!(serde_json::to_string(&smn).unwrap(), "\"123L013K00000278\"");
        assert!(serde_json::from_str::<HardwareSerial>("\"abc\"").is_err());
        assert!(serde_json::from_str::<Kcv>("\"08D7\"").is_err());
    }

    #[test]
    fn dukpt_values_travel_as_their_text() {
        let range: DeviceRange = serde_json::from_str("\"00100-001FF\"").unwrap();
        assert_eq!(serde_json::to_string(&range).unwrap(), "\"00100-001FF\"");
        let id: BdkId = serde_json::from_str("\"ffff987654\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"FFFF987654\"");
        let device: DukptDeviceId = serde_json::from_str("\"19087\"").unwrap();
        assert_eq!(device.value(), 0x19087);
        let name: BdkName = serde_json::from_str("\"PIN\"").unwrap();
        assert_eq!(name, "PIN");
        assert!(serde_json::from_str::<BdkName>("\"pin\"").is_err());
        assert!(serde_json::from_str::<DukptDeviceId>("\"80000\"").is_err());
        assert!(serde_json::from_str::<DeviceRange>("\"00200-00100\"").is_err());
    }
}
