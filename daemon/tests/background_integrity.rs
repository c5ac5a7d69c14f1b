//! The whole-database check after READY: a whole vault is verified in the background and stays ready; a page damaged under the running daemon locks the appliance (status, state, NOT_READY to terminals) and is audited.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use keymother_daemon::DaemonEvent;
use keymother_protocol::TerminalOutcome;
use keymother_terminal::{PtyLine, inject};
use serde_json::json;
use support::operators::{ask, ok, refused};
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

/// Garbage over a leaf page from the middle of `key_inventory` (not one the first
/// reservations or the state's counts read), written to the database file under the running
/// daemon after a checkpoint, as a failing disk would.
fn damage_key_inventory(data_dir: &Path) {
    let raw = support::raw_database(data_dir);
    raw.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let page_size: i64 = raw
        .query_row("PRAGMA page_size", [], |row| row.get(0))
        .unwrap();
    let mut statement = raw
        .prepare(
            "SELECT pageno FROM dbstat WHERE name = 'key_inventory' AND pagetype = 'leaf' ORDER BY pageno",
        )
        .unwrap();
    let pages: Vec<i64> = statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(pages.len() >= 3, "too few leaf pages: {}", pages.len());
    let page = pages[pages.len() / 2];
    drop(statement);
    drop(raw);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(data_dir.join(keymother_vault::DATABASE_FILE))
        .unwrap();
    file.seek(SeekFrom::Start(((page - 1) * page_size) as u64))
        .unwrap();
    file.write_all(&vec![0xA5; page_size as usize]).unwrap();
    file.sync_all().unwrap();
}

#[test]
fn a_whole_vault_is_verified_in_the_background_and_stays_ready() {
    let appliance = Appliance::provisioned(20);
    let (mut lines, settings) = appliance.ports(1);
    let daemon = InProcessDaemon::start(settings);
    let verified = daemon.wait_for(|event| matches!(event, DaemonEvent::VaultVerified { .. }));
    let DaemonEvent::VaultVerified { pages } = verified else {
        unreachable!()
    };
    assert!(pages > 0);
    assert!(!daemon.saw(|event| matches!(event, DaemonEvent::VaultDamaged { .. })));

    let status = ok(ask(&socket(&appliance), &json!({"command": "status"})));
    assert_eq!(status["state"], "ready", "{status}");
    assert_eq!(inject_one(&mut lines[0], &appliance, "123L013K"), Ok(1));

    // Asked for at once, the same check answers with the pages it read.
    let checked = ok(ask(&socket(&appliance), &json!({"command": "vault-check"})));
    assert!(checked["pages"].as_u64().unwrap() >= pages, "{checked}");
    assert_eq!(
        ok(ask(&socket(&appliance), &json!({"command": "status"})))["state"],
        "ready"
    );
}

#[test]
fn a_page_damaged_under_the_running_daemon_locks_the_appliance_and_is_audited() {
    let appliance = Appliance::provisioned(300);
    let (mut lines, settings) = appliance.ports(1);
    let daemon = InProcessDaemon::start(settings);
    daemon.wait_for(|event| matches!(event, DaemonEvent::VaultVerified { .. }));
    assert_eq!(inject_one(&mut lines[0], &appliance, "123L013K"), Ok(1));

    damage_key_inventory(&appliance.data_dir);
    let error = refused(ask(&socket(&appliance), &json!({"command": "vault-check"})));
    assert!(
        error.starts_with("the vault database is damaged (") && error.contains("locked"),
        "{error}"
    );
    daemon.wait_for(|event| matches!(event, DaemonEvent::VaultDamaged { .. }));
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
            .starts_with("vault damaged: the integrity check failed ("),
        "{status}"
    );
    // No key flows after: the next terminal is refused before anything is reserved.
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
    assert_eq!(event, "integrity-failed");
    assert!(details.starts_with("findings="), "{details}");
    let injected: i64 = raw
        .query_row("SELECT count(*) FROM smn_registry", [], |row| row.get(0))
        .unwrap();
    assert_eq!(injected, 1, "only the key before the damage");
}

#[test]
fn after_a_failed_check_the_daemon_does_not_start_on_the_damaged_vault() {
    let appliance = Appliance::provisioned(300);
    let (_lines, settings) = appliance.ports(1);
    let daemon = InProcessDaemon::start(settings.clone());
    daemon.wait_for(|event| matches!(event, DaemonEvent::VaultVerified { .. }));
    damage_key_inventory(&appliance.data_dir);
    refused(ask(&socket(&appliance), &json!({"command": "vault-check"})));
    drop(daemon);

    // A restart pays the full check before READY: the damaged vault is refused.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let outcome = runtime.block_on(keymother_daemon::run_with(
        settings,
        async {},
        None,
        std::sync::Arc::new(keymother_daemon::Stats::default()),
        keymother_daemon::BenchBackends::default(),
    ));
    let error = outcome.unwrap_err().to_string();
    assert!(error.contains("integrity check failed"), "{error}");
}
