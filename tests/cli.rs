//! End-to-end tests of the `keymother` command: outputs, exit statuses and error messages as a user sees them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli_common;

use std::path::Path;

use cli_common::*;

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
fn tr31_unwrap_warns_when_the_key_is_stronger_than_its_kbpk_or_weak() {
    use keymother_crypto::tr31::{
        Algorithm, Exportability, Header, KeyBlockProtectionKey, KeyUsage, ModeOfUse, Version,
    };
    use keymother_crypto::{KeyAlgorithm, SecretKey};
    // A TDES-3KEY key under a TDES-2KEY KBPK: keymother never makes such a block
    // (wrap_with_padding reproduces one, as another tool could have made it).
    let kbpk_hex = "0123456789ABCDEFFEDCBA9876543210";
    let kbpk = SecretKey::from_hex(KeyAlgorithm::Tdes2Key, kbpk_hex).unwrap();
    let key = SecretKey::generate(KeyAlgorithm::Tdes3Key).unwrap();
    let header = Header::new(
        Version::B,
        KeyUsage::PinEncryption,
        Algorithm::Tdes,
        ModeOfUse::EncryptOnly,
        Exportability::NonExportable,
    );
    let block = KeyBlockProtectionKey::new(&kbpk)
        .wrap_with_padding(&header, &key, &[0x5A; 6])
        .unwrap();
    let output = keymother(&["tr31", "unwrap", "--kbpk", kbpk_hex, &block], "");
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(
            "warning: the TDES-3KEY key (112 bits of strength) is stronger than the TDES-2KEY \
             key-block protection key that protects it (80 bits)"
        ),
        "{}",
        stderr(&output)
    );
    // A key whose halves repeat opens, with a warning naming the parts.
    let weak = SecretKey::from_hex(KeyAlgorithm::Tdes2Key, &"0123456789ABCDEF".repeat(2)).unwrap();
    let block = KeyBlockProtectionKey::new(&kbpk)
        .wrap_with_padding(&header, &weak, &[0x5A; 14])
        .unwrap();
    let output = keymother(&["tr31", "unwrap", "--kbpk", kbpk_hex, &block], "");
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output)
            .contains("warning: the wrapped key: the TDES-2KEY key's parts K1 and K2 are equal"),
        "{}",
        stderr(&output)
    );
    // A strong key under a KBPK as strong: no warning.
    let output = keymother(&["tr31", "unwrap", "--kbpk", TR31_B_KBPK, TR31_B], "");
    assert!(!stderr(&output).contains("warning"), "{}", stderr(&output));
}

#[test]
fn tr31_wrap_refuses_weak_keys_naming_the_argument() {
    let strong = "0123456789ABCDEFFEDCBA9876543210";
    let weak = "0123456789ABCDEF0123456789ABCDEF";
    let wrap = |kbpk: &str, key: &str| {
        keymother(
            &[
                "tr31",
                "wrap",
                "--kbpk",
                kbpk,
                "--key",
                key,
                "--header",
                "B0000P0TE00N0000",
            ],
            "",
        )
    };
    assert_usage_error(
        &wrap(strong, weak),
        "--key: refusing to wrap a weak key: the TDES-2KEY key's parts K1 and K2 are equal",
    );
    assert_usage_error(
        &wrap(weak, strong),
        "--kbpk: refusing to wrap under a weak key-block protection key: the TDES-2KEY key's parts K1 and K2",
    );
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
            // Components of 0123456789ABCDEFFEDCBA9876543210 (KCV 08D7B4), odd parity.
            "3E5B7C9102B5D6F8 1325466B8AADCEE0\n3E7938F78A1F1A16ECF8FDF2FDF8FDF1\n",
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

    // A component whose halves repeat is refused, naming the parts once, never the digits.
    let output = keymother(
        &["component", "combine", "--alg", "TDES-2KEY", "--count", "2"],
        "0101010101010101 0101010101010101\n0123456789ABCDEFFEDCBA9876543210\n",
    );
    assert_eq!(output.status.code(), Some(1));
    let error = stderr(&output);
    assert_eq!(
        error
            .matches("the TDES-2KEY key's parts K1 and K2 are equal")
            .count(),
        1,
        "{error}"
    );
    assert!(error.contains("keymother: component 1: "), "{error}");
    assert!(!error.contains("0101010101010101"), "{error}");
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

    // Components that look like keys (a run of zeros could occur in a database by chance).
    let first = "3C9A5E17B2D4F6081A2B3C4D5E6F708192A3B4C5D6E7F8091A2B3C4D5E6F7081";
    let second = "A15D2E8C47F0B3196E2D4C8B0A97F5E3D1C2B3A49586F7E8C9DAEBFC0D1E2F30";
    let kek = "9DC7709BF5244511740670C654F885624361076143610FE1D3F1D7B153715FB1";
    let kek_kcv = stdout(&keymother(&["kcv", "--alg", "aes", kek], ""))
        .trim()
        .to_owned();
    // A script that forgot the custodians' names: the first component lands at the name
    // prompt. It is refused without being shown, and nothing is loaded.
    let output = keymother(
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
        ],
        &format!("{first}\n{second}\n"),
    );
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("custodian 1's name is 64 hex digits and nothing else"),
        "{}",
        stderr(&output)
    );
    for shown in [stdout(&output), stderr(&output)] {
        assert!(!shown.contains(first) && !shown.contains(second), "{shown}");
    }
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
            "--custodian",
            "Ann Lee",
            "--custodian",
            "Raj Patel",
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
            "keymother: login refused: the operator certificate is refused: a terminal device certificate was presented as an operator certificate"
        ),
        "{}",
        stderr(&output)
    );
    let text = run_ok_with(&daemon, &["operator", "status"], "");
    assert!(text.contains("nobody logged in"), "{text}");
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
