//! The messages carried in frame bodies: types, typed fields, a strict encoder and a decoder whose errors name the field.
//!
//! Encoding is canonical: every message has exactly one byte form, and the decoder accepts only
//! that form (no trailing bytes, no out-of-range lengths), so a decoded message re-encodes to the
//! bytes it came from.

use std::fmt;

use crate::codes::{AbortReason, ErrorCode};
use crate::frame::{Frame, FrameError, MAX_PAYLOAD_LENGTH};
use crate::identity::{HardwareSerial, IdentityError, MAX_KEY_INDEX, Smn, TerminalModel};
use crate::mode::Mode;

/// The only protocol version this crate speaks.
pub const PROTOCOL_VERSION: u8 = 1;
/// Most mode ids a HELLO may list.
pub const MAX_MODE_IDS: usize = 32;
/// Longest appliance device id in WELCOME.
pub const MAX_DEVICE_ID_LENGTH: usize = 32;
/// Longest free-text detail of ERROR and ABORT.
pub const MAX_DETAIL_LENGTH: usize = 200;
/// Shortest key block in KEY_DELIVERY (a TR-31 header alone is 16 characters).
pub const MIN_KEY_BLOCK_LENGTH: usize = 16;
/// Longest key block in KEY_DELIVERY: what fits in a frame beside the other fields.
pub const MAX_KEY_BLOCK_LENGTH: usize = MAX_PAYLOAD_LENGTH - 4 - 2 - 1 - 5;
/// HELLO capability: the terminal unwraps TR-31 version B key blocks (TDES transport key).
pub const CAPABILITY_TR31_VERSION_B: u16 = 0x0001;
/// HELLO capability: the terminal unwraps TR-31 version D key blocks (AES transport key).
pub const CAPABILITY_TR31_VERSION_D: u16 = 0x0002;

/// Message type ids (the TYPE byte). Requests are 0x11-0x14, their responses the same with bit 7
/// set (0x91-0x94), ERROR 0x9F, NAK 0x15 (ASCII NAK); none is 0x02, so a TYPE byte is never
/// mistaken for STX when a receiver rescans a damaged frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessageType {
    Hello,
    KeyRequest,
    Confirm,
    Abort,
    Welcome,
    KeyDelivery,
    Confirmed,
    Ack,
    Error,
    Nak,
}

/// Who sends a message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// A request, sent by the terminal.
    ToAppliance,
    /// A response, sent by the appliance.
    ToTerminal,
    /// A link frame, sent by either side.
    Both,
}

impl MessageType {
    pub const ALL: [MessageType; 10] = [
        MessageType::Hello,
        MessageType::KeyRequest,
        MessageType::Confirm,
        MessageType::Abort,
        MessageType::Welcome,
        MessageType::KeyDelivery,
        MessageType::Confirmed,
        MessageType::Ack,
        MessageType::Error,
        MessageType::Nak,
    ];

    /// The TYPE byte.
    pub fn id(self) -> u8 {
        match self {
            MessageType::Hello => 0x11,
            MessageType::KeyRequest => 0x12,
            MessageType::Confirm => 0x13,
            MessageType::Abort => 0x14,
            MessageType::Nak => 0x15,
            MessageType::Welcome => 0x91,
            MessageType::KeyDelivery => 0x92,
            MessageType::Confirmed => 0x93,
            MessageType::Ack => 0x94,
            MessageType::Error => 0x9F,
        }
    }

    pub fn from_id(id: u8) -> Option<MessageType> {
        MessageType::ALL
            .into_iter()
            .find(|message_type| message_type.id() == id)
    }

    /// The name used in PROTOCOL.md and logs.
    pub fn name(self) -> &'static str {
        match self {
            MessageType::Hello => "HELLO",
            MessageType::KeyRequest => "KEY_REQUEST",
            MessageType::Confirm => "CONFIRM",
            MessageType::Abort => "ABORT",
            MessageType::Welcome => "WELCOME",
            MessageType::KeyDelivery => "KEY_DELIVERY",
            MessageType::Confirmed => "CONFIRMED",
            MessageType::Ack => "ACK",
            MessageType::Error => "ERROR",
            MessageType::Nak => "NAK",
        }
    }

    pub fn direction(self) -> Direction {
        match self {
            MessageType::Hello
            | MessageType::KeyRequest
            | MessageType::Confirm
            | MessageType::Abort => Direction::ToAppliance,
            MessageType::Welcome
            | MessageType::KeyDelivery
            | MessageType::Confirmed
            | MessageType::Ack
            | MessageType::Error => Direction::ToTerminal,
            MessageType::Nak => Direction::Both,
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// HELLO: the terminal starts a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub protocol_version: u8,
    /// Mode ids in the terminal's order of preference; ids unknown to the receiver are ignored.
    pub mode_ids: Vec<u8>,
    pub model: TerminalModel,
    pub hardware_serial: HardwareSerial,
    /// `CAPABILITY_*` bits; bits not defined here are sent as 0 and ignored.
    pub capabilities: u16,
}

impl Hello {
    /// The offered modes this version knows, in the terminal's order.
    pub fn known_modes(&self) -> Vec<Mode> {
        self.mode_ids
            .iter()
            .copied()
            .filter_map(Mode::from_id)
            .collect()
    }
}

/// KEY_REQUEST: the terminal asks for its master key in the negotiated mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRequest {
    pub mode_id: u8,
    /// Fields a later mode defines; always empty for tr31 (mode 1).
    pub mode_data: Vec<u8>,
}

/// CONFIRM: the terminal installed the key and reports its check value and SMN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirm {
    pub key_index: u32,
    pub kcv: Vec<u8>,
    pub smn: Smn,
}

/// ABORT: the terminal gives up on the session and says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Abort {
    pub reason: AbortReason,
    /// 0 to 200 printable ASCII characters.
    pub detail: String,
}

/// WELCOME: the appliance accepts HELLO and chooses the mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    pub protocol_version: u8,
    pub mode_id: u8,
    /// The appliance's device id, 1 to 32 printable ASCII characters.
    pub device_id: String,
    /// The transport key's check value (3 bytes for TDES, 5 for AES), so the terminal can see a
    /// wrong transport key before any key is sent.
    pub ttk_kcv: Vec<u8>,
    /// Fields the chosen mode defines (for certificate mode a
    /// [`CertificateWelcome`](crate::certificate::CertificateWelcome)); always empty for tr31.
    pub mode_data: Vec<u8>,
}

/// KEY_DELIVERY (the adapter's answer to a reservation, and the message carrying it): the key
/// index, the master key as a TR-31 key block under the transport key, and the master key's KCV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub key_index: u32,
    pub key_block: String,
    pub kcv: Vec<u8>,
    /// Fields the session's mode defines (for certificate mode a
    /// [`CertificateDelivery`](crate::certificate::CertificateDelivery)); empty for tr31.
    pub mode_data: Vec<u8>,
}

/// CONFIRMED (the adapter's answer to a confirmation, and the message carrying it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmed {
    pub key_index: u32,
    pub smn: Smn,
}

/// ERROR: the appliance refuses a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorMessage {
    pub code: ErrorCode,
    /// 0 to 200 printable ASCII characters.
    pub detail: String,
}

/// Every message of the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Hello(Hello),
    KeyRequest(KeyRequest),
    Confirm(Confirm),
    Abort(Abort),
    Welcome(Welcome),
    KeyDelivery(Delivery),
    Confirmed(Confirmed),
    Ack,
    Error(ErrorMessage),
    Nak,
}

/// A field of a message, for errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    ProtocolVersion,
    ModeCount,
    ModeIds,
    ModelLength,
    Model,
    SerialLength,
    HardwareSerial,
    Capabilities,
    Mode,
    ModeData,
    KeyIndex,
    KcvLength,
    Kcv,
    SmnLength,
    Smn,
    Reason,
    DetailLength,
    Detail,
    DeviceIdLength,
    DeviceId,
    TtkKcvLength,
    TtkKcv,
    KeyBlockLength,
    KeyBlock,
    Code,
    Payload,
    KdhCertificateLength,
    KdhCertificate,
    Nonce,
    DeviceCertificateLength,
    DeviceCertificate,
    EncryptedKeyLength,
    EncryptedKey,
    SignatureLength,
    Signature,
    CrlLength,
    Crl,
}

impl Field {
    pub fn name(self) -> &'static str {
        match self {
            Field::ProtocolVersion => "protocol version",
            Field::ModeCount => "mode count",
            Field::ModeIds => "mode ids",
            Field::ModelLength => "terminal model length",
            Field::Model => "terminal model",
            Field::SerialLength => "hardware serial length",
            Field::HardwareSerial => "hardware serial",
            Field::Capabilities => "capability flags",
            Field::Mode => "mode",
            Field::ModeData => "mode data",
            Field::KeyIndex => "key index",
            Field::KcvLength => "KCV length",
            Field::Kcv => "KCV",
            Field::SmnLength => "SMN length",
            Field::Smn => "SMN",
            Field::Reason => "reason",
            Field::DetailLength => "detail length",
            Field::Detail => "detail",
            Field::DeviceIdLength => "device id length",
            Field::DeviceId => "device id",
            Field::TtkKcvLength => "TTK KCV length",
            Field::TtkKcv => "TTK KCV",
            Field::KeyBlockLength => "key block length",
            Field::KeyBlock => "key block",
            Field::Code => "error code",
            Field::Payload => "payload",
            Field::KdhCertificateLength => "KDH certificate length",
            Field::KdhCertificate => "KDH certificate",
            Field::Nonce => "nonce",
            Field::DeviceCertificateLength => "device certificate length",
            Field::DeviceCertificate => "device certificate",
            Field::EncryptedKeyLength => "encrypted key length",
            Field::EncryptedKey => "encrypted key",
            Field::SignatureLength => "signature length",
            Field::Signature => "signature",
            Field::CrlLength => "CRL length",
            Field::Crl => "CRL",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What is wrong with one field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldProblem {
    #[error("the payload ends inside it")]
    Truncated,
    #[error("length {found} is not allowed ({allowed})")]
    Length { found: usize, allowed: &'static str },
    #[error("byte {position} is 0x{byte:02X}; allowed: {allowed}")]
    Character {
        position: usize,
        byte: u8,
        allowed: &'static str,
    },
    #[error("{value} is out of range (at most {max})")]
    OutOfRange { value: u64, max: u64 },
    #[error("{0}")]
    Identity(IdentityError),
    #[error("{count} byte(s) follow the last field")]
    TrailingBytes { count: usize },
}

/// Why a frame's payload is not a valid message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown message type 0x{0:02X}")]
    UnknownType(u8),
    #[error("HELLO protocol version {0} is not supported (version {PROTOCOL_VERSION} is)")]
    UnsupportedVersion(u8),
    #[error("{message} {field}: {problem}")]
    Field {
        message: MessageType,
        field: Field,
        problem: FieldProblem,
    },
}

impl DecodeError {
    /// The field at fault, if the error is about one.
    pub fn field(&self) -> Option<Field> {
        match self {
            DecodeError::Field { field, .. } => Some(*field),
            DecodeError::UnsupportedVersion(_) => Some(Field::ProtocolVersion),
            DecodeError::UnknownType(_) => None,
        }
    }
}

/// Why a message cannot be encoded (a field outside what the protocol allows).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("{message} {field}: {problem}")]
    Field {
        message: MessageType,
        field: Field,
        problem: FieldProblem,
    },
    #[error(transparent)]
    Frame(#[from] FrameError),
}

const PRINTABLE: &str = "printable ASCII 0x20-0x7E";
const KCV_LENGTHS: &str = "3 (TDES) or 5 (AES)";

fn is_printable(byte: u8) -> bool {
    (0x20..=0x7E).contains(&byte)
}

/// Checks a text field's length and characters (shared by encoder and decoder).
fn check_text(
    bytes: &[u8],
    min: usize,
    max: usize,
    allowed: &'static str,
) -> Result<(), FieldProblem> {
    if bytes.len() < min || bytes.len() > max {
        return Err(FieldProblem::Length {
            found: bytes.len(),
            allowed,
        });
    }
    if let Some(position) = bytes.iter().position(|&byte| !is_printable(byte)) {
        return Err(FieldProblem::Character {
            position: position + 1,
            byte: bytes[position],
            allowed: PRINTABLE,
        });
    }
    Ok(())
}

fn check_kcv_length(length: usize) -> Result<(), FieldProblem> {
    match length {
        3 | 5 => Ok(()),
        found => Err(FieldProblem::Length {
            found,
            allowed: KCV_LENGTHS,
        }),
    }
}

fn check_key_index(key_index: u32) -> Result<(), FieldProblem> {
    if key_index > MAX_KEY_INDEX {
        return Err(FieldProblem::OutOfRange {
            value: u64::from(key_index),
            max: u64::from(MAX_KEY_INDEX),
        });
    }
    Ok(())
}

/// How many bytes a field's length takes.
#[derive(Clone, Copy)]
pub(crate) enum LengthWidth {
    One,
    Two,
}

/// Reads fields from a payload, naming the message in every error.
pub(crate) struct Reader<'a> {
    pub(crate) message: MessageType,
    pub(crate) bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn error(&self, field: Field, problem: FieldProblem) -> DecodeError {
        DecodeError::Field {
            message: self.message,
            field,
            problem,
        }
    }

    pub(crate) fn take(&mut self, count: usize, field: Field) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < count {
            return Err(self.error(field, FieldProblem::Truncated));
        }
        let (taken, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Ok(taken)
    }

    fn u8(&mut self, field: Field) -> Result<u8, DecodeError> {
        Ok(self.take(1, field)?[0])
    }

    pub(crate) fn u16(&mut self, field: Field) -> Result<u16, DecodeError> {
        let bytes = self.take(2, field)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn u32(&mut self, field: Field) -> Result<u32, DecodeError> {
        let bytes = self.take(4, field)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn key_index(&mut self) -> Result<u32, DecodeError> {
        let key_index = self.u32(Field::KeyIndex)?;
        check_key_index(key_index).map_err(|problem| self.error(Field::KeyIndex, problem))?;
        Ok(key_index)
    }

    /// A one-byte length, checked against `min..=max`, then that many bytes.
    fn counted(
        &mut self,
        length_field: Field,
        field: Field,
        min: usize,
        max: usize,
        allowed: &'static str,
    ) -> Result<&'a [u8], DecodeError> {
        self.prefixed(LengthWidth::One, length_field, field, min, max, allowed)
    }

    /// A big-endian length of `width`, checked against `min..=max`, then that many bytes.
    pub(crate) fn prefixed(
        &mut self,
        width: LengthWidth,
        length_field: Field,
        field: Field,
        min: usize,
        max: usize,
        allowed: &'static str,
    ) -> Result<&'a [u8], DecodeError> {
        let length = match width {
            LengthWidth::One => usize::from(self.u8(length_field)?),
            LengthWidth::Two => usize::from(self.u16(length_field)?),
        };
        if length < min || length > max {
            return Err(self.error(
                length_field,
                FieldProblem::Length {
                    found: length,
                    allowed,
                },
            ));
        }
        self.take(length, field)
    }

    /// A one-byte length and that many printable ASCII characters.
    fn text(
        &mut self,
        length_field: Field,
        field: Field,
        min: usize,
        max: usize,
        allowed: &'static str,
    ) -> Result<String, DecodeError> {
        let bytes = self.counted(length_field, field, min, max, allowed)?;
        check_text(bytes, min, max, allowed).map_err(|problem| self.error(field, problem))?;
        Ok(bytes.iter().map(|&byte| char::from(byte)).collect())
    }

    fn kcv(&mut self, length_field: Field, field: Field) -> Result<Vec<u8>, DecodeError> {
        let length = self.u8(length_field)?;
        check_kcv_length(usize::from(length))
            .map_err(|problem| self.error(length_field, problem))?;
        Ok(self.take(usize::from(length), field)?.to_vec())
    }

    fn parsed<T: std::str::FromStr<Err = IdentityError>>(
        &mut self,
        length_field: Field,
        field: Field,
        min: usize,
        max: usize,
        allowed: &'static str,
    ) -> Result<T, DecodeError> {
        let text = self.text(length_field, field, min, max, allowed)?;
        text.parse()
            .map_err(|error| self.error(field, FieldProblem::Identity(error)))
    }

    /// The rest of the payload as a mode's fields; tr31 (mode 1) has none, so for it the rest
    /// stays and [`finish`](Self::finish) reports it as trailing bytes.
    fn mode_data(&mut self, mode_id: u8) -> Vec<u8> {
        if mode_id == Mode::Tr31.id() {
            Vec::new()
        } else {
            std::mem::take(&mut self.bytes).to_vec()
        }
    }

    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        match self.bytes.len() {
            0 => Ok(()),
            count => Err(self.error(Field::Payload, FieldProblem::TrailingBytes { count })),
        }
    }
}

/// Writes fields to a payload, naming the message in every error.
pub(crate) struct Writer {
    message: MessageType,
    pub(crate) bytes: Vec<u8>,
}

impl Writer {
    pub(crate) fn new(message: MessageType) -> Self {
        Writer {
            message,
            bytes: Vec::new(),
        }
    }

    pub(crate) fn error(&self, field: Field, problem: FieldProblem) -> EncodeError {
        EncodeError::Field {
            message: self.message,
            field,
            problem,
        }
    }

    fn u8(&mut self, value: u8) {
        self.bytes.push(value);
    }

    pub(crate) fn u16(&mut self, value: u16) {
        self.bytes.extend_from_slice(&value.to_be_bytes());
    }

    fn u32(&mut self, value: u32) {
        self.bytes.extend_from_slice(&value.to_be_bytes());
    }

    fn key_index(&mut self, key_index: u32) -> Result<(), EncodeError> {
        check_key_index(key_index).map_err(|problem| self.error(Field::KeyIndex, problem))?;
        self.u32(key_index);
        Ok(())
    }

    /// A one-byte length (checked against `min..=max`) and the bytes.
    fn counted(
        &mut self,
        field: Field,
        bytes: &[u8],
        min: usize,
        max: usize,
        allowed: &'static str,
    ) -> Result<(), EncodeError> {
        self.prefixed(LengthWidth::One, field, bytes, min, max, allowed)
    }

    /// A big-endian length of `width` (checked against `min..=max`) and the bytes.
    pub(crate) fn prefixed(
        &mut self,
        width: LengthWidth,
        field: Field,
        bytes: &[u8],
        min: usize,
        max: usize,
        allowed: &'static str,
    ) -> Result<(), EncodeError> {
        let length = Some(bytes.len())
            .filter(|length| (min..=max).contains(length))
            .and_then(|length| match width {
                LengthWidth::One => u8::try_from(length).ok().map(|byte| vec![byte]),
                LengthWidth::Two => u16::try_from(length)
                    .ok()
                    .map(|value| value.to_be_bytes().to_vec()),
            })
            .ok_or_else(|| {
                self.error(
                    field,
                    FieldProblem::Length {
                        found: bytes.len(),
                        allowed,
                    },
                )
            })?;
        self.bytes.extend_from_slice(&length);
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }

    fn text(
        &mut self,
        field: Field,
        text: &str,
        min: usize,
        max: usize,
        allowed: &'static str,
    ) -> Result<(), EncodeError> {
        check_text(text.as_bytes(), min, max, allowed)
            .map_err(|problem| self.error(field, problem))?;
        self.counted(field, text.as_bytes(), min, max, allowed)
    }

    fn kcv(&mut self, field: Field, kcv: &[u8]) -> Result<(), EncodeError> {
        check_kcv_length(kcv.len()).map_err(|problem| self.error(field, problem))?;
        self.counted(field, kcv, 3, 5, KCV_LENGTHS)
    }

    /// A mode's trailing fields; tr31 (mode 1) has none.
    fn mode_data(&mut self, mode_id: u8, mode_data: &[u8]) -> Result<(), EncodeError> {
        if mode_id == Mode::Tr31.id() && !mode_data.is_empty() {
            return Err(self.error(
                Field::ModeData,
                FieldProblem::TrailingBytes {
                    count: mode_data.len(),
                },
            ));
        }
        self.bytes.extend_from_slice(mode_data);
        Ok(())
    }
}

const MODE_COUNT: &str = "1 to 32 mode ids";
const MODEL_LENGTH: &str = "1 to 32 characters";
const SERIAL_LENGTH: &str = "1 to 24 characters";
const SMN_LENGTH: &str = "9 to 32 characters";
const DEVICE_ID_LENGTH: &str = "1 to 32 characters";
const DETAIL_LENGTH: &str = "0 to 200 characters";
const KEY_BLOCK_LENGTH: &str = "16 to 4082 characters";

impl Message {
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::Hello(_) => MessageType::Hello,
            Message::KeyRequest(_) => MessageType::KeyRequest,
            Message::Confirm(_) => MessageType::Confirm,
            Message::Abort(_) => MessageType::Abort,
            Message::Welcome(_) => MessageType::Welcome,
            Message::KeyDelivery(_) => MessageType::KeyDelivery,
            Message::Confirmed(_) => MessageType::Confirmed,
            Message::Ack => MessageType::Ack,
            Message::Error(_) => MessageType::Error,
            Message::Nak => MessageType::Nak,
        }
    }

    /// The payload bytes of this message (the frame's TYPE byte is [`message_type`](Self::message_type)).
    pub fn encode_payload(&self) -> Result<Vec<u8>, EncodeError> {
        let mut writer = Writer::new(self.message_type());
        match self {
            Message::Hello(hello) => {
                writer.u8(hello.protocol_version);
                writer.counted(Field::ModeIds, &hello.mode_ids, 1, MAX_MODE_IDS, MODE_COUNT)?;
                writer.text(Field::Model, hello.model.as_str(), 1, 32, MODEL_LENGTH)?;
                writer.text(
                    Field::HardwareSerial,
                    hello.hardware_serial.as_str(),
                    1,
                    24,
                    SERIAL_LENGTH,
                )?;
                writer.u16(hello.capabilities);
            }
            Message::KeyRequest(request) => {
                writer.u8(request.mode_id);
                writer.mode_data(request.mode_id, &request.mode_data)?;
            }
            Message::Confirm(confirm) => {
                writer.key_index(confirm.key_index)?;
                writer.kcv(Field::Kcv, &confirm.kcv)?;
                writer.text(Field::Smn, confirm.smn.as_str(), 9, 32, SMN_LENGTH)?;
            }
            Message::Abort(abort) => {
                writer.u8(abort.reason.0);
                writer.text(
                    Field::Detail,
                    &abort.detail,
                    0,
                    MAX_DETAIL_LENGTH,
                    DETAIL_LENGTH,
                )?;
            }
            Message::Welcome(welcome) => {
                writer.u8(welcome.protocol_version);
                writer.u8(welcome.mode_id);
                writer.text(
                    Field::DeviceId,
                    &welcome.device_id,
                    1,
                    MAX_DEVICE_ID_LENGTH,
                    DEVICE_ID_LENGTH,
                )?;
                writer.kcv(Field::TtkKcv, &welcome.ttk_kcv)?;
                writer.mode_data(welcome.mode_id, &welcome.mode_data)?;
            }
            Message::KeyDelivery(delivery) => {
                writer.key_index(delivery.key_index)?;
                let block = delivery.key_block.as_bytes();
                let length = u16::try_from(block.len())
                    .ok()
                    .filter(|_| {
                        (MIN_KEY_BLOCK_LENGTH..=MAX_KEY_BLOCK_LENGTH).contains(&block.len())
                    })
                    .ok_or_else(|| {
                        writer.error(
                            Field::KeyBlock,
                            FieldProblem::Length {
                                found: block.len(),
                                allowed: KEY_BLOCK_LENGTH,
                            },
                        )
                    })?;
                check_text(
                    block,
                    MIN_KEY_BLOCK_LENGTH,
                    MAX_KEY_BLOCK_LENGTH,
                    KEY_BLOCK_LENGTH,
                )
                .map_err(|problem| writer.error(Field::KeyBlock, problem))?;
                writer.u16(length);
                writer.bytes.extend_from_slice(block);
                writer.kcv(Field::Kcv, &delivery.kcv)?;
                writer.bytes.extend_from_slice(&delivery.mode_data);
            }
            Message::Confirmed(confirmed) => {
                writer.key_index(confirmed.key_index)?;
                writer.text(Field::Smn, confirmed.smn.as_str(), 9, 32, SMN_LENGTH)?;
            }
            Message::Error(error) => {
                writer.u16(error.code.0);
                writer.text(
                    Field::Detail,
                    &error.detail,
                    0,
                    MAX_DETAIL_LENGTH,
                    DETAIL_LENGTH,
                )?;
            }
            Message::Ack | Message::Nak => {}
        }
        if writer.bytes.len() > MAX_PAYLOAD_LENGTH {
            return Err(writer.error(
                Field::Payload,
                FieldProblem::Length {
                    found: writer.bytes.len(),
                    allowed: "at most 4094 bytes",
                },
            ));
        }
        Ok(writer.bytes)
    }

    /// This message as a frame with sequence number `seq`.
    pub fn to_frame(&self, seq: u8) -> Result<Frame, EncodeError> {
        Ok(Frame::new(
            seq,
            self.message_type().id(),
            self.encode_payload()?,
        ))
    }

    /// This message as the bytes of a frame with sequence number `seq`.
    pub fn encode_frame(&self, seq: u8) -> Result<Vec<u8>, EncodeError> {
        Ok(self.to_frame(seq)?.encode()?)
    }

    /// Decodes the payload of a frame whose TYPE byte is `message_type`.
    pub fn decode(message_type: u8, payload: &[u8]) -> Result<Message, DecodeError> {
        let kind =
            MessageType::from_id(message_type).ok_or(DecodeError::UnknownType(message_type))?;
        if payload.len() > MAX_PAYLOAD_LENGTH {
            return Err(DecodeError::Field {
                message: kind,
                field: Field::Payload,
                problem: FieldProblem::Length {
                    found: payload.len(),
                    allowed: "at most 4094 bytes",
                },
            });
        }
        let mut reader = Reader {
            message: kind,
            bytes: payload,
        };
        let message = match kind {
            MessageType::Hello => {
                let protocol_version = reader.u8(Field::ProtocolVersion)?;
                if protocol_version != PROTOCOL_VERSION {
                    // A later version may lay out the rest differently: stop here.
                    return Err(DecodeError::UnsupportedVersion(protocol_version));
                }
                let mode_ids = reader
                    .counted(
                        Field::ModeCount,
                        Field::ModeIds,
                        1,
                        MAX_MODE_IDS,
                        MODE_COUNT,
                    )?
                    .to_vec();
                let model = reader.parsed(Field::ModelLength, Field::Model, 1, 32, MODEL_LENGTH)?;
                let hardware_serial = reader.parsed(
                    Field::SerialLength,
                    Field::HardwareSerial,
                    1,
                    24,
                    SERIAL_LENGTH,
                )?;
                let capabilities = reader.u16(Field::Capabilities)?;
                Message::Hello(Hello {
                    protocol_version,
                    mode_ids,
                    model,
                    hardware_serial,
                    capabilities,
                })
            }
            MessageType::KeyRequest => {
                let mode_id = reader.u8(Field::Mode)?;
                let mode_data = reader.mode_data(mode_id);
                Message::KeyRequest(KeyRequest { mode_id, mode_data })
            }
            MessageType::Confirm => {
                let key_index = reader.key_index()?;
                let kcv = reader.kcv(Field::KcvLength, Field::Kcv)?;
                let smn = reader.parsed(Field::SmnLength, Field::Smn, 9, 32, SMN_LENGTH)?;
                Message::Confirm(Confirm {
                    key_index,
                    kcv,
                    smn,
                })
            }
            MessageType::Abort => {
                let reason = AbortReason(reader.u8(Field::Reason)?);
                let detail = reader.text(
                    Field::DetailLength,
                    Field::Detail,
                    0,
                    MAX_DETAIL_LENGTH,
                    DETAIL_LENGTH,
                )?;
                Message::Abort(Abort { reason, detail })
            }
            MessageType::Welcome => {
                let protocol_version = reader.u8(Field::ProtocolVersion)?;
                let mode_id = reader.u8(Field::Mode)?;
                let device_id = reader.text(
                    Field::DeviceIdLength,
                    Field::DeviceId,
                    1,
                    MAX_DEVICE_ID_LENGTH,
                    DEVICE_ID_LENGTH,
                )?;
                let ttk_kcv = reader.kcv(Field::TtkKcvLength, Field::TtkKcv)?;
                let mode_data = reader.mode_data(mode_id);
                Message::Welcome(Welcome {
                    protocol_version,
                    mode_id,
                    device_id,
                    ttk_kcv,
                    mode_data,
                })
            }
            MessageType::KeyDelivery => {
                let key_index = reader.key_index()?;
                let length = usize::from(reader.u16(Field::KeyBlockLength)?);
                if !(MIN_KEY_BLOCK_LENGTH..=MAX_KEY_BLOCK_LENGTH).contains(&length) {
                    return Err(reader.error(
                        Field::KeyBlockLength,
                        FieldProblem::Length {
                            found: length,
                            allowed: KEY_BLOCK_LENGTH,
                        },
                    ));
                }
                let block = reader.take(length, Field::KeyBlock)?;
                check_text(
                    block,
                    MIN_KEY_BLOCK_LENGTH,
                    MAX_KEY_BLOCK_LENGTH,
                    KEY_BLOCK_LENGTH,
                )
                .map_err(|problem| reader.error(Field::KeyBlock, problem))?;
                let key_block = block.iter().map(|&byte| char::from(byte)).collect();
                let kcv = reader.kcv(Field::KcvLength, Field::Kcv)?;
                // The mode is the session's, not in the message: the terminal checks that tr31
                // deliveries carry none.
                let mode_data = std::mem::take(&mut reader.bytes).to_vec();
                Message::KeyDelivery(Delivery {
                    key_index,
                    key_block,
                    kcv,
                    mode_data,
                })
            }
            MessageType::Confirmed => {
                let key_index = reader.key_index()?;
                let smn = reader.parsed(Field::SmnLength, Field::Smn, 9, 32, SMN_LENGTH)?;
                Message::Confirmed(Confirmed { key_index, smn })
            }
            MessageType::Error => {
                let code = ErrorCode(reader.u16(Field::Code)?);
                let detail = reader.text(
                    Field::DetailLength,
                    Field::Detail,
                    0,
                    MAX_DETAIL_LENGTH,
                    DETAIL_LENGTH,
                )?;
                Message::Error(ErrorMessage { code, detail })
            }
            MessageType::Ack => Message::Ack,
            MessageType::Nak => Message::Nak,
        };
        reader.finish()?;
        Ok(message)
    }

    /// Decodes a frame's message.
    pub fn from_frame(frame: &Frame) -> Result<Message, DecodeError> {
        Message::decode(frame.message_type, &frame.payload)
    }
}

/// Makes free text fit a detail field: characters outside printable ASCII become `?`, and the
/// text is cut to 200 characters.
pub fn sanitize_detail(text: &str) -> String {
    text.chars()
        .map(|character| {
            if (' '..='~').contains(&character) {
                character
            } else {
                '?'
            }
        })
        .take(MAX_DETAIL_LENGTH)
        .collect()
}
