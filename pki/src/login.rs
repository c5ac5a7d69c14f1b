//! Operator login by challenge and signature: the appliance sends a random challenge, the operator signs it with the time, the appliance checks certificate, time window and signature.
//!
//! The scheme follows the public patent CN103714639A: the device issues a random challenge;
//! the operator's client signs challenge + time with the operator's private key and sends its
//! certificate with the signature; the device checks the certificate chain against the
//! operator root (validity period, key usage, revocation), the echoed challenge, that the
//! signing time is within a window of its own clock, and the signature.
//!
//! What is signed is [`login_content`]: with an RSA key, RSASSA-PSS with SHA-256,
//! MGF1-SHA-256 and a 32-byte salt; with an EC key, ECDSA (the signature DER-encoded, as
//! `openssl dgst -sign` writes it) with SHA-256 on P-256 or SHA-384 on P-384. The operator
//! certificate may chain to the operator CA through intermediate CAs, sent with the login
//! ([`LoginResponse::intermediates`]) or configured at the appliance. Single-use challenges
//! and session expiry are the daemon's business.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::certificate::parse_certificate;
use crate::encoding::{put_field, serial_hex};
use crate::keys::{PrivateKey, verify_pss};
use crate::public_key::{PublicKey, public_key, verify_ecdsa_message};
use crate::{Crl, PkiError, Role, TrustAnchors, pem_bundle};

pub use crate::login_key::LoginKey;

/// Length of a login challenge, bytes.
pub const CHALLENGE_LENGTH: usize = 32;

/// The domain-separation label at the start of [`login_content`] (26 ASCII bytes).
pub const LOGIN_LABEL: &[u8] = b"KEYMOTHER-OPERATOR-LOGIN/1";

/// What the operator client sends back (all public). serde-free; the daemon puts these in JSON
/// as hex/base64 itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginResponse {
    /// The operator certificate, DER.
    pub certificate: Vec<u8>,
    /// The challenge, echoed.
    pub challenge: [u8; CHALLENGE_LENGTH],
    /// When the operator signed: Unix seconds by the operator client's clock.
    pub signed_at: u64,
    /// RSASSA-PSS (SHA-256, MGF1-SHA-256, salt 32) over [`login_content`] for an RSA key;
    /// ECDSA (DER) with SHA-256 (P-256) or SHA-384 (P-384) for an EC key.
    pub signature: Vec<u8>,
    /// Intermediate CA certificates (DER) between the operator certificate and the operator
    /// CA, as the operator's certificate file had them after the certificate; often none.
    pub intermediates: Vec<Vec<u8>>,
}

/// The exact bytes an operator signs to log in:
///
/// | offset | length | content |
/// | --- | --- | --- |
/// | 0 | 26 | the ASCII label `KEYMOTHER-OPERATOR-LOGIN/1` (no length prefix, no terminator) |
/// | 26 | 4 | length of the device id in bytes, unsigned 32-bit big-endian |
/// | 30 | n | the device id, UTF-8 |
/// | 30 + n | 4 | `00 00 00 20` (the challenge's length, 32) |
/// | 34 + n | 32 | the challenge |
/// | 66 + n | 4 | `00 00 00 08` (the time's length, 8) |
/// | 70 + n | 8 | `signed_at`: Unix seconds, unsigned 64-bit big-endian |
///
/// 78 + n bytes in all. Every field after the label is a 4-byte big-endian length followed by
/// the bytes, fixed-size fields included, so a parser needs one rule. The signature is
/// RSASSA-PSS over these bytes (the PSS message hash is SHA-256 of them), as made by
/// `openssl dgst -sha256 -sign KEY -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:32`.
///
/// Example: device id `KM-0001`, challenge 32 × `0x11`, signed_at 1893456000 give
/// `4B45594D4F544845522D4F50455241544F522D4C4F47494E2F31 00000007 4B4D2D30303031 00000020
/// 1111…11 00000008 0000000070DBD880`.
pub fn login_content(
    device_id: &str,
    challenge: &[u8; CHALLENGE_LENGTH],
    signed_at: u64,
) -> Vec<u8> {
    let mut content = Vec::with_capacity(LOGIN_LABEL.len() + 3 * 4 + device_id.len() + 40);
    content.extend_from_slice(LOGIN_LABEL);
    put_field(&mut content, device_id.as_bytes());
    put_field(&mut content, challenge);
    put_field(&mut content, &signed_at.to_be_bytes());
    content
}

/// Operator client side: signs [`login_content`] with `key` (blinded RSASSA-PSS, SHA-256,
/// salt 32) and returns the response with `certificate` (DER, PEM, or a PEM bundle: the
/// operator certificate first, then intermediate CA certificates; stored as DER). See
/// [`sign_login_with`] for EC keys.
///
/// Refuses ([`PkiError::KeyMismatch`]) when `key` is not the certificate's key, so the
/// operator learns that here rather than as a bad signature at the appliance; and
/// [`PkiError::BadTime`] for a time before 1970.
pub fn sign_login(
    key: &PrivateKey,
    certificate: &[u8],
    device_id: &str,
    challenge: &[u8; CHALLENGE_LENGTH],
    signed_at: SystemTime,
) -> Result<LoginResponse, PkiError> {
    sign_login_by(
        &PublicKey::Rsa(key.public_key()),
        &|message| key.sign_pss(message),
        certificate,
        device_id,
        challenge,
        signed_at,
    )
}

/// [`sign_login`] with an RSA or EC [`LoginKey`].
pub fn sign_login_with(
    key: &LoginKey,
    certificate: &[u8],
    device_id: &str,
    challenge: &[u8; CHALLENGE_LENGTH],
    signed_at: SystemTime,
) -> Result<LoginResponse, PkiError> {
    sign_login_by(
        &key.public_key(),
        &|message| key.sign(message),
        certificate,
        device_id,
        challenge,
        signed_at,
    )
}

type SignFn<'a> = dyn Fn(&[u8]) -> Result<Vec<u8>, PkiError> + 'a;

fn sign_login_by(
    key: &PublicKey,
    sign: &SignFn<'_>,
    certificate: &[u8],
    device_id: &str,
    challenge: &[u8; CHALLENGE_LENGTH],
    signed_at: SystemTime,
) -> Result<LoginResponse, PkiError> {
    let mut blocks = pem_bundle(certificate, "CERTIFICATE", "operator certificate file")?;
    let der = blocks.remove(0);
    let intermediates = blocks;
    let parsed = parse_certificate(&der, "operator certificate")?;
    let certified = public_key(&parsed, "operator certificate")?;
    if &certified != key {
        return Err(PkiError::KeyMismatch {
            what: "operator certificate",
        });
    }
    let signed_at = signed_at
        .duration_since(UNIX_EPOCH)
        .map_err(|_| PkiError::BadTime {
            what: "signing time",
        })?
        .as_secs();
    let signature = sign(&login_content(device_id, challenge, signed_at))?;
    Ok(LoginResponse {
        certificate: der,
        challenge: *challenge,
        signed_at,
        signature,
        intermediates,
    })
}

/// An operator whose login was verified.
#[derive(Debug, Clone)]
pub struct VerifiedOperator {
    /// The subject's common name, else the whole RFC 4514 DN.
    pub name: String,
    /// The subject, RFC 4514 DN.
    pub subject: String,
    /// The certificate's serial number, upper-case hex without separators.
    pub serial: String,
    /// The certificate's notAfter.
    pub not_after: SystemTime,
}

/// Why a login is refused.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The response echoes another challenge than the one issued.
    #[error(
        "the login response answers another challenge than the one this appliance issued \
         (a replayed or misdirected response)"
    )]
    ChallengeMismatch,
    /// The operator certificate is refused: wrong root, expired, not yet valid, another
    /// role's, revoked, malformed ...
    #[error("the operator certificate is refused: {0}")]
    Certificate(#[from] PkiError),
    /// The signing time is too far from the appliance's clock.
    #[error(
        "the login was signed at {} by the operator's clock, but the appliance's clock says {}: \
         {} s apart, more than the {} s allowed",
        unix_text(*signed_at),
        unix_text(*now),
        signed_at.abs_diff(*now),
        window.as_secs()
    )]
    OutsideWindow {
        /// `signed_at` of the response, Unix seconds.
        signed_at: u64,
        /// The appliance's time, Unix seconds.
        now: u64,
        /// The window allowed either side.
        window: Duration,
    },
    /// The signature does not verify under the certificate's key.
    #[error(
        "the login signature does not verify under the operator certificate's key \
         (RSASSA-PSS with SHA-256 and salt 32 for an RSA key, ECDSA with SHA-256 on P-256 or \
         SHA-384 on P-384 for an EC key, over the login content for this device, challenge and time)"
    )]
    BadSignature,
}

/// Daemon side. Checks, in this order: `response.challenge == challenge` (else
/// [`LoginError::ChallengeMismatch`]); the certificate verified as [`Role::Operator`] at `now`
/// with `crl` (else [`LoginError::Certificate`]: wrong root, expired, wrong role, revoked ...);
/// `|now - signed_at| <= window`, in whole seconds (else [`LoginError::OutsideWindow`], naming
/// both times and the window); the signature over `login_content(device_id, challenge,
/// signed_at)` under the certificate's key (else [`LoginError::BadSignature`]).
pub fn verify_login(
    anchors: &TrustAnchors,
    crl: Option<&Crl>,
    device_id: &str,
    challenge: &[u8; CHALLENGE_LENGTH],
    response: &LoginResponse,
    now: SystemTime,
    window: Duration,
) -> Result<VerifiedOperator, LoginError> {
    let crls: Vec<Crl> = crl.into_iter().cloned().collect();
    let login = Login {
        device_id,
        challenge,
        now,
        window,
    };
    verify_login_chain(anchors, &crls, &[], &login, response)
}

/// What the appliance checks a login against: its device id, the challenge it issued, its
/// clock and the window.
#[derive(Debug, Clone, Copy)]
pub struct Login<'a> {
    /// The appliance's device id.
    pub device_id: &'a str,
    /// The challenge issued.
    pub challenge: &'a [u8; CHALLENGE_LENGTH],
    /// The appliance's time.
    pub now: SystemTime,
    /// How far `signed_at` may lie from `now`, either way.
    pub window: Duration,
}

/// [`verify_login`] for certificate paths: the operator certificate is verified through the
/// intermediate CA certificates `intermediates` (the appliance's) and those the response
/// carries, with `crls` (the CRLs of the operator CA and of intermediates, each applying to
/// what its issuer issued): [`TrustAnchors::verify_chain`]; its key may be RSA or EC (P-256,
/// P-384). The other checks, their order and errors are those of [`verify_login`].
pub fn verify_login_chain(
    anchors: &TrustAnchors,
    crls: &[Crl],
    intermediates: &[Vec<u8>],
    login: &Login<'_>,
    response: &LoginResponse,
) -> Result<VerifiedOperator, LoginError> {
    let Login {
        device_id,
        challenge,
        now,
        window,
    } = *login;
    if response.challenge != *challenge {
        return Err(LoginError::ChallengeMismatch);
    }
    let all: Vec<Vec<u8>> = intermediates
        .iter()
        .chain(response.intermediates.iter())
        .cloned()
        .collect();
    let (certificate, key) =
        anchors.verify_path(Role::Operator, &response.certificate, &all, now, crls, true)?;
    // verify() has refused a `now` before 1970 already (BadNow).
    let now_secs = now
        .duration_since(UNIX_EPOCH)
        .map_err(|_| PkiError::BadNow)?
        .as_secs();
    if now_secs.abs_diff(response.signed_at) > window.as_secs() {
        return Err(LoginError::OutsideWindow {
            signed_at: response.signed_at,
            now: now_secs,
            window,
        });
    }
    let content = login_content(device_id, challenge, response.signed_at);
    let verified = match &key {
        PublicKey::Rsa(rsa) => verify_pss(rsa, &content, &response.signature),
        ec => verify_ecdsa_message(ec, &content, &response.signature),
    };
    if !verified {
        return Err(LoginError::BadSignature);
    }
    let tbs = certificate.tbs_certificate();
    let subject = tbs.subject().to_string();
    let name = tbs
        .subject()
        .common_name()
        .ok()
        .flatten()
        .map(|cn| cn.value().into_owned())
        .unwrap_or_else(|| subject.clone());
    Ok(VerifiedOperator {
        name,
        subject,
        serial: serial_hex(tbs.serial_number()),
        not_after: tbs.validity().not_after.to_system_time(),
    })
}

/// A Unix time as RFC 3339 UTC with the number itself, e.g. "2030-01-01T00:00:00Z (Unix
/// 1893456000)"; just the number where X.509 time cannot express it.
fn unix_text(seconds: u64) -> String {
    match der::DateTime::from_unix_duration(Duration::from_secs(seconds)) {
        Ok(time) => format!("{time} (Unix {seconds})"),
        Err(_) => format!("Unix {seconds}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_content_layout() {
        let content = login_content("KM-0001", &[0x11; 32], 1_893_456_000);
        let mut expected = Vec::new();
        expected.extend_from_slice(b"KEYMOTHER-OPERATOR-LOGIN/1");
        expected.extend_from_slice(&[0, 0, 0, 7]);
        expected.extend_from_slice(b"KM-0001");
        expected.extend_from_slice(&[0, 0, 0, 32]);
        expected.extend_from_slice(&[0x11; 32]);
        expected.extend_from_slice(&[0, 0, 0, 8]);
        expected.extend_from_slice(&[0, 0, 0, 0, 0x70, 0xDB, 0xD8, 0x80]);
        assert_eq!(content, expected);
        assert_eq!(LOGIN_LABEL.len(), 26);
        assert_eq!(content.len(), 78 + 7);
        // The hex in the doc comment.
        assert_eq!(
            hex::encode_upper(&content[..26]),
            "4B45594D4F544845522D4F50455241544F522D4C4F47494E2F31"
        );
    }

    #[test]
    fn window_message_names_both_times_and_the_window() {
        let err = LoginError::OutsideWindow {
            signed_at: 1_893_456_300,
            now: 1_893_456_000,
            window: Duration::from_secs(120),
        };
        let message = err.to_string();
        for part in [
            "2030-01-01T00:05:00Z",
            "2030-01-01T00:00:00Z",
            "300 s apart",
            "120 s allowed",
        ] {
            assert!(message.contains(part), "{message}");
        }
    }
}
