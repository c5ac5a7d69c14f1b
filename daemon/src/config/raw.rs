//! Stage 1 of the settings, one file raw: its serde structs (unknown keys refused, every value's span kept), and the file's text with its parsing and line lookup.
//!
//! Every key is optional here, because a drop-in may set any subset; what is required is
//! checked after merging (`merged`, then `validate`).

use std::ops::Range;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::ConfigError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    pub(super) data_dir: Option<Spanned<PathBuf>>,
    pub(super) dispensing: Option<RawDispensing>,
    pub(super) control: Option<RawControl>,
    pub(super) logging: Option<RawLogging>,
    pub(super) pki: Option<RawPki>,
    pub(super) operator: Option<RawOperator>,
    pub(super) bench: Option<RawBench>,
    pub(super) clock: Option<RawClock>,
    #[serde(rename = "port")]
    pub(super) ports: Option<Spanned<Vec<RawPort>>>,
    #[serde(rename = "profile")]
    pub(super) profiles: Option<Spanned<Vec<RawProfile>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDispensing {
    pub(super) quarantine_after: Option<Spanned<u32>>,
    pub(super) idle_timeout_seconds: Option<Spanned<u64>>,
    pub(super) certificate_requests_per_minute: Option<Spanned<u32>>,
    pub(super) require_expected_devices: Option<Spanned<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawControl {
    pub(super) socket: Option<Spanned<PathBuf>>,
    pub(super) group: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLogging {
    pub(super) target: Option<Spanned<String>>,
    pub(super) level: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPki {
    pub(super) device_ca: Option<Spanned<PathBuf>>,
    pub(super) kdh_ca: Option<Spanned<PathBuf>>,
    pub(super) operator_ca: Option<Spanned<PathBuf>>,
    pub(super) device_crl: Option<Spanned<PathBuf>>,
    pub(super) kdh_crl: Option<Spanned<PathBuf>>,
    pub(super) operator_crl: Option<Spanned<PathBuf>>,
    pub(super) operator_intermediates: Option<Spanned<PathBuf>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClock {
    pub(super) require_trusted: Option<Spanned<bool>>,
    pub(super) rtc_class: Option<Spanned<PathBuf>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOperator {
    pub(super) require: Option<Spanned<bool>>,
    pub(super) login_window_seconds: Option<Spanned<u64>>,
    pub(super) session_limit_seconds: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBench {
    pub(super) display: Option<Spanned<String>>,
    pub(super) i2c_bus: Option<Spanned<PathBuf>>,
    pub(super) i2c_address: Option<Spanned<i64>>,
    pub(super) gpio: Option<Spanned<String>>,
    pub(super) ready_led: Option<Spanned<RawLine>>,
    pub(super) busy_led: Option<Spanned<RawLine>>,
    pub(super) error_led: Option<Spanned<RawLine>>,
    pub(super) buzzer: Option<Spanned<RawLine>>,
    pub(super) tamper_pin: Option<Spanned<RawLine>>,
    pub(super) tamper_active_low: Option<Spanned<bool>>,
    pub(super) tamper_pull: Option<Spanned<String>>,
    pub(super) tamper_debounce_ms: Option<Spanned<i64>>,
    pub(super) low_inventory: Option<Spanned<i64>>,
    pub(super) require_tamper_input: Option<Spanned<bool>>,
}

/// A GPIO line as written: a BCM number, or a string (a line name or `gpiochipN:OFFSET`),
/// parsed into a [`keymother_gpio::LineSpec`] when validated.
pub(super) enum RawLine {
    Number(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for RawLine {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RawLine;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "a BCM number (0 to 27) or a GPIO line in quotes (\"GPIO23\" or \"gpiochip0:23\")",
                )
            }
            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<RawLine, E> {
                Ok(RawLine::Number(value))
            }
            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<RawLine, E> {
                // Past i64::MAX: out of range all the same.
                Ok(RawLine::Number(i64::try_from(value).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<RawLine, E> {
                Ok(RawLine::Text(value.to_owned()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A port is replaced as a whole, never merged, so its own required keys are required here.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPort {
    pub(super) name: Spanned<String>,
    pub(super) path: Spanned<PathBuf>,
    pub(super) baud: Option<Spanned<u32>>,
    pub(super) parity: Option<Spanned<String>>,
    pub(super) stop_bits: Option<Spanned<u8>>,
    pub(super) modes: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) profiles: Option<Spanned<Vec<Spanned<String>>>>,
}

/// A device profile is replaced as a whole (with the whole `[[profile]]` list), never merged.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProfile {
    pub(super) name: Spanned<String>,
    pub(super) models: Option<Spanned<Vec<Spanned<String>>>>,
    pub(super) master_key: Option<Spanned<bool>>,
    pub(super) dukpt: Option<Spanned<Vec<RawDukptSlot>>>,
}

/// One DUKPT slot of a device profile.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDukptSlot {
    pub(super) bdk: Spanned<String>,
    pub(super) key_type: Spanned<String>,
}

/// One settings file's name (as errors show it) and text.
pub(super) struct Source {
    pub(super) name: String,
    pub(super) text: String,
}

impl Source {
    pub(super) fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&byte| byte == b'\n')
            .count()
            + 1
    }

    pub(super) fn error(&self, offset: usize, key: &str, problem: String) -> ConfigError {
        ConfigError {
            file: self.name.clone(),
            line: self.line_of(offset),
            key: key.to_owned(),
            problem,
        }
    }

    /// Stage 1: parses this file into its raw struct.
    pub(super) fn parse(&self) -> Result<RawFile, ConfigError> {
        let (document, syntax_errors) = DeTable::parse_recoverable(&self.text);
        if let Some(syntax) = syntax_errors.first() {
            let offset = syntax.span().map_or(0, |span| span.start);
            let before = &self.text.as_bytes()[..offset.min(self.text.len())];
            let line_start = before
                .iter()
                .rposition(|&byte| byte == b'\n')
                .map_or(0, |newline| newline + 1);
            let key = key_at(document.get_ref(), offset, "")
                .or_else(|| {
                    last_key_in(document.get_ref(), line_start..offset, "").map(|(_, key)| key)
                })
                .filter(|key| !key.is_empty() && !key.ends_with('.'))
                .unwrap_or_else(|| "(syntax)".into());
            return Err(self.error(offset, &key, syntax.message().to_owned()));
        }
        toml::from_str(&self.text).map_err(|refused| {
            let offset = refused.span().map_or(0, |span| span.start);
            let key = key_at(document.get_ref(), offset, "")
                .filter(|key| !key.is_empty() && !key.ends_with('.'));
            let missing = refused
                .message()
                .strip_prefix("missing field `")
                .and_then(|rest| rest.strip_suffix('`'));
            match (key, missing) {
                (Some(table), Some(field)) => self.error(
                    offset,
                    &format!("{table}.{field}"),
                    "is required".to_owned(),
                ),
                (key, _) => self.error(
                    offset,
                    &key.unwrap_or_else(|| "(syntax)".into()),
                    refused
                        .message()
                        .replacen("unknown field", "unknown key", 1),
                ),
            }
        })
    }
}

/// Whether `offset` falls in `span` (an empty span holds its start).
fn holds(span: &Range<usize>, offset: usize) -> bool {
    span.start <= offset && offset < span.end.max(span.start + 1)
}

/// The dotted key (`port[1].baud`) whose name or value holds `offset`, or whose table header
/// does; `None` when no key does.
fn key_at(table: &DeTable<'_>, offset: usize, prefix: &str) -> Option<String> {
    let mut header = None;
    for (key, value) in table.iter() {
        let path = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        if holds(&key.span(), offset) {
            return Some(path);
        }
        match value.get_ref() {
            DeValue::Table(inner) => {
                if let Some(found) = key_at(inner, offset, &path) {
                    return Some(found);
                }
            }
            DeValue::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    let item_path = format!("{path}[{index}]");
                    if let DeValue::Table(inner) = item.get_ref()
                        && let Some(found) = key_at(inner, offset, &item_path)
                    {
                        return Some(found);
                    }
                    if holds(&item.span(), offset) {
                        return Some(item_path);
                    }
                }
            }
            _ => {}
        }
        // A table's span is its `[header]`; keys inside it were searched first.
        if holds(&value.span(), offset) {
            header = Some(path);
        }
    }
    header
}

/// The key (dotted) that starts last within `range`, with its start: for a syntax error
/// past the key it belongs to (`level = "info` ends its line unclosed).
fn last_key_in(table: &DeTable<'_>, range: Range<usize>, prefix: &str) -> Option<(usize, String)> {
    let mut last: Option<(usize, String)> = None;
    let mut consider = |found: Option<(usize, String)>| {
        if let Some(found) = found
            && last.as_ref().is_none_or(|(start, _)| found.0 >= *start)
        {
            last = Some(found);
        }
    };
    for (key, value) in table.iter() {
        let path = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        if range.start <= key.span().start && key.span().start <= range.end {
            consider(Some((key.span().start, path.clone())));
        }
        match value.get_ref() {
            DeValue::Table(inner) => consider(last_key_in(inner, range.clone(), &path)),
            DeValue::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    if let DeValue::Table(inner) = item.get_ref() {
                        consider(last_key_in(
                            inner,
                            range.clone(),
                            &format!("{path}[{index}]"),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    last
}
