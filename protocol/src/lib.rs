//! The serial protocol between the keymother appliance and POS terminals (docs/PROTOCOL.md), sans-IO: bytes and events in, bytes and actions out.
//!
//! No I/O, no clocks, no crypto: time comes in as `now` (a [`Duration`](std::time::Duration)
//! since any fixed epoch), and key blocks are made and opened by the callers. Layers:
//! [`frame`] (STX, length, CRC-32, resynchronisation), [`message`] (typed messages with a
//! canonical byte form), `modes` (each mode's rules, for both sessions; [`certificate`] is
//! certificate mode's, with its TR-34 tokens as opaque bytes; [`profile`] is profile mode's device
//! profiles and their DUKPT slots), [`identity`] (hardware serial, model, SMN), and the two
//! sessions:
//! [`ApplianceSession`] (one per serial port, used by the daemon) and [`TerminalSession`] (the
//! reference terminal).

pub mod appliance;
pub mod codes;
pub mod frame;
pub mod identity;
pub mod message;
pub mod mode;
mod modes;
pub mod terminal;
pub mod timing;

pub use modes::{certificate, profile};

pub use appliance::{
    ApplianceAction, ApplianceConfig, ApplianceSession, ConfirmRefusal, DispenseRefusal, EndReason,
    FailureCause, ModeRequest, SessionEvent, TerminalIdentity, UnconfirmedDukpt,
};
pub use certificate::{
    CertificateDelivery, CertificateFreshness, CertificatePass, CertificateProblem,
    CertificateRefusal, CertificateRequest, CertificateWelcome, MAX_RANDOM_NUMBER_TOKEN_LENGTH,
    MAX_TOKEN_LENGTH,
};
pub use codes::{AbortReason, ErrorCode};
pub use frame::{
    DecodeEvent, Frame, FrameDecoder, FrameError, FrameRejection, MAX_BODY_LENGTH,
    MAX_FRAME_LENGTH, STX, crc32,
};
pub use identity::{HardwareSerial, IdentityError, KeyIndex, MAX_KEY_INDEX, Smn, TerminalModel};
pub use message::{
    Abort, Capabilities, CapabilitiesParseError, Confirm, Confirmed, DecodeError, Delivery,
    DukptConfirm, DukptConfirmed, DukptDelivery, DukptRequest, EncodeError, ErrorMessage, Field,
    FieldProblem, Hello, KeyRequest, Message, MessageType, PROTOCOL_VERSION, Welcome,
};
pub use mode::{Mode, UnknownMode};
pub use profile::{DukptKind, DukptSlot, KeyAlgorithm, Profile};
pub use terminal::{
    HeldDukptKey, InstallRefusal, RetransmitCause, TerminalAction, TerminalConfig, TerminalEvent,
    TerminalOutcome, TerminalSession,
};
pub use timing::{
    DEFAULT_IDLE_TIMEOUT, DEFAULT_INTER_BYTE_TIMEOUT, DEFAULT_MAX_RETRIES, DEFAULT_RESPONSE_TIMEOUT,
};
