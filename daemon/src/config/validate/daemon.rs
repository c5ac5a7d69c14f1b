//! The daemon's own keys checked: `data_dir`, `[dispensing]` and `[logging]`.

use std::path::PathBuf;
use std::time::Duration;

use log::LevelFilter;

use super::Validator;
use crate::config::merged::{MergedDispensing, MergedLogging, Sourced};
use crate::config::{ConfigError, DEFAULT_CERTIFICATE_REQUESTS_PER_MINUTE, LogTarget};

/// The `[dispensing]` settings, checked.
pub(super) struct Dispensing {
    pub(super) quarantine_after: u32,
    pub(super) idle_timeout: Duration,
    pub(super) certificate_requests_per_minute: u32,
    pub(super) require_expected_devices: bool,
}

impl Validator<'_> {
    /// `data_dir`: required, absolute.
    pub(super) fn data_dir(&self, dir: Option<Sourced<PathBuf>>) -> Result<PathBuf, ConfigError> {
        match dir {
            None => Err(self.error_in(
                0,
                0,
                "data_dir",
                "is required (the vault's directory, e.g. \"/var/lib/keymother\")".to_owned(),
            )),
            Some(dir) if dir.value.as_os_str().is_empty() => {
                Err(self.error(&dir, "data_dir", "must not be empty".to_owned()))
            }
            // The daemon's working directory is nobody's business (systemd starts it in /).
            Some(dir) if !dir.value.is_absolute() => Err(self.error(
                &dir,
                "data_dir",
                format!(
                    "{} is not an absolute path (e.g. \"/var/lib/keymother\")",
                    dir.value.display()
                ),
            )),
            Some(dir) => Ok(dir.value),
        }
    }

    /// `[dispensing]`: every key optional.
    pub(super) fn dispensing(&self, merged: MergedDispensing) -> Result<Dispensing, ConfigError> {
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
            None => keymother_protocol::DEFAULT_IDLE_TIMEOUT,
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
        Ok(Dispensing {
            quarantine_after,
            idle_timeout,
            certificate_requests_per_minute,
            require_expected_devices: merged
                .require_expected_devices
                .is_some_and(|value| value.value),
        })
    }

    /// `[logging]`: where records go and the most detailed level, auto and info unless set.
    pub(super) fn logging(
        &self,
        merged: MergedLogging,
    ) -> Result<(LogTarget, LevelFilter), ConfigError> {
        let log_target = match merged.target {
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
        let log_level = match merged.level {
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
        Ok((log_target, log_level))
    }
}
