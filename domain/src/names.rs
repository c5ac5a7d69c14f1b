//! The names a key file carries: the batch id and the device id (the appliance a key file is for).

use std::fmt;
use std::str::FromStr;

/// Longest batch id.
pub const MAX_BATCH_ID_LENGTH: usize = 32;
/// Longest device id.
pub const MAX_DEVICE_ID_LENGTH: usize = 32;

/// Why a batch or device id is not valid. Never quotes the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("must be 1 to {max} characters, got {found}")]
    Length { max: usize, found: usize },
    #[error("character {position} is not allowed; allowed are {allowed}")]
    Character {
        position: usize,
        allowed: &'static str,
    },
}

fn check(
    text: &str,
    max: usize,
    allowed: impl Fn(char) -> bool,
    description: &'static str,
) -> Result<(), NameError> {
    if text.is_empty() || text.len() > max {
        return Err(NameError::Length {
            max,
            found: text.len(),
        });
    }
    if let Some(position) = text.chars().position(|c| !allowed(c)) {
        return Err(NameError::Character {
            position: position + 1,
            allowed: description,
        });
    }
    Ok(())
}

/// A key file's batch id: 1 to 32 characters, `A-Z 0-9 . _ -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BatchId(String);

impl FromStr for BatchId {
    type Err = NameError;
    fn from_str(text: &str) -> Result<Self, NameError> {
        check(
            text,
            MAX_BATCH_ID_LENGTH,
            |c| c.is_ascii_uppercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'),
            "A-Z 0-9 . _ -",
        )?;
        Ok(BatchId(text.to_owned()))
    }
}

/// The appliance a key file is for: 1 to 32 characters, `A-Z 0-9 -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(String);

impl FromStr for DeviceId {
    type Err = NameError;
    fn from_str(text: &str) -> Result<Self, NameError> {
        check(
            text,
            MAX_DEVICE_ID_LENGTH,
            |c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-',
            "A-Z 0-9 -",
        )?;
        Ok(DeviceId(text.to_owned()))
    }
}

macro_rules! text_value {
    ($($name:ident),*) => {$(
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }
    )*};
}
text_value!(BatchId, DeviceId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_rule_not_the_text() {
        assert!("BATCH-2026.01_A".parse::<BatchId>().is_ok());
        assert_eq!(
            "batch".parse::<BatchId>().unwrap_err().to_string(),
            "character 1 is not allowed; allowed are A-Z 0-9 . _ -"
        );
        assert_eq!(
            "".parse::<DeviceId>().unwrap_err().to_string(),
            "must be 1 to 32 characters, got 0"
        );
        assert_eq!(
            "KM.1".parse::<DeviceId>(),
            Err(NameError::Character {
                position: 3,
                allowed: "A-Z 0-9 -"
            })
        );
    }
}
