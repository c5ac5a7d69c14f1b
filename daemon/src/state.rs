//! The state every adapter shares: the dispenser, the ports as people read them, the counters and the event bus, below the adapters (serial, control, bench) that use it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::dispenser::{Dispenser, Readiness};
use crate::events::{ApplianceState, DaemonEvent, EventBus, LowInventory, Reason};

/// Counters for benchmarks and status.
#[derive(Debug, Default)]
pub struct Stats {
    /// Time spent handling input: from bytes (or a tick) to the last action carried out,
    /// vault transactions included. Waiting for the line is not counted.
    pub busy_nanos: AtomicU64,
    /// Confirmed injections.
    pub injections: AtomicU64,
    /// Confirmed DUKPT initial keys.
    pub dukpt_injections: AtomicU64,
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
    pub(crate) ports: Mutex<BTreeMap<String, String>>,
    /// `[bench] low_inventory`: fewer keys left than this is low inventory.
    pub(crate) low_inventory: u64,
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
        // The LEDs, the buzzer and the display hear of it before the vault is written, and
        // before any port reports its session dropped.
        let locked = self.dispenser.lock_down(input, || {
            self.emit(DaemonEvent::Tamper {
                input: input.to_owned(),
            })
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
        let reason = self.reason(keys_left, ports_open, operator.is_some());
        ApplianceState {
            ready: reason == Reason::Ready,
            tampered: matches!(reason, Reason::Tampered { .. }),
            reason,
            keys_left,
            ports_open,
            ports_total: ports.len(),
            operator,
        }
    }

    /// Why keys do not flow, most urgent first.
    fn reason(&self, keys_left: u64, ports_open: usize, operator: bool) -> Reason {
        match self.dispenser.readiness() {
            Readiness::Zeroized => return Reason::Zeroized,
            Readiness::Damaged(findings) => return Reason::VaultDamaged { findings },
            Readiness::Tampered(input) => return Reason::Tampered { input },
            Readiness::Locked => return Reason::Locked,
            Readiness::Unlocked => {}
        }
        if let Some(why) = self.dispenser.clock().not_set() {
            return Reason::ClockNotSet { why };
        }
        if keys_left == 0 {
            return Reason::NoKeys;
        }
        if let Some(words) = self.dispenser.tamper_input_missing() {
            return Reason::TamperInputMissing { words };
        }
        if self.dispenser.operator_ca_missing() {
            return Reason::NoOperatorCa;
        }
        if !operator && self.dispenser.operator_required() {
            return Reason::NoOperator;
        }
        if ports_open == 0 {
            return Reason::NoPort;
        }
        Reason::Ready
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

    /// Whether `keys_left` is low inventory (below `[bench] low_inventory`), and how low:
    /// what the journal, STATUS=, `status` and the display say.
    pub(crate) fn low_inventory(&self, keys_left: u64) -> Option<LowInventory> {
        LowInventory::check(keys_left, self.low_inventory)
    }

    /// One line for systemd's STATUS=.
    pub(crate) fn status_line(&self) -> String {
        let ports = self.port_states();
        let open = ports
            .values()
            .filter(|state| state.as_str() == "open")
            .count();
        let available = self.dispenser.available_keys().unwrap_or(0);
        let state = match self.dispenser.readiness() {
            Readiness::Unlocked => "ready".to_owned(),
            Readiness::Locked => "locked (key ceremonies needed)".to_owned(),
            Readiness::Zeroized => "ZEROIZED (recommission the vault)".to_owned(),
            Readiness::Damaged(_) => {
                "VAULT DAMAGED (integrity check failed; restore the vault)".to_owned()
            }
            Readiness::Tampered(input) => {
                format!("TAMPERED by input {input} (key ceremonies needed)")
            }
        };
        let clock = match self.dispenser.clock().check() {
            Ok(()) => String::new(),
            Err(_) => format!("; {}", crate::clock::CLOCK_NOT_SET),
        };
        let low = self
            .low_inventory(available)
            .map(|low| format!("; {low}"))
            .unwrap_or_default();
        format!(
            "{state}; {available} {} available; ports {open}/{} open; {} injected since start{clock}{low}",
            if available == 1 { "key" } else { "keys" },
            ports.len(),
            self.stats.injections.load(Ordering::Relaxed)
        )
    }
}
