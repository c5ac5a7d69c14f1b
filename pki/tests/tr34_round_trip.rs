//! TR-34 key tokens built by the KDH side and opened by the KRD side on three PKIs, one-pass and two-pass, and every refusal.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod tr34_pkis;
mod tr34_support;

use std::time::Duration;

use keymother_crypto::KeyAlgorithm;
use keymother_pki::testing::unchecked_certificate;
use keymother_pki::tr34::{
    ExpectedFreshness, Freshness, Token, TokenKind, Tr34Error, build_key_token,
    kdh_credential_token, krd_credential_token, parse_credential_token, parse_random_number_token,
    random_number_token,
};
use keymother_pki::{PkiError, Role};
use tr34_pkis::{
    NONCE, Pki, clover, clover_pki, fixtures, generated, master_key, one_pass, two_pass,
};

static_assertions::assert_not_impl_any!(keymother_pki::tr34::KeyBlock: std::fmt::Debug, Clone);
static_assertions::assert_not_impl_any!(keymother_pki::tr34::OpenedKeyToken: std::fmt::Debug, Clone);

fn round_trip(pki: &Pki) {
    for algorithm in [
        KeyAlgorithm::Tdes3Key,
        KeyAlgorithm::Aes256,
        KeyAlgorithm::Tdes2Key,
    ] {
        let key = master_key(algorithm);
        let built = pki.build(Freshness::TwoPass { nonce: &NONCE }, &key);
        let token = Token::parse(&built.der).unwrap();
        assert_eq!(token.kind(), TokenKind::TwoPassKeyToken, "{}", pki.name);
        token.verify_signature(&pki.kdh_der).unwrap();
        let opened = pki.open(&two_pass(), &built.der).unwrap();
        assert!(opened.key.same_material_as(&key), "{}", pki.name);
        assert_eq!(opened.header, built.header);
        assert_eq!(opened.key_index, tr34_pkis::index(42));
        assert_eq!(opened.key.kcv().as_bytes(), &built.kcv[..]);
        assert_eq!(opened.signing_time, None);

        let built = pki.build(
            Freshness::OnePass {
                signing_time: pki.now,
            },
            &key,
        );
        assert_eq!(
            Token::parse(&built.der).unwrap().kind(),
            TokenKind::OnePassKeyToken
        );
        let opened = pki.open(&one_pass(None), &built.der).unwrap();
        assert!(opened.key.same_material_as(&key), "{}", pki.name);
        let signed = opened.signing_time.unwrap();
        let skew = pki.now.duration_since(signed).unwrap();
        assert!(
            skew < Duration::from_secs(1),
            "{}: whole seconds are signed",
            pki.name
        );
    }
}

#[test]
fn round_trip_on_the_openssl_fixtures() {
    round_trip(&fixtures());
}

#[test]
fn round_trip_on_the_clover_pki() {
    round_trip(&clover_pki());
}

#[test]
fn round_trip_on_a_generated_pki() {
    round_trip(&generated());
}

#[test]
fn the_header_binds_usage_mode_exportability_and_the_key_index() {
    let pki = fixtures();
    let key = master_key(KeyAlgorithm::Aes256);
    let mut input = pki.input(Freshness::TwoPass { nonce: &NONCE });
    input.key_index = tr34_pkis::index(12_345_678);
    let built = build_key_token(&input, &key).unwrap();
    let header: keymother_crypto::tr31::Header = built.header.parse().unwrap();
    assert_eq!(header.key_usage.code(), *b"K0");
    assert_eq!(header.algorithm, keymother_crypto::tr31::Algorithm::Aes);
    assert_eq!(
        header.mode_of_use,
        keymother_crypto::tr31::ModeOfUse::DecryptOnly
    );
    assert_eq!(
        header.exportability,
        keymother_crypto::tr31::Exportability::NonExportable
    );
    let opened = pki.open(&two_pass(), &built.der).unwrap();
    assert_eq!(opened.key_index, tr34_pkis::index(12_345_678));
    let token = Token::parse(&built.der).unwrap();
    assert_eq!(token.key_block_header(), Some(built.header.as_str()));
    let description = token.describe();
    for label in [
        "signer",
        "recipient",
        "CRL",
        "content encryption algorithm",
        "key encryption algorithm",
    ] {
        assert!(
            description.iter().any(|(l, _)| l == label),
            "{label}: {description:?}"
        );
    }
}

#[test]
fn freshness_refusals() {
    let pki = fixtures();
    let key = master_key(KeyAlgorithm::Tdes3Key);
    let two = pki.build(Freshness::TwoPass { nonce: &NONCE }, &key);
    let mut other_nonce = NONCE;
    other_nonce[0] ^= 1;
    let refused = pki
        .open(
            &ExpectedFreshness::TwoPass {
                nonce: &other_nonce,
            },
            &two.der,
        )
        .err()
        .unwrap();
    assert_eq!(refused, Tr34Error::NonceMismatch);
    assert!(refused.is_authenticity());
    assert!(matches!(
        pki.open(&one_pass(None), &two.der),
        Err(Tr34Error::FreshnessMissing { .. })
    ));

    let one = pki.build(
        Freshness::OnePass {
            signing_time: pki.now,
        },
        &key,
    );
    let signed = Token::parse(&one.der).unwrap().signing_time().unwrap();
    assert!(matches!(
        pki.open(&one_pass(Some(signed)), &one.der),
        Err(Tr34Error::Replayed { .. })
    ));
    assert!(
        pki.open(&one_pass(Some(signed - Duration::from_secs(1))), &one.der)
            .is_ok()
    );
    for offset in [Duration::from_secs(301), Duration::from_secs(3600)] {
        for time in [pki.now + offset, pki.now - offset] {
            let stale = pki.build(Freshness::OnePass { signing_time: time }, &key);
            let refused = pki.open(&one_pass(None), &stale.der).err().unwrap();
            assert!(matches!(refused, Tr34Error::Stale { .. }), "{refused}");
            assert!(refused.is_authenticity());
        }
    }
    assert!(matches!(
        pki.open(&two_pass(), &one.der),
        Err(Tr34Error::FreshnessMissing { .. })
    ));
}

#[test]
fn a_token_for_another_device_is_refused() {
    let pki = fixtures();
    let other = common::verified(Role::TerminalDevice, "device-pss.der");
    let mut input = pki.input(Freshness::TwoPass { nonce: &NONCE });
    input.krd = &other;
    let built = build_key_token(&input, &master_key(KeyAlgorithm::Aes256)).unwrap();
    let refused = pki.open(&two_pass(), &built.der).err().unwrap();
    assert!(
        matches!(refused, Tr34Error::NotForThisDevice { .. }),
        "{refused}"
    );
    assert!(refused.is_authenticity());
}

#[test]
fn a_token_from_another_kdh_is_refused() {
    let pki = clover_pki();
    let built = pki.build(
        Freshness::TwoPass { nonce: &NONCE },
        &master_key(KeyAlgorithm::Aes256),
    );
    let mut other = clover_pki();
    other.kdh =
        unchecked_certificate(Role::KeyDistributionHost, &clover("kdh_2_certificate")).unwrap();
    let refused = other.open(&two_pass(), &built.der).err().unwrap();
    assert!(
        matches!(refused, Tr34Error::WrongSigner { .. }),
        "{refused}"
    );
    assert!(refused.is_authenticity());
    let token = Token::parse(&built.der).unwrap();
    assert!(matches!(
        token.verify_signature(&clover("kdh_2_certificate")),
        Err(Tr34Error::WrongSigner { .. })
    ));
}

#[test]
fn crl_refusals() {
    let mut pki = fixtures();
    let key = master_key(KeyAlgorithm::Aes256);
    pki.crl = common::fixture("ca-kdh-revoked-kdh.crl.pem");
    let built = pki.build(Freshness::TwoPass { nonce: &NONCE }, &key);
    let refused = pki.open(&two_pass(), &built.der).err().unwrap();
    assert!(matches!(refused, Tr34Error::KdhRevoked { .. }), "{refused}");
    assert!(refused.is_authenticity());

    pki.crl = common::fixture("ca-kdh-stale.crl.pem");
    let built = pki.build(Freshness::TwoPass { nonce: &NONCE }, &key);
    assert!(matches!(
        pki.open(&two_pass(), &built.der),
        Err(Tr34Error::Crl(PkiError::CrlOutOfDate { .. }))
    ));

    // The device CA's CRL attached as if it were the KDH CA's.
    pki.crl = common::fixture("ca-device.crl.pem");
    let built = pki.build(Freshness::TwoPass { nonce: &NONCE }, &key);
    assert!(matches!(
        pki.open(&two_pass(), &built.der),
        Err(Tr34Error::Crl(PkiError::CrlWrongIssuer { .. }))
    ));
}

#[test]
fn the_builder_refuses_wrong_roles_and_bad_nonces() {
    let pki = fixtures();
    let key = master_key(KeyAlgorithm::Aes256);
    let mut input = pki.input(Freshness::TwoPass { nonce: &NONCE });
    input.kdh = &pki.krd;
    assert_eq!(
        build_key_token(&input, &key).err(),
        Some(Tr34Error::NotKdh {
            role: Role::TerminalDevice
        })
    );
    let mut input = pki.input(Freshness::TwoPass { nonce: &NONCE });
    input.krd = &pki.kdh;
    assert_eq!(
        build_key_token(&input, &key).err(),
        Some(Tr34Error::NotTerminalDevice {
            role: Role::KeyDistributionHost
        })
    );
    let operator = common::verified(Role::Operator, "operator.der");
    let mut input = pki.input(Freshness::TwoPass { nonce: &NONCE });
    input.krd = &operator;
    assert!(matches!(
        build_key_token(&input, &key),
        Err(Tr34Error::NotTerminalDevice { .. })
    ));
    for length in [0, 7, 33] {
        let nonce = vec![0x5A; length];
        let input = pki.input(Freshness::TwoPass { nonce: &nonce });
        assert_eq!(
            build_key_token(&input, &key).err(),
            Some(Tr34Error::NonceLength { length })
        );
    }
    let mut input = pki.input(Freshness::TwoPass { nonce: &NONCE });
    input.kdh_key = &pki.krd_key;
    assert!(matches!(
        build_key_token(&input, &key),
        Err(Tr34Error::Pki(PkiError::KeyMismatch { .. }))
    ));
}

#[test]
fn the_terminal_refuses_a_kdh_of_another_role_and_a_key_of_another_device() {
    let pki = fixtures();
    let built = pki.build(
        Freshness::TwoPass { nonce: &NONCE },
        &master_key(KeyAlgorithm::Aes256),
    );
    let result = keymother_pki::tr34::open_key_token(
        &pki.krd_key,
        &pki.krd_der,
        &pki.krd,
        &pki.anchors,
        pki.now,
        &two_pass(),
        &built.der,
    );
    assert_eq!(
        result.err(),
        Some(Tr34Error::NotKdh {
            role: Role::TerminalDevice
        })
    );
    let result = keymother_pki::tr34::open_key_token(
        &pki.kdh_key,
        &pki.krd_der,
        &pki.kdh,
        &pki.anchors,
        pki.now,
        &two_pass(),
        &built.der,
    );
    assert!(matches!(
        result,
        Err(Tr34Error::Pki(PkiError::KeyMismatch { .. }))
    ));
    // A credential token is not a key token.
    let credential = krd_credential_token(&pki.krd_der).unwrap();
    assert!(matches!(
        pki.open(&two_pass(), &credential),
        Err(Tr34Error::WrongKind { .. })
    ));
}

#[test]
fn credential_and_random_number_tokens_round_trip() {
    let pki = fixtures();
    let token = kdh_credential_token(&pki.kdh_der, &pki.crl).unwrap();
    let parsed = parse_credential_token(&token).unwrap();
    assert_eq!(parsed.kind, TokenKind::KdhCredential);
    assert_eq!(parsed.certificates, vec![pki.kdh_der.clone()]);
    assert_eq!(parsed.crls, vec![common::pem_to_der(&pki.crl)]);
    let without_crl =
        parse_credential_token(&kdh_credential_token(&pki.kdh_der, &[]).unwrap()).unwrap();
    assert_eq!(without_crl.kind, TokenKind::KdhCredential);
    assert!(without_crl.crls.is_empty());
    let parsed = parse_credential_token(&krd_credential_token(&pki.krd_der).unwrap()).unwrap();
    assert_eq!(parsed.kind, TokenKind::KrdCredential);
    assert_eq!(parsed.certificates, vec![pki.krd_der.clone()]);

    for length in [8, 16, 32] {
        let nonce: Vec<u8> = (0..length).map(|i| (i * 37 + 11) as u8).collect();
        let token = random_number_token(&nonce).unwrap();
        assert_eq!(parse_random_number_token(&token).unwrap(), nonce);
        assert_eq!(Token::parse(&token).unwrap().nonce(), Some(&nonce[..]));
    }
    for length in [7, 33] {
        assert_eq!(
            random_number_token(&vec![1; length]).err(),
            Some(Tr34Error::NonceLength { length })
        );
    }
    assert!(matches!(
        parse_random_number_token(&krd_credential_token(&pki.krd_der).unwrap()),
        Err(Tr34Error::WrongKind { .. })
    ));
}

/// The header docs/PROTOCOL.md 9.1.3 shows for key 278, an AES master key, is the one the
/// appliance writes: its length digits are the header's own length.
#[test]
fn the_key_block_header_is_the_one_protocol_md_documents() {
    let header = keymother_pki::tr34::key_block_header(
        keymother_crypto::KeyFamily::Aes,
        keymother_domain::KeyIndex::new(278).unwrap(),
    )
    .unwrap();
    assert_eq!(header, "D0028K0AD00N0100010C00000278");
    let header = keymother_pki::tr34::key_block_header(
        keymother_crypto::KeyFamily::Tdes,
        keymother_domain::KeyIndex::new(42).unwrap(),
    )
    .unwrap();
    assert_eq!(header, "D0028K0TD00N0100010C00000042");
}
