//! A message's fields by name, what can be wrong with one, and the decode and encode errors that name them.

use std::fmt;

use crate::frame::FrameError;
use crate::identity::IdentityError;

use super::{MessageType, PROTOCOL_VERSION};

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
    KdhCredentialTokenLength,
    KdhCredentialToken,
    Pass,
    RandomNumberTokenLength,
    RandomNumberToken,
    KrdCredentialTokenLength,
    KrdCredentialToken,
    KeyTokenLength,
    KeyToken,
    Slot,
    KsnLength,
    Ksn,
    ProfileNameLength,
    ProfileName,
    MasterKey,
    SlotCount,
    DukptKind,
    KeyType,
    LabelLength,
    Label,
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
            Field::KdhCredentialTokenLength => "KDH credential token length",
            Field::KdhCredentialToken => "KDH credential token",
            Field::Pass => "pass",
            Field::RandomNumberTokenLength => "random number token length",
            Field::RandomNumberToken => "random number token",
            Field::KrdCredentialTokenLength => "KRD credential token length",
            Field::KrdCredentialToken => "KRD credential token",
            Field::KeyTokenLength => "key token length",
            Field::KeyToken => "key token",
            Field::Slot => "slot",
            Field::KsnLength => "KSN length",
            Field::Ksn => "KSN",
            Field::ProfileNameLength => "profile name length",
            Field::ProfileName => "profile name",
            Field::MasterKey => "master key",
            Field::SlotCount => "slot count",
            Field::DukptKind => "DUKPT kind",
            Field::KeyType => "key type",
            Field::LabelLength => "label length",
            Field::Label => "label",
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
    /// A one-byte code or flag with a value the protocol does not define here.
    #[error("{value} is not allowed ({allowed})")]
    Value { value: u64, allowed: &'static str },
    /// A slot number the session's profile does not have.
    #[error("slot {slot} is not one of the profile's {count} slot(s)")]
    NoSuchSlot { slot: u8, count: usize },
    /// A value that must be unique in its list (a profile's slot labels) came again.
    #[error("{value:?} appears twice")]
    Repeated { value: String },
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
    /// A field of a mode's data decoded on its own (certificate mode's), with where it starts:
    /// `offset` counts bytes from the start of the mode data, as docs/PROTOCOL.md's mode-data
    /// tables do.
    #[error("{message} {field} at mode-data offset {offset}: {problem}")]
    ModeField {
        message: MessageType,
        field: Field,
        offset: usize,
        problem: FieldProblem,
    },
}

impl DecodeError {
    /// The field at fault, if the error is about one.
    pub fn field(&self) -> Option<Field> {
        match self {
            DecodeError::Field { field, .. } | DecodeError::ModeField { field, .. } => Some(*field),
            DecodeError::UnsupportedVersion(_) => Some(Field::ProtocolVersion),
            DecodeError::UnknownType(_) => None,
        }
    }

    /// Where the field at fault starts in the mode data, for errors about a mode's field.
    pub fn mode_data_offset(&self) -> Option<usize> {
        match self {
            DecodeError::ModeField { offset, .. } => Some(*offset),
            _ => None,
        }
    }

    /// What is wrong with the field at fault, if the error is about one.
    pub fn problem(&self) -> Option<&FieldProblem> {
        match self {
            DecodeError::Field { problem, .. } | DecodeError::ModeField { problem, .. } => {
                Some(problem)
            }
            DecodeError::UnsupportedVersion(_) | DecodeError::UnknownType(_) => None,
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
