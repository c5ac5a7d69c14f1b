//! The tamper response: the tamper lock, its recording in the vault and its answer by the key ceremonies, and whether the bench's tamper input is watched.

use std::sync::atomic::Ordering;

use keymother_vault::{SecretName, TamperReport, Vault, VaultError};

use super::Dispenser;
use crate::operator::OperatorEvent;

/// How [`Dispenser::tamper_input_missing`]'s reasons start.
const TAMPER_INPUT_MISSING: &str = "tamper input ";

/// Whether the bench's tamper input is watched (docs/SECURITY.md, "Tamper").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TamperWatch {
    /// This bench has no tamper input (`[bench] gpio = "none"`).
    NoInput,
    /// Sampled every few milliseconds.
    Watched { input: String },
    /// Not sampled: its GPIO could not be opened, or failed. `reason` says why.
    Unwatched { input: String, reason: String },
}

/// The tamper input's watch, and whether keys may flow without it.
pub(super) struct TamperWatchState {
    pub(super) watch: TamperWatch,
    /// `[bench] require_tamper_input`: no key while the input is not watched.
    pub(super) required: bool,
}

/// What a tamper leaves until the custodians answer it.
#[derive(Debug, Clone)]
pub(super) struct TamperLock {
    pub(super) input: String,
    /// Ceremonies still needed before the keys may be used again.
    pub(super) missing: Vec<SecretName>,
    /// False while the vault has not recorded the tamper (and deleted the sealed secrets):
    /// retried until it has, and before any ceremony.
    pub(super) recorded: bool,
}

/// The tamper response's first half done: what the second half records.
#[derive(Debug)]
pub struct LockedDown {
    input: String,
    ended: Option<OperatorEvent>,
}

/// What a tamper did.
#[derive(Debug)]
pub struct TamperOutcome {
    /// The vault's part: the audit row and the deleted secrets, or why it failed (the
    /// secrets in memory are gone and the appliance is locked either way).
    pub vault: Result<TamperReport, VaultError>,
    /// The operator whose session the tamper ended.
    pub ended_session: Option<String>,
}

impl Dispenser {
    /// Whether the tamper input is watched now.
    pub fn tamper_watch(&self) -> TamperWatch {
        self.tamper_watch_state().watch.clone()
    }

    /// `[bench] require_tamper_input`.
    pub fn tamper_input_required(&self) -> bool {
        self.tamper_watch_state().required
    }

    /// Sets `[bench] require_tamper_input` and the watch's state before the bench starts.
    pub(crate) fn init_tamper_watch(&self, watch: TamperWatch, required: bool) {
        *self.tamper_watch_state() = TamperWatchState { watch, required };
        self.touch();
    }

    /// The bench opened, lost or got back its tamper input (or tried again in vain).
    pub(crate) fn set_tamper_watch(&self, watch: TamperWatch) {
        let mut state = self.tamper_watch_state();
        if state.watch != watch {
            state.watch = watch;
            drop(state);
            self.touch();
        }
    }

    /// Why no key may flow for want of a tamper input: `Some` only while
    /// `[bench] require_tamper_input` is set and the input is not watched.
    pub fn tamper_input_missing(&self) -> Option<String> {
        let state = self.tamper_watch_state();
        match &state.watch {
            _ if !state.required => None,
            TamperWatch::Watched { .. } => None,
            TamperWatch::NoInput => Some(format!("{TAMPER_INPUT_MISSING}none configured")),
            TamperWatch::Unwatched { input, reason } => Some(format!(
                "{TAMPER_INPUT_MISSING}{input} not watched: {reason}"
            )),
        }
    }

    /// The input whose tamper has not been answered by both key ceremonies yet, if any.
    pub fn tampered(&self) -> Option<String> {
        self.tamper_lock().as_ref().map(|lock| lock.input.clone())
    }

    /// Changes with every tamper.
    pub fn tamper_epoch(&self) -> u64 {
        self.tamper_epoch.load(Ordering::Acquire)
    }

    /// The tamper response, both halves: [`Dispenser::lock_down`] then
    /// [`Dispenser::record_lock_down`].
    pub fn tamper(&self, input: &str) -> TamperOutcome {
        let locked = self.lock_down(input, || {});
        self.record_lock_down(locked)
    }

    /// The first half of the tamper response, all in memory and at once: every secret goes
    /// (KEK, TTK, KDH key) and the appliance locks, so no reservation starts and every port
    /// drops its session; the operator session ends. Nothing waits for the vault.
    ///
    /// `announce` runs once the lock is set (no reservation starts from then on) and before
    /// the ports see the change, so observers hear of the tamper before any port reports
    /// its session dropped.
    pub fn lock_down(&self, input: &str, announce: impl FnOnce()) -> LockedDown {
        *self.tamper_lock() = Some(TamperLock {
            input: input.to_owned(),
            missing: SecretName::ALL.to_vec(),
            recorded: false,
        });
        announce();
        self.tamper_epoch.fetch_add(1, Ordering::AcqRel);
        // Taking the write locks waits for a reservation in progress (milliseconds); a
        // delivery it produced is withheld by its port, which sees the epoch change.
        self.set_keys(None);
        self.set_kdh(None);
        self.generation.fetch_add(1, Ordering::AcqRel);
        let ended = self.sessions().end_all(&format!("tamper: {input}"));
        // Every port's session is dropped: so are the serials they held.
        self.drop_serial_claims();
        self.touch();
        LockedDown {
            input: input.to_owned(),
            ended,
        }
    }

    /// The second half: the vault records the tamper and deletes the sealed KEK, TTK and KDH
    /// identity in one transaction, then the ended operator session is recorded. Should the
    /// vault fail, the first half stands and the vault part is retried
    /// ([`Dispenser::retry_tamper_record`], and before any ceremony).
    pub fn record_lock_down(&self, locked: LockedDown) -> TamperOutcome {
        let vault = self.record_tamper(&locked.input);
        // The logout row follows the tamper row.
        let ended_session = locked.ended.map(|ended| {
            let _ = self.record(&ended, None);
            match ended {
                OperatorEvent::Ended { session, .. } => session.name,
                OperatorEvent::LoggedIn(session) => session.name,
                OperatorEvent::LoginRefused { .. } => String::new(),
            }
        });
        self.touch();
        TamperOutcome {
            vault,
            ended_session,
        }
    }

    fn record_tamper(&self, input: &str) -> Result<TamperReport, VaultError> {
        self.record_tamper_holding(&mut self.vault(), input)
    }

    /// Records the tamper in `vault`, whose lock the caller holds, and notes it recorded.
    fn record_tamper_holding(
        &self,
        vault: &mut Vault,
        input: &str,
    ) -> Result<TamperReport, VaultError> {
        let report = vault.tamper(input);
        match &report {
            Ok(_) => {
                if let Some(lock) = self.tamper_lock().as_mut() {
                    lock.recorded = true;
                }
            }
            // A zeroized vault holds no secret to delete and records nothing: nothing to retry.
            Err(VaultError::AuditTampered(_) | VaultError::Zeroized(_)) => {
                // The sealed secrets were deleted; only the row is missing, and the chain
                // will take none until the officer intervenes: nothing to retry.
                if let Some(lock) = self.tamper_lock().as_mut() {
                    lock.recorded = true;
                }
            }
            Err(_) => {}
        }
        report
    }

    /// Whether the vault has yet to record a tamper (it failed when the input fired).
    pub fn tamper_record_pending(&self) -> bool {
        self.tamper_lock()
            .as_ref()
            .is_some_and(|lock| !lock.recorded)
    }

    /// Tries again to record a tamper the vault failed to record; `None` when none is
    /// pending.
    pub fn retry_tamper_record(&self) -> Option<Result<TamperReport, VaultError>> {
        // Nothing pending (the usual case): the vault is not even taken, so the bench's
        // loop, which calls this every second, never waits behind it for nothing.
        if !self.tamper_record_pending() {
            return None;
        }
        // Looked at again holding the vault: a recording still in progress (the lock-down's
        // own, waiting for a busy database) ends before, so a retry queued behind it sees the
        // tamper recorded and the vault never records it twice.
        let mut vault = self.vault();
        let input = self
            .tamper_lock()
            .as_ref()
            .filter(|lock| !lock.recorded)
            .map(|lock| lock.input.clone())?;
        Some(self.record_tamper_holding(&mut vault, &input))
    }

    /// A key ceremony for `name` was held: once both have been since the tamper, the tamper
    /// lock is lifted.
    pub(super) fn tamper_answered_by(&self, name: SecretName) {
        let mut tamper = self.tamper_lock();
        if let Some(lock) = tamper.as_mut() {
            lock.missing.retain(|missing| *missing != name);
            if lock.missing.is_empty() {
                log::warn!(
                    event = "tamper-cleared", input = lock.input.as_str();
                    "the custodians loaded the KEK and the TTK again after the tamper of {}",
                    lock.input
                );
                *tamper = None;
            }
        }
    }
}
