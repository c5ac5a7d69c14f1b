//! The ASC X9 TR 34-2019 Annex B samples: every token identified, the key tokens' signatures and digests checked, their symmetric layer opened to the published key block.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod tr34_support;

use keymother_pki::tr34::{
    Token, TokenKind, Tr34Error, WireForm, parse_credential_token, parse_random_number_token,
    pem_to_der,
};
use tr34_support::{annex_b, annex_b_bytes, hex_vector};

const KEY_TOKENS: [(&str, TokenKind); 4] = [
    ("b_8_one_pass_key_token", TokenKind::OnePassKeyToken),
    ("b_8_ktkdh_1_pass_broken", TokenKind::OnePassKeyToken),
    ("b_9_two_pass_token", TokenKind::TwoPassKeyToken),
    ("b_9_ktkdh_two_pass_pem_broken", TokenKind::TwoPassKeyToken),
];

fn parse(name: &str) -> Token {
    Token::parse(&hex_vector(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The sample KDH 1 certificate, taken from the B.6 credential token.
fn kdh_1_certificate() -> Vec<u8> {
    let credential = parse_credential_token(&hex_vector("b_6_kdh_1_w_crl_pem")).unwrap();
    credential.certificates[0].clone()
}

#[test]
fn every_sample_is_identified_with_its_kind_and_form() {
    let expected = [
        (
            "b_6_kdh_1_w_crl_pem",
            TokenKind::KdhCredential,
            WireForm::Tr34_2019,
        ),
        (
            "b_7_krd_credential_token_1_p7b",
            TokenKind::KrdCredential,
            WireForm::Tr34_2019,
        ),
        (
            "b_8_one_pass_key_token",
            TokenKind::OnePassKeyToken,
            WireForm::Tr34_2019,
        ),
        (
            "b_8_ktkdh_1_pass_broken",
            TokenKind::OnePassKeyToken,
            WireForm::Tr34_2019,
        ),
        (
            "b_9_two_pass_token",
            TokenKind::TwoPassKeyToken,
            WireForm::Tr34_2019,
        ),
        (
            "b_9_ktkdh_two_pass_pem_broken",
            TokenKind::TwoPassKeyToken,
            WireForm::Tr34_2019,
        ),
        (
            "b_10_tr34_sample_rbt_ca_unbind_pem",
            TokenKind::RebindToken,
            WireForm::Tr34_2012,
        ),
        (
            "b_11_sample_rbt_kdh_pem",
            TokenKind::RebindToken,
            WireForm::Tr34_2012,
        ),
        (
            "b_12_krd_random_number_token",
            TokenKind::RandomNumber,
            WireForm::Tr34_2019,
        ),
        (
            "b_13_ubt_ca_unbind",
            TokenKind::UnbindToken,
            WireForm::Tr34_2012,
        ),
        (
            "b_14_ubt_kdh_unbind",
            TokenKind::UnbindToken,
            WireForm::Tr34_2019,
        ),
    ];
    for (name, kind, form) in expected {
        let token = parse(name);
        assert_eq!(token.kind(), kind, "{name}");
        assert_eq!(token.form(), form, "{name}");
        let description = token.describe();
        assert_eq!(description[0].1, kind.to_string(), "{name}");
        assert!(description.len() > 2, "{name}: {description:?}");
    }
}

#[test]
fn credential_tokens_carry_their_certificates_and_crls() {
    let kdh = parse_credential_token(&hex_vector("b_6_kdh_1_w_crl_pem")).unwrap();
    assert_eq!(kdh.kind, TokenKind::KdhCredential);
    assert_eq!((kdh.certificates.len(), kdh.crls.len()), (1, 1));
    let krd = parse_credential_token(&hex_vector("b_7_krd_credential_token_1_p7b")).unwrap();
    assert_eq!(krd.kind, TokenKind::KrdCredential);
    assert_eq!((krd.certificates.len(), krd.crls.len()), (1, 0));
    let certificate = x509_cert_subject(&krd.certificates[0]);
    assert!(certificate.contains("TR34 Sample KRD 1"), "{certificate}");
    // A key token is not a credential token.
    assert!(matches!(
        parse_credential_token(&hex_vector("b_9_two_pass_token")),
        Err(Tr34Error::WrongKind { .. })
    ));
}

fn x509_cert_subject(der: &[u8]) -> String {
    let token_lines = Token::parse(&keymother_pki::tr34::krd_credential_token(der).unwrap())
        .unwrap()
        .describe();
    token_lines
        .iter()
        .find(|(label, _)| label == "certificate")
        .map(|(_, value)| value.clone())
        .unwrap()
}

#[test]
fn the_random_number_is_read_from_b12_and_from_b9() {
    let nonce = annex_b_bytes("nonce");
    assert_eq!(
        parse_random_number_token(&hex_vector("b_12_krd_random_number_token")).unwrap(),
        nonce
    );
    assert_eq!(parse("b_9_two_pass_token").nonce(), Some(&nonce[..]));
    assert_eq!(parse("b_8_one_pass_key_token").nonce(), None);
}

#[test]
fn the_one_pass_signing_time_and_the_headers_are_read() {
    let seconds: u64 = annex_b("signing_time").parse().unwrap();
    let token = parse("b_8_one_pass_key_token");
    let time = token.signing_time().unwrap();
    assert_eq!(
        time.duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
        seconds
    );
    for (name, _) in KEY_TOKENS {
        assert_eq!(
            parse(name).key_block_header(),
            Some(annex_b("header").as_str()),
            "{name}"
        );
    }
}

#[test]
fn the_key_tokens_signatures_and_digests_verify_with_kdh_1() {
    let kdh = kdh_1_certificate();
    // The sample certificates expired in 2020: the check is pinned at 2019-06-01, inside KDH 1's
    // validity (its CA is an intermediate under the sample root, which keymother's one-CA-per-role
    // anchors do not take, so only the dates and the key are used here).
    use keymother_pki::der::Decode;
    let certificate = keymother_pki::x509_cert::Certificate::from_der(&kdh).unwrap();
    let validity = certificate.tbs_certificate().validity();
    let pinned = tr34_support::sample_time();
    assert!(validity.not_before.to_system_time() <= pinned);
    assert!(pinned <= validity.not_after.to_system_time());
    for (name, kind) in KEY_TOKENS {
        let token = parse(name);
        assert_eq!(token.kind(), kind);
        token
            .verify_signature(&kdh)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(token.crls().len(), 1, "{name}");
        assert!(token.certificates().is_empty(), "{name}");
    }
}

/// Offset of the `[0]` signedAttrs of the one SignerInfo (found through the digest OID that
/// precedes it: the SignerInfo's digestAlgorithm SEQUENCE is the last sha256 in the token).
fn signed_attributes_offset(der: &[u8]) -> usize {
    let sha256 = [
        0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
    ];
    let at = der
        .windows(sha256.len())
        .rposition(|w| w == sha256)
        .unwrap();
    let after = at + sha256.len();
    assert_eq!(der[after], 0xA0, "signedAttrs follow the digest algorithm");
    after
}

#[test]
fn one_flipped_byte_in_the_signed_attributes_fails_the_signature() {
    let kdh = kdh_1_certificate();
    for (name, _) in KEY_TOKENS {
        let original = hex_vector(name);
        let start = signed_attributes_offset(&original);
        // Flip a byte inside each attribute value region: the last byte of the signedAttrs
        // (in the messageDigest) and one in the middle (the header or nonce).
        let length = usize::from(original[start + 2]);
        for offset in [start + 3 + length - 1, start + 3 + length / 2] {
            let mut der = original.clone();
            der[offset] ^= 0x01;
            match Token::parse(&der) {
                Ok(token) => assert_eq!(
                    token.verify_signature(&kdh),
                    Err(Tr34Error::BadSignature),
                    "{name}, byte {offset}"
                ),
                Err(e) => assert!(e.is_authenticity(), "{name}, byte {offset}: {e}"),
            }
        }
    }
}

#[test]
fn a_changed_content_fails_the_message_digest() {
    let kdh = kdh_1_certificate();
    let mut der = hex_vector("b_9_two_pass_token");
    // The last byte of the encrypted content, inside eContent (which ends before crls [1]).
    let crls = der.windows(2).position(|w| w == [0xA1, 0x82]).unwrap();
    der[crls - 1] ^= 0x01;
    let token = Token::parse(&der).unwrap();
    assert_eq!(token.verify_signature(&kdh), Err(Tr34Error::DigestMismatch));
}

#[test]
fn the_symmetric_layer_opens_to_the_published_key_block() {
    let content_key = annex_b_bytes("content_key");
    for name in ["b_8_one_pass_key_token", "b_9_two_pass_token"] {
        let block = parse(name)
            .decrypt_with_content_key(&content_key)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(block.header(), annex_b("header"));
        assert_eq!(block.key().expose_secret_bytes(), annex_b_bytes("key"));
        let (issuer, serial) = block.kdh_id();
        assert_eq!(issuer, annex_b("kdh_issuer"));
        assert_eq!(serial, annex_b_bytes("kdh_serial"));
    }
    // The published B.2.2.2.1 file carries the same key, header and KDH serial.
    let published = hex_vector("b_2_2_2_1_tr34_sample_tdea_encrypted_content_file");
    for value in [
        annex_b_bytes("key"),
        annex_b("header").into_bytes(),
        annex_b_bytes("kdh_serial"),
    ] {
        assert!(published.windows(value.len()).any(|w| w == value));
    }
}

#[test]
fn a_wrong_content_key_does_not_decrypt() {
    let mut content_key = annex_b_bytes("content_key");
    content_key[0] ^= 0x80;
    let result = parse("b_9_two_pass_token").decrypt_with_content_key(&content_key);
    assert!(matches!(
        result,
        Err(Tr34Error::ContentDoesNotDecrypt | Tr34Error::KeyBlock { .. })
    ));
}

#[test]
fn the_broken_originals_are_identified_and_explain_their_envelope() {
    let content_key = annex_b_bytes("content_key");
    for name in ["b_8_ktkdh_1_pass_broken", "b_9_ktkdh_two_pass_pem_broken"] {
        let token = parse(name);
        match token.decrypt_with_content_key(&content_key) {
            Err(Tr34Error::Malformed { what, offset, .. }) => {
                assert_eq!(what, "contentEncryptionAlgorithm", "{name}");
                assert!(offset > 0, "{name}");
            }
            Err(other) => panic!("{name}: {other}"),
            Ok(_) => panic!("{name}: the broken envelope opened"),
        }
        let description = token.describe();
        assert!(
            description
                .iter()
                .any(|(label, value)| label == "enveloped data" && value.contains("does not parse")),
            "{name}: {description:?}"
        );
    }
}

#[test]
fn the_recipient_is_krd_1() {
    let lines = parse("b_9_two_pass_token").describe();
    let recipient = lines
        .iter()
        .find(|(label, _)| label == "recipient")
        .map(|(_, value)| value.clone())
        .unwrap();
    assert!(recipient.contains(&annex_b("krd_issuer")), "{recipient}");
    assert!(recipient.contains(&annex_b("krd_serial")), "{recipient}");
}

#[test]
fn pem_is_read_whatever_its_label_and_der_passes_through() {
    let der = hex_vector("b_9_two_pass_token");
    for label in ["CMS", "PKCS7", "TR34 Sample KTKDH 2 Pass"] {
        let pem = der::pem::encode_string(label, der::pem::LineEnding::LF, &der).unwrap();
        assert_eq!(pem_to_der(pem.as_bytes()).unwrap(), der, "{label}");
    }
    assert_eq!(pem_to_der(&der).unwrap(), der);
    assert!(matches!(
        pem_to_der(b"-----BEGIN CMS-----\nnot base64\n-----END CMS-----\n"),
        Err(Tr34Error::Pem { .. })
    ));
}
