//! Re-injection control over pseudo-terminals: a terminal that holds its confirmed key is refused another until an operator grants one, and one serial on two ports at once is refused on the second with nothing reserved.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use keymother_daemon::DaemonEvent;
use keymother_protocol::TerminalOutcome;
use keymother_terminal::{PtyLine, inject};
use serde_json::{Value, json};
use support::{Appliance, InProcessDaemon};

fn ask(socket: &Path, request: Value) -> Value {
    let mut stream = UnixStream::connect(socket).unwrap();
    writeln!(stream, "{request}").unwrap();
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).unwrap();
    serde_json::from_str(&answer).unwrap()
}

/// One injection of `serial` with a factory-fresh key store: its outcome.
fn inject_fresh(line: &mut PtyLine, appliance: &Appliance, serial: &str) -> TerminalOutcome {
    let mut store = appliance.key_store();
    inject(line, appliance.terminal(serial), &mut store)
        .unwrap()
        .outcome
}

fn failure(outcome: &TerminalOutcome) -> &str {
    match outcome {
        TerminalOutcome::Failed { reason } => reason,
        other => panic!("expected a failure, got {other}"),
    }
}

/// The keys bound to `serial`, by index.
fn keys_of(appliance: &Appliance, serial: &str) -> Vec<u32> {
    appliance
        .vault()
        .key_assignments()
        .unwrap()
        .into_iter()
        .filter(|(_, bound, _)| bound == serial)
        .map(|(index, _, _)| index)
        .collect()
}

#[test]
fn a_second_injection_is_refused_then_granted_once_and_both_rows_are_marked() {
    let appliance = Appliance::provisioned(10);
    let (mut lines, settings) = appliance.ports(1);
    let daemon = InProcessDaemon::start(settings);
    let socket = appliance.directory.path().join("control.sock");

    let first = inject_fresh(&mut lines[0], &appliance, "123L013K");
    assert!(
        matches!(first, TerminalOutcome::Injected { key_index: 1, .. }),
        "{first}"
    );
    // The same terminal again (wiped, or another unit with its serial): refused, nothing
    // reserved, and the bench says what to do.
    let refused = inject_fresh(&mut lines[0], &appliance, "123L013K");
    let reason = failure(&refused);
    assert!(reason.contains("ALREADY_INJECTED"), "{reason}");
    assert!(reason.contains("SMN 123L013K00000001"), "{reason}");
    assert_eq!(keys_of(&appliance, "123L013K"), [1]);
    assert!(daemon.saw(|event| matches!(
        event,
        DaemonEvent::InjectionFailed { reason, .. } if reason == "already injected: grant a re-injection"
    )));

    let granted = ask(
        &socket,
        json!({"command": "reinject-grant", "hardware_serial": "123L013K", "reason": "PIN pad repaired"}),
    );
    assert_eq!(granted["ok"], true, "{granted}");
    assert_eq!(granted["result"]["state"], "open");
    let open = ask(&socket, json!({"command": "reinject-list"}));
    assert_eq!(open["result"].as_array().unwrap().len(), 1, "{open}");

    let second = inject_fresh(&mut lines[0], &appliance, "123L013K");
    assert!(
        matches!(second, TerminalOutcome::Injected { key_index: 2, .. }),
        "{second}"
    );
    // Used up: the third time is refused again.
    let third = inject_fresh(&mut lines[0], &appliance, "123L013K");
    assert!(failure(&third).contains("SMN 123L013K00000002"), "{third}");
    assert_eq!(keys_of(&appliance, "123L013K"), [1, 2]);
    let all = ask(&socket, json!({"command": "reinject-list", "all": true}));
    assert_eq!(all["result"][0]["state"], "used", "{all}");
    assert_eq!(all["result"][0]["used_for"], "00000002", "{all}");
    assert!(
        ask(&socket, json!({"command": "reinject-list"}))["result"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Both rows marked in the registry.
    let rows = ask(&socket, json!({"command": "smn-rows"}));
    let rows = rows["result"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["smn"], "123L013K00000001");
    assert_eq!(rows[0]["replaced_by"], "123L013K00000002");
    assert_eq!(rows[0]["replaces"], Value::Null);
    assert_eq!(rows[1]["replaces"], "123L013K00000001");
    assert_eq!(rows[1]["reinjection_reason"], "PIN pad repaired");
    assert_eq!(rows[1]["reinjection_grant"], granted["result"]["grant"]);
    drop(daemon);

    // The audit trail: the grant, its use, and the two injections.
    let events: Vec<String> = appliance
        .vault()
        .audit_rows()
        .unwrap()
        .into_iter()
        .map(|row| row.event)
        .filter(|event| event.starts_with("reinjection") || event == "injection")
        .collect();
    assert_eq!(
        events,
        [
            "injection",
            "reinjection-grant",
            "reinjection-used",
            "injection"
        ]
    );
}

#[test]
fn the_same_serial_on_two_ports_at_once_is_refused_on_the_second_with_nothing_reserved() {
    let appliance = Appliance::provisioned(10);
    let (mut lines, settings) = appliance.ports(2);
    let daemon = InProcessDaemon::start(settings);

    // On port 0 the terminal has its key delivered and stays in session (not confirmed).
    let mut store = appliance.key_store();
    let delivered =
        support::vanish_after_delivery(&mut lines[0], appliance.terminal("TWIN0001"), &mut store);
    assert_eq!(delivered, 1);
    // The same serial on port 1 meanwhile: refused, and nothing reserved for it.
    let refused = inject_fresh(&mut lines[1], &appliance, "TWIN0001");
    let reason = failure(&refused);
    assert!(reason.contains("SERIAL_BUSY"), "{reason}");
    assert!(
        reason.contains("the serial is being injected on port bench-0"),
        "{reason}"
    );
    assert!(daemon.saw(|event| matches!(
        event,
        DaemonEvent::InjectionFailed { port, reason } if port == "bench-1" && reason == "serial busy on another port"
    )));
    assert_eq!(keys_of(&appliance, "TWIN0001"), [1]);

    // Another terminal on port 0 ends that session: the serial is free, and on port 1 it
    // confirms the key it holds (the same key, nothing new reserved).
    let other = inject_fresh(&mut lines[0], &appliance, "OTHER001");
    assert!(matches!(other, TerminalOutcome::Injected { .. }), "{other}");
    let moved = inject(&mut lines[1], appliance.terminal("TWIN0001"), &mut store)
        .unwrap()
        .outcome;
    assert!(
        matches!(moved, TerminalOutcome::Injected { key_index: 1, .. }),
        "{moved}"
    );
    assert_eq!(keys_of(&appliance, "TWIN0001"), [1]);
    drop(daemon);
}

#[test]
fn a_profile_terminal_needs_a_grant_for_each_slot_it_takes_again() {
    use support::profiles::{PINPAD_SLOTS, load_bdks, profile_ports, profile_terminal};
    let appliance = Appliance::provisioned(10);
    let (mut lines, settings) = profile_ports(&appliance, 1, PINPAD_SLOTS);
    load_bdks(&appliance, 10);
    let daemon = InProcessDaemon::start(settings);
    let socket = appliance.directory.path().join("control.sock");
    let profile = |line: &mut PtyLine, store: &mut keymother_terminal::SoftwareKeyStore| {
        inject(line, profile_terminal(&appliance, "PROF0001"), store)
            .unwrap()
            .outcome
    };
    let grant = |slot: Value| {
        let answer = ask(
            &socket,
            json!({"command": "reinject-grant", "hardware_serial": "PROF0001", "slot": slot, "reason": "board swapped"}),
        );
        assert_eq!(answer["ok"], true, "{answer}");
    };

    let first = profile(&mut lines[0], &mut appliance.key_store());
    assert!(
        matches!(first, TerminalOutcome::ProfileInjected { .. }),
        "{first}"
    );
    let refused = profile(&mut lines[0], &mut appliance.key_store());
    assert!(failure(&refused).contains("ALREADY_INJECTED"), "{refused}");

    // The master key granted: a new one, then the PIN slot is refused on its own.
    grant(Value::Null);
    let mut store = appliance.key_store();
    let partly = profile(&mut lines[0], &mut store);
    let reason = failure(&partly);
    assert!(
        reason.contains("ALREADY_INJECTED") && reason.contains("initial key of BDK PIN"),
        "{reason}"
    );
    assert_eq!(keys_of(&appliance, "PROF0001"), [1, 2]);

    // Both DUKPT slots granted: the same terminal confirms the master key it holds and takes
    // the two new initial keys.
    grant(json!("PIN"));
    grant(json!("DATA"));
    let done = profile(&mut lines[0], &mut store);
    assert!(
        matches!(done, TerminalOutcome::ProfileInjected { .. }),
        "{done}"
    );
    drop(daemon);
    let vault = appliance.vault();
    let dukpt = vault.dukpt_rows().unwrap();
    assert_eq!(dukpt.len(), 4);
    for label in ["PIN", "DATA"] {
        let rows: Vec<_> = dukpt
            .iter()
            .filter(|row| row.bdk.as_str() == label)
            .collect();
        assert_eq!(
            rows[0].replaced_by.as_ref(),
            Some(&rows[1].initial_ksn),
            "{label}"
        );
        assert_eq!(
            rows[1].replaces.as_ref(),
            Some(&rows[0].initial_ksn),
            "{label}"
        );
    }
    let smn = vault.smn_rows().unwrap();
    assert_eq!(smn[1].replaces.as_ref(), Some(&smn[0].smn));
}
