//! Credential tokens (B.6 KDH, B.7 KRD: degenerate SignedData carrying certificates and CRLs) and the random number token (B.12), written and read.

use cms::cert::CertificateChoices;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::revocation::{RevocationInfoChoice, RevocationInfoChoices};
use cms::signed_data::{
    CertificateSet, DigestAlgorithmIdentifiers, EncapsulatedContentInfo, SignedData, SignerInfos,
};
use der::asn1::{OctetString, SetOfVec};
use der::{Any, Decode, Encode};
use x509_cert::Certificate;
use x509_cert::attr::Attribute;
use x509_cert::crl::CertificateList;

use super::asn1::{ID_DATA, ID_RANDOM_NONCE, ID_SIGNED_DATA, encoding};
use super::token::Token;
use super::{TokenKind, Tr34Error, WireForm};
use crate::encoding::{parse_error, to_der};

/// The smallest and largest nonce of a random number token, in bytes.
pub const NONCE_LENGTHS: std::ops::RangeInclusive<usize> = 8..=32;

/// A parsed credential token: what it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialToken {
    /// KDH or KRD credential.
    pub kind: TokenKind,
    /// The certificates (DER), in the order carried (the leaf first in keymother's tokens).
    pub certificates: Vec<Vec<u8>>,
    /// The CRLs (DER).
    pub crls: Vec<Vec<u8>>,
    /// The wire form (always 2019: a credential token has no inner structure).
    pub form: WireForm,
}

/// The KDH credential token (B.6): the KDH certificate and, unless `kdh_crl_der` is empty,
/// the KDH CA's CRL. Both DER or PEM.
pub fn kdh_credential_token(
    kdh_certificate_der: &[u8],
    kdh_crl_der: &[u8],
) -> Result<Vec<u8>, Tr34Error> {
    let certificate = read_certificate(kdh_certificate_der)?;
    let crl = if kdh_crl_der.trim_ascii().is_empty() {
        None
    } else {
        Some(read_crl(kdh_crl_der)?)
    };
    degenerate_signed_data(certificate, crl)
}

/// The KRD credential token (B.7): the device certificate (DER or PEM).
pub fn krd_credential_token(device_certificate_der: &[u8]) -> Result<Vec<u8>, Tr34Error> {
    degenerate_signed_data(read_certificate(device_certificate_der)?, None)
}

/// The KRD's random number token (B.12) for `nonce` (8..=32 bytes).
pub fn random_number_token(nonce: &[u8]) -> Result<Vec<u8>, Tr34Error> {
    check_nonce_length(nonce)?;
    let value = Any::encode_from(&OctetString::new(nonce).map_err(|e| encoding("nonce", e))?)
        .map_err(|e| encoding("nonce", e))?;
    let attribute = Attribute {
        oid: ID_RANDOM_NONCE,
        values: SetOfVec::try_from(vec![value]).map_err(|e| encoding("nonce", e))?,
    };
    attribute
        .to_der()
        .map_err(|e| encoding("random number token", e))
}

/// The nonce of a random number token; refused outside 8..=32 bytes.
pub fn parse_random_number_token(der: &[u8]) -> Result<Vec<u8>, Tr34Error> {
    let token = Token::parse(der)?;
    match (token.kind, token.nonce) {
        (TokenKind::RandomNumber, Some(nonce)) => {
            check_nonce_length(&nonce)?;
            Ok(nonce)
        }
        (found, _) => Err(Tr34Error::WrongKind {
            expected: "random number token",
            found,
        }),
    }
}

/// The certificates and CRLs of a KDH or KRD credential token. Each certificate and CRL is
/// checked to parse; none is verified (see [`TrustAnchors`](crate::TrustAnchors)).
pub fn parse_credential_token(der: &[u8]) -> Result<CredentialToken, Tr34Error> {
    let token = Token::parse(der)?;
    if !matches!(
        token.kind,
        TokenKind::KdhCredential | TokenKind::KrdCredential
    ) {
        return Err(Tr34Error::WrongKind {
            expected: "credential token",
            found: token.kind,
        });
    }
    if token.certificates().is_empty() {
        return Err(Tr34Error::Pki(parse_error(
            "certificate",
            "the credential token carries no certificate",
        )));
    }
    for certificate in token.certificates() {
        Certificate::from_der(certificate)
            .map_err(|e| Tr34Error::Pki(parse_error("certificate", e)))?;
    }
    for crl in token.crls() {
        <CertificateList>::from_der(crl).map_err(|e| Tr34Error::Pki(parse_error("CRL", e)))?;
    }
    Ok(CredentialToken {
        kind: token.kind,
        certificates: token.certificates().to_vec(),
        crls: token.crls().to_vec(),
        form: token.form,
    })
}

/// Refuses a nonce outside 8..=32 bytes.
pub(crate) fn check_nonce_length(nonce: &[u8]) -> Result<(), Tr34Error> {
    if NONCE_LENGTHS.contains(&nonce.len()) {
        Ok(())
    } else {
        Err(Tr34Error::NonceLength {
            length: nonce.len(),
        })
    }
}

pub(crate) fn read_certificate(bytes: &[u8]) -> Result<Certificate, Tr34Error> {
    let der = to_der(bytes, "CERTIFICATE", "certificate").map_err(Tr34Error::Pki)?;
    Certificate::from_der(&der).map_err(|e| Tr34Error::Pki(parse_error("certificate", e)))
}

pub(crate) fn read_crl(bytes: &[u8]) -> Result<CertificateList, Tr34Error> {
    let der = to_der(bytes, "X509 CRL", "CRL").map_err(Tr34Error::Pki)?;
    <CertificateList>::from_der(&der).map_err(|e| Tr34Error::Pki(parse_error("CRL", e)))
}

/// The CRL as SignedData's crls field.
pub(crate) fn crl_set(crl: CertificateList) -> Result<RevocationInfoChoices, Tr34Error> {
    SetOfVec::try_from(vec![RevocationInfoChoice::Crl(crl)])
        .map(RevocationInfoChoices)
        .map_err(|e| encoding("crls", e))
}

/// `content` (a SignedData) as a ContentInfo, DER.
pub(crate) fn content_info(content: &SignedData) -> Result<Vec<u8>, Tr34Error> {
    ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(content).map_err(|e| encoding("SignedData", e))?,
    }
    .to_der()
    .map_err(|e| encoding("ContentInfo", e))
}

fn degenerate_signed_data(
    certificate: Certificate,
    crl: Option<CertificateList>,
) -> Result<Vec<u8>, Tr34Error> {
    let empty =
        Any::encode_from(&OctetString::new(Vec::new()).map_err(|e| encoding("eContent", e))?)
            .map_err(|e| encoding("eContent", e))?;
    let certificates = SetOfVec::try_from(vec![CertificateChoices::Certificate(certificate)])
        .map_err(|e| encoding("certificates", e))?;
    let signed = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: DigestAlgorithmIdentifiers::new(),
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: Some(empty),
        },
        certificates: Some(CertificateSet(certificates)),
        crls: crl.map(crl_set).transpose()?,
        signer_infos: SignerInfos(SetOfVec::new()),
    };
    content_info(&signed)
}
