//! Dispensing: one key per terminal, the same key again until it is confirmed, never a key to two terminals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod typed;
use typed::*;

use std::collections::{HashMap, HashSet};
use std::path::Path;

use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_keyfiles::testing::FileLines;
use keymother_keyfiles::{CreatedAt, GenerateOptions, KeyIndex};
use keymother_vault::{ConfirmationReport, DispenseError, KeyState, SecretName, Vault};

const DEVICE: &str = "KM-TEST-0001";

fn vault_with_keys(directory: &Path, count: u32) -> Vault {
    let mut vault = Vault::create(&directory.join("data"), &DEVICE.parse().unwrap()).unwrap();
    let kek = SecretKey::generate(KeyAlgorithm::Aes256).unwrap();
    vault
        .install_secret(
            SecretName::Kek,
            &kek,
            &keymother_vault::CeremonyRecord::named(&["Ann Lee", "Raj Patel"]).unwrap(),
        )
        .unwrap();
    let options = GenerateOptions {
        batch_id: "B-1".parse().unwrap(),
        issuer: "T".parse().unwrap(),
        algorithm: KeyAlgorithm::Tdes2Key,
        record_count: count,
        first_index: KeyIndex::new(101).unwrap(),
        device_id: DEVICE.parse().unwrap(),
        created: CreatedAt::new(time::OffsetDateTime::now_utc()),
    };
    let path = directory.join("f.keys");
    std::fs::write(
        &path,
        FileLines::generated(&kek, &options).unwrap().sealed(&kek),
    )
    .unwrap();
    vault.import_key_file(&path, &mut |_| {}).unwrap();
    vault
}

fn report(
    key_index: u32,
    hardware_serial: &str,
    check_value: impl std::fmt::Display,
    terminal_smn: &str,
) -> ConfirmationReport<'static> {
    ConfirmationReport {
        key_index: as_index(key_index),
        hardware_serial: leak(as_serial(hardware_serial)),
        kcv: as_kcv(check_value),
        smn: leak(as_smn(terminal_smn)),
        port: "bench-1",
        terminal_model: leak(as_model("REF-TERMINAL")),
    }
}

#[test]
fn a_terminal_gets_the_same_key_until_it_confirms() {
    let directory = tempfile::tempdir().unwrap();
    let mut vault = vault_with_keys(directory.path(), 5);
    let first = vault
        .reserve_key(&as_serial("123L013K"), "bench-1")
        .unwrap();
    assert_eq!((first.key_index.value(), first.resumed), (101, false));
    let again = vault
        .reserve_key(&as_serial("123L013K"), "bench-1")
        .unwrap();
    assert_eq!((again.key_index.value(), again.resumed), (101, true));
    vault
        .mark_sent(as_index(101), &as_serial("123L013K"))
        .unwrap();
    assert_eq!(
        vault
            .reserve_key(&as_serial("123L013K"), "bench-2")
            .unwrap()
            .key_index,
        101
    );
    let other = vault
        .reserve_key(&as_serial("999X0001"), "bench-1")
        .unwrap();
    assert_eq!(other.key_index, 102);

    let smn = "123L013K00000101";
    let confirmed = vault
        .confirm_key(&report(101, "123L013K", first.kcv, smn), 3)
        .unwrap();
    assert_eq!(
        (confirmed.smn.as_str(), confirmed.already_confirmed),
        (smn, false)
    );
    // A retransmitted confirmation changes nothing.
    assert!(
        vault
            .confirm_key(&report(101, "123L013K", first.kcv, smn), 3)
            .unwrap()
            .already_confirmed
    );
    // Asking again after confirming is refused: the terminal already holds its key
    // (re-injection needs a grant: tests/reinjection.rs), and nothing is reserved.
    let refused = vault
        .reserve_key(&as_serial("123L013K"), "bench-1")
        .unwrap_err();
    assert!(
        matches!(&refused, DispenseError::AlreadyInjected { smn: held, .. } if held == smn),
        "{refused}"
    );
    assert_eq!(vault.inventory().unwrap().count(KeyState::Available), 3);

    let rows = vault.smn_rows().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (
            rows[0].smn.as_str(),
            rows[0].key_index.value(),
            rows[0].port.as_str()
        ),
        (smn, 101, "bench-1")
    );
    assert_eq!(vault.inventory().unwrap().count(KeyState::Used), 1);
}

#[test]
fn the_smn_is_the_hardware_serial_and_the_padded_index() {
    let directory = tempfile::tempdir().unwrap();
    let mut vault = vault_with_keys(directory.path(), 1);
    let reservation = vault
        .reserve_key(&as_serial("123L013K"), "bench-1")
        .unwrap();
    let error = vault
        .confirm_key(
            &report(101, "123L013K", reservation.kcv, "123L013K00000102"),
            3,
        )
        .err()
        .unwrap();
    assert!(
        matches!(error, DispenseError::SmnMismatch { .. }),
        "{error}"
    );
    assert!(vault.smn_rows().unwrap().is_empty());
}

#[test]
fn nobody_else_can_confirm_or_take_a_reserved_key() {
    let directory = tempfile::tempdir().unwrap();
    let mut vault = vault_with_keys(directory.path(), 2);
    let reservation = vault
        .reserve_key(&as_serial("AAAA0001"), "bench-1")
        .unwrap();
    let error = vault
        .confirm_key(
            &report(101, "BBBB0002", reservation.kcv, "BBBB000200000101"),
            3,
        )
        .err()
        .unwrap();
    assert_eq!(
        error.to_string(),
        "key 00000101 was not delivered to terminal BBBB0002"
    );
    assert!(
        vault
            .mark_sent(as_index(101), &as_serial("BBBB0002"))
            .is_err()
    );
    assert_eq!(
        vault
            .reserve_key(&as_serial("BBBB0002"), "bench-2")
            .unwrap()
            .key_index,
        102
    );
    let error = vault
        .reserve_key(&as_serial("CCCC0003"), "bench-3")
        .err()
        .unwrap();
    assert_eq!(
        error.to_string(),
        "no keys are available; import a key file"
    );
}

#[test]
fn wrong_check_values_quarantine_the_key() {
    let directory = tempfile::tempdir().unwrap();
    let mut vault = vault_with_keys(directory.path(), 3);
    vault
        .reserve_key(&as_serial("AAAA0001"), "bench-1")
        .unwrap();
    let smn = "AAAA000100000101";
    for failure in 1..=3u32 {
        match vault.confirm_key(&report(101, "AAAA0001", "000000", smn), 3) {
            Err(DispenseError::KcvMismatch {
                failures,
                quarantined,
                ..
            }) => {
                assert_eq!((failures, quarantined), (failure, failure == 3));
            }
            other => panic!(
                "expected a KCV mismatch, got {:?}",
                other.map(|c| c.key_index)
            ),
        }
    }
    assert_eq!(vault.inventory().unwrap().count(KeyState::Quarantined), 1);
    // The quarantined key is never offered again, not even to its own terminal.
    assert_eq!(
        vault
            .reserve_key(&as_serial("AAAA0001"), "bench-1")
            .unwrap()
            .key_index,
        102
    );
    assert!(vault.smn_rows().unwrap().is_empty());
}

#[test]
fn the_schema_refuses_rebinding_reusing_and_rewriting() {
    let directory = tempfile::tempdir().unwrap();
    let mut vault = vault_with_keys(directory.path(), 2);
    let reservation = vault
        .reserve_key(&as_serial("AAAA0001"), "bench-1")
        .unwrap();
    vault
        .confirm_key(
            &report(101, "AAAA0001", reservation.kcv, "AAAA000100000101"),
            3,
        )
        .unwrap();
    vault
        .reserve_key(&as_serial("BBBB0002"), "bench-1")
        .unwrap();
    drop(vault);
    let connection =
        rusqlite::Connection::open(directory.path().join("data/vault.sqlite")).unwrap();
    for (statement, words) in [
        (
            "UPDATE key_inventory SET hardware_serial = 'EVIL0001' WHERE key_index = 102",
            "never bound to another",
        ),
        (
            "UPDATE key_inventory SET state = 'available', hardware_serial = NULL WHERE key_index = 102",
            "never becomes available again",
        ),
        (
            "UPDATE key_inventory SET state = 'available' WHERE key_index = 101",
            "never becomes available again",
        ),
        (
            "UPDATE smn_registry SET hardware_serial = 'EVIL0001'",
            "never rewritten",
        ),
        ("DELETE FROM smn_registry", "never deleted"),
        (
            "UPDATE key_inventory SET hardware_serial = 'AAAA0001', state = 'reserved' WHERE key_index = 102",
            "never bound to another",
        ),
    ] {
        let error = connection.execute(statement, []).err().unwrap().to_string();
        assert!(error.contains(words), "{statement}: {error}");
    }
}

#[test]
fn concurrent_ports_never_share_a_key() {
    let directory = tempfile::tempdir().unwrap();
    drop(vault_with_keys(directory.path(), 400));
    let data = directory.path().join("data");
    let handles: Vec<_> = (0..8)
        .map(|port| {
            let data = data.clone();
            std::thread::spawn(move || {
                let mut vault = Vault::open(&data).unwrap();
                let mut mine = Vec::new();
                for terminal in 0..40 {
                    let serial = format!("P{port}T{terminal:04}");
                    let reservation = vault
                        .reserve_key(&as_serial(&serial), &format!("bench-{port}"))
                        .unwrap();
                    // Ask twice, as a terminal retrying would.
                    assert_eq!(
                        vault
                            .reserve_key(&as_serial(&serial), "bench-x")
                            .unwrap()
                            .key_index,
                        reservation.key_index
                    );
                    let smn = format!("{serial}{:08}", reservation.key_index);
                    vault
                        .confirm_key(
                            &ConfirmationReport {
                                key_index: as_index(reservation.key_index),
                                hardware_serial: leak(as_serial(&serial)),
                                kcv: reservation.kcv,
                                smn: leak(as_smn(&smn)),
                                port: "bench",
                                terminal_model: leak(as_model("M")),
                            },
                            3,
                        )
                        .unwrap();
                    mine.push((reservation.key_index.value(), serial));
                }
                mine
            })
        })
        .collect();
    let mut owners: HashMap<u32, HashSet<String>> = HashMap::new();
    for handle in handles {
        for (index, serial) in handle.join().unwrap() {
            owners.entry(index).or_default().insert(serial);
        }
    }
    assert_eq!(owners.len(), 320, "every terminal got its own key");
    assert!(owners.values().all(|serials| serials.len() == 1));
    let vault = Vault::open(&data).unwrap();
    assert_eq!(vault.smn_rows().unwrap().len(), 320);
    assert_eq!(vault.inventory().unwrap().count(KeyState::Used), 320);
}

#[test]
fn the_available_count_follows_dispensing() {
    let directory = tempfile::tempdir().unwrap();
    let mut vault = vault_with_keys(directory.path(), 5);
    assert_eq!(vault.available_keys().unwrap(), 5);
    vault
        .reserve_key(&as_serial("AAAA0001"), "bench-1")
        .unwrap();
    assert_eq!(vault.available_keys().unwrap(), 4);
    assert_eq!(vault.inventory().unwrap().count(KeyState::Available), 4);
}

#[test]
fn an_injection_names_the_operator_its_key_was_reserved_under() {
    let directory = tempfile::tempdir().unwrap();
    let mut vault = vault_with_keys(directory.path(), 3);
    let first = vault
        .reserve_key_by(&as_serial("AAAA0001"), "bench-1", Some("Ann Operator"))
        .unwrap();
    assert_eq!(first.operator.as_deref(), Some("Ann Operator"));
    // Asking again under another operator's session: same key, same operator.
    let again = vault
        .reserve_key_by(&as_serial("AAAA0001"), "bench-1", Some("Bob Operator"))
        .unwrap();
    assert_eq!((again.key_index, again.resumed), (first.key_index, true));
    assert_eq!(again.operator.as_deref(), Some("Ann Operator"));
    // Confirmed while Bob is logged in: the key left under Ann's session, so Ann is named.
    let confirmed = vault
        .confirm_key_by(
            &report(101, "AAAA0001", first.kcv, "AAAA000100000101"),
            3,
            Some("Bob Operator"),
        )
        .unwrap();
    assert_eq!(confirmed.operator.as_deref(), Some("Ann Operator"));
    // A key reserved with nobody logged in names the operator given at confirmation, if any.
    let second = vault
        .reserve_key(&as_serial("BBBB0002"), "bench-1")
        .unwrap();
    assert_eq!(second.operator, None);
    vault
        .confirm_key_by(
            &report(102, "BBBB0002", second.kcv, "BBBB000200000102"),
            3,
            Some("Bob Operator"),
        )
        .unwrap();
    let third = vault
        .reserve_key(&as_serial("CCCC0003"), "bench-1")
        .unwrap();
    let retransmitted = vault
        .confirm_key(&report(103, "CCCC0003", third.kcv, "CCCC000300000103"), 3)
        .unwrap();
    assert_eq!(retransmitted.operator, None);
    let operators: Vec<(String, Option<String>)> = vault
        .smn_rows()
        .unwrap()
        .into_iter()
        .map(|row| (row.smn.to_string(), row.operator))
        .collect();
    assert_eq!(
        operators,
        [
            (
                "AAAA000100000101".to_owned(),
                Some("Ann Operator".to_owned())
            ),
            (
                "BBBB000200000102".to_owned(),
                Some("Bob Operator".to_owned())
            ),
            ("CCCC000300000103".to_owned(), None),
        ]
    );
    let injections: Vec<(String, String)> = vault
        .audit_rows()
        .unwrap()
        .into_iter()
        .filter(|row| row.event == "injection")
        .map(|row| (row.actor, row.details))
        .collect();
    assert_eq!(injections[0].0, "Ann Operator");
    assert!(injections[0].1.ends_with("; operator=Ann Operator"));
    assert_eq!(injections[1].0, "Bob Operator");
    assert_eq!(injections[2].0, "system");
    // A retransmitted confirmation reports the operator recorded the first time.
    let repeated = vault
        .confirm_key_by(
            &report(101, "AAAA0001", first.kcv, "AAAA000100000101"),
            3,
            Some("Carol Operator"),
        )
        .unwrap();
    assert!(repeated.already_confirmed);
    assert_eq!(repeated.operator.as_deref(), Some("Ann Operator"));
    vault.verify_audit().unwrap();
}

#[test]
fn the_schema_keeps_the_operator_of_a_reservation_and_of_an_smn_row() {
    let directory = tempfile::tempdir().unwrap();
    let mut vault = vault_with_keys(directory.path(), 2);
    let reservation = vault
        .reserve_key_by(&as_serial("AAAA0001"), "bench-1", Some("Ann Operator"))
        .unwrap();
    vault
        .confirm_key(
            &report(101, "AAAA0001", reservation.kcv, "AAAA000100000101"),
            3,
        )
        .unwrap();
    vault
        .reserve_key_by(&as_serial("BBBB0002"), "bench-1", Some("Ann Operator"))
        .unwrap();
    drop(vault);
    let connection =
        rusqlite::Connection::open(directory.path().join("data/vault.sqlite")).unwrap();
    for (statement, words) in [
        (
            "UPDATE key_inventory SET operator = 'Mallory' WHERE key_index = 102",
            "the operator of a reservation is never changed",
        ),
        (
            "UPDATE key_inventory SET operator = NULL WHERE key_index = 101",
            "the operator of a reservation is never changed",
        ),
        (
            "UPDATE smn_registry SET operator = 'Mallory' WHERE key_index = 101",
            "SMN rows are never rewritten",
        ),
    ] {
        let error = connection.execute(statement, []).unwrap_err().to_string();
        assert!(error.contains(words), "{statement}: {error}");
    }
}

#[test]
fn a_vault_from_before_operators_is_upgraded_with_rows_naming_nobody() {
    let directory = tempfile::tempdir().unwrap();
    let mut vault = vault_with_keys(directory.path(), 2);
    let reservation = vault
        .reserve_key(&as_serial("AAAA0001"), "bench-1")
        .unwrap();
    vault
        .confirm_key(
            &report(101, "AAAA0001", reservation.kcv, "AAAA000100000101"),
            3,
        )
        .unwrap();
    drop(vault);
    let connection =
        rusqlite::Connection::open(directory.path().join("data/vault.sqlite")).unwrap();
    connection
        .execute_batch(
            "DROP TRIGGER key_inventory_staged_batch_dispenses_nothing;
             DROP TRIGGER batch_withdrawal_not_of_a_staged_batch;
             DROP TRIGGER key_inventory_only_staged_keys_deleted;
             DROP TRIGGER batch_only_staged_deleted; DROP TABLE batch_staging;
             DROP INDEX key_inventory_pending; DROP TRIGGER key_inventory_terminal_model_is_permanent;
             ALTER TABLE key_inventory DROP COLUMN terminal_model;
             DROP TABLE final_export; DROP TABLE predecessor;
             DROP TABLE expected_device; DROP TABLE expected_refusal; DROP TABLE expected_list;
             DROP TABLE dukpt_export; DROP TABLE dukpt_registry; DROP TABLE dukpt_allocation; DROP TABLE bdk;
             DROP TABLE batch_withdrawal;
             DROP TRIGGER key_inventory_withdrawal_is_permanent;
             DROP TRIGGER key_inventory_withdrawn_only_from_available;
             DROP TRIGGER key_inventory_withdrawn_batch_dispenses_nothing;
             DROP TRIGGER key_inventory_withdrawn_key_never_changes_state;
             DROP TRIGGER IF EXISTS key_inventory_no_key_joins_a_withdrawn_batch;
             ALTER TABLE key_inventory DROP COLUMN withdrawn;
             DROP INDEX key_inventory_by_terminal; DROP INDEX key_inventory_one_key_per_grant;
             DROP TRIGGER key_inventory_grant_is_permanent;
             DROP TRIGGER key_inventory_reinjection_needs_a_grant;
             ALTER TABLE key_inventory DROP COLUMN reinjection_grant;
             DROP INDEX smn_registry_by_terminal; DROP INDEX smn_registry_replaced_once;
             DROP TRIGGER smn_registry_replaces_its_terminals_row;
             ALTER TABLE smn_registry DROP COLUMN replaces;
             DROP TABLE reinjection_grant;
             DROP TRIGGER key_inventory_operator_is_permanent;
             ALTER TABLE key_inventory DROP COLUMN operator;
             ALTER TABLE smn_registry DROP COLUMN operator;
             DROP TABLE audit_checkpoint; DROP INDEX audit_log_by_event;
             PRAGMA user_version = 4;",
        )
        .unwrap();
    drop(connection);
    let mut vault = Vault::open(&directory.path().join("data")).unwrap();
    assert_eq!(vault.smn_rows().unwrap()[0].operator, None);
    let next = vault
        .reserve_key_by(&as_serial("BBBB0002"), "bench-1", Some("Ann Operator"))
        .unwrap();
    assert_eq!(next.operator.as_deref(), Some("Ann Operator"));
    vault.verify_audit().unwrap();
}
