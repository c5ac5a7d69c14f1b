#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The shipped system files in daemon/root: the example settings parse, the unit keeps its hardening, and `systemd-analyze security` rates it 1.5 or lower.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use keymother_daemon::Settings;
use keymother_daemon::config::GpioBackend;

/// The highest `systemd-analyze security` exposure the unit may have.
const MAX_EXPOSURE: f64 = 1.5;

fn shipped(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("root")
        .join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(shipped(path)).unwrap()
}

fn unit_path() -> PathBuf {
    shipped("usr/lib/systemd/system/keymotherd.service")
}

/// The unit's `Key=value` lines, comments and section headers left out, in order.
fn directives() -> Vec<(String, String)> {
    read("usr/lib/systemd/system/keymotherd.service")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with(['#', ';', '[']))
        .map(|line| {
            let (key, value) = line.split_once('=').expect("a Key=value line");
            (key.to_owned(), value.to_owned())
        })
        .collect()
}

fn values_of(key: &str) -> Vec<String> {
    directives()
        .into_iter()
        .filter(|(name, _)| name == key)
        .map(|(_, value)| value)
        .collect()
}

#[test]
fn the_example_settings_parse() {
    let path = shipped("etc/keymother/keymotherd.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let settings = Settings::from_toml(&text, "keymotherd.toml").unwrap();
    assert_eq!(settings, Settings::load(&path).unwrap());
    assert_eq!(settings.data_dir, Path::new("/var/lib/keymother"));
    assert_eq!(
        settings.control_socket,
        Path::new("/run/keymother/control.sock")
    );
    assert_eq!(settings.control_group, "keymother-operators");
    let names: Vec<_> = settings
        .ports
        .iter()
        .map(|port| port.name.as_str())
        .collect();
    assert_eq!(names, ["bench-1", "bench-2"]);
    assert!(
        settings.operator.require,
        "the appliance requires operators"
    );
    assert!(
        settings.clock.require_trusted,
        "the appliance trusts no clock nothing vouches for"
    );
    // Shipped commented out: a fresh installation has no site CAs yet and must still start.
    assert_eq!(settings.pki, None);
    assert!(settings.operator_ca_missing());
    // The bench through the GPIO character device, its lines by the names the Pi's device
    // tree gives them, and nothing deprecated to warn of.
    assert_eq!(settings.bench.gpio, GpioBackend::Chardev);
    assert_eq!(settings.bench.pins, keymother_gpio::Pins::default());
    assert_eq!(settings.bench.notes.0, Vec::<String>::new());
}

#[test]
fn the_gpio_udev_rule_gives_group_gpio_the_character_device_only() {
    let rules = read("usr/lib/udev/rules.d/60-keymother-i2c-gpio.rules");
    let active: Vec<&str> = rules
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .collect();
    assert!(
        active
            .contains(&r#"SUBSYSTEM=="gpio", KERNEL=="gpiochip[0-9]*", GROUP="gpio", MODE="0660""#),
        "{rules}"
    );
    assert!(
        !active.iter().any(|line| line.contains("gpiomem")),
        "{rules}"
    );
}

#[test]
fn the_example_settings_with_pki_uncommented_name_the_ca_files() {
    let text = read("etc/keymother/keymotherd.toml");
    let uncommented: String = text
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest)
                if rest == "[pki]"
                    || ["device_ca =", "kdh_ca =", "operator_ca ="]
                        .iter()
                        .any(|key| rest.starts_with(key)) =>
            {
                rest
            }
            _ => line,
        })
        .map(|line| format!("{line}\n"))
        .collect();
    let settings = Settings::from_toml(&uncommented, "keymotherd.toml").unwrap();
    let pki = settings.pki.unwrap();
    assert_eq!(
        pki.operator_ca.path,
        Path::new("/etc/keymother/pki/operator-ca.pem")
    );
    assert_eq!(pki.operator_crl, None);
}

#[test]
fn the_example_settings_with_the_profile_uncommented_offer_it_on_the_first_port() {
    let text = read("etc/keymother/keymotherd.toml");
    let profile_lines = [
        "[[profile]]",
        "name = \"PINPAD\"",
        "models =",
        "master_key =",
        "dukpt = [",
        "  { bdk",
        "]",
        "profiles =",
    ];
    let mut first_modes = true;
    let uncommented: String = text
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest) if profile_lines.iter().any(|start| rest.starts_with(start)) => {
                rest.to_owned()
            }
            _ if line == "modes = [\"tr31\"]" && first_modes => {
                first_modes = false;
                "modes = [\"profile\", \"tr31\"]".to_owned()
            }
            _ => line.to_owned(),
        })
        .map(|line| format!("{line}\n"))
        .collect();
    let settings = Settings::from_toml(&uncommented, "keymotherd.toml").unwrap();
    assert_eq!(settings.profiles.len(), 1);
    let profile = &settings.profiles[0];
    assert_eq!(profile.name, "PINPAD");
    assert!(profile.master_key);
    assert_eq!(profile.slots.len(), 2);
    assert_eq!(settings.ports[0].profiles, vec![profile.clone()]);
}

#[test]
fn the_example_settings_show_every_key() {
    let text = read("etc/keymother/keymotherd.toml");
    for key in [
        "data_dir =",
        "[dispensing]",
        "quarantine_after =",
        "idle_timeout_seconds =",
        "require_expected_devices =",
        "[control]",
        "socket =",
        "group =",
        "[logging]",
        "target =",
        "level =",
        "[[port]]",
        "name =",
        "path =",
        "baud =",
        "parity =",
        "stop_bits =",
        "modes =",
        "# [pki]",
        "# device_ca =",
        "# kdh_ca =",
        "# operator_ca =",
        "# device_crl =",
        "# kdh_crl =",
        "# operator_crl =",
        "[operator]",
        "require =",
        "login_window_seconds =",
        "session_limit_seconds =",
        "[bench]",
        "display =",
        "i2c_bus =",
        "i2c_address =",
        "gpio =",
        "ready_led =",
        "busy_led =",
        "error_led =",
        "buzzer =",
        "tamper_pin =",
        "tamper_active_low =",
        "tamper_pull =",
        "require_tamper_input =",
        "tamper_debounce_ms =",
        "low_inventory =",
    ] {
        assert!(
            text.lines().any(|line| line.starts_with(key)),
            "the example settings lack {key:?}"
        );
    }
}

#[test]
fn the_unit_keeps_its_hardening() {
    let directives = directives();
    let required = [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("WatchdogSec", "30s"),
        ("Restart", "on-failure"),
        ("User", "keymother"),
        ("Group", "keymother"),
        ("StateDirectory", "keymother"),
        ("StateDirectoryMode", "0700"),
        ("RuntimeDirectory", "keymother"),
        ("UMask", "0077"),
        ("LimitCORE", "0"),
        ("LimitMEMLOCK", "infinity"),
        // Locked arenas keep what they held: two of them, not one per thread.
        ("Environment", "MALLOC_ARENA_MAX=2"),
        // 64 control connections at most, the ports, SQLite and the bench: room to spare.
        ("LimitNOFILE", "4096"),
        ("PrivateNetwork", "yes"),
        ("RestrictAddressFamilies", "AF_UNIX"),
        ("IPAddressDeny", "any"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("DevicePolicy", "closed"),
        ("DeviceAllow", "char-ttyUSB rw"),
        ("DeviceAllow", "char-ttyACM rw"),
        ("DeviceAllow", "char-i2c rw"),
        // The GPIO character device: the bench's LEDs, buzzer and tamper input.
        ("DeviceAllow", "char-gpiochip rw"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectClock", "yes"),
        ("ProtectControlGroups", "yes"),
        ("ProtectHostname", "yes"),
        ("ProtectProc", "invisible"),
        ("ProcSubset", "pid"),
        ("RestrictNamespaces", "yes"),
        ("RestrictRealtime", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("SystemCallArchitectures", "native"),
        ("SystemCallFilter", "@system-service"),
        ("SystemCallFilter", "~@privileged @resources"),
        ("RemoveIPC", "yes"),
        ("KeyringMode", "private"),
    ];
    for (key, value) in required {
        assert!(
            directives
                .iter()
                .any(|(name, given)| name == key && given == value),
            "the unit lacks {key}={value}"
        );
    }
    // A device rule that would open a whole class: ttyS shares its major with the consoles.
    for value in values_of("DeviceAllow") {
        assert!(!value.starts_with("char-ttyS "), "DeviceAllow={value}");
        assert!(!value.starts_with("/dev/mem"), "DeviceAllow={value}");
        // The GPIO registers: nothing opens them since the character device (issue 13).
        assert!(!value.contains("gpiomem"), "DeviceAllow={value}");
    }
    // Off on purpose, with the reasons beside them in the unit.
    for key in ["PrivateDevices", "PrivateUsers"] {
        assert_eq!(values_of(key), ["no"], "{key}");
    }
    // Nothing writable beyond StateDirectory= and RuntimeDirectory=: key files and exports
    // travel over the control socket, so no removable media (/media, /mnt, /run/media) and
    // no other path is opened to the daemon.
    for key in ["ReadWritePaths", "BindPaths"] {
        assert_eq!(values_of(key), Vec::<String>::new(), "{key}");
    }
    assert_eq!(values_of("ProtectSystem"), ["strict"]);
    assert_eq!(values_of("ProtectHome"), ["yes"]);
    assert_eq!(values_of("LimitNOFILE"), ["4096"], "one limit, not two");
    assert!(
        values_of("AmbientCapabilities")
            .iter()
            .all(String::is_empty)
    );
    assert!(
        values_of("CapabilityBoundingSet")
            .iter()
            .all(String::is_empty)
    );
}

#[test]
fn the_unit_checks_the_settings_it_starts_with() {
    let start = values_of("ExecStart");
    assert_eq!(
        start,
        ["/usr/bin/keymotherd --config /etc/keymother/keymotherd.toml"]
    );
    assert_eq!(
        values_of("ExecStartPre"),
        [format!("{} --check-config", start[0])]
    );
}

/// Every group the unit joins exists once sysusers.d has run, the daemon's user is a member
/// of each, and the settings' default control group is one of them.
#[test]
fn the_units_groups_are_created_by_sysusers() {
    let sysusers = read("usr/lib/sysusers.d/keymother.conf");
    let mut groups = BTreeSet::new();
    let mut memberships = BTreeSet::new();
    for line in sysusers.lines().filter(|line| !line.starts_with('#')) {
        let fields: Vec<_> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["u", user, ..] | ["g", user, ..] => {
                groups.insert(user.to_string());
            }
            ["m", "keymother", group] => {
                memberships.insert(group.to_string());
            }
            [] => {}
            other => panic!("unexpected sysusers line {other:?}"),
        }
    }
    let supplementary: BTreeSet<String> = values_of("SupplementaryGroups")
        .iter()
        .flat_map(|value| value.split_whitespace().map(str::to_owned))
        .collect();
    assert!(supplementary.contains("dialout"));
    for group in &supplementary {
        assert!(groups.contains(group), "sysusers.d does not create {group}");
        assert!(
            memberships.contains(group),
            "keymother is not put in {group}"
        );
    }
    let example = Settings::from_toml(&read("etc/keymother/keymotherd.toml"), "example").unwrap();
    assert!(supplementary.contains(&example.control_group));
    assert!(groups.contains("keymother"));
}

#[test]
fn tmpfiles_makes_the_vault_private() {
    let tmpfiles = read("usr/lib/tmpfiles.d/keymother.conf");
    let lines: Vec<Vec<&str>> = tmpfiles
        .lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| line.split_whitespace().collect())
        .collect();
    assert!(lines.contains(&vec![
        "d",
        "/var/lib/keymother",
        "0700",
        "keymother",
        "keymother",
        "-"
    ]));
    for directory in [
        "/etc/keymother",
        "/etc/keymother/keymotherd.toml.d",
        "/etc/keymother/pki",
    ] {
        assert!(
            lines.contains(&vec!["d", directory, "0750", "root", "keymother", "-"]),
            "tmpfiles.d does not make {directory} 0750 root:keymother"
        );
    }
}

/// Every file under daemon/root goes into the Debian package at the path it mirrors, and
/// the package ships nothing from there that does not exist.
#[test]
fn the_debian_package_ships_every_system_file_where_it_belongs() {
    let manifest: toml::Table =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .unwrap()
            .parse()
            .unwrap();
    let deb = &manifest["package"]["metadata"]["deb"];
    assert_eq!(deb["name"].as_str(), Some("keymother"));
    let mut packaged = BTreeSet::new();
    for asset in deb["assets"].as_array().unwrap() {
        let asset = asset.as_array().unwrap();
        let (source, destination) = (asset[0].as_str().unwrap(), asset[1].as_str().unwrap());
        if let Some(relative) = source.strip_prefix("root/") {
            let file_name = Path::new(relative).file_name().unwrap().to_str().unwrap();
            let installed = match destination.strip_suffix('/') {
                Some(directory) => format!("{directory}/{file_name}"),
                None => destination.to_owned(),
            };
            assert_eq!(installed, relative, "{source} is packaged as {destination}");
            packaged.insert(relative.to_owned());
        }
    }
    for binary in ["keymotherd", "keymother", "keymother-terminal"] {
        assert!(
            deb["assets"]
                .as_array()
                .unwrap()
                .iter()
                .any(|asset| asset[0].as_str() == Some(&format!("target/release/{binary}"))),
            "the package lacks {binary}"
        );
    }
    let mut shipped_files = BTreeSet::new();
    let root = shipped("");
    let mut pending = vec![root.clone()];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(directory).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path.strip_prefix(&root).unwrap();
                shipped_files.insert(relative.to_str().unwrap().to_owned());
            }
        }
    }
    assert_eq!(packaged, shipped_files);
}

/// The drivers behind `DeviceAllow=char-…` are loaded at boot, or the rule grants nothing.
#[test]
fn the_allowed_device_drivers_are_loaded_at_boot() {
    let modules = read("usr/lib/modules-load.d/keymother.conf");
    let listed: Vec<&str> = modules
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .collect();
    for module in ["ftdi_sio", "cp210x", "ch341", "cdc_acm", "i2c-dev"] {
        assert!(listed.contains(&module), "modules-load.d lacks {module}");
    }
}

#[test]
fn the_udev_rules_name_bench_ports_in_both_ways() {
    let rules = read("usr/lib/udev/rules.d/60-keymother-serial.rules");
    let active: Vec<&str> = rules
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .collect();
    let by_serial = active
        .iter()
        .find(|line| line.contains("ENV{ID_SERIAL_SHORT}==\""))
        .expect("a rule by serial number");
    let by_path = active
        .iter()
        .find(|line| line.contains("ENV{ID_PATH}==\""))
        .expect("a rule by port path");
    for rule in [by_serial, by_path] {
        assert!(rule.contains("SYMLINK+=\"keymother/bench-"), "{rule}");
        assert!(rule.contains("GROUP=\"dialout\""), "{rule}");
        assert!(rule.contains("MODE=\"0660\""), "{rule}");
    }
    // Each GOTO has its LABEL.
    for line in &active {
        if let Some((_, label)) = line.split_once("GOTO=\"") {
            let label = label.trim_end_matches('"');
            assert!(
                active.contains(&format!("LABEL=\"{label}\"").as_str()),
                "{line}"
            );
        }
    }
}

/// The major version of the installed systemd, if `systemd-analyze` runs.
fn systemd_version() -> Option<u32> {
    let output = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn systemd_analyze_rates_the_unit_safe() {
    let Some(version) = systemd_version() else {
        eprintln!("note: systemd-analyze is not installed; the exposure check is skipped");
        return;
    };
    if version < 250 {
        eprintln!("note: systemd {version} has no --offline; the exposure check is skipped");
        return;
    }
    let output = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(unit_path())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    let overall = report
        .lines()
        .find(|line| line.contains("Overall exposure level"))
        .unwrap_or_else(|| {
            panic!(
                "no overall exposure in:\n{report}\n{}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    let exposure: f64 = overall
        .rsplit(':')
        .next()
        .and_then(|tail| tail.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the exposure in {overall:?}"));
    eprintln!("{overall}");
    for line in report.lines().filter(|line| line.starts_with('✗')) {
        eprintln!("{}", line.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    assert!(
        exposure <= MAX_EXPOSURE,
        "exposure {exposure} is above {MAX_EXPOSURE}:\n{report}"
    );
}
