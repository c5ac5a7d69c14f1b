//! An appliance driven frame by frame by a test playing the terminal, with the fake vaults answering its adapter calls.

use std::collections::VecDeque;
use std::time::Duration;

use keymother_protocol::{
    ApplianceAction, ApplianceConfig, ApplianceSession, Message, SessionEvent,
};

use super::{FakeDukptVault, FakeVault, appliance_config, message_in, ms};

/// An appliance driven frame by frame by a test playing the terminal; adapter calls are
/// answered at once from the vault unless `hold_adapter` is set.
pub struct Direct {
    pub appliance: ApplianceSession,
    pub vault: FakeVault,
    pub dukpt: FakeDukptVault,
    pub now: Duration,
    pub hold_adapter: bool,
    /// Every action the appliance asked for, in order.
    pub actions: Vec<ApplianceAction>,
    /// Adapter calls held back (with `hold_adapter`).
    pub held: Vec<ApplianceAction>,
}

impl Direct {
    pub fn new(vault: FakeVault) -> Self {
        Direct::with_config(appliance_config(), vault)
    }

    pub fn with_config(config: ApplianceConfig, vault: FakeVault) -> Self {
        Direct {
            appliance: ApplianceSession::new(config),
            vault,
            dukpt: FakeDukptVault::default(),
            now: Duration::ZERO,
            hold_adapter: false,
            actions: Vec::new(),
            held: Vec::new(),
        }
    }

    /// Feeds raw bytes; returns the messages the appliance sent in answer (adapter included).
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<(u8, Message)> {
        self.now += ms(10);
        let actions = self.appliance.handle_bytes(bytes, self.now);
        self.run(actions)
    }

    /// Sends one message as a frame with `seq`.
    pub fn request(&mut self, seq: u8, message: &Message) -> Vec<(u8, Message)> {
        let bytes = message.encode_frame(seq).expect("a test message encodes");
        self.feed(&bytes)
    }

    /// Answers the held adapter calls now.
    pub fn release(&mut self) -> Vec<(u8, Message)> {
        let held = std::mem::take(&mut self.held);
        let was = std::mem::replace(&mut self.hold_adapter, false);
        let out = self.run(held);
        self.hold_adapter = was;
        out
    }

    pub fn tick(&mut self, now: Duration) -> Vec<(u8, Message)> {
        self.now = now;
        let actions = self.appliance.handle_tick(now);
        self.run(actions)
    }

    fn run(&mut self, actions: Vec<ApplianceAction>) -> Vec<(u8, Message)> {
        let mut sent = Vec::new();
        let mut queue: VecDeque<ApplianceAction> = actions.into();
        while let Some(action) = queue.pop_front() {
            self.actions.push(action.clone());
            match action {
                ApplianceAction::Send(bytes) => sent.push(message_in(&bytes)),
                ApplianceAction::MarkSent { key_index } => self.vault.mark_sent(key_index),
                ApplianceAction::Reserve { terminal, .. } if !self.hold_adapter => {
                    let outcome = self.vault.reserve(&terminal);
                    queue.extend(self.appliance.handle_reservation(outcome, self.now));
                }
                ApplianceAction::Confirm {
                    terminal,
                    key_index,
                    kcv,
                    smn,
                } if !self.hold_adapter => {
                    let outcome = self.vault.confirm(&terminal, key_index, &kcv, &smn);
                    queue.extend(self.appliance.handle_confirmation(outcome, self.now));
                }
                ApplianceAction::MarkDukptSent { slot, ksn } => self.dukpt.mark_sent(slot, &ksn),
                ApplianceAction::ReserveDukpt {
                    terminal,
                    slot,
                    dukpt,
                } if !self.hold_adapter => {
                    let outcome = self.dukpt.reserve(&terminal, slot, &dukpt);
                    queue.extend(self.appliance.handle_dukpt_reservation(outcome, self.now));
                }
                ApplianceAction::ConfirmDukpt {
                    terminal,
                    slot,
                    dukpt,
                    ksn,
                    kcv,
                } if !self.hold_adapter => {
                    let outcome = self.dukpt.confirm(&terminal, slot, &dukpt, &ksn, &kcv);
                    queue.extend(self.appliance.handle_dukpt_confirmation(outcome, self.now));
                }
                held @ (ApplianceAction::Reserve { .. }
                | ApplianceAction::Confirm { .. }
                | ApplianceAction::ReserveDukpt { .. }
                | ApplianceAction::ConfirmDukpt { .. }) => {
                    self.held.push(held);
                }
                ApplianceAction::Report(_) => {}
            }
        }
        sent
    }

    pub fn events(&self) -> Vec<SessionEvent> {
        self.actions
            .iter()
            .filter_map(|action| match action {
                ApplianceAction::Report(event) => Some(event.clone()),
                _ => None,
            })
            .collect()
    }
}
