//! The terminal in profile mode: after the master key (if the profile has one), each DUKPT slot in turn, requested or (a held key) confirmed, installed by the caller, confirmed by the appliance.

use std::time::Duration;

use crate::codes::AbortReason;
use crate::identity::Smn;
use crate::message::{DukptConfirm, DukptConfirmed, DukptDelivery, DukptRequest, Message};
use crate::modes::ModeRules;
use crate::modes::profile::{DukptSlot, Profile};

use super::{
    Actions, InstallRefusal, ProfileRun, Stage, TerminalAction, TerminalEvent, TerminalOutcome,
    TerminalSession, hex, install_abort, report,
};

impl TerminalSession {
    /// Starts the profile WELCOME offered: the master key first if it has one (confirming a
    /// held one as in tr31 mode), else its first slot.
    pub(super) fn start_profile(
        &mut self,
        profile: Profile,
        mode: &'static dyn ModeRules,
        now: Duration,
        actions: &mut Actions,
    ) {
        let master_key = profile.master_key;
        self.profile = Some(ProfileRun {
            profile,
            master: None,
            dukpt: Vec::new(),
        });
        if master_key {
            self.confirm_held_key_or_request(mode, None, now, actions);
        } else {
            self.next_slot(0, now, actions);
        }
    }

    /// Profile mode: CONFIRMED for the master key; the slots follow.
    pub(super) fn profile_master_confirmed(
        &mut self,
        key_index: u32,
        smn: Smn,
        now: Duration,
        actions: &mut Actions,
    ) {
        actions.push(report(TerminalEvent::MasterKeyConfirmed {
            key_index,
            smn: smn.clone(),
        }));
        if let Some(run) = self.profile.as_mut() {
            run.master = Some((key_index, smn));
        }
        self.next_slot(0, now, actions);
    }

    /// Slot `slot`'s turn: confirm the key held for its label, or ask for one; past the last
    /// slot, the profile is injected.
    fn next_slot(&mut self, slot: u8, now: Duration, actions: &mut Actions) {
        let Some(run) = self.profile.as_ref() else {
            return;
        };
        let Some(dukpt) = run.profile.slot(slot) else {
            let outcome = TerminalOutcome::ProfileInjected {
                profile: run.profile.name.clone(),
                master: run.master.clone(),
                dukpt: run.dukpt.clone(),
            };
            return self.finish(outcome, actions);
        };
        // A held key of another kind's length cannot be this slot's: ask instead.
        let held =
            self.config.unconfirmed_dukpt.iter().find(|held| {
                held.label == dukpt.label && held.ksn.len() == dukpt.kind.ksn_length()
            });
        match held.cloned() {
            Some(held) => {
                self.stage = Stage::AwaitingDukptConfirmed {
                    slot,
                    ksn: held.ksn.clone(),
                    resumed: true,
                };
                let confirm = Message::DukptConfirm(DukptConfirm {
                    slot,
                    ksn: held.ksn,
                    kcv: held.kcv,
                });
                self.send_request(&confirm, now, actions);
            }
            None => self.request_dukpt(slot, now, actions),
        }
    }

    /// Sends DUKPT_REQUEST for `slot`.
    pub(super) fn request_dukpt(&mut self, slot: u8, now: Duration, actions: &mut Actions) {
        self.stage = Stage::AwaitingDukptDelivery { slot };
        self.send_request(&Message::DukptRequest(DukptRequest { slot }), now, actions);
    }

    /// The profile's slot `slot`.
    fn profile_slot(&self, slot: u8) -> Option<DukptSlot> {
        self.profile.as_ref()?.profile.slot(slot).cloned()
    }

    /// DUKPT_DELIVERY: for the slot asked for, with a KSN of its kind; then the caller
    /// installs the key.
    pub(super) fn handle_dukpt_delivery(
        &mut self,
        delivery: DukptDelivery,
        now: Duration,
        actions: &mut Actions,
    ) {
        let Stage::AwaitingDukptDelivery { slot } = self.stage else {
            return;
        };
        let Some(dukpt) = self.profile_slot(slot) else {
            return;
        };
        let problem = if delivery.slot != slot {
            Some(format!(
                "DUKPT_DELIVERY is for slot {}; slot {slot} was asked for",
                delivery.slot
            ))
        } else if delivery.ksn.len() != dukpt.kind.ksn_length() {
            Some(format!(
                "DUKPT_DELIVERY carries a KSN of {} bytes; slot {slot} is {}, whose KSN is {} bytes",
                delivery.ksn.len(),
                dukpt.kind,
                dukpt.kind.ksn_length()
            ))
        } else {
            None
        };
        if let Some(detail) = problem {
            let failure = format!("unacceptable DUKPT_DELIVERY: {detail}");
            return self.abort(
                AbortReason::UNEXPECTED_RESPONSE,
                &detail,
                failure,
                now,
                actions,
            );
        }
        self.stage = Stage::InstallingDukpt {
            slot,
            ksn: delivery.ksn.clone(),
        };
        actions.push(report(TerminalEvent::DukptKeyDelivered {
            slot,
            label: dukpt.label.clone(),
            ksn: delivery.ksn.clone(),
        }));
        actions.push(TerminalAction::InstallDukptKey {
            slot,
            label: dukpt.label,
            kind: dukpt.kind,
            key_type: dukpt.key_type,
            ksn: delivery.ksn,
            key_block: delivery.key_block,
            kcv: delivery.kcv,
        });
    }

    /// The caller's answer to [`TerminalAction::InstallDukptKey`]: `Ok` with the installed
    /// initial key's KCV (then DUKPT_CONFIRM is sent), or why it could not be installed (the
    /// session aborts).
    pub fn handle_dukpt_installed(
        &mut self,
        outcome: Result<Vec<u8>, InstallRefusal>,
        now: Duration,
    ) -> Vec<TerminalAction> {
        let mut actions = Vec::new();
        let Stage::InstallingDukpt { slot, ksn } = &self.stage else {
            return actions;
        };
        let (slot, ksn) = (*slot, ksn.clone());
        match outcome {
            Ok(kcv) => {
                self.stage = Stage::AwaitingDukptConfirmed {
                    slot,
                    ksn: ksn.clone(),
                    resumed: false,
                };
                let confirm = Message::DukptConfirm(DukptConfirm { slot, ksn, kcv });
                self.send_request(&confirm, now, &mut actions);
            }
            Err(refusal) => {
                let label = self
                    .profile_slot(slot)
                    .map_or_else(String::new, |dukpt| dukpt.label);
                let what = format!("the DUKPT key of slot {slot} ({label})");
                self.abort_for(install_abort(refusal, &what), now, &mut actions);
            }
        }
        actions
    }

    /// DUKPT_CONFIRMED: it must name the slot and KSN this terminal confirmed; then the next
    /// slot.
    pub(super) fn handle_dukpt_confirmed(
        &mut self,
        confirmed: DukptConfirmed,
        now: Duration,
        actions: &mut Actions,
    ) {
        let Stage::AwaitingDukptConfirmed { slot, ksn, .. } =
            std::mem::replace(&mut self.stage, Stage::Finished)
        else {
            return;
        };
        if confirmed.slot != slot || confirmed.ksn != ksn {
            let reason = format!(
                "DUKPT_CONFIRMED names slot {} KSN {}; this terminal confirmed slot {slot} KSN {}",
                confirmed.slot,
                hex(&confirmed.ksn),
                hex(&ksn)
            );
            return self.finish(TerminalOutcome::Failed { reason }, actions);
        }
        let label = self
            .profile_slot(slot)
            .map_or_else(String::new, |dukpt| dukpt.label);
        actions.push(report(TerminalEvent::DukptKeyConfirmed {
            slot,
            label: label.clone(),
            ksn: ksn.clone(),
        }));
        if let Some(run) = self.profile.as_mut() {
            run.dukpt.push((label, ksn));
        }
        self.next_slot(slot.saturating_add(1), now, actions);
    }
}
