//! Batch withdrawal: the available keys of a batch are taken out of service for good (never reserved, counted apart, audited); keys already reserved or sent finish normally; each refusal changes nothing; the schema refuses what the code would never do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
mod typed;
#[allow(unused_imports)]
use typed::*;

use keymother_crypto::KeyAlgorithm;
use keymother_keyfiles::testing::FileLines;
use keymother_keyfiles::{CreatedAt, GenerateOptions, KeyIndex};
use keymother_vault::{DispenseError, KeyState, WithdrawError};
use support::{Bench, DEVICE};

fn batch(text: &str) -> keymother_domain::BatchId {
    text.parse().unwrap()
}

/// Imports a second batch, B-2, of `count` keys from index 501.
fn import_second_batch(bench: &mut Bench, count: u32) {
    let options = GenerateOptions {
        batch_id: batch("B-2"),
        issuer: "T".parse().unwrap(),
        algorithm: KeyAlgorithm::Tdes2Key,
        record_count: count,
        first_index: KeyIndex::new(501).unwrap(),
        device_id: DEVICE.parse().unwrap(),
        created: CreatedAt::new(time::OffsetDateTime::now_utc()),
    };
    let path = bench.path("batch-2.keys");
    std::fs::write(
        &path,
        FileLines::generated(&bench.kek, &options)
            .unwrap()
            .sealed(&bench.kek),
    )
    .unwrap();
    bench.vault.import_key_file(&path, &mut |_| {}).unwrap();
}

#[test]
fn the_unused_rest_of_a_batch_is_withdrawn_and_pending_keys_finish() {
    let mut bench = Bench::new(6);
    let used = bench.inject("AAAA0001");
    let pending = bench.send("BBBB0002");
    let rows_before = bench.audit_count();

    let withdrawn = bench
        .vault
        .withdraw_batch(&batch("B-1"), "front end recalled the batch", "Ann Lee")
        .unwrap();
    assert_eq!(
        (withdrawn.withdrawn, withdrawn.pending, withdrawn.used),
        (4, 1, 1)
    );
    let inventory = bench.vault.inventory().unwrap();
    assert_eq!(inventory.count(KeyState::Withdrawn), 4);
    assert_eq!(inventory.count(KeyState::Available), 0);
    assert_eq!(
        inventory.count(KeyState::Void),
        0,
        "counted apart from voids"
    );
    assert_eq!(inventory.count(KeyState::Sent), 1);
    assert_eq!(inventory.batches[0].withdrawn, 4);
    assert_eq!(bench.vault.available_keys().unwrap(), 0);

    // The audit row names the batch, the count, the pending keys, the reason and the operator.
    let rows = bench.vault.audit_rows().unwrap();
    assert_eq!(rows.len(), rows_before + 1);
    let row = rows.last().unwrap();
    assert_eq!(row.sequence, withdrawn.audit_sequence);
    assert_eq!(row.event, "batch-withdrawn");
    assert_eq!(row.actor, "Ann Lee");
    assert_eq!(
        row.details,
        "batch=B-1; keys=4; pending=1; reason=front end recalled the batch; operator=Ann Lee"
    );
    assert!(bench.vault.verify_audit().is_ok());

    // No new terminal gets a key; the pending one finishes normally.
    assert!(matches!(
        bench.vault.reserve_key(&as_serial("CCCC0003"), "bench-1"),
        Err(DispenseError::NoKeysAvailable)
    ));
    let resumed = bench
        .vault
        .reserve_key(&as_serial("BBBB0002"), "bench-1")
        .unwrap();
    assert_eq!(resumed.key_index, pending.key_index);
    assert!(resumed.resumed);
    bench.confirm("BBBB0002", &pending, None);
    assert_eq!(bench.vault.inventory().unwrap().count(KeyState::Used), 2);
    assert_ne!(used.key_index, pending.key_index);
}

#[test]
fn after_a_withdrawal_terminals_get_the_next_batchs_keys_and_never_a_withdrawn_one() {
    let mut bench = Bench::new(5);
    import_second_batch(&mut bench, 3);
    bench
        .vault
        .withdraw_batch(&batch("B-1"), "damaged", "Ann Lee")
        .unwrap();
    for serial in ["AAAA0001", "AAAA0002", "AAAA0003"] {
        let reservation = bench.send(serial);
        assert_eq!(reservation.batch_id.as_str(), "B-2");
        assert!(reservation.key_index.value() >= 501);
    }
    assert!(matches!(
        bench.vault.reserve_key(&as_serial("AAAA0004"), "bench-1"),
        Err(DispenseError::NoKeysAvailable)
    ));
}

#[test]
fn refusals_name_why_and_change_nothing() {
    let mut bench = Bench::new(2);
    let count = bench.audit_count();
    let refusal = |result: Result<_, WithdrawError>| result.err().unwrap().to_string();
    assert_eq!(
        refusal(bench.vault.withdraw_batch(&batch("B-9"), "x", "Ann Lee")),
        "batch B-9 was never imported"
    );
    assert_eq!(
        refusal(bench.vault.withdraw_batch(&batch("B-1"), "  ", "Ann Lee")),
        "withdrawing batch B-1 needs a reason"
    );
    assert_eq!(
        refusal(bench.vault.withdraw_batch(&batch("B-1"), "x", "")),
        "withdrawing batch B-1 needs the operator's name"
    );
    assert_eq!(bench.audit_count(), count);
    assert_eq!(bench.vault.available_keys().unwrap(), 2);

    bench
        .vault
        .withdraw_batch(&batch("B-1"), "recalled", "Ann Lee")
        .unwrap();
    let again = refusal(
        bench
            .vault
            .withdraw_batch(&batch("B-1"), "again", "Ann Lee"),
    );
    assert!(
        again.starts_with("batch B-1 was already withdrawn on "),
        "{again}"
    );

    // A batch whose keys are all dispensed has nothing to withdraw.
    import_second_batch(&mut bench, 1);
    bench.inject("AAAA0001");
    assert_eq!(
        refusal(bench.vault.withdraw_batch(&batch("B-2"), "late", "Ann Lee")),
        "batch B-2 has no available key to withdraw (0 reserved or sent, which finish normally; 1 used or out of service)"
    );
    assert_eq!(
        bench.audit_count(),
        count + 3,
        "one withdrawal, one import, one injection: no row for a refusal"
    );
}

#[test]
fn the_schema_never_lets_a_withdrawn_key_be_dispensed() {
    let mut bench = Bench::new(3);
    import_second_batch(&mut bench, 2);
    bench
        .vault
        .withdraw_batch(&batch("B-1"), "recalled", "Ann Lee")
        .unwrap();
    let raw = bench.raw();
    let refused = |sql: &str| {
        let error = raw
            .execute_batch(sql)
            .err()
            .unwrap_or_else(|| panic!("{sql} was allowed"));
        error.to_string()
    };
    // A withdrawn key is never reserved, nor marked available or un-withdrawn.
    assert!(
        refused(
            "UPDATE key_inventory SET state = 'reserved', hardware_serial = 'X1'
              WHERE key_index = 101"
        )
        .contains("a withdrawn key never changes state")
    );
    assert!(
        refused("UPDATE key_inventory SET withdrawn = 0 WHERE key_index = 101")
            .contains("a withdrawn key stays withdrawn")
    );
    // Only an available key of a withdrawn batch is withdrawn.
    assert!(
        refused("UPDATE key_inventory SET state = 'void', withdrawn = 1 WHERE key_index = 501")
            .contains("only an available key of a withdrawn batch is withdrawn")
    );
    // Keys join only a batch still being imported (the importer checks each chunk: see
    // staged_import.rs); a key written into a withdrawn batch behind the vault's back is
    // still never dispensed.
    raw.execute_batch(
        "INSERT INTO key_inventory (key_index, batch_id, source_line, key_block, kcv)
         VALUES (999, 'B-1', 9, 'x', 'ABCDEF')",
    )
    .unwrap();
    assert!(
        refused("UPDATE key_inventory SET state = 'reserved' WHERE key_index = 999")
            .contains("a key of a withdrawn batch is never dispensed")
    );
    // The record stays as it was written.
    assert!(
        refused("UPDATE batch_withdrawal SET reason = 'nothing'")
            .contains("a batch withdrawal is never rewritten")
    );
    assert!(
        refused("DELETE FROM batch_withdrawal").contains("a batch withdrawal is never deleted")
    );
}

#[test]
fn a_key_of_a_withdrawn_batch_left_available_by_hand_is_never_reserved() {
    // Were a withdrawal row written without its keys (a bug, or a hand-made database), the
    // trigger still stops any reservation of the batch's keys.
    let mut bench = Bench::new(2);
    let raw = bench.raw();
    raw.execute_batch(
        "INSERT INTO batch_withdrawal (batch_id, withdrawn_at, keys, reason, operator)
         VALUES ('B-1', '2026-12-06T10:00:00Z', 2, 'by hand', 'Ann Lee')",
    )
    .unwrap();
    drop(raw);
    let error = bench
        .vault
        .reserve_key(&as_serial("AAAA0001"), "bench-1")
        .err()
        .unwrap();
    assert!(
        error
            .to_string()
            .contains("a key of a withdrawn batch is never dispensed"),
        "{error}"
    );
    assert_eq!(
        bench.vault.inventory().unwrap().count(KeyState::Reserved),
        0
    );
}
