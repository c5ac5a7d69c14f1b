//! Timings of the RSA operations, printed (not a pass/fail test):
//! `cargo test --release -p keymother-pki --test timings -- --ignored --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_pki::login::{sign_login, verify_login};
use keymother_pki::tr34::{
    ExpectedFreshness, Freshness, KeyTokenInput, build_key_token, open_key_token,
};
use keymother_pki::{PrivateKey, Role};

fn time<T>(label: &str, runs: u32, mut f: impl FnMut() -> T) {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(f());
            start.elapsed()
        })
        .collect();
    times.sort();
    let total: Duration = times.iter().sum();
    println!(
        "{label:<48} mean {:>10.2?}  median {:>10.2?}  min {:>10.2?}  max {:>10.2?}  ({runs} runs)",
        total / runs,
        times[times.len() / 2],
        times[0],
        times[times.len() - 1]
    );
}

#[test]
#[ignore = "prints timings; run explicitly, in release"]
fn timings() {
    time("PrivateKey::generate(2048)", 10, || {
        PrivateKey::generate(2048).unwrap()
    });
    time("PrivateKey::generate(3072)", 3, || {
        PrivateKey::generate(3072).unwrap()
    });
    let key = leaf_key("operator");
    time("to_encrypted_pkcs8_pem (scrypt 2^14)", 5, || {
        key.to_encrypted_pkcs8_pem(b"p").unwrap()
    });
    let pem = key.to_encrypted_pkcs8_pem(b"p").unwrap();
    time("from_pkcs8, encrypted (scrypt 2^14)", 5, || {
        PrivateKey::from_pkcs8(pem.as_bytes(), Some(b"p")).unwrap()
    });
    let certificate = fixture("operator.der");
    let challenge = [7u8; 32];
    time("sign_login (PSS sign, blinded)", 50, || {
        sign_login(&key, &certificate, "KM-0001", &challenge, now()).unwrap()
    });
    let response = sign_login(&key, &certificate, "KM-0001", &challenge, now()).unwrap();
    let anchors = anchors();
    time("verify_login (chain + PSS verify)", 50, || {
        verify_login(
            &anchors,
            None,
            "KM-0001",
            &challenge,
            &response,
            now(),
            Duration::from_secs(60),
        )
        .unwrap()
    });
    let kdh_key = leaf_key("kdh");
    let device_key = leaf_key("device");
    let device = verified(Role::TerminalDevice, "device.der");
    let kdh = verified(Role::KeyDistributionHost, "kdh.der");
    let nonce = [1u8; 16];
    let master_key = SecretKey::generate(KeyAlgorithm::Tdes2Key).unwrap();
    let input = KeyTokenInput {
        kdh_key: &kdh_key,
        kdh: &kdh,
        krd: &device,
        freshness: Freshness::TwoPass { nonce: &nonce },
        key_index: keymother_domain::KeyIndex::new(1).unwrap(),
        crl: &[],
    };
    time(
        "build_key_token (OAEP encrypt + PKCS#1 v1.5 sign)",
        50,
        || build_key_token(&input, &master_key).unwrap(),
    );
    let token = build_key_token(&input, &master_key).unwrap();
    let device_certificate = fixture("device.der");
    time("open_key_token (verify + OAEP decrypt)", 50, || {
        open_key_token(
            &device_key,
            &device_certificate,
            &kdh,
            &anchors,
            now(),
            &ExpectedFreshness::TwoPass { nonce: &nonce },
            &token.der,
        )
        .unwrap()
        .key
        .algorithm()
    });
}
