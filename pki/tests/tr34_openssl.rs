//! openssl agrees with keymother's TR-34 both ways: `openssl cms -verify` accepts a key token we built and outputs its EnvelopedData, `openssl cms -decrypt` recovers the key block our KRD recovers, and a one-pass key token assembled by `openssl cms` is opened by our KRD.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod tr34_pkis;
mod tr34_support;

use std::path::Path;
use std::time::{Duration, SystemTime};

use cms::cert::IssuerAndSerialNumber;
use cms::content_info::ContentInfo;
use der::asn1::{ObjectIdentifier, OctetString, SetOfVec};
use der::{Any, Decode, Encode};
use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_pki::tr34::{
    ExpectedFreshness, Freshness, Token, TokenKind, key_block_header, open_key_token,
};
use tr34_pkis::{NONCE, Pki, fixtures, master_key, two_pass};

const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ID_ENVELOPED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.3");

/// The TR-34 key block (B.2.2.2.1 layout) encoded here independently of the library, with
/// the cms and der crates: SEQUENCE { 1, idKDH, clearKey, Attribute { pkcs7-data, { header } } }.
fn expected_key_block(pki: &Pki, key: &SecretKey, header: &str) -> Vec<u8> {
    let kdh = pki.kdh.certificate().tbs_certificate();
    let id = IssuerAndSerialNumber {
        issuer: kdh.issuer().clone(),
        serial_number: kdh.serial_number().clone(),
    };
    let attribute = x509_cert::attr::Attribute {
        oid: ID_DATA,
        values: SetOfVec::try_from(vec![
            Any::encode_from(&OctetString::new(header.as_bytes()).unwrap()).unwrap(),
        ])
        .unwrap(),
    };
    let mut contents = 1u8.to_der().unwrap();
    contents.extend(id.to_der().unwrap());
    contents.extend(
        OctetString::new(key.expose_secret_bytes())
            .unwrap()
            .to_der()
            .unwrap(),
    );
    contents.extend(attribute.to_der().unwrap());
    Any::new(der::Tag::Sequence, contents)
        .unwrap()
        .to_der()
        .unwrap()
}

/// The PEM files openssl needs, in `dir`.
fn write_credentials(pki: &Pki, dir: &Path) {
    std::fs::write(
        dir.join("kdh.pem"),
        common::der_to_pem("CERTIFICATE", &pki.kdh_der),
    )
    .unwrap();
    std::fs::write(
        dir.join("krd.pem"),
        common::der_to_pem("CERTIFICATE", &pki.krd_der),
    )
    .unwrap();
}

#[test]
fn openssl_verifies_our_token_and_decrypts_what_our_krd_decrypts() {
    let pki = fixtures();
    let dir = tempfile::tempdir().unwrap();
    write_credentials(&pki, dir.path());
    let key = master_key(KeyAlgorithm::Aes256);
    let built = pki.build(Freshness::TwoPass { nonce: &NONCE }, &key);
    std::fs::write(dir.path().join("token.der"), &built.der).unwrap();
    let fixtures = common::fixtures_dir();
    let ca = format!("{fixtures}/ca-kdh.pem");
    let verify_noverify = [
        "cms",
        "-verify",
        "-inform",
        "DER",
        "-in",
        "token.der",
        "-binary",
        "-noverify",
        "-certfile",
        "kdh.pem",
        "-out",
        "envelope.der",
    ];
    if common::openssl(dir.path(), &verify_noverify, true).is_none() {
        return;
    }
    let envelope = std::fs::read(dir.path().join("envelope.der")).unwrap();
    assert_eq!(
        Some(&envelope[..]),
        Token::parse(&built.der).unwrap().content()
    );
    // With the KDH CA as the root of trust, too.
    let verify_ca = [
        "cms",
        "-verify",
        "-inform",
        "DER",
        "-in",
        "token.der",
        "-binary",
        "-CAfile",
        &ca,
        "-purpose",
        "any",
        "-certfile",
        "kdh.pem",
        "-out",
        "envelope-ca.der",
    ];
    common::openssl(dir.path(), &verify_ca, true);
    assert_eq!(
        std::fs::read(dir.path().join("envelope-ca.der")).unwrap(),
        envelope
    );

    // openssl cms -decrypt wants a ContentInfo around the EnvelopedData.
    let wrapped = ContentInfo {
        content_type: ID_ENVELOPED_DATA,
        content: Any::from_der(&envelope).unwrap(),
    };
    std::fs::write(dir.path().join("enveloped.der"), wrapped.to_der().unwrap()).unwrap();
    let key_path = common::fixture_path("test-only-device.key");
    let decrypt = [
        "cms",
        "-decrypt",
        "-inform",
        "DER",
        "-in",
        "enveloped.der",
        "-recip",
        "krd.pem",
        "-inkey",
        key_path.to_str().unwrap(),
        "-binary",
        "-out",
        "key-block.der",
    ];
    common::openssl(dir.path(), &decrypt, true);
    let from_openssl = std::fs::read(dir.path().join("key-block.der")).unwrap();
    let opened = pki.open(&two_pass(), &built.der).unwrap();
    assert_eq!(
        from_openssl,
        expected_key_block(&pki, &opened.key, &opened.header)
    );
    assert!(opened.key.same_material_as(&key));
}

#[test]
fn our_krd_opens_a_one_pass_token_made_by_openssl() {
    let pki = fixtures();
    let dir = tempfile::tempdir().unwrap();
    write_credentials(&pki, dir.path());
    let key = master_key(KeyAlgorithm::Tdes3Key);
    let header = key_block_header(key.algorithm().family(), tr34_pkis::index(7)).unwrap();
    let block = expected_key_block(&pki, &key, &header);
    std::fs::write(dir.path().join("key-block.der"), &block).unwrap();
    let encrypt = [
        "cms",
        "-encrypt",
        "-binary",
        "-aes256",
        "-recip",
        "krd.pem",
        "-keyopt",
        "rsa_padding_mode:oaep",
        "-keyopt",
        "rsa_oaep_md:sha256",
        "-keyopt",
        "rsa_mgf1_md:sha256",
        "-in",
        "key-block.der",
        "-outform",
        "DER",
        "-out",
        "enveloped.der",
    ];
    if common::openssl(dir.path(), &encrypt, true).is_none() {
        return;
    }
    let wrapped = std::fs::read(dir.path().join("enveloped.der")).unwrap();
    let envelope = ContentInfo::from_der(&wrapped)
        .unwrap()
        .content
        .to_der()
        .unwrap();
    std::fs::write(dir.path().join("envelope.der"), envelope).unwrap();
    let kdh_key = common::fixture_path("test-only-kdh.key");
    let sign = [
        "cms",
        "-sign",
        "-nodetach",
        "-binary",
        "-in",
        "envelope.der",
        "-econtent_type",
        "1.2.840.113549.1.7.3",
        "-signer",
        "kdh.pem",
        "-inkey",
        kdh_key.to_str().unwrap(),
        "-md",
        "sha256",
        "-nocerts",
        "-nosmimecap",
        "-outform",
        "DER",
        "-out",
        "token.der",
    ];
    common::openssl(dir.path(), &sign, true);
    let token = std::fs::read(dir.path().join("token.der")).unwrap();
    let parsed = Token::parse(&token).unwrap();
    assert_eq!(parsed.kind(), TokenKind::OnePassKeyToken);
    parsed.verify_signature(&pki.kdh_der).unwrap();

    // openssl signed with the real time: open at the real time (the fixtures' leaves are
    // valid 2025..2035; no CRL is attached, so the anchors' CRL check is not involved).
    let now = SystemTime::now();
    let expected = ExpectedFreshness::OnePass {
        max_skew: Duration::from_secs(600),
        after: None,
    };
    let opened = open_key_token(
        &pki.krd_key,
        &pki.krd_der,
        &pki.kdh,
        &pki.anchors,
        now,
        &expected,
        &token,
    )
    .unwrap();
    assert!(opened.key.same_material_as(&key));
    assert_eq!(opened.header, header);
    assert_eq!(opened.key_index, tr34_pkis::index(7));
    assert!(opened.signing_time.is_some());
}
