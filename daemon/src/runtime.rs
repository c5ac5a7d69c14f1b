//! The runtime: opens the vault, starts one task per port, reports events, stops on request.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

use crate::config::Settings;
use crate::dispenser::{Dispenser, OpenError};
use crate::serial::serve_port;

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
    events: Option<UnboundedSender<DaemonEvent>>,
}

impl Shared {
    pub(crate) fn emit(&self, event: DaemonEvent) {
        if let Some(events) = &self.events {
            // An observer that went away is not the daemon's problem.
            let _ = events.send(event);
        }
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
    let dispenser =
        tokio::task::spawn_blocking(move || Dispenser::open(&data_dir, quarantine_after))
            .await
            .map_err(|error| OpenError::Task(error.to_string()))??;
    let shared = Arc::new(Shared {
        dispenser: Arc::new(dispenser),
        stats,
        idle_timeout: settings.idle_timeout,
        events,
    });
    let mut tasks = tokio::task::JoinSet::new();
    for port in settings.ports.clone() {
        tasks.spawn(serve_port(port, Arc::clone(&shared)));
    }
    log::info!("event=ready ports={}", settings.ports.len());
    shared.emit(DaemonEvent::Ready {
        ports: settings.ports.len(),
    });
    shutdown.await;
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
