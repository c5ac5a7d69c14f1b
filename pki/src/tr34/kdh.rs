//! The KDH (appliance) side: [`build_key_token`], a one-pass or two-pass key token for a KRD certificate.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cms::content_info::CmsVersion;
use cms::signed_data::{
    EncapsulatedContentInfo, SignedAttributes, SignedData, SignerIdentifier, SignerInfo,
    SignerInfos,
};
use der::asn1::{OctetString, SetOfVec};
use der::{Any, Encode};
use getrandom04::SysRng;
use keymother_crypto::SecretKey;
use keymother_domain::KeyIndex;
use rsa::signature::{RandomizedSigner, SignatureEncoding};
use sha2::{Digest, Sha256};
use spki::AlgorithmIdentifierOwned;
use x509_cert::attr::Attribute;
use x509_cert::time::Time;

use super::Tr34Error;
use super::asn1::{
    ID_CONTENT_TYPE, ID_DATA, ID_ENVELOPED_DATA, ID_MESSAGE_DIGEST, ID_RANDOM_NONCE, ID_SHA256,
    ID_SIGNING_TIME, SHA256_WITH_RSA, encoding, issuer_and_serial,
};
use super::credential::{check_nonce_length, content_info, crl_set, read_crl};
use super::envelope::build_envelope;
use super::key_block::{encode_key_block, key_block_header};
use crate::{PkiError, PrivateKey, Role, VerifiedCertificate};

/// How a key token is bound to time.
#[derive(Debug, Clone, Copy)]
pub enum Freshness<'a> {
    /// Two-pass: the nonce from the KRD's random number token (8..=32 bytes).
    TwoPass {
        /// The nonce.
        nonce: &'a [u8],
    },
    /// One-pass: the KDH's signing time (whole seconds are signed).
    OnePass {
        /// The time to sign.
        signing_time: SystemTime,
    },
}

/// What [`build_key_token`] needs.
pub struct KeyTokenInput<'a> {
    /// The appliance's KDH private key.
    pub kdh_key: &'a PrivateKey,
    /// The KDH certificate, verified as [`Role::KeyDistributionHost`].
    pub kdh: &'a VerifiedCertificate,
    /// The KRD's device certificate, verified as [`Role::TerminalDevice`].
    pub krd: &'a VerifiedCertificate,
    /// One-pass or two-pass.
    pub freshness: Freshness<'a>,
    /// The key index, bound into the signed header (optional block "01").
    pub key_index: KeyIndex,
    /// The KDH CA's CRL (DER or PEM), or empty.
    pub crl: &'a [u8],
}

/// A built key token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltKeyToken {
    /// The token, DER.
    pub der: Vec<u8>,
    /// The key block header text (signed and enveloped).
    pub header: String,
    /// The master key's check value (X9.24-1-2017: 3 bytes TDES, 5 bytes AES-CMAC).
    pub kcv: Vec<u8>,
}

/// Builds a key token delivering `master_key` to the KRD of `input.krd` (see the module
/// documentation for exactly what is written). Refuses a KDH certificate not verified as
/// [`Role::KeyDistributionHost`] ([`Tr34Error::NotKdh`]), a KRD certificate not verified as
/// [`Role::TerminalDevice`] ([`Tr34Error::NotTerminalDevice`]), a KDH key that is not the
/// certificate's, and a nonce outside 8..=32 bytes.
pub fn build_key_token(
    input: &KeyTokenInput<'_>,
    master_key: &SecretKey,
) -> Result<BuiltKeyToken, Tr34Error> {
    if input.kdh.role() != Role::KeyDistributionHost {
        return Err(Tr34Error::NotKdh {
            role: input.kdh.role(),
        });
    }
    if input.krd.role() != Role::TerminalDevice {
        return Err(Tr34Error::NotTerminalDevice {
            role: input.krd.role(),
        });
    }
    if !input.kdh_key.matches(input.kdh) {
        return Err(Tr34Error::Pki(PkiError::KeyMismatch {
            what: "KDH certificate",
        }));
    }
    if let Freshness::TwoPass { nonce } = input.freshness {
        check_nonce_length(nonce)?;
    }
    let crls = if input.crl.trim_ascii().is_empty() {
        None
    } else {
        Some(crl_set(read_crl(input.crl)?)?)
    };
    let header = key_block_header(master_key.algorithm().family(), input.key_index)?;
    let kdh_id = issuer_and_serial(input.kdh.certificate());
    let key_block = encode_key_block(&kdh_id, master_key, &header)?;
    let envelope = build_envelope(
        issuer_and_serial(input.krd.certificate()),
        input.krd.public_key(),
        &key_block,
    )?;
    let attributes = signed_attributes(&envelope, &input.freshness, &header)?;
    let to_sign = attributes
        .to_der()
        .map_err(|e| encoding("signed attributes", e))?;
    let signature = sign(input.kdh_key, &to_sign)?;
    let signer = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(kdh_id),
        digest_alg: sha256_identifier(),
        signed_attrs: Some(attributes),
        signature_algorithm: AlgorithmIdentifierOwned {
            oid: SHA256_WITH_RSA,
            parameters: Some(Any::null()),
        },
        signature: OctetString::new(signature).map_err(|e| encoding("signature", e))?,
        unsigned_attrs: None,
    };
    let econtent =
        Any::encode_from(&OctetString::new(envelope).map_err(|e| encoding("eContent", e))?)
            .map_err(|e| encoding("eContent", e))?;
    let signed = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![sha256_identifier()])
            .map_err(|e| encoding("digestAlgorithms", e))?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_ENVELOPED_DATA,
            econtent: Some(econtent),
        },
        certificates: None,
        crls,
        signer_infos: SignerInfos(
            SetOfVec::try_from(vec![signer]).map_err(|e| encoding("signerInfos", e))?,
        ),
    };
    Ok(BuiltKeyToken {
        der: content_info(&signed)?,
        header,
        kcv: master_key.kcv().as_bytes().to_vec(),
    })
}

fn sha256_identifier() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: ID_SHA256,
        parameters: None,
    }
}

/// contentType, messageDigest, signingTime or id-randomNonce, and the header (pkcs7-data),
/// in DER SET OF order (the SET sorts them).
fn signed_attributes(
    envelope: &[u8],
    freshness: &Freshness<'_>,
    header: &str,
) -> Result<SignedAttributes, Tr34Error> {
    let attribute = |oid, value: Any| -> Result<Attribute, Tr34Error> {
        Ok(Attribute {
            oid,
            values: SetOfVec::try_from(vec![value]).map_err(|e| encoding("attribute", e))?,
        })
    };
    let octets = |bytes: &[u8]| -> Result<Any, Tr34Error> {
        Any::encode_from(&OctetString::new(bytes).map_err(|e| encoding("attribute", e))?)
            .map_err(|e| encoding("attribute", e))
    };
    let content_type =
        Any::encode_from(&ID_ENVELOPED_DATA).map_err(|e| encoding("contentType", e))?;
    let freshness = match freshness {
        Freshness::TwoPass { nonce } => attribute(ID_RANDOM_NONCE, octets(nonce)?)?,
        Freshness::OnePass { signing_time } => {
            attribute(ID_SIGNING_TIME, signing_time_value(*signing_time)?)?
        }
    };
    let attributes = vec![
        attribute(ID_CONTENT_TYPE, content_type)?,
        attribute(ID_MESSAGE_DIGEST, octets(&Sha256::digest(envelope))?)?,
        freshness,
        attribute(ID_DATA, octets(header.as_bytes())?)?,
    ];
    SetOfVec::try_from(attributes).map_err(|e| encoding("signed attributes", e))
}

/// The signing time as UTCTime (before 2050) or GeneralizedTime, in whole seconds.
fn signing_time_value(time: SystemTime) -> Result<Any, Tr34Error> {
    let seconds = time
        .duration_since(UNIX_EPOCH)
        .map_err(|_| encoding("signingTime", "before 1970"))?
        .as_secs();
    let whole = UNIX_EPOCH + Duration::from_secs(seconds);
    let value = Time::try_from(whole).map_err(|e| encoding("signingTime", e))?;
    Any::encode_from(&value).map_err(|e| encoding("signingTime", e))
}

/// PKCS#1 v1.5 with SHA-256 over `message`, blinded with fresh randomness.
fn sign(key: &PrivateKey, message: &[u8]) -> Result<Vec<u8>, Tr34Error> {
    // The signing key is a transient copy; RsaPrivateKey zeroizes it when dropped.
    let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(key.rsa().clone());
    let signature = signer
        .try_sign_with_rng(&mut SysRng, message)
        .map_err(|e| Tr34Error::Rsa(format!("PKCS#1 v1.5 signing: {e}")))?;
    Ok(signature.to_vec())
}
