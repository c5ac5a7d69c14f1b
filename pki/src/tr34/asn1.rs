//! A DER reader that keeps byte offsets and the bytes as received (so nothing is re-encoded), the OIDs TR-34 uses, and small encoding helpers.

use const_oid::ObjectIdentifier;
use der::{Encode, Tag};
use x509_cert::name::Name;
use zeroize::Zeroizing;

use super::Tr34Error;

/// id-data (PKCS #7 data); also the attribute type of the key block header.
pub(crate) const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
/// id-signedData.
pub(crate) const ID_SIGNED_DATA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
/// id-envelopedData.
pub(crate) const ID_ENVELOPED_DATA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.3");
/// id-contentType attribute.
pub(crate) const ID_CONTENT_TYPE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
/// id-messageDigest attribute.
pub(crate) const ID_MESSAGE_DIGEST: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
/// id-signingTime attribute.
pub(crate) const ID_SIGNING_TIME: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.5");
/// id-randomNonce (RFC 3126 / TR-34).
pub(crate) const ID_RANDOM_NONCE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.25.3");
/// SHA-256.
pub(crate) const ID_SHA256: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
/// rsaEncryption.
pub(crate) const RSA_ENCRYPTION: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// sha256WithRSAEncryption.
pub(crate) const SHA256_WITH_RSA: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
/// RSASSA-PSS.
pub(crate) const RSASSA_PSS: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
/// RSAES-OAEP.
pub(crate) const RSAES_OAEP: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.7");
/// MGF1.
pub(crate) const ID_MGF1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.8");
/// id-pSpecified (the OAEP label source).
pub(crate) const ID_P_SPECIFIED: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.9");
/// des-ede3-cbc.
pub(crate) const DES_EDE3_CBC: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.3.7");
/// id-aes128-CBC.
pub(crate) const AES128_CBC: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.2");
/// id-aes192-CBC.
pub(crate) const AES192_CBC: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.22");
/// id-aes256-CBC.
pub(crate) const AES256_CBC: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.1.42");

/// DER tag bytes used here.
pub(crate) const INTEGER: u8 = 0x02;
pub(crate) const OCTET_STRING: u8 = 0x04;
pub(crate) const NULL: u8 = 0x05;
pub(crate) const OID: u8 = 0x06;
pub(crate) const SEQUENCE: u8 = 0x30;
pub(crate) const SET: u8 = 0x31;
pub(crate) const CONTEXT_0: u8 = 0xA0;
pub(crate) const CONTEXT_1: u8 = 0xA1;
pub(crate) const CONTEXT_2: u8 = 0xA2;
pub(crate) const CONTEXT_0_PRIMITIVE: u8 = 0x80;

/// A name for an OID TR-34 uses, or its dotted form.
pub(crate) fn oid_name(oid: &ObjectIdentifier) -> String {
    let name = match *oid {
        ID_DATA => "id-data (pkcs7-data)",
        ID_SIGNED_DATA => "id-signedData",
        ID_ENVELOPED_DATA => "id-envelopedData",
        ID_CONTENT_TYPE => "contentType",
        ID_MESSAGE_DIGEST => "messageDigest",
        ID_SIGNING_TIME => "signingTime",
        ID_RANDOM_NONCE => "id-randomNonce",
        ID_SHA256 => "sha256",
        RSA_ENCRYPTION => "rsaEncryption",
        SHA256_WITH_RSA => "sha256WithRSAEncryption",
        RSASSA_PSS => "RSASSA-PSS",
        RSAES_OAEP => "RSAES-OAEP",
        ID_MGF1 => "MGF1",
        ID_P_SPECIFIED => "pSpecified",
        DES_EDE3_CBC => "des-ede3-cbc",
        AES128_CBC => "id-aes128-CBC",
        AES192_CBC => "id-aes192-CBC",
        AES256_CBC => "id-aes256-CBC",
        _ => return oid.to_string(),
    };
    format!("{name} ({oid})")
}

/// One DER element as received.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tlv<'a> {
    /// The identifier octet.
    pub(crate) tag: u8,
    /// Offset of the identifier octet in the whole input.
    pub(crate) offset: usize,
    /// Identifier and length octets.
    pub(crate) header_length: usize,
    /// The contents.
    pub(crate) value: &'a [u8],
    /// Identifier, length and contents.
    pub(crate) raw: &'a [u8],
}

impl<'a> Tlv<'a> {
    /// Offset of the contents in the whole input.
    pub(crate) fn value_offset(&self) -> usize {
        self.offset + self.header_length
    }

    /// A reader over the contents.
    pub(crate) fn children(&self) -> Reader<'a> {
        Reader::new(self.value, self.value_offset())
    }

    /// The contents as an OID.
    pub(crate) fn oid(&self, what: &'static str) -> Result<ObjectIdentifier, Tr34Error> {
        self.expect_tag(OID, what)?;
        ObjectIdentifier::from_bytes(self.value).map_err(|e| malformed(what, self.offset, e))
    }

    /// Refuses another tag.
    pub(crate) fn expect_tag(&self, tag: u8, what: &'static str) -> Result<(), Tr34Error> {
        if self.tag == tag {
            Ok(())
        } else {
            Err(malformed(
                what,
                self.offset,
                format!("expected {}, found {}", tag_name(tag), tag_name(self.tag)),
            ))
        }
    }

    /// The contents of a small non-negative INTEGER.
    pub(crate) fn small_integer(&self, what: &'static str) -> Result<u32, Tr34Error> {
        self.expect_tag(INTEGER, what)?;
        if self.value.is_empty() || self.value.len() > 4 || self.value[0] & 0x80 != 0 {
            return Err(malformed(
                what,
                self.offset,
                "not a small non-negative INTEGER",
            ));
        }
        Ok(self
            .value
            .iter()
            .fold(0u32, |n, b| (n << 8) | u32::from(*b)))
    }
}

/// Reads consecutive DER elements of `data`, which starts at `base` in the whole input.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    base: usize,
    position: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8], base: usize) -> Reader<'a> {
        Reader {
            data,
            base,
            position: 0,
        }
    }

    /// The offset of the next element in the whole input.
    pub(crate) fn offset(&self) -> usize {
        self.base + self.position
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.position >= self.data.len()
    }

    /// The identifier octet of the next element, if any.
    pub(crate) fn peek_tag(&self) -> Option<u8> {
        self.data.get(self.position).copied()
    }

    /// The next element, whatever its tag.
    pub(crate) fn read_any(&mut self, what: &'static str) -> Result<Tlv<'a>, Tr34Error> {
        let start = self.position;
        let offset = self.offset();
        let rest = &self.data[start.min(self.data.len())..];
        let (tag, header_length, length) =
            read_header(rest).map_err(|detail| malformed(what, offset, detail))?;
        let end = header_length
            .checked_add(length)
            .filter(|&end| end <= rest.len())
            .ok_or_else(|| {
                malformed(
                    what,
                    offset,
                    format!(
                        "its length ({length} bytes) runs past the end of the enclosing structure ({} bytes remain)",
                        rest.len().saturating_sub(header_length)
                    ),
                )
            })?;
        self.position = start + end;
        Ok(Tlv {
            tag,
            offset,
            header_length,
            value: &rest[header_length..end],
            raw: &rest[..end],
        })
    }

    /// The next element, which must have `tag`.
    pub(crate) fn read(&mut self, tag: u8, what: &'static str) -> Result<Tlv<'a>, Tr34Error> {
        if self.is_empty() {
            return Err(malformed(
                what,
                self.offset(),
                format!(
                    "missing: expected {}, found the end of the structure",
                    tag_name(tag)
                ),
            ));
        }
        let tlv = self.read_any(what)?;
        tlv.expect_tag(tag, what)?;
        Ok(tlv)
    }

    /// The next element if it has `tag`.
    pub(crate) fn read_optional(
        &mut self,
        tag: u8,
        what: &'static str,
    ) -> Result<Option<Tlv<'a>>, Tr34Error> {
        if self.peek_tag() == Some(tag) {
            self.read_any(what).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Refuses anything left over.
    pub(crate) fn finish(&self, what: &'static str) -> Result<(), Tr34Error> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(malformed(
                what,
                self.offset(),
                format!(
                    "{} unexpected bytes after it",
                    self.data.len() - self.position
                ),
            ))
        }
    }
}

/// (tag, header length, content length) of the element at the start of `bytes`.
fn read_header(bytes: &[u8]) -> Result<(u8, usize, usize), String> {
    let tag = *bytes.first().ok_or("missing: the structure ends here")?;
    if tag & 0x1F == 0x1F {
        return Err(format!(
            "tag 0x{tag:02X} uses the multi-byte form, which TR-34 never needs"
        ));
    }
    let first = *bytes.get(1).ok_or("the length octet is missing")?;
    if first < 0x80 {
        return Ok((tag, 2, usize::from(first)));
    }
    if first == 0x80 {
        return Err("indefinite length (BER) is not DER".into());
    }
    let count = usize::from(first & 0x7F);
    if count > 4 {
        return Err(format!("a length of {count} length octets is too long"));
    }
    let octets = bytes
        .get(2..2 + count)
        .ok_or("the length octets are cut off")?;
    let length = octets
        .iter()
        .fold(0usize, |n, b| (n << 8) | usize::from(*b));
    Ok((tag, 2 + count, length))
}

/// A [`Tr34Error::Malformed`].
pub(crate) fn malformed(what: &'static str, offset: usize, detail: impl ToString) -> Tr34Error {
    Tr34Error::Malformed {
        what,
        offset,
        detail: detail.to_string(),
    }
}

/// A readable name for a tag octet.
pub(crate) fn tag_name(tag: u8) -> String {
    match tag {
        0x01 => "BOOLEAN".into(),
        INTEGER => "INTEGER".into(),
        0x03 => "BIT STRING".into(),
        OCTET_STRING => "OCTET STRING".into(),
        NULL => "NULL".into(),
        OID => "OBJECT IDENTIFIER".into(),
        0x13 => "PrintableString".into(),
        0x17 => "UTCTime".into(),
        0x18 => "GeneralizedTime".into(),
        SEQUENCE => "SEQUENCE".into(),
        SET => "SET".into(),
        t if t & 0xC0 == 0x80 => format!("[{}] (tag 0x{t:02X})", t & 0x1F),
        t => format!("tag 0x{t:02X}"),
    }
}

/// An IssuerAndSerialNumber as received: the issuer decoded, the serial's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identifier {
    pub(crate) issuer: Name,
    pub(crate) serial: Vec<u8>,
}

impl Identifier {
    /// Parses IssuerAndSerialNumber from `tlv` (a SEQUENCE).
    pub(crate) fn parse(tlv: &Tlv<'_>, what: &'static str) -> Result<Identifier, Tr34Error> {
        tlv.expect_tag(SEQUENCE, what)?;
        let mut reader = tlv.children();
        Identifier::parse_contents(&mut reader, what)
    }

    /// Parses the issuer and serial from `reader` (the contents of the SEQUENCE).
    pub(crate) fn parse_contents(
        reader: &mut Reader<'_>,
        what: &'static str,
    ) -> Result<Identifier, Tr34Error> {
        let issuer_tlv = reader.read(SEQUENCE, what)?;
        let issuer = <Name as der::Decode>::from_der(issuer_tlv.raw)
            .map_err(|e| malformed(what, issuer_tlv.offset, format!("issuer name: {e}")))?;
        let serial = reader.read(INTEGER, what)?;
        if serial.value.is_empty() {
            return Err(malformed(what, serial.offset, "empty serial number"));
        }
        Ok(Identifier {
            issuer,
            serial: serial.value.to_vec(),
        })
    }

    /// Whether this names `certificate` (its issuer and serial number).
    pub(crate) fn names(&self, certificate: &x509_cert::Certificate) -> bool {
        let tbs = certificate.tbs_certificate();
        &self.issuer == tbs.issuer() && self.serial == tbs.serial_number().as_bytes()
    }

    /// "issuer DN, serial HEX".
    pub(crate) fn describe(&self) -> String {
        format!(
            "{}, serial {}",
            self.issuer,
            hex::encode_upper(&self.serial)
        )
    }
}

/// The IssuerAndSerialNumber of `certificate`, as the cms crate's type.
pub(crate) fn issuer_and_serial(
    certificate: &x509_cert::Certificate,
) -> cms::cert::IssuerAndSerialNumber {
    let tbs = certificate.tbs_certificate();
    cms::cert::IssuerAndSerialNumber {
        issuer: tbs.issuer().clone(),
        serial_number: tbs.serial_number().clone(),
    }
}

/// `contents` under `tag`, in a buffer that zeroizes (used for structures holding key bytes).
pub(crate) fn wrap_secret(tag: Tag, contents: &[u8]) -> Result<Zeroizing<Vec<u8>>, Tr34Error> {
    let length = der::Length::try_from(contents.len()).map_err(|e| encoding("length", e))?;
    let header = der::Header::new(tag, length)
        .to_der()
        .map_err(|e| encoding("header", e))?;
    let mut out = Zeroizing::new(Vec::with_capacity(header.len() + contents.len()));
    out.extend_from_slice(&header);
    out.extend_from_slice(contents);
    Ok(out)
}

/// A [`Tr34Error::Encoding`].
pub(crate) fn encoding(what: &'static str, e: impl ToString) -> Tr34Error {
    Tr34Error::Encoding {
        what,
        detail: e.to_string(),
    }
}
