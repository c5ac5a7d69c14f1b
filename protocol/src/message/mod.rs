//! The messages carried in frame bodies: types, typed fields, a strict encoder and a decoder whose errors name the field.
//!
//! Encoding is canonical: every message has exactly one byte form, and the decoder accepts only
//! that form (no trailing bytes, no out-of-range lengths), so a decoded message re-encodes to the
//! bytes it came from.

use std::fmt;

use crate::codes::{AbortReason, ErrorCode};
use crate::frame::{Frame, MAX_PAYLOAD_LENGTH};
use crate::identity::{HardwareSerial, Smn, TerminalModel};
use crate::mode::Mode;

mod capabilities;
mod codec;
mod dukpt;
mod field;
mod payload;

pub use capabilities::{Capabilities, CapabilitiesParseError};
pub(crate) use codec::{LengthWidth, Reader, Writer};
pub use dukpt::{
    AES_INITIAL_KEY_ID_LENGTH, DukptConfirm, DukptConfirmed, DukptDelivery, DukptRequest,
    MAX_DUKPT_KEY_BLOCK_LENGTH, TDES_KSN_LENGTH,
};
pub use field::{DecodeError, EncodeError, Field, FieldProblem};

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

/// Message type ids (the TYPE byte). Requests are 0x11-0x14 and 0x16-0x17 (profile mode's
/// DUKPT requests), their responses the same with bit 7 set (0x91-0x94, 0x96-0x97), ERROR 0x9F,
/// NAK 0x15 (ASCII NAK); none is 0x02, so a TYPE byte is never mistaken for STX when a receiver
/// rescans a damaged frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessageType {
    Hello,
    KeyRequest,
    Confirm,
    Abort,
    DukptRequest,
    DukptConfirm,
    Welcome,
    KeyDelivery,
    Confirmed,
    Ack,
    DukptDelivery,
    DukptConfirmed,
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
    pub const ALL: [MessageType; 14] = [
        MessageType::Hello,
        MessageType::KeyRequest,
        MessageType::Confirm,
        MessageType::Abort,
        MessageType::DukptRequest,
        MessageType::DukptConfirm,
        MessageType::Welcome,
        MessageType::KeyDelivery,
        MessageType::Confirmed,
        MessageType::Ack,
        MessageType::DukptDelivery,
        MessageType::DukptConfirmed,
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
            MessageType::DukptRequest => 0x16,
            MessageType::DukptConfirm => 0x17,
            MessageType::Welcome => 0x91,
            MessageType::KeyDelivery => 0x92,
            MessageType::Confirmed => 0x93,
            MessageType::Ack => 0x94,
            MessageType::DukptDelivery => 0x96,
            MessageType::DukptConfirmed => 0x97,
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
            MessageType::DukptRequest => "DUKPT_REQUEST",
            MessageType::DukptConfirm => "DUKPT_CONFIRM",
            MessageType::Welcome => "WELCOME",
            MessageType::KeyDelivery => "KEY_DELIVERY",
            MessageType::Confirmed => "CONFIRMED",
            MessageType::Ack => "ACK",
            MessageType::DukptDelivery => "DUKPT_DELIVERY",
            MessageType::DukptConfirmed => "DUKPT_CONFIRMED",
            MessageType::Error => "ERROR",
            MessageType::Nak => "NAK",
        }
    }

    pub fn direction(self) -> Direction {
        match self {
            MessageType::Hello
            | MessageType::KeyRequest
            | MessageType::Confirm
            | MessageType::Abort
            | MessageType::DukptRequest
            | MessageType::DukptConfirm => Direction::ToAppliance,
            MessageType::Welcome
            | MessageType::KeyDelivery
            | MessageType::Confirmed
            | MessageType::Ack
            | MessageType::DukptDelivery
            | MessageType::DukptConfirmed
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
    /// The capability flags, parsed once; bits not defined here are sent as 0 and ignored.
    pub capabilities: Capabilities,
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
    /// Fields a mode defines (certificate mode's pass and tokens); always empty
    /// for tr31 (mode 1) and profile (mode 3).
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
    /// [`CertificateWelcome`](crate::certificate::CertificateWelcome), for profile mode the
    /// [`Profile`](crate::profile::Profile)); always empty for tr31.
    pub mode_data: Vec<u8>,
}

/// KEY_DELIVERY (the adapter's answer to a reservation, and the message carrying it): the key
/// index, the master key as a TR-31 key block under the transport key (certificate mode: the
/// TR-34 key block header, the key being in the mode data's key token), and the master key's
/// KCV.
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
    DukptRequest(DukptRequest),
    DukptDelivery(DukptDelivery),
    DukptConfirm(DukptConfirm),
    DukptConfirmed(DukptConfirmed),
}

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
            Message::DukptRequest(_) => MessageType::DukptRequest,
            Message::DukptDelivery(_) => MessageType::DukptDelivery,
            Message::DukptConfirm(_) => MessageType::DukptConfirm,
            Message::DukptConfirmed(_) => MessageType::DukptConfirmed,
        }
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
