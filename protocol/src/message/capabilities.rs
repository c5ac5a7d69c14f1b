//! HELLO's capability flags as a typed bitset: which TR-31 key block versions the terminal unwraps (PROTOCOL.md, HELLO).
//!
//! The flags are parsed once, when HELLO is decoded, and carried as [`Capabilities`]. Bits this
//! version does not define are kept (so a decoded HELLO re-encodes to its bytes) and ignored.

use std::fmt;
use std::str::FromStr;

use keymother_domain::Tr31Version;

/// The capability flags of a HELLO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Capabilities(u16);

impl Capabilities {
    /// No flag set: the terminal announces nothing (see [`Capabilities::admits`]).
    pub const NONE: Capabilities = Capabilities(0);
    /// Bit 0 (`0x0001`): the terminal unwraps TR-31 version B key blocks (TDES transport key).
    pub const TR31_VERSION_B: Capabilities = Capabilities(0x0001);
    /// Bit 1 (`0x0002`): the terminal unwraps TR-31 version D key blocks (AES transport key).
    pub const TR31_VERSION_D: Capabilities = Capabilities(0x0002);
    /// Every flag this version defines: what the reference terminal announces by default.
    pub const DEFINED: Capabilities = Capabilities(0x0003);

    /// The flags of a HELLO's u16, every bit kept (undefined ones are ignored, not dropped).
    pub const fn from_bits(bits: u16) -> Capabilities {
        Capabilities(bits)
    }

    /// The u16 as it goes on the wire.
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// Both sets of flags.
    pub const fn union(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 | other.0)
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }

    /// The flag saying the terminal unwraps `version`; versions A and C have none (the
    /// appliance never wraps with them).
    pub const fn flag_for(version: Tr31Version) -> Option<Capabilities> {
        match version {
            Tr31Version::B => Some(Capabilities::TR31_VERSION_B),
            Tr31Version::D => Some(Capabilities::TR31_VERSION_D),
            Tr31Version::A | Tr31Version::C => None,
        }
    }

    /// Whether any key block flag is set: a terminal that sets none (flags `0x0000`, or only
    /// undefined bits) announces nothing about key blocks.
    pub const fn announces_key_blocks(self) -> bool {
        self.0 & Capabilities::DEFINED.0 != 0
    }

    /// Whether the flags say the terminal unwraps `version`.
    pub fn unwraps(self, version: Tr31Version) -> bool {
        Capabilities::flag_for(version).is_some_and(|flag| self.contains(flag))
    }

    /// The appliance's rule: a key block of `version` may be sent to this terminal if it
    /// announces that version, or announces no key block version at all (flags 0: a terminal
    /// of before the flags were honoured, which was sent the transport key's version).
    pub fn admits(self, version: Tr31Version) -> bool {
        !self.announces_key_blocks() || self.unwraps(version)
    }

    /// The key block versions announced, in words ("TR-31 versions B and D").
    fn versions_in_words(self) -> &'static str {
        match (
            self.contains(Capabilities::TR31_VERSION_B),
            self.contains(Capabilities::TR31_VERSION_D),
        ) {
            (true, true) => "unwraps TR-31 versions B and D",
            (true, false) => "unwraps TR-31 version B only",
            (false, true) => "unwraps TR-31 version D only",
            (false, false) => "no key block version announced",
        }
    }
}

impl std::ops::BitOr for Capabilities {
    type Output = Capabilities;

    fn bitor(self, other: Capabilities) -> Capabilities {
        self.union(other)
    }
}

impl fmt::Display for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:04X} ({})", self.0, self.versions_in_words())
    }
}

/// Capability flags given as text that are not flags.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "capability flags {0:?} are not valid: give the TR-31 versions the terminal unwraps (\"B,D\", \"B\", \"D\" or \"none\") or the flags in hex (\"0x0003\")"
)]
pub struct CapabilitiesParseError(pub String);

impl FromStr for Capabilities {
    type Err = CapabilitiesParseError;

    /// `none`, a comma-separated list of versions (`B`, `D`, `B,D`), or hex (`0x0001`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let refused = || CapabilitiesParseError(text.to_owned());
        let trimmed = text.trim();
        if trimmed.eq_ignore_ascii_case("none") {
            return Ok(Capabilities::NONE);
        }
        if let Some(hex) = trimmed
            .strip_prefix("0x")
            .or_else(|| trimmed.strip_prefix("0X"))
        {
            if hex.is_empty() || hex.len() > 4 {
                return Err(refused());
            }
            return u16::from_str_radix(hex, 16)
                .map(Capabilities::from_bits)
                .map_err(|_| refused());
        }
        let mut flags = Capabilities::NONE;
        for part in trimmed.split(',') {
            let flag = match part.trim() {
                "B" | "b" => Capabilities::TR31_VERSION_B,
                "D" | "d" => Capabilities::TR31_VERSION_D,
                _ => return Err(refused()),
            };
            flags = flags | flag;
        }
        Ok(flags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_zero_admit_every_version_and_announced_flags_admit_only_theirs() {
        assert!(Capabilities::NONE.admits(Tr31Version::B));
        assert!(Capabilities::NONE.admits(Tr31Version::D));
        // Only undefined bits set: still nothing announced.
        assert!(Capabilities::from_bits(0x8000).admits(Tr31Version::D));
        let only_b = Capabilities::TR31_VERSION_B;
        assert!(only_b.admits(Tr31Version::B));
        assert!(!only_b.admits(Tr31Version::D));
        let only_d = Capabilities::from_bits(0x0002 | 0x0100);
        assert!(!only_d.admits(Tr31Version::B));
        assert!(only_d.admits(Tr31Version::D));
        assert!(Capabilities::DEFINED.admits(Tr31Version::B));
        assert!(Capabilities::DEFINED.admits(Tr31Version::D));
    }

    #[test]
    fn undefined_bits_are_kept_for_the_wire() {
        assert_eq!(Capabilities::from_bits(0xFFFF).bits(), 0xFFFF);
    }

    #[test]
    fn text_forms_parse_and_bad_ones_are_refused() {
        assert_eq!("B,D".parse(), Ok(Capabilities::DEFINED));
        assert_eq!("d".parse(), Ok(Capabilities::TR31_VERSION_D));
        assert_eq!("none".parse(), Ok(Capabilities::NONE));
        assert_eq!("0x0001".parse(), Ok(Capabilities::TR31_VERSION_B));
        for bad in ["", "C", "0x", "0x12345", "B;D", "0xZZ"] {
            let error = bad.parse::<Capabilities>().unwrap_err().to_string();
            assert!(error.contains("are not valid"), "{bad}: {error}");
        }
    }

    #[test]
    fn flags_read_in_words() {
        assert_eq!(
            Capabilities::DEFINED.to_string(),
            "0x0003 (unwraps TR-31 versions B and D)"
        );
        assert_eq!(
            Capabilities::TR31_VERSION_B.to_string(),
            "0x0001 (unwraps TR-31 version B only)"
        );
        assert_eq!(
            Capabilities::NONE.to_string(),
            "0x0000 (no key block version announced)"
        );
    }
}
