//! Stage 3 of the settings: the merged values checked and turned into `Settings`, each section by its own file; every error points into the file its value came from.

mod bench;
mod control;
mod daemon;
mod operator;
mod pki;
mod ports;
mod profiles;

use super::merged::{Merged, Sourced};
use super::raw::Source;
use super::{ConfigError, Settings};

/// Where a value was set: the file's index and the offset in it.
type Location = (usize, usize);

/// Checks merged values; errors point into the file each value came from.
pub(super) struct Validator<'a> {
    pub(super) sources: &'a [Source],
    /// Also check what only the machine the settings are used on can tell (see
    /// [`Settings::check`]).
    pub(super) host: bool,
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

    /// The settings, each section checked in turn (the first problem found is the error).
    pub(super) fn settings(&self, merged: Merged) -> Result<Settings, ConfigError> {
        let data_dir = self.data_dir(merged.data_dir)?;
        let dispensing = self.dispensing(merged.dispensing)?;
        let control_socket = self.control_socket(merged.control.socket)?;
        let (control_group, control_group_at) = self.control_group(merged.control.group)?;
        let (log_target, log_level) = self.logging(merged.logging)?;
        let pki = self.pki(merged.pki)?;
        let profiles = self.profiles(merged.profiles)?;
        let (ports, port_paths_at) = self.ports(merged.ports, pki.is_some(), &profiles)?;
        let bench = self.bench(merged.bench)?;
        let clock = self.clock(merged.clock)?;
        let operator = self.operator(merged.operator)?;
        let settings = Settings {
            data_dir,
            ports,
            profiles,
            quarantine_after: dispensing.quarantine_after,
            idle_timeout: dispensing.idle_timeout,
            certificate_requests_per_minute: dispensing.certificate_requests_per_minute,
            require_expected_devices: dispensing.require_expected_devices,
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
}
