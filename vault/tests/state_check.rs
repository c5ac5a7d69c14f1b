//! The inventory's state CHECK written as comparisons (schema.rs): a bad state is still refused, inserting a key builds no temporary b-tree, and a vault from before upgrades intact.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
mod typed;
#[allow(unused_imports)]
use typed::*;

use std::path::Path;

use keymother_vault::{Vault, VaultError};
use support::Bench;

/// The constraint as migration 1 wrote it, and as the migration rewrites it.
const IN_LIST: &str =
    "CHECK (state IN ('available', 'reserved', 'sent', 'used', 'quarantined', 'void'))";
const COMPARISONS: &str = "CHECK (state = 'available' OR state = 'reserved' OR state = 'sent' OR state = 'used' OR state = 'quarantined' OR state = 'void')";

/// The import's INSERT (import.rs store_records).
const IMPORT_INSERT: &str =
    "INSERT INTO key_inventory (key_index, batch_id, source_line, key_block, kcv)
     VALUES (?1, ?2, ?3, ?4, ?5)";

fn inventory_sql(raw: &rusqlite::Connection) -> String {
    raw.query_row(
        "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'key_inventory'",
        [],
        |row| row.get(0),
    )
    .unwrap()
}

fn opcodes(raw: &rusqlite::Connection, sql: &str) -> Vec<String> {
    let mut statement = raw.prepare(&format!("EXPLAIN {sql}")).unwrap();
    let nulls = std::iter::repeat_n(rusqlite::types::Null, statement.parameter_count());
    statement
        .query_map(rusqlite::params_from_iter(nulls), |row| {
            row.get::<_, String>(1)
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Every key's index, state, check value and key block, in order.
fn inventory(data_dir: &Path) -> Vec<(i64, String, String, String)> {
    let raw = support::raw(data_dir);
    let mut statement = raw
        .prepare("SELECT key_index, state, kcv, key_block FROM key_inventory ORDER BY key_index")
        .unwrap();
    statement
        .query_map([], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn integrity(data_dir: &Path) -> String {
    support::raw(data_dir)
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap()
}

/// Writes `sql` as key_inventory's stored statement and sets the schema version to
/// `version`, as a vault written by an older build would have it.
fn take_back(data_dir: &Path, sql: &str, version: i64) {
    let raw = support::raw(data_dir);
    let schema_version: i64 = raw
        .query_row("PRAGMA schema_version", [], |row| row.get(0))
        .unwrap();
    raw.pragma_update(None, "writable_schema", true).unwrap();
    raw.execute(
        "UPDATE sqlite_schema SET sql = ?1 WHERE type = 'table' AND name = 'key_inventory'",
        [sql],
    )
    .unwrap();
    raw.pragma_update(None, "schema_version", schema_version + 1)
        .unwrap();
    raw.pragma_update(None, "writable_schema", false).unwrap();
    drop_later_migrations(&raw);
    raw.pragma_update(None, "user_version", version).unwrap();
}

/// The version just before the state CHECK's rewrite.
const BEFORE_REWRITE: i64 = 13;

/// Drops what the migrations after the rewrite added (the staged imports' table and
/// triggers), so that a vault set back to [`BEFORE_REWRITE`] is one an older build wrote.
fn drop_later_migrations(raw: &rusqlite::Connection) {
    raw.execute_batch(
        "DROP TRIGGER key_inventory_staged_batch_dispenses_nothing;
         DROP TRIGGER batch_withdrawal_not_of_a_staged_batch;
         DROP TRIGGER key_inventory_only_staged_keys_deleted;
         DROP TRIGGER batch_only_staged_deleted; DROP TABLE batch_staging;",
    )
    .unwrap();
}

fn latest_version(data_dir: &Path) -> i64 {
    support::raw(data_dir)
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap()
}

/// A vault with keys in several states: used, sent, reserved, available.
fn bench_with_states() -> Bench {
    let mut bench = Bench::new(6);
    bench.inject("AAAA0001");
    bench.send("AAAA0002");
    bench
        .vault
        .reserve_key(&as_serial("AAAA0003"), "bench-1")
        .unwrap();
    bench
}

#[test]
fn a_new_vault_has_the_comparisons_and_refuses_a_bad_state() {
    let bench = Bench::new(2);
    let raw = bench.raw();
    let sql = inventory_sql(&raw);
    assert!(sql.contains(COMPARISONS), "{sql}");
    assert!(!sql.contains(IN_LIST), "{sql}");
    let inserted = raw
        .execute(
            "INSERT INTO key_inventory (key_index, batch_id, source_line, key_block, kcv, state)
             VALUES (999, 'B-1', 99, 'X', 'ABCDEF', 'lost')",
            [],
        )
        .unwrap_err();
    assert!(
        inserted.to_string().contains("CHECK constraint failed"),
        "{inserted}"
    );
    let updated = raw
        .execute(
            "UPDATE key_inventory SET state = 'lost' WHERE key_index = ?1",
            [support::FIRST_INDEX],
        )
        .unwrap_err();
    assert!(
        updated.to_string().contains("CHECK constraint failed"),
        "{updated}"
    );
    let states: Vec<String> = {
        let mut statement = raw
            .prepare("SELECT DISTINCT state FROM key_inventory")
            .unwrap();
        statement
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(states, ["available"]);
    // Every state the column names is still accepted.
    for state in ["reserved", "sent", "used", "quarantined", "void"] {
        raw.execute(
            "INSERT INTO key_inventory (key_index, batch_id, source_line, key_block, kcv, state)
             VALUES (?1, 'B-1', 99, 'X', 'ABCDEF', ?2)",
            (
                1000 + state.len() as i64 * 10 + i64::from(state.as_bytes()[0]),
                state,
            ),
        )
        .unwrap();
    }
}

#[test]
fn inserting_a_key_builds_no_temporary_b_tree() {
    let bench = Bench::new(2);
    let raw = bench.raw();
    let insert = opcodes(&raw, IMPORT_INSERT);
    assert!(insert.iter().any(|op| op == "Insert"), "{insert:?}");
    assert!(!insert.iter().any(|op| op == "OpenEphemeral"), "{insert:?}");
    let update = opcodes(
        &raw,
        "UPDATE key_inventory SET state = 'reserved' WHERE key_index = 101",
    );
    assert!(!update.iter().any(|op| op == "OpenEphemeral"), "{update:?}");
}

#[test]
fn a_vault_from_the_previous_version_upgrades_intact() {
    let bench = bench_with_states();
    let data_dir = bench.data_dir();
    let latest = latest_version(&data_dir);
    let Bench { vault, .. } = bench;
    drop(vault);
    let before = inventory(&data_dir);
    let states: Vec<&str> = before.iter().map(|key| key.1.as_str()).collect();
    assert_eq!(
        states,
        [
            "used",
            "sent",
            "reserved",
            "available",
            "available",
            "available"
        ]
    );
    let old = inventory_sql(&support::raw(&data_dir)).replace(COMPARISONS, IN_LIST);
    take_back(&data_dir, &old, BEFORE_REWRITE);
    let raw = support::raw(&data_dir);
    assert!(
        opcodes(&raw, IMPORT_INSERT)
            .iter()
            .any(|op| op == "OpenEphemeral"),
        "the older schema builds a temporary b-tree per insert"
    );
    drop(raw);
    assert_eq!(integrity(&data_dir), "ok");

    let vault = Vault::open(&data_dir).unwrap();
    assert_eq!(latest_version(&data_dir), latest);
    let sql = inventory_sql(&support::raw(&data_dir));
    assert!(sql.contains(COMPARISONS) && !sql.contains(IN_LIST), "{sql}");
    assert_eq!(integrity(&data_dir), "ok");
    assert_eq!(inventory(&data_dir), before);
    vault.verify_audit().unwrap();
    let raw = support::raw(&data_dir);
    assert!(
        !opcodes(&raw, IMPORT_INSERT)
            .iter()
            .any(|op| op == "OpenEphemeral")
    );
}

#[test]
fn a_vault_taken_back_after_the_rewrite_upgrades_again_unchanged() {
    let bench = bench_with_states();
    let data_dir = bench.data_dir();
    let latest = latest_version(&data_dir);
    let Bench { vault, .. } = bench;
    drop(vault);
    let before = inventory(&data_dir);
    let sql = inventory_sql(&support::raw(&data_dir));
    let raw = support::raw(&data_dir);
    drop_later_migrations(&raw);
    raw.pragma_update(None, "user_version", BEFORE_REWRITE)
        .unwrap();
    drop(raw);
    let mut vault = Vault::open(&data_dir).unwrap();
    assert_eq!(latest_version(&data_dir), latest);
    assert_eq!(inventory_sql(&support::raw(&data_dir)), sql);
    assert_eq!(inventory(&data_dir), before);
    vault
        .reserve_key(&as_serial("AAAA0004"), "bench-1")
        .unwrap();
}

#[test]
fn a_vault_whose_state_check_is_neither_form_is_refused() {
    let bench = Bench::new(2);
    let data_dir = bench.data_dir();
    let Bench { vault, .. } = bench;
    drop(vault);
    let odd = inventory_sql(&support::raw(&data_dir)).replace(
        COMPARISONS,
        "CHECK (state IN ('available', 'reserved', 'sent', 'used', 'void'))",
    );
    take_back(&data_dir, &odd, BEFORE_REWRITE);
    let error = Vault::open(&data_dir).err().unwrap();
    assert!(matches!(error, VaultError::Corrupt(_)), "{error}");
    assert!(
        error
            .to_string()
            .contains("key_inventory's state constraint"),
        "{error}"
    );
    assert_eq!(latest_version(&data_dir), BEFORE_REWRITE);
    assert_eq!(inventory_sql(&support::raw(&data_dir)), odd);
}
