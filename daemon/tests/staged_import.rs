//! Staged imports in keymotherd: a terminal gets its keys while a large import runs (a second import is refused meanwhile), and a kill -9 in the middle of one leaves no key of its batch dispensable and the batch importable again.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::mpsc::{Receiver, channel};
use std::thread::JoinHandle;
use std::time::Duration;

use base64ct::{Base64, Encoding};
use keymother_protocol::TerminalOutcome;
use keymother_terminal::inject;
use serde_json::{Value, json};
use support::process::{own_group, settings_text, start_process, stop};
use support::{Appliance, InProcessDaemon, raw_database};

/// The keys of the bench's own batch B-1 (indexes 1 to 5).
const BENCH_KEYS: u32 = 5;

/// Starts importing `bytes` as `name` over the control socket on a thread of its own: every
/// line keymotherd answers (progress lines, then the answer) arrives on the receiver.
fn start_import(socket: &Path, name: &str, bytes: Vec<u8>) -> (Receiver<Value>, JoinHandle<()>) {
    let (sender, lines) = channel();
    let mut stream = UnixStream::connect(socket).unwrap();
    let request = json!({"command": "import", "file_name": name, "size": bytes.len()});
    let client = std::thread::spawn(move || {
        let mut out = format!("{request}\n").into_bytes();
        for piece in bytes.chunks(32 * 1024) {
            out.extend_from_slice(
                json!({"data": Base64::encode_string(piece)})
                    .to_string()
                    .as_bytes(),
            );
            out.push(b'\n');
        }
        let _ = stream.write_all(&out);
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if sender.send(serde_json::from_str(&line).unwrap()).is_err() {
                break;
            }
        }
    });
    (lines, client)
}

/// Waits for a progress line saying at least one chunk of records was staged; until the
/// batch is whole, progress counts whole chunks of 256 records (docs/CONTROL.md).
fn wait_for_a_staged_chunk(lines: &Receiver<Value>) {
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(120))
            .expect("no progress from the import");
        assert!(line.get("ok").is_none(), "the import ended first: {line}");
        let done = line["progress"]["done"].as_u64().unwrap_or(0);
        let total = line["progress"]["total"].as_u64().unwrap_or(0);
        if done < total {
            assert_eq!(done % 256, 0, "progress per chunk of 256 records: {line}");
        }
        if done > 0 {
            return;
        }
    }
}

/// Rows of `batch`: (keys, batch rows, staging rows), read directly.
fn batch_rows(data_dir: &Path, batch: &str) -> (i64, i64, i64) {
    let raw = raw_database(data_dir);
    let count = |sql: &str| -> i64 { raw.query_row(sql, [batch], |row| row.get(0)).unwrap() };
    (
        count("SELECT count(*) FROM key_inventory WHERE batch_id = ?1"),
        count("SELECT count(*) FROM batch WHERE batch_id = ?1"),
        count("SELECT count(*) FROM batch_staging WHERE batch_id = ?1"),
    )
}

#[test]
fn a_terminal_gets_its_keys_while_a_large_import_runs_and_a_second_import_is_refused() {
    let appliance = Appliance::provisioned(BENCH_KEYS);
    let (mut lines, settings) = appliance.ports(1);
    let socket = appliance.directory.path().join("control.sock");
    let daemon = InProcessDaemon::start(settings);
    let keys = 200_000;
    let file = appliance.key_file("B-LARGE", 1_000, keys);
    let (answers, client) = start_import(&socket, "B-LARGE.keys", std::fs::read(&file).unwrap());
    wait_for_a_staged_chunk(&answers);
    // Injections while the batch stages: each ends before the import does, with a key of
    // the bench's own batch, never one of the staging batch.
    for number in 0..3 {
        let serial = format!("STAGE{number:03}");
        let outcome = inject(
            &mut lines[0],
            appliance.terminal(&serial),
            &mut appliance.key_store(),
        )
        .unwrap()
        .outcome;
        let TerminalOutcome::Injected { key_index, .. } = outcome else {
            panic!("{serial}: {outcome:?}");
        };
        assert!(
            (1..=BENCH_KEYS).contains(&key_index),
            "{serial}: {key_index}"
        );
        assert_eq!(
            batch_rows(&appliance.data_dir, "B-LARGE").2,
            1,
            "the import ended before injection {number}"
        );
        assert!(
            answers.try_iter().all(|line| line.get("ok").is_none()),
            "the import ended before injection {number}"
        );
    }
    // A second import meanwhile is refused, and says why.
    let small = appliance.key_file("B-SMALL", 900_000, 3);
    let second = support::wire::import_file(&socket, &small);
    assert_eq!(second["ok"], false, "{second}");
    assert!(
        second["error"]
            .as_str()
            .unwrap()
            .ends_with("B-SMALL.keys: another import is running; try again when it has ended"),
        "{second}"
    );
    assert_eq!(batch_rows(&appliance.data_dir, "B-LARGE").2, 1);
    let answer = loop {
        let line = answers.recv_timeout(Duration::from_secs(600)).unwrap();
        if line.get("ok").is_some() {
            break line;
        }
    };
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(answer["result"]["records"], keys);
    client.join().unwrap();
    assert_eq!(
        batch_rows(&appliance.data_dir, "B-LARGE"),
        (i64::from(keys), 1, 0)
    );
    drop(daemon);
    assert_eq!(
        appliance.vault().available_keys().unwrap(),
        u64::from(keys + BENCH_KEYS - 3)
    );
}

#[test]
fn kill_9_during_an_import_leaves_nothing_of_the_batch_and_it_imports_again() {
    let appliance = Appliance::provisioned(BENCH_KEYS);
    let (text, _port) = settings_text(&appliance, &own_group());
    let socket = appliance.directory.path().join("control.sock");
    let keys = 50_000;
    let file = appliance.key_file("B-KILLED", 1_000, keys);
    let (daemon, _log) = start_process(&appliance, &text, &[]);
    let (answers, client) = start_import(&socket, "B-KILLED.keys", std::fs::read(&file).unwrap());
    wait_for_a_staged_chunk(&answers);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    stop(daemon);
    let _ = client.join();
    let (staged, batch, staging) = batch_rows(&appliance.data_dir, "B-KILLED");
    assert!(
        staged > 0 && staged < i64::from(keys),
        "{staged} keys staged"
    );
    assert_eq!((batch, staging), (1, 1));

    // The restarted daemon removes the interrupted import before it serves anything.
    let (daemon, _log) = start_process(&appliance, &text, &[]);
    assert_eq!(batch_rows(&appliance.data_dir, "B-KILLED"), (0, 0, 0));
    let raw = raw_database(&appliance.data_dir);
    let details: String = raw
        .query_row(
            "SELECT details FROM audit_log WHERE event = 'import-interrupted'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert!(details.contains("batch=B-KILLED"), "{details}");
    let available: i64 = raw
        .query_row(
            "SELECT count(*) FROM key_inventory WHERE state = 'available'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(available, i64::from(BENCH_KEYS));
    // The same file imports whole.
    let answer = support::wire::import_file(&socket, &file);
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(answer["result"]["records"], keys);
    stop(daemon);
    assert_eq!(
        batch_rows(&appliance.data_dir, "B-KILLED"),
        (i64::from(keys), 1, 0)
    );
}
