//! The terminal's frames: link checks (NAK, retransmission, sequence), then HELLO, KEY_REQUEST, CONFIRM and ABORT.

use std::time::Duration;

use crate::codes::ErrorCode;
use crate::frame::Frame;
use crate::identity::Smn;
use crate::message::{
    Abort, Capabilities, Confirm, DecodeError, Direction, Hello, KeyRequest, Message, MessageType,
    PROTOCOL_VERSION, Welcome,
};
use crate::mode::Mode;
use crate::modes::{self, ModeRules};
use keymother_domain::{Kcv, Tr31Version};

use super::exchange::Exchange;
use super::{
    Actions, ApplianceAction, ApplianceSession, EndReason, Session, SessionEvent, Stage,
    TerminalIdentity, report,
};

impl ApplianceSession {
    pub(super) fn handle_frame(&mut self, frame: Frame, now: Duration, actions: &mut Actions) {
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
        if self.repeat_if_retransmission(&frame, actions) {
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
        if !self.is_next_in_session(&frame, kind, actions) {
            return;
        }
        self.last = Some(Exchange::of(&frame));
        match Message::from_frame(&frame) {
            Ok(Message::KeyRequest(request)) => self.handle_key_request(request, now, actions),
            Ok(Message::Confirm(confirm)) => self.handle_confirm(confirm, actions),
            Ok(Message::Abort(abort)) => self.handle_abort(abort, actions),
            Ok(Message::DukptRequest(request)) => self.handle_dukpt_request(request, actions),
            Ok(Message::DukptConfirm(confirm)) => self.handle_dukpt_confirm(confirm, actions),
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

    /// An identical copy of the last request gets its cached response again, or nothing while
    /// the adapter is still working on it; true when `frame` was such a copy.
    fn repeat_if_retransmission(&self, frame: &Frame, actions: &mut Actions) -> bool {
        let Some(last) = self.last.as_ref().filter(|last| last.is_identical(frame)) else {
            return false;
        };
        match &last.response {
            Some(cached) => {
                actions.push(ApplianceAction::Send(cached.bytes.clone()));
                if let Some(delivered) = &cached.delivered {
                    actions.push(delivered.mark_sent());
                }
                actions.push(report(SessionEvent::ResponseRepeated { seq: frame.seq }));
            }
            None => actions.push(report(SessionEvent::RetransmissionIgnored {
                seq: frame.seq,
            })),
        }
        true
    }

    /// Whether a request other than HELLO is taken: a session is open and its SEQ follows the
    /// last request's. If not, it is answered with ERROR, unrecorded.
    fn is_next_in_session(
        &mut self,
        frame: &Frame,
        kind: MessageType,
        actions: &mut Actions,
    ) -> bool {
        let last_seq = match (&self.session, &self.last) {
            (Some(_), Some(last)) => last.seq,
            _ => {
                self.reply_unrecorded(
                    frame.seq,
                    ErrorCode::OUT_OF_ORDER_MESSAGE,
                    &format!("no session is open: {kind} must follow HELLO"),
                    actions,
                );
                return false;
            }
        };
        if frame.seq == last_seq {
            self.reply_unrecorded(
                frame.seq,
                ErrorCode::SEQUENCE_REUSED,
                &format!(
                    "SEQ {} was the last request's, with a different body",
                    frame.seq
                ),
                actions,
            );
            return false;
        }
        let expected = last_seq.wrapping_add(1);
        if frame.seq != expected {
            self.reply_unrecorded(
                frame.seq,
                ErrorCode::SEQUENCE_OUT_OF_ORDER,
                &format!("SEQ {} is out of order: expected {expected}", frame.seq),
                actions,
            );
            return false;
        }
        true
    }

    fn handle_hello(&mut self, frame: &Frame, actions: &mut Actions) {
        if let Some(session) = self.session.take() {
            actions.push(report(SessionEvent::SessionEnded {
                unconfirmed_key: session.unconfirmed_key(),
                unconfirmed_dukpt: session.unconfirmed_dukpt(),
                terminal: session.terminal,
                reason: EndReason::NewHello,
            }));
        }
        self.last = Some(Exchange::of(frame));
        let Some(hello) = self.decode_hello(frame, actions) else {
            return;
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
        // Modes that send TR-31 key blocks are chosen only if the flags admit the version the
        // transport key wraps under (PROTOCOL.md, HELLO: capability flags).
        let version = self.ttk_key_block_version();
        let admitted = |mode: Mode| {
            !mode.wraps_under_ttk()
                || version.is_none_or(|version| hello.capabilities.admits(version))
        };
        let chosen = hello
            .known_modes()
            .into_iter()
            .filter(|&mode| admitted(mode))
            .find_map(|mode| self.served(mode, &terminal));
        let served_without_flags = hello
            .known_modes()
            .into_iter()
            .any(|mode| self.served(mode, &terminal).is_some());
        match (chosen, version) {
            (Some(mode), _) => self.welcome(frame.seq, terminal, mode, actions),
            (None, Some(version)) if served_without_flags => {
                self.refuse_key_block_version(&hello, version, actions)
            }
            (None, _) => self.refuse_modes(&hello, &terminal, actions),
        }
    }

    /// The TR-31 version keys travel in under the transport key (B under TDES, D under AES);
    /// `None` while no transport key's check value is known.
    fn ttk_key_block_version(&self) -> Option<Tr31Version> {
        Kcv::from_bytes_any(&self.config.ttk_kcv)
            .ok()
            .map(|kcv| Tr31Version::for_protection_key(kcv.family()))
    }

    /// KEY_BLOCK_VERSION_UNSUPPORTED: every mode this terminal could be served in sends key
    /// blocks of `version`, and its capability flags leave that version out. No session opens.
    fn refuse_key_block_version(
        &mut self,
        hello: &Hello,
        version: Tr31Version,
        actions: &mut Actions,
    ) {
        let flag = Capabilities::flag_for(version).map_or(0, Capabilities::bits);
        let detail = format!(
            "the terminal cannot unwrap TR-31 version {} key blocks (capability flag 0x{flag:04X}), \
             which the appliance's {} transport key needs; its flags are {}",
            version.code(),
            version.protection_key_family(),
            hello.capabilities
        );
        self.respond_error(ErrorCode::KEY_BLOCK_VERSION_UNSUPPORTED, &detail, actions);
    }

    /// HELLO's message, or `None` once answered with the ERROR saying why it is not one.
    fn decode_hello(&mut self, frame: &Frame, actions: &mut Actions) -> Option<Hello> {
        match Message::from_frame(frame) {
            Ok(Message::Hello(hello)) => Some(hello),
            Ok(other) => {
                self.respond_error(
                    ErrorCode::INTERNAL_ERROR,
                    &format!("{} decoded as HELLO", other.message_type()),
                    actions,
                );
                None
            }
            Err(DecodeError::UnsupportedVersion(version)) => {
                self.respond_error(
                    ErrorCode::UNSUPPORTED_VERSION,
                    &format!(
                        "protocol version {version} is not supported; this appliance speaks version {PROTOCOL_VERSION}"
                    ),
                    actions,
                );
                None
            }
            Err(error) => {
                self.respond_error(ErrorCode::MALFORMED_MESSAGE, &error.to_string(), actions);
                None
            }
        }
    }

    /// NO_COMMON_MODE: none of the modes HELLO offers is served here.
    fn refuse_modes(&mut self, hello: &Hello, terminal: &TerminalIdentity, actions: &mut Actions) {
        let offered: Vec<String> = hello.mode_ids.iter().map(u8::to_string).collect();
        let served: Vec<&str> = Mode::ALL
            .into_iter()
            .filter(|&mode| self.served(mode, terminal).is_some())
            .map(Mode::name)
            .collect();
        self.respond_error(
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
    }

    /// WELCOME in `mode`, which opens the session.
    fn welcome(
        &mut self,
        seq: u8,
        terminal: TerminalIdentity,
        mode: &'static dyn ModeRules,
        actions: &mut Actions,
    ) {
        let welcome = mode.welcome_data(&self.config, &terminal).map(|mode_data| {
            Message::Welcome(Welcome {
                protocol_version: PROTOCOL_VERSION,
                mode_id: mode.mode().id(),
                device_id: self.config.device_id.clone(),
                ttk_kcv: self.config.ttk_kcv.clone(),
                mode_data,
            })
        });
        match welcome.and_then(|welcome| welcome.encode_frame(seq)) {
            Ok(bytes) => {
                let profile = mode.session_profile(&self.config, &terminal);
                // A profile without a master key starts with its first slot.
                let stage = match &profile {
                    Some(profile) if !profile.master_key => Session::stage_at_slot(profile, 0),
                    _ => Stage::Welcomed,
                };
                self.session = Some(Session {
                    terminal: terminal.clone(),
                    mode,
                    profile,
                    stage,
                });
                self.record_response(bytes.clone(), None);
                actions.push(ApplianceAction::Send(bytes));
                actions.push(report(SessionEvent::Welcomed {
                    terminal,
                    mode: mode.mode(),
                }));
            }
            Err(error) => self.respond_error(
                ErrorCode::INTERNAL_ERROR,
                &format!("appliance configuration: {error}"),
                actions,
            ),
        }
    }

    /// The rules of `mode` if this appliance runs it now for `terminal`: implemented,
    /// configured, and ready by the mode's own terms (certificate mode: a KDH credential token
    /// installed; profile mode: a profile for the terminal's model).
    fn served(&self, mode: Mode, terminal: &TerminalIdentity) -> Option<&'static dyn ModeRules> {
        modes::rules(mode).filter(|rules| {
            self.config.modes.contains(&mode) && rules.appliance_can_serve(&self.config, terminal)
        })
    }

    fn handle_key_request(&mut self, request: KeyRequest, now: Duration, actions: &mut Actions) {
        let Some(session) = self.session.as_ref() else {
            return;
        };
        let (rules, terminal) = (session.mode, session.terminal.clone());
        let mode = rules.mode();
        match &session.stage {
            Stage::Welcomed if request.mode_id != mode.id() => {
                let detail = format!(
                    "WELCOME chose mode {} ({mode}); KEY_REQUEST names mode {}",
                    mode.id(),
                    request.mode_id
                );
                self.respond_error(ErrorCode::MODE_NOT_NEGOTIATED, &detail, actions);
            }
            Stage::Welcomed => {
                let accepted = rules.accept_request(
                    &self.config,
                    &request.mode_data,
                    now,
                    &mut self.mode_state,
                );
                let request = match accepted {
                    Ok(request) => request,
                    Err(refusal) => {
                        return self.respond_error(refusal.code, &refusal.detail, actions);
                    }
                };
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
            Stage::Confirmed if session.profile.is_none() => self.respond_error(
                ErrorCode::OUT_OF_ORDER_MESSAGE,
                "this session's key is confirmed; start a new session with HELLO",
                actions,
            ),
            Stage::Reserving => self.respond_error(
                ErrorCode::BUSY,
                "the previous request is still being processed",
                actions,
            ),
            Stage::Confirmed | Stage::Dukpt { .. } => {
                let detail = self.master_out_of_turn(MessageType::KeyRequest);
                self.respond_error(ErrorCode::OUT_OF_ORDER_MESSAGE, &detail, actions);
            }
        }
    }

    fn handle_confirm(&mut self, confirm: Confirm, actions: &mut Actions) {
        let Some(session) = self.session.as_ref() else {
            return;
        };
        let terminal = session.terminal.clone();
        let (delivered, resumed) = match &session.stage {
            Stage::Delivered { key_index } => (*key_index, false),
            // A terminal that installed its key in an earlier session and never saw
            // CONFIRMED (power cut, cable pulled, appliance restarted) confirms it in a new
            // one. Only the vault knows which key that terminal was given: the adapter
            // decides, and answers KEY_NOT_DELIVERED for any other key.
            Stage::Welcomed => (confirm.key_index, true),
            Stage::Confirmed if session.profile.is_none() => {
                return self.respond_error(
                    ErrorCode::OUT_OF_ORDER_MESSAGE,
                    "this session's key is already confirmed; start a new session with HELLO",
                    actions,
                );
            }
            Stage::Confirmed | Stage::Dukpt { .. } => {
                let detail = self.master_out_of_turn(MessageType::Confirm);
                return self.respond_error(ErrorCode::OUT_OF_ORDER_MESSAGE, &detail, actions);
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
        let expected = crate::identity::KeyIndex::try_from(delivered)
            .map(|index| Smn::new(&terminal.hardware_serial, index));
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

    /// ABORT: the session ends, and the terminal gets ACK.
    fn handle_abort(&mut self, abort: Abort, actions: &mut Actions) {
        if let Some(session) = self.session.take() {
            actions.push(report(SessionEvent::Aborted {
                unconfirmed_key: session.unconfirmed_key(),
                unconfirmed_dukpt: session.unconfirmed_dukpt(),
                terminal: session.terminal,
                reason: abort.reason,
                detail: abort.detail,
            }));
        }
        self.respond(&Message::Ack, actions);
    }
}
