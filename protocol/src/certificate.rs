//! Certificate mode's fields (mode 2): what WELCOME, KEY_REQUEST and KEY_DELIVERY carry as mode data, as opaque bytes; the checks are the adapters'.
//!
//! The protocol crate does no cryptography: it frames certificates, the nonce, the encrypted
//! ephemeral key, the signature and the CRL, and rejects lengths outside the limits below. What
//! the bytes mean (X.509, RSA-OAEP, RSA-PSS, TR-31) is checked by the appliance's dispensing
//! adapter and by the terminal, with `keymother-pki`.
//!
//! Every variable field is a two-byte big-endian length followed by that many bytes.

use crate::message::{DecodeError, EncodeError, Field, LengthWidth, MessageType, Reader, Writer};

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
