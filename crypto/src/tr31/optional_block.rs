//! Optional blocks of the key block header (ANSI X9.143 6.3.6): parsed into types, validated, and encoded back to text.

use std::fmt;

use crate::key::{KeyFamily, SecretKey};

use super::fields::{Algorithm, Exportability, KeyUsage, ModeOfUse};

/// One optional block of a key block header.
///
/// The padding block PB is represented like any other block: a header parsed from a key block
/// keeps it (so its text is reproduced exactly), and wrapping drops any PB it is given and adds
/// a fresh one of the right length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionalBlock {
    /// AL: asymmetric key life.
    AsymmetricKeyLife(AsymmetricKeyLife),
    /// BI: base derivation key identifier for DUKPT.
    BaseDerivationKeyIdentifier(BaseDerivationKeyIdentifier),
    /// CT: public key certificate(s).
    Certificate(Certificate),
    /// DA: derivations allowed for a derivation key (at least one).
    DerivationsAllowed(Vec<DerivationAllowed>),
    /// HM: hash algorithm of an HMAC key.
    HmacHash(HashAlgorithm),
    /// IK: initial key identifier of an initial AES DUKPT key (8 bytes).
    InitialKeyIdentifier([u8; 8]),
    /// KC: check value of the wrapped key.
    KeyCheckValue(CheckValue),
    /// KP: check value of the key-block protection key.
    ProtectionKeyCheckValue(CheckValue),
    /// KS: key set identifier / initial key serial number (TDES DUKPT), hex-encoded bytes.
    KeySetIdentifier(Vec<u8>),
    /// KV: key block values (deprecated): four letters or digits.
    KeyBlockValues(String),
    /// LB: a printable label.
    Label(String),
    /// PB: padding (printable characters).
    Padding(String),
    /// PK: check value of the key-block protection key used to export the key.
    ExportProtectionKeyCheckValue(CheckValue),
    /// TC: time of creation of the wrapped key.
    TimeOfCreation(TimeStamp),
    /// TS: time stamp of the key block.
    TimeStamp(TimeStamp),
    /// WP: wrapping pedigree.
    WrappingPedigree(WrappingPedigree),
    /// A block with a two-digit ID, reserved for proprietary use; its data is printable text.
    Proprietary { id: [u8; 2], data: String },
}

/// The IDs keymother knows, for error messages.
const KNOWN_IDS: &str = "AL, BI, CT, DA, HM, IK, KC, KP, KS, KV, LB, PB, PK, TC, TS, WP, or two digits \
                         for a proprietary block";

impl OptionalBlock {
    /// The block's two-character ID.
    pub fn id(&self) -> [u8; 2] {
        let text = match self {
            OptionalBlock::AsymmetricKeyLife(_) => "AL",
            OptionalBlock::BaseDerivationKeyIdentifier(_) => "BI",
            OptionalBlock::Certificate(_) => "CT",
            OptionalBlock::DerivationsAllowed(_) => "DA",
            OptionalBlock::HmacHash(_) => "HM",
            OptionalBlock::InitialKeyIdentifier(_) => "IK",
            OptionalBlock::KeyCheckValue(_) => "KC",
            OptionalBlock::ProtectionKeyCheckValue(_) => "KP",
            OptionalBlock::KeySetIdentifier(_) => "KS",
            OptionalBlock::KeyBlockValues(_) => "KV",
            OptionalBlock::Label(_) => "LB",
            OptionalBlock::Padding(_) => "PB",
            OptionalBlock::ExportProtectionKeyCheckValue(_) => "PK",
            OptionalBlock::TimeOfCreation(_) => "TC",
            OptionalBlock::TimeStamp(_) => "TS",
            OptionalBlock::WrappingPedigree(_) => "WP",
            OptionalBlock::Proprietary { id, .. } => return *id,
        };
        let bytes = text.as_bytes();
        [bytes[0], bytes[1]]
    }

    /// Is `id` one keymother knows, or two digits (a proprietary block)? Only such IDs are
    /// named in error messages; anything else is text from the block that failed to parse.
    pub(crate) fn is_known_id(id: [u8; 2]) -> bool {
        matches!(
            &id,
            b"AL"
                | b"BI"
                | b"CT"
                | b"DA"
                | b"HM"
                | b"IK"
                | b"KC"
                | b"KP"
                | b"KS"
                | b"KV"
                | b"LB"
                | b"PB"
                | b"PK"
                | b"TC"
                | b"TS"
                | b"WP"
        ) || id.iter().all(u8::is_ascii_digit)
    }

    /// Is this the padding block PB?
    pub fn is_padding(&self) -> bool {
        matches!(self, OptionalBlock::Padding(_))
    }

    /// The block's data field as it appears in the header (without ID and length).
    pub fn data_text(&self) -> String {
        let mut out = String::new();
        match self {
            OptionalBlock::AsymmetricKeyLife(life) => {
                out.push_str("01");
                out.push_str(match life {
                    AsymmetricKeyLife::Ephemeral => "00",
                    AsymmetricKeyLife::Static => "01",
                });
            }
            OptionalBlock::BaseDerivationKeyIdentifier(identifier) => match identifier {
                BaseDerivationKeyIdentifier::TdesKeySetIdentifier(bytes) => {
                    out.push_str("00");
                    push_hex(&mut out, bytes);
                }
                BaseDerivationKeyIdentifier::AesKeyIdentifier(bytes) => {
                    out.push_str("01");
                    push_hex(&mut out, bytes);
                }
            },
            OptionalBlock::Certificate(certificate) => certificate.encode(&mut out),
            OptionalBlock::DerivationsAllowed(derivations) => {
                out.push_str("01");
                for derivation in derivations {
                    out.push_str(&derivation.key_usage.to_string());
                    out.push(derivation.algorithm.code());
                    out.push(derivation.mode_of_use.code());
                    out.push(derivation.exportability.code());
                }
            }
            OptionalBlock::HmacHash(hash) => push_hex(&mut out, &[hash.code()]),
            OptionalBlock::InitialKeyIdentifier(bytes) => push_hex(&mut out, bytes),
            OptionalBlock::KeyCheckValue(value)
            | OptionalBlock::ProtectionKeyCheckValue(value)
            | OptionalBlock::ExportProtectionKeyCheckValue(value) => value.encode(&mut out),
            OptionalBlock::KeySetIdentifier(bytes) => push_hex(&mut out, bytes),
            OptionalBlock::KeyBlockValues(text)
            | OptionalBlock::Label(text)
            | OptionalBlock::Padding(text) => out.push_str(text),
            OptionalBlock::TimeOfCreation(time) | OptionalBlock::TimeStamp(time) => {
                out.push_str(&time.to_string());
            }
            OptionalBlock::WrappingPedigree(pedigree) => {
                out.push_str("00");
                out.push(char::from(b'0' + pedigree.code()));
            }
            OptionalBlock::Proprietary { data, .. } => out.push_str(data),
        }
        out
    }

    /// Appends the whole block (ID, length, data) to `out`; lengths over 255 characters use the
    /// extended form "00" + length-of-length (in bytes, "02") + four hex digits.
    pub(crate) fn encode(&self, out: &mut String) {
        let [first, second] = self.id();
        let data = self.data_text();
        out.push(char::from(first));
        out.push(char::from(second));
        let short_length = 4 + data.len();
        if short_length <= 0xFF {
            push_hex(out, &[short_length as u8]);
        } else {
            // ID, "00", the length of the length in bytes, then the length itself; two bytes
            // (four hex digits) are enough for any block that fits in a key block.
            let mut length_bytes = 2usize;
            while 6 + 2 * length_bytes + data.len() >= 1usize << (8 * length_bytes.min(7)) {
                length_bytes += 1;
            }
            let length = 6 + 2 * length_bytes + data.len();
            out.push_str("00");
            push_hex(out, &[length_bytes as u8]);
            out.push_str(&format!("{length:0width$X}", width = 2 * length_bytes));
        }
        out.push_str(&data);
    }

    /// Parses the data field of a block with this ID; the error is the problem, in words.
    pub(crate) fn parse(id: [u8; 2], data: &str) -> Result<OptionalBlock, String> {
        let block = match &id {
            b"AL" => OptionalBlock::AsymmetricKeyLife(match data {
                "0100" => AsymmetricKeyLife::Ephemeral,
                "0101" => AsymmetricKeyLife::Static,
                _ => {
                    return Err(
                        "the data is not 0100 (ephemeral) or 0101 (static): version 01 and the key life"
                            .into(),
                    );
                }
            }),
            b"BI" => OptionalBlock::BaseDerivationKeyIdentifier(parse_bdk_identifier(data)?),
            b"CT" => OptionalBlock::Certificate(Certificate::parse(data)?),
            b"DA" => OptionalBlock::DerivationsAllowed(parse_derivations(data)?),
            b"HM" => {
                let code = parse_hex_exact::<1>(data, "the hash algorithm")?;
                OptionalBlock::HmacHash(HashAlgorithm::from_code(code[0]).ok_or_else(|| {
                    "the hash algorithm is unknown; expected one of 10, 20-25, 30-33, 40, 41"
                        .to_owned()
                })?)
            }
            b"IK" => OptionalBlock::InitialKeyIdentifier(parse_hex_exact::<8>(
                data,
                "the initial key identifier",
            )?),
            b"KC" => OptionalBlock::KeyCheckValue(CheckValue::parse(data)?),
            b"KP" => OptionalBlock::ProtectionKeyCheckValue(CheckValue::parse(data)?),
            b"PK" => OptionalBlock::ExportProtectionKeyCheckValue(CheckValue::parse(data)?),
            b"KS" => {
                if data.is_empty() {
                    return Err(
                        "the key set identifier is empty; expected upper-case hex digits".into(),
                    );
                }
                OptionalBlock::KeySetIdentifier(parse_hex(data, "the key set identifier")?)
            }
            b"KV" => {
                if data.len() != 4 || !data.bytes().all(|byte| byte.is_ascii_alphanumeric()) {
                    return Err(
                        "the data is not four letters or digits (version and other key block values)"
                            .into(),
                    );
                }
                OptionalBlock::KeyBlockValues(data.to_owned())
            }
            b"LB" => {
                check_printable(data, "the label")?;
                OptionalBlock::Label(data.to_owned())
            }
            b"PB" => {
                check_printable(data, "the padding")?;
                OptionalBlock::Padding(data.to_owned())
            }
            b"TC" => OptionalBlock::TimeOfCreation(TimeStamp::parse(data)?),
            b"TS" => OptionalBlock::TimeStamp(TimeStamp::parse(data)?),
            b"WP" => OptionalBlock::WrappingPedigree(match data {
                "000" => WrappingPedigree::EqualOrGreaterStrength,
                "001" => WrappingPedigree::LesserStrength,
                "002" => WrappingPedigree::AsymmetricQuantumRisk,
                "003" => WrappingPedigree::AsymmetricQuantumRiskAndLesserStrength,
                _ => {
                    return Err("the data is not version 00 followed by one digit 0-3".into());
                }
            }),
            [first, second] if first.is_ascii_digit() && second.is_ascii_digit() => {
                check_printable(data, "the data")?;
                OptionalBlock::Proprietary {
                    id,
                    data: data.to_owned(),
                }
            }
            _ => return Err(format!("unknown block ID; expected {KNOWN_IDS}")),
        };
        Ok(block)
    }
}

/// The block as it appears in a header: ID, length and data.
impl fmt::Display for OptionalBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::new();
        self.encode(&mut text);
        f.write_str(&text)
    }
}

/// AL: whether an asymmetric key is ephemeral or static.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AsymmetricKeyLife {
    /// 00: ephemeral.
    Ephemeral,
    /// 01: static / permanent.
    Static,
}

/// BI: identifies the base derivation key of a DUKPT key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BaseDerivationKeyIdentifier {
    /// 00: TDES DUKPT key set identifier (5 bytes).
    TdesKeySetIdentifier([u8; 5]),
    /// 01: AES DUKPT base derivation key ID (4 bytes).
    AesKeyIdentifier([u8; 4]),
}

/// CT: a public key certificate, or a chain of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Certificate {
    /// 00: an X.509 certificate, base64 text.
    X509(String),
    /// 01: an EMV certificate, printable text.
    Emv(String),
    /// 02: a chain of X.509 or EMV certificates (a chain never nests a chain).
    Chain(Vec<Certificate>),
}

impl Certificate {
    fn encode(&self, out: &mut String) {
        match self {
            Certificate::X509(text) => {
                out.push_str("00");
                out.push_str(text);
            }
            Certificate::Emv(text) => {
                out.push_str("01");
                out.push_str(text);
            }
            Certificate::Chain(certificates) => {
                out.push_str("02");
                for certificate in certificates {
                    let (format, text) = match certificate {
                        Certificate::X509(text) => ("00", text.as_str()),
                        Certificate::Emv(text) => ("01", text.as_str()),
                        // A nested chain cannot be expressed; it is written as an empty EMV
                        // certificate, which the validation of every wrapped header refuses.
                        Certificate::Chain(_) => ("01", ""),
                    };
                    out.push_str(format);
                    out.push_str(&format!("{:04X}", text.len()));
                    out.push_str(text);
                }
            }
        }
    }

    fn parse(data: &str) -> Result<Certificate, String> {
        let (format, rest) = data.split_at_checked(2).ok_or_else(|| {
            "the data is too short; expected a certificate format (00 X.509, 01 EMV, 02 chain)"
                .to_owned()
        })?;
        match format {
            "00" | "01" => Certificate::parse_single(format, rest),
            "02" => {
                let mut certificates = Vec::new();
                let mut remaining = rest;
                while !remaining.is_empty() {
                    let element = certificates.len() + 1;
                    let (element_format, after_format) =
                        remaining.split_at_checked(2).ok_or_else(|| {
                            format!(
                                "certificate {element} of the chain is cut off before its format"
                            )
                        })?;
                    let (length_text, after_length) =
                        after_format.split_at_checked(4).ok_or_else(|| {
                            format!(
                                "certificate {element} of the chain is cut off before its length"
                            )
                        })?;
                    let length = parse_hex_number(length_text).ok_or_else(|| {
                        format!(
                            "the length of certificate {element} of the chain is not four upper-case hex digits"
                        )
                    })?;
                    let (text, after_text) = after_length.split_at_checked(length).ok_or_else(|| {
                        format!(
                            "certificate {element} of the chain says {length} characters, but only {} remain",
                            after_length.len()
                        )
                    })?;
                    if element_format == "02" {
                        return Err(format!(
                            "certificate {element} of the chain is itself a chain"
                        ));
                    }
                    certificates.push(Certificate::parse_single(element_format, text).map_err(
                        |problem| format!("certificate {element} of the chain: {problem}"),
                    )?);
                    remaining = after_text;
                }
                if certificates.is_empty() {
                    return Err("the certificate chain is empty".into());
                }
                Ok(Certificate::Chain(certificates))
            }
            _ => Err(
                "the certificate format is unknown; expected 00 (X.509), 01 (EMV) or 02 (chain)"
                    .into(),
            ),
        }
    }

    fn parse_single(format: &str, text: &str) -> Result<Certificate, String> {
        if text.is_empty() {
            return Err("the certificate is empty".into());
        }
        if format == "00" {
            if let Some(index) = text.bytes().position(|byte| {
                !(byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'/' | b'='))
            }) {
                return Err(format!(
                    "character {} of the X.509 certificate is not base64 (A-Z a-z 0-9 + / =)",
                    index + 1
                ));
            }
            Ok(Certificate::X509(text.to_owned()))
        } else if format == "01" {
            check_printable(text, "the EMV certificate")?;
            Ok(Certificate::Emv(text.to_owned()))
        } else {
            Err("the certificate format is unknown; expected 00 (X.509) or 01 (EMV)".into())
        }
    }
}

/// One entry of a DA block: the attributes of a key the derivation key may derive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DerivationAllowed {
    pub key_usage: KeyUsage,
    pub algorithm: Algorithm,
    pub mode_of_use: ModeOfUse,
    pub exportability: Exportability,
}

/// HM: the hash function of an HMAC key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    /// 10: SHA-1.
    Sha1,
    /// 20: SHA-224.
    Sha224,
    /// 21: SHA-256.
    Sha256,
    /// 22: SHA-384.
    Sha384,
    /// 23: SHA-512.
    Sha512,
    /// 24: SHA-512/224.
    Sha512To224,
    /// 25: SHA-512/256.
    Sha512To256,
    /// 30: SHA3-224.
    Sha3To224,
    /// 31: SHA3-256.
    Sha3To256,
    /// 32: SHA3-384.
    Sha3To384,
    /// 33: SHA3-512.
    Sha3To512,
    /// 40: SHAKE128.
    Shake128,
    /// 41: SHAKE256.
    Shake256,
}

impl HashAlgorithm {
    /// Every hash algorithm an HM block may name.
    pub const ALL: [HashAlgorithm; 13] = [
        HashAlgorithm::Sha1,
        HashAlgorithm::Sha224,
        HashAlgorithm::Sha256,
        HashAlgorithm::Sha384,
        HashAlgorithm::Sha512,
        HashAlgorithm::Sha512To224,
        HashAlgorithm::Sha512To256,
        HashAlgorithm::Sha3To224,
        HashAlgorithm::Sha3To256,
        HashAlgorithm::Sha3To384,
        HashAlgorithm::Sha3To512,
        HashAlgorithm::Shake128,
        HashAlgorithm::Shake256,
    ];

    /// The code byte, written as two hex digits.
    pub fn code(self) -> u8 {
        match self {
            HashAlgorithm::Sha1 => 0x10,
            HashAlgorithm::Sha224 => 0x20,
            HashAlgorithm::Sha256 => 0x21,
            HashAlgorithm::Sha384 => 0x22,
            HashAlgorithm::Sha512 => 0x23,
            HashAlgorithm::Sha512To224 => 0x24,
            HashAlgorithm::Sha512To256 => 0x25,
            HashAlgorithm::Sha3To224 => 0x30,
            HashAlgorithm::Sha3To256 => 0x31,
            HashAlgorithm::Sha3To384 => 0x32,
            HashAlgorithm::Sha3To512 => 0x33,
            HashAlgorithm::Shake128 => 0x40,
            HashAlgorithm::Shake256 => 0x41,
        }
    }

    /// The hash algorithm with this code.
    pub fn from_code(code: u8) -> Option<HashAlgorithm> {
        HashAlgorithm::ALL
            .into_iter()
            .find(|hash| hash.code() == code)
    }
}

/// How a check value was computed (KC, KP and PK blocks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckValueAlgorithm {
    /// 00: legacy method, encryption of a zero block (at most 3 bytes kept).
    Legacy,
    /// 01: CMAC over a zero block (at most 5 bytes kept).
    Cmac,
}

/// A key check value carried in a KC, KP or PK block.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CheckValue {
    pub algorithm: CheckValueAlgorithm,
    pub value: Vec<u8>,
}

impl CheckValue {
    /// The check value keymother computes for `key` (ANSI X9.24-1-2017): 3 bytes, legacy method,
    /// for TDES keys; 5 bytes of CMAC for AES keys.
    pub fn of(key: &SecretKey) -> CheckValue {
        let algorithm = match key.algorithm().family() {
            KeyFamily::Tdes => CheckValueAlgorithm::Legacy,
            KeyFamily::Aes => CheckValueAlgorithm::Cmac,
        };
        CheckValue {
            algorithm,
            value: crate::kcv::check_value(key).as_bytes().to_vec(),
        }
    }

    fn encode(&self, out: &mut String) {
        out.push_str(match self.algorithm {
            CheckValueAlgorithm::Legacy => "00",
            CheckValueAlgorithm::Cmac => "01",
        });
        push_hex(out, &self.value);
    }

    fn parse(data: &str) -> Result<CheckValue, String> {
        let (algorithm_text, value_text) = data.split_at_checked(2).ok_or_else(|| {
            "the data is too short; expected the check value algorithm (00 or 01) and the value"
                .to_owned()
        })?;
        let (algorithm, maximum) = match algorithm_text {
            "00" => (CheckValueAlgorithm::Legacy, 3),
            "01" => (CheckValueAlgorithm::Cmac, 5),
            _ => {
                return Err(
                    "the check value algorithm is unknown; expected 00 (legacy) or 01 (CMAC)"
                        .into(),
                );
            }
        };
        let value = parse_hex(value_text, "the check value")?;
        if value.is_empty() || value.len() > maximum {
            return Err(format!(
                "the check value is {} bytes; algorithm {algorithm_text} allows 1 to {maximum}",
                value.len()
            ));
        }
        Ok(CheckValue { algorithm, value })
    }
}

/// TS and TC: a UTC time in one of the ISO 8601 forms ANSI X9.143 allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeStamp {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    /// Hundredths of a second, when the time stamp carries them.
    pub hundredths: Option<u8>,
    pub format: TimeStampFormat,
}

/// How a time stamp is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeStampFormat {
    /// YYYYMMDDhhmmssZ or YYYYMMDDhhmmssffZ.
    Basic,
    /// YYYY-MM-DDThh:mm:ssZ or YYYY-MM-DDThh:mm:ss.ffZ.
    Extended,
}

impl TimeStamp {
    fn parse(data: &str) -> Result<TimeStamp, String> {
        const FORMS: &str = "YYYYMMDDhhmmssZ, YYYYMMDDhhmmssffZ, YYYY-MM-DDThh:mm:ssZ or \
                             YYYY-MM-DDThh:mm:ss.ffZ (UTC)";
        let bytes = data.as_bytes();
        // Each form: the pattern, with 'd' for a digit and anything else literal.
        let (format, pattern, has_hundredths) = match bytes.len() {
            15 => (TimeStampFormat::Basic, "ddddddddddddddZ", false),
            17 => (TimeStampFormat::Basic, "ddddddddddddddddZ", true),
            20 => (TimeStampFormat::Extended, "dddd-dd-ddTdd:dd:ddZ", false),
            23 => (TimeStampFormat::Extended, "dddd-dd-ddTdd:dd:dd.ddZ", true),
            _ => {
                return Err(format!(
                    "the time stamp is {} characters; expected {FORMS}",
                    bytes.len()
                ));
            }
        };
        for (index, (&given, expected)) in bytes.iter().zip(pattern.bytes()).enumerate() {
            let fits = if expected == b'd' {
                given.is_ascii_digit()
            } else {
                given == expected
            };
            if !fits {
                let wanted = if expected == b'd' {
                    "a digit".to_owned()
                } else {
                    format!("'{}'", char::from(expected))
                };
                return Err(format!(
                    "character {} of the time stamp is not {wanted}; expected {FORMS}",
                    index + 1
                ));
            }
        }
        let digits: Vec<u32> = bytes
            .iter()
            .filter(|byte| byte.is_ascii_digit())
            .map(|byte| u32::from(byte - b'0'))
            .collect();
        let number = |start: usize, count: usize| {
            digits[start..start + count]
                .iter()
                .fold(0u32, |value, digit| value * 10 + digit)
        };
        let time = TimeStamp {
            year: number(0, 4) as u16,
            month: number(4, 2) as u8,
            day: number(6, 2) as u8,
            hour: number(8, 2) as u8,
            minute: number(10, 2) as u8,
            second: number(12, 2) as u8,
            hundredths: has_hundredths.then(|| number(14, 2) as u8),
            format,
        };
        time.check_ranges()
            .map_err(|problem| format!("the time stamp's {problem}"))?;
        Ok(time)
    }

    fn check_ranges(&self) -> Result<(), String> {
        if !(1..=12).contains(&self.month) {
            return Err("month is not 01-12".into());
        }
        let leap = self.year.is_multiple_of(4)
            && (!self.year.is_multiple_of(100) || self.year.is_multiple_of(400));
        let days = match self.month {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        if self.day < 1 || self.day > days {
            return Err(format!(
                "day is not 01-{days} (month {:02} has {days} days)",
                self.month
            ));
        }
        if self.hour > 23 {
            return Err("hour is not 00-23".into());
        }
        if self.minute > 59 {
            return Err("minute is not 00-59".into());
        }
        if self.second > 60 {
            return Err("second is not 00-60".into());
        }
        if self.hundredths.is_some_and(|hundredths| hundredths > 99) {
            return Err("hundredths are more than 99".into());
        }
        Ok(())
    }
}

impl fmt::Display for TimeStamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.format {
            TimeStampFormat::Basic => {
                write!(
                    f,
                    "{:04}{:02}{:02}{:02}{:02}{:02}",
                    self.year, self.month, self.day, self.hour, self.minute, self.second
                )?;
                if let Some(hundredths) = self.hundredths {
                    write!(f, "{hundredths:02}")?;
                }
            }
            TimeStampFormat::Extended => {
                write!(
                    f,
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                    self.year, self.month, self.day, self.hour, self.minute, self.second
                )?;
                if let Some(hundredths) = self.hundredths {
                    write!(f, ".{hundredths:02}")?;
                }
            }
        }
        f.write_str("Z")
    }
}

/// WP: the strength of the keys that have protected the wrapped key in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WrappingPedigree {
    /// 0: always protected by keys of equal or greater effective strength.
    EqualOrGreaterStrength,
    /// 1: at some time protected by a key of lesser effective strength.
    LesserStrength,
    /// 2: protected by an asymmetric key at risk from quantum computing.
    AsymmetricQuantumRisk,
    /// 3: both 1 and 2.
    AsymmetricQuantumRiskAndLesserStrength,
}

impl WrappingPedigree {
    fn code(self) -> u8 {
        match self {
            WrappingPedigree::EqualOrGreaterStrength => 0,
            WrappingPedigree::LesserStrength => 1,
            WrappingPedigree::AsymmetricQuantumRisk => 2,
            WrappingPedigree::AsymmetricQuantumRiskAndLesserStrength => 3,
        }
    }
}

fn parse_bdk_identifier(data: &str) -> Result<BaseDerivationKeyIdentifier, String> {
    match data.split_at_checked(2) {
        Some(("00", rest)) => Ok(BaseDerivationKeyIdentifier::TdesKeySetIdentifier(
            parse_hex_exact::<5>(rest, "the TDES DUKPT key set identifier")?,
        )),
        Some(("01", rest)) => Ok(BaseDerivationKeyIdentifier::AesKeyIdentifier(
            parse_hex_exact::<4>(rest, "the AES DUKPT base derivation key ID")?,
        )),
        _ => Err(
            "the data does not start with key type 00 (TDES, 10 hex digits follow) or 01 (AES, 8 hex digits follow)"
                .into(),
        ),
    }
}

fn parse_derivations(data: &str) -> Result<Vec<DerivationAllowed>, String> {
    let Some(("01", rest)) = data.split_at_checked(2) else {
        return Err("the data does not start with version 01".into());
    };
    if rest.is_empty() || rest.len() % 5 != 0 {
        return Err(format!(
            "after the version come {} characters; expected one or more groups of 5 (usage, algorithm, mode of use, exportability)",
            rest.len()
        ));
    }
    rest.as_bytes()
        .chunks(5)
        .enumerate()
        .map(|(index, group)| {
            let problem = |what: &str| format!("derivation {} has an invalid {what}", index + 1);
            Ok(DerivationAllowed {
                key_usage: KeyUsage::from_code([group[0], group[1]])
                    .ok_or_else(|| problem("key usage"))?,
                algorithm: Algorithm::from_code(group[2]).ok_or_else(|| problem("algorithm"))?,
                mode_of_use: ModeOfUse::from_code(group[3])
                    .ok_or_else(|| problem("mode of use"))?,
                exportability: Exportability::from_code(group[4])
                    .ok_or_else(|| problem("exportability"))?,
            })
        })
        .collect()
}

fn check_printable(text: &str, what: &str) -> Result<(), String> {
    match text.bytes().position(|byte| !(0x20..=0x7E).contains(&byte)) {
        Some(index) => Err(format!(
            "character {} of {what} is not printable ASCII",
            index + 1
        )),
        None => Ok(()),
    }
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Parses upper-case hex digits (ANSI X9.143 clause 4 allows no lower case) into bytes.
fn parse_hex(text: &str, what: &str) -> Result<Vec<u8>, String> {
    if let Some(index) = text.bytes().position(|byte| hex_value(byte).is_none()) {
        return Err(format!(
            "character {} of {what} is not an upper-case hex digit 0-9 or A-F",
            index + 1
        ));
    }
    if !text.len().is_multiple_of(2) {
        return Err(format!(
            "{what} has an odd number of hex digits ({})",
            text.len()
        ));
    }
    Ok(text
        .as_bytes()
        .chunks(2)
        .map(|pair| (hex_value(pair[0]).unwrap_or(0) << 4) | hex_value(pair[1]).unwrap_or(0))
        .collect())
}

fn parse_hex_exact<const N: usize>(text: &str, what: &str) -> Result<[u8; N], String> {
    let bytes = parse_hex(text, what)?;
    bytes
        .as_slice()
        .try_into()
        .map_err(|_| format!("{what} is {} hex digits; expected {}", text.len(), 2 * N))
}

/// Parses upper-case hex digits as a number (lengths in optional block headers).
pub(crate) fn parse_hex_number(text: &str) -> Option<usize> {
    text.bytes().try_fold(0usize, |value, byte| {
        hex_value(byte).map(|digit| value * 16 + usize::from(digit))
    })
}

/// Appends upper-case hex.
pub(crate) fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    out.reserve(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0F)]));
    }
}
