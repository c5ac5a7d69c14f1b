//! Profile mode's requests on the appliance: DUKPT_REQUEST and DUKPT_CONFIRM, checked against the session's profile and the slot whose turn it is.

use crate::codes::ErrorCode;
use crate::message::{DecodeError, DukptConfirm, DukptRequest, Field, FieldProblem, MessageType};
use crate::modes::profile::{DukptKind, DukptSlot};
use crate::terminal::hex;

use super::{
    Actions, ApplianceAction, ApplianceSession, DukptStep, SessionEvent, Stage, TerminalIdentity,
    report,
};

const TDES_KSN: &str = "10 (a TDES DUKPT slot's initial KSN)";
const AES_KEY_ID: &str = "8 (an AES DUKPT slot's initial key ID)";

impl ApplianceSession {
    /// DUKPT_REQUEST: reserve the initial key of the slot whose turn it is.
    pub(super) fn handle_dukpt_request(&mut self, request: DukptRequest, actions: &mut Actions) {
        let kind = MessageType::DukptRequest;
        let Some((terminal, dukpt)) = self.profile_slot(kind, request.slot, actions) else {
            return;
        };
        let due = matches!(
            self.session.as_ref().map(|session| &session.stage),
            Some(Stage::Dukpt { slot, step: DukptStep::Due }) if *slot == request.slot
        );
        if !due {
            let detail = self.dukpt_out_of_turn(kind, request.slot);
            return self.respond_error(ErrorCode::OUT_OF_ORDER_MESSAGE, &detail, actions);
        }
        self.set_stage(Stage::Dukpt {
            slot: request.slot,
            step: DukptStep::Reserving,
        });
        actions.push(report(SessionEvent::DukptRequested {
            terminal: terminal.clone(),
            slot: request.slot,
            label: dukpt.label.clone(),
        }));
        actions.push(ApplianceAction::ReserveDukpt {
            terminal,
            slot: request.slot,
            dukpt,
        });
    }

    /// DUKPT_CONFIRM: the slot and KSN delivered in this session, or (when the slot's turn has
    /// come and nothing was delivered for it yet) a resumed confirmation the vault decides.
    pub(super) fn handle_dukpt_confirm(&mut self, confirm: DukptConfirm, actions: &mut Actions) {
        let kind = MessageType::DukptConfirm;
        let Some((terminal, dukpt)) = self.profile_slot(kind, confirm.slot, actions) else {
            return;
        };
        if confirm.ksn.len() != dukpt.kind.ksn_length() {
            let allowed = match dukpt.kind {
                DukptKind::Tdes => TDES_KSN,
                DukptKind::Aes => AES_KEY_ID,
            };
            let problem = FieldProblem::Length {
                found: confirm.ksn.len(),
                allowed,
            };
            let detail = field_error(kind, Field::KsnLength, problem);
            return self.respond_error(ErrorCode::MALFORMED_MESSAGE, &detail, actions);
        }
        let stage = self.session.as_ref().map(|session| session.stage.clone());
        let resumed = match stage {
            Some(Stage::Dukpt {
                slot,
                step: DukptStep::Delivered { ksn },
            }) => {
                if confirm.slot != slot || confirm.ksn != ksn {
                    let detail = format!(
                        "slot {} KSN {} was not delivered in this session (slot {slot} KSN {} was)",
                        confirm.slot,
                        hex(&confirm.ksn),
                        hex(&ksn)
                    );
                    return self.respond_error(ErrorCode::KEY_NOT_DELIVERED, &detail, actions);
                }
                false
            }
            // A terminal that installed this slot's key in an earlier session and never saw
            // DUKPT_CONFIRMED confirms it when the slot's turn comes; the vault decides.
            Some(Stage::Dukpt {
                slot,
                step: DukptStep::Due,
            }) if slot == confirm.slot => true,
            _ => {
                let detail = self.dukpt_out_of_turn(kind, confirm.slot);
                return self.respond_error(ErrorCode::OUT_OF_ORDER_MESSAGE, &detail, actions);
            }
        };
        self.set_stage(Stage::Dukpt {
            slot: confirm.slot,
            step: DukptStep::Confirming {
                ksn: confirm.ksn.clone(),
                resumed,
            },
        });
        actions.push(report(SessionEvent::DukptConfirmRequested {
            terminal: terminal.clone(),
            slot: confirm.slot,
            label: dukpt.label.clone(),
            ksn: confirm.ksn.clone(),
        }));
        actions.push(ApplianceAction::ConfirmDukpt {
            terminal,
            slot: confirm.slot,
            dukpt,
            ksn: confirm.ksn,
            kcv: confirm.kcv,
        });
    }

    /// The terminal and the profile's slot `slot` names, or `None` once answered with the
    /// ERROR saying why there is none: OUT_OF_ORDER_MESSAGE outside profile mode,
    /// MALFORMED_MESSAGE for a slot the profile does not have.
    fn profile_slot(
        &mut self,
        kind: MessageType,
        slot: u8,
        actions: &mut Actions,
    ) -> Option<(TerminalIdentity, DukptSlot)> {
        let session = self.session.as_ref()?;
        let terminal = session.terminal.clone();
        let found = match session.profile.as_ref() {
            None => {
                let mode = session.mode.mode();
                Err((
                    ErrorCode::OUT_OF_ORDER_MESSAGE,
                    format!(
                        "{kind} is only valid in mode 3 (profile); this session is in mode {} ({mode})",
                        mode.id()
                    ),
                ))
            }
            Some(profile) => profile.slot(slot).cloned().ok_or_else(|| {
                let problem = FieldProblem::NoSuchSlot {
                    slot,
                    count: profile.slots.len(),
                };
                (
                    ErrorCode::MALFORMED_MESSAGE,
                    field_error(kind, Field::Slot, problem),
                )
            }),
        };
        match found {
            Ok(dukpt) => Some((terminal, dukpt)),
            Err((code, detail)) => {
                self.respond_error(code, &detail, actions);
                None
            }
        }
    }

    /// Why a DUKPT request for `slot` does not fit the session now (OUT_OF_ORDER_MESSAGE).
    fn dukpt_out_of_turn(&self, kind: MessageType, slot: u8) -> String {
        let Some(session) = self.session.as_ref() else {
            return format!("no session is open: {kind} must follow HELLO");
        };
        let name = session
            .profile
            .as_ref()
            .map_or("", |profile| profile.name.as_str());
        match &session.stage {
            Stage::Welcomed | Stage::Reserving => {
                format!("profile {name} starts with the master key: KEY_REQUEST (or CONFIRM) first")
            }
            Stage::Delivered { key_index } | Stage::Confirming { key_index, .. } => format!(
                "key {key_index:08} was delivered and is not confirmed: CONFIRM it before {kind}"
            ),
            Stage::Confirmed => {
                format!("every key of profile {name} is confirmed; start a new session with HELLO")
            }
            Stage::Dukpt { slot: due, .. } if slot < *due => {
                format!("slot {slot} is already confirmed in this session")
            }
            Stage::Dukpt {
                slot: due,
                step: DukptStep::Due | DukptStep::Reserving,
            } => format!("slot {due} comes before slot {slot}"),
            Stage::Dukpt { slot: due, .. } if slot == *due => {
                format!("slot {due}'s key was already delivered in this session: DUKPT_CONFIRM it")
            }
            Stage::Dukpt { slot: due, .. } => format!(
                "slot {due}'s key was delivered and is not confirmed: DUKPT_CONFIRM it before slot {slot}"
            ),
        }
    }

    /// Why a master-key request (KEY_REQUEST, CONFIRM) does not fit a profile session whose
    /// master key is behind it (OUT_OF_ORDER_MESSAGE).
    pub(super) fn master_out_of_turn(&self, kind: MessageType) -> String {
        let Some(profile) = self
            .session
            .as_ref()
            .and_then(|session| session.profile.as_ref())
        else {
            return format!("{kind} does not fit this point of the session");
        };
        let name = &profile.name;
        match self.session.as_ref().map(|session| &session.stage) {
            Some(Stage::Confirmed) => {
                format!("every key of profile {name} is confirmed; start a new session with HELLO")
            }
            _ if profile.master_key => {
                format!("the master key of profile {name} is already confirmed in this session")
            }
            _ => format!(
                "profile {name} has no master key: its keys are asked for with DUKPT_REQUEST"
            ),
        }
    }
}

/// The text of a field error in a request, as MALFORMED_MESSAGE's detail.
fn field_error(message: MessageType, field: Field, problem: FieldProblem) -> String {
    DecodeError::Field {
        message,
        field,
        problem,
    }
    .to_string()
}
