//! The runtime: opens the vault, starts one task per port, reports events, stops on request.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc::UnboundedSender;

use crate::config::Settings;
use crate::control::{ControlSettings, open_control, serve_control};
use crate::dispenser::{Dispenser, OpenError};
use crate::serial::serve_port;
use crate::trust::Trust;

/// Certificate-mode key requests accepted per port in any minute: far more than a bench
/// needs (an injection takes seconds), far too few for a timing attack on the KDH key
/// (docs/SECURITY.md, RUSTSEC-2023-0071).
const CERTIFICATE_REQUESTS_PER_MINUTE: u32 = 30;

/// What the daemon tells observers (the demo, tests, later the display).
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
    events: Option<UnboundedSender<DaemonEvent>>,
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
        if let Some(events) = &self.events {
            // An observer that went away is not the daemon's problem.
            let _ = events.send(event);
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
        let state = if self.dispenser.ttk_kcv().is_some() {
            "ready"
        } else {
            "locked (key ceremonies needed)"
        };
        format!(
            "{state}; {available} keys available; ports {open}/{} open; {} injected since start",
            ports.len(),
            self.stats.injections.load(Ordering::Relaxed)
        )
    }
}

/// Runs the daemon until `shutdown` completes: opens the vault (unsealing KEK and TTK),
/// serves every configured port, and reports to `events` if given.
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()>,
    events: Option<UnboundedSender<DaemonEvent>>,
    stats: Arc<Stats>,
) -> Result<(), OpenError> {
    let data_dir = settings.data_dir.clone();
    let quarantine_after = settings.quarantine_after;
    let pki = settings.pki.clone();
    let operators = settings.operator.clone();
    let dispenser = tokio::task::spawn_blocking(move || {
        let trust = match &pki {
            Some(pki) => {
                let trust = Trust::load(pki, SystemTime::now())?;
                for warning in &trust.warnings {
                    log::warn!(event = "pki"; "{warning}");
                }
                Some(trust)
            }
            None => None,
        };
        let dispenser = Dispenser::open(&data_dir, quarantine_after, operators)?;
        dispenser.set_trust(trust);
        Ok::<_, OpenError>(dispenser)
    })
    .await
    .map_err(|error| OpenError::Task(error.to_string()))??;
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
        certificate_requests_per_minute: CERTIFICATE_REQUESTS_PER_MINUTE,
        events,
        ports: Mutex::new(
            settings
                .ports
                .iter()
                .map(|port| (port.name.clone(), "waiting".to_owned()))
                .collect(),
        ),
    });
    let mut tasks = tokio::task::JoinSet::new();
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
            .is_some_and(|until| until <= SystemTime::now());
        if due {
            let dispenser = Arc::clone(&dispenser);
            let _ = tokio::task::spawn_blocking(move || {
                dispenser.expire_operator_session(SystemTime::now())
            })
            .await;
        }
    }
}

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
