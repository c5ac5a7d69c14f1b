//! The audit chain's last verified point: recorded after a whole walk, MACed (a forged or replayed one is refused), checked before READY with the rows after it, and what the quick check sees and leaves to the whole walk.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
mod typed;
#[allow(unused_imports)]
use typed::*;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use keymother_vault::{AuditEvent, AuditFailure, ChainWalkFailure, HeadMacStatus, Vault};
use support::Bench;

/// Rows after creation, the ceremonies and the import: three logouts.
fn record_logouts(vault: &mut Vault, count: usize) {
    for n in 0..count {
        vault
            .record_audit(AuditEvent::Logout {
                operator: format!("operator {n}"),
                reason: "logged out".to_owned(),
            })
            .unwrap();
    }
}

/// A vault whose whole chain was walked and recorded at row `checkpoint`, with `after` rows
/// recorded since.
fn bench_with_checkpoint(after: usize) -> (Bench, u64) {
    let mut bench = Bench::new(3);
    record_logouts(&mut bench.vault, 3);
    let report = bench.vault.verify_audit_recording_checkpoint().unwrap();
    record_logouts(&mut bench.vault, after);
    (bench, report.rows)
}

/// Drops the triggers that keep rows and the checkpoint as they were; an attacker with
/// write access to the file can too.
fn drop_guards(connection: &rusqlite::Connection) {
    connection
        .execute_batch(
            "DROP TRIGGER audit_log_never_rewritten;
             DROP TRIGGER audit_log_never_deleted;
             DROP TRIGGER audit_head_only_moves_forward;
             DROP TRIGGER audit_checkpoint_only_moves_forward;",
        )
        .unwrap();
}

fn quick_failure(vault: &Vault) -> AuditFailure {
    match vault.verify_audit_since_checkpoint() {
        Ok(report) => panic!("the quick check passed: {report:?}"),
        Err(failure) => failure,
    }
}

fn whole_failure(vault: &Vault) -> AuditFailure {
    match vault.verify_audit() {
        Ok(report) => panic!("the whole walk passed: {report:?}"),
        Err(failure) => failure,
    }
}

/// The background walk of `vault`, as keymotherd runs it: read-only walk, then recorded.
fn background_walk(vault: &mut Vault) -> Result<u64, String> {
    let walker = vault.audit_chain_checker(Arc::new(AtomicBool::new(false)));
    let walked = walker.run().map_err(|failure| failure.to_string())?;
    vault
        .record_audit_walk(&walked)
        .map(|report| report.rows)
        .map_err(|failure| failure.to_string())
}

#[test]
fn a_whole_walk_records_the_last_verified_point_and_the_quick_check_starts_after_it() {
    let mut bench = Bench::new(3);
    record_logouts(&mut bench.vault, 3);
    assert_eq!(bench.vault.audit_checkpoint().unwrap(), None);
    // Without a checkpoint the check before READY is the whole walk.
    let whole = bench.vault.verify_audit_since_checkpoint().unwrap();
    assert_eq!(whole.first_walked, 1);
    // An explicit check changes nothing.
    bench.vault.verify_audit().unwrap();
    assert_eq!(bench.vault.audit_checkpoint().unwrap(), None);

    let walked = bench.vault.verify_audit_recording_checkpoint().unwrap();
    assert_eq!(walked.head_mac, HeadMacStatus::Verified);
    let checkpoint = bench.vault.audit_checkpoint().unwrap().unwrap();
    assert_eq!(
        (checkpoint.sequence, checkpoint.hash.as_str()),
        (walked.rows, walked.head_hash.as_str())
    );

    record_logouts(&mut bench.vault, 4);
    let quick = bench.vault.verify_audit_since_checkpoint().unwrap();
    assert_eq!(quick.first_walked, walked.rows + 1);
    assert_eq!(quick.rows, walked.rows + 4);
    assert_eq!(quick.head_mac, HeadMacStatus::Verified);
    let whole = bench.vault.verify_audit().unwrap();
    assert_eq!((whole.rows, whole.first_walked), (quick.rows, 1));

    // The background walk moves it to the head; the next quick check walks no row.
    assert_eq!(background_walk(&mut bench.vault), Ok(quick.rows));
    assert_eq!(
        bench.vault.audit_checkpoint().unwrap().unwrap().sequence,
        quick.rows
    );
    let quick = bench.vault.verify_audit_since_checkpoint().unwrap();
    assert_eq!(
        (quick.first_walked, quick.rows),
        (whole.rows + 1, whole.rows)
    );

    // It survives reopening.
    let data_dir = bench.data_dir();
    drop(bench.vault);
    let vault = Vault::open(&data_dir).unwrap();
    assert_eq!(
        vault.verify_audit_since_checkpoint().unwrap().first_walked,
        whole.rows + 1
    );
}

#[test]
fn a_forged_edited_or_replayed_checkpoint_is_refused() {
    let (bench, at) = bench_with_checkpoint(2);
    let raw = bench.raw();
    let original: (i64, String, String) = raw
        .query_row(
            "SELECT sequence, hash, mac FROM audit_checkpoint",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .unwrap();
    let restore = |raw: &rusqlite::Connection| {
        raw.execute(
            "UPDATE audit_checkpoint SET sequence = ?1, hash = ?2, mac = ?3",
            rusqlite::params![original.0, original.1, original.2],
        )
        .unwrap();
    };
    drop_guards(&raw);

    // A MAC made up.
    raw.execute("UPDATE audit_checkpoint SET mac = ?1", [&"ab".repeat(32)])
        .unwrap();
    assert!(matches!(
        quick_failure(&bench.vault),
        AuditFailure::CheckpointForged { sequence } if sequence == at
    ));
    assert!(matches!(
        whole_failure(&bench.vault),
        AuditFailure::CheckpointForged { .. }
    ));
    restore(&raw);
    bench.vault.verify_audit_since_checkpoint().unwrap();

    // Moved forward (to skip rows) with its MAC kept.
    let next_hash: String = raw
        .query_row(
            "SELECT hash FROM audit_log WHERE sequence = ?1",
            [original.0 + 2],
            |row| row.get(0),
        )
        .unwrap();
    raw.execute(
        "UPDATE audit_checkpoint SET sequence = ?1, hash = ?2",
        rusqlite::params![original.0 + 2, next_hash],
    )
    .unwrap();
    let failure = quick_failure(&bench.vault);
    assert!(
        matches!(failure, AuditFailure::CheckpointForged { sequence } if sequence == at + 2),
        "{failure}"
    );
    assert!(
        failure
            .to_string()
            .contains("does not verify under the storage key"),
        "{failure}"
    );
    restore(&raw);

    // The head's own MAC replayed as the checkpoint's: a different key input, refused.
    raw.execute_batch(
        "UPDATE audit_checkpoint SET sequence = (SELECT last_sequence FROM audit_head),
             hash = (SELECT last_hash FROM audit_head), mac = (SELECT mac FROM audit_head);",
    )
    .unwrap();
    assert!(matches!(
        quick_failure(&bench.vault),
        AuditFailure::CheckpointForged { .. }
    ));
    restore(&raw);
    bench.vault.verify_audit_since_checkpoint().unwrap();
}

#[test]
fn the_checkpoint_is_one_row_that_only_moves_forward_and_is_never_deleted() {
    let (mut bench, at) = bench_with_checkpoint(2);
    let raw = bench.raw();
    let error = raw
        .execute("UPDATE audit_checkpoint SET sequence = sequence - 1", [])
        .unwrap_err();
    assert!(error.to_string().contains("only moves forward"), "{error}");
    let error = raw
        .execute(
            "UPDATE audit_checkpoint SET hash = ?1",
            [&GENESIS.to_owned()],
        )
        .unwrap_err();
    assert!(error.to_string().contains("only moves forward"), "{error}");
    let error = raw.execute("DELETE FROM audit_checkpoint", []).unwrap_err();
    assert!(error.to_string().contains("never deleted"), "{error}");
    raw.execute(
        "INSERT INTO audit_checkpoint (singleton, sequence, hash, mac, verified_at)
         VALUES (2, 1, ?1, 'x', 'now')",
        [&GENESIS.to_owned()],
    )
    .unwrap_err();
    // A second whole walk moves it to the head.
    let report = bench.vault.verify_audit_recording_checkpoint().unwrap();
    assert_eq!(report.rows, at + 2);
    assert_eq!(
        bench.vault.audit_checkpoint().unwrap().unwrap().sequence,
        at + 2
    );
}

const GENESIS: &str = keymother_vault::GENESIS_HASH;

#[test]
fn an_edited_row_before_the_checkpoint_is_left_to_the_whole_walk_by_design() {
    let (mut bench, at) = bench_with_checkpoint(2);
    let raw = bench.raw();
    drop_guards(&raw);
    raw.execute(
        "UPDATE audit_log SET details = 'what=nothing happened' WHERE sequence = 2",
        [],
    )
    .unwrap();
    // The check before READY walks from the checkpoint: it does not read row 2.
    let quick = bench.vault.verify_audit_since_checkpoint().unwrap();
    assert_eq!(quick.first_walked, at + 1);
    // The whole walk (an explicit check, the background walk) names it.
    assert!(matches!(
        whole_failure(&bench.vault),
        AuditFailure::RowEdited { sequence: 2 }
    ));
    let walker = bench
        .vault
        .audit_chain_checker(Arc::new(AtomicBool::new(false)));
    match walker.run() {
        Err(ChainWalkFailure::Chain(AuditFailure::RowEdited { sequence: 2 })) => {}
        other => panic!("{other:?}"),
    }
    // The checkpoint did not move.
    assert_eq!(
        bench.vault.audit_checkpoint().unwrap().unwrap().sequence,
        at
    );

    // Once the failure is recorded, the next check before READY walks the whole chain.
    bench
        .vault
        .record_audit_chain_failure("audit row 2 was edited")
        .unwrap();
    assert!(matches!(
        quick_failure(&bench.vault),
        AuditFailure::RowEdited { sequence: 2 }
    ));
}

#[test]
fn an_edited_row_at_or_after_the_checkpoint_is_seen_by_the_quick_check() {
    let (bench, at) = bench_with_checkpoint(3);
    let raw = bench.raw();
    drop_guards(&raw);

    // A row after it.
    let actor: String = raw
        .query_row(
            "SELECT actor FROM audit_log WHERE sequence = ?1",
            [at as i64 + 2],
            |row| row.get(0),
        )
        .unwrap();
    raw.execute(
        "UPDATE audit_log SET actor = 'nobody' WHERE sequence = ?1",
        [at as i64 + 2],
    )
    .unwrap();
    assert!(matches!(
        quick_failure(&bench.vault),
        AuditFailure::RowEdited { sequence } if sequence == at + 2
    ));
    raw.execute(
        "UPDATE audit_log SET actor = ?1 WHERE sequence = ?2",
        rusqlite::params![actor, at as i64 + 2],
    )
    .unwrap();
    bench.vault.verify_audit_since_checkpoint().unwrap();

    // The checkpoint's own row: its content no longer matches its hash.
    raw.execute(
        "UPDATE audit_log SET actor = 'nobody' WHERE sequence = ?1",
        [at as i64],
    )
    .unwrap();
    assert!(matches!(
        quick_failure(&bench.vault),
        AuditFailure::RowEdited { sequence } if sequence == at
    ));

    // ... and with its hash recomputed, it is not the row the checkpoint verified.
    let mut row = bench
        .vault
        .audit_rows()
        .unwrap()
        .into_iter()
        .find(|row| row.sequence == at)
        .unwrap();
    row.hash = row.computed_hash();
    raw.execute(
        "UPDATE audit_log SET hash = ?1 WHERE sequence = ?2",
        rusqlite::params![row.hash, at as i64],
    )
    .unwrap();
    assert!(matches!(
        quick_failure(&bench.vault),
        AuditFailure::CheckpointMismatch { sequence } if sequence == at
    ));
}

#[test]
fn deleted_rows_around_the_checkpoint_and_a_truncated_chain() {
    let (bench, at) = bench_with_checkpoint(3);
    let raw = bench.raw();
    drop_guards(&raw);
    let all: Vec<keymother_vault::AuditRow> = bench.vault.audit_rows().unwrap();
    let put_back = |raw: &rusqlite::Connection, sequence: u64| {
        let row = &all[sequence as usize - 1];
        raw.execute(
            "INSERT INTO audit_log (sequence, at, event, actor, details, previous_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            rusqlite::params![
                row.sequence as i64,
                row.at,
                row.event,
                row.actor,
                row.details,
                row.previous_hash,
                row.hash
            ],
        )
        .unwrap();
    };
    let delete = |raw: &rusqlite::Connection, sequence: u64| {
        raw.execute(
            "DELETE FROM audit_log WHERE sequence = ?1",
            [sequence as i64],
        )
        .unwrap();
    };

    // The row just before it: left to the whole walk.
    delete(&raw, at - 1);
    bench.vault.verify_audit_since_checkpoint().unwrap();
    assert!(matches!(
        whole_failure(&bench.vault),
        AuditFailure::RowsMissing { first, last } if first == at - 1 && last == at - 1
    ));
    put_back(&raw, at - 1);

    // The checkpoint's row.
    delete(&raw, at);
    let failure = quick_failure(&bench.vault);
    assert!(
        matches!(failure, AuditFailure::CheckpointRowMissing { sequence } if sequence == at),
        "{failure}"
    );
    put_back(&raw, at);

    // The row just after it.
    delete(&raw, at + 1);
    assert!(matches!(
        quick_failure(&bench.vault),
        AuditFailure::RowsMissing { first, last } if first == at + 1 && last == at + 1
    ));
    put_back(&raw, at + 1);
    bench.vault.verify_audit_since_checkpoint().unwrap();

    // The newest rows: the head says where the chain ended.
    let last = at + 3;
    delete(&raw, last);
    assert!(matches!(
        quick_failure(&bench.vault),
        AuditFailure::RowsTruncated { first, .. } if first == last
    ));
    // Cut back to before the checkpoint, the head moved back to match (without the key its
    // MAC cannot be made): the checkpoint's row is gone.
    for sequence in (at - 1..last).rev() {
        delete(&raw, sequence);
    }
    let previous = &all[at as usize - 3];
    raw.execute(
        "UPDATE audit_head SET last_sequence = ?1, last_hash = ?2",
        rusqlite::params![previous.sequence as i64, previous.hash],
    )
    .unwrap();
    assert!(matches!(
        quick_failure(&bench.vault),
        AuditFailure::CheckpointRowMissing { sequence } if sequence == at
    ));
}

#[test]
fn a_vault_from_the_previous_schema_gets_the_checkpoint_table_and_walks_whole_until_a_walk_passes()
{
    let mut bench = Bench::new(2);
    record_logouts(&mut bench.vault, 2);
    let data_dir = bench.data_dir();
    let Bench { vault, .. } = bench;
    drop(vault);
    let raw = support::raw(&data_dir);
    // 12: the version before the audit checkpoint's migration; the later ones find their
    // work already done (the state CHECK's rewrite) and leave it; the staged imports' table
    // (a later migration) is dropped.
    raw.execute_batch(
        "DROP TABLE audit_checkpoint; DROP INDEX audit_log_by_event;
         DROP TRIGGER key_inventory_staged_batch_dispenses_nothing;
         DROP TRIGGER batch_withdrawal_not_of_a_staged_batch;
         DROP TRIGGER key_inventory_only_staged_keys_deleted;
         DROP TRIGGER batch_only_staged_deleted; DROP TABLE batch_staging;
         PRAGMA user_version = 12;",
    )
    .unwrap();
    drop(raw);

    let mut vault = Vault::open(&data_dir).unwrap();
    assert_eq!(vault.audit_checkpoint().unwrap(), None);
    let report = vault.verify_audit_since_checkpoint().unwrap();
    assert_eq!(report.first_walked, 1);
    assert_eq!(background_walk(&mut vault), Ok(report.rows));
    assert_eq!(
        vault.verify_audit_since_checkpoint().unwrap().first_walked,
        report.rows + 1
    );
}

/// A walk that verified but cannot move the point (another connection holds the write lock
/// past the wait) fails as the database, never as the chain: keymotherd then leaves the point
/// where it was (`event=audit-checkpoint-not-moved`) instead of locking the appliance as if the
/// chain were broken.
#[test]
fn a_busy_database_when_the_point_moves_is_a_database_error_not_a_broken_chain() {
    let mut bench = Bench::new(2);
    record_logouts(&mut bench.vault, 3);
    let walker = bench
        .vault
        .audit_chain_checker(Arc::new(AtomicBool::new(false)));
    let walked = walker.run().unwrap();
    let blocker = support::raw(&bench.data_dir());
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let failure = bench.vault.record_audit_walk(&walked).unwrap_err();
    assert!(matches!(failure, AuditFailure::Vault(_)), "{failure}");
    blocker.execute_batch("ROLLBACK").unwrap();
    bench.vault.record_audit_walk(&walked).unwrap();
}
