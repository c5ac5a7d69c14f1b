//! What the appliance session reports for logs and the display: [`SessionEvent`] and its one-line text, and why a session ended.

use std::fmt;

use crate::codes::{AbortReason, ErrorCode};
use crate::frame::FrameRejection;
use crate::identity::Smn;
use crate::mode::Mode;
use crate::modes::certificate::CertificateProblem;

use super::TerminalIdentity;

/// Why the appliance sent an ERROR, beyond its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCause {
    /// The code says it all (protocol errors, a KCV mismatch, no keys left, locked, ...).
    Code,
    /// NOT_READY: operator login is required and no operator is logged in.
    NoOperator,
    /// NOT_READY: the appliance requires its tamper input to be watched and it is not.
    TamperInputUnwatched,
    /// CERTIFICATE_REFUSED, and why.
    Certificate(CertificateProblem),
}

/// Why a terminal session ended without ABORT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// No valid frame for the idle timeout.
    Idle,
    /// A new HELLO arrived (the terminal restarted, or another terminal was plugged in).
    NewHello,
}

/// Something that happened on the port, for logs and the display. Never holds key material
/// (key blocks are not reported).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    HelloReceived {
        terminal: TerminalIdentity,
        mode_ids: Vec<u8>,
        capabilities: u16,
    },
    Welcomed {
        terminal: TerminalIdentity,
        mode: Mode,
    },
    KeyRequested {
        terminal: TerminalIdentity,
    },
    Delivered {
        terminal: TerminalIdentity,
        key_index: u32,
    },
    ConfirmRequested {
        terminal: TerminalIdentity,
        key_index: u32,
    },
    Confirmed {
        terminal: TerminalIdentity,
        key_index: u32,
        smn: Smn,
    },
    Aborted {
        terminal: TerminalIdentity,
        reason: AbortReason,
        detail: String,
        unconfirmed_key: Option<u32>,
    },
    SessionEnded {
        terminal: TerminalIdentity,
        reason: EndReason,
        unconfirmed_key: Option<u32>,
    },
    ErrorSent {
        seq: u8,
        code: ErrorCode,
        detail: String,
        /// Why, as a type: the adapters choose their words from it, not from `detail`.
        cause: FailureCause,
    },
    FrameRejected(FrameRejection),
    NakSent,
    /// The terminal NAKed; `resent` tells whether there was a response to send again.
    NakReceived {
        resent: bool,
    },
    /// An identical retransmission got the cached response again.
    ResponseRepeated {
        seq: u8,
    },
    /// An identical retransmission arrived while the adapter was still working on it.
    RetransmissionIgnored {
        seq: u8,
    },
    /// A frame of a type only the appliance sends (an echo on the line) was ignored.
    FrameIgnored {
        seq: u8,
        message_type: u8,
    },
    /// The adapter answered when nothing was outstanding; the answer was dropped.
    UnexpectedOutcome {
        what: &'static str,
    },
}

impl fmt::Display for SessionEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionEvent::HelloReceived {
                terminal,
                mode_ids,
                capabilities,
            } => write!(
                f,
                "HELLO from {terminal}, version {}, mode ids {mode_ids:?}, capabilities {capabilities:04X}",
                terminal.protocol_version
            ),
            SessionEvent::Welcomed { terminal, mode } => {
                write!(f, "welcomed {terminal} in mode {mode}")
            }
            SessionEvent::KeyRequested { terminal } => write!(f, "{terminal} requests a key"),
            SessionEvent::Delivered {
                terminal,
                key_index,
            } => write!(f, "key {key_index:08} delivered to {terminal}"),
            SessionEvent::ConfirmRequested {
                terminal,
                key_index,
            } => write!(f, "{terminal} confirms key {key_index:08}"),
            SessionEvent::Confirmed {
                terminal,
                key_index,
                smn,
            } => write!(f, "key {key_index:08} confirmed by {terminal}, SMN {smn}"),
            SessionEvent::Aborted {
                terminal,
                reason,
                detail,
                unconfirmed_key,
            } => {
                write!(f, "{terminal} aborted: {reason}")?;
                if !detail.is_empty() {
                    write!(f, " ({detail})")?;
                }
                if let Some(key_index) = unconfirmed_key {
                    write!(f, "; key {key_index:08} sent but not confirmed")?;
                }
                Ok(())
            }
            SessionEvent::SessionEnded {
                terminal,
                reason,
                unconfirmed_key,
            } => {
                let why = match reason {
                    EndReason::Idle => "idle",
                    EndReason::NewHello => "new HELLO",
                };
                write!(f, "session with {terminal} ended ({why})")?;
                if let Some(key_index) = unconfirmed_key {
                    write!(f, "; key {key_index:08} sent but not confirmed")?;
                }
                Ok(())
            }
            SessionEvent::ErrorSent {
                seq, code, detail, ..
            } => {
                write!(f, "ERROR {code} sent for SEQ {seq}: {detail}")
            }
            SessionEvent::FrameRejected(rejection) => write!(f, "frame rejected: {rejection}"),
            SessionEvent::NakSent => f.write_str("NAK sent"),
            SessionEvent::NakReceived { resent } => {
                if *resent {
                    f.write_str("NAK received, last response sent again")
                } else {
                    f.write_str("NAK received, no response to send again")
                }
            }
            SessionEvent::ResponseRepeated { seq } => {
                write!(f, "retransmission of SEQ {seq}: cached response sent again")
            }
            SessionEvent::RetransmissionIgnored { seq } => {
                write!(
                    f,
                    "retransmission of SEQ {seq} ignored: its answer is being prepared"
                )
            }
            SessionEvent::FrameIgnored { seq, message_type } => write!(
                f,
                "ignored a frame of type 0x{message_type:02X} (SEQ {seq}) that only the appliance sends"
            ),
            SessionEvent::UnexpectedOutcome { what } => {
                write!(
                    f,
                    "a {what} outcome arrived with nothing outstanding; dropped"
                )
            }
        }
    }
}
