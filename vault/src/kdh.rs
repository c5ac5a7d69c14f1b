//! The appliance's key distribution host (KDH) identity for certificate mode: its RSA key pair sealed at rest, its certificate request, and its certificate once the KDH CA has signed it.
//!
//! The key pair is made on the appliance and never leaves it: what goes out is the PKCS#10
//! request. At rest the private key is an encrypted PKCS#8 document (PBES2: scrypt and
//! AES-256-CBC) whose passphrase is derived from the storage key (SP 800-108, label
//! `KEYMOTHER-KDH-KEY/1`), so a copied database alone does not yield it, as for the KEK and
//! the TTK. A zeroize deletes it with the other secrets.

use keymother_pki::keys::certificate_request;
use keymother_pki::x509_cert::name::Name;
use keymother_pki::{PrivateKey, VerifiedCertificate};
use rusqlite::{OptionalExtension, TransactionBehavior};
use sha2::{Digest, Sha256};

use crate::audit::{self, AuditEvent};
use crate::{Vault, VaultError, live_key, now_text};

/// The smallest and largest KDH keys the appliance makes.
pub const KDH_KEY_BITS: std::ops::RangeInclusive<usize> = 2048..=4096;

/// The KDH identity ready for certificate mode: the private key and the installed certificate.
pub struct KdhIdentity {
    pub key: PrivateKey,
    /// The certificate, DER, as installed.
    pub certificate: Vec<u8>,
}

/// What is on record about the KDH identity (never the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KdhStatus {
    /// The subject the request names.
    pub subject: String,
    pub bits: usize,
    pub requested_at: String,
    /// The PKCS#10 request, DER (to send to the KDH CA again if needed).
    pub certificate_request: Vec<u8>,
    /// The installed certificate, DER, once there is one.
    pub certificate: Option<Vec<u8>>,
    pub installed_at: Option<String>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Vault {
    /// Makes a new KDH key pair of `bits`, seals it, and returns its certificate request (DER)
    /// for `subject`. Replaces any earlier KDH identity, certificate included (audited as
    /// such); certificate mode stops until the new certificate is installed.
    pub fn create_kdh_request(
        &mut self,
        subject: &Name,
        bits: usize,
        operator: Option<&str>,
    ) -> Result<Vec<u8>, VaultError> {
        if !KDH_KEY_BITS.contains(&bits) {
            return Err(VaultError::Refused(format!(
                "a KDH key has 2048 to 4096 bits, not {bits}"
            )));
        }
        let storage_key = live_key(&self.storage_key, &self.data_dir)?;
        let refused = |what: &str, error: &dyn std::fmt::Display| {
            VaultError::Refused(format!("{what}: {error}"))
        };
        let key = PrivateKey::generate(bits)
            .map_err(|error| refused("making the KDH key pair", &error))?;
        let request = certificate_request(&key, subject)
            .map_err(|error| refused("making the certificate request", &error))?;
        let sealed = key
            .to_encrypted_pkcs8_pem(storage_key.kdh_passphrase().as_bytes())
            .map_err(|error| refused("sealing the KDH key", &error))?;
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let replaced: Option<Option<Vec<u8>>> = transaction
            .query_row(
                "SELECT certificate FROM kdh_identity WHERE id = 1",
                [],
                |row| row.get(0),
            )
            .optional()?;
        transaction.execute(
            "INSERT OR REPLACE INTO kdh_identity
                 (id, sealed_private_key, subject, bits, certificate_request, requested_at,
                  certificate, installed_at)
             VALUES (1, ?1, ?2, ?3, ?4, ?5, NULL, NULL)",
            (
                sealed.as_str(),
                subject.to_string(),
                bits as i64,
                &request,
                now_text(),
            ),
        )?;
        audit::append(
            &transaction,
            storage_key.audit_head(),
            &AuditEvent::KdhRequest {
                subject: subject.to_string(),
                bits: bits as u32,
                request_sha256: sha256_hex(&request),
                replaced: match replaced {
                    Some(Some(certificate)) => format!(
                        "key pair and certificate SHA-256 {}",
                        sha256_hex(&certificate)
                    ),
                    Some(None) => "key pair awaiting its certificate".to_owned(),
                    None => "nothing".to_owned(),
                },
                operator: operator.map(str::to_owned),
            },
        )?;
        transaction.commit()?;
        Ok(request)
    }

    /// Installs the KDH certificate the KDH CA issued for the pending key pair. The caller has
    /// verified it against the KDH CA ([`keymother_pki::TrustAnchors::verify`] with
    /// [`keymother_pki::Role::KeyDistributionHost`]); the vault checks it is for the sealed key.
    pub fn install_kdh_certificate(
        &mut self,
        certificate: &VerifiedCertificate,
        operator: Option<&str>,
    ) -> Result<(), VaultError> {
        let storage_key = live_key(&self.storage_key, &self.data_dir)?;
        let key = self.unseal_kdh_key()?.ok_or_else(|| {
            VaultError::Refused(
                "there is no KDH key pair to install a certificate for: make a request first"
                    .to_owned(),
            )
        })?;
        if !key.matches(certificate) {
            return Err(VaultError::Refused(format!(
                "the certificate (subject {}) is not for this appliance's KDH key pair: it \
                 certifies another public key",
                certificate.subject()
            )));
        }
        let der = keymother_pki::der::Encode::to_der(certificate.certificate())
            .map_err(|error| VaultError::Refused(format!("encoding the certificate: {error}")))?;
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        transaction.execute(
            "UPDATE kdh_identity SET certificate = ?1, installed_at = ?2 WHERE id = 1",
            (&der, now_text()),
        )?;
        let not_after = time::OffsetDateTime::from(certificate.not_after());
        audit::append(
            &transaction,
            storage_key.audit_head(),
            &AuditEvent::KdhCertificate {
                subject: certificate.subject().to_string(),
                serial: hex::encode_upper(certificate.serial().as_bytes()),
                issuer: certificate
                    .certificate()
                    .tbs_certificate()
                    .issuer()
                    .to_string(),
                not_after: not_after
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_else(|_| not_after.to_string()),
                certificate_sha256: sha256_hex(&der),
                operator: operator.map(str::to_owned),
            },
        )?;
        transaction.commit()?;
        Ok(())
    }

    /// What is on record about the KDH identity, if there is one.
    pub fn kdh_status(&self) -> Result<Option<KdhStatus>, VaultError> {
        Ok(self
            .connection
            .query_row(
                "SELECT subject, bits, requested_at, certificate_request, certificate, installed_at
                 FROM kdh_identity WHERE id = 1",
                [],
                |row| {
                    Ok(KdhStatus {
                        subject: row.get(0)?,
                        bits: row.get::<_, i64>(1)? as usize,
                        requested_at: row.get(2)?,
                        certificate_request: row.get(3)?,
                        certificate: row.get(4)?,
                        installed_at: row.get(5)?,
                    })
                },
            )
            .optional()?)
    }

    /// The KDH key and its certificate, once a certificate is installed.
    pub fn load_kdh(&self) -> Result<Option<KdhIdentity>, VaultError> {
        let Some(certificate) = self.kdh_status()?.and_then(|status| status.certificate) else {
            return Ok(None);
        };
        let Some(key) = self.unseal_kdh_key()? else {
            return Ok(None);
        };
        Ok(Some(KdhIdentity { key, certificate }))
    }

    fn unseal_kdh_key(&self) -> Result<Option<PrivateKey>, VaultError> {
        let storage_key = live_key(&self.storage_key, &self.data_dir)?;
        let sealed: Option<String> = self
            .connection
            .query_row(
                "SELECT sealed_private_key FROM kdh_identity WHERE id = 1",
                [],
                |row| row.get(0),
            )
            .optional()?;
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        PrivateKey::from_pkcs8(
            sealed.as_bytes(),
            Some(storage_key.kdh_passphrase().as_bytes()),
        )
        .map(Some)
        .map_err(|error| {
            VaultError::Refused(format!(
                "the sealed KDH key does not open under this vault's storage key: {error}"
            ))
        })
    }
}
