//! Helpers shared by the integration tests: fixtures, the tests' instant, the openssl CLI.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keymother_pki::{PrivateKey, Role, TrustAnchors, VerifiedCertificate};

/// 2030-01-01T00:00:00Z: inside the good leaves' validity (2025..2035) and the good CRLs'
/// (2029-12-01..2030-02-01).
pub const NOW_UNIX: u64 = 1_893_456_000;

pub fn at(unix: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(unix)
}

pub fn now() -> SystemTime {
    at(NOW_UNIX)
}

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
}

pub fn fixture(name: &str) -> Vec<u8> {
    let path = fixture_path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// PEM (any label) to DER.
pub fn pem_to_der(pem: &[u8]) -> Vec<u8> {
    der::Document::from_pem(std::str::from_utf8(pem).unwrap())
        .unwrap()
        .1
        .as_bytes()
        .to_vec()
}

/// DER to PEM with `label`.
pub fn der_to_pem(label: &str, der: &[u8]) -> String {
    der::pem::encode_string(label, der::pem::LineEnding::LF, der).unwrap()
}

/// The openssl-made trust anchors.
pub fn anchors() -> TrustAnchors {
    TrustAnchors::new(
        &fixture("ca-device.pem"),
        &fixture("ca-kdh.pem"),
        &fixture("ca-operator.pem"),
    )
    .unwrap()
}

/// A test-only leaf key made by make.sh ("device", "kdh", "operator").
pub fn leaf_key(name: &str) -> PrivateKey {
    PrivateKey::from_pkcs8(&fixture(&format!("test-only-{name}.key")), None).unwrap()
}

/// An openssl-made leaf, verified for `role` at the tests' instant.
pub fn verified(role: Role, file: &str) -> VerifiedCertificate {
    anchors().verify(role, &fixture(file), now(), None).unwrap()
}

/// Runs openssl with `args` in `dir`; None when openssl is not installed. Panics with its
/// output when `must_succeed` and it fails.
pub fn openssl(dir: &Path, args: &[&str], must_succeed: bool) -> Option<(bool, Vec<u8>, String)> {
    let out = match Command::new("openssl").args(args).current_dir(dir).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("openssl not installed: skipping the openssl side");
            return None;
        }
        Err(e) => panic!("openssl: {e}"),
    };
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if must_succeed && !out.status.success() {
        panic!(
            "openssl {args:?} failed: {stderr}{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Some((out.status.success(), out.stdout, stderr))
}

/// The fixtures folder as a string, for openssl arguments.
pub fn fixtures_dir() -> String {
    format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR"))
}
