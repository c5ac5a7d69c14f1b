//! [`PkiError`]: everything that can go wrong in keymother-pki, each message naming what was checked.

use crate::{MAX_GENERATED_RSA_BITS, MIN_RSA_BITS, Role, Subject};

/// Everything that can go wrong. Each message names what was checked and, for dates, the dates.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
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
        "{} {presented} certificate was presented as {} {expected} certificate \
         (issued by the {presented} CA, not the {expected} CA)",
        .presented.article(),
        .expected.article()
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
    /// [`PrivateKey::generate`](crate::PrivateKey::generate) was asked for a size outside
    /// 2048..=4096 bits.
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
    /// [`PrivateKey::from_pkcs8`](crate::PrivateKey::from_pkcs8)).
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
    /// No CA was given for the role (see
    /// [`TrustAnchors::for_roles`](crate::TrustAnchors::for_roles)).
    #[error("no {role} CA is configured, so {role} certificates and CRLs cannot be checked")]
    NoAnchor {
        /// The role.
        role: Role,
    },
    /// [`TrustAnchors::for_roles`](crate::TrustAnchors::for_roles) was given no CA at all.
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
    /// A public key of an algorithm or curve keymother does not accept.
    #[error("the {what}'s public key is not accepted: {detail}")]
    UnsupportedKey {
        /// Whose key.
        what: String,
        /// The algorithm or curve, and what is accepted.
        detail: String,
    },
    /// A block of a PEM bundle is malformed, of another kind, or one too many.
    #[error("block {block} of the {what} is refused: {detail}")]
    BadBundleBlock {
        /// The bundle ("operator certificate file", ...).
        what: String,
        /// The block's number, 1 for the first.
        block: usize,
        /// Why (never the content).
        detail: String,
    },
    /// A bundle without any PEM block.
    #[error("the {what} holds no PEM block")]
    EmptyBundle {
        /// The bundle.
        what: String,
    },
    /// The issuer of a certificate of the path is neither the role's CA nor given.
    #[error(
        "the {role} certificate path is incomplete: {subject} was issued by {issuer}, which is \
         neither the {role} CA nor among the intermediate CA certificates given"
    )]
    IssuerMissing {
        /// The role.
        role: Role,
        /// The certificate whose issuer is missing.
        subject: String,
        /// The missing issuer's name.
        issuer: String,
    },
    /// More intermediates than [`MAX_INTERMEDIATES`](crate::MAX_INTERMEDIATES).
    #[error("the {role} certificate path has more than {max} intermediate CA certificates")]
    ChainTooLong {
        /// The role.
        role: Role,
        /// The limit.
        max: usize,
    },
    /// A certificate of the path is not signed by the key of the certificate named its issuer.
    #[error(
        "the signature of the certificate {subject} does not verify under the key of its issuer {issuer}"
    )]
    ChainSignature {
        /// The certificate signed.
        subject: String,
        /// Its issuer.
        issuer: String,
    },
    /// An intermediate CA certificate is refused: expired, not a CA, revoked, ...
    #[error("the intermediate CA certificate {subject} is refused: {detail}")]
    ChainCertificate {
        /// Its subject.
        subject: String,
        /// Why.
        detail: String,
    },
    /// A CA has more intermediates below it than its pathLenConstraint allows.
    #[error(
        "the CA certificate {ca} allows {} below it (basicConstraints pathLenConstraint), \
         but the path has {}",
        count(usize::from(*allowed)),
        count(*below)
    )]
    PathLength {
        /// The CA.
        ca: String,
        /// Its pathLenConstraint.
        allowed: u8,
        /// Intermediates below it in the path.
        below: usize,
    },
    /// A name of a certificate breaks a CA's nameConstraints.
    #[error("the {what}'s {name} is {detail} of the nameConstraints of the CA {ca}")]
    NameConstraint {
        /// The CA whose constraint is broken.
        ca: String,
        /// The certificate.
        what: String,
        /// The name, with its type.
        name: String,
        /// "outside its permitted subtrees" / "inside one of its excluded subtrees".
        detail: &'static str,
    },
    /// A CA constrains a name type keymother cannot check.
    #[error(
        "the CA certificate {ca} has a name constraint keymother does not support ({kind}); \
         only directoryName, dNSName and rfc822Name subtrees are honoured"
    )]
    UnsupportedNameConstraint {
        /// The CA.
        ca: String,
        /// The constraint's type.
        kind: &'static str,
    },
    /// The CRL of a CA in the path is refused.
    #[error("the CRL issued by {issuer} is refused: {detail}")]
    ChainCrl {
        /// The CRL's issuer.
        issuer: String,
        /// Why.
        detail: String,
    },
    /// A login key of an algorithm or curve keymother does not accept.
    #[error(
        "the private key is not accepted for operator login (algorithm {algorithm}); RSA of at \
         least {MIN_RSA_BITS} bits and ECDSA on P-256 or P-384 are"
    )]
    UnsupportedPrivateKey {
        /// The key's algorithm (and name when known).
        algorithm: String,
    },
}

/// "no intermediate CA certificate", "1 intermediate CA certificate", "2 intermediate CA certificates".
fn count(n: usize) -> String {
    match n {
        0 => "no intermediate CA certificate".to_owned(),
        1 => "1 intermediate CA certificate".to_owned(),
        n => format!("{n} intermediate CA certificates"),
    }
}
