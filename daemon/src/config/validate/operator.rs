//! The `[operator]` and `[clock]` sections checked: operator login, and whether the clock it trusts must be vouched for.

use std::time::Duration;

use super::Validator;
use crate::clock::ClockSettings;
use crate::config::merged::{MergedClock, MergedOperator};
use crate::config::{
    ConfigError, DEFAULT_LOGIN_WINDOW_SECONDS, DEFAULT_SESSION_LIMIT_SECONDS, OperatorSettings,
};

impl Validator<'_> {
    /// `[operator]`. Requiring operators without `[pki]` is accepted: a freshly flashed
    /// appliance has no site CAs yet and must still start for its ceremonies and imports;
    /// nobody can log in then, so nothing is dispensed (see
    /// [`Settings::warnings`](crate::config::Settings::warnings)).
    pub(super) fn operator(&self, merged: MergedOperator) -> Result<OperatorSettings, ConfigError> {
        let login_window = match merged.login_window_seconds {
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
        let session_limit = match merged.session_limit_seconds {
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
        let require = merged.require.is_none_or(|value| value.value);
        Ok(OperatorSettings {
            require,
            login_window,
            session_limit,
        })
    }

    /// `[clock]`: every key optional.
    pub(super) fn clock(&self, merged: MergedClock) -> Result<ClockSettings, ConfigError> {
        let mut clock = ClockSettings::default();
        if let Some(require) = merged.require_trusted {
            clock.require_trusted = require.value;
        }
        if let Some(path) = merged.rtc_class {
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
}
