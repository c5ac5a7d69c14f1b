//! Batch withdrawal over the control socket and pseudo-terminals: after `batch-withdraw` a terminal gets NO_KEYS_AVAILABLE (or the next batch's key), no withdrawn key is ever reserved, a key already sent finishes normally, and the withdrawal is counted apart and audited.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use keymother_protocol::TerminalOutcome;
use keymother_terminal::inject;
use keymother_vault::KeyState;
use serde_json::json;
use support::operators::{ask, ok, refused};
use support::{Appliance, InProcessDaemon};

/// Runs a terminal with a fresh key store: the key index it got, or why it failed.
fn run_terminal(
    line: &mut keymother_terminal::PtyLine,
    appliance: &Appliance,
    serial: &str,
) -> Result<u32, String> {
    let mut store = appliance.key_store();
    match inject(line, appliance.terminal(serial), &mut store)
        .unwrap()
        .outcome
    {
        TerminalOutcome::Injected { key_index, .. } => Ok(key_index),
        TerminalOutcome::Failed { reason } => Err(reason),
        other => panic!("tr31 only here: {other:?}"),
    }
}

/// Keys of the batch ever bound to a terminal while withdrawn: none may be.
fn withdrawn_keys_ever_reserved(appliance: &Appliance) -> i64 {
    support::raw_database(&appliance.data_dir)
        .query_row(
            "SELECT count(*) FROM key_inventory
              WHERE withdrawn = 1 AND (hardware_serial IS NOT NULL OR state <> 'void')",
            [],
            |row| row.get(0),
        )
        .unwrap()
}

#[test]
fn a_withdrawn_batch_gives_no_key_and_its_sent_key_finishes() {
    let appliance = Appliance::provisioned(4);
    let (mut lines, settings) = appliance.ports(2);
    let _daemon = InProcessDaemon::start(settings);
    let socket = appliance.directory.path().join("control.sock");

    // A terminal takes key 1 and vanishes before confirming: the key is sent, pending.
    let mut store = appliance.key_store();
    let sent =
        support::vanish_after_delivery(&mut lines[0], appliance.terminal("PEND0001"), &mut store);
    let deadline = Instant::now() + Duration::from_secs(2);
    while appliance.vault().inventory().unwrap().count(KeyState::Sent) != 1 {
        assert!(
            Instant::now() < deadline,
            "the delivered key was never marked sent"
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    let withdrawn = ok(ask(
        &socket,
        &json!({"command": "batch-withdraw", "batch_id": "B-1", "reason": "front end recalled it"}),
    ));
    assert_eq!(
        withdrawn,
        json!({"batch_id": "B-1", "withdrawn": 3, "pending": 1, "used": 0})
    );

    // A new terminal, on either port, gets no key: nothing is reserved for it.
    for (port, serial) in [(1, "NEW00001"), (0, "NEW00002")] {
        let reason = run_terminal(&mut lines[port], &appliance, serial).unwrap_err();
        assert!(reason.contains("NO_KEYS_AVAILABLE"), "{reason}");
    }
    assert_eq!(withdrawn_keys_ever_reserved(&appliance), 0);

    // The terminal that holds the sent key comes back and confirms it, as before.
    let again = run_terminal(&mut lines[1], &appliance, "PEND0001").unwrap();
    assert_eq!(again, sent);

    // `status` and `inventory` count the withdrawn keys apart.
    let status = ok(ask(&socket, &json!({"command": "status"})));
    assert_eq!(
        (
            &status["keys"]["withdrawn"],
            &status["keys"]["void"],
            &status["keys"]["used"],
            &status["keys"]["available"]
        ),
        (&json!(3), &json!(0), &json!(1), &json!(0)),
        "{status}"
    );
    let inventory = ok(ask(&socket, &json!({"command": "inventory"})));
    assert_eq!(inventory["batches"][0]["withdrawn"], 3, "{inventory}");

    // The audit trail, and so the audit export, carries the withdrawal.
    let rows = appliance.vault().audit_rows().unwrap();
    let row = rows
        .iter()
        .find(|row| row.event == "batch-withdrawn")
        .expect("a batch-withdrawn row");
    assert_eq!(
        row.details,
        "batch=B-1; keys=3; pending=1; reason=front end recalled it; operator=".to_owned()
            + &row.actor
    );
    assert!(appliance.vault().verify_audit().is_ok());
}

#[test]
fn after_a_withdrawal_terminals_get_the_next_batch_and_never_a_withdrawn_key() {
    let appliance = Appliance::provisioned(3);
    let (mut lines, settings) = appliance.ports(1);
    let _daemon = InProcessDaemon::start(settings);
    let socket = appliance.directory.path().join("control.sock");
    assert_eq!(run_terminal(&mut lines[0], &appliance, "FIRST001"), Ok(1));
    ok(ask(
        &socket,
        &json!({"command": "batch-withdraw", "batch_id": "B-1", "reason": "damaged"}),
    ));
    let file = appliance.key_file("B-2", 101, 2);
    ok(support::wire::import_file(&socket, &file));
    assert_eq!(run_terminal(&mut lines[0], &appliance, "NEXT0001"), Ok(101));
    assert_eq!(run_terminal(&mut lines[0], &appliance, "NEXT0002"), Ok(102));
    let reason = run_terminal(&mut lines[0], &appliance, "NEXT0003").unwrap_err();
    assert!(reason.contains("NO_KEYS_AVAILABLE"), "{reason}");
    assert_eq!(withdrawn_keys_ever_reserved(&appliance), 0);
    let inventory = appliance.vault().inventory().unwrap();
    assert_eq!(
        (
            inventory.count(KeyState::Withdrawn),
            inventory.count(KeyState::Used)
        ),
        (2, 3)
    );
}

#[test]
fn withdrawal_refusals_change_nothing() {
    let appliance = Appliance::provisioned(2);
    let (_lines, settings) = appliance.ports(1);
    let _daemon = InProcessDaemon::start(settings);
    let socket = appliance.directory.path().join("control.sock");
    let rows = appliance.vault().audit_rows().unwrap().len();
    for (request, words) in [
        (
            json!({"command": "batch-withdraw", "batch_id": "B-9", "reason": "x"}),
            "batch B-9 was never imported",
        ),
        (
            json!({"command": "batch-withdraw", "batch_id": "B-1", "reason": ""}),
            "withdrawing batch B-1 needs a reason",
        ),
        (
            json!({"command": "batch-withdraw", "batch_id": "B-1"}),
            "missing field `reason`",
        ),
    ] {
        let error = refused(ask(&socket, &request));
        assert!(error.contains(words), "{request}: {error}");
    }
    assert_eq!(appliance.vault().audit_rows().unwrap().len(), rows);
    assert_eq!(appliance.vault().available_keys().unwrap(), 2);
}

#[test]
fn withdrawal_needs_an_operator_session_when_login_is_required() {
    let appliance = Appliance::provisioned(2);
    let (_lines, settings) = appliance.ports_with(1, "");
    let _daemon = InProcessDaemon::start(settings);
    let socket = appliance.directory.path().join("control.sock");
    let error = refused(ask(
        &socket,
        &json!({"command": "batch-withdraw", "batch_id": "B-1", "reason": "recalled"}),
    ));
    assert!(error.contains("no operator is logged in"), "{error}");
    assert_eq!(appliance.vault().available_keys().unwrap(), 2);
}
