//! The appliance's frames as the terminal takes them: NAK, then the response to the outstanding request, one handler per message type.

use std::time::Duration;

use crate::codes::{AbortReason, ErrorCode};
use crate::frame::{DecodeEvent, Frame};
use crate::message::{
    Confirmed, Delivery, Direction, ErrorMessage, Message, MessageType, PROTOCOL_VERSION, Welcome,
};
use crate::mode::Mode;
use crate::modes::AfterWelcome;

use super::{
    Actions, RetransmitCause, Stage, TerminalAction, TerminalEvent, TerminalOutcome,
    TerminalSession, report,
};

impl TerminalSession {
    pub(super) fn handle_event(
        &mut self,
        event: DecodeEvent,
        now: Duration,
        actions: &mut Actions,
    ) {
        if matches!(self.stage, Stage::Finished | Stage::NotStarted) {
            return;
        }
        match event {
            DecodeEvent::Frame(frame) => {
                self.nak_armed = true;
                self.handle_frame(frame, now, actions);
            }
            DecodeEvent::Rejected(rejection) => {
                actions.push(report(TerminalEvent::FrameRejected(rejection)));
                if rejection.is_bad_crc() && self.nak_armed && self.outstanding.is_some() {
                    self.nak_armed = false;
                    if let Ok(bytes) = Message::Nak.encode_frame(0) {
                        actions.push(TerminalAction::Send(bytes));
                        actions.push(report(TerminalEvent::NakSent));
                    }
                }
            }
            DecodeEvent::FrameTooLarge { seq, length, .. } => {
                actions.push(report(TerminalEvent::FrameTooLarge { seq, length }));
            }
        }
    }

    /// A valid frame: NAK resends the request; the response to the outstanding request (its
    /// SEQ, its response type or ERROR) goes to the handler of its type; anything else is
    /// ignored.
    fn handle_frame(&mut self, frame: Frame, now: Duration, actions: &mut Actions) {
        let kind = MessageType::from_id(frame.message_type);
        if kind.map(MessageType::direction) == Some(Direction::Both) {
            if self.outstanding.is_some() {
                self.retransmit(RetransmitCause::Nak, now, actions);
            }
            return;
        }
        let Some(request) = self
            .outstanding
            .as_ref()
            .filter(|outstanding| outstanding.seq == frame.seq)
            .map(|outstanding| outstanding.request)
        else {
            return ignored(&frame, actions);
        };
        let expected = match request {
            MessageType::Hello => MessageType::Welcome,
            MessageType::KeyRequest => MessageType::KeyDelivery,
            MessageType::Confirm => MessageType::Confirmed,
            MessageType::DukptRequest => MessageType::DukptDelivery,
            MessageType::DukptConfirm => MessageType::DukptConfirmed,
            _ => MessageType::Ack,
        };
        if kind != Some(expected) && kind != Some(MessageType::Error) {
            return ignored(&frame, actions);
        }
        let message = match Message::from_frame(&frame) {
            Ok(message) => message,
            Err(error) => {
                self.outstanding = None;
                if let Stage::Aborting { failure } =
                    std::mem::replace(&mut self.stage, Stage::Finished)
                {
                    return self.finish(TerminalOutcome::Failed { reason: failure }, actions);
                }
                return self.abort(
                    AbortReason::UNEXPECTED_RESPONSE,
                    &error.to_string(),
                    format!("malformed response to {request}: {error}"),
                    now,
                    actions,
                );
            }
        };
        if let Message::Error(error) = &message {
            actions.push(report(TerminalEvent::ErrorReceived {
                code: error.code,
                detail: error.detail.clone(),
            }));
            if error.code.is_transient() {
                // BUSY: the response timer goes on and retransmits the request.
                return;
            }
        }
        self.outstanding = None;
        match message {
            Message::Error(error) => self.handle_error(error, request, now, actions),
            Message::Welcome(welcome) => self.handle_welcome(welcome, now, actions),
            Message::KeyDelivery(delivery) => self.handle_key_delivery(delivery, now, actions),
            Message::Confirmed(confirmed) => self.handle_confirmed(confirmed, now, actions),
            Message::DukptDelivery(delivery) => {
                self.handle_dukpt_delivery(delivery, now, actions);
            }
            Message::DukptConfirmed(confirmed) => {
                self.handle_dukpt_confirmed(confirmed, now, actions);
            }
            Message::Ack => self.handle_ack(actions),
            _ => {}
        }
    }

    /// ERROR (not BUSY) answering `request`: the session fails, unless the appliance has no
    /// record of the key (or, in profile mode, the DUKPT key) this terminal is confirming from
    /// an earlier session; then it asks for one.
    fn handle_error(
        &mut self,
        error: ErrorMessage,
        request: MessageType,
        now: Duration,
        actions: &mut Actions,
    ) {
        if self.resuming
            && error.code == ErrorCode::KEY_NOT_DELIVERED
            && matches!(self.stage, Stage::AwaitingConfirmed { .. })
        {
            // The appliance has no record of giving us the key we hold: ask for one.
            self.resuming = false;
            if let Some(mode) = self.mode {
                let freshness = self.resume_freshness.take();
                self.request_key(mode, freshness.as_ref(), now, actions);
            }
            return;
        }
        if let Stage::AwaitingDukptConfirmed {
            slot,
            resumed: true,
            ..
        } = self.stage
        {
            if error.code == ErrorCode::KEY_NOT_DELIVERED {
                // The appliance has no record of giving us the initial key we hold for this
                // slot: ask for one.
                return self.request_dukpt(slot, now, actions);
            }
        }
        let failure = match std::mem::replace(&mut self.stage, Stage::Finished) {
            Stage::Aborting { failure } => failure,
            _ => format!(
                "the appliance answered {request} with ERROR {}: {}",
                error.code, error.detail
            ),
        };
        self.finish(TerminalOutcome::Failed { reason: failure }, actions);
    }

    /// WELCOME: the version and the chosen mode must be this terminal's; then the mode's rules
    /// say whether to go on to the key or have the caller verify the appliance first.
    fn handle_welcome(&mut self, welcome: Welcome, now: Duration, actions: &mut Actions) {
        if welcome.protocol_version != PROTOCOL_VERSION {
            let detail = format!(
                "WELCOME names protocol version {}; HELLO asked for {PROTOCOL_VERSION}",
                welcome.protocol_version
            );
            return self.abort(
                AbortReason::UNEXPECTED_RESPONSE,
                &detail,
                detail.clone(),
                now,
                actions,
            );
        }
        let chosen = Mode::from_id(welcome.mode_id)
            .filter(|mode| self.config.modes.contains(mode))
            .and_then(|mode| self.runnable(mode));
        let Some(mode) = chosen else {
            let detail = format!(
                "WELCOME chose mode id {}, which this terminal cannot run",
                welcome.mode_id
            );
            return self.abort(
                AbortReason::UNEXPECTED_RESPONSE,
                &detail,
                detail.clone(),
                now,
                actions,
            );
        };
        actions.push(report(TerminalEvent::Welcomed {
            device_id: welcome.device_id.clone(),
            mode: mode.mode(),
        }));
        self.mode = Some(mode);
        match mode.check_welcome(&self.config, &welcome) {
            Ok(AfterWelcome::RequestKey) => {
                self.confirm_held_key_or_request(mode, None, now, actions);
            }
            Ok(AfterWelcome::VerifyAppliance(verify)) => {
                self.stage = Stage::VerifyingAppliance;
                actions.push(verify);
            }
            Ok(AfterWelcome::RunProfile(profile)) => {
                self.start_profile(profile, mode, now, actions);
            }
            Err(abort) => self.abort_for(abort, now, actions),
        }
    }

    /// KEY_DELIVERY: the mode's rules read its mode data; then the caller installs the key.
    fn handle_key_delivery(&mut self, delivery: Delivery, now: Duration, actions: &mut Actions) {
        // WELCOME chose the mode before any KEY_REQUEST, and KEY_DELIVERY only answers one.
        let Some(mode) = self.mode else {
            return;
        };
        let certificate = match mode.open_delivery(&delivery.mode_data) {
            Ok(certificate) => certificate,
            Err(abort) => return self.abort_for(abort, now, actions),
        };
        self.stage = Stage::Installing {
            key_index: delivery.key_index,
        };
        actions.push(report(TerminalEvent::KeyDelivered {
            key_index: delivery.key_index,
        }));
        actions.push(TerminalAction::InstallKey {
            key_index: delivery.key_index,
            key_block: delivery.key_block,
            kcv: delivery.kcv,
            certificate,
        });
    }

    /// CONFIRMED: the session succeeds (in profile mode: goes on with the slots) if it names
    /// the key and SMN this terminal confirmed.
    fn handle_confirmed(&mut self, confirmed: Confirmed, now: Duration, actions: &mut Actions) {
        let Stage::AwaitingConfirmed {
            key_index,
            smn,
            kcv,
        } = std::mem::replace(&mut self.stage, Stage::Finished)
        else {
            return;
        };
        let matches = confirmed.key_index == key_index && confirmed.smn == smn;
        if matches && self.profile.is_some() {
            return self.profile_master_confirmed(key_index, smn, now, actions);
        }
        let outcome = if matches {
            TerminalOutcome::Injected {
                key_index,
                smn,
                kcv,
            }
        } else {
            TerminalOutcome::Failed {
                reason: format!(
                    "CONFIRMED names key {:08} and SMN {}; this terminal confirmed key {key_index:08} with SMN {smn}",
                    confirmed.key_index, confirmed.smn
                ),
            }
        };
        self.finish(outcome, actions);
    }

    /// ACK of this terminal's ABORT: the session fails.
    fn handle_ack(&mut self, actions: &mut Actions) {
        let failure = match std::mem::replace(&mut self.stage, Stage::Finished) {
            Stage::Aborting { failure } => failure,
            _ => "the session was aborted".to_owned(),
        };
        self.finish(TerminalOutcome::Failed { reason: failure }, actions);
    }
}

fn ignored(frame: &Frame, actions: &mut Actions) {
    actions.push(report(TerminalEvent::FrameIgnored {
        seq: frame.seq,
        message_type: frame.message_type,
    }));
}
