//! Key algorithms, their families, and the TR-31 (ANSI X9.143) key block version that protects keys under a key of each family.

use std::fmt;
use std::str::FromStr;

/// The cipher family a key belongs to; decides block size, check-value method and parity rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyFamily {
    /// Triple DES (ANSI X9.52), 64-bit blocks.
    Tdes,
    /// AES (FIPS 197), 128-bit blocks.
    Aes,
}

impl KeyFamily {
    /// Cipher block size in bytes.
    pub fn block_size(self) -> usize {
        match self {
            KeyFamily::Tdes => 8,
            KeyFamily::Aes => 16,
        }
    }

    /// Every algorithm of this family, shortest key first.
    pub fn algorithms(self) -> &'static [KeyAlgorithm] {
        match self {
            KeyFamily::Tdes => &[KeyAlgorithm::Tdes2Key, KeyAlgorithm::Tdes3Key],
            KeyFamily::Aes => &[
                KeyAlgorithm::Aes128,
                KeyAlgorithm::Aes192,
                KeyAlgorithm::Aes256,
            ],
        }
    }

    /// The algorithm of this family whose keys are `length` bytes long.
    pub fn algorithm_for_length(self, length: usize) -> Result<KeyAlgorithm, AlgorithmError> {
        self.algorithms()
            .iter()
            .copied()
            .find(|algorithm| algorithm.key_length() == length)
            .ok_or(AlgorithmError::LengthNotInFamily {
                family: self,
                found: length,
            })
    }
}

impl fmt::Display for KeyFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyFamily::Tdes => "TDES",
            KeyFamily::Aes => "AES",
        })
    }
}

impl FromStr for KeyFamily {
    type Err = AlgorithmError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "tdes" | "3des" | "des3" => Ok(KeyFamily::Tdes),
            "aes" => Ok(KeyFamily::Aes),
            _ => Err(AlgorithmError::UnknownFamily(text.to_owned())),
        }
    }
}

/// A key algorithm with its exact key length, as named in key files and on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyAlgorithm {
    /// Two-key (double-length, 112-bit) triple DES.
    Tdes2Key,
    /// Three-key (triple-length, 168-bit) triple DES.
    Tdes3Key,
    /// AES with a 128-bit key.
    Aes128,
    /// AES with a 192-bit key.
    Aes192,
    /// AES with a 256-bit key.
    Aes256,
}

impl KeyAlgorithm {
    /// Every supported algorithm.
    pub const ALL: [KeyAlgorithm; 5] = [
        KeyAlgorithm::Tdes2Key,
        KeyAlgorithm::Tdes3Key,
        KeyAlgorithm::Aes128,
        KeyAlgorithm::Aes192,
        KeyAlgorithm::Aes256,
    ];

    /// Key length in bytes (DES parity bits included).
    pub fn key_length(self) -> usize {
        match self {
            KeyAlgorithm::Tdes2Key | KeyAlgorithm::Aes128 => 16,
            KeyAlgorithm::Tdes3Key | KeyAlgorithm::Aes192 => 24,
            KeyAlgorithm::Aes256 => 32,
        }
    }

    /// The cipher family.
    pub fn family(self) -> KeyFamily {
        match self {
            KeyAlgorithm::Tdes2Key | KeyAlgorithm::Tdes3Key => KeyFamily::Tdes,
            KeyAlgorithm::Aes128 | KeyAlgorithm::Aes192 | KeyAlgorithm::Aes256 => KeyFamily::Aes,
        }
    }

    /// Effective strength in bits (NIST SP 800-57 part 1), used to refuse wrapping a key
    /// under a weaker one.
    pub fn strength_bits(self) -> u32 {
        match self {
            KeyAlgorithm::Tdes2Key => 80,
            KeyAlgorithm::Tdes3Key => 112,
            KeyAlgorithm::Aes128 => 128,
            KeyAlgorithm::Aes192 => 192,
            KeyAlgorithm::Aes256 => 256,
        }
    }

    /// The canonical name used in files and output.
    pub fn name(self) -> &'static str {
        match self {
            KeyAlgorithm::Tdes2Key => "TDES-2KEY",
            KeyAlgorithm::Tdes3Key => "TDES-3KEY",
            KeyAlgorithm::Aes128 => "AES-128",
            KeyAlgorithm::Aes192 => "AES-192",
            KeyAlgorithm::Aes256 => "AES-256",
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KeyAlgorithm {
    type Err = AlgorithmError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wanted = text.to_ascii_uppercase().replace('_', "-");
        KeyAlgorithm::ALL
            .into_iter()
            .find(|algorithm| algorithm.name() == wanted)
            .ok_or_else(|| AlgorithmError::UnknownAlgorithm(text.to_owned()))
    }
}

/// Why an algorithm or family name, or a key length, was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlgorithmError {
    #[error(
        "{} {family} key cannot be {found} {} long (allowed: {})",
        if *family == KeyFamily::Aes { "an" } else { "a" },
        if *found == 1 { "byte" } else { "bytes" },
        family.algorithms().iter().map(|a| format!("{} bytes for {a}", a.key_length())).collect::<Vec<_>>().join(", ")
    )]
    LengthNotInFamily { family: KeyFamily, found: usize },
    #[error(
        "unknown key algorithm {0:?} (expected one of TDES-2KEY, TDES-3KEY, AES-128, AES-192, AES-256)"
    )]
    UnknownAlgorithm(String),
    #[error("unknown cipher family {0:?} (expected tdes or aes)")]
    UnknownFamily(String),
}

/// Key block version ID (header character 1): decides the binding method and the ciphers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tr31Version {
    /// TDES key variant binding, TR-31:2005 (deprecated; unwrap only).
    A,
    /// TDES key derivation binding (TR-31:2010 and later, ANSI X9.143).
    B,
    /// TDES key variant binding, TR-31:2010 (unwrap only).
    C,
    /// AES key derivation binding (TR-31:2018 and later, ANSI X9.143).
    D,
}

impl Tr31Version {
    /// Every version keymother reads.
    pub const ALL: [Tr31Version; 4] = [
        Tr31Version::A,
        Tr31Version::B,
        Tr31Version::C,
        Tr31Version::D,
    ];

    /// The header character.
    pub fn code(self) -> char {
        match self {
            Tr31Version::A => 'A',
            Tr31Version::B => 'B',
            Tr31Version::C => 'C',
            Tr31Version::D => 'D',
        }
    }

    /// The version with this header character, if keymother knows it.
    pub fn from_code(code: u8) -> Option<Tr31Version> {
        match code {
            b'A' => Some(Tr31Version::A),
            b'B' => Some(Tr31Version::B),
            b'C' => Some(Tr31Version::C),
            b'D' => Some(Tr31Version::D),
            _ => None,
        }
    }

    /// The family of the key-block protection key (and of the block cipher) this version uses.
    pub fn protection_key_family(self) -> KeyFamily {
        match self {
            Tr31Version::A | Tr31Version::B | Tr31Version::C => KeyFamily::Tdes,
            Tr31Version::D => KeyFamily::Aes,
        }
    }

    /// Cipher block size in bytes; the header and the encrypted key data are multiples of it.
    pub fn block_size(self) -> usize {
        self.protection_key_family().block_size()
    }

    /// Length of the key block MAC in bytes (A and C: 4, B: 8, D: 16).
    pub fn mac_length(self) -> usize {
        match self {
            Tr31Version::A | Tr31Version::C => 4,
            Tr31Version::B => 8,
            Tr31Version::D => 16,
        }
    }

    /// The version keymother wraps with under a key-block protection key of `family`: B
    /// (TDES key derivation binding) for TDES, D (AES key derivation binding) for AES. The one
    /// place this rule is written.
    pub fn for_protection_key(family: KeyFamily) -> Tr31Version {
        match family {
            KeyFamily::Tdes => Tr31Version::B,
            KeyFamily::Aes => Tr31Version::D,
        }
    }

    /// Whether keymother makes key blocks of this version (only the key derivation binding ones).
    pub fn can_wrap(self) -> bool {
        matches!(self, Tr31Version::B | Tr31Version::D)
    }

    /// How the key block is bound to its protection key.
    pub fn binding_method(self) -> &'static str {
        match self {
            Tr31Version::A => "TDES key variant binding, TR-31:2005",
            Tr31Version::B => "TDES key derivation binding",
            Tr31Version::C => "TDES key variant binding, TR-31:2010",
            Tr31Version::D => "AES key derivation binding",
        }
    }
}

impl fmt::Display for Tr31Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keymother_wraps_with_the_derivation_binding_version_of_the_protection_key() {
        for version in Tr31Version::ALL {
            let family = version.protection_key_family();
            let chosen = Tr31Version::for_protection_key(family);
            assert!(chosen.can_wrap());
            assert_eq!(chosen.protection_key_family(), family);
        }
    }

    #[test]
    fn names_round_trip() {
        for algorithm in KeyAlgorithm::ALL {
            assert_eq!(algorithm.name().parse::<KeyAlgorithm>(), Ok(algorithm));
            assert!(algorithm.family().algorithms().contains(&algorithm));
            assert_eq!(
                algorithm
                    .family()
                    .algorithm_for_length(algorithm.key_length()),
                Ok(algorithm)
            );
        }
        assert!(matches!(
            "DES".parse::<KeyAlgorithm>(),
            Err(AlgorithmError::UnknownAlgorithm(_))
        ));
    }
}
