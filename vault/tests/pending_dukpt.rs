//! Pending DUKPT initial keys: an allocation reserved or sent to a terminal and not confirmed is listed by `pending` with its BDK and device id, beside the master keys; a confirmed or voided one is not.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod dukpt_bench;

use dukpt_bench::*;
use keymother_vault::{KeyState, PendingSlot};

#[test]
fn pending_lists_dukpt_initial_keys_reserved_or_sent_and_not_confirmed() {
    let mut bench = DukptBench::new();
    // Confirmed: not pending.
    bench.inject("PIN", "DONE0001");
    // Reserved (TDES BDK), and sent (AES BDK), never confirmed.
    let reserved = bench.reserve("DATA", "WAIT0001");
    let sent = bench
        .vault
        .reserve_dukpt(
            &name("PIN"),
            &serial_of("GONE0001"),
            "bench-2",
            Some("Ann Lee"),
            &mut |device| Ok::<_, std::convert::Infallible>(facts(bdk_id_of("PIN"), device)),
        )
        .unwrap();
    bench
        .vault
        .mark_dukpt_sent(&sent.bdk, sent.device_id, &serial_of("GONE0001"))
        .unwrap();

    let pending = bench.vault.pending_injections().unwrap();
    assert_eq!(pending.len(), 2, "{pending:?}");
    let waiting = pending
        .iter()
        .find(|entry| entry.hardware_serial == "WAIT0001")
        .unwrap();
    assert_eq!(
        waiting.slot,
        PendingSlot::Dukpt {
            bdk: name("DATA"),
            device_id: reserved.device_id,
        }
    );
    assert_eq!(waiting.state, KeyState::Reserved);
    assert_eq!(waiting.port, "bench-1");
    assert_eq!(waiting.terminal_model, None);
    let gone = pending
        .iter()
        .find(|entry| entry.hardware_serial == "GONE0001")
        .unwrap();
    assert_eq!(
        gone.slot,
        PendingSlot::Dukpt {
            bdk: name("PIN"),
            device_id: sent.device_id,
        }
    );
    assert_eq!(gone.state, KeyState::Sent);
    assert_eq!(gone.port, "bench-2");
    assert_eq!(gone.operator.as_deref(), Some("Ann Lee"));

    // Voided: no longer pending. A master-key void by serial finds nothing for it.
    bench
        .vault
        .void_dukpt(&sent.bdk, sent.device_id, "terminal gone", "Ann Lee")
        .unwrap();
    let pending = bench.vault.pending_injections().unwrap();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert!(
        bench
            .vault
            .void_key_of_serial(&serial_of("WAIT0001"), "x", "Ann Lee")
            .is_err()
    );
    assert_eq!(bench.vault.pending_injections().unwrap().len(), 1);
}
