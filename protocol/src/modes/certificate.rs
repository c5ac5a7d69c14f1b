//! Certificate mode (mode 2): its fields in WELCOME, KEY_REQUEST and KEY_DELIVERY as opaque bytes, and its rules for both sessions; the cryptographic checks are the adapters'.
//!
//! The protocol crate does no cryptography: it frames certificates, the nonce, the encrypted
//! ephemeral key, the signature and the CRL, and rejects lengths outside the limits below. What
//! the bytes mean (X.509, RSA-OAEP, RSA-PSS, TR-31) is checked by the appliance's dispensing
//! adapter and by the terminal, with `keymother-pki`. The sessions' part is in `Certificate`:
//! the appliance serves the mode only with a KDH certificate and limits key requests per port;
//! the terminal offers it only with a device certificate, and has its caller verify the KDH
//! certificate before asking for a key.
//!
//! Every variable field is a two-byte big-endian length followed by that many bytes.

use std::collections::VecDeque;
use std::time::Duration;

use super::profile::Profile;
use super::{AfterWelcome, ModeRequest, ModeRules, PortState, RequestRefusal, TerminalAbort};
use crate::appliance::{ApplianceConfig, TerminalIdentity};
use crate::codes::{AbortReason, ErrorCode};
use crate::message::{
    DecodeError, EncodeError, Field, LengthWidth, MessageType, Reader, Welcome, Writer,
};
use crate::mode::Mode;
use crate::terminal::{TerminalAction, TerminalConfig};

/// Why the appliance refused a device certificate, as a type: what the bench shows is chosen
/// from it, never from the words of the ERROR's detail.
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
    /// Anything else (wrong CA, wrong key usage, unreadable, ...); the detail says what.
    Other,
}

/// A refused device certificate: the problem as a type, and the detail the terminal is sent
/// (never key material).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRefusal {
    pub problem: CertificateProblem,
    pub detail: String,
}

/// Length of the terminal's nonce.
pub const NONCE_LENGTH: usize = 32;
/// Longest certificate accepted (an RSA-4096 certificate with a few extensions fits).
pub const MAX_CERTIFICATE_LENGTH: usize = 3072;
/// Longest encrypted key or signature (RSA-4096).
pub const MAX_RSA_BLOCK_LENGTH: usize = 512;
/// Longest CRL the appliance may attach.
pub const MAX_CRL_LENGTH: usize = 2048;

const CERTIFICATE_LENGTH: &str = "1 to 3072 bytes";
const RSA_BLOCK_LENGTH: &str = "1 to 512 bytes";
const CRL_LENGTH: &str = "0 to 2048 bytes";

/// WELCOME's mode data: the appliance's key distribution host (KDH) certificate, DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateWelcome {
    pub kdh_certificate: Vec<u8>,
}

/// KEY_REQUEST's mode data: a fresh nonce and the terminal's device certificate, DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRequest {
    pub nonce: [u8; NONCE_LENGTH],
    pub device_certificate: Vec<u8>,
}

/// KEY_DELIVERY's mode data. The delivery's key block is the master key under the ephemeral
/// key KE, and its KCV is the master key's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateDelivery {
    /// The nonce this delivery answers (the terminal's, echoed).
    pub nonce: [u8; NONCE_LENGTH],
    /// KE under the terminal's RSA public key (RSAES-OAEP, SHA-256).
    pub encrypted_key: Vec<u8>,
    /// The KDH's signature over the delivery (see `keymother_pki::key_transport`).
    pub signature: Vec<u8>,
    /// The KDH CA's CRL, DER, or empty when the appliance attaches none.
    pub crl: Vec<u8>,
}

impl CertificateWelcome {
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut writer = Writer::new(MessageType::Welcome);
        writer.prefixed(
            LengthWidth::Two,
            Field::KdhCertificate,
            &self.kdh_certificate,
            1,
            MAX_CERTIFICATE_LENGTH,
            CERTIFICATE_LENGTH,
        )?;
        Ok(writer.bytes)
    }

    pub fn decode(mode_data: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader {
            message: MessageType::Welcome,
            bytes: mode_data,
        };
        let kdh_certificate = reader
            .prefixed(
                LengthWidth::Two,
                Field::KdhCertificateLength,
                Field::KdhCertificate,
                1,
                MAX_CERTIFICATE_LENGTH,
                CERTIFICATE_LENGTH,
            )?
            .to_vec();
        reader.finish()?;
        Ok(CertificateWelcome { kdh_certificate })
    }
}

impl CertificateRequest {
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut writer = Writer::new(MessageType::KeyRequest);
        writer.bytes.extend_from_slice(&self.nonce);
        writer.prefixed(
            LengthWidth::Two,
            Field::DeviceCertificate,
            &self.device_certificate,
            1,
            MAX_CERTIFICATE_LENGTH,
            CERTIFICATE_LENGTH,
        )?;
        Ok(writer.bytes)
    }

    pub fn decode(mode_data: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader {
            message: MessageType::KeyRequest,
            bytes: mode_data,
        };
        let nonce = reader.nonce()?;
        let device_certificate = reader
            .prefixed(
                LengthWidth::Two,
                Field::DeviceCertificateLength,
                Field::DeviceCertificate,
                1,
                MAX_CERTIFICATE_LENGTH,
                CERTIFICATE_LENGTH,
            )?
            .to_vec();
        reader.finish()?;
        Ok(CertificateRequest {
            nonce,
            device_certificate,
        })
    }
}

impl CertificateDelivery {
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut writer = Writer::new(MessageType::KeyDelivery);
        writer.bytes.extend_from_slice(&self.nonce);
        writer.prefixed(
            LengthWidth::Two,
            Field::EncryptedKey,
            &self.encrypted_key,
            1,
            MAX_RSA_BLOCK_LENGTH,
            RSA_BLOCK_LENGTH,
        )?;
        writer.prefixed(
            LengthWidth::Two,
            Field::Signature,
            &self.signature,
            1,
            MAX_RSA_BLOCK_LENGTH,
            RSA_BLOCK_LENGTH,
        )?;
        writer.prefixed(
            LengthWidth::Two,
            Field::Crl,
            &self.crl,
            0,
            MAX_CRL_LENGTH,
            CRL_LENGTH,
        )?;
        Ok(writer.bytes)
    }

    pub fn decode(mode_data: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader {
            message: MessageType::KeyDelivery,
            bytes: mode_data,
        };
        let nonce = reader.nonce()?;
        let encrypted_key = reader
            .prefixed(
                LengthWidth::Two,
                Field::EncryptedKeyLength,
                Field::EncryptedKey,
                1,
                MAX_RSA_BLOCK_LENGTH,
                RSA_BLOCK_LENGTH,
            )?
            .to_vec();
        let signature = reader
            .prefixed(
                LengthWidth::Two,
                Field::SignatureLength,
                Field::Signature,
                1,
                MAX_RSA_BLOCK_LENGTH,
                RSA_BLOCK_LENGTH,
            )?
            .to_vec();
        let crl = reader
            .prefixed(
                LengthWidth::Two,
                Field::CrlLength,
                Field::Crl,
                0,
                MAX_CRL_LENGTH,
                CRL_LENGTH,
            )?
            .to_vec();
        reader.finish()?;
        Ok(CertificateDelivery {
            nonce,
            encrypted_key,
            signature,
            crl,
        })
    }
}

impl Reader<'_> {
    fn nonce(&mut self) -> Result<[u8; NONCE_LENGTH], DecodeError> {
        let bytes = self.take(NONCE_LENGTH, Field::Nonce)?;
        let mut nonce = [0; NONCE_LENGTH];
        nonce.copy_from_slice(bytes);
        Ok(nonce)
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

    /// Only with a KDH certificate to send in WELCOME.
    fn appliance_can_serve(&self, config: &ApplianceConfig, _terminal: &TerminalIdentity) -> bool {
        !config.kdh_certificate.is_empty()
    }

    fn welcome_data(
        &self,
        config: &ApplianceConfig,
        _terminal: &TerminalIdentity,
    ) -> Result<Vec<u8>, EncodeError> {
        CertificateWelcome {
            kdh_certificate: config.kdh_certificate.clone(),
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

    /// Decodes the nonce and device certificate (the adapter verifies the certificate), then
    /// counts the request against the port's limit: each one costs a KDH signature.
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

    /// Only with a device certificate to send in KEY_REQUEST.
    fn terminal_can_run(&self, config: &TerminalConfig) -> bool {
        !config.device_certificate.is_empty()
    }

    /// The transport key plays no part: the appliance proves itself with its KDH certificate
    /// instead, which the caller verifies before the terminal asks for a key.
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
                kdh_certificate: certificate.kdh_certificate,
            },
        ))
    }

    /// The nonce and the device certificate. The nonce is made when the appliance is verified,
    /// before any KEY_REQUEST; without one the request carries nothing.
    fn request_data(
        &self,
        config: &TerminalConfig,
        nonce: Option<[u8; NONCE_LENGTH]>,
    ) -> Result<Vec<u8>, EncodeError> {
        match nonce {
            Some(nonce) => CertificateRequest {
                nonce,
                device_certificate: config.device_certificate.clone(),
            }
            .encode(),
            None => Ok(Vec::new()),
        }
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
mod tests {
    use super::*;
    use crate::message::FieldProblem;

    fn delivery() -> CertificateDelivery {
        CertificateDelivery {
            nonce: [7; NONCE_LENGTH],
            encrypted_key: vec![1; 256],
            signature: vec![2; 256],
            crl: vec![3; 40],
        }
    }

    #[test]
    fn each_kind_round_trips() {
        let welcome = CertificateWelcome {
            kdh_certificate: vec![0x30; 900],
        };
        assert_eq!(
            CertificateWelcome::decode(&welcome.encode().unwrap()).unwrap(),
            welcome
        );
        let request = CertificateRequest {
            nonce: [9; NONCE_LENGTH],
            device_certificate: vec![0x30; 1200],
        };
        assert_eq!(
            CertificateRequest::decode(&request.encode().unwrap()).unwrap(),
            request
        );
        let mut delivery = delivery();
        assert_eq!(
            CertificateDelivery::decode(&delivery.encode().unwrap()).unwrap(),
            delivery
        );
        delivery.crl.clear();
        assert_eq!(
            CertificateDelivery::decode(&delivery.encode().unwrap()).unwrap(),
            delivery
        );
    }

    #[test]
    fn every_truncation_and_extension_is_refused_with_the_field_named() {
        let bytes = delivery().encode().unwrap();
        for cut in 0..bytes.len() {
            let error = CertificateDelivery::decode(&bytes[..cut]).unwrap_err();
            assert!(
                matches!(
                    error,
                    DecodeError::Field {
                        problem: FieldProblem::Truncated,
                        ..
                    }
                ),
                "cut at {cut}: {error}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        let error = CertificateDelivery::decode(&longer).unwrap_err();
        assert_eq!(error.field(), Some(Field::Payload), "{error}");
    }

    #[test]
    fn lengths_outside_the_limits_are_refused_both_ways() {
        let empty_certificate = CertificateRequest {
            nonce: [0; NONCE_LENGTH],
            device_certificate: Vec::new(),
        };
        let error = empty_certificate.encode().unwrap_err();
        assert!(error.to_string().contains("device certificate"), "{error}");
        let mut bytes = [0u8; NONCE_LENGTH].to_vec();
        bytes.extend_from_slice(&0u16.to_be_bytes());
        let error = CertificateRequest::decode(&bytes).unwrap_err();
        assert_eq!(error.field(), Some(Field::DeviceCertificateLength));
        assert!(error.to_string().contains("1 to 3072 bytes"), "{error}");

        let mut oversized = delivery();
        oversized.signature = vec![0; MAX_RSA_BLOCK_LENGTH + 1];
        let error = oversized.encode().unwrap_err();
        assert!(error.to_string().contains("signature"), "{error}");
        let mut big_crl = delivery();
        big_crl.crl = vec![0; MAX_CRL_LENGTH + 1];
        assert!(big_crl.encode().is_err());
    }
}
