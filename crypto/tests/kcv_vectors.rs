//! Published key check value vectors, read from tests/vectors/kcv.txt.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aes::cipher::{BlockCipherEncrypt, KeyInit};
use keymother_crypto::{KeyFamily, SecretKey};

fn stanzas(text: &str) -> Vec<Vec<(String, String)>> {
    text.split("\n\n")
        .map(|stanza| {
            stanza
                .lines()
                .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
                .map(|line| {
                    let (name, value) = line.split_once(" = ").expect("name = value");
                    (name.to_owned(), value.to_owned())
                })
                .collect::<Vec<_>>()
        })
        .filter(|fields| !fields.is_empty())
        .collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

#[test]
fn published_kcv_vectors() {
    let text = include_str!("vectors/kcv.txt");
    let vectors = stanzas(text);
    assert!(vectors.len() >= 2);
    for fields in vectors {
        let family: KeyFamily = field(&fields, "family").unwrap().parse().unwrap();
        let key = SecretKey::from_hex_in_family(family, field(&fields, "key").unwrap()).unwrap();
        assert_eq!(
            key.kcv().to_string(),
            field(&fields, "kcv").unwrap(),
            "{fields:?}"
        );
        if let Some(legacy) = field(&fields, "legacy") {
            // Prove the legacy value really is ECB of zeros, and that we do not produce it.
            let cipher = aes::Aes128::new_from_slice(key.expose_secret_bytes()).unwrap();
            let mut block = [0u8; 16].into();
            cipher.encrypt_block(&mut block);
            assert_eq!(hex::encode_upper(&block[..5]), legacy);
            assert_ne!(key.kcv().to_string(), legacy);
        }
    }
}
