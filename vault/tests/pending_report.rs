//! Pending injections (`pending`), voiding a terminal's pending key by its serial, and reports for a period: what the registry, the inventory and the audit trail hold, counted per operator, batch, model and port.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
mod typed;
#[allow(unused_imports)]
use typed::*;

use keymother_vault::{
    InjectionFailureCause, KeyState, PendingSlot, ReportCounts, ReportGroup, ReportPeriod,
    VoidSerialError,
};
use support::{Bench, FIRST_INDEX};

/// Reserves a key for `serial` on `port` under `operator`, recording the model, and sends it.
fn deliver(bench: &mut Bench, serial: &str, port: &str, operator: Option<&str>) -> u32 {
    let reservation = bench
        .vault
        .reserve_key_for(
            &as_serial(serial),
            port,
            operator,
            Some(&as_model("REF-TERMINAL")),
        )
        .unwrap();
    bench
        .vault
        .mark_sent(reservation.key_index, &as_serial(serial))
        .unwrap();
    reservation.key_index.value()
}

/// Every time a test writes: the whole of this century.
fn always() -> ReportPeriod {
    ReportPeriod {
        from: "2000-01-01T00:00:00Z".to_owned(),
        to: "2100-01-01T00:00:00Z".to_owned(),
    }
}

#[test]
fn pending_lists_what_no_terminal_confirmed_with_port_model_and_operator() {
    let mut bench = Bench::new(5);
    bench.inject("CONFIRMED1");
    let vanished = deliver(&mut bench, "VANISHED1", "bench-2", Some("Ann Lee"));
    // Reserved, never sent (no model recorded by the old call).
    let reserved = bench
        .vault
        .reserve_key(&as_serial("RESERVED1"), "bench-3")
        .unwrap();

    let pending = bench.vault.pending_injections().unwrap();
    assert_eq!(pending.len(), 2, "{pending:?}");
    let sent = pending
        .iter()
        .find(|entry| entry.hardware_serial == "VANISHED1")
        .unwrap();
    assert_eq!(sent.state, KeyState::Sent);
    assert_eq!(sent.port, "bench-2");
    assert_eq!(sent.operator.as_deref(), Some("Ann Lee"));
    assert_eq!(
        sent.terminal_model
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some("REF-TERMINAL")
    );
    assert!(sent.reserved_at.ends_with('Z'), "{}", sent.reserved_at);
    match &sent.slot {
        PendingSlot::Master {
            key_index,
            batch_id,
        } => {
            assert_eq!(*key_index, vanished);
            assert_eq!(batch_id.to_string(), "B-1");
        }
        other => panic!("not a master key: {other:?}"),
    }
    let waiting = pending
        .iter()
        .find(|entry| entry.hardware_serial == "RESERVED1")
        .unwrap();
    assert_eq!(waiting.state, KeyState::Reserved);
    assert_eq!(waiting.terminal_model, None);
    assert_eq!(waiting.operator, None);
    assert!(
        matches!(waiting.slot, PendingSlot::Master { key_index, .. } if key_index == reserved.key_index)
    );
}

#[test]
fn void_by_serial_voids_the_terminals_pending_key_with_the_usual_audit_row() {
    let mut bench = Bench::new(5);
    bench.inject("CONFIRMED1");
    let vanished = deliver(&mut bench, "VANISHED1", "bench-1", None);
    let rows = bench.audit_count();

    // No pending key: a clear error, and nothing changes.
    for serial in ["NOSUCH1", "CONFIRMED1"] {
        let error = bench
            .vault
            .void_key_of_serial(&as_serial(serial), "cable pulled", "Ann Lee")
            .unwrap_err();
        assert!(matches!(error, VoidSerialError::NoPendingKey(_)), "{error}");
        assert_eq!(
            error.to_string(),
            format!(
                "hardware serial {serial} has no pending master key (nothing reserved or sent to it waits for a confirmation)"
            )
        );
    }
    assert_eq!(bench.audit_count(), rows);
    assert_eq!(bench.vault.pending_injections().unwrap().len(), 1);

    let voided = bench
        .vault
        .void_key_of_serial(&as_serial("VANISHED1"), "cable pulled", "Ann Lee")
        .unwrap();
    assert_eq!(voided.key_index, vanished);
    assert_eq!(voided.hardware_serial, "VANISHED1");
    assert_eq!(voided.previous_state, KeyState::Sent);
    assert!(bench.vault.pending_injections().unwrap().is_empty());
    let audit = bench.vault.audit_rows().unwrap();
    assert_eq!(audit.len(), rows + 1);
    let last = audit.last().unwrap();
    assert_eq!(last.event, "void");
    assert!(
        last.details
            .starts_with(&format!("key_index={vanished:08}; reason=cable pulled")),
        "{}",
        last.details
    );
    // Voided once: a second void by serial finds nothing pending.
    assert!(matches!(
        bench
            .vault
            .void_key_of_serial(&as_serial("VANISHED1"), "again", "Ann Lee"),
        Err(VoidSerialError::NoPendingKey(_))
    ));
}

#[test]
fn a_report_counts_what_the_registry_the_inventory_and_the_audit_trail_hold() {
    let mut bench = Bench::new(10);
    for serial in ["TERM1", "TERM2", "TERM3"] {
        bench.inject(serial);
    }
    deliver(&mut bench, "PENDING1", "bench-2", Some("Ann Lee"));
    let voided = deliver(&mut bench, "VOIDED1", "bench-2", Some("Ann Lee"));
    bench
        .vault
        .void_key(as_index(voided), "terminal broken", "Ann Lee")
        .unwrap();

    // PENDING1 stopped answering after its delivery; so did a terminal on bench-3 before any
    // master key was delivered to it.
    let pending_key = bench.vault.pending_injections().unwrap()[0].clone();
    let PendingSlot::Master { key_index, .. } = pending_key.slot else {
        panic!("not a master key")
    };
    bench
        .vault
        .record_injection_failure(
            "bench-2",
            &as_serial("PENDING1"),
            Some(key_index),
            InjectionFailureCause::IdleTimeout,
            Some("Ann Lee"),
        )
        .unwrap();
    bench
        .vault
        .record_injection_failure(
            "bench-3",
            &as_serial("EARLY1"),
            None,
            InjectionFailureCause::PortLost,
            None,
        )
        .unwrap();

    let report = bench.vault.report(&always()).unwrap();
    assert_eq!(
        report.totals,
        ReportCounts {
            injections: 3,
            failures: 2,
            pending: 1,
            voided: 1,
        }
    );
    assert_eq!(
        report.totals.injections,
        bench.vault.smn_rows().unwrap().len() as u64
    );
    let inventory = bench.vault.inventory().unwrap();
    assert_eq!(
        report.totals.pending,
        inventory.count(KeyState::Reserved) + inventory.count(KeyState::Sent)
    );
    assert_eq!(report.totals.voided, inventory.count(KeyState::Void));
    // Three groups: the failure on bench-3 that names no key (nothing known but its port),
    // the injections of bench-1 (nobody logged in), and Ann Lee's on bench-2.
    assert_eq!(report.rows.len(), 3, "{report:?}");
    assert_eq!(
        report.rows[0].group,
        ReportGroup {
            operator: None,
            batch_id: None,
            terminal_model: None,
            port: Some("bench-3".to_owned()),
        }
    );
    assert_eq!(report.rows[0].counts.failures, 1);
    let bench_1 = &report.rows[1];
    assert_eq!(
        bench_1.group,
        ReportGroup {
            operator: None,
            batch_id: Some("B-1".to_owned()),
            terminal_model: Some("REF-TERMINAL".to_owned()),
            port: Some("bench-1".to_owned()),
        }
    );
    assert_eq!(bench_1.counts.injections, 3);
    let ann = &report.rows[2];
    assert_eq!(ann.group.operator.as_deref(), Some("Ann Lee"));
    assert_eq!(ann.group.port.as_deref(), Some("bench-2"));
    assert_eq!(
        (ann.counts.pending, ann.counts.voided, ann.counts.failures),
        (1, 1, 1)
    );

    // A period before all of it: nothing.
    let before = bench
        .vault
        .report(&ReportPeriod {
            from: "2000-01-01T00:00:00Z".to_owned(),
            to: "2000-01-02T00:00:00Z".to_owned(),
        })
        .unwrap();
    assert!(before.rows.is_empty());
    assert_eq!(before.totals, ReportCounts::default());
    assert_eq!(FIRST_INDEX, 101);
}

#[test]
fn a_reservations_terminal_model_is_never_rewritten() {
    let mut bench = Bench::new(2);
    let index = deliver(&mut bench, "TERM1", "bench-1", None);
    let raw = bench.raw();
    let error = raw
        .execute(
            "UPDATE key_inventory SET terminal_model = 'OTHER' WHERE key_index = ?1",
            [index],
        )
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("the terminal model of a reservation is never changed"),
        "{error}"
    );
}
