//! Re-injection control: a terminal holding a confirmed key of a slot is refused another until an operator grants one, which one reservation uses up; both registry rows and both exports mark the re-injection.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod dukpt_bench;
mod support;
mod typed;

use std::convert::Infallible;
use std::fs;

use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_vault::{
    Admission, DispenseError, DukptError, GrantState, KeySlot, KeyState, ReinjectionError,
    ReserveDukptError, SecretName, verify_dukpt_export, verify_smn_export,
};
use support::Bench;
use typed::*;

fn slot(text: &str) -> KeySlot {
    text.parse().unwrap()
}

fn audit_events(bench: &Bench) -> Vec<(String, String, String)> {
    bench
        .vault
        .audit_rows()
        .unwrap()
        .into_iter()
        .map(|row| (row.event, row.actor, row.details))
        .collect()
}

#[test]
fn a_second_injection_is_refused_then_granted_once_and_both_rows_are_marked() {
    let mut bench = Bench::new(6);
    let terminal = as_serial("123L013K");
    let first = bench.inject("123L013K");
    assert_eq!(first.smn.as_str(), "123L013K00000101");

    // Asked again: refused, naming the SMN it holds; nothing reserved.
    let refused = bench.vault.reserve_key(&terminal, "bench-2").unwrap_err();
    assert!(
        matches!(&refused, DispenseError::AlreadyInjected { smn, .. } if smn == "123L013K00000101"),
        "{refused}"
    );
    assert!(refused.to_string().contains("grant a re-injection"));
    assert_eq!(
        bench.vault.inventory().unwrap().count(KeyState::Available),
        5
    );
    assert_eq!(
        bench
            .vault
            .reinjection_admission(&terminal, &KeySlot::Master)
            .unwrap(),
        Admission::AlreadyInjected {
            injected: "123L013K00000101".to_owned()
        }
    );

    // One grant, audited with its reason and operator.
    let grant = bench
        .vault
        .grant_reinjection(
            &terminal,
            &KeySlot::Master,
            "PIN pad repaired, RMA 4411",
            "Ann Lee",
        )
        .unwrap();
    assert_eq!(
        (grant.state, grant.slot.clone(), grant.granted_by.as_str()),
        (GrantState::Open, KeySlot::Master, "Ann Lee")
    );
    let (event, actor, details) = audit_events(&bench).pop().unwrap();
    assert_eq!(
        (event.as_str(), actor.as_str()),
        ("reinjection-grant", "Ann Lee")
    );
    assert_eq!(
        details,
        format!(
            "grant={}; hardware_serial=123L013K; slot=master; reason=PIN pad repaired%2C RMA 4411; operator=Ann Lee",
            grant.id
        )
    );

    // The grant admits one new key; it is used up by the reservation, audited.
    let second = bench.vault.reserve_key(&terminal, "bench-2").unwrap();
    assert_eq!((second.key_index.value(), second.resumed), (102, false));
    let used = bench.vault.reinjection_grants(true).unwrap();
    assert_eq!(used.len(), 1);
    assert_eq!(
        (used[0].state, used[0].closing.as_deref()),
        (GrantState::Used, Some("00000102"))
    );
    assert!(bench.vault.reinjection_grants(false).unwrap().is_empty());
    let (event, _, details) = audit_events(&bench).pop().unwrap();
    assert_eq!(event, "reinjection-used");
    assert!(details.contains("key=00000102; port=bench-2"), "{details}");
    // Until it is confirmed, the same terminal resumes that key.
    let again = bench.vault.reserve_key(&terminal, "bench-2").unwrap();
    assert_eq!((again.key_index, again.resumed), (second.key_index, true));
    bench.confirm("123L013K", &second, None);

    // Both registry rows are marked, the new one with its grant.
    let rows = bench.vault.smn_rows().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].replaces, None);
    assert_eq!(
        rows[0].replaced_by.as_ref().map(|smn| smn.as_str()),
        Some("123L013K00000102")
    );
    assert_eq!(
        rows[1].replaces.as_ref().map(|smn| smn.as_str()),
        Some("123L013K00000101")
    );
    assert_eq!(rows[1].replaced_by, None);
    assert_eq!(
        rows[1].reinjection_grant,
        Some((grant.id, "PIN pad repaired, RMA 4411".to_owned()))
    );
    assert_eq!(rows[0].reinjection_grant, None);

    // A third time: refused again, the grant is gone.
    let refused = bench.vault.reserve_key(&terminal, "bench-1").unwrap_err();
    assert!(
        matches!(&refused, DispenseError::AlreadyInjected { smn, .. } if smn == "123L013K00000102"),
        "{refused}"
    );

    // The export marks both rows, and the front end's verifier reads the marks back.
    let path = bench.path("smn.csv");
    bench.vault.export_smn(&path, false, None).unwrap();
    let text = fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[7].ends_with(",,123L013K00000102"), "{}", lines[7]);
    assert!(lines[8].ends_with(",123L013K00000101,"), "{}", lines[8]);
    let verified = verify_smn_export(text.as_bytes(), "smn.csv", &bench.kek).unwrap();
    assert_eq!(
        verified.rows[0]
            .replaced_by
            .as_ref()
            .map(|smn| smn.as_str()),
        Some("123L013K00000102")
    );
    assert_eq!(
        verified.rows[1].replaces.as_ref().map(|smn| smn.as_str()),
        Some("123L013K00000101")
    );
    bench.vault.verify_audit().unwrap();
}

#[test]
fn grants_are_refused_when_there_is_nothing_to_reinject_or_one_is_open_and_can_be_revoked() {
    let mut bench = Bench::new(4);
    let terminal = as_serial("AAAA0001");
    // Never injected, or only pending: nothing to re-inject.
    let nothing = bench
        .vault
        .grant_reinjection(&terminal, &KeySlot::Master, "why", "Ann")
        .unwrap_err();
    assert!(
        matches!(nothing, ReinjectionError::NothingToReinject { .. }),
        "{nothing}"
    );
    bench.send("AAAA0001");
    assert!(matches!(
        bench
            .vault
            .grant_reinjection(&terminal, &KeySlot::Master, "why", "Ann")
            .unwrap_err(),
        ReinjectionError::NothingToReinject { .. }
    ));
    // Its pending key voided, it is injected with a new one: now it holds a confirmed key.
    bench.vault.void_key(as_index(101), "test", "Ann").unwrap();
    bench.inject("AAAA0001");

    // A reason is needed; a second open grant is refused.
    assert!(matches!(
        bench
            .vault
            .grant_reinjection(&terminal, &KeySlot::Master, "  ", "Ann")
            .unwrap_err(),
        ReinjectionError::NeedsReasonAndOperator
    ));
    let grant = bench
        .vault
        .grant_reinjection(&terminal, &KeySlot::Master, "swap", "Ann")
        .unwrap();
    let twice = bench
        .vault
        .grant_reinjection(&terminal, &KeySlot::Master, "swap", "Ann")
        .unwrap_err();
    assert!(
        matches!(twice, ReinjectionError::AlreadyGranted { grant: id, .. } if id == grant.id),
        "{twice}"
    );
    // Another slot of the same terminal is its own matter: nothing to re-inject there.
    assert!(matches!(
        bench
            .vault
            .grant_reinjection(&terminal, &slot("PIN"), "swap", "Ann")
            .unwrap_err(),
        ReinjectionError::NothingToReinject { .. }
    ));

    // Revoked, it admits nothing; it cannot be revoked twice.
    let revoked = bench
        .vault
        .revoke_reinjection(grant.id, "granted by mistake", "Bob")
        .unwrap();
    assert_eq!(
        (
            revoked.state,
            revoked.closed_by.as_deref(),
            revoked.closing.as_deref()
        ),
        (GrantState::Revoked, Some("Bob"), Some("granted by mistake"))
    );
    assert!(matches!(
        bench.vault.reserve_key(&terminal, "bench-1").unwrap_err(),
        DispenseError::AlreadyInjected { .. }
    ));
    assert!(matches!(
        bench
            .vault
            .revoke_reinjection(grant.id, "again", "Bob")
            .unwrap_err(),
        ReinjectionError::NotOpen {
            state: GrantState::Revoked,
            ..
        }
    ));
    assert!(matches!(
        bench.vault.revoke_reinjection(999, "x", "Bob").unwrap_err(),
        ReinjectionError::UnknownGrant(999)
    ));
    let (event, actor, details) = audit_events(&bench).pop().unwrap();
    assert_eq!(
        (event.as_str(), actor.as_str()),
        ("reinjection-revoke", "Bob")
    );
    assert!(details.contains("reason=granted by mistake"), "{details}");
    assert_eq!(bench.vault.reinjection_grants(true).unwrap(), vec![revoked]);
}

#[test]
fn the_schema_refuses_a_second_key_without_a_grant_and_keeps_grants_closed() {
    let mut bench = Bench::new(4);
    let terminal = as_serial("AAAA0001");
    bench.inject("AAAA0001");
    let grant = bench
        .vault
        .grant_reinjection(&terminal, &KeySlot::Master, "swap", "Ann")
        .unwrap();
    bench.inject("BBBB0002");
    let connection = bench.raw();
    for (statement, words) in [
        (
            "UPDATE key_inventory SET state = 'reserved', hardware_serial = 'AAAA0001' WHERE key_index = 103".to_owned(),
            "gets another only under a re-injection grant",
        ),
        (
            format!("UPDATE key_inventory SET state = 'reserved', hardware_serial = 'BBBB0002', reinjection_grant = {} WHERE key_index = 103", grant.id),
            "gets another only under a re-injection grant",
        ),
        ("DELETE FROM reinjection_grant".to_owned(), "re-injection grants are never deleted"),
        ("UPDATE reinjection_grant SET reason = 'other'".to_owned(), "only ever closed, once"),
        (
            "INSERT INTO reinjection_grant (hardware_serial, slot, reason, granted_by, granted_at, state)
             VALUES ('X', 'master', 'r', 'a', 'now', 'used')".to_owned(),
            "a re-injection grant starts open",
        ),
        (
            "INSERT INTO reinjection_grant (hardware_serial, slot, reason, granted_by, granted_at)
             VALUES ('AAAA0001', 'master', 'r', 'a', 'now')".to_owned(),
            "UNIQUE constraint failed",
        ),
        (
            "INSERT INTO smn_registry (smn, hardware_serial, key_index, kcv, batch_id, port, terminal_model, injected_at, replaces)
             SELECT 'X' || smn, hardware_serial, 104, kcv, batch_id, port, terminal_model, injected_at, 'AAAA000100000101'
               FROM smn_registry WHERE hardware_serial = 'BBBB0002'".to_owned(),
            "replaces only an earlier row of its terminal",
        ),
    ] {
        let error = connection.execute(&statement, []).unwrap_err().to_string();
        assert!(error.contains(words), "{statement}: {error}");
    }
    drop(connection);
    // Closed once: used, it cannot be reopened.
    let used = bench.vault.reserve_key(&terminal, "bench-1").unwrap();
    assert!(!used.resumed);
    let error = bench
        .raw()
        .execute("UPDATE reinjection_grant SET state = 'open'", [])
        .unwrap_err()
        .to_string();
    assert!(error.contains("only ever closed, once"), "{error}");
}

#[test]
fn a_dukpt_slot_is_refused_then_granted_once_and_its_rows_and_export_are_marked() {
    let mut bench = dukpt_bench::DukptBench::new();
    let kek = SecretKey::generate(KeyAlgorithm::Aes256).unwrap();
    bench
        .vault
        .install_secret(
            SecretName::Kek,
            &kek,
            &keymother_vault::CeremonyRecord::named(&["Ann Lee", "Raj Patel", "Kim Ng"]).unwrap(),
        )
        .unwrap();
    let terminal = dukpt_bench::serial_of("T1");
    let first = bench.inject("PIN", "T1");
    bench.inject("DATA", "T1");
    let derive = &mut |device| {
        Ok::<_, Infallible>(dukpt_bench::facts(dukpt_bench::bdk_id_of("PIN"), device))
    };
    let pin = dukpt_bench::name("PIN");
    let refused = bench
        .vault
        .reserve_dukpt(&pin, &terminal, "bench-1", None, derive)
        .unwrap_err();
    assert!(
        matches!(
            &refused,
            ReserveDukptError::Dukpt(DukptError::AlreadyInjected { initial_ksn, .. })
                if *initial_ksn == first.initial_ksn
        ),
        "{refused}"
    );
    // The master slot and the other BDK are not this slot's grant.
    assert!(matches!(
        bench
            .vault
            .grant_reinjection(&terminal, &KeySlot::Master, "swap", "Ann")
            .unwrap_err(),
        ReinjectionError::NothingToReinject { .. }
    ));
    let grant = bench
        .vault
        .grant_reinjection(&terminal, &slot("PIN"), "new PIN pad firmware", "Ann")
        .unwrap();
    assert!(matches!(
        bench.vault.reserve_dukpt(
            &dukpt_bench::name("DATA"),
            &terminal,
            "bench-1",
            None,
            &mut |device| Ok::<_, Infallible>(dukpt_bench::facts(
                dukpt_bench::bdk_id_of("DATA"),
                device
            ))
        ),
        Err(ReserveDukptError::Dukpt(DukptError::AlreadyInjected { .. }))
    ));
    let second = bench.inject("PIN", "T1");
    assert_ne!(second.initial_ksn, first.initial_ksn);
    assert_eq!(
        bench.vault.reinjection_grants(true).unwrap()[0].closing,
        Some(second.initial_ksn.clone())
    );
    let pin_rows: Vec<_> = bench
        .vault
        .dukpt_rows()
        .unwrap()
        .into_iter()
        .filter(|row| row.bdk.as_str() == "PIN")
        .collect();
    assert_eq!(pin_rows.len(), 2);
    assert_eq!(pin_rows[0].replaced_by, Some(second.initial_ksn.clone()));
    assert_eq!(pin_rows[1].replaces, Some(first.initial_ksn.clone()));
    assert_eq!(
        pin_rows[1].reinjection_grant,
        Some((grant.id, "new PIN pad firmware".to_owned()))
    );
    assert!(matches!(
        bench
            .vault
            .reserve_dukpt(&pin, &terminal, "bench-1", None, derive)
            .unwrap_err(),
        ReserveDukptError::Dukpt(DukptError::AlreadyInjected { .. })
    ));

    let path = bench.directory.path().join("dukpt.csv");
    bench.vault.export_dukpt(&path, false, None).unwrap();
    let text = fs::read_to_string(&path).unwrap();
    let verified = verify_dukpt_export(text.as_bytes(), "dukpt.csv", &kek).unwrap();
    let marked: Vec<_> = verified
        .rows
        .iter()
        .map(|row| (row.replaces.clone(), row.replaced_by.clone()))
        .collect();
    assert_eq!(
        marked,
        [
            (None, Some(second.initial_ksn.clone())),
            (None, None),
            (Some(first.initial_ksn.clone()), None)
        ]
    );
    bench.vault.verify_audit().unwrap();
}

#[test]
fn the_documented_smn_export_verifies_with_its_re_injection_marks() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/SMN-EXPORT.md");
    let text = fs::read_to_string(path).unwrap();
    let start = text.find("```\n# KEYMOTHER-SMN-EXPORT/2").unwrap() + 4;
    let file = &text[start..start + text[start..].find("```").unwrap()];
    let kek =
        SecretKey::from_hex(KeyAlgorithm::Aes128, "D6C30C243863188EDA27AF95A49F137F").unwrap();
    assert!(text.contains(&format!("(check value `{}`", kek.kcv())));
    let verified = verify_smn_export(file.as_bytes(), "example", &kek).unwrap();
    let marks: Vec<(String, Option<String>, Option<String>)> = verified
        .rows
        .iter()
        .map(|row| {
            (
                row.smn.to_string(),
                row.replaces.as_ref().map(ToString::to_string),
                row.replaced_by.as_ref().map(ToString::to_string),
            )
        })
        .collect();
    let mark = |smn: &str, replaces: Option<&str>, replaced_by: Option<&str>| {
        (
            smn.to_owned(),
            replaces.map(str::to_owned),
            replaced_by.map(str::to_owned),
        )
    };
    assert_eq!(
        marks,
        [
            mark("123L013K00000101", None, Some("123L013K00000103")),
            mark("123L013L00000102", None, None),
            mark("123L013K00000103", Some("123L013K00000101"), None),
        ]
    );
    // A mark naming another terminal's SMN is refused by name, even sealed.
    let altered = file.replace(",123L013K00000101,\n", ",123L013L00000102,\n");
    let body = &altered[..altered.find("# seal: ").unwrap()];
    let resealed = format!("{body}# seal: {}\n", smn_seal(&kek, body.as_bytes()));
    let error = verify_smn_export(resealed.as_bytes(), "example", &kek).unwrap_err();
    assert_eq!(
        error.to_string(),
        "example: line 10: replaces \"123L013L00000102\" is not another SMN of hardware serial 123L013K"
    );
    // Version 1 files are still read, without marks.
    let version_1 = "# KEYMOTHER-SMN-EXPORT/1\n# device-id: KM-0001\n# kek-kcv: 885D65BD9E\n\
        # exported-at: 2026-11-21T09:26:04Z\n# selection: all\n# row-count: 1\n\
        smn,hardware_serial,key_index,kcv,batch,injected_at\n\
        123L013K00000101,123L013K,00000101,C2CE65,B20261121-0001,2026-11-21T09:20:11Z\n";
    let sealed = format!(
        "{version_1}# seal: {}\n",
        smn_seal(&kek, version_1.as_bytes())
    );
    let verified = verify_smn_export(sealed.as_bytes(), "old", &kek).unwrap();
    assert_eq!(
        (verified.rows.len(), &verified.rows[0].replaces),
        (1, &None)
    );
}

/// The SMN export's seal of `body`, as docs/SMN-EXPORT.md specifies it.
fn smn_seal(kek: &SecretKey, body: &[u8]) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    use keymother_crypto::kdf::{counter_mode_cmac, labelled_fixed_input};
    let key = counter_mode_cmac(
        kek,
        &labelled_fixed_input(b"KEYMOTHER-SMN-EXPORT-SEAL/1", b"", 32),
        32,
    );
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&key).unwrap();
    mac.update(body);
    hex::encode_upper(mac.finalize().into_bytes())
}
