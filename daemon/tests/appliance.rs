//! The appliance end to end: the real keymotherd binary, driven only through the keymother CLI and the serial loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_protocol::{Mode, TerminalConfig, TerminalOutcome};
use keymother_terminal::{PtyLine, SoftwareKeyStore, inject};

/// The keymother CLI, built next to keymotherd by `cargo test --workspace`.
fn cli_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_keymotherd")).with_file_name("keymother");
    assert!(
        path.exists(),
        "build the CLI first (cargo build -p keymother): {} is missing",
        path.display()
    );
    path
}

fn keymother(socket: &Path, arguments: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(cli_binary())
        .arg("--socket")
        .arg(socket)
        .args(arguments)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn run_ok(socket: &Path, arguments: &[&str], stdin: &str) -> String {
    let output = keymother(socket, arguments, stdin);
    assert!(
        output.status.success(),
        "keymother {arguments:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

struct Daemon {
    child: Child,
}

impl Daemon {
    fn start(config: &Path, log: &Path, socket: &Path) -> Daemon {
        let child = Command::new(env!("CARGO_BIN_EXE_keymotherd"))
            .arg("--config")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(
                Instant::now() < deadline,
                "keymotherd did not open its control socket"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Daemon { child }
    }

    fn stop(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "keymotherd exited with {status}");
    }
}

/// Hex components whose XOR is the wanted key, made with the CLI's own generator.
fn components_for(key: &SecretKey) -> (String, String) {
    let first = SecretKey::generate(key.algorithm()).unwrap();
    let second: Vec<u8> = first
        .expose_secret_bytes()
        .iter()
        .zip(key.expose_secret_bytes())
        .map(|(a, b)| a ^ b)
        .collect();
    (first.expose_secret_hex().to_string(), hex(&second))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02X}")).collect()
}

/// A fresh appliance directory: a vault made by `keymother vault init`, `ports` pty ports,
/// settings naming them, and a control socket path. Returns (directory, data, socket, lines, settings path).
fn provision(
    device_id: &str,
    ports: usize,
) -> (tempfile::TempDir, PathBuf, PathBuf, Vec<PtyLine>, PathBuf) {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let socket = work.path().join("control.sock");
    let data_text = data.to_str().unwrap().to_owned();
    run_ok(
        &socket,
        &[
            "vault",
            "init",
            "--data-dir",
            &data_text,
            "--device-id",
            device_id,
        ],
        "",
    );
    let mut lines = Vec::new();
    let mut config = format!(
        "data_dir = {:?}\n\n[control]\nsocket = {:?}\n\n[dispensing]\nidle_timeout_seconds = 5\n\n[operator]\nrequire = false\n",
        data_text,
        socket.to_str().unwrap()
    );
    for number in 0..ports {
        let link = work.path().join(format!("tty{number}"));
        lines.push(PtyLine::open_pair(&link).unwrap());
        config.push_str(&format!(
            "\n[[port]]\nname = \"bench-{number}\"\npath = {:?}\n",
            link.to_str().unwrap()
        ));
    }
    let config_path = work.path().join("keymotherd.toml");
    std::fs::write(&config_path, config).unwrap();
    (work, data, socket, lines, config_path)
}

#[test]
fn ceremony_import_injection_and_registry_through_the_cli_only() {
    let (work, data, socket, mut lines, config_path) = provision("KM-IT-0001", 2);
    let log = work.path().join("keymotherd.log");
    let daemon = Daemon::start(&config_path, &log, &socket);

    let status = run_ok(&socket, &["status"], "");
    assert!(
        status.contains("device KM-IT-0001") && status.contains("locked"),
        "{status}"
    );

    // Custodians load the KEK and the TTK.
    let kek = SecretKey::generate(KeyAlgorithm::Aes256).unwrap();
    let ttk = SecretKey::generate(KeyAlgorithm::Aes256).unwrap();
    let (kek_1, kek_2) = components_for(&kek);
    let (ttk_1, ttk_2) = components_for(&ttk);
    let text = run_ok(
        &socket,
        &[
            "ceremony",
            "--secret",
            "kek",
            "--alg",
            "AES-256",
            "--components",
            "2",
            "--expect-kcv",
            &kek.kcv().to_string(),
            "--custodian",
            "Ann Lee",
            "--custodian",
            "Raj Patel",
        ],
        &format!("{kek_1}\n{kek_2}\n"),
    );
    assert!(
        text.contains(&format!(
            "KEK loaded: AES-256 from 2 components, KCV {}",
            kek.kcv()
        )),
        "{text}"
    );
    // A request that gets a component's shape wrong (a string where a list belongs): refused,
    // and the scan at the end shows the component did not reach the log through the error.
    let mut raw = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    writeln!(
        raw,
        r#"{{"command":"ceremony","secret":"kek","algorithm":"AES-256","components":"{kek_1}"}}"#
    )
    .unwrap();
    let mut answer = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(raw), &mut answer).unwrap();
    assert!(answer.contains("\"ok\":false"), "{answer}");

    let text = run_ok(
        &socket,
        &[
            "ceremony",
            "--secret",
            "ttk",
            "--alg",
            "AES-256",
            "--components",
            "2",
        ],
        // The custodians' names typed before their components.
        &format!("Ann Lee\n{ttk_1}\nRaj Patel\n{ttk_2}\n"),
    );
    assert!(text.contains("the appliance is ready"), "{text}");

    // The front end's file, imported by the daemon.
    let file = work.path().join("batch.keys");
    run_ok(
        &socket,
        &[
            "keyfile",
            "generate",
            "--kek-alg",
            "AES-256",
            "--alg",
            "TDES-2KEY",
            "--count",
            "100",
            "--device-id",
            "KM-IT-0001",
            "--batch-id",
            "IT-1",
            "--issuer",
            "IT FRONT END",
            "--out",
            file.to_str().unwrap(),
        ],
        &format!("{}\n", kek.expose_secret_hex().as_str()),
    );
    let text = run_ok(&socket, &["import", file.to_str().unwrap()], "");
    assert!(
        text.contains("imported batch IT-1 from IT FRONT END: 100 TDES-2KEY keys"),
        "{text}"
    );

    // Terminals on both ports.
    let mut injected = Vec::new();
    for (port, line) in lines.iter_mut().enumerate() {
        for number in 0..3 {
            let serial = format!("IT{port}T{number}");
            let mut store = SoftwareKeyStore::new(&ttk);
            let config = TerminalConfig {
                hardware_serial: serial.parse().unwrap(),
                model: "IT-PINPAD".parse().unwrap(),
                modes: vec![Mode::Tr31],
                ttk_kcv: ttk.kcv().as_bytes().to_vec(),
                response_timeout: Duration::from_millis(500),
                max_retries: 5,
                unconfirmed_key: None,
                unconfirmed_dukpt: Vec::new(),
                krd_credential_token: Vec::new(),
            };
            match inject(line, config, &mut store).unwrap().outcome {
                TerminalOutcome::Injected { smn, .. } => injected.push(smn.to_string()),
                TerminalOutcome::Failed { reason } => panic!("{serial}: {reason}"),
                other => panic!("{serial}: tr31 only here: {other:?}"),
            }
        }
    }
    let registry = run_ok(&socket, &["smn"], "");
    for smn in &injected {
        assert!(
            registry.contains(smn.as_str()),
            "{smn} missing from {registry}"
        );
    }
    let status = run_ok(&socket, &["status", "--json"], "");
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["keys"]["used"], 6);
    assert_eq!(status["ready"], true);

    // An export that cannot be written (no such directory on the stick) marks nothing...
    let output = keymother(
        &socket,
        &[
            "export-smn",
            "--only-new",
            "--out",
            "/nonexistent-stick/smn.csv",
        ],
        "",
    );
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("/nonexistent-stick"),
        "{output:?}"
    );

    // ...so the SMN export for the front end still has every row, checked the way the front end would.
    let export = work.path().join("smn-export.csv");
    let text = run_ok(
        &socket,
        &["export-smn", "--out", export.to_str().unwrap()],
        "",
    );
    assert!(text.contains("exported 6 SMN rows"), "{text}");
    let text = run_ok(
        &socket,
        &[
            "keyfile",
            "verify-smn-export",
            "--kek-alg",
            "AES-256",
            export.to_str().unwrap(),
        ],
        &format!("{}\n", kek.expose_secret_hex().as_str()),
    );
    assert!(text.contains("seal verifies, 6 SMN rows"), "{text}");
    for smn in &injected {
        assert!(text.contains(smn.as_str()), "{smn} missing from the export");
    }
    // The file is there: a second export onto it is refused unless forced.
    let output = keymother(
        &socket,
        &[
            "export-smn",
            "--only-new",
            "--out",
            export.to_str().unwrap(),
        ],
        "",
    );
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("exists; give another file, or --force"),
        "{output:?}"
    );
    let text = run_ok(
        &socket,
        &[
            "export-smn",
            "--only-new",
            "--force",
            "--out",
            export.to_str().unwrap(),
        ],
        "",
    );
    assert!(
        text.contains("exported 0 SMN rows not exported before"),
        "{text}"
    );

    // The audit trail holds the whole story and verifies.
    let text = run_ok(&socket, &["audit", "verify"], "");
    assert!(text.contains("audit trail verifies"), "{text}");
    let audit_export = work.path().join("audit.csv");
    run_ok(
        &socket,
        &["audit", "export", "--out", audit_export.to_str().unwrap()],
        "",
    );
    let audit = std::fs::read_to_string(&audit_export).unwrap();
    for event in ["config-change", "ceremony", "import", "injection", "export"] {
        assert!(
            audit.contains(&format!(",{event},")),
            "no {event} in the audit export:\n{audit}"
        );
    }

    // What the database holds before the zeroize below blanks it, for the scan at the end.
    let snapshot = work.path().join("snapshot");
    std::fs::create_dir(&snapshot).unwrap();
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, snapshot.join(path.file_name().unwrap())).unwrap();
    }

    // A zeroize needs the device id typed out, then locks the appliance.
    let refused = keymother(
        &socket,
        &["zeroize", "--confirm", "KM-WRONG", "--reason", "test"],
        "",
    );
    assert!(!refused.status.success());
    let text = run_ok(
        &socket,
        &[
            "zeroize",
            "--confirm",
            "KM-IT-0001",
            "--reason",
            "end of test",
        ],
        "",
    );
    assert!(
        text.contains("zeroized: 2 sealed secrets deleted"),
        "{text}"
    );
    let status = run_ok(&socket, &["status"], "");
    assert!(status.contains("state: zeroized"), "{status}");

    daemon.stop();
    let logged = std::fs::read_to_string(&log).unwrap();
    assert_eq!(logged.matches("event=injected").count(), 6, "{logged}");
    assert!(logged.contains("event=ceremony secret=KEK"), "{logged}");

    // Nothing the daemon wrote holds a clear key or component.
    let secrets = [
        kek.expose_secret_hex().to_string(),
        ttk.expose_secret_hex().to_string(),
        kek_1,
        kek_2,
        ttk_1,
        ttk_2,
    ];
    let mut written: Vec<PathBuf> = vec![log, export, audit_export];
    for directory in [&data, &snapshot] {
        for entry in std::fs::read_dir(directory).unwrap() {
            written.push(entry.unwrap().path());
        }
    }
    assert!(
        written
            .iter()
            .any(|path| path.ends_with("snapshot/vault.sqlite"))
    );
    assert_no_clear_secrets(&written, &secrets);
}

fn assert_no_clear_secrets(files: &[PathBuf], secrets: &[String]) {
    for file in files {
        let bytes = std::fs::read(file).unwrap();
        let text = String::from_utf8_lossy(&bytes).to_uppercase();
        for secret in secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{} holds a clear secret in hex",
                file.display()
            );
            let raw: Vec<u8> = (0..secret.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&secret[i..i + 2], 16).unwrap())
                .collect();
            assert!(
                !bytes
                    .windows(raw.len())
                    .any(|window| window == raw.as_slice()),
                "{} holds a clear secret",
                file.display()
            );
        }
    }
}

#[test]
fn offline_vault_commands_are_refused_while_the_daemon_owns_the_vault() {
    let (work, data, socket, _lines, config_path) = provision("KM-IT-0002", 1);
    let data_text = data.to_str().unwrap();
    let daemon = Daemon::start(&config_path, &work.path().join("keymotherd.log"), &socket);
    let output = keymother(
        &socket,
        &["vault", "inventory", "--data-dir", data_text],
        "",
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("is in use by another process (keymotherd is running"),
        "{stderr}"
    );
    daemon.stop();
    // Once the daemon has stopped, offline maintenance works.
    run_ok(
        &socket,
        &["vault", "inventory", "--data-dir", data_text],
        "",
    );
}
