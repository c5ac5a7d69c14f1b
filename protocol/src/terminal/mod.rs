//! The terminal's side, sans-IO: the reference terminal's protocol logic (HELLO to CONFIRMED, retransmission, ABORT).
//!
//! The terminal drives the link: it sends one request at a time, retransmits the identical
//! frame when no valid response arrives within the response timeout (or at once on NAK), and
//! gives up cleanly after `max_retries` retransmissions. Key installation is left to the caller
//! ([`TerminalAction::InstallKey`], answered with [`TerminalSession::handle_key_installed`]), and
//! so is certificate mode's cryptography: checking the appliance's KDH credential token and
//! making the random number token ([`TerminalAction::VerifyAppliance`], answered with
//! [`TerminalSession::handle_appliance_verified`]), and opening the TR-34 key token. In profile
//! mode the caller installs each DUKPT initial key too ([`TerminalAction::InstallDukptKey`],
//! answered with [`TerminalSession::handle_dukpt_installed`]).
//!
//! Here: the public types, the session's state and what it sends; `responses` handles the
//! appliance's frames, `profile` runs a profile's DUKPT slots. What a mode changes is asked of
//! its rules in `modes/`.

use std::fmt;
use std::time::Duration;

use crate::certificate::{CertificateDelivery, CertificateFreshness};
use crate::codes::{AbortReason, ErrorCode};
use crate::frame::{FrameDecoder, FrameRejection};
use crate::identity::{HardwareSerial, Smn, TerminalModel};
use crate::message::{
    Abort, Capabilities, Confirm, Hello, KeyRequest, Message, MessageType, PROTOCOL_VERSION,
    sanitize_detail,
};
use crate::mode::Mode;
use crate::modes::profile::{DukptKind, Profile};
use crate::modes::{self, ModeRules, TerminalAbort};
use crate::timing::DEFAULT_INTER_BYTE_TIMEOUT;
use keymother_domain::KeyAlgorithm;

mod profile;
mod responses;

/// Who the terminal is and what it expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminalConfig {
    pub hardware_serial: HardwareSerial,
    pub model: TerminalModel,
    /// Modes offered in HELLO, in order of preference (1 to 32).
    pub modes: Vec<Mode>,
    /// The check value of the transport key installed in the terminal; in tr31 mode WELCOME
    /// must carry the same.
    pub ttk_kcv: Vec<u8>,
    /// The terminal's KRD credential token (TR-34 CT_KRD, DER: its device certificate) for
    /// certificate mode; empty when it has none, and then certificate mode is not offered.
    pub krd_credential_token: Vec<u8>,
    pub response_timeout: Duration,
    /// Retransmissions of one request before giving up.
    pub max_retries: u32,
    /// A key this terminal installed in an earlier session without seeing CONFIRMED (power
    /// cut, cable pulled, appliance restarted): its index and check value. The session then
    /// confirms it right after WELCOME instead of asking for a key, so the terminal ends up
    /// with the key the appliance recorded, and never with a second one. In profile mode also
    /// the master key of a profile session that ended before its last key was confirmed, even
    /// if the master key itself was: confirming it again is answered from the record.
    pub unconfirmed_key: Option<(u32, Vec<u8>)>,
    /// Profile mode: DUKPT initial keys this terminal installed in an earlier profile session
    /// that did not end with every key confirmed, by slot label (whether or not it saw their
    /// DUKPT_CONFIRMED). When a slot with that label has its turn, the session confirms the held
    /// key (DUKPT_CONFIRM) instead of asking for one; if the appliance has no record of it
    /// (KEY_NOT_DELIVERED), it asks.
    pub unconfirmed_dukpt: Vec<HeldDukptKey>,
}

/// Profile mode: a DUKPT initial key installed and not seen confirmed, kept under its slot's
/// label (see [`TerminalConfig::unconfirmed_dukpt`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldDukptKey {
    pub label: String,
    /// The initial KSN (TDES DUKPT) or initial key ID (AES DUKPT) it was delivered with.
    pub ksn: Vec<u8>,
    /// Its check value, as the terminal computed it when installing it.
    pub kcv: Vec<u8>,
}

/// Why the terminal could not install a delivered key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallRefusal {
    /// The key block did not unwrap under the transport key (the text says why; no key material).
    DoesNotUnwrap(String),
    /// The unwrapped key's check value is not the delivered KCV.
    KcvMismatch,
    /// Certificate mode: the key token is not authentic (not signed by the KDH of WELCOME, a
    /// bad signature, another nonce or a stale signing time, a revoked KDH, another recipient,
    /// a header other than the key block field's); the text says which.
    NotAuthentic(String),
}

/// How the terminal's session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TerminalOutcome {
    /// The key is installed and the appliance has recorded it.
    Injected {
        key_index: u32,
        smn: Smn,
        kcv: Vec<u8>,
    },
    /// Profile mode: every key of the profile is installed and the appliance has recorded
    /// each.
    ProfileInjected {
        /// The profile's name.
        profile: String,
        /// The master key's index and SMN, when the profile has a master key.
        master: Option<(u32, Smn)>,
        /// Each DUKPT slot's label and initial KSN (or initial key ID), in slot order.
        dukpt: Vec<(String, Vec<u8>)>,
    },
    /// The session ended without a confirmed key (in profile mode: without every key of the
    /// profile confirmed; the keys confirmed on the way are in the [`TerminalEvent`]s).
    Failed { reason: String },
}

/// Why a request was sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetransmitCause {
    /// No valid response within the response timeout.
    Timeout,
    /// The appliance NAKed it.
    Nak,
}

/// Something that happened, for the terminal's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TerminalEvent {
    FrameRejected(FrameRejection),
    /// The appliance sent a frame longer than the maximum.
    FrameTooLarge {
        seq: u8,
        length: u16,
    },
    NakSent,
    Retransmitted {
        seq: u8,
        attempt: u32,
        cause: RetransmitCause,
    },
    /// A valid frame that answers nothing outstanding (a late or repeated response) was ignored.
    FrameIgnored {
        seq: u8,
        message_type: u8,
    },
    Welcomed {
        device_id: String,
        mode: Mode,
    },
    KeyDelivered {
        key_index: u32,
    },
    /// Profile mode: the master key is confirmed; the slots follow.
    MasterKeyConfirmed {
        key_index: u32,
        smn: Smn,
    },
    /// Profile mode: a slot's initial key arrived (it is installed next).
    DukptKeyDelivered {
        slot: u8,
        label: String,
        ksn: Vec<u8>,
    },
    /// Profile mode: the appliance recorded a slot's initial key (the caller may forget it as
    /// held).
    DukptKeyConfirmed {
        slot: u8,
        label: String,
        ksn: Vec<u8>,
    },
    ErrorReceived {
        code: ErrorCode,
        detail: String,
    },
    AbortSent {
        reason: AbortReason,
        detail: String,
    },
}

/// What the caller must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TerminalAction {
    /// Write these bytes to the port.
    Send(Vec<u8>),
    /// Certificate mode: check the KDH certificate in the appliance's KDH credential token
    /// (TR-34 CT_KDH) against the KDH CA and the token's CRL, and if it holds choose one-pass
    /// or two-pass (two-pass: make a fresh random nonce, kept for checking the key token, and
    /// its random number token); then call [`TerminalSession::handle_appliance_verified`].
    VerifyAppliance {
        device_id: String,
        kdh_credential_token: Vec<u8>,
    },
    /// Unwrap the key block (tr31: under the transport key; certificate mode: `key_block` is
    /// the TR-34 key block header, and the key is in the key token: check its KDH signature,
    /// nonce or signing time and recipient, unwrap it, compare its signed header with
    /// `key_block`), install the key, then call [`TerminalSession::handle_key_installed`].
    InstallKey {
        key_index: u32,
        key_block: String,
        kcv: Vec<u8>,
        /// Certificate mode's part of the delivery; `None` in tr31 mode.
        certificate: Option<CertificateDelivery>,
    },
    Report(TerminalEvent),
    /// The session is over.
    Finished(TerminalOutcome),
    /// Profile mode: unwrap the key block under the transport key, check its header (usage
    /// B1, mode of use X, exportability N, the algorithm of `key_type`) and its KS (TDES) or IK
    /// (AES) block against `ksn`, install the initial key under `label` with its KSN and a
    /// transaction counter of zero, then call [`TerminalSession::handle_dukpt_installed`].
    InstallDukptKey {
        slot: u8,
        label: String,
        kind: DukptKind,
        key_type: KeyAlgorithm,
        ksn: Vec<u8>,
        key_block: String,
        kcv: Vec<u8>,
    },
}

/// Profile mode: the profile being run and its keys confirmed so far.
struct ProfileRun {
    profile: Profile,
    master: Option<(u32, Smn)>,
    dukpt: Vec<(String, Vec<u8>)>,
}

struct Outstanding {
    seq: u8,
    bytes: Vec<u8>,
    request: MessageType,
    sent_at: Duration,
    retries: u32,
}

enum Stage {
    NotStarted,
    AwaitingWelcome,
    VerifyingAppliance,
    AwaitingDelivery,
    Installing {
        key_index: u32,
    },
    AwaitingConfirmed {
        key_index: u32,
        smn: Smn,
        kcv: Vec<u8>,
    },
    AwaitingDukptDelivery {
        slot: u8,
    },
    InstallingDukpt {
        slot: u8,
        ksn: Vec<u8>,
    },
    /// `resumed`: the key was installed in an earlier session (a held key).
    AwaitingDukptConfirmed {
        slot: u8,
        ksn: Vec<u8>,
        resumed: bool,
    },
    Aborting {
        failure: String,
    },
    Finished,
}

/// The terminal's protocol state for one injection.
pub struct TerminalSession {
    config: TerminalConfig,
    /// The capability flags HELLO announces (every defined one unless told otherwise).
    capabilities: Capabilities,
    /// The mode WELCOME chose.
    mode: Option<&'static dyn ModeRules>,
    /// Certificate mode, resuming: the freshness chosen after verifying the appliance, reused
    /// if the appliance has no record of the held key and a new one must be requested.
    resume_freshness: Option<CertificateFreshness>,
    /// Confirming a key from an earlier session (see [`TerminalConfig::unconfirmed_key`]).
    resuming: bool,
    /// Profile mode: the profile WELCOME offered, and its keys confirmed so far.
    profile: Option<ProfileRun>,
    decoder: FrameDecoder,
    nak_armed: bool,
    next_seq: u8,
    outstanding: Option<Outstanding>,
    stage: Stage,
    outcome: Option<TerminalOutcome>,
}

type Actions = Vec<TerminalAction>;

impl TerminalSession {
    pub fn new(config: TerminalConfig) -> Self {
        TerminalSession {
            config,
            capabilities: Capabilities::DEFINED,
            mode: None,
            resume_freshness: None,
            resuming: false,
            profile: None,
            decoder: FrameDecoder::new(DEFAULT_INTER_BYTE_TIMEOUT),
            nak_armed: true,
            next_seq: 0,
            outstanding: None,
            stage: Stage::NotStarted,
            outcome: None,
        }
    }

    /// The session announcing `capabilities` in HELLO instead of every defined flag: a
    /// terminal that cannot unwrap some TR-31 version, or (flags 0) one that announces nothing.
    pub fn with_capabilities(mut self, capabilities: Capabilities) -> Self {
        self.capabilities = capabilities;
        self
    }

    /// The capability flags HELLO announces.
    pub fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    pub fn config(&self) -> &TerminalConfig {
        &self.config
    }

    /// Sends HELLO (the first with SEQ 0); calling it again starts over with a new HELLO.
    pub fn start(&mut self, now: Duration) -> Vec<TerminalAction> {
        let mut actions = Vec::new();
        self.outcome = None;
        self.outstanding = None;
        self.profile = None;
        self.stage = Stage::AwaitingWelcome;
        let hello = Message::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            mode_ids: self
                .config
                .modes
                .iter()
                .filter(|&&mode| self.runnable(mode).is_some())
                .map(|mode| mode.id())
                .collect(),
            model: self.config.model.clone(),
            hardware_serial: self.config.hardware_serial.clone(),
            capabilities: self.capabilities,
        });
        self.send_request(&hello, now, &mut actions);
        actions
    }

    /// Bytes read from the port at `now`.
    pub fn handle_bytes(&mut self, bytes: &[u8], now: Duration) -> Vec<TerminalAction> {
        let mut actions = Vec::new();
        for event in self.decoder.push(bytes, now) {
            self.handle_event(event, now, &mut actions);
        }
        actions
    }

    /// Applies the inter-byte and response timeouts at `now`.
    pub fn handle_tick(&mut self, now: Duration) -> Vec<TerminalAction> {
        let mut actions = Vec::new();
        for event in self.decoder.tick(now) {
            self.handle_event(event, now, &mut actions);
        }
        let due = self.outstanding.as_ref().is_some_and(|outstanding| {
            now >= outstanding
                .sent_at
                .saturating_add(self.config.response_timeout)
        });
        if due {
            self.retransmit(RetransmitCause::Timeout, now, &mut actions);
        }
        actions
    }

    /// The rules of `mode` if this terminal can run it: implemented, and ready by the mode's
    /// own terms (certificate mode: a KRD credential token).
    fn runnable(&self, mode: Mode) -> Option<&'static dyn ModeRules> {
        modes::rules(mode).filter(|rules| rules.terminal_can_run(&self.config))
    }

    /// Confirms the key held from an earlier session (see [`TerminalConfig::unconfirmed_key`]),
    /// or sends KEY_REQUEST; `freshness` as for [`request_key`](Self::request_key).
    fn confirm_held_key_or_request(
        &mut self,
        mode: &'static dyn ModeRules,
        freshness: Option<CertificateFreshness>,
        now: Duration,
        actions: &mut Actions,
    ) {
        if let Some((key_index, kcv)) = self.config.unconfirmed_key.clone() {
            self.resuming = true;
            self.stage = Stage::Installing { key_index };
            self.resume_freshness = freshness;
            actions.extend(self.handle_key_installed(Ok(kcv), now));
        } else {
            self.request_key(mode, freshness.as_ref(), now, actions);
        }
    }

    /// Sends KEY_REQUEST in the negotiated mode (certificate mode: with the pass and random
    /// number token chosen when the appliance was verified).
    fn request_key(
        &mut self,
        mode: &'static dyn ModeRules,
        freshness: Option<&CertificateFreshness>,
        now: Duration,
        actions: &mut Actions,
    ) {
        let mode_data = match mode.request_data(&self.config, freshness) {
            Ok(mode_data) => mode_data,
            Err(error) => {
                return self.finish(
                    TerminalOutcome::Failed {
                        reason: format!("KEY_REQUEST cannot be sent: {error}"),
                    },
                    actions,
                );
            }
        };
        self.stage = Stage::AwaitingDelivery;
        let request = Message::KeyRequest(KeyRequest {
            mode_id: mode.mode().id(),
            mode_data,
        });
        self.send_request(&request, now, actions);
    }

    /// The caller's answer to [`TerminalAction::VerifyAppliance`]: `Ok` with the freshness it
    /// chose (two-pass: with its fresh random number token) when the KDH credential token
    /// holds, `Err` with the reason when it does not (the session aborts).
    pub fn handle_appliance_verified(
        &mut self,
        outcome: Result<CertificateFreshness, String>,
        now: Duration,
    ) -> Vec<TerminalAction> {
        let mut actions = Vec::new();
        if !matches!(self.stage, Stage::VerifyingAppliance) {
            return actions;
        }
        match outcome {
            Ok(freshness) => {
                // The appliance is authentic: confirm the key from an earlier session, or ask
                // for one. (WELCOME chose the mode before asking for the verification.)
                if let Some(mode) = self.mode {
                    self.confirm_held_key_or_request(mode, Some(freshness), now, &mut actions);
                }
            }
            Err(why) => self.abort(
                AbortReason::CERTIFICATE_REFUSED,
                &why,
                format!("the appliance's KDH certificate was refused: {why}"),
                now,
                &mut actions,
            ),
        }
        actions
    }

    /// The caller's answer to [`TerminalAction::InstallKey`]: `Ok` with the installed key's KCV.
    pub fn handle_key_installed(
        &mut self,
        outcome: Result<Vec<u8>, InstallRefusal>,
        now: Duration,
    ) -> Vec<TerminalAction> {
        let mut actions = Vec::new();
        let Stage::Installing { key_index } = self.stage else {
            return actions;
        };
        match outcome {
            Ok(kcv) => match crate::identity::KeyIndex::try_from(key_index)
                .map(|index| Smn::new(&self.config.hardware_serial, index))
            {
                Ok(smn) => {
                    let confirm = Message::Confirm(Confirm {
                        key_index,
                        kcv: kcv.clone(),
                        smn: smn.clone(),
                    });
                    self.stage = Stage::AwaitingConfirmed {
                        key_index,
                        smn,
                        kcv,
                    };
                    self.send_request(&confirm, now, &mut actions);
                }
                Err(error) => self.abort(
                    AbortReason::UNEXPECTED_RESPONSE,
                    &error.to_string(),
                    format!("no SMN for key {key_index}: {error}"),
                    now,
                    &mut actions,
                ),
            },
            Err(refusal) => self.abort_for(
                install_abort(refusal, &format!("key {key_index:08}")),
                now,
                &mut actions,
            ),
        }
        actions
    }

    /// When [`handle_tick`](Self::handle_tick) next has something to do, if ever.
    pub fn next_deadline(&self) -> Option<Duration> {
        if matches!(self.stage, Stage::Finished | Stage::NotStarted) {
            return None;
        }
        let response = self.outstanding.as_ref().map(|outstanding| {
            outstanding
                .sent_at
                .saturating_add(self.config.response_timeout)
        });
        match (response, self.decoder.deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// How the session ended, once it has.
    pub fn outcome(&self) -> Option<&TerminalOutcome> {
        self.outcome.as_ref()
    }

    fn send_request(&mut self, message: &Message, now: Duration, actions: &mut Actions) {
        let seq = self.next_seq;
        match message.encode_frame(seq) {
            Ok(bytes) => {
                self.next_seq = seq.wrapping_add(1);
                self.outstanding = Some(Outstanding {
                    seq,
                    bytes: bytes.clone(),
                    request: message.message_type(),
                    sent_at: now,
                    retries: 0,
                });
                actions.push(TerminalAction::Send(bytes));
            }
            Err(error) => self.finish(
                TerminalOutcome::Failed {
                    reason: format!("{} cannot be sent: {error}", message.message_type()),
                },
                actions,
            ),
        }
    }

    fn retransmit(&mut self, cause: RetransmitCause, now: Duration, actions: &mut Actions) {
        let Some(outstanding) = self.outstanding.as_mut() else {
            return;
        };
        if outstanding.retries >= self.config.max_retries {
            let transmissions = outstanding.retries + 1;
            let (request, seq) = (outstanding.request, outstanding.seq);
            let reason = match std::mem::replace(&mut self.stage, Stage::Finished) {
                Stage::Aborting { failure } => {
                    format!("{failure} (the ABORT was not acknowledged)")
                }
                _ => format!(
                    "no valid response to {request} (SEQ {seq}) after {transmissions} transmissions"
                ),
            };
            return self.finish(TerminalOutcome::Failed { reason }, actions);
        }
        outstanding.retries += 1;
        outstanding.sent_at = now;
        actions.push(TerminalAction::Send(outstanding.bytes.clone()));
        actions.push(report(TerminalEvent::Retransmitted {
            seq: outstanding.seq,
            attempt: outstanding.retries,
            cause,
        }));
    }

    /// Sends ABORT and waits for its ACK; the session then fails with `failure`.
    fn abort(
        &mut self,
        reason: AbortReason,
        detail: &str,
        failure: String,
        now: Duration,
        actions: &mut Actions,
    ) {
        let detail = sanitize_detail(detail);
        self.stage = Stage::Aborting { failure };
        actions.push(report(TerminalEvent::AbortSent {
            reason,
            detail: detail.clone(),
        }));
        self.send_request(&Message::Abort(Abort { reason, detail }), now, actions);
    }

    fn finish(&mut self, outcome: TerminalOutcome, actions: &mut Actions) {
        self.stage = Stage::Finished;
        self.outstanding = None;
        self.outcome = Some(outcome.clone());
        actions.push(TerminalAction::Finished(outcome));
    }

    /// Sends ABORT for a mode's reason (see [`abort`](Self::abort)).
    fn abort_for(&mut self, abort: TerminalAbort, now: Duration, actions: &mut Actions) {
        self.abort(abort.reason, &abort.detail, abort.failure, now, actions);
    }
}

fn report(event: TerminalEvent) -> TerminalAction {
    TerminalAction::Report(event)
}

/// The ABORT for a key the caller could not install; `what` names the key ("key 00000278",
/// "the DUKPT key of slot 0 (PIN)").
fn install_abort(refusal: InstallRefusal, what: &str) -> TerminalAbort {
    match refusal {
        InstallRefusal::DoesNotUnwrap(why) => TerminalAbort {
            reason: AbortReason::KEY_BLOCK_DOES_NOT_UNWRAP,
            failure: format!("key block of {what} did not unwrap: {why}"),
            detail: why,
        },
        InstallRefusal::KcvMismatch => TerminalAbort {
            reason: AbortReason::KCV_MISMATCH,
            detail: String::new(),
            failure: format!("{what} does not have the delivered check value"),
        },
        InstallRefusal::NotAuthentic(why) => TerminalAbort {
            reason: AbortReason::DELIVERY_NOT_AUTHENTIC,
            failure: format!("the delivery of {what} is not authentic: {why}"),
            detail: why,
        },
    }
}

/// Upper-case hex of a check value.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02X}")).collect()
}

impl fmt::Display for TerminalOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TerminalOutcome::Injected {
                key_index,
                smn,
                kcv,
            } => write!(
                f,
                "key {key_index:08} injected, SMN {smn}, KCV {}",
                hex(kcv)
            ),
            TerminalOutcome::ProfileInjected {
                profile,
                master,
                dukpt,
            } => {
                write!(f, "profile {profile} injected")?;
                let mut keys: Vec<String> = master
                    .iter()
                    .map(|(key_index, smn)| format!("key {key_index:08}, SMN {smn}"))
                    .collect();
                keys.extend(
                    dukpt
                        .iter()
                        .map(|(label, ksn)| format!("{label} KSN {}", hex(ksn))),
                );
                write!(f, ": {}", keys.join("; "))
            }
            TerminalOutcome::Failed { reason } => write!(f, "failed: {reason}"),
        }
    }
}
