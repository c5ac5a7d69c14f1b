//! The audit chain's whole walk after READY: a walk that passes moves the last verified point to the head; an old row edited before that point lets the daemon become READY, then the background walk locks the appliance and audits it, and the next start is locked before READY.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use keymother_daemon::DaemonEvent;
use keymother_protocol::TerminalOutcome;
use keymother_terminal::{PtyLine, inject};
use serde_json::json;
use support::operators::{ask, ok};
use support::{Appliance, InProcessDaemon};

fn socket(appliance: &Appliance) -> PathBuf {
    appliance.directory.path().join("control.sock")
}

/// One injection: the key index, or the terminal's failure.
fn inject_one(line: &mut PtyLine, appliance: &Appliance, serial: &str) -> Result<u32, String> {
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

/// The recorded checkpoint's sequence, read as another process would.
fn checkpoint(data_dir: &Path) -> Option<i64> {
    support::raw_database(data_dir)
        .query_row("SELECT sequence FROM audit_checkpoint", [], |row| {
            row.get(0)
        })
        .ok()
}

fn head(data_dir: &Path) -> i64 {
    support::raw_database(data_dir)
        .query_row("SELECT last_sequence FROM audit_head", [], |row| row.get(0))
        .unwrap()
}

/// Rewrites the details of audit row 2 (the KEK ceremony), as someone with write access to
/// the file would: the row no longer matches its hash.
fn edit_row_2(data_dir: &Path) {
    support::raw_database(data_dir)
        .execute_batch(
            "DROP TRIGGER audit_log_never_rewritten;
             UPDATE audit_log SET details = details || ' ' WHERE sequence = 2;",
        )
        .unwrap();
}

#[test]
fn a_whole_chain_walked_in_the_background_moves_the_last_verified_point_to_the_head() {
    let appliance = Appliance::provisioned(20);
    assert_eq!(checkpoint(&appliance.data_dir), None);
    let (mut lines, settings) = appliance.ports(1);
    let daemon = InProcessDaemon::start(settings);
    daemon.wait_for(|event| matches!(event, DaemonEvent::VaultVerified { .. }));
    assert_eq!(inject_one(&mut lines[0], &appliance, "123L013K"), Ok(1));
    // The walk runs after the integrity check; the checkpoint is written when it passes.
    let deadline = Instant::now() + Duration::from_secs(10);
    while checkpoint(&appliance.data_dir).is_none() {
        assert!(Instant::now() < deadline, "no checkpoint was recorded");
        std::thread::sleep(Duration::from_millis(20));
    }
    let at = checkpoint(&appliance.data_dir).unwrap();
    assert!(at >= 1 && at <= head(&appliance.data_dir));
    assert!(!daemon.saw(|event| matches!(event, DaemonEvent::VaultDamaged { .. })));
    assert_eq!(
        ok(ask(&socket(&appliance), &json!({"command": "status"})))["state"],
        "ready"
    );
}

#[test]
fn an_old_row_edited_before_the_checkpoint_is_found_after_ready_locks_and_is_audited() {
    let appliance = Appliance::provisioned(20);
    {
        let mut vault = appliance.vault();
        vault.verify_audit_recording_checkpoint().unwrap();
    }
    let at = checkpoint(&appliance.data_dir).unwrap();
    assert!(at > 2);
    edit_row_2(&appliance.data_dir);

    let (mut lines, settings) = appliance.ports(1);
    let daemon = InProcessDaemon::start(settings.clone());
    let damaged = daemon.wait_for(|event| matches!(event, DaemonEvent::VaultDamaged { .. }));
    let DaemonEvent::VaultDamaged { findings } = damaged else {
        unreachable!()
    };
    assert!(
        findings.starts_with("the audit chain does not verify: audit row 2 was edited"),
        "{findings}"
    );
    // The check before READY walked from the checkpoint and passed: the daemon became READY,
    // its background integrity check passed, and only then did the whole walk lock it.
    let events = daemon.events_so_far();
    let position = |wanted: &dyn Fn(&DaemonEvent) -> bool| events.iter().position(wanted);
    let ready = position(&|event| matches!(event, DaemonEvent::Ready { .. }));
    let verified = position(&|event| matches!(event, DaemonEvent::VaultVerified { .. }));
    let locked = position(&|event| matches!(event, DaemonEvent::VaultDamaged { .. }));
    assert!(
        ready.is_some() && ready < verified && verified < locked,
        "{events:?}"
    );
    daemon.wait_for(|event| {
        matches!(event, DaemonEvent::ApplianceState(state)
            if !state.ready && state.reason.to_string().starts_with("vault damaged: "))
    });
    let status = ok(ask(&socket(&appliance), &json!({"command": "status"})));
    assert_eq!(status["state"], "damaged", "{status}");
    assert!(
        status["reason"]
            .as_str()
            .unwrap()
            .contains("the audit chain does not verify: audit row 2 was edited"),
        "{status}"
    );
    let refusal = inject_one(&mut lines[0], &appliance, "456L013K").unwrap_err();
    assert!(refusal.contains("NOT_READY"), "{refusal}");
    drop(daemon);

    let raw = support::raw_database(&appliance.data_dir);
    let (event, details): (String, String) = raw
        .query_row(
            "SELECT event, details FROM audit_log ORDER BY sequence DESC LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!(event, "audit-chain-failed");
    assert!(
        details.starts_with("failure=audit row 2 was edited"),
        "{details}"
    );
    drop(raw);
    // The checkpoint did not move.
    assert_eq!(checkpoint(&appliance.data_dir), Some(at));

    // The next start walks the whole chain before READY (a failure was recorded since the
    // checkpoint): locked from the start, never ready.
    let (_lines, settings) = appliance.ports(1);
    let daemon = InProcessDaemon::start(settings);
    let status = ok(ask(&socket(&appliance), &json!({"command": "status"})));
    assert_eq!(status["state"], "damaged", "{status}");
    assert!(
        status["reason"]
            .as_str()
            .unwrap()
            .contains("audit row 2 was edited"),
        "{status}"
    );
    assert!(
        !daemon.saw(|event| matches!(event, DaemonEvent::ApplianceState(state) if state.ready))
    );
}
