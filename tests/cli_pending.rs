//! `keymother pending`, `void --serial`, `report` and the `--json` outputs with their filters, against keymotherd in the test's process over a vault where terminals were injected and one vanished after its KEY_DELIVERY (it never confirmed).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli_common;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use cli_common::{assert_usage_error, keymother, run_in_process, stderr, stdout};
use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_keyfiles::testing::FileLines;
use keymother_keyfiles::{CreatedAt, GenerateOptions, KeyIndex};
use keymother_protocol::{Mode, TerminalAction, TerminalConfig, TerminalSession};
use keymother_terminal::{Line, PtyLine, SoftwareKeyStore};
use keymother_vault::{CeremonyRecord, ConfirmationReport, SecretName, Vault};
use serde_json::Value;

const DEVICE: &str = "KM-CLI-0003";
const KEYS: u32 = 10;

/// A vault with KEK, TTK and `KEYS` keys (batch B-1, from index 101): three terminals
/// injected on bench-1, and (`vanished`) VANISHED1 given its key on bench-2, which it never
/// confirmed (its `injection-failed` row recorded). Returns the TTK, which terminals hold.
fn prepared_vault(data: &Path, vanished: bool) -> SecretKey {
    let mut vault = Vault::create(data, &DEVICE.parse().unwrap()).unwrap();
    let kek = SecretKey::generate(KeyAlgorithm::Aes256).unwrap();
    let ttk = SecretKey::generate(KeyAlgorithm::Aes128).unwrap();
    let custodians = CeremonyRecord::named(&["Ann Lee", "Raj Patel"]).unwrap();
    vault
        .install_secret(SecretName::Kek, &kek, &custodians)
        .unwrap();
    vault
        .install_secret(SecretName::Ttk, &ttk, &custodians)
        .unwrap();
    let options = GenerateOptions {
        batch_id: "B-1".parse().unwrap(),
        issuer: "T".parse().unwrap(),
        algorithm: KeyAlgorithm::Tdes2Key,
        record_count: KEYS,
        first_index: KeyIndex::new(101).unwrap(),
        device_id: DEVICE.parse().unwrap(),
        created: CreatedAt::new(time::OffsetDateTime::now_utc()),
    };
    let file = data.with_file_name("batch-1.keys");
    std::fs::write(
        &file,
        FileLines::generated(&kek, &options).unwrap().sealed(&kek),
    )
    .unwrap();
    vault.import_key_file(&file, &mut |_| {}).unwrap();
    let model = "REF-TERMINAL".parse().unwrap();
    for serial in ["TERM1", "TERM2", "TERM3"] {
        let serial = serial.parse().unwrap();
        let reservation = vault
            .reserve_key_for(&serial, "bench-1", None, Some(&model))
            .unwrap();
        vault.mark_sent(reservation.key_index, &serial).unwrap();
        let smn = keymother_domain::Smn::new(&serial, reservation.key_index);
        vault
            .confirm_key(
                &ConfirmationReport {
                    key_index: reservation.key_index,
                    hardware_serial: &serial,
                    kcv: reservation.kcv,
                    smn: &smn,
                    port: "bench-1",
                    terminal_model: &model,
                },
                3,
            )
            .unwrap();
    }
    if !vanished {
        return ttk;
    }
    // The terminal takes its KEY_DELIVERY and is never heard of again.
    let vanished = "VANISHED1".parse().unwrap();
    let reservation = vault
        .reserve_key_for(&vanished, "bench-2", None, Some(&model))
        .unwrap();
    vault.mark_sent(reservation.key_index, &vanished).unwrap();
    // What keymotherd records when the terminal sends nothing for the idle timeout.
    vault
        .record_injection_failure(
            "bench-2",
            &vanished,
            Some(reservation.key_index),
            keymother_vault::InjectionFailureCause::IdleTimeout,
            None,
        )
        .unwrap();
    ttk
}

/// keymotherd in this process over [`prepared_vault`], operator login not required.
struct Daemon {
    /// Holds the vault and the socket until the test ends.
    _directory: tempfile::TempDir,
    socket: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Daemon {
    /// Over [`prepared_vault`] with VANISHED1, its one port a path that does not exist.
    fn start() -> Daemon {
        let directory = tempfile::tempdir().unwrap();
        let port = directory.path().join("no-such-tty");
        Daemon::start_in(directory, &port, true).0
    }

    /// Over [`prepared_vault`] without VANISHED1, its port bench-1 a pseudo-terminal whose
    /// other end is returned (a terminal's line), with the TTK; idle timeout 1 s.
    fn start_on_a_line() -> (Daemon, PtyLine, SecretKey) {
        let directory = tempfile::tempdir().unwrap();
        let link = directory.path().join("bench-1");
        let line = PtyLine::open_pair(&link).unwrap();
        let (daemon, ttk) = Daemon::start_in(directory, &link, false);
        (daemon, line, ttk)
    }

    fn start_in(directory: tempfile::TempDir, port: &Path, vanished: bool) -> (Daemon, SecretKey) {
        let data = directory.path().join("data");
        let ttk = prepared_vault(&data, vanished);
        let socket = directory.path().join("control.sock");
        let text = format!(
            "data_dir = {data:?}\n[control]\nsocket = {socket:?}\n\
             [dispensing]\nidle_timeout_seconds = 1\n\
             [operator]\nrequire = false\n\
             [[port]]\nname = \"bench-1\"\npath = {port:?}\n",
        );
        let settings = keymother_daemon::Settings::from_toml(&text, "keymotherd.toml").unwrap();
        let (stop, thread) = run_in_process(settings);
        let daemon = Daemon {
            _directory: directory,
            socket,
            stop: Some(stop),
            thread: Some(thread),
        };
        (daemon, ttk)
    }

    fn run(&self, arguments: &[&str]) -> Output {
        let mut all = vec!["--socket", self.socket.to_str().unwrap()];
        all.extend_from_slice(arguments);
        keymother(&all, "")
    }

    fn ok(&self, arguments: &[&str]) -> String {
        let output = self.run(arguments);
        assert!(
            output.status.success(),
            "{arguments:?} failed: {}",
            stderr(&output)
        );
        stdout(&output)
    }

    fn json(&self, arguments: &[&str]) -> Value {
        serde_json::from_str(&self.ok(arguments)).unwrap()
    }

    /// `pending --json` with more arguments, without the ages (they grow as the test runs).
    fn pending(&self, arguments: &[&str]) -> Value {
        let mut all = vec!["pending", "--json"];
        all.extend_from_slice(arguments);
        let mut entries = self.json(&all);
        for entry in entries.as_array_mut().unwrap() {
            entry.as_object_mut().unwrap().remove("age_seconds");
        }
        entries
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn a_terminal_that_vanished_after_its_delivery_is_pending_until_void_serial_clears_it() {
    let daemon = Daemon::start();
    let text = daemon.ok(&["pending"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    for column in [
        "KEY", "SERIAL", "STATE", "PORT", "MODEL", "AGE", "OPERATOR", "RESERVED",
    ] {
        assert!(lines[0].contains(column), "{text}");
    }
    for fact in [
        "key 00000104",
        "VANISHED1",
        "sent",
        "bench-2",
        "REF-TERMINAL",
    ] {
        assert!(lines[1].contains(fact), "{fact}: {text}");
    }
    assert_eq!(lines[2], "1 pending key");

    let pending = daemon.pending(&[]);
    let entries = pending.as_array().unwrap();
    assert_eq!(entries.len(), 1, "{pending}");
    let entry = &entries[0];
    assert_eq!(entry["kind"], "master");
    assert_eq!(entry["key_index"], 104);
    assert_eq!(entry["batch_id"], "B-1");
    assert_eq!(entry["hardware_serial"], "VANISHED1");
    assert_eq!(entry["state"], "sent");
    assert_eq!(entry["port"], "bench-2");
    assert_eq!(entry["terminal_model"], "REF-TERMINAL");
    assert_eq!(entry["operator"], Value::Null);

    // The filters.
    assert_eq!(daemon.pending(&["--port", "bench-1"]), Value::Array(vec![]));
    assert_eq!(daemon.pending(&["--port", "bench-2"]), pending);
    assert_eq!(
        daemon.pending(&["--older-than", "1d"]),
        Value::Array(vec![])
    );
    assert_eq!(daemon.pending(&["--older-than", "0s"]), pending);
    assert_usage_error(
        &daemon.run(&["pending", "--older-than", "soon"]),
        "--older-than",
    );
    assert!(
        daemon
            .ok(&["pending", "--port", "bench-9"])
            .starts_with("no pending keys")
    );

    // A serial with no pending key, or a key named twice: refused, nothing changes.
    let output = daemon.run(&["void", "--serial", "TERM1", "--reason", "cable pulled"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "keymother: hardware serial TERM1 has no pending master key (nothing reserved or sent to it waits for a confirmation)\n"
    );
    let output = daemon.run(&[
        "void",
        "--serial",
        "VANISHED1",
        "--index",
        "104",
        "--reason",
        "x",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert_usage_error(
        &daemon.run(&["void", "--serial", "not a serial", "--reason", "x"]),
        "--serial",
    );
    assert_eq!(daemon.pending(&[]), pending);

    assert_eq!(
        daemon.ok(&["void", "--serial", "VANISHED1", "--reason", "cable pulled"]),
        "key 00000104 (VANISHED1, was sent) is void\n"
    );
    assert_eq!(daemon.pending(&[]), Value::Array(vec![]));
    let status = daemon.json(&["status", "--json"]);
    assert_eq!(status["keys"]["void"], 1);
    assert_eq!(status["keys"]["sent"], 0);
    // The index form still works as before, and a voided key is not pending.
    let output = daemon.run(&["void", "--index", "104", "--reason", "again"]);
    assert!(
        stderr(&output).contains("only a reserved or sent key"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_report_counts_what_the_registry_and_the_inventory_hold() {
    let daemon = Daemon::start();
    let smn = daemon.json(&["smn", "--json"]);
    let injected = smn.as_array().unwrap().len() as u64;
    assert_eq!(injected, 3);
    let inventory = daemon.json(&["inventory", "--json"]);
    let pending = inventory["keys"]["reserved"].as_u64().unwrap()
        + inventory["keys"]["sent"].as_u64().unwrap();

    for period in [
        vec![],
        vec!["--shift"],
        vec!["--day"],
        vec!["--from", "2000-01-01"],
    ] {
        let mut arguments = vec!["report", "--json"];
        arguments.extend(period.iter().copied());
        let report = daemon.json(&arguments);
        assert_eq!(
            report["totals"]["injections"], injected,
            "{period:?}: {report}"
        );
        assert_eq!(report["totals"]["pending"], pending, "{period:?}: {report}");
        assert_eq!(report["totals"]["voided"], 0);
        assert_eq!(report["totals"]["failures"], 1);
        let rows = report["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 2, "{report}");
        assert_eq!(rows[0]["port"], "bench-1");
        assert_eq!(rows[0]["batch_id"], "B-1");
        assert_eq!(rows[0]["terminal_model"], "REF-TERMINAL");
        assert_eq!(rows[0]["injections"], 3);
        assert_eq!(rows[1]["port"], "bench-2");
        assert_eq!(rows[1]["pending"], 1);
        assert_eq!(rows[1]["failures"], 1);
    }
    let shift = daemon.json(&["report", "--json"]);
    assert_eq!(shift["period"], "the last 8 hours (nobody is logged in)");

    let old = daemon.json(&[
        "report",
        "--json",
        "--from",
        "2000-01-01",
        "--to",
        "2000-01-01",
    ]);
    assert_eq!(old["from"], "2000-01-01T00:00:00Z");
    assert_eq!(old["to"], "2000-01-02T00:00:00Z");
    assert_eq!(old["rows"], Value::Array(vec![]));
    assert_eq!(old["totals"]["injections"], 0);

    let csv = daemon.ok(&["report", "--csv"]);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines,
        [
            "operator,batch,model,port,injections,failures,pending,voided",
            "-,B-1,REF-TERMINAL,bench-1,3,0,0,0",
            "-,B-1,REF-TERMINAL,bench-2,0,1,1,0",
            "total,,,,3,1,1,0",
        ]
    );
    let text = daemon.ok(&["report"]);
    assert!(
        text.starts_with("report for the last 8 hours (nobody is logged in): "),
        "{text}"
    );
    assert!(
        text.lines().nth(1).unwrap().starts_with("OPERATOR  BATCH"),
        "{text}"
    );
    assert!(text.lines().last().unwrap().starts_with("total"), "{text}");

    let output = daemon.run(&["report", "--day", "6.12.2026"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("day: not a date such as 2026-12-06"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        daemon.run(&["report", "--shift", "--day"]).status.code(),
        Some(2)
    );
}

#[test]
fn smn_and_inventory_filter_and_say_the_same_in_text_and_json() {
    let daemon = Daemon::start();
    let all = daemon.json(&["smn", "--json"]);
    assert_eq!(daemon.json(&["smn", "--json", "--batch", "B-1"]), all);
    assert_eq!(
        daemon.json(&["smn", "--json", "--model", "REF-TERMINAL"]),
        all
    );
    assert_eq!(
        daemon.json(&["smn", "--json", "--since", "2000-01-01"]),
        all
    );
    assert_eq!(
        daemon.json(&["smn", "--json", "--until", "2100-01-01T00:00:00Z"]),
        all
    );
    for filter in [
        ["--batch", "B-2"],
        ["--model", "OTHER"],
        ["--since", "2100-01-01"],
        ["--until", "2000-01-01"],
    ] {
        let mut arguments = vec!["smn", "--json"];
        arguments.extend(filter);
        assert_eq!(daemon.json(&arguments), Value::Array(vec![]), "{filter:?}");
    }
    assert_usage_error(&daemon.run(&["smn", "--since", "yesterday"]), "--since");
    let text = daemon.ok(&["smn", "--model", "REF-TERMINAL"]);
    assert_eq!(text.lines().count(), 3, "{text}");
    for row in all.as_array().unwrap() {
        let line = text
            .lines()
            .find(|line| line.starts_with(row["smn"].as_str().unwrap()))
            .unwrap();
        for field in [
            "hardware_serial",
            "kcv",
            "batch_id",
            "terminal_model",
            "port",
            "injected_at",
        ] {
            let value = row[field]
                .as_str()
                .unwrap_or_else(|| panic!("{field}: {row}"));
            assert!(line.contains(value), "{field}: {line}");
        }
        let key = format!("key {:08}", row["key_index"].as_u64().unwrap());
        assert!(line.contains(&key), "{key}: {line}");
    }

    let inventory = daemon.json(&["inventory", "--json", "--batch", "B-1"]);
    assert_eq!(inventory["batches"].as_array().unwrap().len(), 1);
    assert_eq!(inventory["batches"][0]["available"], KEYS - 4);
    let output = daemon.run(&["inventory", "--batch", "B-9"]);
    assert_eq!(
        stderr(&output),
        "keymother: no batch B-9 was imported on this appliance\n"
    );
}

#[test]
fn status_text_says_what_status_json_says_low_inventory_included() {
    let daemon = Daemon::start();
    let status = daemon.json(&["status", "--json"]);
    assert_eq!(status["low_inventory"], true, "{status}");
    assert_eq!(status["low_inventory_threshold"], 100);
    let text = daemon.ok(&["status"]);
    let expected = [
        format!("device {}", status["device_id"].as_str().unwrap()),
        format!("control protocol version: {}", status["control_version"]),
        format!("SMN rows: {}", status["smn_rows"]),
        format!(
            "injections since start: {}",
            status["injections_since_start"]
        ),
        "key ceremonies done (KEK and TTK loaded): yes".to_owned(),
        "tampered: no".to_owned(),
        "operator login required: no; operator CA configured: no".to_owned(),
        "tamper input required: no".to_owned(),
        format!(
            "clock trusted: {}; trusted clock required: {}",
            if status["clock"]["trusted"] == true {
                "yes"
            } else {
                "no"
            },
            if status["clock"]["required"] == true {
                "yes"
            } else {
                "no"
            }
        ),
        format!(
            "low inventory: yes: {} keys available, fewer than 100 (import a key file)",
            KEYS - 4
        ),
        "state: ".to_owned(),
        status["clock"]["source"].as_str().unwrap().to_owned(),
    ];
    for line in &expected {
        assert!(text.contains(line.as_str()), "{line:?} missing:\n{text}");
    }
    for (state, count) in status["keys"].as_object().unwrap() {
        assert!(
            text.contains(&format!("{state} {count}")),
            "{state}: {text}"
        );
    }
    for (port, state) in status["ports"].as_object().unwrap() {
        assert!(
            text.contains(&format!("port {port}: {}", state.as_str().unwrap())),
            "{port}: {text}"
        );
    }
    for (name, secret) in status["secrets"].as_object().unwrap() {
        assert!(
            text.contains(&format!(
                "{name}: {} KCV {}",
                secret["algorithm"].as_str().unwrap(),
                secret["kcv"].as_str().unwrap()
            )),
            "{name}: {text}"
        );
    }
}

/// Runs a tr31 terminal session for `serial` until its key is delivered, then stops answering
/// (a pulled cable, a power cut): the key is installed but never confirmed.
fn vanish_after_delivery(line: &mut PtyLine, serial: &str, ttk: &SecretKey) -> u32 {
    let mut store = SoftwareKeyStore::new(ttk);
    let config = TerminalConfig {
        hardware_serial: serial.parse().unwrap(),
        model: "TEST-PINPAD".parse().unwrap(),
        modes: vec![Mode::Tr31],
        ttk_kcv: store.transport_key_kcv().as_bytes().to_vec(),
        response_timeout: Duration::from_millis(300),
        max_retries: 6,
        unconfirmed_key: None,
        unconfirmed_dukpt: Vec::new(),
        krd_credential_token: Vec::new(),
    };
    let started = Instant::now();
    let mut session = TerminalSession::new(config);
    let mut actions: VecDeque<TerminalAction> = session.start(started.elapsed()).into();
    let mut buffer = [0u8; 2048];
    loop {
        while let Some(action) = actions.pop_front() {
            match action {
                TerminalAction::Send(bytes) => line.write_all(&bytes).unwrap(),
                TerminalAction::InstallKey {
                    key_index,
                    key_block,
                    kcv,
                    ..
                } => {
                    store.install(key_index, &key_block, &kcv).unwrap();
                    return key_index;
                }
                TerminalAction::Finished(outcome) => {
                    panic!("finished before delivery: {outcome:?}")
                }
                _ => {}
            }
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no delivery");
        let count = line
            .read_within(&mut buffer, Duration::from_millis(20))
            .unwrap();
        let now = started.elapsed();
        actions.extend(if count > 0 {
            session.handle_bytes(&buffer[..count], now)
        } else {
            session.handle_tick(now)
        });
    }
}

/// Asks `arguments` (JSON) again until `wanted` holds, for up to 10 s.
fn eventually(daemon: &Daemon, arguments: &[&str], wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let value = daemon.json(arguments);
        if wanted(&value) {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{arguments:?} never came: {value}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_real_terminal_that_takes_its_delivery_and_never_confirms_is_pending_until_void_serial() {
    let (daemon, mut line, ttk) = Daemon::start_on_a_line();
    let key_index = vanish_after_delivery(&mut line, "REALVAN1", &ttk);
    assert_eq!(key_index, 104);
    let pending = eventually(&daemon, &["pending", "--json"], |entries| {
        entries[0]["state"] == "sent"
    });
    let entries = pending.as_array().unwrap();
    assert_eq!(entries.len(), 1, "{pending}");
    assert_eq!(entries[0]["hardware_serial"], "REALVAN1");
    assert_eq!(entries[0]["key_index"], 104);
    assert_eq!(entries[0]["port"], "bench-1");
    // The model the terminal's HELLO gave, recorded with its reservation.
    assert_eq!(entries[0]["terminal_model"], "TEST-PINPAD");
    // The idle timeout (1 s) passes: keymotherd records the failure; the key stays pending.
    let report = eventually(&daemon, &["report", "--json"], |report| {
        report["totals"]["failures"] == 1
    });
    assert_eq!(report["totals"]["pending"], 1);
    assert_eq!(report["totals"]["injections"], 3);
    assert!(daemon.ok(&["pending"]).contains("REALVAN1"));

    assert_eq!(
        daemon.ok(&["void", "--serial", "REALVAN1", "--reason", "cable pulled"]),
        "key 00000104 (REALVAN1, was sent) is void\n"
    );
    assert_eq!(daemon.json(&["pending", "--json"]), Value::Array(vec![]));
    let report = daemon.json(&["report", "--json"]);
    assert_eq!(
        (
            &report["totals"]["pending"],
            &report["totals"]["voided"],
            &report["totals"]["failures"]
        ),
        (&Value::from(0), &Value::from(1), &Value::from(1))
    );
    drop(line);
}
