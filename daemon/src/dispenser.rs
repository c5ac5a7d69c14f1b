//! The dispensing adapter: turns the session's Reserve and Confirm actions into vault transactions, re-wrapping each master key from the KEK to the TTK (tr31) or to an ephemeral key sealed for the terminal (certificate mode).
//!
//! The clear master key exists only inside `reserve`, between unwrapping under the KEK and
//! wrapping for the terminal, in a `SecretKey` that zeroizes when the function returns. Until
//! custodians have loaded both the KEK and the TTK the appliance is locked: terminals get
//! NOT_READY. Certificate mode also needs the trust anchors (settings) and the appliance's KDH
//! identity (vault); the device certificate is verified before anything is reserved.
//!
//! The operator sessions live here too, so that no key is reserved without checking, under
//! the same lock, that an operator is logged in when one is required (lock order: sessions,
//! then the vault).

use std::path::Path;

use crate::clock::{Clock, ClockSettings, ClockStep, ClockTrust, Witness};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::SystemTime;

use keymother_crypto::SecretKey;
use keymother_crypto::tr31::{
    Algorithm, Exportability, Header, KeyBlockProtectionKey, KeyUsage, ModeOfUse, Version,
};
use keymother_crypto::{Kcv, KeyFamily};
use keymother_pki::key_transport::{DeliveryContext, seal_for_terminal};
use keymother_pki::login::LoginResponse;
use keymother_pki::{PrivateKey, Role, VerifiedCertificate};
use keymother_protocol::{
    CertificateDelivery, CertificateRequest, ConfirmRefusal, Confirmed, Delivery, DispenseRefusal,
    ModeRequest, Smn, TerminalIdentity,
};
use keymother_vault::{
    ConfirmationReport, DispenseError, InstalledSecret, SecretName, TamperReport, Vault, VaultError,
};
use tokio::sync::Notify;

use crate::config::OperatorSettings;
use crate::operator::{Challenge, LoginFailure, OperatorEvent, OperatorSession, Sessions};
use crate::trust::Trust;

/// The vault and the two keys dispensing needs, held for the daemon's lifetime.
pub struct Dispenser {
    vault: Mutex<Vault>,
    keys: RwLock<Option<LoadedKeys>>,
    /// Bumped whenever the loaded keys change, so port tasks can reconfigure their sessions.
    generation: AtomicU64,
    device_id: String,
    quarantine_after: u32,
    /// The CAs and CRLs of `[pki]` that certificate mode and operator logins check against;
    /// `None` without `[pki]`.
    trust: RwLock<Option<Arc<Trust>>>,
    /// The appliance's KDH key and certificate, once installed and valid.
    kdh: RwLock<Option<Arc<LoadedKdh>>>,
    sessions: Mutex<Sessions>,
    /// Set by a tamper until custodians have loaded both the KEK and the TTK again.
    tamper: Mutex<Option<TamperLock>>,
    /// Bumped by every tamper, so port tasks drop their sessions (cached deliveries too).
    tamper_epoch: AtomicU64,
    /// Whether the bench's tamper input is watched, and whether keys may flow when it is not.
    tamper_watch: Mutex<TamperWatchState>,
    /// Woken whenever something the appliance's state shows may have changed (keys, the
    /// operator, the inventory, a tamper): the runtime then recomputes it.
    changed: Arc<Notify>,
    /// Whether the clock can be trusted (logins and certificate checks need it to be).
    clock: Clock,
}

/// How [`Dispenser::tamper_input_missing`]'s reasons start.
pub(crate) const TAMPER_INPUT_MISSING: &str = "tamper input ";

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

struct TamperWatchState {
    watch: TamperWatch,
    /// `[bench] require_tamper_input`: no key while the input is not watched.
    required: bool,
}

/// What a tamper leaves until the custodians answer it.
#[derive(Debug, Clone)]
struct TamperLock {
    input: String,
    /// Ceremonies still needed before the keys may be used again.
    missing: Vec<SecretName>,
    /// False while the vault has not recorded the tamper (and deleted the sealed secrets):
    /// retried until it has, and before any ceremony.
    recorded: bool,
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

/// The appliance's state as the display and the LEDs show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// KEK and TTK loaded, and no tamper outstanding.
    Unlocked,
    /// The KEK or the TTK is not loaded (or could not be unsealed).
    Locked,
    /// The tamper input fired; both ceremonies are needed again. The input's name.
    Tampered(String),
}

/// The KDH identity in memory.
struct LoadedKdh {
    key: PrivateKey,
    certificate: Vec<u8>,
    verified: VerifiedCertificate,
}

/// The unsealed KEK and TTK, ready for use; zeroized when dropped.
struct LoadedKeys {
    kek: KeyBlockProtectionKey,
    ttk: KeyBlockProtectionKey,
    ttk_version: Version,
    ttk_kcv: Kcv,
}

impl LoadedKeys {
    /// Unseals both keys, or `None` while either is missing (the appliance stays locked).
    fn unseal(vault: &Vault) -> Result<Option<LoadedKeys>, VaultError> {
        let (kek, ttk) = match (
            vault.load_secret(SecretName::Kek),
            vault.load_secret(SecretName::Ttk),
        ) {
            (Ok(kek), Ok(ttk)) => (kek, ttk),
            (Err(VaultError::SecretMissing(_)), _) | (_, Err(VaultError::SecretMissing(_))) => {
                return Ok(None);
            }
            (Err(error), _) | (_, Err(error)) => return Err(error),
        };
        let ttk_version = match ttk.algorithm().family() {
            KeyFamily::Tdes => Version::B,
            KeyFamily::Aes => Version::D,
        };
        Ok(Some(LoadedKeys {
            kek: KeyBlockProtectionKey::new(&kek),
            ttk: KeyBlockProtectionKey::new(&ttk),
            ttk_version,
            ttk_kcv: ttk.kcv(),
        }))
    }
}

/// Why the daemon could not start dispensing.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("opening the vault: {0}")]
    Vault(#[from] VaultError),
    #[error("opening the vault: {0}")]
    Task(String),
    /// A CA or CRL file named by `[pki]` was refused.
    #[error("{0}")]
    Settings(#[from] crate::config::ConfigError),
}

impl Dispenser {
    /// Opens the vault in `data_dir` and unseals the KEK and the TTK if both are loaded;
    /// operators log in under `operators`, against the trust anchors [`Dispenser::set_trust`]
    /// gives.
    pub fn open(
        data_dir: &Path,
        quarantine_after: u32,
        operators: OperatorSettings,
        clock: &ClockSettings,
    ) -> Result<Dispenser, OpenError> {
        let vault = Vault::open_as_owner(data_dir)?;
        let floor = vault.last_audit_at()?;
        let trust = crate::clock::detect(clock, keymother_vault::clock::now(), floor);
        match &trust {
            ClockTrust::NotSet { reason } if clock.require_trusted => log::warn!(
                event = "clock-not-set";
                "the clock is not trusted: {reason}; logins and certificate checks are refused until two people set it (keymother clock set)"
            ),
            ClockTrust::Trusted(source) => {
                log::info!(event = "clock"; "the clock is trusted: {source:?}")
            }
            ClockTrust::NotSet { .. } => {}
        }
        let clock = Clock::new(clock, trust);
        if let Err(failure) = vault.verify_audit() {
            log::error!(
                event = "audit-tampered";
                "the audit chain does not verify: {failure}; recorded actions are refused until the security officer intervenes"
            );
        }
        let tamper = vault.tamper_outstanding()?.map(|outstanding| TamperLock {
            missing: outstanding.missing(),
            input: outstanding.input,
            recorded: true,
        });
        let keys = match &tamper {
            Some(lock) => {
                log::warn!(
                    event = "tampered", input = lock.input.as_str();
                    "locked since the tamper input {} fired: custodians must load the {} again",
                    lock.input,
                    lock.missing.iter().map(ToString::to_string).collect::<Vec<_>>().join(" and ")
                );
                None
            }
            None => LoadedKeys::unseal(&vault)?,
        };
        if keys.is_none() && tamper.is_none() {
            log::warn!(
                "event=locked reason=\"the KEK or the TTK is not loaded; run the key ceremonies\""
            );
        }
        let device_id = vault.device_id().to_string();
        Ok(Dispenser {
            sessions: Mutex::new(Sessions::new(&device_id, operators)),
            device_id,
            keys: RwLock::new(keys),
            generation: AtomicU64::new(0),
            vault: Mutex::new(vault),
            quarantine_after,
            trust: RwLock::new(None),
            kdh: RwLock::new(None),
            tamper: Mutex::new(tamper),
            tamper_epoch: AtomicU64::new(0),
            tamper_watch: Mutex::new(TamperWatchState {
                watch: TamperWatch::NoInput,
                required: false,
            }),
            changed: Arc::new(Notify::new()),
            clock,
        })
    }

    /// Whether the clock can be trusted.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Takes one person's reading of the time; once two agree, the appliance's clock is set,
    /// audited (old and new time, both people), and logins and certificate checks work.
    pub fn witness_time(&self, witness: Witness) -> Result<ClockStep, String> {
        let floor = self
            .vault()
            .last_audit_at()
            .map_err(|error| error.to_string())?;
        let step = self
            .clock
            .witness(witness, floor)
            .map_err(|refusal| refusal.to_string())?;
        if let ClockStep::Set {
            old,
            new,
            witnesses,
            ..
        } = &step
        {
            let event = keymother_vault::AuditEvent::ClockSet {
                old: crate::operator::rfc3339(*old),
                new: crate::operator::rfc3339(*new),
                witnesses: witnesses.clone(),
            };
            if let Err(error) = self.vault().record_audit(event) {
                log::error!(event = "clock-set"; "the clock was set but could not be audited: {error}");
            }
            log::warn!(
                event = "clock-set";
                "the clock was set from {} to {} by {witnesses}",
                crate::operator::rfc3339(*old),
                crate::operator::rfc3339(*new)
            );
            // Certificates judged by the old time are judged again.
            self.reload_kdh();
            self.touch();
        }
        Ok(step)
    }

    /// Woken whenever the appliance's state may have changed.
    pub(crate) fn changes(&self) -> Arc<Notify> {
        Arc::clone(&self.changed)
    }

    /// Wakes the state watcher.
    pub(crate) fn touch(&self) {
        self.changed.notify_one();
    }

    fn tamper_lock(&self) -> MutexGuard<'_, Option<TamperLock>> {
        // Replaced or edited in one statement: a poisoned lock holds a consistent value.
        self.tamper
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn tamper_watch_state(&self) -> MutexGuard<'_, TamperWatchState> {
        // Each change is one assignment: a poisoned lock holds a consistent value.
        self.tamper_watch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

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

    /// Ready, locked or tampered.
    pub fn readiness(&self) -> Readiness {
        if let Some(input) = self.tampered() {
            return Readiness::Tampered(input);
        }
        if self.keys().is_some() {
            Readiness::Unlocked
        } else {
            Readiness::Locked
        }
    }

    /// The tamper response, both halves: [`Dispenser::lock_down`] then
    /// [`Dispenser::record_lock_down`].
    pub fn tamper(&self, input: &str) -> TamperOutcome {
        let locked = self.lock_down(input);
        self.record_lock_down(locked)
    }

    /// The first half of the tamper response, all in memory and at once: every secret goes
    /// (KEK, TTK, KDH key) and the appliance locks, so no reservation starts and every port
    /// drops its session; the operator session ends. Nothing waits for the vault.
    pub fn lock_down(&self, input: &str) -> LockedDown {
        *self.tamper_lock() = Some(TamperLock {
            input: input.to_owned(),
            missing: SecretName::ALL.to_vec(),
            recorded: false,
        });
        self.tamper_epoch.fetch_add(1, Ordering::AcqRel);
        // Taking the write locks waits for a reservation in progress (milliseconds); a
        // delivery it produced is withheld by its port, which sees the epoch change.
        *self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        *self
            .kdh
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        self.generation.fetch_add(1, Ordering::AcqRel);
        let ended = self.sessions().end_all(&format!("tamper: {input}"));
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
        let report = self.vault().tamper(input);
        match &report {
            Ok(_) => {
                if let Some(lock) = self.tamper_lock().as_mut() {
                    lock.recorded = true;
                }
            }
            Err(VaultError::AuditTampered(_)) => {
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
        let input = self
            .tamper_lock()
            .as_ref()
            .filter(|lock| !lock.recorded)
            .map(|lock| lock.input.clone())?;
        Some(self.record_tamper(&input))
    }

    /// A key ceremony: seals `key` as `name` (audited) and reloads the keys. After a tamper
    /// the keys are used again only once both ceremonies have been held since; the tamper
    /// must be recorded first. Returns what was installed and whether the appliance is ready.
    pub fn install_secret(
        &self,
        name: SecretName,
        key: &SecretKey,
        component_count: usize,
    ) -> Result<(InstalledSecret, bool), VaultError> {
        if let Some(Err(error)) = self.retry_tamper_record() {
            return Err(VaultError::Refused(format!(
                "the tamper could not be recorded yet, so no ceremony can follow it: {error}"
            )));
        }
        let installed = self.vault().install_secret(name, key, component_count)?;
        {
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
        let ready = self.reload_keys()?;
        Ok((installed, ready))
    }

    /// Sets the trust anchors certificate mode checks against (at start, from the settings),
    /// and loads the KDH identity against them.
    pub fn set_trust(&self, trust: Option<Trust>) {
        *self
            .trust
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = trust.map(Arc::new);
        self.reload_kdh();
    }

    /// Re-reads the KDH identity (after a KDH command or a zeroize). Certificate mode is
    /// offered only with a KDH certificate that verifies against the KDH CA now.
    pub fn reload_kdh(&self) {
        let trust = self.trust();
        let loaded = match (trust, self.vault().load_kdh()) {
            (Some(trust), Ok(Some(identity))) => {
                match trust.anchors.verify(
                    Role::KeyDistributionHost,
                    &identity.certificate,
                    keymother_vault::clock::now(),
                    None,
                ) {
                    Ok(verified) => Some(Arc::new(LoadedKdh {
                        key: identity.key,
                        certificate: identity.certificate,
                        verified,
                    })),
                    Err(error) => {
                        log::warn!(
                            event = "kdh-certificate-refused";
                            "certificate mode is off: the installed KDH certificate does not verify: {error}"
                        );
                        None
                    }
                }
            }
            (_, Ok(_)) => None,
            (_, Err(error)) => {
                log::warn!(event = "kdh-unavailable"; "certificate mode is off: {error}");
                None
            }
        };
        *self
            .kdh
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = loaded;
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.touch();
    }

    /// The trust anchors, if configured.
    pub fn trust(&self) -> Option<Arc<Trust>> {
        self.trust
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn kdh(&self) -> Option<Arc<LoadedKdh>> {
        self.kdh
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The appliance's device id.
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// The TTK's check value, announced to terminals so a wrong TTK shows before any key
    /// flows; `None` while the appliance is locked.
    pub fn ttk_kcv(&self) -> Option<Kcv> {
        self.keys().as_ref().map(|keys| keys.ttk_kcv)
    }

    /// Changes whenever the loaded keys change.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Re-reads the sealed keys after a ceremony (or a zeroize).
    pub fn reload_keys(&self) -> Result<bool, VaultError> {
        // On any failure the appliance locks: keys that cannot be re-read are not kept; after
        // a tamper they stay unloaded until both ceremonies have been held again.
        let keys = if self.tampered().is_some() {
            Ok(None)
        } else {
            LoadedKeys::unseal(&self.vault())
        };
        let ready = matches!(keys, Ok(Some(_)));
        let (keys, outcome) = match keys {
            Ok(keys) => (keys, Ok(ready)),
            Err(error) => (None, Err(error)),
        };
        *self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = keys;
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.touch();
        outcome
    }

    /// Records the settings in force in the audit trail when they differ from the last
    /// recorded ones (a configuration change), identified by their SHA-256.
    pub fn record_settings(&self, digest: &str) -> Result<bool, VaultError> {
        let mut vault = self.vault();
        let last = vault.last_audit_details("config-change")?;
        if last.is_some_and(|details| details.contains(digest)) {
            return Ok(false);
        }
        vault.record_audit(keymother_vault::AuditEvent::ConfigChange {
            what: format!("keymotherd settings in force, SHA-256 {digest}"),
            operator: None,
        })?;
        Ok(true)
    }

    /// Runs `work` with the vault (for control commands). Serial ports wait meanwhile.
    pub fn with_vault<T>(&self, work: impl FnOnce(&mut Vault) -> T) -> T {
        let outcome = work(&mut self.vault());
        // An import, a void, a zeroize...: the state shown may have changed.
        self.touch();
        outcome
    }

    /// Keys available in the inventory (without waking the state watcher).
    pub(crate) fn available_keys(&self) -> Result<u64, VaultError> {
        self.vault().available_keys()
    }

    fn keys(&self) -> std::sync::RwLockReadGuard<'_, Option<LoadedKeys>> {
        // Keys are replaced whole under the write lock, so a poisoned lock still holds a
        // consistent value.
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn vault(&self) -> MutexGuard<'_, Vault> {
        // A panic while holding the lock aborts the process (panic = "abort" in release), and
        // every vault operation is its own transaction, so a poisoned lock holds a consistent
        // vault: carry on with it.
        self.vault
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn sessions(&self) -> MutexGuard<'_, Sessions> {
        // Every change to the sessions is one assignment; a poisoned lock holds a consistent
        // value.
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes an operator event to the journal and the audit chain; `peer` is the local user
    /// who asked, if anyone did.
    fn record(&self, event: &OperatorEvent, peer: Option<&str>) -> Result<(), VaultError> {
        event.log(peer);
        self.touch();
        let recorded = self.vault().record_audit(event.audit(peer)).map(drop);
        if let Err(error) = &recorded {
            log::error!(event = "audit-failed"; "an operator event could not be audited: {error}");
        }
        recorded
    }

    /// The operator logged in now, after recording the end of a session whose time is up.
    fn current_operator(&self, sessions: &mut Sessions, now: SystemTime) -> Option<String> {
        if let Some(ended) = sessions.expire(now) {
            let _ = self.record(&ended, None);
        }
        sessions.current(now).map(|session| session.name.clone())
    }

    /// Whether keys (and voids and SMN exports) need an operator session.
    pub fn operator_required(&self) -> bool {
        self.sessions().required()
    }

    /// Whether operator login is required but there is no operator CA (`[pki]`) to log in
    /// against: nobody can log in, so nothing is dispensed until the settings have one.
    pub fn operator_ca_missing(&self) -> bool {
        self.operator_required() && self.trust().is_none()
    }

    /// The operator session open now, if any.
    pub fn operator_session(&self, now: SystemTime) -> Option<OperatorSession> {
        let mut sessions = self.sessions();
        self.current_operator(&mut sessions, now);
        sessions.current(now).cloned()
    }

    /// A new single-use login challenge, and the login window.
    pub fn login_challenge(
        &self,
        now: SystemTime,
    ) -> Result<(Challenge, std::time::Duration), LoginFailure> {
        if self.trust().is_none() {
            return Err(LoginFailure::NotConfigured);
        }
        self.clock.check().map_err(LoginFailure::ClockNotSet)?;
        let mut sessions = self.sessions();
        let challenge = sessions
            .challenge(now)
            .map_err(|error| LoginFailure::Random(error.to_string()))?;
        Ok((challenge, sessions.window()))
    }

    /// Checks a signed login answer and opens the operator's session (ending the one before);
    /// every attempt is audited. `peer` is the local user who sent it. Without an operator CA
    /// the answer is refused before anything is looked at, unaudited like the challenge it
    /// could not have had: nothing changes.
    pub fn login(
        &self,
        response: &LoginResponse,
        peer: &str,
        now: SystemTime,
    ) -> Result<OperatorSession, LoginFailure> {
        let Some(trust) = self.trust() else {
            // No challenge can have been issued; nothing to check, use up or audit.
            return Err(LoginFailure::NotConfigured);
        };
        // Nor while the clock is not set: the time window would be judged by a wrong clock.
        self.clock.check().map_err(LoginFailure::ClockNotSet)?;
        let mut sessions = self.sessions();
        let (outcome, events) = sessions.login(Some(&trust), response, now);
        for event in &events {
            if self.record(event, Some(peer)).is_err()
                && matches!(event, OperatorEvent::LoggedIn(_))
            {
                // A session the audit trail does not know of must not dispense.
                sessions.end_all("the login could not be audited");
                return Err(LoginFailure::NotAudited);
            }
        }
        outcome
    }

    /// Ends the operator session; `None` when none was open.
    pub fn logout(&self, peer: &str, now: SystemTime) -> Option<OperatorSession> {
        let mut sessions = self.sessions();
        self.current_operator(&mut sessions, now);
        let ended = sessions.logout()?;
        let _ = self.record(&ended, Some(peer));
        match ended {
            OperatorEvent::Ended { session, .. } => Some(session),
            _ => None,
        }
    }

    /// Ends the session if its time is up (called on a timer, so the end is recorded when it
    /// happens rather than at the next key request).
    pub fn expire_operator_session(&self, now: SystemTime) {
        let mut sessions = self.sessions();
        self.current_operator(&mut sessions, now);
    }

    /// When the open session ends, if one is open.
    pub fn operator_session_ends(&self) -> Option<SystemTime> {
        self.sessions().next_expiry()
    }

    /// Ends the operator session and forgets all login challenges at once: the hook for a
    /// zeroize and for the tamper input. `reason` goes to the audit trail.
    pub fn end_operator_sessions(&self, reason: &str) {
        let mut sessions = self.sessions();
        if let Some(ended) = sessions.end_all(reason) {
            let _ = self.record(&ended, None);
        }
    }

    /// The KDH certificate (DER) offered in certificate mode; empty while the appliance has
    /// none (or its validity has ended), so certificate mode is not chosen.
    pub fn kdh_certificate(&self) -> Vec<u8> {
        match self.kdh() {
            Some(kdh) if kdh.verified.not_after() > keymother_vault::clock::now() => {
                kdh.certificate.clone()
            }
            _ => Vec::new(),
        }
    }

    /// Checks a terminal's device certificate: the manufacturer CA, validity, key usage, the
    /// CRL, and that it names the terminal's hardware serial. Nothing is reserved before.
    fn verify_device(
        &self,
        terminal: &TerminalIdentity,
        request: &CertificateRequest,
    ) -> Result<(VerifiedCertificate, Arc<LoadedKdh>, Arc<Trust>), DispenseRefusal> {
        let (Some(trust), Some(kdh)) = (self.trust(), self.kdh()) else {
            return Err(DispenseRefusal::CertificateRefused(
                "certificate mode is not set up on this appliance".to_owned(),
            ));
        };
        self.clock
            .check()
            .map_err(DispenseRefusal::CertificateRefused)?;
        let verified = trust
            .anchors
            .verify(
                Role::TerminalDevice,
                &request.device_certificate,
                keymother_vault::clock::now(),
                trust.device_crl.as_ref(),
            )
            .map_err(|error| DispenseRefusal::CertificateRefused(error.to_string()))?;
        let serial = terminal.hardware_serial.as_str();
        if !verified.subject_names(serial) {
            return Err(DispenseRefusal::CertificateRefused(format!(
                "the device certificate is for {}, not for hardware serial {serial}",
                verified.subject()
            )));
        }
        Ok((verified, kdh, trust))
    }

    /// Reserves (durably, before returning) the terminal's key and wraps it under the TTK.
    pub fn reserve(
        &self,
        terminal: &TerminalIdentity,
        request: &ModeRequest,
        port: &str,
    ) -> Result<Delivery, DispenseRefusal> {
        let certificate = match request {
            ModeRequest::Certificate(request) => {
                Some((self.verify_device(terminal, request)?, request.nonce))
            }
            ModeRequest::Tr31 => None,
        };
        let keys = self.keys();
        let Some(keys) = keys.as_ref() else {
            return Err(DispenseRefusal::NotReady);
        };
        // A tamper sets its lock before it drops the keys: with both checked, a tamper that
        // has begun refuses here whichever step it is at.
        if self.tampered().is_some() {
            return Err(DispenseRefusal::NotReady);
        }
        if self.tamper_input_missing().is_some() {
            return Err(DispenseRefusal::TamperInputUnwatched);
        }
        // Held until the reservation is committed: a logout that returned has stopped every
        // reservation after it.
        let mut sessions = self.sessions();
        let operator = self.current_operator(&mut sessions, keymother_vault::clock::now());
        if operator.is_none() && sessions.required() {
            return Err(DispenseRefusal::NoOperator);
        }
        let serial = terminal.hardware_serial.to_string();
        let reservation = self
            .vault()
            .reserve_key_by(&serial, port, operator.as_deref())
            .map_err(|error| match error {
                DispenseError::NoKeysAvailable => DispenseRefusal::NoKeysAvailable,
                other => DispenseRefusal::Internal(other.to_string()),
            })?;
        drop(sessions);
        self.touch();
        let internal = |what: &str, error: &dyn std::fmt::Display| {
            DispenseRefusal::Internal(format!("key {:08}: {what}: {error}", reservation.key_index))
        };
        let unwrapped = keys
            .kek
            .unwrap(&reservation.key_block)
            .map_err(|error| internal("does not open under the KEK", &error))?;
        let master_key = unwrapped.key;
        if master_key.kcv().to_string() != reservation.kcv {
            return Err(internal("stored check value differs", &reservation.kcv));
        }
        if let Some(((device, kdh, trust), nonce)) = certificate {
            let context = DeliveryContext {
                hardware_serial: &serial,
                nonce: &nonce,
                key_index: reservation.key_index,
            };
            let sealed =
                seal_for_terminal(&kdh.key, &device, &context, &master_key, &trust.kdh_crl)
                    .map_err(|error| internal("cannot be sealed for the terminal", &error))?;
            let mode_data = CertificateDelivery {
                nonce: sealed.nonce,
                encrypted_key: sealed.encrypted_key,
                signature: sealed.signature,
                crl: sealed.crl,
            }
            .encode()
            .map_err(|error| internal("cannot be framed", &error))?;
            return Ok(Delivery {
                key_index: reservation.key_index,
                key_block: sealed.key_block,
                kcv: sealed.kcv,
                mode_data,
            });
        }
        let algorithm = match master_key.algorithm().family() {
            KeyFamily::Tdes => Algorithm::Tdes,
            KeyFamily::Aes => Algorithm::Aes,
        };
        // For the terminal the master key unwraps working keys: decrypt only, not exportable.
        let header = Header::new(
            keys.ttk_version,
            KeyUsage::KeyEncryption,
            algorithm,
            ModeOfUse::DecryptOnly,
            Exportability::NonExportable,
        );
        let key_block = keys
            .ttk
            .wrap(&header, &master_key)
            .map_err(|error| internal("cannot be wrapped under the TTK", &error))?;
        Ok(Delivery {
            key_index: reservation.key_index,
            key_block,
            kcv: master_key.kcv().as_bytes().to_vec(),
            mode_data: Vec::new(),
        })
    }

    /// Records that the delivery was written to the port.
    pub fn mark_sent(
        &self,
        terminal: &TerminalIdentity,
        key_index: u32,
    ) -> Result<(), DispenseError> {
        self.vault()
            .mark_sent(key_index, &terminal.hardware_serial.to_string())
    }

    /// Checks and records the terminal's confirmation, with the operator it names: the one
    /// the key was reserved under. A confirmation is recorded even when that session has
    /// ended since (the key already left); see [`Vault::confirm_key_by`].
    pub fn confirm(
        &self,
        terminal: &TerminalIdentity,
        key_index: u32,
        kcv: &[u8],
        smn: &Smn,
        port: &str,
    ) -> Result<(Confirmed, Option<String>), ConfirmRefusal> {
        let operator = {
            let mut sessions = self.sessions();
            self.current_operator(&mut sessions, keymother_vault::clock::now())
        };
        let serial = terminal.hardware_serial.to_string();
        let kcv = kcv
            .iter()
            .map(|byte| format!("{byte:02X}"))
            .collect::<String>();
        let smn_text = smn.to_string();
        let model = terminal.model.to_string();
        let report = ConfirmationReport {
            key_index,
            hardware_serial: &serial,
            kcv: &kcv,
            smn: &smn_text,
            port,
            terminal_model: &model,
        };
        let confirmed =
            self.vault()
                .confirm_key_by(&report, self.quarantine_after, operator.as_deref());
        self.touch();
        match confirmed {
            Ok(injection) => Ok((
                Confirmed {
                    key_index,
                    smn: smn.clone(),
                },
                injection.operator,
            )),
            Err(DispenseError::KcvMismatch { quarantined, .. }) => {
                Err(ConfirmRefusal::KcvMismatch { quarantined })
            }
            Err(DispenseError::NotDeliveredTo { .. } | DispenseError::SmnMismatch { .. }) => {
                Err(ConfirmRefusal::NotDelivered)
            }
            Err(other) => Err(ConfirmRefusal::Internal(other.to_string())),
        }
    }
}
