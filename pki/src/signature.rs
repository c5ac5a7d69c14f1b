//! Signature verification for certificates, CRLs and requests: RSA PKCS#1 v1.5 or RSASSA-PSS, both with SHA-256.

use const_oid::ObjectIdentifier;
use der::asn1::BitString;
use der::{Decode, Encode};
use rsa::RsaPublicKey;
use rsa::pkcs1::RsaPssParamsOwned;
use rsa::signature::Verifier;
use sha2::Sha256;
use spki::AlgorithmIdentifierOwned;

use crate::{PkiError, Role};

const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const RSASSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const MGF1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.8");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");

/// Verifies `signature` over `tbs` under `key`. `algorithm` (outside the signed part) must equal
/// `inner_algorithm` (inside it); `what` and `role` only label errors.
pub(crate) fn verify_signature(
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
