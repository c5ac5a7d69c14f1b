//! Certificates and CRLs made by keymother itself (`keymother_pki::builder`), tested both
//! ways: keymother verifies them, and so does the openssl command-line tool where installed;
//! keymother also issues under a CA made by openssl.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use der::{Decode, EncodePem};
use keymother_pki::builder::{self, Issuance};
use keymother_pki::{Crl, PkiError, Role, TrustAnchors};
use rsa::RsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use x509_cert::Certificate;
use x509_cert::crl::CertificateList;

const NOW_UNIX: u64 = 1_893_456_000; // 2030-01-01T00:00:00Z

fn at(unix: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(unix)
}

fn now() -> SystemTime {
    at(NOW_UNIX)
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The test-only CA keys made by make.sh (public test data).
fn test_key(role: Role) -> RsaPrivateKey {
    let file = match role {
        Role::TerminalDevice => "test-only-ca-device.key",
        Role::KeyDistributionHost => "test-only-ca-kdh.key",
        Role::Operator => "test-only-ca-operator.key",
    };
    RsaPrivateKey::from_pkcs8_pem(std::str::from_utf8(&fixture(file)).unwrap()).unwrap()
}

/// A leaf's public key, taken from an openssl-made leaf (no key generation in the tests).
fn leaf_key(role: Role) -> rsa::RsaPublicKey {
    let file = match role {
        Role::TerminalDevice => "device.der",
        Role::KeyDistributionHost => "kdh.der",
        Role::Operator => "operator.der",
    };
    let cert = Certificate::from_der(&fixture(file)).unwrap();
    let spki = der::Encode::to_der(cert.tbs_certificate().subject_public_key_info()).unwrap();
    rsa::pkcs8::DecodePublicKey::from_public_key_der(&spki).unwrap()
}

fn issuance(serial: u8, from: u64, until: u64) -> Issuance {
    Issuance {
        serial: vec![serial],
        not_before: at(from),
        not_after: at(until),
    }
}

fn good(serial: u8) -> Issuance {
    // 2025-01-01 .. 2035-01-01
    issuance(serial, 1_735_689_600, 2_051_222_400)
}

fn project_ca(role: Role) -> Vec<u8> {
    let cn = match role {
        Role::TerminalDevice => "keymother project terminal CA",
        Role::KeyDistributionHost => "keymother project KDH CA",
        Role::Operator => "keymother project operator CA",
    };
    let name = builder::name(&format!("CN={cn},O=keymother test")).unwrap();
    builder::ca_certificate(&name, &test_key(role), &good(1)).unwrap()
}

fn project_leaf(role: Role, issuer: &[u8], serial: u8) -> Vec<u8> {
    let name = builder::name(&format!("CN=project {role} {serial},O=keymother test")).unwrap();
    builder::leaf_certificate(
        role,
        &name,
        &leaf_key(role),
        issuer,
        &test_key(role),
        &good(serial),
    )
    .unwrap()
}

fn pem_certificate(der: &[u8]) -> String {
    Certificate::from_der(der)
        .unwrap()
        .to_pem(der::pem::LineEnding::LF)
        .unwrap()
}

/// `openssl verify` at the tests' instant; None when openssl is not installed.
fn openssl_verify(
    dir: &Path,
    ca: &[u8],
    leaf: &[u8],
    crl: Option<&[u8]>,
) -> Option<(bool, String)> {
    std::fs::write(dir.join("ca.pem"), pem_certificate(ca)).unwrap();
    std::fs::write(dir.join("leaf.pem"), pem_certificate(leaf)).unwrap();
    let mut cmd = Command::new("openssl");
    cmd.arg("verify")
        .arg("-attime")
        .arg(NOW_UNIX.to_string())
        .arg("-CAfile")
        .arg(dir.join("ca.pem"));
    if let Some(crl) = crl {
        let pem = <CertificateList>::from_der(crl)
            .unwrap()
            .to_pem(der::pem::LineEnding::LF)
            .unwrap();
        std::fs::write(dir.join("crl.pem"), pem).unwrap();
        cmd.arg("-crl_check")
            .arg("-CRLfile")
            .arg(dir.join("crl.pem"));
    }
    let out = match cmd.arg(dir.join("leaf.pem")).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("openssl not installed: skipping the openssl side");
            return None;
        }
        Err(e) => panic!("openssl: {e}"),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), text))
}

#[test]
fn project_certificates_verify_here_and_in_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let cas: Vec<Vec<u8>> = Role::ALL.iter().map(|&r| project_ca(r)).collect();
    let anchors = TrustAnchors::new(&cas[0], &cas[1], &cas[2]).unwrap();
    for (i, role) in Role::ALL.into_iter().enumerate() {
        let leaf = project_leaf(role, &cas[i], 10 + i as u8);
        let v = anchors.verify(role, &leaf, now(), None).unwrap();
        assert!(
            v.subject().to_string().contains("project"),
            "{}",
            v.subject()
        );
        // Role separation holds for the project's own certificates too.
        for other in Role::ALL {
            if other != role {
                assert_eq!(
                    anchors.verify(other, &leaf, now(), None).unwrap_err(),
                    PkiError::WrongRole {
                        expected: other,
                        presented: role
                    }
                );
            }
        }
        if let Some((ok, text)) = openssl_verify(dir.path(), &cas[i], &leaf, None) {
            assert!(
                ok && text.contains("OK"),
                "openssl refused the project's {role} certificate: {text}"
            );
        }
    }
}

#[test]
fn project_leaf_under_an_openssl_ca_verifies_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let ca = fixture("ca-device.pem");
    let leaf = project_leaf(Role::TerminalDevice, &ca, 0x42);
    let anchors =
        TrustAnchors::new(&ca, &fixture("ca-kdh.pem"), &fixture("ca-operator.pem")).unwrap();
    anchors
        .verify(Role::TerminalDevice, &leaf, now(), None)
        .unwrap();
    let ca_der = der::Document::from_pem(std::str::from_utf8(&ca).unwrap())
        .unwrap()
        .1;
    if let Some((ok, text)) = openssl_verify(dir.path(), ca_der.as_bytes(), &leaf, None) {
        assert!(ok, "{text}");
    }
}

#[test]
fn project_crl_is_honoured_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let cas: Vec<Vec<u8>> = Role::ALL.iter().map(|&r| project_ca(r)).collect();
    let anchors = TrustAnchors::new(&cas[0], &cas[1], &cas[2]).unwrap();
    let good_leaf = project_leaf(Role::TerminalDevice, &cas[0], 20);
    let revoked_leaf = project_leaf(Role::TerminalDevice, &cas[0], 21);
    let crl_der = builder::crl(
        &cas[0],
        &test_key(Role::TerminalDevice),
        1,
        at(NOW_UNIX - 86_400),
        at(NOW_UNIX + 7 * 86_400),
        &[(vec![21], at(NOW_UNIX - 2 * 86_400))],
    )
    .unwrap();
    let crl = Crl::parse(&crl_der).unwrap();
    anchors
        .verify(Role::TerminalDevice, &good_leaf, now(), Some(&crl))
        .unwrap();
    let err = anchors
        .verify(Role::TerminalDevice, &revoked_leaf, now(), Some(&crl))
        .unwrap_err();
    assert!(matches!(err, PkiError::Revoked { .. }), "{err:?}");
    if let Some((ok, text)) = openssl_verify(dir.path(), &cas[0], &good_leaf, Some(&crl_der)) {
        assert!(ok, "{text}");
    }
    if let Some((ok, text)) = openssl_verify(dir.path(), &cas[0], &revoked_leaf, Some(&crl_der)) {
        assert!(!ok && text.contains("revoked"), "{text}");
    }
}

#[test]
fn project_certificates_of_every_negative_kind_are_refused() {
    let cas: Vec<Vec<u8>> = Role::ALL.iter().map(|&r| project_ca(r)).collect();
    let anchors = TrustAnchors::new(&cas[0], &cas[1], &cas[2]).unwrap();
    let key = test_key(Role::KeyDistributionHost);
    let name = builder::name("CN=late KDH").unwrap();
    // Not yet valid: from 2031.
    let late = builder::leaf_certificate(
        Role::KeyDistributionHost,
        &name,
        &leaf_key(Role::KeyDistributionHost),
        &cas[1],
        &key,
        &issuance(30, 1_924_992_000, 2_051_222_400),
    )
    .unwrap();
    assert!(matches!(
        anchors.verify(Role::KeyDistributionHost, &late, now(), None),
        Err(PkiError::NotYetValid { .. })
    ));
    // Expired: until 2029.
    let old = builder::leaf_certificate(
        Role::KeyDistributionHost,
        &name,
        &leaf_key(Role::KeyDistributionHost),
        &cas[1],
        &key,
        &issuance(31, 1_735_689_600, 1_861_920_000),
    )
    .unwrap();
    assert!(matches!(
        anchors.verify(Role::KeyDistributionHost, &old, now(), None),
        Err(PkiError::Expired { .. })
    ));
    // A device-usage certificate issued by the KDH CA is refused as a KDH (keyUsage).
    let device_usage = builder::leaf_certificate(
        Role::TerminalDevice,
        &name,
        &leaf_key(Role::KeyDistributionHost),
        &cas[1],
        &key,
        &good(32),
    )
    .unwrap();
    assert!(matches!(
        anchors.verify(Role::KeyDistributionHost, &device_usage, now(), None),
        Err(PkiError::KeyUsageMissing {
            required: "digitalSignature",
            ..
        })
    ));
}
