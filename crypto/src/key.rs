//! Secret keys and their algorithms: key material that zeroizes on drop and can never be printed.

use zeroize::Zeroizing;

use crate::kcv::Kcv;
use crate::parity;

pub use keymother_domain::{AlgorithmError, KeyAlgorithm, KeyFamily};

/// Why a key could not be made from what was given. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("{algorithm} keys are {expected} bytes ({} hex digits), got {found} bytes", expected * 2)]
    WrongLength {
        algorithm: KeyAlgorithm,
        expected: usize,
        found: usize,
    },
    #[error("not hexadecimal: character {position} is not 0-9 or A-F")]
    NotHex { position: usize },
    #[error("odd number of hex digits ({0}); every byte takes two")]
    OddHexLength(usize),
    /// An unknown algorithm or family name, or a length no algorithm of the family has.
    #[error(transparent)]
    Algorithm(#[from] AlgorithmError),
    #[error(transparent)]
    Parity(#[from] parity::ParityError),
    /// A TDES key whose parts repeat ([`crate::strength`]).
    #[error(transparent)]
    Weak(#[from] crate::strength::WeakKey),
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
}

/// Decodes hex (either case, no separators) into bytes that zeroize on drop; errors name the
/// position of the first bad character but never echo the input.
pub fn decode_hex_secret(text: &str) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    if let Some(position) = text
        .chars()
        .position(|character| !character.is_ascii_hexdigit())
    {
        return Err(KeyError::NotHex {
            position: position + 1,
        });
    }
    if !text.len().is_multiple_of(2) {
        return Err(KeyError::OddHexLength(text.len()));
    }
    let mut bytes = Zeroizing::new(vec![0u8; text.len() / 2]);
    hex::decode_to_slice(text, bytes.as_mut_slice())
        .map_err(|_| KeyError::OddHexLength(text.len()))?;
    Ok(bytes)
}

/// Fills `buffer` from the operating system's CSPRNG.
pub fn fill_random(buffer: &mut [u8]) -> Result<(), KeyError> {
    getrandom::fill(buffer).map_err(|error| KeyError::Random(error.to_string()))
}

/// A clear secret key. Zeroized on drop; deliberately implements neither `Debug`, `Display`
/// nor `Clone`, so it cannot end up in a log line or an error by accident.
pub struct SecretKey {
    algorithm: KeyAlgorithm,
    material: Zeroizing<Vec<u8>>,
}

impl SecretKey {
    /// Takes key bytes of exactly the algorithm's length. Parity is not checked here: DES
    /// ignores parity bits, and the parity policy belongs to whoever accepts the key
    /// (see [`crate::parity`]).
    pub fn from_bytes(algorithm: KeyAlgorithm, bytes: &[u8]) -> Result<Self, KeyError> {
        if bytes.len() != algorithm.key_length() {
            return Err(KeyError::WrongLength {
                algorithm,
                expected: algorithm.key_length(),
                found: bytes.len(),
            });
        }
        Ok(SecretKey {
            algorithm,
            material: Zeroizing::new(bytes.to_vec()),
        })
    }

    /// Parses hex key material of the given algorithm.
    pub fn from_hex(algorithm: KeyAlgorithm, text: &str) -> Result<Self, KeyError> {
        let bytes = decode_hex_secret(text)?;
        SecretKey::from_bytes(algorithm, &bytes)
    }

    /// Parses hex key material of a family; the length picks the algorithm.
    pub fn from_hex_in_family(family: KeyFamily, text: &str) -> Result<Self, KeyError> {
        let bytes = decode_hex_secret(text)?;
        let algorithm = family.algorithm_for_length(bytes.len())?;
        SecretKey::from_bytes(algorithm, &bytes)
    }

    /// A fresh random key from the operating system's CSPRNG; TDES keys get odd parity and
    /// distinct parts (drawn again in the 2^-56 case that two repeat).
    pub fn generate(algorithm: KeyAlgorithm) -> Result<Self, KeyError> {
        let mut material = Zeroizing::new(vec![0u8; algorithm.key_length()]);
        loop {
            fill_random(&mut material)?;
            if algorithm.family() == KeyFamily::Tdes {
                parity::adjust_to_odd(&mut material);
            }
            if crate::strength::check_key_bytes(algorithm, &material).is_ok() {
                return Ok(SecretKey {
                    algorithm,
                    material,
                });
            }
        }
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// The clear key bytes. Named loudly so every use stands out in review.
    pub fn expose_secret_bytes(&self) -> &[u8] {
        &self.material
    }

    /// The clear key as upper-case hex, for the calculator commands whose job is to show it.
    pub fn expose_secret_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode_upper(self.material.as_slice()))
    }

    /// Refuses a TDES key whose parts repeat (K1 = K2, K2 = K3 or K1 = K3, parity bits
    /// aside): the one strength rule, [`crate::strength::check_strength`].
    pub fn check_strength(&self) -> Result<(), crate::strength::WeakKey> {
        crate::strength::check_strength(self)
    }

    /// The key check value (X9.24-1-2017: 3 bytes for TDES, 5-byte AES-CMAC for AES).
    pub fn kcv(&self) -> Kcv {
        crate::kcv::check_value(self)
    }

    /// What may be shown of the key: algorithm and check value, never the bytes.
    pub fn redacted(&self) -> String {
        format!("{} key, KCV {}", self.algorithm, self.kcv())
    }

    /// A second copy of the key, made explicitly (there is no `Clone`).
    pub fn duplicate(&self) -> SecretKey {
        SecretKey {
            algorithm: self.algorithm,
            material: self.material.clone(),
        }
    }

    /// Does this key's material equal the other's, in constant time?
    pub fn same_material_as(&self, other: &SecretKey) -> bool {
        use subtle::ConstantTimeEq;
        self.algorithm == other.algorithm
            && bool::from(self.material.as_slice().ct_eq(other.material.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static_assertions::assert_not_impl_any!(SecretKey: std::fmt::Debug, std::fmt::Display, Clone, Copy);

    #[test]
    fn algorithm_names_round_trip() {
        for algorithm in KeyAlgorithm::ALL {
            assert_eq!(algorithm.name().parse::<KeyAlgorithm>().unwrap(), algorithm);
        }
        assert!("DES".parse::<KeyAlgorithm>().is_err());
    }

    #[test]
    fn wrong_length_names_expected_length() {
        let error = SecretKey::from_hex(KeyAlgorithm::Aes128, "00112233")
            .err()
            .unwrap();
        assert_eq!(
            error.to_string(),
            "AES-128 keys are 16 bytes (32 hex digits), got 4 bytes"
        );
    }

    #[test]
    fn bad_hex_names_position_without_echoing_input() {
        let error = SecretKey::from_hex(KeyAlgorithm::Tdes2Key, "0123456789ABCDEFFEDCBA987654321G")
            .err()
            .unwrap();
        assert_eq!(
            error.to_string(),
            "not hexadecimal: character 32 is not 0-9 or A-F"
        );
    }

    #[test]
    fn family_length_picks_algorithm() {
        let key = SecretKey::from_hex_in_family(KeyFamily::Tdes, &"01".repeat(24)).unwrap();
        assert_eq!(key.algorithm(), KeyAlgorithm::Tdes3Key);
        let error = SecretKey::from_hex_in_family(KeyFamily::Tdes, &"01".repeat(8))
            .err()
            .unwrap();
        assert!(error.to_string().contains("cannot be 8 bytes"), "{error}");
    }

    #[test]
    fn generated_tdes_keys_have_odd_parity() {
        for _ in 0..32 {
            let key = SecretKey::generate(KeyAlgorithm::Tdes3Key).unwrap();
            parity::check_odd(key.expose_secret_bytes()).unwrap();
        }
    }
}
