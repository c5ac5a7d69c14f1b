//! The adapter's answers to a master-key reservation and confirmation: KEY_DELIVERY or CONFIRMED, or the ERROR a refusal maps to.

use std::time::Duration;

use crate::codes::ErrorCode;
use crate::message::{Confirmed, Delivery, Message};

use super::events::FailureCause;
use super::exchange::SentKey;
use super::{
    Actions, ApplianceAction, ApplianceSession, ConfirmRefusal, DispenseRefusal, SessionEvent,
    Stage, report,
};

impl ApplianceSession {
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
                        self.record_response(bytes.clone(), Some(SentKey::Master { key_index }));
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
            Err(refusal) => self.refuse_reservation(refusal, None, &mut actions),
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
                        self.record_response(bytes.clone(), None);
                        actions.push(ApplianceAction::Send(bytes));
                        actions.push(report(SessionEvent::Confirmed {
                            terminal,
                            key_index: confirmed.key_index,
                            smn: confirmed.smn,
                        }));
                        // Profile mode goes on with the first slot.
                        self.advance_to_slot(0, &mut actions);
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

    /// The ERROR answering a reservation the adapter refused; `dukpt` names the slot and its
    /// label when the reservation was for a DUKPT key.
    pub(super) fn refuse_reservation(
        &mut self,
        refusal: DispenseRefusal,
        dukpt: Option<(u8, &str)>,
        actions: &mut Actions,
    ) {
        match refusal {
            DispenseRefusal::NoKeysAvailable => {
                let detail = match dukpt {
                    Some((_, label)) => {
                        format!("no device ID of BDK {label} is left in this appliance's range")
                    }
                    None => "no unused master key is left on this appliance".to_owned(),
                };
                self.respond_error(ErrorCode::NO_KEYS_AVAILABLE, &detail, actions);
            }
            DispenseRefusal::NotReady => self.respond_error(
                ErrorCode::NOT_READY,
                "the appliance is locked or has no transport key",
                actions,
            ),
            DispenseRefusal::BdkNotLoaded => {
                let detail = match dukpt {
                    Some((slot, label)) => {
                        format!("BDK {label} (slot {slot}) is not loaded on the appliance")
                    }
                    None => "a BDK this session needs is not loaded on the appliance".to_owned(),
                };
                self.respond_error_because(
                    ErrorCode::NOT_READY,
                    FailureCause::BdkNotLoaded,
                    &detail,
                    actions,
                );
            }
            DispenseRefusal::NoOperator => self.respond_error_because(
                ErrorCode::NOT_READY,
                FailureCause::NoOperator,
                "no operator is logged in on the appliance",
                actions,
            ),
            DispenseRefusal::TamperInputUnwatched => self.respond_error_because(
                ErrorCode::NOT_READY,
                FailureCause::TamperInputUnwatched,
                "the appliance's tamper input is not watched",
                actions,
            ),
            DispenseRefusal::CertificateRefused(refusal) => self.respond_error_because(
                ErrorCode::CERTIFICATE_REFUSED,
                FailureCause::Certificate(refusal.problem),
                &refusal.detail,
                actions,
            ),
            DispenseRefusal::DeviceNotExpected => self.respond_error(
                ErrorCode::DEVICE_NOT_EXPECTED,
                "this hardware serial is not on an open expected-device list of the appliance",
                actions,
            ),
            DispenseRefusal::AlreadyInjected(detail) => {
                self.respond_error(ErrorCode::ALREADY_INJECTED, &detail, actions)
            }
            DispenseRefusal::SerialBusy { port } => self.respond_error(
                ErrorCode::SERIAL_BUSY,
                &format!("the serial is being injected on port {port}"),
                actions,
            ),
            DispenseRefusal::Internal(detail) => {
                self.respond_error(ErrorCode::INTERNAL_ERROR, &detail, actions)
            }
        }
    }
}
