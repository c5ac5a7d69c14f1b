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
//!   digits (so the signature binds the key index). The four length digits are the header's
//!   own length (the key is not TR-31-wrapped, so there is no block to measure).
//!   [`key_block_header`] gives the text, e.g. `D0028K0TD00N0100010C00000042` for a TDES key
//!   of index 42.
//!
//! The appliance never decrypts anything it receives.
//!
//! # What the terminal accepts ([`open_key_token`])
//!
//! Signatures as above; any AES-CBC or des-ede3-cbc content; RSAES-OAEP with SHA-256 and
//! MGF1-SHA-256 only. The key block header attribute is optional (`openssl cms -sign` cannot
//! add one; the key block and its header are inside the signed envelope anyway), but when
//! present it must equal the key block's header. CMS does not sign the crls field: a CRL that
//! is attached is checked, but an attacker can always remove it, so a terminal that needs a
//! current CRL must require one itself.
//!
//! [`Header`]: keymother_crypto::tr31::Header

mod asn1;
mod credential;
mod describe;
mod envelope;
mod error;
mod kdh;
mod key_block;
mod krd;
mod signature;
mod signed_data;
mod token;

pub use credential::{
    CredentialToken, NONCE_LENGTHS, kdh_credential_token, krd_credential_token,
    parse_credential_token, parse_random_number_token, random_number_token,
};
pub use error::Tr34Error;
pub use kdh::{BuiltKeyToken, Freshness, KeyTokenInput, build_key_token};
pub use key_block::{KeyBlock, key_block_header};
pub use krd::{ExpectedFreshness, OpenedKeyToken, open_key_token};
pub use token::{Token, pem_to_der};

use std::fmt;

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
