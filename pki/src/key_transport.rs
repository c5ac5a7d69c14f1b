//! Certificate-mode key transport (TR-34 style): the appliance (KDH) wraps a terminal master key under a fresh ephemeral key, encrypts that key to the terminal's certificate and signs; the terminal checks and unwraps.
//!
//! The flow follows the public patent CN "remote key injection" scheme:
//!
//! 1. The terminal sends its device certificate and a fresh nonce ([`NONCE_LENGTH`] bytes).
//! 2. The appliance ([`seal_for_terminal`]) makes a fresh AES-256 ephemeral key KE, wraps the
//!    master key MK under KE as a TR-31 version D key block (header `D....K0?D00N...`: usage
//!    K0 key encryption key, algorithm T or A as MK is TDES or AES, mode D decrypt only, not
//!    exportable), encrypts KE to the terminal's RSA key with RSAES-OAEP (SHA-256, MGF1-SHA-256,
//!    empty label), and signs [`signed_content`] with its KDH key, RSASSA-PSS (SHA-256,
//!    MGF1-SHA-256, 32-byte salt), blinded.
//! 3. The terminal ([`open_from_appliance`]) checks the echoed nonce, the attached CRL of the
//!    KDH CA (if any) and that the KDH is not on it, the signature under the KDH certificate,
//!    decrypts KE, unwraps MK and compares MK's check value with the one delivered.
//!
//! The terminal performs the only RSA decryption; it does so blinded, and every failure of it
//! is one opaque error ([`KeyTransportError::KeyDoesNotDecrypt`]), reached only after the
//! signature has verified, so no padding oracle is offered to anyone but a holder of the KDH key.

use std::time::SystemTime;

use keymother_crypto::tr31::{
    Algorithm, Exportability, Header, KeyBlockProtectionKey, KeyUsage, ModeOfUse, Version,
};
use keymother_crypto::{KeyAlgorithm, SecretKey};

use crate::encoding::{put_field, serial_hex};
use crate::keys::{PrivateKey, encrypt_oaep, verify_pss};
use crate::{Crl, PkiError, Role, TrustAnchors, VerifiedCertificate};

/// Length of the terminal's nonce, bytes.
pub const NONCE_LENGTH: usize = 32;

/// The domain-separation label at the start of [`signed_content`] (32 ASCII bytes).
pub const DELIVERY_LABEL: &[u8] = b"KEYMOTHER-CERTIFICATE-DELIVERY/1";

/// What both sides know independently of the delivery (the terminal: its own serial, the nonce
/// it sent, the key index the delivery names).
#[derive(Debug, Clone, Copy)]
pub struct DeliveryContext<'a> {
    /// The terminal's hardware serial number.
    pub hardware_serial: &'a str,
    /// The nonce the terminal sent for this delivery.
    pub nonce: &'a [u8; NONCE_LENGTH],
    /// The index of the master key delivered.
    pub key_index: u32,
}

/// What travels to the terminal (besides the key index): all public.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedKey {
    /// The MK as a TR-31 version D key block under KE (AES-256), header K0 / AES-or-TDES per
    /// MK / mode D (decrypt only) / exportability N.
    pub key_block: String,
    /// The MK's check value (keymother_crypto::Kcv bytes: 3 for TDES, 5 for AES).
    pub kcv: Vec<u8>,
    /// The nonce this delivery answers (echoed, so a replayed/foreign delivery is named as such).
    pub nonce: [u8; NONCE_LENGTH],
    /// KE encrypted to the terminal's RSA key with RSAES-OAEP, SHA-256, MGF1-SHA-256, empty label.
    pub encrypted_key: Vec<u8>,
    /// The KDH's RSASSA-PSS (SHA-256, MGF1-SHA-256, salt 32) signature over `signed_content(..)`.
    pub signature: Vec<u8>,
    /// The KDH CA's CRL (DER) the appliance attached, or empty. Covered by the signature.
    pub crl: Vec<u8>,
}

/// Why a delivery cannot be made or is refused. Every message says which check failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyTransportError {
    /// The delivery echoes another nonce than the terminal sent.
    #[error(
        "the delivery answers another nonce than the one this terminal sent: \
         a replayed delivery, or one meant for another session"
    )]
    NonceMismatch,
    /// The CRL attached to the delivery is malformed, not the KDH CA's, badly signed or out of
    /// date.
    #[error("the CRL attached to the delivery is refused: {0}")]
    Crl(PkiError),
    /// The KDH certificate is on the attached CRL.
    #[error("the KDH certificate (serial {serial}) is revoked by the CRL attached to the delivery")]
    KdhRevoked {
        /// The KDH certificate's serial, upper-case hex.
        serial: String,
    },
    /// The certificate given as the sender's was not verified as a KDH certificate.
    #[error(
        "the certificate given for the sender was not verified as a key distribution host (KDH) \
         certificate; verify it with Role::KeyDistributionHost"
    )]
    NotKdh,
    /// The certificate given as the recipient's was not verified as a terminal device
    /// certificate.
    #[error(
        "the recipient certificate was verified as a {role} certificate, not as a terminal device \
         certificate; the ephemeral key is only ever encrypted to a terminal device key"
    )]
    NotTerminalDevice {
        /// The role it was verified for.
        role: Role,
    },
    /// The signature does not verify under the KDH certificate's key.
    #[error(
        "the delivery's signature does not verify under the KDH certificate's key \
         (RSASSA-PSS, SHA-256, MGF1-SHA-256, salt 32, over the signed content): \
         changed on the way, or not signed by this KDH"
    )]
    BadSignature,
    /// The encrypted ephemeral key does not decrypt with the device key (deliberately without
    /// detail).
    #[error(
        "the encrypted ephemeral key does not decrypt with this terminal's device key \
         (RSAES-OAEP, SHA-256, MGF1-SHA-256, empty label): sealed for another key, or damaged"
    )]
    KeyDoesNotDecrypt,
    /// The ephemeral key decrypted to the wrong number of bytes.
    #[error("the ephemeral key decrypts to {found} bytes; an AES-256 key is 32 bytes")]
    EphemeralKeyLength {
        /// Its length.
        found: usize,
    },
    /// The TR-31 key block does not unwrap under the ephemeral key.
    #[error("the master key's TR-31 key block does not unwrap under the ephemeral key: {0}")]
    KeyBlock(String),
    /// The key block unwrapped but its header is not what certificate mode delivers.
    #[error(
        "the master key's key block has header {header}; certificate mode delivers version D, \
         key usage K0, algorithm T or A, mode of use D, exportability N"
    )]
    KeyBlockHeader {
        /// The header text (length digits 0000).
        header: String,
    },
    /// The unwrapped key's check value is not the one delivered.
    #[error("the unwrapped master key's check value differs from the check value in the delivery")]
    KcvMismatch,
    /// A field too long for the 4-byte length prefixes of [`signed_content`].
    #[error(
        "the {field} is {length} bytes long; signed content fields are at most 4294967295 bytes"
    )]
    FieldTooLong {
        /// Which field.
        field: &'static str,
        /// Its length.
        length: usize,
    },
    /// Encrypting KE or signing failed.
    #[error("the RSA operation failed: {0}")]
    Rsa(String),
    /// The OS RNG failed to make KE.
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
    /// Wrapping MK under KE failed.
    #[error("cannot wrap the master key as a TR-31 key block: {0}")]
    Wrap(String),
}

/// The exact bytes the KDH signs and the terminal verifies:
///
/// | # | field | bytes |
/// | --- | --- | --- |
/// | 0 | label | the 32 ASCII bytes `KEYMOTHER-CERTIFICATE-DELIVERY/1` (no length prefix, no terminator) |
/// | 1 | hardware serial | L(n), then the serial in UTF-8 |
/// | 2 | nonce | `00 00 00 20`, then the 32 nonce bytes |
/// | 3 | key index | `00 00 00 04`, then the index as unsigned 32-bit big-endian |
/// | 4 | key block | L(n), then the TR-31 key block's ASCII characters |
/// | 5 | KCV | L(3) or L(5), then the check value bytes (not hex) |
/// | 6 | encrypted key | L(n), then the OAEP ciphertext (as long as the terminal's modulus) |
/// | 7 | CRL | L(n), then the CRL's DER; `00 00 00 00` and nothing when none is attached |
///
/// L(n) is the field's length in bytes as an unsigned 32-bit big-endian number. Every field
/// after the label has one, fixed-size fields included, so a parser needs one rule and no
/// two different deliveries share signed bytes. The signature is RSASSA-PSS over these bytes
/// (the PSS message hash is SHA-256 of them; MGF1 with SHA-256; salt 32 bytes), as
/// `openssl pkeyutl -verify -pkeyopt digest:sha256 -pkeyopt rsa_padding_mode:pss
/// -pkeyopt rsa_pss_saltlen:32` checks it over `sha256(signed_content)`.
///
/// Example: serial `123L013K`, nonce 32 × `0xAA`, key index 278 start
/// `4B45594D4F544845522D43455254494649434154452D44454C49564552592F31` (label)
/// `00000008 3132334C3031334B` `00000020 AAAA…AA` `00000004 00000116` ...
pub fn signed_content(
    context: &DeliveryContext<'_>,
    key_block: &str,
    kcv: &[u8],
    encrypted_key: &[u8],
    crl: &[u8],
) -> Vec<u8> {
    let mut content = Vec::with_capacity(
        DELIVERY_LABEL.len()
            + 7 * 4
            + context.hardware_serial.len()
            + NONCE_LENGTH
            + 4
            + key_block.len()
            + kcv.len()
            + encrypted_key.len()
            + crl.len(),
    );
    content.extend_from_slice(DELIVERY_LABEL);
    put_field(&mut content, context.hardware_serial.as_bytes());
    put_field(&mut content, context.nonce);
    put_field(&mut content, &context.key_index.to_be_bytes());
    put_field(&mut content, key_block.as_bytes());
    put_field(&mut content, kcv);
    put_field(&mut content, encrypted_key);
    put_field(&mut content, crl);
    content
}

/// Every variable-length field must fit its 4-byte length prefix.
fn check_lengths(
    context: &DeliveryContext<'_>,
    key_block: &str,
    kcv: &[u8],
    encrypted_key: &[u8],
    crl: &[u8],
) -> Result<(), KeyTransportError> {
    for (field, length) in [
        ("hardware serial", context.hardware_serial.len()),
        ("key block", key_block.len()),
        ("KCV", kcv.len()),
        ("encrypted key", encrypted_key.len()),
        ("CRL", crl.len()),
    ] {
        if u32::try_from(length).is_err() {
            return Err(KeyTransportError::FieldTooLong { field, length });
        }
    }
    Ok(())
}

/// The TR-31 header certificate mode uses for a master key of `algorithm`.
fn header_for(algorithm: KeyAlgorithm) -> Header {
    Header::new(
        Version::D,
        KeyUsage::KeyEncryption,
        Algorithm::for_family(algorithm.family()),
        ModeOfUse::DecryptOnly,
        Exportability::NonExportable,
    )
}

/// Appliance side: a fresh KE (AES-256 from the OS RNG); MK wrapped under KE (TR-31 version D,
/// K0, mode D, exportability N); KE encrypted to `terminal.public_key()` (RSAES-OAEP SHA-256);
/// [`signed_content`] signed with `kdh_key` (blinded RSASSA-PSS, SHA-256, salt 32, fresh
/// randomness). `terminal` must have been verified as [`Role::TerminalDevice`]. `crl` (DER,
/// or empty) is the KDH CA's CRL to attach; it must parse, its checks are the terminal's.
pub fn seal_for_terminal(
    kdh_key: &PrivateKey,
    terminal: &VerifiedCertificate,
    context: &DeliveryContext<'_>,
    master_key: &SecretKey,
    crl: &[u8],
) -> Result<SealedKey, KeyTransportError> {
    if terminal.role() != Role::TerminalDevice {
        return Err(KeyTransportError::NotTerminalDevice {
            role: terminal.role(),
        });
    }
    if !crl.is_empty() {
        Crl::parse(crl).map_err(KeyTransportError::Crl)?;
    }
    let ephemeral = SecretKey::generate(KeyAlgorithm::Aes256)
        .map_err(|e| KeyTransportError::Random(e.to_string()))?;
    let key_block = KeyBlockProtectionKey::new(&ephemeral)
        .wrap(&header_for(master_key.algorithm()), master_key)
        .map_err(|e| KeyTransportError::Wrap(e.to_string()))?;
    let kcv = master_key.kcv().as_bytes().to_vec();
    let encrypted_key = encrypt_oaep(terminal.public_key(), ephemeral.expose_secret_bytes())
        .map_err(|e| KeyTransportError::Rsa(e.to_string()))?;
    drop(ephemeral);
    check_lengths(context, &key_block, &kcv, &encrypted_key, crl)?;
    let content = signed_content(context, &key_block, &kcv, &encrypted_key, crl);
    let signature = kdh_key
        .sign_pss(&content)
        .map_err(|e| KeyTransportError::Rsa(e.to_string()))?;
    Ok(SealedKey {
        key_block,
        kcv,
        nonce: *context.nonce,
        encrypted_key,
        signature,
        crl: crl.to_vec(),
    })
}

/// Terminal side, in this order:
///
/// 1. the echoed nonce is `context.nonce` (else [`NonceMismatch`](KeyTransportError::NonceMismatch));
/// 2. `kdh` was verified as [`Role::KeyDistributionHost`] (else [`NotKdh`](KeyTransportError::NotKdh));
/// 3. if a CRL is attached: it parses and passes `anchors.check_crl(Role::KeyDistributionHost,
///    .., now)` (else [`Crl`](KeyTransportError::Crl)), and the KDH certificate's serial is not
///    on it (else [`KdhRevoked`](KeyTransportError::KdhRevoked));
/// 4. the signature over [`signed_content`] verifies under `kdh.public_key()` (else
///    [`BadSignature`](KeyTransportError::BadSignature));
/// 5. KE decrypts with `device_key`, blinded (else the opaque
///    [`KeyDoesNotDecrypt`](KeyTransportError::KeyDoesNotDecrypt)) and is 32 bytes;
/// 6. the key block unwraps under KE (else [`KeyBlock`](KeyTransportError::KeyBlock) with the
///    TR-31 error) and its header is version D, K0, mode D, exportability N (else
///    [`KeyBlockHeader`](KeyTransportError::KeyBlockHeader));
/// 7. the unwrapped key's check value is `sealed.kcv` (else [`KcvMismatch`](KeyTransportError::KcvMismatch)).
///
/// Returns the master key.
pub fn open_from_appliance(
    device_key: &PrivateKey,
    kdh: &VerifiedCertificate,
    anchors: &TrustAnchors,
    now: SystemTime,
    context: &DeliveryContext<'_>,
    sealed: &SealedKey,
) -> Result<SecretKey, KeyTransportError> {
    if sealed.nonce != *context.nonce {
        return Err(KeyTransportError::NonceMismatch);
    }
    if kdh.role() != Role::KeyDistributionHost {
        return Err(KeyTransportError::NotKdh);
    }
    if !sealed.crl.is_empty() {
        let crl = Crl::parse(&sealed.crl).map_err(KeyTransportError::Crl)?;
        anchors
            .check_crl(Role::KeyDistributionHost, &crl, now)
            .map_err(KeyTransportError::Crl)?;
        if crl.lists(kdh.serial()) {
            return Err(KeyTransportError::KdhRevoked {
                serial: serial_hex(kdh.serial()),
            });
        }
    }
    check_lengths(
        context,
        &sealed.key_block,
        &sealed.kcv,
        &sealed.encrypted_key,
        &sealed.crl,
    )?;
    let content = signed_content(
        context,
        &sealed.key_block,
        &sealed.kcv,
        &sealed.encrypted_key,
        &sealed.crl,
    );
    if !verify_pss(kdh.public_key(), &content, &sealed.signature) {
        return Err(KeyTransportError::BadSignature);
    }
    let clear = device_key
        .decrypt_oaep(&sealed.encrypted_key)
        .map_err(|()| KeyTransportError::KeyDoesNotDecrypt)?;
    let ephemeral = SecretKey::from_bytes(KeyAlgorithm::Aes256, &clear)
        .map_err(|_| KeyTransportError::EphemeralKeyLength { found: clear.len() })?;
    drop(clear);
    let unwrapped = KeyBlockProtectionKey::new(&ephemeral)
        .unwrap(&sealed.key_block)
        .map_err(|e| KeyTransportError::KeyBlock(e.to_string()))?;
    drop(ephemeral);
    let header = &unwrapped.header;
    if header.version != Version::D
        || header.key_usage != KeyUsage::KeyEncryption
        || header.mode_of_use != ModeOfUse::DecryptOnly
        || header.exportability != Exportability::NonExportable
    {
        return Err(KeyTransportError::KeyBlockHeader {
            header: header.to_string(),
        });
    }
    if unwrapped.key.kcv().as_bytes() != sealed.kcv.as_slice() {
        return Err(KeyTransportError::KcvMismatch);
    }
    Ok(unwrapped.key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_content_layout() {
        let nonce = [0xAA; NONCE_LENGTH];
        let context = DeliveryContext {
            hardware_serial: "123L013K",
            nonce: &nonce,
            key_index: 278,
        };
        let content = signed_content(&context, "D0112K0AD00N0000", &[1, 2, 3], &[9; 5], &[]);
        let mut expected = Vec::new();
        expected.extend_from_slice(b"KEYMOTHER-CERTIFICATE-DELIVERY/1");
        expected.extend_from_slice(&[0, 0, 0, 8]);
        expected.extend_from_slice(b"123L013K");
        expected.extend_from_slice(&[0, 0, 0, 32]);
        expected.extend_from_slice(&nonce);
        expected.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0x01, 0x16]);
        expected.extend_from_slice(&[0, 0, 0, 16]);
        expected.extend_from_slice(b"D0112K0AD00N0000");
        expected.extend_from_slice(&[0, 0, 0, 3, 1, 2, 3]);
        expected.extend_from_slice(&[0, 0, 0, 5, 9, 9, 9, 9, 9]);
        expected.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(content, expected);
        assert_eq!(DELIVERY_LABEL.len(), 32);
        assert_eq!(
            hex::encode_upper(DELIVERY_LABEL),
            "4B45594D4F544845522D43455254494649434154452D44454C49564552592F31"
        );
    }

    #[test]
    fn header_is_k0_decrypt_only_not_exportable() {
        assert_eq!(
            header_for(KeyAlgorithm::Tdes2Key).to_string(),
            "D0000K0TD00N0000"
        );
        assert_eq!(
            header_for(KeyAlgorithm::Aes128).to_string(),
            "D0000K0AD00N0000"
        );
    }
}
