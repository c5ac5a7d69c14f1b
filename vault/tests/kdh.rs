//! The KDH identity: a key pair made in the vault, a request, the certificate installed for it (and only for it), sealed at rest, audited, gone after a zeroize.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
#[allow(unused)]
mod typed;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use keymother_pki::builder::{self, Issuance};
use keymother_pki::rsa::RsaPrivateKey;
use keymother_pki::rsa::pkcs8::DecodePrivateKey;
use keymother_pki::{PrivateKey, Role, TrustAnchors};
use keymother_vault::{Vault, VaultError};
use support::Bench;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../pki/tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn anchors() -> TrustAnchors {
    TrustAnchors::new(
        &fixture("ca-device.pem"),
        &fixture("ca-kdh.pem"),
        &fixture("ca-operator.pem"),
    )
    .unwrap()
}

/// The KDH CA signs `request` as a KDH certificate valid for a year from now.
fn sign(request: &[u8], serial: u8) -> Vec<u8> {
    let ca_key =
        RsaPrivateKey::from_pkcs8_pem(&String::from_utf8(fixture("test-only-ca-kdh.key")).unwrap())
            .unwrap();
    let now = SystemTime::now();
    builder::leaf_certificate_from_request(
        Role::KeyDistributionHost,
        request,
        &fixture("ca-kdh.pem"),
        &ca_key,
        &Issuance {
            serial: vec![0x40, serial],
            not_before: now - Duration::from_secs(60),
            not_after: now + Duration::from_secs(365 * 86_400),
        },
    )
    .unwrap()
}

fn subject() -> keymother_pki::x509_cert::name::Name {
    builder::name("CN=KM-TEST-0001,O=keymother test").unwrap()
}

#[test]
fn a_request_then_its_certificate_gives_a_kdh_identity_that_survives_reopening() {
    let mut bench = Bench::new(1);
    assert!(bench.vault.kdh_status().unwrap().is_none());
    assert!(bench.vault.load_kdh().unwrap().is_none());
    let request = bench
        .vault
        .create_kdh_request(&subject(), 2048, Some("alice"))
        .unwrap();
    // Requested, not yet usable.
    let status = bench.vault.kdh_status().unwrap().unwrap();
    assert_eq!(status.certificate_request, request);
    assert!(status.certificate.is_none());
    assert!(bench.vault.load_kdh().unwrap().is_none());

    let certificate = sign(&request, 1);
    let verified = anchors()
        .verify(
            Role::KeyDistributionHost,
            &certificate,
            SystemTime::now(),
            None,
        )
        .unwrap();
    bench
        .vault
        .install_kdh_certificate(&verified, Some("alice"))
        .unwrap();
    let identity = bench.vault.load_kdh().unwrap().unwrap();
    assert_eq!(identity.certificate, certificate);
    assert!(identity.key.matches(&verified));

    // Reopened: the sealed key opens again under the storage key.
    let data_dir = bench.data_dir();
    drop(bench.vault);
    let vault = Vault::open(&data_dir).unwrap();
    let identity = vault.load_kdh().unwrap().unwrap();
    assert!(identity.key.matches(&verified));
    // Both steps are in the audit chain, naming the operator.
    let events: Vec<(String, String)> = vault
        .audit_rows()
        .unwrap()
        .into_iter()
        .map(|row| (row.event, row.actor))
        .collect();
    assert!(events.contains(&("kdh-request".to_owned(), "alice".to_owned())));
    assert!(events.contains(&("kdh-certificate".to_owned(), "alice".to_owned())));
    vault.verify_audit().unwrap();
}

#[test]
fn a_certificate_for_another_key_is_refused_and_changes_nothing() {
    let mut bench = Bench::new(1);
    bench
        .vault
        .create_kdh_request(&subject(), 2048, None)
        .unwrap();
    // A request made with some other key, signed by the right CA.
    let other = PrivateKey::generate(2048).unwrap();
    let other_request = keymother_pki::keys::certificate_request(&other, &subject()).unwrap();
    let verified = anchors()
        .verify(
            Role::KeyDistributionHost,
            &sign(&other_request, 2),
            SystemTime::now(),
            None,
        )
        .unwrap();
    let rows_before = bench.vault.audit_rows().unwrap().len();
    let error = bench
        .vault
        .install_kdh_certificate(&verified, None)
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("not for this appliance's KDH key pair"),
        "{error}"
    );
    assert!(bench.vault.load_kdh().unwrap().is_none());
    assert_eq!(bench.vault.audit_rows().unwrap().len(), rows_before);
}

#[test]
fn a_certificate_without_a_request_and_absurd_key_sizes_are_refused() {
    let mut bench = Bench::new(1);
    let other = PrivateKey::generate(2048).unwrap();
    let request = keymother_pki::keys::certificate_request(&other, &subject()).unwrap();
    let verified = anchors()
        .verify(
            Role::KeyDistributionHost,
            &sign(&request, 3),
            SystemTime::now(),
            None,
        )
        .unwrap();
    let error = bench
        .vault
        .install_kdh_certificate(&verified, None)
        .unwrap_err();
    assert!(
        error.to_string().contains("make a request first"),
        "{error}"
    );
    for bits in [1024, 8192] {
        let error = bench
            .vault
            .create_kdh_request(&subject(), bits, None)
            .unwrap_err();
        assert!(matches!(error, VaultError::Refused(_)), "{error}");
        assert!(error.to_string().contains("2048 to 4096"), "{error}");
    }
}

#[test]
fn the_sealed_key_is_not_readable_from_the_database_and_a_zeroize_deletes_it() {
    let mut bench = Bench::new(1);
    let request = bench
        .vault
        .create_kdh_request(&subject(), 2048, None)
        .unwrap();
    let verified = anchors()
        .verify(
            Role::KeyDistributionHost,
            &sign(&request, 4),
            SystemTime::now(),
            None,
        )
        .unwrap();
    bench
        .vault
        .install_kdh_certificate(&verified, None)
        .unwrap();
    let sealed: String = bench
        .raw()
        .query_row("SELECT sealed_private_key FROM kdh_identity", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert!(sealed.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    // Without the storage key's passphrase it does not open.
    let Err(error) = PrivateKey::from_pkcs8(sealed.as_bytes(), Some(b"guess")) else {
        panic!("the sealed KDH key opened under a guessed passphrase");
    };
    assert!(!error.to_string().is_empty());

    bench.vault.zeroize("test", Some("alice")).unwrap();
    let rows: i64 = bench
        .raw()
        .query_row("SELECT count(*) FROM kdh_identity", [], |row| row.get(0))
        .unwrap();
    assert_eq!(rows, 0);
}
