//! The key file header as types that cannot hold invalid values: batch, issuer, device, index, time.

use std::fmt;
use std::str::FromStr;

use keymother_crypto::{Kcv, KeyAlgorithm};
pub use keymother_domain::{BatchId, DeviceId, KeyIndex};
use time::OffsetDateTime;
use time::format_description::FormatItem;
use time::macros::format_description;

/// The first line of every version-1 key file.
pub const MAGIC: &str = "KEYMOTHER-KEYFILE/1";

/// Header field names, in the order they must appear (lines 2 to 8).
pub(crate) const FIELD_NAMES: [&str; 7] = [
    "batch-id",
    "issuer",
    "algorithm",
    "record-count",
    "device-id",
    "kek-kcv",
    "created",
];

fn check_charset(
    text: &str,
    max_length: usize,
    allowed: impl Fn(char) -> bool,
    allowed_description: &str,
) -> Result<(), String> {
    if text.is_empty() || text.len() > max_length {
        return Err(format!(
            "must be 1 to {max_length} characters, got {}",
            text.len()
        ));
    }
    if let Some(position) = text.chars().position(|c| !allowed(c)) {
        return Err(format!(
            "character {} is not allowed; allowed are {allowed_description}",
            position + 1
        ));
    }
    Ok(())
}

/// Identifies one key file; an appliance imports each batch once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer(String);

impl FromStr for Issuer {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        check_charset(text, 64, |c| (' '..='~').contains(&c), "printable ASCII")?;
        if text.starts_with(' ') || text.ends_with(' ') {
            return Err("must not start or end with a space".to_owned());
        }
        Ok(Issuer(text.to_owned()))
    }
}

/// The appliance a key file is bound to.
macro_rules! text_newtype_common {
    ($($name:ident),*) => {$(
        impl $name {
            /// The value as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}
text_newtype_common!(Issuer);

/// A key index: 0 to 99,999,999, written as exactly 8 digits.
const CREATED_FORMAT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

/// When the front end made the file, UTC, whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreatedAt(OffsetDateTime);

impl CreatedAt {
    /// A time, truncated to whole seconds.
    pub fn new(at: OffsetDateTime) -> CreatedAt {
        let at = at.to_offset(time::UtcOffset::UTC);
        CreatedAt(at.replace_nanosecond(0).unwrap_or(at))
    }

    /// The time.
    pub fn time(self) -> OffsetDateTime {
        self.0
    }
}

impl FromStr for CreatedAt {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        time::PrimitiveDateTime::parse(text, CREATED_FORMAT)
            .map(|at| CreatedAt(at.assume_utc()))
            .map_err(|error| format!("{error}; expected YYYY-MM-DDTHH:MM:SSZ in UTC"))
    }
}

impl fmt::Display for CreatedAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.format(CREATED_FORMAT).map_err(|_| fmt::Error)?;
        f.write_str(&text)
    }
}

/// The parsed header of a key file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFileHeader {
    pub batch_id: BatchId,
    pub issuer: Issuer,
    /// The master keys' algorithm.
    pub algorithm: KeyAlgorithm,
    /// How many records follow: 1 to 99,999,999.
    pub record_count: u32,
    pub device_id: DeviceId,
    /// Check value of the KEK the records are wrapped under.
    pub kek_kcv: Kcv,
    pub created: CreatedAt,
}

impl KeyFileHeader {
    /// The header's values in [`FIELD_NAMES`] order, as written in the file.
    pub(crate) fn field_values(&self) -> [String; 7] {
        [
            self.batch_id.to_string(),
            self.issuer.to_string(),
            self.algorithm.to_string(),
            self.record_count.to_string(),
            self.device_id.to_string(),
            self.kek_kcv.to_string(),
            self.created.to_string(),
        ]
    }
}

/// Accumulates header fields as the reader meets them, each parsed on arrival.
#[derive(Default)]
pub(crate) struct HeaderFields {
    batch_id: Option<BatchId>,
    issuer: Option<Issuer>,
    algorithm: Option<KeyAlgorithm>,
    record_count: Option<u32>,
    device_id: Option<DeviceId>,
    kek_kcv: Option<Kcv>,
    created: Option<CreatedAt>,
}

impl HeaderFields {
    /// Parses the value of field number `field` (index into [`FIELD_NAMES`]).
    pub(crate) fn set(&mut self, field: usize, value: &str) -> Result<(), String> {
        match field {
            0 => self.batch_id = Some(value.parse().map_err(|error| format!("{error}"))?),
            1 => self.issuer = Some(value.parse()?),
            2 => {
                self.algorithm = Some(value.parse().map_err(|_| {
                    "not a key algorithm; expected one of TDES-2KEY, TDES-3KEY, AES-128, AES-192, AES-256"
                        .to_owned()
                })?);
            }
            3 => self.record_count = Some(parse_record_count(value)?),
            4 => self.device_id = Some(value.parse().map_err(|error| format!("{error}"))?),
            5 => {
                let not_a_kcv =
                    || "not 6 (TDES KEK) or 10 (AES KEK) upper-case hex digits".to_owned();
                if value.bytes().any(|b| b.is_ascii_lowercase()) {
                    return Err(not_a_kcv());
                }
                self.kek_kcv = Some(Kcv::from_hex_any(value).map_err(|_| not_a_kcv())?);
            }
            _ => self.created = Some(value.parse()?),
        }
        Ok(())
    }

    /// The header, once every field has been set.
    pub(crate) fn finish(self) -> Option<KeyFileHeader> {
        Some(KeyFileHeader {
            batch_id: self.batch_id?,
            issuer: self.issuer?,
            algorithm: self.algorithm?,
            record_count: self.record_count?,
            device_id: self.device_id?,
            kek_kcv: self.kek_kcv?,
            created: self.created?,
        })
    }
}

fn parse_record_count(text: &str) -> Result<u32, String> {
    let valid_digits = !text.is_empty()
        && text.len() <= 8
        && text.bytes().all(|b| b.is_ascii_digit())
        && !text.starts_with('0');
    match text.parse::<u32>() {
        Ok(count) if valid_digits => Ok(count),
        _ => Err("not a count from 1 to 99999999 without leading zeros".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_reject_bad_characters_with_position() {
        assert_eq!(
            "B-2026/1".parse::<BatchId>().unwrap_err().to_string(),
            "character 7 is not allowed; allowed are A-Z 0-9 . _ -"
        );
        assert!("km-0001".parse::<DeviceId>().is_err());
        assert!("KM-0001".parse::<DeviceId>().is_ok());
        assert!(" ACME".parse::<Issuer>().is_err());
        assert!("".parse::<BatchId>().is_err());
    }

    #[test]
    fn key_index_is_exactly_eight_digits() {
        assert_eq!("00000278".parse::<KeyIndex>().unwrap().value(), 278);
        assert_eq!(KeyIndex::new(278).unwrap().to_string(), "00000278");
        for bad in ["278", "000002780", "0000027A", "+0000278", " 0000278"] {
            assert!(bad.parse::<KeyIndex>().is_err(), "{bad}");
        }
        assert!(KeyIndex::new(100_000_000).is_none());
    }

    #[test]
    fn created_round_trips_and_rejects_offsets() {
        let created: CreatedAt = "2026-11-21T08:00:00Z".parse().unwrap();
        assert_eq!(created.to_string(), "2026-11-21T08:00:00Z");
        assert!("2026-11-21T08:00:00+01:00".parse::<CreatedAt>().is_err());
        assert!("2026-13-21T08:00:00Z".parse::<CreatedAt>().is_err());
    }

    #[test]
    fn record_count_has_no_leading_zeros() {
        assert_eq!(parse_record_count("1000").unwrap(), 1000);
        for bad in ["0", "01000", "-1", "100000000", ""] {
            assert!(parse_record_count(bad).is_err(), "{bad}");
        }
    }
}
