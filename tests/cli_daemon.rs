//! End-to-end tests of the `keymother` command against keymotherd: the DUKPT export, named custodians, batch withdrawal and re-injection grants.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli_common;

use cli_common::*;

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
        &format!(
            "Ann Lee\n{}\nRaj Patel\n{}\n",
            DOC_KEK_COMPONENTS[0], DOC_KEK_COMPONENTS[1]
        ),
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

// Named custodians and batch withdrawal (issue 17) through keymotherd.

#[test]
fn a_ceremony_names_its_custodians_and_a_replacement_needs_replace_before_any_component() {
    let daemon = Daemon::start();
    let kcvs: Vec<String> = DOC_KEK_COMPONENTS
        .iter()
        .map(|component| {
            stdout(&keymother(&["kcv", "--alg", "aes", component], ""))
                .trim()
                .to_owned()
        })
        .collect();
    let ceremony = |extra: &[&str], kcv_2: &str| {
        let mut arguments = vec![
            "ceremony",
            "--secret",
            "kek",
            "--alg",
            "AES-128",
            "--components",
            "2",
            "--custodian",
            "Ann Lee",
            "--custodian",
            "Raj Patel",
            "--component-kcv",
            &kcvs[0],
            "--component-kcv",
            kcv_2,
        ];
        arguments.extend_from_slice(extra);
        daemon.keymother(
            &arguments,
            &format!("{}\n{}\n", DOC_KEK_COMPONENTS[0], DOC_KEK_COMPONENTS[1]),
        )
    };
    let output = ceremony(&[], &kcvs[1]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains(&format!("component 1 KCV   {}   Ann Lee", kcvs[0])),
        "{text}"
    );
    assert!(
        text.contains(&format!("component 2 KCV   {}   Raj Patel", kcvs[1])),
        "{text}"
    );
    assert!(
        text.contains("KEK loaded: AES-128 from 2 components, KCV 885D65BD9E"),
        "{text}"
    );

    // Again without --replace: refused before any component is asked for.
    let output = ceremony(&[], &kcvs[1]);
    assert_eq!(output.status.code(), Some(1));
    let error = stderr(&output);
    assert!(
        error.contains("the KEK is loaded (KCV 885D65BD9E, loaded ")
            && error.contains(
                "a KEK ceremony replaces it only with --replace. No component was asked for."
            ),
        "{error}"
    );
    assert!(!error.contains("component 1 of 2"), "{error}");

    // With --replace, a wrong check value on a form is refused by keymotherd, naming whose.
    let output = ceremony(&["--replace"], "0000000000");
    assert_eq!(output.status.code(), Some(1));
    let error = stderr(&output);
    assert!(
        error.contains(&format!(
            "component 2's check value is {}, but its form says 0000000000: a mistyped component? (custodian Raj Patel)",
            kcvs[1]
        )),
        "{error}"
    );
    assert!(!error.contains(DOC_KEK_COMPONENTS[1]), "{error}");
    let output = ceremony(&["--replace"], &kcvs[1]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("replacing KCV 885D65BD9E"),
        "{}",
        stdout(&output)
    );

    // Names the vault would refuse are refused by keymotherd too.
    let output = daemon.keymother(
        &[
            "ceremony",
            "--secret",
            "ttk",
            "--alg",
            "AES-128",
            "--components",
            "2",
            "--custodian",
            "Ann Lee",
            "--custodian",
            "ANN LEE",
        ],
        &format!("{}\n{}\n", DOC_KEK_COMPONENTS[0], DOC_KEK_COMPONENTS[1]),
    );
    assert!(
        stderr(&output).contains("custodian 2 has the name of custodian 1"),
        "{}",
        stderr(&output)
    );
    // --custodian once per component, or not at all.
    assert_usage_error(
        &daemon.keymother(
            &[
                "ceremony",
                "--secret",
                "ttk",
                "--alg",
                "AES-128",
                "--components",
                "2",
                "--custodian",
                "Ann Lee",
            ],
            "",
        ),
        "--custodian: given 1 times for 2 components",
    );
}

#[test]
fn batch_withdraw_is_an_operator_action() {
    let daemon = Daemon::start();
    let output = daemon.keymother(&["batch", "withdraw", "B-1", "--reason", "recalled"], "");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("no operator is logged in"),
        "{}",
        stderr(&output)
    );
    assert_usage_error(
        &daemon.keymother(&["batch", "withdraw", "not a batch", "--reason", "x"], ""),
        "BATCH: ",
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
