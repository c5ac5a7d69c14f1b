//! Fuzzes the front end's readers of the appliance's exports (SMN export, DUKPT export, audit export): arbitrary bytes are verified or refused with words, never a panic.
#![no_main]

use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_vault::{verify_audit_export, verify_dukpt_export, verify_smn_export};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let kek = SecretKey::from_hex(KeyAlgorithm::Aes128, "000102030405060708090A0B0C0D0E0F").expect("fixed key");
    if let Err(error) = verify_smn_export(data, "fuzz.csv", &kek) {
        assert!(!error.to_string().is_empty());
    }
    if let Err(error) = verify_dukpt_export(data, "fuzz.csv", &kek) {
        assert!(!error.to_string().is_empty());
    }
    if let Err(error) = verify_audit_export(data, "fuzz.audit") {
        assert!(!error.to_string().is_empty());
    }
});
