//! Private keys: openssl-made PKCS#8 (clear and encrypted) in, ours out and read by openssl,
//! every refusal with its own error; certificate requests signed here, checked and issued by
//! openssl, and issued by the project's builder.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::OnceLock;
use std::time::SystemTime;

use common::*;
use keymother_pki::builder::{self, Issuance};
use keymother_pki::keys::{certificate_request, certificate_request_pem};
use keymother_pki::{PkiError, PrivateKey, Role};
use proptest::prelude::*;
use rsa::RsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;

const PASSPHRASE: &[u8] = b"test-only-passphrase";

fn public_pem(key: &PrivateKey) -> String {
    key.public_key()
        .to_public_key_pem(der::pem::LineEnding::LF)
        .unwrap()
}

#[test]
fn openssl_made_clear_keys_load_and_match_their_certificates() {
    for (name, role, cert) in [
        ("device", Role::TerminalDevice, "device.der"),
        ("kdh", Role::KeyDistributionHost, "kdh.der"),
        ("operator", Role::Operator, "operator.der"),
    ] {
        let key = leaf_key(name);
        assert_eq!(key.bits(), 2048);
        assert!(key.matches(&verified(role, cert)), "{name}");
        // And not another role's certificate.
        if name != "kdh" {
            assert!(!key.matches(&verified(Role::KeyDistributionHost, "kdh.der")));
        }
    }
}

#[test]
fn openssl_made_encrypted_key_loads_with_the_passphrase() {
    let encrypted = fixture("test-only-operator-encrypted.key");
    assert!(encrypted.starts_with(b"-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    let key = PrivateKey::from_pkcs8(&encrypted, Some(PASSPHRASE)).unwrap();
    assert_eq!(key.public_key(), leaf_key("operator").public_key());
    assert!(key.matches(&verified(Role::Operator, "operator.der")));
}

#[test]
fn encrypted_key_refusals_are_each_named() {
    let encrypted = fixture("test-only-operator-encrypted.key");
    assert_eq!(
        PrivateKey::from_pkcs8(&encrypted, None).err(),
        Some(PkiError::PassphraseRequired)
    );
    let err = PrivateKey::from_pkcs8(&encrypted, Some(b"wrong passphrase")).err();
    assert_eq!(err, Some(PkiError::WrongPassphrase));
    assert!(err.unwrap().to_string().contains("wrong passphrase"));
    // An empty passphrase is a wrong one too.
    assert_eq!(
        PrivateKey::from_pkcs8(&encrypted, Some(b"")).err(),
        Some(PkiError::WrongPassphrase)
    );
    // Damaged ciphertext: the same answer (the block is not decryptable either way).
    let mut der = pem_to_der(&encrypted);
    let last = der.len() - 20;
    der[last] ^= 0x55;
    assert_eq!(
        PrivateKey::from_pkcs8(&der, Some(PASSPHRASE)).err(),
        Some(PkiError::WrongPassphrase)
    );
    // A passphrase for a key stored in clear is refused, clearly.
    let err = PrivateKey::from_pkcs8(&fixture("test-only-operator.key"), Some(PASSPHRASE)).err();
    assert_eq!(err, Some(PkiError::PassphraseNotNeeded));
    assert!(err.unwrap().to_string().contains("not encrypted"));
}

#[test]
fn der_forms_load_too() {
    let key = leaf_key("device");
    let der = key.to_pkcs8_der().unwrap();
    let again = PrivateKey::from_pkcs8(&der, None).unwrap();
    assert_eq!(again.public_key(), key.public_key());
    // Encrypted DER.
    let encrypted_der = pem_to_der(&fixture("test-only-operator-encrypted.key"));
    let key = PrivateKey::from_pkcs8(&encrypted_der, Some(PASSPHRASE)).unwrap();
    assert_eq!(key.public_key(), leaf_key("operator").public_key());
    assert_eq!(
        PrivateKey::from_pkcs8(&encrypted_der, None).err(),
        Some(PkiError::PassphraseRequired)
    );
}

#[test]
fn pkcs1_garbage_and_other_algorithms_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key_path = fixture_path("test-only-kdh.key");
    let key_path = key_path.to_str().unwrap();
    // Garbage, PEM or not.
    for bytes in [
        &b"garbage"[..],
        b"-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n",
        &fixture("kdh.der"),
    ] {
        let err = PrivateKey::from_pkcs8(bytes, None).err();
        assert!(matches!(err, Some(PkiError::NotPkcs8 { .. })), "{err:?}");
    }
    let err = PrivateKey::from_pkcs8(&fixture("ca-kdh.pem"), None)
        .err()
        .unwrap();
    assert!(err.to_string().contains("\"CERTIFICATE\""), "{err}");

    let Some(_) = openssl(
        d,
        &["rsa", "-in", key_path, "-traditional", "-out", "pkcs1.pem"],
        true,
    ) else {
        return;
    };
    let pkcs1 = std::fs::read(d.join("pkcs1.pem")).unwrap();
    assert!(pkcs1.starts_with(b"-----BEGIN RSA PRIVATE KEY-----"));
    let err = PrivateKey::from_pkcs8(&pkcs1, None).err().unwrap();
    assert_eq!(err, PkiError::Pkcs1PrivateKey);
    assert!(
        err.to_string().starts_with(
            "PKCS#1 'RSA PRIVATE KEY' is not accepted; convert with openssl pkcs8 -topk8"
        ),
        "{err}"
    );
    // PKCS#1 DER, and PKCS#1 encrypted the traditional way.
    openssl(
        d,
        &[
            "rsa",
            "-in",
            key_path,
            "-traditional",
            "-outform",
            "DER",
            "-out",
            "pkcs1.der",
        ],
        true,
    );
    let pkcs1_der = std::fs::read(d.join("pkcs1.der")).unwrap();
    assert_eq!(
        PrivateKey::from_pkcs8(&pkcs1_der, None).err(),
        Some(PkiError::Pkcs1PrivateKey)
    );
    openssl(
        d,
        &[
            "rsa",
            "-in",
            key_path,
            "-traditional",
            "-aes256",
            "-passout",
            "pass:x",
            "-out",
            "pkcs1-enc.pem",
        ],
        true,
    );
    let pkcs1_enc = std::fs::read(d.join("pkcs1-enc.pem")).unwrap();
    assert_eq!(
        PrivateKey::from_pkcs8(&pkcs1_enc, Some(b"x")).err(),
        Some(PkiError::Pkcs1PrivateKey)
    );

    // Not RSA.
    openssl(
        d,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "ec.pem",
        ],
        true,
    );
    let err = PrivateKey::from_pkcs8(&std::fs::read(d.join("ec.pem")).unwrap(), None)
        .err()
        .unwrap();
    assert!(
        matches!(&err, PkiError::PrivateKeyNotRsa { algorithm } if algorithm.contains("EC")),
        "{err:?}"
    );
    openssl(
        d,
        &["genpkey", "-algorithm", "ED25519", "-out", "ed.pem"],
        true,
    );
    let err = PrivateKey::from_pkcs8(&std::fs::read(d.join("ed.pem")).unwrap(), None)
        .err()
        .unwrap();
    assert!(err.to_string().contains("not an RSA key"), "{err}");

    // Too short (1024 bits), in clear and encrypted.
    openssl(
        d,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:1024",
            "-out",
            "short.pem",
        ],
        true,
    );
    let err = PrivateKey::from_pkcs8(&std::fs::read(d.join("short.pem")).unwrap(), None)
        .err()
        .unwrap();
    assert_eq!(
        err,
        PkiError::KeyTooShort {
            what: "private key".into(),
            bits: 1024
        }
    );
    assert!(err.to_string().contains("at least 2048"), "{err}");
    openssl(
        d,
        &[
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-in",
            "short.pem",
            "-passout",
            "pass:x",
            "-out",
            "short-enc.pem",
        ],
        true,
    );
    assert!(matches!(
        PrivateKey::from_pkcs8(&std::fs::read(d.join("short-enc.pem")).unwrap(), Some(b"x")),
        Err(PkiError::KeyTooShort { bits: 1024, .. })
    ));
}

#[test]
fn openssl_encryptions_of_every_common_kind_load() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key_path = fixture_path("test-only-kdh.key");
    let key_path = key_path.to_str().unwrap();
    let expected = leaf_key("kdh").public_key();
    for (file, args) in [
        ("pkey-aes256.pem", &["pkey", "-aes256"][..]),
        ("pkcs8-scrypt.pem", &["pkcs8", "-topk8", "-scrypt"][..]),
        (
            "pkcs8-aes128.pem",
            &[
                "pkcs8",
                "-topk8",
                "-v2",
                "aes-128-cbc",
                "-v2prf",
                "hmacWithSHA512",
            ][..],
        ),
    ] {
        let mut all: Vec<&str> = args.to_vec();
        all.extend_from_slice(&["-in", key_path, "-passout", "pass:p4ss", "-out", file]);
        let Some(_) = openssl(d, &all, true) else {
            return;
        };
        let bytes = std::fs::read(d.join(file)).unwrap();
        let key =
            PrivateKey::from_pkcs8(&bytes, Some(b"p4ss")).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(key.public_key(), expected, "{file}");
    }
    // PBES1 (openssl -v1) is refused as such, not as a wrong passphrase.
    openssl(
        d,
        &[
            "pkcs8",
            "-topk8",
            "-v1",
            "PBE-SHA1-3DES",
            "-in",
            key_path,
            "-passout",
            "pass:p4ss",
            "-out",
            "v1.pem",
        ],
        true,
    );
    let err = PrivateKey::from_pkcs8(&std::fs::read(d.join("v1.pem")).unwrap(), Some(b"p4ss"))
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            PkiError::UnsupportedKeyEncryption { .. } | PkiError::NotPkcs8 { .. }
        ),
        "{err:?}"
    );
}

#[test]
fn our_encrypted_pem_is_read_by_openssl_and_by_us() {
    let key = leaf_key("operator");
    let pem = key.to_encrypted_pkcs8_pem(b"s3cret passphrase").unwrap();
    assert!(
        pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"),
        "{pem}"
    );
    let again = PrivateKey::from_pkcs8(pem.as_bytes(), Some(b"s3cret passphrase")).unwrap();
    assert_eq!(again.public_key(), key.public_key());
    assert_eq!(
        PrivateKey::from_pkcs8(pem.as_bytes(), Some(b"s3cret passphrasf")).err(),
        Some(PkiError::WrongPassphrase)
    );
    // Two encryptions of the same key differ (fresh salt and IV).
    assert_ne!(
        pem,
        key.to_encrypted_pkcs8_pem(b"s3cret passphrase").unwrap()
    );

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("enc.pem"), &pem).unwrap();
    let Some((_, stdout, _)) = openssl(
        d,
        &[
            "pkey",
            "-in",
            "enc.pem",
            "-passin",
            "pass:s3cret passphrase",
            "-pubout",
        ],
        true,
    ) else {
        return;
    };
    assert_eq!(String::from_utf8(stdout).unwrap(), public_pem(&key));
    // openssl also says what the encryption is.
    let (_, parsed, _) = openssl(d, &["asn1parse", "-in", "enc.pem"], true).unwrap();
    let parsed = String::from_utf8(parsed).unwrap();
    assert!(
        parsed.contains("PBES2") && parsed.contains(":scrypt") && parsed.contains("aes-256-cbc"),
        "{parsed}"
    );
    let (ok, _, _) = openssl(
        d,
        &["pkey", "-in", "enc.pem", "-passin", "pass:wrong", "-noout"],
        false,
    )
    .unwrap();
    assert!(!ok, "openssl accepted a wrong passphrase");
    // And the clear DER is what openssl makes of the PEM key.
    let (_, openssl_der, _) = openssl(
        d,
        &[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            "enc.pem",
            "-passin",
            "pass:s3cret passphrase",
            "-outform",
            "DER",
        ],
        true,
    )
    .unwrap();
    assert_eq!(&openssl_der[..], &key.to_pkcs8_der().unwrap()[..]);
}

/// A few generated keys, shared by the property tests (generation dominates their cost).
fn generated_keys() -> &'static [PrivateKey] {
    static KEYS: OnceLock<Vec<PrivateKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        [2048, 2056, 3072]
            .into_iter()
            .map(|bits| {
                let key = PrivateKey::generate(bits).unwrap();
                assert_eq!(key.bits(), bits);
                assert_eq!(key.public_key().e(), &rsa::BoxedUint::from(65_537u32));
                key
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn pkcs8_der_round_trips(index in 0usize..3) {
        let key = &generated_keys()[index];
        let der = key.to_pkcs8_der().unwrap();
        let again = PrivateKey::from_pkcs8(&der, None).unwrap();
        prop_assert_eq!(again.public_key(), key.public_key());
        prop_assert_eq!(&again.to_pkcs8_der().unwrap()[..], &der[..]);
        // And the rsa crate reads it as the same private key.
        let rsa_key = RsaPrivateKey::from_pkcs8_der(&der).unwrap();
        prop_assert_eq!(rsa_key.to_public_key(), key.public_key());
    }

    #[test]
    fn encrypted_pem_round_trips(
        index in 0usize..3,
        passphrase in proptest::collection::vec(any::<u8>(), 1..40),
    ) {
        let key = &generated_keys()[index];
        let pem = key.to_encrypted_pkcs8_pem(&passphrase).unwrap();
        let again = PrivateKey::from_pkcs8(pem.as_bytes(), Some(&passphrase)).unwrap();
        prop_assert_eq!(&again.to_pkcs8_der().unwrap()[..], &key.to_pkcs8_der().unwrap()[..]);
        let mut wrong = passphrase.clone();
        wrong[0] ^= 1;
        prop_assert_eq!(
            PrivateKey::from_pkcs8(pem.as_bytes(), Some(&wrong)).err(),
            Some(PkiError::WrongPassphrase)
        );
    }
}

fn kdh_name() -> x509_cert::name::Name {
    builder::name("CN=keymother appliance KM-0001,O=keymother test").unwrap()
}

#[test]
fn csr_is_verified_and_signed_by_openssl_and_the_result_is_a_kdh_certificate() {
    let key = &generated_keys()[0];
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pem = certificate_request_pem(key, &kdh_name()).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----\n"));
    // PEM and DER say the same.
    assert_eq!(
        pem_to_der(pem.as_bytes()),
        certificate_request(key, &kdh_name()).unwrap()
    );
    std::fs::write(d.join("kdh.csr"), &pem).unwrap();
    let Some((_, text, stderr)) = openssl(
        d,
        &["req", "-in", "kdh.csr", "-verify", "-noout", "-text"],
        true,
    ) else {
        return;
    };
    assert!(stderr.contains("verify OK"), "{stderr}");
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains("CN = keymother appliance KM-0001")
            && text.contains("Digital Signature")
            && text.contains("sha256WithRSAEncryption"),
        "{text}"
    );
    std::fs::write(
        d.join("ext.cnf"),
        "[kdh_ext]\nbasicConstraints = critical, CA:FALSE\n\
         keyUsage = critical, digitalSignature\nauthorityKeyIdentifier = keyid\n",
    )
    .unwrap();
    let ca = fixture_path("ca-kdh.pem");
    let ca_key = fixture_path("test-only-ca-kdh.key");
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "kdh.csr",
            "-CA",
            ca.to_str().unwrap(),
            "-CAkey",
            ca_key.to_str().unwrap(),
            "-set_serial",
            "0x4242",
            "-days",
            "3650",
            "-sha256",
            "-extfile",
            "ext.cnf",
            "-extensions",
            "kdh_ext",
            "-outform",
            "DER",
            "-out",
            "kdh.der",
        ],
        true,
    );
    let cert = std::fs::read(d.join("kdh.der")).unwrap();
    // openssl x509 -req dates the certificate from the real now.
    let verified = anchors()
        .verify(Role::KeyDistributionHost, &cert, SystemTime::now(), None)
        .unwrap();
    assert!(key.matches(&verified));
    assert!(!leaf_key("kdh").matches(&verified));
    // A tampered request fails openssl's check.
    let mut der = pem_to_der(pem.as_bytes());
    let last = der.len() - 5;
    der[last] ^= 1;
    std::fs::write(d.join("bad.csr"), der_to_pem("CERTIFICATE REQUEST", &der)).unwrap();
    // (OpenSSL 3.0 exits 0 here but says so; later versions exit 1.)
    let (ok, _, stderr) =
        openssl(d, &["req", "-in", "bad.csr", "-verify", "-noout"], false).unwrap();
    assert!(!ok || stderr.contains("verify failure"), "{stderr}");
}

#[test]
fn csr_is_issued_by_the_project_builder_without_openssl() {
    let key = &generated_keys()[1];
    let csr = certificate_request(key, &kdh_name()).unwrap();
    let ca_key = RsaPrivateKey::from_pkcs8_pem(
        std::str::from_utf8(&fixture("test-only-ca-kdh.key")).unwrap(),
    )
    .unwrap();
    let issuance = Issuance {
        serial: vec![0x51],
        not_before: at(1_735_689_600),
        not_after: at(2_051_222_400),
    };
    let cert = builder::leaf_certificate_from_request(
        Role::KeyDistributionHost,
        &csr,
        &fixture("ca-kdh.pem"),
        &ca_key,
        &issuance,
    )
    .unwrap();
    let verified = anchors()
        .verify(Role::KeyDistributionHost, &cert, now(), None)
        .unwrap();
    assert!(key.matches(&verified));
    assert_eq!(verified.subject(), &kdh_name());
    // PEM requests too; a request with a broken signature is refused.
    let pem = certificate_request_pem(key, &kdh_name()).unwrap();
    builder::leaf_certificate_from_request(
        Role::KeyDistributionHost,
        pem.as_bytes(),
        &fixture("ca-kdh.pem"),
        &ca_key,
        &issuance,
    )
    .unwrap();
    let mut bad = csr.clone();
    let last = bad.len() - 3;
    bad[last] ^= 1;
    assert_eq!(
        builder::leaf_certificate_from_request(
            Role::KeyDistributionHost,
            &bad,
            &fixture("ca-kdh.pem"),
            &ca_key,
            &issuance,
        )
        .err(),
        Some(PkiError::BadRequestSignature)
    );
}
