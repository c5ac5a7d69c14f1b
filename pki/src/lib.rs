//! X.509 for keymother: one trust anchor per role, certificate and CRL verification.
//!
//! keymother meets three kinds of certificate, each issued by its own CA:
//!
//! | role | issued by | what the leaf's key does | keyUsage required |
//! | --- | --- | --- | --- |
//! | [`Role::TerminalDevice`] | the terminal manufacturer's CA | receives key blocks (TR-34 key transport) | keyEncipherment |
//! | [`Role::KeyDistributionHost`] | the KDH CA | the appliance signs what it sends | digitalSignature |
//! | [`Role::Operator`] | the operator CA | an operator signs commands | digitalSignature |
//!
//! The roles are separate trust anchors ([`TrustAnchors`]): a certificate is only ever checked
//! against the CA of the role it is presented for, so a terminal certificate can never pass as
//! the KDH or as an operator, nor the other way round. The weakness of TR-34 deployments with one
//! shared root (any terminal certificate is also a valid "KDH") is excluded by construction:
//! [`TrustAnchors::new`] refuses two roles sharing a CA certificate, a CA key or a CA name. No
//! extended key usage or policy OID is required: the project has no OID arc of its own, and the
//! anchor already decides the role. When a certificate of one role is presented for another, the
//! error names both ([`PkiError::WrongRole`]).
//!
//! Signatures: RSA PKCS#1 v1.5 with SHA-256 (`sha256WithRSAEncryption`) and RSASSA-PSS with
//! SHA-256 and MGF1-SHA-256. RSA keys of fewer than 2048 bits are refused. CA certificates must
//! be self-signed, have basicConstraints cA=TRUE and keyUsage keyCertSign (and cRLSign to sign
//! a CRL); leaves must not be CAs. Validity periods of the leaf, the CA and the CRL are checked
//! against the instant the caller passes, so tests and an appliance without a network clock
//! decide explicitly what "now" is.
//!
//! Beside verification: [`keys`] (RSA private keys: generation, PKCS#8 clear and encrypted,
//! certificate requests), [`login`] (operator login by challenge and signature),
//! [`key_transport`] (certificate-mode delivery of a master key to a terminal) and [`builder`]
//! (certificates and CRLs made by keymother).

use std::fmt;
use std::time::SystemTime;

use const_oid::ObjectIdentifier;
use der::asn1::BitString;
use der::{Decode, Encode};
use rsa::RsaPublicKey;
use rsa::pkcs1::RsaPssParamsOwned;
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use rsa::traits::PublicKeyParts;
use sha2::Sha256;
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_cert::crl::CertificateList;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::Time;

pub mod builder;
pub mod key_transport;
pub mod keys;
pub mod login;
#[doc(hidden)]
pub mod testing;

pub use keys::PrivateKey;

/// The crates of the public API, re-exported so users get the same versions.
pub use {der, rsa, x509_cert};

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const RSASSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const MGF1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.8");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");

/// Extensions keymother understands; a certificate with any other extension marked critical
/// is refused, as RFC 5280 section 4.2 requires.
const KNOWN_CERT_EXTENSIONS: [&str; 7] = [
    "2.5.29.14", // subjectKeyIdentifier
    "2.5.29.15", // keyUsage
    "2.5.29.17", // subjectAltName
    "2.5.29.19", // basicConstraints
    "2.5.29.32", // certificatePolicies
    "2.5.29.35", // authorityKeyIdentifier
    "2.5.29.37", // extKeyUsage
];
/// The same for CRLs and CRL entries (delta CRLs, issuing distribution points and indirect
/// CRLs are not supported, so those critical extensions are refused).
const KNOWN_CRL_EXTENSIONS: [&str; 4] = [
    "2.5.29.20", // cRLNumber
    "2.5.29.35", // authorityKeyIdentifier
    "2.5.29.21", // reasonCode (entry)
    "2.5.29.24", // invalidityDate (entry)
];

fn check_critical<'a>(
    extensions: impl IntoIterator<Item = &'a x509_cert::ext::Extension>,
    known: &[&str],
    what: &str,
) -> Result<(), PkiError> {
    for ext in extensions {
        let oid = ext.extn_id.to_string();
        if ext.critical && !known.contains(&oid.as_str()) {
            return Err(PkiError::UnknownCriticalExtension {
                what: what.to_string(),
                oid,
            });
        }
    }
    Ok(())
}

/// The smallest RSA modulus accepted, in bits, for CAs and leaves alike.
pub const MIN_RSA_BITS: usize = 2048;

/// What a certificate is for. Each role has its own CA in [`TrustAnchors`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// A POS terminal's device certificate, issued by the terminal manufacturer's CA.
    TerminalDevice,
    /// The appliance's key distribution host certificate (TR-34 KDH).
    KeyDistributionHost,
    /// An operator's certificate.
    Operator,
}

impl Role {
    /// All roles, in a fixed order.
    pub const ALL: [Role; 3] = [
        Role::TerminalDevice,
        Role::KeyDistributionHost,
        Role::Operator,
    ];

    /// The keyUsage bit a leaf of this role must have.
    pub fn required_key_usage(self) -> &'static str {
        match self {
            Role::TerminalDevice => "keyEncipherment",
            Role::KeyDistributionHost | Role::Operator => "digitalSignature",
        }
    }

    fn has_required_key_usage(self, usage: &KeyUsage) -> bool {
        match self {
            Role::TerminalDevice => usage.key_encipherment(),
            Role::KeyDistributionHost | Role::Operator => usage.digital_signature(),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::TerminalDevice => "terminal device",
            Role::KeyDistributionHost => "key distribution host (KDH)",
            Role::Operator => "operator",
        })
    }
}

/// Which of a validity period's ends was crossed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subject {
    /// The leaf certificate.
    Leaf,
    /// The role's CA certificate.
    Ca,
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Subject::Leaf => "certificate",
            Subject::Ca => "CA certificate",
        })
    }
}

/// Everything that can go wrong. Each message names what was checked and, for dates, the dates.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PkiError {
    /// The bytes are not a DER or PEM certificate / CRL.
    #[error("cannot parse the {what}: {detail}")]
    Parse {
        /// "certificate", "CRL", ...
        what: &'static str,
        /// The decoder's message.
        detail: String,
    },
    /// The key is not RSA, or not a valid RSA public key.
    #[error("the {what}'s public key is not a usable RSA key: {detail}")]
    NotRsa {
        /// Whose key.
        what: String,
        /// Why.
        detail: String,
    },
    /// The RSA key is too short.
    #[error("the {what}'s RSA key has {bits} bits; at least {MIN_RSA_BITS} are required")]
    KeyTooShort {
        /// Whose key.
        what: String,
        /// Its size.
        bits: usize,
    },
    /// A signature algorithm other than RSA PKCS#1 v1.5 or PSS with SHA-256.
    #[error("the {what} is signed with an unsupported algorithm ({oid} {detail})")]
    UnsupportedSignatureAlgorithm {
        /// What is signed.
        what: String,
        /// The algorithm's OID.
        oid: String,
        /// More detail (PSS parameters).
        detail: String,
    },
    /// The signature does not verify.
    #[error("the {what}'s signature does not verify under the {role} CA")]
    BadSignature {
        /// What is signed.
        what: String,
        /// The role whose CA was used.
        role: Role,
    },
    /// A CA certificate given as trust anchor is not a CA.
    #[error("the {role} CA certificate is not usable as a trust anchor: {detail}")]
    BadAnchor {
        /// The role.
        role: Role,
        /// Why.
        detail: String,
    },
    /// Two roles were given the same CA (certificate, key or name).
    #[error("the {first} CA and the {second} CA share {what}; each role needs its own CA")]
    SharedAnchor {
        /// One role.
        first: Role,
        /// The other.
        second: Role,
        /// "a public key" / "a subject name".
        what: &'static str,
    },
    /// The certificate was issued by the CA of another role.
    #[error(
        "a {presented} certificate was presented as a {expected} certificate \
         (issued by the {presented} CA, not the {expected} CA)"
    )]
    WrongRole {
        /// The role it was presented for.
        expected: Role,
        /// The role whose CA issued it.
        presented: Role,
    },
    /// The certificate was issued by none of the trust anchors.
    #[error("the certificate was not issued by the {role} CA (issuer: {issuer})")]
    UnknownIssuer {
        /// The role it was presented for.
        role: Role,
        /// Its issuer name.
        issuer: String,
    },
    /// Before notBefore.
    #[error("the {subject} is not yet valid: notBefore is {not_before}, now is {now}")]
    NotYetValid {
        /// Leaf or CA.
        subject: Subject,
        /// notBefore.
        not_before: String,
        /// The instant checked.
        now: String,
    },
    /// After notAfter.
    #[error("the {subject} has expired: notAfter was {not_after}, now is {now}")]
    Expired {
        /// Leaf or CA.
        subject: Subject,
        /// notAfter.
        not_after: String,
        /// The instant checked.
        now: String,
    },
    /// A leaf with basicConstraints cA=TRUE.
    #[error("the {role} certificate is a CA certificate (basicConstraints cA=TRUE)")]
    LeafIsCa {
        /// The role.
        role: Role,
    },
    /// keyUsage absent or without the role's bit.
    #[error("the {role} certificate's key usage lacks {required} (it has: {present})")]
    KeyUsageMissing {
        /// The role.
        role: Role,
        /// The bit the role needs.
        required: &'static str,
        /// The bits present, or "no keyUsage extension".
        present: String,
    },
    /// keyUsage with keyCertSign or cRLSign on a leaf.
    #[error("the {role} certificate's key usage allows {usage}, which only a CA may have")]
    KeyUsageForbidden {
        /// The role.
        role: Role,
        /// The forbidden bit.
        usage: &'static str,
    },
    /// An extension could not be decoded, or appears twice.
    #[error("the {what}'s {extension} extension is malformed or repeated")]
    BadExtension {
        /// Whose.
        what: String,
        /// Which.
        extension: &'static str,
    },
    /// A critical extension keymother does not implement.
    #[error("the {what} has a critical extension keymother does not understand ({oid})")]
    UnknownCriticalExtension {
        /// Whose.
        what: String,
        /// Its OID.
        oid: String,
    },
    /// The CRL was issued by another CA.
    #[error("the CRL was issued by {issuer}, not by the {role} CA")]
    CrlWrongIssuer {
        /// The role.
        role: Role,
        /// The CRL's issuer.
        issuer: String,
    },
    /// thisUpdate in the future.
    #[error("the CRL is not yet valid: thisUpdate is {this_update}, now is {now}")]
    CrlNotYetValid {
        /// thisUpdate.
        this_update: String,
        /// The instant checked.
        now: String,
    },
    /// nextUpdate in the past: a newer CRL should exist.
    #[error("the CRL is out of date: nextUpdate was {next_update}, now is {now}")]
    CrlOutOfDate {
        /// nextUpdate.
        next_update: String,
        /// The instant checked.
        now: String,
    },
    /// A CRL without nextUpdate (RFC 5280 requires it).
    #[error("the CRL has no nextUpdate, so its freshness cannot be judged")]
    CrlNoNextUpdate,
    /// The serial is on the CRL.
    #[error("the {role} certificate with serial {serial} was revoked on {date}")]
    Revoked {
        /// The role.
        role: Role,
        /// The serial, hex.
        serial: String,
        /// The revocation date.
        date: String,
    },
    /// Making a certificate or CRL failed.
    #[error("cannot build the certificate or CRL: {0}")]
    Build(String),
    /// "now" is outside what X.509 can express.
    #[error("the time to check against is out of range")]
    BadNow,
    /// A time to sign with is before 1970 or otherwise out of range.
    #[error("the {what} is before 1970-01-01 or out of range")]
    BadTime {
        /// Which time ("signing time", ...).
        what: &'static str,
    },
    /// [`PrivateKey::generate`] was asked for a size outside 2048..=4096 bits.
    #[error(
        "cannot generate an RSA key of {bits} bits: the size must be {MIN_RSA_BITS} to {MAX_GENERATED_RSA_BITS} bits"
    )]
    KeySize {
        /// The size asked for.
        bits: usize,
    },
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
    /// An RSA private-key operation (generation, encoding, signing) failed.
    #[error("the RSA private-key operation failed: {0}")]
    Rsa(String),
    /// The private key is encrypted and no passphrase was given.
    #[error(
        "the private key is encrypted (ENCRYPTED PRIVATE KEY); a passphrase is needed to read it"
    )]
    PassphraseRequired,
    /// The encrypted private key does not decrypt under the passphrase.
    #[error("the encrypted private key does not decrypt: wrong passphrase, or the file is damaged")]
    WrongPassphrase,
    /// A passphrase was given for a private key stored in clear (refused, see
    /// [`PrivateKey::from_pkcs8`]).
    #[error(
        "a passphrase was given but the private key is not encrypted (PRIVATE KEY); refused, so a \
         key stored in clear is not taken for a protected one: give no passphrase, or encrypt \
         the key first (openssl pkcs8 -topk8 -v2 aes-256-cbc)"
    )]
    PassphraseNotNeeded,
    /// The private key is encrypted with a scheme or parameters keymother does not accept.
    #[error(
        "the private key is encrypted in a way keymother does not accept ({detail}); \
         re-encrypt it with openssl pkcs8 -topk8 -v2 aes-256-cbc"
    )]
    UnsupportedKeyEncryption {
        /// The scheme, algorithm or parameter refused.
        detail: String,
    },
    /// A PKCS#1 private key ("RSA PRIVATE KEY"), which is not accepted.
    #[error(
        "PKCS#1 'RSA PRIVATE KEY' is not accepted; convert with openssl pkcs8 -topk8 \
         (add -v2 aes-256-cbc to encrypt it, or -nocrypt to keep it in clear)"
    )]
    Pkcs1PrivateKey,
    /// The bytes are not a PKCS#8 private key at all.
    #[error(
        "not a PKCS#8 private key (PEM \"PRIVATE KEY\" or \"ENCRYPTED PRIVATE KEY\", or their DER): {detail}"
    )]
    NotPkcs8 {
        /// What was found instead, or the decoder's message.
        detail: String,
    },
    /// A PKCS#8 private key of another algorithm than RSA.
    #[error(
        "the private key is not an RSA key (algorithm {algorithm}); keymother uses RSA keys only"
    )]
    PrivateKeyNotRsa {
        /// The key's algorithm OID (and name when known).
        algorithm: String,
    },
    /// An RSA private key whose parts are malformed or inconsistent.
    #[error("the RSA private key is malformed or inconsistent: {detail}")]
    BadPrivateKey {
        /// The decoder's or the consistency check's message.
        detail: String,
    },
    /// No CA was given for the role (see [`TrustAnchors::for_roles`]).
    #[error("no {role} CA is configured, so {role} certificates and CRLs cannot be checked")]
    NoAnchor {
        /// The role.
        role: Role,
    },
    /// [`TrustAnchors::for_roles`] was given no CA at all.
    #[error("no CA certificate was given for any role")]
    NoAnchors,
    /// A certificate request whose signature does not verify under the key it carries.
    #[error("the certificate request's signature does not verify under the public key it carries")]
    BadRequestSignature,
    /// A private key used with a certificate that holds another public key.
    #[error("the private key does not belong to the {what}: their public keys differ")]
    KeyMismatch {
        /// The certificate ("operator certificate", ...).
        what: &'static str,
    },
}

/// The largest RSA key [`PrivateKey::generate`] makes, in bits.
pub const MAX_GENERATED_RSA_BITS: usize = 4096;

/// A certificate whose signature, validity, role, key usage and revocation status were checked.
#[derive(Clone, Debug)]
pub struct VerifiedCertificate {
    role: Role,
    certificate: Certificate,
    public_key: RsaPublicKey,
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

/// A parsed X.509 CRL (v1 or v2). Its signature and dates are checked by [`TrustAnchors::verify`]
/// (or [`TrustAnchors::check_crl`]) against the role's CA.
#[derive(Clone, Debug)]
pub struct Crl {
    list: CertificateList,
    tbs: Vec<u8>,
}

impl Crl {
    /// Parses a CRL in DER or PEM (`-----BEGIN X509 CRL-----`).
    pub fn parse(bytes: &[u8]) -> Result<Crl, PkiError> {
        let der = to_der(bytes, "X509 CRL", "CRL")?;
        let list = CertificateList::from_der(&der).map_err(|e| parse_error("CRL", e))?;
        let tbs = first_element(&der)
            .ok_or_else(|| parse_error("CRL", "no TBSCertList"))?
            .to_vec();
        Ok(Crl { list, tbs })
    }

    /// The issuer's name.
    pub fn issuer(&self) -> &Name {
        &self.list.tbs_cert_list.issuer
    }

    /// Whether `serial` is listed (without any check of the CRL itself).
    pub fn lists(&self, serial: &SerialNumber) -> bool {
        self.revocation_date(serial).is_some()
    }

    fn revocation_date(&self, serial: &SerialNumber) -> Option<Time> {
        self.list
            .tbs_cert_list
            .revoked_certificates
            .as_ref()?
            .iter()
            .find(|r| r.serial_number.as_bytes() == serial.as_bytes())
            .map(|r| r.revocation_date)
    }
}

struct Anchor {
    certificate: Certificate,
    public_key: RsaPublicKey,
    crl_sign: bool,
}

/// One CA certificate per [`Role`].
pub struct TrustAnchors {
    device: Option<Anchor>,
    kdh: Option<Anchor>,
    operator: Option<Anchor>,
}

impl fmt::Debug for TrustAnchors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("TrustAnchors");
        for role in Role::ALL {
            d.field(
                &role.to_string(),
                &self.anchor(role).map_or_else(
                    || "none".to_string(),
                    |a| a.certificate.tbs_certificate().subject().to_string(),
                ),
            );
        }
        d.finish()
    }
}

impl TrustAnchors {
    /// Takes the three CA certificates (each DER or PEM). Each must be a self-signed RSA CA
    /// (basicConstraints cA=TRUE, keyUsage keyCertSign, key of at least 2048 bits), and no two
    /// roles may share a CA key or a CA name.
    pub fn new(device_ca: &[u8], kdh_ca: &[u8], operator_ca: &[u8]) -> Result<Self, PkiError> {
        TrustAnchors::for_roles(Some(device_ca), Some(kdh_ca), Some(operator_ca))
    }

    /// Like [`TrustAnchors::new`], for the roles given only: a terminal knows just the KDH CA
    /// (`for_roles(None, Some(kdh_ca), None)`). Verifying a certificate or a CRL of a role
    /// without a CA is refused ([`PkiError::NoAnchor`]); a certificate of a role without a CA
    /// presented for another role is reported as [`PkiError::UnknownIssuer`], since its issuer
    /// is not known. At least one CA must be given.
    pub fn for_roles(
        device_ca: Option<&[u8]>,
        kdh_ca: Option<&[u8]>,
        operator_ca: Option<&[u8]>,
    ) -> Result<Self, PkiError> {
        let parse =
            |role: Role, bytes: Option<&[u8]>| bytes.map(|b| Anchor::parse(role, b)).transpose();
        let anchors = TrustAnchors {
            device: parse(Role::TerminalDevice, device_ca)?,
            kdh: parse(Role::KeyDistributionHost, kdh_ca)?,
            operator: parse(Role::Operator, operator_ca)?,
        };
        if Role::ALL.iter().all(|&role| anchors.anchor(role).is_none()) {
            return Err(PkiError::NoAnchors);
        }
        for (i, &first) in Role::ALL.iter().enumerate() {
            for &second in &Role::ALL[i + 1..] {
                let (Some(a), Some(b)) = (anchors.anchor(first), anchors.anchor(second)) else {
                    continue;
                };
                if a.public_key == b.public_key {
                    return Err(PkiError::SharedAnchor {
                        first,
                        second,
                        what: "a public key",
                    });
                }
                if a.certificate.tbs_certificate().subject()
                    == b.certificate.tbs_certificate().subject()
                {
                    return Err(PkiError::SharedAnchor {
                        first,
                        second,
                        what: "a subject name",
                    });
                }
            }
        }
        Ok(anchors)
    }

    /// The CA certificate of `role`, if one was given.
    pub fn ca_certificate(&self, role: Role) -> Option<&Certificate> {
        self.anchor(role).map(|a| &a.certificate)
    }

    fn anchor(&self, role: Role) -> Option<&Anchor> {
        match role {
            Role::TerminalDevice => self.device.as_ref(),
            Role::KeyDistributionHost => self.kdh.as_ref(),
            Role::Operator => self.operator.as_ref(),
        }
    }

    fn required_anchor(&self, role: Role) -> Result<&Anchor, PkiError> {
        self.anchor(role).ok_or(PkiError::NoAnchor { role })
    }

    /// Verifies `leaf` (DER or PEM) as a certificate of `role` at the instant `now`: the
    /// signature by the role's CA, the validity periods of the leaf and the CA, the leaf's
    /// basicConstraints and keyUsage, and, when `crl` is given, the CRL (issuer, signature,
    /// thisUpdate/nextUpdate) and the leaf's serial on it.
    pub fn verify(
        &self,
        role: Role,
        leaf: &[u8],
        now: SystemTime,
        crl: Option<&Crl>,
    ) -> Result<VerifiedCertificate, PkiError> {
        let now_dt = der::DateTime::from_system_time(now).map_err(|_| PkiError::BadNow)?;
        let der = to_der(leaf, "CERTIFICATE", "certificate")?;
        let certificate = Certificate::from_der(&der).map_err(|e| parse_error("certificate", e))?;
        let tbs = first_element(&der).ok_or_else(|| parse_error("certificate", "no TBS"))?;
        let tbs_cert = certificate.tbs_certificate();
        let what = format!("{role} certificate");

        // 1. Issued by this role's CA, and no other.
        let anchor = self.required_anchor(role)?;
        let issued_by = |a: &Anchor| {
            tbs_cert.issuer() == a.certificate.tbs_certificate().subject()
                && verify_signature(
                    &a.public_key,
                    certificate.signature_algorithm(),
                    tbs_cert.signature(),
                    tbs,
                    certificate.signature(),
                    &what,
                    role,
                )
                .is_ok()
        };
        if !issued_by(anchor) {
            if let Some(&presented) = Role::ALL
                .iter()
                .find(|&&r| r != role && self.anchor(r).is_some_and(issued_by))
            {
                return Err(PkiError::WrongRole {
                    expected: role,
                    presented,
                });
            }
            if tbs_cert.issuer() != anchor.certificate.tbs_certificate().subject() {
                return Err(PkiError::UnknownIssuer {
                    role,
                    issuer: tbs_cert.issuer().to_string(),
                });
            }
            // Same issuer name: report the precise signature failure.
            verify_signature(
                &anchor.public_key,
                certificate.signature_algorithm(),
                tbs_cert.signature(),
                tbs,
                certificate.signature(),
                &what,
                role,
            )?;
        }

        // 2. Validity of the CA and the leaf.
        check_validity(Subject::Ca, &anchor.certificate, now, &now_dt)?;
        check_validity(Subject::Leaf, &certificate, now, &now_dt)?;

        // 3. No critical extension unknown to us; not a CA; keyUsage right for the role.
        check_critical(
            tbs_cert.extensions().into_iter().flatten(),
            &KNOWN_CERT_EXTENSIONS,
            &what,
        )?;
        let bc =
            tbs_cert
                .get_extension::<BasicConstraints>()
                .map_err(|_| PkiError::BadExtension {
                    what: what.clone(),
                    extension: "basicConstraints",
                })?;
        if let Some((_, bc)) = bc
            && bc.ca
        {
            return Err(PkiError::LeafIsCa { role });
        }
        let ku = tbs_cert
            .get_extension::<KeyUsage>()
            .map_err(|_| PkiError::BadExtension {
                what: what.clone(),
                extension: "keyUsage",
            })?;
        let Some((_, ku)) = ku else {
            return Err(PkiError::KeyUsageMissing {
                role,
                required: role.required_key_usage(),
                present: "no keyUsage extension".into(),
            });
        };
        if ku.key_cert_sign() {
            return Err(PkiError::KeyUsageForbidden {
                role,
                usage: "keyCertSign",
            });
        }
        if ku.crl_sign() {
            return Err(PkiError::KeyUsageForbidden {
                role,
                usage: "cRLSign",
            });
        }
        if !role.has_required_key_usage(&ku) {
            return Err(PkiError::KeyUsageMissing {
                role,
                required: role.required_key_usage(),
                present: describe_key_usage(&ku),
            });
        }

        // 4. The subject's RSA key.
        let public_key = rsa_key(&certificate, &what)?;

        // 5. Revocation.
        if let Some(crl) = crl {
            self.check_crl(role, crl, now)?;
            if let Some(date) = crl.revocation_date(tbs_cert.serial_number()) {
                return Err(PkiError::Revoked {
                    role,
                    serial: tbs_cert.serial_number().to_string(),
                    date: date.to_string(),
                });
            }
        }

        Ok(VerifiedCertificate {
            role,
            certificate,
            public_key,
        })
    }

    /// Checks a CRL for `role`: issued and signed by the role's CA (which must have cRLSign),
    /// thisUpdate not in the future, nextUpdate present and not passed.
    pub fn check_crl(&self, role: Role, crl: &Crl, now: SystemTime) -> Result<(), PkiError> {
        let now_dt = der::DateTime::from_system_time(now).map_err(|_| PkiError::BadNow)?;
        let anchor = self.required_anchor(role)?;
        let tbs = &crl.list.tbs_cert_list;
        if &tbs.issuer != anchor.certificate.tbs_certificate().subject() {
            return Err(PkiError::CrlWrongIssuer {
                role,
                issuer: tbs.issuer.to_string(),
            });
        }
        if !anchor.crl_sign {
            return Err(PkiError::BadAnchor {
                role,
                detail: "its keyUsage lacks cRLSign, so it cannot sign a CRL".into(),
            });
        }
        verify_signature(
            &anchor.public_key,
            &crl.list.signature_algorithm,
            &tbs.signature,
            &crl.tbs,
            &crl.list.signature,
            "CRL",
            role,
        )?;
        check_critical(
            tbs.crl_extensions.iter().flatten(),
            &KNOWN_CRL_EXTENSIONS,
            "CRL",
        )?;
        for entry in tbs.revoked_certificates.iter().flatten() {
            check_critical(
                entry.crl_entry_extensions.iter().flatten(),
                &KNOWN_CRL_EXTENSIONS,
                "CRL entry",
            )?;
        }
        if tbs.this_update.to_system_time() > now {
            return Err(PkiError::CrlNotYetValid {
                this_update: tbs.this_update.to_string(),
                now: now_dt.to_string(),
            });
        }
        let next = tbs.next_update.ok_or(PkiError::CrlNoNextUpdate)?;
        if next.to_system_time() < now {
            return Err(PkiError::CrlOutOfDate {
                next_update: next.to_string(),
                now: now_dt.to_string(),
            });
        }
        Ok(())
    }
}

impl Anchor {
    fn parse(role: Role, bytes: &[u8]) -> Result<Anchor, PkiError> {
        let bad = |detail: String| PkiError::BadAnchor { role, detail };
        let der = to_der(bytes, "CERTIFICATE", "CA certificate")?;
        let certificate =
            Certificate::from_der(&der).map_err(|e| parse_error("CA certificate", e))?;
        let tbs = first_element(&der).ok_or_else(|| parse_error("CA certificate", "no TBS"))?;
        let what = format!("{role} CA certificate");
        let public_key = rsa_key(&certificate, &what)?;
        let t = certificate.tbs_certificate();
        if t.issuer() != t.subject() {
            return Err(bad(
                "it is not self-signed (issuer differs from subject)".into()
            ));
        }
        verify_signature(
            &public_key,
            certificate.signature_algorithm(),
            t.signature(),
            tbs,
            certificate.signature(),
            &what,
            role,
        )
        .map_err(|e| bad(format!("its self-signature fails: {e}")))?;
        check_critical(
            t.extensions().into_iter().flatten(),
            &KNOWN_CERT_EXTENSIONS,
            &what,
        )?;
        match t.get_extension::<BasicConstraints>() {
            Ok(Some((_, bc))) if bc.ca => {}
            Ok(_) => return Err(bad("basicConstraints cA=TRUE is missing".into())),
            Err(_) => return Err(bad("basicConstraints is malformed".into())),
        }
        let crl_sign = match t.get_extension::<KeyUsage>() {
            Ok(Some((_, ku))) if ku.key_cert_sign() => ku.crl_sign(),
            Ok(_) => return Err(bad("keyUsage keyCertSign is missing".into())),
            Err(_) => return Err(bad("keyUsage is malformed".into())),
        };
        Ok(Anchor {
            certificate,
            public_key,
            crl_sign,
        })
    }
}

/// A certificate (DER, or PEM "CERTIFICATE") as DER, after checking that it parses. Nothing
/// else is checked: verify it with [`TrustAnchors::verify`].
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

/// Appends a 4-byte big-endian length and the bytes. Lengths above u32::MAX are written as
/// u32::MAX; callers never sign or accept such fields (a device id, a key block, a CRL of
/// 4 GiB), so the saturation cannot make two different contents equal in practice.
pub(crate) fn put_field(out: &mut Vec<u8>, field: &[u8]) {
    let length = u32::try_from(field.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(field);
}

/// A serial number as upper-case hex without separators.
pub(crate) fn serial_hex(serial: &SerialNumber) -> String {
    let mut text = String::with_capacity(serial.as_bytes().len() * 2);
    for byte in serial.as_bytes() {
        text.push_str(&format!("{byte:02X}"));
    }
    text
}

fn parse_error(what: &'static str, e: impl fmt::Display) -> PkiError {
    PkiError::Parse {
        what,
        detail: e.to_string(),
    }
}

/// DER as is; PEM with the expected label decoded.
fn to_der(bytes: &[u8], label: &'static str, what: &'static str) -> Result<Vec<u8>, PkiError> {
    let trimmed = bytes.trim_ascii_start();
    if trimmed.starts_with(b"-----BEGIN") {
        let (found, der) = pem_rfc7468_decode(trimmed).map_err(|e| parse_error(what, e))?;
        if found != label {
            return Err(parse_error(
                what,
                format!("PEM label is {found:?}, expected {label:?}"),
            ));
        }
        Ok(der)
    } else {
        Ok(bytes.to_vec())
    }
}

fn pem_rfc7468_decode(pem: &[u8]) -> Result<(String, Vec<u8>), der::Error> {
    let (label, doc) = der::Document::from_pem(
        std::str::from_utf8(pem).map_err(|_| der::Error::from(der::ErrorKind::Failed))?,
    )?;
    Ok((label.to_string(), doc.as_bytes().to_vec()))
}

/// The exact bytes of the first element (the to-be-signed part) of a DER SEQUENCE, so the
/// signature is checked over what was signed, not over a re-encoding.
fn first_element(der: &[u8]) -> Option<&[u8]> {
    fn header(b: &[u8]) -> Option<(usize, usize)> {
        // (header length, content length) of a constructed SEQUENCE
        if *b.first()? != 0x30 {
            return None;
        }
        let first = *b.get(1)? as usize;
        if first < 0x80 {
            return Some((2, first));
        }
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *b.get(2 + i)? as usize;
        }
        Some((2 + n, len))
    }
    let (outer_h, _) = header(der)?;
    let inner = der.get(outer_h..)?;
    let (h, len) = header(inner)?;
    inner.get(..h.checked_add(len)?)
}

fn rsa_key(certificate: &Certificate, what: &str) -> Result<RsaPublicKey, PkiError> {
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

fn verify_signature(
    key: &RsaPublicKey,
    algorithm: &AlgorithmIdentifierOwned,
    inner_algorithm: &AlgorithmIdentifierOwned,
    tbs: &[u8],
    signature: &BitString,
    what: &str,
    role: Role,
) -> Result<(), PkiError> {
    let unsupported = |detail: &str| PkiError::UnsupportedSignatureAlgorithm {
        what: what.to_string(),
        oid: algorithm.oid.to_string(),
        detail: detail.to_string(),
    };
    if algorithm != inner_algorithm {
        return Err(unsupported(
            "(the signed and the outer signature algorithms differ)",
        ));
    }
    let bad = || PkiError::BadSignature {
        what: what.to_string(),
        role,
    };
    let sig = signature.as_bytes().ok_or_else(bad)?;
    if algorithm.oid == SHA256_WITH_RSA {
        // Parameters must be absent or NULL.
        if let Some(p) = &algorithm.parameters
            && !p.is_null()
        {
            return Err(unsupported("(parameters must be NULL)"));
        }
        let sig = rsa::pkcs1v15::Signature::try_from(sig).map_err(|_| bad())?;
        rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key.clone())
            .verify(tbs, &sig)
            .map_err(|_| bad())
    } else if algorithm.oid == RSASSA_PSS {
        let params = algorithm
            .parameters
            .as_ref()
            .ok_or_else(|| unsupported("(PSS without parameters)"))?;
        let params_der = params
            .to_der()
            .map_err(|_| unsupported("(malformed PSS parameters)"))?;
        let params = RsaPssParamsOwned::from_der(&params_der)
            .map_err(|_| unsupported("(malformed PSS parameters)"))?;
        let mgf_hash = params
            .mask_gen
            .parameters
            .as_ref()
            .map(|h| h.oid == SHA256)
            .unwrap_or(false);
        if params.hash.oid != SHA256 || params.mask_gen.oid != MGF1 || !mgf_hash {
            return Err(unsupported("(PSS needs SHA-256 and MGF1 with SHA-256)"));
        }
        let sig = rsa::pss::Signature::try_from(sig).map_err(|_| bad())?;
        rsa::pss::VerifyingKey::<Sha256>::new_with_salt_len(
            key.clone(),
            usize::from(params.salt_len),
        )
        .verify(tbs, &sig)
        .map_err(|_| bad())
    } else {
        Err(unsupported(
            "(only sha256WithRSAEncryption and RSASSA-PSS are accepted)",
        ))
    }
}

fn check_validity(
    subject: Subject,
    certificate: &Certificate,
    now: SystemTime,
    now_dt: &der::DateTime,
) -> Result<(), PkiError> {
    let v = certificate.tbs_certificate().validity();
    if v.not_before.to_system_time() > now {
        return Err(PkiError::NotYetValid {
            subject,
            not_before: v.not_before.to_string(),
            now: now_dt.to_string(),
        });
    }
    if v.not_after.to_system_time() < now {
        return Err(PkiError::Expired {
            subject,
            not_after: v.not_after.to_string(),
            now: now_dt.to_string(),
        });
    }
    Ok(())
}

fn describe_key_usage(ku: &KeyUsage) -> String {
    let names: Vec<&str> = [
        (ku.digital_signature(), "digitalSignature"),
        (ku.non_repudiation(), "nonRepudiation"),
        (ku.key_encipherment(), "keyEncipherment"),
        (ku.data_encipherment(), "dataEncipherment"),
        (ku.key_agreement(), "keyAgreement"),
        (ku.key_cert_sign(), "keyCertSign"),
        (ku.crl_sign(), "cRLSign"),
        (ku.encipher_only(), "encipherOnly"),
        (ku.decipher_only(), "decipherOnly"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}
