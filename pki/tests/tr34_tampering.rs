//! A TR-34 key token with any byte changed is refused, or (when the byte is unsigned and unused) still opens to the very same key: a full sweep of single-bit flips and a property test of arbitrary byte changes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod tr34_pkis;
mod tr34_support;

use std::sync::OnceLock;

use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_pki::tr34::{Freshness, Token};
use proptest::prelude::*;
use tr34_pkis::{NONCE, Pki, fixtures, master_key, two_pass};

struct Case {
    pki: Pki,
    key: SecretKey,
    der: Vec<u8>,
}

fn case() -> &'static Case {
    static CASE: OnceLock<Case> = OnceLock::new();
    CASE.get_or_init(|| {
        let pki = fixtures();
        let key = master_key(KeyAlgorithm::Aes256);
        let der = pki.build(Freshness::TwoPass { nonce: &NONCE }, &key).der;
        Case { pki, key, der }
    })
}

/// Opens the changed token: refused (with an error that has words), or the same key and index.
/// Returns whether it opened.
fn check_changed(der: &[u8], position: usize) -> bool {
    let case = case();
    // Parsing and describing never panic either.
    if let Ok(token) = Token::parse(der) {
        let _ = token.describe();
    }
    match case.pki.open(&two_pass(), der) {
        Err(e) => {
            assert!(!e.to_string().is_empty(), "byte {position}");
            false
        }
        Ok(opened) => {
            assert!(
                opened.key.same_material_as(&case.key),
                "byte {position} changed the key"
            );
            assert_eq!(opened.key_index, tr34_pkis::index(42), "byte {position}");
            true
        }
    }
}

#[test]
fn every_single_bit_flip_is_refused_or_changes_nothing() {
    let case = case();
    let mut opened = Vec::new();
    for position in 0..case.der.len() {
        let mut der = case.der.clone();
        der[position] ^= 0x01;
        if check_changed(&der, position) {
            opened.push(position);
        }
    }
    eprintln!(
        "{} of {} single-bit flips still open (unsigned, unused bytes): {opened:?}",
        opened.len(),
        case.der.len()
    );
    // Only bytes outside what is signed and used may be changed: SignedData's and SignerInfo's
    // version numbers, the outer digestAlgorithms list, and the tag of the crls field (a CRL
    // turned into a "certificate" is no longer checked: CMS does not sign the CRLs, so an
    // attacker can always drop them; a KRD that needs one must require it).
    assert!(
        opened.len() < case.der.len() / 50,
        "{} of {} flips still open: {opened:?}",
        opened.len(),
        case.der.len()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn any_changed_byte_is_refused_or_changes_nothing(
        position in 0usize..4096,
        mask in 1u8..=255,
    ) {
        let case = case();
        let position = position % case.der.len();
        let mut der = case.der.clone();
        der[position] ^= mask;
        check_changed(&der, position);
    }

    #[test]
    fn truncated_tokens_are_refused(length in 0usize..4096) {
        let case = case();
        let length = length % case.der.len();
        prop_assert!(case.pki.open(&two_pass(), &case.der[..length]).is_err());
    }
}
