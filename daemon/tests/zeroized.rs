//! The zeroize lifecycle with the real daemon: after a zeroize keymotherd starts in its zeroized state (locked-zeroized screen, NOT_READY, registries and audit trail still served), and a recommissioned vault works again while the archived chain still verifies.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_daemon::screen::display_on;
use keymother_daemon::{BenchBackends, Settings};
use keymother_display::{LockReason, MemoryPanel, Screen, render};
use keymother_protocol::TerminalOutcome;
use keymother_terminal::{Line, inject};
use keymother_vault::{KeyState, Vault, verify_smn_export};
use serde_json::{Value, json};
use support::{Appliance, DEVICE, InProcessDaemon, process, wire};

fn ask(socket: &Path, request: Value) -> Value {
    let mut stream = UnixStream::connect(socket).unwrap();
    stream.write_all(format!("{request}\n").as_bytes()).unwrap();
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).unwrap();
    serde_json::from_str(&answer).unwrap()
}

fn ok(answer: Value) -> Value {
    assert_eq!(answer["ok"], true, "{answer}");
    answer["result"].clone()
}

fn socket(appliance: &Appliance) -> PathBuf {
    appliance.directory.path().join("control.sock")
}

/// One terminal's injection: its key index, or why it failed.
fn inject_one<L: Line>(line: &mut L, appliance: &Appliance, serial: &str) -> Result<u32, String> {
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

fn kek(appliance: &Appliance) -> SecretKey {
    SecretKey::from_hex(KeyAlgorithm::Aes256, &appliance.kek_hex).unwrap()
}

/// Waits up to 5 s for `condition`.
fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn after_a_zeroize_the_daemon_starts_zeroized_serves_its_records_and_dispenses_nothing() {
    let appliance = Appliance::provisioned(30);
    let (mut lines, settings) = appliance.ports(1);
    let settings_text = std::fs::read_to_string(appliance.config_path()).unwrap();
    let socket = socket(&appliance);
    let daemon = InProcessDaemon::start(settings);
    for serial in ["ZT1", "ZT2"] {
        inject_one(&mut lines[0], &appliance, serial).unwrap();
    }
    let zeroized = ok(ask(
        &socket,
        json!({"command": "zeroize", "confirm_device_id": DEVICE, "reason": "site closed"}),
    ));
    assert_eq!(zeroized["final_exports"], 4, "{zeroized}");
    // At once, before any restart.
    assert_eq!(
        ok(ask(&socket, json!({"command": "status"})))["state"],
        "zeroized"
    );
    drop(daemon);

    // Restarted, with operator login required (nobody can log in to a zeroized vault).
    let settings = Settings::from_toml(
        &settings_text.replace("require = false", "require = true"),
        "keymotherd.toml",
    )
    .unwrap();
    let panel = MemoryPanel::new();
    let backends = BenchBackends {
        signals: None,
        open_signals: None,
        display: Some(display_on(panel.clone())),
    };
    let daemon = InProcessDaemon::start_with(settings, backends);
    let status = ok(ask(&socket, json!({"command": "status"})));
    assert_eq!(status["state"], "zeroized", "{status}");
    assert_eq!(
        status["reason"],
        "zeroized: recommission the vault (keymother vault recommission)"
    );
    assert_eq!(status["ready"], false);
    assert_eq!(status["secrets"]["KEK"], Value::Null);
    assert_eq!(status["keys"]["available"], 0, "{status}");
    assert_eq!(status["keys"]["erased"], 28, "{status}");
    assert_eq!(status["keys"]["used"], 2, "{status}");
    assert_eq!(status["smn_rows"], 2);
    let locked_zeroized = render(&Screen::Locked {
        reason: LockReason::Zeroized,
    });
    eventually("the locked-zeroized screen", || {
        panel.last_frame() == Some(locked_zeroized.clone())
    });

    // The records: rows, the sealed exports (without a session), the audit trail.
    let inventory = ok(ask(&socket, json!({"command": "inventory"})));
    assert_eq!(inventory["keys"]["erased"], 28, "{inventory}");
    assert_eq!(inventory["batches"][0]["available"], 0, "{inventory}");
    ok(ask(&socket, json!({"command": "bdk-status"})));
    assert_eq!(
        ok(ask(&socket, json!({"command": "smn-rows"})))
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let (file, answer) = wire::download(
        &socket,
        &json!({"command": "export-smn", "file_name": "smn.csv", "only_new": true}),
    );
    assert_eq!(ok(answer)["rows"], 2);
    let verified = verify_smn_export(file.as_slice(), "smn.csv", &kek(&appliance)).unwrap();
    assert_eq!(verified.rows.len(), 2);
    let (_, answer) = wire::download(
        &socket,
        &json!({"command": "export-dukpt", "file_name": "dukpt.csv"}),
    );
    assert_eq!(ok(answer)["rows"], 0);
    let verified = ok(ask(&socket, json!({"command": "audit-verify"})));
    assert_eq!(verified["head_mac"], "NotChecked", "{verified}");
    let (audit, answer) = wire::download(
        &socket,
        &json!({"command": "audit-export", "file_name": "audit.csv"}),
    );
    assert_eq!(ok(answer)["rows"], verified["rows"]);
    let audit = String::from_utf8(audit).unwrap();
    assert_eq!(audit.matches(",final-export,").count(), 4, "{audit}");
    assert!(audit.contains(",zeroize,"), "{audit}");

    // A terminal gets NOT_READY, and nothing is reserved or recorded.
    let refused = inject_one(&mut lines[0], &appliance, "ZT3").unwrap_err();
    assert!(refused.contains("NOT_READY"), "{refused}");
    let refusal = ask(
        &socket,
        json!({"command": "void", "key_index": 3, "reason": "test"}),
    );
    assert_eq!(refusal["ok"], false, "{refusal}");
    drop(daemon);
    let vault = Vault::open_for_audit(&appliance.data_dir).unwrap();
    let inventory = vault.inventory().unwrap();
    assert_eq!(
        (
            inventory.count(KeyState::Reserved),
            inventory.count(KeyState::Sent)
        ),
        (0, 0)
    );
    assert_eq!(vault.smn_rows().unwrap().len(), 2);
    assert_eq!(vault.verify_audit().unwrap().rows, verified["rows"]);
}

/// The keymother CLI, built next to keymotherd (`cargo build -p keymother`).
fn keymother(socket: &Path, arguments: &[&str]) -> Output {
    let cli = Path::new(env!("CARGO_BIN_EXE_keymotherd")).with_file_name("keymother");
    assert!(
        cli.exists(),
        "build the CLI first (cargo build -p keymother)"
    );
    Command::new(cli)
        .arg("--socket")
        .arg(socket)
        .args(arguments)
        .output()
        .unwrap()
}

fn run_ok(socket: &Path, arguments: &[&str]) -> String {
    let output = keymother(socket, arguments);
    assert!(
        output.status.success(),
        "keymother {arguments:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Two custodian components of `key_hex` (the first random, the second the XOR), each under
/// a custodian's name.
fn components(key_hex: &str) -> Vec<Value> {
    let key = hex::decode(key_hex).unwrap();
    let first: Vec<u8> = (0..key.len()).map(|_| fastrand::u8(..)).collect();
    let second: Vec<u8> = key.iter().zip(&first).map(|(k, f)| k ^ f).collect();
    vec![
        json!({"custodian": "Ann Lee", "component": hex::encode_upper(first)}),
        json!({"custodian": "Raj Patel", "component": hex::encode_upper(second)}),
    ]
}

#[test]
fn zeroize_restart_and_recommission_with_the_real_binaries() {
    let appliance = Appliance::provisioned(10);
    let socket = socket(&appliance);
    let data = appliance.data_dir.to_str().unwrap().to_owned();
    let (text, mut line) = process::settings_text(&appliance, &process::own_group());
    let (daemon, _) = process::start_process(&appliance, &text, &[]);
    inject_one(&mut line, &appliance, "RB1").unwrap();
    let said = run_ok(
        &socket,
        &["zeroize", "--confirm", DEVICE, "--reason", "moving site"],
    );
    assert!(said.contains("4 final exports sealed"), "{said}");
    process::stop(daemon);

    // keymotherd starts again, zeroized; the CLI reads and exports.
    let (daemon, _) = process::start_process(&appliance, &text, &[]);
    let said = run_ok(&socket, &["status"]);
    assert!(said.contains("state: zeroized"), "{said}");
    assert!(
        said.contains("available 0") && said.contains("erased 9"),
        "{said}"
    );
    let export = appliance.directory.path().join("final-smn.csv");
    let said = run_ok(&socket, &["export-smn", "--out", export.to_str().unwrap()]);
    assert!(said.contains("exported 1 SMN row"), "{said}");
    assert!(run_ok(&socket, &["audit", "verify"]).contains("audit trail verifies"));
    // Recommissioning is offline: refused while keymotherd owns the vault.
    let arguments = [
        "vault",
        "recommission",
        "--data-dir",
        &data,
        "--reason",
        "new site",
        "--officer",
        "Olivia Officer",
    ];
    let refused = keymother(&socket, &arguments);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("in use by another process"),
        "{refused:?}"
    );
    process::stop(daemon);
    let said = run_ok(&socket, &arguments);
    let archive = std::fs::read_dir(&appliance.data_dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.to_string_lossy().contains("vault-zeroized-"))
        .unwrap();
    assert!(said.contains(archive.to_str().unwrap()), "{said}");
    let archive_text = archive.to_str().unwrap();
    let said = run_ok(&socket, &["vault", "audit-verify", "--vault", archive_text]);
    assert!(
        said.contains("audit trail verifies") && said.contains("linked"),
        "{said}"
    );

    // The new vault: ceremonies, an import, an injection.
    let (daemon, _) = process::start_process(&appliance, &text, &[]);
    assert!(run_ok(&socket, &["status"]).contains("state: locked"));
    for (secret, key) in [
        ("KEK", &appliance.kek_hex),
        ("TTK", &appliance.transport_key_hex),
    ] {
        ok(ask(
            &socket,
            json!({"command": "ceremony", "secret": secret, "algorithm": "AES-256", "components": components(key)}),
        ));
    }
    let imported = wire::import_file(&socket, &appliance.key_file("B-NEW", 1000, 3));
    assert_eq!(ok(imported)["records"], 3);
    assert_eq!(inject_one(&mut line, &appliance, "RB2").unwrap(), 1000);
    let audit = run_ok(&socket, &["audit", "verify"]);
    assert!(audit.contains("head MAC Verified"), "{audit}");
    process::stop(daemon);

    // An archive edited afterwards no longer verifies.
    std::fs::set_permissions(&archive, std::fs::Permissions::from_mode(0o600)).unwrap();
    let connection = rusqlite::Connection::open(&archive).unwrap();
    connection
        .execute_batch(
            "DROP TRIGGER audit_log_never_rewritten;
             UPDATE audit_log SET details = 'reason=nothing' WHERE event = 'zeroize';",
        )
        .unwrap();
    drop(connection);
    let refused = keymother(&socket, &["vault", "audit-verify", "--vault", archive_text]);
    assert!(!refused.status.success());
    let words = String::from_utf8_lossy(&refused.stderr);
    assert!(
        words.contains("does not verify") && words.contains("row"),
        "{words}"
    );
}
