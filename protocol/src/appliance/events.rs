//! What the appliance session reports for logs and the display: [`SessionEvent`] and its one-line text, and why a session ended.

use std::fmt;

use crate::codes::{AbortReason, ErrorCode};
use crate::frame::FrameRejection;
use crate::identity::Smn;
use crate::message::Capabilities;
use crate::mode::Mode;
use crate::modes::certificate::CertificateProblem;
use crate::terminal::hex;

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
    /// NOT_READY: the BDK a DUKPT slot is derived from is not loaded.
    BdkNotLoaded,
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

/// Profile mode: a DUKPT initial key sent in a session and not confirmed in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnconfirmedDukpt {
    pub slot: u8,
    pub label: String,
    /// The initial KSN (TDES DUKPT) or initial key ID (AES DUKPT).
    pub ksn: Vec<u8>,
}

impl fmt::Display for UnconfirmedDukpt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DUKPT key of slot {} ({}), KSN {}",
            self.slot,
            self.label,
            hex(&self.ksn)
        )
    }
}

/// Something that happened on the port, for logs and the display. Never holds key material
/// (key blocks are not reported).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    HelloReceived {
        terminal: TerminalIdentity,
        mode_ids: Vec<u8>,
        capabilities: Capabilities,
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
    /// Profile mode: a DUKPT_REQUEST for `slot`, whose BDK is `label`.
    DukptRequested {
        terminal: TerminalIdentity,
        slot: u8,
        label: String,
    },
    DukptDelivered {
        terminal: TerminalIdentity,
        slot: u8,
        label: String,
        ksn: Vec<u8>,
    },
    DukptConfirmRequested {
        terminal: TerminalIdentity,
        slot: u8,
        label: String,
        ksn: Vec<u8>,
    },
    DukptConfirmed {
        terminal: TerminalIdentity,
        slot: u8,
        label: String,
        ksn: Vec<u8>,
    },
    /// Profile mode: the last key of the profile is confirmed in this session (each of the
    /// others confirmed in it too, resumed confirmations included).
    ProfileCompleted {
        terminal: TerminalIdentity,
        profile: String,
    },
    Aborted {
        terminal: TerminalIdentity,
        reason: AbortReason,
        detail: String,
        /// The master key sent and not confirmed, if any.
        unconfirmed_key: Option<u32>,
        /// Profile mode: the DUKPT key sent and not confirmed, if any.
        unconfirmed_dukpt: Option<UnconfirmedDukpt>,
    },
    SessionEnded {
        terminal: TerminalIdentity,
        reason: EndReason,
        unconfirmed_key: Option<u32>,
        unconfirmed_dukpt: Option<UnconfirmedDukpt>,
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
                "HELLO from {terminal}, version {}, mode ids {}, capabilities {capabilities}",
                terminal.protocol_version,
                mode_ids
                    .iter()
                    .map(u8::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
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
            SessionEvent::DukptRequested { .. }
            | SessionEvent::DukptDelivered { .. }
            | SessionEvent::DukptConfirmRequested { .. }
            | SessionEvent::DukptConfirmed { .. }
            | SessionEvent::ProfileCompleted { .. } => self.fmt_profile_event(f),
            SessionEvent::Aborted {
                terminal,
                reason,
                detail,
                unconfirmed_key,
                unconfirmed_dukpt,
            } => {
                write!(f, "{terminal} aborted: {reason}")?;
                if !detail.is_empty() {
                    write!(f, " ({detail})")?;
                }
                write_unconfirmed(f, *unconfirmed_key, unconfirmed_dukpt.as_ref())
            }
            SessionEvent::SessionEnded {
                terminal,
                reason,
                unconfirmed_key,
                unconfirmed_dukpt,
            } => {
                let why = match reason {
                    EndReason::Idle => "idle",
                    EndReason::NewHello => "new HELLO",
                };
                write!(f, "session with {terminal} ended ({why})")?;
                write_unconfirmed(f, *unconfirmed_key, unconfirmed_dukpt.as_ref())
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

impl SessionEvent {
    /// The text of profile mode's events (the others are written by `fmt`).
    fn fmt_profile_event(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionEvent::DukptRequested {
                terminal,
                slot,
                label,
            } => write!(
                f,
                "{terminal} requests the DUKPT key of slot {slot} ({label})"
            ),
            SessionEvent::DukptDelivered {
                terminal,
                slot,
                label,
                ksn,
            } => write!(
                f,
                "DUKPT key of slot {slot} ({label}), KSN {}, delivered to {terminal}",
                hex(ksn)
            ),
            SessionEvent::DukptConfirmRequested {
                terminal,
                slot,
                label,
                ksn,
            } => write!(
                f,
                "{terminal} confirms the DUKPT key of slot {slot} ({label}), KSN {}",
                hex(ksn)
            ),
            SessionEvent::DukptConfirmed {
                terminal,
                slot,
                label,
                ksn,
            } => write!(
                f,
                "DUKPT key of slot {slot} ({label}), KSN {}, confirmed by {terminal}",
                hex(ksn)
            ),
            SessionEvent::ProfileCompleted { terminal, profile } => {
                write!(f, "profile {profile} injected into {terminal}")
            }
            _ => Ok(()),
        }
    }
}

/// The end of an Aborted or SessionEnded text: the key sent and not confirmed, if any.
fn write_unconfirmed(
    f: &mut fmt::Formatter<'_>,
    key_index: Option<u32>,
    dukpt: Option<&UnconfirmedDukpt>,
) -> fmt::Result {
    if let Some(key_index) = key_index {
        write!(f, "; key {key_index:08} sent but not confirmed")?;
    }
    if let Some(dukpt) = dukpt {
        write!(f, "; {dukpt}, sent but not confirmed")?;
    }
    Ok(())
}
