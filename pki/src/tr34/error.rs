//! [`Tr34Error`]: everything that can go wrong reading, checking, opening or building a TR-34 token.

use crate::{PkiError, Role};

use super::TokenKind;

/// Everything that can go wrong with a TR-34 token. No variant carries key material; the
/// messages name the field (and, for parse errors, the byte offset in the token).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Tr34Error {
    /// The bytes are not the DER structure expected at `offset`.
    #[error("malformed TR-34 token: {what} at byte offset {offset}: {detail}")]
    Malformed {
        /// The field ("SignedData version", "signedAttrs", ...).
        what: &'static str,
        /// Offset of the field (or of the byte where reading stopped) from the start of the
        /// bytes given.
        offset: usize,
        /// What was wrong.
        detail: String,
    },
    /// A PEM text that is not one PEM block.
    #[error("not a PEM block: {detail}")]
    Pem {
        /// The decoder's message.
        detail: String,
    },
    /// A token of another kind than the operation needs.
    #[error("expected a {expected}, found a {found}")]
    WrongKind {
        /// What was needed.
        expected: &'static str,
        /// What the bytes are.
        found: TokenKind,
    },
    /// An algorithm or structure TR-34 allows but keymother does not implement.
    #[error("unsupported {what}: {detail}")]
    Unsupported {
        /// Which field.
        what: &'static str,
        /// The OID or value found.
        detail: String,
    },
    /// A nonce outside 8..=32 bytes.
    #[error("a TR-34 random number (nonce) is 8 to 32 bytes; got {length}")]
    NonceLength {
        /// Its length.
        length: usize,
    },
    /// The two-pass token's nonce is not the one the KRD sent.
    #[error("the key token's random number is not the one this device sent")]
    NonceMismatch,
    /// The token carries neither the expected nonce nor a signing time.
    #[error("the key token carries no {expected} (it is not a {expected_kind} token)")]
    FreshnessMissing {
        /// "random number" or "signing time".
        expected: &'static str,
        /// "two-pass" or "one-pass".
        expected_kind: &'static str,
    },
    /// The one-pass signing time is too far from now.
    #[error(
        "the key token's signing time {signing_time} is more than {max_skew_seconds} s from now ({now})"
    )]
    Stale {
        /// The token's time.
        signing_time: String,
        /// The device's time.
        now: String,
        /// The tolerance.
        max_skew_seconds: u64,
    },
    /// The one-pass signing time is not after the last accepted one.
    #[error(
        "the key token's signing time {signing_time} is not after the last accepted token's ({last}): a replay"
    )]
    Replayed {
        /// The token's time.
        signing_time: String,
        /// The last accepted time.
        last: String,
    },
    /// The recipient of the envelope is not this device's certificate.
    #[error("the key token is not for this device: its recipient is {recipient}")]
    NotForThisDevice {
        /// The recipient's issuer and serial.
        recipient: String,
    },
    /// The signer is not the KDH certificate.
    #[error("the key token is signed by {signer}, not by the KDH")]
    WrongSigner {
        /// The signer's issuer and serial.
        signer: String,
    },
    /// The attached CRL does not check out against the KDH CA.
    #[error("the key token's CRL is refused: {0}")]
    Crl(PkiError),
    /// The attached CRL lists the KDH certificate.
    #[error("the KDH certificate (serial {serial}) is revoked on the token's CRL")]
    KdhRevoked {
        /// The KDH's serial, hex.
        serial: String,
    },
    /// The signature does not verify under the signer's key.
    #[error("the token's signature does not verify under the KDH certificate's key")]
    BadSignature,
    /// messageDigest differs from the digest of the content.
    #[error("the token's messageDigest attribute does not match its content")]
    DigestMismatch,
    /// The content-encryption key does not unwrap with the device key. Deliberately opaque.
    #[error("the content-encryption key does not decrypt with this device's key")]
    KeyDoesNotDecrypt,
    /// The encrypted content does not decrypt (padding) under the content key.
    #[error("the encrypted key block does not decrypt under the content-encryption key")]
    ContentDoesNotDecrypt,
    /// The decrypted TR-34 key block is malformed or not acceptable.
    #[error("the TR-34 key block is refused: {detail}")]
    KeyBlock {
        /// What is wrong with it.
        detail: String,
    },
    /// The signed key block header attribute differs from the key block's header.
    #[error(
        "the signed key block header ({signed}) differs from the key block's header ({enveloped})"
    )]
    HeaderMismatch {
        /// The signed attribute's header.
        signed: String,
        /// The enveloped key block's header.
        enveloped: String,
    },
    /// The key block's idKDH is not the KDH that signed.
    #[error("the key block names {named} as its KDH, not the signer")]
    KdhIdMismatch {
        /// The idKDH found.
        named: String,
    },
    /// The KDH certificate was not verified as a KDH certificate.
    #[error(
        "the signer certificate was verified as {} {role} certificate, not as a KDH certificate", .role.article()
    )]
    NotKdh {
        /// The role it was verified for.
        role: Role,
    },
    /// The recipient certificate was not verified as a terminal device certificate.
    #[error(
        "the recipient certificate was verified as {} {role} certificate, not as a terminal device certificate", .role.article()
    )]
    NotTerminalDevice {
        /// The role it was verified for.
        role: Role,
    },
    /// A certificate or CRL given to the library does not parse or check.
    #[error("{0}")]
    Pki(PkiError),
    /// An RSA operation (signing, encryption) failed.
    #[error("the RSA operation failed: {0}")]
    Rsa(String),
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
    /// Encoding what we build failed.
    #[error("cannot encode the {what}: {detail}")]
    Encoding {
        /// What was being encoded.
        what: &'static str,
        /// The encoder's message.
        detail: String,
    },
}

impl Tr34Error {
    /// True for anything that means "not authentic, not for us, or replayed" (a terminal
    /// answers DELIVERY_NOT_AUTHENTIC); false for "authentic but does not unwrap into a usable
    /// key" (KEY_BLOCK_DOES_NOT_UNWRAP) and for local failures.
    ///
    /// A malformed token counts as not authentic: nothing in it could be checked.
    pub fn is_authenticity(&self) -> bool {
        matches!(
            self,
            Tr34Error::Malformed { .. }
                | Tr34Error::Pem { .. }
                | Tr34Error::WrongKind { .. }
                | Tr34Error::Unsupported { .. }
                | Tr34Error::NonceLength { .. }
                | Tr34Error::NonceMismatch
                | Tr34Error::FreshnessMissing { .. }
                | Tr34Error::Stale { .. }
                | Tr34Error::Replayed { .. }
                | Tr34Error::NotForThisDevice { .. }
                | Tr34Error::WrongSigner { .. }
                | Tr34Error::Crl(_)
                | Tr34Error::KdhRevoked { .. }
                | Tr34Error::BadSignature
                | Tr34Error::DigestMismatch
                | Tr34Error::HeaderMismatch { .. }
                | Tr34Error::KdhIdMismatch { .. }
        )
    }
}
