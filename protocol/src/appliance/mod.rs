//! The appliance's side of one serial line, sans-IO: frames in, responses and adapter requests out.
//!
//! One [`ApplianceSession`] serves one port for as long as the daemon runs; a terminal session
//! on it starts with HELLO and ends with the next HELLO, an ABORT, or the idle timeout. The
//! session never touches the vault: it asks the adapter to reserve and to confirm
//! ([`ApplianceAction::Reserve`], [`ApplianceAction::Confirm`], and in profile mode
//! [`ApplianceAction::ReserveDukpt`], [`ApplianceAction::ConfirmDukpt`]) and sends KEY_DELIVERY
//! or DUKPT_DELIVERY only after the adapter has answered, so a reservation is durable before
//! any key byte leaves.
//!
//! Here: the public types and the session's state. Beside it: `events` (what is reported),
//! `requests` (the terminal's frames), `outcomes` (the adapter's answers), `dukpt_requests` and
//! `dukpt_outcomes` (profile mode's DUKPT keys) and `exchange` (the response cache). What a
//! mode changes is asked of its rules in `modes/`.

use std::fmt;
use std::time::Duration;

use crate::codes::ErrorCode;
use crate::frame::{DecodeEvent, FrameDecoder, MAX_BODY_LENGTH};
use crate::identity::{HardwareSerial, Smn, TerminalModel};
use crate::message::Message;
use crate::mode::Mode;
use crate::modes::certificate::CertificateRefusal;
use crate::modes::profile::{DukptSlot, Profile};
use crate::modes::{ModeRules, PortState};
use crate::timing::DEFAULT_INTER_BYTE_TIMEOUT;

mod dukpt_outcomes;
mod dukpt_requests;
mod events;
mod exchange;
mod outcomes;
mod requests;

pub use crate::modes::ModeRequest;
pub use events::{EndReason, FailureCause, SessionEvent, UnconfirmedDukpt};

use exchange::Exchange;

/// What the appliance offers on a port. Changes through [`ApplianceSession::reconfigure`] apply
/// from the next HELLO on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplianceConfig {
    /// The appliance's device id, sent in WELCOME (1 to 32 printable ASCII characters).
    pub device_id: String,
    /// The transport key's check value (3 bytes TDES, 5 bytes AES); empty when no transport key
    /// is loaded, which makes every HELLO get NOT_READY.
    pub ttk_kcv: Vec<u8>,
    /// The modes this appliance serves; only implemented modes are ever chosen.
    pub modes: Vec<Mode>,
    /// A terminal session with no valid frame for this long is ended.
    pub idle_timeout: Duration,
    /// The appliance's KDH credential token (TR-34 CT_KDH, DER: its KDH certificate and the KDH
    /// CA's CRL), sent in WELCOME in certificate mode; empty when the appliance has none, which
    /// keeps certificate mode from being chosen.
    pub kdh_credential_token: Vec<u8>,
    /// Certificate-mode key requests accepted per port in any 60 seconds (each costs a
    /// signature with the KDH key); more get RATE_LIMITED. 0 means no limit.
    pub certificate_requests_per_minute: u32,
    /// The device profiles this port offers, in order: a terminal gets the first whose models
    /// include its HELLO's model (or that names no models), and profile mode (mode 3) is
    /// offered only when one does.
    pub profiles: Vec<Profile>,
}

/// Who the terminal says it is, from its HELLO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminalIdentity {
    pub hardware_serial: HardwareSerial,
    pub model: TerminalModel,
    pub protocol_version: u8,
}

impl fmt::Display for TerminalIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.hardware_serial, self.model)
    }
}

/// Why the adapter could not reserve a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DispenseRefusal {
    /// No unused key is left (answered with NO_KEYS_AVAILABLE).
    NoKeysAvailable,
    /// The vault is locked or has no transport key (NOT_READY).
    NotReady,
    /// Operator login is required and no operator is logged in (NOT_READY, saying so).
    NoOperator,
    /// Profile mode: the BDK a DUKPT slot is derived from is not loaded (NOT_READY, saying
    /// so).
    BdkNotLoaded,
    /// The appliance requires its tamper input to be watched and it is not (NOT_READY,
    /// saying so).
    TamperInputUnwatched,
    /// Certificate mode: the KRD credential token, its device certificate or the random number
    /// token was refused (CERTIFICATE_REFUSED); the text says why and goes to the terminal.
    CertificateRefused(CertificateRefusal),
    /// The appliance requires an expected-device list and no open list holds the terminal's
    /// hardware serial (DEVICE_NOT_EXPECTED).
    DeviceNotExpected,
    /// The terminal already holds a confirmed key of this slot and no re-injection was
    /// granted (ALREADY_INJECTED); the text names the key it holds.
    AlreadyInjected(String),
    /// The terminal's hardware serial is being injected on another port, named here
    /// (SERIAL_BUSY).
    SerialBusy { port: String },
    /// Anything else (INTERNAL_ERROR); the text goes to the terminal as the detail, so it must
    /// never hold key material.
    Internal(String),
}

/// Why the adapter did not confirm a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfirmRefusal {
    /// The terminal's KCV is not the key's (KCV_MISMATCH, or KCV_MISMATCH_QUARANTINED when the
    /// vault quarantined the key).
    KcvMismatch { quarantined: bool },
    /// The vault has no record of this key (or, in profile mode, this KSN) sent to this
    /// terminal (KEY_NOT_DELIVERED).
    NotDelivered,
    /// Anything else (INTERNAL_ERROR); never key material in the text.
    Internal(String),
}

/// In words, for logs: what the terminal is told, without Rust names.
impl fmt::Display for DispenseRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DispenseRefusal::NoKeysAvailable => f.write_str("no unused key is left"),
            DispenseRefusal::NotReady => {
                f.write_str("the appliance is locked or has no transport key")
            }
            DispenseRefusal::NoOperator => f.write_str("no operator is logged in"),
            DispenseRefusal::BdkNotLoaded => f.write_str("the slot's BDK is not loaded"),
            DispenseRefusal::TamperInputUnwatched => f.write_str("the tamper input is not watched"),
            DispenseRefusal::CertificateRefused(refusal) => {
                write!(f, "certificate refused: {}", refusal.detail)
            }
            DispenseRefusal::DeviceNotExpected => {
                f.write_str("the hardware serial is not on an open expected-device list")
            }
            DispenseRefusal::AlreadyInjected(held) => {
                write!(f, "already injected, no re-injection granted: {held}")
            }
            DispenseRefusal::SerialBusy { port } => {
                write!(f, "the serial is being injected on port {port}")
            }
            DispenseRefusal::Internal(detail) => write!(f, "internal error: {detail}"),
        }
    }
}

/// In words, for logs.
impl fmt::Display for ConfirmRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfirmRefusal::KcvMismatch { quarantined: false } => {
                f.write_str("the check value is not the key's")
            }
            ConfirmRefusal::KcvMismatch { quarantined: true } => {
                f.write_str("the check value is not the key's; the key is quarantined")
            }
            ConfirmRefusal::NotDelivered => {
                f.write_str("the vault has no record of giving this key to this terminal")
            }
            ConfirmRefusal::Internal(detail) => write!(f, "internal error: {detail}"),
        }
    }
}

/// What the adapter must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplianceAction {
    /// Write these bytes to the port.
    Send(Vec<u8>),
    /// Durably reserve this terminal's key (or find the one already reserved for it), then call
    /// [`ApplianceSession::handle_reservation`].
    Reserve {
        terminal: TerminalIdentity,
        request: ModeRequest,
    },
    /// Follows the `Send` carrying KEY_DELIVERY (first sending or repeat): record the key as sent
    /// once the bytes are written.
    MarkSent { key_index: u32 },
    /// Check the KCV against the vault and commit the SMN and the key as used, then call
    /// [`ApplianceSession::handle_confirmation`].
    Confirm {
        terminal: TerminalIdentity,
        key_index: u32,
        kcv: Vec<u8>,
        smn: Smn,
    },
    /// For the log and the display.
    Report(SessionEvent),
    /// Profile mode: durably reserve the next device ID of the slot's BDK for this terminal
    /// (or find the one already reserved for it), derive and wrap the initial key, then call
    /// [`ApplianceSession::handle_dukpt_reservation`].
    ReserveDukpt {
        terminal: TerminalIdentity,
        slot: u8,
        dukpt: DukptSlot,
    },
    /// Follows the `Send` carrying DUKPT_DELIVERY (first sending or repeat): record the
    /// initial key as sent once the bytes are written.
    MarkDukptSent { slot: u8, ksn: Vec<u8> },
    /// Profile mode: check the KCV of the initial key with this KSN, given to this terminal,
    /// and record the injection, then call [`ApplianceSession::handle_dukpt_confirmation`].
    ConfirmDukpt {
        terminal: TerminalIdentity,
        slot: u8,
        dukpt: DukptSlot,
        ksn: Vec<u8>,
        kcv: Vec<u8>,
    },
}

struct Session {
    terminal: TerminalIdentity,
    /// The mode WELCOME chose.
    mode: &'static dyn ModeRules,
    /// Profile mode: the profile WELCOME offered.
    profile: Option<Profile>,
    stage: Stage,
}

/// Where the session is with its current key: the master key, or in profile mode the slot
/// whose turn it is.
#[derive(Clone)]
enum Stage {
    Welcomed,
    Reserving,
    Delivered {
        key_index: u32,
    },
    /// `resumed`: the key was delivered in an earlier session (see `handle_confirm`).
    Confirming {
        key_index: u32,
        resumed: bool,
    },
    /// Every key of the session is confirmed: the master key, or every key of the profile.
    Confirmed,
    /// Profile mode: the master key (if the profile has one) is confirmed and `slot` is the
    /// first slot not confirmed in this session.
    Dukpt {
        slot: u8,
        step: DukptStep,
    },
}

/// Where a slot's DUKPT key is in this session.
#[derive(Clone)]
enum DukptStep {
    /// Its turn has come; nothing of it has happened in this session yet.
    Due,
    Reserving,
    Delivered {
        ksn: Vec<u8>,
    },
    /// `resumed`: the key was delivered in an earlier session.
    Confirming {
        ksn: Vec<u8>,
        resumed: bool,
    },
}

impl Session {
    /// The master key sent in this session and not (yet) confirmed.
    fn unconfirmed_key(&self) -> Option<u32> {
        match self.stage {
            Stage::Delivered { key_index } | Stage::Confirming { key_index, .. } => Some(key_index),
            _ => None,
        }
    }

    /// The DUKPT key sent in this session (or being confirmed) and not confirmed.
    fn unconfirmed_dukpt(&self) -> Option<UnconfirmedDukpt> {
        let Stage::Dukpt {
            slot,
            step: DukptStep::Delivered { ksn } | DukptStep::Confirming { ksn, .. },
        } = &self.stage
        else {
            return None;
        };
        let label = self.profile.as_ref()?.slot(*slot)?.label.clone();
        Some(UnconfirmedDukpt {
            slot: *slot,
            label,
            ksn: ksn.clone(),
        })
    }

    /// The stage a profile session starts in, or moves to once slot `slot - 1` (or the
    /// master key, for `slot` 0) is confirmed: that slot's turn, or every key confirmed.
    fn stage_at_slot(profile: &Profile, slot: u8) -> Stage {
        if usize::from(slot) < profile.slots.len() {
            Stage::Dukpt {
                slot,
                step: DukptStep::Due,
            }
        } else {
            Stage::Confirmed
        }
    }
}

/// The appliance's protocol state for one serial port.
pub struct ApplianceSession {
    config: ApplianceConfig,
    decoder: FrameDecoder,
    /// A NAK may be sent (at most one between two valid frames received).
    nak_armed: bool,
    last: Option<Exchange>,
    session: Option<Session>,
    last_activity: Duration,
    /// What the modes keep for this port (certificate mode's rate limit).
    mode_state: PortState,
}

type Actions = Vec<ApplianceAction>;

impl ApplianceSession {
    pub fn new(config: ApplianceConfig) -> Self {
        ApplianceSession {
            config,
            decoder: FrameDecoder::new(DEFAULT_INTER_BYTE_TIMEOUT),
            nak_armed: true,
            last: None,
            session: None,
            last_activity: Duration::ZERO,
            mode_state: PortState::default(),
        }
    }

    pub fn config(&self) -> &ApplianceConfig {
        &self.config
    }

    /// Replaces the configuration (say, once a transport key has been loaded); device id,
    /// transport key check value and modes apply from the next HELLO, the idle timeout at once.
    /// With no session open, the remembered last request is forgotten too, so a terminal that
    /// restarts with the same HELLO (same SEQ) is answered afresh instead of from the cache.
    pub fn reconfigure(&mut self, config: ApplianceConfig) {
        self.config = config;
        if self.session.is_none() && !self.is_waiting_for_adapter() {
            self.last = None;
        }
    }

    /// Whether a reservation or confirmation is outstanding at the adapter.
    pub fn is_waiting_for_adapter(&self) -> bool {
        matches!(
            self.session.as_ref().map(|session| &session.stage),
            Some(
                Stage::Reserving
                    | Stage::Confirming { .. }
                    | Stage::Dukpt {
                        step: DukptStep::Reserving | DukptStep::Confirming { .. },
                        ..
                    }
            )
        )
    }

    /// The terminal of the current session, if one is open.
    pub fn terminal(&self) -> Option<&TerminalIdentity> {
        self.session.as_ref().map(|session| &session.terminal)
    }

    /// When [`handle_tick`](Self::handle_tick) next has something to do, if ever.
    pub fn next_deadline(&self) -> Option<Duration> {
        let idle = (self.last.is_some() && !self.is_waiting_for_adapter())
            .then(|| self.last_activity.saturating_add(self.config.idle_timeout));
        match (idle, self.decoder.deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Bytes read from the port at `now`.
    pub fn handle_bytes(&mut self, bytes: &[u8], now: Duration) -> Vec<ApplianceAction> {
        let mut actions = Vec::new();
        self.expire_idle(now, &mut actions);
        for event in self.decoder.push(bytes, now) {
            self.handle_event(event, now, &mut actions);
        }
        actions
    }

    /// Applies the inter-byte and idle timeouts at `now`.
    pub fn handle_tick(&mut self, now: Duration) -> Vec<ApplianceAction> {
        let mut actions = Vec::new();
        for event in self.decoder.tick(now) {
            self.handle_event(event, now, &mut actions);
        }
        self.expire_idle(now, &mut actions);
        actions
    }

    fn set_stage(&mut self, stage: Stage) {
        if let Some(session) = self.session.as_mut() {
            session.stage = stage;
        }
    }

    fn expire_idle(&mut self, now: Duration, actions: &mut Actions) {
        if self.last.is_none() || self.is_waiting_for_adapter() {
            return;
        }
        if now < self.last_activity.saturating_add(self.config.idle_timeout) {
            return;
        }
        if let Some(session) = self.session.take() {
            actions.push(report(SessionEvent::SessionEnded {
                unconfirmed_key: session.unconfirmed_key(),
                unconfirmed_dukpt: session.unconfirmed_dukpt(),
                terminal: session.terminal,
                reason: EndReason::Idle,
            }));
        }
        self.last = None;
        self.nak_armed = true;
    }

    fn handle_event(&mut self, event: DecodeEvent, now: Duration, actions: &mut Actions) {
        match event {
            DecodeEvent::Frame(frame) => {
                self.nak_armed = true;
                self.handle_frame(frame, now, actions);
            }
            DecodeEvent::Rejected(rejection) => {
                actions.push(report(SessionEvent::FrameRejected(rejection)));
                if rejection.is_bad_crc() && self.nak_armed {
                    self.nak_armed = false;
                    self.send_unrecorded(0, &Message::Nak, actions);
                    actions.push(report(SessionEvent::NakSent));
                }
            }
            DecodeEvent::FrameTooLarge { seq, length, .. } => self.reply_unrecorded(
                seq,
                ErrorCode::FRAME_TOO_LARGE,
                &format!(
                    "the frame body is {length} bytes; at most {MAX_BODY_LENGTH} are accepted"
                ),
                actions,
            ),
        }
    }
}

fn report(event: SessionEvent) -> ApplianceAction {
    ApplianceAction::Report(event)
}

#[cfg(test)]
mod refusal_words {
    use super::*;
    use crate::certificate::CertificateProblem;

    #[test]
    fn refusals_read_as_words_not_rust_names() {
        assert_eq!(
            DispenseRefusal::NoKeysAvailable.to_string(),
            "no unused key is left"
        );
        let refused = DispenseRefusal::CertificateRefused(CertificateRefusal {
            problem: CertificateProblem::BadSignature,
            detail: "not issued by the manufacturer CA".to_owned(),
        });
        assert_eq!(
            refused.to_string(),
            "certificate refused: not issued by the manufacturer CA"
        );
        assert_eq!(
            ConfirmRefusal::KcvMismatch { quarantined: true }.to_string(),
            "the check value is not the key's; the key is quarantined"
        );
    }
}
