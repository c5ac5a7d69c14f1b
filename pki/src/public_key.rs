//! A certificate's public key as keymother accepts it ([`PublicKey`]): RSA of at least 2048 bits, or ECDSA on P-256 or P-384; and signatures checked under it.

use const_oid::ObjectIdentifier;
use der::Encode;
use der::asn1::BitString;
use rsa::RsaPublicKey;
use rsa::signature::hazmat::PrehashVerifier;
use sha2::{Digest, Sha256, Sha384};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;

use crate::certificate::{RSA_ENCRYPTION, rsa_key};
use crate::signature::verify_signature;
use crate::{PkiError, Role};

/// id-ecPublicKey.
pub(crate) const EC_PUBLIC_KEY: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// The named curve P-256 (prime256v1, secp256r1).
const P256_CURVE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
/// The named curve P-384 (secp384r1).
const P384_CURVE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
/// ecdsa-with-SHA256.
const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
/// ecdsa-with-SHA384.
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");

/// The public key of a CA or of an operator: RSA (at least [`MIN_RSA_BITS`](crate::MIN_RSA_BITS)
/// bits) or ECDSA on NIST P-256 or P-384.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    /// RSA.
    Rsa(RsaPublicKey),
    /// ECDSA on P-256 (secp256r1); signatures with SHA-256.
    P256(p256::ecdsa::VerifyingKey),
    /// ECDSA on P-384 (secp384r1); signatures with SHA-384.
    P384(p384::ecdsa::VerifyingKey),
}

impl PublicKey {
    /// The algorithm in words: "RSA", "ECDSA P-256" or "ECDSA P-384".
    pub fn algorithm(&self) -> &'static str {
        match self {
            PublicKey::Rsa(_) => "RSA",
            PublicKey::P256(_) => "ECDSA P-256",
            PublicKey::P384(_) => "ECDSA P-384",
        }
    }
}

/// The certificate's public key: RSA of at least 2048 bits, or EC on P-256 or P-384. Any other
/// algorithm or curve is [`PkiError::UnsupportedKey`].
pub(crate) fn public_key(certificate: &Certificate, what: &str) -> Result<PublicKey, PkiError> {
    let spki = certificate.tbs_certificate().subject_public_key_info();
    if spki.algorithm.oid == RSA_ENCRYPTION {
        return rsa_key(certificate, what).map(PublicKey::Rsa);
    }
    let unsupported = |detail: String| PkiError::UnsupportedKey {
        what: what.to_string(),
        detail,
    };
    if spki.algorithm.oid != EC_PUBLIC_KEY {
        return Err(unsupported(format!(
            "algorithm {}; RSA or EC (P-256, P-384) is required",
            spki.algorithm.oid
        )));
    }
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
        .ok_or_else(|| unsupported("an EC key without a named curve".into()))?;
    let der = spki
        .to_der()
        .map_err(|e| unsupported(format!("malformed key: {e}")))?;
    use spki::DecodePublicKey;
    if curve == P256_CURVE {
        p256::ecdsa::VerifyingKey::from_public_key_der(&der)
            .map(PublicKey::P256)
            .map_err(|_| unsupported("a malformed P-256 point".into()))
    } else if curve == P384_CURVE {
        p384::ecdsa::VerifyingKey::from_public_key_der(&der)
            .map(PublicKey::P384)
            .map_err(|_| unsupported("a malformed P-384 point".into()))
    } else {
        Err(unsupported(format!(
            "EC curve {curve}; only P-256 and P-384 are accepted"
        )))
    }
}

/// Verifies a certificate's or CRL's `signature` over `tbs` under `key`: for an RSA key as
/// [`verify_signature`] does; for an EC key, ecdsa-with-SHA256 or ecdsa-with-SHA384
/// (parameters absent). `algorithm` must equal `inner_algorithm`.
pub(crate) fn verify_signature_by(
    key: &PublicKey,
    algorithm: &AlgorithmIdentifierOwned,
    inner_algorithm: &AlgorithmIdentifierOwned,
    tbs: &[u8],
    signature: &BitString,
    what: &str,
    role: Role,
) -> Result<(), PkiError> {
    if let PublicKey::Rsa(rsa) = key {
        return verify_signature(rsa, algorithm, inner_algorithm, tbs, signature, what, role);
    }
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
    if algorithm.parameters.is_some() {
        return Err(unsupported("(ECDSA signature parameters must be absent)"));
    }
    let digest: Vec<u8> = if algorithm.oid == ECDSA_SHA256 {
        Sha256::digest(tbs).to_vec()
    } else if algorithm.oid == ECDSA_SHA384 {
        Sha384::digest(tbs).to_vec()
    } else {
        return Err(unsupported(
            "(an EC key signs with ecdsa-with-SHA256 or ecdsa-with-SHA384 only)",
        ));
    };
    let bad = || PkiError::BadSignature {
        what: what.to_string(),
        role,
    };
    let sig = signature.as_bytes().ok_or_else(bad)?;
    if ecdsa_prehash_ok(key, &digest, sig) {
        Ok(())
    } else {
        Err(bad())
    }
}

/// Whether the DER-encoded ECDSA `signature` verifies over the hash `digest` under `key`
/// (false for an RSA key).
fn ecdsa_prehash_ok(key: &PublicKey, digest: &[u8], signature: &[u8]) -> bool {
    match key {
        PublicKey::Rsa(_) => false,
        PublicKey::P256(key) => p256::ecdsa::Signature::from_der(signature)
            .is_ok_and(|sig| key.verify_prehash(digest, &sig).is_ok()),
        PublicKey::P384(key) => p384::ecdsa::Signature::from_der(signature)
            .is_ok_and(|sig| key.verify_prehash(digest, &sig).is_ok()),
    }
}

/// Verifies an ECDSA login signature (DER, as `openssl dgst -sign` writes it) over `message`:
/// SHA-256 for a P-256 key, SHA-384 for a P-384 key. False for an RSA key.
pub(crate) fn verify_ecdsa_message(key: &PublicKey, message: &[u8], signature: &[u8]) -> bool {
    let digest: Vec<u8> = match key {
        PublicKey::Rsa(_) => return false,
        PublicKey::P256(_) => Sha256::digest(message).to_vec(),
        PublicKey::P384(_) => Sha384::digest(message).to_vec(),
    };
    ecdsa_prehash_ok(key, &digest, signature)
}
