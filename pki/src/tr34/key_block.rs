//! The enveloped TR-34 key block (B.2.2.2.1: version, idKDH, the clear key, its header attribute), and the key block header keymother writes.

use std::str::FromStr;

use der::{Encode, Tag};
use keymother_crypto::tr31::{
    Algorithm, Exportability, Header, KeyUsage, ModeOfUse, OptionalBlock, Version,
};
use keymother_crypto::{KeyFamily, SecretKey};
use keymother_domain::KeyIndex;
use zeroize::Zeroizing;

use super::Tr34Error;
use super::asn1::{
    ID_DATA, INTEGER, Identifier, OCTET_STRING, Reader, SEQUENCE, SET, encoding, wrap_secret,
};

/// The ID of the proprietary optional block that carries the key index.
pub(crate) const KEY_INDEX_BLOCK: [u8; 2] = *b"01";

/// The enveloped TR-34 key block: the key (zeroizing, no Debug), its header text, idKDH.
pub struct KeyBlock {
    pub(crate) header: String,
    pub(crate) key: SecretKey,
    pub(crate) kdh: Identifier,
}

impl KeyBlock {
    /// The key block header text, as carried.
    pub fn header(&self) -> &str {
        &self.header
    }
    /// The clear key.
    pub fn key(&self) -> &SecretKey {
        &self.key
    }
    /// idKDH: the KDH certificate's issuer (RFC 4514 text) and serial number (bytes).
    pub fn kdh_id(&self) -> (String, &[u8]) {
        (self.kdh.issuer.to_string(), &self.kdh.serial)
    }

    /// Parses the decrypted key block (with its SEQUENCE, or its bare contents in the 2012
    /// form). Every error is [`Tr34Error::KeyBlock`] (offsets within the decrypted block):
    /// what was decrypted under a verified signature but does not parse does not unwrap.
    pub(crate) fn parse(plain: &[u8]) -> Result<KeyBlock, Tr34Error> {
        KeyBlock::parse_fields(plain).map_err(|e| match e {
            Tr34Error::Malformed { .. } => Tr34Error::KeyBlock {
                detail: e.to_string(),
            },
            other => other,
        })
    }

    fn parse_fields(plain: &[u8]) -> Result<KeyBlock, Tr34Error> {
        let mut outer = Reader::new(plain, 0);
        let mut reader = if outer.peek_tag() == Some(SEQUENCE) {
            let sequence = outer.read(SEQUENCE, "TR-34 key block")?;
            outer.finish("TR-34 key block")?;
            sequence.children()
        } else {
            outer
        };
        let version = reader
            .read(INTEGER, "key block version")?
            .small_integer("key block version")?;
        if version != 1 {
            return Err(key_block_error(format!("version {version}, expected 1")));
        }
        let kdh_tlv = reader.read(SEQUENCE, "key block idKDH")?;
        let kdh = Identifier::parse(&kdh_tlv, "key block idKDH")?;
        let key_tlv = reader.read(OCTET_STRING, "key block clearKey")?;
        let attribute = reader.read(SEQUENCE, "key block header attribute")?;
        reader.finish("TR-34 key block")?;
        let mut fields = attribute.children();
        let oid = fields
            .read_any("key block header attribute type")?
            .oid("key block header attribute type")?;
        if oid != ID_DATA {
            return Err(key_block_error(format!(
                "the header attribute's type is {oid}, expected pkcs7-data"
            )));
        }
        let values = fields.read(SET, "key block header attribute values")?;
        fields.finish("key block header attribute")?;
        let mut values = values.children();
        let text = values.read(OCTET_STRING, "key block header")?;
        values.finish("key block header attribute values")?;
        let header = std::str::from_utf8(text.value)
            .ok()
            .filter(|h| h.bytes().all(|b| (0x20..=0x7E).contains(&b)))
            .ok_or_else(|| key_block_error("the header is not printable ASCII".into()))?
            .to_string();
        let parsed = Header::from_str(&header)
            .map_err(|e| key_block_error(format!("the header {header:?} does not parse: {e}")))?;
        let family = parsed.algorithm.family().ok_or_else(|| {
            key_block_error(format!(
                "the header's algorithm {} is not TDES or AES",
                parsed.algorithm
            ))
        })?;
        let algorithm = family
            .algorithm_for_length(key_tlv.value.len())
            .map_err(|e| key_block_error(format!("the key does not fit the header: {e}")))?;
        let key = SecretKey::from_bytes(algorithm, key_tlv.value)
            .map_err(|e| key_block_error(e.to_string()))?;
        Ok(KeyBlock { header, key, kdh })
    }
}

fn key_block_error(detail: String) -> Tr34Error {
    Tr34Error::KeyBlock { detail }
}

/// The key block header keymother writes for a master key of `family` with `key_index`:
/// version D, usage K0, algorithm T or A, mode D, key version 00, exportability N, and the
/// proprietary block "01" with the key index in eight digits. The length digits are the
/// header's own length in characters (`D0028...` with the one block): the key is not
/// TR-31-wrapped, so there is no block to measure, and a TR-31 header parser reads the header
/// as a complete, empty block.
pub fn key_block_header(family: KeyFamily, key_index: KeyIndex) -> Result<String, Tr34Error> {
    let mut header = Header::new(
        Version::D,
        KeyUsage::from_code(*b"K0").ok_or_else(|| encoding("key usage", "K0 unknown"))?,
        Algorithm::for_family(family),
        ModeOfUse::DecryptOnly,
        Exportability::NonExportable,
    );
    header.optional_blocks.push(OptionalBlock::Proprietary {
        id: KEY_INDEX_BLOCK,
        data: key_index.to_string(),
    });
    let text = header.to_string();
    // Header's text is ASCII: one version character, four length digits, the rest.
    match (text.get(..1), text.get(5..)) {
        (Some(version), Some(rest)) => Ok(format!("{version}{:04}{rest}", text.len())),
        _ => Err(encoding("key block header", "shorter than five characters")),
    }
}

/// The TR-34 key block DER (2019 form) for `key` with `header`, naming the KDH `kdh`. In a
/// buffer that zeroizes: it holds the clear key.
pub(crate) fn encode_key_block(
    kdh: &cms::cert::IssuerAndSerialNumber,
    key: &SecretKey,
    header: &str,
) -> Result<Zeroizing<Vec<u8>>, Tr34Error> {
    let version = 1u8.to_der().map_err(|e| encoding("key block version", e))?;
    let kdh = kdh.to_der().map_err(|e| encoding("idKDH", e))?;
    let clear_key = wrap_secret(Tag::OctetString, key.expose_secret_bytes())?;
    let header_value = der::asn1::OctetStringRef::new(header.as_bytes())
        .and_then(|h| h.to_der())
        .map_err(|e| encoding("key block header", e))?;
    let values = wrap_secret(Tag::Set, &header_value)?;
    let oid = ID_DATA.to_der().map_err(|e| encoding("pkcs7-data", e))?;
    let mut attribute = Zeroizing::new(Vec::with_capacity(oid.len() + values.len()));
    attribute.extend_from_slice(&oid);
    attribute.extend_from_slice(&values);
    let attribute = wrap_secret(Tag::Sequence, &attribute)?;
    let mut contents = Zeroizing::new(Vec::with_capacity(
        version.len() + kdh.len() + clear_key.len() + attribute.len(),
    ));
    for part in [&version[..], &kdh[..], &clear_key[..], &attribute[..]] {
        contents.extend_from_slice(part);
    }
    wrap_secret(Tag::Sequence, &contents)
}

/// The key index in the proprietary block "01" of `header`.
pub(crate) fn key_index_of(header: &Header) -> Result<KeyIndex, Tr34Error> {
    let block = header
        .optional_blocks
        .iter()
        .find(|block| block.id() == KEY_INDEX_BLOCK)
        .ok_or_else(|| key_block_error("the header has no optional block 01 (key index)".into()))?;
    let OptionalBlock::Proprietary { data, .. } = block else {
        return Err(key_block_error(
            "optional block 01 is not proprietary".into(),
        ));
    };
    KeyIndex::from_str(data)
        .map_err(|e| key_block_error(format!("optional block 01 is not a key index: {e}")))
}
