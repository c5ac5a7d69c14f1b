//! keymother's domain values, each parsed once into a type that cannot hold an invalid value; every rule about them is written here and nowhere else.
//!
//! - [`KeyIndex`]: a master key's index, 0 to 99,999,999 (eight digits).
//! - [`HardwareSerial`], [`TerminalModel`], [`Smn`]: a terminal's identity and its security
//!   module number (serial + key index padded to eight digits).
//! - [`DeviceId`], [`BatchId`]: whom a key file is for, and which batch it is.
//! - [`Kcv`]: a key check value (3 bytes for TDES, 5 for AES).
//! - [`KeyAlgorithm`], [`KeyFamily`], [`Tr31Version`]: what a key is, and the key block
//!   version that protects keys under a key of each family.
//! - [`BdkName`], [`BdkId`], [`DukptDeviceId`], [`DeviceRange`]: DUKPT's base derivation keys
//!   (the name a device profile uses, the identifier the KSN carries) and the device ids a BDK
//!   assigns to this appliance.
//!
//! With the feature `sqlite` each value converts to and from SQLite (`rusqlite`); with `serde`,
//! each (de)serializes, and deserializing checks the same rules as parsing.

mod algorithm;
mod bdk_id;
mod bdk_name;
mod check_value;
mod device_range;
mod dukpt_device;
mod hex_text;
mod identity;
mod index;
mod names;
#[cfg(feature = "serde")]
mod serde_impls;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use algorithm::{AlgorithmError, KeyAlgorithm, KeyFamily, Tr31Version};
pub use bdk_id::{AES_BDK_ID_LENGTH, BdkId, BdkIdError, TDES_BDK_ID_LENGTH};
pub use bdk_name::{BdkName, MAX_BDK_NAME_LENGTH};
pub use check_value::{Kcv, KcvError, KcvHex};
pub use device_range::{DeviceRange, DeviceRangeError};
pub use dukpt_device::{DukptDeviceId, DukptDeviceIdError, MAX_AES_DEVICE_ID, MAX_TDES_DEVICE_ID};
pub use hex_text::HexError;
pub use identity::{
    HardwareSerial, IdentityError, MAX_HARDWARE_SERIAL_LENGTH, MAX_SMN_LENGTH,
    MAX_TERMINAL_MODEL_LENGTH, MIN_SMN_LENGTH, SMN_INDEX_DIGITS, Smn, TerminalModel,
};
pub use index::{KeyIndex, KeyIndexError, MAX_KEY_INDEX};
pub use names::{BatchId, DeviceId, MAX_BATCH_ID_LENGTH, MAX_DEVICE_ID_LENGTH, NameError};

/// Text values compare with text, so a caller holding a `&str` reads naturally.
macro_rules! compares_with_text {
    ($($name:ty),*) => {$(
        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }
        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                self.as_str() == other.as_str()
            }
        }
    )*};
}
compares_with_text!(
    HardwareSerial,
    TerminalModel,
    Smn,
    BatchId,
    DeviceId,
    BdkName
);
