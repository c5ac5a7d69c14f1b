//! The runtime: opens the vault, starts one task per port, reports events, stops on request.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

use crate::bench::BenchBackends;
use crate::config::{GpioBackend, Settings};
use crate::control::{ControlSettings, open_control, serve_control};
use crate::dispenser::{Dispenser, OpenError, Readiness, TamperWatch};
use crate::serial::serve_port;
use crate::trust::Trust;

/// Why the appliance is not ready, as [`ApplianceState::reason`] says it (the display maps
/// these to its screens).
pub(crate) const NOT_READY_LOCKED: &str = "locked: load the KEK and the TTK";
pub(crate) const NOT_READY_NO_KEYS: &str = "no keys left: import a key file";
pub(crate) const NOT_READY_NO_OPERATOR: &str = "no operator logged in";
/// Operator login is required and `[pki]` has no operator CA, so nobody can log in (the
/// factory settings): the display shows the same screen as for no operator.
pub(crate) const NOT_READY_NO_OPERATOR_CA: &str = "no operator CA configured: add [pki]";
pub(crate) const NOT_READY_NO_PORT: &str = "no serial port open";

/// How far a terminal's injection on a port has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectionStep {
    /// HELLO received: a terminal is on the line.
    Hello,
    /// It asked for a key; the appliance is reserving one.
    KeyRequested,
    /// The key went out (sent, or sent again to the same terminal).
    Delivered { key_index: u32 },
    /// The terminal reported its check value; the appliance is checking and recording it.
    Confirming { key_index: u32 },
}

/// The appliance's state as a display shows it: sent whenever any field changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplianceState {
    /// Keys flow now: KEK and TTK loaded, no tamper, keys left, an operator logged in when
    /// one is required, a port open.
    pub ready: bool,
    /// The tamper input fired and the key ceremonies have not been held again since.
    pub tampered: bool,
    /// One short line: "ready", or what stops the keys ("no operator logged in", ...).
    pub reason: String,
    /// Available keys in the inventory.
    pub keys_left: u64,
    pub ports_open: usize,
    pub ports_total: usize,
    /// The operator logged in, if any.
    pub operator: Option<String>,
}

/// What the daemon tells observers: the demo, tests, and the bench (LEDs, buzzer, display).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaemonEvent {
    /// All ports are being served.
    Ready {
        ports: usize,
    },
    PortOpened {
        port: String,
    },
    PortLost {
        port: String,
        reason: String,
    },
    /// A confirmed injection: the SMN row is committed.
    Injected {
        port: String,
        hardware_serial: String,
        model: String,
        key_index: u32,
        smn: String,
        /// The operator the injection is recorded under, if any.
        operator: Option<String>,
    },
    /// Anything else the session reported (frames rejected, errors sent, ...).
    Session {
        port: String,
        detail: String,
    },
    /// A terminal's injection moved on.
    InjectionProgress {
        port: String,
        hardware_serial: String,
        step: InjectionStep,
    },
    /// An injection failed: an ERROR other than BUSY was sent to the terminal, or it sent
    /// ABORT. `reason` is short and tells the technician what to do ("no operator logged in",
    /// "certificate refused: expired", "KCV mismatch").
    InjectionFailed {
        port: String,
        reason: String,
    },
    /// The port's session ended without a result (idle, a new HELLO, the tamper response).
    PortIdle {
        port: String,
    },
    /// An operator logged in, or the session ended (logout, expiry, tamper, zeroize).
    OperatorChanged {
        operator: Option<String>,
    },
    /// The appliance's state changed.
    ApplianceState(ApplianceState),
    /// The tamper input fired: the secrets in memory are gone, the sealed ones deleted, the
    /// appliance locked until custodians load the KEK and the TTK again.
    Tamper {
        input: String,
    },
    /// The bench's GPIO or display failed and was switched off; injection carries on.
    BenchWarning {
        warning: String,
    },
}

/// Where events go: every subscriber sees every event, in one order.
#[derive(Default)]
pub(crate) struct EventBus {
    subscribers: Mutex<Vec<Subscriber>>,
}

enum Subscriber {
    /// An async observer (the demo, tests).
    Task(UnboundedSender<DaemonEvent>),
    /// A thread (the bench).
    Thread(std::sync::mpsc::Sender<DaemonEvent>),
}

impl EventBus {
    fn add(&self, subscriber: Subscriber) {
        self.subscribers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(subscriber);
    }

    /// A receiver for a thread, seeing every event from now on.
    pub(crate) fn subscribe_thread(&self) -> std::sync::mpsc::Receiver<DaemonEvent> {
        let (sender, receiver) = std::sync::mpsc::channel();
        self.add(Subscriber::Thread(sender));
        receiver
    }

    fn publish(&self, event: &DaemonEvent) {
        // Sending never blocks (unbounded); one lock orders events for every subscriber. An
        // observer that went away is dropped: not the daemon's problem.
        self.subscribers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|subscriber| match subscriber {
                Subscriber::Task(sender) => sender.send(event.clone()).is_ok(),
                Subscriber::Thread(sender) => sender.send(event.clone()).is_ok(),
            });
    }
}

/// Counters for benchmarks and status.
#[derive(Debug, Default)]
pub struct Stats {
    /// Time spent handling input: from bytes (or a tick) to the last action carried out,
    /// vault transactions included. Waiting for the line is not counted.
    pub busy_nanos: AtomicU64,
    /// Confirmed injections.
    pub injections: AtomicU64,
}

/// What every port task shares.
pub(crate) struct Shared {
    pub(crate) dispenser: Arc<Dispenser>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) idle_timeout: Duration,
    /// Certificate-mode key requests accepted per port per minute (each costs a KDH signature).
    pub(crate) certificate_requests_per_minute: u32,
    pub(crate) events: EventBus,
    /// Each port's state as people read it ("open", "lost: ...", "waiting").
    ports: Mutex<BTreeMap<String, String>>,
}

impl Shared {
    pub(crate) fn emit(&self, event: DaemonEvent) {
        match &event {
            DaemonEvent::PortOpened { port } => self.set_port_state(port, "open".to_owned()),
            DaemonEvent::PortLost { port, reason } => {
                self.set_port_state(port, format!("lost: {reason}"))
            }
            _ => {}
        }
        if matches!(
            event,
            DaemonEvent::PortOpened { .. } | DaemonEvent::PortLost { .. }
        ) {
            self.dispenser.touch();
        }
        self.events.publish(&event);
    }

    /// The tamper response (docs/SECURITY.md, "Tamper"): the dispenser drops every secret
    /// and locks, the vault records the tamper and deletes the sealed secrets, observers
    /// hear of it. The memory half is done when this returns; the vault half runs on its own
    /// thread, so a busy vault holds up neither the bench nor anything else.
    pub(crate) fn tamper(self: &Arc<Self>, input: &str) {
        let locked = self.dispenser.lock_down(input);
        // The LEDs, the buzzer and the display hear of it before the vault is written.
        self.emit(DaemonEvent::Tamper {
            input: input.to_owned(),
        });
        let shared = Arc::clone(self);
        let recorded_input = input.to_owned();
        if let Err(error) = std::thread::Builder::new()
            .name("keymother-tamper".to_owned())
            .spawn(move || shared.record_tamper(&recorded_input, locked))
        {
            // The bench retries the vault half every second (tamper_record_pending).
            log::error!(event = "tamper"; "the tamper could not be recorded now ({error}); retried every second");
        }
    }

    fn record_tamper(&self, input: &str, locked: crate::dispenser::LockedDown) {
        let outcome = self.dispenser.record_lock_down(locked);
        match &outcome.vault {
            Ok(report) => log::error!(
                event = "tamper", input = input;
                "TAMPER: input {input} fired; secrets dropped from memory, sealed KEK and TTK{} deleted (audit row {}); appliance locked until the custodians load the KEK and the TTK again",
                if report.kdh_deleted { " and the KDH identity" } else { "" },
                report.audit_sequence
            ),
            Err(error) if self.dispenser.tamper_record_pending() => log::error!(
                event = "tamper", input = input;
                "TAMPER: input {input} fired; secrets dropped from memory and the appliance is locked, but the vault could not record it: {error} (retried every second)"
            ),
            Err(error) => log::error!(
                event = "tamper", input = input;
                "TAMPER: input {input} fired; secrets dropped from memory, sealed secrets deleted, appliance locked; the audit chain refused the tamper row: {error}"
            ),
        }
    }

    /// The appliance's state now (blocking: reads the vault).
    pub(crate) fn appliance_state(&self) -> ApplianceState {
        let ports = self.port_states();
        let ports_open = ports
            .values()
            .filter(|state| state.as_str() == "open")
            .count();
        let keys_left = self.dispenser.available_keys().unwrap_or(0);
        let operator = self
            .dispenser
            .operator_session(keymother_vault::clock::now())
            .map(|session| session.name);
        let tamper_input_missing = self.dispenser.tamper_input_missing();
        let clock_not_set = self.dispenser.clock().check().err();
        let (ready, tampered, reason) = match self.dispenser.readiness() {
            Readiness::Tampered(input) => (
                false,
                true,
                format!("tampered ({input}): load the KEK and the TTK again"),
            ),
            Readiness::Locked => (false, false, NOT_READY_LOCKED.to_owned()),
            Readiness::Unlocked if clock_not_set.is_some() => {
                (false, false, clock_not_set.unwrap_or_default())
            }
            Readiness::Unlocked if keys_left == 0 => (false, false, NOT_READY_NO_KEYS.to_owned()),
            Readiness::Unlocked if tamper_input_missing.is_some() => {
                (false, false, tamper_input_missing.unwrap_or_default())
            }
            Readiness::Unlocked if self.dispenser.operator_ca_missing() => {
                (false, false, NOT_READY_NO_OPERATOR_CA.to_owned())
            }
            Readiness::Unlocked if operator.is_none() && self.dispenser.operator_required() => {
                (false, false, NOT_READY_NO_OPERATOR.to_owned())
            }
            Readiness::Unlocked if ports_open == 0 => (false, false, NOT_READY_NO_PORT.to_owned()),
            Readiness::Unlocked => (true, false, "ready".to_owned()),
        };
        ApplianceState {
            ready,
            tampered,
            reason,
            keys_left,
            ports_open,
            ports_total: ports.len(),
            operator,
        }
    }

    fn set_port_state(&self, port: &str, state: String) {
        self.ports
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(port.to_owned(), state);
    }

    /// Every port and its state.
    pub(crate) fn port_states(&self) -> BTreeMap<String, String> {
        self.ports
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// One line for systemd's STATUS=.
    fn status_line(&self) -> String {
        let ports = self.port_states();
        let open = ports
            .values()
            .filter(|state| state.as_str() == "open")
            .count();
        let available = self
            .dispenser
            .with_vault(|vault| vault.available_keys())
            .unwrap_or(0);
        let state = match self.dispenser.readiness() {
            Readiness::Unlocked => "ready".to_owned(),
            Readiness::Locked => "locked (key ceremonies needed)".to_owned(),
            Readiness::Tampered(input) => {
                format!("TAMPERED by input {input} (key ceremonies needed)")
            }
        };
        let clock = match self.dispenser.clock().check() {
            Ok(()) => String::new(),
            Err(_) => format!("; {}", crate::clock::CLOCK_NOT_SET),
        };
        format!(
            "{state}; {available} keys available; ports {open}/{} open; {} injected since start{clock}",
            ports.len(),
            self.stats.injections.load(Ordering::Relaxed)
        )
    }
}

/// Runs the daemon until `shutdown` completes: opens the vault (unsealing KEK and TTK),
/// serves every configured port, drives the bench `[bench]` configures, and reports to
/// `events` if given.
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()>,
    events: Option<UnboundedSender<DaemonEvent>>,
    stats: Arc<Stats>,
) -> Result<(), OpenError> {
    let data_dir = settings.data_dir.clone();
    tokio::task::spawn_blocking(move || record_software(&data_dir))
        .await
        .map_err(|error| OpenError::Task(error.to_string()))??;
    run_with(settings, shutdown, events, stats, BenchBackends::default()).await
}

/// Records in the audit trail a keymotherd build it has not seen before (a first start, or
/// the first after an update): its version and its executable's SHA-256.
fn record_software(data_dir: &std::path::Path) -> Result<(), OpenError> {
    use sha2::{Digest, Sha256};
    let binary = std::env::current_exe().and_then(std::fs::read);
    let binary_sha256 = match binary {
        Ok(bytes) => hex::encode(Sha256::digest(&bytes)),
        Err(error) => {
            log::warn!(event = "software"; "cannot read keymotherd's own executable to record it: {error}");
            return Ok(());
        }
    };
    let mut vault = keymother_vault::Vault::open_as_owner(data_dir)?;
    let last = vault.last_audit_details("software")?;
    if last.is_some_and(|details| details.contains(&binary_sha256)) {
        return Ok(());
    }
    let version = env!("CARGO_PKG_VERSION").to_owned();
    vault.record_audit(keymother_vault::AuditEvent::Software {
        version: version.clone(),
        binary_sha256: binary_sha256.clone(),
    })?;
    log::warn!(
        event = "software", version = version.as_str(), binary_sha256 = binary_sha256.as_str();
        "keymotherd {version} (SHA-256 {binary_sha256}) runs for the first time on this vault; recorded in the audit trail"
    );
    Ok(())
}

/// [`run`] with bench back ends given by the caller: a back end given here replaces the one
/// `[bench]` would open (tests and the demo hand in a `SimulatedSignals` handle; the display
/// is plugged in here too).
pub async fn run_with(
    settings: Settings,
    shutdown: impl Future<Output = ()>,
    events: Option<UnboundedSender<DaemonEvent>>,
    stats: Arc<Stats>,
    backends: BenchBackends,
) -> Result<(), OpenError> {
    let data_dir = settings.data_dir.clone();
    let quarantine_after = settings.quarantine_after;
    let pki = settings.pki.clone();
    let operators = settings.operator.clone();
    let clock = settings.clock.clone();
    let dispenser = tokio::task::spawn_blocking(move || {
        let trust = match &pki {
            Some(pki) => {
                let trust = Trust::load(pki, keymother_vault::clock::now())?;
                for warning in &trust.warnings {
                    log::warn!(event = "pki"; "{warning}");
                }
                Some(trust)
            }
            None => None,
        };
        let dispenser = Dispenser::open(&data_dir, quarantine_after, operators, &clock)?;
        dispenser.set_trust(trust);
        Ok::<_, OpenError>(dispenser)
    })
    .await
    .map_err(|error| OpenError::Task(error.to_string()))??;
    for warning in settings.warnings() {
        log::warn!(event = "config-warning"; "{warning}");
    }
    if dispenser.operator_required() {
        log::info!(event = "operators"; "operator login required: no key is dispensed without an operator session");
    } else {
        log::warn!(event = "operators"; "operator login NOT required ([operator] require = false): keys are dispensed with nobody logged in");
    }
    let digest = settings_digest(
        &settings,
        dispenser.trust().as_ref().map(|trust| trust.fingerprint()),
    );
    match dispenser.record_settings(&digest) {
        Ok(true) => {
            log::info!(event = "config-change"; "new settings in force (SHA-256 {digest}), recorded in the audit trail")
        }
        Ok(false) => {}
        Err(error) => {
            log::error!(event = "config-change"; "the settings change could not be audited: {error}")
        }
    }
    let shared = Arc::new(Shared {
        dispenser: Arc::new(dispenser),
        stats,
        idle_timeout: settings.idle_timeout,
        certificate_requests_per_minute: settings.certificate_requests_per_minute,
        events: EventBus::default(),
        ports: Mutex::new(
            settings
                .ports
                .iter()
                .map(|port| (port.name.clone(), "waiting".to_owned()))
                .collect(),
        ),
    });
    if let Some(events) = events {
        shared.events.add(Subscriber::Task(events));
    }
    // Keys wait for the bench's tamper input, when it is required, until the bench has opened it.
    shared.dispenser.init_tamper_watch(
        if settings.bench.gpio == GpioBackend::None
            && backends.signals.is_none()
            && backends.open_signals.is_none()
        {
            TamperWatch::NoInput
        } else {
            TamperWatch::Unwatched {
                input: crate::bench::tamper_input_name(&settings.bench),
                reason: "the bench has not opened its GPIO yet".to_owned(),
            }
        },
        settings.bench.require_tamper_input,
    );
    // Subscribed before anything is emitted, so the bench sees every event.
    let bench = crate::bench::start(&settings.bench, backends, Arc::clone(&shared));
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(watch_state(Arc::clone(&shared)));
    for port in settings.ports.clone() {
        tasks.spawn(serve_port(port, Arc::clone(&shared)));
    }
    let control = ControlSettings {
        socket: settings.control_socket.clone(),
        group: settings.control_group.clone(),
    };
    if let Some(listener) = open_control(&control) {
        tasks.spawn(serve_control(listener, control, Arc::clone(&shared)));
    }
    tasks.spawn(tell_systemd(Arc::clone(&shared)));
    tasks.spawn(expire_operator_sessions(Arc::clone(&shared.dispenser)));
    log::info!("event=ready ports={}", settings.ports.len());
    shared.emit(DaemonEvent::Ready {
        ports: settings.ports.len(),
    });
    shutdown.await;
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    tasks.shutdown().await;
    if let Some(bench) = bench {
        bench.stop().await;
    }
    log::info!(
        "event=stopped injections={} busy_microseconds={}",
        shared
            .stats
            .injections
            .load(std::sync::atomic::Ordering::Relaxed),
        shared
            .stats
            .busy_nanos
            .load(std::sync::atomic::Ordering::Relaxed)
            / 1000
    );
    Ok(())
}

/// Tells systemd the daemon is ready, keeps STATUS= current, and pings the watchdog when the
/// unit sets WatchdogSec. Outside systemd every notification is a no-op; a failed one is
/// logged, never fatal.
async fn tell_systemd(shared: Arc<Shared>) {
    let notify = |states: &[sd_notify::NotifyState<'_>]| {
        if let Err(error) = sd_notify::notify(states) {
            log::warn!("event=notify-failed error=\"{error}\"");
        }
    };
    let status = status_line(&shared).await;
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&status),
    ]);
    let watchdog = sd_notify::watchdog_enabled().map(|interval| interval / 2);
    let mut status_timer = tokio::time::interval(Duration::from_secs(10));
    let mut watchdog_timer = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
    loop {
        tokio::select! {
            _ = status_timer.tick() => {
                let status = status_line(&shared).await;
                notify(&[sd_notify::NotifyState::Status(&status)]);
            }
            _ = watchdog_timer.tick(), if watchdog.is_some() => {
                notify(&[sd_notify::NotifyState::Watchdog]);
            }
        }
    }
}

async fn status_line(shared: &Arc<Shared>) -> String {
    let shared = Arc::clone(shared);
    tokio::task::spawn_blocking(move || shared.status_line())
        .await
        .unwrap_or_else(|error| format!("status unavailable: {error}"))
}

/// Ends the operator session when its time is up, so the end is recorded when it happens
/// rather than at the next key request or control command.
async fn expire_operator_sessions(dispenser: Arc<Dispenser>) {
    let mut timer = tokio::time::interval(OPERATOR_EXPIRY_CHECK);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        timer.tick().await;
        let due = dispenser
            .operator_session_ends()
            .is_some_and(|until| until <= keymother_vault::clock::now());
        if due {
            let dispenser = Arc::clone(&dispenser);
            let _ = tokio::task::spawn_blocking(move || {
                dispenser.expire_operator_session(keymother_vault::clock::now())
            })
            .await;
        }
    }
}

/// Sends [`DaemonEvent::ApplianceState`] whenever the state changes (and
/// [`DaemonEvent::OperatorChanged`] when the operator does): recomputed when the dispenser
/// or a port says something changed, at most every [`STATE_MIN_INTERVAL`], and every
/// [`STATE_REFRESH`] in any case.
async fn watch_state(shared: Arc<Shared>) {
    let changes = shared.dispenser.changes();
    let mut last: Option<ApplianceState> = None;
    let mut timer = tokio::time::interval(STATE_REFRESH);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = changes.notified() => {}
            _ = timer.tick() => {}
        }
        let computing = Arc::clone(&shared);
        let Ok(state) = tokio::task::spawn_blocking(move || computing.appliance_state()).await
        else {
            continue;
        };
        if last.as_ref() != Some(&state) {
            if let Some(before) = &last
                && before.operator != state.operator
            {
                shared.emit(DaemonEvent::OperatorChanged {
                    operator: state.operator.clone(),
                });
            }
            shared.emit(DaemonEvent::ApplianceState(state.clone()));
            last = Some(state);
        }
        // Injections at full speed wake this constantly: one vault count per interval.
        tokio::time::sleep(STATE_MIN_INTERVAL).await;
    }
}

/// The state is recomputed at least this often (operator expiry, anything missed).
const STATE_REFRESH: Duration = Duration::from_secs(1);
/// And at most this often: a display needs no more, and counting the available keys takes
/// the vault from the ports.
const STATE_MIN_INTERVAL: Duration = Duration::from_millis(200);

/// How often the operator session's end is looked for.
const OPERATOR_EXPIRY_CHECK: Duration = Duration::from_millis(250);

/// A fingerprint of the validated settings and of the CA and CRL files they name, to notice
/// (and audit) a configuration change.
fn settings_digest(settings: &Settings, trust: Option<&str>) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    hasher.update(format!("{settings:?}").as_bytes());
    if let Some(trust) = trust {
        hasher.update(b"\x00trust\x00");
        hasher.update(trust.as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}
