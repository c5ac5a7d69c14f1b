//! Signature checks of signed tokens: over the signedAttrs bytes as received, then messageDigest over the content and contentType against eContentType.

use der::Decode;
use der::asn1::BitString;
use rsa::RsaPublicKey;
use sha2::{Digest, Sha256};
use spki::AlgorithmIdentifierOwned;

use super::Tr34Error;
use super::asn1::{
    ID_CONTENT_TYPE, ID_MESSAGE_DIGEST, ID_SHA256, RSA_ENCRYPTION, Reader, SHA256_WITH_RSA,
    malformed, oid_name,
};
use super::envelope::AlgorithmId;
use super::signed_data::{SignedData, Signer};
use super::token::Token;
use crate::certificate::{parse_certificate, rsa_key};
use crate::{PkiError, Role};

impl Token {
    /// Verifies the token's signature with the key of `signer_certificate_der` (DER or PEM),
    /// which must be the certificate the SignerInfo names (else [`Tr34Error::WrongSigner`]).
    /// The signature is checked over the signed attributes as received; then messageDigest
    /// over the content ([`Tr34Error::DigestMismatch`]) and contentType against eContentType.
    /// The certificate itself is not verified here (see
    /// [`TrustAnchors::verify`](crate::TrustAnchors::verify)).
    pub fn verify_signature(&self, signer_certificate_der: &[u8]) -> Result<(), Tr34Error> {
        let certificate = parse_certificate(signer_certificate_der, "signer certificate")
            .map_err(Tr34Error::Pki)?;
        let key = rsa_key(&certificate, "signer certificate").map_err(Tr34Error::Pki)?;
        let signed = self.signed.as_ref().ok_or(Tr34Error::WrongKind {
            expected: "signed token",
            found: self.kind,
        })?;
        let signer = only_signer(signed, self)?;
        if !signer.sid.names(&certificate) {
            return Err(Tr34Error::WrongSigner {
                signer: signer.sid.describe(),
            });
        }
        verify_signer(signed, signer, &key)
    }
}

/// The one SignerInfo of a signed token.
pub(crate) fn only_signer<'a>(
    signed: &'a SignedData,
    token: &Token,
) -> Result<&'a Signer, Tr34Error> {
    match signed.signers.as_slice() {
        [signer] => Ok(signer),
        [] => Err(Tr34Error::WrongKind {
            expected: "signed token",
            found: token.kind,
        }),
        several => Err(malformed(
            "SignedData signerInfos",
            0,
            format!("{} signers; a TR-34 token has one", several.len()),
        )),
    }
}

/// Checks `signer`'s signature under `key`, then messageDigest and contentType.
pub(crate) fn verify_signer(
    signed: &SignedData,
    signer: &Signer,
    key: &RsaPublicKey,
) -> Result<(), Tr34Error> {
    if signer.digest_algorithm.oid != ID_SHA256 {
        return Err(Tr34Error::Unsupported {
            what: "digest algorithm",
            detail: format!(
                "{} (TR-34 uses SHA-256)",
                oid_name(&signer.digest_algorithm.oid)
            ),
        });
    }
    let attributes = signer.signed_attributes.as_ref().ok_or_else(|| {
        malformed(
            "SignerInfo signedAttrs",
            signer.signature_algorithm.offset,
            "missing: a TR-34 signature covers signed attributes",
        )
    })?;
    check_signature(
        &signer.signature_algorithm,
        key,
        &attributes.signed_bytes,
        &signer.signature,
    )?;
    let content_type = attributes.single(ID_CONTENT_TYPE)?.ok_or_else(|| {
        malformed(
            "signed attributes",
            attributes.offset,
            "no contentType attribute",
        )
    })?;
    let declared = Reader::new(&content_type.raw, content_type.offset)
        .read_any("contentType attribute")?
        .oid("contentType attribute")?;
    if declared != signed.content_type {
        return Err(malformed(
            "contentType attribute",
            content_type.offset,
            format!(
                "{} differs from eContentType {}",
                oid_name(&declared),
                oid_name(&signed.content_type)
            ),
        ));
    }
    let digest = attributes.octets(ID_MESSAGE_DIGEST)?.ok_or_else(|| {
        malformed(
            "signed attributes",
            attributes.offset,
            "no messageDigest attribute",
        )
    })?;
    let content = signed.content.as_ref().map_or(&[][..], |c| &c.bytes);
    if Sha256::digest(content).as_slice() != digest {
        return Err(Tr34Error::DigestMismatch);
    }
    Ok(())
}

/// PKCS#1 v1.5 with SHA-256 (signatureAlgorithm rsaEncryption or sha256WithRSAEncryption) or
/// RSASSA-PSS with SHA-256, through the crate's certificate signature check.
fn check_signature(
    algorithm: &AlgorithmId,
    key: &RsaPublicKey,
    message: &[u8],
    signature: &[u8],
) -> Result<(), Tr34Error> {
    let oid = if algorithm.oid == RSA_ENCRYPTION {
        SHA256_WITH_RSA
    } else {
        algorithm.oid
    };
    let parameters = algorithm
        .parameters
        .as_deref()
        .map(der::Any::from_der)
        .transpose()
        .map_err(|e| malformed("signatureAlgorithm parameters", algorithm.offset, e))?;
    let identifier = AlgorithmIdentifierOwned { oid, parameters };
    let bits = BitString::from_bytes(signature).map_err(|_| Tr34Error::BadSignature)?;
    crate::signature::verify_signature(
        key,
        &identifier,
        &identifier,
        message,
        &bits,
        "token",
        Role::KeyDistributionHost,
    )
    .map_err(|e| match e {
        PkiError::UnsupportedSignatureAlgorithm { oid, detail, .. } => Tr34Error::Unsupported {
            what: "signature algorithm",
            detail: format!("{oid} {detail}"),
        },
        _ => Tr34Error::BadSignature,
    })
}
