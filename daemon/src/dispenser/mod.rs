//! The dispensing adapter: turns the session's Reserve and Confirm actions into vault transactions, re-wrapping each master key from the KEK to the TTK (tr31) or to an ephemeral key sealed for the terminal (certificate mode).
//!
//! The clear master key exists only inside `reserve`, between unwrapping under the KEK and
//! wrapping for the terminal, in a `SecretKey` that zeroizes when the function returns. Until
//! custodians have loaded both the KEK and the TTK the appliance is locked: terminals get
//! NOT_READY. Certificate mode also needs the trust anchors (settings) and the appliance's KDH
//! identity (vault); the device certificate is verified before anything is reserved.
//!
//! The operator sessions live here too, so that no key is reserved without checking, under
//! the same lock, that an operator is logged in when one is required (the lock order is
//! written once, on `Rank` below).
//!
//! One `Dispenser`, its methods by responsibility: `secrets.rs` (the KEK and the TTK, the
//! trust anchors, the KDH identity), `tamper.rs` (the tamper lock and the tamper input's
//! watch), `sessions.rs` (operator sessions), `admission.rs` (one port per hardware serial,
//! re-injection only under a grant), `reservation.rs` (reserve, mark sent, confirm) and
//! `modes/` (one file per key mode: how a reserved master key leaves the appliance).

mod admission;
mod dukpt;
mod expected;
mod lock_order;
mod modes;
mod reservation;
mod secrets;
mod sessions;
mod tamper;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};
use std::time::Duration;

use keymother_vault::{StatusReader, Vault, VaultCounts, VaultError};
use tokio::sync::Notify;

use crate::clock::{Clock, ClockSettings, ClockStep, ClockTrust, Witness};
use crate::config::OperatorSettings;
use crate::operator::Sessions;
use crate::trust::Trust;
use lock_order::Ordered;
use secrets::{LoadedKdh, LoadedKeys};
use tamper::{TamperLock, TamperWatchState};

/// The longest an import's chunk waits for the threads already waiting for the vault (the
/// ports) before it takes its turn anyway: the import never stands still behind busy ports.
const IMPORT_YIELDS_AT_MOST: Duration = Duration::from_millis(2);

pub use tamper::{LockedDown, TamperOutcome, TamperWatch};

/// The vault and the two keys dispensing needs, held for the daemon's lifetime.
///
/// Its locks are taken only through the accessors at the end of this file, in the order
/// `Rank` states.
pub struct Dispenser {
    vault: Mutex<Vault>,
    /// Threads waiting for `vault` now: an import lets them go first ([`Dispenser::import_turn`]).
    waiting_for_vault: AtomicUsize,
    /// The vault's directory, for the status reader's connection.
    data_dir: PathBuf,
    /// What the status line, the display and `status` count, read on a connection of its
    /// own (opened at its first use), never holding `vault`.
    status_reader: Mutex<Option<StatusReader>>,
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
    /// Whether a terminal must be on an open expected-device list (`expected.rs`).
    require_expected_devices: AtomicBool,
    /// The hardware serials being injected, each held by one port's session.
    claims: Mutex<admission::SerialClaims>,
    /// The vault was zeroized (before this start, or by the `zeroize` command since): nothing
    /// is dispensed or recorded any more; the registries and the audit trail are still read.
    zeroized: AtomicBool,
    /// SQLite's findings once the background integrity check found the vault damaged: nothing
    /// is dispensed again until keymotherd is restarted on a vault that passes the full check.
    damaged: std::sync::OnceLock<String>,
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
    /// The vault was zeroized: locked until it is recommissioned (offline).
    Zeroized,
    /// The background integrity check found the vault damaged: SQLite's findings.
    Damaged(String),
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
        // The whole-database check runs in the background once the daemon is READY
        // (crate::integrity); what guards a dispense is checked below.
        let vault = match Vault::open_as_owner_deferring_integrity(data_dir) {
            // The zeroized state: read-only, for its exports and its audit trail.
            Err(VaultError::Zeroized(_)) => Vault::open_zeroized_as_owner(data_dir)?,
            opened => opened?,
        };
        let zeroized = vault.is_zeroized();
        if zeroized {
            log::warn!(
                event = "zeroized";
                "the vault was zeroized: no key is dispensed; its registries and audit trail can still be read and exported; recommission it to start again (keymother vault recommission)"
            );
        }
        let floor = vault.last_audit_at()?;
        let trust = crate::clock::detect(clock, keymother_vault::clock::now(), floor);
        match &trust {
            ClockTrust::NotSet { reason } if clock.require_trusted => log::warn!(
                event = "clock-not-set";
                "the clock is not trusted: {reason}; logins and certificate checks are refused until two people set it (keymother clock set)"
            ),
            ClockTrust::Trusted(source) => {
                log::info!(event = "clock"; "the clock is trusted: {source}")
            }
            ClockTrust::NotSet { .. } => {}
        }
        let clock = Clock::new(clock, trust);
        // The chain from its last verified point to the head; the whole chain is walked in
        // the background after READY (crate::integrity). A chain that fails locks the
        // appliance as a damaged vault does.
        let damaged = std::sync::OnceLock::new();
        match vault.verify_audit_since_checkpoint() {
            Ok(report) => {
                let walked = (report.rows + 1).saturating_sub(report.first_walked);
                log::info!(
                    event = "audit-verified", rows = report.rows, walked = walked;
                    "the audit chain verified: {walked} {} walked before READY, from row {} to its head at row {}",
                    if walked == 1 { "row" } else { "rows" },
                    report.first_walked,
                    report.rows
                )
            }
            Err(failure) => {
                log::error!(
                    event = "audit-tampered";
                    "the audit chain does not verify: {failure}; no key is dispensed until the security officer intervenes"
                );
                if !zeroized {
                    let _ = damaged.set(format!("the audit chain does not verify: {failure}"));
                }
            }
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
            None if zeroized => None,
            None => LoadedKeys::unseal(&vault)?,
        };
        if keys.is_none() && tamper.is_none() && !zeroized {
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
            waiting_for_vault: AtomicUsize::new(0),
            data_dir: data_dir.to_owned(),
            status_reader: Mutex::new(None),
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
            require_expected_devices: AtomicBool::new(false),
            claims: Mutex::new(admission::SerialClaims::default()),
            zeroized: AtomicBool::new(zeroized),
            damaged,
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

    /// The appliance's device id.
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// Ready, locked, tampered or zeroized.
    pub fn readiness(&self) -> Readiness {
        if self.is_zeroized() {
            return Readiness::Zeroized;
        }
        if let Some(findings) = self.vault_damaged() {
            return Readiness::Damaged(findings);
        }
        if let Some(input) = self.tampered() {
            return Readiness::Tampered(input);
        }
        if self.keys().is_some() {
            Readiness::Unlocked
        } else {
            Readiness::Locked
        }
    }

    /// Whether the vault was zeroized.
    pub fn is_zeroized(&self) -> bool {
        self.zeroized.load(Ordering::Acquire)
    }

    /// SQLite's findings when the background integrity check found the vault damaged.
    pub fn vault_damaged(&self) -> Option<String> {
        self.damaged.get().cloned()
    }

    /// The background integrity check found the vault damaged: nothing is dispensed from now
    /// on. True the first time (the caller audits it), false when already marked.
    pub(crate) fn mark_damaged(&self, findings: &str) -> bool {
        let first = self.damaged.set(findings.to_owned()).is_ok();
        self.touch();
        first
    }

    /// The `zeroize` command destroyed the vault's secrets: the zeroized state from now on.
    pub(crate) fn mark_zeroized(&self) {
        self.zeroized.store(true, Ordering::Release);
        self.touch();
    }

    /// Records the settings in force in the audit trail when they differ from the last
    /// recorded ones (a configuration change), identified by their SHA-256.
    pub fn record_settings(&self, digest: &str) -> Result<bool, VaultError> {
        if self.is_zeroized() {
            // Nothing is recorded in a zeroized vault: its chain ends at the zeroize.
            return Ok(false);
        }
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

    /// Keys available in the inventory (without waking the state watcher), counted on a
    /// connection of its own: the ports never wait for a count (about 10 ms with a million
    /// keys).
    pub(crate) fn available_keys(&self) -> Result<u64, VaultError> {
        if self.zeroized.load(Ordering::Acquire) {
            return Ok(0);
        }
        self.read_status(StatusReader::available_keys)
    }

    /// Everything `status` shows of the vault, read in one snapshot on the status reader's
    /// connection: a request never stalls the ports (with a million keys the inventory's
    /// count reads every key's row).
    pub(crate) fn vault_counts(&self) -> Result<VaultCounts, VaultError> {
        let mut counts = self.read_status(StatusReader::counts)?;
        if self.zeroized.load(Ordering::Acquire) {
            counts.available = 0;
        }
        Ok(counts)
    }

    /// Runs `read` on the status reader, opening it first if need be.
    fn read_status<T>(
        &self,
        read: impl FnOnce(&StatusReader) -> Result<T, VaultError>,
    ) -> Result<T, VaultError> {
        let mut slot = Ordered::take(Rank::Leaf, || {
            self.status_reader
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        });
        let reader = match &mut *slot {
            Some(reader) => reader,
            empty @ None => empty.insert(StatusReader::open(&self.data_dir)?),
        };
        read(reader)
    }

    /// The vault, as an import's turn to write a chunk on its own connection
    /// ([`keymother_vault::WriteTurn`]): taken after every thread already waiting for the
    /// vault, so a port waits for at most one chunk, and never polls SQLite's lock behind it.
    /// Waits at most [`IMPORT_YIELDS_AT_MOST`] for the waiting threads to have their turn.
    pub(crate) fn import_turn(&self) -> impl Drop + '_ {
        let yielding = std::time::Instant::now();
        while self.waiting_for_vault.load(Ordering::Acquire) > 0
            && yielding.elapsed() < IMPORT_YIELDS_AT_MOST
        {
            std::thread::sleep(Duration::from_micros(50));
        }
        self.vault()
    }
}

/// THE LOCK ORDER. A thread that holds several of the dispenser's locks has taken them in
/// this order, never the other way round:
///
/// 1. [`Rank::Keys`]: `keys`, read for a whole reservation (from the check that the keys are
///    loaded until the key is wrapped), so a tamper's write waits for a reservation in
///    progress;
/// 2. [`Rank::Sessions`]: `sessions`, held from the operator check until the reservation is
///    committed, so a logout that returned has stopped every reservation after it;
/// 3. [`Rank::Vault`]: `vault`, under the sessions when an operator event is recorded or a
///    key reserved.
///
/// The other six, `trust`, `kdh`, `tamper`, `tamper_watch`, `claims` and `status_reader`, are
/// [`Rank::Leaf`]: held only to copy or store a value (`status_reader` while it counts on its
/// own connection), they may be taken under any of the three and nothing is taken under
/// them. (The clock keeps its own locks, taken while none of these is held.)
///
/// The accessors below are the only way to the locks, and each takes its lock through
/// [`Ordered::take`] with its rank: in debug builds (so in every test) taking a lock while
/// this thread holds one of the same or a later rank panics before it can deadlock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Rank {
    Keys = 0,
    Sessions = 1,
    Vault = 2,
    Leaf = 3,
}

/// The lock accessors, in `Rank`'s order. A poisoned lock is carried on with: each holds a
/// value that every change replaces or edits in one step (and a panic aborts the process in
/// release builds, `panic = "abort"`), so it is consistent.
impl Dispenser {
    /// The loaded KEK and TTK, read ([`Rank::Keys`]).
    fn keys(&self) -> Ordered<RwLockReadGuard<'_, Option<LoadedKeys>>> {
        // Keys are replaced whole under the write lock, so a poisoned lock still holds a
        // consistent value.
        Ordered::take(Rank::Keys, || {
            self.keys
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        })
    }

    /// Replaces the loaded KEK and TTK ([`Rank::Keys`]); waits for reservations in progress.
    fn set_keys(&self, keys: Option<LoadedKeys>) {
        let mut loaded = Ordered::take(Rank::Keys, || {
            self.keys
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        });
        *loaded = keys;
    }

    /// The operator sessions ([`Rank::Sessions`]).
    fn sessions(&self) -> Ordered<MutexGuard<'_, Sessions>> {
        // Every change to the sessions is one assignment; a poisoned lock holds a consistent
        // value.
        Ordered::take(Rank::Sessions, || {
            self.sessions
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        })
    }

    /// The vault ([`Rank::Vault`]): after the sessions when both are held.
    fn vault(&self) -> Ordered<MutexGuard<'_, Vault>> {
        // A panic while holding the lock aborts the process (panic = "abort" in release), and
        // every vault operation is its own transaction, so a poisoned lock holds a consistent
        // vault: carry on with it.
        Ordered::take(Rank::Vault, || {
            self.waiting_for_vault.fetch_add(1, Ordering::AcqRel);
            let vault = self
                .vault
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            self.waiting_for_vault.fetch_sub(1, Ordering::AcqRel);
            vault
        })
    }

    /// The trust anchors, if configured (`Rank::Leaf`).
    pub fn trust(&self) -> Option<Arc<Trust>> {
        Ordered::take(Rank::Leaf, || {
            self.trust
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        })
        .clone()
    }

    /// Replaces the trust anchors ([`Rank::Leaf`]).
    fn set_trust_anchors(&self, trust: Option<Arc<Trust>>) {
        *Ordered::take(Rank::Leaf, || {
            self.trust
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        }) = trust;
    }

    /// The KDH identity in memory ([`Rank::Leaf`]).
    fn kdh(&self) -> Option<Arc<LoadedKdh>> {
        Ordered::take(Rank::Leaf, || {
            self.kdh
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        })
        .clone()
    }

    /// Replaces the KDH identity in memory ([`Rank::Leaf`]).
    fn set_kdh(&self, kdh: Option<Arc<LoadedKdh>>) {
        *Ordered::take(Rank::Leaf, || {
            self.kdh
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        }) = kdh;
    }

    /// The tamper lock ([`Rank::Leaf`]).
    fn tamper_lock(&self) -> Ordered<MutexGuard<'_, Option<TamperLock>>> {
        // Replaced or edited in one statement: a poisoned lock holds a consistent value.
        Ordered::take(Rank::Leaf, || {
            self.tamper
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        })
    }

    /// The hardware serials ports are injecting ([`Rank::Leaf`]).
    fn serial_claims(&self) -> Ordered<MutexGuard<'_, admission::SerialClaims>> {
        // Each change is one insertion or removal: a poisoned lock holds a consistent value.
        Ordered::take(Rank::Leaf, || {
            self.claims
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        })
    }

    /// Whether the tamper input is watched, and required ([`Rank::Leaf`]).
    fn tamper_watch_state(&self) -> Ordered<MutexGuard<'_, TamperWatchState>> {
        // Each change is one assignment: a poisoned lock holds a consistent value.
        Ordered::take(Rank::Leaf, || {
            self.tamper_watch
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dispenser() -> (tempfile::TempDir, Dispenser) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        drop(Vault::create(dir.path(), &"KM-TEST-0001".parse().unwrap()).unwrap());
        let dispenser = Dispenser::open(
            dir.path(),
            3,
            OperatorSettings::default(),
            &ClockSettings::default(),
        )
        .unwrap();
        (dir, dispenser)
    }

    #[test]
    fn the_status_counts_never_take_the_vault() {
        let (_dir, dispenser) = dispenser();
        // The vault held (a control command, an import's chunk): the status line's count
        // goes on. Taking the vault again here would break the lock order (a panic).
        dispenser.with_vault(|_| {
            assert_eq!(dispenser.available_keys().unwrap(), 0);
            let counts = dispenser.vault_counts().unwrap();
            assert_eq!((counts.available, counts.smn_rows), (0, 0));
        });
    }

    #[test]
    fn an_import_takes_its_turn_after_a_bounded_wait_however_busy_the_ports() {
        let (_dir, dispenser) = dispenser();
        // As if a port were always waiting: the import still gets its turn.
        dispenser.waiting_for_vault.store(1, Ordering::Release);
        let asked = std::time::Instant::now();
        drop(dispenser.import_turn());
        assert!(
            asked.elapsed() >= IMPORT_YIELDS_AT_MOST,
            "it first let the waiting go"
        );
        dispenser.waiting_for_vault.store(0, Ordering::Release);
        // With nobody waiting it takes the turn at once (the vault is free).
        drop(dispenser.import_turn());
    }
}
