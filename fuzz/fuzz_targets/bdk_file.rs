//! Fuzzes the BDK file reader: arbitrary bytes are opened or refused with a line-numbered error, never a panic; a refusal never quotes the input.
#![no_main]

use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_keyfiles::open_bdk_file;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let kek = SecretKey::from_hex(KeyAlgorithm::Aes128, "000102030405060708090A0B0C0D0E0F").expect("fixed key");
    let device = "KM-FUZZ-0001".parse().expect("fixed device id");
    if let Err(error) = open_bdk_file(data, "fuzz.bdk", &kek, &device) {
        let lines = data.split(|byte| *byte == b'\n').count();
        assert!(error.line <= lines, "line {} of a {lines}-line file", error.line);
    }
});
