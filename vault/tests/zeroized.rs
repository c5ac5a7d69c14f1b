//! The zeroize lifecycle in the vault: the final exports a zeroize seals, the zeroized vault that still delivers them and counts no key, and recommissioning with the old chain archived and linked.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
mod typed;
#[allow(unused_imports)]
use typed::*;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_keyfiles::testing::FileLines;
use keymother_keyfiles::{CreatedAt, GenerateOptions, KeyIndex};
use keymother_vault::{
    HeadMacStatus, KeyState, SecretName, Vault, VaultError, verify_dukpt_export, verify_smn_export,
};
use sha2::{Digest, Sha256};
use support::{Bench, DEVICE};

/// The rows of `event` in the chain, as (sequence, details).
fn rows_of(vault: &Vault, event: &str) -> Vec<(u64, String)> {
    vault
        .audit_rows()
        .unwrap()
        .into_iter()
        .filter(|row| row.event == event)
        .map(|row| (row.sequence, row.details))
        .collect()
}

/// Exports the SMN registry to `name` in the bench's directory and returns the bytes.
fn export(vault: &mut Vault, directory: &Path, name: &str, only_new: bool) -> Vec<u8> {
    let path = directory.join(name);
    vault.export_smn(&path, only_new, None).unwrap();
    fs::read(&path).unwrap()
}

#[test]
fn a_zeroize_seals_final_exports_that_the_zeroized_vault_delivers_unchanged() {
    let mut bench = Bench::new(5);
    bench.inject("123L013K");
    let outside = bench.directory.path().to_path_buf();
    export(&mut bench.vault, &outside, "first.csv", true);
    bench.inject("123L013L");
    let report = bench.vault.zeroize("end of run", Some("Olivia")).unwrap();
    assert_eq!(report.final_exports, 4);
    assert_eq!(report.final_export_problem, None);
    let data_dir = bench.data_dir();
    let Bench { vault, kek, .. } = bench;
    drop(vault);

    let mut vault = Vault::open_zeroized_as_owner(&data_dir).unwrap();
    assert!(vault.is_zeroized());
    let before = vault.audit_rows().unwrap().len();
    // Only new: the row injected after the last export, sealed under the KEK the front end holds.
    let only_new = export(&mut vault, &outside, "new.csv", true);
    let verified = verify_smn_export(only_new.as_slice(), "new.csv", &kek).unwrap();
    assert_eq!(verified.rows.len(), 1);
    assert_eq!(verified.rows[0].hardware_serial.as_str(), "123L013L");
    assert!(verified.only_new);
    let all = export(&mut vault, &outside, "all.csv", false);
    let verified = verify_smn_export(all.as_slice(), "all.csv", &kek).unwrap();
    assert_eq!(verified.rows.len(), 2);
    let mut dukpt = Vec::new();
    vault
        .write_dukpt_export(&mut dukpt, false, Path::new("dukpt.csv"))
        .unwrap();
    assert!(
        verify_dukpt_export(dukpt.as_slice(), "dukpt.csv", &kek)
            .unwrap()
            .rows
            .is_empty()
    );
    // The same file every time, and the digest the final-export row recorded before the zeroize.
    assert_eq!(export(&mut vault, &outside, "again.csv", true), only_new);
    let finals = rows_of(&vault, "final-export");
    assert_eq!(finals.len(), 4);
    let digest = hex::encode(Sha256::digest(&only_new));
    assert!(
        finals.iter().any(|(_, details)| details
            == &format!(
                "registry=smn; rows=1; only_new=yes; file_sha256={digest}; operator=Olivia"
            )),
        "{finals:?}"
    );
    let zeroize = vault.zeroize_record().unwrap().unwrap();
    assert!(
        finals
            .iter()
            .all(|(sequence, _)| *sequence < zeroize.audit_sequence)
    );
    // Nothing is written to a zeroized vault: the chain did not grow.
    assert_eq!(vault.audit_rows().unwrap().len(), before);
    assert_eq!(
        vault.verify_audit().unwrap().head_mac,
        HeadMacStatus::NotChecked
    );
}

#[test]
fn the_keys_a_zeroize_erased_are_counted_as_erased_and_never_as_available() {
    let mut bench = Bench::new(6);
    bench.inject("T1");
    bench.send("T2");
    assert_eq!(bench.vault.available_keys().unwrap(), 4);
    bench.vault.zeroize("end", None).unwrap();
    for vault in [
        &bench.vault,
        &Vault::open_for_audit(&bench.data_dir()).unwrap(),
    ] {
        let inventory = vault.inventory().unwrap();
        assert_eq!(inventory.count(KeyState::Available), 0);
        assert_eq!(inventory.count(KeyState::Sent), 0);
        assert_eq!(inventory.count(KeyState::Used), 1);
        assert_eq!(inventory.erased, 5);
        assert_eq!(inventory.total(), 6);
        assert_eq!(inventory.batches[0].available, 0);
        assert_eq!(vault.available_keys().unwrap(), 0);
    }
}

#[test]
fn a_zeroize_after_a_tamper_seals_no_final_export_and_says_so() {
    let mut bench = Bench::new(2);
    bench.inject("T1");
    bench.vault.tamper("GPIO23").unwrap();
    let report = bench.vault.zeroize("after the tamper", None).unwrap();
    assert_eq!(report.final_exports, 0);
    let problem = report.final_export_problem.unwrap();
    assert!(problem.contains("KEK"), "{problem}");
    let error = bench
        .vault
        .export_smn(&bench.path("smn.csv"), false, None)
        .unwrap_err()
        .to_string();
    assert!(error.contains("without a final smn export"), "{error}");
    assert!(!bench.path("smn.csv").exists());
    // The rows themselves are still there to read.
    assert_eq!(bench.vault.smn_rows().unwrap().len(), 1);
}

#[test]
fn opening_a_zeroized_vault_finishes_a_zeroize_a_crash_interrupted() {
    let bench = Bench::new(2);
    let data_dir = bench.data_dir();
    let key_file = data_dir.join("storage.key");
    let saved_key = fs::read(&key_file).unwrap();
    let Bench { mut vault, .. } = bench;
    vault.zeroize("crash test", None).unwrap();
    drop(vault);
    // As if the process died after the zeroize's transaction: key file and blocks still there.
    fs::write(&key_file, &saved_key).unwrap();
    fs::set_permissions(&key_file, fs::Permissions::from_mode(0o600)).unwrap();
    support::raw(&data_dir)
        .execute(
            "UPDATE key_inventory SET key_block = 'B0000' WHERE key_index = 101",
            [],
        )
        .unwrap();
    // Never opened as a live vault, key file or not.
    assert!(matches!(
        Vault::open(&data_dir),
        Err(VaultError::Zeroized(_))
    ));
    let vault = Vault::open_zeroized_as_owner(&data_dir).unwrap();
    assert!(!key_file.exists());
    assert_eq!(vault.inventory().unwrap().erased, 2);
    // The owner lock is held: nobody else opens it meanwhile.
    let error = Vault::open_zeroized_as_owner(&data_dir).err().unwrap();
    assert!(
        error.to_string().contains("in use by another process"),
        "{error}"
    );
}

#[test]
fn a_live_vault_is_neither_opened_as_zeroized_nor_recommissioned() {
    let bench = Bench::new(1);
    let data_dir = bench.data_dir();
    drop(bench.vault);
    let error = Vault::open_zeroized_as_owner(&data_dir).err().unwrap();
    assert!(error.to_string().contains("is not zeroized"), "{error}");
    let error = Vault::recommission(&data_dir, None, "new site", "Olivia")
        .err()
        .unwrap();
    assert!(
        error.to_string().contains("keymother zeroize first"),
        "{error}"
    );
    assert!(Vault::open(&data_dir).is_ok());
}

/// A zeroized bench, its vault closed: the data directory and the KEK the front end holds.
fn zeroized_bench() -> (tempfile::TempDir, PathBuf) {
    let mut bench = Bench::new(3);
    bench.inject("123L013K");
    bench.vault.zeroize("site closed", Some("Olivia")).unwrap();
    let data_dir = bench.data_dir();
    let Bench {
        directory, vault, ..
    } = bench;
    drop(vault);
    (directory, data_dir)
}

#[test]
fn recommissioning_archives_the_old_vault_and_starts_a_chain_linked_to_it() {
    let (directory, data_dir) = zeroized_bench();
    let old_head = Vault::open_for_audit(&data_dir)
        .unwrap()
        .verify_audit()
        .unwrap();
    let (mut vault, done) =
        Vault::recommission(&data_dir, None, "new site", "Olivia Officer").unwrap();

    // The archive: beside the new vault, named with the date, read-only, its chain whole.
    let name = done
        .archive
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        name.starts_with("vault-zeroized-20") && name.ends_with(".sqlite"),
        "{name}"
    );
    assert_eq!(done.archive.parent().unwrap(), data_dir);
    assert_eq!(
        fs::metadata(&done.archive).unwrap().permissions().mode() & 0o777,
        0o400
    );
    let archived = Vault::open_archive(&done.archive).unwrap();
    assert_eq!(archived.verify_audit().unwrap(), old_head);
    assert_eq!(archived.smn_rows().unwrap().len(), 1);

    // The new chain starts with the link: archive, its digest and the old head.
    let first = vault.audit_rows().unwrap().remove(0);
    assert_eq!(first.sequence, 1);
    assert_eq!(
        (first.event.as_str(), first.actor.as_str()),
        ("recommission", "Olivia Officer")
    );
    let digest = hex::encode(Sha256::digest(fs::read(&done.archive).unwrap()));
    assert_eq!(
        first.details,
        format!(
            "archive={name}; archive_sha256={digest}; previous_device_id={DEVICE}; last_sequence={}; last_hash={}; reason=new site; operator=Olivia Officer",
            old_head.rows, old_head.head_hash
        )
    );
    assert_eq!(done.predecessor.last_hash, old_head.head_hash);
    assert_eq!(vault.predecessor().unwrap(), Some(done.predecessor.clone()));
    assert!(vault.check_archive_link(&done.archive).unwrap());
    assert_eq!(
        vault.verify_audit().unwrap().head_mac,
        HeadMacStatus::Verified
    );

    // The new vault works: ceremonies, an import, an injection.
    let kek = SecretKey::generate(KeyAlgorithm::Aes256).unwrap();
    let ttk = SecretKey::generate(KeyAlgorithm::Aes128).unwrap();
    vault
        .install_secret(
            SecretName::Kek,
            &kek,
            &keymother_vault::CeremonyRecord::named(&["Ann Lee", "Raj Patel"]).unwrap(),
        )
        .unwrap();
    vault
        .install_secret(
            SecretName::Ttk,
            &ttk,
            &keymother_vault::CeremonyRecord::named(&["Ann Lee", "Raj Patel"]).unwrap(),
        )
        .unwrap();
    let options = GenerateOptions {
        batch_id: "B-NEW".parse().unwrap(),
        issuer: "T".parse().unwrap(),
        algorithm: KeyAlgorithm::Tdes2Key,
        record_count: 2,
        first_index: KeyIndex::new(500).unwrap(),
        device_id: DEVICE.parse().unwrap(),
        created: CreatedAt::new(time::OffsetDateTime::now_utc()),
    };
    let file = directory.path().join("new.keys");
    fs::write(
        &file,
        FileLines::generated(&kek, &options).unwrap().sealed(&kek),
    )
    .unwrap();
    vault.import_key_file(&file, &mut |_| {}).unwrap();
    let reservation = vault.reserve_key(&as_serial("NEW1"), "bench-1").unwrap();
    assert_eq!(reservation.key_index, 500);
    assert_eq!(vault.available_keys().unwrap(), 1);
    drop(vault);

    // A second recommission the same day gets its own archive name.
    let mut again = Vault::open_as_owner(&data_dir).unwrap();
    again.zeroize("moved again", None).unwrap();
    drop(again);
    let (_, second) = Vault::recommission(&data_dir, None, "again", "Olivia").unwrap();
    assert_eq!(
        second.archive.file_name().unwrap().to_string_lossy(),
        name.replace(".sqlite", "-2.sqlite")
    );
    assert!(
        Vault::open_archive(&done.archive)
            .unwrap()
            .verify_audit()
            .is_ok()
    );
}

/// Makes `archive` writable and opens it as someone with the file would.
fn open_writable(archive: &Path) -> rusqlite::Connection {
    fs::set_permissions(archive, fs::Permissions::from_mode(0o600)).unwrap();
    let connection = rusqlite::Connection::open(archive).unwrap();
    connection
        .execute_batch(
            "DROP TRIGGER audit_log_never_rewritten;
             DROP TRIGGER audit_log_never_deleted;
             DROP TRIGGER audit_head_only_moves_forward;",
        )
        .unwrap();
    connection
}

#[test]
fn an_edited_archive_fails_its_chain_and_a_cut_one_fails_the_link() {
    let (_directory, data_dir) = zeroized_bench();
    let (vault, done) = Vault::recommission(&data_dir, None, "new site", "Olivia").unwrap();
    let pristine = fs::read(&done.archive).unwrap();

    // One row's details edited: the archive's own chain names the row.
    open_writable(&done.archive)
        .execute(
            "UPDATE audit_log SET details = 'reason=nothing happened' WHERE event = 'zeroize'",
            [],
        )
        .unwrap();
    let failure = Vault::open_archive(&done.archive)
        .unwrap()
        .verify_audit()
        .unwrap_err();
    assert!(failure.sequence().is_some(), "{failure}");
    assert!(vault.check_archive_link(&done.archive).is_err());

    // The last rows cut and the head moved back consistently: the chain alone verifies (no MAC
    // without the storage key), but the successor's record of its end does not match.
    fs::write(&done.archive, &pristine).unwrap();
    let connection = open_writable(&done.archive);
    let (last, hash): (i64, String) = connection
        .query_row(
            "SELECT sequence, hash FROM audit_log ORDER BY sequence DESC LIMIT 1 OFFSET 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    connection
        .execute_batch(&format!(
            "DELETE FROM audit_log WHERE sequence > {last};
             UPDATE audit_head SET last_sequence = {last}, last_hash = '{hash}';"
        ))
        .unwrap();
    drop(connection);
    assert!(
        Vault::open_archive(&done.archive)
            .unwrap()
            .verify_audit()
            .is_ok()
    );
    let error = vault
        .check_archive_link(&done.archive)
        .unwrap_err()
        .to_string();
    assert!(error.contains("changed since it was archived"), "{error}");
}
