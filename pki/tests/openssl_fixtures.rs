//! Certificates and CRLs made by the openssl command-line tool (`tests/fixtures/make.sh`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keymother_pki::{Crl, PkiError, Role, Subject, TrustAnchors};

/// 2030-01-01T00:00:00Z: inside the good leaves' validity (2025..2035) and the CRL's
/// (2029-12-01..2030-02-01).
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_893_456_000)
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn anchors() -> TrustAnchors {
    TrustAnchors::new(
        &fixture("ca-device.pem"),
        &fixture("ca-kdh.pem"),
        &fixture("ca-operator.pem"),
    )
    .unwrap()
}

fn crl() -> Crl {
    Crl::parse(&fixture("ca-device.crl.pem")).unwrap()
}

#[test]
fn each_good_leaf_verifies_for_its_role() {
    let anchors = anchors();
    for (role, file, cn) in [
        (Role::TerminalDevice, "device.der", "device"),
        (Role::KeyDistributionHost, "kdh.der", "kdh"),
        (Role::Operator, "operator.der", "operator"),
    ] {
        let v = anchors.verify(role, &fixture(file), now(), None).unwrap();
        assert_eq!(v.role(), role);
        assert!(
            v.subject().to_string().contains(&format!("CN={cn}")),
            "{}",
            v.subject()
        );
        assert!(!v.serial().as_bytes().is_empty());
        use rsa::traits::PublicKeyParts;
        assert_eq!(v.public_key().n().bits(), 2048);
    }
}

#[test]
fn device_leaf_with_crl_verifies() {
    let anchors = anchors();
    anchors
        .verify(
            Role::TerminalDevice,
            &fixture("device.der"),
            now(),
            Some(&crl()),
        )
        .unwrap();
    // DER CRL too, and a PEM leaf.
    let crl_der = Crl::parse(&fixture("ca-device.crl.der")).unwrap();
    anchors
        .verify(
            Role::TerminalDevice,
            &fixture("device.der"),
            now(),
            Some(&crl_der),
        )
        .unwrap();
}

#[test]
fn rsa_pss_leaf_verifies() {
    anchors()
        .verify(
            Role::TerminalDevice,
            &fixture("device-pss.der"),
            now(),
            None,
        )
        .unwrap();
}

#[test]
fn expired_leaf_is_refused_with_dates() {
    let err = anchors()
        .verify(
            Role::TerminalDevice,
            &fixture("device-expired.der"),
            now(),
            None,
        )
        .unwrap_err();
    assert!(
        matches!(&err, PkiError::Expired { subject: Subject::Leaf, not_after, .. } if not_after.starts_with("2029-01-01")),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("expired") && msg.contains("2029-01-01") && msg.contains("2030-01-01"),
        "{msg}"
    );
}

#[test]
fn not_yet_valid_leaf_is_refused_with_dates() {
    let err = anchors()
        .verify(
            Role::TerminalDevice,
            &fixture("device-not-yet-valid.der"),
            now(),
            None,
        )
        .unwrap_err();
    assert!(
        matches!(&err, PkiError::NotYetValid { subject: Subject::Leaf, not_before, .. } if not_before.starts_with("2031-01-01")),
        "{err:?}"
    );
    assert!(err.to_string().contains("not yet valid"), "{err}");
}

#[test]
fn ca_validity_is_checked_too() {
    // 2045: the good leaf has expired and so has its CA (2044); the CA is checked first.
    let later = UNIX_EPOCH + Duration::from_secs(2_366_841_600);
    let err = anchors()
        .verify(Role::TerminalDevice, &fixture("device.der"), later, None)
        .unwrap_err();
    assert!(
        matches!(
            err,
            PkiError::Expired {
                subject: Subject::Ca,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn wrong_key_usage_is_refused() {
    let err = anchors()
        .verify(
            Role::TerminalDevice,
            &fixture("device-wrong-usage.der"),
            now(),
            None,
        )
        .unwrap_err();
    assert_eq!(
        err,
        PkiError::KeyUsageMissing {
            role: Role::TerminalDevice,
            required: "keyEncipherment",
            present: "dataEncipherment".into()
        }
    );
}

#[test]
fn revoked_leaf_is_refused() {
    let err = anchors()
        .verify(
            Role::TerminalDevice,
            &fixture("device-revoked.der"),
            now(),
            Some(&crl()),
        )
        .unwrap_err();
    assert!(
        matches!(
            &err,
            PkiError::Revoked {
                role: Role::TerminalDevice,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("revoked"), "{err}");
    // Without the CRL it would pass: the refusal is the CRL's doing.
    anchors()
        .verify(
            Role::TerminalDevice,
            &fixture("device-revoked.der"),
            now(),
            None,
        )
        .unwrap();
}

#[test]
fn every_role_mismatch_names_both_roles() {
    let anchors = anchors();
    let leaves = [
        (Role::TerminalDevice, "device.der"),
        (Role::KeyDistributionHost, "kdh.der"),
        (Role::Operator, "operator.der"),
    ];
    for (presented, file) in leaves {
        for expected in Role::ALL {
            if expected == presented {
                continue;
            }
            let err = anchors
                .verify(expected, &fixture(file), now(), None)
                .unwrap_err();
            assert_eq!(
                err,
                PkiError::WrongRole {
                    expected,
                    presented
                }
            );
            let msg = err.to_string();
            assert!(
                msg.contains(&expected.to_string()) && msg.contains(&presented.to_string()),
                "{msg}"
            );
        }
    }
}

#[test]
fn leaf_from_an_unknown_ca_is_refused() {
    let err = anchors()
        .verify(
            Role::TerminalDevice,
            &fixture("device-other-ca.der"),
            now(),
            None,
        )
        .unwrap_err();
    assert!(
        matches!(&err, PkiError::UnknownIssuer { role: Role::TerminalDevice, issuer } if issuer.contains("unrelated CA")),
        "{err:?}"
    );
}

#[test]
fn leaf_from_an_impostor_ca_with_the_same_name_is_refused() {
    let err = anchors()
        .verify(
            Role::TerminalDevice,
            &fixture("device-impostor.der"),
            now(),
            None,
        )
        .unwrap_err();
    assert_eq!(
        err,
        PkiError::BadSignature {
            what: "terminal device certificate".into(),
            role: Role::TerminalDevice
        }
    );
}

#[test]
fn flipped_signature_byte_is_refused() {
    let mut leaf = fixture("device.der");
    let last = leaf.len() - 10;
    leaf[last] ^= 0x01;
    let err = anchors()
        .verify(Role::TerminalDevice, &leaf, now(), None)
        .unwrap_err();
    assert_eq!(
        err,
        PkiError::BadSignature {
            what: "terminal device certificate".into(),
            role: Role::TerminalDevice
        }
    );
}

#[test]
fn tampered_tbs_is_refused() {
    // Change a byte of the subject's CN ("device" -> "devicf") inside the signed part.
    let mut leaf = fixture("device.der");
    let pos = leaf.windows(6).rposition(|w| w == b"device").unwrap();
    leaf[pos + 5] = b'f';
    let err = anchors()
        .verify(Role::TerminalDevice, &leaf, now(), None)
        .unwrap_err();
    assert!(matches!(err, PkiError::BadSignature { .. }), "{err:?}");
}

#[test]
fn crl_checks() {
    let anchors = anchors();
    // Out of date.
    let stale = Crl::parse(&fixture("ca-device-stale.crl.pem")).unwrap();
    let err = anchors
        .verify(
            Role::TerminalDevice,
            &fixture("device.der"),
            now(),
            Some(&stale),
        )
        .unwrap_err();
    assert!(matches!(err, PkiError::CrlOutOfDate { .. }), "{err:?}");
    // Not yet valid (thisUpdate 2029-12-01).
    let before = UNIX_EPOCH + Duration::from_secs(1_893_456_000 - 40 * 86_400);
    let err = anchors
        .check_crl(Role::TerminalDevice, &crl(), before)
        .unwrap_err();
    assert!(matches!(err, PkiError::CrlNotYetValid { .. }), "{err:?}");
    // Issued by another role's CA.
    let kdh_crl = Crl::parse(&fixture("ca-kdh.crl.pem")).unwrap();
    let err = anchors
        .verify(
            Role::TerminalDevice,
            &fixture("device.der"),
            now(),
            Some(&kdh_crl),
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            PkiError::CrlWrongIssuer {
                role: Role::TerminalDevice,
                ..
            }
        ),
        "{err:?}"
    );
    // Bad signature.
    let mut der = fixture("ca-device.crl.der");
    let last = der.len() - 10;
    der[last] ^= 0x01;
    let tampered = Crl::parse(&der).unwrap();
    let err = anchors
        .check_crl(Role::TerminalDevice, &tampered, now())
        .unwrap_err();
    assert_eq!(
        err,
        PkiError::BadSignature {
            what: "CRL".into(),
            role: Role::TerminalDevice
        }
    );
}

#[test]
fn anchors_must_be_separate_cas() {
    let err = TrustAnchors::new(
        &fixture("ca-device.pem"),
        &fixture("ca-device.pem"),
        &fixture("ca-operator.pem"),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            PkiError::SharedAnchor {
                first: Role::TerminalDevice,
                second: Role::KeyDistributionHost,
                ..
            }
        ),
        "{err:?}"
    );
    // A leaf is not a CA.
    let leaf_pem = fixture("device.der");
    let err = TrustAnchors::new(
        &leaf_pem,
        &fixture("ca-kdh.pem"),
        &fixture("ca-operator.pem"),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            PkiError::BadAnchor {
                role: Role::TerminalDevice,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn garbage_is_a_parse_error() {
    let err = anchors()
        .verify(Role::Operator, b"not a certificate", now(), None)
        .unwrap_err();
    assert!(
        matches!(
            err,
            PkiError::Parse {
                what: "certificate",
                ..
            }
        ),
        "{err:?}"
    );
    // Every truncation of a good certificate and CRL is an error, never a panic.
    let anchors = anchors();
    let leaf = fixture("device.der");
    for len in 0..leaf.len() {
        assert!(
            anchors
                .verify(Role::TerminalDevice, &leaf[..len], now(), None)
                .is_err()
        );
    }
    let crl = fixture("ca-device.crl.der");
    for len in 0..crl.len() {
        assert!(Crl::parse(&crl[..len]).is_err());
    }
    assert!(matches!(
        Crl::parse(b"\x30\x03\x02\x01\x00"),
        Err(PkiError::Parse { .. })
    ));
}

#[test]
fn subject_names_matches_common_name_or_serial_number_exactly() {
    let device = anchors()
        .verify(Role::TerminalDevice, &fixture("device.der"), now(), None)
        .unwrap();
    assert!(device.subject_names("device"));
    assert!(!device.subject_names("Device"));
    assert!(!device.subject_names("keymother test")); // the O, not a CN
    assert!(!device.subject_names("dev"));
}
