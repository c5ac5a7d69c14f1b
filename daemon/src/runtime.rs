//! The runtime: opens the vault, starts one task per port, reports events, stops on request.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

use crate::bench::BenchBackends;
use crate::config::{GpioBackend, Settings};
use crate::control::{ControlSettings, open_control, serve_control};
use crate::dispenser::{Dispenser, OpenError, TamperWatch};
use crate::events::{ApplianceState, DaemonEvent, EventBus, LowInventory, Subscriber};
use crate::serial::serve_port;
use crate::state::{Shared, Stats};
use crate::trust::Trust;

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
    let binary_sha256 = match std::env::current_exe().and_then(|path| file_sha256(&path)) {
        Ok(digest) => hex::encode(digest),
        Err(error) => {
            log::warn!(event = "software"; "cannot read keymotherd's own executable to record it: {error}");
            return Ok(());
        }
    };
    // The whole-database check is paid in the background after READY (crate::integrity).
    let mut vault = match keymother_vault::Vault::open_as_owner_deferring_integrity(data_dir) {
        // A zeroized vault records nothing more; the dispenser opens it in its zeroized state.
        Err(keymother_vault::VaultError::Zeroized(_)) => return Ok(()),
        opened => opened?,
    };
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

/// The SHA-256 of the file at `path`, read in pieces: the executable is never held whole in
/// memory (which, locked by mlockall, would be resident all at once).
fn file_sha256(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => return Ok(hasher.finalize().to_vec()),
            Ok(read) => hasher.update(&buffer[..read]),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
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
    let require_expected_devices = settings.require_expected_devices;
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
        dispenser.set_require_expected_devices(require_expected_devices);
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
        low_inventory: settings.bench.low_inventory,
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
    let mut backends = backends;
    if backends.display.is_none() {
        backends.display = crate::screen::open_display(&settings.bench);
    }
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
    let integrity = crate::integrity::start(&shared);
    shutdown.await;
    if let Some(background) = integrity {
        background.stop().await;
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    tasks.shutdown().await;
    if let Some(bench) = bench {
        bench.stop().await;
    }
    log::info!(
        "event=stopped injections={} busy_microseconds={} dukpt_injections={}",
        shared
            .stats
            .injections
            .load(std::sync::atomic::Ordering::Relaxed),
        shared
            .stats
            .busy_nanos
            .load(std::sync::atomic::Ordering::Relaxed)
            / 1000,
        shared
            .stats
            .dukpt_injections
            .load(std::sync::atomic::Ordering::Relaxed)
    );
    Ok(())
}

/// Sends `states` to systemd (a no-op outside it); a failure is logged, never fatal.
fn notify(states: &[sd_notify::NotifyState<'_>]) {
    if let Err(error) = sd_notify::notify(states) {
        log::warn!("event=notify-failed error=\"{error}\"");
    }
}

/// Tells systemd the daemon is ready, keeps STATUS= current, and pings the watchdog when the
/// unit sets WatchdogSec. Outside systemd every notification is a no-op; a failed one is
/// logged, never fatal.
async fn tell_systemd(shared: Arc<Shared>) {
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
            let low = shared.low_inventory(state.keys_left);
            let was_low = last
                .as_ref()
                .map(|before| shared.low_inventory(before.keys_left).is_some());
            if was_low != Some(low.is_some()) {
                inventory_crossed(&shared, low, state.keys_left, was_low.is_some()).await;
            }
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

/// The inventory crossed the `[bench] low_inventory` level (or is low when keymotherd
/// starts): one journal line, and STATUS= says it at once. Nothing is said per injection.
async fn inventory_crossed(
    shared: &Arc<Shared>,
    low: Option<LowInventory>,
    keys_left: u64,
    had_state: bool,
) {
    match low {
        Some(low) => log::warn!(
            event = "low-inventory", keys_left = low.keys_left, threshold = low.threshold;
            "{low}: import a key file soon"
        ),
        // Only a way back up is news: an inventory that is fine at start says nothing.
        None if had_state => log::info!(
            event = "inventory-restored", keys_left = keys_left, threshold = shared.low_inventory;
            "inventory no longer low: {keys_left} {} left (warning below {})",
            if keys_left == 1 { "key" } else { "keys" }, shared.low_inventory
        ),
        None => return,
    }
    let status = status_line(shared).await;
    notify(&[sd_notify::NotifyState::Status(&status)]);
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
