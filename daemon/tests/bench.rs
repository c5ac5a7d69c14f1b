//! The bench with the real daemon in-process: LED and buzzer sequences from simulated GPIO, the structured events, the tamper input firing during injections, a failing GPIO back end.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keymother_daemon::screen::display_on;
use keymother_daemon::{BenchBackends, DaemonEvent, InjectionStep, Settings};
use keymother_display::{InjectionStep as ScreenStep, MemoryPanel, Screen, render};
use keymother_gpio::{Beep, BenchSignals, GpioError, Led, Signal, SimulatedSignals};
use keymother_protocol::TerminalOutcome;
use keymother_terminal::{Line, SoftwareKeyStore, inject};
use keymother_vault::{KeyState, SecretName};
use support::{Appliance, InProcessDaemon};

/// What the LEDs and the buzzer do over one successful injection on an idle bench.
const ONE_INJECTION: [Signal; 5] = [
    Signal::Led(Led::Ready, false),
    Signal::Led(Led::Busy, true),
    Signal::Led(Led::Busy, false),
    Signal::Beep(Beep::Short),
    Signal::Led(Led::Ready, true),
];

fn with_signals(signals: &SimulatedSignals) -> BenchBackends {
    BenchBackends {
        signals: Some(Box::new(signals.clone())),
        open_signals: None,
        display: None,
    }
}

/// Waits up to 5 s for `condition`.
fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One terminal's injection: the key index, or why it failed.
fn inject_one<L: Line>(
    line: &mut L,
    appliance: &Appliance,
    serial: &str,
    store: &mut SoftwareKeyStore,
) -> Result<u32, String> {
    match inject(line, appliance.terminal(serial), store)
        .unwrap()
        .outcome
    {
        TerminalOutcome::Injected { key_index, .. } => Ok(key_index),
        TerminalOutcome::Failed { reason } => Err(reason),
        other => panic!("tr31 only here: {other:?}"),
    }
}

fn ask(socket: &Path, request: serde_json::Value) -> serde_json::Value {
    let mut stream = UnixStream::connect(socket).unwrap();
    stream.write_all(format!("{request}\n").as_bytes()).unwrap();
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).unwrap();
    serde_json::from_str(&answer).unwrap()
}

fn status(appliance: &Appliance) -> serde_json::Value {
    let answer = ask(
        &appliance.directory.path().join("control.sock"),
        serde_json::json!({"command": "status"}),
    );
    assert_eq!(answer["ok"], true, "{answer}");
    answer["result"].clone()
}

/// Two custodian components of `key_hex` (the first random, the second the XOR).
fn components(key_hex: &str) -> Vec<serde_json::Value> {
    let key = hex::decode(key_hex).unwrap();
    let first: Vec<u8> = (0..key.len()).map(|_| fastrand::u8(..)).collect();
    let second: Vec<u8> = key.iter().zip(&first).map(|(k, f)| k ^ f).collect();
    vec![
        serde_json::json!({"custodian": "Ann Lee", "component": hex::encode_upper(first)}),
        serde_json::json!({"custodian": "Raj Patel", "component": hex::encode_upper(second)}),
    ]
}

fn ceremony(appliance: &Appliance, secret: &str, key_hex: &str) -> serde_json::Value {
    let answer = ask(
        &appliance.directory.path().join("control.sock"),
        serde_json::json!({
            "command": "ceremony",
            "secret": secret,
            "algorithm": "AES-256",
            "components": components(key_hex),
        }),
    );
    assert_eq!(answer["ok"], true, "{answer}");
    answer["result"].clone()
}

fn steps(events: &[DaemonEvent], on: &str) -> Vec<InjectionStep> {
    events
        .iter()
        .filter_map(|event| match event {
            DaemonEvent::InjectionProgress { port, step, .. } if port == on => Some(*step),
            _ => None,
        })
        .collect()
}

#[test]
fn a_full_injection_lights_busy_then_beeps_and_lights_ready_with_every_step_reported() {
    let appliance = Appliance::provisioned(10);
    let (mut lines, settings) = appliance.ports(1);
    let signals = SimulatedSignals::new();
    let daemon = InProcessDaemon::start_with(settings, with_signals(&signals));
    eventually("the ready LED", || signals.led(Led::Ready));
    assert!(!signals.led(Led::Busy) && !signals.led(Led::Error));
    signals.clear();

    let index = inject_one(
        &mut lines[0],
        &appliance,
        "123L013K",
        &mut appliance.key_store(),
    )
    .unwrap();
    daemon.wait_for(|event| matches!(event, DaemonEvent::Injected { .. }));
    eventually("the ready LED again", || signals.led(Led::Ready));
    assert_eq!(signals.signals(), ONE_INJECTION);

    let events = daemon.events_so_far();
    assert_eq!(
        steps(&events, "bench-0"),
        vec![
            InjectionStep::Hello,
            InjectionStep::KeyRequested,
            InjectionStep::Delivered { key_index: index },
            InjectionStep::Confirming { key_index: index },
        ]
    );
    let confirming = events
        .iter()
        .position(|event| {
            matches!(
                event,
                DaemonEvent::InjectionProgress {
                    step: InjectionStep::Confirming { .. },
                    ..
                }
            )
        })
        .unwrap();
    let injected = events
        .iter()
        .position(|event| matches!(event, DaemonEvent::Injected { .. }))
        .unwrap();
    assert!(confirming < injected, "{events:#?}");
    assert!(
        !events
            .iter()
            .any(|event| matches!(event, DaemonEvent::InjectionFailed { .. }))
    );
    // The appliance's state: ready, one key fewer, the port open.
    eventually("the state after the injection", || {
        daemon.events_so_far().iter().any(|event| {
            matches!(event, DaemonEvent::ApplianceState(state)
                if state.ready && state.keys_left == 9 && state.ports_open == 1 && state.ports_total == 1)
        })
    });
}

#[test]
fn a_refused_injection_lights_error_and_beeps_long() {
    let appliance = Appliance::provisioned(10);
    // Operator login required and nobody logged in: the terminal is refused, nothing reserved.
    let (mut lines, settings) = appliance.ports_with(1, &support::operators::pki_sections(""));
    let signals = SimulatedSignals::new();
    let daemon = InProcessDaemon::start_with(settings, with_signals(&signals));
    assert!(daemon.saw(|event| {
        matches!(event, DaemonEvent::ApplianceState(state) if state.reason == "no operator logged in")
    }));
    assert!(!signals.led(Led::Ready), "not ready without an operator");

    let refused = inject_one(
        &mut lines[0],
        &appliance,
        "123L013K",
        &mut appliance.key_store(),
    )
    .unwrap_err();
    assert!(refused.contains("no operator"), "{refused}");
    let failed = daemon.wait_for(|event| matches!(event, DaemonEvent::InjectionFailed { .. }));
    assert_eq!(
        failed,
        DaemonEvent::InjectionFailed {
            port: "bench-0".to_owned(),
            reason: "no operator logged in".to_owned()
        }
    );
    eventually("the error LED", || signals.led(Led::Error));
    let recorded = signals.signals();
    assert!(
        recorded.starts_with(&[
            Signal::Led(Led::Busy, true),
            Signal::Led(Led::Busy, false),
            Signal::Beep(Beep::Long),
            Signal::Led(Led::Error, true),
        ]),
        "{recorded:?}"
    );
    assert!(!recorded.contains(&Signal::Beep(Beep::Short)));
    assert_eq!(
        appliance
            .vault()
            .inventory()
            .unwrap()
            .count(KeyState::Available),
        10
    );

    // The operator logs in: the bench hears of it and turns ready.
    let socket = appliance.directory.path().join("control.sock");
    support::operators::ok(support::operators::login(
        &socket,
        &support::operators::good_certificate("Ann Operator", 0x31),
    ));
    daemon.wait_for(|event| {
        matches!(event, DaemonEvent::OperatorChanged { operator: Some(name) } if name == "Ann Operator")
    });
    eventually("the ready LED", || signals.led(Led::Ready));
    inject_one(
        &mut lines[0],
        &appliance,
        "123L013K",
        &mut appliance.key_store(),
    )
    .unwrap();
    eventually("the error LED off after a success", || {
        !signals.led(Led::Error)
    });
}

/// One bench port: a terminal after another until `stop`; each attempt's start time and
/// outcome.
type Attempts = Vec<(Instant, String, Result<u32, String>)>;

#[test]
fn the_tamper_input_during_injections_stops_every_key_and_only_the_custodians_unlock() {
    let appliance = Arc::new(Appliance::provisioned(300));
    let (lines, settings) = appliance.ports(3);
    let signals = SimulatedSignals::new();
    let panel = MemoryPanel::new();
    let mut backends = with_signals(&signals);
    backends.display = Some(display_on(panel.clone()));
    let daemon = InProcessDaemon::start_with(settings, backends);
    eventually("the ready LED", || signals.led(Led::Ready));

    let stop = Arc::new(AtomicBool::new(false));
    let attempts: Arc<Mutex<Attempts>> = Arc::default();
    let workers: Vec<_> = lines
        .into_iter()
        .enumerate()
        .map(|(port, mut line)| {
            let (appliance, stop, attempts) = (
                Arc::clone(&appliance),
                Arc::clone(&stop),
                Arc::clone(&attempts),
            );
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Acquire) {
                    let serial = format!("P{port}T{n:03}");
                    let started = Instant::now();
                    let outcome =
                        inject_one(&mut line, &appliance, &serial, &mut appliance.key_store());
                    attempts.lock().unwrap().push((started, serial, outcome));
                    n += 1;
                    // A technician plugs in the next terminal.
                    std::thread::sleep(Duration::from_millis(20));
                }
                line
            })
        })
        .collect();
    let injected_before = || {
        attempts
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, _, outcome)| outcome.is_ok())
            .count()
    };
    eventually("a few injections", || injected_before() >= 6);

    // The case is opened.
    signals.set_tamper(true);
    daemon.wait_for(|event| matches!(event, DaemonEvent::Tamper { input } if input == "GPIO23"));
    let tamper_seen = Instant::now();
    let vault = appliance.vault();
    eventually("the tamper row", || {
        vault
            .audit_rows()
            .unwrap()
            .iter()
            .any(|row| row.event == "tamper")
    });
    let bound_at_tamper: BTreeSet<u32> = vault
        .key_assignments()
        .unwrap()
        .into_iter()
        .map(|(index, _, _)| index)
        .collect();
    // Terminals keep coming for a while; none gets a key.
    std::thread::sleep(Duration::from_millis(600));
    stop.store(true, Ordering::Release);
    let mut lines: Vec<_> = workers
        .into_iter()
        .map(|worker| worker.join().unwrap())
        .collect();
    let attempts = attempts.lock().unwrap().clone();
    let after: Vec<_> = attempts
        .iter()
        .filter(|(started, _, _)| *started > tamper_seen)
        .collect();
    assert!(after.len() >= 3, "terminals kept asking: {after:?}");
    // Every port dropped its session (cached deliveries with it) when the tamper came.
    let events = daemon.events_so_far();
    let tamper_at = events
        .iter()
        .position(|event| matches!(event, DaemonEvent::Tamper { .. }))
        .unwrap();
    for port in ["bench-0", "bench-1", "bench-2"] {
        assert!(
            events[tamper_at..]
                .iter()
                .any(|event| matches!(event, DaemonEvent::PortIdle { port: idle } if idle == port)),
            "{port} kept its session"
        );
    }
    for (_, serial, outcome) in &after {
        let reason = outcome.as_ref().expect_err("no key after the tamper");
        assert!(reason.contains("NOT_READY"), "{serial}: {reason}");
    }

    // No key left the vault after the tamper: the keys bound to terminals are those bound
    // when the tamper row was written, and every injection row is for one of them.
    let rows = vault.audit_rows().unwrap();
    let tamper_rows: Vec<_> = rows.iter().filter(|row| row.event == "tamper").collect();
    assert_eq!(tamper_rows.len(), 1);
    assert_eq!(tamper_rows[0].details, "input=GPIO23");
    let bound_after: BTreeSet<u32> = vault
        .key_assignments()
        .unwrap()
        .into_iter()
        .map(|(index, _, _)| index)
        .collect();
    assert_eq!(bound_after, bound_at_tamper);
    vault.verify_audit().unwrap();
    for name in SecretName::ALL {
        assert!(vault.secret_info(name).unwrap().is_none(), "{name} deleted");
    }
    drop(vault);

    // The appliance says so, and the bench shows it.
    let locked = status(&appliance);
    assert_eq!(locked["state"], "tampered", "{locked}");
    assert_eq!(locked["tampered"], "GPIO23");
    assert_eq!(locked["ready"], false);
    assert_eq!(locked["secrets"]["KEK"], serde_json::Value::Null);
    assert!(signals.led(Led::Error));
    assert!(!signals.led(Led::Ready) && !signals.led(Led::Busy));
    assert!(signals.signals().contains(&Signal::Beep(Beep::Long)));
    assert!(daemon.saw(|event| matches!(event, DaemonEvent::ApplianceState(state) if state.tampered && !state.ready)));

    // The case is closed; custodians hold both ceremonies again, with new components of
    // the same KEK and TTK. One is not enough.
    signals.set_tamper(false);
    eventually("the tamper screen", || {
        panel.last_frame() == Some(render(&Screen::Tamper))
    });
    let available = appliance.vault().available_keys().unwrap();
    let kek = ceremony(&appliance, "kek", &appliance.kek_hex);
    assert_eq!(kek["ready"], false, "{kek}");
    assert_eq!(kek["tampered"], "GPIO23");
    assert_eq!(status(&appliance)["state"], "tampered");
    let refused = inject_one(
        &mut lines[0],
        &appliance,
        "9KEKONLY",
        &mut appliance.key_store(),
    )
    .unwrap_err();
    assert!(refused.contains("NOT_READY"), "{refused}");
    let ttk = ceremony(&appliance, "ttk", &appliance.transport_key_hex);
    assert_eq!(ttk["ready"], true, "{ttk}");
    assert_eq!(ttk["tampered"], serde_json::Value::Null);
    let unlocked = status(&appliance);
    assert_eq!(unlocked["state"], "ready", "{unlocked}");
    assert_eq!(unlocked["tampered"], serde_json::Value::Null);
    daemon.wait_for(|event| matches!(event, DaemonEvent::ApplianceState(state) if state.ready && !state.tampered));

    // The same inventory injects again, on every port.
    for (port, line) in lines.iter_mut().enumerate() {
        let index = inject_one(
            line,
            &appliance,
            &format!("AFTER{port}"),
            &mut appliance.key_store(),
        )
        .unwrap();
        assert!(!bound_at_tamper.contains(&index));
    }
    assert_eq!(appliance.vault().available_keys().unwrap(), available - 3);
    appliance.vault().verify_audit().unwrap();
}

/// A GPIO back end whose every call fails, counting the calls.
struct FailingSignals {
    calls: Arc<AtomicUsize>,
}

impl BenchSignals for FailingSignals {
    fn set_led(&mut self, _led: Led, _on: bool) -> Result<(), GpioError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Err(GpioError::Failed("the GPIO chip went away".to_owned()))
    }
    fn beep(&mut self, _beep: Beep) -> Result<(), GpioError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Err(GpioError::Failed("the GPIO chip went away".to_owned()))
    }
    fn tamper_asserted(&mut self) -> Result<bool, GpioError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Err(GpioError::Failed("the GPIO chip went away".to_owned()))
    }
}

#[test]
fn a_failing_gpio_is_one_warning_and_injection_carries_on() {
    let appliance = Appliance::provisioned(10);
    let (mut lines, settings) = appliance.ports(1);
    let calls = Arc::new(AtomicUsize::new(0));
    let backends = BenchBackends {
        signals: Some(Box::new(FailingSignals {
            calls: Arc::clone(&calls),
        })),
        open_signals: None,
        display: None,
    };
    let daemon = InProcessDaemon::start_with(settings, backends);
    // The first tamper sample fails, maybe before the daemon said it is ready.
    assert!(daemon.saw(|event| matches!(event, DaemonEvent::BenchWarning { .. })));
    let warning = daemon
        .events_so_far()
        .into_iter()
        .find(|event| matches!(event, DaemonEvent::BenchWarning { .. }))
        .unwrap();
    assert_eq!(
        warning,
        DaemonEvent::BenchWarning {
            warning: "GPIO off: the GPIO back end failed: the GPIO chip went away".to_owned()
        }
    );
    for serial in ["123L013K", "456L013K"] {
        inject_one(
            &mut lines[0],
            &appliance,
            serial,
            &mut appliance.key_store(),
        )
        .unwrap();
    }
    daemon.wait_for(|event| matches!(event, DaemonEvent::Injected { key_index: 2, .. }));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "dropped after its first error"
    );
    let warnings = daemon
        .events_so_far()
        .into_iter()
        .filter(|event| matches!(event, DaemonEvent::BenchWarning { .. }))
        .count();
    assert_eq!(warnings, 1);
}

#[test]
fn a_tamper_while_the_vault_is_busy_locks_at_once_is_recorded_later_and_survives_a_restart() {
    let appliance = Appliance::provisioned(10);
    let (mut lines, settings) = appliance.ports(1);
    let signals = SimulatedSignals::new();
    let daemon = InProcessDaemon::start_with(settings.clone(), with_signals(&signals));
    eventually("the ready LED", || signals.led(Led::Ready));

    // Another process holds the database's write lock (a stuck maintenance command, say):
    // the vault cannot write for longer than its busy timeout (5 s).
    let blocker = support::raw_database(&appliance.data_dir);
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    signals.set_tamper(true);
    daemon.wait_for(|event| matches!(event, DaemonEvent::Tamper { .. }));
    // Locked at once: nothing in memory, terminals refused, the bench shows it.
    let refused = inject_one(
        &mut lines[0],
        &appliance,
        "123L013K",
        &mut appliance.key_store(),
    )
    .unwrap_err();
    assert!(refused.contains("NOT_READY"), "{refused}");
    eventually("the error LED", || signals.led(Led::Error));
    let sealed = |connection: &rusqlite::Connection| -> i64 {
        connection
            .query_row("SELECT count(*) FROM sealed_secret", [], |row| row.get(0))
            .unwrap()
    };
    assert_eq!(sealed(&blocker), 2, "not yet deleted: the vault is busy");
    std::thread::sleep(Duration::from_millis(5500));
    blocker.execute_batch("ROLLBACK").unwrap();

    // Retried every second until it is recorded.
    eventually("the tamper row", || {
        let connection = support::raw_database(&appliance.data_dir);
        let tampers: i64 = connection
            .query_row(
                "SELECT count(*) FROM audit_log WHERE event = 'tamper'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        tampers == 1 && sealed(&connection) == 0
    });
    appliance.vault().verify_audit().unwrap();
    assert_eq!(status(&appliance)["state"], "tampered");

    // A restart does not unlock it: the vault remembers the unanswered tamper.
    drop(daemon);
    let signals = SimulatedSignals::new();
    let daemon = InProcessDaemon::start_with(settings, with_signals(&signals));
    assert!(
        daemon.saw(|event| matches!(event, DaemonEvent::ApplianceState(state) if state.tampered))
    );
    eventually("the error LED after the restart", || {
        signals.led(Led::Error)
    });
    assert_eq!(status(&appliance)["tampered"], "GPIO23");
    let refused = inject_one(
        &mut lines[0],
        &appliance,
        "123L013K",
        &mut appliance.key_store(),
    )
    .unwrap_err();
    assert!(refused.contains("NOT_READY"), "{refused}");
}

/// A line whose terminal pauses before each frame it sends, so every step of an injection
/// lasts longer than the display's refresh interval and shows.
struct Unhurried<L: Line>(L);

impl<L: Line> Line for Unhurried<L> {
    fn read_within(&mut self, buffer: &mut [u8], timeout: Duration) -> std::io::Result<usize> {
        self.0.read_within(buffer, timeout)
    }

    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        std::thread::sleep(Duration::from_millis(250));
        self.0.write_all(bytes)
    }
}

#[test]
fn the_display_and_the_leds_follow_a_full_injection_screen_by_screen() {
    // More keys than the low-inventory threshold (100), so the idle screen is READY.
    let appliance = Appliance::provisioned(200);
    let (lines, settings) = appliance.ports(1);
    let panel = MemoryPanel::new();
    let signals = SimulatedSignals::new();
    let backends = BenchBackends {
        signals: Some(Box::new(signals.clone())),
        open_signals: None,
        display: Some(display_on(panel.clone())),
    };
    let daemon = InProcessDaemon::start_with(settings, backends);
    let ready = Screen::Ready {
        keys_left: 200,
        ports_open: 1,
        ports_total: 1,
        operator: None,
    };
    eventually("the ready screen", || {
        panel.last_frame() == Some(render(&ready))
    });
    eventually("the ready LED", || signals.led(Led::Ready));
    signals.clear();

    let mut line = Unhurried(lines.into_iter().next().unwrap());
    let mut store = appliance.key_store();
    let mut config = appliance.terminal("123L013K");
    config.response_timeout = Duration::from_secs(2);
    let TerminalOutcome::Injected { key_index, smn, .. } =
        inject(&mut line, config, &mut store).unwrap().outcome
    else {
        panic!("the injection failed");
    };
    daemon.wait_for(|event| matches!(event, DaemonEvent::Injected { .. }));
    let injected = Screen::Injected {
        port: "bench-0".to_owned(),
        key_index,
        smn: smn.to_string(),
        low_inventory: None,
    };
    eventually("the injected screen", || {
        panel.last_frame() == Some(render(&injected))
    });
    // The LEDs and the buzzer over the same injection.
    eventually("the ready LED again", || signals.led(Led::Ready));
    assert_eq!(signals.signals(), ONE_INJECTION);

    // Every frame shown, named by the screen it is, in the order of an injection.
    let injecting = |step| Screen::Injecting {
        port: "bench-0".to_owned(),
        hardware_serial: "123L013K".to_owned(),
        step,
    };
    let order = [
        Screen::Booting {
            version: env!("CARGO_PKG_VERSION").to_owned(),
        },
        // While the port is still being opened (a loaded machine may show it).
        Screen::Error {
            port: None,
            reason: "no serial port open: check the bench cables".to_owned(),
        },
        ready.clone(),
        injecting(ScreenStep::Hello),
        injecting(ScreenStep::KeyRequested),
        injecting(ScreenStep::Delivered),
        injecting(ScreenStep::Confirming),
        injected.clone(),
    ];
    let shown: Vec<usize> = panel
        .frames()
        .iter()
        .map(|frame| {
            order
                .iter()
                .position(|screen| &render(screen) == frame)
                .unwrap_or_else(|| panic!("an unexpected screen was shown:\n{frame:?}"))
        })
        .collect();
    assert!(
        shown.windows(2).all(|pair| pair[0] < pair[1]),
        "screens out of order: {shown:?}"
    );
    // Steps that last a quarter of a second each cannot be skipped.
    for must in [2, 3, 5, 7] {
        assert!(
            shown.contains(&must),
            "{:?} never shown: {shown:?}",
            order[must]
        );
    }
}

#[test]
fn a_panel_that_cannot_be_opened_leaves_injection_working() {
    let appliance = Appliance::provisioned(4);
    let (mut lines, _) = appliance.ports(1);
    let mut text = std::fs::read_to_string(appliance.config_path()).unwrap();
    text.push_str("[bench]\ndisplay = \"ssd1306\"\ni2c_bus = \"/nonexistent/i2c-9\"\n");
    let settings = Settings::from_toml(&text, "keymotherd.toml").unwrap();
    let daemon = InProcessDaemon::start(settings);
    for serial in ["NOPANEL1", "NOPANEL2"] {
        inject_one(
            &mut lines[0],
            &appliance,
            serial,
            &mut appliance.key_store(),
        )
        .unwrap();
    }
    daemon.wait_for(|event| matches!(event, DaemonEvent::Injected { .. }));
    assert_eq!(appliance.vault().smn_rows().unwrap().len(), 2);
}

/// GPIO that can be pulled: while `broken`, opening fails and an open back end fails its
/// next call; otherwise it is `signals`.
#[derive(Clone)]
struct PullableGpio {
    signals: SimulatedSignals,
    broken: Arc<AtomicBool>,
    opened: Arc<AtomicUsize>,
}

impl PullableGpio {
    fn new(broken: bool) -> PullableGpio {
        PullableGpio {
            signals: SimulatedSignals::new(),
            broken: Arc::new(AtomicBool::new(broken)),
            opened: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn backends(&self) -> BenchBackends {
        let gpio = self.clone();
        BenchBackends {
            signals: None,
            open_signals: Some(Box::new(move || {
                if gpio.broken.load(Ordering::SeqCst) {
                    return Err(GpioError::Open {
                        chip: "/dev/gpiochip0".to_owned(),
                        reason: "no such device".to_owned(),
                    });
                }
                gpio.opened.fetch_add(1, Ordering::SeqCst);
                Ok(Box::new(gpio.clone()) as Box<dyn BenchSignals>)
            })),
            display: None,
        }
    }

    fn set_broken(&self, broken: bool) {
        self.broken.store(broken, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), GpioError> {
        if self.broken.load(Ordering::SeqCst) {
            Err(GpioError::Failed("the GPIO chip went away".to_owned()))
        } else {
            Ok(())
        }
    }
}

impl BenchSignals for PullableGpio {
    fn set_led(&mut self, led: Led, on: bool) -> Result<(), GpioError> {
        self.check()?;
        self.signals.set_led(led, on)
    }
    fn beep(&mut self, beep: Beep) -> Result<(), GpioError> {
        self.check()?;
        self.signals.beep(beep)
    }
    fn tamper_asserted(&mut self) -> Result<bool, GpioError> {
        self.check()?;
        self.signals.tamper_asserted()
    }
}

/// Waits up to `limit` for `condition`.
fn eventually_within(limit: Duration, what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The GPIO is opened again every 5 s: a little more than that.
const REOPEN_WAIT: Duration = Duration::from_secs(8);

/// The audit rows of `event`, as `details`.
fn audit_details(appliance: &Appliance, event: &str) -> Vec<String> {
    appliance
        .vault()
        .audit_rows()
        .unwrap()
        .into_iter()
        .filter(|row| row.event == event)
        .map(|row| row.details)
        .collect()
}

#[test]
fn a_gpio_that_cannot_be_opened_is_tried_again_and_its_loss_and_return_are_audited() {
    let appliance = Appliance::provisioned(10);
    let (mut lines, settings) = appliance.ports(1);
    let gpio = PullableGpio::new(true);
    let daemon = InProcessDaemon::start_with(settings, gpio.backends());

    // Not watched from the start: said, recorded, and (not required) keys still flow.
    let unwatched = status(&appliance);
    assert_eq!(
        unwatched["tamper_input"]["state"], "not watched",
        "{unwatched}"
    );
    assert_eq!(unwatched["tamper_input"]["input"], "GPIO23");
    assert_eq!(unwatched["tamper_input"]["required"], false);
    let reason = unwatched["tamper_input"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("/dev/gpiochip0: no such device"),
        "{reason}"
    );
    eventually("the tamper-input-lost row", || {
        audit_details(&appliance, "tamper-input-lost").len() == 1
    });
    let lost = audit_details(&appliance, "tamper-input-lost");
    assert!(
        lost[0].starts_with("input=GPIO23; reason=the GPIO cannot be opened"),
        "{lost:?}"
    );
    assert!(daemon.saw(|event| matches!(event, DaemonEvent::BenchWarning { warning } if warning.contains("no such device"))));
    inject_one(
        &mut lines[0],
        &appliance,
        "123L013K",
        &mut appliance.key_store(),
    )
    .unwrap();

    // The chip comes back: opened at the next try, the LEDs show the state at once, and the
    // tamper input works again.
    gpio.set_broken(false);
    eventually_within(REOPEN_WAIT, "the GPIO opened again", || {
        gpio.opened.load(Ordering::SeqCst) == 1
    });
    eventually("the ready LED", || gpio.signals.led(Led::Ready));
    eventually("the watched state", || {
        status(&appliance)["tamper_input"]["state"] == "watched"
    });
    eventually("the tamper-input-restored row", || {
        audit_details(&appliance, "tamper-input-restored") == ["input=GPIO23"]
    });
    // Tried again, but recorded once per loss.
    assert_eq!(audit_details(&appliance, "tamper-input-lost").len(), 1);
    gpio.signals.set_tamper(true);
    daemon.wait_for(|event| matches!(event, DaemonEvent::Tamper { input } if input == "GPIO23"));
    assert_eq!(status(&appliance)["state"], "tampered");
    appliance.vault().verify_audit().unwrap();
}

#[test]
fn when_the_tamper_input_is_required_no_key_flows_while_it_is_not_watched() {
    let appliance = Appliance::provisioned(10);
    let (mut lines, mut settings) = appliance.ports(1);
    settings.bench.require_tamper_input = true;
    let gpio = PullableGpio::new(false);
    let daemon = InProcessDaemon::start_with(settings, gpio.backends());
    let watched = status(&appliance);
    assert_eq!(watched["tamper_input"]["state"], "watched", "{watched}");
    assert_eq!(watched["tamper_input"]["required"], true);
    assert_eq!(watched["state"], "ready");
    inject_one(
        &mut lines[0],
        &appliance,
        "123L013K",
        &mut appliance.key_store(),
    )
    .unwrap();

    // The chip goes away while the bench runs: the next tamper sample fails.
    gpio.set_broken(true);
    daemon.wait_for(|event| matches!(event, DaemonEvent::BenchWarning { .. }));
    eventually("the not-watched state", || {
        status(&appliance)["tamper_input"]["state"] == "not watched"
    });
    let waiting = status(&appliance);
    assert_eq!(waiting["state"], "waiting", "{waiting}");
    let reason = waiting["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("tamper input GPIO23 not watched: the GPIO failed"),
        "{reason}"
    );
    let available = appliance.vault().available_keys().unwrap();
    let refused = inject_one(
        &mut lines[0],
        &appliance,
        "456L013K",
        &mut appliance.key_store(),
    )
    .unwrap_err();
    assert!(refused.contains("NOT_READY"), "{refused}");
    assert!(refused.contains("tamper input is not watched"), "{refused}");
    assert_eq!(
        appliance.vault().available_keys().unwrap(),
        available,
        "nothing reserved"
    );
    assert!(daemon.saw(|event| matches!(event, DaemonEvent::InjectionFailed { reason, .. } if reason == "tamper input not watched")));
    eventually("the tamper-input-lost row", || {
        audit_details(&appliance, "tamper-input-lost").len() == 1
    });

    // Back: keys flow again.
    gpio.set_broken(false);
    eventually_within(REOPEN_WAIT, "the watched state", || {
        status(&appliance)["tamper_input"]["state"] == "watched"
    });
    inject_one(
        &mut lines[0],
        &appliance,
        "456L013K",
        &mut appliance.key_store(),
    )
    .unwrap();
    assert_eq!(
        audit_details(&appliance, "tamper-input-restored"),
        ["input=GPIO23"]
    );
    assert_eq!(status(&appliance)["state"], "ready");
    appliance.vault().verify_audit().unwrap();
}

/// `[bench]` for the character-device back end on the lines named `names` (ready, busy,
/// error, buzzer, tamper), with operator login off.
fn chardev_sections(names: &[String]) -> String {
    format!(
        "[operator]\nrequire = false\n[bench]\ngpio = \"chardev\"\nready_led = {:?}\nbusy_led = {:?}\n\
         error_led = {:?}\nbuzzer = {:?}\ntamper_pin = {:?}\ntamper_debounce_ms = 20\n",
        names[0], names[1], names[2], names[3], names[4]
    )
}

/// Line names no machine has but the simulated chip this process makes.
fn sim_line_names(test: &str) -> Vec<String> {
    ["ready", "busy", "error", "buzzer", "tamper"]
        .iter()
        .map(|line| format!("km{}-{test}-{line}", std::process::id()))
        .collect()
}

#[test]
fn the_chardev_back_end_that_finds_no_line_says_where_it_looked() {
    let appliance = Appliance::provisioned(10);
    let names = sim_line_names("absent");
    let (mut lines, settings) = appliance.ports_with(1, &chardev_sections(&names));
    let daemon = InProcessDaemon::start_with(settings, BenchBackends::default());
    let unwatched = status(&appliance);
    assert_eq!(
        unwatched["tamper_input"]["state"], "not watched",
        "{unwatched}"
    );
    assert_eq!(unwatched["tamper_input"]["input"], names[4].as_str());
    // No line of that name on any chip, or no chip, or a chip this user cannot open: each
    // says /dev/gpiochip, never /dev/mem or /dev/gpiomem.
    let reason = unwatched["tamper_input"]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("the GPIO cannot be opened: ") && reason.contains("/dev/gpiochip"),
        "{reason}"
    );
    assert!(
        !reason.contains("gpiomem") && !reason.contains("/dev/mem"),
        "{reason}"
    );
    assert!(daemon.saw(|event| matches!(event, DaemonEvent::BenchWarning { warning } if warning.contains("/dev/gpiochip"))));
    eventually("the tamper-input-lost row", || {
        audit_details(&appliance, "tamper-input-lost").len() == 1
    });
    // Not required: keys flow.
    inject_one(
        &mut lines[0],
        &appliance,
        "123L013K",
        &mut appliance.key_store(),
    )
    .unwrap();
}

#[test]
fn on_gpio_sim_the_daemon_drives_the_leds_and_a_pulled_tamper_line_locks_it() {
    use keymother_gpio::gpio_sim::{self, Availability, SimChip};
    match gpio_sim::availability() {
        Ok(Availability::Ready) => {}
        Ok(Availability::Skip(why)) => {
            eprintln!(
                "SKIPPED on_gpio_sim_the_daemon_drives_the_leds_and_a_pulled_tamper_line_locks_it: gpio-sim cannot be used here: {why}"
            );
            return;
        }
        Err(problem) => panic!("gpio-sim: {problem}"),
    }
    const READY: u32 = 0;
    const ERROR: u32 = 2;
    const TAMPER: u32 = 4;
    let names = sim_line_names("daemon");
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let sim = SimChip::create("keymother-test", &refs).unwrap();
    let appliance = Appliance::provisioned(10);
    let (mut lines, settings) = appliance.ports_with(1, &chardev_sections(&names));
    let daemon = InProcessDaemon::start_with(settings, BenchBackends::default());
    let watched = status(&appliance);
    assert_eq!(watched["tamper_input"]["state"], "watched", "{watched}");
    assert_eq!(watched["tamper_input"]["input"], names[4].as_str());
    eventually("the ready LED", || sim.value(READY).unwrap());
    assert!(sim.value(TAMPER).unwrap(), "the tamper line's pull-up");
    inject_one(
        &mut lines[0],
        &appliance,
        "123L013K",
        &mut appliance.key_store(),
    )
    .unwrap();
    eventually("the ready LED after the injection", || {
        sim.value(READY).unwrap()
    });

    // The case opens: the switch pulls the line to ground.
    sim.set_pull(TAMPER, false).unwrap();
    daemon.wait_for(|event| matches!(event, DaemonEvent::Tamper { input } if *input == names[4]));
    assert_eq!(status(&appliance)["state"], "tampered");
    eventually("the error LED", || sim.value(ERROR).unwrap());
    assert!(!sim.value(READY).unwrap());
    eventually("the tamper row", || {
        audit_details(&appliance, "tamper")
            .iter()
            .any(|details| details.contains(names[4].as_str()))
    });
    let refused = inject_one(
        &mut lines[0],
        &appliance,
        "456L013K",
        &mut appliance.key_store(),
    )
    .unwrap_err();
    assert!(refused.contains("NOT_READY"), "{refused}");
    drop(daemon);
    // Stopped: the lines are let go and the LEDs dark.
    assert!(!sim.value(ERROR).unwrap());
}
