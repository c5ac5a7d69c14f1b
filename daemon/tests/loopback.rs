//! Loopback tests over pseudo-terminal pairs: the real daemon code on one side, reference terminals on the other.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use keymother_daemon::DaemonEvent;
use keymother_protocol::TerminalOutcome;
use keymother_terminal::{Line, NoisyLine, PtyLine, SoftwareKeyStore, inject};
use keymother_vault::KeyState;
use support::{Appliance, InProcessDaemon};

fn kcv_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02X}")).collect()
}

/// Injects one terminal and returns (key index, SMN, KCV) or the failure.
fn inject_one<L: Line>(
    line: &mut L,
    appliance: &Appliance,
    serial: &str,
) -> Result<(u32, String, String), String> {
    inject_with(line, appliance, serial, &mut appliance.key_store())
}

/// Injects with a given key store: a terminal retrying keeps its store (and so confirms a key
/// it holds rather than asking for another).
fn inject_with<L: Line>(
    line: &mut L,
    appliance: &Appliance,
    serial: &str,
    store: &mut SoftwareKeyStore,
) -> Result<(u32, String, String), String> {
    let injection = inject(line, appliance.terminal(serial), store).unwrap();
    match injection.outcome {
        TerminalOutcome::Injected {
            key_index,
            smn,
            kcv,
        } => {
            let (installed_index, installed_kcv) = store.installed().expect("a key in the store");
            assert_eq!(installed_index, key_index);
            assert_eq!(installed_kcv.as_bytes(), kcv.as_slice());
            Ok((key_index, smn.to_string(), kcv_hex(&kcv)))
        }
        TerminalOutcome::Failed { reason } => Err(reason),
        other => panic!("tr31 only here: {other:?}"),
    }
}

fn assert_smn_rows_match(appliance: &Appliance, injected: &[(String, u32, String, String)]) {
    let rows = appliance.vault().smn_rows().unwrap();
    let by_index: HashMap<u32, _> = rows
        .iter()
        .map(|row| (row.key_index.value(), row))
        .collect();
    for (serial, index, smn, kcv) in injected {
        let row = by_index
            .get(index)
            .unwrap_or_else(|| panic!("no SMN row for key {index}"));
        assert_eq!(
            (
                &row.hardware_serial.to_string(),
                &row.smn.to_string(),
                &row.kcv.to_string()
            ),
            (serial, smn, kcv)
        );
        assert_eq!(smn, &format!("{serial}{index:08}"));
    }
}

#[test]
fn one_port_one_terminal() {
    let appliance = Appliance::provisioned(10);
    let (mut lines, settings) = appliance.ports(1);
    let daemon = InProcessDaemon::start(settings);
    let (index, smn, kcv) = inject_one(&mut lines[0], &appliance, "123L013K").unwrap();
    assert_eq!((index, smn.as_str()), (1, "123L013K00000001"));
    assert_smn_rows_match(&appliance, &[("123L013K".to_owned(), index, smn, kcv)]);
    assert_eq!(
        appliance.vault().inventory().unwrap().count(KeyState::Used),
        1
    );
    daemon.wait_for(|event| {
        matches!(
            event,
            keymother_daemon::DaemonEvent::Injected { key_index: 1, .. }
        )
    });
}

#[test]
fn eight_ports_at_once() {
    let appliance = Appliance::provisioned(100);
    let (lines, settings) = appliance.ports(8);
    let _daemon = InProcessDaemon::start(settings);
    let appliance = std::sync::Arc::new(appliance);
    let handles: Vec<_> = lines
        .into_iter()
        .enumerate()
        .map(|(port, mut line)| {
            let appliance = std::sync::Arc::clone(&appliance);
            std::thread::spawn(move || {
                (0..3)
                    .map(|n| {
                        let serial = format!("P{port}T{n}");
                        let (index, smn, kcv) = inject_one(&mut line, &appliance, &serial).unwrap();
                        (serial, index, smn, kcv)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let injected: Vec<_> = handles
        .into_iter()
        .flat_map(|handle| handle.join().unwrap())
        .collect();
    assert_eq!(injected.len(), 24);
    let indexes: HashSet<u32> = injected.iter().map(|(_, index, _, _)| *index).collect();
    assert_eq!(indexes.len(), 24, "every terminal got its own key");
    assert_smn_rows_match(&appliance, &injected);
    let inventory = appliance.vault().inventory().unwrap();
    assert_eq!(inventory.count(KeyState::Used), 24, "keys used = terminals");
    assert_eq!(
        inventory.count(KeyState::Reserved) + inventory.count(KeyState::Sent),
        0
    );
}

#[test]
fn a_terminal_that_vanishes_gets_the_same_key_and_nobody_else_does() {
    let appliance = Appliance::provisioned(10);
    let (mut lines, settings) = appliance.ports(2);
    let _daemon = InProcessDaemon::start(settings);
    let mut store = appliance.key_store();
    let delivered =
        support::vanish_after_delivery(&mut lines[0], appliance.terminal("VANISH01"), &mut store);
    // The daemon records the delivery as sent right after writing it.
    let deadline = Instant::now() + Duration::from_secs(2);
    while appliance.vault().inventory().unwrap().count(KeyState::Sent) != 1 {
        assert!(
            Instant::now() < deadline,
            "the delivered key was never marked sent"
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    // Other terminals, on the same port and on another, never get that key.
    let (other, _, _) = inject_one(&mut lines[0], &appliance, "OTHER001").unwrap();
    let (third, _, _) = inject_one(&mut lines[1], &appliance, "OTHER002").unwrap();
    assert!(other != delivered && third != delivered);

    // The vanished terminal comes back, on the other port even, and gets the same key.
    let (again, smn, _) = inject_one(&mut lines[1], &appliance, "VANISH01").unwrap();
    assert_eq!(again, delivered);
    assert_eq!(smn, format!("VANISH01{delivered:08}"));
    let assignments = appliance.vault().key_assignments().unwrap();
    assert_eq!(assignments.len(), 3);
    assert!(
        assignments
            .iter()
            .all(|(_, _, state)| *state == KeyState::Used)
    );
}

#[test]
fn noise_on_the_line_never_gives_a_key_to_two_terminals() {
    let appliance = Appliance::provisioned(200);
    let (lines, settings) = appliance.ports(4);
    let _daemon = InProcessDaemon::start(settings);
    let appliance = std::sync::Arc::new(appliance);
    let handles: Vec<_> = lines
        .into_iter()
        .enumerate()
        .map(|(port, line)| {
            let appliance = std::sync::Arc::clone(&appliance);
            std::thread::spawn(move || {
                let mut line = NoisyLine::new(line, 0.003, 7 + port as u64);
                let mut injected = Vec::new();
                let mut failures = 0;
                for n in 0..8 {
                    let serial = format!("N{port}T{n}");
                    let mut store = appliance.key_store();
                    // A technician retries a failed injection with the same terminal.
                    loop {
                        match inject_with(&mut line, &appliance, &serial, &mut store) {
                            Ok((index, smn, kcv)) => {
                                injected.push((serial.clone(), index, smn, kcv));
                                break;
                            }
                            Err(_) => failures += 1,
                        }
                        assert!(failures < 40, "the line is too noisy to ever finish");
                    }
                }
                (injected, failures, line.damage())
            })
        })
        .collect();
    let mut injected = Vec::new();
    let mut damaged = 0;
    for handle in handles {
        let (mine, _failures, damage) = handle.join().unwrap();
        damaged += damage.dropped + damage.flipped + damage.inserted;
        injected.extend(mine);
    }
    assert!(damaged > 20, "the noise relay damaged only {damaged} bytes");
    assert_eq!(injected.len(), 32);
    assert_smn_rows_match(&appliance, &injected);
    // Every key bound to a terminal is bound to exactly one, and each terminal got one key.
    let assignments = appliance.vault().key_assignments().unwrap();
    let serials: HashSet<&String> = assignments.iter().map(|(_, serial, _)| serial).collect();
    assert_eq!(
        serials.len(),
        assignments.len(),
        "a terminal holds two keys"
    );
    assert_eq!(assignments.len(), 32);
}

#[test]
fn a_pulled_adapter_is_reopened_while_the_other_ports_keep_injecting() {
    let appliance = Appliance::provisioned(50);
    let (mut lines, settings) = appliance.ports(2);
    let daemon = InProcessDaemon::start(settings);
    let mut other_port = lines.pop().unwrap();
    let pulled = lines.pop().unwrap();

    // Once bench-0 is in use, pull its adapter: the device and its stable name disappear.
    assert!(
        daemon.saw(|event| matches!(event, DaemonEvent::PortOpened { port } if port == "bench-0"))
    );
    let link = appliance.directory.path().join("port-0");
    drop(pulled);
    std::fs::remove_file(&link).unwrap();
    assert!(
        daemon
            .saw(|event| matches!(event, DaemonEvent::PortLost { port, .. } if port == "bench-0"))
    );

    // Meanwhile bench-1 keeps injecting.
    for n in 0..3 {
        inject_one(&mut other_port, &appliance, &format!("STEADY0{n}")).unwrap();
    }

    // Plug it back in: a new device behind the same name. The daemon reopens it on its own.
    let mut replugged = PtyLine::open_pair(&link).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let index = loop {
        match inject_one(&mut replugged, &appliance, "REPLUG01") {
            Ok((index, _, _)) => break index,
            Err(reason) => assert!(Instant::now() < deadline, "never reopened: {reason}"),
        }
    };
    assert!(index > 0);
    assert_eq!(appliance.vault().smn_rows().unwrap().len(), 4);
}
