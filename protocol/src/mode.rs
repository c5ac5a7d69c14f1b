//! Injection modes, negotiated by id in HELLO and WELCOME; unknown ids are ignored so new modes can be added.

use std::fmt;
use std::str::FromStr;

/// How keys travel to the terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    /// Id 1: the master key as an ANSI X9.143 (TR-31) key block under the terminal transport key.
    Tr31,
    /// Id 2: ASC X9 TR-34-2019 key transport: the appliance's and the terminal's credential
    /// tokens (X.509 certificates), then a key token (the master key under a content key that
    /// travels under the terminal's RSA key, signed by the appliance's KDH key), one-pass or
    /// two-pass.
    Certificate,
    /// Id 3: a device profile: the master key (as in tr31, when the profile has one), then one
    /// DUKPT initial key per slot of the profile, each as a TR-31 key block under the terminal
    /// transport key.
    Profile,
}

impl Mode {
    /// Every mode with an id, in id order.
    pub const ALL: [Mode; 3] = [Mode::Tr31, Mode::Certificate, Mode::Profile];

    /// The id carried in HELLO, WELCOME and KEY_REQUEST.
    pub fn id(self) -> u8 {
        match self {
            Mode::Tr31 => 1,
            Mode::Certificate => 2,
            Mode::Profile => 3,
        }
    }

    /// The mode with this id, if it is one this version knows.
    pub fn from_id(id: u8) -> Option<Mode> {
        Mode::ALL.into_iter().find(|mode| mode.id() == id)
    }

    /// The name used in configuration and logs.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Tr31 => "tr31",
            Mode::Certificate => "certificate",
            Mode::Profile => "profile",
        }
    }

    /// Whether the mode sends keys as TR-31 key blocks under the terminal transport key (tr31
    /// and profile), whose version the terminal's HELLO capability flags must admit;
    /// certificate mode sends TR-34 key tokens instead.
    pub fn wraps_under_ttk(self) -> bool {
        match self {
            Mode::Tr31 | Mode::Profile => true,
            Mode::Certificate => false,
        }
    }

    /// Whether the sessions of this crate can run this mode (the modes with rules in `modes/`);
    /// the others are never chosen, whatever the configuration says.
    pub fn is_implemented(self) -> bool {
        crate::modes::rules(self).is_some()
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A mode name that is not known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown mode {0:?} (expected tr31, certificate or profile)")]
pub struct UnknownMode(pub String);

impl FromStr for Mode {
    type Err = UnknownMode;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Mode::ALL
            .into_iter()
            .find(|mode| mode.name().eq_ignore_ascii_case(text))
            .ok_or_else(|| UnknownMode(text.to_owned()))
    }
}
