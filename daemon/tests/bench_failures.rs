//! Bench failure signals and low inventory: a terminal that stops answering, loses its port or sends ABORT after its key was delivered is a failure (long beep, error LED, an error screen naming the port and its serial, an `injection-failed` audit row) and its key stays reserved; low inventory reaches the journal and STATUS= once, and never hides an injection result on the display.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use keymother_daemon::events::{InjectionFailureCause, UnconfirmedDelivery};
use keymother_daemon::screen::display_on;
use keymother_daemon::{BenchBackends, DaemonEvent, Settings};
use keymother_display::{MemoryPanel, NotConfirmedCause, Screen, render};
use keymother_gpio::{Beep, Led, Signal, SimulatedSignals};
use keymother_protocol::{
    InstallRefusal, TerminalAction, TerminalConfig, TerminalOutcome, TerminalSession,
};
use keymother_terminal::{Line, PtyLine, SoftwareKeyStore, inject};
use keymother_vault::KeyState;
use support::{Appliance, InProcessDaemon};

/// Waits up to 10 s for `condition`.
fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// An in-process daemon on one port with simulated LEDs and buzzer and a memory panel; the
/// idle timeout is `idle_seconds`, the low-inventory warning below `low_inventory` keys.
struct Bench {
    appliance: Appliance,
    line: Option<PtyLine>,
    daemon: InProcessDaemon,
    signals: SimulatedSignals,
    panel: MemoryPanel,
}

impl Bench {
    fn start(keys: u32, idle_seconds: u64, low_inventory: u64) -> Bench {
        let appliance = Appliance::provisioned(keys);
        let sections =
            format!("[operator]\nrequire = false\n[bench]\nlow_inventory = {low_inventory}\n");
        let (mut lines, _) = appliance.ports_with(1, &sections);
        let text = std::fs::read_to_string(appliance.config_path())
            .unwrap()
            .replace(
                "idle_timeout_seconds = 5",
                &format!("idle_timeout_seconds = {idle_seconds}"),
            );
        let settings = Settings::from_toml(&text, "keymotherd.toml").unwrap();
        let signals = SimulatedSignals::new();
        let panel = MemoryPanel::new();
        let daemon = InProcessDaemon::start_with(
            settings,
            BenchBackends {
                signals: Some(Box::new(signals.clone())),
                open_signals: None,
                display: Some(display_on(panel.clone())),
            },
        );
        eventually("the ready LED", || signals.led(Led::Ready));
        Bench {
            appliance,
            line: Some(lines.remove(0)),
            daemon,
            signals,
            panel,
        }
    }

    fn line(&mut self) -> &mut PtyLine {
        self.line.as_mut().unwrap()
    }

    /// A whole injection for `serial`; its INJECTED screen is shown.
    fn inject(&mut self, serial: &str) -> u32 {
        let signals = self.signals.clone();
        let short_beeps = move || {
            signals
                .signals()
                .iter()
                .filter(|signal| **signal == Signal::Beep(Beep::Short))
                .count()
        };
        let beeps_before = short_beeps();
        let config = self.appliance.terminal(serial);
        let mut store = self.appliance.key_store();
        let outcome = inject(self.line(), config, &mut store).unwrap().outcome;
        let TerminalOutcome::Injected { key_index, .. } = outcome else {
            panic!("the injection failed: {outcome:?}");
        };
        self.daemon.wait_for(|event| {
            matches!(event, DaemonEvent::Injected { key_index: index, .. } if *index == key_index)
        });
        // The bench beeps after it hears of the injection: wait for that beep, so a test that
        // clears the signals next does not see it arrive afterwards.
        eventually("the injection's short beep", || {
            short_beeps() > beeps_before
        });
        key_index
    }

    fn shows(&self, what: &str, screen: &Screen) {
        let wanted = render(screen);
        eventually(what, || self.panel.last_frame() == Some(wanted.clone()));
    }

    fn failure(&self) -> UnconfirmedDelivery {
        match self
            .daemon
            .wait_for(|event| matches!(event, DaemonEvent::DeliveryUnconfirmed(_)))
        {
            DaemonEvent::DeliveryUnconfirmed(delivery) => delivery,
            _ => unreachable!(),
        }
    }

    fn audit_details(&self, event: &str) -> Vec<String> {
        self.appliance
            .vault()
            .audit_rows()
            .unwrap()
            .into_iter()
            .filter(|row| row.event == event)
            .map(|row| row.details)
            .collect()
    }

    /// The failure's signals since the last `clear`: busy off, the long beep, the error LED,
    /// and no short beep; the error LED is on.
    fn signalled_a_failure(&self) {
        eventually("the error LED", || self.signals.led(Led::Error));
        let recorded = self.signals.signals();
        assert!(
            recorded.contains(&Signal::Beep(Beep::Long)),
            "no long beep: {recorded:?}"
        );
        assert!(
            !recorded.contains(&Signal::Beep(Beep::Short)),
            "{recorded:?}"
        );
        let long = recorded
            .iter()
            .position(|signal| *signal == Signal::Beep(Beep::Long))
            .unwrap();
        let error_on = recorded
            .iter()
            .position(|signal| *signal == Signal::Led(Led::Error, true))
            .unwrap();
        assert!(long < error_on, "{recorded:?}");
    }

    /// The key stays sent to `serial`: nothing released, nothing reused.
    fn key_still_pending(&self, key_index: u32, serial: &str) {
        let vault = self.appliance.vault();
        assert_eq!(vault.inventory().unwrap().count(KeyState::Sent), 1);
        assert!(
            vault
                .key_assignments()
                .unwrap()
                .iter()
                .any(|(index, bound, state)| *index == key_index
                    && bound == serial
                    && *state == KeyState::Sent),
            "key {key_index} is not bound to {serial}"
        );
    }
}

/// Runs a terminal session until its key is delivered, then refuses it (as a terminal whose
/// check value disagrees would): the terminal sends ABORT and the session ends.
fn abort_after_delivery(
    line: &mut PtyLine,
    config: TerminalConfig,
    store: &mut SoftwareKeyStore,
) -> u32 {
    answer_delivery(line, config, store, Err(InstallRefusal::KcvMismatch))
}

/// Runs a terminal session until its key is delivered, installs it, then answers the
/// delivery with `installed` (a refusal: ABORT; a check value: CONFIRM with it) and goes on
/// until the session ends in a failure.
fn answer_delivery(
    line: &mut PtyLine,
    config: TerminalConfig,
    store: &mut SoftwareKeyStore,
    installed: Result<Vec<u8>, InstallRefusal>,
) -> u32 {
    let mut installed = Some(installed);
    let started = Instant::now();
    let mut session = TerminalSession::new(config);
    let mut pending: std::collections::VecDeque<TerminalAction> =
        session.start(started.elapsed()).into();
    let mut delivered = None;
    let mut buffer = [0u8; 2048];
    loop {
        while let Some(action) = pending.pop_front() {
            match action {
                TerminalAction::Send(bytes) => line.write_all(&bytes).unwrap(),
                TerminalAction::InstallKey {
                    key_index,
                    key_block,
                    kcv,
                    ..
                } => {
                    store.install(key_index, &key_block, &kcv).unwrap();
                    delivered = Some(key_index);
                    let answer = installed.take().expect("one delivery");
                    pending.extend(session.handle_key_installed(answer, started.elapsed()));
                }
                TerminalAction::Finished(outcome) => {
                    assert!(
                        matches!(outcome, TerminalOutcome::Failed { .. }),
                        "{outcome:?}"
                    );
                    return delivered.expect("the session ended before the delivery");
                }
                _ => {}
            }
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no ABORT sent");
        let count = line
            .read_within(&mut buffer, Duration::from_millis(20))
            .unwrap();
        let now = started.elapsed();
        pending.extend(if count > 0 {
            session.handle_bytes(&buffer[..count], now)
        } else {
            session.handle_tick(now)
        });
    }
}

#[test]
fn a_terminal_that_stops_answering_after_its_delivery_is_a_failure_naming_its_serial() {
    let mut bench = Bench::start(10, 1, 0);
    // A terminal injected first: its INJECTED screen must not come back for the next one.
    bench.inject("123L013K");
    bench.signals.clear();

    let config = bench.appliance.terminal("VANISH01");
    let mut store = bench.appliance.key_store();
    let key_index = support::vanish_after_delivery(bench.line(), config, &mut store);
    let failure = bench.failure();
    assert_eq!(
        failure,
        UnconfirmedDelivery {
            port: "bench-0".to_owned(),
            hardware_serial: "VANISH01".parse().unwrap(),
            key_index: keymother_domain::KeyIndex::new(key_index),
            cause: InjectionFailureCause::IdleTimeout,
        }
    );
    bench.shows(
        "the failure screen",
        &Screen::NotConfirmed {
            port: "bench-0".to_owned(),
            hardware_serial: "VANISH01".to_owned(),
            key_index: Some(key_index),
            cause: NotConfirmedCause::StoppedAnswering,
        },
    );
    bench.signalled_a_failure();
    // The audit row is written before the bench hears of the failure.
    assert_eq!(
        bench.audit_details("injection-failed"),
        [format!(
            "port=bench-0; hardware_serial=VANISH01; key_index={key_index:08}; cause=idle-timeout"
        )]
    );
    bench.key_still_pending(key_index, "VANISH01");
    // The session ended in the failure, not silently.
    assert!(
        !bench
            .daemon
            .events_so_far()
            .iter()
            .any(|event| matches!(event, DaemonEvent::InjectionFailed { .. }))
    );

    // The next terminal's success clears the failure.
    bench.inject("123L013M");
    eventually("the error LED off", || !bench.signals.led(Led::Error));
}

#[test]
fn a_port_lost_after_the_delivery_is_a_failure_naming_its_serial() {
    // The idle timeout is far away: only the lost port can end this session.
    let mut bench = Bench::start(10, 60, 0);
    bench.inject("123L013K");
    bench.signals.clear();

    let config = bench.appliance.terminal("PULLED01");
    let mut store = bench.appliance.key_store();
    let key_index = support::vanish_after_delivery(bench.line(), config, &mut store);
    // The cable is pulled: the pseudo-terminal goes, and its link with it (so the daemon
    // cannot reopen another test's).
    std::fs::remove_file(bench.appliance.directory.path().join("port-0")).unwrap();
    drop(bench.line.take());
    let failure = bench.failure();
    assert_eq!(failure.cause, InjectionFailureCause::PortLost);
    assert_eq!(failure.port, "bench-0");
    assert_eq!(failure.hardware_serial.as_str(), "PULLED01");
    assert_eq!(
        failure.key_index.map(|index| index.value()),
        Some(key_index)
    );
    assert!(
        bench
            .daemon
            .saw(|event| matches!(event, DaemonEvent::PortLost { port, .. } if port == "bench-0"))
    );
    bench.shows(
        "the failure screen",
        &Screen::NotConfirmed {
            port: "bench-0".to_owned(),
            hardware_serial: "PULLED01".to_owned(),
            key_index: Some(key_index),
            cause: NotConfirmedCause::PortLost,
        },
    );
    bench.signalled_a_failure();
    assert_eq!(
        bench.audit_details("injection-failed"),
        [format!(
            "port=bench-0; hardware_serial=PULLED01; key_index={key_index:08}; cause=port-lost"
        )]
    );
    bench.key_still_pending(key_index, "PULLED01");
}

#[test]
fn an_abort_after_the_delivery_is_a_failure_naming_its_serial() {
    let mut bench = Bench::start(10, 60, 0);
    bench.inject("123L013K");
    bench.signals.clear();

    let config = bench.appliance.terminal("ABORTS01");
    let mut store = bench.appliance.key_store();
    let key_index = abort_after_delivery(bench.line(), config, &mut store);
    let failure = bench.failure();
    assert_eq!(failure.cause, InjectionFailureCause::Abort);
    assert_eq!(failure.hardware_serial.as_str(), "ABORTS01");
    assert_eq!(
        failure.key_index.map(|index| index.value()),
        Some(key_index)
    );
    bench.shows(
        "the failure screen",
        &Screen::NotConfirmed {
            port: "bench-0".to_owned(),
            hardware_serial: "ABORTS01".to_owned(),
            key_index: Some(key_index),
            cause: NotConfirmedCause::Aborted,
        },
    );
    bench.signalled_a_failure();
    assert_eq!(
        bench.audit_details("injection-failed"),
        [format!(
            "port=bench-0; hardware_serial=ABORTS01; key_index={key_index:08}; cause=abort"
        )]
    );
    bench.key_still_pending(key_index, "ABORTS01");
}

#[test]
fn a_refused_confirmation_is_one_failure_not_a_second_when_the_session_ends() {
    let mut bench = Bench::start(10, 1, 0);
    let config = bench.appliance.terminal("WRONGKCV");
    let mut store = bench.appliance.key_store();
    answer_delivery(bench.line(), config, &mut store, Ok(vec![0x12, 0x34, 0x56]));
    bench.daemon.wait_for(|event| {
        matches!(event, DaemonEvent::InjectionFailed { reason, .. } if reason == "KCV mismatch")
    });
    // The idle timeout ends the session: quietly, the KCV mismatch stays on the screen.
    bench
        .daemon
        .wait_for(|event| matches!(event, DaemonEvent::PortIdle { port } if port == "bench-0"));
    assert!(
        !bench
            .daemon
            .events_so_far()
            .iter()
            .any(|event| matches!(event, DaemonEvent::DeliveryUnconfirmed(_)))
    );
    bench.shows(
        "the KCV mismatch",
        &Screen::Error {
            port: Some("bench-0".to_owned()),
            reason: "KCV mismatch".to_owned(),
        },
    );
    assert!(bench.audit_details("injection-failed").is_empty());
}

#[test]
fn an_abort_before_any_delivery_is_no_unconfirmed_delivery() {
    // A terminal refused before a key is reserved (operator login required, nobody logged
    // in) fails as before: no injection-failed row, nothing pending.
    let appliance = Appliance::provisioned(5);
    let (mut lines, settings) = appliance.ports_with(1, &support::operators::pki_sections(""));
    let daemon = InProcessDaemon::start(settings);
    let outcome = inject(
        &mut lines[0],
        appliance.terminal("123L013K"),
        &mut appliance.key_store(),
    )
    .unwrap()
    .outcome;
    assert!(
        matches!(outcome, TerminalOutcome::Failed { .. }),
        "{outcome:?}"
    );
    daemon.wait_for(|event| matches!(event, DaemonEvent::InjectionFailed { .. }));
    assert!(!daemon.saw(|event| matches!(event, DaemonEvent::DeliveryUnconfirmed(_))));
    let vault = appliance.vault();
    assert!(
        !vault
            .audit_rows()
            .unwrap()
            .iter()
            .any(|row| row.event == "injection-failed")
    );
}

#[test]
fn the_last_keys_still_show_their_injected_screen_with_the_keys_left() {
    // Warning below 3 keys: the first injection leaves 3 (not low), the next ones 2 and 1.
    let mut bench = Bench::start(4, 60, 3);
    let first = bench.inject("123L013K");
    bench.shows(
        "the first result, no warning",
        &Screen::Injected {
            port: "bench-0".to_owned(),
            key_index: first,
            smn: format!("123L013K{first:08}"),
            low_inventory: None,
        },
    );
    for (serial, left) in [("123L013L", 2), ("123L013M", 1), ("123L013N", 0)] {
        let index = bench.inject(serial);
        bench.shows(
            &format!("the result with {left} keys left"),
            &Screen::Injected {
                port: "bench-0".to_owned(),
                key_index: index,
                smn: format!("{serial}{index:08}"),
                low_inventory: Some(left),
            },
        );
    }
}

/// keymotherd as a process with a NOTIFY_SOCKET: returns what it sent there and its log.
struct NotifiedDaemon {
    child: std::process::Child,
    notify: UnixDatagram,
    log: std::path::PathBuf,
    statuses: Vec<String>,
}

impl NotifiedDaemon {
    fn start(appliance: &Appliance, text: &str) -> NotifiedDaemon {
        let directory = appliance.directory.path();
        let config = directory.join("process.toml");
        std::fs::write(&config, text).unwrap();
        let socket = directory.join("notify.sock");
        let notify = UnixDatagram::bind(&socket).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let log = directory.join("keymotherd.log");
        let child = Command::new(env!("CARGO_BIN_EXE_keymotherd"))
            .arg("--config")
            .arg(&config)
            .env("NOTIFY_SOCKET", &socket)
            .env_remove("JOURNAL_STREAM")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        NotifiedDaemon {
            child,
            notify,
            log,
            statuses: Vec::new(),
        }
    }

    /// Waits up to 10 s for a STATUS= line that `wanted` accepts.
    fn status(&mut self, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buffer = [0u8; 4096];
        loop {
            if let Some(found) = self.statuses.iter().find(|status| wanted(status)) {
                return found.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no such STATUS=: {:?}\n{}",
                self.statuses,
                self.log()
            );
            if let Ok(count) = self.notify.recv(&mut buffer) {
                let message = String::from_utf8_lossy(&buffer[..count]).into_owned();
                self.statuses.extend(
                    message
                        .lines()
                        .filter_map(|line| line.strip_prefix("STATUS="))
                        .map(str::to_owned),
                );
            }
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for NotifiedDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn low_inventory_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|line| line.contains("low inventory:"))
        .collect()
}

#[test]
fn low_inventory_reaches_the_journal_once_and_systemd_status() {
    let appliance = Appliance::provisioned(4);
    let (text, mut line) =
        support::process::settings_text(&appliance, &support::process::own_group());
    let text =
        format!("{text}[dispensing]\nidle_timeout_seconds = 5\n[bench]\nlow_inventory = 3\n");
    let mut daemon = NotifiedDaemon::start(&appliance, &text);
    let ready = daemon.status(|status| status.starts_with("ready;"));
    assert!(!ready.contains("low inventory"), "{ready}");
    wait_for_port(&appliance.directory.path().join("control.sock"));

    let mut store = appliance.key_store();
    let mut injected = |serial: &str| {
        let outcome = inject(&mut line, appliance.terminal(serial), &mut store)
            .unwrap()
            .outcome;
        assert!(
            matches!(outcome, TerminalOutcome::Injected { .. }),
            "{outcome:?}"
        );
    };
    // 3 keys left: at the warning level, not below it.
    injected("123L013K");
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        low_inventory_lines(&daemon.log()).is_empty(),
        "{}",
        daemon.log()
    );
    // 2 left: below it. STATUS= says so at once, the journal once.
    injected("123L013L");
    let status = daemon.status(|status| status.contains("low inventory"));
    assert!(
        status.contains("low inventory: 2 keys left (warning below 3)"),
        "{status}"
    );
    // Another injection: still low, no second journal line.
    injected("123L013M");
    std::thread::sleep(Duration::from_millis(600));
    let log = daemon.log();
    let lines = low_inventory_lines(&log);
    assert_eq!(lines.len(), 1, "{log}");
    assert!(
        lines[0].contains("low inventory: 2 keys left (warning below 3): import a key file soon"),
        "{log}"
    );
}

/// Waits until `status` shows the port open (the terminal may start then).
fn wait_for_port(socket: &Path) {
    eventually("the port open", || {
        let answer = support::operators::ask(socket, &serde_json::json!({"command": "status"}));
        answer.to_string().contains("\"open\"")
    });
}
