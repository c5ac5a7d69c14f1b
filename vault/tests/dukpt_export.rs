//! The DUKPT export: a sealed file of the DUKPT registry that the front end verifies with the KEK, rows marked exported only once the file is in place, only-new selections, and errors that name the line.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod dukpt_bench;

use std::convert::Infallible;
use std::fs;
use std::path::Path;

use dukpt_bench::*;
use hmac::{Hmac, KeyInit, Mac};
use keymother_crypto::kdf::{counter_mode_cmac, labelled_fixed_input};
use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_domain::TerminalModel;
use keymother_vault::{
    DUKPT_EXPORT_COLUMNS, DUKPT_EXPORT_MAGIC, DukptConfirmation, ExportError, SecretName,
    WriteStage, verify_dukpt_export, verify_smn_export,
};
use sha2::{Digest, Sha256};

/// A DUKPT bench with a KEK loaded (exports are sealed under a key derived from it).
fn bench_with_kek() -> (DukptBench, SecretKey) {
    let mut bench = DukptBench::new();
    let kek = SecretKey::generate(KeyAlgorithm::Aes256).unwrap();
    bench
        .vault
        .install_secret(
            SecretName::Kek,
            &kek,
            &keymother_vault::CeremonyRecord::named(&["Ann Lee", "Raj Patel", "Kim Ng"]).unwrap(),
        )
        .unwrap();
    (bench, kek)
}

fn path(bench: &DukptBench, name: &str) -> std::path::PathBuf {
    bench.directory.path().join(name)
}

/// The seal of `sealed` (the file up to the seal line), computed as docs/SMN-EXPORT.md says:
/// HMAC-SHA-256 under SP 800-108 (CMAC) of the KEK with `label`.
fn seal_of(kek: &SecretKey, label: &[u8], sealed: &[u8]) -> String {
    let key = counter_mode_cmac(kek, &labelled_fixed_input(label, b"", 32), 32);
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
    mac.update(sealed);
    hex::encode_upper(mac.finalize().into_bytes())
}

/// `lines` (without a seal line) as a file sealed under `kek`, as the appliance would seal it.
fn resealed(kek: &SecretKey, lines: &[&str]) -> Vec<u8> {
    let body = lines.join("\n") + "\n";
    let seal = seal_of(kek, b"KEYMOTHER-DUKPT-EXPORT-SEAL/1", body.as_bytes());
    format!("{body}# seal: {seal}\n").into_bytes()
}

#[test]
fn an_export_of_all_rows_verifies_with_the_kek_and_is_audited() {
    let (mut bench, kek) = bench_with_kek();
    bench.inject("PIN", "T1");
    bench.inject("DATA", "T1");
    bench.inject("PIN", "T2");
    let file = path(&bench, "dukpt.csv");
    let report = bench
        .vault
        .export_dukpt(&file, false, Some("Security Officer"))
        .unwrap();
    assert_eq!((report.rows, report.only_new), (3, false));
    let bytes = fs::read(&file).unwrap();
    assert_eq!(report.file_sha256, hex::encode(Sha256::digest(&bytes)));

    let text = String::from_utf8(bytes.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[..7],
        [
            DUKPT_EXPORT_MAGIC,
            &format!("# device-id: {DEVICE}"),
            &format!("# kek-kcv: {}", kek.kcv()),
            &format!("# exported-at: {}", report.exported_at),
            "# selection: all",
            "# row-count: 3",
            DUKPT_EXPORT_COLUMNS,
        ]
    );
    assert_eq!(lines[0], "# KEYMOTHER-DUKPT-EXPORT/2");
    assert_eq!(
        lines[6],
        "hardware_serial,bdk,bdk_id,device_id,initial_ksn,key_type,kcv,port,terminal_model,operator,injected_at,replaces,replaced_by"
    );
    let registry = bench.vault.dukpt_rows().unwrap();
    let expected_rows: Vec<String> = registry
        .iter()
        .map(|row| {
            format!(
                "{},{},{},{},{},{},{},bench-1,REF-TERMINAL,,{},,",
                row.hardware_serial,
                row.bdk,
                row.bdk_id,
                row.device_id,
                row.initial_ksn,
                row.key_type.name(),
                row.kcv,
                row.injected_at
            )
        })
        .collect();
    assert_eq!(lines[7..10], expected_rows);
    // The rows as the test bench made them: T1's PIN and DATA keys, then T2's PIN key.
    assert_eq!(
        lines[8],
        format!(
            "T1,DATA,FFFF987654,00000,FFFF987654{},TDES-2KEY,{},bench-1,REF-TERMINAL,,{},,",
            "0".repeat(10),
            registry[1].kcv,
            registry[1].injected_at
        )
    );
    assert!(lines[9].starts_with("T2,PIN,12345678,00000101,1234567800000101,AES-128,"));
    // The seal, as the document specifies it, over every line before it.
    let sealed_length = text.len() - lines[10].len() - 1;
    assert_eq!(
        lines[10],
        format!(
            "# seal: {}",
            seal_of(
                &kek,
                b"KEYMOTHER-DUKPT-EXPORT-SEAL/1",
                &bytes[..sealed_length]
            )
        )
    );
    assert_eq!(lines.len(), 11);

    let verified = verify_dukpt_export(bytes.as_slice(), "dukpt.csv", &kek).unwrap();
    assert_eq!(verified.device_id, DEVICE);
    assert_eq!(verified.kek_kcv, kek.kcv().to_string());
    assert_eq!(verified.exported_at, report.exported_at);
    assert!(!verified.only_new);
    assert_eq!(verified.rows.len(), registry.len());
    for (exported, stored) in verified.rows.iter().zip(&registry) {
        assert_eq!(exported.hardware_serial, stored.hardware_serial);
        assert_eq!(exported.bdk, stored.bdk);
        assert_eq!(exported.bdk_id, stored.bdk_id);
        assert_eq!(exported.device_id, stored.device_id);
        assert_eq!(exported.initial_ksn, stored.initial_ksn);
        assert_eq!(exported.key_type, stored.key_type);
        assert_eq!(exported.kcv, stored.kcv);
        assert_eq!(exported.port, stored.port);
        assert_eq!(exported.terminal_model.as_str(), stored.terminal_model);
        assert_eq!(exported.operator, stored.operator);
        assert_eq!(exported.injected_at, stored.injected_at);
    }

    // Marked exported, and audited with the operator and the file's digest.
    assert_eq!(bench.vault.unexported_dukpt_count().unwrap(), 0);
    let audit = bench.vault.audit_rows().unwrap().pop().unwrap();
    assert_eq!(audit.sequence, report.audit_sequence);
    assert_eq!(
        (audit.event.as_str(), audit.actor.as_str()),
        ("dukpt-export", "Security Officer")
    );
    assert_eq!(
        audit.details,
        format!(
            "file={}; rows=3; only_new=no; file_sha256={}; operator=Security Officer",
            file.display(),
            report.file_sha256
        )
    );
    bench.vault.verify_audit().unwrap();
    // The SMN registry is not touched, and its own export does not take this file.
    assert_eq!(bench.vault.unexported_smn_count().unwrap(), 0);
    let error = verify_smn_export(bytes.as_slice(), "dukpt.csv", &kek).unwrap_err();
    assert_eq!(error.line, 1);
}

#[test]
fn only_new_rows_can_be_exported_and_a_full_export_can_be_repeated() {
    let (mut bench, kek) = bench_with_kek();
    bench.inject("PIN", "T1");
    bench.inject("DATA", "T2");
    let first = path(&bench, "first.csv");
    assert_eq!(
        bench.vault.export_dukpt(&first, true, None).unwrap().rows,
        2
    );
    let second = path(&bench, "second.csv");
    assert_eq!(
        bench.vault.export_dukpt(&second, true, None).unwrap().rows,
        0
    );
    let empty = verify_dukpt_export(fs::File::open(&second).unwrap(), "second.csv", &kek).unwrap();
    assert!(empty.only_new && empty.rows.is_empty());
    let text = fs::read_to_string(&second).unwrap();
    assert!(text.contains("\n# selection: only-new\n# row-count: 0\n"));

    // A row pending confirmation is not in the registry, so not in the export.
    bench.reserve("PIN", "T4");
    bench.inject("PIN", "T3");
    assert_eq!(bench.vault.unexported_dukpt_count().unwrap(), 1);
    let third = path(&bench, "third.csv");
    let report = bench.vault.export_dukpt(&third, true, None).unwrap();
    assert_eq!(report.rows, 1);
    let rows = verify_dukpt_export(fs::File::open(&third).unwrap(), "third.csv", &kek)
        .unwrap()
        .rows;
    assert_eq!(rows[0].hardware_serial, serial_of("T3"));
    assert_eq!(bench.vault.unexported_dukpt_count().unwrap(), 0);

    // Everything again, twice, onto the same path.
    let all = path(&bench, "all.csv");
    for _ in 0..2 {
        let report = bench.vault.export_dukpt(&all, false, None).unwrap();
        assert_eq!(report.rows, 3);
        let verified = verify_dukpt_export(fs::File::open(&all).unwrap(), "all.csv", &kek).unwrap();
        let serials: Vec<&str> = verified
            .rows
            .iter()
            .map(|row| row.hardware_serial.as_str())
            .collect();
        assert_eq!(serials, ["T1", "T2", "T3"]);
    }
    let raw = bench.raw();
    let marks: i64 = raw
        .query_row("SELECT count(*) FROM dukpt_export", [], |row| row.get(0))
        .unwrap();
    assert_eq!(marks, 2 + 1 + 3 + 3);
    // The record of exports is never rewritten or deleted.
    for sql in [
        "UPDATE dukpt_export SET file = 'elsewhere'",
        "DELETE FROM dukpt_export",
    ] {
        let error = raw.execute(sql, []).unwrap_err().to_string();
        assert!(error.contains("DUKPT export records are never"), "{error}");
    }
    let audited: Vec<String> = bench
        .audit_events()
        .into_iter()
        .filter(|event| event.starts_with("dukpt-export"))
        .collect();
    assert_eq!(audited.len(), 5);
    bench.vault.verify_audit().unwrap();
}

/// Reserves, sends and confirms `bdk`'s key for `serial` under `operator` on a terminal
/// reporting `model`.
fn inject_as(bench: &mut DukptBench, bdk: &str, serial: &str, operator: &str, model: &str) {
    let bdk_id = bdk_id_of(bdk);
    let reservation = bench
        .vault
        .reserve_dukpt(
            &name(bdk),
            &serial_of(serial),
            "bench-2.usb_0",
            Some(operator),
            &mut |device| Ok::<_, Infallible>(facts(bdk_id, device)),
        )
        .unwrap();
    bench
        .vault
        .mark_dukpt_sent(&reservation.bdk, reservation.device_id, &serial_of(serial))
        .unwrap();
    let model: TerminalModel = model.parse().unwrap();
    bench
        .vault
        .confirm_dukpt(
            &DukptConfirmation {
                bdk: &reservation.bdk,
                device_id: reservation.device_id,
                hardware_serial: &serial_of(serial),
                kcv: reservation.kcv,
                port: "bench-2.usb_0",
                terminal_model: &model,
            },
            3,
            None,
        )
        .unwrap();
}

#[test]
fn models_and_operators_with_commas_spaces_and_other_bytes_are_escaped() {
    let (mut bench, kek) = bench_with_kek();
    inject_as(
        &mut bench,
        "PIN",
        "T1",
        "Zoë O'Neil, \"Q\" 100%",
        "Move 5000, v2",
    );
    let file = path(&bench, "dukpt.csv");
    bench.vault.export_dukpt(&file, false, None).unwrap();
    let text = fs::read_to_string(&file).unwrap();
    let row = text.lines().nth(7).unwrap();
    assert!(
        row.ends_with(&format!(
            ",bench-2.usb_0,Move%205000%2C%20v2,Zo%C3%AB%20O'Neil%2C%20%22Q%22%20100%25,{},,",
            bench.vault.dukpt_rows().unwrap()[0].injected_at
        )),
        "{row}"
    );
    assert_eq!(row.split(',').count(), 13);
    let verified = verify_dukpt_export(text.as_bytes(), "dukpt.csv", &kek).unwrap();
    assert_eq!(verified.rows[0].terminal_model.as_str(), "Move 5000, v2");
    assert_eq!(
        verified.rows[0].operator.as_deref(),
        Some("Zoë O'Neil, \"Q\" 100%")
    );
    assert_eq!(verified.rows[0].port, "bench-2.usb_0");
}

#[test]
fn another_kek_or_any_changed_byte_fails_verification_naming_the_line() {
    let (mut bench, kek) = bench_with_kek();
    bench.inject("PIN", "T1");
    bench.inject("DATA", "T2");
    let file = path(&bench, "dukpt.csv");
    bench.vault.export_dukpt(&file, false, None).unwrap();
    let bytes = fs::read(&file).unwrap();

    let other = SecretKey::generate(KeyAlgorithm::Aes256).unwrap();
    let error = verify_dukpt_export(bytes.as_slice(), "dukpt.csv", &other).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "dukpt.csv: line 3: the file was sealed under the KEK with check value {}, not the given KEK ({})",
            kek.kcv(),
            other.kcv()
        )
    );

    for position in 0..bytes.len() {
        for flip in [0x01u8, 0x20] {
            let mut altered = bytes.clone();
            altered[position] ^= flip;
            assert!(
                verify_dukpt_export(altered.as_slice(), "dukpt.csv", &kek).is_err(),
                "byte {position} ^ {flip:#04x} went unnoticed"
            );
        }
    }

    let text = String::from_utf8(bytes).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let rebuild = |lines: &[&str]| lines.join("\n") + "\n";
    let verify = |text: String| {
        verify_dukpt_export(text.as_bytes(), "dukpt.csv", &kek)
            .unwrap_err()
            .to_string()
    };
    let mut swapped = lines.clone();
    swapped.swap(7, 8);
    assert_eq!(
        verify(rebuild(&swapped)),
        "dukpt.csv: line 10: the seal does not verify: the file was altered after it was written"
    );
    let mut dropped = lines.clone();
    dropped.remove(8);
    assert_eq!(
        verify(rebuild(&dropped)),
        "dukpt.csv: line 9: row-count is 2, but the file holds 1; the seal does not verify either: the file was altered"
    );
    assert_eq!(
        verify(rebuild(&lines[..9])),
        "dukpt.csv: line 10: the file ends without its seal line; it may be truncated"
    );
    let mut extra = lines.clone();
    extra.push("# comment");
    assert_eq!(
        verify(rebuild(&extra)),
        "dukpt.csv: line 11: nothing may follow the seal line (line 10)"
    );
    // A row edited: the error names its line and the field, and says the seal fails too.
    let mut edited = lines.clone();
    let replaced = edited[7].replacen(",00000100,", ",00000102,", 1);
    edited[7] = &replaced;
    assert_eq!(
        verify(rebuild(&edited)),
        "dukpt.csv: line 8: initial key ID \"1234567800000100\" is not the BDK ID followed by the device ID (1234567800000102); the seal does not verify either: the file was altered"
    );
    // The seal of an SMN export (its own label) does not pass for this one's.
    let body = rebuild(&lines[..9]);
    let smn_sealed = format!(
        "{body}# seal: {}\n",
        seal_of(&kek, b"KEYMOTHER-SMN-EXPORT-SEAL/1", body.as_bytes())
    );
    assert_eq!(
        verify(smn_sealed),
        "dukpt.csv: line 10: the seal does not verify: the file was altered after it was written"
    );
    // Resealed correctly, the file verifies again: the checks above saw the changes.
    assert!(verify_dukpt_export(resealed(&kek, &lines[..9]).as_slice(), "dukpt.csv", &kek).is_ok());
}

#[test]
fn rows_that_break_the_format_are_refused_by_line_and_field_even_when_sealed() {
    let (mut bench, kek) = bench_with_kek();
    bench.inject("PIN", "T1");
    bench.inject("DATA", "T2");
    let file = path(&bench, "dukpt.csv");
    bench.vault.export_dukpt(&file, false, None).unwrap();
    let text = fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let (pin, data) = (lines[7].to_owned(), lines[8].to_owned());
    let refused = |line: u64, row: String, words: &str| {
        let mut altered = lines[..9].to_vec();
        altered[line as usize - 1] = &row;
        let error = verify_dukpt_export(resealed(&kek, &altered).as_slice(), "dukpt.csv", &kek)
            .unwrap_err();
        assert_eq!(error.line, line, "{error}");
        assert_eq!(
            error.to_string(),
            format!("dukpt.csv: line {line}: {words}")
        );
    };
    refused(
        9,
        data.replacen(",TDES-2KEY,", ",AES-128,", 1),
        "key type AES-128 under a TDES BDK; TDES DUKPT initial keys are TDES-2KEY",
    );
    refused(
        9,
        data.replacen(",00000,", ",80000,", 1),
        "device ID \"80000\" is not 5 upper-case hex digits, at most 7FFFF, as the device IDs of TDES BDKs are",
    );
    refused(
        8,
        pin.replacen("T1,", "t1,", 1),
        "hardware serial \"t1\" is not 1 to 24 characters A-Z 0-9",
    );
    refused(
        8,
        pin.replacen(",REF-TERMINAL,", ",REF%2dTERMINAL,", 1),
        "terminal_model: a % not followed by two upper-case hex digits",
    );
    refused(
        8,
        pin.replacen(",REF-TERMINAL,", ",REF%2DTERMINAL,", 1),
        "terminal_model \"REF%2DTERMINAL\" is not escaped as the format says (expected \"REF-TERMINAL\")",
    );
    refused(
        8,
        pin.replacen(",bench-1,", ",bench 1,", 1),
        "port \"bench 1\" is not 1 to 32 characters A-Z a-z 0-9 - _ .",
    );
    refused(
        9,
        pin.clone(),
        "initial key 1234567800000100 appears twice (first on line 8)",
    );
    refused(
        8,
        format!("{pin},extra"),
        "expected 13 comma-separated fields (hardware_serial,bdk,bdk_id,device_id,initial_ksn,key_type,kcv,port,terminal_model,operator,injected_at,replaces,replaced_by), found 14",
    );
}

#[test]
fn an_export_that_cannot_be_written_marks_nothing_and_audits_nothing() {
    let (mut bench, _kek) = bench_with_kek();
    bench.inject("PIN", "T1");
    let audit_rows = bench.audit_events().len();
    let missing = path(&bench, "usb/dukpt.csv");
    let error = bench
        .vault
        .export_dukpt(&missing, false, Some("officer"))
        .unwrap_err();
    assert!(
        matches!(
            &error,
            ExportError::File { path, stage: WriteStage::CreateTemporary, .. } if path == &missing
        ),
        "{error}"
    );
    assert!(error.to_string().ends_with("; nothing was marked exported"));
    assert_eq!(bench.vault.unexported_dukpt_count().unwrap(), 1);
    assert_eq!(bench.audit_events().len(), audit_rows);
    // A draft written to memory changes nothing until it is committed.
    let mut bytes = Vec::new();
    let draft = bench
        .vault
        .write_dukpt_export(&mut bytes, true, Path::new("memory"))
        .unwrap();
    assert_eq!(draft.rows, 1);
    assert_eq!(draft.file_sha256, hex::encode(Sha256::digest(&bytes)));
    assert_eq!(bench.vault.unexported_dukpt_count().unwrap(), 1);
    bench.inject("PIN", "T2");
    // Committed, it marks the rows it wrote, not the one confirmed since.
    let report = bench
        .vault
        .commit_dukpt_export(&draft, "memory", None)
        .unwrap();
    assert_eq!(report.rows, 1);
    assert_eq!(bench.vault.unexported_dukpt_count().unwrap(), 1);
    assert_eq!(
        bench.vault.audit_rows().unwrap().pop().unwrap().actor,
        "system"
    );
}

#[test]
fn an_export_needs_the_kek() {
    let mut bench = DukptBench::new();
    bench.inject("PIN", "T1");
    let file = path(&bench, "dukpt.csv");
    let error = bench.vault.export_dukpt(&file, false, None).unwrap_err();
    assert_eq!(
        error.to_string(),
        "no KEK is loaded; run the KEK key ceremony first"
    );
    assert!(!file.exists());
    assert_eq!(bench.vault.unexported_dukpt_count().unwrap(), 1);
}

#[test]
fn a_registry_row_unfit_for_the_file_is_refused_by_its_initial_key() {
    let (mut bench, _kek) = bench_with_kek();
    bench.inject("PIN", "T1");
    // The registry's triggers forbid rewriting a row; drop them as an attacker with the
    // database file could, and give the row a port with a comma.
    let raw = bench.raw();
    raw.execute_batch(
        "DROP TRIGGER dukpt_registry_never_rewritten;
         UPDATE dukpt_registry SET port = 'bench,1';",
    )
    .unwrap();
    let file = path(&bench, "dukpt.csv");
    let error = bench.vault.export_dukpt(&file, false, None).unwrap_err();
    assert_eq!(
        error.to_string(),
        "the DUKPT registry row of 1234567800000100 cannot go into an export file: port \"bench,1\" is not 1 to 32 characters A-Z a-z 0-9 - _ ."
    );
    assert!(!file.exists());
    assert_eq!(bench.vault.unexported_dukpt_count().unwrap(), 1);
}

/// The text of `name` in docs/.
fn document(name: &str) -> String {
    let path = format!("{}/../docs/{name}", env!("CARGO_MANIFEST_DIR"));
    fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

#[test]
fn the_documented_example_verifies_under_the_documented_kek() {
    let text = document("SMN-EXPORT.md");
    let section = &text[text.find("## The DUKPT export").unwrap()..];
    let section = &section[..section.find("\n## ").unwrap()];
    let start = section.find("```\n# KEYMOTHER-DUKPT-EXPORT/2").unwrap() + 4;
    let file = &section[start..start + section[start..].find("```").unwrap()];
    let kek =
        SecretKey::from_hex(KeyAlgorithm::Aes128, "D6C30C243863188EDA27AF95A49F137F").unwrap();
    assert!(section.contains(&format!("(check value `{}`)", kek.kcv())));
    let verified = verify_dukpt_export(file.as_bytes(), "example", &kek).unwrap();
    assert_eq!(verified.rows.len(), 2);

    // The figures the document gives: length, digest, seal key.
    let digest = hex::encode(Sha256::digest(file.as_bytes()));
    assert!(section.contains(&format!("The file is {} bytes", file.len())));
    assert!(section.contains(&format!("`{digest}`")), "{digest}");
    let seal_key = counter_mode_cmac(
        &kek,
        &labelled_fixed_input(b"KEYMOTHER-DUKPT-EXPORT-SEAL/1", b"", 32),
        32,
    );
    assert!(section.contains(&format!("`{}`", hex::encode_upper(&*seal_key))));
    // The same file as docs/CONTROL.md's export-dukpt example carries.
    let control = document("CONTROL.md");
    assert!(control.contains(&format!(
        "{{\"end\": {{\"bytes\": {}, \"sha256\": \"{digest}\"}}}}",
        file.len()
    )));

    // The check values are those of the initial keys of the published test BDKs.
    let data =
        SecretKey::from_hex(KeyAlgorithm::Tdes2Key, "0123456789ABCDEFFEDCBA9876543210").unwrap();
    let pin =
        SecretKey::from_hex(KeyAlgorithm::Aes128, "FEDCBA9876543210F1F1F1F1F1F1F1F1").unwrap();
    for (row, bdk) in verified.rows.iter().zip([&data, &pin]) {
        let identity = keymother_crypto::dukpt::InitialKeyIdentity::from_bytes(
            &hex::decode(&row.initial_ksn).unwrap(),
        )
        .unwrap();
        let key = identity.derive(bdk, row.key_type).unwrap();
        assert_eq!(key.kcv(), row.kcv, "{}", row.initial_ksn);
    }
    assert_eq!(
        verified.rows[0].terminal_model.as_str(),
        "PX-9 Pro",
        "the escaped model"
    );
}
