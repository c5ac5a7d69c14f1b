//! Certificate mode (mode 2): ASC X9 TR-34-2019 tokens carried as opaque bytes in WELCOME, KEY_REQUEST and KEY_DELIVERY, and the mode's rules for both sessions; the tokens' cryptography is the adapters'.
//!
//! The protocol crate does no cryptography and does not parse the tokens: it frames the KDH
//! credential token (WELCOME), the pass byte, the random number token and the KRD credential
//! token (KEY_REQUEST) and the key token (KEY_DELIVERY), checks the pass byte and rejects lengths
//! outside the limits below. What the tokens hold (CMS SignedData and EnvelopedData, X.509, the
//! TR-34 key block) is built and checked with `keymother_pki::tr34` by the appliance's
//! dispensing adapter and by the terminal. The sessions' part is in `Certificate`: the appliance
//! serves the mode only with a KDH credential token and limits key requests per port; the
//! terminal offers it only with a KRD credential token, and has its caller check the KDH
//! credential token (and make the random number token, two-pass) before asking for a key.
//!
//! Every token is a two-byte big-endian length followed by that many bytes (docs/PROTOCOL.md
//! section 9.1).

use std::collections::VecDeque;
use std::fmt;
use std::ops::RangeInclusive;
use std::time::Duration;

use super::profile::Profile;
use super::{AfterWelcome, ModeRequest, ModeRules, PortState, RequestRefusal, TerminalAbort};
use crate::appliance::{ApplianceConfig, TerminalIdentity};
use crate::codes::{AbortReason, ErrorCode};
use crate::message::{
    DecodeError, EncodeError, Field, FieldProblem, LengthWidth, MessageType, Welcome, Writer,
};
use crate::mode::Mode;
use crate::terminal::{TerminalAction, TerminalConfig};

/// Why the appliance refused a KEY_REQUEST's tokens or device certificate, as a type: what the
/// bench shows is chosen from it, never from the words of the ERROR's detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateProblem {
    /// The appliance has no KDH identity or no device CA: the mode is not set up.
    NotSetUp,
    /// `[clock] require_trusted` and nothing vouches for the clock.
    ClockNotSet,
    NotYetValid,
    Expired,
    Revoked,
    /// A valid certificate, but for another hardware serial.
    OtherTerminal,
    /// A signature (the certificate's, or its CA's) does not verify.
    BadSignature,
    /// A KRD credential token or random number token that does not parse, or is not the kind
    /// of token expected (a key token where a credential token belongs, a nonce of the wrong
    /// length, ...); the detail says which and what.
    BadToken,
    /// Anything else (wrong CA, wrong key usage, ...); the detail says what.
    Other,
}

/// A refused KEY_REQUEST: the problem as a type, and the detail the terminal is sent (never key
/// material).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRefusal {
    pub problem: CertificateProblem,
    pub detail: String,
}

/// Longest token of any kind: KDH credential token, KRD credential token, key token.
///
/// 3584 bytes, so that every message fits the 4094-byte payload with its longest token:
/// WELCOME takes at most 1 + 1 + 1 + 32 + 1 + 5 + 2 + 3584 = 3627 bytes, KEY_REQUEST at most
/// 1 + 1 + 2 + 64 + 2 + 3584 = 3654, and KEY_DELIVERY 4 + 2 + *b* + 1 + 5 + 2 + 3584 =
/// 3598 + *b*, which leaves up to 496 characters for the key block header (ours is 28). 3584
/// bytes hold a credential token with an RSA-4096 certificate and a CRL of a few dozen
/// entries, and a key token for RSA-4096 KDH and KRD keys with such a CRL.
pub const MAX_TOKEN_LENGTH: usize = 3584;
/// Longest random number token (an id-randomNonce attribute with a 32-byte nonce, the longest
/// docs/PROTOCOL.md allows, takes 50 bytes).
pub const MAX_RANDOM_NUMBER_TOKEN_LENGTH: usize = 64;

const TOKEN_LENGTH: &str = "1 to 3584 bytes";
const ONE_PASS_RANDOM_NUMBER_TOKEN_LENGTH: &str = "0 bytes: a one-pass request has no token";
const TWO_PASS_RANDOM_NUMBER_TOKEN_LENGTH: &str = "1 to 64 bytes in a two-pass request";
const PASSES: &str = "1 (one-pass) or 2 (two-pass)";

/// Which TR-34 key transport the terminal asks for (KEY_REQUEST's pass byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertificatePass {
    /// 1: no random number token; the key token's signed attributes carry a signing time.
    OnePass,
    /// 2: the terminal sends a random number token; the key token's signed attributes carry
    /// its nonce.
    TwoPass,
}

impl CertificatePass {
    /// The pass byte: 1 or 2.
    pub fn id(self) -> u8 {
        match self {
            CertificatePass::OnePass => 1,
            CertificatePass::TwoPass => 2,
        }
    }

    pub fn from_id(id: u8) -> Option<CertificatePass> {
        match id {
            1 => Some(CertificatePass::OnePass),
            2 => Some(CertificatePass::TwoPass),
            _ => None,
        }
    }

    /// The random number token's allowed lengths in this pass, and their description.
    fn random_number_token_lengths(self) -> (RangeInclusive<usize>, &'static str) {
        match self {
            CertificatePass::OnePass => (0..=0, ONE_PASS_RANDOM_NUMBER_TOKEN_LENGTH),
            CertificatePass::TwoPass => (
                1..=MAX_RANDOM_NUMBER_TOKEN_LENGTH,
                TWO_PASS_RANDOM_NUMBER_TOKEN_LENGTH,
            ),
        }
    }
}

impl fmt::Display for CertificatePass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CertificatePass::OnePass => "one-pass",
            CertificatePass::TwoPass => "two-pass",
        })
    }
}

/// How the terminal's key token will be fresh: the caller's answer to
/// [`TerminalAction::VerifyAppliance`], given to
/// [`TerminalSession::handle_appliance_verified`](crate::TerminalSession::handle_appliance_verified).
/// The caller makes the nonce and the token, and keeps the nonce to check the key token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateFreshness {
    /// One-pass: the key token carries a signing time the terminal checks against its clock.
    OnePass,
    /// Two-pass: the key token must carry this token's nonce.
    TwoPass {
        /// The random number token (RT_KRD, DER), 1 to [`MAX_RANDOM_NUMBER_TOKEN_LENGTH`] bytes.
        random_number_token: Vec<u8>,
    },
}

impl CertificateFreshness {
    pub fn pass(&self) -> CertificatePass {
        match self {
            CertificateFreshness::OnePass => CertificatePass::OnePass,
            CertificateFreshness::TwoPass { .. } => CertificatePass::TwoPass,
        }
    }
}

/// WELCOME's mode data: the appliance's KDH credential token (TR-34 CT_KDH, DER).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateWelcome {
    pub kdh_credential_token: Vec<u8>,
}

/// KEY_REQUEST's mode data: the pass, the random number token (two-pass only) and the
/// terminal's KRD credential token (TR-34 CT_KRD, DER).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRequest {
    pub pass: CertificatePass,
    /// TR-34 RT_KRD (DER): empty exactly when one-pass.
    pub random_number_token: Vec<u8>,
    pub krd_credential_token: Vec<u8>,
}

/// KEY_DELIVERY's mode data: the key token (TR-34 KT_KDH, DER, one-pass or two-pass as asked).
/// The delivery's key block field carries the TR-34 key block header signed inside the token,
/// and its KCV field the master key's check value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateDelivery {
    pub key_token: Vec<u8>,
}

impl CertificateWelcome {
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut writer = Writer::new(MessageType::Welcome);
        write_token(
            &mut writer,
            Field::KdhCredentialToken,
            &self.kdh_credential_token,
        )?;
        Ok(writer.bytes)
    }

    pub fn decode(mode_data: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = FieldReader::new(MessageType::Welcome, mode_data);
        let kdh_credential_token = reader
            .token(Field::KdhCredentialTokenLength, Field::KdhCredentialToken)?
            .to_vec();
        reader.finish()?;
        Ok(CertificateWelcome {
            kdh_credential_token,
        })
    }
}

impl CertificateRequest {
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut writer = Writer::new(MessageType::KeyRequest);
        writer.u8(self.pass.id());
        let (lengths, allowed) = self.pass.random_number_token_lengths();
        writer.prefixed(
            LengthWidth::Two,
            Field::RandomNumberToken,
            &self.random_number_token,
            *lengths.start(),
            *lengths.end(),
            allowed,
        )?;
        write_token(
            &mut writer,
            Field::KrdCredentialToken,
            &self.krd_credential_token,
        )?;
        Ok(writer.bytes)
    }

    pub fn decode(mode_data: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = FieldReader::new(MessageType::KeyRequest, mode_data);
        let pass_at = reader.offset;
        let pass_id = reader.u8(Field::Pass)?;
        let pass = CertificatePass::from_id(pass_id).ok_or_else(|| {
            reader.error(
                Field::Pass,
                pass_at,
                FieldProblem::Value {
                    value: u64::from(pass_id),
                    allowed: PASSES,
                },
            )
        })?;
        let (lengths, allowed) = pass.random_number_token_lengths();
        let random_number_token = reader
            .prefixed(
                Field::RandomNumberTokenLength,
                Field::RandomNumberToken,
                lengths,
                allowed,
            )?
            .to_vec();
        let krd_credential_token = reader
            .token(Field::KrdCredentialTokenLength, Field::KrdCredentialToken)?
            .to_vec();
        reader.finish()?;
        Ok(CertificateRequest {
            pass,
            random_number_token,
            krd_credential_token,
        })
    }
}

impl CertificateDelivery {
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut writer = Writer::new(MessageType::KeyDelivery);
        write_token(&mut writer, Field::KeyToken, &self.key_token)?;
        Ok(writer.bytes)
    }

    pub fn decode(mode_data: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = FieldReader::new(MessageType::KeyDelivery, mode_data);
        let key_token = reader
            .token(Field::KeyTokenLength, Field::KeyToken)?
            .to_vec();
        reader.finish()?;
        Ok(CertificateDelivery { key_token })
    }
}

/// A two-byte length in 1 to [`MAX_TOKEN_LENGTH`] and the token.
fn write_token(writer: &mut Writer, field: Field, token: &[u8]) -> Result<(), EncodeError> {
    writer.prefixed(
        LengthWidth::Two,
        field,
        token,
        1,
        MAX_TOKEN_LENGTH,
        TOKEN_LENGTH,
    )
}

/// Reads certificate mode's fields, naming the field and the mode-data offset where it starts
/// in every error.
struct FieldReader<'a> {
    message: MessageType,
    bytes: &'a [u8],
    /// Bytes of the mode data read so far.
    offset: usize,
}

impl<'a> FieldReader<'a> {
    fn new(message: MessageType, bytes: &'a [u8]) -> Self {
        FieldReader {
            message,
            bytes,
            offset: 0,
        }
    }

    fn error(&self, field: Field, offset: usize, problem: FieldProblem) -> DecodeError {
        DecodeError::ModeField {
            message: self.message,
            field,
            offset,
            problem,
        }
    }

    /// `count` bytes of `field`, which starts here.
    fn take(&mut self, count: usize, field: Field) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < count {
            return Err(self.error(field, self.offset, FieldProblem::Truncated));
        }
        let (taken, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        self.offset += count;
        Ok(taken)
    }

    fn u8(&mut self, field: Field) -> Result<u8, DecodeError> {
        Ok(self.take(1, field)?[0])
    }

    /// A two-byte big-endian length in `lengths`, then that many bytes.
    fn prefixed(
        &mut self,
        length_field: Field,
        field: Field,
        lengths: RangeInclusive<usize>,
        allowed: &'static str,
    ) -> Result<&'a [u8], DecodeError> {
        let length_at = self.offset;
        let bytes = self.take(2, length_field)?;
        let length = usize::from(u16::from_be_bytes([bytes[0], bytes[1]]));
        if !lengths.contains(&length) {
            return Err(self.error(
                length_field,
                length_at,
                FieldProblem::Length {
                    found: length,
                    allowed,
                },
            ));
        }
        self.take(length, field)
    }

    /// A token: a two-byte length in 1 to [`MAX_TOKEN_LENGTH`], then the token.
    fn token(&mut self, length_field: Field, field: Field) -> Result<&'a [u8], DecodeError> {
        self.prefixed(length_field, field, 1..=MAX_TOKEN_LENGTH, TOKEN_LENGTH)
    }

    fn finish(self) -> Result<(), DecodeError> {
        match self.bytes.len() {
            0 => Ok(()),
            count => Err(self.error(
                Field::ModeData,
                self.offset,
                FieldProblem::TrailingBytes { count },
            )),
        }
    }
}

/// Certificate mode's rules for both sessions.
pub(crate) struct Certificate;

impl ModeRules for Certificate {
    fn mode(&self) -> Mode {
        Mode::Certificate
    }

    fn carries_mode_data(&self) -> bool {
        true
    }

    /// Only with a KDH credential token to send in WELCOME.
    fn appliance_can_serve(&self, config: &ApplianceConfig, _terminal: &TerminalIdentity) -> bool {
        !config.kdh_credential_token.is_empty()
    }

    fn welcome_data(
        &self,
        config: &ApplianceConfig,
        _terminal: &TerminalIdentity,
    ) -> Result<Vec<u8>, EncodeError> {
        CertificateWelcome {
            kdh_credential_token: config.kdh_credential_token.clone(),
        }
        .encode()
    }

    fn session_profile(
        &self,
        _config: &ApplianceConfig,
        _terminal: &TerminalIdentity,
    ) -> Option<Profile> {
        None
    }

    /// Decodes the pass and the tokens (the adapter parses and checks them), then counts the
    /// request against the port's limit: each one costs a KDH signature.
    fn accept_request(
        &self,
        config: &ApplianceConfig,
        mode_data: &[u8],
        now: Duration,
        port: &mut PortState,
    ) -> Result<ModeRequest, RequestRefusal> {
        let request = CertificateRequest::decode(mode_data).map_err(|error| RequestRefusal {
            code: ErrorCode::MALFORMED_MESSAGE,
            detail: error.to_string(),
        })?;
        let limit = config.certificate_requests_per_minute;
        if !port.certificate.admit(now, limit) {
            return Err(RequestRefusal {
                code: ErrorCode::RATE_LIMITED,
                detail: format!(
                    "more than {limit} certificate-mode key requests on this port in 60 s"
                ),
            });
        }
        Ok(ModeRequest::Certificate(request))
    }

    /// Only with a KRD credential token to send in KEY_REQUEST.
    fn terminal_can_run(&self, config: &TerminalConfig) -> bool {
        !config.krd_credential_token.is_empty()
    }

    /// The transport key plays no part: the appliance proves itself with its KDH credential
    /// token instead, which the caller checks before the terminal asks for a key.
    fn check_welcome(
        &self,
        _config: &TerminalConfig,
        welcome: &Welcome,
    ) -> Result<AfterWelcome, TerminalAbort> {
        let certificate =
            CertificateWelcome::decode(&welcome.mode_data).map_err(|error| TerminalAbort {
                reason: AbortReason::UNEXPECTED_RESPONSE,
                detail: error.to_string(),
                failure: format!("malformed certificate-mode WELCOME: {error}"),
            })?;
        Ok(AfterWelcome::VerifyAppliance(
            TerminalAction::VerifyAppliance {
                device_id: welcome.device_id.clone(),
                kdh_credential_token: certificate.kdh_credential_token,
            },
        ))
    }

    /// The pass, the random number token and the KRD credential token. The freshness is chosen
    /// when the appliance is verified, before any KEY_REQUEST; without it the request carries
    /// nothing.
    fn request_data(
        &self,
        config: &TerminalConfig,
        freshness: Option<&CertificateFreshness>,
    ) -> Result<Vec<u8>, EncodeError> {
        let Some(freshness) = freshness else {
            return Ok(Vec::new());
        };
        let random_number_token = match freshness {
            CertificateFreshness::OnePass => Vec::new(),
            CertificateFreshness::TwoPass {
                random_number_token,
            } => random_number_token.clone(),
        };
        CertificateRequest {
            pass: freshness.pass(),
            random_number_token,
            krd_credential_token: config.krd_credential_token.clone(),
        }
        .encode()
    }

    fn open_delivery(
        &self,
        mode_data: &[u8],
    ) -> Result<Option<CertificateDelivery>, TerminalAbort> {
        CertificateDelivery::decode(mode_data)
            .map(Some)
            .map_err(|error| TerminalAbort {
                reason: AbortReason::UNEXPECTED_RESPONSE,
                detail: error.to_string(),
                failure: format!("malformed certificate-mode KEY_DELIVERY: {error}"),
            })
    }
}

/// The window [`ApplianceConfig::certificate_requests_per_minute`] counts over.
const RATE_WINDOW: Duration = Duration::from_secs(60);

/// When a port's recent certificate-mode key requests were accepted, for the rate limit.
#[derive(Default)]
pub(crate) struct RequestRate {
    accepted: VecDeque<Duration>,
}

impl RequestRate {
    /// Counts a key request at `now` against `limit` per [`RATE_WINDOW`] (0: no limit); false
    /// when over it, and then the request is not counted.
    fn admit(&mut self, now: Duration, limit: u32) -> bool {
        if limit == 0 {
            return true;
        }
        while self
            .accepted
            .front()
            .is_some_and(|&at| now.saturating_sub(at) >= RATE_WINDOW)
        {
            self.accepted.pop_front();
        }
        if self.accepted.len() >= limit as usize {
            return false;
        }
        self.accepted.push_back(now);
        true
    }
}

#[cfg(test)]
mod tests;
