//! Expected-device lists (PCI PIN 30-3) against the real daemon on pseudo-terminal ports: a serial on no open list is refused in every mode with nothing reserved and is recorded; a closed list refuses; bad list lines are named over the socket; reconcile and its sealed export agree with the vault.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};

use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_daemon::{DaemonEvent, Settings};
use keymother_pki::testing::{TestPki, pem};
use keymother_pki::{PrivateKey, Role};
use keymother_protocol::{Mode, TerminalConfig, TerminalOutcome};
use keymother_terminal::{CertificateIdentity, PtyLine, SoftwareKeyStore, inject};
use keymother_vault::{KeyState, verify_reconcile_export};
use serde_json::{Value, json};
use support::operators::{ask, ok, refused};
use support::profiles::{PINPAD_SLOTS, load_bdks, profile_ports, profile_terminal};
use support::{Appliance, InProcessDaemon, wire};

/// The words the terminal reports for a DEVICE_NOT_EXPECTED refusal.
const NOT_EXPECTED: &str = "DEVICE_NOT_EXPECTED";

fn socket(appliance: &Appliance) -> PathBuf {
    appliance.directory.path().join("control.sock")
}

/// Imports `text` as the list `name` over the control socket: the daemon's answer.
fn import_list(socket: &Path, name: &str, text: &str) -> Value {
    let request = json!({
        "command": "expected-import", "name": name, "file_name": "run.csv", "size": text.len()
    });
    wire::upload_lines(socket, &request, text.as_bytes(), 32 * 1024)
        .pop()
        .unwrap()
}

/// Settings requiring expected-device lists.
fn requiring(mut settings: Settings) -> Settings {
    settings.require_expected_devices = true;
    settings
}

fn run(
    line: &mut PtyLine,
    config: TerminalConfig,
    store: &mut SoftwareKeyStore,
) -> TerminalOutcome {
    inject(line, config, store).unwrap().outcome
}

fn failure(outcome: &TerminalOutcome) -> &str {
    match outcome {
        TerminalOutcome::Failed { reason } => reason,
        other => panic!("expected a refusal, got {other}"),
    }
}

fn key_counts(appliance: &Appliance) -> (u64, u64) {
    let inventory = appliance.vault().inventory().unwrap();
    (
        inventory.count(KeyState::Available),
        inventory.count(KeyState::Used),
    )
}

fn reconcile(socket: &Path, name: &str) -> Value {
    ok(ask(socket, &json!({"command": "reconcile", "name": name})))["lists"][0].clone()
}

fn serials(group: &Value) -> Vec<String> {
    group
        .as_array()
        .unwrap()
        .iter()
        .map(|device| device["hardware_serial"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn an_unlisted_serial_is_refused_with_nothing_reserved_and_a_closed_list_refuses() {
    let appliance = Appliance::provisioned(5);
    let (mut lines, settings) = appliance.ports(1);
    let daemon = InProcessDaemon::start(requiring(settings));
    let socket = socket(&appliance);
    let line = &mut lines[0];

    // No list at all: refused, nothing reserved, the attempt recorded.
    let outcome = run(
        line,
        appliance.terminal("A0001"),
        &mut appliance.key_store(),
    );
    assert!(failure(&outcome).contains(NOT_EXPECTED), "{outcome}");
    assert_eq!(key_counts(&appliance), (5, 0));
    assert!(appliance.vault().key_assignments().unwrap().is_empty());
    assert!(daemon.saw(
        |event| matches!(event, DaemonEvent::InjectionFailed { reason, .. }
        if reason == "not on an expected-device list")
    ));

    let list = ok(import_list(
        &socket,
        "RUN-1",
        "serial,model\nA0001,TEST-PINPAD\nA0002,\n",
    ));
    assert_eq!(
        (list["devices"].clone(), list["closed_at"].clone()),
        (json!(2), Value::Null)
    );
    // Listed: served. Unlisted: refused, nothing reserved.
    let mut store = appliance.key_store();
    assert!(matches!(
        run(line, appliance.terminal("A0001"), &mut store),
        TerminalOutcome::Injected { .. }
    ));
    let outcome = run(
        line,
        appliance.terminal("Z9999"),
        &mut appliance.key_store(),
    );
    assert!(failure(&outcome).contains(NOT_EXPECTED), "{outcome}");
    assert_eq!(key_counts(&appliance), (4, 1));

    // Closed: A0002 is refused too, and the list's reconciliation no longer moves.
    let closed = ok(ask(
        &socket,
        &json!({"command": "expected-close", "name": "RUN-1"}),
    ));
    assert!(closed["closed_at"].is_string());
    let outcome = run(
        line,
        appliance.terminal("A0002"),
        &mut appliance.key_store(),
    );
    assert!(failure(&outcome).contains(NOT_EXPECTED), "{outcome}");
    assert_eq!(key_counts(&appliance), (4, 1));
    let list = reconcile(&socket, "RUN-1");
    assert_eq!(serials(&list["injected"]), ["A0001"]);
    assert_eq!(serials(&list["missing"]), ["A0002"]);
    assert_eq!(serials(&list["refused"]), ["Z9999"], "{list}");
    assert_eq!(list["injected"][0]["keys"][0]["smn"], "A000100000001");
    // Every refusal was recorded, the ones before the list and after its close too.
    let refusals: i64 = support::raw_database(&appliance.data_dir)
        .query_row("SELECT count(*) FROM expected_refusal", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(refusals, 3);
    let events: Vec<String> = appliance
        .vault()
        .audit_rows()
        .unwrap()
        .into_iter()
        .map(|row| row.event)
        .filter(|event| event.starts_with("expected"))
        .collect();
    assert_eq!(events, ["expected-import", "expected-close"]);
}

#[test]
fn without_the_setting_every_serial_is_served_and_nothing_is_refused() {
    let appliance = Appliance::provisioned(2);
    let (mut lines, settings) = appliance.ports(1);
    let _daemon = InProcessDaemon::start(settings);
    ok(import_list(&socket(&appliance), "RUN-1", "serial\nA0001\n"));
    let outcome = run(
        &mut lines[0],
        appliance.terminal("Z9999"),
        &mut appliance.key_store(),
    );
    assert!(
        matches!(outcome, TerminalOutcome::Injected { .. }),
        "{outcome}"
    );
    let list = reconcile(&socket(&appliance), "RUN-1");
    assert_eq!(serials(&list["missing"]), ["A0001"]);
    assert_eq!(list["refused"], json!([]));
}

#[test]
fn bad_list_lines_are_named_over_the_socket_and_nothing_is_imported() {
    let appliance = Appliance::provisioned(1);
    let (_lines, settings) = appliance.ports(1);
    let _daemon = InProcessDaemon::start(requiring(settings));
    let socket = socket(&appliance);
    for (text, words) in [
        (
            "serial\nA0001\nkey=0123456789ABCDEF\n",
            "run.csv: line 3: the hardware serial: character 1 is not allowed; allowed are A-Z and 0-9",
        ),
        (
            "serial\nA0001\nA0002\nA0001\n",
            "run.csv: line 4: the same hardware serial as line 2",
        ),
        (
            "serial,model\nA0001,X,Y\n",
            "run.csv: line 2: expected 2 comma-separated fields (serial,model), found 3",
        ),
    ] {
        let error = refused(import_list(&socket, "RUN-1", text));
        assert_eq!(error, words);
        assert!(!error.contains("0123456789ABCDEF"));
    }
    assert_eq!(
        refused(import_list(&socket, "bad name", "serial\nA0001\n")),
        "name: list name: character 4 is not allowed; allowed are A-Z a-z 0-9 . _ -"
    );
    let reconciliation = ok(ask(&socket, &json!({"command": "reconcile"})));
    assert_eq!(reconciliation["lists"], json!([]));
    let refusals = appliance
        .vault()
        .audit_rows()
        .unwrap()
        .into_iter()
        .filter(|row| row.event == "expected-import-refused")
        .count();
    assert_eq!(refusals, 3);
}

#[test]
fn the_reconciliation_export_is_sealed_under_the_kek_and_audited() {
    let appliance = Appliance::provisioned(3);
    let (mut lines, settings) = appliance.ports(1);
    let _daemon = InProcessDaemon::start(requiring(settings));
    let socket = socket(&appliance);
    let kek = SecretKey::from_hex(KeyAlgorithm::Aes256, &appliance.kek_hex).unwrap();
    let sealed = keymother_vault::seal_expected_list(
        "serial\nA0001\nA0002\n",
        &support::DEVICE.parse().unwrap(),
        &kek,
    );
    assert_eq!(ok(import_list(&socket, "RUN-1", &sealed))["sealed"], true);
    let altered = sealed.replacen("A0002", "A0003", 1);
    assert!(refused(import_list(&socket, "RUN-2", &altered)).contains("the seal does not verify"));
    run(
        &mut lines[0],
        appliance.terminal("A0001"),
        &mut appliance.key_store(),
    );
    run(
        &mut lines[0],
        appliance.terminal("Z0001"),
        &mut appliance.key_store(),
    );
    let (file, answer) = wire::download(
        &socket,
        &json!({"command": "reconcile-export", "name": "RUN-1", "file_name": "rec.csv"}),
    );
    let answer = ok(answer);
    let verified = verify_reconcile_export(file.as_slice(), "rec.csv", &kek).unwrap();
    assert_eq!(answer["rows"], verified.rows.len());
    assert_eq!(verified.counts()[&"RUN-1".parse().unwrap()], [1, 0, 1, 1]);
    let last = appliance.vault().audit_rows().unwrap().pop().unwrap();
    assert_eq!(last.event, "reconcile-export");
    assert!(
        last.details
            .contains(answer["file_sha256"].as_str().unwrap())
    );
}

#[test]
fn profile_mode_refuses_an_unlisted_serial_before_its_master_key_or_dukpt_slots() {
    let appliance = Appliance::provisioned(3);
    load_bdks(&appliance, 10);
    let (mut lines, settings) = profile_ports(&appliance, 1, PINPAD_SLOTS);
    let _daemon = InProcessDaemon::start(requiring(settings));
    ok(import_list(&socket(&appliance), "RUN-1", "serial\nP0001\n"));
    let outcome = run(
        &mut lines[0],
        profile_terminal(&appliance, "Z0001"),
        &mut appliance.key_store(),
    );
    assert!(failure(&outcome).contains(NOT_EXPECTED), "{outcome}");
    assert_eq!(key_counts(&appliance), (3, 0));
    assert!(appliance.vault().dukpt_allocations().unwrap().is_empty());
    let outcome = run(
        &mut lines[0],
        profile_terminal(&appliance, "P0001"),
        &mut appliance.key_store(),
    );
    assert!(
        matches!(outcome, TerminalOutcome::ProfileInjected { .. }),
        "{outcome}"
    );
    let list = reconcile(&socket(&appliance), "RUN-1");
    let kinds: Vec<&str> = list["injected"][0]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["master", "dukpt", "dukpt"], "{list}");
}

#[test]
fn certificate_mode_refuses_an_unlisted_serial_before_anything_is_reserved() {
    let appliance = Appliance::provisioned(2);
    let pki = TestPki::generate("expected-devices test").unwrap();
    let files = pki.write_anchors(appliance.directory.path()).unwrap();
    let (mut lines, _) = appliance.ports(1);
    let mut text = std::fs::read_to_string(appliance.config_path()).unwrap();
    text.push_str(&format!(
        "[pki]\ndevice_ca = {:?}\nkdh_ca = {:?}\noperator_ca = {:?}\n",
        files.device_ca, files.kdh_ca, files.operator_ca
    ));
    let settings = Settings::from_toml(&text, "keymotherd.toml").unwrap();
    let _daemon = InProcessDaemon::start(requiring(settings));
    let socket = socket(&appliance);
    let request = ok(ask(&socket, &json!({"command": "kdh-request"})))["request"]
        .as_str()
        .unwrap()
        .to_owned();
    let certificate = pki.sign_kdh_request(request.as_bytes()).unwrap();
    ok(ask(
        &socket,
        &json!({"command": "kdh-install", "certificate": pem("CERTIFICATE", &certificate)}),
    ));
    ok(import_list(&socket, "RUN-1", "serial\nC0001\n"));
    let device_key = PrivateKey::generate(2048).unwrap();
    let device_key_der = device_key.to_pkcs8_der().unwrap();
    let terminal = |serial: &str| {
        let key = PrivateKey::from_pkcs8(&device_key_der, None).unwrap();
        let certificate = pki.device_certificate(serial, &key.public_key()).unwrap();
        let identity = CertificateIdentity::new(
            key,
            &certificate,
            pki.ca_certificate(Role::KeyDistributionHost),
        )
        .unwrap();
        let mut config = appliance.terminal(serial);
        config.modes = vec![Mode::Certificate];
        (config, appliance.key_store().with_certificate(identity))
    };
    let (config, mut store) = terminal("Z0001");
    let outcome = run(&mut lines[0], config, &mut store);
    assert!(failure(&outcome).contains(NOT_EXPECTED), "{outcome}");
    assert_eq!(key_counts(&appliance), (2, 0));
    let (config, mut store) = terminal("C0001");
    let outcome = run(&mut lines[0], config, &mut store);
    assert!(
        matches!(outcome, TerminalOutcome::Injected { .. }),
        "{outcome}"
    );
    let refused_modes: Vec<String> = support::raw_database(&appliance.data_dir)
        .prepare("SELECT hardware_serial || ' ' || port || ' ' || mode FROM expected_refusal")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(refused_modes, ["Z0001 bench-0 certificate"]);
}
