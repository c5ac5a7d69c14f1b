//! The daemon's settings: a TOML file and its drop-ins, each parsed to a raw serde struct, merged, then validated into `Settings`; every error names the file, the line and the key.
//!
//! The three stages each have their module: `raw` parses one file into serde structs that
//! keep every value's span, `merged` lays the files over each other key by key, and
//! `validate` checks the merged values, section by section, into the public types here.

mod merged;
mod raw;
mod validate;

use std::path::{Path, PathBuf};
use std::time::Duration;

use keymother_protocol::Mode;
use log::LevelFilter;

use merged::Merged;
use raw::Source;
use validate::Validator;

/// Serial rates the appliance accepts.
pub const BAUD_RATES: [u32; 8] = [9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600];

/// The control socket's path unless `[control] socket` says otherwise (under systemd's
/// `RuntimeDirectory=keymother`).
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/keymother/control.sock";

/// The group whose members may use the control socket unless `[control] group` says otherwise.
pub const DEFAULT_CONTROL_GROUP: &str = "keymother-operators";

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
    /// The device profiles this port offers (mode 3), in order.
    pub profiles: Vec<keymother_protocol::profile::Profile>,
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
    /// Intermediate CA certificates (a PEM bundle) between operator certificates and the
    /// operator CA.
    pub operator_intermediates: Option<SourcedPath>,
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
    /// The device profiles the ports may offer (`[[profile]]`).
    pub profiles: Vec<keymother_protocol::profile::Profile>,
    /// Failed confirmations (wrong KCV) after which a key is quarantined.
    pub quarantine_after: u32,
    /// A terminal session with no request for this long is forgotten (its key stays bound).
    pub idle_timeout: Duration,
    /// Certificate-mode key requests accepted per port per minute: each costs a private-key
    /// operation with the KDH key (docs/SECURITY.md, Marvin).
    pub certificate_requests_per_minute: u32,
    /// Whether a terminal must be on an open expected-device list to get a key (PCI PIN 30-3);
    /// others are refused with DEVICE_NOT_EXPECTED before anything is reserved.
    pub require_expected_devices: bool,
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

    /// Two ports, operator login off: the settings of a demo bench.
    pub(super) const GOOD: &str = r#"data_dir = "/var/lib/keymother"

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
    pub(super) fn with_pki() -> String {
        GOOD.replace(
            "[operator]\nrequire = false\n",
            "[pki]\ndevice_ca = \"/etc/keymother/pki/device-ca.pem\"\n\
             kdh_ca = \"/etc/keymother/pki/kdh-ca.pem\"\n\
             operator_ca = \"/etc/keymother/pki/operator-ca.pem\"\n\
             operator_crl = \"/etc/keymother/pki/operator.crl\"\n\n\
             [operator]\nlogin_window_seconds = 60\n",
        )
    }

    /// Each text as a file `file-N.toml`, merged in order.
    pub(super) fn layers(texts: &[&str]) -> Result<Settings, ConfigError> {
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
    fn expected_devices_are_required_only_when_set_and_a_drop_in_may_turn_it_on() {
        let default = Settings::from_toml(GOOD, "keymotherd.toml").unwrap();
        assert!(!default.require_expected_devices);
        let on = GOOD.replace(
            "quarantine_after = 2",
            "quarantine_after = 2\nrequire_expected_devices = true",
        );
        assert!(
            Settings::from_toml(&on, "keymotherd.toml")
                .unwrap()
                .require_expected_devices
        );
        let layered = layers(&[&on, "[dispensing]\nrequire_expected_devices = false\n"]).unwrap();
        assert!(!layered.require_expected_devices, "the later file decides");
        let layered = layers(&[GOOD, "[dispensing]\nrequire_expected_devices = true\n"]).unwrap();
        assert!(layered.require_expected_devices);
        assert_refused(&[(
            GOOD.replace(
                "quarantine_after = 2",
                "quarantine_after = 2\nrequire_expected_devices = \"yes\"",
            ),
            "keymotherd.toml:5: dispensing.require_expected_devices: ",
        )]);
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
}
