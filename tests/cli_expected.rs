//! The `keymother` command's expected-device tools: the front end seals a list (`keyfile seal-expected-list`) the appliance accepts, and checks a reconciliation export (`keyfile verify-reconcile-export`) under the KEK; `reconcile --force` needs `--export`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli_common;

use keymother_crypto::{KeyAlgorithm, SecretKey};

use cli_common::keymother;

/// The KEK of docs/CONTROL.md's ceremony example (AES-128, KCV 885D65BD9E), under which the
/// reconciliation export of docs/SMN-EXPORT.md is sealed.
const DOC_KEK: &str = "D6C30C243863188EDA27AF95A49F137F";

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn documented_reconcile_export() -> String {
    let path = format!("{}/../docs/SMN-EXPORT.md", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    let start = text.find("```\n# KEYMOTHER-RECONCILE-EXPORT/1").unwrap() + 4;
    text[start..start + text[start..].find("```").unwrap()].to_owned()
}

#[test]
fn verify_reconcile_export_counts_each_list_and_refuses_another_kek() {
    let directory = tempfile::tempdir().unwrap();
    let file = directory.path().join("reconcile.csv");
    std::fs::write(&file, documented_reconcile_export()).unwrap();
    let file = file.to_str().unwrap();
    let arguments = [
        "keyfile",
        "verify-reconcile-export",
        "--kek-alg",
        "AES-128",
        file,
    ];
    let output = keymother(&arguments, &format!("{DOC_KEK}\n"));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let lines: Vec<String> = text(&output.stdout).lines().map(str::to_owned).collect();
    assert_eq!(
        lines[..2],
        [
            format!(
                "{file}: seal verifies, 4 reconciliation rows (device KM-DEMO-0001, exported 2026-12-06T11:26:10Z)"
            ),
            "list RUN-2026-12-06: injected 1, pending 1, missing 1, refused 1".to_owned(),
        ]
    );
    assert_eq!(lines.len(), 6);
    let output = keymother(&arguments, "00112233445566778899AABBCCDDEEFF\n");
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains(&format!(
            "{file}: line 3: the file was sealed under the KEK with check value 885D65BD9E"
        )),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn a_list_sealed_by_the_front_end_reads_back_under_the_kek_and_names_bad_lines() {
    let directory = tempfile::tempdir().unwrap();
    let plain = directory.path().join("run.csv");
    std::fs::write(&plain, "serial,model\r\n123L013K,PX-9 Pro\r\n123L013M,\r\n").unwrap();
    let sealed = directory.path().join("run.sealed.csv");
    let arguments = [
        "keyfile",
        "seal-expected-list",
        "--kek-alg",
        "AES-128",
        "--device-id",
        "KM-DEMO-0001",
        plain.to_str().unwrap(),
        "--out",
        sealed.to_str().unwrap(),
    ];
    let output = keymother(&arguments, &format!("{DOC_KEK}\n"));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let bytes = std::fs::read(&sealed).unwrap();
    assert!(bytes.starts_with(
        b"# KEYMOTHER-EXPECTED-DEVICES/1\n# device-id: KM-DEMO-0001\n# kek-kcv: 885D65BD9E\n"
    ));
    let kek = || Ok(SecretKey::from_hex(KeyAlgorithm::Aes128, DOC_KEK).unwrap());
    let list =
        keymother_vault::read_list_file(&bytes, "run", &"KM-DEMO-0001".parse().unwrap(), kek)
            .unwrap();
    assert!(list.sealed);
    assert_eq!(list.devices.len(), 2);
    // Another appliance's list is refused by name of its line.
    let error =
        keymother_vault::read_list_file(&bytes, "run", &"KM-OTHER-0002".parse().unwrap(), kek)
            .unwrap_err();
    assert_eq!(
        error.to_string(),
        "run: line 2: the list is for device KM-DEMO-0001, but this appliance is KM-OTHER-0002"
    );
    // A bad plain list is refused before anything is sealed, naming the line only.
    std::fs::write(&plain, "serial\n123L013K\nsecret pin 1234\n").unwrap();
    std::fs::remove_file(&sealed).unwrap();
    let output = keymother(&arguments, &format!("{DOC_KEK}\n"));
    assert!(!output.status.success());
    let words = text(&output.stderr);
    assert!(
        words.contains("line 3: the hardware serial: character 1 is not allowed"),
        "{words}"
    );
    assert!(!words.contains("secret pin"), "{words}");
    assert!(!sealed.exists());
}

#[test]
fn reconcile_force_needs_export() {
    let output = keymother(&["reconcile", "--force"], "");
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("--export"),
        "{}",
        text(&output.stderr)
    );
}
