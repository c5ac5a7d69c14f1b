//! The whole-database check paid after start: the deferred open skips it, the background checker finds a damaged page on its own read-only connection, and a vault whose last check failed pays the full check before it opens.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
mod typed;
#[allow(unused_imports)]
use typed::*;

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use keymother_vault::{DATABASE_FILE, IntegrityFailure, Vault, VaultError};
use support::Bench;

/// A leaf page of `table` from the middle of its b-tree (after a checkpoint, so the page
/// lives in the database file), and the page size.
fn middle_leaf_page(data_dir: &Path, table: &str) -> (u64, u64) {
    let raw = support::raw(data_dir);
    raw.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let page_size: i64 = raw
        .query_row("PRAGMA page_size", [], |row| row.get(0))
        .unwrap();
    let mut statement = raw
        .prepare("SELECT pageno FROM dbstat WHERE name = ?1 AND pagetype = 'leaf' ORDER BY pageno")
        .unwrap();
    let pages: Vec<i64> = statement
        .query_map([table], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        pages.len() >= 3,
        "{table} needs several leaf pages for this test, has {}",
        pages.len()
    );
    (pages[pages.len() / 2] as u64, page_size as u64)
}

/// Writes garbage over page `page` of the database file, as a failing disk would.
pub fn damage_page(data_dir: &Path, page: u64, page_size: u64) {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(data_dir.join(DATABASE_FILE))
        .unwrap();
    file.seek(SeekFrom::Start((page - 1) * page_size)).unwrap();
    file.write_all(&vec![0xA5; page_size as usize]).unwrap();
    file.sync_all().unwrap();
}

fn damaged_bench() -> Bench {
    let bench = Bench::new(300);
    let (page, page_size) = middle_leaf_page(&bench.data_dir(), "key_inventory");
    damage_page(&bench.data_dir(), page, page_size);
    bench
}

#[test]
fn a_whole_vault_passes_the_background_check() {
    let bench = Bench::new(300);
    let report = bench.vault.integrity_checker().run().unwrap();
    let pages: i64 = bench
        .raw()
        .query_row("PRAGMA page_count", [], |row| row.get(0))
        .unwrap();
    assert_eq!(report.pages, pages as u64);
}

#[test]
fn a_damaged_page_is_found_by_the_background_check_not_by_the_deferred_open() {
    let bench = damaged_bench();
    let data_dir = bench.data_dir();
    drop(bench.vault);

    // The full check at open (maintenance commands) refuses the vault...
    match Vault::open(&data_dir) {
        Err(VaultError::Corrupt(words)) => assert!(words.contains("integrity"), "{words}"),
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("a damaged vault opened with the full check"),
    }
    // ...the daemon's open leaves it to the background check, which finds it.
    let vault = Vault::open_as_owner_deferring_integrity(&data_dir).unwrap();
    match vault.integrity_checker().run() {
        Err(IntegrityFailure::Damaged { findings }) => assert!(!findings.is_empty()),
        other => panic!("the damaged page was not found: {other:?}"),
    }
}

#[test]
fn after_a_recorded_failure_the_deferred_open_pays_the_full_check_first() {
    let mut bench = damaged_bench();
    let data_dir = bench.data_dir();
    bench
        .vault
        .record_integrity_failure("page 7: btreeInitPage() returns error code 11")
        .unwrap();
    drop(bench.vault);
    match Vault::open_as_owner_deferring_integrity(&data_dir) {
        Err(VaultError::Corrupt(words)) => assert!(words.contains("integrity"), "{words}"),
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("a vault whose last check failed opened without the full check"),
    }
}

#[test]
fn a_vault_restored_after_a_failure_is_verified_in_full_and_says_so_in_the_audit_trail() {
    let mut bench = Bench::new(5);
    let data_dir = bench.data_dir();
    let failed = bench
        .vault
        .record_integrity_failure("page 7: btreeInitPage() returns error code 11")
        .unwrap();
    assert_eq!(failed.event, "integrity-failed");
    drop(bench.vault);

    let vault = Vault::open_as_owner_deferring_integrity(&data_dir).unwrap();
    let rows = vault.audit_rows().unwrap();
    let last = rows.last().unwrap();
    assert_eq!(last.event, "integrity-verified");
    assert_eq!(last.sequence, failed.sequence + 1);
    assert!(last.details.starts_with("pages="), "{}", last.details);
    vault.verify_audit().unwrap();
    drop(vault);

    // Verified once: the next open is deferred again and records nothing.
    let vault = Vault::open_as_owner_deferring_integrity(&data_dir).unwrap();
    assert_eq!(vault.audit_rows().unwrap().len(), rows.len());
}

#[test]
fn a_stopped_check_says_it_was_stopped_not_that_the_vault_is_damaged() {
    let bench = Bench::new(300);
    let checker = bench.vault.integrity_checker();
    checker.stop();
    let outcome = checker.run();
    assert_eq!(outcome, Err(IntegrityFailure::Stopped));
    assert!(!IntegrityFailure::Stopped.is_damage());
}
