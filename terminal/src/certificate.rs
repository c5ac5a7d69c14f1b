//! The reference terminal's certificate-mode identity: its device key pair and certificate, the KDH CA it was loaded with at manufacture, and the checks of PROTOCOL.md section 9.1.

use std::path::Path;
use std::time::SystemTime;

use keymother_crypto::SecretKey;
use keymother_pki::key_transport::{DeliveryContext, NONCE_LENGTH, SealedKey, open_from_appliance};
use keymother_pki::{PkiError, PrivateKey, Role, TrustAnchors, VerifiedCertificate};
use keymother_protocol::{CertificateDelivery, InstallRefusal};

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
}

/// A terminal's certificate-mode identity. The private key zeroizes on drop; no Debug.
pub struct CertificateIdentity {
    device_key: PrivateKey,
    device_certificate: Vec<u8>,
    kdh_ca: TrustAnchors,
    /// The appliance's KDH certificate as verified in this session, and the nonce sent.
    session: Option<(VerifiedCertificate, [u8; NONCE_LENGTH])>,
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
        Ok(CertificateIdentity {
            device_key,
            device_certificate,
            kdh_ca,
            session: None,
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

    /// The device certificate, DER, as sent in KEY_REQUEST.
    pub fn device_certificate(&self) -> &[u8] {
        &self.device_certificate
    }

    /// Verifies the appliance's KDH certificate against the KDH CA at `now`, and makes the
    /// nonce for this session's KEY_REQUEST.
    pub fn verify_appliance(
        &mut self,
        kdh_certificate: &[u8],
        now: SystemTime,
    ) -> Result<[u8; NONCE_LENGTH], String> {
        self.session = None;
        let verified = self
            .kdh_ca
            .verify(Role::KeyDistributionHost, kdh_certificate, now, None)
            .map_err(|error| error.to_string())?;
        let mut nonce = [0u8; NONCE_LENGTH];
        getrandom::fill(&mut nonce).map_err(|error| format!("no random nonce: {error}"))?;
        self.session = Some((verified, nonce));
        Ok(nonce)
    }

    /// Checks and opens a certificate-mode delivery for `hardware_serial`: the nonce, the CRL,
    /// the KDH signature, the encrypted ephemeral key, the key block and the KCV.
    pub fn open(
        &self,
        hardware_serial: &str,
        key_index: u32,
        key_block: &str,
        kcv: &[u8],
        delivery: &CertificateDelivery,
        now: SystemTime,
    ) -> Result<SecretKey, InstallRefusal> {
        let Some((kdh, nonce)) = &self.session else {
            return Err(InstallRefusal::NotAuthentic(
                "no KDH certificate was verified in this session".to_owned(),
            ));
        };
        let context = DeliveryContext {
            hardware_serial,
            nonce,
            key_index,
        };
        let sealed = SealedKey {
            key_block: key_block.to_owned(),
            kcv: kcv.to_vec(),
            nonce: delivery.nonce,
            encrypted_key: delivery.encrypted_key.clone(),
            signature: delivery.signature.clone(),
            crl: delivery.crl.clone(),
        };
        open_from_appliance(&self.device_key, kdh, &self.kdh_ca, now, &context, &sealed).map_err(
            |error| {
                use keymother_pki::key_transport::KeyTransportError as Refused;
                match error {
                    Refused::KeyBlock(why) => InstallRefusal::DoesNotUnwrap(why),
                    Refused::KcvMismatch => InstallRefusal::KcvMismatch,
                    other => InstallRefusal::NotAuthentic(other.to_string()),
                }
            },
        )
    }
}
