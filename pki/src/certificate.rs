//! Certificates and certificate requests read from DER or PEM, their RSA keys, and [`VerifiedCertificate`].

use std::time::SystemTime;

use const_oid::ObjectIdentifier;
use der::{Decode, Encode};
use rsa::RsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;
use x509_cert::Certificate;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;

use crate::encoding::{first_element, parse_error, to_der};
use crate::signature::verify_signature;
use crate::{MIN_RSA_BITS, PkiError, Role};

/// The algorithm OID of an RSA public key (rsaEncryption).
pub(crate) const RSA_ENCRYPTION: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// A certificate whose signature, validity, role, key usage and revocation status were checked.
#[derive(Clone, Debug)]
pub struct VerifiedCertificate {
    pub(crate) role: Role,
    pub(crate) certificate: Certificate,
    pub(crate) public_key: RsaPublicKey,
}

impl VerifiedCertificate {
    /// The role it was verified for.
    pub fn role(&self) -> Role {
        self.role
    }
    /// The subject name.
    pub fn subject(&self) -> &Name {
        self.certificate.tbs_certificate().subject()
    }
    /// The serial number.
    pub fn serial(&self) -> &SerialNumber {
        self.certificate.tbs_certificate().serial_number()
    }
    /// The subject's RSA public key.
    pub fn public_key(&self) -> &RsaPublicKey {
        &self.public_key
    }
    /// The whole certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }
    /// Whether the subject names `name`: a commonName (2.5.4.3) or serialNumber (2.5.4.5)
    /// attribute of the subject whose value is exactly `name` (case-sensitive). The appliance
    /// uses it to check that a device certificate is for the terminal's hardware serial.
    pub fn subject_names(&self, name: &str) -> bool {
        const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
        const SERIAL_NUMBER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.5");
        self.subject()
            .iter()
            .filter(|attribute| attribute.oid == COMMON_NAME || attribute.oid == SERIAL_NUMBER)
            .filter_map(|attribute| {
                x509_cert::ext::pkix::name::DirectoryString::try_from(&attribute.value).ok()
            })
            .any(|value| value.value() == name)
    }
    /// notAfter, for the caller's own bookkeeping.
    pub fn not_after(&self) -> SystemTime {
        self.certificate
            .tbs_certificate()
            .validity()
            .not_after
            .to_system_time()
    }
}

/// A certificate (DER, or PEM "CERTIFICATE") as DER, after checking that it parses. Nothing
/// else is checked: verify it with [`TrustAnchors::verify`](crate::TrustAnchors::verify).
pub fn certificate_der(bytes: &[u8]) -> Result<Vec<u8>, PkiError> {
    let der = to_der(bytes, "CERTIFICATE", "certificate")?;
    Certificate::from_der(&der).map_err(|e| parse_error("certificate", e))?;
    Ok(der)
}

/// Parses a certificate, DER or PEM.
pub(crate) fn parse_certificate(bytes: &[u8], what: &'static str) -> Result<Certificate, PkiError> {
    let der = to_der(bytes, "CERTIFICATE", what)?;
    Certificate::from_der(&der).map_err(|e| parse_error(what, e))
}

/// Parses a PKCS#10 request (DER or PEM), checks its self-signature, and returns its subject
/// and RSA key.
pub(crate) fn parse_request(bytes: &[u8]) -> Result<(Name, RsaPublicKey), PkiError> {
    const WHAT: &str = "certificate request";
    let der = to_der(bytes, "CERTIFICATE REQUEST", WHAT)?;
    let request = x509_cert::request::CertReq::from_der(&der).map_err(|e| parse_error(WHAT, e))?;
    let info =
        first_element(&der).ok_or_else(|| parse_error(WHAT, "no CertificationRequestInfo"))?;
    let spki_der = request
        .info
        .public_key
        .to_der()
        .map_err(|e| parse_error(WHAT, e))?;
    if request.info.public_key.algorithm.oid != RSA_ENCRYPTION {
        return Err(PkiError::NotRsa {
            what: WHAT.into(),
            detail: format!("algorithm {}", request.info.public_key.algorithm.oid),
        });
    }
    let key = RsaPublicKey::from_public_key_der(&spki_der).map_err(|e| PkiError::NotRsa {
        what: WHAT.into(),
        detail: e.to_string(),
    })?;
    let bits = key.n().bits() as usize;
    if bits < MIN_RSA_BITS {
        return Err(PkiError::KeyTooShort {
            what: WHAT.into(),
            bits,
        });
    }
    // A request is signed by the key it carries; the role only labels errors.
    verify_signature(
        &key,
        &request.algorithm,
        &request.algorithm,
        info,
        &request.signature,
        WHAT,
        Role::KeyDistributionHost,
    )
    .map_err(|e| match e {
        PkiError::BadSignature { .. } => PkiError::BadRequestSignature,
        other => other,
    })?;
    Ok((request.info.subject, key))
}

/// The certificate's RSA public key, refused when it is not RSA or shorter than [`MIN_RSA_BITS`].
pub(crate) fn rsa_key(certificate: &Certificate, what: &str) -> Result<RsaPublicKey, PkiError> {
    let spki = certificate.tbs_certificate().subject_public_key_info();
    if spki.algorithm.oid != RSA_ENCRYPTION {
        return Err(PkiError::NotRsa {
            what: what.to_string(),
            detail: format!("algorithm {}", spki.algorithm.oid),
        });
    }
    let der = spki.to_der().map_err(|e| PkiError::NotRsa {
        what: what.to_string(),
        detail: e.to_string(),
    })?;
    let key = RsaPublicKey::from_public_key_der(&der).map_err(|e| PkiError::NotRsa {
        what: what.to_string(),
        detail: e.to_string(),
    })?;
    let bits = key.n().bits() as usize;
    if bits < MIN_RSA_BITS {
        return Err(PkiError::KeyTooShort {
            what: what.to_string(),
            bits,
        });
    }
    Ok(key)
}
