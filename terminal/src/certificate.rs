//! The reference terminal's certificate-mode identity, a TR-34 key receiving device (KRD): its device key pair and certificate, the KDH CA it was loaded with at manufacture, and the checks of PROTOCOL.md section 9.1.

use std::path::Path;
use std::time::{Duration, SystemTime};

use keymother_crypto::SecretKey;
use keymother_pki::tr34::{self, ExpectedFreshness};
use keymother_pki::{Crl, PkiError, PrivateKey, Role, TrustAnchors, VerifiedCertificate};
use keymother_protocol::{
    CertificateDelivery, CertificateFreshness, CertificatePass, InstallRefusal,
};

/// The length of the nonce the reference terminal puts in its random number token.
pub const NONCE_LENGTH: usize = 16;

/// How far a one-pass key token's signing time may be from the terminal's clock.
pub const ONE_PASS_MAX_SKEW: Duration = Duration::from_secs(300);

/// Why a certificate-mode identity could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{path}: {problem}")]
    File { path: String, problem: String },
    #[error("the device certificate: {0}")]
    Certificate(PkiError),
    #[error("the KDH CA certificate: {0}")]
    KdhCa(PkiError),
    #[error("the device key: {0}")]
    Key(PkiError),
    #[error("the device key is not the key of the device certificate")]
    KeyMismatch,
    #[error("the KRD credential token cannot be made: {0}")]
    Token(String),
}

/// A terminal's certificate-mode identity. The private key zeroizes on drop; no Debug.
pub struct CertificateIdentity {
    device_key: PrivateKey,
    device_certificate: Vec<u8>,
    /// The TR-34 KRD credential token KEY_REQUEST carries: the device certificate.
    krd_credential_token: Vec<u8>,
    kdh_ca: TrustAnchors,
    /// Which key token this terminal asks for.
    pass: CertificatePass,
    /// The appliance's KDH certificate as verified in this session, and the nonce sent
    /// (two-pass; empty for one-pass).
    session: Option<(VerifiedCertificate, Vec<u8>)>,
    /// The signing time of the last one-pass key token accepted: an older or equal one is a
    /// replay.
    last_one_pass: Option<SystemTime>,
}

impl CertificateIdentity {
    /// An identity from the device key, its certificate (DER or PEM) and the KDH CA
    /// certificate (DER or PEM). The key must be the certificate's.
    pub fn new(
        device_key: PrivateKey,
        device_certificate: &[u8],
        kdh_ca: &[u8],
    ) -> Result<CertificateIdentity, IdentityError> {
        let kdh_ca =
            TrustAnchors::for_roles(None, Some(kdh_ca), None).map_err(IdentityError::KdhCa)?;
        let device_certificate = keymother_pki::certificate_der(device_certificate)
            .map_err(IdentityError::Certificate)?;
        if !device_key.matches_certificate(&device_certificate) {
            return Err(IdentityError::KeyMismatch);
        }
        let krd_credential_token = tr34::krd_credential_token(&device_certificate)
            .map_err(|error| IdentityError::Token(error.to_string()))?;
        Ok(CertificateIdentity {
            device_key,
            device_certificate,
            krd_credential_token,
            kdh_ca,
            pass: CertificatePass::TwoPass,
            session: None,
            last_one_pass: None,
        })
    }

    /// Reads the identity from files: the device key (PKCS#8, `passphrase` if encrypted), the
    /// device certificate and the KDH CA certificate.
    pub fn load(
        key: &Path,
        passphrase: Option<&[u8]>,
        certificate: &Path,
        kdh_ca: &Path,
    ) -> Result<CertificateIdentity, IdentityError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|error| IdentityError::File {
                path: path.display().to_string(),
                problem: error.to_string(),
            })
        };
        let key_bytes = zeroize::Zeroizing::new(read(key)?);
        let device_key =
            PrivateKey::from_pkcs8(&key_bytes, passphrase).map_err(IdentityError::Key)?;
        CertificateIdentity::new(device_key, &read(certificate)?, &read(kdh_ca)?)
    }

    /// Asks for one-pass key tokens (a signing time) instead of two-pass ones (a nonce).
    pub fn with_pass(mut self, pass: CertificatePass) -> CertificateIdentity {
        self.pass = pass;
        self
    }

    /// The device certificate, DER.
    pub fn device_certificate(&self) -> &[u8] {
        &self.device_certificate
    }

    /// The TR-34 KRD credential token, DER, as sent in KEY_REQUEST.
    pub fn krd_credential_token(&self) -> &[u8] {
        &self.krd_credential_token
    }

    /// Checks the appliance's KDH credential token at `now`: its KDH certificate against the
    /// KDH CA, with the token's CRL when it carries one (signed by the KDH CA, current, not
    /// listing the KDH); then makes this session's freshness (two-pass: a nonce in a random
    /// number token).
    pub fn verify_appliance(
        &mut self,
        kdh_credential_token: &[u8],
        now: SystemTime,
    ) -> Result<CertificateFreshness, String> {
        self.session = None;
        let credential = tr34::parse_credential_token(kdh_credential_token)
            .map_err(|error| format!("the KDH credential token: {error}"))?;
        let [kdh_certificate] = credential.certificates.as_slice() else {
            return Err(format!(
                "the KDH credential token carries {} certificates; one, the KDH's, was expected",
                credential.certificates.len()
            ));
        };
        let crl = match credential.crls.as_slice() {
            [] => None,
            [crl] => Some(Crl::parse(crl).map_err(|error| format!("the KDH CA's CRL: {error}"))?),
            more => {
                return Err(format!(
                    "the KDH credential token carries {} CRLs",
                    more.len()
                ));
            }
        };
        let verified = self
            .kdh_ca
            .verify(
                Role::KeyDistributionHost,
                kdh_certificate,
                now,
                crl.as_ref(),
            )
            .map_err(|error| error.to_string())?;
        let (nonce, freshness) = match self.pass {
            CertificatePass::OnePass => (Vec::new(), CertificateFreshness::OnePass),
            CertificatePass::TwoPass => {
                let mut nonce = vec![0u8; NONCE_LENGTH];
                getrandom::fill(&mut nonce).map_err(|error| format!("no random nonce: {error}"))?;
                let random_number_token = tr34::random_number_token(&nonce)
                    .map_err(|error| format!("the random number token: {error}"))?;
                (
                    nonce,
                    CertificateFreshness::TwoPass {
                        random_number_token,
                    },
                )
            }
        };
        self.session = Some((verified, nonce));
        Ok(freshness)
    }

    /// Opens a TR-34 key token (PROTOCOL.md 9.1.4): signer, CRL, signature, nonce or signing
    /// time, recipient, the content key and the key block; then the header the delivery
    /// announced, the key index it names and the KCV.
    pub fn open(
        &mut self,
        key_index: u32,
        key_block_header: &str,
        kcv: &[u8],
        delivery: &CertificateDelivery,
        now: SystemTime,
    ) -> Result<SecretKey, InstallRefusal> {
        let Some((kdh, nonce)) = &self.session else {
            return Err(InstallRefusal::NotAuthentic(
                "no KDH certificate was verified in this session".to_owned(),
            ));
        };
        let expected = match self.pass {
            CertificatePass::TwoPass => ExpectedFreshness::TwoPass { nonce },
            CertificatePass::OnePass => ExpectedFreshness::OnePass {
                max_skew: ONE_PASS_MAX_SKEW,
                after: self.last_one_pass,
            },
        };
        let opened = tr34::open_key_token(
            &self.device_key,
            &self.device_certificate,
            kdh,
            &self.kdh_ca,
            now,
            &expected,
            &delivery.key_token,
        )
        .map_err(|error| {
            if error.is_authenticity() {
                InstallRefusal::NotAuthentic(error.to_string())
            } else {
                InstallRefusal::DoesNotUnwrap(error.to_string())
            }
        })?;
        if opened.header != key_block_header {
            return Err(InstallRefusal::NotAuthentic(
                "the key block header in KEY_DELIVERY is not the one the key token signs"
                    .to_owned(),
            ));
        }
        if opened.key_index.value() != key_index {
            return Err(InstallRefusal::NotAuthentic(format!(
                "KEY_DELIVERY names key index {key_index}, the key token key index {}",
                opened.key_index
            )));
        }
        if opened.key.kcv().as_bytes() != kcv {
            return Err(InstallRefusal::KcvMismatch);
        }
        if let Some(signed) = opened.signing_time {
            self.last_one_pass = Some(signed);
        }
        Ok(opened.key)
    }
}
