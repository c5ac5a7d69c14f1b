//! The tamper response at rest: one audited transaction deletes the KEK, the TTK and the KDH identity; the inventory, SMN registry and audit chain stay; the same KEK and TTK loaded again open the same keys.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
mod typed;
#[allow(unused_imports)]
use typed::*;

use keymother_vault::{HeadMacStatus, KeyState, SecretName, VaultError};
use support::Bench;

#[test]
fn a_tamper_deletes_the_secrets_in_one_audited_transaction_and_keeps_the_rest() {
    let mut bench = Bench::new(6);
    let injected = bench.inject("123L013K");
    let pending = bench.send("456L013K");
    let subject = keymother_pki::builder::name("CN=KM-TEST-0001,OU=KDH").unwrap();
    bench
        .vault
        .create_kdh_request(&subject, 2048, None)
        .unwrap();
    let before = bench.vault.inventory().unwrap();
    let rows_before = bench.audit_count();
    assert_eq!(bench.vault.tamper_outstanding().unwrap(), None);

    let report = bench.vault.tamper("GPIO23").unwrap();
    assert_eq!(report.secrets_deleted, 2);
    assert!(report.kdh_deleted);
    let rows = bench.vault.audit_rows().unwrap();
    assert_eq!(rows.len(), rows_before + 1, "exactly one row: the tamper");
    let last = rows.last().unwrap();
    assert_eq!(
        (
            last.sequence,
            last.event.as_str(),
            last.actor.as_str(),
            last.details.as_str()
        ),
        (report.audit_sequence, "tamper", "system", "input=GPIO23")
    );
    let verified = bench.vault.verify_audit().unwrap();
    assert_eq!(verified.head_mac, HeadMacStatus::Verified);

    for name in SecretName::ALL {
        assert!(bench.vault.secret_info(name).unwrap().is_none());
        assert!(matches!(
            bench.vault.load_secret(name),
            Err(VaultError::SecretMissing(missing)) if missing == name
        ));
    }
    assert!(bench.vault.kdh_status().unwrap().is_none());
    // The inventory, the pending key's binding and the SMN registry are untouched.
    assert_eq!(bench.vault.inventory().unwrap(), before);
    assert_eq!(bench.vault.smn_rows().unwrap().len(), 1);
    assert_eq!(
        bench.vault.smn_rows().unwrap()[0].key_index,
        injected.key_index
    );
    let outstanding = bench.vault.tamper_outstanding().unwrap().unwrap();
    assert_eq!(outstanding.input, "GPIO23");
    assert_eq!(outstanding.audit_sequence, report.audit_sequence);
    assert_eq!(
        outstanding.missing(),
        vec![SecretName::Kek, SecretName::Ttk]
    );
    // No key can be reserved: the vault reserves without the KEK, but nothing can open it;
    // the daemon refuses before the vault (tested in daemon/tests/bench.rs).

    // Custodians load the same KEK and TTK again: the tamper is answered, and the keys
    // imported before open under the KEK again.
    bench
        .vault
        .install_secret(
            SecretName::Kek,
            &bench.kek,
            &keymother_vault::CeremonyRecord::named(&["Ann Lee", "Raj Patel", "Kim Ng"]).unwrap(),
        )
        .unwrap();
    assert_eq!(
        bench.vault.tamper_outstanding().unwrap().unwrap().missing(),
        vec![SecretName::Ttk]
    );
    bench
        .vault
        .install_secret(
            SecretName::Ttk,
            &bench.ttk,
            &keymother_vault::CeremonyRecord::named(&["Ann Lee", "Raj Patel"]).unwrap(),
        )
        .unwrap();
    assert_eq!(bench.vault.tamper_outstanding().unwrap(), None);
    let resumed = bench
        .vault
        .reserve_key(&as_serial("456L013K"), "bench-1")
        .unwrap();
    assert_eq!(
        resumed.key_index, pending.key_index,
        "the same terminal, the same key"
    );
    let next = bench.inject("789L013K");
    assert_eq!(
        bench.vault.inventory().unwrap().count(KeyState::Used),
        2,
        "{next:?}"
    );
    bench.vault.verify_audit().unwrap();
}

#[test]
fn secrets_go_even_when_the_chain_refuses_the_row_and_a_zeroized_vault_refuses() {
    let mut bench = Bench::new(2);
    // Someone with write access to the database forged the audit head.
    bench
        .raw()
        .execute_batch(
            "DROP TRIGGER audit_head_only_moves_forward;
             UPDATE audit_head SET mac = '00' || substr(mac, 3);",
        )
        .unwrap();
    let rows_before = bench.audit_count();
    assert!(matches!(
        bench.vault.tamper("GPIO23"),
        Err(VaultError::AuditTampered(_))
    ));
    assert_eq!(
        bench.audit_count(),
        rows_before,
        "nothing recorded on a forged head"
    );
    for name in SecretName::ALL {
        assert!(
            bench.vault.secret_info(name).unwrap().is_none(),
            "{name} deleted"
        );
    }

    let mut bench = Bench::new(2);
    bench.vault.zeroize("leaving", Some("officer")).unwrap();
    assert!(matches!(
        bench.vault.tamper("GPIO23"),
        Err(VaultError::Zeroized(_))
    ));
}
