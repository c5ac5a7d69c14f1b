//! The bench: LEDs, buzzer and display follow the daemon's events, and the tamper input is watched; the rules are sans-IO ([`BenchState`]), a thread drives the hardware.
//!
//! [`BenchState`] folds [`DaemonEvent`]s into a [`BenchView`] (what a screen shows) and says
//! which LED and buzzer changes follow ([`SignalAction`]s): the ready LED is on while the
//! appliance is ready and no port is injecting, the busy LED while any port is, the error LED
//! after a failed injection until the next success or for [`ERROR_HOLD`], and for as long as
//! a tamper is outstanding; a short beep on every injection, a long one on every failure and
//! on a tamper.
//!
//! The bench thread owns the back ends: it applies events as they come, samples the tamper
//! input every [`TAMPER_POLL`] through a [`TamperDebouncer`], and calls
//! [`DisplaySink::show`] when the view changed (at most every [`DISPLAY_INTERVAL`]). A back
//! end that fails is logged once and dropped: injection never stops for the bench. A GPIO
//! back end that failed or could not be opened is opened again every [`GPIO_REOPEN`]; while
//! it is gone the tamper input is not watched, which the dispenser knows (it refuses keys
//! under `[bench] require_tamper_input`) and the audit trail records.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use keymother_gpio::{
    Beep, BenchSignals, GpioError, Led, SimulatedSignals, TamperChange, TamperDebouncer,
};

use keymother_vault::AuditEvent;

use crate::config::{BenchSettings, GpioBackend};
use crate::dispenser::TamperWatch;
use crate::events::{DaemonEvent, LowInventory, Reason};
use crate::state::Shared;
pub use crate::view::{
    BenchView, DisplayError, DisplaySink, LastError, LastInjection, PortActivity,
};

/// A change to the bench's outputs.
pub use keymother_gpio::Signal as SignalAction;

/// How long the error LED stays on after a failure with no success after it.
pub const ERROR_HOLD: Duration = Duration::from_secs(10);
/// How often the tamper input is sampled.
pub const TAMPER_POLL: Duration = Duration::from_millis(10);
/// The display is redrawn at most this often.
pub const DISPLAY_INTERVAL: Duration = Duration::from_millis(100);
/// A tamper the vault could not record is retried this often.
const TAMPER_RETRY: Duration = Duration::from_secs(1);
/// A GPIO back end that failed or could not be opened is opened again this often.
pub const GPIO_REOPEN: Duration = Duration::from_secs(5);

/// Opens the LEDs, the buzzer and the tamper input: when the bench starts, and again every
/// [`GPIO_REOPEN`] after they failed.
pub type SignalsOpener = Box<dyn FnMut() -> Result<Box<dyn BenchSignals>, GpioError> + Send>;

/// The bench's back ends. A back end given here replaces the one `[bench]` would open.
#[derive(Default)]
pub struct BenchBackends {
    /// LEDs, buzzer and tamper input as they are (tests and the demo: a [`SimulatedSignals`]
    /// clone); dropped for good if they fail.
    pub signals: Option<Box<dyn BenchSignals>>,
    /// Opens LEDs, buzzer and tamper input, and opens them again after a failure; replaces
    /// the opener `[bench] gpio` names. Ignored when `signals` is given.
    pub open_signals: Option<SignalsOpener>,
    /// The display.
    pub display: Option<Box<dyn DisplaySink>>,
}

/// The bench's rules, sans-IO: events and times in, the view and output changes out.
#[derive(Debug, Clone)]
pub struct BenchState {
    view: BenchView,
    /// What each LED was last set to (all off at first).
    leds: BTreeMap<Led, bool>,
    /// The error LED stays on until then, unless a success comes first.
    error_until: Option<Duration>,
}

impl BenchState {
    /// `ports_total` ports; the view warns below `low_inventory` keys.
    pub fn new(ports_total: usize, low_inventory: u64) -> BenchState {
        BenchState {
            view: BenchView::new(ports_total, low_inventory),
            leds: Led::ALL.into_iter().map(|led| (led, false)).collect(),
            error_until: None,
        }
    }

    pub fn view(&self) -> &BenchView {
        &self.view
    }

    /// Notes a bench back end switched off.
    pub fn set_warning(&mut self, warning: String) {
        self.view.bench_warning = Some(warning);
    }

    /// A GPIO back end was opened again: its LEDs start dark, so every LED the view calls
    /// for is set anew, and a warning that it was off goes.
    pub fn gpio_reopened(&mut self, now: Duration) -> Vec<SignalAction> {
        for lit in self.leds.values_mut() {
            *lit = false;
        }
        if self
            .view
            .bench_warning
            .as_deref()
            .is_some_and(|warning| warning.starts_with(GPIO_OFF))
        {
            self.view.bench_warning = None;
        }
        self.outputs(None, now)
    }

    /// Applies `event` (at `now`, any monotonic clock) and returns the output changes.
    pub fn apply(&mut self, event: &DaemonEvent, now: Duration) -> Vec<SignalAction> {
        let mut beep = None;
        let view = &mut self.view;
        match event {
            DaemonEvent::Ready { ports } => view.ports_total = *ports,
            DaemonEvent::PortLost { port, .. } | DaemonEvent::PortIdle { port } => {
                view.active.remove(port);
            }
            DaemonEvent::InjectionProgress {
                port,
                hardware_serial,
                step,
            } => {
                view.active.insert(
                    port.clone(),
                    PortActivity {
                        hardware_serial: hardware_serial.clone(),
                        step: *step,
                    },
                );
            }
            DaemonEvent::Injected {
                port,
                hardware_serial,
                key_index,
                smn,
                operator,
                ..
            } => {
                view.active.remove(port);
                view.injections += 1;
                view.last_injection = Some(LastInjection {
                    port: port.clone(),
                    hardware_serial: hardware_serial.clone(),
                    key_index: *key_index,
                    smn: smn.clone(),
                    operator: operator.clone(),
                });
                // A success clears the failure: the display shows what happened last.
                view.last_error = None;
                self.error_until = None;
                beep = Some(Beep::Short);
            }
            DaemonEvent::InjectionFailed { port, reason } => {
                view.active.remove(port);
                view.last_error = Some(LastError {
                    port: port.clone(),
                    reason: reason.clone(),
                    unconfirmed: None,
                });
                self.error_until = Some(now + ERROR_HOLD);
                beep = Some(Beep::Long);
            }
            // A key delivered and never confirmed: a failure like any other, whose screen
            // names the terminal.
            DaemonEvent::DeliveryUnconfirmed(delivery) => {
                view.active.remove(&delivery.port);
                view.last_error = Some(LastError {
                    port: delivery.port.clone(),
                    reason: delivery.cause_words().to_owned(),
                    unconfirmed: Some(delivery.clone()),
                });
                self.error_until = Some(now + ERROR_HOLD);
                beep = Some(Beep::Long);
            }
            DaemonEvent::OperatorChanged { operator } => view.operator = operator.clone(),
            DaemonEvent::ApplianceState(state) => {
                view.ready = state.ready;
                view.tampered = state.tampered;
                view.reason = state.reason.clone();
                view.keys_left = state.keys_left;
                view.low_inventory =
                    LowInventory::check(state.keys_left, view.low_inventory_threshold).is_some();
                view.ports_open = state.ports_open;
                view.ports_total = state.ports_total;
                view.operator = state.operator.clone();
            }
            DaemonEvent::Tamper { input } => {
                view.tampered = true;
                view.ready = false;
                view.reason = Reason::Tampered {
                    input: input.clone(),
                };
                view.active.clear();
                beep = Some(Beep::Long);
            }
            DaemonEvent::BenchWarning { warning } => view.bench_warning = Some(warning.clone()),
            // A profile's last key: the terminal is done (its master key, if any, showed as
            // an injection already).
            DaemonEvent::ProfileInjected { port, .. } => {
                view.active.remove(port);
                view.last_error = None;
                self.error_until = None;
                beep = Some(Beep::Short);
            }
            // The appliance's state that follows says what a damaged vault means.
            DaemonEvent::PortOpened { .. }
            | DaemonEvent::VaultVerified { .. }
            | DaemonEvent::VaultDamaged { .. }
            | DaemonEvent::Session { .. }
            | DaemonEvent::DukptInjected { .. } => {}
        }
        self.outputs(beep, now)
    }

    /// The passing of time: the error LED goes off [`ERROR_HOLD`] after a failure.
    pub fn tick(&mut self, now: Duration) -> Vec<SignalAction> {
        self.outputs(None, now)
    }

    /// The LEDs the view calls for now.
    fn wanted(&self, now: Duration) -> [(Led, bool); 3] {
        let view = &self.view;
        let injecting = !view.active.is_empty();
        let error = view.tampered || self.error_until.is_some_and(|until| now < until);
        [
            (Led::Ready, view.ready && !view.tampered && !injecting),
            (Led::Busy, injecting),
            (Led::Error, error),
        ]
    }

    /// The changes from the LEDs as they are: LEDs going off, then the beep, then LEDs
    /// coming on (busy off, beep, ready on).
    fn outputs(&mut self, beep: Option<Beep>, now: Duration) -> Vec<SignalAction> {
        let wanted = self.wanted(now);
        let mut off = Vec::new();
        let mut on = Vec::new();
        for (led, lit) in wanted {
            if self.leds.get(&led) != Some(&lit) {
                self.leds.insert(led, lit);
                if lit {
                    on.push(SignalAction::Led(led, true));
                } else {
                    off.push(SignalAction::Led(led, false));
                }
            }
        }
        off.extend(beep.map(SignalAction::Beep));
        off.extend(on);
        off
    }
}

/// The running bench thread.
pub(crate) struct BenchThread {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl BenchThread {
    /// Stops the thread (LEDs off) and waits for it.
    pub(crate) async fn stop(self) {
        self.stop.store(true, Ordering::Release);
        let thread = self.thread;
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
}

/// The opener of the GPIO back end `[bench] gpio` names; `None` for none.
fn open_signals(settings: &BenchSettings) -> Option<SignalsOpener> {
    match settings.gpio {
        GpioBackend::None => None,
        GpioBackend::Simulated => Some(Box::new(|| {
            log::info!(event = "gpio"; "bench GPIO simulated: LEDs and buzzer are recorded, the tamper input never fires");
            Ok(Box::new(SimulatedSignals::new()))
        })),
        GpioBackend::Chardev => {
            let pins = settings.pins.clone();
            let debounce = settings.tamper_debounce;
            Some(Box::new(move || {
                let signals = keymother_gpio::ChardevSignals::open(&pins, debounce)?;
                log::info!(event = "gpio"; "bench GPIO open: {}", signals.describe());
                if signals.kernel_debounce().is_none() {
                    log::warn!(
                        event = "gpio";
                        "the tamper input {} has no kernel debouncing (its chip gives the line no interrupt for it): it is debounced by sampling every 10 ms alone",
                        pins.tamper
                    );
                }
                Ok(Box::new(signals))
            }))
        }
    }
}

/// How the bench's tamper input is named in the journal and the audit trail.
pub(crate) fn tamper_input_name(settings: &BenchSettings) -> String {
    settings.pins.tamper.to_string()
}

/// Starts the bench thread when there is anything to drive; it is subscribed to every event
/// from now on.
pub(crate) fn start(
    settings: &BenchSettings,
    backends: BenchBackends,
    shared: Arc<Shared>,
) -> Option<BenchThread> {
    let (signals, opener) = match backends.signals {
        Some(signals) => (Some(signals), None),
        None => (
            None,
            backends.open_signals.or_else(|| open_signals(settings)),
        ),
    };
    let display = backends.display;
    if signals.is_none() && opener.is_none() && display.is_none() {
        return None;
    }
    let events = shared.events.subscribe_thread();
    let stop = Arc::new(AtomicBool::new(false));
    let input = tamper_input_name(settings);
    let mut bench = Bench {
        state: BenchState::new(0, settings.low_inventory),
        signals,
        opener,
        next_reopen: Duration::ZERO,
        lost_recorded: false,
        display,
        debouncer: TamperDebouncer::new(settings.tamper_debounce),
        tamper_debounce: settings.tamper_debounce,
        started: Instant::now(),
        input,
        shared: Arc::clone(&shared),
        dirty: true,
        drawn_at: None,
    };
    // The tamper input's state is settled before the daemon says it is ready.
    if bench.signals.is_some() {
        bench.watching(TamperWatch::Watched {
            input: bench.input.clone(),
        });
    } else {
        bench.reopen(Duration::ZERO);
    }
    let input = bench.input.clone();
    let watched = bench.signals.is_some() || bench.opener.is_some();
    let stopping = Arc::clone(&stop);
    match std::thread::Builder::new()
        .name("keymother-bench".to_owned())
        .spawn(move || bench.run(&events, &stopping))
    {
        Ok(thread) => Some(BenchThread { stop, thread }),
        Err(error) => {
            log::warn!(event = "bench-unavailable"; "the bench thread did not start: {error}; no LEDs, buzzer, tamper input or display");
            if watched {
                record_tamper_watch(
                    &shared,
                    AuditEvent::TamperInputLost {
                        input: input.clone(),
                        reason: format!("the bench thread did not start: {error}"),
                    },
                );
                shared.dispenser.set_tamper_watch(TamperWatch::Unwatched {
                    input,
                    reason: format!("the bench thread did not start: {error}"),
                });
            }
            None
        }
    }
}

/// The bench thread's state.
struct Bench {
    state: BenchState,
    signals: Option<Box<dyn BenchSignals>>,
    /// Opens `signals` again while they are gone; `None` for back ends given as they are.
    opener: Option<SignalsOpener>,
    /// When the opener is tried next.
    next_reopen: Duration,
    /// A `tamper-input-lost` row was written and no `tamper-input-restored` since.
    lost_recorded: bool,
    display: Option<Box<dyn DisplaySink>>,
    debouncer: TamperDebouncer,
    tamper_debounce: Duration,
    /// The bench's clock: every `Duration` here is time since then.
    started: Instant,
    /// The tamper input's name in the audit trail.
    input: String,
    shared: Arc<Shared>,
    /// The view changed since it was last drawn.
    dirty: bool,
    drawn_at: Option<Duration>,
}

impl Bench {
    fn run(mut self, events: &Receiver<DaemonEvent>, stop: &AtomicBool) {
        let started = self.started;
        let mut next_poll = Duration::ZERO;
        let mut next_retry = TAMPER_RETRY;
        while !stop.load(Ordering::Acquire) {
            let wait = next_poll.saturating_sub(started.elapsed());
            match events.recv_timeout(wait) {
                Ok(event) => {
                    let actions = self.state.apply(&event, started.elapsed());
                    self.drive(actions);
                    // A whole vault changes nothing shown: no redraw (it would take the
                    // display's next slot from the screen that follows).
                    if !matches!(event, DaemonEvent::VaultVerified { .. }) {
                        self.dirty = true;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let now = started.elapsed();
            if self.signals.is_none() && self.opener.is_some() && now >= self.next_reopen {
                self.reopen(now);
            }
            if now >= next_poll {
                next_poll = now + TAMPER_POLL;
                self.poll_tamper(now);
                let actions = self.state.tick(now);
                self.drive(actions);
            }
            if now >= next_retry {
                next_retry = now + TAMPER_RETRY;
                if let Some(Ok(report)) = self.shared.dispenser.retry_tamper_record() {
                    log::warn!(
                        event = "tamper-recorded";
                        "the tamper is now recorded (audit row {}) and the sealed secrets deleted",
                        report.audit_sequence
                    );
                }
            }
            self.draw(now);
        }
        // Lights out when the daemon stops.
        if let Some(signals) = self.signals.as_mut() {
            for led in Led::ALL {
                let _ = signals.set_led(led, false);
            }
        }
    }

    fn poll_tamper(&mut self, now: Duration) {
        let Some(signals) = self.signals.as_mut() else {
            return;
        };
        match signals.tamper_asserted() {
            Ok(level) => match self.debouncer.feed(level, now) {
                Some(TamperChange::Asserted) => self.shared.tamper(&self.input),
                Some(TamperChange::Released) => log::warn!(
                    event = "tamper-released", input = self.input.as_str();
                    "the tamper input {} is released; the appliance stays locked until the key ceremonies",
                    self.input
                ),
                None => {}
            },
            Err(error) => self.gpio_failed(&error),
        }
    }

    fn drive(&mut self, actions: Vec<SignalAction>) {
        for action in actions {
            let Some(signals) = self.signals.as_mut() else {
                return;
            };
            let done = match action {
                SignalAction::Led(led, on) => signals.set_led(led, on),
                SignalAction::Beep(beep) => signals.beep(beep),
            };
            if let Err(error) = done {
                self.gpio_failed(&error);
            }
        }
    }

    /// Logs once and drops the GPIO back end: injection carries on without it (unless
    /// `[bench] require_tamper_input`), and it is opened again every [`GPIO_REOPEN`].
    fn gpio_failed(&mut self, error: &GpioError) {
        self.signals = None;
        let warning = format!("{GPIO_OFF}{error}");
        let until = if self.opener.is_some() {
            "until it can be opened again (tried every 5 s)"
        } else {
            "until keymotherd restarts"
        };
        log::warn!(
            event = "gpio-failed";
            "the bench GPIO failed: {error}; LEDs, buzzer and the tamper input are off {until}"
        );
        self.warn(warning);
        // A failing chip is not hammered: the next try is a full interval away.
        self.next_reopen = self.started.elapsed() + GPIO_REOPEN;
        self.watching(TamperWatch::Unwatched {
            input: self.input.clone(),
            reason: format!("the GPIO failed: {error}"),
        });
    }

    /// Shows a back end's warning on the display and tells the observers.
    fn warn(&mut self, warning: String) {
        self.state.set_warning(warning.clone());
        self.shared.emit(DaemonEvent::BenchWarning { warning });
    }

    /// Tries the opener: the tamper input is watched again, or stays unwatched (logged and
    /// recorded once per loss).
    fn reopen(&mut self, now: Duration) {
        let Some(opener) = self.opener.as_mut() else {
            return;
        };
        match opener() {
            Ok(signals) => {
                self.signals = Some(signals);
                self.debouncer = TamperDebouncer::new(self.tamper_debounce);
                let actions = self.state.gpio_reopened(now);
                self.drive(actions);
                self.dirty = true;
                if self.signals.is_some() {
                    self.watching(TamperWatch::Watched {
                        input: self.input.clone(),
                    });
                }
            }
            Err(error) => {
                self.next_reopen = now + GPIO_REOPEN;
                if !self.lost_recorded {
                    let warning = format!("{GPIO_OFF}{error}");
                    log::warn!(
                        event = "gpio-unavailable";
                        "bench GPIO unavailable: {error}; no LEDs, buzzer or tamper input until it opens (tried every 5 s)"
                    );
                    self.warn(warning);
                }
                self.watching(TamperWatch::Unwatched {
                    input: self.input.clone(),
                    reason: format!("the GPIO cannot be opened: {error}"),
                });
            }
        }
    }

    /// Tells the dispenser whether the tamper input is watched; a loss and a recovery each
    /// go to the journal and the audit trail once.
    fn watching(&mut self, watch: TamperWatch) {
        let record = match &watch {
            TamperWatch::Unwatched { input, reason } if !self.lost_recorded => {
                self.lost_recorded = true;
                log::error!(
                    event = "tamper-input-lost", input = input.as_str();
                    "the tamper input {input} is not watched: {reason}{}",
                    if self.shared.dispenser.tamper_input_required() { "; no key is dispensed until it is back ([bench] require_tamper_input)" } else { "; keys still flow ([bench] require_tamper_input = false)" }
                );
                Some(AuditEvent::TamperInputLost {
                    input: input.clone(),
                    reason: reason.clone(),
                })
            }
            TamperWatch::Watched { input } if self.lost_recorded => {
                self.lost_recorded = false;
                log::warn!(
                    event = "tamper-input-restored", input = input.as_str();
                    "the tamper input {input} is watched again"
                );
                Some(AuditEvent::TamperInputRestored {
                    input: input.clone(),
                })
            }
            _ => None,
        };
        self.shared.dispenser.set_tamper_watch(watch);
        if let Some(event) = record {
            record_tamper_watch(&self.shared, event);
        }
    }

    fn draw(&mut self, now: Duration) {
        let due = self
            .drawn_at
            .is_none_or(|at| now.saturating_sub(at) >= DISPLAY_INTERVAL);
        if !self.dirty || !due {
            return;
        }
        let Some(display) = self.display.as_mut() else {
            return;
        };
        self.dirty = false;
        self.drawn_at = Some(now);
        if let Err(error) = display.show(self.state.view()) {
            self.display = None;
            let warning = format!("display off: {error}");
            log::warn!(
                event = "display-failed";
                "the bench display failed: {error}; it stays off until keymotherd restarts; injection carries on"
            );
            self.warn(warning);
        }
    }
}

/// The start of a bench warning about the GPIO.
const GPIO_OFF: &str = "GPIO off: ";

/// Writes a tamper-input row on its own thread: a busy vault must not hold up the bench.
fn record_tamper_watch(shared: &Arc<Shared>, event: AuditEvent) {
    let dispenser = Arc::clone(&shared.dispenser);
    let name = event.name();
    let spawned = std::thread::Builder::new()
        .name("keymother-audit".to_owned())
        .spawn(move || {
            if let Err(error) = dispenser.with_vault(|vault| vault.record_audit(event)) {
                log::error!(event = "audit"; "the {name} row could not be written: {error}");
            }
        });
    if let Err(error) = spawned {
        log::error!(event = "audit"; "the {name} row could not be written: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{
        ApplianceState, InjectionFailureCause, InjectionStep, UnconfirmedDelivery,
    };

    fn state(ready: bool) -> DaemonEvent {
        DaemonEvent::ApplianceState(ApplianceState {
            ready,
            tampered: false,
            reason: if ready {
                Reason::Ready
            } else {
                Reason::NoOperator
            },
            keys_left: 150,
            ports_open: 2,
            ports_total: 2,
            operator: None,
        })
    }

    fn progress(port: &str, step: InjectionStep) -> DaemonEvent {
        DaemonEvent::InjectionProgress {
            port: port.to_owned(),
            hardware_serial: "123L013K".to_owned(),
            step,
        }
    }

    fn injected(port: &str) -> DaemonEvent {
        DaemonEvent::Injected {
            port: port.to_owned(),
            hardware_serial: "123L013K".to_owned(),
            model: "M".to_owned(),
            key_index: 278,
            smn: "123L013K00000278".to_owned(),
            operator: None,
        }
    }

    use SignalAction::{Beep as B, Led as L};

    #[test]
    fn a_good_injection_lights_busy_then_beeps_short_and_lights_ready() {
        let mut bench = BenchState::new(2, 100);
        let at = Duration::from_secs(1);
        assert_eq!(bench.apply(&state(true), at), vec![L(Led::Ready, true)]);
        assert_eq!(
            bench.apply(&progress("bench-1", InjectionStep::Hello), at),
            vec![L(Led::Ready, false), L(Led::Busy, true)]
        );
        for step in [
            InjectionStep::KeyRequested,
            InjectionStep::Delivered { key_index: 278 },
            InjectionStep::Confirming { key_index: 278 },
        ] {
            assert_eq!(bench.apply(&progress("bench-1", step), at), vec![]);
        }
        assert_eq!(
            bench.apply(&injected("bench-1"), at),
            vec![L(Led::Busy, false), B(Beep::Short), L(Led::Ready, true)]
        );
        let view = bench.view();
        assert_eq!(view.injections, 1);
        assert_eq!(
            view.last_injection.as_ref().unwrap().smn,
            "123L013K00000278"
        );
        assert!(view.active.is_empty());
        assert!(!view.low_inventory);
    }

    #[test]
    fn busy_stays_on_while_any_port_injects() {
        let mut bench = BenchState::new(2, 100);
        let at = Duration::ZERO;
        bench.apply(&state(true), at);
        bench.apply(&progress("bench-1", InjectionStep::Hello), at);
        assert_eq!(
            bench.apply(&progress("bench-2", InjectionStep::Hello), at),
            vec![]
        );
        assert_eq!(bench.apply(&injected("bench-1"), at), vec![B(Beep::Short)]);
        assert_eq!(
            bench.apply(
                &DaemonEvent::PortIdle {
                    port: "bench-2".to_owned()
                },
                at
            ),
            vec![L(Led::Busy, false), L(Led::Ready, true)]
        );
    }

    #[test]
    fn a_failure_lights_error_until_the_next_success_or_the_hold_time() {
        let mut bench = BenchState::new(1, 100);
        let start = Duration::from_secs(5);
        bench.apply(&state(true), start);
        bench.apply(&progress("bench-1", InjectionStep::Hello), start);
        let failed = DaemonEvent::InjectionFailed {
            port: "bench-1".to_owned(),
            reason: "KCV mismatch".to_owned(),
        };
        assert_eq!(
            bench.apply(&failed, start),
            vec![
                L(Led::Busy, false),
                B(Beep::Long),
                L(Led::Ready, true),
                L(Led::Error, true)
            ]
        );
        assert_eq!(
            bench.view().last_error,
            Some(LastError {
                port: "bench-1".to_owned(),
                reason: "KCV mismatch".to_owned(),
                unconfirmed: None,
            })
        );
        assert_eq!(bench.tick(start + ERROR_HOLD / 2), vec![]);
        assert_eq!(bench.tick(start + ERROR_HOLD), vec![L(Led::Error, false)]);
        // A failure then a success: the success clears it at once.
        bench.apply(&failed, start + ERROR_HOLD);
        assert_eq!(
            bench.apply(&injected("bench-1"), start + ERROR_HOLD),
            vec![L(Led::Error, false), B(Beep::Short)]
        );
    }

    #[test]
    fn a_tamper_lights_error_beeps_long_and_holds_until_the_state_clears() {
        let mut bench = BenchState::new(1, 100);
        let at = Duration::ZERO;
        bench.apply(&state(true), at);
        bench.apply(&progress("bench-1", InjectionStep::KeyRequested), at);
        let tamper = DaemonEvent::Tamper {
            input: "GPIO23".to_owned(),
        };
        assert_eq!(
            bench.apply(&tamper, at),
            vec![L(Led::Busy, false), B(Beep::Long), L(Led::Error, true)]
        );
        assert!(bench.view().tampered);
        assert_eq!(bench.tick(at + ERROR_HOLD * 10), vec![]);
        let mut tampered = ApplianceState {
            ready: false,
            tampered: true,
            reason: Reason::Tampered {
                input: "GPIO23".to_owned(),
            },
            keys_left: 5,
            ports_open: 1,
            ports_total: 1,
            operator: None,
        };
        assert_eq!(
            bench.apply(&DaemonEvent::ApplianceState(tampered.clone()), at),
            vec![]
        );
        assert!(bench.view().low_inventory);
        tampered.tampered = false;
        tampered.ready = true;
        assert_eq!(
            bench.apply(&DaemonEvent::ApplianceState(tampered), at),
            vec![L(Led::Error, false), L(Led::Ready, true)]
        );
    }

    fn unconfirmed(port: &str, cause: InjectionFailureCause) -> DaemonEvent {
        DaemonEvent::DeliveryUnconfirmed(UnconfirmedDelivery {
            port: port.to_owned(),
            hardware_serial: "123L013K".parse().unwrap(),
            key_index: keymother_domain::KeyIndex::new(279),
            cause,
        })
    }

    #[test]
    fn a_delivery_never_confirmed_beeps_long_and_lights_error_whatever_the_cause() {
        for cause in InjectionFailureCause::ALL {
            let mut bench = BenchState::new(1, 100);
            let start = Duration::from_secs(3);
            bench.apply(&state(true), start);
            bench.apply(&injected("bench-1"), start);
            bench.apply(
                &progress("bench-1", InjectionStep::Delivered { key_index: 279 }),
                start,
            );
            assert_eq!(
                bench.apply(&unconfirmed("bench-1", cause), start),
                vec![
                    L(Led::Busy, false),
                    B(Beep::Long),
                    L(Led::Ready, true),
                    L(Led::Error, true)
                ],
                "{cause}"
            );
            let error = bench.view().last_error.clone().unwrap();
            assert_eq!(error.port, "bench-1");
            let delivery = error.unconfirmed.unwrap();
            assert_eq!(delivery.cause, cause);
            assert_eq!(delivery.hardware_serial.as_str(), "123L013K");
            // The port is no longer injecting; the failure holds the error LED for a while.
            assert!(bench.view().active.is_empty());
            assert_eq!(
                bench.tick(start + ERROR_HOLD),
                vec![L(Led::Error, false)],
                "{cause}"
            );
        }
    }

    #[test]
    fn the_low_inventory_flag_follows_the_keys_left() {
        let mut bench = BenchState::new(1, 100);
        let mut low = ApplianceState {
            ready: true,
            tampered: false,
            reason: Reason::Ready,
            keys_left: 100,
            ports_open: 1,
            ports_total: 1,
            operator: None,
        };
        bench.apply(&DaemonEvent::ApplianceState(low.clone()), Duration::ZERO);
        assert!(!bench.view().low_inventory);
        low.keys_left = 99;
        bench.apply(&DaemonEvent::ApplianceState(low), Duration::ZERO);
        assert!(bench.view().low_inventory);
    }

    #[test]
    fn not_ready_keeps_ready_off() {
        let mut bench = BenchState::new(1, 100);
        assert_eq!(bench.apply(&state(false), Duration::ZERO), vec![]);
        assert_eq!(bench.view().reason, "no operator logged in");
    }
}
