//! Test bench: an appliance session and terminal sessions wired back to back through simulated serial lines, with a fake vault as the adapter.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use keymother_protocol::{
    ApplianceAction, ApplianceConfig, ApplianceSession, ConfirmRefusal, Confirmed,
    DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_RETRIES, DEFAULT_RESPONSE_TIMEOUT, Delivery, DispenseRefusal,
    ErrorCode, Frame, FrameDecoder, HardwareSerial, InstallRefusal, Message, Mode, SessionEvent,
    Smn, TerminalAction, TerminalConfig, TerminalEvent, TerminalIdentity, TerminalOutcome,
    TerminalSession,
};

pub const DEVICE_ID: &str = "KM-0001";
/// An AES transport key's check value (5 bytes, CMAC method), fake.
pub const TTK_KCV: [u8; 5] = [0x1A, 0x2B, 0x3C, 0x4D, 0x5E];

pub fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

pub fn appliance_config() -> ApplianceConfig {
    ApplianceConfig {
        device_id: DEVICE_ID.to_owned(),
        ttk_kcv: TTK_KCV.to_vec(),
        modes: vec![Mode::Tr31],
        idle_timeout: DEFAULT_IDLE_TIMEOUT,
        kdh_certificate: Vec::new(),
        certificate_requests_per_minute: 0,
    }
}

pub fn serial(text: &str) -> HardwareSerial {
    text.parse().expect("test serial")
}

pub fn terminal_config(hardware_serial: &str) -> TerminalConfig {
    TerminalConfig {
        hardware_serial: serial(hardware_serial),
        model: "KM-REFERENCE-TERMINAL".parse().expect("test model"),
        modes: vec![Mode::Tr31],
        ttk_kcv: TTK_KCV.to_vec(),
        response_timeout: DEFAULT_RESPONSE_TIMEOUT,
        max_retries: DEFAULT_MAX_RETRIES,
        unconfirmed_key: None,
        device_certificate: Vec::new(),
    }
}

/// An obviously fake TR-31 key block (version D header, usage K0, algorithm AES, mode of use D,
/// exportability N) whose "ciphertext" spells the key index, so the fake installer can check it.
pub fn fake_key_block(key_index: u32) -> String {
    let header = "D0144K0AD00N0000";
    let filler = "0".repeat(144 - header.len() - 8);
    format!("{header}{filler}{key_index:08}")
}

/// The fake check value of key `key_index`.
pub fn fake_kcv(key_index: u32) -> Vec<u8> {
    let bytes = key_index.to_be_bytes();
    vec![0xC0 ^ bytes[0], bytes[1], bytes[2], bytes[3], 0x5A]
}

/// What the fake installer makes of a key block: the key index it spells, if it is one of ours.
pub fn fake_unwrap(key_block: &str) -> Option<u32> {
    let header_ok = key_block.len() == 144 && key_block.starts_with("D0144K0AD00N0000");
    header_ok.then(|| key_block[136..].parse().ok()).flatten()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    Free,
    Reserved { serial: HardwareSerial },
    Sent { serial: HardwareSerial },
    Used { serial: HardwareSerial, smn: Smn },
    Quarantined { serial: HardwareSerial },
}

/// A vault in memory with the invariants of the real one: a key goes to one terminal only, and
/// the same terminal asking again gets the key already reserved for it.
#[derive(Debug, Default)]
pub struct FakeVault {
    pub keys: BTreeMap<u32, KeyState>,
    pub reserve_calls: Vec<TerminalIdentity>,
    pub confirm_calls: Vec<(u32, Vec<u8>, Smn)>,
    pub mark_sent_calls: Vec<u32>,
    /// Every (key, terminal) pair ever reserved; a key must never appear with two terminals.
    pub reservations: BTreeMap<u32, HardwareSerial>,
    pub quarantine_on_mismatch: bool,
    pub refuse_reservation: Option<DispenseRefusal>,
    pub refuse_confirmation: Option<ConfirmRefusal>,
}

impl FakeVault {
    pub fn with_keys(indexes: impl IntoIterator<Item = u32>) -> Self {
        FakeVault {
            keys: indexes
                .into_iter()
                .map(|index| (index, KeyState::Free))
                .collect(),
            ..FakeVault::default()
        }
    }

    fn holder(state: &KeyState) -> Option<&HardwareSerial> {
        match state {
            KeyState::Free => None,
            KeyState::Reserved { serial }
            | KeyState::Sent { serial }
            | KeyState::Used { serial, .. }
            | KeyState::Quarantined { serial } => Some(serial),
        }
    }

    pub fn reserve(&mut self, terminal: &TerminalIdentity) -> Result<Delivery, DispenseRefusal> {
        self.reserve_calls.push(terminal.clone());
        if let Some(refusal) = self.refuse_reservation.clone() {
            return Err(refusal);
        }
        let serial = &terminal.hardware_serial;
        let again = self.keys.iter().find(|(_, state)| {
            matches!(
                state,
                KeyState::Reserved { serial: s } | KeyState::Sent { serial: s } | KeyState::Used { serial: s, .. }
                    if s == serial
            )
        });
        let key_index = match again {
            Some((&index, _)) => index,
            None => {
                let Some((&index, state)) = self
                    .keys
                    .iter_mut()
                    .find(|(_, state)| **state == KeyState::Free)
                else {
                    return Err(DispenseRefusal::NoKeysAvailable);
                };
                *state = KeyState::Reserved {
                    serial: serial.clone(),
                };
                index
            }
        };
        if let Some(previous) = self.reservations.insert(key_index, serial.clone()) {
            assert_eq!(
                &previous, serial,
                "key {key_index} reserved for {previous} and then for {serial}"
            );
        }
        Ok(Delivery {
            key_index,
            key_block: fake_key_block(key_index),
            kcv: fake_kcv(key_index),
            mode_data: Vec::new(),
        })
    }

    pub fn mark_sent(&mut self, key_index: u32) {
        self.mark_sent_calls.push(key_index);
        if let Some(state) = self.keys.get_mut(&key_index) {
            if let KeyState::Reserved { serial } = state {
                *state = KeyState::Sent {
                    serial: serial.clone(),
                };
            }
        }
    }

    pub fn confirm(
        &mut self,
        terminal: &TerminalIdentity,
        key_index: u32,
        kcv: &[u8],
        smn: &Smn,
    ) -> Result<Confirmed, ConfirmRefusal> {
        self.confirm_calls
            .push((key_index, kcv.to_vec(), smn.clone()));
        if let Some(refusal) = self.refuse_confirmation.clone() {
            return Err(refusal);
        }
        let serial = &terminal.hardware_serial;
        let Some(state) = self.keys.get_mut(&key_index) else {
            return Err(ConfirmRefusal::NotDelivered);
        };
        match state.clone() {
            KeyState::Sent { serial: holder } if &holder == serial => {
                if kcv != fake_kcv(key_index) {
                    if self.quarantine_on_mismatch {
                        *state = KeyState::Quarantined { serial: holder };
                    }
                    return Err(ConfirmRefusal::KcvMismatch {
                        quarantined: self.quarantine_on_mismatch,
                    });
                }
                *state = KeyState::Used {
                    serial: holder,
                    smn: smn.clone(),
                };
                Ok(Confirmed {
                    key_index,
                    smn: smn.clone(),
                })
            }
            KeyState::Used {
                serial: holder,
                smn: recorded,
            } if &holder == serial && &recorded == smn => Ok(Confirmed {
                key_index,
                smn: smn.clone(),
            }),
            _ => Err(ConfirmRefusal::NotDelivered),
        }
    }

    /// The key a terminal holds (reserved, sent, used or quarantined), if any.
    pub fn key_of(&self, serial: &HardwareSerial) -> Option<(u32, &KeyState)> {
        self.keys
            .iter()
            .find(|(_, state)| FakeVault::holder(state) == Some(serial))
            .map(|(&index, state)| (index, state))
    }
}

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

/// Byte noise applied to a line: each byte is dropped, flipped or preceded by a random byte
/// with the given probability (per million).
#[derive(Debug, Clone, Copy)]
pub struct Noise {
    pub drop_ppm: u32,
    pub flip_ppm: u32,
    pub insert_ppm: u32,
}

/// A small deterministic random generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, bound: u32) -> u32 {
        (self.next_u64() % u64::from(bound)) as u32
    }

    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }
}

pub type Filter = Box<dyn FnMut(&[u8]) -> Vec<Vec<u8>>>;

/// One direction of a serial line: bytes written at a time arrive after the latency, in order,
/// possibly split into chunks, possibly damaged.
pub struct Line {
    pub in_flight: VecDeque<(Duration, Vec<u8>)>,
    pub latency: Duration,
    pub noise: Option<Noise>,
    pub rng: Rng,
    /// Sees each write whole; returns the writes that actually go on the line (none to drop it,
    /// two to duplicate it, a changed one to corrupt it).
    pub filter: Option<Filter>,
    pub bytes_damaged: u64,
}

impl Line {
    pub fn new(seed: u64) -> Self {
        Line {
            in_flight: VecDeque::new(),
            latency: ms(5),
            noise: None,
            rng: Rng::new(seed),
            filter: None,
            bytes_damaged: 0,
        }
    }

    pub fn write(&mut self, bytes: Vec<u8>, now: Duration) {
        let writes = match self.filter.as_mut() {
            Some(filter) => filter(&bytes),
            None => vec![bytes],
        };
        for bytes in writes {
            let bytes = self.damage(bytes);
            let mut at = now + self.latency;
            if let Some(&(last, _)) = self.in_flight.back() {
                at = at.max(last);
            }
            if self.noise.is_some() {
                // Split into chunks a millisecond apart, as a UART driver would hand them over.
                let mut rest = bytes.as_slice();
                while !rest.is_empty() {
                    let size = (1 + self.rng.below(40) as usize).min(rest.len());
                    let (chunk, tail) = rest.split_at(size);
                    self.in_flight.push_back((at, chunk.to_vec()));
                    at += ms(1);
                    rest = tail;
                }
            } else {
                self.in_flight.push_back((at, bytes));
            }
        }
    }

    fn damage(&mut self, bytes: Vec<u8>) -> Vec<u8> {
        let Some(noise) = self.noise else {
            return bytes;
        };
        let mut out = Vec::with_capacity(bytes.len());
        for byte in bytes {
            if self.rng.below(1_000_000) < noise.insert_ppm {
                out.push(self.rng.byte());
                self.bytes_damaged += 1;
            }
            if self.rng.below(1_000_000) < noise.drop_ppm {
                self.bytes_damaged += 1;
                continue;
            }
            if self.rng.below(1_000_000) < noise.flip_ppm {
                out.push(byte ^ (1 + self.rng.below(255) as u8));
                self.bytes_damaged += 1;
            } else {
                out.push(byte);
            }
        }
        out
    }

    pub fn next_time(&self) -> Option<Duration> {
        self.in_flight.front().map(|(at, _)| *at)
    }

    pub fn take_due(&mut self, now: Duration) -> Vec<Vec<u8>> {
        let mut due = Vec::new();
        while self.in_flight.front().is_some_and(|(at, _)| *at <= now) {
            if let Some((_, bytes)) = self.in_flight.pop_front() {
                due.push(bytes);
            }
        }
        due
    }
}

enum AdapterCall {
    Reserve(TerminalIdentity),
    Confirm {
        terminal: TerminalIdentity,
        key_index: u32,
        kcv: Vec<u8>,
        smn: Smn,
    },
}

/// One appliance port with its vault; terminals are run against it one after the other.
pub struct Bench {
    pub now: Duration,
    pub appliance: ApplianceSession,
    pub vault: FakeVault,
    pub to_appliance: Line,
    pub to_terminal: Line,
    pub adapter_delay: Duration,
    pending_adapter: VecDeque<(Duration, AdapterCall)>,
    pending_installs: VecDeque<(Duration, Result<Vec<u8>, InstallRefusal>)>,
    pub install_behaviour: InstallBehaviour,
    pub appliance_events: Vec<SessionEvent>,
    pub terminal_events: Vec<TerminalEvent>,
    /// Every InstallKey the current terminal asked for.
    pub installs: Vec<u32>,
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
            to_appliance: Line::new(seed.wrapping_mul(2).wrapping_add(1)),
            to_terminal: Line::new(seed.wrapping_mul(2).wrapping_add(2)),
            adapter_delay: ms(20),
            pending_adapter: VecDeque::new(),
            pending_installs: VecDeque::new(),
            install_behaviour: InstallBehaviour::Honest,
            appliance_events: Vec::new(),
            terminal_events: Vec::new(),
            installs: Vec::new(),
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
                    key_block,
                    kcv,
                    ..
                } => {
                    self.installs.push(key_index);
                    let result = match self.install_behaviour {
                        InstallBehaviour::DoesNotUnwrap => Err(InstallRefusal::DoesNotUnwrap(
                            "MAC verification failed".to_owned(),
                        )),
                        InstallBehaviour::WrongKcv => Ok(vec![0xEE; kcv.len()]),
                        InstallBehaviour::Honest => match fake_unwrap(&key_block) {
                            Some(index) if index == key_index && fake_kcv(index) == kcv => {
                                Ok(fake_kcv(index))
                            }
                            Some(_) => Err(InstallRefusal::KcvMismatch),
                            None => Err(InstallRefusal::DoesNotUnwrap(
                                "not a key block of this test".to_owned(),
                            )),
                        },
                    };
                    self.pending_installs.push_back((self.now + ms(10), result));
                }
                TerminalAction::Report(event) => self.terminal_events.push(event),
                TerminalAction::Finished(_) => {}
                TerminalAction::VerifyAppliance { .. } => {
                    panic!("the bench's terminals do not run certificate mode")
                }
            }
        }
    }

    /// Runs one terminal from `start` to its outcome; panics if it does not finish in time.
    pub fn run(&mut self, terminal: &mut TerminalSession) -> TerminalOutcome {
        self.installs.clear();
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
                self.pending_installs.front().map(|(at, _)| *at),
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
            let actions = match call {
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
            };
            self.apply_appliance(actions);
        }
        if let Some(terminal) = terminal {
            while self
                .pending_installs
                .front()
                .is_some_and(|(at, _)| *at <= now)
            {
                let Some((_, result)) = self.pending_installs.pop_front() else {
                    break;
                };
                let actions = terminal.handle_key_installed(result, now);
                self.apply_terminal(actions);
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

/// Decodes every frame in `bytes` (one or more whole frames).
pub fn frames_in(bytes: &[u8]) -> Vec<Frame> {
    let mut decoder = FrameDecoder::new(ms(500));
    decoder
        .push(bytes, Duration::ZERO)
        .into_iter()
        .filter_map(|event| match event {
            keymother_protocol::DecodeEvent::Frame(frame) => Some(frame),
            _ => None,
        })
        .collect()
}

/// The message in a single-frame write.
pub fn message_in(bytes: &[u8]) -> (u8, Message) {
    let frames = frames_in(bytes);
    assert_eq!(frames.len(), 1, "expected one frame in {bytes:02X?}");
    let frame = &frames[0];
    (
        frame.seq,
        Message::from_frame(frame).expect("a valid message"),
    )
}

/// An appliance driven frame by frame by a test playing the terminal; adapter calls are
/// answered at once from the vault unless `hold_adapter` is set.
pub struct Direct {
    pub appliance: ApplianceSession,
    pub vault: FakeVault,
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
                held @ (ApplianceAction::Reserve { .. } | ApplianceAction::Confirm { .. }) => {
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

pub fn hello_for(hardware_serial: &str, mode_ids: Vec<u8>) -> Message {
    Message::Hello(keymother_protocol::Hello {
        protocol_version: 1,
        mode_ids,
        model: "KM-REFERENCE-TERMINAL".parse().expect("test model"),
        hardware_serial: serial(hardware_serial),
        capabilities: 0x0003,
    })
}

pub fn key_request() -> Message {
    Message::KeyRequest(keymother_protocol::KeyRequest {
        mode_id: 1,
        mode_data: Vec::new(),
    })
}

pub fn confirm_for(hardware_serial: &str, key_index: u32, kcv: Vec<u8>) -> Message {
    Message::Confirm(keymother_protocol::Confirm {
        key_index,
        kcv,
        smn: Smn::new(
            &serial(hardware_serial),
            keymother_protocol::KeyIndex::new(key_index).expect("small index"),
        ),
    })
}

/// The error code of a single ERROR answer.
pub fn error_code(answers: &[(u8, Message)]) -> (u8, ErrorCode, String) {
    match answers {
        [(seq, Message::Error(error))] => (*seq, error.code, error.detail.clone()),
        other => panic!("expected one ERROR, got {other:?}"),
    }
}
