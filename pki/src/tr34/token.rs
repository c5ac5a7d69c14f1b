//! [`Token`]: any TR-34 token parsed as received, identified ([`TokenKind`], [`WireForm`]), with its nonce, signing time, header, certificates and CRLs.

use std::time::SystemTime;

use der::Decode;
use x509_cert::Certificate;
use x509_cert::ext::pkix::KeyUsage;

use super::asn1::{
    CONTEXT_0, ID_DATA, ID_ENVELOPED_DATA, ID_RANDOM_NONCE, ID_SIGNED_DATA, ID_SIGNING_TIME,
    Identifier, OCTET_STRING, Reader, SEQUENCE, malformed, oid_name,
};
use super::envelope::Envelope;
use super::key_block::KeyBlock;
use super::signed_data::{Content, SignedData, parse_attribute};
use super::{TokenKind, Tr34Error, WireForm};

/// Any parsed TR-34 token. Holds no secret; [`Token::describe`] explains it.
#[derive(Debug, Clone)]
pub struct Token {
    pub(super) kind: TokenKind,
    pub(super) form: WireForm,
    pub(super) nonce: Option<Vec<u8>>,
    pub(super) signing_time: Option<SystemTime>,
    pub(super) header: Option<String>,
    /// The SignedData of every token but the random number token.
    pub(super) signed: Option<SignedData>,
    /// Key tokens: the EnvelopedData, or why it does not parse (the _BROKEN samples).
    pub(super) envelope: Option<Result<Envelope, Tr34Error>>,
    /// Rebind tokens: the inner SignedData, or why it does not parse.
    pub(super) inner: Option<Result<SignedData, Tr34Error>>,
    /// Unbind tokens: the identifiers carried (idKRD, and idKDH when present).
    pub(super) identifiers: Vec<Identifier>,
}

impl Token {
    /// Parses any TR-34 token from DER (see [`pem_to_der`] for PEM). The token is identified;
    /// a key token whose EnvelopedData does not parse is still identified, and
    /// [`Token::decrypt_with_content_key`] reports why.
    pub fn parse(der: &[u8]) -> Result<Token, Tr34Error> {
        let mut top = Reader::new(der, 0);
        let outer = top.read(SEQUENCE, "token")?;
        top.finish("token")?;
        let mut fields = outer.children();
        let content_type = fields.read_any("content type")?.oid("content type")?;
        match content_type {
            ID_RANDOM_NONCE => {
                let attribute = parse_attribute(&outer)?;
                let nonce = match attribute.values.as_slice() {
                    [value] if value.tag == OCTET_STRING => value.contents.clone(),
                    _ => {
                        return Err(malformed(
                            "random number token",
                            outer.offset,
                            "expected exactly one OCTET STRING value",
                        ));
                    }
                };
                Ok(Token::bare(TokenKind::RandomNumber, Some(nonce)))
            }
            ID_SIGNED_DATA => {
                let explicit = fields.read(CONTEXT_0, "ContentInfo content")?;
                fields.finish("ContentInfo")?;
                let mut content = explicit.children();
                let sequence = content.read(SEQUENCE, "SignedData")?;
                content.finish("ContentInfo content")?;
                let signed = SignedData::parse_contents(&mut sequence.children())?;
                Token::classify(signed)
            }
            other => Err(malformed(
                "content type",
                outer.offset,
                format!(
                    "{} is neither signedData nor id-randomNonce: not a TR-34 token",
                    oid_name(&other)
                ),
            )),
        }
    }

    fn bare(kind: TokenKind, nonce: Option<Vec<u8>>) -> Token {
        Token {
            kind,
            form: WireForm::Tr34_2019,
            nonce,
            signing_time: None,
            header: None,
            signed: None,
            envelope: None,
            inner: None,
            identifiers: Vec::new(),
        }
    }

    fn classify(signed: SignedData) -> Result<Token, Tr34Error> {
        if signed.signers.is_empty() {
            if signed.content_type != ID_DATA {
                return Err(Tr34Error::Unsupported {
                    what: "unsigned token",
                    detail: format!(
                        "content type {} (a credential token carries id-data)",
                        oid_name(&signed.content_type)
                    ),
                });
            }
            let mut token = Token::bare(credential_kind(&signed), None);
            token.signed = Some(signed);
            return Ok(token);
        }
        let mut token = Token::bare(TokenKind::UnbindToken, None);
        if let Some(attributes) = signed.signed_attributes() {
            token.nonce = attributes.octets(ID_RANDOM_NONCE)?.map(<[u8]>::to_vec);
            token.header = attributes
                .octets(ID_DATA)?
                .map(|bytes| header_text(bytes, attributes.offset))
                .transpose()?;
            if let Some(time) = attributes.single(ID_SIGNING_TIME)? {
                let parsed = x509_cert::time::Time::from_der(&time.raw)
                    .map_err(|e| malformed("signingTime", time.offset, e))?;
                token.signing_time = Some(parsed.to_system_time());
            }
        }
        let content = signed.content.as_ref();
        match signed.content_type {
            ID_ENVELOPED_DATA => {
                token.kind = if token.nonce.is_some() {
                    TokenKind::TwoPassKeyToken
                } else if token.signing_time.is_some() {
                    TokenKind::OnePassKeyToken
                } else {
                    return Err(malformed(
                        "key token signedAttrs",
                        signed.signed_attributes().map_or(0, |a| a.offset),
                        "neither id-randomNonce (two-pass) nor signingTime (one-pass)",
                    ));
                };
                let content = required(content)?;
                let (form, envelope) = parse_inner(content, Envelope::parse_contents);
                token.form = form;
                token.envelope = Some(envelope);
            }
            ID_SIGNED_DATA => {
                token.kind = TokenKind::RebindToken;
                let (form, inner) = parse_inner(required(content)?, SignedData::parse_contents);
                token.form = form;
                token.inner = Some(inner);
            }
            ID_DATA => {
                let (form, identifiers) = parse_identifiers(required(content)?)?;
                token.form = form;
                token.identifiers = identifiers;
            }
            other => {
                return Err(Tr34Error::Unsupported {
                    what: "signed content type",
                    detail: oid_name(&other),
                });
            }
        }
        token.signed = Some(signed);
        Ok(token)
    }

    /// Which token it is.
    pub fn kind(&self) -> TokenKind {
        self.kind
    }

    /// Which wire form its inner structure has (2019 for tokens without one).
    pub fn form(&self) -> WireForm {
        self.form
    }

    /// The random number: of a two-pass key token, or of a random number token.
    pub fn nonce(&self) -> Option<&[u8]> {
        self.nonce.as_deref()
    }

    /// The signing time of a one-pass key token (or of any signed token that has one).
    pub fn signing_time(&self) -> Option<SystemTime> {
        self.signing_time
    }

    /// The key block header in the signed attributes of a key token.
    pub fn key_block_header(&self) -> Option<&str> {
        self.header.as_deref()
    }

    /// The signed content (eContent) as carried: for a key token the EnvelopedData (what
    /// `openssl cms -verify` outputs), for an unbind token the identifiers.
    pub fn content(&self) -> Option<&[u8]> {
        Some(&self.signed.as_ref()?.content.as_ref()?.bytes)
    }

    /// The certificates carried (DER), in the order carried.
    pub fn certificates(&self) -> &[Vec<u8>] {
        self.signed.as_ref().map_or(&[], |s| &s.certificates)
    }

    /// The CRLs carried (DER), in the order carried.
    pub fn crls(&self) -> &[Vec<u8>] {
        self.signed.as_ref().map_or(&[], |s| &s.crls)
    }

    /// Key tokens only: the symmetric layer opened with a known content key, giving the TR-34
    /// key block. For tests and the sample check; a KRD uses
    /// [`open_key_token`](super::open_key_token).
    pub fn decrypt_with_content_key(&self, content_key: &[u8]) -> Result<KeyBlock, Tr34Error> {
        let plain = self.envelope()?.decrypt(content_key)?;
        KeyBlock::parse(&plain)
    }

    /// The envelope of a key token.
    pub(super) fn envelope(&self) -> Result<&Envelope, Tr34Error> {
        match &self.envelope {
            Some(Ok(envelope)) => Ok(envelope),
            Some(Err(e)) => Err(e.clone()),
            None => Err(Tr34Error::WrongKind {
                expected: "key token",
                found: self.kind,
            }),
        }
    }
}

fn required(content: Option<&Content>) -> Result<&Content, Tr34Error> {
    content.ok_or_else(|| {
        malformed(
            "eContent",
            0,
            "missing: the signed content is not in the token",
        )
    })
}

fn header_text(bytes: &[u8], offset: usize) -> Result<String, Tr34Error> {
    std::str::from_utf8(bytes)
        .ok()
        .filter(|text| text.bytes().all(|b| (0x20..=0x7E).contains(&b)))
        .map(str::to_string)
        .ok_or_else(|| malformed("key block header attribute", offset, "not printable ASCII"))
}

/// An inner structure in either wire form: with its SEQUENCE (2019) or as bare contents,
/// which begin with the version INTEGER (2012).
fn parse_inner<T>(
    content: &Content,
    parse: fn(&mut Reader<'_>) -> Result<T, Tr34Error>,
) -> (WireForm, Result<T, Tr34Error>) {
    let mut reader = Reader::new(&content.bytes, content.offset);
    if reader.peek_tag() == Some(SEQUENCE) {
        let result = reader
            .read(SEQUENCE, "inner structure")
            .and_then(|sequence| {
                reader.finish("inner structure")?;
                parse(&mut sequence.children())
            });
        (WireForm::Tr34_2019, result)
    } else {
        (WireForm::Tr34_2012, parse(&mut reader))
    }
}

/// The identifiers of an unbind token: one IssuerAndSerialNumber, a SEQUENCE of them (2019),
/// or several without their SEQUENCE (2012).
fn parse_identifiers(content: &Content) -> Result<(WireForm, Vec<Identifier>), Tr34Error> {
    const WHAT: &str = "unbind token identifiers";
    let mut reader = Reader::new(&content.bytes, content.offset);
    let mut elements = Vec::new();
    while !reader.is_empty() {
        elements.push(reader.read(SEQUENCE, WHAT)?);
    }
    match elements.as_slice() {
        [] => Err(malformed(WHAT, content.offset, "the content is empty")),
        [single] => {
            let mut children = single.children();
            if children.peek_tag() == Some(SEQUENCE) {
                let first = children.read(SEQUENCE, WHAT)?;
                let mut probe = first.children();
                if probe.read(SEQUENCE, WHAT).is_ok()
                    && probe
                        .read_any(WHAT)
                        .is_ok_and(|t| t.tag == super::asn1::INTEGER)
                {
                    // A SEQUENCE of IssuerAndSerialNumber.
                    let mut identifiers = vec![Identifier::parse(&first, WHAT)?];
                    while !children.is_empty() {
                        identifiers.push(Identifier::parse(&children.read(SEQUENCE, WHAT)?, WHAT)?);
                    }
                    return Ok((WireForm::Tr34_2019, identifiers));
                }
            }
            Ok((WireForm::Tr34_2019, vec![Identifier::parse(single, WHAT)?]))
        }
        several => {
            let identifiers = several
                .iter()
                .map(|tlv| Identifier::parse(tlv, WHAT))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((WireForm::Tr34_2012, identifiers))
        }
    }
}

/// KDH or KRD credential: a CRL means KDH; otherwise the leaf's keyUsage decides
/// (digitalSignature without keyEncipherment: KDH; anything else: KRD).
fn credential_kind(signed: &SignedData) -> TokenKind {
    if !signed.crls.is_empty() {
        return TokenKind::KdhCredential;
    }
    let usage = signed
        .certificates
        .first()
        .and_then(|der| Certificate::from_der(der).ok())
        .and_then(|c| {
            c.tbs_certificate()
                .get_extension::<KeyUsage>()
                .ok()
                .flatten()
        })
        .map(|(_, usage)| usage);
    match usage {
        Some(usage) if usage.digital_signature() && !usage.key_encipherment() => {
            TokenKind::KdhCredential
        }
        _ => TokenKind::KrdCredential,
    }
}

/// DER from a PEM text (any label), or the bytes as they are when they are not PEM.
pub fn pem_to_der(bytes: &[u8]) -> Result<Vec<u8>, Tr34Error> {
    let trimmed = bytes.trim_ascii();
    if !trimmed.starts_with(b"-----BEGIN") {
        return Ok(bytes.to_vec());
    }
    der::pem::decode_vec(trimmed)
        .map(|(_, der)| der)
        .map_err(|e| Tr34Error::Pem {
            detail: e.to_string(),
        })
}
