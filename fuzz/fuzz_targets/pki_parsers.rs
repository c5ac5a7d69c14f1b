//! Fuzzes what the appliance parses from peers and files in certificate mode and operator login: certificates (as each role), CRLs, PKCS#8 private keys; each gives a value or a typed error, never a panic.
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use keymother_pki::{Crl, PrivateKey, Role, TrustAnchors};
use libfuzzer_sys::fuzz_target;

/// The pki crate's openssl-made test CAs (public test data).
fn anchors() -> &'static TrustAnchors {
    static ANCHORS: OnceLock<TrustAnchors> = OnceLock::new();
    ANCHORS.get_or_init(|| {
        let fixture = |name: &str| {
            std::fs::read(format!(
                "{}/../pki/tests/fixtures/{name}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .expect("pki test fixture")
        };
        TrustAnchors::new(
            &fixture("ca-device.pem"),
            &fixture("ca-kdh.pem"),
            &fixture("ca-operator.pem"),
        )
        .expect("the fixture anchors")
    })
}

fuzz_target!(|data: &[u8]| {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_893_456_000);
    let crl = Crl::parse(data).ok();
    for role in Role::ALL {
        if let Err(error) = anchors().verify(role, data, now, crl.as_ref()) {
            assert!(!error.to_string().is_empty());
        }
        if let Some(crl) = &crl {
            let _ = anchors().check_crl(role, crl, now);
        }
    }
    // Scrypt parameters in a hostile key file are bounded by the parser; keep inputs small
    // enough that a legitimate-looking one still runs quickly.
    if data.len() < 2048 {
        if let Err(error) = PrivateKey::from_pkcs8(data, None) {
            assert!(!error.to_string().is_empty());
        }
    }
});
