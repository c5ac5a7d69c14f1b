//! The bench: one appliance port with its fake vaults, terminals run against it one after the other over simulated lines.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use keymother_protocol::{
    ApplianceAction, ApplianceConfig, ApplianceSession, DukptSlot, ErrorCode, HeldDukptKey,
    InstallRefusal, KeyAlgorithm, SessionEvent, Smn, TerminalAction, TerminalConfig, TerminalEvent,
    TerminalIdentity, TerminalOutcome, TerminalSession,
};

use super::{
    FakeDukptVault, FakeVault, Line, appliance_config, fake_dukpt_kcv, fake_dukpt_unwrap, fake_kcv,
    fake_unwrap, ms,
};

/// What the fake terminal's key store does with a delivered key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallBehaviour {
    /// Unwraps the fake block and reports its KCV.
    Honest,
    /// Reports a wrong KCV (as a terminal with a different key would).
    WrongKcv,
    /// Refuses: the block does not unwrap.
    DoesNotUnwrap,
}

enum AdapterCall {
    Reserve(TerminalIdentity),
    Confirm {
        terminal: TerminalIdentity,
        key_index: u32,
        kcv: Vec<u8>,
        smn: Smn,
    },
    ReserveDukpt {
        terminal: TerminalIdentity,
        slot: u8,
        dukpt: DukptSlot,
    },
    ConfirmDukpt {
        terminal: TerminalIdentity,
        slot: u8,
        dukpt: DukptSlot,
        ksn: Vec<u8>,
        kcv: Vec<u8>,
    },
}

/// Which key an install result is for.
enum Install {
    Master,
    Dukpt,
}

/// One appliance port with its vault; terminals are run against it one after the other.
pub struct Bench {
    pub now: Duration,
    pub appliance: ApplianceSession,
    pub vault: FakeVault,
    pub dukpt: FakeDukptVault,
    pub to_appliance: Line,
    pub to_terminal: Line,
    pub adapter_delay: Duration,
    pending_adapter: VecDeque<(Duration, AdapterCall)>,
    pending_installs: VecDeque<(Duration, Install, Result<Vec<u8>, InstallRefusal>)>,
    pub install_behaviour: InstallBehaviour,
    pub appliance_events: Vec<SessionEvent>,
    pub terminal_events: Vec<TerminalEvent>,
    /// Every InstallKey the current terminal asked for.
    pub installs: Vec<u32>,
    /// Every InstallDukptKey the current terminal asked for: label and KSN.
    pub dukpt_installs: Vec<(String, Vec<u8>)>,
    /// The terminal's key store: the master key installed (index and KCV) and the DUKPT keys
    /// installed (by label), held until the session ends injected (a profile: every key
    /// confirmed); what a restarted terminal confirms instead of asking again.
    pub held_master: Option<(u32, Vec<u8>)>,
    pub held_dukpt: BTreeMap<String, HeldDukptKey>,
    /// Frames the appliance sent, decoded (for assertions).
    pub appliance_sent: Vec<Vec<u8>>,
    pub terminal_sent: Vec<Vec<u8>>,
    /// Virtual time allowed for one terminal session.
    pub time_limit: Duration,
}

impl Bench {
    pub fn new(vault: FakeVault) -> Self {
        Bench::with_config(appliance_config(), vault, 1)
    }

    pub fn with_config(config: ApplianceConfig, vault: FakeVault, seed: u64) -> Self {
        Bench {
            now: Duration::ZERO,
            appliance: ApplianceSession::new(config),
            vault,
            dukpt: FakeDukptVault::default(),
            to_appliance: Line::new(seed.wrapping_mul(2).wrapping_add(1)),
            to_terminal: Line::new(seed.wrapping_mul(2).wrapping_add(2)),
            adapter_delay: ms(20),
            pending_adapter: VecDeque::new(),
            pending_installs: VecDeque::new(),
            install_behaviour: InstallBehaviour::Honest,
            appliance_events: Vec::new(),
            terminal_events: Vec::new(),
            installs: Vec::new(),
            dukpt_installs: Vec::new(),
            held_master: None,
            held_dukpt: BTreeMap::new(),
            appliance_sent: Vec::new(),
            terminal_sent: Vec::new(),
            time_limit: Duration::from_secs(600),
        }
    }

    pub fn apply_appliance(&mut self, actions: Vec<ApplianceAction>) {
        for action in actions {
            match action {
                ApplianceAction::Send(bytes) => {
                    self.appliance_sent.push(bytes.clone());
                    self.to_terminal.write(bytes, self.now);
                }
                ApplianceAction::Reserve { terminal, .. } => self.pending_adapter.push_back((
                    self.now + self.adapter_delay,
                    AdapterCall::Reserve(terminal),
                )),
                ApplianceAction::MarkSent { key_index } => self.vault.mark_sent(key_index),
                ApplianceAction::Confirm {
                    terminal,
                    key_index,
                    kcv,
                    smn,
                } => self.pending_adapter.push_back((
                    self.now + self.adapter_delay,
                    AdapterCall::Confirm {
                        terminal,
                        key_index,
                        kcv,
                        smn,
                    },
                )),
                ApplianceAction::Report(event) => self.appliance_events.push(event),
                ApplianceAction::ReserveDukpt {
                    terminal,
                    slot,
                    dukpt,
                } => self.pending_adapter.push_back((
                    self.now + self.adapter_delay,
                    AdapterCall::ReserveDukpt {
                        terminal,
                        slot,
                        dukpt,
                    },
                )),
                ApplianceAction::MarkDukptSent { slot, ksn } => self.dukpt.mark_sent(slot, &ksn),
                ApplianceAction::ConfirmDukpt {
                    terminal,
                    slot,
                    dukpt,
                    ksn,
                    kcv,
                } => self.pending_adapter.push_back((
                    self.now + self.adapter_delay,
                    AdapterCall::ConfirmDukpt {
                        terminal,
                        slot,
                        dukpt,
                        ksn,
                        kcv,
                    },
                )),
            }
        }
    }

    fn apply_terminal(&mut self, actions: Vec<TerminalAction>) {
        for action in actions {
            match action {
                TerminalAction::Send(bytes) => {
                    self.terminal_sent.push(bytes.clone());
                    self.to_appliance.write(bytes, self.now);
                }
                TerminalAction::InstallKey {
                    key_index,
                    kcv,
                    key_block,
                    ..
                } => self.install_master(key_index, &key_block, &kcv),
                TerminalAction::InstallDukptKey {
                    label,
                    key_type,
                    ksn,
                    key_block,
                    kcv,
                    ..
                } => self.install_dukpt(label, key_type, ksn, &key_block, &kcv),
                TerminalAction::Report(event) => self.terminal_events.push(event),
                TerminalAction::Finished(outcome) => {
                    if !matches!(outcome, TerminalOutcome::Failed { .. }) {
                        self.forget_held();
                    }
                }
                TerminalAction::VerifyAppliance { .. } => {
                    panic!("the bench's terminals do not run certificate mode")
                }
            }
        }
    }

    /// The fake key store installs a master key (after 10 ms).
    fn install_master(&mut self, key_index: u32, key_block: &str, kcv: &[u8]) {
        self.installs.push(key_index);
        let result = match self.install_behaviour {
            InstallBehaviour::DoesNotUnwrap => Err(InstallRefusal::DoesNotUnwrap(
                "MAC verification failed".to_owned(),
            )),
            InstallBehaviour::WrongKcv => Ok(vec![0xEE; kcv.len()]),
            InstallBehaviour::Honest => match fake_unwrap(key_block) {
                Some(index) if index == key_index && fake_kcv(index) == kcv => Ok(fake_kcv(index)),
                Some(_) => Err(InstallRefusal::KcvMismatch),
                None => Err(InstallRefusal::DoesNotUnwrap(
                    "not a key block of this test".to_owned(),
                )),
            },
        };
        if let Ok(kcv) = &result {
            self.held_master = Some((key_index, kcv.clone()));
        }
        self.pending_installs
            .push_back((self.now + ms(10), Install::Master, result));
    }

    /// The terminal's key store is emptied (the keys are injected, or another terminal
    /// follows).
    pub fn forget_held(&mut self) {
        self.held_master = None;
        self.held_dukpt.clear();
    }

    /// `config` with the keys the terminal's store holds, as a restarted terminal sends them.
    pub fn with_held(&self, config: TerminalConfig) -> TerminalConfig {
        TerminalConfig {
            unconfirmed_key: self.held_master.clone(),
            unconfirmed_dukpt: self.held_dukpt.values().cloned().collect(),
            ..config
        }
    }

    /// The fake key store installs a DUKPT initial key (after 10 ms) and holds it until it is
    /// seen confirmed.
    fn install_dukpt(
        &mut self,
        label: String,
        key_type: KeyAlgorithm,
        ksn: Vec<u8>,
        key_block: &str,
        kcv: &[u8],
    ) {
        self.dukpt_installs.push((label.clone(), ksn.clone()));
        let result = match self.install_behaviour {
            InstallBehaviour::DoesNotUnwrap => Err(InstallRefusal::DoesNotUnwrap(
                "MAC verification failed".to_owned(),
            )),
            InstallBehaviour::WrongKcv => Ok(vec![0xEE; kcv.len()]),
            InstallBehaviour::Honest => match fake_dukpt_unwrap(key_block) {
                Some(carried) if carried == ksn && fake_dukpt_kcv(key_type, &ksn) == kcv => {
                    Ok(kcv.to_vec())
                }
                Some(_) => Err(InstallRefusal::KcvMismatch),
                None => Err(InstallRefusal::DoesNotUnwrap(
                    "not an initial-key block of this test".to_owned(),
                )),
            },
        };
        if let Ok(kcv) = &result {
            let held = HeldDukptKey {
                label: label.clone(),
                ksn,
                kcv: kcv.clone(),
            };
            self.held_dukpt.insert(label, held);
        }
        self.pending_installs
            .push_back((self.now + ms(10), Install::Dukpt, result));
    }

    /// Runs one terminal from `start` to its outcome; panics if it does not finish in time.
    pub fn run(&mut self, terminal: &mut TerminalSession) -> TerminalOutcome {
        self.installs.clear();
        self.dukpt_installs.clear();
        self.pending_installs.clear();
        let actions = terminal.start(self.now);
        self.apply_terminal(actions);
        let deadline = self.now + self.time_limit;
        loop {
            if let Some(outcome) = terminal.outcome() {
                return outcome.clone();
            }
            let next = [
                self.to_appliance.next_time(),
                self.to_terminal.next_time(),
                terminal.next_deadline(),
                self.appliance.next_deadline(),
                self.pending_adapter.front().map(|(at, _)| *at),
                self.pending_installs.front().map(|(at, ..)| *at),
            ]
            .into_iter()
            .flatten()
            .min()
            .expect("the terminal is waiting for nothing");
            self.now = self.now.max(next);
            assert!(self.now <= deadline, "the terminal did not finish in time");
            self.step(terminal);
        }
    }

    /// Lets everything due at `self.now` happen.
    pub fn step(&mut self, terminal: &mut TerminalSession) {
        self.step_with(Some(terminal));
    }

    fn step_with(&mut self, mut terminal: Option<&mut TerminalSession>) {
        let now = self.now;
        for bytes in self.to_appliance.take_due(now) {
            let actions = self.appliance.handle_bytes(&bytes, now);
            self.apply_appliance(actions);
        }
        for bytes in self.to_terminal.take_due(now) {
            if let Some(terminal) = terminal.as_deref_mut() {
                let actions = terminal.handle_bytes(&bytes, now);
                self.apply_terminal(actions);
            }
        }
        if self.appliance.next_deadline().is_some_and(|at| at <= now) {
            let actions = self.appliance.handle_tick(now);
            self.apply_appliance(actions);
        }
        if let Some(terminal) = terminal.as_deref_mut() {
            if terminal.next_deadline().is_some_and(|at| at <= now) {
                let actions = terminal.handle_tick(now);
                self.apply_terminal(actions);
            }
        }
        while self
            .pending_adapter
            .front()
            .is_some_and(|(at, _)| *at <= now)
        {
            let Some((_, call)) = self.pending_adapter.pop_front() else {
                break;
            };
            let actions = self.answer(call);
            self.apply_appliance(actions);
        }
        if let Some(terminal) = terminal {
            while self
                .pending_installs
                .front()
                .is_some_and(|(at, ..)| *at <= now)
            {
                let Some((_, install, result)) = self.pending_installs.pop_front() else {
                    break;
                };
                let actions = match install {
                    Install::Master => terminal.handle_key_installed(result, now),
                    Install::Dukpt => terminal.handle_dukpt_installed(result, now),
                };
                self.apply_terminal(actions);
            }
        }
    }

    /// The fake vaults answer an adapter call.
    fn answer(&mut self, call: AdapterCall) -> Vec<ApplianceAction> {
        let now = self.now;
        match call {
            AdapterCall::Reserve(terminal) => {
                let outcome = self.vault.reserve(&terminal);
                self.appliance.handle_reservation(outcome, now)
            }
            AdapterCall::Confirm {
                terminal,
                key_index,
                kcv,
                smn,
            } => {
                let outcome = self.vault.confirm(&terminal, key_index, &kcv, &smn);
                self.appliance.handle_confirmation(outcome, now)
            }
            AdapterCall::ReserveDukpt {
                terminal,
                slot,
                dukpt,
            } => {
                let outcome = self.dukpt.reserve(&terminal, slot, &dukpt);
                self.appliance.handle_dukpt_reservation(outcome, now)
            }
            AdapterCall::ConfirmDukpt {
                terminal,
                slot,
                dukpt,
                ksn,
                kcv,
            } => {
                let outcome = self.dukpt.confirm(&terminal, slot, &dukpt, &ksn, &kcv);
                self.appliance.handle_dukpt_confirmation(outcome, now)
            }
        }
    }

    /// Lets `duration` pass with no terminal on the line: what is in flight arrives at the
    /// appliance (or is lost towards the terminal), the adapter answers, timeouts fire.
    pub fn settle(&mut self, duration: Duration) {
        let until = self.now + duration;
        self.pending_installs.clear();
        loop {
            let next = [
                self.to_appliance.next_time(),
                self.to_terminal.next_time(),
                self.appliance.next_deadline(),
                self.pending_adapter.front().map(|(at, _)| *at),
            ]
            .into_iter()
            .flatten()
            .min();
            match next {
                Some(at) if at <= until => self.now = self.now.max(at),
                _ => {
                    self.now = until;
                    return;
                }
            }
            self.step_with(None);
        }
    }

    /// The error codes the appliance sent, in order.
    pub fn errors_sent(&self) -> Vec<ErrorCode> {
        self.appliance_events
            .iter()
            .filter_map(|event| match event {
                SessionEvent::ErrorSent { code, .. } => Some(*code),
                _ => None,
            })
            .collect()
    }
}
