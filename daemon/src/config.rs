//! The daemon's settings: one TOML file parsed in two stages, raw serde structs first, then a validated `Settings`.
//!
//! Every error names the file, the line and the key. (Drop-in directories and the full
//! appliance settings arrive with issue 4.)

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use keymother_protocol::Mode;
use serde::Deserialize;
use toml::Spanned;

/// Serial rates the appliance accepts.
pub const BAUD_RATES: [u32; 8] = [9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600];

/// Parity of a serial line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parity {
    None,
    Even,
    Odd,
}

/// Stop bits of a serial line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopBits {
    One,
    Two,
}

/// One serial port and how to speak on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSettings {
    /// A short name for logs and the SMN registry, e.g. `bench-1`.
    pub name: String,
    /// Device path, preferably a stable `/dev/serial/by-id/...` link.
    pub path: PathBuf,
    pub baud: u32,
    pub parity: Parity,
    pub stop_bits: StopBits,
    /// Injection modes offered on this port, in order of preference.
    pub modes: Vec<Mode>,
}

/// Validated daemon settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub ports: Vec<PortSettings>,
    /// Failed confirmations (wrong KCV) after which a key is quarantined.
    pub quarantine_after: u32,
    /// A terminal session with no request for this long is forgotten (its key stays bound).
    pub idle_timeout: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    data_dir: PathBuf,
    #[serde(default)]
    dispensing: RawDispensing,
    #[serde(default, rename = "port")]
    ports: Vec<RawPort>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDispensing {
    quarantine_after: Option<Spanned<u32>>,
    idle_timeout_seconds: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    name: Spanned<String>,
    path: Spanned<PathBuf>,
    baud: Option<Spanned<u32>>,
    parity: Option<Spanned<String>>,
    stop_bits: Option<Spanned<u8>>,
    modes: Option<Spanned<Vec<String>>>,
}

/// A settings file was refused: names the file, the line and the key.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {key}: {problem}")]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub key: String,
    pub problem: String,
}

impl Settings {
    /// Reads and validates a settings file.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError {
            file: file.clone(),
            line: 0,
            key: "(file)".to_owned(),
            problem: error.to_string(),
        })?;
        Settings::from_toml(&text, &file)
    }

    /// Parses and validates settings text; `file` labels errors.
    pub fn from_toml(text: &str, file: &str) -> Result<Settings, ConfigError> {
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let error = |offset: usize, key: &str, problem: String| ConfigError {
            file: file.to_owned(),
            line: line_of(offset),
            key: key.to_owned(),
            problem,
        };
        let raw: RawSettings = toml::from_str(text).map_err(|parse| {
            let offset = parse.span().map_or(0, |span| span.start);
            error(offset, "(syntax)", parse.message().to_owned())
        })?;
        let dispensing = raw.dispensing;
        let quarantine_after = match dispensing.quarantine_after {
            Some(value) if !(1..=10).contains(value.get_ref()) => {
                return Err(error(
                    value.span().start,
                    "dispensing.quarantine_after",
                    format!("{} is outside 1 to 10", value.get_ref()),
                ));
            }
            Some(value) => value.into_inner(),
            None => 3,
        };
        let idle_timeout = match dispensing.idle_timeout_seconds {
            Some(value) if !(1..=3600).contains(value.get_ref()) => {
                return Err(error(
                    value.span().start,
                    "dispensing.idle_timeout_seconds",
                    format!("{} is outside 1 to 3600", value.get_ref()),
                ));
            }
            Some(value) => Duration::from_secs(value.into_inner()),
            None => Duration::from_secs(30),
        };
        if raw.ports.is_empty() {
            return Err(error(
                0,
                "port",
                "at least one [[port]] is needed".to_owned(),
            ));
        }
        let mut names = HashSet::new();
        let mut paths = HashSet::new();
        let mut ports = Vec::with_capacity(raw.ports.len());
        for (number, port) in raw.ports.into_iter().enumerate() {
            let key = |field: &str| format!("port[{number}].{field}");
            let name = port.name.get_ref().clone();
            let name_ok = !name.is_empty()
                && name.len() <= 32
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !name_ok {
                return Err(error(
                    port.name.span().start,
                    &key("name"),
                    format!("{name:?} must be 1 to 32 characters from A-Z a-z 0-9 - _ ."),
                ));
            }
            if !names.insert(name.clone()) {
                return Err(error(
                    port.name.span().start,
                    &key("name"),
                    format!("{name:?} is used by another port"),
                ));
            }
            if !paths.insert(port.path.get_ref().clone()) {
                return Err(error(
                    port.path.span().start,
                    &key("path"),
                    format!("{} is used by another port", port.path.get_ref().display()),
                ));
            }
            let baud = match port.baud {
                Some(baud) if !BAUD_RATES.contains(baud.get_ref()) => {
                    return Err(error(
                        baud.span().start,
                        &key("baud"),
                        format!("{} is not one of {BAUD_RATES:?}", baud.get_ref()),
                    ));
                }
                Some(baud) => baud.into_inner(),
                None => 115200,
            };
            let parity = match port.parity {
                None => Parity::None,
                Some(parity) => match parity.get_ref().as_str() {
                    "none" => Parity::None,
                    "even" => Parity::Even,
                    "odd" => Parity::Odd,
                    other => {
                        return Err(error(
                            parity.span().start,
                            &key("parity"),
                            format!("{other:?} is not none, even or odd"),
                        ));
                    }
                },
            };
            let stop_bits = match port.stop_bits {
                None => StopBits::One,
                Some(bits) => match bits.get_ref() {
                    1 => StopBits::One,
                    2 => StopBits::Two,
                    other => {
                        return Err(error(
                            bits.span().start,
                            &key("stop_bits"),
                            format!("{other} is not 1 or 2"),
                        ));
                    }
                },
            };
            let modes = match port.modes {
                None => vec![Mode::Tr31],
                Some(modes) => {
                    let span = modes.span().start;
                    let mut parsed = Vec::new();
                    for mode in modes.get_ref() {
                        match mode.as_str() {
                            "tr31" => parsed.push(Mode::Tr31),
                            other => {
                                return Err(error(
                                    span,
                                    &key("modes"),
                                    format!("{other:?} is not a mode this build offers (tr31)"),
                                ));
                            }
                        }
                    }
                    if parsed.is_empty() {
                        return Err(error(
                            span,
                            &key("modes"),
                            "at least one mode is needed".to_owned(),
                        ));
                    }
                    parsed
                }
            };
            ports.push(PortSettings {
                name,
                path: port.path.into_inner(),
                baud,
                parity,
                stop_bits,
                modes,
            });
        }
        Ok(Settings {
            data_dir: raw.data_dir,
            ports,
            quarantine_after,
            idle_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"data_dir = "/var/lib/keymother"

[dispensing]
quarantine_after = 2

[[port]]
name = "bench-1"
path = "/dev/serial/by-id/usb-FTDI_A1"
baud = 115200

[[port]]
name = "bench-2"
path = "/dev/serial/by-id/usb-FTDI_A2"
parity = "even"
stop_bits = 2
"#;

    #[test]
    fn a_good_file_parses_with_defaults() {
        let settings = Settings::from_toml(GOOD, "keymotherd.toml").unwrap();
        assert_eq!(settings.ports.len(), 2);
        assert_eq!(settings.quarantine_after, 2);
        assert_eq!(settings.idle_timeout, Duration::from_secs(30));
        assert_eq!(settings.ports[1].baud, 115200);
        assert_eq!(settings.ports[1].parity, Parity::Even);
        assert_eq!(settings.ports[1].modes, vec![Mode::Tr31]);
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let cases = [
            (
                GOOD.replace("baud = 115200", "baud = 115201"),
                "keymotherd.toml:9: port[0].baud: 115201 is not one of",
            ),
            (
                GOOD.replace("stop_bits = 2", "stop_bits = 3"),
                "keymotherd.toml:15: port[1].stop_bits: 3 is not 1 or 2",
            ),
            (
                GOOD.replace("name = \"bench-2\"", "name = \"bench-1\""),
                "keymotherd.toml:12: port[1].name: \"bench-1\" is used by another port",
            ),
            (
                GOOD.replace("quarantine_after = 2", "quarantine_after = 0"),
                "keymotherd.toml:4: dispensing.quarantine_after: 0 is outside 1 to 10",
            ),
            (
                GOOD.replace("parity = \"even\"", "parity = \"mark\""),
                "keymotherd.toml:14: port[1].parity: \"mark\" is not none, even or odd",
            ),
            (
                GOOD.replace("baud = 115200", "baud = 115200\nspeed = 3"),
                "keymotherd.toml:10: (syntax): unknown field `speed`",
            ),
            (
                GOOD.replace("baud = 115200", "baud = \"fast\""),
                "keymotherd.toml:9: (syntax): invalid type",
            ),
        ];
        for (text, expected) in cases {
            let error = Settings::from_toml(&text, "keymotherd.toml")
                .err()
                .unwrap()
                .to_string();
            assert!(
                error.starts_with(expected),
                "expected {expected:?}, got {error:?}"
            );
        }
    }
}
