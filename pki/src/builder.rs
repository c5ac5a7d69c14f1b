//! Certificates and CRLs made by keymother itself, with the same rules the verifier applies:
//! role CAs (self-signed, cA=TRUE, keyCertSign and cRLSign), leaves of one role (cA=FALSE,
//! keyUsage keyEncipherment for terminals, digitalSignature for the KDH and operators), all
//! RSA PKCS#1 v1.5 with SHA-256.

use std::time::SystemTime;

use der::Encode;
use rsa::pkcs1v15::SigningKey;
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha2::Sha256;
use spki::{EncodePublicKey, SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};
use x509_cert::Certificate;
use x509_cert::builder::profile::BuilderProfile;
use x509_cert::builder::{Builder, CertificateBuilder, CrlBuilder};
use x509_cert::crl::RevokedCert;
use x509_cert::ext::pkix::crl::CrlNumber;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, KeyUsage, KeyUsages, SubjectKeyIdentifier,
};
use x509_cert::ext::{Extension, ToExtension};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

use crate::certificate::{parse_certificate, parse_request};
use crate::{PkiError, Role};

/// What is being issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A self-signed role CA.
    Ca,
    /// A leaf of a role.
    Leaf(Role),
}

struct Profile {
    issuer: Name,
    subject: Name,
    kind: Kind,
}

impl BuilderProfile for Profile {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    fn build_extensions(
        &self,
        spk: SubjectPublicKeyInfoRef<'_>,
        issuer_spk: SubjectPublicKeyInfoRef<'_>,
        tbs: &x509_cert::TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        let mut extensions: Vec<Extension> = Vec::new();
        let ski = SubjectKeyIdentifier::try_from(spk)?;
        let aki_id = SubjectKeyIdentifier::try_from(issuer_spk)?;
        extensions.push(
            BasicConstraints {
                ca: self.kind == Kind::Ca,
                path_len_constraint: if self.kind == Kind::Ca { Some(0) } else { None },
            }
            .to_extension(tbs.subject(), &extensions)?,
        );
        let usage = match self.kind {
            Kind::Ca => KeyUsages::KeyCertSign | KeyUsages::CRLSign,
            Kind::Leaf(Role::TerminalDevice) => KeyUsages::KeyEncipherment.into(),
            Kind::Leaf(Role::KeyDistributionHost | Role::Operator) => {
                KeyUsages::DigitalSignature.into()
            }
        };
        extensions.push(KeyUsage(usage).to_extension(tbs.subject(), &extensions)?);
        extensions.push(ski.to_extension(tbs.subject(), &extensions)?);
        extensions.push(
            AuthorityKeyIdentifier {
                key_identifier: Some(aki_id.0),
                ..Default::default()
            }
            .to_extension(tbs.subject(), &extensions)?,
        );
        Ok(extensions)
    }
}

fn build_error(e: impl std::fmt::Display) -> PkiError {
    PkiError::Build(e.to_string())
}

fn time(t: SystemTime) -> Result<Time, PkiError> {
    Time::try_from(t).map_err(build_error)
}

fn spki(key: &RsaPublicKey) -> Result<SubjectPublicKeyInfoOwned, PkiError> {
    let der = key.to_public_key_der().map_err(build_error)?;
    SubjectPublicKeyInfoOwned::try_from(der.as_bytes()).map_err(build_error)
}

/// Validity period and serial of a certificate to issue.
#[derive(Clone, Debug)]
pub struct Issuance {
    /// The serial number (positive, at most 20 bytes; unique per CA).
    pub serial: Vec<u8>,
    /// notBefore.
    pub not_before: SystemTime,
    /// notAfter.
    pub not_after: SystemTime,
}

impl Issuance {
    fn parts(&self) -> Result<(SerialNumber, Validity), PkiError> {
        Ok((
            SerialNumber::new(&self.serial).map_err(build_error)?,
            Validity::new(time(self.not_before)?, time(self.not_after)?),
        ))
    }
}

/// Parses an RFC 4514 name such as `CN=keymother KDH,O=Example Acquirer`.
pub fn name(rfc4514: &str) -> Result<Name, PkiError> {
    rfc4514.parse().map_err(build_error)
}

/// A self-signed CA certificate for a role, DER.
pub fn ca_certificate(
    subject: &Name,
    key: &RsaPrivateKey,
    issuance: &Issuance,
) -> Result<Vec<u8>, PkiError> {
    let (serial, validity) = issuance.parts()?;
    let profile = Profile {
        issuer: subject.clone(),
        subject: subject.clone(),
        kind: Kind::Ca,
    };
    let builder = CertificateBuilder::new(profile, serial, validity, spki(&key.to_public_key())?)
        .map_err(build_error)?;
    let signer = SigningKey::<Sha256>::new(key.clone());
    let cert: Certificate = builder
        .build::<_, rsa::pkcs1v15::Signature>(&signer)
        .map_err(build_error)?;
    cert.to_der().map_err(build_error)
}

/// A leaf certificate of `role` for `subject_key`, issued by the CA `issuer` (DER or PEM)
/// with its private key, DER.
pub fn leaf_certificate(
    role: Role,
    subject: &Name,
    subject_key: &RsaPublicKey,
    issuer: &[u8],
    issuer_key: &RsaPrivateKey,
    issuance: &Issuance,
) -> Result<Vec<u8>, PkiError> {
    let issuer = parse_certificate(issuer, "CA certificate")?;
    let (serial, validity) = issuance.parts()?;
    let profile = Profile {
        issuer: issuer.tbs_certificate().subject().clone(),
        subject: subject.clone(),
        kind: Kind::Leaf(role),
    };
    let builder = CertificateBuilder::new(profile, serial, validity, spki(subject_key)?)
        .map_err(build_error)?;
    let signer = SigningKey::<Sha256>::new(issuer_key.clone());
    let cert: Certificate = builder
        .build::<_, rsa::pkcs1v15::Signature>(&signer)
        .map_err(build_error)?;
    cert.to_der().map_err(build_error)
}

/// A leaf certificate of `role` for the key and subject of a PKCS#10 certificate request
/// (DER or PEM "CERTIFICATE REQUEST", such as [`crate::keys::certificate_request`] makes),
/// issued by the CA `issuer` (DER or PEM) with its private key, DER. The request's own
/// signature (sha256WithRSAEncryption or RSASSA-PSS SHA-256) is checked first, so a request
/// whose signer does not hold the key is refused; its RSA key must have at least
/// [`crate::MIN_RSA_BITS`] bits. The extensions are the role's, whatever the request asks for.
pub fn leaf_certificate_from_request(
    role: Role,
    request: &[u8],
    issuer: &[u8],
    issuer_key: &RsaPrivateKey,
    issuance: &Issuance,
) -> Result<Vec<u8>, PkiError> {
    let (subject, subject_key) = parse_request(request)?;
    leaf_certificate(role, &subject, &subject_key, issuer, issuer_key, issuance)
}

/// A v2 CRL issued by the CA `issuer` (DER or PEM), revoking `revoked` (serial, date), DER.
pub fn crl(
    issuer: &[u8],
    issuer_key: &RsaPrivateKey,
    crl_number: u32,
    this_update: SystemTime,
    next_update: SystemTime,
    revoked: &[(Vec<u8>, SystemTime)],
) -> Result<Vec<u8>, PkiError> {
    let issuer = parse_certificate(issuer, "CA certificate")?;
    let number = CrlNumber::try_from(crl_number).map_err(build_error)?;
    let mut entries: Vec<RevokedCert> = Vec::with_capacity(revoked.len());
    for (serial, date) in revoked {
        entries.push(RevokedCert {
            serial_number: SerialNumber::new(serial).map_err(build_error)?,
            revocation_date: time(*date)?,
            crl_entry_extensions: None,
        });
    }
    let builder = CrlBuilder::new_with_this_update(&issuer, number, time(this_update)?)
        .map_err(build_error)?
        .with_next_update(Some(time(next_update)?))
        .with_certificates(entries.into_iter());
    let signer = SigningKey::<Sha256>::new(issuer_key.clone());
    let list = builder
        .build::<_, rsa::pkcs1v15::Signature>(&signer)
        .map_err(build_error)?;
    list.to_der().map_err(build_error)
}
