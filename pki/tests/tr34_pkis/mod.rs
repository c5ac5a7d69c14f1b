//! The three PKIs the TR-34 round-trip tests run on: the openssl-made fixtures, the clover TR-34 test PKI, and one made on the spot with keymother_pki::testing.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, SystemTime};

use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_domain::KeyIndex;
use keymother_pki::testing::{TestPki, unchecked_certificate};
use keymother_pki::tr34::{
    BuiltKeyToken, ExpectedFreshness, Freshness, KeyTokenInput, OpenedKeyToken, Tr34Error,
    build_key_token, open_key_token,
};
use keymother_pki::{PrivateKey, Role, TrustAnchors, VerifiedCertificate};

use crate::common;
use crate::tr34_support::named_value;

/// A KDH and a KRD with their keys, the anchors the KRD checks CRLs against, and "now".
pub struct Pki {
    pub name: &'static str,
    pub kdh_key: PrivateKey,
    pub kdh_der: Vec<u8>,
    pub kdh: VerifiedCertificate,
    pub krd_key: PrivateKey,
    pub krd_der: Vec<u8>,
    pub krd: VerifiedCertificate,
    pub anchors: TrustAnchors,
    pub now: SystemTime,
    /// The KDH CA's CRL to attach (empty when the PKI has none).
    pub crl: Vec<u8>,
}

/// The openssl-made fixtures (pki/tests/fixtures), at 2030-01-01.
pub fn fixtures() -> Pki {
    Pki {
        name: "openssl fixtures",
        kdh_key: common::leaf_key("kdh"),
        kdh_der: common::fixture("kdh.der"),
        kdh: common::verified(Role::KeyDistributionHost, "kdh.der"),
        krd_key: common::leaf_key("device"),
        krd_der: common::fixture("device.der"),
        krd: common::verified(Role::TerminalDevice, "device.der"),
        anchors: common::anchors(),
        now: common::now(),
        crl: common::fixture("ca-kdh.crl.pem"),
    }
}

/// A clover PKI value (hex DER) from the project's vector file.
pub fn clover(name: &str) -> Vec<u8> {
    hex::decode(named_value("clover_pki.txt", name)).unwrap()
}

/// The clover TR-34 test PKI (valid to 2038), taken without verification (its CAs are
/// intermediates and its KRD certificate lacks keyEncipherment), at 2030-01-01, no CRL.
pub fn clover_pki() -> Pki {
    let certificate = |role, name| unchecked_certificate(role, &clover(name)).unwrap();
    Pki {
        name: "clover",
        kdh_key: PrivateKey::from_pkcs8(&clover("kdh_1_private_key"), None).unwrap(),
        kdh_der: clover("kdh_1_certificate"),
        kdh: certificate(Role::KeyDistributionHost, "kdh_1_certificate"),
        krd_key: PrivateKey::from_pkcs8(&clover("krd_1_private_key"), None).unwrap(),
        krd_der: clover("krd_1_certificate"),
        krd: certificate(Role::TerminalDevice, "krd_1_certificate"),
        anchors: common::anchors(),
        now: common::now(),
        crl: Vec::new(),
    }
}

/// A PKI made on the spot with keymother_pki::testing (fresh keys), at the current time,
/// with a current KDH CA CRL revoking nothing.
pub fn generated() -> Pki {
    let pki = TestPki::generate("tr34").unwrap();
    let kdh_key = PrivateKey::generate(2048).unwrap();
    let krd_key = PrivateKey::generate(2048).unwrap();
    let now = SystemTime::now();
    let kdh_der = pki
        .issue(
            Role::KeyDistributionHost,
            Role::KeyDistributionHost,
            "CN=tr34 KDH,O=keymother test",
            &kdh_key.public_key(),
            now - Duration::from_secs(3600),
            now + Duration::from_secs(86_400),
        )
        .unwrap();
    let krd_der = pki
        .device_certificate("TR34-KRD-0001", &krd_key.public_key())
        .unwrap();
    let anchors = pki.anchors().unwrap();
    let kdh = anchors
        .verify(Role::KeyDistributionHost, &kdh_der, now, None)
        .unwrap();
    let krd = anchors
        .verify(Role::TerminalDevice, &krd_der, now, None)
        .unwrap();
    Pki {
        name: "keymother_pki::testing",
        crl: pki.crl(Role::KeyDistributionHost, &[]).unwrap(),
        kdh_key,
        kdh_der,
        kdh,
        krd_key,
        krd_der,
        krd,
        anchors,
        now,
    }
}

pub const NONCE: [u8; 16] = *b"tr34 test nonce!";

pub fn index(value: u32) -> KeyIndex {
    KeyIndex::new(value).unwrap()
}

impl Pki {
    /// A key token for `master_key` with `freshness`.
    pub fn build(&self, freshness: Freshness<'_>, master_key: &SecretKey) -> BuiltKeyToken {
        build_key_token(&self.input(freshness), master_key)
            .unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }

    pub fn input<'a>(&'a self, freshness: Freshness<'a>) -> KeyTokenInput<'a> {
        KeyTokenInput {
            kdh_key: &self.kdh_key,
            kdh: &self.kdh,
            krd: &self.krd,
            freshness,
            key_index: index(42),
            crl: &self.crl,
        }
    }

    /// The KRD opens `token`.
    pub fn open(
        &self,
        expected: &ExpectedFreshness<'_>,
        token: &[u8],
    ) -> Result<OpenedKeyToken, Tr34Error> {
        open_key_token(
            &self.krd_key,
            &self.krd_der,
            &self.kdh,
            &self.anchors,
            self.now,
            expected,
            token,
        )
    }
}

pub fn two_pass() -> ExpectedFreshness<'static> {
    ExpectedFreshness::TwoPass { nonce: &NONCE }
}

pub fn one_pass(after: Option<SystemTime>) -> ExpectedFreshness<'static> {
    ExpectedFreshness::OnePass {
        max_skew: Duration::from_secs(300),
        after,
    }
}

pub fn master_key(algorithm: KeyAlgorithm) -> SecretKey {
    SecretKey::generate(algorithm).unwrap()
}
