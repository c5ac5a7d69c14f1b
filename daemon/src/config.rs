//! The daemon's settings: a TOML file and its drop-ins, each parsed to a raw serde struct, merged, then validated into `Settings`; every error names the file, the line and the key.

use std::collections::HashSet;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use keymother_gpio::LineSpec;
use keymother_protocol::Mode;
use log::LevelFilter;
use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// Serial rates the appliance accepts.
pub const BAUD_RATES: [u32; 8] = [9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600];

/// The control socket's path unless `[control] socket` says otherwise (under systemd's
/// `RuntimeDirectory=keymother`).
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/keymother/control.sock";

/// The group whose members may use the control socket unless `[control] group` says otherwise.
pub const DEFAULT_CONTROL_GROUP: &str = "keymother-operators";

/// Longest control socket path a Unix socket address holds (`sun_path` is 108 bytes with
/// its terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

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

/// Where log records go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    /// The journal when started by systemd (standard error connected to the journal, as
    /// `JOURNAL_STREAM` tells), standard error otherwise.
    Auto,
    /// The systemd journal, with structured fields.
    Journal,
    /// Plain lines on standard error.
    Stderr,
}

/// One serial port and how to speak on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSettings {
    /// A short name for logs and the SMN registry, e.g. `bench-1`.
    pub name: String,
    /// Device path, preferably a stable `/dev/serial/by-id/...` or `/dev/keymother/...` link.
    pub path: PathBuf,
    pub baud: u32,
    pub parity: Parity,
    pub stop_bits: StopBits,
    /// Injection modes offered on this port, in order of preference.
    pub modes: Vec<Mode>,
}

/// A path from the settings with where it was written, so that a problem found when the file
/// it names is read later (a CA certificate that does not parse) is reported like any other
/// settings error: `file:line: key: problem`.
///
/// Where a path was written is not part of what it is: two `SourcedPath`s are equal when
/// their paths are (the same settings read from another file name compare equal).
#[derive(Clone)]
pub struct SourcedPath {
    pub path: PathBuf,
    /// The settings file that set it, as errors name it.
    pub file: String,
    pub line: usize,
    /// The dotted key, e.g. `pki.operator_ca`.
    pub key: String,
}

impl PartialEq for SourcedPath {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
    }
}

impl Eq for SourcedPath {}

impl std::fmt::Debug for SourcedPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // As equality: the path only (the settings digest is taken over Debug).
        self.path.fmt(f)
    }
}

impl SourcedPath {
    /// A settings error about the file this path names: `file:line: key: path: problem`.
    pub fn error(&self, problem: impl std::fmt::Display) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line: self.line,
            key: self.key.clone(),
            problem: format!("{}: {problem}", self.path.display()),
        }
    }
}

/// The `[pki]` section: one CA certificate per role (PEM or DER) and optional CRLs. Only the
/// paths are settings; the files are read when the daemon starts (and by `--check-config`),
/// see `trust::Trust::load`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiSettings {
    /// The terminal manufacturer's CA (certificate mode).
    pub device_ca: SourcedPath,
    /// The CA of the appliance's key distribution host certificate (certificate mode).
    pub kdh_ca: SourcedPath,
    /// The CA of operator certificates (operator login).
    pub operator_ca: SourcedPath,
    pub device_crl: Option<SourcedPath>,
    pub kdh_crl: Option<SourcedPath>,
    pub operator_crl: Option<SourcedPath>,
}

/// The `[operator]` section: operator login (source document 003).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorSettings {
    /// No key is dispensed, and no key is voided or SMN exported, without an operator
    /// session. Default true; false only for the demo and test benches. True without `[pki]`
    /// is accepted (factory settings): nobody can log in, so nothing is dispensed.
    pub require: bool,
    /// How far the time an operator signed may lie from the appliance's clock, either way;
    /// also how long a login challenge stays usable.
    pub login_window: Duration,
    /// The longest an operator session lasts; it also ends at the certificate's notAfter.
    pub session_limit: Duration,
}

impl Default for OperatorSettings {
    fn default() -> Self {
        OperatorSettings {
            require: true,
            login_window: Duration::from_secs(DEFAULT_LOGIN_WINDOW_SECONDS),
            session_limit: Duration::from_secs(DEFAULT_SESSION_LIMIT_SECONDS),
        }
    }
}

/// What [`Settings::warnings`] says when operator login is required without `[pki]` (the
/// factory settings of a freshly flashed appliance).
pub const NO_OPERATOR_CA: &str = "operator login is required but no operator CA is configured \
     ([pki] operator_ca), so no key can be dispensed until [pki] is added";

/// `[operator] login_window_seconds` unless set.
pub const DEFAULT_LOGIN_WINDOW_SECONDS: u64 = 120;

/// `[operator] session_limit_seconds` unless set: a working day.
pub const DEFAULT_SESSION_LIMIT_SECONDS: u64 = 8 * 3600;

/// Which display the bench has (`[bench] display`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisplayKind {
    /// An SSD1306 128x64 on the I2C bus.
    Ssd1306,
    /// A frame buffer in memory (the demo, tests, PNG previews).
    Memory,
    None,
}

/// Which GPIO back end drives the LEDs, the buzzer and the tamper input (`[bench] gpio`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpioBackend {
    /// The kernel's GPIO character device, `/dev/gpiochipN` (`"chardev"`; `"rppal"`, the
    /// back end it replaced, is taken as this with a warning).
    Chardev,
    /// No hardware: changes are recorded, the tamper input never fires on its own.
    Simulated,
    None,
}

/// The `[bench]` section: the display, the LEDs, the buzzer and the tamper input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchSettings {
    pub display: DisplayKind,
    /// The display's I2C bus device.
    pub i2c_bus: PathBuf,
    /// The display's 7-bit I2C address.
    pub i2c_address: u8,
    pub gpio: GpioBackend,
    /// The lines (BCM numbers, line names or chip and offset) and the tamper input's
    /// polarity and pull.
    pub pins: keymother_gpio::Pins,
    /// How long the tamper input must hold before it counts.
    pub tamper_debounce: Duration,
    /// The display warns when fewer keys than this are left.
    pub low_inventory: u64,
    /// No key is dispensed while the tamper input is not watched (its GPIO failed or could not
    /// be opened). Off by default: a failing bench GPIO only warns (issue 6).
    pub require_tamper_input: bool,
    /// Accepted but worth a warning: a deprecated value. See [`Settings::warnings`].
    pub notes: Notes,
}

/// Warnings about how settings were written (a deprecated value), each `file:line: key:
/// what`. Like a [`SourcedPath`]'s location, how a value was written is not part of what the
/// settings are: any two `Notes` are equal, and their `Debug` (which the settings digest is
/// taken over) shows none of them.
#[derive(Clone, Default)]
pub struct Notes(pub Vec<String>);

impl PartialEq for Notes {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Notes {}

impl std::fmt::Debug for Notes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Notes")
    }
}

/// `[bench] i2c_bus` unless set.
pub const DEFAULT_I2C_BUS: &str = "/dev/i2c-1";
/// `[bench] i2c_address` unless set: the SSD1306's usual address.
pub const DEFAULT_I2C_ADDRESS: u8 = 0x3C;
/// `[bench] tamper_debounce_ms` unless set.
pub const DEFAULT_TAMPER_DEBOUNCE_MS: u64 = 50;
/// `[dispensing] certificate_requests_per_minute` unless set: far more than a bench needs (an
/// injection takes seconds), far too few for a timing attack on the KDH key (docs/SECURITY.md,
/// RUSTSEC-2023-0071).
pub const DEFAULT_CERTIFICATE_REQUESTS_PER_MINUTE: u32 = 30;
/// `[bench] low_inventory` unless set.
pub const DEFAULT_LOW_INVENTORY: u64 = 100;
/// The highest BCM line on the Raspberry Pi's 40-pin header.
pub const MAX_BCM_PIN: i64 = keymother_gpio::MAX_BCM as i64;

impl Default for BenchSettings {
    /// No display, no GPIO.
    fn default() -> Self {
        BenchSettings {
            display: DisplayKind::None,
            i2c_bus: PathBuf::from(DEFAULT_I2C_BUS),
            i2c_address: DEFAULT_I2C_ADDRESS,
            gpio: GpioBackend::None,
            pins: keymother_gpio::Pins::default(),
            tamper_debounce: Duration::from_millis(DEFAULT_TAMPER_DEBOUNCE_MS),
            low_inventory: DEFAULT_LOW_INVENTORY,
            require_tamper_input: false,
            notes: Notes::default(),
        }
    }
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
    /// Certificate-mode key requests accepted per port per minute: each costs a private-key
    /// operation with the KDH key (docs/SECURITY.md, Marvin).
    pub certificate_requests_per_minute: u32,
    /// The Unix control socket the `keymother` command talks to.
    pub control_socket: PathBuf,
    /// The group allowed to use the control socket (the socket is made `0660 keymother:group`).
    pub control_group: String,
    /// Where log records go.
    pub log_target: LogTarget,
    /// The most detailed level logged.
    pub log_level: LevelFilter,
    /// The trust anchors' files; `None` without a `[pki]` section.
    pub pki: Option<PkiSettings>,
    /// Operator login.
    pub operator: OperatorSettings,
    /// The bench's display, LEDs, buzzer and tamper input.
    pub bench: BenchSettings,
    /// Whether the clock must be vouched for (an RTC, or two people) before logins and
    /// certificate checks.
    pub clock: crate::clock::ClockSettings,
}

/// A settings file was refused: names the file, the line and the key.
///
/// `line` is 0 when the problem is the file itself (it cannot be read, or a drop-in entry is
/// not a regular file); `key` is then `(file)`, and `(syntax)` for malformed TOML that
/// belongs to no key.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {key}: {problem}")]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub key: String,
    pub problem: String,
}

// Stage 1: one file, raw. Every key is optional here, because a drop-in may set any subset;
// what is required is checked after merging.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    data_dir: Option<Spanned<PathBuf>>,
    dispensing: Option<RawDispensing>,
    control: Option<RawControl>,
    logging: Option<RawLogging>,
    pki: Option<RawPki>,
    operator: Option<RawOperator>,
    bench: Option<RawBench>,
    clock: Option<RawClock>,
    #[serde(rename = "port")]
    ports: Option<Spanned<Vec<RawPort>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDispensing {
    quarantine_after: Option<Spanned<u32>>,
    idle_timeout_seconds: Option<Spanned<u64>>,
    certificate_requests_per_minute: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawControl {
    socket: Option<Spanned<PathBuf>>,
    group: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLogging {
    target: Option<Spanned<String>>,
    level: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPki {
    device_ca: Option<Spanned<PathBuf>>,
    kdh_ca: Option<Spanned<PathBuf>>,
    operator_ca: Option<Spanned<PathBuf>>,
    device_crl: Option<Spanned<PathBuf>>,
    kdh_crl: Option<Spanned<PathBuf>>,
    operator_crl: Option<Spanned<PathBuf>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClock {
    require_trusted: Option<Spanned<bool>>,
    rtc_class: Option<Spanned<PathBuf>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOperator {
    require: Option<Spanned<bool>>,
    login_window_seconds: Option<Spanned<u64>>,
    session_limit_seconds: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBench {
    display: Option<Spanned<String>>,
    i2c_bus: Option<Spanned<PathBuf>>,
    i2c_address: Option<Spanned<i64>>,
    gpio: Option<Spanned<String>>,
    ready_led: Option<Spanned<RawLine>>,
    busy_led: Option<Spanned<RawLine>>,
    error_led: Option<Spanned<RawLine>>,
    buzzer: Option<Spanned<RawLine>>,
    tamper_pin: Option<Spanned<RawLine>>,
    tamper_active_low: Option<Spanned<bool>>,
    tamper_pull: Option<Spanned<String>>,
    tamper_debounce_ms: Option<Spanned<i64>>,
    low_inventory: Option<Spanned<i64>>,
    require_tamper_input: Option<Spanned<bool>>,
}

/// A GPIO line as written: a BCM number, or a string (a line name or `gpiochipN:OFFSET`),
/// parsed into a [`keymother_gpio::LineSpec`] when validated.
enum RawLine {
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

/// Whether a line is SDA or SCL of /dev/i2c-1 on the Raspberry Pi (BCM 2 and 3, as the
/// device trees name them).
fn i2c1_line(line: &LineSpec) -> Option<&'static str> {
    match line {
        LineSpec::Bcm(2) => Some("SDA"),
        LineSpec::Bcm(3) => Some("SCL"),
        LineSpec::Name(name) if name == "GPIO2" || name == "SDA1" => Some("SDA"),
        LineSpec::Name(name) if name == "GPIO3" || name == "SCL1" => Some("SCL"),
        _ => None,
    }
}

/// A port is replaced as a whole, never merged, so its own required keys are required here.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    name: Spanned<String>,
    path: Spanned<PathBuf>,
    baud: Option<Spanned<u32>>,
    parity: Option<Spanned<String>>,
    stop_bits: Option<Spanned<u8>>,
    modes: Option<Spanned<Vec<Spanned<String>>>>,
}

/// One settings file's name (as errors show it) and text.
struct Source {
    name: String,
    text: String,
}

impl Source {
    fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&byte| byte == b'\n')
            .count()
            + 1
    }

    fn error(&self, offset: usize, key: &str, problem: String) -> ConfigError {
        ConfigError {
            file: self.name.clone(),
            line: self.line_of(offset),
            key: key.to_owned(),
            problem,
        }
    }

    /// Stage 1: parses this file into its raw struct.
    fn parse(&self) -> Result<RawFile, ConfigError> {
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

// Stage 2: the files merged; each value remembers its file and span.

/// A value with the index of the file it came from and its span there.
struct Sourced<T> {
    value: T,
    file: usize,
    span: Range<usize>,
}

#[derive(Default)]
struct Merged {
    data_dir: Option<Sourced<PathBuf>>,
    quarantine_after: Option<Sourced<u32>>,
    idle_timeout_seconds: Option<Sourced<u64>>,
    certificate_requests_per_minute: Option<Sourced<u32>>,
    control_socket: Option<Sourced<PathBuf>>,
    control_group: Option<Sourced<String>>,
    log_target: Option<Sourced<String>>,
    log_level: Option<Sourced<String>>,
    device_ca: Option<Sourced<PathBuf>>,
    kdh_ca: Option<Sourced<PathBuf>>,
    operator_ca: Option<Sourced<PathBuf>>,
    device_crl: Option<Sourced<PathBuf>>,
    kdh_crl: Option<Sourced<PathBuf>>,
    operator_crl: Option<Sourced<PathBuf>>,
    require_operator: Option<Sourced<bool>>,
    login_window_seconds: Option<Sourced<u64>>,
    session_limit_seconds: Option<Sourced<u64>>,
    bench: MergedBench,
    clock_require_trusted: Option<Sourced<bool>>,
    clock_rtc_class: Option<Sourced<PathBuf>>,
    ports: Option<Sourced<Vec<RawPort>>>,
}

/// Where a value was set: the file's index and the offset in it.
type Location = (usize, usize);

/// The `[bench]` values as merged.
#[derive(Default)]
struct MergedBench {
    display: Option<Sourced<String>>,
    i2c_bus: Option<Sourced<PathBuf>>,
    i2c_address: Option<Sourced<i64>>,
    gpio: Option<Sourced<String>>,
    ready_led: Option<Sourced<RawLine>>,
    busy_led: Option<Sourced<RawLine>>,
    error_led: Option<Sourced<RawLine>>,
    buzzer: Option<Sourced<RawLine>>,
    tamper_pin: Option<Sourced<RawLine>>,
    tamper_active_low: Option<Sourced<bool>>,
    tamper_pull: Option<Sourced<String>>,
    tamper_debounce_ms: Option<Sourced<i64>>,
    low_inventory: Option<Sourced<i64>>,
    require_tamper_input: Option<Sourced<bool>>,
}

/// A later file's value, when it has one, replaces the earlier.
fn overlay<T>(slot: &mut Option<Sourced<T>>, value: Option<Spanned<T>>, file: usize) {
    if let Some(value) = value {
        let span = value.span();
        *slot = Some(Sourced {
            value: value.into_inner(),
            file,
            span,
        });
    }
}

impl Merged {
    fn apply(&mut self, raw: RawFile, file: usize) {
        overlay(&mut self.data_dir, raw.data_dir, file);
        if let Some(dispensing) = raw.dispensing {
            overlay(
                &mut self.quarantine_after,
                dispensing.quarantine_after,
                file,
            );
            overlay(
                &mut self.idle_timeout_seconds,
                dispensing.idle_timeout_seconds,
                file,
            );
            overlay(
                &mut self.certificate_requests_per_minute,
                dispensing.certificate_requests_per_minute,
                file,
            );
        }
        if let Some(control) = raw.control {
            overlay(&mut self.control_socket, control.socket, file);
            overlay(&mut self.control_group, control.group, file);
        }
        if let Some(logging) = raw.logging {
            overlay(&mut self.log_target, logging.target, file);
            overlay(&mut self.log_level, logging.level, file);
        }
        if let Some(pki) = raw.pki {
            overlay(&mut self.device_ca, pki.device_ca, file);
            overlay(&mut self.kdh_ca, pki.kdh_ca, file);
            overlay(&mut self.operator_ca, pki.operator_ca, file);
            overlay(&mut self.device_crl, pki.device_crl, file);
            overlay(&mut self.kdh_crl, pki.kdh_crl, file);
            overlay(&mut self.operator_crl, pki.operator_crl, file);
        }
        if let Some(operator) = raw.operator {
            overlay(&mut self.require_operator, operator.require, file);
            overlay(
                &mut self.login_window_seconds,
                operator.login_window_seconds,
                file,
            );
            overlay(
                &mut self.session_limit_seconds,
                operator.session_limit_seconds,
                file,
            );
        }
        if let Some(bench) = raw.bench {
            let merged = &mut self.bench;
            overlay(&mut merged.display, bench.display, file);
            overlay(&mut merged.i2c_bus, bench.i2c_bus, file);
            overlay(&mut merged.i2c_address, bench.i2c_address, file);
            overlay(&mut merged.gpio, bench.gpio, file);
            overlay(&mut merged.ready_led, bench.ready_led, file);
            overlay(&mut merged.busy_led, bench.busy_led, file);
            overlay(&mut merged.error_led, bench.error_led, file);
            overlay(&mut merged.buzzer, bench.buzzer, file);
            overlay(&mut merged.tamper_pin, bench.tamper_pin, file);
            overlay(&mut merged.tamper_active_low, bench.tamper_active_low, file);
            overlay(&mut merged.tamper_pull, bench.tamper_pull, file);
            overlay(
                &mut merged.tamper_debounce_ms,
                bench.tamper_debounce_ms,
                file,
            );
            overlay(&mut merged.low_inventory, bench.low_inventory, file);
            overlay(
                &mut merged.require_tamper_input,
                bench.require_tamper_input,
                file,
            );
        }
        if let Some(clock) = raw.clock {
            overlay(&mut self.clock_require_trusted, clock.require_trusted, file);
            overlay(&mut self.clock_rtc_class, clock.rtc_class, file);
        }
        overlay(&mut self.ports, raw.ports, file);
    }
}

// Stage 3: validation.

/// The `[pki]` values as merged.
struct PkiPaths {
    device_ca: Option<Sourced<PathBuf>>,
    kdh_ca: Option<Sourced<PathBuf>>,
    operator_ca: Option<Sourced<PathBuf>>,
    device_crl: Option<Sourced<PathBuf>>,
    kdh_crl: Option<Sourced<PathBuf>>,
    operator_crl: Option<Sourced<PathBuf>>,
}

/// Checks merged values; errors point into the file each value came from.
struct Validator<'a> {
    sources: &'a [Source],
    /// Also check what only the machine the settings are used on can tell (see
    /// [`Settings::check`]).
    host: bool,
}

impl Validator<'_> {
    fn error_in(&self, file: usize, offset: usize, key: &str, problem: String) -> ConfigError {
        match self.sources.get(file) {
            Some(source) => source.error(offset, key, problem),
            None => ConfigError {
                file: "(settings)".to_owned(),
                line: 0,
                key: key.to_owned(),
                problem,
            },
        }
    }

    fn error<T>(&self, value: &Sourced<T>, key: &str, problem: String) -> ConfigError {
        self.error_in(value.file, value.span.start, key, problem)
    }

    fn settings(&self, merged: Merged) -> Result<Settings, ConfigError> {
        let data_dir = match merged.data_dir {
            None => {
                return Err(self.error_in(
                    0,
                    0,
                    "data_dir",
                    "is required (the vault's directory, e.g. \"/var/lib/keymother\")".to_owned(),
                ));
            }
            Some(dir) if dir.value.as_os_str().is_empty() => {
                return Err(self.error(&dir, "data_dir", "must not be empty".to_owned()));
            }
            // The daemon's working directory is nobody's business (systemd starts it in /).
            Some(dir) if !dir.value.is_absolute() => {
                return Err(self.error(
                    &dir,
                    "data_dir",
                    format!(
                        "{} is not an absolute path (e.g. \"/var/lib/keymother\")",
                        dir.value.display()
                    ),
                ));
            }
            Some(dir) => dir.value,
        };
        let quarantine_after = match merged.quarantine_after {
            Some(value) if !(1..=10).contains(&value.value) => {
                return Err(self.error(
                    &value,
                    "dispensing.quarantine_after",
                    format!("{} is outside 1 to 10", value.value),
                ));
            }
            Some(value) => value.value,
            None => 3,
        };
        let idle_timeout = match merged.idle_timeout_seconds {
            Some(value) if !(1..=3600).contains(&value.value) => {
                return Err(self.error(
                    &value,
                    "dispensing.idle_timeout_seconds",
                    format!("{} is outside 1 to 3600", value.value),
                ));
            }
            Some(value) => Duration::from_secs(value.value),
            None => Duration::from_secs(30),
        };
        let certificate_requests_per_minute = match merged.certificate_requests_per_minute {
            Some(value) if !(1..=600).contains(&value.value) => {
                return Err(self.error(
                    &value,
                    "dispensing.certificate_requests_per_minute",
                    format!("{} is outside 1 to 600", value.value),
                ));
            }
            Some(value) => value.value,
            None => DEFAULT_CERTIFICATE_REQUESTS_PER_MINUTE,
        };
        let control_socket = match merged.control_socket {
            None => PathBuf::from(DEFAULT_CONTROL_SOCKET),
            Some(socket) => self.control_socket(socket)?,
        };
        let (control_group, control_group_at) = match merged.control_group {
            None => (DEFAULT_CONTROL_GROUP.to_owned(), None),
            Some(group) if !is_group_name(&group.value) => {
                return Err(self.error(
                    &group,
                    "control.group",
                    format!(
                        "{:?} is not a group name (1 to 32 characters: a-z or _ first, then a-z 0-9 _ -)",
                        group.value
                    ),
                ));
            }
            Some(group) => {
                let at = (group.file, group.span.start);
                (group.value, Some(at))
            }
        };
        let log_target = match merged.log_target {
            None => LogTarget::Auto,
            Some(target) => match target.value.as_str() {
                "auto" => LogTarget::Auto,
                "journal" => LogTarget::Journal,
                "stderr" => LogTarget::Stderr,
                other => {
                    return Err(self.error(
                        &target,
                        "logging.target",
                        format!("{other:?} is not auto, journal or stderr"),
                    ));
                }
            },
        };
        let log_level = match merged.log_level {
            None => LevelFilter::Info,
            Some(level) => match level.value.as_str() {
                "error" => LevelFilter::Error,
                "warn" => LevelFilter::Warn,
                "info" => LevelFilter::Info,
                "debug" => LevelFilter::Debug,
                other => {
                    return Err(self.error(
                        &level,
                        "logging.level",
                        format!("{other:?} is not error, warn, info or debug"),
                    ));
                }
            },
        };
        let pki = self.pki(PkiPaths {
            device_ca: merged.device_ca,
            kdh_ca: merged.kdh_ca,
            operator_ca: merged.operator_ca,
            device_crl: merged.device_crl,
            kdh_crl: merged.kdh_crl,
            operator_crl: merged.operator_crl,
        })?;
        let (ports, port_paths_at) = self.ports(merged.ports, pki.is_some())?;
        let bench = self.bench(merged.bench)?;
        let clock = self.clock(merged.clock_require_trusted, merged.clock_rtc_class)?;
        let operator = self.operator(
            merged.require_operator,
            merged.login_window_seconds,
            merged.session_limit_seconds,
        )?;
        let settings = Settings {
            data_dir,
            ports,
            quarantine_after,
            idle_timeout,
            certificate_requests_per_minute,
            control_socket,
            control_group,
            log_target,
            log_level,
            pki,
            operator,
            bench,
            clock,
        };
        // What the text says is checked above, all of it, before what this machine says.
        if self.host {
            self.control_group_exists(&settings.control_group, control_group_at)?;
            self.one_device_per_port(&settings.ports, &port_paths_at)?;
        }
        Ok(settings)
    }

    /// `[control] group` names a group of this machine: the daemon gives the control socket
    /// that group, and without it only root and the daemon's own user could use the socket
    /// (the daemon starts all the same, warning, which is how a typo would otherwise pass).
    /// `at` is where the group was set; `None` for the default.
    fn control_group_exists(&self, name: &str, at: Option<Location>) -> Result<(), ConfigError> {
        let (file, offset) = at.unwrap_or((0, 0));
        let which = if at.is_some() {
            format!("{name:?}")
        } else {
            format!("{name:?} (the default)")
        };
        let problem = match nix::unistd::Group::from_name(name) {
            Ok(Some(_)) => return Ok(()),
            Ok(None) => format!(
                "{which} is not a group on this machine: correct the name, or create the group \
                 (sysusers.d/keymother.conf creates {DEFAULT_CONTROL_GROUP}) and put the \
                 daemon's user in it (the unit's SupplementaryGroups=)"
            ),
            Err(error) => format!("cannot look up group {which}: {error}"),
        };
        Err(self.error_in(file, offset, "control.group", problem))
    }

    /// No device is served as two ports: two paths that exist here and resolve (links
    /// followed, as `/dev/serial/by-id/...` and `/dev/keymother/...` are) to the same file.
    /// The same path written twice is refused with the text (`Validator::ports`); a path
    /// that does not exist now (an adapter not plugged in) is not judged.
    fn one_device_per_port(
        &self,
        ports: &[PortSettings],
        paths_at: &[Location],
    ) -> Result<(), ConfigError> {
        let mut resolved: Vec<(usize, PathBuf)> = Vec::with_capacity(ports.len());
        for (number, (port, &(file, offset))) in ports.iter().zip(paths_at).enumerate() {
            let Ok(device) = std::fs::canonicalize(&port.path) else {
                continue;
            };
            if let Some((other, _)) = resolved.iter().find(|(_, seen)| *seen == device) {
                return Err(self.error_in(
                    file,
                    offset,
                    &format!("port[{number}].path"),
                    format!(
                        "{} is the same device as port[{other}].path {} (both lead to {}): \
                         one device cannot be two ports",
                        port.path.display(),
                        ports[*other].path.display(),
                        device.display()
                    ),
                ));
            }
            resolved.push((number, device));
        }
        Ok(())
    }

    /// `[bench]`: every key optional; lines are BCM numbers on the header, line names or
    /// `gpiochipN:OFFSET`, all different, and not the display's I2C lines when it is on the
    /// default bus. Whether the lines exist is the back end's business when it opens them
    /// (a GPIO that cannot be opened never stops the daemon; it is tried again every 5 s).
    fn bench(&self, merged: MergedBench) -> Result<BenchSettings, ConfigError> {
        let defaults = BenchSettings::default();
        let display = match merged.display {
            None => defaults.display,
            Some(display) => match display.value.as_str() {
                "ssd1306" => DisplayKind::Ssd1306,
                "memory" => DisplayKind::Memory,
                "none" => DisplayKind::None,
                other => {
                    return Err(self.error(
                        &display,
                        "bench.display",
                        format!("{other:?} is not ssd1306, memory or none"),
                    ));
                }
            },
        };
        let mut notes = Notes::default();
        let gpio = match merged.gpio {
            None => defaults.gpio,
            Some(gpio) => match gpio.value.as_str() {
                "chardev" => GpioBackend::Chardev,
                // The back end "chardev" replaced: the same lines, through /dev/gpiochipN.
                // Still accepted, so that an appliance whose settings say "rppal" starts
                // after an update (--check-config refusing it would stop the daemon, and a
                // bench GPIO never stops injection); the warning says what to write.
                "rppal" => {
                    notes.0.push(self.error(&gpio, "bench.gpio", "\"rppal\" is deprecated and now means \"chardev\", the kernel's GPIO character device (/dev/gpiochipN; rppal needed /dev/gpiomem, which only the Raspberry Pi vendor kernel has): write gpio = \"chardev\"".to_owned()).to_string());
                    GpioBackend::Chardev
                }
                "simulated" => GpioBackend::Simulated,
                "none" => GpioBackend::None,
                other => {
                    return Err(self.error(
                        &gpio,
                        "bench.gpio",
                        format!("{other:?} is not chardev, simulated or none"),
                    ));
                }
            },
        };
        let i2c_bus = match merged.i2c_bus {
            None => defaults.i2c_bus,
            Some(bus) if !bus.value.is_absolute() => {
                return Err(self.error(
                    &bus,
                    "bench.i2c_bus",
                    format!(
                        "{} is not an absolute path (e.g. /dev/i2c-1)",
                        bus.value.display()
                    ),
                ));
            }
            Some(bus) => bus.value,
        };
        let i2c_address = match merged.i2c_address {
            None => defaults.i2c_address,
            Some(address) => match u8::try_from(address.value) {
                Ok(value) if value <= 0x7F => value,
                _ => {
                    return Err(self.error(
                        &address,
                        "bench.i2c_address",
                        format!(
                            "{} is outside 0x00 to 0x7F (a 7-bit I2C address; the SSD1306 is at 0x3C or 0x3D)",
                            address.value
                        ),
                    ));
                }
            },
        };
        // (key, value as set, default): checked in this order, each against those before.
        let pin_slots = [
            ("bench.ready_led", merged.ready_led, defaults.pins.ready_led),
            ("bench.busy_led", merged.busy_led, defaults.pins.busy_led),
            ("bench.error_led", merged.error_led, defaults.pins.error_led),
            ("bench.buzzer", merged.buzzer, defaults.pins.buzzer),
            ("bench.tamper_pin", merged.tamper_pin, defaults.pins.tamper),
        ];
        let i2c_lines_taken =
            display == DisplayKind::Ssd1306 && i2c_bus.as_path() == Path::new(DEFAULT_I2C_BUS);
        // Each line with where it was set, if it was.
        let mut pins: Vec<(&str, LineSpec, Option<Location>)> = Vec::with_capacity(pin_slots.len());
        for (key, value, default) in pin_slots {
            let pin = match &value {
                None => default,
                Some(set) => match &set.value {
                    RawLine::Number(number) => LineSpec::bcm(*number),
                    RawLine::Text(text) => LineSpec::parse(text),
                }
                .map_err(|problem| self.error(set, key, problem))?,
            };
            let at = value.as_ref().map(|set| (set.file, set.span.start));
            if let Some((other, other_line, other_at)) =
                pins.iter().find(|(_, taken, _)| taken.same_line(&pin))
            {
                let (other, other_at) = (*other, *other_at);
                let line = pin.describe();
                // Point at a value that was set: this one, else the one it collides with.
                let (file, offset, key, problem) = match (at, other_at) {
                    (Some((file, offset)), _) => (
                        file,
                        offset,
                        key,
                        format!("{line} is also {other}; every line must be different"),
                    ),
                    (None, Some((file, offset))) => (
                        file,
                        offset,
                        other,
                        format!(
                            "{} is also {key} (its default, {line}); every line must be different",
                            other_line.describe()
                        ),
                    ),
                    (None, None) => (0, 0, key, format!("{line} is also {other}")),
                };
                return Err(self.error_in(file, offset, key, problem));
            }
            if let Some(role) = i2c1_line(&pin).filter(|_| i2c_lines_taken) {
                let problem = format!(
                    "{} is an I2C line of {DEFAULT_I2C_BUS} ({role}), which the ssd1306 display uses",
                    pin.describe()
                );
                let (file, offset) = at.unwrap_or((0, 0));
                return Err(self.error_in(file, offset, key, problem));
            }
            pins.push((key, pin, at));
        }
        let tamper_active_low = merged
            .tamper_active_low
            .map_or(defaults.pins.tamper_active_low, |value| value.value);
        // Unless set, the pull a normally-open switch needs: against the level that fires.
        let tamper_pull_up = match merged.tamper_pull {
            None => tamper_active_low,
            Some(pull) => match pull.value.as_str() {
                "up" => true,
                "down" => false,
                other => {
                    return Err(self.error(
                        &pull,
                        "bench.tamper_pull",
                        format!("{other:?} is not up or down"),
                    ));
                }
            },
        };
        let pins = keymother_gpio::Pins {
            ready_led: pins[0].1.clone(),
            busy_led: pins[1].1.clone(),
            error_led: pins[2].1.clone(),
            buzzer: pins[3].1.clone(),
            tamper: pins[4].1.clone(),
            tamper_active_low,
            tamper_pull_up,
        };
        let tamper_debounce = match merged.tamper_debounce_ms {
            None => defaults.tamper_debounce,
            Some(value) if !(1..=1000).contains(&value.value) => {
                return Err(self.error(
                    &value,
                    "bench.tamper_debounce_ms",
                    format!("{} is outside 1 to 1000", value.value),
                ));
            }
            Some(value) => Duration::from_millis(value.value.unsigned_abs()),
        };
        let low_inventory = match merged.low_inventory {
            None => defaults.low_inventory,
            Some(value) if !(0..=10_000_000).contains(&value.value) => {
                return Err(self.error(
                    &value,
                    "bench.low_inventory",
                    format!("{} is outside 0 to 10000000", value.value),
                ));
            }
            Some(value) => value.value.unsigned_abs(),
        };
        let require_tamper_input = match merged.require_tamper_input {
            Some(required) if required.value && gpio == GpioBackend::None => {
                return Err(self.error(
                    &required,
                    "bench.require_tamper_input",
                    "there is no tamper input to require: set [bench] gpio = \"chardev\" (or \"simulated\" off the Pi)".to_owned(),
                ));
            }
            Some(required) => required.value,
            None => defaults.require_tamper_input,
        };
        Ok(BenchSettings {
            display,
            i2c_bus,
            i2c_address,
            gpio,
            pins,
            tamper_debounce,
            low_inventory,
            require_tamper_input,
            notes,
        })
    }

    /// A path as a `SourcedPath`, which must be absolute (the daemon's working directory is
    /// nobody's business).
    fn sourced_path(&self, value: Sourced<PathBuf>, key: &str) -> Result<SourcedPath, ConfigError> {
        if !value.value.is_absolute() {
            return Err(self.error(
                &value,
                key,
                format!("{} is not an absolute path", value.value.display()),
            ));
        }
        let (file, line) = match self.sources.get(value.file) {
            Some(source) => (source.name.clone(), source.line_of(value.span.start)),
            None => ("(settings)".to_owned(), 0),
        };
        Ok(SourcedPath {
            path: value.value,
            file,
            line,
            key: key.to_owned(),
        })
    }

    /// `[pki]`: absent, or all three CAs (`TrustAnchors` takes one per role and refuses a CA
    /// shared between roles) with optional CRLs.
    fn pki(&self, paths: PkiPaths) -> Result<Option<PkiSettings>, ConfigError> {
        let PkiPaths {
            device_ca,
            kdh_ca,
            operator_ca,
            device_crl,
            kdh_crl,
            operator_crl,
        } = paths;
        // The first value set in [pki], to point at when a CA is missing.
        let first = [
            &device_ca,
            &kdh_ca,
            &operator_ca,
            &device_crl,
            &kdh_crl,
            &operator_crl,
        ]
        .into_iter()
        .flatten()
        .min_by_key(|value| (value.file, value.span.start))
        .map(|value| (value.file, value.span.start));
        let Some((first_file, first_offset)) = first else {
            return Ok(None);
        };
        let required = |value: Option<Sourced<PathBuf>>, key: &str| match value {
            Some(value) => self.sourced_path(value, key),
            None => Err(self.error_in(
                first_file,
                first_offset,
                key,
                "is required when [pki] is present: one CA certificate per role \
                 (device_ca, kdh_ca, operator_ca), each a different CA"
                    .to_owned(),
            )),
        };
        let optional = |value: Option<Sourced<PathBuf>>, key: &str| {
            value.map(|value| self.sourced_path(value, key)).transpose()
        };
        Ok(Some(PkiSettings {
            device_ca: required(device_ca, "pki.device_ca")?,
            kdh_ca: required(kdh_ca, "pki.kdh_ca")?,
            operator_ca: required(operator_ca, "pki.operator_ca")?,
            device_crl: optional(device_crl, "pki.device_crl")?,
            kdh_crl: optional(kdh_crl, "pki.kdh_crl")?,
            operator_crl: optional(operator_crl, "pki.operator_crl")?,
        }))
    }

    /// `[operator]`. Requiring operators without `[pki]` is accepted: a freshly flashed
    /// appliance has no site CAs yet and must still start for its ceremonies and imports;
    /// nobody can log in then, so nothing is dispensed (see [`Settings::warnings`]).
    fn operator(
        &self,
        require: Option<Sourced<bool>>,
        login_window_seconds: Option<Sourced<u64>>,
        session_limit_seconds: Option<Sourced<u64>>,
    ) -> Result<OperatorSettings, ConfigError> {
        let login_window = match login_window_seconds {
            Some(value) if !(1..=3600).contains(&value.value) => {
                return Err(self.error(
                    &value,
                    "operator.login_window_seconds",
                    format!("{} is outside 1 to 3600", value.value),
                ));
            }
            Some(value) => Duration::from_secs(value.value),
            None => Duration::from_secs(DEFAULT_LOGIN_WINDOW_SECONDS),
        };
        let session_limit = match session_limit_seconds {
            Some(value) if !(1..=86400).contains(&value.value) => {
                return Err(self.error(
                    &value,
                    "operator.session_limit_seconds",
                    format!("{} is outside 1 to 86400", value.value),
                ));
            }
            Some(value) => Duration::from_secs(value.value),
            None => Duration::from_secs(DEFAULT_SESSION_LIMIT_SECONDS),
        };
        let require = require.is_none_or(|value| value.value);
        Ok(OperatorSettings {
            require,
            login_window,
            session_limit,
        })
    }

    fn clock(
        &self,
        require_trusted: Option<Sourced<bool>>,
        rtc_class: Option<Sourced<PathBuf>>,
    ) -> Result<crate::clock::ClockSettings, ConfigError> {
        let mut clock = crate::clock::ClockSettings::default();
        if let Some(require) = require_trusted {
            clock.require_trusted = require.value;
        }
        if let Some(path) = rtc_class {
            if !path.value.is_absolute() {
                return Err(self.error(
                    &path,
                    "clock.rtc_class",
                    format!(
                        "{} is not an absolute path (e.g. \"/sys/class/rtc\")",
                        path.value.display()
                    ),
                ));
            }
            clock.rtc_class = path.value;
        }
        Ok(clock)
    }

    fn control_socket(&self, socket: Sourced<PathBuf>) -> Result<PathBuf, ConfigError> {
        let length = socket.value.as_os_str().len();
        if !socket.value.is_absolute() {
            return Err(self.error(
                &socket,
                "control.socket",
                format!("{} is not an absolute path", socket.value.display()),
            ));
        }
        if length > MAX_SOCKET_PATH {
            return Err(self.error(
                &socket,
                "control.socket",
                format!(
                    "is {length} bytes long; a Unix socket path holds at most {MAX_SOCKET_PATH}"
                ),
            ));
        }
        if socket.value.file_name().is_none() {
            return Err(self.error(
                &socket,
                "control.socket",
                format!("{} names no file", socket.value.display()),
            ));
        }
        Ok(socket.value)
    }

    /// `[[port]]`; certificate mode needs the `[pki]` trust anchors (`has_pki`), and is
    /// offered by default when they are configured (it runs once a KDH certificate is
    /// installed). Returns the ports with where each one's path was set.
    fn ports(
        &self,
        raw: Option<Sourced<Vec<RawPort>>>,
        has_pki: bool,
    ) -> Result<(Vec<PortSettings>, Vec<Location>), ConfigError> {
        let Some(raw) = raw else {
            return Err(self.error_in(0, 0, "port", "at least one [[port]] is needed".to_owned()));
        };
        if raw.value.is_empty() {
            return Err(self.error(&raw, "port", "at least one [[port]] is needed".to_owned()));
        }
        let file = raw.file;
        let at = |value_span: Range<usize>, key: &str, problem: String| {
            self.error_in(file, value_span.start, key, problem)
        };
        let mut names = HashSet::new();
        let mut paths = HashSet::new();
        let mut ports = Vec::with_capacity(raw.value.len());
        let mut paths_at = Vec::with_capacity(raw.value.len());
        for (number, port) in raw.value.into_iter().enumerate() {
            let key = |field: &str| format!("port[{number}].{field}");
            let name = port.name.get_ref().clone();
            let name_ok = !name.is_empty()
                && name.len() <= 32
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !name_ok {
                return Err(at(
                    port.name.span(),
                    &key("name"),
                    format!("{name:?} must be 1 to 32 characters from A-Z a-z 0-9 - _ ."),
                ));
            }
            if !names.insert(name.clone()) {
                return Err(at(
                    port.name.span(),
                    &key("name"),
                    format!("{name:?} is used by another port"),
                ));
            }
            if port.path.get_ref().as_os_str().is_empty() {
                return Err(at(
                    port.path.span(),
                    &key("path"),
                    "must not be empty".to_owned(),
                ));
            }
            // The serial adapter finds the device by this path whatever the working
            // directory: /dev/serial/by-id/..., /dev/keymother/bench-1, /dev/ttyUSB0.
            if !port.path.get_ref().is_absolute() {
                return Err(at(
                    port.path.span(),
                    &key("path"),
                    format!(
                        "{} is not an absolute path (e.g. /dev/keymother/bench-1)",
                        port.path.get_ref().display()
                    ),
                ));
            }
            if !paths.insert(port.path.get_ref().clone()) {
                return Err(at(
                    port.path.span(),
                    &key("path"),
                    format!("{} is used by another port", port.path.get_ref().display()),
                ));
            }
            let baud = match port.baud {
                Some(baud) if !BAUD_RATES.contains(baud.get_ref()) => {
                    return Err(at(
                        baud.span(),
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
                        return Err(at(
                            parity.span(),
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
                        return Err(at(
                            bits.span(),
                            &key("stop_bits"),
                            format!("{other} is not 1 or 2"),
                        ));
                    }
                },
            };
            let modes = match port.modes {
                None if has_pki => vec![Mode::Tr31, Mode::Certificate],
                None => vec![Mode::Tr31],
                Some(modes) => {
                    let span = modes.span();
                    let mut parsed = Vec::new();
                    for (index, mode) in modes.into_inner().into_iter().enumerate() {
                        match mode.get_ref().as_str() {
                            "tr31" => parsed.push(Mode::Tr31),
                            "certificate" if has_pki => parsed.push(Mode::Certificate),
                            "certificate" => {
                                return Err(at(
                                    mode.span(),
                                    &key(&format!("modes[{index}]")),
                                    "certificate mode needs the [pki] trust anchors".to_owned(),
                                ));
                            }
                            other => {
                                return Err(at(
                                    mode.span(),
                                    &key(&format!("modes[{index}]")),
                                    format!(
                                        "{other:?} is not a mode this build offers (tr31, certificate)"
                                    ),
                                ));
                            }
                        }
                    }
                    if parsed.is_empty() {
                        return Err(at(
                            span,
                            &key("modes"),
                            "at least one mode is needed".to_owned(),
                        ));
                    }
                    parsed
                }
            };
            paths_at.push((file, port.path.span().start));
            ports.push(PortSettings {
                name,
                path: port.path.into_inner(),
                baud,
                parity,
                stop_bits,
                modes,
            });
        }
        Ok((ports, paths_at))
    }
}

/// A portable system group name, as `groupadd` and systemd-sysusers accept everywhere:
/// 1 to 32 characters, `a-z` or `_` first, then `a-z`, `0-9`, `_`, `-`.
fn is_group_name(name: &str) -> bool {
    let mut characters = name.chars();
    let first_ok = characters
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    first_ok
        && name.len() <= 32
        && characters
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'))
}

fn file_error(path: &Path, problem: String) -> ConfigError {
    ConfigError {
        file: path.display().to_string(),
        line: 0,
        key: "(file)".to_owned(),
        problem,
    }
}

fn read_source(path: &Path) -> Result<Source, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|error| file_error(path, error.to_string()))?;
    Ok(Source {
        name: path.display().to_string(),
        text,
    })
}

/// Stages 1 to 3 over files already read, main file first; `host`: also what this machine
/// can tell (see [`Settings::check`]).
fn from_sources(sources: &[Source], host: bool) -> Result<Settings, ConfigError> {
    let mut merged = Merged::default();
    for (file, source) in sources.iter().enumerate() {
        merged.apply(source.parse()?, file);
    }
    Validator { sources, host }.settings(merged)
}

/// The main file and its drop-ins, read.
fn read_sources(path: &Path) -> Result<Vec<Source>, ConfigError> {
    let mut sources = vec![read_source(path)?];
    for drop_in in Settings::drop_in_files(path)? {
        sources.push(read_source(&drop_in)?);
    }
    Ok(sources)
}

impl Settings {
    /// Reads and validates a settings file and its drop-ins.
    ///
    /// Drop-ins are the `*.toml` files of the directory named after the main file with `.d`
    /// appended (`/etc/keymother/keymotherd.toml.d/`), read after it in byte order of their
    /// names (`10-site.toml` before `20-bench.toml`; use two-digit prefixes). See
    /// [`Settings::drop_in_files`] for which entries count.
    ///
    /// Three stages, so that every error names the file, the line and the key:
    /// 1. each file is parsed on its own into a raw struct that refuses unknown keys and
    ///    keeps the span of every value (a drop-in may set any subset of the keys);
    /// 2. the files are merged in order: a key set in a later file overrides the same key of
    ///    an earlier one, table by table and key by key, except `[[port]]`: a file with any
    ///    `[[port]]` (or `port = []`) replaces the whole list of ports before it;
    /// 3. the merged values are checked and turned into `Settings`; each value remembers the
    ///    file and span it came from, so a bad value in a drop-in is reported against the
    ///    drop-in, and one inherited from the main file against the main file.
    ///
    /// What only the machine can tell is not looked at here: see [`Settings::check`].
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        from_sources(&read_sources(path)?, false)
    }

    /// [`Settings::load`], then what only the machine the settings are used on can tell,
    /// with the same `file:line: key: problem` errors: that the `[control] group` exists here
    /// (looked up by name), and that no two ports lead to one device (paths that exist and
    /// resolve, links followed, to the same file). `keymotherd --check-config` checks this
    /// way, and so does the unit before every start (`ExecStartPre=`).
    ///
    /// The daemon itself starts with [`Settings::load`] (on the appliance the unit has
    /// checked first): without its group the control socket is only root's and the daemon's
    /// own (it warns), which is how the demo and the tests run on machines that have no
    /// `keymother-operators` group.
    pub fn check(path: &Path) -> Result<Settings, ConfigError> {
        from_sources(&read_sources(path)?, true)
    }

    /// Parses and validates the text of one settings file (no drop-ins); `file` labels errors.
    pub fn from_toml(text: &str, file: &str) -> Result<Settings, ConfigError> {
        from_sources(
            &[Source {
                name: file.to_owned(),
                text: text.to_owned(),
            }],
            false,
        )
    }

    /// What these settings allow but whoever installs them should hear of: printed by
    /// `--check-config` and logged at start, `key: problem` like the trust anchors' warnings
    /// (a deprecated value `file:line: key: problem`, like an error).
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.operator_ca_missing() {
            warnings.push(format!("operator.require: {NO_OPERATOR_CA}"));
        }
        warnings.extend(self.bench.notes.0.iter().cloned());
        warnings
    }

    /// Operator login is required (the default) and there is no `[pki]` with an operator CA
    /// to log in against: the appliance runs, but nothing is dispensed.
    pub fn operator_ca_missing(&self) -> bool {
        self.operator.require && self.pki.is_none()
    }

    /// The drop-in directory of a settings file: its path with `.d` appended.
    pub fn drop_in_dir(path: &Path) -> PathBuf {
        let mut directory = path.as_os_str().to_owned();
        directory.push(".d");
        PathBuf::from(directory)
    }

    /// The drop-in files of a settings file in the order they apply: the `*.toml` entries of
    /// its drop-in directory not starting with a dot, by byte order of their names.
    ///
    /// Other names (`README`, `*.toml.bak`, `*.dpkg-old`, `.#x.toml` editor locks) are
    /// ignored. A `*.toml` entry that is not a regular file after following links (a
    /// directory, a FIFO, a device, a dangling link) is refused rather than skipped or waited
    /// on. A missing directory is the same as an empty one.
    pub fn drop_in_files(path: &Path) -> Result<Vec<PathBuf>, ConfigError> {
        let directory = Settings::drop_in_dir(path);
        let entries = match std::fs::read_dir(&directory) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(file_error(&directory, error.to_string())),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|error| file_error(&directory, error.to_string()))?;
            let name = entry.file_name();
            let candidate = Path::new(&name);
            let hidden = name.as_encoded_bytes().starts_with(b".");
            if hidden
                || candidate
                    .extension()
                    .is_none_or(|extension| extension != "toml")
            {
                continue;
            }
            names.push(name);
        }
        names.sort();
        let mut files = Vec::with_capacity(names.len());
        for name in names {
            let file = directory.join(name);
            let metadata =
                std::fs::metadata(&file).map_err(|error| file_error(&file, error.to_string()))?;
            if !metadata.is_file() {
                return Err(file_error(
                    &file,
                    "is not a regular file (a drop-in must be a regular *.toml file)".to_owned(),
                ));
            }
            files.push(file);
        }
        Ok(files)
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

[operator]
require = false
"#;

    /// GOOD with operator login required, as an appliance runs.
    fn with_pki() -> String {
        GOOD.replace(
            "[operator]\nrequire = false\n",
            "[pki]\ndevice_ca = \"/etc/keymother/pki/device-ca.pem\"\n\
             kdh_ca = \"/etc/keymother/pki/kdh-ca.pem\"\n\
             operator_ca = \"/etc/keymother/pki/operator-ca.pem\"\n\
             operator_crl = \"/etc/keymother/pki/operator.crl\"\n\n\
             [operator]\nlogin_window_seconds = 60\n",
        )
    }

    fn layers(texts: &[&str]) -> Result<Settings, ConfigError> {
        let sources: Vec<Source> = texts
            .iter()
            .enumerate()
            .map(|(number, text)| Source {
                name: format!("file-{number}.toml"),
                text: (*text).to_owned(),
            })
            .collect();
        from_sources(&sources, false)
    }

    /// Each text is refused with an error starting with its expected text.
    fn assert_refused(cases: &[(String, &str)]) {
        for (text, expected) in cases {
            let error = Settings::from_toml(text, "keymotherd.toml")
                .err()
                .unwrap()
                .to_string();
            assert!(
                error.starts_with(expected),
                "expected {expected:?}, got {error:?}"
            );
        }
    }

    #[test]
    fn a_good_file_parses_with_defaults() {
        let settings = Settings::from_toml(GOOD, "keymotherd.toml").unwrap();
        assert_eq!(settings.ports.len(), 2);
        assert_eq!(settings.quarantine_after, 2);
        assert_eq!(settings.idle_timeout, Duration::from_secs(30));
        assert_eq!(settings.ports[1].baud, 115200);
        assert_eq!(settings.ports[1].parity, Parity::Even);
        assert_eq!(settings.ports[1].modes, vec![Mode::Tr31]);
        assert_eq!(settings.control_socket, Path::new(DEFAULT_CONTROL_SOCKET));
        assert_eq!(settings.control_group, DEFAULT_CONTROL_GROUP);
        assert_eq!(settings.log_target, LogTarget::Auto);
        assert_eq!(settings.log_level, LevelFilter::Info);
        assert_eq!(settings.pki, None);
        assert!(!settings.operator.require);
        assert_eq!(settings.operator.login_window, Duration::from_secs(120));
        assert_eq!(
            settings.operator.session_limit,
            Duration::from_secs(8 * 3600)
        );
    }

    #[test]
    fn pki_paths_remember_where_they_were_set() {
        let settings = Settings::from_toml(&with_pki(), "keymotherd.toml").unwrap();
        assert!(settings.operator.require, "required by default");
        assert_eq!(settings.operator.login_window, Duration::from_secs(60));
        let pki = settings.pki.unwrap();
        assert_eq!(
            pki.operator_ca.path,
            Path::new("/etc/keymother/pki/operator-ca.pem")
        );
        assert_eq!(
            (
                pki.operator_ca.file.as_str(),
                pki.operator_ca.line,
                pki.operator_ca.key.as_str()
            ),
            ("keymotherd.toml", 20, "pki.operator_ca")
        );
        assert_eq!(pki.device_crl, None);
        let crl = pki.operator_crl.unwrap();
        assert_eq!(
            crl.error("cannot be read").to_string(),
            "keymotherd.toml:21: pki.operator_crl: /etc/keymother/pki/operator.crl: cannot be read"
        );
        // Where a path was written is not part of the settings.
        let elsewhere = Settings::from_toml(&with_pki(), "/etc/keymother/keymotherd.toml").unwrap();
        assert_eq!(
            elsewhere,
            Settings::from_toml(&with_pki(), "keymotherd.toml").unwrap()
        );
    }

    #[test]
    fn pki_and_operator_errors_name_file_line_and_key() {
        let cases = [
            (
                with_pki().replace("kdh_ca = \"/etc/keymother/pki/kdh-ca.pem\"\n", ""),
                "keymotherd.toml:18: pki.kdh_ca: is required when [pki] is present",
            ),
            (
                with_pki().replace("\"/etc/keymother/pki/kdh-ca.pem\"", "\"kdh-ca.pem\""),
                "keymotherd.toml:19: pki.kdh_ca: kdh-ca.pem is not an absolute path",
            ),
            (
                with_pki().replace("login_window_seconds = 60", "login_window_seconds = 0"),
                "keymotherd.toml:24: operator.login_window_seconds: 0 is outside 1 to 3600",
            ),
            (
                with_pki().replace("login_window_seconds = 60", "session_limit_seconds = 86401"),
                "keymotherd.toml:24: operator.session_limit_seconds: 86401 is outside 1 to 86400",
            ),
            (
                with_pki().replace("login_window_seconds = 60", "require = \"yes\""),
                "keymotherd.toml:24: operator.require: invalid type",
            ),
            (
                with_pki().replace("operator_crl =", "operator_crls ="),
                "keymotherd.toml:21: pki.operator_crls: unknown key",
            ),
        ];
        assert_refused(&cases);
    }

    #[test]
    fn operator_login_required_without_pki_is_accepted_with_a_warning() {
        for text in [
            GOOD.replace("require = false", "require = true"),
            GOOD.replace("require = false", ""),
        ] {
            let settings = Settings::from_toml(&text, "keymotherd.toml").unwrap();
            assert!(settings.operator.require, "{text}");
            assert_eq!(settings.pki, None);
            assert!(settings.operator_ca_missing());
            assert_eq!(
                settings.warnings(),
                [format!("operator.require: {NO_OPERATOR_CA}")]
            );
        }
        // With [pki], or without operator login, there is nothing to warn of.
        for text in [with_pki(), GOOD.to_owned()] {
            let settings = Settings::from_toml(&text, "keymotherd.toml").unwrap();
            assert!(!settings.operator_ca_missing());
            assert!(settings.warnings().is_empty(), "{text}");
        }
    }

    #[test]
    fn pki_keys_merge_one_by_one_across_files() {
        let settings = layers(&[
            &with_pki(),
            "[pki]\noperator_ca = \"/srv/pki/operator-ca.der\"\n[operator]\nrequire = false\n",
        ])
        .unwrap();
        let pki = settings.pki.unwrap();
        assert_eq!(pki.operator_ca.path, Path::new("/srv/pki/operator-ca.der"));
        assert_eq!(
            (pki.operator_ca.file.as_str(), pki.operator_ca.line),
            ("file-1.toml", 2)
        );
        assert_eq!(pki.device_ca.file, "file-0.toml");
        assert!(!settings.operator.require);
        // A drop-in that starts [pki] must still end up with all three CAs.
        let error = layers(&[
            GOOD,
            "\n[pki]\noperator_ca = \"/srv/pki/operator-ca.der\"\n",
        ])
        .err()
        .unwrap()
        .to_string();
        assert!(
            error.starts_with("file-1.toml:3: pki.device_ca: is required when [pki] is present"),
            "{error}"
        );
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
                "keymotherd.toml:10: port[0].speed: unknown key `speed`",
            ),
            (
                GOOD.replace("baud = 115200", "baud = \"fast\""),
                "keymotherd.toml:9: port[0].baud: invalid type",
            ),
            (
                GOOD.replace("name = \"bench-2\"\n", ""),
                "keymotherd.toml:11: port[1].name: is required",
            ),
            (
                GOOD.replace("data_dir = \"/var/lib/keymother\"", ""),
                "keymotherd.toml:1: data_dir: is required",
            ),
            (
                GOOD.replace("quarantine_after = 2", "quarantine_after = 2\n[dispensing]"),
                "keymotherd.toml:5: dispensing: duplicate key",
            ),
        ];
        assert_refused(&cases);
    }

    #[test]
    fn later_files_override_key_by_key_and_replace_ports() {
        let settings = layers(&[
            GOOD,
            "[dispensing]\nidle_timeout_seconds = 9\n[logging]\nlevel = \"debug\"\n",
            "[[port]]\nname = \"solo\"\npath = \"/dev/ttyUSB0\"\n",
        ])
        .unwrap();
        assert_eq!(settings.quarantine_after, 2);
        assert_eq!(settings.idle_timeout, Duration::from_secs(9));
        assert_eq!(settings.log_level, LevelFilter::Debug);
        assert_eq!(settings.ports.len(), 1);
        assert_eq!(settings.ports[0].name, "solo");
    }

    #[test]
    fn a_bad_value_in_a_later_file_names_that_file() {
        let error = layers(&[GOOD, "\n[control]\ngroup = \"Operators!\"\n"])
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.starts_with("file-1.toml:3: control.group: \"Operators!\" is not a group name"),
            "{error}"
        );
        let error = layers(&[GOOD, "port = []\n"]).err().unwrap().to_string();
        assert!(
            error.starts_with("file-1.toml:1: port: at least one [[port]] is needed"),
            "{error}"
        );
    }

    #[test]
    fn group_names() {
        for good in ["keymother-operators", "_km", "ops2", "a"] {
            assert!(is_group_name(good), "{good}");
        }
        for bad in ["", "Ops", "2ops", "-ops", "ops:x", "ops x", &"a".repeat(33)] {
            assert!(!is_group_name(bad), "{bad}");
        }
    }
}
