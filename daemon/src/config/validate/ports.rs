//! The `[[port]]` list checked: each port's name, device path, line parameters and modes (and, on the machine itself, that no device is two ports).

use std::collections::HashSet;
use std::ops::Range;
use std::path::PathBuf;

use keymother_protocol::Mode;
use toml::Spanned;

use super::{Location, Validator};
use crate::config::merged::Sourced;
use crate::config::raw::RawPort;
use crate::config::{BAUD_RATES, ConfigError, Parity, PortSettings, StopBits};
use keymother_protocol::profile::Profile;

/// Which `[[port]]` is being checked: the file that set the list and the port's number in it.
#[derive(Clone, Copy)]
struct PortAt {
    file: usize,
    number: usize,
}

/// The names and paths of the ports checked so far: no two ports share one.
#[derive(Default)]
struct Taken {
    names: HashSet<String>,
    paths: HashSet<PathBuf>,
}

impl Validator<'_> {
    /// `[[port]]`; certificate mode needs the `[pki]` trust anchors (`has_pki`), and is
    /// offered by default when they are configured (it runs once a KDH certificate is
    /// installed). Returns the ports with where each one's path was set.
    pub(super) fn ports(
        &self,
        raw: Option<Sourced<Vec<RawPort>>>,
        has_pki: bool,
        profiles: &[Profile],
    ) -> Result<(Vec<PortSettings>, Vec<Location>), ConfigError> {
        let Some(raw) = raw else {
            return Err(self.error_in(0, 0, "port", "at least one [[port]] is needed".to_owned()));
        };
        if raw.value.is_empty() {
            return Err(self.error(&raw, "port", "at least one [[port]] is needed".to_owned()));
        }
        let file = raw.file;
        let mut taken = Taken::default();
        let mut ports = Vec::with_capacity(raw.value.len());
        let mut paths_at = Vec::with_capacity(raw.value.len());
        for (number, port) in raw.value.into_iter().enumerate() {
            paths_at.push((file, port.path.span().start));
            ports.push(self.port(PortAt { file, number }, port, has_pki, profiles, &mut taken)?);
        }
        Ok((ports, paths_at))
    }

    /// One `[[port]]`, checked key by key in the order name, path, line, modes.
    fn port(
        &self,
        at: PortAt,
        port: RawPort,
        has_pki: bool,
        profiles: &[Profile],
        taken: &mut Taken,
    ) -> Result<PortSettings, ConfigError> {
        let name = self.port_name(at, &port.name, &mut taken.names)?;
        self.port_path(at, &port.path, &mut taken.paths)?;
        let (baud, parity, stop_bits) =
            self.port_line(at, port.baud, port.parity, port.stop_bits)?;
        let offered = self.port_profiles(at, port.profiles, profiles)?;
        let modes = self.port_modes(at, port.modes, has_pki, !offered.is_empty())?;
        Ok(PortSettings {
            name,
            path: port.path.into_inner(),
            baud,
            parity,
            stop_bits,
            modes,
            profiles: offered,
        })
    }

    /// `profiles`: names of `[[profile]]`s, each once.
    fn port_profiles(
        &self,
        at: PortAt,
        names: Option<Spanned<Vec<Spanned<String>>>>,
        profiles: &[Profile],
    ) -> Result<Vec<Profile>, ConfigError> {
        let mut offered: Vec<Profile> = Vec::new();
        for (index, name) in names
            .map(Spanned::into_inner)
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let field = format!("profiles[{index}]");
            let value = name.get_ref();
            let Some(profile) = profiles.iter().find(|profile| &profile.name == value) else {
                return Err(self.port_error(
                    at,
                    name.span(),
                    &field,
                    format!("{value:?} is not a [[profile]]"),
                ));
            };
            if offered.iter().any(|taken| &taken.name == value) {
                return Err(self.port_error(
                    at,
                    name.span(),
                    &field,
                    format!("{value:?} is listed twice"),
                ));
            }
            offered.push(profile.clone());
        }
        Ok(offered)
    }

    /// An error about `port[N].field`, pointing at `span` in the file that set the ports.
    fn port_error(
        &self,
        at: PortAt,
        span: Range<usize>,
        field: &str,
        problem: String,
    ) -> ConfigError {
        let key = format!("port[{}].{field}", at.number);
        self.error_in(at.file, span.start, &key, problem)
    }

    /// `name`: short, plain and used by no other port.
    fn port_name(
        &self,
        at: PortAt,
        name: &Spanned<String>,
        names: &mut HashSet<String>,
    ) -> Result<String, ConfigError> {
        let value = name.get_ref().clone();
        let name_ok = !value.is_empty()
            && value.len() <= 32
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !name_ok {
            return Err(self.port_error(
                at,
                name.span(),
                "name",
                format!("{value:?} must be 1 to 32 characters from A-Z a-z 0-9 - _ ."),
            ));
        }
        if !names.insert(value.clone()) {
            return Err(self.port_error(
                at,
                name.span(),
                "name",
                format!("{value:?} is used by another port"),
            ));
        }
        Ok(value)
    }

    /// `path`: absolute, and written for no other port.
    fn port_path(
        &self,
        at: PortAt,
        path: &Spanned<PathBuf>,
        paths: &mut HashSet<PathBuf>,
    ) -> Result<(), ConfigError> {
        if path.get_ref().as_os_str().is_empty() {
            return Err(self.port_error(at, path.span(), "path", "must not be empty".to_owned()));
        }
        // The serial adapter finds the device by this path whatever the working
        // directory: /dev/serial/by-id/..., /dev/keymother/bench-1, /dev/ttyUSB0.
        if !path.get_ref().is_absolute() {
            return Err(self.port_error(
                at,
                path.span(),
                "path",
                format!(
                    "{} is not an absolute path (e.g. /dev/keymother/bench-1)",
                    path.get_ref().display()
                ),
            ));
        }
        if !paths.insert(path.get_ref().clone()) {
            return Err(self.port_error(
                at,
                path.span(),
                "path",
                format!("{} is used by another port", path.get_ref().display()),
            ));
        }
        Ok(())
    }

    /// `baud`, `parity` and `stop_bits`: 115200 8N1 unless set.
    fn port_line(
        &self,
        at: PortAt,
        baud: Option<Spanned<u32>>,
        parity: Option<Spanned<String>>,
        stop_bits: Option<Spanned<u8>>,
    ) -> Result<(u32, Parity, StopBits), ConfigError> {
        let baud = match baud {
            Some(baud) if !BAUD_RATES.contains(baud.get_ref()) => {
                return Err(self.port_error(
                    at,
                    baud.span(),
                    "baud",
                    format!(
                        "{} is not one of {}",
                        baud.get_ref(),
                        BAUD_RATES.map(|rate| rate.to_string()).join(", ")
                    ),
                ));
            }
            Some(baud) => baud.into_inner(),
            None => 115200,
        };
        let parity = match parity {
            None => Parity::None,
            Some(parity) => match parity.get_ref().as_str() {
                "none" => Parity::None,
                "even" => Parity::Even,
                "odd" => Parity::Odd,
                other => {
                    return Err(self.port_error(
                        at,
                        parity.span(),
                        "parity",
                        format!("{other:?} is not none, even or odd"),
                    ));
                }
            },
        };
        let stop_bits = match stop_bits {
            None => StopBits::One,
            Some(bits) => match bits.get_ref() {
                1 => StopBits::One,
                2 => StopBits::Two,
                other => {
                    return Err(self.port_error(
                        at,
                        bits.span(),
                        "stop_bits",
                        format!("{other} is not 1 or 2"),
                    ));
                }
            },
        };
        Ok((baud, parity, stop_bits))
    }

    /// `modes`: tr31, and certificate when `[pki]` is configured, unless set.
    fn port_modes(
        &self,
        at: PortAt,
        modes: Option<Spanned<Vec<Spanned<String>>>>,
        has_pki: bool,
        has_profiles: bool,
    ) -> Result<Vec<Mode>, ConfigError> {
        let modes = match modes {
            None => {
                let defaults = [
                    (Mode::Profile, has_profiles),
                    (Mode::Tr31, true),
                    (Mode::Certificate, has_pki),
                ];
                return Ok(defaults
                    .into_iter()
                    .filter_map(|(mode, offered)| offered.then_some(mode))
                    .collect());
            }
            Some(modes) => modes,
        };
        let span = modes.span();
        let mut parsed = Vec::new();
        for (index, mode) in modes.into_inner().into_iter().enumerate() {
            let field = format!("modes[{index}]");
            let offered = mode
                .get_ref()
                .parse::<Mode>()
                .ok()
                .filter(|parsed| parsed.is_implemented() && parsed.name() == mode.get_ref());
            match offered {
                Some(Mode::Certificate) if !has_pki => {
                    return Err(self.port_error(
                        at,
                        mode.span(),
                        &field,
                        "certificate mode needs the [pki] trust anchors".to_owned(),
                    ));
                }
                Some(Mode::Profile) if !has_profiles => {
                    return Err(self.port_error(
                        at,
                        mode.span(),
                        &field,
                        "profile mode needs the port's profiles (profiles = [...])".to_owned(),
                    ));
                }
                Some(offered) => parsed.push(offered),
                None => {
                    let names: Vec<&str> = Mode::ALL
                        .into_iter()
                        .filter(|mode| mode.is_implemented())
                        .map(Mode::name)
                        .collect();
                    return Err(self.port_error(
                        at,
                        mode.span(),
                        &field,
                        format!(
                            "{:?} is not a mode this build offers ({})",
                            mode.get_ref(),
                            names.join(", ")
                        ),
                    ));
                }
            }
        }
        if has_profiles && !parsed.contains(&Mode::Profile) {
            return Err(self.port_error(
                at,
                span.clone(),
                "modes",
                "the port lists profiles but not the profile mode".to_owned(),
            ));
        }
        if parsed.is_empty() {
            return Err(self.port_error(
                at,
                span,
                "modes",
                "at least one mode is needed".to_owned(),
            ));
        }
        Ok(parsed)
    }

    /// No device is served as two ports: two paths that exist here and resolve (links
    /// followed, as `/dev/serial/by-id/...` and `/dev/keymother/...` are) to the same file.
    /// The same path written twice is refused with the text (`Validator::ports`); a path
    /// that does not exist now (an adapter not plugged in) is not judged.
    pub(super) fn one_device_per_port(
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
}
