//! The adapter's answers in profile mode: DUKPT_DELIVERY or DUKPT_CONFIRMED, or the ERROR a refusal maps to; and the step to the next slot.

use std::time::Duration;

use crate::codes::ErrorCode;
use crate::message::{DukptConfirmed, DukptDelivery, Message};
use crate::modes::profile::DukptSlot;
use crate::terminal::hex;

use super::exchange::SentKey;
use super::{
    Actions, ApplianceAction, ApplianceSession, ConfirmRefusal, DispenseRefusal, DukptStep,
    Session, SessionEvent, Stage, TerminalIdentity, report,
};

impl ApplianceSession {
    /// The adapter's answer to [`ApplianceAction::ReserveDukpt`]: the delivery (its slot and a
    /// KSN of the slot's kind), or why nothing was reserved.
    pub fn handle_dukpt_reservation(
        &mut self,
        outcome: Result<DukptDelivery, DispenseRefusal>,
        now: Duration,
    ) -> Vec<ApplianceAction> {
        let mut actions = Vec::new();
        let Some((terminal, slot, dukpt)) = self.dukpt_outstanding(false) else {
            actions.push(report(SessionEvent::UnexpectedOutcome {
                what: "DUKPT reservation",
            }));
            return actions;
        };
        self.last_activity = now;
        self.set_stage(Stage::Dukpt {
            slot,
            step: DukptStep::Due,
        });
        let delivery = match outcome {
            Ok(delivery) => delivery,
            Err(refusal) => {
                self.refuse_reservation(refusal, Some((slot, &dukpt.label)), &mut actions);
                return actions;
            }
        };
        if let Err(detail) = check_delivery(&delivery, slot, &dukpt) {
            self.respond_error(ErrorCode::INTERNAL_ERROR, &detail, &mut actions);
            return actions;
        }
        let ksn = delivery.ksn.clone();
        match Message::DukptDelivery(delivery).encode_frame(self.current_seq()) {
            Ok(bytes) => {
                self.set_stage(Stage::Dukpt {
                    slot,
                    step: DukptStep::Delivered { ksn: ksn.clone() },
                });
                let sent = SentKey::Dukpt {
                    slot,
                    ksn: ksn.clone(),
                };
                actions.push(ApplianceAction::Send(bytes.clone()));
                actions.push(sent.mark_sent());
                self.record_response(bytes, Some(sent));
                actions.push(report(SessionEvent::DukptDelivered {
                    terminal,
                    slot,
                    label: dukpt.label,
                    ksn,
                }));
            }
            Err(error) => self.respond_error(
                ErrorCode::INTERNAL_ERROR,
                &format!("the DUKPT key of slot {slot} cannot be sent: {error}"),
                &mut actions,
            ),
        }
        actions
    }

    /// The adapter's answer to [`ApplianceAction::ConfirmDukpt`]: recorded, or why not.
    pub fn handle_dukpt_confirmation(
        &mut self,
        outcome: Result<(), ConfirmRefusal>,
        now: Duration,
    ) -> Vec<ApplianceAction> {
        let mut actions = Vec::new();
        let Some((terminal, slot, dukpt)) = self.dukpt_outstanding(true) else {
            actions.push(report(SessionEvent::UnexpectedOutcome {
                what: "DUKPT confirmation",
            }));
            return actions;
        };
        let Some(Stage::Dukpt {
            step: DukptStep::Confirming { ksn, resumed },
            ..
        }) = self.session.as_ref().map(|session| session.stage.clone())
        else {
            return actions;
        };
        self.last_activity = now;
        // A refused resumed confirmation leaves the slot due, as it was; a refused one of this
        // session's delivery leaves it delivered.
        self.set_stage(Stage::Dukpt {
            slot,
            step: if resumed {
                DukptStep::Due
            } else {
                DukptStep::Delivered { ksn: ksn.clone() }
            },
        });
        let what = format!("slot {slot} ({}) KSN {}", dukpt.label, hex(&ksn));
        match outcome {
            Ok(()) => self.dukpt_confirmed(terminal, slot, dukpt, ksn, &mut actions),
            Err(ConfirmRefusal::KcvMismatch { quarantined: true }) => self.respond_error(
                ErrorCode::KCV_MISMATCH_QUARANTINED,
                &format!("the KCV is not the initial key's of {what}; the key is quarantined"),
                &mut actions,
            ),
            Err(ConfirmRefusal::KcvMismatch { quarantined: false }) => self.respond_error(
                ErrorCode::KCV_MISMATCH,
                &format!("the KCV is not the initial key's of {what}"),
                &mut actions,
            ),
            Err(ConfirmRefusal::NotDelivered) => self.respond_error(
                ErrorCode::KEY_NOT_DELIVERED,
                &format!("the vault has no record of {what} given to this terminal"),
                &mut actions,
            ),
            Err(ConfirmRefusal::Internal(detail)) => {
                self.respond_error(ErrorCode::INTERNAL_ERROR, &detail, &mut actions)
            }
        }
        actions
    }

    /// DUKPT_CONFIRMED for a recorded slot, and the step to the next one.
    fn dukpt_confirmed(
        &mut self,
        terminal: TerminalIdentity,
        slot: u8,
        dukpt: DukptSlot,
        ksn: Vec<u8>,
        actions: &mut Actions,
    ) {
        let message = Message::DukptConfirmed(DukptConfirmed {
            slot,
            ksn: ksn.clone(),
        });
        match message.encode_frame(self.current_seq()) {
            Ok(bytes) => {
                self.record_response(bytes.clone(), None);
                actions.push(ApplianceAction::Send(bytes));
                actions.push(report(SessionEvent::DukptConfirmed {
                    terminal,
                    slot,
                    label: dukpt.label,
                    ksn,
                }));
                self.advance_to_slot(slot.saturating_add(1), actions);
            }
            Err(error) => self.respond_error(
                ErrorCode::INTERNAL_ERROR,
                &format!("DUKPT_CONFIRMED cannot be sent: {error}"),
                actions,
            ),
        }
    }

    /// The key before slot `slot` (the master key, for slot 0) is confirmed: a profile
    /// session moves to that slot, or, past the last, has every key confirmed and reports the
    /// profile injected. A session of one master key is confirmed.
    pub(super) fn advance_to_slot(&mut self, slot: u8, actions: &mut Actions) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let Some(profile) = session.profile.as_ref() else {
            session.stage = Stage::Confirmed;
            return;
        };
        session.stage = Session::stage_at_slot(profile, slot);
        if matches!(session.stage, Stage::Confirmed) {
            actions.push(report(SessionEvent::ProfileCompleted {
                terminal: session.terminal.clone(),
                profile: profile.name.clone(),
            }));
        }
    }

    /// The terminal, slot and slot entry of the DUKPT reservation (or, with `confirming`,
    /// confirmation) outstanding at the adapter, if one is.
    fn dukpt_outstanding(&self, confirming: bool) -> Option<(TerminalIdentity, u8, DukptSlot)> {
        let session = self.session.as_ref()?;
        let slot = match (&session.stage, confirming) {
            (
                Stage::Dukpt {
                    slot,
                    step: DukptStep::Reserving,
                },
                false,
            )
            | (
                Stage::Dukpt {
                    slot,
                    step: DukptStep::Confirming { .. },
                },
                true,
            ) => *slot,
            _ => return None,
        };
        let dukpt = session.profile.as_ref()?.slot(slot)?.clone();
        Some((session.terminal.clone(), slot, dukpt))
    }
}

/// The adapter's delivery must be for the slot asked for, with a KSN of the slot's kind; the
/// text (no key material) when it is not.
fn check_delivery(delivery: &DukptDelivery, slot: u8, dukpt: &DukptSlot) -> Result<(), String> {
    if delivery.slot != slot {
        return Err(format!(
            "the DUKPT key prepared for slot {slot} names slot {}",
            delivery.slot
        ));
    }
    let expected = dukpt.kind.ksn_length();
    if delivery.ksn.len() != expected {
        return Err(format!(
            "the DUKPT key prepared for slot {slot} has a KSN of {} bytes; {} KSNs are {expected} bytes",
            delivery.ksn.len(),
            dukpt.kind
        ));
    }
    Ok(())
}
