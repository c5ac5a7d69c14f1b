//! Key strength: the one rule that refuses TDES keys whose parts repeat, called wherever a key is entered, read, combined or wrapped.
//!
//! A TDES key is two or three single-DES keys K1, K2 (and K3), used encrypt-decrypt-encrypt.
//! When K1 = K2 (or K2 = K3) the first two (or last two) steps cancel out and the key is a
//! single DES key, 56 bits: broken. When K1 = K3 in a three-key key it is a two-key key
//! (K1 K2 K1) written out at three-key length: keymother refuses it too, so that a key never
//! claims more strength than it has (the TR-31 layer refuses to wrap a key under a weaker
//! one by the algorithm's strength, which a K1 K2 K1 key would otherwise pass as 112 bits);
//! a two-key key is entered as 16 bytes. DES ignores the low bit of every byte (parity), so
//! parts that differ only in parity bits are the same DES key and count as repeating.
//!
//! AES keys have no parts and always pass. Errors name the parts, never their bytes.

use crate::key::{KeyAlgorithm, KeyFamily, SecretKey};

/// Length of one TDES part (one single-DES key).
const PART: usize = 8;

/// A TDES key with repeating parts. Names the parts (1-based) and never their content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeakKey {
    /// The key's algorithm (TDES-2KEY or TDES-3KEY).
    pub algorithm: KeyAlgorithm,
    /// The first of the two equal parts (1 or 2).
    pub first: u8,
    /// The second of the two equal parts (2 or 3).
    pub second: u8,
}

impl WeakKey {
    /// Whether the repetition leaves single-DES strength (K1 = K2 or K2 = K3), rather than
    /// two-key strength at three-key length (K1 = K3).
    pub fn is_single_des(&self) -> bool {
        self.second == self.first + 1
    }
}

impl std::fmt::Display for WeakKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let WeakKey {
            algorithm,
            first,
            second,
        } = self;
        write!(
            f,
            "the {algorithm} key's parts K{first} and K{second} are equal (parity bits aside): "
        )?;
        if self.is_single_des() {
            f.write_str("it has the strength of single DES (56 bits)")
        } else {
            f.write_str(
                "it is a two-key TDES key written at three-key length; enter it as a 16-byte \
                 TDES-2KEY key",
            )
        }
    }
}

impl std::error::Error for WeakKey {}

/// Whether two 8-byte parts are the same DES key: equal but for the parity bits. Runs in
/// the same time whatever the content.
fn same_des_key(left: &[u8], right: &[u8]) -> bool {
    let difference = left
        .iter()
        .zip(right)
        .fold(0u8, |accumulated, (a, b)| accumulated | ((a ^ b) & 0xFE));
    difference == 0
}

/// Checks raw key bytes of `algorithm`: TDES parts must all differ (K1 ≠ K2, and for three
/// keys K2 ≠ K3 and K1 ≠ K3); AES keys always pass. Bytes of the wrong length for the
/// algorithm pass here: lengths are checked where keys are made.
pub fn check_key_bytes(algorithm: KeyAlgorithm, bytes: &[u8]) -> Result<(), WeakKey> {
    if algorithm.family() != KeyFamily::Tdes || bytes.len() != algorithm.key_length() {
        return Ok(());
    }
    let parts: Vec<&[u8]> = bytes.chunks(PART).collect();
    let pairs: &[(usize, usize)] = match parts.len() {
        2 => &[(0, 1)],
        _ => &[(0, 1), (1, 2), (0, 2)],
    };
    // Every pair is compared (no early exit), then the first repetition found is reported.
    let equal: Vec<bool> = pairs
        .iter()
        .map(|&(first, second)| same_des_key(parts[first], parts[second]))
        .collect();
    match pairs.iter().zip(equal).find(|(_, equal)| *equal) {
        Some((&(first, second), _)) => Err(WeakKey {
            algorithm,
            first: first as u8 + 1,
            second: second as u8 + 1,
        }),
        None => Ok(()),
    }
}

/// Checks a key: see [`check_key_bytes`].
pub fn check_strength(key: &SecretKey) -> Result<(), WeakKey> {
    check_key_bytes(key.algorithm(), key.expose_secret_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(algorithm: KeyAlgorithm, hex: &str) -> SecretKey {
        SecretKey::from_hex(algorithm, hex).unwrap()
    }

    #[test]
    fn repeated_parts_are_named_without_the_key() {
        let weak = check_strength(&key(
            KeyAlgorithm::Tdes2Key,
            "0123456789ABCDEF0123456789ABCDEF",
        ))
        .unwrap_err();
        assert_eq!((weak.first, weak.second), (1, 2));
        assert!(weak.is_single_des());
        let text = weak.to_string();
        assert!(
            text.contains("K1 and K2") && text.contains("single DES"),
            "{text}"
        );
        assert!(!text.contains("0123456789ABCDEF"), "{text}");
    }

    #[test]
    fn parity_bits_do_not_make_parts_differ() {
        // 0x01 and 0x00 differ only in the parity bit: the same DES key.
        let weak = check_strength(&key(
            KeyAlgorithm::Tdes2Key,
            "0123456789ABCDEF0023446689AACCEE",
        ))
        .unwrap_err();
        assert_eq!((weak.first, weak.second), (1, 2));
    }

    #[test]
    fn three_key_repetitions_are_each_named() {
        let k1 = "0123456789ABCDEF";
        let k2 = "FEDCBA9876543210";
        let k3 = "89ABCDEF01234567";
        for (hex, parts) in [
            (format!("{k1}{k1}{k3}"), (1, 2)),
            (format!("{k1}{k2}{k2}"), (2, 3)),
            (format!("{k1}{k2}{k1}"), (1, 3)),
        ] {
            let weak = check_strength(&key(KeyAlgorithm::Tdes3Key, &hex)).unwrap_err();
            assert_eq!((weak.first, weak.second), parts);
        }
        let two_key =
            check_strength(&key(KeyAlgorithm::Tdes3Key, &format!("{k1}{k2}{k1}"))).unwrap_err();
        assert!(!two_key.is_single_des());
        assert!(two_key.to_string().contains("TDES-2KEY"), "{two_key}");
        assert!(check_strength(&key(KeyAlgorithm::Tdes3Key, &format!("{k1}{k2}{k3}"))).is_ok());
    }

    #[test]
    fn aes_keys_have_no_parts() {
        let repeated = "0123456789ABCDEF".repeat(2);
        assert!(check_strength(&key(KeyAlgorithm::Aes128, &repeated)).is_ok());
    }
}
