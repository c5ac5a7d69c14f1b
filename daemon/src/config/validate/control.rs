//! The `[control]` section checked: the control socket's path, and its group by name (and, on the machine itself, that the group exists).

use std::path::PathBuf;

use super::{Location, Validator};
use crate::config::merged::Sourced;
use crate::config::{ConfigError, DEFAULT_CONTROL_GROUP, DEFAULT_CONTROL_SOCKET};

/// Longest control socket path a Unix socket address holds (`sun_path` is 108 bytes with
/// its terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

impl Validator<'_> {
    /// `[control] socket`, [`DEFAULT_CONTROL_SOCKET`] unless set.
    pub(super) fn control_socket(
        &self,
        socket: Option<Sourced<PathBuf>>,
    ) -> Result<PathBuf, ConfigError> {
        let Some(socket) = socket else {
            return Ok(PathBuf::from(DEFAULT_CONTROL_SOCKET));
        };
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

    /// `[control] group`, [`DEFAULT_CONTROL_GROUP`] unless set; with where it was set, for
    /// [`Validator::control_group_exists`].
    pub(super) fn control_group(
        &self,
        group: Option<Sourced<String>>,
    ) -> Result<(String, Option<Location>), ConfigError> {
        match group {
            None => Ok((DEFAULT_CONTROL_GROUP.to_owned(), None)),
            Some(group) if !is_group_name(&group.value) => Err(self.error(
                &group,
                "control.group",
                format!(
                    "{:?} is not a group name (1 to 32 characters: a-z or _ first, then a-z 0-9 _ -)",
                    group.value
                ),
            )),
            Some(group) => {
                let at = (group.file, group.span.start);
                Ok((group.value, Some(at)))
            }
        }
    }

    /// `[control] group` names a group of this machine: the daemon gives the control socket
    /// that group, and without it only root and the daemon's own user could use the socket
    /// (the daemon starts all the same, warning, which is how a typo would otherwise pass).
    /// `at` is where the group was set; `None` for the default.
    pub(super) fn control_group_exists(
        &self,
        name: &str,
        at: Option<Location>,
    ) -> Result<(), ConfigError> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
