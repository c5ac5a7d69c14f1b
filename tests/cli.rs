//! End-to-end tests of the `keymother` command: outputs, exit statuses and error messages as a user sees them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn keymother(arguments: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keymother"))
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

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn assert_usage_error(output: &Output, words: &str) {
    assert_eq!(output.status.code(), Some(2), "stderr: {}", stderr(output));
    assert!(
        stderr(output).contains(words),
        "stderr lacks {words:?}: {}",
        stderr(output)
    );
}

const TR31_B: &str =
    "B0080P0TE00E000094B420079CC80BA3461F86FE26EFC4A3B8E4FA4C5F5341176EED7B727B8A248E";
const TR31_B_KBPK: &str = "DD7515F2BFC17F85CE48F3CA25CB21F6";

#[test]
fn kcv_prints_the_published_check_values() {
    let output = keymother(
        &["kcv", "--alg", "tdes", "0123456789ABCDEFFEDCBA9876543210"],
        "",
    );
    assert_eq!(stdout(&output), "08D7B4\n");
    let output = keymother(
        &["kcv", "--alg", "aes", "3F419E1CB7079442AA37474C2EFBF8B8"],
        "",
    );
    assert_eq!(stdout(&output), "08793E25AB\n");
    let output = keymother(
        &["kcv", "--alg", "aes", "-"],
        "3F419E1CB7079442AA37474C2EFBF8B8\n",
    );
    assert_eq!(stdout(&output), "08793E25AB\n");
}

#[test]
fn kcv_argument_errors_name_the_argument() {
    assert_usage_error(
        &keymother(
            &["kcv", "--alg", "tdes", "0123456789ABCDEFFEDCBA987654321G"],
            "",
        ),
        "keymother: KEY_HEX: not hexadecimal: character 32 is not 0-9 or A-F",
    );
    assert_usage_error(
        &keymother(&["kcv", "--alg", "des", "00"], ""),
        "--alg: unknown cipher family \"des\"",
    );
    assert_usage_error(
        &keymother(&["kcv", "--alg", "tdes", "0123456789ABCDEF"], ""),
        "KEY_HEX: a TDES key cannot be 8 bytes long",
    );
}

#[test]
fn tr31_unwrap_shows_header_key_and_kcv() {
    let output = keymother(&["tr31", "unwrap", "--kbpk", TR31_B_KBPK, TR31_B], "");
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("key              3F419E1CB7079442AA37474C2EFBF8B8"),
        "{text}"
    );
    assert!(text.contains("key usage        P0"), "{text}");
    assert!(text.contains("kcv              "), "{text}");
}

#[test]
fn tr31_unwrap_errors_are_usage_errors() {
    assert_usage_error(
        &keymother(
            &[
                "tr31",
                "unwrap",
                "--kbpk",
                "00112233445566778899AABBCCDDEEFF",
                TR31_B,
            ],
            "",
        ),
        "BLOCK: ",
    );
    assert_usage_error(
        &keymother(&["tr31", "unwrap", "--kbpk", "XYZ", TR31_B], ""),
        "--kbpk: not hexadecimal",
    );
    assert_usage_error(
        &keymother(&["tr31", "unwrap", "--kbpk", TR31_B_KBPK, "B0080"], ""),
        "BLOCK: ",
    );
}

#[test]
fn tr31_wrap_then_unwrap_round_trips() {
    let kbpk = "88E1AB2A2E3DD38C1FA039A536500CC8A87AB9D62DC92C01058FA79F44657DE6";
    let key = "3F419E1CB7079442AA37474C2EFBF8B8";
    let output = keymother(
        &[
            "tr31",
            "wrap",
            "--kbpk",
            kbpk,
            "--key",
            key,
            "--header",
            "D0000P0AE00E0000",
        ],
        "",
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let block = stdout(&output).trim().to_owned();
    assert!(block.starts_with('D'), "{block}");
    let output = keymother(&["tr31", "unwrap", "--kbpk", kbpk, &block], "");
    assert!(
        stdout(&output).contains(&format!("key              {key}")),
        "{}",
        stdout(&output)
    );
    assert!(
        stdout(&output).contains("kcv              08793E25AB"),
        "{}",
        stdout(&output)
    );

    assert_usage_error(
        &keymother(
            &[
                "tr31",
                "wrap",
                "--kbpk",
                kbpk,
                "--key",
                key,
                "--header",
                "D0000ZZAE00E0000",
            ],
            "",
        ),
        "--header: ",
    );
}

#[test]
fn components_combine_from_standard_input_showing_check_values_only() {
    let combine = |expected: &str| {
        keymother(
            &[
                "component",
                "combine",
                "--alg",
                "TDES-2KEY",
                "--count",
                "2",
                "--expect-kcv",
                expected,
            ],
            "0101010101010101 0101010101010101\n0123456789ABCDEFFEDCBA9876543210\n",
        )
    };
    let output = combine("08D7B4");
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("combined KCV      08D7B4"), "{text}");
    assert!(!text.contains("0123456789ABCDEF") && !stderr(&output).contains("0123456789ABCDEF"));

    let output = combine("000000");
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("combined check value is 08D7B4, but 000000 was expected"));

    assert_usage_error(
        &keymother(
            &["component", "combine", "--alg", "TDES-2KEY", "--count", "1"],
            "",
        ),
        "--count: must be 2 to 9",
    );
}

#[test]
fn component_new_makes_components_with_their_check_values() {
    let output = keymother(
        &["component", "new", "--alg", "AES-128", "--count", "3"],
        "",
    );
    assert!(output.status.success());
    let text = stdout(&output);
    assert_eq!(text.lines().count(), 3);
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields.len(), 5, "{line}");
        let kcv = keymother(&["kcv", "--alg", "aes", fields[2]], "");
        assert_eq!(stdout(&kcv).trim(), fields[4]);
    }
}

fn run_ok(arguments: &[&str], stdin: &str) -> String {
    let output = keymother(arguments, stdin);
    assert!(
        output.status.success(),
        "{arguments:?} failed: {}",
        stderr(&output)
    );
    stdout(&output)
}

#[test]
fn custodians_load_a_kek_and_import_a_front_end_file() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let data = data.to_str().unwrap();
    run_ok(
        &[
            "vault",
            "init",
            "--data-dir",
            data,
            "--device-id",
            "KM-CLI-0001",
        ],
        "",
    );

    let first = "00000000000000000000000000000000000000000000000000000000000000AA";
    let second = "000000000000000000000000000000000000000000000000000000000000BB00";
    let kek = "000000000000000000000000000000000000000000000000000000000000BBAA";
    let kek_kcv = stdout(&keymother(&["kcv", "--alg", "aes", kek], ""))
        .trim()
        .to_owned();
    let text = run_ok(
        &[
            "vault",
            "ceremony",
            "--data-dir",
            data,
            "--secret",
            "kek",
            "--alg",
            "AES-256",
            "--components",
            "2",
            "--expect-kcv",
            &kek_kcv,
        ],
        &format!("{first}\n{second}\n"),
    );
    assert!(
        text.contains(&format!(
            "KEK loaded: AES-256 from 2 components, KCV {kek_kcv}"
        )),
        "{text}"
    );

    let file = directory.path().join("batch.keys");
    run_ok(
        &[
            "keyfile",
            "generate",
            "--kek-alg",
            "AES-256",
            "--alg",
            "TDES-2KEY",
            "--count",
            "500",
            "--first-index",
            "278",
            "--device-id",
            "KM-CLI-0001",
            "--batch-id",
            "B-CLI-1",
            "--issuer",
            "CLI FRONT END",
            "--out",
            file.to_str().unwrap(),
        ],
        &format!("{kek}\n"),
    );
    let text = run_ok(&["keyfile", "inspect", file.to_str().unwrap()], "");
    assert!(
        text.contains("record-count  500") && text.contains(&format!("kek-kcv       {kek_kcv}")),
        "{text}"
    );

    let text = run_ok(
        &[
            "vault",
            "import",
            "--data-dir",
            data,
            file.to_str().unwrap(),
        ],
        "",
    );
    assert!(text.contains("imported batch B-CLI-1 from CLI FRONT END: 500 TDES-2KEY keys, indexes 00000278..00000777"), "{text}");
    let text = run_ok(&["vault", "inventory", "--data-dir", data], "");
    assert!(text.contains("keys: 500 (available 500"), "{text}");

    // The same file again is refused with its line, and exit status 1.
    let output = keymother(
        &[
            "vault",
            "import",
            "--data-dir",
            data,
            file.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains(": line 2: batch B-CLI-1 was already imported"),
        "{}",
        stderr(&output)
    );

    // Nothing secret reached the data directory in the clear.
    assert_no_clear_secret(Path::new(data), &[first, second, kek]);
}

fn assert_no_clear_secret(directory: &Path, secrets: &[&str]) {
    for entry in std::fs::read_dir(directory).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes).to_uppercase();
        for secret in secrets {
            assert!(!text.contains(secret), "a clear secret is on disk");
            let raw = (0..secret.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&secret[i..i + 2], 16).unwrap())
                .collect::<Vec<u8>>();
            assert!(
                !bytes
                    .windows(raw.len())
                    .any(|window| window == raw.as_slice()),
                "a raw secret is on disk"
            );
        }
    }
}

#[test]
fn the_demo_runs_and_shows_every_refusal() {
    let output = keymother(&["demo", "--keys", "300"], "");
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    for words in [
        "KEK loaded from 3 components",
        "imported batch DEMO-0001",
        "the same file again:\n  refused:",
        "a copy with one byte changed in transit:\n  refused:",
        "a file made for another appliance:\n  refused:",
        "a file reusing key indexes already in the inventory:\n  refused:",
        "inventory unchanged: 300 keys",
        "12 terminals injected over 4 ports, 12 SMN rows ready for the front end, 12 keys used, 288 keys left",
        "bench-1",
        "SMN ",
        "operator certificate for Demo Operator",
        "a terminal asking before any operator logged in:\n  refused: the appliance answered KEY_REQUEST with ERROR 0x0008 NOT_READY: no operator is logged in on the appliance",
        "operator logged in: Demo Operator (certificate serial 1000)",
        "  operator Demo Operator\n",
        "every injection is recorded under operator Demo Operator",
        "certificate mode on",
        "REF-PINPAD-X509",
        "bench (simulated): ",
    ] {
        assert!(text.contains(words), "demo output lacks {words:?}:\n{text}");
    }
    // The certificate-mode terminals were injected, on the ports that run them.
    let x509_lines = text
        .lines()
        .filter(|line| line.contains("REF-PINPAD-X509") && line.contains("SMN "))
        .count();
    assert_eq!(x509_lines, 6, "{text}");
}

/// A file of the pki crate's test fixtures (public test data).
fn fixture(name: &str) -> String {
    format!(
        "{}/../pki/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// keymotherd in this process with operator login required, the fixture CAs, no keys.
struct Daemon {
    directory: tempfile::TempDir,
    socket: std::path::PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Daemon {
    fn start() -> Daemon {
        let directory = tempfile::tempdir().unwrap();
        let data = directory.path().join("data");
        keymother_vault::Vault::create(&data, &"KM-CLI-0002".parse().unwrap()).unwrap();
        let socket = directory.path().join("control.sock");
        let text = format!(
            "data_dir = {data:?}\n[control]\nsocket = {socket:?}\n\
             [pki]\ndevice_ca = {:?}\nkdh_ca = {:?}\noperator_ca = {:?}\n\
             [operator]\nrequire = true\n\
             [[port]]\nname = \"bench-1\"\npath = {:?}\n",
            fixture("ca-device.pem"),
            fixture("ca-kdh.pem"),
            fixture("ca-operator.pem"),
            directory.path().join("no-such-tty"),
        );
        let settings = keymother_daemon::Settings::from_toml(&text, "keymotherd.toml").unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, is_ready) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let (events, mut receiver) = tokio::sync::mpsc::unbounded_channel();
                tokio::spawn(async move {
                    while let Some(event) = receiver.recv().await {
                        if let keymother_daemon::DaemonEvent::Ready { .. } = event {
                            let _ = ready.send(());
                        }
                    }
                });
                keymother_daemon::run(
                    settings,
                    async {
                        let _ = stopped.await;
                    },
                    Some(events),
                    std::sync::Arc::new(keymother_daemon::Stats::default()),
                )
                .await
                .unwrap();
            });
        });
        // Ready comes once the control socket is bound.
        is_ready
            .recv_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        Daemon {
            directory,
            socket,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn keymother(&self, arguments: &[&str], stdin: &str) -> Output {
        let mut all = vec!["--socket", self.socket.to_str().unwrap()];
        all.extend_from_slice(arguments);
        keymother(&all, stdin)
    }

    fn file(&self, name: &str, text: &str) -> String {
        let path = self.directory.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
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
fn an_operator_logs_in_with_a_passphrase_protected_key_and_out_again() {
    let daemon = Daemon::start();
    let certificate = fixture("operator.der");
    let encrypted = fixture("test-only-operator-encrypted.key");
    let text = run_ok_with(&daemon, &["operator", "status"], "");
    assert_eq!(
        text,
        "operator: nobody logged in (login required: no key is dispensed)\n"
    );

    // The passphrase from a file.
    let passphrase = daemon.file("passphrase", "test-only-passphrase\n");
    let text = run_ok_with(
        &daemon,
        &[
            "operator",
            "login",
            "--certificate",
            &certificate,
            "--key",
            &encrypted,
            "--passphrase-file",
            &passphrase,
        ],
        "",
    );
    assert!(
        text.starts_with("logged in: operator (certificate serial 1001) since "),
        "{text}"
    );
    let text = run_ok_with(&daemon, &["status"], "");
    assert!(
        text.contains("operator: operator (certificate serial 1001) since "),
        "{text}"
    );

    // The passphrase piped in on standard input (a person would type it without echo).
    let output = daemon.keymother(
        &[
            "operator",
            "login",
            "--certificate",
            &certificate,
            "--key",
            &encrypted,
        ],
        "test-only-passphrase\n",
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("passphrase for "),
        "{}",
        stderr(&output)
    );
    assert!(!stdout(&output).contains("test-only-passphrase"));
    assert!(!stderr(&output).contains("test-only-passphrase"));

    let text = run_ok_with(&daemon, &["operator", "logout"], "");
    assert!(
        text.starts_with("logged out: operator (certificate serial 1001)"),
        "{text}"
    );
    let text = run_ok_with(&daemon, &["operator", "logout"], "");
    assert_eq!(text, "no operator was logged in\n");
    run_ok_with(&daemon, &["audit", "verify"], "");
}

#[test]
fn operator_login_errors_name_the_file_or_repeat_the_daemon() {
    let daemon = Daemon::start();
    let certificate = fixture("operator.der");
    let encrypted = fixture("test-only-operator-encrypted.key");
    let login = |certificate: &str, key: &str, passphrase: Option<&str>, stdin: &str| {
        let mut arguments = vec![
            "operator",
            "login",
            "--certificate",
            certificate,
            "--key",
            key,
        ];
        if let Some(passphrase) = passphrase {
            arguments.extend_from_slice(&["--passphrase-file", passphrase]);
        }
        daemon.keymother(&arguments, stdin)
    };
    // Mistakes on this side: exit status 2, naming the argument and the file.
    let wrong = daemon.file("wrong", "not the passphrase\n");
    assert_usage_error(
        &login(&certificate, &encrypted, Some(&wrong), ""),
        &format!(
            "keymother: --key: {encrypted}: the encrypted private key does not decrypt: wrong passphrase"
        ),
    );
    assert_usage_error(
        &login(&certificate, &encrypted, None, "not the passphrase\n"),
        "wrong passphrase",
    );
    // No passphrase at all (as with ceremony components: exit status 1).
    let output = login(&certificate, &encrypted, None, "");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("standard input ended before the secret was given"),
        "{}",
        stderr(&output)
    );
    assert_usage_error(
        &login(
            &certificate,
            &fixture("test-only-operator.key"),
            Some(&wrong),
            "",
        ),
        "a passphrase was given but the private key is not encrypted",
    );
    assert_usage_error(
        &login(
            &fixture("device.der"),
            &fixture("test-only-operator.key"),
            None,
            "",
        ),
        "--key: the private key does not belong to the operator certificate",
    );
    assert_usage_error(
        &login(&certificate, "/nonexistent.key", None, ""),
        "--key: /nonexistent.key: No such file",
    );
    assert_usage_error(
        &login(&certificate, &fixture("operator.der"), None, ""),
        "--key: ",
    );
    assert_usage_error(
        &daemon.keymother(&["operator", "login", "--certificate", &certificate], ""),
        "--key",
    );
    // The daemon's refusal: exit status 1 with its message.
    let output = login(
        &fixture("device.der"),
        &fixture("test-only-device.key"),
        None,
        "",
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(
            "keymother: login refused: the operator certificate is refused: a terminal device certificate was presented as a operator certificate"
        ),
        "{}",
        stderr(&output)
    );
    let text = run_ok_with(&daemon, &["operator", "status"], "");
    assert!(text.contains("nobody logged in"), "{text}");
}

fn run_ok_with(daemon: &Daemon, arguments: &[&str], stdin: &str) -> String {
    let output = daemon.keymother(arguments, stdin);
    assert!(
        output.status.success(),
        "{arguments:?} failed: {}",
        stderr(&output)
    );
    stdout(&output)
}

// DUKPT calculator, on the published vectors of crypto/tests/vectors/dukpt_*.txt
// (ANSI X9.24-1-2009 A.4 and the ANSI X9.24-3-2017 supplement).

const DUKPT_TDES_BDK: &str = "0123456789ABCDEFFEDCBA9876543210";
const DUKPT_AES128_BDK: &str = "FEDCBA9876543210F1F1F1F1F1F1F1F1";
const DUKPT_AES256_BDK: &str = "FEDCBA9876543210F1F1F1F1F1F1F1F1FEDCBA9876543210F1F1F1F1F1F1F1F1";

/// The value on the line of `text` labelled `label` (labels are padded to 20 characters).
fn dukpt_field<'a>(text: &'a str, label: &str) -> &'a str {
    let label = format!("{label:<20} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&label))
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{text}"))
        .trim()
}

#[test]
fn dukpt_initial_key_of_a_tdes_ksn_and_an_aes_key_id() {
    let text = run_ok(
        &[
            "dukpt",
            "initial-key",
            "--bdk",
            DUKPT_TDES_BDK,
            "--ksn",
            "FFFF9876543210E00008",
        ],
        "",
    );
    assert_eq!(dukpt_field(&text, "initial KSN"), "FFFF9876543210E00000");
    assert_eq!(
        dukpt_field(&text, "initial key"),
        "6AC292FAA1315B4D858AB3A3D7D5933A"
    );
    assert_eq!(dukpt_field(&text, "key algorithm"), "TDES-2KEY");
    let kcv = run_ok(
        &["kcv", "--alg", "tdes", "6AC292FAA1315B4D858AB3A3D7D5933A"],
        "",
    );
    assert_eq!(dukpt_field(&text, "kcv"), kcv.trim());

    // The BDK typed without echo; the initial key of the BDK's type unless asked otherwise.
    let text = run_ok(
        &[
            "dukpt",
            "initial-key",
            "--bdk",
            "-",
            "--key-id",
            "1234567890123456",
        ],
        &format!("{DUKPT_AES256_BDK}\n"),
    );
    assert_eq!(
        dukpt_field(&text, "initial key"),
        "CE9CE0C101D1138F97FB6CAD4DF045A7083D4EAE2D35A31789D01CCF0949550F"
    );
    assert_eq!(dukpt_field(&text, "BDK ID"), "12345678");
    assert_eq!(dukpt_field(&text, "derivation ID"), "90123456");
    let text = run_ok(
        &[
            "dukpt",
            "initial-key",
            "--bdk",
            DUKPT_AES128_BDK,
            "--key-id",
            "1234567890123456",
            "--key-type",
            "aes128",
        ],
        "",
    );
    assert_eq!(
        dukpt_field(&text, "initial key"),
        "1273671EA26AC29AFA4D1084127652A1"
    );
    assert_eq!(dukpt_field(&text, "key algorithm"), "AES-128");
}

#[test]
fn dukpt_working_keys_of_high_counters() {
    // X9.24-1-2009 A.4.3: the first rollover row and the last.
    for (ksn, transaction_key) in [
        ("FFFF9876543210EFF800", "F9CDFEBF4F5B1D9EB3EC12454527E176"),
        ("FFFF9876543210F00000", "AA4D58DB653EC74A48C75F2F047DD2B5"),
    ] {
        let text = run_ok(
            &[
                "dukpt",
                "working-keys",
                "--bdk",
                DUKPT_TDES_BDK,
                "--ksn",
                ksn,
            ],
            "",
        );
        assert!(
            dukpt_field(&text, "transaction key").starts_with(transaction_key),
            "{text}"
        );
        for label in [
            "PIN encryption",
            "MAC request",
            "MAC response",
            "data request",
            "data response",
        ] {
            assert!(dukpt_field(&text, label).contains("  KCV "), "{text}");
        }
    }
    // X9.24-3-2017 supplement, AES-128 BDK: the last counter, and counter 1's working keys.
    let text = run_ok(
        &[
            "dukpt",
            "working-keys",
            "--bdk",
            DUKPT_AES128_BDK,
            "--ksn",
            "1234567890123456FFFF0000",
        ],
        "",
    );
    assert!(
        dukpt_field(&text, "transaction key").starts_with("F6BA59389BD14A9855BE9727E7C52E3C"),
        "{text}"
    );
    let text = run_ok(
        &[
            "dukpt",
            "working-keys",
            "--bdk",
            DUKPT_AES128_BDK,
            "--ksn",
            "123456789012345600000001",
        ],
        "",
    );
    for (label, key) in [
        ("PIN encryption", "AF8CB133A78F8DC2D1359F18527593FB"),
        ("MAC generation", "A2DC23DE6FDE0824A2BC321E08E4B8B7"),
        ("data encrypt", "A35C412EFD41FDB98B69797C02DCD08F"),
    ] {
        assert!(dukpt_field(&text, label).starts_with(key), "{text}");
    }
    // AES-256 BDK, AES-256 working keys.
    let text = run_ok(
        &[
            "dukpt",
            "working-keys",
            "--bdk",
            DUKPT_AES256_BDK,
            "--ksn",
            "123456789012345600000001",
            "--key-type",
            "aes256",
        ],
        "",
    );
    assert!(
        dukpt_field(&text, "PIN encryption")
            .starts_with("8C1AB7BEE973829E30242E0BBBDD4946D540C98FC1B5BDCF94790001A23FD502"),
        "{text}"
    );
}

#[test]
fn dukpt_pin_decrypts_the_published_test_pin_blocks() {
    let text = run_ok(
        &[
            "dukpt",
            "pin",
            "--bdk",
            DUKPT_TDES_BDK,
            "--ksn",
            "FFFF9876543210F00000",
            "--pin-block",
            "73EC88AD0AC5830E",
            "--pan",
            "4012345678909",
        ],
        "",
    );
    assert_eq!(dukpt_field(&text, "PIN block format"), "ISO 9564 format 0");
    assert_eq!(dukpt_field(&text, "PIN"), "1234");
    let text = run_ok(
        &[
            "dukpt",
            "pin",
            "--bdk",
            DUKPT_AES128_BDK,
            "--ksn",
            "123456789012345600000008",
            "--pin-block",
            "8308BB857C17F390369F761F8EB358FA",
            "--pan",
            "4111111111111111",
        ],
        "",
    );
    assert_eq!(dukpt_field(&text, "PIN block format"), "ISO 9564 format 4");
    assert_eq!(dukpt_field(&text, "PIN"), "1234");
}

#[test]
fn dukpt_errors_name_the_argument() {
    let tdes = |extra: &[&str]| {
        let mut arguments = vec!["dukpt", "working-keys", "--bdk", DUKPT_TDES_BDK];
        arguments.extend_from_slice(extra);
        keymother(&arguments, "")
    };
    assert_usage_error(
        &tdes(&["--ksn", "FFFF9876543210E007FF"]),
        "keymother: --ksn: transaction counter 0x7FF has 11 one-bits; ANSI X9.24-1-2009 allows at most 10",
    );
    assert_usage_error(
        &tdes(&["--ksn", "FFFF9876543210E0001"]),
        "--ksn: a KSN is 20 (TDES) or 24 (AES) hex digits, got 19",
    );
    assert_usage_error(
        &tdes(&["--ksn", "FFFF9876543210E00001", "--key-type", "aes128"]),
        "--key-type: applies to AES DUKPT only",
    );
    assert_usage_error(
        &keymother(
            &[
                "dukpt",
                "initial-key",
                "--bdk",
                DUKPT_AES128_BDK,
                "--key-id",
                "1234567890123456",
                "--key-type",
                "aes256",
            ],
            "",
        ),
        "--key-type: AES-256 cannot be derived from AES-128",
    );
    assert_usage_error(
        &keymother(
            &[
                "dukpt",
                "working-keys",
                "--bdk",
                DUKPT_AES128_BDK,
                "--ksn",
                "12345678901234560001FFFF",
            ],
            "",
        ),
        "--ksn: transaction counter 0x1FFFF has 17 one-bits; ANSI X9.24-3-2017 allows at most 16",
    );
    let bad_bdk = keymother(
        &[
            "dukpt",
            "initial-key",
            "--bdk",
            "0123456789ABCDEFFEDCBA98765432XY",
            "--ksn",
            "FFFF9876543210E00000",
        ],
        "",
    );
    assert_usage_error(&bad_bdk, "--bdk: not hexadecimal: character 31");
    assert!(!stderr(&bad_bdk).contains("0123456789ABCDEF"));
    // The right block under another PAN: the fill does not check out, no PIN is shown.
    let wrong_pan = keymother(
        &[
            "dukpt",
            "pin",
            "--bdk",
            DUKPT_TDES_BDK,
            "--ksn",
            "FFFF9876543210E00001",
            "--pin-block",
            "1B9C1845EB993A7A",
            "--pan",
            "4111111111111111",
        ],
        "",
    );
    assert_usage_error(
        &wrong_pan,
        "--pin-block: the decrypted block is not ISO 9564 format 0",
    );
    assert!(stdout(&wrong_pan).is_empty());
}

// The DUKPT export (issue 15): `export-dukpt` through keymotherd, and the front end's
// `keyfile verify-dukpt-export`.

/// The KEK of docs/CONTROL.md's ceremony example (AES-128, KCV 885D65BD9E), its components,
/// and the DUKPT export of docs/SMN-EXPORT.md sealed under it.
const DOC_KEK: &str = "D6C30C243863188EDA27AF95A49F137F";
const DOC_KEK_COMPONENTS: [&str; 2] = [
    "1E5180F383A5DCF31AE239E5999F8E6B",
    "C8928CD7BBC6C47DC0C596703D009D14",
];

fn documented_dukpt_export() -> String {
    let path = format!("{}/../docs/SMN-EXPORT.md", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    let start = text.find("```\n# KEYMOTHER-DUKPT-EXPORT/2").unwrap() + 4;
    text[start..start + text[start..].find("```").unwrap()].to_owned()
}

#[test]
fn verify_dukpt_export_lists_the_rows_of_a_sealed_file_and_refuses_another_kek() {
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("dukpt.csv");
    std::fs::write(&file, documented_dukpt_export()).unwrap();
    let file = file.to_str().unwrap();
    let arguments = [
        "keyfile",
        "verify-dukpt-export",
        "--kek-alg",
        "AES-128",
        file,
    ];
    let text = run_ok(&arguments, &format!("{DOC_KEK}\n"));
    assert_eq!(
        text,
        format!(
            "{file}: seal verifies, 2 DUKPT rows (device KM-DEMO-0001, exported 2026-12-06T16:06:12Z)\n\
             FFFF9876543210E00000  BDK DATA (FFFF987654)  device 19087  TDES-2KEY  KCV AF8C07  serial 123L013M  port bench-2  model PX-9 Pro  operator Alice Martin  2026-12-06T10:32:17Z\n\
             1234567890123456  BDK PIN (12345678)  device 90123456  AES-128  KCV 05EF4531EC  serial 123L013M  port bench-2  model PX-9 Pro  operator Alice Martin  2026-12-06T10:32:18Z\n"
        )
    );
    let output = keymother(&arguments, "00112233445566778899AABBCCDDEEFF\n");
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains(&format!(
            "{file}: line 3: the file was sealed under the KEK with check value 885D65BD9E, not the given KEK ("
        )),
        "{}",
        stderr(&output)
    );
    assert!(stdout(&output).is_empty());
}

#[test]
fn an_operator_exports_the_dukpt_registry_where_the_front_end_can_verify_it() {
    let daemon = Daemon::start();
    let out = daemon.directory.path().join("dukpt.csv");
    let out_text = out.to_str().unwrap();
    // Operator login is required: refused before anything is written.
    let output = daemon.keymother(&["export-dukpt", "--out", out_text], "");
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("no operator is logged in"),
        "{}",
        stderr(&output)
    );
    assert!(!out.exists());

    run_ok_with(
        &daemon,
        &[
            "ceremony",
            "--secret",
            "kek",
            "--alg",
            "AES-128",
            "--components",
            "2",
            "--expect-kcv",
            "885D65BD9E",
        ],
        &format!("{}\n{}\n", DOC_KEK_COMPONENTS[0], DOC_KEK_COMPONENTS[1]),
    );
    let passphrase = daemon.file("passphrase", "test-only-passphrase\n");
    run_ok_with(
        &daemon,
        &[
            "operator",
            "login",
            "--certificate",
            &fixture("operator.der"),
            "--key",
            &fixture("test-only-operator-encrypted.key"),
            "--passphrase-file",
            &passphrase,
        ],
        "",
    );
    let text = run_ok_with(&daemon, &["export-dukpt", "--out", out_text], "");
    let digest = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(std::fs::read(&out).unwrap()))
    };
    assert_eq!(
        text,
        format!("exported 0 DUKPT rows to {out_text} (SHA-256 {digest})\n")
    );
    let text = run_ok(
        &[
            "keyfile",
            "verify-dukpt-export",
            "--kek-alg",
            "AES-128",
            out_text,
        ],
        &format!("{DOC_KEK}\n"),
    );
    assert!(
        text.starts_with(&format!(
            "{out_text}: seal verifies, 0 DUKPT rows (device KM-CLI-0002, exported "
        )),
        "{text}"
    );

    // Never over an existing file without --force, never into the vault's directory.
    let output = daemon.keymother(&["export-dukpt", "--out", out_text], "");
    assert!(
        stderr(&output).contains(&format!(
            "{out_text} exists; give another file, or --force to replace it"
        )),
        "{}",
        stderr(&output)
    );
    let inside = daemon.directory.path().join("data/dukpt.csv");
    let inside = inside.to_str().unwrap();
    let output = daemon.keymother(&["export-dukpt", "--force", "--out", inside], "");
    assert!(
        stderr(&output).contains(&format!(
            "{inside}: that directory holds a keymother vault; exports never go there"
        )),
        "{}",
        stderr(&output)
    );
    let text = run_ok_with(
        &daemon,
        &["export-dukpt", "--only-new", "--force", "--out", out_text],
        "",
    );
    assert!(
        text.starts_with("exported 0 DUKPT rows not exported before to "),
        "{text}"
    );
    run_ok_with(&daemon, &["audit", "verify"], "");
}

#[test]
fn the_demo_injects_a_profile_with_a_master_key_and_two_dukpt_keys_on_one_port() {
    let output = keymother(&["demo", "--keys", "300", "--terminals-per-port", "2"], "");
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    for words in [
        "BDK PIN loaded over the control socket (bdk-ceremony): AES DUKPT, AES-128, BDK ID 12345678, KCV FF0BD7C455, devices 90123456-9012383D (1000 left)",
        "BDK DATA loaded over the control socket (bdk-ceremony): TDES DUKPT, TDES-2KEY, BDK ID FFFF987654, KCV 08D7B4, devices 19087-1946E (1000 left)",
        "8 terminals injected over 4 ports, 8 SMN rows ready for the front end, 8 keys used, 292 keys left",
        "2 profiles PINPAD-DUKPT injected on bench-2 (the master key and 2 DUKPT initial keys each): 4 DUKPT initial keys in the registry, no initial KSN twice; device IDs left: DATA 998 of 1000 (next 19089), PIN 998 of 1000 (next 90123458)",
        "the first device IDs gave the published initial keys",
    ] {
        assert!(text.contains(words), "demo output lacks {words:?}:\n{text}");
    }
    // One line per profile terminal: its master key's SMN and both initial keys.
    let profile_lines: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("REF-PINPAD-DUKPT serial"))
        .collect();
    assert_eq!(profile_lines.len(), 2, "{text}");
    for line in &profile_lines {
        assert!(line.contains("bench-2"), "{line}");
        assert!(line.contains("  SMN 20"), "{line}");
        assert!(
            line.contains("  PIN initial key ID 12345678901234"),
            "{line}"
        );
        assert!(line.contains("  DATA initial KSN FFFF987654"), "{line}");
        assert!(line.ends_with("  operator Demo Operator"), "{line}");
    }
    // The first terminal gets the first device IDs: the published vectors' initial keys.
    assert!(
        profile_lines
            .iter()
            .any(|line| line.contains("serial 200L013K  key 0000000")
                && line.contains(
                    "PIN initial key ID 1234567890123456  DATA initial KSN FFFF9876543210E00000"
                )),
        "{text}"
    );
    // The other ports stay as they were: tr31 on bench-1, certificate mode on bench-3 and 4.
    let x509_lines = text
        .lines()
        .filter(|line| line.contains("REF-PINPAD-X509") && line.contains("SMN "))
        .count();
    assert_eq!(x509_lines, 4, "{text}");
    assert_eq!(
        text.lines()
            .filter(|line| line.contains("bench-1  REF-PINPAD-1 "))
            .count(),
        2,
        "{text}"
    );
}

// Re-injection grants (issue 17): `keymother reinject` through keymotherd.

#[test]
fn reinject_needs_the_operator_and_a_confirmed_key_and_names_bad_arguments() {
    let daemon = Daemon::start();
    let output = daemon.keymother(&["reinject", "grant", "123L013K", "--reason", "RMA"], "");
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("no operator is logged in"),
        "{}",
        stderr(&output)
    );
    let passphrase = daemon.file("passphrase", "test-only-passphrase\n");
    run_ok_with(
        &daemon,
        &[
            "operator",
            "login",
            "--certificate",
            &fixture("operator.der"),
            "--key",
            &fixture("test-only-operator-encrypted.key"),
            "--passphrase-file",
            &passphrase,
        ],
        "",
    );
    let output = daemon.keymother(&["reinject", "grant", "123L013K", "--reason", "RMA"], "");
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains(
            "hardware serial 123L013K holds no confirmed master key: there is nothing to re-inject"
        ),
        "{}",
        stderr(&output)
    );
    let output = daemon.keymother(
        &[
            "reinject", "grant", "123L013K", "--slot", "PIN", "--reason", "RMA",
        ],
        "",
    );
    assert!(
        stderr(&output).contains("holds no confirmed PIN key"),
        "{}",
        stderr(&output)
    );
    assert_usage_error(
        &daemon.keymother(&["reinject", "grant", "bad serial", "--reason", "x"], ""),
        "SERIAL: ",
    );
    assert_usage_error(
        &daemon.keymother(
            &[
                "reinject", "grant", "123L013K", "--slot", "pin", "--reason", "x",
            ],
            "",
        ),
        "--slot: \"pin\" is neither \"master\" nor a BDK's name",
    );
    assert_eq!(
        run_ok_with(&daemon, &["reinject", "list"], ""),
        "no open re-injection grants\n"
    );
    let output = daemon.keymother(&["reinject", "revoke", "7", "--reason", "x"], "");
    assert!(
        stderr(&output).contains("there is no re-injection grant 7"),
        "{}",
        stderr(&output)
    );
}
