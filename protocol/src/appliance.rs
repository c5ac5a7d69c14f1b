//! The appliance's side of one serial line, sans-IO: frames in, responses and adapter requests out.
//!
//! One [`ApplianceSession`] serves one port for as long as the daemon runs; a terminal session
//! on it starts with HELLO and ends with the next HELLO, an ABORT, or the idle timeout. The
//! session never touches the vault: it asks the adapter to reserve and to confirm
//! ([`ApplianceAction::Reserve`], [`ApplianceAction::Confirm`]) and sends KEY_DELIVERY only
//! after the adapter has answered, so a reservation is durable before any key byte leaves.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use crate::certificate::{CertificateRequest, CertificateWelcome};
use crate::codes::{AbortReason, ErrorCode};
use crate::frame::{DecodeEvent, Frame, FrameDecoder, FrameRejection, MAX_BODY_LENGTH};
use crate::identity::{HardwareSerial, Smn, TerminalModel};
use crate::message::{
    Confirm, Confirmed, DecodeError, Delivery, Direction, ErrorMessage, Hello, KeyRequest, Message,
    MessageType, PROTOCOL_VERSION, Welcome, sanitize_detail,
};
use crate::mode::Mode;
use crate::timing::DEFAULT_INTER_BYTE_TIMEOUT;

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
    /// The appliance's KDH certificate (DER), sent in WELCOME in certificate mode; empty when
    /// the appliance has none, which keeps certificate mode from being chosen.
    pub kdh_certificate: Vec<u8>,
    /// Certificate-mode key requests accepted per port in any 60 seconds (each costs a
    /// signature with the KDH key); more get RATE_LIMITED. 0 means no limit.
    pub certificate_requests_per_minute: u32,
}

/// The window [`ApplianceConfig::certificate_requests_per_minute`] counts over.
const RATE_WINDOW: Duration = Duration::from_secs(60);

/// What the terminal's KEY_REQUEST asked for, by mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModeRequest {
    /// The master key as a TR-31 key block under the transport key.
    Tr31,
    /// Certificate mode: the adapter verifies the device certificate before reserving, and
    /// answers with the key under an ephemeral key for this nonce.
    Certificate(CertificateRequest),
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
    /// The appliance requires its tamper input to be watched and it is not (NOT_READY,
    /// saying so).
    TamperInputUnwatched,
    /// Certificate mode: the device certificate was refused (CERTIFICATE_REFUSED); the text
    /// says why and goes to the terminal.
    CertificateRefused(String),
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
    /// The vault has no record of this key sent to this terminal (KEY_NOT_DELIVERED).
    NotDelivered,
    /// Anything else (INTERNAL_ERROR); never key material in the text.
    Internal(String),
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
            SessionEvent::ErrorSent { seq, code, detail } => {
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

/// The last request taken in sequence, and its response once there is one.
struct Exchange {
    seq: u8,
    message_type: u8,
    payload: Vec<u8>,
    response: Option<CachedResponse>,
}

struct CachedResponse {
    bytes: Vec<u8>,
    /// The key index when the response is KEY_DELIVERY (a repeat is followed by MarkSent too).
    delivered_key: Option<u32>,
}

impl Exchange {
    fn of(frame: &Frame) -> Self {
        Exchange {
            seq: frame.seq,
            message_type: frame.message_type,
            payload: frame.payload.clone(),
            response: None,
        }
    }

    fn is_identical(&self, frame: &Frame) -> bool {
        self.seq == frame.seq
            && self.message_type == frame.message_type
            && self.payload == frame.payload
    }
}

struct Session {
    terminal: TerminalIdentity,
    mode: Mode,
    stage: Stage,
}

#[derive(Clone, Copy)]
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
    Confirmed,
}

impl Session {
    /// The key sent in this session and not (yet) confirmed.
    fn unconfirmed_key(&self) -> Option<u32> {
        match self.stage {
            Stage::Delivered { key_index } | Stage::Confirming { key_index, .. } => Some(key_index),
            _ => None,
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
    /// When recent certificate-mode key requests were accepted, for the rate limit.
    certificate_requests: VecDeque<Duration>,
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
            certificate_requests: VecDeque::new(),
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
            self.session.as_ref().map(|session| session.stage),
            Some(Stage::Reserving | Stage::Confirming { .. })
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

    /// The adapter's answer to [`ApplianceAction::Reserve`].
    pub fn handle_reservation(
        &mut self,
        outcome: Result<Delivery, DispenseRefusal>,
        now: Duration,
    ) -> Vec<ApplianceAction> {
        let mut actions = Vec::new();
        let Some(terminal) = self
            .session
            .as_ref()
            .filter(|session| matches!(session.stage, Stage::Reserving))
            .map(|session| session.terminal.clone())
        else {
            actions.push(report(SessionEvent::UnexpectedOutcome {
                what: "reservation",
            }));
            return actions;
        };
        self.last_activity = now;
        self.set_stage(Stage::Welcomed);
        match outcome {
            Ok(delivery) => {
                let key_index = delivery.key_index;
                match Message::KeyDelivery(delivery).encode_frame(self.current_seq()) {
                    Ok(bytes) => {
                        self.set_stage(Stage::Delivered { key_index });
                        self.record_response(bytes.clone(), Some(key_index));
                        actions.push(ApplianceAction::Send(bytes));
                        actions.push(ApplianceAction::MarkSent { key_index });
                        actions.push(report(SessionEvent::Delivered {
                            terminal,
                            key_index,
                        }));
                    }
                    Err(error) => self.respond_error(
                        ErrorCode::INTERNAL_ERROR,
                        &format!("key {key_index:08} cannot be sent: {error}"),
                        &mut actions,
                    ),
                }
            }
            Err(DispenseRefusal::NoKeysAvailable) => self.respond_error(
                ErrorCode::NO_KEYS_AVAILABLE,
                "no unused master key is left on this appliance",
                &mut actions,
            ),
            Err(DispenseRefusal::NotReady) => self.respond_error(
                ErrorCode::NOT_READY,
                "the appliance is locked or has no transport key",
                &mut actions,
            ),
            Err(DispenseRefusal::NoOperator) => self.respond_error(
                ErrorCode::NOT_READY,
                "no operator is logged in on the appliance",
                &mut actions,
            ),
            Err(DispenseRefusal::TamperInputUnwatched) => self.respond_error(
                ErrorCode::NOT_READY,
                "the appliance's tamper input is not watched",
                &mut actions,
            ),
            Err(DispenseRefusal::CertificateRefused(detail)) => {
                self.respond_error(ErrorCode::CERTIFICATE_REFUSED, &detail, &mut actions)
            }
            Err(DispenseRefusal::Internal(detail)) => {
                self.respond_error(ErrorCode::INTERNAL_ERROR, &detail, &mut actions)
            }
        }
        actions
    }

    /// The adapter's answer to [`ApplianceAction::Confirm`].
    pub fn handle_confirmation(
        &mut self,
        outcome: Result<Confirmed, ConfirmRefusal>,
        now: Duration,
    ) -> Vec<ApplianceAction> {
        let mut actions = Vec::new();
        let Some((terminal, key_index, resumed)) =
            self.session
                .as_ref()
                .and_then(|session| match session.stage {
                    Stage::Confirming { key_index, resumed } => {
                        Some((session.terminal.clone(), key_index, resumed))
                    }
                    _ => None,
                })
        else {
            actions.push(report(SessionEvent::UnexpectedOutcome {
                what: "confirmation",
            }));
            return actions;
        };
        self.last_activity = now;
        // A refused resumed confirmation leaves the session as it was: welcomed, no key.
        self.set_stage(if resumed {
            Stage::Welcomed
        } else {
            Stage::Delivered { key_index }
        });
        match outcome {
            Ok(confirmed) => {
                let message = Message::Confirmed(confirmed.clone());
                match message.encode_frame(self.current_seq()) {
                    Ok(bytes) => {
                        self.set_stage(Stage::Confirmed);
                        self.record_response(bytes.clone(), None);
                        actions.push(ApplianceAction::Send(bytes));
                        actions.push(report(SessionEvent::Confirmed {
                            terminal,
                            key_index: confirmed.key_index,
                            smn: confirmed.smn,
                        }));
                    }
                    Err(error) => self.respond_error(
                        ErrorCode::INTERNAL_ERROR,
                        &format!("CONFIRMED cannot be sent: {error}"),
                        &mut actions,
                    ),
                }
            }
            Err(ConfirmRefusal::KcvMismatch { quarantined }) => {
                let (code, detail) = if quarantined {
                    (
                        ErrorCode::KCV_MISMATCH_QUARANTINED,
                        format!("the KCV is not key {key_index:08}'s; the key is quarantined"),
                    )
                } else {
                    (
                        ErrorCode::KCV_MISMATCH,
                        format!("the KCV is not key {key_index:08}'s"),
                    )
                };
                self.respond_error(code, &detail, &mut actions);
            }
            Err(ConfirmRefusal::NotDelivered) => self.respond_error(
                ErrorCode::KEY_NOT_DELIVERED,
                &format!("the vault has no record of key {key_index:08} sent to this terminal"),
                &mut actions,
            ),
            Err(ConfirmRefusal::Internal(detail)) => {
                self.respond_error(ErrorCode::INTERNAL_ERROR, &detail, &mut actions)
            }
        }
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

    fn handle_frame(&mut self, frame: Frame, now: Duration, actions: &mut Actions) {
        self.last_activity = now;
        let kind = MessageType::from_id(frame.message_type);
        match kind.map(MessageType::direction) {
            Some(Direction::Both) => return self.answer_nak(actions),
            Some(Direction::ToTerminal) => {
                actions.push(report(SessionEvent::FrameIgnored {
                    seq: frame.seq,
                    message_type: frame.message_type,
                }));
                return;
            }
            _ => {}
        }
        if let Some(last) = self.last.as_ref().filter(|last| last.is_identical(&frame)) {
            match &last.response {
                Some(cached) => {
                    actions.push(ApplianceAction::Send(cached.bytes.clone()));
                    if let Some(key_index) = cached.delivered_key {
                        actions.push(ApplianceAction::MarkSent { key_index });
                    }
                    actions.push(report(SessionEvent::ResponseRepeated { seq: frame.seq }));
                }
                None => actions.push(report(SessionEvent::RetransmissionIgnored {
                    seq: frame.seq,
                })),
            }
            return;
        }
        if self.is_waiting_for_adapter() {
            return self.reply_unrecorded(
                frame.seq,
                ErrorCode::BUSY,
                "the previous request is still being processed",
                actions,
            );
        }
        let Some(kind) = kind else {
            return self.reply_unrecorded(
                frame.seq,
                ErrorCode::UNKNOWN_MESSAGE_TYPE,
                &format!("0x{:02X} is not a message type", frame.message_type),
                actions,
            );
        };
        if kind == MessageType::Hello {
            return self.handle_hello(&frame, actions);
        }
        let last_seq = match (&self.session, &self.last) {
            (Some(_), Some(last)) => last.seq,
            _ => {
                return self.reply_unrecorded(
                    frame.seq,
                    ErrorCode::OUT_OF_ORDER_MESSAGE,
                    &format!("no session is open: {kind} must follow HELLO"),
                    actions,
                );
            }
        };
        if frame.seq == last_seq {
            return self.reply_unrecorded(
                frame.seq,
                ErrorCode::SEQUENCE_REUSED,
                &format!(
                    "SEQ {} was the last request's, with a different body",
                    frame.seq
                ),
                actions,
            );
        }
        let expected = last_seq.wrapping_add(1);
        if frame.seq != expected {
            return self.reply_unrecorded(
                frame.seq,
                ErrorCode::SEQUENCE_OUT_OF_ORDER,
                &format!("SEQ {} is out of order: expected {expected}", frame.seq),
                actions,
            );
        }
        self.last = Some(Exchange::of(&frame));
        match Message::from_frame(&frame) {
            Ok(Message::KeyRequest(request)) => self.handle_key_request(request, now, actions),
            Ok(Message::Confirm(confirm)) => self.handle_confirm(confirm, actions),
            Ok(Message::Abort(abort)) => {
                if let Some(session) = self.session.take() {
                    actions.push(report(SessionEvent::Aborted {
                        unconfirmed_key: session.unconfirmed_key(),
                        terminal: session.terminal,
                        reason: abort.reason,
                        detail: abort.detail,
                    }));
                }
                self.respond(&Message::Ack, actions);
            }
            Ok(other) => self.respond_error(
                ErrorCode::INTERNAL_ERROR,
                &format!("{} cannot be handled here", other.message_type()),
                actions,
            ),
            Err(error) => {
                self.respond_error(ErrorCode::MALFORMED_MESSAGE, &error.to_string(), actions)
            }
        }
    }

    fn handle_hello(&mut self, frame: &Frame, actions: &mut Actions) {
        if let Some(session) = self.session.take() {
            actions.push(report(SessionEvent::SessionEnded {
                unconfirmed_key: session.unconfirmed_key(),
                terminal: session.terminal,
                reason: EndReason::NewHello,
            }));
        }
        self.last = Some(Exchange::of(frame));
        let hello: Hello = match Message::from_frame(frame) {
            Ok(Message::Hello(hello)) => hello,
            Ok(other) => {
                return self.respond_error(
                    ErrorCode::INTERNAL_ERROR,
                    &format!("{} decoded as HELLO", other.message_type()),
                    actions,
                );
            }
            Err(DecodeError::UnsupportedVersion(version)) => {
                return self.respond_error(
                    ErrorCode::UNSUPPORTED_VERSION,
                    &format!(
                        "protocol version {version} is not supported; this appliance speaks version {PROTOCOL_VERSION}"
                    ),
                    actions,
                );
            }
            Err(error) => {
                return self.respond_error(
                    ErrorCode::MALFORMED_MESSAGE,
                    &error.to_string(),
                    actions,
                );
            }
        };
        let terminal = TerminalIdentity {
            hardware_serial: hello.hardware_serial.clone(),
            model: hello.model.clone(),
            protocol_version: hello.protocol_version,
        };
        actions.push(report(SessionEvent::HelloReceived {
            terminal: terminal.clone(),
            mode_ids: hello.mode_ids.clone(),
            capabilities: hello.capabilities,
        }));
        if self.config.ttk_kcv.is_empty() {
            return self.respond_error(
                ErrorCode::NOT_READY,
                "no transport key is loaded on this appliance",
                actions,
            );
        }
        let chosen = hello
            .known_modes()
            .into_iter()
            .find(|&mode| self.serves(mode));
        let Some(mode) = chosen else {
            let offered: Vec<String> = hello.mode_ids.iter().map(u8::to_string).collect();
            let served: Vec<&str> = Mode::ALL
                .into_iter()
                .filter(|&mode| self.serves(mode))
                .map(Mode::name)
                .collect();
            return self.respond_error(
                ErrorCode::NO_COMMON_MODE,
                &format!(
                    "terminal offers mode ids {}; appliance serves {}",
                    offered.join(", "),
                    if served.is_empty() {
                        "none".to_owned()
                    } else {
                        served.join(", ")
                    }
                ),
                actions,
            );
        };
        let mode_data = match mode {
            Mode::Certificate => CertificateWelcome {
                kdh_certificate: self.config.kdh_certificate.clone(),
            }
            .encode(),
            Mode::Tr31 | Mode::DukptInitialKey => Ok(Vec::new()),
        };
        let welcome = mode_data.map(|mode_data| {
            Message::Welcome(Welcome {
                protocol_version: PROTOCOL_VERSION,
                mode_id: mode.id(),
                device_id: self.config.device_id.clone(),
                ttk_kcv: self.config.ttk_kcv.clone(),
                mode_data,
            })
        });
        match welcome.and_then(|welcome| welcome.encode_frame(frame.seq)) {
            Ok(bytes) => {
                self.session = Some(Session {
                    terminal: terminal.clone(),
                    mode,
                    stage: Stage::Welcomed,
                });
                self.record_response(bytes.clone(), None);
                actions.push(ApplianceAction::Send(bytes));
                actions.push(report(SessionEvent::Welcomed { terminal, mode }));
            }
            Err(error) => self.respond_error(
                ErrorCode::INTERNAL_ERROR,
                &format!("appliance configuration: {error}"),
                actions,
            ),
        }
    }

    /// Whether this appliance runs `mode` now: implemented, configured, and for certificate
    /// mode a KDH certificate installed.
    fn serves(&self, mode: Mode) -> bool {
        mode.is_implemented()
            && self.config.modes.contains(&mode)
            && (mode != Mode::Certificate || !self.config.kdh_certificate.is_empty())
    }

    /// Counts a certificate-mode key request against the per-port limit; false when over it.
    fn within_certificate_rate(&mut self, now: Duration) -> bool {
        let limit = self.config.certificate_requests_per_minute;
        if limit == 0 {
            return true;
        }
        while self
            .certificate_requests
            .front()
            .is_some_and(|&at| now.saturating_sub(at) >= RATE_WINDOW)
        {
            self.certificate_requests.pop_front();
        }
        if self.certificate_requests.len() >= limit as usize {
            return false;
        }
        self.certificate_requests.push_back(now);
        true
    }

    fn handle_key_request(&mut self, request: KeyRequest, now: Duration, actions: &mut Actions) {
        let Some(session) = self.session.as_ref() else {
            return;
        };
        let (mode, terminal) = (session.mode, session.terminal.clone());
        match session.stage {
            Stage::Welcomed if request.mode_id != mode.id() => {
                let detail = format!(
                    "WELCOME chose mode {} ({mode}); KEY_REQUEST names mode {}",
                    mode.id(),
                    request.mode_id
                );
                self.respond_error(ErrorCode::MODE_NOT_NEGOTIATED, &detail, actions);
            }
            Stage::Welcomed => {
                let request = match mode {
                    Mode::Certificate => match CertificateRequest::decode(&request.mode_data) {
                        Ok(certificate) => ModeRequest::Certificate(certificate),
                        Err(error) => {
                            return self.respond_error(
                                ErrorCode::MALFORMED_MESSAGE,
                                &error.to_string(),
                                actions,
                            );
                        }
                    },
                    Mode::Tr31 | Mode::DukptInitialKey => ModeRequest::Tr31,
                };
                if mode == Mode::Certificate && !self.within_certificate_rate(now) {
                    let detail = format!(
                        "more than {} certificate-mode key requests on this port in 60 s",
                        self.config.certificate_requests_per_minute
                    );
                    return self.respond_error(ErrorCode::RATE_LIMITED, &detail, actions);
                }
                self.set_stage(Stage::Reserving);
                actions.push(report(SessionEvent::KeyRequested {
                    terminal: terminal.clone(),
                }));
                actions.push(ApplianceAction::Reserve { terminal, request });
            }
            Stage::Delivered { key_index } | Stage::Confirming { key_index, .. } => {
                let detail = format!("key {key_index:08} was already delivered in this session");
                self.respond_error(ErrorCode::OUT_OF_ORDER_MESSAGE, &detail, actions);
            }
            Stage::Confirmed => self.respond_error(
                ErrorCode::OUT_OF_ORDER_MESSAGE,
                "this session's key is confirmed; start a new session with HELLO",
                actions,
            ),
            Stage::Reserving => self.respond_error(
                ErrorCode::BUSY,
                "the previous request is still being processed",
                actions,
            ),
        }
    }

    fn handle_confirm(&mut self, confirm: Confirm, actions: &mut Actions) {
        let Some(session) = self.session.as_ref() else {
            return;
        };
        let terminal = session.terminal.clone();
        let (delivered, resumed) = match session.stage {
            Stage::Delivered { key_index } => (key_index, false),
            // A terminal that installed its key in an earlier session and never saw
            // CONFIRMED (power cut, cable pulled, appliance restarted) confirms it in a new
            // one. Only the vault knows which key that terminal was given: the adapter
            // decides, and answers KEY_NOT_DELIVERED for any other key.
            Stage::Welcomed => (confirm.key_index, true),
            Stage::Confirmed => {
                return self.respond_error(
                    ErrorCode::OUT_OF_ORDER_MESSAGE,
                    "this session's key is already confirmed; start a new session with HELLO",
                    actions,
                );
            }
            Stage::Reserving | Stage::Confirming { .. } => {
                return self.respond_error(
                    ErrorCode::BUSY,
                    "the previous request is still being processed",
                    actions,
                );
            }
        };
        if confirm.key_index != delivered {
            let detail = format!(
                "key {:08} was not delivered in this session (key {delivered:08} was)",
                confirm.key_index
            );
            return self.respond_error(ErrorCode::KEY_NOT_DELIVERED, &detail, actions);
        }
        let expected = Smn::new(&terminal.hardware_serial, delivered);
        if expected.as_ref() != Ok(&confirm.smn) {
            let detail = format!(
                "SMN {} is not hardware serial {} followed by {delivered:08}",
                confirm.smn, terminal.hardware_serial
            );
            return self.respond_error(ErrorCode::SMN_MISMATCH, &detail, actions);
        }
        self.set_stage(Stage::Confirming {
            key_index: delivered,
            resumed,
        });
        actions.push(report(SessionEvent::ConfirmRequested {
            terminal: terminal.clone(),
            key_index: delivered,
        }));
        actions.push(ApplianceAction::Confirm {
            terminal,
            key_index: delivered,
            kcv: confirm.kcv,
            smn: confirm.smn,
        });
    }

    /// NAK from the terminal: its last response arrived damaged; send it again if it is the
    /// answer to the latest request.
    fn answer_nak(&mut self, actions: &mut Actions) {
        let cached = self.last.as_ref().and_then(|last| last.response.as_ref());
        actions.push(report(SessionEvent::NakReceived {
            resent: cached.is_some(),
        }));
        if let Some(cached) = cached {
            actions.push(ApplianceAction::Send(cached.bytes.clone()));
            if let Some(key_index) = cached.delivered_key {
                actions.push(ApplianceAction::MarkSent { key_index });
            }
        }
    }

    fn current_seq(&self) -> u8 {
        self.last.as_ref().map_or(0, |last| last.seq)
    }

    fn record_response(&mut self, bytes: Vec<u8>, delivered_key: Option<u32>) {
        if let Some(last) = self.last.as_mut() {
            last.response = Some(CachedResponse {
                bytes,
                delivered_key,
            });
        }
    }

    /// Answers the current request with `message`, kept for retransmissions.
    fn respond(&mut self, message: &Message, actions: &mut Actions) {
        let seq = self.current_seq();
        match message.encode_frame(seq) {
            Ok(bytes) => {
                self.record_response(bytes.clone(), None);
                actions.push(ApplianceAction::Send(bytes));
            }
            Err(error) => self.respond_error(
                ErrorCode::INTERNAL_ERROR,
                &format!("{} cannot be sent: {error}", message.message_type()),
                actions,
            ),
        }
    }

    /// Answers the current request with ERROR, kept for retransmissions.
    fn respond_error(&mut self, code: ErrorCode, detail: &str, actions: &mut Actions) {
        let seq = self.current_seq();
        let detail = sanitize_detail(detail);
        let error = Message::Error(ErrorMessage {
            code,
            detail: detail.clone(),
        });
        if let Some(bytes) = self.send_unrecorded(seq, &error, actions) {
            self.record_response(bytes, None);
        }
        actions.push(report(SessionEvent::ErrorSent { seq, code, detail }));
    }

    /// Answers a frame that is not taken in sequence with ERROR; nothing is recorded, so the
    /// session is as it was.
    fn reply_unrecorded(&mut self, seq: u8, code: ErrorCode, detail: &str, actions: &mut Actions) {
        let detail = sanitize_detail(detail);
        let error = Message::Error(ErrorMessage {
            code,
            detail: detail.clone(),
        });
        self.send_unrecorded(seq, &error, actions);
        actions.push(report(SessionEvent::ErrorSent { seq, code, detail }));
    }

    fn send_unrecorded(
        &mut self,
        seq: u8,
        message: &Message,
        actions: &mut Actions,
    ) -> Option<Vec<u8>> {
        // NAK, ACK and a sanitised ERROR always encode; should one not, nothing is sent.
        let bytes = message.encode_frame(seq).ok()?;
        actions.push(ApplianceAction::Send(bytes.clone()));
        Some(bytes)
    }
}

fn report(event: SessionEvent) -> ApplianceAction {
    ApplianceAction::Report(event)
}
