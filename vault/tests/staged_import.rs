//! Staged imports: a crash, a refusal, a cancellation, a zeroize or a tamper at any chunk leaves no key of the batch dispensable and its staged rows removed; reservations go on meanwhile.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
mod typed;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use keymother_crypto::KeyAlgorithm;
use keymother_keyfiles::testing::{FIRST_RECORD_LINE, FileLines};
use keymother_keyfiles::{CreatedAt, GenerateOptions, KeyIndex};
use keymother_vault::{
    DispenseError, ImportError, ImportProgress, KeyState, Vault, VaultError, WithdrawError,
};
use support::{Bench, DEVICE, FIRST_INDEX};
use typed::*;

/// The staged batch: 7 keys from index 1, below the bench's batch B-1 (from index 101).
const STAGED: &str = "B-STAGED";
const RECORDS: u32 = 7;
/// Records per chunk in these tests: 7 records are chunks of 3, 3 and 1.
const CHUNK: u32 = 3;

/// Environment of the child process that imports and aborts (see [`crash_child`]).
const CHILD_DIR: &str = "KEYMOTHER_STAGED_CRASH_DIR";
const CHILD_FILE: &str = "KEYMOTHER_STAGED_CRASH_FILE";
const CHILD_AT: &str = "KEYMOTHER_STAGED_CRASH_AT";

fn staged_lines(bench: &Bench) -> FileLines {
    FileLines::generated(
        &bench.kek,
        &GenerateOptions {
            batch_id: STAGED.parse().unwrap(),
            issuer: "TEST FRONT END".parse().unwrap(),
            algorithm: KeyAlgorithm::Tdes2Key,
            record_count: RECORDS,
            first_index: KeyIndex::new(1).unwrap(),
            device_id: DEVICE.parse().unwrap(),
            created: CreatedAt::new(time::OffsetDateTime::now_utc()),
        },
    )
    .unwrap()
}

fn write_staged(bench: &Bench, lines: &FileLines) -> PathBuf {
    let path = bench.path("staged.keys");
    std::fs::write(&path, lines.sealed(&bench.kek)).unwrap();
    path
}

/// Rows of the staged batch: (key rows, batch rows, staging rows), read directly.
fn staged_rows(data_dir: &Path) -> (i64, i64, i64) {
    let raw = support::raw(data_dir);
    let count = |sql: &str| -> i64 { raw.query_row(sql, [STAGED], |row| row.get(0)).unwrap() };
    (
        count("SELECT count(*) FROM key_inventory WHERE batch_id = ?1"),
        count("SELECT count(*) FROM batch WHERE batch_id = ?1"),
        count("SELECT count(*) FROM batch_staging WHERE batch_id = ?1"),
    )
}

fn events(vault: &Vault) -> Vec<String> {
    vault
        .audit_rows()
        .unwrap()
        .into_iter()
        .map(|row| row.event)
        .collect()
}

/// Nothing of the staged batch is left, and the bench's own two keys are all that is
/// available.
fn assert_nothing_left(bench: &Bench) {
    assert_eq!(staged_rows(&bench.data_dir()), (0, 0, 0));
    assert_eq!(bench.vault.available_keys().unwrap(), 2);
    assert!(
        bench
            .vault
            .inventory()
            .unwrap()
            .batches
            .iter()
            .all(|batch| batch.batch_id != STAGED)
    );
}

/// Run as a child process by [`a_crash_at_every_stage_leaves_no_key_of_the_batch_dispensable`]:
/// imports the file in chunks of 3 and aborts the process at the given progress call
/// (0: the batch staged, before the first chunk; 1 to 3: after each chunk; 4: after the last
/// transaction). Does nothing when not run as that child.
#[test]
fn crash_child() {
    let (Ok(dir), Ok(file), Ok(at)) = (
        std::env::var(CHILD_DIR),
        std::env::var(CHILD_FILE),
        std::env::var(CHILD_AT),
    ) else {
        return;
    };
    let at: usize = at.parse().unwrap();
    let vault = Vault::open(Path::new(&dir)).unwrap();
    let mut importer = vault.importer().unwrap().with_chunk_records(CHUNK);
    let mut calls = 0;
    let _ = importer.import_key_file(Path::new(&file), &mut |_| {
        if calls == at {
            std::process::abort();
        }
        calls += 1;
    });
    panic!("the import ended without reaching progress call {at}");
}

#[test]
fn a_crash_at_every_stage_leaves_no_key_of_the_batch_dispensable() {
    // Progress calls: staged (0), after each of 3 chunks (1..=3), whole (4).
    for at in 0..=4usize {
        let mut bench = Bench::new(2);
        let lines = staged_lines(&bench);
        let path = write_staged(&bench, &lines);
        let status = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR, bench.data_dir())
            .env(CHILD_FILE, &path)
            .env(CHILD_AT, at.to_string())
            .output()
            .unwrap();
        assert!(!status.status.success(), "the child did not crash at {at}");
        let whole = at == 4;
        let staged = (at as i64 * i64::from(CHUNK)).min(i64::from(RECORDS));
        if !whole {
            assert_eq!(
                staged_rows(&bench.data_dir()),
                (staged, 1, 1),
                "crash at {at}"
            );
            // The staging row counts its keys exactly (the count of available keys uses it).
            let counted: i64 = bench
                .raw()
                .query_row(
                    "SELECT staged FROM batch_staging WHERE batch_id = ?1",
                    [STAGED],
                    |row| row.get(0),
                )
                .unwrap();
            assert_eq!(counted, staged, "crash at {at}");
            // The vault opened before the crash dispenses around the staged keys...
            assert_eq!(bench.vault.available_keys().unwrap(), 2, "crash at {at}");
            let reservation = bench.vault.reserve_key(&as_serial("AAAA0001"), "bench-1");
            assert_eq!(reservation.unwrap().key_index, as_index(FIRST_INDEX));
            // ...and the database itself refuses to hand one out.
            if staged > 0 {
                let refused = bench.raw().execute(
                    "UPDATE key_inventory SET state = 'void' WHERE batch_id = ?1",
                    [STAGED],
                );
                assert!(
                    refused
                        .unwrap_err()
                        .to_string()
                        .contains("a key of a batch still being imported is never dispensed")
                );
            }
        }
        // The next open removes the interrupted import and says so.
        let data_dir = bench.data_dir();
        bench.vault = Vault::open(&data_dir).unwrap();
        let events = events(&bench.vault);
        if whole {
            assert_eq!(staged_rows(&data_dir), (i64::from(RECORDS), 1, 0));
            assert_eq!(
                bench.vault.available_keys().unwrap(),
                2 + u64::from(RECORDS)
            );
            assert!(!events.iter().any(|event| event == "import-interrupted"));
            continue;
        }
        assert_eq!(staged_rows(&data_dir), (0, 0, 0), "crash at {at}");
        assert_eq!(
            events.last().unwrap(),
            "import-interrupted",
            "crash at {at}"
        );
        let details = bench
            .vault
            .last_audit_details("import-interrupted")
            .unwrap();
        assert!(
            details.unwrap().contains(&format!("batch={STAGED}; file=")),
            "crash at {at}"
        );
        bench.vault.verify_audit().unwrap();
        let inventory = bench.vault.inventory().unwrap();
        assert_eq!(inventory.total(), 2, "crash at {at}");
        // The same file imports again, whole.
        let report = bench.vault.import_key_file(&path, &mut |_| {}).unwrap();
        assert_eq!(report.records, RECORDS);
        assert_eq!(
            bench.vault.available_keys().unwrap(),
            1 + u64::from(RECORDS)
        );
    }
}

/// Imports the staged file in chunks of 3, running `between` after the first chunk.
fn import_with(
    bench: &mut Bench,
    lines: &FileLines,
    cancel: &AtomicBool,
    between: &mut dyn FnMut(&mut Vault),
) -> Result<keymother_vault::ImportReport, ImportError> {
    let path = write_staged(bench, lines);
    let mut importer = bench.vault.importer().unwrap().with_chunk_records(CHUNK);
    let vault = &mut bench.vault;
    importer.import_key_stream(
        std::fs::File::open(&path).unwrap(),
        &path.display().to_string(),
        &mut |progress: ImportProgress| {
            if progress.records_done == CHUNK {
                between(vault);
            }
        },
        cancel,
    )
}

#[test]
fn reservations_go_on_while_a_batch_stages_and_never_get_its_keys() {
    let mut bench = Bench::new(2);
    let lines = staged_lines(&bench);
    let mut seen = None;
    let report = import_with(&mut bench, &lines, &AtomicBool::new(false), &mut |vault| {
        assert_eq!(vault.available_keys().unwrap(), 2);
        // The count a status screen reads on a connection of its own agrees.
        assert_eq!(
            keymother_vault::StatusReader::open(vault.data_dir())
                .unwrap()
                .available_keys()
                .unwrap(),
            2
        );
        assert!(
            vault
                .inventory()
                .unwrap()
                .batches
                .iter()
                .all(|batch| batch.batch_id != STAGED)
        );
        assert!(matches!(
            vault.withdraw_batch(&STAGED.parse().unwrap(), "wrong file", "Ann Operator"),
            Err(WithdrawError::StillImporting(_))
        ));
        let first = vault
            .reserve_key(&as_serial("AAAA0001"), "bench-1")
            .unwrap();
        let second = vault
            .reserve_key(&as_serial("AAAA0002"), "bench-1")
            .unwrap();
        assert!(matches!(
            vault.reserve_key(&as_serial("AAAA0003"), "bench-1"),
            Err(DispenseError::NoKeysAvailable)
        ));
        seen = Some((first.key_index, second.key_index));
    })
    .unwrap();
    assert_eq!(report.records, RECORDS);
    assert_eq!(
        seen,
        Some((as_index(FIRST_INDEX), as_index(FIRST_INDEX + 1)))
    );
    // Whole now: its keys are dispensable, lowest index first.
    assert_eq!(bench.vault.available_keys().unwrap(), u64::from(RECORDS));
    let next = bench
        .vault
        .reserve_key(&as_serial("AAAA0003"), "bench-1")
        .unwrap();
    assert_eq!(next.key_index, as_index(1));
    assert_eq!(staged_rows(&bench.data_dir()).2, 0);
}

#[test]
fn a_refusal_after_chunks_were_staged_leaves_nothing() {
    let mut bench = Bench::new(2);
    let mut lines = staged_lines(&bench);
    // Record 5 (in the second chunk) carries record 0's check value.
    let fields = lines.record_fields(4);
    let other = lines.record_fields(0);
    *lines.record_mut(4) = format!("{} {} {}", fields[0], fields[1], other[2]);
    let mut staged_then = None;
    let data_dir = bench.data_dir();
    let error = import_with(&mut bench, &lines, &AtomicBool::new(false), &mut |_| {
        staged_then = Some(staged_rows(&data_dir));
    })
    .unwrap_err();
    assert_eq!(staged_then, Some((3, 1, 1)));
    assert!(
        error
            .to_string()
            .contains(&format!("line {}: ", FIRST_RECORD_LINE + 4)),
        "{error}"
    );
    assert_nothing_left(&bench);
    assert_eq!(events(&bench.vault).last().unwrap(), "import-refused");
    bench.vault.verify_audit().unwrap();
}

#[test]
fn a_cancellation_between_chunks_leaves_nothing() {
    let mut bench = Bench::new(2);
    let lines = staged_lines(&bench);
    let cancel = AtomicBool::new(false);
    let error = import_with(&mut bench, &lines, &cancel, &mut |_| {
        cancel.store(true, Ordering::Relaxed);
    })
    .unwrap_err();
    assert!(
        matches!(
            error,
            ImportError::Cancelled {
                records_done: CHUNK,
                ..
            }
        ),
        "{error}"
    );
    assert_nothing_left(&bench);
    assert_eq!(events(&bench.vault).last().unwrap(), "import-cancelled");
}

#[test]
fn a_zeroize_between_chunks_stops_the_import_and_leaves_nothing() {
    let mut bench = Bench::new(2);
    let lines = staged_lines(&bench);
    let error = import_with(&mut bench, &lines, &AtomicBool::new(false), &mut |vault| {
        vault.zeroize("test", Some("Ann Operator")).unwrap();
    })
    .unwrap_err();
    assert!(
        matches!(error, ImportError::Vault(VaultError::Zeroized(_))),
        "{error}"
    );
    // Not one key block more was written, what was staged is gone, and the chain still
    // ends at the zeroize.
    assert_eq!(staged_rows(&bench.data_dir()), (0, 0, 0));
    assert_eq!(events(&bench.vault).last().unwrap(), "zeroize");
    let inventory = bench.vault.inventory().unwrap();
    assert_eq!(inventory.total(), 2);
    assert_eq!(inventory.count(KeyState::Available), 0);
}

#[test]
fn a_tamper_between_chunks_stops_the_import_and_leaves_nothing() {
    let mut bench = Bench::new(2);
    let lines = staged_lines(&bench);
    let error = import_with(&mut bench, &lines, &AtomicBool::new(false), &mut |vault| {
        vault.tamper("case-open").unwrap();
    })
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("the KEK was removed while the import ran"),
        "{error}"
    );
    assert_nothing_left(&bench);
    let events = events(&bench.vault);
    assert_eq!(events[events.len() - 2..], ["tamper", "import-refused"]);
}

#[test]
fn an_open_during_an_import_leaves_its_staged_rows_alone() {
    let mut bench = Bench::new(2);
    let lines = staged_lines(&bench);
    let data_dir = bench.data_dir();
    let report = import_with(&mut bench, &lines, &AtomicBool::new(false), &mut |_| {
        let other = Vault::open(&data_dir).unwrap();
        drop(other);
        assert_eq!(staged_rows(&data_dir), (3, 1, 1));
    })
    .unwrap();
    assert_eq!(report.records, RECORDS);
    assert!(
        !events(&bench.vault)
            .iter()
            .any(|event| event == "import-interrupted")
    );
}

#[test]
fn a_clash_with_the_inventory_is_reported_before_a_later_bad_record_of_the_same_chunk() {
    let mut bench = Bench::new(2);
    // Indexes 100 to 106: the second record's (101) is the bench's first key. Record 5 has a
    // wrong check value; both are in the one chunk gathered before it is written.
    let mut lines = FileLines::generated(
        &bench.kek,
        &GenerateOptions {
            batch_id: STAGED.parse().unwrap(),
            issuer: "TEST FRONT END".parse().unwrap(),
            algorithm: KeyAlgorithm::Tdes2Key,
            record_count: RECORDS,
            first_index: KeyIndex::new(FIRST_INDEX - 1).unwrap(),
            device_id: DEVICE.parse().unwrap(),
            created: CreatedAt::new(time::OffsetDateTime::now_utc()),
        },
    )
    .unwrap();
    let fields = lines.record_fields(4);
    let other = lines.record_fields(0);
    *lines.record_mut(4) = format!("{} {} {}", fields[0], fields[1], other[2]);
    let path = write_staged(&bench, &lines);
    let error = bench
        .vault
        .import_key_file(&path, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        error.ends_with(&format!(
            "line {}: key index {:08} is already in the inventory (batch B-1)",
            FIRST_RECORD_LINE + 1,
            FIRST_INDEX
        )),
        "{error}"
    );
    assert_nothing_left(&bench);
    // The same clash in the last, partial chunk of a whole file is reported the same way.
    *lines.record_mut(4) = format!("{} {} {}", fields[0], fields[1], fields[2]);
    let path = write_staged(&bench, &lines);
    let error = bench
        .vault
        .import_key_file(&path, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        error.ends_with("is already in the inventory (batch B-1)"),
        "{error}"
    );
    assert_nothing_left(&bench);
}

/// The write-ahead log's size in pages after importing 40,000 keys, beside live ports or alone.
fn log_pages_after_a_large_import(beside_live_ports: bool) -> u64 {
    let bench = Bench::new(2);
    let lines = FileLines::generated(
        &bench.kek,
        &GenerateOptions {
            batch_id: "B-LARGE".parse().unwrap(),
            issuer: "TEST FRONT END".parse().unwrap(),
            algorithm: KeyAlgorithm::Tdes2Key,
            record_count: 40_000,
            first_index: KeyIndex::new(1_000).unwrap(),
            device_id: DEVICE.parse().unwrap(),
            created: CreatedAt::new(time::OffsetDateTime::now_utc()),
        },
    )
    .unwrap();
    let path = bench.path("large.keys");
    std::fs::write(&path, lines.sealed(&bench.kek)).unwrap();
    let mut importer = bench.vault.importer().unwrap();
    if beside_live_ports {
        importer = importer.beside_live_ports();
    }
    importer.import_key_file(&path, &mut |_| {}).unwrap();
    let data_dir = bench.data_dir();
    let page_size: i64 = support::raw(&data_dir)
        .query_row("PRAGMA page_size", [], |row| row.get(0))
        .unwrap();
    // The log file keeps the size it grew to (SQLite reuses it from its start after a
    // checkpoint), while the importer's connection is open.
    let log = data_dir.join(format!("{}-wal", keymother_vault::DATABASE_FILE));
    std::fs::metadata(log).unwrap().len() / page_size as u64
}

/// Beside live ports (keymotherd) the importer checkpoints the log itself, so that it never
/// reaches SQLite's automatic checkpoint (1000 pages) and no reservation's commit pays for
/// copying the import's pages; alone, SQLite's own checkpoints serve.
#[test]
fn an_import_beside_live_ports_keeps_the_write_ahead_log_below_the_automatic_checkpoint() {
    let beside = log_pages_after_a_large_import(true);
    assert!(beside < 500, "the log grew to {beside} pages");
    let alone = log_pages_after_a_large_import(false);
    assert!(alone >= 1000, "alone, the log grew to {alone} pages");
}

/// A turn the test can hold: the importer's chunks wait for it.
struct TestTurn {
    lock: std::sync::Arc<std::sync::Mutex<()>>,
    taken: std::sync::Arc<std::sync::atomic::AtomicU32>,
}

impl keymother_vault::WriteTurn for TestTurn {
    fn take(&self) -> Box<dyn keymother_vault::HeldTurn + '_> {
        let held = self.lock.lock().unwrap();
        self.taken.fetch_add(1, Ordering::SeqCst);
        Box::new(held)
    }
}

#[test]
fn every_chunk_is_written_holding_the_turn_and_none_while_another_holds_it() {
    let bench = Bench::new(2);
    let lines = staged_lines(&bench);
    let path = write_staged(&bench, &lines);
    let lock = std::sync::Arc::new(std::sync::Mutex::new(()));
    let taken = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let mut importer = bench
        .vault
        .importer()
        .unwrap()
        .with_chunk_records(CHUNK)
        .taking_turns(Box::new(TestTurn {
            lock: std::sync::Arc::clone(&lock),
            taken: std::sync::Arc::clone(&taken),
        }));
    // The ports' side holds the turn: the import reads, stages its batch row and waits.
    let held = lock.lock().unwrap();
    let import = std::thread::spawn(move || {
        importer.import_key_stream(
            std::fs::File::open(&path).unwrap(),
            "staged.keys",
            &mut |_| {},
            &AtomicBool::new(false),
        )
    });
    let data_dir = bench.data_dir();
    let started = std::time::Instant::now();
    while staged_rows(&data_dir).2 == 0 && started.elapsed().as_secs() < 30 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(
        staged_rows(&data_dir),
        (0, 1, 1),
        "the batch is staged, and no key written while the turn is held elsewhere"
    );
    assert_eq!(taken.load(Ordering::SeqCst), 0);
    drop(held);
    let report = import.join().unwrap().unwrap();
    assert_eq!(report.records, RECORDS);
    assert_eq!(
        taken.load(Ordering::SeqCst),
        RECORDS.div_ceil(CHUNK),
        "one turn per chunk (7 records: chunks of 3, 3 and 1)"
    );
    assert_eq!(staged_rows(&data_dir), (i64::from(RECORDS), 1, 0));
}

#[test]
fn a_chunk_whose_batch_no_longer_stages_is_refused_and_not_written() {
    let mut bench = Bench::new(2);
    let lines = staged_lines(&bench);
    let data_dir = bench.data_dir();
    // Behind the vault's back, the batch stops staging after the first chunk.
    let refused = import_with(&mut bench, &lines, &AtomicBool::new(false), &mut |_| {
        support::raw(&data_dir)
            .execute("DELETE FROM batch_staging WHERE batch_id = ?1", [STAGED])
            .unwrap();
    })
    .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("the batch is no longer being imported"),
        "{refused}"
    );
    // Keys join only a staging batch: the second chunk was rolled back.
    assert_eq!(staged_rows(&data_dir).0, i64::from(CHUNK));
}

#[test]
fn the_status_reader_counts_what_the_vault_counts_in_one_snapshot() {
    let mut bench = Bench::new(4);
    bench
        .vault
        .reserve_key(&as_serial("AAAA0001"), "bench-1")
        .unwrap();
    let lines = staged_lines(&bench);
    let mut checked = false;
    // While a batch stages (its keys neither counted nor listed), and once it is whole.
    import_with(&mut bench, &lines, &AtomicBool::new(false), &mut |vault| {
        let counts = keymother_vault::StatusReader::open(vault.data_dir())
            .unwrap()
            .counts()
            .unwrap();
        assert_eq!(counts.inventory, vault.inventory().unwrap());
        assert_eq!(counts.available, vault.available_keys().unwrap());
        assert_eq!(counts.available, 3);
        assert_eq!(counts.smn_rows, vault.smn_rows().unwrap().len() as u64);
        for (name, info) in &counts.secrets {
            assert_eq!(info, &vault.secret_info(*name).unwrap());
        }
        checked = true;
    })
    .unwrap();
    assert!(checked);
    let counts = keymother_vault::StatusReader::open(&bench.data_dir())
        .unwrap()
        .counts()
        .unwrap();
    assert_eq!(counts.inventory, bench.vault.inventory().unwrap());
    assert_eq!(counts.available, 3 + u64::from(RECORDS));
}
