//! A throw-away PKI for tests, benchmarks and the demo: three role CAs made on the spot, and certificates, KDH certificates and CRLs issued from them at the current time.
//!
//! Nothing here is for production: the CA keys live in memory of whoever made them and are
//! never protected. What it issues follows the same profile as [`crate::builder`], so the
//! appliance and the terminal check these certificates exactly as they check real ones.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use rsa::RsaPublicKey;

use crate::builder::{self, Issuance};
use crate::certificate::parse_certificate;
use crate::keys::PrivateKey;
use crate::{PkiError, Role, TrustAnchors};

const DAY: Duration = Duration::from_secs(86_400);

/// One CA per role, with its key.
pub struct TestPki {
    device_ca: (Vec<u8>, PrivateKey),
    kdh_ca: (Vec<u8>, PrivateKey),
    operator_ca: (Vec<u8>, PrivateKey),
    next_serial: AtomicU32,
}

/// Where [`TestPki::write_anchors`] put the CA certificates (PEM).
#[derive(Debug, Clone)]
pub struct AnchorFiles {
    pub device_ca: PathBuf,
    pub kdh_ca: PathBuf,
    pub operator_ca: PathBuf,
}

impl TestPki {
    /// Three fresh CAs (RSA-2048), valid from a day ago for ten years, named after `label`.
    pub fn generate(label: &str) -> Result<TestPki, PkiError> {
        let now = SystemTime::now();
        let ca = |role: &str, serial: u8| -> Result<(Vec<u8>, PrivateKey), PkiError> {
            let key = PrivateKey::generate(2048)?;
            let subject = builder::name(&format!("CN={label} {role} CA,O=keymother test"))?;
            let certificate = builder::ca_certificate(
                &subject,
                key.rsa(),
                &Issuance {
                    serial: vec![serial],
                    not_before: now - DAY,
                    not_after: now + 3650 * DAY,
                },
            )?;
            Ok((certificate, key))
        };
        Ok(TestPki {
            device_ca: ca("terminal manufacturer", 1)?,
            kdh_ca: ca("KDH", 2)?,
            operator_ca: ca("operator", 3)?,
            next_serial: AtomicU32::new(0x1000),
        })
    }

    fn ca(&self, role: Role) -> &(Vec<u8>, PrivateKey) {
        match role {
            Role::TerminalDevice => &self.device_ca,
            Role::KeyDistributionHost => &self.kdh_ca,
            Role::Operator => &self.operator_ca,
        }
    }

    /// The CA certificate of `role`, DER.
    pub fn ca_certificate(&self, role: Role) -> &[u8] {
        &self.ca(role).0
    }

    /// The three anchors, as the appliance would load them.
    pub fn anchors(&self) -> Result<TrustAnchors, PkiError> {
        TrustAnchors::new(&self.device_ca.0, &self.kdh_ca.0, &self.operator_ca.0)
    }

    /// Writes the CA certificates as PEM files into `directory`.
    pub fn write_anchors(&self, directory: &Path) -> std::io::Result<AnchorFiles> {
        let write = |name: &str, der: &[u8]| -> std::io::Result<PathBuf> {
            let path = directory.join(name);
            std::fs::write(&path, pem("CERTIFICATE", der))?;
            Ok(path)
        };
        Ok(AnchorFiles {
            device_ca: write("device-ca.pem", &self.device_ca.0)?,
            kdh_ca: write("kdh-ca.pem", &self.kdh_ca.0)?,
            operator_ca: write("operator-ca.pem", &self.operator_ca.0)?,
        })
    }

    /// A certificate of `role` for `key`, issued by `issuer_role`'s CA (normally the same role;
    /// another one makes a certificate of the wrong role), valid `not_before..not_after`.
    pub fn issue(
        &self,
        role: Role,
        issuer_role: Role,
        subject: &str,
        key: &RsaPublicKey,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Result<Vec<u8>, PkiError> {
        let (issuer, issuer_key) = self.ca(issuer_role);
        builder::leaf_certificate(
            role,
            &builder::name(subject)?,
            key,
            issuer,
            issuer_key.rsa(),
            &Issuance {
                serial: self.serial(),
                not_before,
                not_after,
            },
        )
    }

    /// A terminal device certificate naming `hardware_serial`, valid from a day ago for a year.
    pub fn device_certificate(
        &self,
        hardware_serial: &str,
        key: &RsaPublicKey,
    ) -> Result<Vec<u8>, PkiError> {
        let now = SystemTime::now();
        self.issue(
            Role::TerminalDevice,
            Role::TerminalDevice,
            &format!("CN={hardware_serial},O=keymother test terminals"),
            key,
            now - DAY,
            now + 365 * DAY,
        )
    }

    /// An operator certificate for `name`, valid from a day ago for a year.
    pub fn operator_certificate(
        &self,
        name: &str,
        key: &RsaPublicKey,
    ) -> Result<Vec<u8>, PkiError> {
        let now = SystemTime::now();
        self.issue(
            Role::Operator,
            Role::Operator,
            &format!("CN={name},O=keymother test operators"),
            key,
            now - DAY,
            now + 365 * DAY,
        )
    }

    /// The KDH CA signs the appliance's certificate request (DER or PEM), valid for a year.
    pub fn sign_kdh_request(&self, request: &[u8]) -> Result<Vec<u8>, PkiError> {
        let now = SystemTime::now();
        let (issuer, issuer_key) = &self.kdh_ca;
        builder::leaf_certificate_from_request(
            Role::KeyDistributionHost,
            request,
            issuer,
            issuer_key.rsa(),
            &Issuance {
                serial: self.serial(),
                not_before: now - DAY,
                not_after: now + 365 * DAY,
            },
        )
    }

    /// A current CRL of `role`'s CA (thisUpdate an hour ago, nextUpdate in 30 days) revoking
    /// the certificates with these serials.
    pub fn crl(&self, role: Role, revoked: &[Vec<u8>]) -> Result<Vec<u8>, PkiError> {
        let now = SystemTime::now();
        let (issuer, issuer_key) = self.ca(role);
        let revoked: Vec<(Vec<u8>, SystemTime)> = revoked
            .iter()
            .map(|serial| (serial.clone(), now - Duration::from_secs(3600)))
            .collect();
        builder::crl(
            issuer,
            issuer_key.rsa(),
            1,
            now - Duration::from_secs(3600),
            now + 30 * DAY,
            &revoked,
        )
    }

    fn serial(&self) -> Vec<u8> {
        self.next_serial
            .fetch_add(1, Ordering::Relaxed)
            .to_be_bytes()
            .to_vec()
    }
}

/// DER as PEM.
pub fn pem(label: &str, der: &[u8]) -> String {
    // Only a label with invalid characters fails to encode; ours are constants.
    der::pem::encode_string(label, der::pem::LineEnding::LF, der).unwrap_or_default()
}

/// The serial number of a certificate (DER or PEM), as bytes, for [`TestPki::crl`].
pub fn serial_of(certificate: &[u8]) -> Result<Vec<u8>, PkiError> {
    let certificate = parse_certificate(certificate, "certificate")?;
    Ok(certificate
        .tbs_certificate()
        .serial_number()
        .as_bytes()
        .to_vec())
}

/// A [`VerifiedCertificate`](crate::VerifiedCertificate) of `role` made from `certificate`
/// (DER or PEM) WITHOUT verifying it: only parsed, with an RSA key of at least 2048 bits.
/// For tests with foreign test PKIs that keymother's trust anchors refuse (the clover TR-34
/// test PKI has intermediate CAs and a KRD certificate without keyEncipherment). Never for
/// production: nothing about the certificate is checked.
pub fn unchecked_certificate(
    role: Role,
    certificate: &[u8],
) -> Result<crate::VerifiedCertificate, PkiError> {
    let certificate = parse_certificate(certificate, "certificate")?;
    let public_key = crate::certificate::rsa_key(&certificate, "certificate")?;
    Ok(crate::VerifiedCertificate {
        role,
        certificate,
        public_key,
    })
}
