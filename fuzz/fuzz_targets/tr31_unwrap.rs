//! Fuzzes TR-31 unwrapping under fixed TDES and AES KBPKs: arbitrary blocks never panic.
#![no_main]

use keymother_crypto::tr31::KeyBlockProtectionKey;
use keymother_crypto::{KeyAlgorithm, SecretKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(block) = std::str::from_utf8(data) else { return };
    for (algorithm, hex) in [
        (KeyAlgorithm::Tdes2Key, "DD7515F2BFC17F85CE48F3CA25CB21F6"),
        (KeyAlgorithm::Aes256, "88E1AB2A2E3DD38C1FA039A536500CC8A87AB9D62DC92C01058FA79F44657DE6"),
    ] {
        let kbpk = SecretKey::from_hex(algorithm, hex).expect("fixed key");
        let _ = KeyBlockProtectionKey::new(&kbpk).unwrap(block);
    }
});
