//! Operator actions: voiding a key that was sent but never confirmed, and zeroizing the device, each audited.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
mod typed;
#[allow(unused_imports)]
use typed::*;

use std::fs;

use keymother_vault::{
    DATABASE_FILE, DispenseError, HeadMacStatus, KeyState, SecretName, Vault, VaultError,
    VoidError, verify_audit_export,
};
use support::{Bench, FIRST_INDEX};

fn state_of(bench: &Bench, key_index: keymother_domain::KeyIndex) -> KeyState {
    bench
        .vault
        .key_assignments()
        .unwrap()
        .into_iter()
        .find(|(index, _, _)| key_index == *index)
        .map(|(_, _, state)| state)
        .unwrap()
}

#[test]
fn a_sent_key_is_voided_with_its_reason_and_the_terminal_gets_another() {
    let mut bench = Bench::new(5);
    let sent = bench.send("123L013K");
    let voided = bench
        .vault
        .void_key(
            as_index(sent.key_index),
            "cable pulled; terminal RMA'd",
            "Ann Lee",
        )
        .unwrap();
    assert_eq!(voided.hardware_serial, "123L013K");
    assert_eq!(voided.previous_state, KeyState::Sent);
    assert_eq!(state_of(&bench, sent.key_index), KeyState::Void);
    let audit = bench.vault.audit_rows().unwrap().pop().unwrap();
    assert_eq!(audit.sequence, voided.audit_sequence);
    assert_eq!(
        (audit.event.as_str(), audit.actor.as_str()),
        ("void", "Ann Lee")
    );
    assert_eq!(
        audit.details,
        format!(
            "key_index={:08}; reason=cable pulled%3B terminal RMA'd; operator=Ann Lee",
            sent.key_index
        )
    );
    // The terminal asks again: a new key, never the voided one, for it or anyone else.
    let next = bench
        .vault
        .reserve_key(&as_serial("123L013K"), "bench-1")
        .unwrap();
    assert_ne!(next.key_index, sent.key_index);
    assert!(!next.resumed);
    for serial in ["T1", "T2", "T3"] {
        assert_ne!(
            bench
                .vault
                .reserve_key(&as_serial(serial), "bench-2")
                .unwrap()
                .key_index,
            sent.key_index
        );
    }
    // A voided key cannot be confirmed afterwards.
    let smn = format!("123L013K{:08}", sent.key_index);
    let late = bench.vault.confirm_key(
        &keymother_vault::ConfirmationReport {
            key_index: as_index(sent.key_index),
            hardware_serial: leak(as_serial("123L013K")),
            kcv: sent.kcv,
            smn: leak(as_smn(&smn)),
            port: "bench-1",
            terminal_model: leak(as_model("REF-TERMINAL")),
        },
        3,
    );
    assert!(matches!(late, Err(DispenseError::NotDeliveredTo { .. })));
    bench.vault.verify_audit().unwrap();
}

#[test]
fn a_reserved_key_can_be_voided_too() {
    let mut bench = Bench::new(2);
    let reserved = bench
        .vault
        .reserve_key(&as_serial("123L013K"), "bench-1")
        .unwrap();
    let voided = bench
        .vault
        .void_key(
            as_index(reserved.key_index),
            "terminal died before delivery",
            "ann",
        )
        .unwrap();
    assert_eq!(voided.previous_state, KeyState::Reserved);
    assert_eq!(state_of(&bench, reserved.key_index), KeyState::Void);
}

#[test]
fn only_a_pending_key_can_be_voided_and_a_refusal_changes_nothing() {
    let mut bench = Bench::new(5);
    bench.inject("123L013K"); // key 101 is used
    let pending = bench.send("123L013L"); // key 102 is sent
    let rows = bench.audit_count();
    let refusals = [
        (
            FIRST_INDEX,
            "key 00000101 is used; only a reserved or sent key that was never confirmed can be voided",
        ),
        (
            FIRST_INDEX + 4,
            "key 00000105 is available; only a reserved or sent key that was never confirmed can be voided",
        ),
        (7, "key 00000007 is not in the inventory"),
    ];
    for (index, message) in refusals {
        let error = bench
            .vault
            .void_key(as_index(index), "because", "ann")
            .unwrap_err();
        assert_eq!(error.to_string(), message);
    }
    assert!(matches!(
        bench
            .vault
            .void_key(as_index(pending.key_index), "  ", "ann"),
        Err(VoidError::NoReason(102))
    ));
    assert!(matches!(
        bench
            .vault
            .void_key(as_index(pending.key_index), "reason", ""),
        Err(VoidError::NoOperator(102))
    ));
    assert_eq!(bench.audit_count(), rows);
    assert_eq!(state_of(&bench, pending.key_index), KeyState::Sent);
    // Voided once, it cannot be voided again.
    bench
        .vault
        .void_key(as_index(pending.key_index), "reason", "ann")
        .unwrap();
    assert!(matches!(
        bench
            .vault
            .void_key(as_index(pending.key_index), "reason", "ann"),
        Err(VoidError::NotPending {
            state: KeyState::Void,
            ..
        })
    ));
}

#[test]
fn zeroize_destroys_the_secrets_and_keeps_a_verifiable_audit_trail() {
    let mut bench = Bench::new(4);
    bench.inject("123L013K");
    let data_dir = bench.data_dir();
    let kek_hex = bench.kek.expose_secret_hex().to_string();
    let report = bench.vault.zeroize("tamper switch opened", None).unwrap();
    assert_eq!(report.secrets_deleted, 2);
    assert_eq!(report.key_blocks_erased, 4);

    // The key file is gone and nothing secret can be used any more.
    assert!(!data_dir.join("storage.key").exists());
    assert!(matches!(
        bench.vault.load_secret(SecretName::Kek),
        Err(VaultError::Zeroized(_))
    ));
    assert!(matches!(
        bench.vault.reserve_key(&as_serial("T9"), "bench-1"),
        Err(DispenseError::Vault(VaultError::Zeroized(_)))
    ));
    // The SMN export is the final one, sealed before the KEK went (vault/tests/zeroized.rs).
    let final_export = bench
        .vault
        .export_smn(&bench.path("smn.csv"), false, None)
        .unwrap();
    assert_eq!(final_export.rows, 1);
    assert_eq!(report.final_exports, 4);
    let raw = bench.raw();
    let count = |sql: &str| -> i64 { raw.query_row(sql, [], |row| row.get(0)).unwrap() };
    assert_eq!(count("SELECT count(*) FROM sealed_secret"), 0);
    assert_eq!(
        count("SELECT count(*) FROM key_inventory WHERE key_block <> ''"),
        0
    );
    assert_eq!(count("SELECT count(*) FROM key_inventory"), 4);
    assert_eq!(
        fs::metadata(data_dir.join(format!("{DATABASE_FILE}-wal")))
            .map(|metadata| metadata.len())
            .unwrap_or(0),
        0
    );

    // The chain still verifies, honestly without the head's MAC; its last row is the zeroize.
    let last = bench.vault.audit_rows().unwrap().pop().unwrap();
    assert_eq!(last.sequence, report.audit_sequence);
    assert_eq!(
        (
            last.event.as_str(),
            last.actor.as_str(),
            last.details.as_str()
        ),
        ("zeroize", "system", "reason=tamper switch opened")
    );
    let verified = bench.vault.verify_audit().unwrap();
    assert_eq!(verified.head_mac, HeadMacStatus::NotChecked);
    assert_eq!(verified.rows, report.audit_sequence);
    drop(raw);
    let Bench { vault, .. } = bench;
    drop(vault);

    // After a restart the vault says it was zeroized, and opens for audit only.
    let error = Vault::open(&data_dir).err().unwrap();
    assert!(matches!(error, VaultError::Zeroized(_)), "{error}");
    assert!(error.to_string().contains("was zeroized"), "{error}");
    let mut audit = Vault::open_for_audit(&data_dir).unwrap();
    assert_eq!(audit.verify_audit().unwrap(), verified);
    assert_eq!(audit.smn_rows().unwrap().len(), 1);
    let export = data_dir.parent().unwrap().join("audit.csv");
    let exported = audit.export_audit(&export).unwrap();
    assert_eq!(
        exported.verification,
        "ok; head MAC not checked (no storage key: the vault was zeroized)"
    );
    let text = fs::read_to_string(&export).unwrap();
    assert!(!text.to_uppercase().contains(&kek_hex));
    assert_eq!(
        verify_audit_export(text.as_bytes(), "audit.csv")
            .unwrap()
            .rows,
        report.audit_sequence
    );
    // Read-only: nothing can be recorded through the audit handle.
    assert!(
        audit
            .record_audit(keymother_vault::AuditEvent::Login {
                operator: "ann".to_owned(),
                subject: "CN=ann".to_owned(),
                serial: "01".to_owned(),
                until: "2030-01-01T08:00:00Z".to_owned(),
            })
            .is_err()
    );
}

#[test]
fn a_zeroize_cannot_be_repeated_or_followed_by_ceremonies() {
    let mut bench = Bench::new(1);
    bench
        .vault
        .zeroize("decommissioned", Some("officer"))
        .unwrap();
    assert!(matches!(
        bench.vault.zeroize("again", None),
        Err(VaultError::Zeroized(_))
    ));
    assert!(matches!(
        bench.vault.install_secret(
            SecretName::Kek,
            &bench.kek,
            &keymother_vault::CeremonyRecord::named(&["Ann Lee", "Raj Patel"]).unwrap()
        ),
        Err(VaultError::Zeroized(_))
    ));
    let last = bench.vault.audit_rows().unwrap().pop().unwrap();
    assert_eq!(last.details, "reason=decommissioned; operator=officer");
}

#[test]
fn open_for_audit_checks_the_head_when_the_storage_key_is_present() {
    let bench = Bench::new(1);
    let data_dir = bench.data_dir();
    drop(bench.vault);
    let audit = Vault::open_for_audit(&data_dir).unwrap();
    assert_eq!(
        audit.verify_audit().unwrap().head_mac,
        HeadMacStatus::Verified
    );
}
