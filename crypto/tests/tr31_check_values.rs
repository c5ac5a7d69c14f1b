//! KC and KP optional blocks are checked on unwrap: a block that names another key's check value is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keymother_crypto::tr31::{self, Header, KeyBlockProtectionKey, Tr31Error};
use keymother_crypto::{KeyAlgorithm, SecretKey};

const KEY: &str = "3F419E1CB7079442AA37474C2EFBF8B8"; // AES CMAC KCV 08793E25AB

fn kbpk() -> SecretKey {
    SecretKey::from_hex(KeyAlgorithm::Aes256, &"88E1AB2A2E3DD38C".repeat(4)).unwrap()
}

fn header_with_block(block: &str) -> Header {
    format!("D0000P0AE00E0100{block}").parse().unwrap()
}

fn key() -> SecretKey {
    SecretKey::from_hex(KeyAlgorithm::Aes128, KEY).unwrap()
}

fn wrap_with_block(block: &str) -> String {
    tr31::wrap(&kbpk(), &header_with_block(block), &key()).unwrap()
}

/// A block whose KC or KP statement is wrong, as a faulty sender would make it (the normal
/// wrap refuses to).
fn wrap_lying(block: &str) -> String {
    let header = header_with_block(block);
    assert_eq!(
        tr31::wrap(&kbpk(), &header, &key()).err().unwrap(),
        Tr31Error::StatedCheckValueMismatch {
            block: if block.starts_with("KC") { "KC" } else { "KP" }
        }
    );
    KeyBlockProtectionKey::new(&kbpk())
        .wrap_with_padding(&header, &key(), &[0x5A; 14])
        .unwrap()
}

#[test]
fn a_matching_kc_block_unwraps() {
    let block = wrap_with_block("KC100108793E25AB");
    assert_eq!(
        tr31::unwrap(&kbpk(), &block).unwrap().key.kcv().to_string(),
        "08793E25AB"
    );
    // A shorter prefix is allowed too.
    let block = wrap_with_block("KC0A010879");
    assert!(tr31::unwrap(&kbpk(), &block).is_ok());
}

#[test]
fn a_kc_block_for_another_key_is_refused() {
    let block = wrap_lying("KC100108793E25AC");
    assert_eq!(
        tr31::unwrap(&kbpk(), &block).err().unwrap(),
        Tr31Error::StatedCheckValueMismatch { block: "KC" }
    );
    let message = tr31::unwrap(&kbpk(), &block).err().unwrap().to_string();
    assert!(
        message.contains("does not match the wrapped key"),
        "{message}"
    );
}

#[test]
fn a_kp_block_must_name_the_protection_key() {
    let kbpk_kcv = kbpk().kcv().to_string();
    let good = wrap_with_block(&format!("KP1001{kbpk_kcv}"));
    assert!(tr31::unwrap(&kbpk(), &good).is_ok());
    let bad = wrap_lying("KP10010000000000");
    assert_eq!(
        tr31::unwrap(&kbpk(), &bad).err().unwrap(),
        Tr31Error::StatedCheckValueMismatch { block: "KP" }
    );
}
