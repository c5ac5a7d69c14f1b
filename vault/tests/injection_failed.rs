//! The `injection-failed` audit event: a delivered key its terminal never confirmed is recorded with its port, serial, key index and cause, and the key stays reserved for that terminal.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
mod typed;
#[allow(unused_imports)]
use typed::*;

use keymother_vault::{InjectionFailureCause, KeyState};
use support::{Bench, FIRST_INDEX};

#[test]
fn an_unconfirmed_delivery_is_recorded_and_its_key_stays_reserved() {
    let mut bench = Bench::new(3);
    let reservation = bench.send("123L013K");
    let before = bench.audit_count();
    let row = bench
        .vault
        .record_injection_failure(
            "bench-2",
            &as_serial("123L013K"),
            Some(as_index(reservation.key_index)),
            InjectionFailureCause::IdleTimeout,
            Some("Ann Lee"),
        )
        .unwrap();
    assert_eq!(bench.audit_count(), before + 1);
    assert_eq!(row.event, "injection-failed");
    assert_eq!(row.actor, "Ann Lee");
    assert_eq!(
        row.details,
        format!(
            "port=bench-2; hardware_serial=123L013K; key_index={:08}; cause=idle-timeout; operator=Ann Lee",
            FIRST_INDEX
        )
    );
    assert_eq!(bench.vault.audit_rows().unwrap().last(), Some(&row));
    bench.vault.verify_audit().unwrap();

    // Nothing was released: the key is still sent to that terminal, none more available.
    let inventory = bench.vault.inventory().unwrap();
    assert_eq!(inventory.count(KeyState::Sent), 1);
    assert_eq!(inventory.count(KeyState::Available), 2);
    // The terminal that comes back gets the same key again; another terminal another key.
    let again = bench
        .vault
        .reserve_key(&as_serial("123L013K"), "bench-2")
        .unwrap();
    assert_eq!(again.key_index, reservation.key_index);
    assert!(again.resumed);
    let other = bench
        .vault
        .reserve_key(&as_serial("123L013L"), "bench-1")
        .unwrap();
    assert_ne!(other.key_index, reservation.key_index);
}

#[test]
fn each_cause_has_its_word_and_no_key_index_is_left_out() {
    let mut bench = Bench::new(1);
    for (cause, word) in [
        (InjectionFailureCause::IdleTimeout, "idle-timeout"),
        (InjectionFailureCause::PortLost, "port-lost"),
        (InjectionFailureCause::Abort, "abort"),
    ] {
        assert_eq!(cause.as_str(), word);
        assert_eq!(word.parse::<InjectionFailureCause>(), Ok(cause));
        let row = bench
            .vault
            .record_injection_failure("bench-1", &as_serial("123L013K"), None, cause, None)
            .unwrap();
        assert_eq!(row.actor, "system");
        assert_eq!(
            row.details,
            format!("port=bench-1; hardware_serial=123L013K; cause={word}")
        );
    }
    assert!("timeout".parse::<InjectionFailureCause>().is_err());
    assert!("Abort".parse::<InjectionFailureCause>().is_err());
    bench.vault.verify_audit().unwrap();
    // Recording failures never touches the inventory.
    assert_eq!(
        bench.vault.inventory().unwrap().count(KeyState::Available),
        1
    );
}
