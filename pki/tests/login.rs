//! Operator login: openssl-made operator certificates and keys (clear and encrypted), every
//! refusal, and a signature made by the openssl command-line tool.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use keymother_pki::builder::{self, Issuance};
use keymother_pki::login::{
    CHALLENGE_LENGTH, LoginError, LoginResponse, login_content, sign_login, verify_login,
};
use keymother_pki::{Crl, PkiError, PrivateKey, Role, Subject, TrustAnchors};
use rsa::RsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;

const DEVICE_ID: &str = "KM-0001";
const CHALLENGE: [u8; CHALLENGE_LENGTH] = [0x5A; CHALLENGE_LENGTH];
const WINDOW: Duration = Duration::from_secs(300);

fn operator_key() -> PrivateKey {
    leaf_key("operator")
}

fn login(key: &PrivateKey, certificate: &[u8], signed_at: u64) -> LoginResponse {
    sign_login(key, certificate, DEVICE_ID, &CHALLENGE, at(signed_at)).unwrap()
}

fn check(response: &LoginResponse) -> Result<keymother_pki::login::VerifiedOperator, LoginError> {
    verify_login(
        &anchors(),
        None,
        DEVICE_ID,
        &CHALLENGE,
        response,
        now(),
        WINDOW,
    )
}

#[test]
fn valid_login_with_openssl_made_certificate_and_key() {
    let response = login(&operator_key(), &fixture("operator.der"), NOW_UNIX);
    assert_eq!(response.certificate, fixture("operator.der"));
    assert_eq!(response.challenge, CHALLENGE);
    assert_eq!(response.signed_at, NOW_UNIX);
    assert_eq!(response.signature.len(), 256);
    let operator = check(&response).unwrap();
    assert_eq!(operator.name, "operator");
    assert!(
        operator.subject.contains("CN=operator") && operator.subject.contains("O=keymother test"),
        "{}",
        operator.subject
    );
    let expected_serial = anchors()
        .verify(Role::Operator, &fixture("operator.der"), now(), None)
        .unwrap()
        .serial()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<String>();
    assert_eq!(operator.serial, expected_serial);
    assert_eq!(operator.not_after, at(2_051_222_400)); // 2035-01-01
    // Signatures are randomized (PSS salt), and each verifies.
    let again = login(&operator_key(), &fixture("operator.der"), NOW_UNIX);
    assert_ne!(again.signature, response.signature);
    check(&again).unwrap();
}

#[test]
fn valid_login_with_the_encrypted_key_and_a_pem_certificate() {
    let key = PrivateKey::from_pkcs8(
        &fixture("test-only-operator-encrypted.key"),
        Some(b"test-only-passphrase"),
    )
    .unwrap();
    let pem = der_to_pem("CERTIFICATE", &fixture("operator.der"));
    let response = login(&key, pem.as_bytes(), NOW_UNIX - 10);
    // The response carries DER whatever was given.
    assert_eq!(response.certificate, fixture("operator.der"));
    check(&response).unwrap();
}

#[test]
fn certificate_refusals() {
    let key = operator_key();
    // From another CA (the same key).
    let err = check(&login(&key, &fixture("operator-other-ca.der"), NOW_UNIX)).unwrap_err();
    assert!(
        matches!(&err, LoginError::Certificate(PkiError::UnknownIssuer { role: Role::Operator, issuer }) if issuer.contains("unrelated CA")),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("the operator certificate is refused"),
        "{err}"
    );
    // Expired, not yet valid.
    let err = check(&login(&key, &fixture("operator-expired.der"), NOW_UNIX)).unwrap_err();
    assert!(
        matches!(
            err,
            LoginError::Certificate(PkiError::Expired {
                subject: Subject::Leaf,
                ..
            })
        ),
        "{err:?}"
    );
    let err = check(&login(
        &key,
        &fixture("operator-not-yet-valid.der"),
        NOW_UNIX,
    ))
    .unwrap_err();
    assert!(
        matches!(
            err,
            LoginError::Certificate(PkiError::NotYetValid {
                subject: Subject::Leaf,
                ..
            })
        ),
        "{err:?}"
    );
    // A device or KDH certificate (signed with its own key) presented as an operator's.
    for (name, file, presented) in [
        ("device", "device.der", Role::TerminalDevice),
        ("kdh", "kdh.der", Role::KeyDistributionHost),
    ] {
        let err = check(&login(&leaf_key(name), &fixture(file), NOW_UNIX)).unwrap_err();
        assert!(
            matches!(
                err,
                LoginError::Certificate(PkiError::WrongRole {
                    expected: Role::Operator,
                    presented: p,
                }) if p == presented
            ),
            "{err:?}"
        );
    }
    // Garbage.
    let mut response = login(&key, &fixture("operator.der"), NOW_UNIX);
    response.certificate = b"not a certificate".to_vec();
    assert!(matches!(
        check(&response),
        Err(LoginError::Certificate(PkiError::Parse { .. }))
    ));
}

#[test]
fn revoked_operator_is_refused() {
    let ca_key = RsaPrivateKey::from_pkcs8_pem(
        std::str::from_utf8(&fixture("test-only-ca-operator.key")).unwrap(),
    )
    .unwrap();
    let serial = anchors()
        .verify(Role::Operator, &fixture("operator.der"), now(), None)
        .unwrap()
        .serial()
        .as_bytes()
        .to_vec();
    let crl = builder::crl(
        &fixture("ca-operator.pem"),
        &ca_key,
        7,
        at(NOW_UNIX - 86_400),
        at(NOW_UNIX + 86_400),
        &[(serial, at(NOW_UNIX - 3_600))],
    )
    .unwrap();
    let crl = Crl::parse(&crl).unwrap();
    let response = login(&operator_key(), &fixture("operator.der"), NOW_UNIX);
    let err = verify_login(
        &anchors(),
        Some(&crl),
        DEVICE_ID,
        &CHALLENGE,
        &response,
        now(),
        WINDOW,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            LoginError::Certificate(PkiError::Revoked {
                role: Role::Operator,
                ..
            })
        ),
        "{err:?}"
    );
    // With a CRL that does not list it, the same login passes.
    let empty = builder::crl(
        &fixture("ca-operator.pem"),
        &ca_key,
        8,
        at(NOW_UNIX - 86_400),
        at(NOW_UNIX + 86_400),
        &[],
    )
    .unwrap();
    let empty = Crl::parse(&empty).unwrap();
    verify_login(
        &anchors(),
        Some(&empty),
        DEVICE_ID,
        &CHALLENGE,
        &response,
        now(),
        WINDOW,
    )
    .unwrap();
}

#[test]
fn challenge_refusals() {
    let key = operator_key();
    let response = login(&key, &fixture("operator.der"), NOW_UNIX);
    // The appliance issued another challenge.
    let other = [0x11; CHALLENGE_LENGTH];
    let err = verify_login(
        &anchors(),
        None,
        DEVICE_ID,
        &other,
        &response,
        now(),
        WINDOW,
    )
    .unwrap_err();
    assert!(matches!(err, LoginError::ChallengeMismatch), "{err:?}");
    // A signature over another challenge, with the right challenge echoed.
    let mut forged = sign_login(&key, &fixture("operator.der"), DEVICE_ID, &other, now()).unwrap();
    forged.challenge = CHALLENGE;
    assert!(matches!(check(&forged), Err(LoginError::BadSignature)));
    // A signature for another device.
    let elsewhere =
        sign_login(&key, &fixture("operator.der"), "KM-0002", &CHALLENGE, now()).unwrap();
    assert!(matches!(check(&elsewhere), Err(LoginError::BadSignature)));
}

#[test]
fn signing_time_window_both_directions() {
    let key = operator_key();
    let window = WINDOW.as_secs();
    for signed_at in [NOW_UNIX - window, NOW_UNIX + window, NOW_UNIX] {
        check(&login(&key, &fixture("operator.der"), signed_at)).unwrap();
    }
    for signed_at in [NOW_UNIX - window - 1, NOW_UNIX + window + 1, 0, u64::MAX] {
        let response = if signed_at == u64::MAX {
            // Beyond SystemTime: the window is checked before the signature, so a changed
            // field shows the time refusal.
            let mut response = login(&key, &fixture("operator.der"), NOW_UNIX);
            response.signed_at = signed_at;
            response
        } else {
            login(&key, &fixture("operator.der"), signed_at)
        };
        let err = check(&response).unwrap_err();
        match &err {
            LoginError::OutsideWindow {
                signed_at: s,
                now: n,
                window: w,
            } => {
                assert_eq!((*s, *n, *w), (signed_at, NOW_UNIX, WINDOW));
            }
            other => panic!("{other:?}"),
        }
        let message = err.to_string();
        assert!(
            message.contains(&signed_at.to_string())
                && message.contains("2030-01-01T00:00:00Z")
                && message.contains("300 s allowed"),
            "{message}"
        );
    }
    // A signed_at changed after signing is a bad signature, not a time problem.
    let mut response = login(&key, &fixture("operator.der"), NOW_UNIX);
    response.signed_at += 1;
    assert!(matches!(check(&response), Err(LoginError::BadSignature)));
}

#[test]
fn tampered_signature_is_refused() {
    let mut response = login(&operator_key(), &fixture("operator.der"), NOW_UNIX);
    response.signature[100] ^= 0x01;
    assert!(matches!(check(&response), Err(LoginError::BadSignature)));
    response.signature.truncate(10);
    assert!(matches!(check(&response), Err(LoginError::BadSignature)));
    response.signature.clear();
    assert!(matches!(check(&response), Err(LoginError::BadSignature)));
}

#[test]
fn signing_refuses_a_key_that_is_not_the_certificates() {
    let err = sign_login(
        &leaf_key("kdh"),
        &fixture("operator.der"),
        DEVICE_ID,
        &CHALLENGE,
        now(),
    )
    .err()
    .unwrap();
    assert_eq!(
        err,
        PkiError::KeyMismatch {
            what: "operator certificate"
        }
    );
    let err = sign_login(
        &operator_key(),
        &fixture("operator.der"),
        DEVICE_ID,
        &CHALLENGE,
        std::time::UNIX_EPOCH - Duration::from_secs(1),
    )
    .err()
    .unwrap();
    assert!(matches!(err, PkiError::BadTime { .. }), "{err:?}");
}

#[test]
fn a_signature_made_by_the_openssl_cli_is_accepted_and_ours_verifies_there() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let content = login_content(DEVICE_ID, &CHALLENGE, NOW_UNIX - 5);
    std::fs::write(d.join("content.bin"), &content).unwrap();
    let key = fixture_path("test-only-operator.key");
    let Some(_) = openssl(
        d,
        &[
            "dgst",
            "-sha256",
            "-sign",
            key.to_str().unwrap(),
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:32",
            "-out",
            "sig.bin",
            "content.bin",
        ],
        true,
    ) else {
        return;
    };
    let response = LoginResponse {
        certificate: fixture("operator.der"),
        challenge: CHALLENGE,
        signed_at: NOW_UNIX - 5,
        signature: std::fs::read(d.join("sig.bin")).unwrap(),
        intermediates: Vec::new(),
    };
    assert_eq!(check(&response).unwrap().name, "operator");

    // The other way: openssl verifies our signature with the certificate's key.
    let ours = login(&operator_key(), &fixture("operator.der"), NOW_UNIX - 5);
    std::fs::write(d.join("ours.bin"), &ours.signature).unwrap();
    std::fs::write(
        d.join("operator.pem"),
        der_to_pem("CERTIFICATE", &fixture("operator.der")),
    )
    .unwrap();
    let (_, public, _) = openssl(
        d,
        &["x509", "-in", "operator.pem", "-pubkey", "-noout"],
        true,
    )
    .unwrap();
    std::fs::write(d.join("operator.pub"), public).unwrap();
    let (_, stdout, _) = openssl(
        d,
        &[
            "dgst",
            "-sha256",
            "-verify",
            "operator.pub",
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:32",
            "-signature",
            "ours.bin",
            "content.bin",
        ],
        true,
    )
    .unwrap();
    assert!(String::from_utf8_lossy(&stdout).contains("Verified OK"));
}

#[test]
fn project_built_operator_certificate_and_generated_key() {
    // The project's own operator CA (from the test-only CA key) and a key generated here.
    let ca_key = RsaPrivateKey::from_pkcs8_pem(
        std::str::from_utf8(&fixture("test-only-ca-operator.key")).unwrap(),
    )
    .unwrap();
    let good = Issuance {
        serial: vec![0x07],
        not_before: at(1_735_689_600),
        not_after: at(2_051_222_400),
    };
    let ca_name = builder::name("CN=keymother project operator CA,O=keymother test").unwrap();
    let ca = builder::ca_certificate(&ca_name, &ca_key, &good).unwrap();
    let anchors =
        TrustAnchors::new(&fixture("ca-device.pem"), &fixture("ca-kdh.pem"), &ca).unwrap();
    let key = PrivateKey::generate(2048).unwrap();
    let leaf = builder::leaf_certificate(
        Role::Operator,
        &builder::name("CN=Alice Example,O=keymother test").unwrap(),
        &key.public_key(),
        &ca,
        &ca_key,
        &Issuance {
            serial: vec![0x01, 0x23],
            ..good
        },
    )
    .unwrap();
    let response = sign_login(&key, &leaf, DEVICE_ID, &CHALLENGE, now()).unwrap();
    let operator = verify_login(
        &anchors,
        None,
        DEVICE_ID,
        &CHALLENGE,
        &response,
        now(),
        WINDOW,
    )
    .unwrap();
    assert_eq!(operator.name, "Alice Example");
    assert_eq!(operator.serial, "0123");
    // The openssl-made operator certificate is not trusted under the project's operator CA.
    let err = verify_login(
        &anchors,
        None,
        DEVICE_ID,
        &CHALLENGE,
        &login(&operator_key(), &fixture("operator.der"), NOW_UNIX),
        now(),
        WINDOW,
    )
    .unwrap_err();
    assert!(matches!(err, LoginError::Certificate(_)), "{err:?}");
}
