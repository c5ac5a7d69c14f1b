//! Stage 2 of the settings: the files merged key by key, in order, each section on its own; every value remembers the file and span it came from.

use std::ops::Range;
use std::path::PathBuf;

use toml::Spanned;

use super::raw::{
    RawBench, RawClock, RawControl, RawDispensing, RawFile, RawLine, RawLogging, RawOperator,
    RawPki, RawPort, RawProfile,
};

/// A value with the index of the file it came from and its span there.
pub(super) struct Sourced<T> {
    pub(super) value: T,
    pub(super) file: usize,
    pub(super) span: Range<usize>,
}

/// All the files' values: a later file's value replaces an earlier one's, key by key, except
/// `[[port]]` and `[[profile]]`, which a later file replaces as a whole.
#[derive(Default)]
pub(super) struct Merged {
    pub(super) data_dir: Option<Sourced<PathBuf>>,
    pub(super) dispensing: MergedDispensing,
    pub(super) control: MergedControl,
    pub(super) logging: MergedLogging,
    pub(super) pki: MergedPki,
    pub(super) operator: MergedOperator,
    pub(super) bench: MergedBench,
    pub(super) clock: MergedClock,
    pub(super) ports: Option<Sourced<Vec<RawPort>>>,
    pub(super) profiles: Option<Sourced<Vec<RawProfile>>>,
}

/// The `[dispensing]` values as merged.
#[derive(Default)]
pub(super) struct MergedDispensing {
    pub(super) quarantine_after: Option<Sourced<u32>>,
    pub(super) idle_timeout_seconds: Option<Sourced<u64>>,
    pub(super) certificate_requests_per_minute: Option<Sourced<u32>>,
    pub(super) require_expected_devices: Option<Sourced<bool>>,
}

/// The `[control]` values as merged.
#[derive(Default)]
pub(super) struct MergedControl {
    pub(super) socket: Option<Sourced<PathBuf>>,
    pub(super) group: Option<Sourced<String>>,
}

/// The `[logging]` values as merged.
#[derive(Default)]
pub(super) struct MergedLogging {
    pub(super) target: Option<Sourced<String>>,
    pub(super) level: Option<Sourced<String>>,
}

/// The `[pki]` values as merged.
#[derive(Default)]
pub(super) struct MergedPki {
    pub(super) device_ca: Option<Sourced<PathBuf>>,
    pub(super) kdh_ca: Option<Sourced<PathBuf>>,
    pub(super) operator_ca: Option<Sourced<PathBuf>>,
    pub(super) device_crl: Option<Sourced<PathBuf>>,
    pub(super) kdh_crl: Option<Sourced<PathBuf>>,
    pub(super) operator_crl: Option<Sourced<PathBuf>>,
    pub(super) operator_intermediates: Option<Sourced<PathBuf>>,
}

/// The `[operator]` values as merged.
#[derive(Default)]
pub(super) struct MergedOperator {
    pub(super) require: Option<Sourced<bool>>,
    pub(super) login_window_seconds: Option<Sourced<u64>>,
    pub(super) session_limit_seconds: Option<Sourced<u64>>,
}

/// The `[bench]` values as merged.
#[derive(Default)]
pub(super) struct MergedBench {
    pub(super) display: Option<Sourced<String>>,
    pub(super) i2c_bus: Option<Sourced<PathBuf>>,
    pub(super) i2c_address: Option<Sourced<i64>>,
    pub(super) gpio: Option<Sourced<String>>,
    pub(super) ready_led: Option<Sourced<RawLine>>,
    pub(super) busy_led: Option<Sourced<RawLine>>,
    pub(super) error_led: Option<Sourced<RawLine>>,
    pub(super) buzzer: Option<Sourced<RawLine>>,
    pub(super) tamper_pin: Option<Sourced<RawLine>>,
    pub(super) tamper_active_low: Option<Sourced<bool>>,
    pub(super) tamper_pull: Option<Sourced<String>>,
    pub(super) tamper_debounce_ms: Option<Sourced<i64>>,
    pub(super) low_inventory: Option<Sourced<i64>>,
    pub(super) require_tamper_input: Option<Sourced<bool>>,
}

/// The `[clock]` values as merged.
#[derive(Default)]
pub(super) struct MergedClock {
    pub(super) require_trusted: Option<Sourced<bool>>,
    pub(super) rtc_class: Option<Sourced<PathBuf>>,
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
    /// Lays file number `file` over the files before it.
    pub(super) fn apply(&mut self, raw: RawFile, file: usize) {
        overlay(&mut self.data_dir, raw.data_dir, file);
        if let Some(dispensing) = raw.dispensing {
            self.dispensing.apply(dispensing, file);
        }
        if let Some(control) = raw.control {
            self.control.apply(control, file);
        }
        if let Some(logging) = raw.logging {
            self.logging.apply(logging, file);
        }
        if let Some(pki) = raw.pki {
            self.pki.apply(pki, file);
        }
        if let Some(operator) = raw.operator {
            self.operator.apply(operator, file);
        }
        if let Some(bench) = raw.bench {
            self.bench.apply(bench, file);
        }
        if let Some(clock) = raw.clock {
            self.clock.apply(clock, file);
        }
        overlay(&mut self.ports, raw.ports, file);
        overlay(&mut self.profiles, raw.profiles, file);
    }
}

impl MergedDispensing {
    fn apply(&mut self, raw: RawDispensing, file: usize) {
        overlay(&mut self.quarantine_after, raw.quarantine_after, file);
        overlay(
            &mut self.idle_timeout_seconds,
            raw.idle_timeout_seconds,
            file,
        );
        overlay(
            &mut self.certificate_requests_per_minute,
            raw.certificate_requests_per_minute,
            file,
        );
        overlay(
            &mut self.require_expected_devices,
            raw.require_expected_devices,
            file,
        );
    }
}

impl MergedControl {
    fn apply(&mut self, raw: RawControl, file: usize) {
        overlay(&mut self.socket, raw.socket, file);
        overlay(&mut self.group, raw.group, file);
    }
}

impl MergedLogging {
    fn apply(&mut self, raw: RawLogging, file: usize) {
        overlay(&mut self.target, raw.target, file);
        overlay(&mut self.level, raw.level, file);
    }
}

impl MergedPki {
    fn apply(&mut self, raw: RawPki, file: usize) {
        overlay(&mut self.device_ca, raw.device_ca, file);
        overlay(&mut self.kdh_ca, raw.kdh_ca, file);
        overlay(&mut self.operator_ca, raw.operator_ca, file);
        overlay(&mut self.device_crl, raw.device_crl, file);
        overlay(&mut self.kdh_crl, raw.kdh_crl, file);
        overlay(&mut self.operator_crl, raw.operator_crl, file);
        overlay(
            &mut self.operator_intermediates,
            raw.operator_intermediates,
            file,
        );
    }
}

impl MergedOperator {
    fn apply(&mut self, raw: RawOperator, file: usize) {
        overlay(&mut self.require, raw.require, file);
        overlay(
            &mut self.login_window_seconds,
            raw.login_window_seconds,
            file,
        );
        overlay(
            &mut self.session_limit_seconds,
            raw.session_limit_seconds,
            file,
        );
    }
}

impl MergedBench {
    fn apply(&mut self, raw: RawBench, file: usize) {
        overlay(&mut self.display, raw.display, file);
        overlay(&mut self.i2c_bus, raw.i2c_bus, file);
        overlay(&mut self.i2c_address, raw.i2c_address, file);
        overlay(&mut self.gpio, raw.gpio, file);
        overlay(&mut self.ready_led, raw.ready_led, file);
        overlay(&mut self.busy_led, raw.busy_led, file);
        overlay(&mut self.error_led, raw.error_led, file);
        overlay(&mut self.buzzer, raw.buzzer, file);
        overlay(&mut self.tamper_pin, raw.tamper_pin, file);
        overlay(&mut self.tamper_active_low, raw.tamper_active_low, file);
        overlay(&mut self.tamper_pull, raw.tamper_pull, file);
        overlay(&mut self.tamper_debounce_ms, raw.tamper_debounce_ms, file);
        overlay(&mut self.low_inventory, raw.low_inventory, file);
        overlay(
            &mut self.require_tamper_input,
            raw.require_tamper_input,
            file,
        );
    }
}

impl MergedClock {
    fn apply(&mut self, raw: RawClock, file: usize) {
        overlay(&mut self.require_trusted, raw.require_trusted, file);
        overlay(&mut self.rtc_class, raw.rtc_class, file);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use log::LevelFilter;

    use crate::config::tests::{GOOD, layers, with_pki};

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
}
