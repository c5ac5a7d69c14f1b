//! DUKPT allocation: one device id per terminal and BDK, the same id again until it is confirmed, never an id to two terminals, a used-up range a clear error, and every step in the audit chain.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod dukpt_bench;

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;

use dukpt_bench::*;
use keymother_crypto::KeyAlgorithm;
use keymother_domain::{Kcv, KeyFamily};
use keymother_vault::{
    DerivedKeyFacts, DukptConfirmation, DukptError, DukptReservation, KeyState, ReserveDukptError,
    Vault,
};

#[test]
fn a_terminal_gets_the_same_device_id_until_it_confirms() {
    let mut bench = DukptBench::new();
    let mut calls = 0;
    let mut derive = |device| {
        calls += 1;
        Ok::<_, Infallible>(facts(bdk_id_of("PIN"), device))
    };
    let (pin, terminal) = (name("PIN"), serial_of("123L013K"));
    let first = bench
        .vault
        .reserve_dukpt(&pin, &terminal, "bench-1", Some("Ann Lee"), &mut derive)
        .unwrap();
    assert_eq!(
        (first.device_id, first.resumed),
        (device("00000100"), false)
    );
    assert_eq!(first.initial_ksn, "1234567800000100");
    assert_eq!(first.operator.as_deref(), Some("Ann Lee"));
    // Asking again, on another port under another operator: the same id, nothing derived.
    let again = bench
        .vault
        .reserve_dukpt(&pin, &terminal, "bench-2", Some("Bob"), &mut derive)
        .unwrap();
    assert_eq!(
        again,
        DukptReservation {
            resumed: true,
            ..first.clone()
        }
    );
    bench
        .vault
        .mark_dukpt_sent(&pin, first.device_id, &terminal)
        .unwrap();
    let after_sending = bench
        .vault
        .reserve_dukpt(&pin, &terminal, "bench-1", None, &mut derive)
        .unwrap();
    assert_eq!(after_sending.device_id, first.device_id);
    assert_eq!(calls, 1);
    // Another terminal gets the next id; the same terminal under another BDK its own.
    assert_eq!(
        bench.reserve("PIN", "999X0001").device_id,
        device("00000101")
    );
    let data = bench.reserve("DATA", "123L013K");
    assert_eq!(
        (data.device_id, data.initial_ksn.as_str()),
        (device("00000"), "FFFF9876540000000000")
    );

    let confirmed = confirm(&mut bench.vault, &first, "123L013K", first.kcv).unwrap();
    assert!(!confirmed.already_confirmed);
    assert_eq!(confirmed.operator.as_deref(), Some("Ann Lee"));
    // A retransmitted confirmation changes nothing.
    let repeated = confirm(&mut bench.vault, &first, "123L013K", first.kcv).unwrap();
    assert!(repeated.already_confirmed);
    // Asking again after confirming is refused (re-injection needs a grant:
    // tests/reinjection.rs), and nothing is allocated.
    let refused = bench
        .vault
        .reserve_dukpt(&pin, &terminal, "bench-1", None, &mut |device| {
            Ok::<_, Infallible>(facts(bdk_id_of("PIN"), device))
        })
        .unwrap_err();
    assert!(
        matches!(
            &refused,
            ReserveDukptError::Dukpt(DukptError::AlreadyInjected { initial_ksn, .. })
                if initial_ksn == "1234567800000100"
        ),
        "{refused}"
    );
    assert_eq!(
        bench.reserve("PIN", "999X0002").device_id,
        device("00000102")
    );

    let rows = bench.vault.dukpt_rows().unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(
        (
            row.hardware_serial.as_str(),
            row.bdk.as_str(),
            row.bdk_id.to_string(),
            row.device_id,
            row.initial_ksn.as_str(),
            row.key_type,
            row.kcv,
            row.port.as_str(),
            row.terminal_model.as_str(),
            row.operator.as_deref()
        ),
        (
            "123L013K",
            "PIN",
            PIN_ID.to_owned(),
            first.device_id,
            "1234567800000100",
            KeyAlgorithm::Aes128,
            first.kcv,
            "bench-1",
            "REF-TERMINAL",
            Some("Ann Lee")
        )
    );
}

#[test]
fn nobody_else_can_send_or_confirm_a_reserved_device_id() {
    let mut bench = DukptBench::new();
    let reservation = bench.reserve("PIN", "AAAA0001");
    let error = confirm(&mut bench.vault, &reservation, "BBBB0002", reservation.kcv).unwrap_err();
    assert_eq!(
        error.to_string(),
        "device 00000100 of BDK PIN was not delivered to terminal BBBB0002"
    );
    assert!(matches!(
        bench
            .vault
            .mark_dukpt_sent(&name("PIN"), reservation.device_id, &serial_of("BBBB0002")),
        Err(DukptError::NotDeliveredTo { .. })
    ));
    assert_eq!(
        bench.reserve("PIN", "BBBB0002").device_id,
        device("00000101")
    );
    assert!(bench.vault.dukpt_rows().unwrap().is_empty());
}

#[test]
fn concurrent_reservations_never_share_a_device_id() {
    let bench = DukptBench::with_ranges("00000000-0000FFFF", "00000-0FFFF");
    let data_dir = bench.data_dir();
    drop(bench.vault);
    let handles: Vec<_> = (0..8)
        .map(|port| {
            let data_dir = data_dir.clone();
            std::thread::spawn(move || {
                let mut vault = Vault::open(&data_dir).unwrap();
                let mut mine = Vec::new();
                for terminal in 0..25 {
                    let serial = format!("P{port}T{terminal:04}");
                    for bdk in ["PIN", "DATA"] {
                        let reservation = reserve(&mut vault, bdk, &serial);
                        // Ask twice, as a terminal retrying would.
                        assert_eq!(
                            reserve(&mut vault, bdk, &serial).device_id,
                            reservation.device_id
                        );
                        confirm(&mut vault, &reservation, &serial, reservation.kcv).unwrap();
                        mine.push((bdk, reservation.device_id.value(), serial.clone()));
                    }
                }
                mine
            })
        })
        .collect();
    let mut owners: HashMap<(&str, u32), HashSet<String>> = HashMap::new();
    let mut ids_of_terminal: HashMap<(&str, String), HashSet<u32>> = HashMap::new();
    for handle in handles {
        for (bdk, id, serial) in handle.join().unwrap() {
            owners.entry((bdk, id)).or_default().insert(serial.clone());
            ids_of_terminal.entry((bdk, serial)).or_default().insert(id);
        }
    }
    assert_eq!(
        owners.len(),
        400,
        "every terminal got its own device id per BDK"
    );
    assert!(owners.values().all(|serials| serials.len() == 1));
    assert!(ids_of_terminal.values().all(|ids| ids.len() == 1));
    // The ids were handed out from the bottom of each range, without holes.
    for bdk in ["PIN", "DATA"] {
        let ids: HashSet<u32> = owners
            .keys()
            .filter(|(b, _)| *b == bdk)
            .map(|(_, id)| *id)
            .collect();
        assert_eq!(ids, (0..200).collect());
    }
    let vault = Vault::open(&data_dir).unwrap();
    assert_eq!(vault.dukpt_rows().unwrap().len(), 400);
    vault.verify_audit().unwrap();
}

#[test]
fn an_exhausted_range_is_a_clear_error_and_changes_nothing() {
    let mut bench = DukptBench::with_ranges("00000010-00000012", DATA_RANGE);
    for terminal in ["T1", "T2"] {
        bench.inject("PIN", terminal);
    }
    let pending = bench.reserve("PIN", "T3");
    let status = &bench.vault.bdks().unwrap()[1];
    assert_eq!(
        (status.name.as_str(), status.remaining, status.next_device),
        ("PIN", 0, None)
    );
    let allocations = bench.vault.dukpt_allocations().unwrap();
    let audit_rows = bench.vault.audit_rows().unwrap().len();
    let mut called = false;
    let error = bench
        .vault
        .reserve_dukpt(
            &name("PIN"),
            &serial_of("T4"),
            "bench-1",
            None,
            &mut |device| {
                called = true;
                Ok::<_, Infallible>(facts(bdk_id_of("PIN"), device))
            },
        )
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "every device id of BDK PIN's range 00000010-00000012 is allocated; assign this appliance a new range"
    );
    assert!(matches!(
        error,
        ReserveDukptError::Dukpt(DukptError::RangeExhausted { ref bdk, range: r })
            if bdk.as_str() == "PIN" && r == range("00000010-00000012")
    ));
    assert!(!called, "nothing is derived for a used-up range");
    assert_eq!(bench.vault.dukpt_allocations().unwrap(), allocations);
    assert_eq!(bench.vault.audit_rows().unwrap().len(), audit_rows);
    // The terminal holding the last id still gets it again; the other BDK is untouched.
    assert_eq!(
        bench.reserve("PIN", "T3"),
        DukptReservation {
            resumed: true,
            ..pending
        }
    );
    assert_eq!(bench.reserve("DATA", "T4").device_id, device("00000"));
}

#[test]
fn wrong_check_values_count_and_quarantine_the_device_id() {
    let mut bench = DukptBench::new();
    let reservation = bench.reserve("DATA", "AAAA0001");
    let wrong: Kcv = "000000".parse().unwrap();
    for failure in 1..=3u32 {
        match confirm(&mut bench.vault, &reservation, "AAAA0001", wrong) {
            Err(DukptError::KcvMismatch {
                failures,
                quarantined,
                expected,
                ..
            }) => {
                assert_eq!(
                    (failures, quarantined, expected),
                    (failure, failure == 3, reservation.kcv)
                );
            }
            other => panic!("expected a check value mismatch, got {other:?}"),
        }
    }
    let allocation = &bench.vault.dukpt_allocations().unwrap()[0];
    assert_eq!(
        (allocation.state, allocation.failed_confirmations),
        (KeyState::Quarantined, 3)
    );
    // Not even the right check value confirms it now; the terminal gets a new device id.
    assert!(confirm(&mut bench.vault, &reservation, "AAAA0001", reservation.kcv).is_err());
    assert_eq!(bench.reserve("DATA", "AAAA0001").device_id, device("00001"));
    assert!(bench.vault.dukpt_rows().unwrap().is_empty());
    let last = bench
        .vault
        .audit_rows()
        .unwrap()
        .into_iter()
        .rfind(|row| row.event == "dukpt-quarantine")
        .unwrap();
    assert_eq!(
        (last.actor.as_str(), last.details.as_str()),
        (
            "system",
            "bdk=DATA; device_id=00000; hardware_serial=AAAA0001; failures=3"
        )
    );
}

#[test]
fn a_void_frees_the_terminal_but_never_the_device_id() {
    let mut bench = DukptBench::new();
    let used = bench.inject("PIN", "AAAA0001");
    let pending = bench.reserve("PIN", "BBBB0002");
    let pin = name("PIN");
    assert!(matches!(
        bench
            .vault
            .void_dukpt(&pin, pending.device_id, " ", "Ann Lee"),
        Err(DukptError::VoidNeedsReasonAndOperator { .. })
    ));
    assert!(matches!(
        bench
            .vault
            .void_dukpt(&pin, used.device_id, "why", "Ann Lee"),
        Err(DukptError::NotPending {
            state: KeyState::Used,
            ..
        })
    ));
    assert!(matches!(
        bench
            .vault
            .void_dukpt(&pin, device("000001FF"), "why", "Ann Lee"),
        Err(DukptError::NotAllocated { .. })
    ));
    let voided = bench
        .vault
        .void_dukpt(&pin, pending.device_id, "cable pulled", "Ann Lee")
        .unwrap();
    assert_eq!(
        (voided.hardware_serial.as_str(), voided.previous_state),
        ("BBBB0002", KeyState::Reserved)
    );
    let audit = bench.vault.audit_rows().unwrap().pop().unwrap();
    assert_eq!(audit.sequence, voided.audit_sequence);
    assert_eq!(
        (
            audit.event.as_str(),
            audit.actor.as_str(),
            audit.details.as_str()
        ),
        (
            "dukpt-void",
            "Ann Lee",
            "bdk=PIN; device_id=00000101; reason=cable pulled; operator=Ann Lee"
        )
    );
    assert_eq!(
        bench.reserve("PIN", "BBBB0002").device_id,
        device("00000102")
    );
    assert!(confirm(&mut bench.vault, &pending, "BBBB0002", pending.kcv).is_err());
}

#[test]
fn derived_keys_are_checked_before_anything_is_reserved() {
    let mut bench = DukptBench::new();
    let audit_rows = bench.vault.audit_rows().unwrap().len();
    let pin_id = bdk_id_of("PIN");
    let mut attempt = |bdk: &str, change: &dyn Fn(&mut DerivedKeyFacts)| {
        let bdk_id = bdk_id_of(bdk);
        bench
            .vault
            .reserve_dukpt(
                &name(bdk),
                &serial_of("T1"),
                "bench-1",
                None,
                &mut |device| {
                    let mut facts = facts(bdk_id, device);
                    change(&mut facts);
                    Ok::<_, Infallible>(facts)
                },
            )
            .unwrap_err()
            .to_string()
    };
    // AES-128 BDK: no AES-192 or AES-256 key; TDES BDK: TDES-2KEY only.
    assert_eq!(
        attempt("PIN", &|facts| facts.key_type = KeyAlgorithm::Aes256),
        "BDK PIN (AES-128) cannot derive AES-256 keys: a derived key is never stronger than its BDK"
    );
    assert_eq!(
        attempt("DATA", &|facts| facts.key_type = KeyAlgorithm::Tdes3Key),
        "BDK DATA (TDES-2KEY) cannot derive TDES-3KEY keys: TDES DUKPT derives TDES-2KEY keys only"
    );
    assert_eq!(
        attempt("PIN", &|facts| facts.initial_ksn =
            format!("87654321{}", &facts.initial_ksn[8..])),
        "the initial key derived for device 00000100 of BDK PIN was refused: its initial key ID does not begin with the BDK's identifier 12345678"
    );
    assert!(
        attempt("DATA", &|facts| facts.initial_ksn.truncate(16))
            .contains("its initial KSN is not 20 hex digits")
    );
    assert!(
        attempt("PIN", &|facts| facts.kcv = "08D7B4".parse().unwrap())
            .contains("is a TDES check value")
    );
    let error = bench
        .vault
        .reserve_dukpt(&name("PIN"), &serial_of("T1"), "bench-1", None, &mut |_| {
            Err::<DerivedKeyFacts, _>(std::fmt::Error)
        })
        .unwrap_err();
    assert!(
        matches!(error, ReserveDukptError::Derive { device_id, .. } if device_id == device("00000100"))
    );
    let unknown = bench
        .vault
        .reserve_dukpt(
            &name("MAC"),
            &serial_of("T1"),
            "bench-1",
            None,
            &mut |device| Ok::<_, Infallible>(facts(pin_id, device)),
        )
        .unwrap_err();
    assert_eq!(unknown.to_string(), "no BDK named MAC is loaded");
    assert!(bench.vault.dukpt_allocations().unwrap().is_empty());
    assert_eq!(bench.vault.audit_rows().unwrap().len(), audit_rows);
    // An AES-128 BDK may derive a TDES key (no stronger than AES-128).
    let tdes = bench
        .vault
        .reserve_dukpt(
            &name("PIN"),
            &serial_of("T1"),
            "bench-1",
            None,
            &mut |device| {
                Ok::<_, Infallible>(DerivedKeyFacts {
                    key_type: KeyAlgorithm::Tdes3Key,
                    kcv: stand_in_kcv(KeyFamily::Tdes, device),
                    ..facts(pin_id, device)
                })
            },
        )
        .unwrap();
    assert_eq!(
        (tdes.device_id, tdes.key_type),
        (device("00000100"), KeyAlgorithm::Tdes3Key)
    );
}

#[test]
fn the_audit_chain_names_every_dukpt_event_and_verifies() {
    let mut bench = DukptBench::new();
    bench.inject("PIN", "AAAA0001");
    let pending = bench.reserve("DATA", "BBBB0002");
    bench
        .vault
        .void_dukpt(&name("DATA"), pending.device_id, "terminal dead", "Ann Lee")
        .unwrap();
    let rows = bench.vault.audit_rows().unwrap();
    let dukpt: Vec<(&str, &str, &str)> = rows
        .iter()
        .filter(|row| row.event.starts_with("bdk") || row.event.starts_with("dukpt"))
        .map(|row| (row.event.as_str(), row.actor.as_str(), row.details.as_str()))
        .collect();
    let pin_kcv = bench.pin.kcv();
    let data_kcv = bench.data.kcv();
    let injected_kcv = stand_in_kcv(KeyFamily::Aes, device("00000100"));
    assert_eq!(
        dukpt,
        [
            (
                "bdk-loaded",
                "Ann Lee/Raj Patel",
                &*format!(
                    "bdk=PIN; kind=AES; algorithm=AES-128; bdk_id=12345678; kcv={pin_kcv}; range=00000100-000001FF; source=ceremony; replaced=no; custodians=Ann Lee/Raj Patel"
                )
            ),
            (
                "bdk-loaded",
                "Ann Lee",
                &*format!(
                    "bdk=DATA; kind=TDES; algorithm=TDES-2KEY; bdk_id=FFFF987654; kcv={data_kcv}; range=00000-000FF; source=ceremony; replaced=no; custodians=Ann Lee/Raj Patel; operator=Ann Lee"
                )
            ),
            (
                "dukpt-injection",
                "system",
                &*format!(
                    "bdk=PIN; bdk_id=12345678; device_id=00000100; initial_ksn=1234567800000100; key_type=AES-128; kcv={injected_kcv}; hardware_serial=AAAA0001; port=bench-1"
                )
            ),
            (
                "dukpt-void",
                "Ann Lee",
                "bdk=DATA; device_id=00000; reason=terminal dead; operator=Ann Lee"
            ),
        ]
    );
    let report = bench.vault.verify_audit().unwrap();
    assert_eq!(report.rows, rows.len() as u64);
    // No audit row carries a BDK (nor does any byte of the database: dukpt_schema.rs).
    for key in [&bench.pin, &bench.data] {
        let hex = key.expose_secret_hex().to_string();
        assert!(rows.iter().all(|row| !row.details.contains(&hex)));
    }
}

#[test]
fn a_terminal_confirming_names_the_operator_it_was_reserved_under() {
    let mut bench = DukptBench::new();
    let reservation = bench
        .vault
        .reserve_dukpt(
            &name("PIN"),
            &serial_of("AAAA0001"),
            "bench-1",
            None,
            &mut |device| Ok::<_, Infallible>(facts(bdk_id_of("PIN"), device)),
        )
        .unwrap();
    let model = "M".parse().unwrap();
    let confirmed = bench
        .vault
        .confirm_dukpt(
            &DukptConfirmation {
                bdk: &reservation.bdk,
                device_id: reservation.device_id,
                hardware_serial: &serial_of("AAAA0001"),
                kcv: reservation.kcv,
                port: "bench-1",
                terminal_model: &model,
            },
            3,
            Some("Bob"),
        )
        .unwrap();
    assert_eq!(confirmed.operator.as_deref(), Some("Bob"));
    let last = bench.vault.audit_rows().unwrap().pop().unwrap();
    assert_eq!(last.actor, "Bob");
    assert!(last.details.ends_with("; operator=Bob"));
}

#[test]
fn a_bdk_is_unsealed_with_its_key_and_status() {
    let bench = DukptBench::new();
    let (status, key) = bench.vault.load_bdk(&name("DATA")).unwrap();
    assert!(key.same_material_as(&bench.data));
    assert_eq!(
        (
            status.kind,
            status.algorithm,
            status.bdk_id.to_string(),
            status.range,
            status.remaining,
            status.next_device
        ),
        (
            KeyFamily::Tdes,
            KeyAlgorithm::Tdes2Key,
            DATA_ID.to_owned(),
            range(DATA_RANGE),
            256,
            Some(device("00000"))
        )
    );
    assert!(!status.destroyed);
    let names: Vec<String> = bench
        .vault
        .bdks()
        .unwrap()
        .into_iter()
        .map(|s| s.name.to_string())
        .collect();
    assert_eq!(names, ["DATA", "PIN"]);
}
