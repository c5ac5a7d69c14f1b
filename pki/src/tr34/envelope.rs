//! The EnvelopedData of a key token: read as received (RSAES-OAEP parameters with or without their RFC 8017 tags), its content decrypted, and written by the KDH.

use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use cms::cert::IssuerAndSerialNumber;
use cms::content_info::CmsVersion;
use cms::enveloped_data::{
    EncryptedContentInfo, EnvelopedData, KeyTransRecipientInfo, RecipientIdentifier, RecipientInfo,
    RecipientInfos,
};
use const_oid::ObjectIdentifier;
use der::asn1::{OctetString, SetOfVec};
use der::{Any, Encode};
use rsa::RsaPublicKey;
use spki::AlgorithmIdentifierOwned;
use zeroize::Zeroizing;

use super::Tr34Error;
use super::asn1::{
    AES128_CBC, AES192_CBC, AES256_CBC, CONTEXT_0, CONTEXT_0_PRIMITIVE, CONTEXT_1, CONTEXT_2,
    DES_EDE3_CBC, ID_DATA, ID_MGF1, ID_P_SPECIFIED, ID_SHA256, INTEGER, Identifier, OCTET_STRING,
    RSAES_OAEP, Reader, SEQUENCE, SET, Tlv, encoding, malformed, oid_name,
};

/// An AlgorithmIdentifier as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AlgorithmId {
    pub(crate) oid: ObjectIdentifier,
    /// The parameters' TLV, if present.
    pub(crate) parameters: Option<Vec<u8>>,
    /// Offset of the AlgorithmIdentifier.
    pub(crate) offset: usize,
}

impl AlgorithmId {
    pub(crate) fn parse(tlv: &Tlv<'_>, what: &'static str) -> Result<AlgorithmId, Tr34Error> {
        tlv.expect_tag(SEQUENCE, what)?;
        let mut reader = tlv.children();
        let oid = reader.read_any(what)?.oid(what)?;
        let parameters = if reader.is_empty() {
            None
        } else {
            Some(reader.read_any(what)?.raw.to_vec())
        };
        reader.finish(what)?;
        Ok(AlgorithmId {
            oid,
            parameters,
            offset: tlv.offset,
        })
    }

    /// The parameters as a TLV reader positioned at them (offsets are approximate: relative to
    /// the AlgorithmIdentifier).
    fn parameters_tlv(&self, what: &'static str) -> Result<Option<Tlv<'_>>, Tr34Error> {
        match &self.parameters {
            None => Ok(None),
            Some(raw) => Reader::new(raw, self.offset).read_any(what).map(Some),
        }
    }
}

/// One recipient of the envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Recipient {
    /// KeyTransRecipientInfo identified by issuer and serial number.
    KeyTransport {
        rid: Identifier,
        algorithm: AlgorithmId,
        encrypted_key: Vec<u8>,
    },
    /// Any other kind of RecipientInfo (described, never used).
    Other { description: String },
}

/// A parsed EnvelopedData.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Envelope {
    pub(crate) recipients: Vec<Recipient>,
    pub(crate) content_type: ObjectIdentifier,
    pub(crate) content_algorithm: AlgorithmId,
    pub(crate) iv: Vec<u8>,
    pub(crate) encrypted_content: Vec<u8>,
}

impl Envelope {
    /// Parses the EnvelopedData's fields from `reader` (the contents of its SEQUENCE, or the
    /// bare contents in the 2012 form).
    pub(crate) fn parse_contents(reader: &mut Reader<'_>) -> Result<Envelope, Tr34Error> {
        let version = reader.read(INTEGER, "EnvelopedData version")?;
        version.small_integer("EnvelopedData version")?;
        // originatorInfo [0] is skipped: TR-34 never sends one.
        reader.read_optional(CONTEXT_0, "EnvelopedData originatorInfo")?;
        let recipient_set = reader.read(SET, "EnvelopedData recipientInfos")?;
        let mut recipients = Vec::new();
        let mut children = recipient_set.children();
        while !children.is_empty() {
            let info = children.read_any("RecipientInfo")?;
            recipients.push(parse_recipient(&info)?);
        }
        let content = reader.read(SEQUENCE, "EncryptedContentInfo")?;
        let mut fields = content.children();
        let content_type = fields
            .read_any("EncryptedContentInfo contentType")?
            .oid("EncryptedContentInfo contentType")?;
        let algorithm_tlv = fields.read_any("contentEncryptionAlgorithm")?;
        let content_algorithm = AlgorithmId::parse(&algorithm_tlv, "contentEncryptionAlgorithm")?;
        let iv = content_iv(&content_algorithm)?;
        let encrypted = fields.read_optional(CONTEXT_0_PRIMITIVE, "encryptedContent")?;
        let Some(encrypted) = encrypted else {
            return Err(malformed(
                "encryptedContent",
                fields.offset(),
                "missing (or constructed, which is BER): the key block must be in the token",
            ));
        };
        fields.finish("EncryptedContentInfo")?;
        // unprotectedAttrs [1] may follow; nothing else.
        reader.read_optional(CONTEXT_1, "EnvelopedData unprotectedAttrs")?;
        reader.finish("EnvelopedData")?;
        Ok(Envelope {
            recipients,
            content_type,
            content_algorithm,
            iv,
            encrypted_content: encrypted.value.to_vec(),
        })
    }

    /// The symmetric layer opened with `content_key`: the plaintext (the TR-34 key block DER).
    pub(crate) fn decrypt(&self, content_key: &[u8]) -> Result<Zeroizing<Vec<u8>>, Tr34Error> {
        decrypt_cbc(
            &self.content_algorithm.oid,
            content_key,
            &self.iv,
            &self.encrypted_content,
        )
    }
}

fn parse_recipient(info: &Tlv<'_>) -> Result<Recipient, Tr34Error> {
    if info.tag != SEQUENCE {
        let kind = match info.tag {
            CONTEXT_1 => "KeyAgreeRecipientInfo",
            CONTEXT_2 => "KEKRecipientInfo",
            0xA3 => "PasswordRecipientInfo",
            0xA4 => "OtherRecipientInfo",
            _ => "an unknown RecipientInfo",
        };
        return Ok(Recipient::Other {
            description: kind.to_string(),
        });
    }
    let mut fields = info.children();
    fields.read(INTEGER, "KeyTransRecipientInfo version")?;
    let rid_tlv = fields.read_any("KeyTransRecipientInfo rid")?;
    if rid_tlv.tag != SEQUENCE {
        return Ok(Recipient::Other {
            description: "KeyTransRecipientInfo by subjectKeyIdentifier".to_string(),
        });
    }
    let rid = Identifier::parse(&rid_tlv, "KeyTransRecipientInfo rid")?;
    let algorithm_tlv = fields.read_any("keyEncryptionAlgorithm")?;
    let algorithm = AlgorithmId::parse(&algorithm_tlv, "keyEncryptionAlgorithm")?;
    let encrypted_key = fields.read(OCTET_STRING, "encryptedKey")?;
    fields.finish("KeyTransRecipientInfo")?;
    Ok(Recipient::KeyTransport {
        rid,
        algorithm,
        encrypted_key: encrypted_key.value.to_vec(),
    })
}

/// The IV of a CBC content-encryption algorithm, checked for its length.
fn content_iv(algorithm: &AlgorithmId) -> Result<Vec<u8>, Tr34Error> {
    const WHAT: &str = "content-encryption IV";
    let block = match algorithm.oid {
        DES_EDE3_CBC => 8,
        AES128_CBC | AES192_CBC | AES256_CBC => 16,
        _ => {
            return Err(Tr34Error::Unsupported {
                what: "content-encryption algorithm",
                detail: format!(
                    "{} (des-ede3-cbc and AES-CBC are supported)",
                    oid_name(&algorithm.oid)
                ),
            });
        }
    };
    let iv = algorithm
        .parameters_tlv(WHAT)?
        .ok_or_else(|| malformed(WHAT, algorithm.offset, "the IV parameter is missing"))?;
    iv.expect_tag(OCTET_STRING, WHAT)?;
    if iv.value.len() != block {
        return Err(malformed(
            WHAT,
            algorithm.offset,
            format!(
                "{} needs a {block}-byte IV, found {} bytes",
                oid_name(&algorithm.oid),
                iv.value.len()
            ),
        ));
    }
    Ok(iv.value.to_vec())
}

/// The RSAES-OAEP parameters, accepted only as SHA-256 / MGF1-SHA-256 / empty label, in the
/// RFC 8017 form ([0], [1], [2]) or the untagged form of the TR-34 samples.
pub(crate) fn check_oaep_parameters(algorithm: &AlgorithmId) -> Result<(), Tr34Error> {
    const WHAT: &str = "RSAES-OAEP parameters";
    let unsupported = |detail: String| Tr34Error::Unsupported {
        what: "key-encryption algorithm",
        detail,
    };
    if algorithm.oid != RSAES_OAEP {
        return Err(unsupported(format!(
            "{} (only RSAES-OAEP with SHA-256 is accepted)",
            oid_name(&algorithm.oid)
        )));
    }
    let params = algorithm
        .parameters_tlv(WHAT)?
        .ok_or_else(|| unsupported("RSAES-OAEP without parameters means SHA-1".into()))?;
    params.expect_tag(SEQUENCE, WHAT)?;
    let mut reader = params.children();
    let (mut hash, mut mgf, mut label) = (None, None, None);
    let mut position = 0;
    while !reader.is_empty() {
        let field = reader.read_any(WHAT)?;
        let (slot, inner) = match field.tag {
            CONTEXT_0 | CONTEXT_1 | CONTEXT_2 => {
                let mut inner = field.children();
                let value = inner.read(SEQUENCE, WHAT)?;
                inner.finish(WHAT)?;
                (usize::from(field.tag - CONTEXT_0), value)
            }
            SEQUENCE => (position, field),
            _ => return Err(malformed(WHAT, field.offset, "unexpected field")),
        };
        position = slot + 1;
        let parsed = AlgorithmId::parse(&inner, WHAT)?;
        match slot {
            0 if hash.is_none() => hash = Some(parsed),
            1 if mgf.is_none() => mgf = Some(parsed),
            2 if label.is_none() => label = Some(parsed),
            _ => {
                return Err(malformed(
                    WHAT,
                    field.offset,
                    "a field repeated or out of place",
                ));
            }
        }
    }
    if hash.as_ref().map(|h| h.oid) != Some(ID_SHA256) {
        return Err(unsupported("the OAEP hash is not SHA-256".into()));
    }
    let mgf_sha256 = mgf.as_ref().is_some_and(|m| {
        m.oid == ID_MGF1
            && m.parameters_tlv(WHAT)
                .ok()
                .flatten()
                .and_then(|p| AlgorithmId::parse(&p, WHAT).ok())
                .is_some_and(|h| h.oid == ID_SHA256)
    });
    if !mgf_sha256 {
        return Err(unsupported(
            "the OAEP mask generation is not MGF1 with SHA-256".into(),
        ));
    }
    if let Some(label) = label {
        let empty = label.oid == ID_P_SPECIFIED
            && label
                .parameters_tlv(WHAT)?
                .is_none_or(|p| p.tag == OCTET_STRING && p.value.is_empty());
        if !empty {
            return Err(unsupported("the OAEP label is not empty".into()));
        }
    }
    Ok(())
}

/// CBC decryption with PKCS#7 padding under the algorithm `oid`.
pub(crate) fn decrypt_cbc(
    oid: &ObjectIdentifier,
    key: &[u8],
    iv: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, Tr34Error> {
    fn run<C: BlockModeDecrypt + KeyIvInit>(
        key: &[u8],
        iv: &[u8],
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, Tr34Error> {
        let mode = C::new_from_slices(key, iv).map_err(|_| Tr34Error::ContentDoesNotDecrypt)?;
        mode.decrypt_padded_vec::<Pkcs7>(ciphertext)
            .map(Zeroizing::new)
            .map_err(|_| Tr34Error::ContentDoesNotDecrypt)
    }
    match (*oid, key.len()) {
        (DES_EDE3_CBC, 24) => run::<cbc::Decryptor<des::TdesEde3>>(key, iv, ciphertext),
        (DES_EDE3_CBC, 16) => run::<cbc::Decryptor<des::TdesEde2>>(key, iv, ciphertext),
        (AES128_CBC, 16) => run::<cbc::Decryptor<aes::Aes128>>(key, iv, ciphertext),
        (AES192_CBC, 24) => run::<cbc::Decryptor<aes::Aes192>>(key, iv, ciphertext),
        (AES256_CBC, 32) => run::<cbc::Decryptor<aes::Aes256>>(key, iv, ciphertext),
        _ => Err(Tr34Error::ContentDoesNotDecrypt),
    }
}

/// The EnvelopedData (DER) the KDH writes: `key_block` under a fresh AES-256 content key
/// (AES-256-CBC, random IV), the content key under `recipient_key` with RSAES-OAEP SHA-256.
pub(crate) fn build_envelope(
    recipient: IssuerAndSerialNumber,
    recipient_key: &RsaPublicKey,
    key_block: &[u8],
) -> Result<Vec<u8>, Tr34Error> {
    let mut content_key = Zeroizing::new([0u8; 32]);
    let mut iv = [0u8; 16];
    crate::keys::fill_random(content_key.as_mut_slice())
        .and_then(|()| crate::keys::fill_random(&mut iv))
        .map_err(|e| Tr34Error::Random(e.to_string()))?;
    let mode = cbc::Encryptor::<aes::Aes256>::new_from_slices(content_key.as_slice(), &iv)
        .map_err(|e| encoding("AES-256-CBC key", e))?;
    let ciphertext = mode.encrypt_padded_vec::<Pkcs7>(key_block);
    let encrypted_key = crate::keys::encrypt_oaep(recipient_key, content_key.as_slice())
        .map_err(|e| Tr34Error::Rsa(e.to_string()))?;

    let oaep = rsa::pkcs1::RsaOaepParamsRef::new::<sha2::Sha256>();
    let oaep_any = Any::encode_from(&oaep).map_err(|e| encoding("RSAES-OAEP parameters", e))?;
    let iv_any = Any::encode_from(&OctetString::new(iv.to_vec()).map_err(|e| encoding("IV", e))?)
        .map_err(|e| encoding("IV", e))?;
    let recipient_info = RecipientInfo::Ktri(KeyTransRecipientInfo {
        version: CmsVersion::V0,
        rid: RecipientIdentifier::IssuerAndSerialNumber(recipient),
        key_enc_alg: AlgorithmIdentifierOwned {
            oid: RSAES_OAEP,
            parameters: Some(oaep_any),
        },
        enc_key: OctetString::new(encrypted_key).map_err(|e| encoding("encryptedKey", e))?,
    });
    let recipients =
        SetOfVec::try_from(vec![recipient_info]).map_err(|e| encoding("recipientInfos", e))?;
    let envelope = EnvelopedData {
        version: CmsVersion::V0,
        originator_info: None,
        recip_infos: RecipientInfos(recipients),
        encrypted_content: EncryptedContentInfo {
            content_type: ID_DATA,
            content_enc_alg: AlgorithmIdentifierOwned {
                oid: AES256_CBC,
                parameters: Some(iv_any),
            },
            encrypted_content: Some(
                OctetString::new(ciphertext).map_err(|e| encoding("encryptedContent", e))?,
            ),
        },
        unprotected_attrs: None,
    };
    envelope.to_der().map_err(|e| encoding("EnvelopedData", e))
}
