//! The last request and its cached response, and how the appliance answers: kept for a retransmission, or (for frames not taken) not.

use crate::codes::ErrorCode;
use crate::frame::Frame;
use crate::message::{ErrorMessage, Message, sanitize_detail};

use super::events::FailureCause;
use super::{Actions, ApplianceAction, ApplianceSession, SessionEvent, report};

/// The last request taken in sequence, and its response once there is one.
pub(super) struct Exchange {
    pub(super) seq: u8,
    message_type: u8,
    payload: Vec<u8>,
    pub(super) response: Option<CachedResponse>,
}

pub(super) struct CachedResponse {
    pub(super) bytes: Vec<u8>,
    /// The key the response delivers, when it is KEY_DELIVERY or DUKPT_DELIVERY (a repeat is
    /// followed by MarkSent or MarkDukptSent too).
    pub(super) delivered: Option<SentKey>,
}

/// A key a cached response carries.
#[derive(Clone)]
pub(super) enum SentKey {
    Master { key_index: u32 },
    Dukpt { slot: u8, ksn: Vec<u8> },
}

impl SentKey {
    /// The action that records the key as sent, after each sending.
    pub(super) fn mark_sent(&self) -> ApplianceAction {
        match self {
            SentKey::Master { key_index } => ApplianceAction::MarkSent {
                key_index: *key_index,
            },
            SentKey::Dukpt { slot, ksn } => ApplianceAction::MarkDukptSent {
                slot: *slot,
                ksn: ksn.clone(),
            },
        }
    }
}

impl Exchange {
    pub(super) fn of(frame: &Frame) -> Self {
        Exchange {
            seq: frame.seq,
            message_type: frame.message_type,
            payload: frame.payload.clone(),
            response: None,
        }
    }

    pub(super) fn is_identical(&self, frame: &Frame) -> bool {
        self.seq == frame.seq
            && self.message_type == frame.message_type
            && self.payload == frame.payload
    }
}

impl ApplianceSession {
    /// NAK from the terminal: its last response arrived damaged; send it again if it is the
    /// answer to the latest request.
    pub(super) fn answer_nak(&mut self, actions: &mut Actions) {
        let cached = self.last.as_ref().and_then(|last| last.response.as_ref());
        actions.push(report(SessionEvent::NakReceived {
            resent: cached.is_some(),
        }));
        if let Some(cached) = cached {
            actions.push(ApplianceAction::Send(cached.bytes.clone()));
            if let Some(delivered) = &cached.delivered {
                actions.push(delivered.mark_sent());
            }
        }
    }

    pub(super) fn current_seq(&self) -> u8 {
        self.last.as_ref().map_or(0, |last| last.seq)
    }

    pub(super) fn record_response(&mut self, bytes: Vec<u8>, delivered: Option<SentKey>) {
        if let Some(last) = self.last.as_mut() {
            last.response = Some(CachedResponse { bytes, delivered });
        }
    }

    /// Answers the current request with `message`, kept for retransmissions.
    pub(super) fn respond(&mut self, message: &Message, actions: &mut Actions) {
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
    pub(super) fn respond_error(&mut self, code: ErrorCode, detail: &str, actions: &mut Actions) {
        self.respond_error_because(code, FailureCause::Code, detail, actions);
    }

    /// [`Self::respond_error`] for an error whose cause the code alone does not tell.
    pub(super) fn respond_error_because(
        &mut self,
        code: ErrorCode,
        cause: FailureCause,
        detail: &str,
        actions: &mut Actions,
    ) {
        let seq = self.current_seq();
        let detail = sanitize_detail(detail);
        let error = Message::Error(ErrorMessage {
            code,
            detail: detail.clone(),
        });
        if let Some(bytes) = self.send_unrecorded(seq, &error, actions) {
            self.record_response(bytes, None);
        }
        actions.push(report(SessionEvent::ErrorSent {
            seq,
            code,
            detail,
            cause,
        }));
    }

    /// Answers a frame that is not taken in sequence with ERROR; nothing is recorded, so the
    /// session is as it was.
    pub(super) fn reply_unrecorded(
        &mut self,
        seq: u8,
        code: ErrorCode,
        detail: &str,
        actions: &mut Actions,
    ) {
        let detail = sanitize_detail(detail);
        let error = Message::Error(ErrorMessage {
            code,
            detail: detail.clone(),
        });
        self.send_unrecorded(seq, &error, actions);
        actions.push(report(SessionEvent::ErrorSent {
            seq,
            code,
            detail,
            cause: FailureCause::Code,
        }));
    }

    pub(super) fn send_unrecorded(
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
