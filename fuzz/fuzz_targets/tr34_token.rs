//! Fuzzes the TR-34 token parsers: arbitrary bytes as any token, a credential token and a random number token, each described and its symmetric layer tried; never a panic, every refusal has words.
#![no_main]

use keymother_pki::tr34::{Token, parse_credential_token, parse_random_number_token};
use libfuzzer_sys::fuzz_target;

/// A fixed TDES content key (the one of the TR-34 Annex B sample key tokens), so the
/// envelope and key block parsers are reached.
const CONTENT_KEY: [u8; 24] = [
    0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF, 0xFE, 0xDC, 0xBA, 0x98, 0x76, 0x54, 0x32,
    0x10, 0xFF, 0xEE, 0xDD, 0xCC, 0xBB, 0xAA, 0x99, 0x88,
];

fuzz_target!(|data: &[u8]| {
    match Token::parse(data) {
        Ok(token) => {
            let lines = token.describe();
            assert!(lines.len() >= 2, "a description names the token and its form");
            let _ = (token.nonce(), token.signing_time(), token.key_block_header());
            let _ = (token.certificates(), token.crls(), token.content());
            if let Err(e) = token.decrypt_with_content_key(&CONTENT_KEY) {
                assert!(!e.to_string().is_empty());
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    if let Err(e) = parse_credential_token(data) {
        assert!(!e.to_string().is_empty());
    }
    if let Err(e) = parse_random_number_token(data) {
        assert!(!e.to_string().is_empty());
    }
});
