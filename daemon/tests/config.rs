#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Settings files and drop-ins on disk: every refusal names the file, the line and the key; drop-ins override in order; the real binary's `--check-config`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use keymother_daemon::config::{LogTarget, Parity, StopBits};
use keymother_daemon::{ConfigError, Settings};
use log::LevelFilter;
use tempfile::TempDir;

/// The pki crate's openssl-made test CAs and CRLs.
macro_rules! fixture {
    ($name:literal) => {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../pki/tests/fixtures/", $name)
    };
}

/// A complete main file; line numbers matter to the cases below. Its CA files exist, so the
/// real binary's `--check-config` accepts it.
const MAIN: &str = concat!(
    r#"data_dir = "/var/lib/keymother"

[dispensing]
quarantine_after = 3
idle_timeout_seconds = 30

[control]
socket = "/run/keymother/control.sock"
group = "keymother-operators"

[logging]
target = "auto"
level = "info"

[[port]]
name = "bench-1"
path = "/dev/keymother/bench-1"
baud = 115200
parity = "none"
stop_bits = 1
modes = ["tr31"]

[[port]]
name = "bench-2"
path = "/dev/keymother/bench-2"

[operator]
require = true
login_window_seconds = 120
session_limit_seconds = 28800

[pki]
device_ca = ""#,
    fixture!("ca-device.pem"),
    "\"\nkdh_ca = \"",
    fixture!("ca-kdh.pem"),
    "\"\noperator_ca = \"",
    fixture!("ca-operator.pem"),
    "\"\n"
);

/// A group that exists on this machine: the test user's primary group, else root's (gid 0),
/// whichever has a name `[control] group` takes.
fn existing_group() -> String {
    let portable = |name: &str| {
        name.len() <= 32
            && name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'))
    };
    [nix::unistd::getegid(), nix::unistd::Gid::from_raw(0)]
        .into_iter()
        .filter_map(|gid| nix::unistd::Group::from_gid(gid).ok().flatten())
        .map(|group| group.name)
        .find(|name| portable(name))
        .expect("a group with a portable name on this machine")
}

/// MAIN, or a text made from it, as `--check-config` accepts it on this machine: it refuses a
/// `[control] group` that does not exist here, and keymother-operators exists on the
/// appliance (sysusers.d), not on a development or CI machine. The group is replaced on its
/// own line, so line numbers stay those of MAIN.
fn on_this_machine(text: &str) -> String {
    let group = "group = \"keymother-operators\"";
    assert!(text.contains(group), "{text}");
    text.replacen(group, &format!("group = \"{}\"", existing_group()), 1)
}

/// A settings directory: `keymotherd.toml` and its `keymotherd.toml.d/`.
struct Etc {
    directory: TempDir,
}

impl Etc {
    fn new(main: &str) -> Etc {
        let directory = tempfile::tempdir().unwrap();
        std::fs::write(directory.path().join("keymotherd.toml"), main).unwrap();
        Etc { directory }
    }

    fn main(&self) -> PathBuf {
        self.directory.path().join("keymotherd.toml")
    }

    fn drop_in(&self, name: &str, text: &str) -> PathBuf {
        let directory = self.directory.path().join("keymotherd.toml.d");
        std::fs::create_dir_all(&directory).unwrap();
        let path = directory.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn load(&self) -> Result<Settings, ConfigError> {
        Settings::load(&self.main())
    }

    fn refused(&self) -> ConfigError {
        match self.load() {
            Ok(settings) => panic!("accepted: {settings:?}"),
            Err(error) => error,
        }
    }
}

/// Asserts the error's file, line, key, that the problem contains `problem`, and that the
/// message puts them together as `file:line: key: problem`.
fn assert_names(error: &ConfigError, file: &Path, line: usize, key: &str, problem: &str) {
    let message = error.to_string();
    assert_eq!(error.file, file.display().to_string(), "{message}");
    assert_eq!((error.line, error.key.as_str()), (line, key), "{message}");
    assert!(
        error.problem.contains(problem),
        "{message} lacks {problem:?}"
    );
    assert!(
        message.starts_with(&format!("{}:{line}: {key}: ", file.display())),
        "{message}"
    );
}

/// (what, line of MAIN replaced, its replacement, line, key, part of the problem): each kind
/// of refusal once, in the main file.
#[rustfmt::skip]
const MAIN_CASES: &[(&str, &str, &str, usize, &str, &str)] = &[
    ("syntax", "baud = 115200", "baud = 115200 fast", 18, "port[0].baud", "must be quoted"),
    ("unclosed string", "level = \"info\"", "level = \"info", 13, "logging.level", "string"),
    ("unknown key", "stop_bits = 1", "stop_bits = 1\nspeed = 3", 21, "port[0].speed", "unknown key `speed`"),
    ("unknown table", "[logging]", "[logs]", 11, "logs", "unknown key `logs`"),
    ("wrong type", "baud = 115200", "baud = \"fast\"", 18, "port[0].baud", "invalid type"),
    ("wrong type of table", "idle_timeout_seconds = 30", "idle_timeout_seconds = \"30s\"", 5, "dispensing.idle_timeout_seconds", "invalid type"),
    ("negative", "quarantine_after = 3", "quarantine_after = -1", 4, "dispensing.quarantine_after", "invalid value"),
    ("baud", "baud = 115200", "baud = 1200", 18, "port[0].baud", "1200 is not one of"),
    ("parity", "parity = \"none\"", "parity = \"mark\"", 19, "port[0].parity", "\"mark\" is not none, even or odd"),
    ("stop bits", "stop_bits = 1", "stop_bits = 3", 20, "port[0].stop_bits", "3 is not 1 or 2"),
    ("quarantine", "quarantine_after = 3", "quarantine_after = 11", 4, "dispensing.quarantine_after", "11 is outside 1 to 10"),
    ("idle timeout", "idle_timeout_seconds = 30", "idle_timeout_seconds = 0", 5, "dispensing.idle_timeout_seconds", "0 is outside 1 to 3600"),
    ("duplicate name", "name = \"bench-2\"", "name = \"bench-1\"", 24, "port[1].name", "\"bench-1\" is used by another port"),
    ("duplicate path", "path = \"/dev/keymother/bench-2\"", "path = \"/dev/keymother/bench-1\"", 25, "port[1].path", "is used by another port"),
    ("bad port name", "name = \"bench-2\"", "name = \"bench 2\"", 24, "port[1].name", "must be 1 to 32 characters"),
    ("missing port path", "path = \"/dev/keymother/bench-2\"", "", 23, "port[1].path", "is required"),
    ("unknown mode", "modes = [\"tr31\"]", "modes = [\"tr31\", \"clear\"]", 21, "port[0].modes[1]", "\"clear\" is not a mode"),
    ("no modes", "modes = [\"tr31\"]", "modes = []", 21, "port[0].modes", "at least one mode"),
    ("group", "group = \"keymother-operators\"", "group = \"Key Mothers\"", 9, "control.group", "is not a group name"),
    ("relative socket", "socket = \"/run/keymother/control.sock\"", "socket = \"control.sock\"", 8, "control.socket", "not an absolute path"),
    ("log target", "target = \"auto\"", "target = \"syslog\"", 12, "logging.target", "\"syslog\" is not auto, journal or stderr"),
    ("log level", "level = \"info\"", "level = \"trace\"", 13, "logging.level", "\"trace\" is not error, warn, info or debug"),
    ("duplicate table", "[logging]", "[logging]\nlevel = \"warn\"\n[logging]", 13, "logging", "duplicate key"),
    ("missing data_dir", "data_dir = \"/var/lib/keymother\"", "", 1, "data_dir", "is required"),
    ("login window", "login_window_seconds = 120", "login_window_seconds = 0", 29, "operator.login_window_seconds", "0 is outside 1 to 3600"),
    ("session limit", "session_limit_seconds = 28800", "session_limit_seconds = 90000", 30, "operator.session_limit_seconds", "90000 is outside 1 to 86400"),
    ("require type", "require = true", "require = 1", 28, "operator.require", "invalid type"),
    ("unknown operator key", "require = true", "require = true\nrequired = true", 29, "operator.required", "unknown key `required`"),
    ("relative CA", "kdh_ca = \"", "kdh_ca = \"ca/", 34, "pki.kdh_ca", "is not an absolute path"),
    ("missing CA", "kdh_ca = \"", "kdh_certificate = \"", 34, "pki.kdh_certificate", "unknown key"),
    ("unknown pki key", "[pki]", "[pki]\nroot = \"/etc/root.pem\"", 33, "pki.root", "unknown key `root`"),
    ("relative data_dir", "data_dir = \"/var/lib/keymother\"", "data_dir = \"var/lib/keymother\"", 1, "data_dir", "var/lib/keymother is not an absolute path"),
    ("data_dir .", "data_dir = \"/var/lib/keymother\"", "data_dir = \".\"", 1, "data_dir", ". is not an absolute path"),
    ("relative port path", "path = \"/dev/keymother/bench-2\"", "path = \"ttyUSB1\"", 25, "port[1].path", "ttyUSB1 is not an absolute path"),
    ("port path under .", "path = \"/dev/keymother/bench-1\"", "path = \"./dev/ttyUSB0\"", 17, "port[0].path", "./dev/ttyUSB0 is not an absolute path"),
];

#[test]
fn every_refusal_in_the_main_file_names_file_line_and_key() {
    for &(what, line, replacement, expected_line, key, problem) in MAIN_CASES {
        assert!(MAIN.contains(line), "{what}: {line:?} is not in MAIN");
        let etc = Etc::new(&MAIN.replacen(line, replacement, 1));
        let error = etc.refused();
        eprintln!("{what}: {error}");
        assert_names(&error, &etc.main(), expected_line, key, problem);
    }
}

#[test]
fn no_ports_names_the_main_file() {
    let without_ports = &MAIN[..MAIN.find("[[port]]").unwrap()];
    let etc = Etc::new(without_ports);
    assert_names(
        &etc.refused(),
        &etc.main(),
        1,
        "port",
        "at least one [[port]]",
    );

    let etc = Etc::new(&without_ports.replacen("\n", "\nport = []\n", 1));
    assert_names(
        &etc.refused(),
        &etc.main(),
        2,
        "port",
        "at least one [[port]]",
    );
}

/// (what, drop-in text, line, key, part of the problem): each kind of refusal once, in a
/// drop-in that follows a good drop-in; the error names the bad drop-in.
#[rustfmt::skip]
const DROP_IN_CASES: &[(&str, &str, usize, &str, &str)] = &[
    ("syntax", "# bench\n[dispensing\nquarantine_after = 3\n", 2, "(syntax)", ""),
    ("unknown key", "# bench\n[dispensing]\nquarantine = 3\n", 3, "dispensing.quarantine", "unknown key"),
    ("wrong type", "[control]\nsocket = 7\n", 2, "control.socket", "invalid type"),
    ("baud", "[[port]]\nname = \"a\"\npath = \"/dev/ttyUSB0\"\nbaud = 1200\n", 4, "port[0].baud", "1200 is not one of"),
    ("parity", "[[port]]\nname = \"a\"\npath = \"/dev/ttyUSB0\"\nparity = \"space\"\n", 4, "port[0].parity", "is not none, even or odd"),
    ("stop bits", "[[port]]\nname = \"a\"\npath = \"/dev/ttyUSB0\"\nstop_bits = 0\n", 4, "port[0].stop_bits", "0 is not 1 or 2"),
    ("quarantine", "\n\n[dispensing]\nquarantine_after = 0\n", 4, "dispensing.quarantine_after", "outside 1 to 10"),
    ("idle timeout", "[dispensing]\nidle_timeout_seconds = 3601\n", 2, "dispensing.idle_timeout_seconds", "outside 1 to 3600"),
    ("certificate rate", "[dispensing]\ncertificate_requests_per_minute = 0\n", 2, "dispensing.certificate_requests_per_minute", "0 is outside 1 to 600"),
    ("certificate rate type", "[dispensing]\n\ncertificate_requests_per_minute = -1\n", 3, "dispensing.certificate_requests_per_minute", "invalid value"),
    ("duplicate name", "[[port]]\nname = \"a\"\npath = \"/dev/ttyUSB0\"\n[[port]]\nname = \"a\"\npath = \"/dev/ttyUSB1\"\n", 5, "port[1].name", "is used by another port"),
    ("duplicate path", "[[port]]\nname = \"a\"\npath = \"/dev/ttyUSB0\"\n[[port]]\nname = \"b\"\npath = \"/dev/ttyUSB0\"\n", 6, "port[1].path", "is used by another port"),
    ("no ports", "# no ports on this bench\nport = []\n", 2, "port", "at least one [[port]]"),
    ("unknown mode", "[[port]]\nname = \"a\"\npath = \"/dev/ttyUSB0\"\nmodes = [\"cert\"]\n", 4, "port[0].modes[0]", "\"cert\" is not a mode"),
    ("group", "[control]\ngroup = \"root:root\"\n", 2, "control.group", "is not a group name"),
    ("long socket", "[control]\nsocket = \"/run/keymother/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock\"\n", 2, "control.socket", "at most 107"),
    ("log level", "[logging]\nlevel = \"verbose\"\n", 2, "logging.level", "is not error, warn, info or debug"),
    ("relative CRL", "[pki]\noperator_crl = \"operator.crl\"\n", 2, "pki.operator_crl", "is not an absolute path"),
    ("login window", "\n[operator]\nlogin_window_seconds = 7200\n", 3, "operator.login_window_seconds", "7200 is outside 1 to 3600"),
    ("relative data_dir", "# moved\ndata_dir = \"keymother\"\n", 2, "data_dir", "keymother is not an absolute path"),
    ("relative port path", "[[port]]\nname = \"a\"\npath = \"/dev/ttyUSB0\"\n[[port]]\nname = \"b\"\npath = \"serial/by-id/usb-FTDI_A2\"\n", 6, "port[1].path", "is not an absolute path"),
];

#[test]
fn every_refusal_in_a_drop_in_names_the_drop_in_line_and_key() {
    for &(what, text, line, key, problem) in DROP_IN_CASES {
        let etc = Etc::new(MAIN);
        etc.drop_in("10-site.toml", "[logging]\nlevel = \"warn\"\n");
        let bad = etc.drop_in("20-bench.toml", text);
        let error = etc.refused();
        eprintln!("{what}: {error}");
        assert_names(&error, &bad, line, key, problem);
    }
}

#[test]
fn a_value_from_the_main_file_is_still_reported_against_the_main_file() {
    // The drop-in is fine; the main file's bad port list survives because the drop-in sets
    // no ports, so the error points at the main file's line.
    let etc = Etc::new(&MAIN.replace("name = \"bench-2\"", "name = \"bench-1\""));
    etc.drop_in("10-site.toml", "[dispensing]\nquarantine_after = 5\n");
    assert_names(
        &etc.refused(),
        &etc.main(),
        24,
        "port[1].name",
        "used by another port",
    );
}

#[test]
fn a_drop_in_overrides_single_keys_and_keeps_the_rest() {
    let etc = Etc::new(MAIN);
    etc.drop_in(
        "10-site.toml",
        "[dispensing]\nidle_timeout_seconds = 90\ncertificate_requests_per_minute = 12\n\n[control]\ngroup = \"bench-operators\"\n\n[logging]\ntarget = \"journal\"\nlevel = \"debug\"\n",
    );
    let settings = etc.load().unwrap();
    assert_eq!(settings.idle_timeout, Duration::from_secs(90));
    assert_eq!(settings.quarantine_after, 3, "kept from the main file");
    assert_eq!(settings.certificate_requests_per_minute, 12);
    assert_eq!(settings.control_group, "bench-operators");
    assert_eq!(
        settings.control_socket,
        Path::new("/run/keymother/control.sock"),
        "kept from the main file"
    );
    assert_eq!(settings.log_target, LogTarget::Journal);
    assert_eq!(settings.log_level, LevelFilter::Debug);
    assert_eq!(
        settings.ports.len(),
        2,
        "no [[port]] in the drop-in: ports kept"
    );
}

#[test]
fn drop_in_ports_replace_the_main_files_ports() {
    let etc = Etc::new(MAIN);
    etc.drop_in(
        "10-bench.toml",
        "[[port]]\nname = \"left\"\npath = \"/dev/ttyUSB3\"\nbaud = 9600\nparity = \"odd\"\nstop_bits = 2\n",
    );
    let settings = etc.load().unwrap();
    assert_eq!(settings.ports.len(), 1);
    let port = &settings.ports[0];
    assert_eq!(port.name, "left");
    assert_eq!(port.path, Path::new("/dev/ttyUSB3"));
    assert_eq!(
        (port.baud, port.parity, port.stop_bits),
        (9600, Parity::Odd, StopBits::Two)
    );
}

#[test]
fn drop_ins_apply_in_byte_order_of_their_names() {
    let etc = Etc::new(MAIN);
    // Written out of order; applied as 10-, 20-, 9- (byte order, not numeric).
    etc.drop_in("9-last.toml", "[dispensing]\nidle_timeout_seconds = 9\n");
    etc.drop_in(
        "20-middle.toml",
        "[dispensing]\nidle_timeout_seconds = 20\nquarantine_after = 7\n",
    );
    etc.drop_in("10-first.toml", "[dispensing]\nidle_timeout_seconds = 10\nquarantine_after = 5\n[logging]\nlevel = \"error\"\n");
    let files = Settings::drop_in_files(&etc.main()).unwrap();
    let names: Vec<_> = files
        .iter()
        .map(|file| file.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["10-first.toml", "20-middle.toml", "9-last.toml"]);
    let settings = etc.load().unwrap();
    assert_eq!(settings.idle_timeout, Duration::from_secs(9));
    assert_eq!(settings.quarantine_after, 7);
    assert_eq!(settings.log_level, LevelFilter::Error);
}

#[test]
fn other_names_in_the_drop_in_directory_are_ignored() {
    let etc = Etc::new(MAIN);
    let broken = "this is [not toml";
    etc.drop_in("README", broken);
    etc.drop_in("10-site.toml.bak", broken);
    etc.drop_in("10-site.toml.dpkg-old", broken);
    etc.drop_in(".#10-site.toml", broken);
    etc.drop_in("10-site.TOML", broken);
    etc.drop_in("10-site.toml", "[dispensing]\nquarantine_after = 4\n");
    assert_eq!(Settings::drop_in_files(&etc.main()).unwrap().len(), 1);
    assert_eq!(etc.load().unwrap().quarantine_after, 4);
}

#[test]
fn a_drop_in_that_is_not_a_regular_file_is_refused() {
    let etc = Etc::new(MAIN);
    let directory = Settings::drop_in_dir(&etc.main()).join("10-site.toml");
    std::fs::create_dir_all(&directory).unwrap();
    let error = etc.refused();
    assert_names(&error, &directory, 0, "(file)", "not a regular file");

    let etc = Etc::new(MAIN);
    let dangling = Settings::drop_in_dir(&etc.main()).join("10-site.toml");
    std::fs::create_dir_all(dangling.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink("/nonexistent/keymother.toml", &dangling).unwrap();
    assert_names(&etc.refused(), &dangling, 0, "(file)", "");
}

#[test]
fn a_link_to_a_regular_file_is_followed() {
    let etc = Etc::new(MAIN);
    let target = etc.directory.path().join("shared-bench.toml");
    std::fs::write(&target, "[dispensing]\nquarantine_after = 6\n").unwrap();
    let link = Settings::drop_in_dir(&etc.main()).join("10-bench.toml");
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&target, &link).unwrap();
    assert_eq!(etc.load().unwrap().quarantine_after, 6);
}

#[test]
fn a_drop_in_may_supply_what_the_main_file_lacks() {
    let etc = Etc::new("# everything is in the drop-ins\n");
    etc.drop_in("10-data.toml", "data_dir = \"/srv/keymother\"\n");
    etc.drop_in(
        "20-ports.toml",
        "[[port]]\nname = \"a\"\npath = \"/dev/ttyUSB0\"\n",
    );
    etc.drop_in("30-bench.toml", "[operator]\nrequire = false\n");
    let settings = etc.load().unwrap();
    assert_eq!(settings.data_dir, Path::new("/srv/keymother"));
    assert_eq!(settings.ports.len(), 1);
    assert!(!settings.operator.require);
}

#[test]
fn operator_login_is_required_by_default_with_or_without_pki() {
    let settings = Etc::new(MAIN).load().unwrap();
    assert!(settings.operator.require);
    let pki = settings.pki.unwrap();
    assert_eq!(pki.operator_ca.path, Path::new(fixture!("ca-operator.pem")));
    assert_eq!(
        (pki.operator_ca.line, pki.operator_ca.key.as_str()),
        (35, "pki.operator_ca")
    );

    // Without [pki] (factory settings) the daemon starts, and fails closed: operator login
    // stays required, whether said or implied, though nobody can log in yet.
    let without_pki = &MAIN[..MAIN.find("[pki]").unwrap()];
    for text in [without_pki, &without_pki.replace("require = true\n", "")] {
        let settings = Etc::new(text).load().unwrap();
        assert!(settings.operator.require, "{text}");
        assert_eq!(settings.pki, None);
        assert!(settings.operator_ca_missing());
    }
    // A bench drop-in may turn it off; a drop-in may bring the whole [pki] too.
    let etc = Etc::new(without_pki);
    etc.drop_in("10-bench.toml", "[operator]\nrequire = false\n");
    assert!(!etc.load().unwrap().operator.require);
    let etc = Etc::new(without_pki);
    let pki = &MAIN[MAIN.find("[pki]").unwrap()..];
    etc.drop_in("10-pki.toml", pki);
    let settings = etc.load().unwrap();
    assert_eq!(
        settings.pki.unwrap().kdh_ca.file,
        Settings::drop_in_dir(&etc.main())
            .join("10-pki.toml")
            .display()
            .to_string()
    );
    // [pki] needs all three CAs.
    let etc = Etc::new(&MAIN.replacen("kdh_ca = ", "# kdh_ca = ", 1));
    assert_names(
        &etc.refused(),
        &etc.main(),
        33,
        "pki.kdh_ca",
        "is required when [pki] is present",
    );
}

#[test]
fn a_missing_main_file_is_named() {
    let directory = tempfile::tempdir().unwrap();
    let missing = directory.path().join("absent.toml");
    assert_names(
        &Settings::load(&missing).unwrap_err(),
        &missing,
        0,
        "(file)",
        "",
    );
}

#[test]
fn defaults_when_the_new_tables_are_absent() {
    // Operator login needs [pki] (see above), so an old file says it is not wanted.
    let text = "data_dir = \"/var/lib/keymother\"\n[operator]\nrequire = false\n[[port]]\nname = \"a\"\npath = \"/dev/ttyUSB0\"\n";
    let settings = Settings::from_toml(text, "old.toml").unwrap();
    assert_eq!(settings.pki, None);
    assert_eq!(settings.operator.login_window, Duration::from_secs(120));
    assert_eq!(
        settings.operator.session_limit,
        Duration::from_secs(8 * 3600)
    );
    assert_eq!(
        settings.control_socket,
        Path::new("/run/keymother/control.sock")
    );
    assert_eq!(settings.control_group, "keymother-operators");
    assert_eq!(settings.log_target, LogTarget::Auto);
    assert_eq!(settings.log_level, LevelFilter::Info);
    assert_eq!(settings.quarantine_after, 3);
    assert_eq!(settings.idle_timeout, Duration::from_secs(30));
}

fn check_config(config: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_keymotherd"))
        .arg("--config")
        .arg(config)
        .arg("--check-config")
        .output()
        .unwrap()
}

#[test]
fn check_config_accepts_a_good_file() {
    let etc = Etc::new(&on_this_machine(MAIN));
    etc.drop_in("10-site.toml", "[logging]\nlevel = \"debug\"\n");
    let output = check_config(&etc.main());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{:?} {stdout} {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&format!("{}: ok", etc.main().display())),
        "{stdout}"
    );
    // The form the operators' guide uses: `keymotherd --check-config PATH`.
    let output = Command::new(env!("CARGO_BIN_EXE_keymotherd"))
        .arg("--check-config")
        .arg(etc.main())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let bad = Etc::new(&on_this_machine(MAIN).replace("baud = 115200", "baud = 115201"));
    let output = Command::new(env!("CARGO_BIN_EXE_keymotherd"))
        .arg("--check-config")
        .arg(bad.main())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("port[0].baud: 115201"));
}

#[test]
fn check_config_names_file_line_and_key_of_a_bad_drop_in() {
    let etc = Etc::new(MAIN);
    let bad = etc.drop_in("10-bench.toml", "\n[dispensing]\nquarantine_after = 99\n");
    let output = check_config(&etc.main());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}:3: dispensing.quarantine_after: 99 is outside 1 to 10",
            bad.display()
        )),
        "{stderr}"
    );

    let etc = Etc::new(&MAIN.replace("baud = 115200", "baud = 115201"));
    let output = check_config(&etc.main());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}:18: port[0].baud: 115201",
            etc.main().display()
        )),
        "{stderr}"
    );
}

/// Operator login required without [pki] (a freshly flashed appliance) passes the check, with
/// a warning that nothing can be dispensed until [pki] is added; without operator login it
/// passes quietly.
#[test]
fn check_config_warns_when_operator_login_is_required_without_pki() {
    let main = on_this_machine(MAIN);
    let without_pki = &main[..main.find("[pki]").unwrap()];
    for text in [without_pki, &without_pki.replace("require = true\n", "")] {
        let etc = Etc::new(text);
        let output = check_config(&etc.main());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        assert!(
            String::from_utf8_lossy(&output.stdout)
                .contains(&format!("{}: ok", etc.main().display())),
            "{stderr}"
        );
        assert!(
            stderr.contains(
                "keymotherd: warning: operator.require: operator login is required but no \
                 operator CA is configured ([pki] operator_ca), so no key can be dispensed \
                 until [pki] is added"
            ),
            "{stderr}"
        );
    }
    let etc = Etc::new(&without_pki.replace("require = true", "require = false"));
    let output = check_config(&etc.main());
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
    // With [pki] there is nothing to warn of.
    let output = check_config(&Etc::new(&main).main());
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
}

/// `--check-config` reads the CA and CRL files [pki] names: each refusal names the settings
/// file, the line, the key and the CA or CRL file.
#[test]
fn check_config_reads_the_ca_and_crl_files() {
    let ca = fixture!("ca-operator.pem");
    #[rustfmt::skip]
    let cases: &[(&str, String, usize, &str, &str)] = &[
        ("missing", MAIN.replace(ca, "/nonexistent/operator-ca.pem"), 35, "pki.operator_ca", "/nonexistent/operator-ca.pem: cannot be read"),
        ("not a certificate", MAIN.replace(ca, fixture!("README.md")), 35, "pki.operator_ca", "is not a CA certificate (PEM or DER)"),
        ("a leaf, not a CA", MAIN.replace(ca, fixture!("operator.der")), 35, "pki.operator_ca", "the operator CA certificate is not usable as a trust anchor"),
        ("one CA for two roles", MAIN.replace(ca, fixture!("ca-device.pem")), 35, "pki.operator_ca", "share a public key; each role needs its own CA"),
        ("a CRL of another CA", format!("{MAIN}operator_crl = \"{}\"\n", fixture!("ca-kdh.crl.pem")), 36, "pki.operator_crl", "not by the operator CA"),
        ("not a CRL", format!("{MAIN}device_crl = \"{}\"\n", fixture!("ca-device.pem")), 36, "pki.device_crl", "cannot parse the CRL"),
    ];
    for (what, text, line, key, problem) in cases {
        let etc = Etc::new(&on_this_machine(text));
        let output = check_config(&etc.main());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{what}: accepted");
        let expected = format!("{}:{line}: {key}: ", etc.main().display());
        assert!(
            stderr.contains(&expected) && stderr.contains(problem),
            "{what}: expected {expected:?} and {problem:?}, got {stderr}"
        );
    }
    // A CRL outside its dates (this one is for 2028..2028-02) is usable settings, with a
    // warning: every check against it refuses meanwhile.
    let etc = Etc::new(&on_this_machine(&format!(
        "{MAIN}device_crl = \"{}\"\n",
        fixture!("ca-device-stale.crl.pem")
    )));
    let output = check_config(&etc.main());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: pki.device_crl: ")
            && stderr.contains("terminal device certificates are refused until it is replaced"),
        "{stderr}"
    );
}

/// A group name no machine running these tests has.
const NO_SUCH_GROUP: &str = "keymother-no-such-group";

/// `--check-config` refuses a `[control] group` this machine does not have (a typo would
/// leave the control socket to root and the daemon's user, with only a warning in the log),
/// naming the file and line that set it; the daemon itself still starts with it.
#[test]
fn check_config_refuses_a_control_group_that_is_not_on_this_machine() {
    assert_eq!(nix::unistd::Group::from_name(NO_SUCH_GROUP).unwrap(), None);
    let typo = MAIN.replacen(
        "group = \"keymother-operators\"",
        &format!("group = \"{NO_SUCH_GROUP}\""),
        1,
    );
    let etc = Etc::new(&typo);
    assert_eq!(etc.load().unwrap().control_group, NO_SUCH_GROUP);
    let problem = format!("\"{NO_SUCH_GROUP}\" is not a group on this machine");
    assert_names(
        &Settings::check(&etc.main()).unwrap_err(),
        &etc.main(),
        9,
        "control.group",
        &problem,
    );
    let output = check_config(&etc.main());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}:9: control.group: {problem}",
            etc.main().display()
        )),
        "{stderr}"
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), "");

    // Set in a drop-in: the drop-in is named.
    let etc = Etc::new(&on_this_machine(MAIN));
    assert_eq!(
        Settings::check(&etc.main()).unwrap().control_group,
        existing_group()
    );
    let bad = etc.drop_in(
        "10-site.toml",
        &format!("# site\n[control]\ngroup = \"{NO_SUCH_GROUP}\"\n"),
    );
    assert_names(
        &Settings::check(&etc.main()).unwrap_err(),
        &bad,
        3,
        "control.group",
        &problem,
    );
    let output = check_config(&etc.main());
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains(&format!("{}:3: control.group: {problem}", bad.display()))
    );

    // A mistake in the text is reported before what this machine says.
    let etc = Etc::new(&typo.replace("baud = 115200", "baud = 115201"));
    assert_names(
        &Settings::check(&etc.main()).unwrap_err(),
        &etc.main(),
        18,
        "port[0].baud",
        "115201",
    );

    // Unset, the default group is looked up too (and reported against the main file).
    let etc = Etc::new(&MAIN.replacen("group = \"keymother-operators\"\n", "", 1));
    match nix::unistd::Group::from_name("keymother-operators").unwrap() {
        None => assert_names(
            &Settings::check(&etc.main()).unwrap_err(),
            &etc.main(),
            1,
            "control.group",
            "\"keymother-operators\" (the default) is not a group on this machine",
        ),
        Some(_) => {
            Settings::check(&etc.main()).unwrap();
        }
    }
}

/// `--check-config` refuses two ports that lead to one device: links that resolve to the
/// same file (the same path written twice is refused with the text, see MAIN_CASES). Paths
/// that do not exist here are not judged.
#[test]
fn check_config_refuses_two_ports_that_lead_to_one_device() {
    let etc = Etc::new(&on_this_machine(MAIN));
    let dev = etc.directory.path().join("dev");
    std::fs::create_dir_all(dev.join("serial/by-id")).unwrap();
    // /dev/null stands in for an adapter: a character device that exists everywhere.
    let by_name = dev.join("bench-1");
    let by_id = dev.join("serial/by-id/usb-FTDI_A1");
    std::os::unix::fs::symlink("/dev/null", &by_name).unwrap();
    std::os::unix::fs::symlink("../../bench-1", &by_id).unwrap();
    let two_names = on_this_machine(MAIN)
        .replacen("/dev/keymother/bench-1", by_name.to_str().unwrap(), 1)
        .replacen("/dev/keymother/bench-2", by_id.to_str().unwrap(), 1);
    std::fs::write(etc.main(), &two_names).unwrap();
    assert_eq!(etc.load().unwrap().ports.len(), 2, "the text alone is fine");
    let problem = format!(
        "{} is the same device as port[0].path {} (both lead to /dev/null)",
        by_id.display(),
        by_name.display()
    );
    assert_names(
        &Settings::check(&etc.main()).unwrap_err(),
        &etc.main(),
        25,
        "port[1].path",
        &problem,
    );
    let output = check_config(&etc.main());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}:25: port[1].path: {problem}",
            etc.main().display()
        )),
        "{stderr}"
    );

    // In a drop-in's ports: the drop-in is named.
    let etc = Etc::new(&on_this_machine(MAIN));
    let bad = etc.drop_in(
        "20-bench.toml",
        &format!(
            "[[port]]\nname = \"left\"\npath = {:?}\n[[port]]\nname = \"middle\"\npath = \"/nonexistent/ttyUSB9\"\n[[port]]\nname = \"right\"\npath = \"/dev/null\"\n",
            by_id.to_str().unwrap()
        ),
    );
    assert_names(
        &Settings::check(&etc.main()).unwrap_err(),
        &bad,
        9,
        "port[2].path",
        "/dev/null is the same device as port[0].path",
    );

    // Different devices, and paths that do not exist (an adapter not plugged in), pass.
    let etc = Etc::new(&on_this_machine(MAIN));
    etc.drop_in(
        "20-bench.toml",
        &format!(
            "[[port]]\nname = \"left\"\npath = {:?}\n[[port]]\nname = \"right\"\npath = \"/dev/zero\"\n             [[port]]\nname = \"gone-1\"\npath = \"/nonexistent/ttyUSB8\"\n             [[port]]\nname = \"gone-2\"\npath = \"/nonexistent/ttyUSB9\"\n",
            by_name.to_str().unwrap()
        ),
    );
    assert_eq!(Settings::check(&etc.main()).unwrap().ports.len(), 4);
    let output = check_config(&etc.main());
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Mangled settings never panic, and every refusal points at a line of the text.
#[test]
fn mangled_settings_are_refused_with_a_line_in_range() {
    let mut random = fastrand::Rng::with_seed(0x6b6d);
    let pieces = [
        "=", "[", "]", "[[", "\"", "'", "\n", ",", "{", "}", ".", "é", "\u{feff}", "port", "-1",
        "1e9", "true", "#", "\\", "\"\"\"",
    ];
    for _ in 0..20_000 {
        let mut text = MAIN.to_owned();
        for _ in 0..random.usize(1..4) {
            let mut at = random.usize(0..=text.len());
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            if random.bool() {
                text.insert_str(at, pieces[random.usize(0..pieces.len())]);
            } else {
                let mut end = (at + random.usize(1..6)).min(text.len());
                while !text.is_char_boundary(end) {
                    end += 1;
                }
                text.replace_range(at..end, "");
            }
        }
        if let Err(error) = Settings::from_toml(&text, "mangled.toml") {
            let lines = text.lines().count() + 1;
            assert!((1..=lines).contains(&error.line), "{error} for {text:?}");
            assert!(!error.key.is_empty(), "{error}");
        }
    }
}

#[test]
fn certificate_mode_needs_the_trust_anchors_and_is_offered_with_them() {
    let error = keymother_daemon::Settings::from_toml(
        "data_dir = \"/var/lib/keymother\"\n[operator]\nrequire = false\n[[port]]\nname = \"a\"\npath = \"/dev/ttyUSB0\"\nmodes = [\"tr31\", \"certificate\"]\n",
        "keymotherd.toml",
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        error,
        "keymotherd.toml:7: port[0].modes[1]: certificate mode needs the [pki] trust anchors"
    );
}

#[test]
fn bench_settings_default_to_nothing_and_take_every_key() {
    use keymother_daemon::config::{BenchSettings, DisplayKind, GpioBackend};
    use keymother_gpio::LineSpec;
    let etc = Etc::new(MAIN);
    let settings = etc.load().unwrap();
    assert_eq!(settings.bench, BenchSettings::default());
    assert_eq!(settings.bench.display, DisplayKind::None);
    assert_eq!(settings.bench.gpio, GpioBackend::None);
    assert_eq!(settings.bench.i2c_bus, Path::new("/dev/i2c-1"));
    assert_eq!(settings.bench.i2c_address, 0x3C);
    assert_eq!(settings.bench.tamper_debounce, Duration::from_millis(50));
    assert_eq!(settings.bench.low_inventory, 100);
    assert!(settings.bench.pins.tamper_active_low);
    assert!(
        settings.bench.pins.tamper_pull_up,
        "a normally-open switch to ground"
    );
    assert!(!settings.bench.require_tamper_input);
    // The lines the Pi's device tree names GPIO17, 27, 22, 18 and 23.
    let named = |name: &str| LineSpec::Name(name.to_owned());
    assert_eq!(
        [
            &settings.bench.pins.ready_led,
            &settings.bench.pins.busy_led,
            &settings.bench.pins.error_led,
            &settings.bench.pins.buzzer,
            &settings.bench.pins.tamper
        ],
        [
            &named("GPIO17"),
            &named("GPIO27"),
            &named("GPIO22"),
            &named("GPIO18"),
            &named("GPIO23")
        ]
    );

    etc.drop_in(
        "30-bench.toml",
        "[bench]\ndisplay = \"ssd1306\"\ni2c_bus = \"/dev/i2c-3\"\ni2c_address = 0x3D\n\
         gpio = \"chardev\"\nready_led = 5\nbusy_led = \"GPIO6\"\nerror_led = \"gpiochip1:13\"\n\
         buzzer = \"LED_BUZZER\"\ntamper_pin = 2\ntamper_active_low = false\ntamper_debounce_ms = 20\n\
         low_inventory = 0\nrequire_tamper_input = true\n",
    );
    let settings = etc.load().unwrap();
    assert!(settings.warnings().is_empty(), "{:?}", settings.warnings());
    let bench = settings.bench;
    assert_eq!(
        (bench.display, bench.gpio, bench.i2c_address),
        (DisplayKind::Ssd1306, GpioBackend::Chardev, 0x3D)
    );
    assert_eq!(bench.i2c_bus, Path::new("/dev/i2c-3"));
    assert_eq!(
        bench.pins,
        keymother_gpio::Pins {
            ready_led: LineSpec::Bcm(5),
            busy_led: LineSpec::Name("GPIO6".to_owned()),
            error_led: LineSpec::ChipOffset {
                chip: "gpiochip1".to_owned(),
                offset: 13
            },
            buzzer: LineSpec::Name("LED_BUZZER".to_owned()),
            tamper: LineSpec::Bcm(2),
            tamper_active_low: false,
            tamper_pull_up: false,
        }
    );
    assert_eq!(bench.tamper_debounce, Duration::from_millis(20));
    assert_eq!(bench.low_inventory, 0);
    assert!(bench.require_tamper_input);

    // A later drop-in overrides one key and keeps the rest.
    etc.drop_in("40-memory.toml", "[bench]\ndisplay = \"memory\"\n");
    let bench = etc.load().unwrap().bench;
    assert_eq!(
        (bench.display, bench.pins.buzzer),
        (DisplayKind::Memory, LineSpec::Name("LED_BUZZER".to_owned()))
    );

    // A normally-closed tamper loop to ground: fires high (an opened case or a cut wire), with
    // the pull-up that a closed loop holds down.
    etc.drop_in(
        "50-loop.toml",
        "[bench]\ntamper_active_low = false\ntamper_pull = \"up\"\n",
    );
    let pins = etc.load().unwrap().bench.pins;
    assert!(!pins.tamper_active_low);
    assert!(pins.tamper_pull_up);
}

/// (what, `[bench]` drop-in, line, key, part of the problem).
#[rustfmt::skip]
const BENCH_CASES: &[(&str, &str, usize, &str, &str)] = &[
    ("display", "[bench]\ndisplay = \"lcd\"\n", 2, "bench.display", "\"lcd\" is not ssd1306, memory or none"),
    ("gpio", "[bench]\n\ngpio = \"sysfs\"\n", 3, "bench.gpio", "\"sysfs\" is not chardev, simulated or none"),
    ("relative bus", "[bench]\ni2c_bus = \"i2c-1\"\n", 2, "bench.i2c_bus", "not an absolute path"),
    ("address", "[bench]\ni2c_address = 0x80\n", 2, "bench.i2c_address", "128 is outside 0x00 to 0x7F"),
    ("negative address", "[bench]\ni2c_address = -1\n", 2, "bench.i2c_address", "-1 is outside 0x00 to 0x7F"),
    ("pin range", "[bench]\nbuzzer = 28\n", 2, "bench.buzzer", "28 is outside 0 to 27"),
    ("negative pin", "[bench]\nready_led = -3\n", 2, "bench.ready_led", "-3 is outside 0 to 27"),
    ("same pin twice", "[bench]\nready_led = 5\nerror_led = 5\n", 3, "bench.error_led", "BCM 5 is also bench.ready_led"),
    ("a default pin", "[bench]\nready_led = 27\n", 2, "bench.ready_led", "BCM 27 is also bench.busy_led (its default, \"GPIO27\")"),
    ("I2C line", "[bench]\ndisplay = \"ssd1306\"\ntamper_pin = 3\n", 3, "bench.tamper_pin", "BCM 3 is an I2C line of /dev/i2c-1 (SCL)"),
    ("I2C line by name", "[bench]\ndisplay = \"ssd1306\"\nready_led = \"SDA1\"\n", 3, "bench.ready_led", "\"SDA1\" is an I2C line of /dev/i2c-1 (SDA)"),
    ("pin type", "[bench]\nbuzzer = true\n", 2, "bench.buzzer", "expected a BCM number (0 to 27) or a GPIO line in quotes"),
    ("empty line name", "[bench]\nbuzzer = \"\"\n", 2, "bench.buzzer", "the line is empty"),
    ("number in quotes", "[bench]\n\ntamper_pin = \"23\"\n", 3, "bench.tamper_pin", "write 23 without quotes for BCM 23, or the line's name (\"GPIO23\")"),
    ("chip without offset", "[bench]\ntamper_pin = \"gpiochip0\"\n", 2, "bench.tamper_pin", "names a chip, not a line"),
    ("bad chip and offset", "[bench]\nerror_led = \"gpiochip0:x\"\n", 2, "bench.error_led", "\"gpiochip0:x\" is not gpiochipN:OFFSET"),
    ("a /dev path", "[bench]\nerror_led = \"/dev/gpiochip0:5\"\n", 2, "bench.error_led", "name the chip without /dev/"),
    ("long line name", "[bench]\nbusy_led = \"THIS_LINE_NAME_IS_LONGER_THAN_THE_KERNEL_KEEPS\"\n", 2, "bench.busy_led", "longer than 31 bytes"),
    ("same name twice", "[bench]\nready_led = \"LED\"\nbuzzer = \"LED\"\n", 3, "bench.buzzer", "\"LED\" is also bench.ready_led"),
    ("a number and its name", "[bench]\nready_led = 5\nbusy_led = \"GPIO5\"\n", 3, "bench.busy_led", "\"GPIO5\" is also bench.ready_led"),
    ("a default by number", "[bench]\nbuzzer = 23\n", 2, "bench.buzzer", "BCM 23 is also bench.tamper_pin (its default, \"GPIO23\")"),
    ("one chip offset twice", "[bench]\nready_led = \"gpiochip2:7\"\ntamper_pin = \"gpiochip2:7\"\n", 3, "bench.tamper_pin", "gpiochip2:7 is also bench.ready_led"),
    ("polarity type", "[bench]\ntamper_active_low = \"yes\"\n", 2, "bench.tamper_active_low", "invalid type"),
    ("pull", "[bench]\ntamper_pull = \"none\"\n", 2, "bench.tamper_pull", "\"none\" is not up or down"),
    ("debounce", "[bench]\ntamper_debounce_ms = 0\n", 2, "bench.tamper_debounce_ms", "0 is outside 1 to 1000"),
    ("low inventory", "[bench]\nlow_inventory = -5\n", 2, "bench.low_inventory", "-5 is outside 0 to 10000000"),
    ("unknown key", "[bench]\nbuzzer_pin = 12\n", 2, "bench.buzzer_pin", "unknown key `buzzer_pin`"),
    ("tamper input required without GPIO", "[bench]\ngpio = \"none\"\nrequire_tamper_input = true\n", 3, "bench.require_tamper_input", "there is no tamper input to require"),
    ("requirement type", "[bench]\nrequire_tamper_input = 1\n", 2, "bench.require_tamper_input", "invalid type"),
];

/// `gpio = "rppal"` from before the character device: the same lines through
/// /dev/gpiochipN, accepted with a warning naming file, line and key and what to write.
#[test]
fn gpio_rppal_is_taken_as_chardev_with_a_warning() {
    use keymother_daemon::config::GpioBackend;
    let etc = Etc::new(&on_this_machine(MAIN));
    let drop_in = etc.drop_in(
        "30-bench.toml",
        "[bench]\n# as shipped before\ngpio = \"rppal\"\ntamper_pin = 23\n",
    );
    let settings = etc.load().unwrap();
    assert_eq!(settings.bench.gpio, GpioBackend::Chardev);
    assert_eq!(
        settings.bench.pins.tamper,
        keymother_gpio::LineSpec::Bcm(23)
    );
    let warnings = settings.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with(&format!(
            "{}:3: bench.gpio: \"rppal\" is deprecated and now means \"chardev\"",
            drop_in.display()
        )),
        "{warnings:?}"
    );
    assert!(
        warnings[0].ends_with("write gpio = \"chardev\""),
        "{warnings:?}"
    );
    // The real binary's --check-config accepts the settings and says it.
    let output = check_config(&etc.main());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{said}");
    assert!(
        said.contains("keymotherd: warning: ")
            && said.contains("bench.gpio: \"rppal\" is deprecated"),
        "{said}"
    );
}

#[test]
fn every_bench_refusal_names_file_line_and_key() {
    for &(what, text, line, key, problem) in BENCH_CASES {
        let etc = Etc::new(MAIN);
        let drop_in = etc.drop_in("30-bench.toml", text);
        let error = etc.refused();
        eprintln!("{what}: {error}");
        assert_names(&error, &drop_in, line, key, problem);
    }
}
