//! ASC X9 TR 34-2019 tokens, both sides, sans-IO: the KDH (appliance) builds, the KRD (terminal) opens, anyone inspects.
//!
//! # Tokens
//!
//! | token | [`TokenKind`] | structure |
//! | --- | --- | --- |
//! | KDH credential (B.6) | [`TokenKind::KdhCredential`] | degenerate SignedData: no signer, id-data with empty content, the KDH certificate, the KDH CA's CRL |
//! | KRD credential (B.7) | [`TokenKind::KrdCredential`] | degenerate SignedData: the device certificate |
//! | random number (B.12) | [`TokenKind::RandomNumber`] | Attribute { id-randomNonce, SET { OCTET STRING } } |
//! | one-pass key token (B.8) | [`TokenKind::OnePassKeyToken`] | SignedData over EnvelopedData, signingTime |
//! | two-pass key token (B.9) | [`TokenKind::TwoPassKeyToken`] | SignedData over EnvelopedData, id-randomNonce |
//! | rebind (B.10, B.11) | [`TokenKind::RebindToken`] | SignedData whose content is a SignedData |
//! | unbind (B.13, B.14) | [`TokenKind::UnbindToken`] | SignedData over id-data naming the KRD (and KDH) |
//!
//! Inner structures (the EnvelopedData of a key token, the SignedData of a rebind token, the
//! identifiers of an unbind token) are accepted with their outer SEQUENCE ([`WireForm::Tr34_2019`])
//! or as its bare contents ([`WireForm::Tr34_2012`], the X9_TR34_2012 form of B.10 and B.11).
//! Parsing never re-encodes: the signature is verified over the signedAttrs bytes as received
//! (the `[0]` tag replaced by SET), since the published samples do not keep DER SET OF order.
//! RSAES-OAEP parameters are read with or without the RFC 8017 `[0]`/`[1]`/`[2]` tags (the
//! samples leave them out).
//!
//! # What the appliance writes ([`build_key_token`])
//!
//! - SignedData v1, digestAlgorithms { sha256 }, eContentType envelopedData, the EnvelopedData
//!   DER with its SEQUENCE (2019 form); crls = the KDH CA's CRL when one is given; no
//!   certificates (the KDH credential token carried the KDH certificate).
//! - One SignerInfo v1: sid IssuerAndSerialNumber of the KDH certificate, digestAlgorithm
//!   sha256, signedAttrs in DER order: contentType (envelopedData), messageDigest, signingTime
//!   (one-pass) or id-randomNonce 1.2.840.113549.1.9.25.3 (two-pass), and the key block header
//!   as an attribute of type pkcs7-data (1.2.840.113549.1.7.1). Signature: PKCS#1 v1.5 with
//!   SHA-256, signatureAlgorithm sha256WithRSAEncryption (as `openssl cms -sign` writes).
//!   Verification accepts rsaEncryption and sha256WithRSAEncryption (PKCS#1 v1.5) and
//!   RSASSA-PSS with SHA-256.
//! - EnvelopedData v0, one KeyTransRecipientInfo v0 (rid IssuerAndSerialNumber of the KRD
//!   certificate), the content key under the KRD's key with RSAES-OAEP SHA-256 / MGF1-SHA-256
//!   (RFC 8017 parameters, with their tags); content AES-256-CBC (id-aes256-CBC, random IV,
//!   PKCS#7 padding) under a fresh AES-256 content key from the OS RNG.
//! - The enveloped TR-34 key block (B.2.2.2.1): SEQUENCE { version 1, idKDH, clearKey,
//!   keyBlockHeader Attribute { pkcs7-data, SET { OCTET STRING header } } }.
//! - The key block header (TR-31 text via [`keymother_crypto::tr31::Header`]): version D, key
//!   usage K0, algorithm T or A after the master key, mode of use D, key version 00,
//!   exportability N, one proprietary optional block "01" holding the key index in eight ASCII
//!   digits (so the signature binds the key index). The four length digits are "0000": the
//!   header of a key that is not TR-31-wrapped has no block length, and [`Header`]'s text
//!   writes zeros there. [`key_block_header`] gives the text, e.g. `D0000K0TD00N0100010C00000042`
//!   for a TDES key of index 42.
//!
//! The appliance never decrypts anything it receives.
//!
//! [`Header`]: keymother_crypto::tr31::Header

mod error;
mod key_block;

pub use error::Tr34Error;
pub use key_block::{KeyBlock, key_block_header};

use std::fmt;
use std::time::{Duration, SystemTime};

use keymother_crypto::SecretKey;
use keymother_domain::KeyIndex;

use crate::{PrivateKey, TrustAnchors, VerifiedCertificate};

/// Which token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// The KDH's certificate (and its CA's CRL), B.6.
    KdhCredential,
    /// The KRD's certificate, B.7.
    KrdCredential,
    /// The KRD's random number, B.12.
    RandomNumber,
    /// A key token with a signing time, B.8.
    OnePassKeyToken,
    /// A key token with the KRD's random number, B.9.
    TwoPassKeyToken,
    /// A rebind token, B.10 and B.11.
    RebindToken,
    /// An unbind token, B.13 and B.14.
    UnbindToken,
}

impl fmt::Display for TokenKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenKind::KdhCredential => "KDH credential token",
            TokenKind::KrdCredential => "KRD credential token",
            TokenKind::RandomNumber => "KRD random number token",
            TokenKind::OnePassKeyToken => "one-pass key token",
            TokenKind::TwoPassKeyToken => "two-pass key token",
            TokenKind::RebindToken => "rebind token",
            TokenKind::UnbindToken => "unbind token",
        })
    }
}

/// How inner structures are carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireForm {
    /// Inner structures with their outer SEQUENCE (TR-34-2019).
    Tr34_2019,
    /// Inner structures as the bare contents of their SEQUENCE (X9_TR34_2012).
    Tr34_2012,
}

impl fmt::Display for WireForm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WireForm::Tr34_2019 => "TR-34-2019 (inner structures with their SEQUENCE)",
            WireForm::Tr34_2012 => "X9_TR34_2012 (inner structures without their SEQUENCE)",
        })
    }
}

/// Any parsed token. Holds no secret; [`Token::describe`] explains it.
#[derive(Debug, Clone)]
pub struct Token {
    kind: TokenKind,
    form: WireForm,
}

impl Token {
    /// Parses any TR-34 token (DER; see [`pem_to_der`] for PEM).
    pub fn parse(der: &[u8]) -> Result<Token, Tr34Error> {
        let _ = der;
        Err(Tr34Error::NotYetImplemented("Token::parse"))
    }
    /// Which token it is.
    pub fn kind(&self) -> TokenKind {
        self.kind
    }
    /// Which wire form its inner structure has.
    pub fn form(&self) -> WireForm {
        self.form
    }
    /// (label, value) lines explaining the token.
    pub fn describe(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    /// Verifies the signature (and messageDigest over the content) with `signer_certificate_der`'s key.
    pub fn verify_signature(&self, signer_certificate_der: &[u8]) -> Result<(), Tr34Error> {
        let _ = signer_certificate_der;
        Err(Tr34Error::NotYetImplemented("Token::verify_signature"))
    }
    /// The random number: of a two-pass key token, or of a random number token.
    pub fn nonce(&self) -> Option<&[u8]> {
        None
    }
    /// The signing time of a one-pass key token (or any signed token that has one).
    pub fn signing_time(&self) -> Option<SystemTime> {
        None
    }
    /// The key block header in the signed attributes of a key token.
    pub fn key_block_header(&self) -> Option<&str> {
        None
    }
    /// The certificates carried (DER).
    pub fn certificates(&self) -> &[Vec<u8>] {
        &[]
    }
    /// The CRLs carried (DER).
    pub fn crls(&self) -> &[Vec<u8>] {
        &[]
    }
    /// Key tokens only: the symmetric layer opened with a known content key.
    pub fn decrypt_with_content_key(&self, content_key: &[u8]) -> Result<KeyBlock, Tr34Error> {
        let _ = content_key;
        Err(Tr34Error::NotYetImplemented(
            "Token::decrypt_with_content_key",
        ))
    }
}

/// DER from a PEM text (any label), or the bytes as they are when they are not PEM.
pub fn pem_to_der(bytes: &[u8]) -> Result<Vec<u8>, Tr34Error> {
    Ok(bytes.to_vec())
}

/// A parsed credential token: what it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialToken {
    /// KDH or KRD credential.
    pub kind: TokenKind,
    /// The certificates (DER), the leaf first as carried.
    pub certificates: Vec<Vec<u8>>,
    /// The CRLs (DER).
    pub crls: Vec<Vec<u8>>,
    /// The wire form.
    pub form: WireForm,
}

/// The KDH credential token: the KDH certificate and, unless `kdh_crl_der` is empty, the KDH
/// CA's CRL.
pub fn kdh_credential_token(
    kdh_certificate_der: &[u8],
    kdh_crl_der: &[u8],
) -> Result<Vec<u8>, Tr34Error> {
    let _ = (kdh_certificate_der, kdh_crl_der);
    Err(Tr34Error::NotYetImplemented("kdh_credential_token"))
}

/// The KRD credential token: the device certificate.
pub fn krd_credential_token(device_certificate_der: &[u8]) -> Result<Vec<u8>, Tr34Error> {
    let _ = device_certificate_der;
    Err(Tr34Error::NotYetImplemented("krd_credential_token"))
}

/// The KRD's random number token for `nonce` (8..=32 bytes).
pub fn random_number_token(nonce: &[u8]) -> Result<Vec<u8>, Tr34Error> {
    let _ = nonce;
    Err(Tr34Error::NotYetImplemented("random_number_token"))
}

/// The nonce of a random number token.
pub fn parse_random_number_token(der: &[u8]) -> Result<Vec<u8>, Tr34Error> {
    let _ = der;
    Err(Tr34Error::NotYetImplemented("parse_random_number_token"))
}

/// The certificates and CRLs of a KDH or KRD credential token.
pub fn parse_credential_token(der: &[u8]) -> Result<CredentialToken, Tr34Error> {
    let _ = der;
    Err(Tr34Error::NotYetImplemented("parse_credential_token"))
}

/// How a key token is bound to time.
#[derive(Debug, Clone, Copy)]
pub enum Freshness<'a> {
    /// Two-pass: the KRD's random number.
    TwoPass {
        /// The nonce from the KRD's random number token.
        nonce: &'a [u8],
    },
    /// One-pass: the KDH's signing time.
    OnePass {
        /// The time to sign.
        signing_time: SystemTime,
    },
}

/// What [`build_key_token`] needs.
pub struct KeyTokenInput<'a> {
    /// The appliance's KDH private key.
    pub kdh_key: &'a PrivateKey,
    /// The KDH certificate (must be verified as [`Role::KeyDistributionHost`](crate::Role)).
    pub kdh: &'a VerifiedCertificate,
    /// The KRD's device certificate (must be verified as [`Role::TerminalDevice`](crate::Role)).
    pub krd: &'a VerifiedCertificate,
    /// One-pass or two-pass.
    pub freshness: Freshness<'a>,
    /// The key index, bound into the signed header.
    pub key_index: KeyIndex,
    /// The KDH CA's CRL (DER), or empty.
    pub crl: &'a [u8],
}

/// A built key token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltKeyToken {
    /// The token, DER.
    pub der: Vec<u8>,
    /// The key block header text (signed and enveloped).
    pub header: String,
    /// The master key's check value.
    pub kcv: Vec<u8>,
}

/// Builds a key token delivering `master_key` to the KRD.
pub fn build_key_token(
    input: &KeyTokenInput<'_>,
    master_key: &SecretKey,
) -> Result<BuiltKeyToken, Tr34Error> {
    let _ = (input, master_key);
    Err(Tr34Error::NotYetImplemented("build_key_token"))
}

/// What the KRD expects of a key token's freshness.
#[derive(Debug, Clone, Copy)]
pub enum ExpectedFreshness<'a> {
    /// The nonce this KRD sent.
    TwoPass {
        /// The nonce.
        nonce: &'a [u8],
    },
    /// Signing time within `max_skew` of `now`, and strictly after `after` if given (the last
    /// one-pass token this KRD accepted: a replay is refused).
    OnePass {
        /// The tolerance either side of now.
        max_skew: Duration,
        /// The last accepted signing time.
        after: Option<SystemTime>,
    },
}

/// A key token opened by the KRD. The key zeroizes on drop; no Debug.
pub struct OpenedKeyToken {
    /// The delivered key.
    pub key: SecretKey,
    /// The key block header text.
    pub header: String,
    /// The key index from optional block "01".
    pub key_index: KeyIndex,
    /// The signing time (one-pass).
    pub signing_time: Option<SystemTime>,
}

/// The KRD opens a key token: every check before any key is returned.
#[allow(clippy::too_many_arguments)]
pub fn open_key_token(
    device_key: &PrivateKey,
    device_certificate_der: &[u8],
    kdh: &VerifiedCertificate,
    anchors: &TrustAnchors,
    now: SystemTime,
    expected: &ExpectedFreshness<'_>,
    token_der: &[u8],
) -> Result<OpenedKeyToken, Tr34Error> {
    let _ = (
        device_key,
        device_certificate_der,
        kdh,
        anchors,
        now,
        expected,
        token_der,
    );
    Err(Tr34Error::NotYetImplemented("open_key_token"))
}
