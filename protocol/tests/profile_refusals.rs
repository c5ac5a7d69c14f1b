//! Profile mode on the appliance, frame by frame from a test playing the terminal: the order of keys, every refusal with its code and field, resumed DUKPT_CONFIRM accepted and refused, and the adapter's answers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use keymother_protocol::{
    ApplianceAction, ConfirmRefusal, DispenseRefusal, DukptDelivery, ErrorCode, FailureCause,
    Frame, Message, Mode, SessionEvent,
};

const PIN_KSN: [u8; 8] = [0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56];
const DATA_KSN: [u8; 10] = [0xFF, 0xFF, 0x98, 0x76, 0x54, 0x32, 0x10, 0xE0, 0x00, 0x00];

/// An appliance offering the three-key profile (or it without its master key), welcomed
/// terminal T1 at SEQ 0.
fn welcomed(master_key: bool) -> Direct {
    let mut profile = three_key_profile();
    profile.master_key = master_key;
    let mut direct = Direct::with_config(
        profile_appliance_config(profile),
        FakeVault::with_keys([278]),
    );
    direct.dukpt = dukpt_vault(10);
    let answers = direct.request(0, &hello_for("T1", vec![3]));
    assert!(
        matches!(answers[..], [(0, Message::Welcome(_))]),
        "{answers:?}"
    );
    direct
}

fn pin_kcv() -> Vec<u8> {
    fake_dukpt_kcv(keymother_protocol::KeyAlgorithm::Aes128, &PIN_KSN)
}

fn data_kcv() -> Vec<u8> {
    fake_dukpt_kcv(keymother_protocol::KeyAlgorithm::Tdes2Key, &DATA_KSN)
}

/// Asserts a single ERROR with `code` and a detail containing `words`.
fn refused(answers: &[(u8, Message)], code: ErrorCode, words: &str) {
    let (_, got, detail) = error_code(answers);
    assert_eq!(got, code, "{detail}");
    assert!(detail.contains(words), "{words:?} not in {detail:?}");
}

#[test]
fn keys_come_in_the_profile_order_each_once() {
    let mut direct = welcomed(true);
    let out_of_order = ErrorCode::OUT_OF_ORDER_MESSAGE;
    refused(
        &direct.request(1, &dukpt_request(0)),
        out_of_order,
        "starts with the master key",
    );
    let answers = direct.request(2, &key_request_in(Mode::Profile.id()));
    assert!(matches!(answers[..], [(2, Message::KeyDelivery(_))]));
    refused(
        &direct.request(3, &dukpt_request(0)),
        out_of_order,
        "CONFIRM it before DUKPT_REQUEST",
    );
    let answers = direct.request(4, &confirm_for("T1", 278, fake_kcv(278)));
    assert!(matches!(answers[..], [(4, Message::Confirmed(_))]));
    refused(
        &direct.request(5, &key_request_in(3)),
        out_of_order,
        "already confirmed",
    );
    refused(
        &direct.request(6, &dukpt_request(1)),
        out_of_order,
        "slot 0 comes before slot 1",
    );
    refused(
        &direct.request(7, &dukpt_confirm(1, &DATA_KSN, data_kcv())),
        out_of_order,
        "slot 0 comes before slot 1",
    );
    let answers = direct.request(8, &dukpt_request(0));
    let [(8, Message::DukptDelivery(delivery))] = &answers[..] else {
        panic!("expected DUKPT_DELIVERY, got {answers:?}");
    };
    assert_eq!((delivery.slot, delivery.ksn.as_slice()), (0, &PIN_KSN[..]));
    refused(
        &direct.request(9, &dukpt_request(0)),
        out_of_order,
        "already delivered",
    );
    refused(
        &direct.request(10, &dukpt_request(1)),
        out_of_order,
        "not confirmed",
    );
    let answers = direct.request(11, &dukpt_confirm(0, &PIN_KSN, pin_kcv()));
    assert!(
        matches!(&answers[..], [(11, Message::DukptConfirmed(confirmed))] if confirmed.ksn == PIN_KSN)
    );
    refused(
        &direct.request(12, &dukpt_confirm(0, &PIN_KSN, pin_kcv())),
        out_of_order,
        "slot 0 is already confirmed",
    );
    assert!(matches!(
        direct.request(13, &dukpt_request(1))[..],
        [(13, Message::DukptDelivery(_))]
    ));
    assert!(matches!(
        direct.request(14, &dukpt_confirm(1, &DATA_KSN, data_kcv()))[..],
        [(14, Message::DukptConfirmed(_))]
    ));
    refused(
        &direct.request(15, &dukpt_request(1)),
        out_of_order,
        "every key of profile POS-3KEY is confirmed",
    );
    refused(
        &direct.request(16, &confirm_for("T1", 278, fake_kcv(278))),
        out_of_order,
        "every key of profile POS-3KEY",
    );
    assert_eq!(direct.dukpt.reserve_calls.len(), 2);
    assert_eq!(direct.dukpt.confirm_calls.len(), 2);
    let completed = direct
        .events()
        .into_iter()
        .filter(|event| matches!(event, SessionEvent::ProfileCompleted { .. }))
        .count();
    assert_eq!(completed, 1);
}

#[test]
fn dukpt_requests_outside_mode_3_are_out_of_order() {
    let mut direct = Direct::new(FakeVault::with_keys([1]));
    refused(
        &direct.request(0, &dukpt_request(0)),
        ErrorCode::OUT_OF_ORDER_MESSAGE,
        "must follow HELLO",
    );
    direct.request(0, &hello_for("T1", vec![1]));
    refused(
        &direct.request(1, &dukpt_request(0)),
        ErrorCode::OUT_OF_ORDER_MESSAGE,
        "only valid in mode 3 (profile); this session is in mode 1 (tr31)",
    );
    refused(
        &direct.request(2, &dukpt_confirm(0, &PIN_KSN, pin_kcv())),
        ErrorCode::OUT_OF_ORDER_MESSAGE,
        "DUKPT_CONFIRM is only valid in mode 3",
    );
    // A profile without a master key has no KEY_REQUEST.
    let mut direct = welcomed(false);
    refused(
        &direct.request(1, &key_request_in(3)),
        ErrorCode::OUT_OF_ORDER_MESSAGE,
        "has no master key",
    );
}

#[test]
fn bad_payloads_get_malformed_message_naming_the_field() {
    let mut direct = welcomed(false);
    let malformed = ErrorCode::MALFORMED_MESSAGE;
    let raw = |seq: u8, type_id: u8, payload: Vec<u8>| {
        Frame::new(seq, type_id, payload).encode().unwrap()
    };
    refused(
        &direct.feed(&raw(1, 0x16, vec![])),
        malformed,
        "DUKPT_REQUEST slot: the payload ends inside it",
    );
    refused(
        &direct.feed(&raw(2, 0x16, vec![0, 0])),
        malformed,
        "DUKPT_REQUEST payload: 1 byte(s) follow the last field",
    );
    refused(
        &direct.request(3, &dukpt_request(2)),
        malformed,
        "DUKPT_REQUEST slot: slot 2 is not one of the profile's 2 slot(s)",
    );
    refused(
        &direct.feed(&raw(
            4,
            0x17,
            [&[0, 9][..], &[0; 9], &[3, 1, 2, 3]].concat(),
        )),
        malformed,
        "DUKPT_CONFIRM KSN length: length 9 is not allowed",
    );
    refused(
        &direct.feed(&raw(
            5,
            0x17,
            [&[0, 8][..], &PIN_KSN, &[4, 1, 2, 3, 4]].concat(),
        )),
        malformed,
        "DUKPT_CONFIRM KCV length",
    );
    // Slot 1 is TDES DUKPT: its KSN is 10 bytes, not an AES key ID's 8.
    refused(
        &direct.request(6, &dukpt_confirm(1, &PIN_KSN, data_kcv())),
        malformed,
        "DUKPT_CONFIRM KSN length: length 8 is not allowed (10 (a TDES DUKPT slot's initial KSN))",
    );
    refused(
        &direct.request(7, &dukpt_confirm(9, &PIN_KSN, pin_kcv())),
        malformed,
        "DUKPT_CONFIRM slot",
    );
    let mut direct = welcomed(true);
    let request = Message::KeyRequest(keymother_protocol::KeyRequest {
        mode_id: 3,
        mode_data: vec![0],
    });
    refused(
        &direct.request(1, &request),
        malformed,
        "KEY_REQUEST mode data: 1 byte(s) follow the last field",
    );
    assert!(direct.dukpt.reserve_calls.is_empty() && direct.vault.reserve_calls.is_empty());
}

#[test]
fn a_resumed_dukpt_confirm_is_decided_by_the_vault() {
    // T1 got slot 0's key in an earlier session and never saw DUKPT_CONFIRMED.
    let mut direct = welcomed(false);
    direct.request(1, &dukpt_request(0));
    direct.request(0, &hello_for("T1", vec![3]));
    let answers = direct.request(1, &dukpt_confirm(0, &PIN_KSN, pin_kcv()));
    assert!(
        matches!(answers[..], [(1, Message::DukptConfirmed(_))]),
        "{answers:?}"
    );
    assert_eq!(
        direct.dukpt.reserve_calls.len(),
        1,
        "nothing reserved again"
    );
    // Confirmed again after a restart: the record is repeated.
    direct.request(0, &hello_for("T1", vec![3]));
    let answers = direct.request(1, &dukpt_confirm(0, &PIN_KSN, pin_kcv()));
    assert!(
        matches!(answers[..], [(1, Message::DukptConfirmed(_))]),
        "{answers:?}"
    );
    // Another terminal claiming the same KSN: the vault has no record of giving it one.
    direct.request(0, &hello_for("T2", vec![3]));
    refused(
        &direct.request(1, &dukpt_confirm(0, &PIN_KSN, pin_kcv())),
        ErrorCode::KEY_NOT_DELIVERED,
        "the vault has no record of slot 0 (PIN) KSN 1234567890123456",
    );
    // The session is as it was: T2 may ask for its own key now.
    let answers = direct.request(2, &dukpt_request(0));
    let [(2, Message::DukptDelivery(delivery))] = &answers[..] else {
        panic!("expected DUKPT_DELIVERY, got {answers:?}");
    };
    assert_ne!(delivery.ksn, PIN_KSN);
    // A wrong KCV for a key of this session: KCV_MISMATCH, and the key stays delivered.
    let ksn = delivery.ksn.clone();
    refused(
        &direct.request(3, &dukpt_confirm(0, &ksn, vec![0; 5])),
        ErrorCode::KCV_MISMATCH,
        "the KCV is not the initial key's of slot 0 (PIN)",
    );
    let kcv = fake_dukpt_kcv(keymother_protocol::KeyAlgorithm::Aes128, &ksn);
    assert!(matches!(
        direct.request(4, &dukpt_confirm(0, &ksn, kcv))[..],
        [(4, Message::DukptConfirmed(_))]
    ));
}

#[test]
fn a_confirm_for_another_ksn_than_delivered_is_refused_without_the_vault() {
    let mut direct = welcomed(false);
    direct.request(1, &dukpt_request(0));
    let mut other = PIN_KSN;
    other[7] ^= 1;
    refused(
        &direct.request(2, &dukpt_confirm(0, &other, pin_kcv())),
        ErrorCode::KEY_NOT_DELIVERED,
        "was not delivered in this session (slot 0 KSN 1234567890123456 was)",
    );
    assert!(direct.dukpt.confirm_calls.is_empty());
}

#[test]
fn the_vaults_refusals_become_errors_and_reserve_nothing() {
    let mut direct = welcomed(false);
    direct.dukpt.bdks.get_mut("PIN").unwrap().end = 0x9012_3456;
    refused(
        &direct.request(1, &dukpt_request(0)),
        ErrorCode::NO_KEYS_AVAILABLE,
        "no device ID of BDK PIN is left",
    );
    let mut direct = welcomed(false);
    direct.dukpt.bdks.remove("PIN");
    refused(
        &direct.request(1, &dukpt_request(0)),
        ErrorCode::NOT_READY,
        "BDK PIN (slot 0) is not loaded on the appliance",
    );
    assert!(direct.events().iter().any(|event| matches!(
        event,
        SessionEvent::ErrorSent {
            cause: FailureCause::BdkNotLoaded,
            ..
        }
    )));
    direct.dukpt.refuse_reservation = Some(DispenseRefusal::NoOperator);
    refused(
        &direct.request(2, &dukpt_request(0)),
        ErrorCode::NOT_READY,
        "no operator",
    );
    direct.dukpt.refuse_reservation = None;
    direct.dukpt.load(
        "PIN",
        keymother_protocol::DukptKind::Aes,
        &[0x12, 0x34, 0x56, 0x78],
        0x9012_3456,
        1,
    );
    assert!(matches!(
        direct.request(3, &dukpt_request(0))[..],
        [(3, Message::DukptDelivery(_))]
    ));
    direct.dukpt.refuse_confirmation = Some(ConfirmRefusal::KcvMismatch { quarantined: true });
    refused(
        &direct.request(4, &dukpt_confirm(0, &PIN_KSN, pin_kcv())),
        ErrorCode::KCV_MISMATCH_QUARANTINED,
        "quarantined",
    );
    direct.dukpt.refuse_confirmation = Some(ConfirmRefusal::Internal("disk full".to_owned()));
    refused(
        &direct.request(5, &dukpt_confirm(0, &PIN_KSN, pin_kcv())),
        ErrorCode::INTERNAL_ERROR,
        "disk full",
    );
}

#[test]
fn busy_while_the_adapter_works_and_answers_only_when_asked() {
    let mut direct = welcomed(false);
    direct.hold_adapter = true;
    assert!(direct.request(1, &dukpt_request(0)).is_empty());
    assert!(
        direct.request(1, &dukpt_request(0)).is_empty(),
        "a retransmission waits"
    );
    refused(
        &direct.request(2, &dukpt_request(0)),
        ErrorCode::BUSY,
        "still being processed",
    );
    assert!(direct.appliance.is_waiting_for_adapter());
    let answers = direct.release();
    assert!(
        matches!(answers[..], [(1, Message::DukptDelivery(_))]),
        "{answers:?}"
    );
    // An answer nobody asked for is dropped.
    let actions = direct
        .appliance
        .handle_dukpt_reservation(Err(DispenseRefusal::NoKeysAvailable), direct.now);
    assert_eq!(
        actions,
        [ApplianceAction::Report(SessionEvent::UnexpectedOutcome {
            what: "DUKPT reservation"
        })]
    );
    let actions = direct
        .appliance
        .handle_dukpt_confirmation(Ok(()), direct.now);
    assert!(matches!(
        actions[..],
        [ApplianceAction::Report(
            SessionEvent::UnexpectedOutcome { .. }
        )]
    ));
}

#[test]
fn an_adapter_answer_for_another_slot_or_kind_is_an_internal_error() {
    let mut direct = welcomed(false);
    direct.hold_adapter = true;
    direct.request(1, &dukpt_request(0));
    let wrong_slot = DukptDelivery {
        slot: 1,
        ksn: PIN_KSN.to_vec(),
        key_block: fake_dukpt_block(
            keymother_protocol::DukptKind::Aes,
            keymother_protocol::KeyAlgorithm::Aes128,
            &PIN_KSN,
        ),
        kcv: pin_kcv(),
    };
    let actions = direct
        .appliance
        .handle_dukpt_reservation(Ok(wrong_slot.clone()), direct.now);
    let sent: Vec<_> = actions
        .iter()
        .filter_map(|action| match action {
            ApplianceAction::Send(bytes) => Some(message_in(bytes).1),
            _ => None,
        })
        .collect();
    assert!(
        matches!(&sent[..], [Message::Error(error)] if error.code == ErrorCode::INTERNAL_ERROR && error.detail.contains("names slot 1")),
        "{sent:?}"
    );
    assert!(
        !actions
            .iter()
            .any(|action| matches!(action, ApplianceAction::MarkDukptSent { .. }))
    );
    // The slot is due again: the terminal's next request is reserved afresh.
    direct.held.clear();
    direct.request(2, &dukpt_request(0));
    let tdes_ksn = DukptDelivery {
        slot: 0,
        ksn: DATA_KSN.to_vec(),
        ..wrong_slot
    };
    let actions = direct
        .appliance
        .handle_dukpt_reservation(Ok(tdes_ksn), direct.now);
    assert!(actions.iter().any(|action| matches!(action,
        ApplianceAction::Report(SessionEvent::ErrorSent { code: ErrorCode::INTERNAL_ERROR, detail, .. })
            if detail.contains("a KSN of 10 bytes; AES DUKPT KSNs are 8 bytes"))));
}

#[test]
fn a_session_ending_midway_reports_the_dukpt_key_sent_and_not_confirmed() {
    let mut direct = welcomed(false);
    direct.request(1, &dukpt_request(0));
    direct.request(
        2,
        &Message::Abort(keymother_protocol::Abort {
            reason: keymother_protocol::AbortReason::KCV_MISMATCH,
            detail: String::new(),
        }),
    );
    let aborted = direct
        .events()
        .into_iter()
        .find(|event| matches!(event, SessionEvent::Aborted { .. }))
        .unwrap();
    let SessionEvent::Aborted {
        unconfirmed_key,
        unconfirmed_dukpt: Some(unconfirmed),
        ..
    } = &aborted
    else {
        panic!("{aborted:?}");
    };
    assert_eq!(*unconfirmed_key, None);
    assert_eq!((unconfirmed.slot, unconfirmed.label.as_str()), (0, "PIN"));
    assert!(
        aborted
            .to_string()
            .ends_with("; DUKPT key of slot 0 (PIN), KSN 1234567890123456, sent but not confirmed"),
        "{aborted}"
    );
    // The same after a new HELLO: the session ended with the key unconfirmed.
    direct.request(0, &hello_for("T1", vec![3]));
    direct.request(1, &dukpt_request(0));
    direct.request(0, &hello_for("T1", vec![3]));
    assert!(direct.events().iter().any(|event| matches!(
        event,
        SessionEvent::SessionEnded {
            unconfirmed_dukpt: Some(unconfirmed),
            ..
        } if unconfirmed.ksn == PIN_KSN
    )));
}
