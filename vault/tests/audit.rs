//! The audit chain: every security event is recorded with the action, and every way of breaking the chain on disk is caught and named by row.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
mod typed;
#[allow(unused_imports)]
use typed::*;

use std::fs;

use keymother_vault::{
    AuditEvent, AuditExportError, AuditFailure, AuditRow, GENESIS_HASH, HeadMacStatus, Vault,
    VaultError, verify_audit_export,
};
use support::{Bench, DEVICE};

/// Drops the triggers that stop the daemon's own bugs; an attacker with the file can too.
fn drop_guards(connection: &rusqlite::Connection) {
    connection
        .execute_batch(
            "DROP TRIGGER audit_log_never_rewritten;
             DROP TRIGGER audit_log_never_deleted;
             DROP TRIGGER audit_head_only_moves_forward;",
        )
        .unwrap();
}

fn insert_row(connection: &rusqlite::Connection, row: &AuditRow) {
    connection
        .execute(
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
}

/// A well-formed row the attacker made up, hash and link correct.
fn forged_row(sequence: u64, previous_hash: &str) -> AuditRow {
    let mut row = AuditRow {
        sequence,
        at: "2026-11-21T08:00:00Z".to_owned(),
        event: "void".to_owned(),
        actor: "mallory".to_owned(),
        details: "key_index=00000101; reason=nothing to see".to_owned(),
        previous_hash: previous_hash.to_owned(),
        hash: String::new(),
    };
    row.hash = row.computed_hash();
    row
}

fn broken(bench: &Bench) -> AuditFailure {
    match bench.vault.verify_audit() {
        Ok(report) => panic!("the chain verified: {report:?}"),
        Err(failure) => failure,
    }
}

/// Ceremonies, an import and three injections: six events after creation, all verified.
fn bench_with_history() -> Bench {
    let mut bench = Bench::new(5);
    bench.inject("123L013K");
    let reservation = bench.send("123L013L");
    bench.confirm("123L013L", &reservation, Some("Ann Lee"));
    bench.inject("123L013M");
    bench
}

#[test]
fn ceremonies_an_import_and_confirmations_are_recorded_and_verify() {
    let bench = bench_with_history();
    let rows = bench.vault.audit_rows().unwrap();
    let events: Vec<&str> = rows.iter().map(|row| row.event.as_str()).collect();
    assert_eq!(
        events,
        [
            "config-change",
            "ceremony",
            "ceremony",
            "import",
            "injection",
            "injection",
            "injection"
        ]
    );
    assert_eq!(
        rows[0].details,
        format!("what=vault created for device {DEVICE}")
    );
    assert_eq!(rows[0].previous_hash, GENESIS_HASH);
    for (position, row) in rows.iter().enumerate() {
        assert_eq!(row.sequence, position as u64 + 1);
        assert_eq!(row.hash, row.computed_hash());
        if position > 0 {
            assert_eq!(row.previous_hash, rows[position - 1].hash);
        }
    }
    // Every custodian is named, as the actor and in the details.
    assert_eq!(rows[1].actor, "Ann Lee/Raj Patel/Kim Ng");
    assert_eq!(
        rows[1].details,
        format!(
            "secret=KEK; algorithm=AES-256; kcv={}; components=3; custodians=Ann Lee/Raj Patel/Kim Ng",
            bench.kek.kcv()
        )
    );
    assert_eq!(rows[2].actor, "Ann Lee/Raj Patel");
    assert_eq!(
        rows[2].details,
        format!(
            "secret=TTK; algorithm=AES-128; kcv={}; components=2; custodians=Ann Lee/Raj Patel",
            bench.ttk.kcv()
        )
    );
    let batch = &bench.vault.inventory().unwrap().batches[0];
    assert_eq!(
        rows[3].details,
        format!("batch=B-1; records=5; file_sha256={}", batch.file_sha256)
    );
    assert_eq!(rows[4].actor, "system");
    assert_eq!(
        rows[4].details,
        "key_index=00000101; hardware_serial=123L013K; smn=123L013K00000101; port=bench-1"
    );
    assert_eq!(rows[5].actor, "Ann Lee");
    assert!(
        rows[5].details.ends_with("; operator=Ann Lee"),
        "{}",
        rows[5].details
    );

    let report = bench.vault.verify_audit().unwrap();
    assert_eq!(report.rows, 7);
    assert_eq!(report.head_hash, rows[6].hash);
    assert_eq!(report.head_mac, HeadMacStatus::Verified);

    // Check values and names only: neither secret appears in any row, in any form.
    for secret in [&bench.kek, &bench.ttk] {
        let hex = secret.expose_secret_hex();
        for row in &rows {
            let text = format!("{}{}{}", row.actor, row.details, row.event).to_uppercase();
            assert!(!text.contains(hex.as_str()));
        }
    }
}

#[test]
fn an_idempotent_confirmation_or_a_refused_one_adds_no_row() {
    let mut bench = Bench::new(3);
    let reservation = bench.send("123L013K");
    bench.confirm("123L013K", &reservation, None);
    let after_first = bench.audit_count();
    let again = bench.confirm("123L013K", &reservation, None);
    assert!(again.already_confirmed);
    assert_eq!(bench.audit_count(), after_first);
    // A reservation alone is not an injection, nor is a wrong check value.
    let other = bench
        .vault
        .reserve_key(&as_serial("123L013L"), "bench-2")
        .unwrap();
    let smn = format!("123L013L{:08}", other.key_index);
    let wrong = bench.vault.confirm_key(
        &keymother_vault::ConfirmationReport {
            key_index: as_index(other.key_index),
            hardware_serial: leak(as_serial("123L013L")),
            kcv: as_kcv("000000"),
            smn: leak(as_smn(&smn)),
            port: "bench-2",
            terminal_model: leak(as_model("REF-TERMINAL")),
        },
        3,
    );
    assert!(wrong.is_err());
    assert_eq!(bench.audit_count(), after_first);
    bench.vault.verify_audit().unwrap();
}

#[test]
fn a_refused_key_file_is_recorded_and_changes_nothing_else() {
    let mut bench = Bench::new(3);
    let before = bench.vault.inventory().unwrap();
    let path = bench.path("batch-1.keys");
    bench.vault.import_key_file(&path, &mut |_| {}).unwrap_err();
    assert_eq!(bench.vault.inventory().unwrap(), before);
    let last = bench.vault.audit_rows().unwrap().pop().unwrap();
    assert_eq!(last.event, "import-refused");
    assert_eq!(last.actor, "custodians");
    assert!(
        last.details
            .starts_with(&format!("file={}; reason=line 2: ", path.display())),
        "{}",
        last.details
    );
    bench.vault.verify_audit().unwrap();
}

#[test]
fn events_from_outside_the_vault_are_recorded_with_escaped_values() {
    let mut bench = Bench::new(1);
    let events = [
        AuditEvent::LoginRefused {
            peer: "bench".to_owned(),
            reason: "the operator certificate has expired: notAfter=2024".to_owned(),
        },
        AuditEvent::Login {
            operator: "O'Brien, Pat".to_owned(),
            subject: "CN=O'Brien\\, Pat,O=Acquirer".to_owned(),
            serial: "0a1b".to_owned(),
            until: "2030-01-01T08:00:00Z".to_owned(),
        },
        AuditEvent::ConfigChange {
            what: "port bench-2 baud=9600; parity=even".to_owned(),
            operator: Some("O'Brien, Pat".to_owned()),
        },
        AuditEvent::Tamper {
            input: "GPIO17\nfalling".to_owned(),
        },
        AuditEvent::Logout {
            operator: "O'Brien, Pat".to_owned(),
            reason: "logged out".to_owned(),
        },
    ];
    for event in events {
        bench.vault.record_audit(event).unwrap();
    }
    let rows = bench.vault.audit_rows().unwrap();
    let tail: Vec<(&str, &str, &str)> = rows[rows.len() - 5..]
        .iter()
        .map(|row| (row.event.as_str(), row.actor.as_str(), row.details.as_str()))
        .collect();
    assert_eq!(
        tail,
        [
            (
                "login-refused",
                "bench",
                "reason=the operator certificate has expired: notAfter%3D2024; peer=bench"
            ),
            (
                "login",
                "O'Brien%2C Pat",
                "subject=CN%3DO'Brien\\%2C Pat%2CO%3DAcquirer; serial=0a1b; until=2030-01-01T08:00:00Z; operator=O'Brien%2C Pat"
            ),
            (
                "config-change",
                "O'Brien%2C Pat",
                "what=port bench-2 baud%3D9600%3B parity%3Deven; operator=O'Brien%2C Pat"
            ),
            ("tamper", "system", "input=GPIO17%0Afalling"),
            (
                "logout",
                "O'Brien%2C Pat",
                "reason=logged out; operator=O'Brien%2C Pat"
            ),
        ]
    );
    bench.vault.verify_audit().unwrap();
}

#[test]
fn an_edited_row_is_named() {
    let bench = bench_with_history();
    let raw = bench.raw();
    drop_guards(&raw);
    raw.execute(
        "UPDATE audit_log SET details = replace(details, '123L013K', '999X999X') WHERE sequence = 5",
        [],
    )
    .unwrap();
    let failure = broken(&bench);
    assert!(
        matches!(failure, AuditFailure::RowEdited { sequence: 5 }),
        "{failure}"
    );
    assert_eq!(
        failure.to_string(),
        "audit row 5 was edited: its content does not match its hash"
    );
}

#[test]
fn an_edited_row_with_its_hash_recomputed_is_caught_at_the_next_row() {
    let bench = bench_with_history();
    let raw = bench.raw();
    drop_guards(&raw);
    let mut row = bench.vault.audit_rows().unwrap()[4].clone();
    row.details = row.details.replace("123L013K", "999X999X");
    row.hash = row.computed_hash();
    raw.execute(
        "UPDATE audit_log SET details = ?1, hash = ?2 WHERE sequence = 5",
        (&row.details, &row.hash),
    )
    .unwrap();
    let failure = broken(&bench);
    assert!(
        matches!(failure, AuditFailure::LinkBroken { sequence: 6 }),
        "{failure}"
    );
    assert!(
        failure
            .to_string()
            .starts_with("audit row 6 does not link to row 5: row 5 was rewritten"),
        "{failure}"
    );
}

#[test]
fn a_row_inserted_in_the_middle_is_named() {
    let bench = bench_with_history();
    let rows = bench.vault.audit_rows().unwrap();
    let raw = bench.raw();
    drop_guards(&raw);
    // Make room after row 3 and slip a well-formed row in, linked to row 3.
    raw.execute_batch(
        "UPDATE audit_log SET sequence = sequence + 1000 WHERE sequence >= 4;
         UPDATE audit_log SET sequence = sequence - 999 WHERE sequence >= 1000;",
    )
    .unwrap();
    insert_row(&raw, &forged_row(4, &rows[2].hash));
    let failure = broken(&bench);
    assert!(
        matches!(failure, AuditFailure::RowsInserted { first: 4, last: 4 }),
        "{failure}"
    );
    assert_eq!(
        failure.to_string(),
        "audit row 4 was inserted: row 5 links to row 3"
    );
}

#[test]
fn a_row_deleted_from_the_middle_is_named() {
    let bench = bench_with_history();
    let raw = bench.raw();
    drop_guards(&raw);
    raw.execute("DELETE FROM audit_log WHERE sequence = 4", [])
        .unwrap();
    let failure = broken(&bench);
    assert!(
        matches!(failure, AuditFailure::RowsMissing { first: 4, last: 4 }),
        "{failure}"
    );
    assert_eq!(
        failure.to_string(),
        "audit row 4 was deleted: the chain jumps from row 3 to row 5"
    );
}

#[test]
fn the_last_rows_deleted_are_named_by_the_head() {
    let bench = bench_with_history();
    let raw = bench.raw();
    drop_guards(&raw);
    raw.execute("DELETE FROM audit_log WHERE sequence = 7", [])
        .unwrap();
    let failure = broken(&bench);
    assert!(
        matches!(failure, AuditFailure::RowsTruncated { first: 7, last: 7 }),
        "{failure}"
    );
    assert_eq!(
        failure.to_string(),
        "audit row 7 was deleted from the end of the chain: the head records row 7"
    );
    raw.execute("DELETE FROM audit_log WHERE sequence >= 5", [])
        .unwrap();
    let failure = broken(&bench);
    assert!(
        matches!(failure, AuditFailure::RowsTruncated { first: 5, last: 7 }),
        "{failure}"
    );
}

#[test]
fn a_cut_chain_with_its_head_moved_back_fails_the_mac() {
    let bench = bench_with_history();
    let rows = bench.vault.audit_rows().unwrap();
    let raw = bench.raw();
    drop_guards(&raw);
    raw.execute("DELETE FROM audit_log WHERE sequence >= 6", [])
        .unwrap();
    raw.execute(
        "UPDATE audit_head SET last_sequence = 5, last_hash = ?1",
        [&rows[4].hash],
    )
    .unwrap();
    let failure = broken(&bench);
    assert!(
        matches!(failure, AuditFailure::HeadForged { last_sequence: 5 }),
        "{failure}"
    );
}

#[test]
fn a_chain_rewritten_consistently_without_the_storage_key_fails_the_head_mac() {
    let bench = bench_with_history();
    let mut rows = bench.vault.audit_rows().unwrap();
    let raw = bench.raw();
    drop_guards(&raw);
    // Rewrite row 5 and recompute every hash after it: the chain itself is consistent.
    rows[4].details = rows[4].details.replace("123L013K", "999X999X");
    for position in 4..rows.len() {
        rows[position].previous_hash = rows[position - 1].hash.clone();
        rows[position].hash = rows[position].computed_hash();
    }
    raw.execute("DELETE FROM audit_log WHERE sequence >= 5", [])
        .unwrap();
    for row in &rows[4..] {
        insert_row(&raw, row);
    }
    // Without the head moved, the head no longer matches the last row.
    let failure = broken(&bench);
    assert!(
        matches!(failure, AuditFailure::HeadMismatch { sequence: 7 }),
        "{failure}"
    );
    // With the head moved too, its MAC gives the forgery away.
    raw.execute("UPDATE audit_head SET last_hash = ?1", [&rows[6].hash])
        .unwrap();
    let failure = broken(&bench);
    assert!(
        matches!(failure, AuditFailure::HeadForged { last_sequence: 7 }),
        "{failure}"
    );
    assert!(
        failure
            .to_string()
            .starts_with("the audit head (last row 7) does not verify under the storage key"),
        "{failure}"
    );
}

#[test]
fn a_head_copied_from_another_vault_does_not_verify() {
    let bench = bench_with_history();
    let other = bench_with_history();
    let (sequence, hash, mac): (i64, String, String) = other
        .raw()
        .query_row(
            "SELECT last_sequence, last_hash, mac FROM audit_head",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .unwrap();
    let rows = other.vault.audit_rows().unwrap();
    let raw = bench.raw();
    drop_guards(&raw);
    raw.execute("DELETE FROM audit_log", []).unwrap();
    for row in &rows {
        insert_row(&raw, row);
    }
    raw.execute(
        "UPDATE audit_head SET last_sequence = ?1, last_hash = ?2, mac = ?3",
        (sequence, hash, mac),
    )
    .unwrap();
    assert!(matches!(
        broken(&bench),
        AuditFailure::HeadForged { last_sequence: 7 }
    ));
}

#[test]
fn a_row_appended_past_the_head_is_named() {
    let bench = bench_with_history();
    let rows = bench.vault.audit_rows().unwrap();
    insert_row(&bench.raw(), &forged_row(8, &rows[6].hash));
    let failure = broken(&bench);
    assert!(
        matches!(failure, AuditFailure::RowsBeyondHead { first: 8, last: 8 }),
        "{failure}"
    );
    assert_eq!(
        failure.to_string(),
        "audit row 8 was inserted after the head's last row 7"
    );
}

#[test]
fn a_missing_head_is_reported() {
    let bench = bench_with_history();
    let raw = bench.raw();
    raw.execute_batch("DROP TRIGGER audit_head_never_deleted; DELETE FROM audit_head;")
        .unwrap();
    assert!(matches!(broken(&bench), AuditFailure::HeadMissing));
}

#[test]
fn nothing_is_recorded_on_a_tampered_chain_and_the_action_is_refused() {
    let mut bench = bench_with_history();
    let raw = bench.raw();
    drop_guards(&raw);
    raw.execute("DELETE FROM audit_log WHERE sequence = 7", [])
        .unwrap();
    let error = bench
        .vault
        .record_audit(AuditEvent::Login {
            operator: "ann".to_owned(),
            subject: "CN=ann".to_owned(),
            serial: "01".to_owned(),
            until: "2030-01-01T08:00:00Z".to_owned(),
        })
        .unwrap_err();
    assert!(matches!(error, VaultError::AuditTampered(_)), "{error}");
    assert!(
        error
            .to_string()
            .contains("audit row 7 is missing or is not the row the head records"),
        "{error}"
    );
    // A confirmation cannot be recorded either, so the key stays pending for its terminal.
    let reservation = bench.send("123L013N");
    let smn = format!("123L013N{:08}", reservation.key_index);
    let refused = bench.vault.confirm_key(
        &keymother_vault::ConfirmationReport {
            key_index: as_index(reservation.key_index),
            hardware_serial: leak(as_serial("123L013N")),
            kcv: reservation.kcv,
            smn: leak(as_smn(&smn)),
            port: "bench-1",
            terminal_model: leak(as_model("REF-TERMINAL")),
        },
        3,
    );
    assert!(refused.is_err());
    assert!(
        bench
            .vault
            .smn_rows()
            .unwrap()
            .iter()
            .all(|row| row.smn != smn)
    );
    assert_eq!(
        bench
            .vault
            .reserve_key(&as_serial("123L013N"), "bench-1")
            .unwrap()
            .key_index,
        reservation.key_index
    );
}

#[test]
fn the_audit_export_lists_every_row_and_reverifies_offline() {
    let bench = bench_with_history();
    let path = bench.path("audit.csv");
    let exported = bench.vault.export_audit(&path).unwrap();
    assert_eq!(exported.rows, 7);
    assert_eq!(
        exported.verification,
        "ok; head MAC verified under the storage key"
    );
    let text = fs::read_to_string(&path).unwrap();
    let rows = bench.vault.audit_rows().unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "# KEYMOTHER-AUDIT-EXPORT/1");
    assert_eq!(lines[1], format!("# device-id: {DEVICE}"));
    assert!(lines[2].starts_with("# exported-at: "));
    assert_eq!(lines[3], "# row-count: 7");
    assert_eq!(
        lines[4],
        format!("# head: sequence=7; hash={}", rows[6].hash)
    );
    assert_eq!(
        lines[5],
        "# verification: ok; head MAC verified under the storage key"
    );
    assert_eq!(
        lines[6],
        "sequence,at,event,actor,details,previous_hash,hash"
    );
    assert_eq!(
        lines[7],
        format!(
            "1,{},config-change,system,what=vault created for device {DEVICE},{GENESIS_HASH},{}",
            rows[0].at, rows[0].hash
        )
    );
    assert_eq!(lines.len(), 14);

    let report = verify_audit_export(text.as_bytes(), "audit.csv").unwrap();
    assert_eq!(report.rows, 7);
    assert_eq!(report.head_hash, rows[6].hash);
    assert_eq!(report.head_mac, HeadMacStatus::NotChecked);

    // An edited line is named by its row.
    let edited = text.replace("smn=123L013K00000101", "smn=123L013K00000109");
    let error = verify_audit_export(edited.as_bytes(), "audit.csv").unwrap_err();
    assert_eq!(
        error.to_string(),
        "audit.csv: audit row 5 was edited: its content does not match its hash"
    );
    // The last line dropped (and the count fixed): the head line says a row is missing.
    let mut cut: Vec<&str> = lines[..lines.len() - 1].to_vec();
    cut[3] = "# row-count: 6";
    let cut = cut.join("\n") + "\n";
    let error = verify_audit_export(cut.as_bytes(), "audit.csv").unwrap_err();
    assert!(
        matches!(
            error,
            AuditExportError::Chain {
                failure: AuditFailure::RowsTruncated { first: 7, last: 7 },
                ..
            }
        ),
        "{error}"
    );
    // A malformed line is named by its line number.
    let malformed = text.replacen(",config-change,", ",config-change;", 1);
    let error = verify_audit_export(malformed.as_bytes(), "audit.csv").unwrap_err();
    assert_eq!(
        error.to_string(),
        "audit.csv: line 8: expected 7 comma-separated fields, found 6"
    );
}

#[test]
fn a_broken_chain_is_exported_with_the_failure_in_its_header() {
    let bench = bench_with_history();
    let raw = bench.raw();
    drop_guards(&raw);
    raw.execute(
        "UPDATE audit_log SET actor = 'nobody' WHERE sequence = 3",
        [],
    )
    .unwrap();
    let path = bench.path("audit.csv");
    let exported = bench.vault.export_audit(&path).unwrap();
    assert_eq!(
        exported.verification,
        "FAILED: audit row 3 was edited: its content does not match its hash"
    );
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.contains(
        "\n# verification: FAILED: audit row 3 was edited: its content does not match its hash\n"
    ));
    let error = verify_audit_export(text.as_bytes(), "audit.csv").unwrap_err();
    assert!(
        error.to_string().contains("audit row 3 was edited"),
        "{error}"
    );
}

#[test]
fn a_vault_from_before_the_audit_chain_starts_one_when_upgraded() {
    let bench = Bench::new(2);
    let data_dir = bench.data_dir();
    let Bench { vault, kek, .. } = bench;
    drop(vault);
    let raw = support::raw(&data_dir);
    raw.execute_batch(
        "DROP TRIGGER key_inventory_staged_batch_dispenses_nothing;
             DROP TRIGGER batch_withdrawal_not_of_a_staged_batch;
             DROP TRIGGER key_inventory_only_staged_keys_deleted;
             DROP TRIGGER batch_only_staged_deleted; DROP TABLE batch_staging;
             DROP INDEX key_inventory_pending; DROP TRIGGER key_inventory_terminal_model_is_permanent;
        ALTER TABLE key_inventory DROP COLUMN terminal_model;
        DROP TABLE final_export; DROP TABLE predecessor;
         DROP TABLE expected_device; DROP TABLE expected_refusal; DROP TABLE expected_list;
         DROP TABLE dukpt_registry; DROP TABLE dukpt_allocation;
         DROP INDEX key_inventory_by_terminal; DROP INDEX key_inventory_one_key_per_grant;
         DROP TRIGGER key_inventory_grant_is_permanent;
         DROP TRIGGER key_inventory_reinjection_needs_a_grant;
         ALTER TABLE key_inventory DROP COLUMN reinjection_grant;
         DROP INDEX smn_registry_by_terminal; DROP INDEX smn_registry_replaced_once;
         DROP TRIGGER smn_registry_replaces_its_terminals_row;
         ALTER TABLE smn_registry DROP COLUMN replaces;
         DROP TABLE reinjection_grant;
         DROP TABLE dukpt_export; DROP TABLE bdk;
         DROP TABLE kdh_identity; DROP TABLE smn_export; DROP INDEX audit_log_by_event; DROP TABLE audit_log; DROP TABLE audit_head;
         DROP TABLE batch_withdrawal;
         DROP TRIGGER key_inventory_withdrawal_is_permanent;
         DROP TRIGGER key_inventory_withdrawn_only_from_available;
         DROP TRIGGER key_inventory_withdrawn_batch_dispenses_nothing;
         DROP TRIGGER key_inventory_withdrawn_key_never_changes_state;
         DROP TRIGGER IF EXISTS key_inventory_no_key_joins_a_withdrawn_batch;
         ALTER TABLE key_inventory DROP COLUMN withdrawn;
         DROP TRIGGER key_inventory_operator_is_permanent;
         ALTER TABLE key_inventory DROP COLUMN operator;
         ALTER TABLE smn_registry DROP COLUMN operator;
         DROP TABLE audit_checkpoint;
         PRAGMA user_version = 2;",
    )
    .unwrap();
    drop(raw);
    let vault = Vault::open(&data_dir).unwrap();
    let rows = vault.audit_rows().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].details,
        "what=audit chain started on an existing vault (schema 2 to 3)"
    );
    let report = vault.verify_audit().unwrap();
    assert_eq!((report.rows, report.head_mac), (1, HeadMacStatus::Verified));
    assert!(
        vault
            .load_secret(keymother_vault::SecretName::Kek)
            .unwrap()
            .same_material_as(&kek)
    );
}

#[test]
fn the_chain_survives_reopening() {
    let bench = bench_with_history();
    let data_dir = bench.data_dir();
    let before = bench.vault.verify_audit().unwrap();
    drop(bench.vault);
    let mut vault = Vault::open(&data_dir).unwrap();
    assert_eq!(vault.verify_audit().unwrap(), before);
    vault
        .record_audit(AuditEvent::Logout {
            operator: "ann".to_owned(),
            reason: "logged out".to_owned(),
        })
        .unwrap();
    assert_eq!(vault.verify_audit().unwrap().rows, 8);
}

#[test]
fn another_storage_key_cannot_vouch_for_the_head() {
    let bench = bench_with_history();
    let data_dir = bench.data_dir();
    drop(bench.vault);
    fs::write(data_dir.join("storage.key"), [7u8; 32]).unwrap();
    let vault = Vault::open(&data_dir).unwrap();
    assert!(matches!(
        vault.verify_audit(),
        Err(AuditFailure::HeadForged { last_sequence: 7 })
    ));
}
