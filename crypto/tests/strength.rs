//! Property tests of the key-strength rule: a TDES key with a repeated part is refused wherever keys are entered, combined or wrapped (as the key and as the KBPK), while unwrapping still opens it; keys with distinct parts pass.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;

use keymother_crypto::component::{self, Component, ComponentError};
use keymother_crypto::tr31::{
    Algorithm, Exportability, Header, KeyBlockProtectionKey, KeyUsage, ModeOfUse, Tr31Error,
    Version,
};
use keymother_crypto::{KeyAlgorithm, KeyError, SecretKey, WeakKey, check_strength, parity};

/// Random TDES key bytes of `parts` parts (2 or 3), odd parity, with part `copy.1` made a copy
/// of part `copy.0` when `copy` is given; a parity bit of the copy may be flipped (`flip`),
/// which DES ignores.
fn tdes_bytes(parts: usize, seed: &[u8], copy: Option<(usize, usize)>, flip: u8) -> Vec<u8> {
    let mut bytes = seed[..parts * 8].to_vec();
    parity::adjust_to_odd(&mut bytes);
    if let Some((from, to)) = copy {
        let part: Vec<u8> = bytes[from * 8..from * 8 + 8].to_vec();
        bytes[to * 8..to * 8 + 8].copy_from_slice(&part);
        bytes[to * 8 + usize::from(flip % 8)] ^= 1;
    }
    bytes
}

fn algorithm_of(parts: usize) -> KeyAlgorithm {
    if parts == 2 {
        KeyAlgorithm::Tdes2Key
    } else {
        KeyAlgorithm::Tdes3Key
    }
}

/// Distinct random parts (the chance that two of 24 random bytes' parts collide is 2^-56).
fn distinct(bytes: &[u8]) -> bool {
    let masked: Vec<Vec<u8>> = bytes
        .chunks(8)
        .map(|part| part.iter().map(|byte| byte & 0xFE).collect())
        .collect();
    (0..masked.len()).all(|i| (i + 1..masked.len()).all(|j| masked[i] != masked[j]))
}

fn header(version: Version) -> Header {
    Header::new(
        version,
        KeyUsage::PinEncryption,
        Algorithm::Tdes,
        ModeOfUse::EncryptOnly,
        Exportability::NonExportable,
    )
}

/// Which pair a copy makes equal, as the rule names it (lower part first).
fn named_pair(copy: (usize, usize)) -> (u8, u8) {
    let (a, b) = (copy.0.min(copy.1), copy.0.max(copy.1));
    (a as u8 + 1, b as u8 + 1)
}

fn copies(parts: usize) -> Vec<(usize, usize)> {
    if parts == 2 {
        vec![(0, 1), (1, 0)]
    } else {
        vec![(0, 1), (1, 2), (0, 2), (2, 0), (2, 1), (1, 0)]
    }
}

proptest! {
    #[test]
    fn a_repeated_part_is_refused_everywhere_and_named(
        parts in 2usize..=3,
        seed in prop::collection::vec(any::<u8>(), 24),
        which in 0usize..6,
        flip in any::<u8>(),
    ) {
        let choices = copies(parts);
        let copy = choices[which % choices.len()];
        let algorithm = algorithm_of(parts);
        let bytes = tdes_bytes(parts, &seed, Some(copy), flip);
        let weak_key = SecretKey::from_bytes(algorithm, &bytes).unwrap();
        let weak = check_strength(&weak_key).unwrap_err();
        // With three parts a copy may also make another pair equal (never here: the seed's
        // parts are distinct); the pair named is the first repeated one in K1K2, K2K3, K1K3.
        prop_assume!(distinct(&tdes_bytes(parts, &seed, None, 0)));
        prop_assert_eq!((weak.first, weak.second), named_pair(copy));
        prop_assert_eq!(weak.algorithm, algorithm);
        let hex = hex::encode_upper(&bytes);
        // Never the key in the words.
        prop_assert!(!weak.to_string().contains(&hex[..16]));

        // A component (odd parity, as custodians type them): refused as it is entered.
        let mut typed = bytes.clone();
        parity::adjust_to_odd(&mut typed);
        let component = Component::from_hex(algorithm, 1, &hex::encode(&typed));
        let refused = matches!(
            component,
            Err(ComponentError::Invalid { number: 1, problem: KeyError::Weak(found) }) if found == weak
        );
        prop_assert!(refused, "the component was not refused as weak");

        // Wrapping: the weak key under a strong KBPK, and a strong key under the weak KBPK.
        let strong = SecretKey::generate(KeyAlgorithm::Tdes3Key).unwrap();
        let under_strong = KeyBlockProtectionKey::new(&strong).wrap(&header(Version::B), &weak_key);
        prop_assert_eq!(under_strong.err(), Some(Tr31Error::WeakKey(weak)));
        let weak_kbpk = KeyBlockProtectionKey::new(&weak_key);
        let strong_key = SecretKey::generate(KeyAlgorithm::Tdes2Key).unwrap();
        prop_assert_eq!(
            weak_kbpk.wrap(&header(Version::B), &strong_key).err(),
            Some(Tr31Error::WeakProtectionKey(weak))
        );
    }

    #[test]
    fn distinct_parts_pass_and_wrap(
        parts in 2usize..=3,
        seed in prop::collection::vec(any::<u8>(), 24),
    ) {
        let bytes = tdes_bytes(parts, &seed, None, 0);
        prop_assume!(distinct(&bytes));
        let key = SecretKey::from_bytes(algorithm_of(parts), &bytes).unwrap();
        prop_assert!(check_strength(&key).is_ok());
        let kbpk = KeyBlockProtectionKey::new(&SecretKey::generate(KeyAlgorithm::Tdes3Key).unwrap());
        let block = kbpk.wrap(&header(Version::B), &key).unwrap();
        prop_assert!(kbpk.unwrap(&block).unwrap().key.same_material_as(&key));
    }

    #[test]
    fn components_of_a_weak_key_are_refused_when_combined(
        seed in prop::collection::vec(any::<u8>(), 24),
        first_seed in prop::collection::vec(any::<u8>(), 16),
    ) {
        // The target key has K1 = K2; the first component is random, the second makes up the rest.
        let target = tdes_bytes(2, &seed, Some((0, 1)), 0);
        let mut first = first_seed.clone();
        parity::adjust_to_odd(&mut first);
        let mut second: Vec<u8> = target.iter().zip(&first).map(|(a, b)| a ^ b).collect();
        parity::adjust_to_odd(&mut second);
        prop_assume!(distinct(&first) && distinct(&second));
        let components = [
            Component::from_hex(KeyAlgorithm::Tdes2Key, 1, &hex::encode(&first)).unwrap(),
            Component::from_hex(KeyAlgorithm::Tdes2Key, 2, &hex::encode(&second)).unwrap(),
        ];
        let refused = component::combine(&components, None).err();
        let named = matches!(
            refused,
            Some(ComponentError::WeakCombination(WeakKey { first: 1, second: 2, .. }))
        );
        prop_assert!(named, "the combination was not refused as weak");
    }
}

// Unwrapping never checks strength: crypto/tests/vectors/tr31_unwrap.txt opens a published
// block holding a K1 = K2 key (and refuses to re-wrap it), tr31_invalid.txt works under the
// KBPK 4545...45 (K1 = K2).
