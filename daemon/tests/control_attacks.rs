//! The control socket under attack and misuse: exports aimed at the vault, a FIFO and stalled uploads, floods of silent connections, huge requests, a key in a refused file, an interrupted import; nothing is lost and the ports keep serving.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use keymother_protocol::TerminalOutcome;
use keymother_terminal::inject;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::process::{own_group, settings_text, start_process, stop};
use support::{Appliance, InProcessDaemon};

fn cli() -> PathBuf {
    let cli = Path::new(env!("CARGO_BIN_EXE_keymotherd")).with_file_name("keymother");
    assert!(
        cli.exists(),
        "build the CLI first (cargo build -p keymother)"
    );
    cli
}

/// One request line, the first answer line.
fn ask(socket: &Path, request: &Value) -> Value {
    let mut stream = UnixStream::connect(socket).unwrap();
    writeln!(stream, "{request}").unwrap();
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).unwrap();
    serde_json::from_str(&answer).unwrap()
}

fn status_within(socket: &Path, limit: Duration) -> Value {
    let started = Instant::now();
    let answer = ask(socket, &json!({"command": "status"}));
    let took = started.elapsed();
    assert!(took < limit, "status took {took:?}");
    assert_eq!(answer["ok"], true, "{answer}");
    answer["result"].clone()
}

/// SHA-256 of every file in the vault's directory, by name.
fn vault_files(data_dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<_> = std::fs::read_dir(data_dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let bytes = std::fs::read(entry.path()).unwrap_or_default();
            (
                entry.file_name().to_string_lossy().into_owned(),
                format!("{} {}", bytes.len(), hex::encode(Sha256::digest(&bytes))),
            )
        })
        .collect();
    files.sort();
    files
}

/// `files`, but of the write-ahead log's index (`-shm`) only its size: it is SQLite's shared
/// memory, whose reader marks change whenever a connection begins to read (the status count
/// and the background check read on connections of their own), so its bytes are no sign of
/// a write; an export written over it would change its size.
fn contents(files: &[(String, String)]) -> Vec<(String, String)> {
    files
        .iter()
        .map(|(name, size_and_digest)| match name.ends_with("-shm") {
            true => (
                name.clone(),
                size_and_digest
                    .split(' ')
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            ),
            false => (name.clone(), size_and_digest.clone()),
        })
        .collect()
}

fn keymother_as(socket: &Path, arguments: &[&str], user: Option<u32>) -> std::process::Output {
    let mut command = Command::new(cli());
    command.arg("--socket").arg(socket).args(arguments);
    if let Some(id) = user {
        command.uid(id).gid(id);
    }
    command.output().unwrap()
}

#[test]
fn exports_aimed_at_the_vaults_own_files_are_refused_as_root_and_as_an_operator() {
    let appliance = Appliance::provisioned(5);
    std::fs::set_permissions(
        appliance.directory.path(),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    // nogroup (65534) is the operators' group here, so nobody (65534) is an operator.
    let group = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(65534))
        .unwrap()
        .unwrap()
        .name;
    let (text, _port) = settings_text(&appliance, &group);
    let (daemon, log) = start_process(&appliance, &text, &[]);
    let socket = appliance.directory.path().join("control.sock");
    // The background check after READY moves the audit chain's last verified point (a
    // write of its own): compare the files once it has.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("event=audit-chain-verified")
    {
        assert!(std::time::Instant::now() < deadline, "no background check");
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = vault_files(&appliance.data_dir);
    let targets: Vec<String> = before.iter().map(|(name, _)| name.clone()).collect();
    assert!(
        targets.iter().any(|name| name == "storage.key"),
        "{targets:?}"
    );
    for target in &targets {
        let out = appliance.data_dir.join(target);
        let out = out.to_str().unwrap();
        for user in [None, Some(65534)] {
            for arguments in [
                vec!["export-smn", "--out", out],
                vec!["export-smn", "--force", "--out", out],
                vec!["audit", "export", "--out", out],
                vec!["audit", "export", "--force", "--out", out],
            ] {
                let output = keymother_as(&socket, &arguments, user);
                assert!(
                    !output.status.success(),
                    "{arguments:?} as {user:?} was accepted"
                );
            }
        }
    }
    // Raw requests naming a path are refused before anything is read.
    for request in [
        json!({"command": "export-smn", "path": appliance.data_dir.join("storage.key")}),
        json!({"command": "audit-export", "path": appliance.data_dir.join("vault.sqlite")}),
        json!({"command": "import", "path": appliance.data_dir.join("storage.key")}),
    ] {
        let answer = ask(&socket, &request);
        assert_eq!(answer["ok"], false, "{answer}");
    }
    assert_eq!(
        contents(&vault_files(&appliance.data_dir)),
        contents(&before)
    );
    // Still serving, and after a restart every key is still there.
    assert_eq!(
        status_within(&socket, Duration::from_secs(1))["keys"]["available"],
        5
    );
    stop(daemon);
    let (daemon, _log) = start_process(&appliance, &text, &[]);
    let status = status_within(&socket, Duration::from_secs(1));
    assert_eq!(status["keys"]["available"], 5);
    assert_ne!(status["secrets"]["KEK"], Value::Null, "{status}");
    stop(daemon);
}

#[test]
fn a_fifo_is_refused_at_once_and_a_stalled_upload_never_blocks_the_ports() {
    let appliance = Appliance::provisioned(5);
    let (mut lines, settings) = appliance.ports(2);
    let socket = appliance.directory.path().join("control.sock");
    let _daemon = InProcessDaemon::start(settings);

    let fifo = appliance.directory.path().join("x.keys");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let started = Instant::now();
    let output = keymother_as(&socket, &["import", fifo.to_str().unwrap()], None);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a regular file (a FIFO)"), "{stderr}");

    // A client that announces a file and stalls halfway, one that sends half a request line,
    // and one that says nothing at all.
    let mut stalled_upload = UnixStream::connect(&socket).unwrap();
    writeln!(
        stalled_upload,
        "{}",
        json!({"command": "import", "file_name": "slow.keys", "size": 100_000})
    )
    .unwrap();
    writeln!(stalled_upload, "{}", json!({"data": "AAAA"})).unwrap();
    let mut half_line = UnixStream::connect(&socket).unwrap();
    half_line.write_all(br#"{"command":"sta"#).unwrap();
    let _silent = UnixStream::connect(&socket).unwrap();

    // The ports go on injecting in their normal time, and status answers.
    for (number, line) in lines.iter_mut().enumerate() {
        let started = Instant::now();
        let mut store = appliance.key_store();
        let injection = inject(
            line,
            appliance.terminal(&format!("STALL{number:03}")),
            &mut store,
        )
        .unwrap();
        assert!(
            matches!(injection.outcome, TerminalOutcome::Injected { .. }),
            "{:?}",
            injection.outcome
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "injection took {:?}",
            started.elapsed()
        );
    }
    status_within(&socket, Duration::from_secs(1));
    drop(stalled_upload);
    // The abandoned upload is recorded as a cancelled import and nothing else changed.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !appliance
        .vault()
        .audit_rows()
        .unwrap()
        .iter()
        .any(|row| row.event == "import-cancelled")
    {
        assert!(Instant::now() < deadline, "no import-cancelled row");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(appliance.vault().inventory().unwrap().total(), 5);
}

/// The descriptors this test process may open, raised to its hard limit.
fn raise_own_file_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    hard
}

#[test]
fn two_thousand_silent_connections_neither_starve_status_nor_flood_the_log() {
    assert!(
        raise_own_file_limit() >= 2_200,
        "this test needs 2,200 descriptors"
    );
    let appliance = Appliance::provisioned(5);
    let group = own_group();
    let (text, _port) = settings_text(&appliance, &group);
    let (daemon, log) = start_process(&appliance, &text, &["prlimit", "--nofile=1024:1024", "--"]);
    let socket = appliance.directory.path().join("control.sock");
    let lines_before = std::fs::read_to_string(&log).unwrap().lines().count();
    let mut silent = Vec::new();
    for _ in 0..2_000 {
        silent.push(UnixStream::connect(&socket).unwrap());
    }
    for _ in 0..5 {
        status_within(&socket, Duration::from_secs(1));
    }
    // A burst of clients that each want an answer are all served.
    for _ in 0..100 {
        status_within(&socket, Duration::from_secs(1));
    }
    drop(silent);
    status_within(&socket, Duration::from_secs(1));
    let text = std::fs::read_to_string(&log).unwrap();
    let grown = text.lines().count() - lines_before;
    assert!(grown < 100, "the log grew by {grown} lines:\n{text}");
    stop(daemon);
}

#[test]
fn a_ten_megabyte_request_is_refused_and_the_daemon_carries_on() {
    let appliance = Appliance::provisioned(5);
    let (_lines, settings) = appliance.ports(1);
    let socket = appliance.directory.path().join("control.sock");
    let _daemon = InProcessDaemon::start(settings);
    for payload in [vec![b'x'; 10 << 20], {
        // A well-formed request with a 10 MB field.
        let mut request = br#"{"command":"void","key_index":1,"reason":""#.to_vec();
        request.extend(vec![b'r'; 10 << 20]);
        request.extend(b"\"}\n");
        request
    }] {
        let mut stream = UnixStream::connect(&socket).unwrap();
        let _ = stream.write_all(&payload);
        let mut answer = String::new();
        BufReader::new(stream).read_line(&mut answer).unwrap();
        let answer: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(
            answer["error"], "request longer than 65536 bytes",
            "{answer}"
        );
    }
    // A data line as long is refused too, with nothing imported.
    let lines = support::wire::upload_lines(
        &socket,
        &json!({"command": "import", "file_name": "big.keys", "size": 20 << 20}),
        &vec![b'k'; 10 << 20],
        10 << 20,
    );
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(
        lines[0]["error"],
        "big.keys: a data line is longer than 65536 bytes"
    );
    assert_eq!(appliance.vault().inventory().unwrap().total(), 5);
    status_within(&socket, Duration::from_secs(1));
}

#[test]
fn a_file_with_a_key_on_line_1_leaves_the_key_in_no_output_log_audit_row_or_database_page() {
    let appliance = Appliance::provisioned(5);
    let group = own_group();
    let (text, _port) = settings_text(&appliance, &group);
    let (daemon, log) = start_process(&appliance, &text, &[]);
    let socket = appliance.directory.path().join("control.sock");
    let key: [u8; 16] = std::array::from_fn(|_| fastrand::u8(..));
    let key_hex = hex::encode_upper(key);
    // Line 1 a component as custodians type it; then a whole key file after it, and the key
    // again in lower case on a line of its own.
    let path = appliance.directory.path().join("component.txt");
    let valid = std::fs::read(appliance.key_file("B-KEY", 100, 2)).unwrap();
    let mut content = format!("{key_hex}\n").into_bytes();
    content.extend_from_slice(&valid);
    std::fs::write(&path, &content).unwrap();
    let other = appliance.directory.path().join("component-2.txt");
    std::fs::write(&other, format!("{}\n", key_hex.to_lowercase())).unwrap();
    let mut shown = String::new();
    for file in [&path, &other] {
        let output = keymother_as(&socket, &["import", file.to_str().unwrap()], None);
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(stderr.contains("line 1"), "{stderr}");
        shown.push_str(&stderr);
        shown.push_str(&String::from_utf8_lossy(&output.stdout));
    }
    stop(daemon);
    let rows = appliance.vault().audit_rows().unwrap();
    assert_eq!(
        rows.iter()
            .filter(|row| row.event == "import-refused")
            .count(),
        2
    );
    let mut everything = shown.into_bytes();
    everything.extend(std::fs::read(&log).unwrap());
    for row in &rows {
        everything.extend(format!("{row:?}").into_bytes());
    }
    for entry in std::fs::read_dir(&appliance.data_dir).unwrap() {
        everything.extend(std::fs::read(entry.unwrap().path()).unwrap_or_default());
    }
    let haystack = String::from_utf8_lossy(&everything).to_uppercase();
    // No run of 8 hex digits of the key, in either case, and not the key's bytes either.
    for start in 0..=key_hex.len() - 8 {
        let piece = &key_hex[start..start + 8];
        assert!(!haystack.contains(piece), "{piece} of the key appears");
    }
    assert!(
        !everything
            .windows(8)
            .any(|window| key.windows(8).any(|part| part == window))
    );
}

/// Keys in the large import: 400,000 as the issue asks, fewer with KEYMOTHER_CANCEL_KEYS.
fn cancel_keys() -> u32 {
    std::env::var("KEYMOTHER_CANCEL_KEYS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(400_000)
}

#[test]
fn ctrl_c_at_half_of_a_large_import_leaves_the_vault_as_it_was_but_for_one_cancellation_row() {
    let appliance = Appliance::provisioned(5);
    let (_lines, settings) = appliance.ports(1);
    let socket = appliance.directory.path().join("control.sock");
    let daemon = InProcessDaemon::start(settings);
    let keys = cancel_keys();
    let file = appliance.key_file("B-LARGE", 1_000, keys);
    let inventory_before = appliance.vault().inventory().unwrap();
    let audit_before = appliance.vault().audit_rows().unwrap();

    let mut child = Command::new(cli())
        .arg("--socket")
        .arg(&socket)
        .arg("import")
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    loop {
        let mut line = String::new();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "the import ended first: {said}"
        );
        said.push_str(&line);
        if line.contains("(50 %)") {
            break;
        }
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
    let mut rest = String::new();
    let _ = stderr.read_to_string(&mut rest);

    // Once the daemon has rolled back (status waits for the vault), nothing changed but one row.
    status_within(&socket, Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(30);
    let audit_after = loop {
        let rows = appliance.vault().audit_rows().unwrap();
        if rows.len() > audit_before.len() || Instant::now() > deadline {
            break rows;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(appliance.vault().inventory().unwrap(), inventory_before);
    assert_eq!(
        audit_after.len(),
        audit_before.len() + 1,
        "{audit_after:#?}"
    );
    assert_eq!(&audit_after[..audit_before.len()], &audit_before[..]);
    let row = audit_after.last().unwrap();
    assert_eq!(row.event, "import-cancelled");
    assert!(row.details.contains("B-LARGE.keys"), "{}", row.details);
    assert!(appliance.vault().verify_audit().is_ok());
    // The same file imports whole afterwards.
    let answer = support::wire::import_file(&socket, &file);
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(answer["result"]["records"], keys);
    drop(daemon);
}

#[test]
fn a_client_that_closes_its_sending_side_or_sends_a_stray_line_still_gets_its_import() {
    use std::net::Shutdown;
    let appliance = Appliance::provisioned(5);
    let (_lines, settings) = appliance.ports(1);
    let socket = appliance.directory.path().join("control.sock");
    let _daemon = InProcessDaemon::start(settings);
    for (batch, first, stray) in [("B-HALF", 100_000, false), ("B-STRAY", 200_000, true)] {
        let bytes = std::fs::read(appliance.key_file(batch, first, 5_000)).unwrap();
        let mut stream = UnixStream::connect(&socket).unwrap();
        writeln!(
            stream,
            "{}",
            json!({"command": "import", "file_name": batch, "size": bytes.len()})
        )
        .unwrap();
        for piece in bytes.chunks(32 * 1024) {
            let data = <base64ct::Base64 as base64ct::Encoding>::encode_string(piece);
            writeln!(stream, "{}", json!({ "data": data })).unwrap();
        }
        if stray {
            stream.write_all(b"\n").unwrap();
        } else {
            // As socat does at the end of its input.
            stream.shutdown(Shutdown::Write).unwrap();
        }
        let last: Value = BufReader::new(stream)
            .lines()
            .map(|line| serde_json::from_str(&line.unwrap()).unwrap())
            .last()
            .unwrap();
        assert_eq!(last["ok"], true, "{last}");
        assert_eq!(last["result"]["records"], 5_000);
    }
    assert_eq!(appliance.vault().inventory().unwrap().total(), 10_005);
}

#[test]
fn an_export_whose_client_goes_away_or_abandons_it_marks_nothing() {
    let appliance = Appliance::provisioned(5);
    let (mut lines, settings) = appliance.ports(1);
    let socket = appliance.directory.path().join("control.sock");
    let _daemon = InProcessDaemon::start(settings);
    let mut store = appliance.key_store();
    let injection = inject(&mut lines[0], appliance.terminal("EXPORT01"), &mut store).unwrap();
    assert!(matches!(
        injection.outcome,
        TerminalOutcome::Injected { .. }
    ));
    let unexported = || appliance.vault().unexported_smn_count().unwrap();
    let exports = || {
        appliance
            .vault()
            .audit_rows()
            .unwrap()
            .iter()
            .filter(|row| row.event == "export")
            .count()
    };
    assert_eq!((unexported(), exports()), (1, 0));
    let request = json!({"command": "export-smn", "file_name": "smn.csv"});
    // Gone after the end line, without a word; then an abandon; then a wrong digest.
    for ending in ["close", "abandon", "digest"] {
        let mut stream = UnixStream::connect(&socket).unwrap();
        writeln!(stream, "{request}").unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line.contains("\"end\"") {
                break;
            }
            assert!(line.contains("\"data\""), "{line}");
        }
        match ending {
            "close" => drop(stream),
            "abandon" => {
                writeln!(stream, "{}", json!({"abandon": {"reason": "stick full"}})).unwrap();
                let mut answer = String::new();
                reader.read_line(&mut answer).unwrap();
                assert!(
                    answer.contains("the client could not write the file: stick full"),
                    "{answer}"
                );
            }
            _ => {
                writeln!(stream, "{}", json!({"received": {"sha256": "00"}})).unwrap();
                let mut answer = String::new();
                reader.read_line(&mut answer).unwrap();
                assert!(answer.contains("SHA-256 differs"), "{answer}");
            }
        }
        status_within(&socket, Duration::from_secs(1));
        assert_eq!((unexported(), exports()), (1, 0), "after {ending}");
    }
    // Received with the right digest: marked and audited.
    let (file, answer) = support::wire::download(&socket, &request);
    assert_eq!(answer["ok"], true, "{answer}");
    assert!(!file.is_empty());
    assert_eq!((unexported(), exports()), (0, 1));
}
