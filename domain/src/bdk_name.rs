//! The name of a base derivation key (BDK) that device profiles refer to, e.g. `PIN`: 1 to 16 characters `A-Z 0-9 - _`.

use std::fmt;
use std::str::FromStr;

use crate::names::NameError;

/// Longest BDK name.
pub const MAX_BDK_NAME_LENGTH: usize = 16;

/// What a BDK name may contain, as error messages say it.
const ALLOWED: &str = "A-Z 0-9 - _";

/// A BDK's name, as a device profile refers to it: 1 to 16 characters, `A-Z 0-9 - _`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BdkName(String);

impl BdkName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_allowed(character: char) -> bool {
    character.is_ascii_uppercase() || character.is_ascii_digit() || matches!(character, '-' | '_')
}

impl FromStr for BdkName {
    type Err = NameError;

    /// Never quotes the text in its error.
    fn from_str(text: &str) -> Result<Self, NameError> {
        if text.is_empty() || text.len() > MAX_BDK_NAME_LENGTH {
            return Err(NameError::Length {
                max: MAX_BDK_NAME_LENGTH,
                found: text.len(),
            });
        }
        if let Some(position) = text.chars().position(|character| !is_allowed(character)) {
            return Err(NameError::Character {
                position: position + 1,
                allowed: ALLOWED,
            });
        }
        Ok(BdkName(text.to_owned()))
    }
}

impl fmt::Display for BdkName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_one_to_sixteen_allowed_characters() {
        for good in ["PIN", "DATA", "MAC_2", "PIN-2026", "A", "ABCDEFGHIJKLMNOP"] {
            assert_eq!(good.parse::<BdkName>().unwrap().as_str(), good);
        }
        assert_eq!(
            "".parse::<BdkName>(),
            Err(NameError::Length { max: 16, found: 0 })
        );
        assert_eq!(
            "ABCDEFGHIJKLMNOPQ".parse::<BdkName>(),
            Err(NameError::Length { max: 16, found: 17 })
        );
        assert_eq!(
            "pin".parse::<BdkName>().unwrap_err().to_string(),
            "character 1 is not allowed; allowed are A-Z 0-9 - _"
        );
        assert!(matches!(
            "PIN.1".parse::<BdkName>(),
            Err(NameError::Character { position: 4, .. })
        ));
    }
}
