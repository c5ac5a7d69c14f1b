//! The SMN export: a sealed file the front end verifies with the KEK, rows marked exported only once the file is safely in place, and failures that change nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
mod typed;
#[allow(unused_imports)]
use typed::*;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_vault::{ExportError, Vault, WriteStage, verify_smn_export};
use sha2::{Digest, Sha256};
use support::{Bench, DEVICE};

fn bench_with_injections(serials: &[&str]) -> Bench {
    let mut bench = Bench::new(10);
    for serial in serials {
        bench.inject(serial);
    }
    bench
}

/// Files other than the export itself left in `directory` (temporary files).
fn leftovers(directory: &Path) -> Vec<String> {
    fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".tmp"))
        .collect()
}

#[test]
fn an_export_of_all_rows_verifies_with_the_kek() {
    let mut bench = bench_with_injections(&["123L013K", "123L013L", "ABC"]);
    let path = bench.path("smn-export.csv");
    let report = bench
        .vault
        .export_smn(&path, false, Some("Security Officer"))
        .unwrap();
    assert_eq!((report.rows, report.only_new), (3, false));
    let bytes = fs::read(&path).unwrap();
    assert_eq!(report.file_sha256, hex::encode(Sha256::digest(&bytes)));

    let text = String::from_utf8(bytes.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[..3],
        [
            "# KEYMOTHER-SMN-EXPORT/2",
            &format!("# device-id: {DEVICE}"),
            &format!("# kek-kcv: {}", bench.kek.kcv()),
        ]
    );
    assert_eq!(lines[3], format!("# exported-at: {}", report.exported_at));
    assert_eq!(
        lines[4..7],
        [
            "# selection: all",
            "# row-count: 3",
            "smn,hardware_serial,key_index,kcv,batch,injected_at,replaces,replaced_by"
        ]
    );
    assert!(lines[10].starts_with("# seal: ") && lines[10].len() == 8 + 64);
    assert_eq!(lines.len(), 11);

    let verified = verify_smn_export(bytes.as_slice(), "smn-export.csv", &bench.kek).unwrap();
    assert_eq!(verified.device_id, DEVICE);
    assert_eq!(verified.kek_kcv, bench.kek.kcv().to_string());
    assert_eq!(verified.exported_at, report.exported_at);
    assert!(!verified.only_new);
    let registry = bench.vault.smn_rows().unwrap();
    assert_eq!(verified.rows.len(), registry.len());
    for (exported, stored) in verified.rows.iter().zip(&registry) {
        assert_eq!(
            (
                &exported.smn,
                &exported.hardware_serial,
                exported.key_index,
                &exported.kcv,
                &exported.batch,
                &exported.injected_at
            ),
            (
                &stored.smn,
                &stored.hardware_serial,
                stored.key_index,
                &stored.kcv,
                &stored.batch_id,
                &stored.injected_at
            )
        );
    }
    assert_eq!(verified.rows[2].smn, "ABC00000103");
    assert_eq!(
        lines[9],
        format!(
            "ABC00000103,ABC,00000103,{},B-1,{},,",
            registry[2].kcv, registry[2].injected_at
        )
    );

    // Marked exported, and audited with the operator and the file's digest.
    assert_eq!(bench.vault.unexported_smn_count().unwrap(), 0);
    let audit = bench.vault.audit_rows().unwrap().pop().unwrap();
    assert_eq!(audit.sequence, report.audit_sequence);
    assert_eq!(
        (audit.event.as_str(), audit.actor.as_str()),
        ("export", "Security Officer")
    );
    assert_eq!(
        audit.details,
        format!(
            "file={}; rows=3; only_new=no; file_sha256={}; operator=Security Officer",
            path.display(),
            report.file_sha256
        )
    );
    bench.vault.verify_audit().unwrap();
    assert!(leftovers(bench.directory.path()).is_empty());
}

#[test]
fn only_new_rows_can_be_exported_and_a_full_export_can_be_repeated() {
    let mut bench = bench_with_injections(&["T1", "T2"]);
    let first = bench.path("first.csv");
    assert_eq!(bench.vault.export_smn(&first, true, None).unwrap().rows, 2);
    let second = bench.path("second.csv");
    assert_eq!(bench.vault.export_smn(&second, true, None).unwrap().rows, 0);
    let empty =
        verify_smn_export(fs::File::open(&second).unwrap(), "second.csv", &bench.kek).unwrap();
    assert!(empty.only_new && empty.rows.is_empty());
    assert!(
        fs::read_to_string(&second)
            .unwrap()
            .contains("\n# row-count: 0\n")
    );

    bench.inject("T3");
    assert_eq!(bench.vault.unexported_smn_count().unwrap(), 1);
    let third = bench.path("third.csv");
    let report = bench.vault.export_smn(&third, true, None).unwrap();
    assert_eq!(report.rows, 1);
    let rows = verify_smn_export(fs::File::open(&third).unwrap(), "third.csv", &bench.kek)
        .unwrap()
        .rows;
    assert_eq!(rows[0].hardware_serial, "T3");

    // Everything again, twice, onto the same path: the registry is never rewritten.
    let all = bench.path("all.csv");
    for _ in 0..2 {
        let report = bench.vault.export_smn(&all, false, None).unwrap();
        assert_eq!(report.rows, 3);
        let verified =
            verify_smn_export(fs::File::open(&all).unwrap(), "all.csv", &bench.kek).unwrap();
        let serials: Vec<&str> = verified
            .rows
            .iter()
            .map(|row| row.hardware_serial.as_str())
            .collect();
        assert_eq!(serials, ["T1", "T2", "T3"]);
    }
    let marks: i64 = bench
        .raw()
        .query_row("SELECT count(*) FROM smn_export", [], |row| row.get(0))
        .unwrap();
    assert_eq!(marks, 3 + 3 + 3);
    let exports = bench
        .vault
        .audit_rows()
        .unwrap()
        .into_iter()
        .filter(|row| row.event == "export")
        .count();
    assert_eq!(exports, 5);
    bench.vault.verify_audit().unwrap();
}

#[test]
fn another_kek_or_any_changed_byte_fails_verification() {
    let mut bench = bench_with_injections(&["123L013K", "123L013L"]);
    let path = bench.path("smn.csv");
    bench.vault.export_smn(&path, false, None).unwrap();
    let bytes = fs::read(&path).unwrap();

    let other = SecretKey::generate(KeyAlgorithm::Aes256).unwrap();
    let error = verify_smn_export(bytes.as_slice(), "smn.csv", &other).unwrap_err();
    assert_eq!(error.line, 3);
    assert!(
        error.to_string().starts_with(&format!(
            "smn.csv: line 3: the file was sealed under the KEK with check value {}, not the given KEK ({})",
            bench.kek.kcv(),
            other.kcv()
        )),
        "{error}"
    );

    for position in 0..bytes.len() {
        for flip in [0x01u8, 0x20] {
            let mut altered = bytes.clone();
            altered[position] ^= flip;
            assert!(
                verify_smn_export(altered.as_slice(), "smn.csv", &bench.kek).is_err(),
                "byte {position} ^ {flip:#04x} went unnoticed"
            );
        }
    }

    // A swapped pair of rows, a dropped row, a dropped seal, an extra line.
    let text = String::from_utf8(bytes).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let rebuild = |lines: &[&str]| lines.join("\n") + "\n";
    let mut swapped = lines.clone();
    swapped.swap(7, 8);
    let error = verify_smn_export(rebuild(&swapped).as_bytes(), "smn.csv", &bench.kek).unwrap_err();
    assert_eq!(
        error.to_string(),
        "smn.csv: line 10: the seal does not verify: the file was altered after it was written"
    );
    let mut dropped = lines.clone();
    dropped.remove(8);
    let error = verify_smn_export(rebuild(&dropped).as_bytes(), "smn.csv", &bench.kek).unwrap_err();
    assert_eq!(
        error.to_string(),
        "smn.csv: line 9: row-count is 2, but the file holds 1; the seal does not verify either: the file was altered"
    );
    let error =
        verify_smn_export(rebuild(&lines[..9]).as_bytes(), "smn.csv", &bench.kek).unwrap_err();
    assert_eq!(
        error.to_string(),
        "smn.csv: line 10: the file ends without its seal line; it may be truncated"
    );
    let mut extra = lines.clone();
    extra.push("# comment");
    let error = verify_smn_export(rebuild(&extra).as_bytes(), "smn.csv", &bench.kek).unwrap_err();
    assert_eq!(
        error.to_string(),
        "smn.csv: line 11: nothing may follow the seal line (line 10)"
    );
    let mut bad_row = lines.clone();
    let replaced = bad_row[7].replacen("123L013K", "123L013X", 1);
    bad_row[7] = &replaced;
    let error = verify_smn_export(rebuild(&bad_row).as_bytes(), "smn.csv", &bench.kek).unwrap_err();
    assert!(
        error.to_string().starts_with(
            "smn.csv: line 8: SMN \"123L013X00000101\" is not the hardware serial followed by the key index (123L013K00000101); the seal does not verify either"
        ),
        "{error}"
    );
}

/// Asserts that a failed export named `path` and left no mark, no audit row, no temporary file.
fn assert_refused_cleanly(bench: &mut Bench, path: &Path, stage: WriteStage) {
    let unexported = bench.vault.unexported_smn_count().unwrap();
    let audit_rows = bench.audit_count();
    let error = bench
        .vault
        .export_smn(path, false, Some("officer"))
        .unwrap_err();
    match &error {
        ExportError::File {
            path: named,
            stage: failed,
            ..
        } => assert_eq!((named.as_path(), *failed), (path, stage), "{error}"),
        other => panic!("unexpected error: {other}"),
    }
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("could not write {} (", path.display())),
        "{message}"
    );
    assert!(
        message.ends_with("; nothing was marked exported"),
        "{message}"
    );
    assert_eq!(bench.vault.unexported_smn_count().unwrap(), unexported);
    assert_eq!(bench.audit_count(), audit_rows);
    assert!(leftovers(bench.directory.path()).is_empty());
    bench.vault.verify_audit().unwrap();
}

#[test]
fn an_export_that_cannot_be_written_marks_nothing_and_audits_nothing() {
    let mut bench = bench_with_injections(&["123L013K", "123L013L"]);
    // The stick was not mounted: the directory does not exist.
    let missing = bench.path("usb/smn.csv");
    assert_refused_cleanly(&mut bench, &missing, WriteStage::CreateTemporary);
    // A path through a file (ENOTDIR).
    fs::write(bench.path("stick"), b"a file").unwrap();
    let through_file = bench.path("stick/smn.csv");
    assert_refused_cleanly(&mut bench, &through_file, WriteStage::CreateTemporary);
    // A directory where the file should go: the rename fails, the temporary file goes.
    fs::create_dir(bench.path("taken.csv")).unwrap();
    let directory = bench.path("taken.csv");
    assert_refused_cleanly(&mut bench, &directory, WriteStage::Rename);
    assert!(fs::read_dir(&directory).unwrap().next().is_none());
    // No file name at all.
    assert!(matches!(
        bench.vault.export_smn(Path::new("/"), false, None),
        Err(ExportError::NotAFile(_))
    ));
    // A read-only directory; root ignores the mode, so this part only runs as another user.
    let read_only = bench.path("read-only");
    fs::create_dir(&read_only).unwrap();
    fs::set_permissions(&read_only, fs::Permissions::from_mode(0o555)).unwrap();
    if fs::write(read_only.join("probe"), b"").is_err() {
        assert_refused_cleanly(
            &mut bench,
            &read_only.join("smn.csv"),
            WriteStage::CreateTemporary,
        );
    } else {
        eprintln!("running as root: the read-only directory case is covered by the cases above");
    }
    // And a good export still works afterwards.
    assert_eq!(
        bench
            .vault
            .export_smn(&bench.path("smn.csv"), true, None)
            .unwrap()
            .rows,
        2
    );
}

/// Set in the child process of `a_full_disk_marks_nothing`: the data directory to use.
const FULL_DISK_CHILD: &str = "KEYMOTHER_TEST_FULL_DISK_DATA_DIR";

#[test]
fn a_full_disk_marks_nothing() {
    if let Ok(data_dir) = std::env::var(FULL_DISK_CHILD) {
        return full_disk_child(Path::new(&data_dir));
    }
    // 1000 SMN rows with long serials make a file of about 100 KB; the child may write 64 KB.
    let bench = Bench::new(1000);
    bench
        .raw()
        .execute_batch(
            "UPDATE key_inventory SET state = 'used', hardware_serial = printf('%024d', key_index),
                    port = 'bench-1', reserved_at = '2026-11-21T08:00:00Z';
             INSERT INTO smn_registry (smn, hardware_serial, key_index, kcv, batch_id, port,
                                       terminal_model, injected_at)
                  SELECT printf('%024d%08d', key_index, key_index), printf('%024d', key_index),
                         key_index, kcv, batch_id, 'bench-1', 'REF', '2026-11-21T08:00:00Z'
                    FROM key_inventory;",
        )
        .unwrap();
    let audit_rows = bench.audit_count();
    let data_dir = bench.data_dir();
    let Bench {
        vault, directory, ..
    } = bench;
    drop(vault);
    // The child runs this same test with a 64 KB file-size limit (ulimit -f counts 512-byte
    // blocks) and SIGXFSZ ignored, so a write past the limit fails with EFBIG as a full
    // medium fails with ENOSPC.
    let output = Command::new("sh")
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 128 && exec \"$0\" \"$@\"")
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_full_disk_marks_nothing",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(FULL_DISK_CHILD, &data_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("the full medium was refused cleanly"),
        "{stdout}\n{stderr}"
    );
    if let Some(line) = stdout.lines().find(|line| line.contains("refused cleanly")) {
        eprintln!("child: {line}");
    }
    // Back without the limit: nothing marked, nothing audited, and the export now works.
    let mut vault = Vault::open(&data_dir).unwrap();
    assert_eq!(vault.unexported_smn_count().unwrap(), 1000);
    assert_eq!(vault.audit_rows().unwrap().len(), audit_rows);
    let path = directory.path().join("smn.csv");
    assert_eq!(vault.export_smn(&path, true, None).unwrap().rows, 1000);
    assert!(fs::metadata(&path).unwrap().len() > 64 * 1024);
}

fn full_disk_child(data_dir: &Path) {
    let mut vault = Vault::open(data_dir).unwrap();
    let audit_rows = vault.audit_rows().unwrap().len();
    let target = data_dir.parent().unwrap().join("smn.csv");
    let error = vault.export_smn(&target, false, None).unwrap_err();
    assert!(
        matches!(
            error,
            ExportError::File {
                stage: WriteStage::Write,
                ..
            }
        ),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .starts_with(&format!("could not write {} (writing): ", target.display())),
        "{error}"
    );
    assert!(!target.exists());
    assert!(leftovers(data_dir.parent().unwrap()).is_empty());
    assert_eq!(vault.unexported_smn_count().unwrap(), 1000);
    assert_eq!(vault.audit_rows().unwrap().len(), audit_rows);
    println!("the full medium was refused cleanly: {error}");
}

#[test]
fn an_export_needs_the_kek() {
    let directory = tempfile::tempdir().unwrap();
    let mut vault =
        Vault::create(&directory.path().join("data"), &DEVICE.parse().unwrap()).unwrap();
    let error = vault
        .export_smn(&directory.path().join("smn.csv"), false, None)
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "no KEK is loaded; run the KEK key ceremony first"
    );
    assert!(!directory.path().join("smn.csv").exists());
}
