//! SignedData as received: its fields, certificates and CRLs as DER, and each SignerInfo with its signed attributes kept as the bytes that were signed.

use const_oid::ObjectIdentifier;

use super::Tr34Error;
use super::asn1::{
    CONTEXT_0, CONTEXT_1, ID_CONTENT_TYPE, ID_MESSAGE_DIGEST, ID_RANDOM_NONCE, ID_SIGNING_TIME,
    INTEGER, Identifier, OCTET_STRING, Reader, SEQUENCE, SET, Tlv, malformed,
};
use super::envelope::AlgorithmId;

/// The encapsulated content: its OCTET STRING's contents and where they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Content {
    pub(crate) bytes: Vec<u8>,
    pub(crate) offset: usize,
}

/// A SignedData as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SignedData {
    pub(crate) version: u32,
    pub(crate) digest_algorithms: Vec<ObjectIdentifier>,
    pub(crate) content_type: ObjectIdentifier,
    pub(crate) content: Option<Content>,
    pub(crate) certificates: Vec<Vec<u8>>,
    /// Certificates in another format than X.509 (counted, not used).
    pub(crate) other_certificates: usize,
    pub(crate) crls: Vec<Vec<u8>>,
    /// Other revocation information (counted, not used).
    pub(crate) other_crls: usize,
    pub(crate) signers: Vec<Signer>,
}

/// One SignerInfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Signer {
    pub(crate) sid: Identifier,
    pub(crate) digest_algorithm: AlgorithmId,
    pub(crate) signed_attributes: Option<SignedAttributes>,
    pub(crate) signature_algorithm: AlgorithmId,
    pub(crate) signature: Vec<u8>,
}

/// The signed attributes: the bytes the signature covers (the `[0]` TLV with its tag made
/// SET, as received) and the attributes in the order received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SignedAttributes {
    pub(crate) signed_bytes: Vec<u8>,
    /// Offset of the `[0]` tag in the token.
    pub(crate) offset: usize,
    pub(crate) attributes: Vec<Attribute>,
}

/// One attribute: its type and the TLVs of its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attribute {
    pub(crate) oid: ObjectIdentifier,
    pub(crate) values: Vec<Value>,
    pub(crate) offset: usize,
}

/// One attribute value as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Value {
    pub(crate) tag: u8,
    pub(crate) contents: Vec<u8>,
    pub(crate) raw: Vec<u8>,
    pub(crate) offset: usize,
}

impl SignedAttributes {
    /// The single value of the attribute `oid`; an error if it is repeated or multi-valued.
    pub(crate) fn single(&self, oid: ObjectIdentifier) -> Result<Option<&Value>, Tr34Error> {
        let mut found = self.attributes.iter().filter(|a| a.oid == oid);
        let Some(attribute) = found.next() else {
            return Ok(None);
        };
        if let Some(again) = found.next() {
            return Err(malformed(
                "signed attribute",
                again.offset,
                format!("{oid} appears twice"),
            ));
        }
        match attribute.values.as_slice() {
            [value] => Ok(Some(value)),
            _ => Err(malformed(
                "signed attribute",
                attribute.offset,
                format!("{oid} has {} values, expected one", attribute.values.len()),
            )),
        }
    }

    /// The OCTET STRING value of the attribute `oid`.
    pub(crate) fn octets(&self, oid: ObjectIdentifier) -> Result<Option<&[u8]>, Tr34Error> {
        match self.single(oid)? {
            None => Ok(None),
            Some(value) if value.tag == OCTET_STRING => Ok(Some(&value.contents)),
            Some(value) => Err(malformed(
                "signed attribute",
                value.offset,
                format!("the value of {oid} is not an OCTET STRING"),
            )),
        }
    }
}

impl SignedData {
    /// Parses SignedData's fields from `reader` (the contents of its SEQUENCE, or the bare
    /// contents in the 2012 form). certificates, crls and signerInfos are accepted in any
    /// order after encapContentInfo (the B.6 sample puts signerInfos before crls).
    pub(crate) fn parse_contents(reader: &mut Reader<'_>) -> Result<SignedData, Tr34Error> {
        let version = reader
            .read(INTEGER, "SignedData version")?
            .small_integer("SignedData version")?;
        let digest_set = reader.read(SET, "SignedData digestAlgorithms")?;
        let mut digest_algorithms = Vec::new();
        let mut digests = digest_set.children();
        while !digests.is_empty() {
            let tlv = digests.read_any("digestAlgorithm")?;
            digest_algorithms.push(AlgorithmId::parse(&tlv, "digestAlgorithm")?.oid);
        }
        let encapsulated = reader.read(SEQUENCE, "encapContentInfo")?;
        let (content_type, content) = parse_encapsulated(&encapsulated)?;
        let mut data = SignedData {
            version,
            digest_algorithms,
            content_type,
            content,
            certificates: Vec::new(),
            other_certificates: 0,
            crls: Vec::new(),
            other_crls: 0,
            signers: Vec::new(),
        };
        let (mut seen_certificates, mut seen_crls, mut seen_signers) = (false, false, false);
        while !reader.is_empty() {
            let field = reader.read_any("SignedData field")?;
            let repeated = match field.tag {
                CONTEXT_0 => std::mem::replace(&mut seen_certificates, true),
                CONTEXT_1 => std::mem::replace(&mut seen_crls, true),
                SET => std::mem::replace(&mut seen_signers, true),
                _ => {
                    return Err(malformed(
                        "SignedData field",
                        field.offset,
                        "expected certificates [0], crls [1] or signerInfos SET",
                    ));
                }
            };
            if repeated {
                return Err(malformed("SignedData field", field.offset, "repeated"));
            }
            data.read_field(&field)?;
        }
        if !seen_signers {
            return Err(malformed(
                "SignedData signerInfos",
                reader.offset(),
                "missing (an empty SET is required even without signers)",
            ));
        }
        Ok(data)
    }

    fn read_field(&mut self, field: &Tlv<'_>) -> Result<(), Tr34Error> {
        let mut children = field.children();
        while !children.is_empty() {
            let item = children.read_any("SignedData element")?;
            match (field.tag, item.tag) {
                (CONTEXT_0, SEQUENCE) => self.certificates.push(item.raw.to_vec()),
                (CONTEXT_0, _) => self.other_certificates += 1,
                (CONTEXT_1, SEQUENCE) => self.crls.push(item.raw.to_vec()),
                (CONTEXT_1, _) => self.other_crls += 1,
                _ => self.signers.push(Signer::parse(&item)?),
            }
        }
        Ok(())
    }

    /// The first signer's signed attributes, if any.
    pub(crate) fn signed_attributes(&self) -> Option<&SignedAttributes> {
        self.signers.first()?.signed_attributes.as_ref()
    }
}

fn parse_encapsulated(
    encapsulated: &Tlv<'_>,
) -> Result<(ObjectIdentifier, Option<Content>), Tr34Error> {
    let mut fields = encapsulated.children();
    let content_type = fields.read_any("eContentType")?.oid("eContentType")?;
    let content = match fields.read_optional(CONTEXT_0, "eContent")? {
        None => None,
        Some(explicit) => {
            let mut inner = explicit.children();
            let octets = inner.read(OCTET_STRING, "eContent")?;
            inner.finish("eContent")?;
            Some(Content {
                bytes: octets.value.to_vec(),
                offset: octets.value_offset(),
            })
        }
    };
    fields.finish("encapContentInfo")?;
    Ok((content_type, content))
}

impl Signer {
    fn parse(tlv: &Tlv<'_>) -> Result<Signer, Tr34Error> {
        tlv.expect_tag(SEQUENCE, "SignerInfo")?;
        let mut fields = tlv.children();
        fields.read(INTEGER, "SignerInfo version")?;
        let sid_tlv = fields.read_any("SignerInfo sid")?;
        if sid_tlv.tag != SEQUENCE {
            return Err(Tr34Error::Unsupported {
                what: "signer identifier",
                detail: "subjectKeyIdentifier (TR-34 names the signer by issuer and serial number)"
                    .into(),
            });
        }
        let sid = Identifier::parse(&sid_tlv, "SignerInfo sid")?;
        let digest_tlv = fields.read_any("SignerInfo digestAlgorithm")?;
        let digest_algorithm = AlgorithmId::parse(&digest_tlv, "SignerInfo digestAlgorithm")?;
        let signed_attributes = fields
            .read_optional(CONTEXT_0, "signedAttrs")?
            .map(|tlv| parse_signed_attributes(&tlv))
            .transpose()?;
        let algorithm_tlv = fields.read_any("SignerInfo signatureAlgorithm")?;
        let signature_algorithm =
            AlgorithmId::parse(&algorithm_tlv, "SignerInfo signatureAlgorithm")?;
        let signature = fields.read(OCTET_STRING, "SignerInfo signature")?;
        fields.read_optional(CONTEXT_1, "unsignedAttrs")?;
        fields.finish("SignerInfo")?;
        Ok(Signer {
            sid,
            digest_algorithm,
            signed_attributes,
            signature_algorithm,
            signature: signature.value.to_vec(),
        })
    }
}

fn parse_signed_attributes(tlv: &Tlv<'_>) -> Result<SignedAttributes, Tr34Error> {
    let mut attributes = Vec::new();
    let mut reader = tlv.children();
    while !reader.is_empty() {
        attributes.push(parse_attribute(
            &reader.read(SEQUENCE, "signed attribute")?,
        )?);
    }
    let mut signed_bytes = tlv.raw.to_vec();
    if let Some(first) = signed_bytes.first_mut() {
        *first = SET;
    }
    Ok(SignedAttributes {
        signed_bytes,
        offset: tlv.offset,
        attributes,
    })
}

/// Parses an Attribute SEQUENCE { type, SET OF value } (also the random number token).
pub(crate) fn parse_attribute(tlv: &Tlv<'_>) -> Result<Attribute, Tr34Error> {
    let mut fields = tlv.children();
    let oid = fields.read_any("attribute type")?.oid("attribute type")?;
    let set = fields.read(SET, "attribute values")?;
    fields.finish("attribute")?;
    let mut values = Vec::new();
    let mut reader = set.children();
    while !reader.is_empty() {
        let value = reader.read_any("attribute value")?;
        values.push(Value {
            tag: value.tag,
            contents: value.value.to_vec(),
            raw: value.raw.to_vec(),
            offset: value.offset,
        });
    }
    Ok(Attribute {
        oid,
        values,
        offset: tlv.offset,
    })
}

/// The names of the attributes TR-34 uses, for descriptions.
pub(crate) fn attribute_name(oid: &ObjectIdentifier) -> Option<&'static str> {
    Some(match *oid {
        ID_CONTENT_TYPE => "contentType",
        ID_MESSAGE_DIGEST => "messageDigest",
        ID_SIGNING_TIME => "signingTime",
        ID_RANDOM_NONCE => "id-randomNonce",
        super::asn1::ID_DATA => "key block header (pkcs7-data)",
        _ => return None,
    })
}
