//! The KRD (terminal) side: [`open_key_token`] checks a key token completely, in a fixed order, before it returns any key.

use std::str::FromStr;
use std::time::{Duration, SystemTime};

use keymother_crypto::SecretKey;
use keymother_crypto::tr31::{Exportability, Header, ModeOfUse};
use keymother_domain::KeyIndex;

use super::envelope::{Recipient, check_oaep_parameters};
use super::key_block::{KeyBlock, key_index_of};
use super::signature::{only_signer, verify_signer};
use super::token::Token;
use super::{TokenKind, Tr34Error};
use crate::certificate::parse_certificate;
use crate::{Crl, PkiError, PrivateKey, Role, TrustAnchors, VerifiedCertificate};

/// What the KRD expects of a key token's freshness.
#[derive(Debug, Clone, Copy)]
pub enum ExpectedFreshness<'a> {
    /// Two-pass: the nonce this KRD sent in its random number token.
    TwoPass {
        /// The nonce.
        nonce: &'a [u8],
    },
    /// One-pass: the signing time within `max_skew` of `now`, and strictly after `after` if
    /// given (the last one-pass token this KRD accepted: a replay is refused).
    OnePass {
        /// The tolerance either side of now.
        max_skew: Duration,
        /// The last accepted signing time.
        after: Option<SystemTime>,
    },
}

/// A key token opened by the KRD. The key zeroizes on drop; there is no Debug.
pub struct OpenedKeyToken {
    /// The delivered key.
    pub key: SecretKey,
    /// The key block header text.
    pub header: String,
    /// The key index from optional block "01".
    pub key_index: KeyIndex,
    /// The signing time (one-pass tokens).
    pub signing_time: Option<SystemTime>,
}

/// The KRD opens a key token. In this order, all before any key is returned: parse; the
/// signer is the KDH certificate ([`Tr34Error::WrongSigner`]); each attached CRL passes
/// `anchors.check_crl` for the KDH role at `now` ([`Tr34Error::Crl`]) and does not list the
/// KDH ([`Tr34Error::KdhRevoked`]); signature and messageDigest
/// ([`Tr34Error::BadSignature`], [`Tr34Error::DigestMismatch`]); freshness (nonce, or signing
/// time and replay); the recipient is the device certificate
/// ([`Tr34Error::NotForThisDevice`]); the content key unwraps (opaque
/// [`Tr34Error::KeyDoesNotDecrypt`]); the content decrypts; the key block parses; its idKDH
/// is the KDH; its header equals the signed one (if the token carries one) and is K0, mode D,
/// non-exportable, with the key index in block "01".
///
/// `kdh` must have been verified as [`Role::KeyDistributionHost`] (from the KDH credential
/// token); `device_key` must belong to `device_certificate_der`.
pub fn open_key_token(
    device_key: &PrivateKey,
    device_certificate_der: &[u8],
    kdh: &VerifiedCertificate,
    anchors: &TrustAnchors,
    now: SystemTime,
    expected: &ExpectedFreshness<'_>,
    token_der: &[u8],
) -> Result<OpenedKeyToken, Tr34Error> {
    if kdh.role() != Role::KeyDistributionHost {
        return Err(Tr34Error::NotKdh { role: kdh.role() });
    }
    let device_certificate =
        parse_certificate(device_certificate_der, "device certificate").map_err(Tr34Error::Pki)?;
    if !device_key.matches_certificate(device_certificate_der) {
        return Err(Tr34Error::Pki(PkiError::KeyMismatch {
            what: "device certificate",
        }));
    }
    let token = Token::parse(token_der)?;
    if !matches!(
        token.kind,
        TokenKind::OnePassKeyToken | TokenKind::TwoPassKeyToken
    ) {
        return Err(Tr34Error::WrongKind {
            expected: "key token",
            found: token.kind,
        });
    }
    let signed = token.signed.as_ref().ok_or(Tr34Error::WrongKind {
        expected: "key token",
        found: token.kind,
    })?;
    let signer = only_signer(signed, &token)?;
    if !signer.sid.names(kdh.certificate()) {
        return Err(Tr34Error::WrongSigner {
            signer: signer.sid.describe(),
        });
    }
    if signed.other_crls > 0 {
        return Err(Tr34Error::Unsupported {
            what: "revocation information",
            detail: "a format other than an X.509 CRL".into(),
        });
    }
    for crl in &signed.crls {
        let crl = Crl::parse(crl).map_err(Tr34Error::Crl)?;
        anchors
            .check_crl(Role::KeyDistributionHost, &crl, now)
            .map_err(Tr34Error::Crl)?;
        if crl.lists(kdh.serial()) {
            return Err(Tr34Error::KdhRevoked {
                serial: hex::encode_upper(kdh.serial().as_bytes()),
            });
        }
    }
    verify_signer(signed, signer, kdh.public_key())?;
    check_freshness(&token, expected, now)?;
    let key_block = unwrap(&token, device_key, &device_certificate)?;
    if !key_block.kdh.names(kdh.certificate()) {
        return Err(Tr34Error::KdhIdMismatch {
            named: key_block.kdh.describe(),
        });
    }
    let key_index = check_header(&token, &key_block)?;
    Ok(OpenedKeyToken {
        key: key_block.key,
        header: key_block.header,
        key_index,
        signing_time: token.signing_time,
    })
}

fn check_freshness(
    token: &Token,
    expected: &ExpectedFreshness<'_>,
    now: SystemTime,
) -> Result<(), Tr34Error> {
    match *expected {
        ExpectedFreshness::TwoPass { nonce } => {
            let found = token.nonce().ok_or(Tr34Error::FreshnessMissing {
                expected: "random number",
                expected_kind: "two-pass",
            })?;
            if found != nonce {
                return Err(Tr34Error::NonceMismatch);
            }
        }
        ExpectedFreshness::OnePass { max_skew, after } => {
            let time = token.signing_time().ok_or(Tr34Error::FreshnessMissing {
                expected: "signing time",
                expected_kind: "one-pass",
            })?;
            let skew = time
                .duration_since(now)
                .or_else(|_| now.duration_since(time))
                .unwrap_or(Duration::MAX);
            if skew > max_skew {
                return Err(Tr34Error::Stale {
                    signing_time: time_text(time),
                    now: time_text(now),
                    max_skew_seconds: max_skew.as_secs(),
                });
            }
            if let Some(last) = after
                && time <= last
            {
                return Err(Tr34Error::Replayed {
                    signing_time: time_text(time),
                    last: time_text(last),
                });
            }
        }
    }
    Ok(())
}

/// The recipient check, the OAEP unwrap and the content decryption.
fn unwrap(
    token: &Token,
    device_key: &PrivateKey,
    device_certificate: &x509_cert::Certificate,
) -> Result<KeyBlock, Tr34Error> {
    let envelope = token.envelope()?;
    let mine = envelope
        .recipients
        .iter()
        .find_map(|recipient| match recipient {
            Recipient::KeyTransport {
                rid,
                algorithm,
                encrypted_key,
            } if rid.names(device_certificate) => Some((algorithm, encrypted_key)),
            _ => None,
        });
    let Some((algorithm, encrypted_key)) = mine else {
        return Err(Tr34Error::NotForThisDevice {
            recipient: describe_recipients(&envelope.recipients),
        });
    };
    check_oaep_parameters(algorithm)?;
    let content_key = device_key
        .decrypt_oaep(encrypted_key)
        .map_err(|()| Tr34Error::KeyDoesNotDecrypt)?;
    let plain = envelope.decrypt(&content_key)?;
    KeyBlock::parse(&plain)
}

fn describe_recipients(recipients: &[Recipient]) -> String {
    let names: Vec<String> = recipients
        .iter()
        .map(|recipient| match recipient {
            Recipient::KeyTransport { rid, .. } => rid.describe(),
            Recipient::Other { description } => description.clone(),
        })
        .collect();
    if names.is_empty() {
        "nobody (no recipient)".into()
    } else {
        names.join("; ")
    }
}

/// The signed header (when the token has one) equals the key block's; K0, mode D,
/// non-exportable; the key index. The header attribute is optional: the key block, header
/// included, is inside the signed envelope anyway (`openssl cms -sign` cannot add it).
fn check_header(token: &Token, key_block: &KeyBlock) -> Result<KeyIndex, Tr34Error> {
    if let Some(signed) = token.key_block_header()
        && signed != key_block.header
    {
        return Err(Tr34Error::HeaderMismatch {
            signed: signed.to_string(),
            enveloped: key_block.header.clone(),
        });
    }
    let header = Header::from_str(&key_block.header).map_err(|e| Tr34Error::KeyBlock {
        detail: format!("the header does not parse: {e}"),
    })?;
    let refuse = |detail: String| Err(Tr34Error::KeyBlock { detail });
    if header.key_usage.code() != *b"K0" {
        return refuse(format!("key usage {}, expected K0", header.key_usage));
    }
    if header.mode_of_use != ModeOfUse::DecryptOnly {
        return refuse(format!(
            "mode of use {}, expected D",
            header.mode_of_use.code()
        ));
    }
    if header.exportability != Exportability::NonExportable {
        return refuse(format!(
            "exportability {}, expected N",
            header.exportability.code()
        ));
    }
    key_index_of(&header)
}

fn time_text(time: SystemTime) -> String {
    der::DateTime::from_system_time(time)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| "(out of range)".into())
}
