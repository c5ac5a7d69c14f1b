//! Appliance and terminal sessions back to back: full injection, retransmission, NAK, ABORT, and every ERROR code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use keymother_protocol::{
    AbortReason, ApplianceAction, ConfirmRefusal, DEFAULT_RESPONSE_TIMEOUT, DispenseRefusal,
    EndReason, ErrorCode, Frame, Message, MessageType, RetransmitCause, STX, SessionEvent, Smn,
    TerminalEvent, TerminalOutcome, TerminalSession, crc32,
};

fn injected(outcome: &TerminalOutcome) -> (u32, Smn) {
    match outcome {
        TerminalOutcome::Injected { key_index, smn, .. } => (*key_index, smn.clone()),
        other => panic!("expected Injected, got {other:?}"),
    }
}

fn failed(outcome: &TerminalOutcome) -> String {
    match outcome {
        TerminalOutcome::Failed { reason } => reason.clone(),
        other => panic!("expected Failed, got {other:?}"),
    }
}

#[test]
fn full_injection() {
    let mut bench = Bench::new(FakeVault::with_keys([278, 279]));
    let mut terminal = TerminalSession::new(terminal_config("123L013K"));
    let outcome = bench.run(&mut terminal);
    let (key_index, smn) = injected(&outcome);
    assert_eq!(key_index, 278);
    assert_eq!(smn.as_str(), "123L013K00000278");
    assert_eq!(bench.vault.reserve_calls.len(), 1);
    assert_eq!(bench.vault.confirm_calls.len(), 1);
    assert_eq!(bench.vault.mark_sent_calls, vec![278]);
    assert_eq!(
        bench.vault.keys[&278],
        KeyState::Used {
            serial: serial("123L013K"),
            smn
        }
    );
    assert_eq!(bench.installs, vec![278]);
    let kinds: Vec<MessageType> = bench
        .terminal_sent
        .iter()
        .map(|b| message_type_of(b))
        .collect();
    assert_eq!(
        kinds,
        [
            MessageType::Hello,
            MessageType::KeyRequest,
            MessageType::Confirm
        ]
    );
    let kinds: Vec<MessageType> = bench
        .appliance_sent
        .iter()
        .map(|b| message_type_of(b))
        .collect();
    assert_eq!(
        kinds,
        [
            MessageType::Welcome,
            MessageType::KeyDelivery,
            MessageType::Confirmed
        ]
    );
    // Sequence numbers: 0, 1, 2, each response echoing its request's.
    let seqs: Vec<u8> = bench
        .appliance_sent
        .iter()
        .map(|b| frames_in(b)[0].seq)
        .collect();
    assert_eq!(seqs, [0, 1, 2]);
    assert!(bench.errors_sent().is_empty());
    // The whole exchange takes well under one response timeout.
    assert!(bench.now < DEFAULT_RESPONSE_TIMEOUT);
}

#[test]
fn the_key_delivery_leaves_only_after_the_reservation() {
    let mut direct = Direct::new(FakeVault::with_keys([5]));
    direct.hold_adapter = true;
    direct.request(0, &hello_for("SERIAL1", vec![1]));
    let answers = direct.request(1, &key_request());
    assert!(
        answers.is_empty(),
        "nothing is sent before the reservation is answered"
    );
    assert!(matches!(
        direct.held.as_slice(),
        [ApplianceAction::Reserve { .. }]
    ));
    let answers = direct.release();
    assert!(matches!(answers.as_slice(), [(1, Message::KeyDelivery(_))]));
    // MarkSent follows the Send carrying KEY_DELIVERY.
    let position = direct
        .actions
        .iter()
        .position(|action| matches!(action, ApplianceAction::MarkSent { key_index: 5 }))
        .expect("MarkSent");
    assert!(matches!(
        &direct.actions[position - 1],
        ApplianceAction::Send(bytes) if message_type_of(bytes) == MessageType::KeyDelivery
    ));
}

#[test]
fn dropped_key_delivery_is_answered_again_from_the_cache() {
    let mut bench = Bench::new(FakeVault::with_keys([1, 2]));
    bench.to_terminal.filter = Some(drop_first(MessageType::KeyDelivery));
    let mut terminal = TerminalSession::new(terminal_config("ABC123"));
    let (key_index, _) = injected(&bench.run(&mut terminal));
    assert_eq!(key_index, 1);
    assert_eq!(bench.vault.reserve_calls.len(), 1, "one reservation");
    assert_eq!(bench.vault.confirm_calls.len(), 1, "one confirmation");
    assert_eq!(
        bench.vault.mark_sent_calls,
        vec![1, 1],
        "sent twice, same key"
    );
    assert!(
        bench
            .terminal_events
            .contains(&TerminalEvent::Retransmitted {
                seq: 1,
                attempt: 1,
                cause: RetransmitCause::Timeout
            })
    );
    assert!(
        bench
            .appliance_events
            .contains(&SessionEvent::ResponseRepeated { seq: 1 })
    );
    assert!(bench.now >= DEFAULT_RESPONSE_TIMEOUT);
}

#[test]
fn dropped_confirmed_is_answered_again_without_a_second_commit() {
    let mut bench = Bench::new(FakeVault::with_keys([1]));
    bench.to_terminal.filter = Some(drop_first(MessageType::Confirmed));
    let mut terminal = TerminalSession::new(terminal_config("ABC123"));
    injected(&bench.run(&mut terminal));
    assert_eq!(bench.vault.reserve_calls.len(), 1);
    assert_eq!(bench.vault.confirm_calls.len(), 1);
}

#[test]
fn dropped_request_is_retransmitted() {
    let mut bench = Bench::new(FakeVault::with_keys([1]));
    bench.to_appliance.filter = Some(drop_first(MessageType::Hello));
    let mut terminal = TerminalSession::new(terminal_config("ABC123"));
    injected(&bench.run(&mut terminal));
    assert_eq!(bench.vault.reserve_calls.len(), 1);
}

#[test]
fn damaged_request_is_nakked_and_sent_again_at_once() {
    let mut bench = Bench::new(FakeVault::with_keys([1]));
    // Flip a payload byte of KEY_REQUEST: the CRC fails.
    bench.to_appliance.filter = Some(corrupt_first(MessageType::KeyRequest, 5));
    let mut terminal = TerminalSession::new(terminal_config("ABC123"));
    injected(&bench.run(&mut terminal));
    assert!(bench.appliance_events.contains(&SessionEvent::NakSent));
    assert!(
        bench
            .terminal_events
            .contains(&TerminalEvent::Retransmitted {
                seq: 1,
                attempt: 1,
                cause: RetransmitCause::Nak
            })
    );
    assert!(
        bench.now < DEFAULT_RESPONSE_TIMEOUT,
        "the NAK made the terminal retransmit without waiting for the timeout"
    );
    assert_eq!(bench.vault.reserve_calls.len(), 1);
}

#[test]
fn damaged_response_is_nakked_and_the_appliance_sends_it_again() {
    let mut bench = Bench::new(FakeVault::with_keys([1]));
    bench.to_terminal.filter = Some(corrupt_first(MessageType::KeyDelivery, 20));
    let mut terminal = TerminalSession::new(terminal_config("ABC123"));
    injected(&bench.run(&mut terminal));
    assert!(bench.terminal_events.contains(&TerminalEvent::NakSent));
    assert!(
        bench
            .appliance_events
            .contains(&SessionEvent::NakReceived { resent: true })
    );
    assert!(bench.now < DEFAULT_RESPONSE_TIMEOUT);
    assert_eq!(bench.vault.reserve_calls.len(), 1);
    assert_eq!(bench.installs, vec![1], "installed once");
}

#[test]
fn a_delivery_arriving_twice_is_installed_once() {
    let mut bench = Bench::new(FakeVault::with_keys([1]));
    bench.to_terminal.filter = Some(Box::new(|bytes: &[u8]| {
        if message_type_of(bytes) == MessageType::KeyDelivery {
            vec![bytes.to_vec(), bytes.to_vec()]
        } else {
            vec![bytes.to_vec()]
        }
    }));
    let mut terminal = TerminalSession::new(terminal_config("ABC123"));
    injected(&bench.run(&mut terminal));
    assert_eq!(bench.installs, vec![1]);
    assert!(
        bench
            .terminal_events
            .iter()
            .any(|event| matches!(event, TerminalEvent::FrameIgnored { seq: 1, .. }))
    );
}

#[test]
fn a_restarted_terminal_gets_the_same_key_again() {
    let mut bench = Bench::new(FakeVault::with_keys([10, 11]));
    // First attempt: the key block does not unwrap; the terminal aborts.
    bench.install_behaviour = InstallBehaviour::DoesNotUnwrap;
    let mut terminal = TerminalSession::new(terminal_config("T1"));
    let reason = failed(&bench.run(&mut terminal));
    assert!(reason.contains("did not unwrap"), "{reason}");
    assert!(bench.appliance_events.iter().any(|event| matches!(
        event,
        SessionEvent::Aborted {
            reason: AbortReason::KEY_BLOCK_DOES_NOT_UNWRAP,
            unconfirmed_key: Some(10),
            ..
        }
    )));
    // Restart: same serial, same key, installed again.
    bench.install_behaviour = InstallBehaviour::Honest;
    let mut terminal = TerminalSession::new(terminal_config("T1"));
    let (key_index, _) = injected(&bench.run(&mut terminal));
    assert_eq!(key_index, 10);
    assert_eq!(bench.installs, vec![10]);
    // Another terminal gets the next key.
    let mut other = TerminalSession::new(terminal_config("T2"));
    assert_eq!(injected(&bench.run(&mut other)).0, 11);
}

#[test]
fn a_new_hello_ends_the_session_mid_way() {
    let mut direct = Direct::new(FakeVault::with_keys([7]));
    direct.request(0, &hello_for("T1", vec![1]));
    direct.request(1, &key_request());
    // The terminal reboots and says hello again (any SEQ).
    let answers = direct.request(0x50, &hello_for("T1", vec![1]));
    assert!(matches!(answers.as_slice(), [(0x50, Message::Welcome(_))]));
    assert!(direct.events().iter().any(|event| matches!(
        event,
        SessionEvent::SessionEnded {
            reason: EndReason::NewHello,
            unconfirmed_key: Some(7),
            ..
        }
    )));
    let answers = direct.request(0x51, &key_request());
    assert!(
        matches!(&answers[..], [(0x51, Message::KeyDelivery(delivery))] if delivery.key_index == 7)
    );
}

#[test]
fn sequence_numbers_wrap_around() {
    let mut direct = Direct::new(FakeVault::with_keys([7]));
    direct.request(0xFE, &hello_for("T1", vec![1]));
    assert!(matches!(
        direct.request(0xFF, &key_request())[..],
        [(0xFF, Message::KeyDelivery(_))]
    ));
    let answers = direct.request(0x00, &confirm_for("T1", 7, fake_kcv(7)));
    assert!(matches!(answers[..], [(0x00, Message::Confirmed(_))]));
}

#[test]
fn idle_timeout_ends_the_session() {
    let mut direct = Direct::new(FakeVault::with_keys([7]));
    direct.request(0, &hello_for("T1", vec![1]));
    direct.request(1, &key_request());
    let idle_at = direct.appliance.next_deadline().expect("idle deadline");
    assert!(direct.tick(idle_at - Duration::from_millis(1)).is_empty());
    direct.tick(idle_at);
    assert!(direct.events().iter().any(|event| matches!(
        event,
        SessionEvent::SessionEnded {
            reason: EndReason::Idle,
            unconfirmed_key: Some(7),
            ..
        }
    )));
    // The session is gone: CONFIRM now is out of order.
    let (_, code, _) = error_code(&direct.request(2, &confirm_for("T1", 7, fake_kcv(7))));
    assert_eq!(code, ErrorCode::OUT_OF_ORDER_MESSAGE);
}

#[test]
fn silent_appliance_makes_the_terminal_fail_cleanly_after_its_retries() {
    let mut bench = Bench::new(FakeVault::with_keys([1]));
    bench.to_appliance.filter = Some(Box::new(|_: &[u8]| vec![]));
    let mut terminal = TerminalSession::new(terminal_config("T1"));
    let reason = failed(&bench.run(&mut terminal));
    assert!(reason.contains("no valid response to HELLO"), "{reason}");
    assert!(reason.contains("after 4 transmissions"), "{reason}");
    assert_eq!(bench.terminal_sent.len(), 4);
    assert!(
        bench
            .terminal_sent
            .iter()
            .all(|bytes| bytes == &bench.terminal_sent[0])
    );
    assert_eq!(bench.now, DEFAULT_RESPONSE_TIMEOUT * 4);
}

#[test]
fn wrong_transport_key_is_seen_before_any_key_flows() {
    let mut bench = Bench::new(FakeVault::with_keys([1]));
    let mut config = terminal_config("T1");
    config.ttk_kcv = vec![0x08, 0xD7, 0xB4];
    let mut terminal = TerminalSession::new(config);
    let reason = failed(&bench.run(&mut terminal));
    assert!(
        reason.contains("transport key check value differs"),
        "{reason}"
    );
    assert!(bench.vault.reserve_calls.is_empty(), "no key was asked for");
    let kinds: Vec<MessageType> = bench
        .terminal_sent
        .iter()
        .map(|b| message_type_of(b))
        .collect();
    assert_eq!(kinds, [MessageType::Hello, MessageType::Abort]);
    let kinds: Vec<MessageType> = bench
        .appliance_sent
        .iter()
        .map(|b| message_type_of(b))
        .collect();
    assert_eq!(kinds, [MessageType::Welcome, MessageType::Ack]);
    assert!(bench.appliance_events.iter().any(|event| matches!(
        event,
        SessionEvent::Aborted {
            reason: AbortReason::TTK_KCV_MISMATCH,
            unconfirmed_key: None,
            ..
        }
    )));
}

#[test]
fn terminal_fails_on_appliance_errors() {
    let mut bench = Bench::new(FakeVault::with_keys([]));
    let mut terminal = TerminalSession::new(terminal_config("T1"));
    let reason = failed(&bench.run(&mut terminal));
    assert!(reason.contains("NO_KEYS_AVAILABLE"), "{reason}");
    assert_eq!(bench.errors_sent(), [ErrorCode::NO_KEYS_AVAILABLE]);
}

#[test]
fn kcv_mismatch_through_the_terminal() {
    for (quarantine, code) in [
        (false, ErrorCode::KCV_MISMATCH),
        (true, ErrorCode::KCV_MISMATCH_QUARANTINED),
    ] {
        let mut vault = FakeVault::with_keys([1]);
        vault.quarantine_on_mismatch = quarantine;
        let mut bench = Bench::new(vault);
        bench.install_behaviour = InstallBehaviour::WrongKcv;
        let mut terminal = TerminalSession::new(terminal_config("T1"));
        let reason = failed(&bench.run(&mut terminal));
        assert!(reason.contains(code.name().unwrap()), "{reason}");
        assert_eq!(bench.errors_sent(), [code]);
    }
}

#[test]
fn busy_appliance_makes_the_terminal_wait_and_retry() {
    // The adapter takes longer than a response timeout: the terminal retransmits KEY_REQUEST,
    // which is ignored (its answer is on the way), and the delivery arrives later.
    let mut bench = Bench::new(FakeVault::with_keys([1]));
    bench.adapter_delay = DEFAULT_RESPONSE_TIMEOUT + Duration::from_millis(500);
    let mut terminal = TerminalSession::new(terminal_config("T1"));
    injected(&bench.run(&mut terminal));
    assert!(
        bench
            .appliance_events
            .contains(&SessionEvent::RetransmissionIgnored { seq: 1 })
    );
    assert_eq!(bench.vault.reserve_calls.len(), 1);
}

// ----- every ERROR code, by a test playing the terminal frame by frame -----

#[test]
fn error_malformed_message_names_the_field() {
    let mut direct = Direct::new(FakeVault::with_keys([1]));
    // HELLO with a lower-case character in the hardware serial.
    let mut payload = vec![1, 1, 1, 1, b'M', 3];
    payload.extend_from_slice(b"ab1");
    payload.extend_from_slice(&[0, 0]);
    let bytes = Frame::new(0, 0x11, payload).encode().unwrap();
    let (seq, code, detail) = error_code(&direct.feed(&bytes));
    assert_eq!((seq, code), (0, ErrorCode::MALFORMED_MESSAGE));
    assert!(detail.contains("HELLO hardware serial"), "{detail}");
    // And a truncated CONFIRM inside a session.
    direct.request(1, &hello_for("T1", vec![1]));
    let bytes = Frame::new(2, 0x13, vec![0, 0, 0]).encode().unwrap();
    let (seq, code, detail) = error_code(&direct.feed(&bytes));
    assert_eq!((seq, code), (2, ErrorCode::MALFORMED_MESSAGE));
    assert!(detail.contains("CONFIRM key index"), "{detail}");
}

#[test]
fn error_unknown_message_type() {
    let mut direct = Direct::new(FakeVault::with_keys([1]));
    direct.request(0, &hello_for("T1", vec![1]));
    let bytes = Frame::new(1, 0x42, vec![]).encode().unwrap();
    let (seq, code, _) = error_code(&direct.feed(&bytes));
    assert_eq!((seq, code), (1, ErrorCode::UNKNOWN_MESSAGE_TYPE));
}

#[test]
fn error_out_of_order_message() {
    let mut direct = Direct::new(FakeVault::with_keys([1, 2]));
    // Before HELLO.
    let (_, code, _) = error_code(&direct.request(0, &key_request()));
    assert_eq!(code, ErrorCode::OUT_OF_ORDER_MESSAGE);
    // A second KEY_REQUEST after the delivery.
    direct.request(0, &hello_for("T1", vec![1]));
    direct.request(1, &key_request());
    let (_, code, _) = error_code(&direct.request(2, &key_request()));
    assert_eq!(code, ErrorCode::OUT_OF_ORDER_MESSAGE);
    // CONFIRM after CONFIRMED.
    assert!(matches!(
        direct.request(3, &confirm_for("T1", 1, fake_kcv(1)))[..],
        [(3, Message::Confirmed(_))]
    ));
    let (_, code, _) = error_code(&direct.request(4, &confirm_for("T1", 1, fake_kcv(1))));
    assert_eq!(code, ErrorCode::OUT_OF_ORDER_MESSAGE);
    assert_eq!(direct.vault.confirm_calls.len(), 1);
}

#[test]
fn error_unsupported_version() {
    let mut direct = Direct::new(FakeVault::with_keys([1]));
    // Version 2 with a layout this appliance does not know: only the first byte is read.
    let bytes = Frame::new(9, 0x11, vec![2, 0xFF, 0xFF]).encode().unwrap();
    let (seq, code, detail) = error_code(&direct.feed(&bytes));
    assert_eq!((seq, code), (9, ErrorCode::UNSUPPORTED_VERSION));
    assert!(detail.contains("version 2"), "{detail}");
}

#[test]
fn error_no_common_mode_and_negotiation_ignores_unknown_ids() {
    let mut direct = Direct::new(FakeVault::with_keys([1]));
    let (_, code, detail) = error_code(&direct.request(0, &hello_for("T1", vec![2, 3, 200])));
    assert_eq!(code, ErrorCode::NO_COMMON_MODE);
    assert!(detail.contains("2, 3, 200"), "{detail}");
    // Unknown ids (200, 9) are skipped; certificate mode (2) is not implemented; tr31 is chosen.
    let answers = direct.request(1, &hello_for("T1", vec![200, 2, 9, 1]));
    assert!(matches!(&answers[..], [(1, Message::Welcome(welcome))] if welcome.mode_id == 1));
    // An appliance configured without tr31 has no common mode with anyone.
    let mut config = appliance_config();
    config.modes = vec![keymother_protocol::Mode::Certificate];
    let mut direct = Direct::with_config(config, FakeVault::with_keys([1]));
    let (_, code, _) = error_code(&direct.request(0, &hello_for("T1", vec![1, 2])));
    assert_eq!(code, ErrorCode::NO_COMMON_MODE);
}

/// HELLO offering `mode_ids` with the capability flags `capabilities`.
fn hello_with_flags(mode_ids: Vec<u8>, capabilities: u16) -> Message {
    match hello_for("T1", mode_ids) {
        Message::Hello(hello) => Message::Hello(keymother_protocol::Hello {
            capabilities: keymother_protocol::Capabilities::from_bits(capabilities),
            ..hello
        }),
        other => other,
    }
}

#[test]
fn error_key_block_version_unsupported_before_anything_is_reserved() {
    // The test appliance's TTK is AES: its keys travel as TR-31 version D.
    let mut direct = Direct::new(FakeVault::with_keys([1]));
    let (seq, code, detail) = error_code(&direct.request(4, &hello_with_flags(vec![1], 0x0001)));
    assert_eq!((seq, code), (4, ErrorCode::KEY_BLOCK_VERSION_UNSUPPORTED));
    assert!(detail.contains("version D"), "{detail}");
    assert!(detail.contains("0x0002"), "{detail}");
    assert!(detail.contains("AES transport key"), "{detail}");
    // No session is open: a KEY_REQUEST is out of order, and nothing was reserved.
    let (_, code, _) = error_code(&direct.request(5, &key_request()));
    assert_eq!(code, ErrorCode::OUT_OF_ORDER_MESSAGE);
    assert!(direct.vault.reserve_calls.is_empty());
    // Announcing version D (with undefined bits), both, or nothing at all is served.
    for flags in [0x0002, 0x8002, 0x0003, 0x0000, 0x0100] {
        let answers = direct.request(0, &hello_with_flags(vec![1], flags));
        assert!(
            matches!(&answers[..], [(0, Message::Welcome(welcome))] if welcome.mode_id == 1),
            "flags {flags:04X}: {answers:?}"
        );
    }
    // A TDES TTK sends version B: a terminal announcing only B is served, only D refused.
    let mut config = appliance_config();
    config.ttk_kcv = vec![0x08, 0xD7, 0xB4];
    let mut direct = Direct::with_config(config, FakeVault::with_keys([1]));
    let answers = direct.request(0, &hello_with_flags(vec![1], 0x0001));
    assert!(
        matches!(&answers[..], [(0, Message::Welcome(_))]),
        "{answers:?}"
    );
    let (_, code, detail) = error_code(&direct.request(0, &hello_with_flags(vec![1], 0x0002)));
    assert_eq!(code, ErrorCode::KEY_BLOCK_VERSION_UNSUPPORTED);
    assert!(
        detail.contains("version B") && detail.contains("TDES"),
        "{detail}"
    );
    // Offering no mode the appliance serves is still NO_COMMON_MODE, whatever the flags.
    let (_, code, _) = error_code(&direct.request(0, &hello_with_flags(vec![2], 0x0002)));
    assert_eq!(code, ErrorCode::NO_COMMON_MODE);
}

#[test]
fn error_mode_not_negotiated() {
    let mut direct = Direct::new(FakeVault::with_keys([1]));
    direct.request(0, &hello_for("T1", vec![1]));
    let request = Message::KeyRequest(keymother_protocol::KeyRequest {
        mode_id: 3,
        mode_data: vec![],
    });
    let (_, code, _) = error_code(&direct.request(1, &request));
    assert_eq!(code, ErrorCode::MODE_NOT_NEGOTIATED);
    assert!(direct.vault.reserve_calls.is_empty());
}

#[test]
fn error_no_keys_available() {
    let mut direct = Direct::new(FakeVault::with_keys([]));
    direct.request(0, &hello_for("T1", vec![1]));
    let (seq, code, _) = error_code(&direct.request(1, &key_request()));
    assert_eq!((seq, code), (1, ErrorCode::NO_KEYS_AVAILABLE));
}

#[test]
fn error_not_ready() {
    // No transport key loaded: refused at HELLO.
    let mut config = appliance_config();
    config.ttk_kcv = vec![];
    let mut direct = Direct::with_config(config, FakeVault::with_keys([1]));
    let (_, code, _) = error_code(&direct.request(0, &hello_for("T1", vec![1])));
    assert_eq!(code, ErrorCode::NOT_READY);
    // Locked vault: refused at reservation.
    let mut vault = FakeVault::with_keys([1]);
    vault.refuse_reservation = Some(DispenseRefusal::NotReady);
    let mut direct = Direct::new(vault);
    direct.request(0, &hello_for("T1", vec![1]));
    let (_, code, _) = error_code(&direct.request(1, &key_request()));
    assert_eq!(code, ErrorCode::NOT_READY);
    // Operator login required and nobody logged in: refused at reservation, saying so.
    let mut vault = FakeVault::with_keys([1]);
    vault.refuse_reservation = Some(DispenseRefusal::NoOperator);
    let mut direct = Direct::new(vault);
    direct.request(0, &hello_for("T1", vec![1]));
    let (_, code, detail) = error_code(&direct.request(1, &key_request()));
    assert_eq!(code, ErrorCode::NOT_READY);
    assert_eq!(detail, "no operator is logged in on the appliance");
}

#[test]
fn error_device_not_expected_when_the_adapter_refuses_the_serial() {
    let mut vault = FakeVault::with_keys([1]);
    vault.refuse_reservation = Some(DispenseRefusal::DeviceNotExpected);
    let mut direct = Direct::new(vault);
    direct.request(0, &hello_for("T1", vec![1]));
    let (seq, code, detail) = error_code(&direct.request(1, &key_request()));
    assert_eq!((seq, code), (1, ErrorCode::DEVICE_NOT_EXPECTED));
    assert_eq!(
        detail,
        "this hardware serial is not on an open expected-device list of the appliance"
    );
    assert!(!ErrorCode::DEVICE_NOT_EXPECTED.is_transient());
}

#[test]
fn error_already_injected_and_serial_busy_name_what_the_adapter_said() {
    let mut vault = FakeVault::with_keys([1]);
    vault.refuse_reservation = Some(DispenseRefusal::AlreadyInjected(
        "hardware serial T1 already holds a confirmed master key (SMN T100000001)".to_owned(),
    ));
    let mut direct = Direct::new(vault);
    direct.request(0, &hello_for("T1", vec![1]));
    let (seq, code, detail) = error_code(&direct.request(1, &key_request()));
    assert_eq!((seq, code), (1, ErrorCode::ALREADY_INJECTED));
    assert!(detail.contains("SMN T100000001"), "{detail}");

    let mut vault = FakeVault::with_keys([1]);
    vault.refuse_reservation = Some(DispenseRefusal::SerialBusy {
        port: "bench-0".to_owned(),
    });
    let mut direct = Direct::new(vault);
    direct.request(0, &hello_for("T1", vec![1]));
    let (_, code, detail) = error_code(&direct.request(1, &key_request()));
    assert_eq!(code, ErrorCode::SERIAL_BUSY);
    assert_eq!(detail, "the serial is being injected on port bench-0");
}

#[test]
fn error_kcv_mismatch_and_quarantined() {
    for (quarantine, expected) in [
        (false, ErrorCode::KCV_MISMATCH),
        (true, ErrorCode::KCV_MISMATCH_QUARANTINED),
    ] {
        let mut vault = FakeVault::with_keys([1]);
        vault.quarantine_on_mismatch = quarantine;
        let mut direct = Direct::new(vault);
        direct.request(0, &hello_for("T1", vec![1]));
        direct.request(1, &key_request());
        let (seq, code, _) = error_code(&direct.request(2, &confirm_for("T1", 1, vec![1, 2, 3])));
        assert_eq!((seq, code), (2, expected));
    }
}

#[test]
fn error_smn_mismatch_without_calling_the_adapter() {
    let mut direct = Direct::new(FakeVault::with_keys([278]));
    direct.request(0, &hello_for("123L013K", vec![1]));
    direct.request(1, &key_request());
    let confirm = Message::Confirm(keymother_protocol::Confirm {
        key_index: 278,
        kcv: fake_kcv(278),
        smn: "123L013X00000278".parse().unwrap(),
    });
    let (_, code, detail) = error_code(&direct.request(2, &confirm));
    assert_eq!(code, ErrorCode::SMN_MISMATCH);
    assert!(detail.contains("123L013K"), "{detail}");
    assert!(direct.vault.confirm_calls.is_empty());
}

#[test]
fn error_key_not_delivered_without_calling_the_adapter() {
    let mut direct = Direct::new(FakeVault::with_keys([278, 279]));
    direct.request(0, &hello_for("T1", vec![1]));
    // Before any delivery in this session the vault is asked (a resumed confirmation), and
    // it knows of no key 278 given to T1.
    let (_, code, _) = error_code(&direct.request(1, &confirm_for("T1", 278, fake_kcv(278))));
    assert_eq!(code, ErrorCode::KEY_NOT_DELIVERED);
    assert_eq!(direct.vault.confirm_calls.len(), 1);
    direct.request(2, &key_request());
    // Another key than the one delivered in this session: refused without asking the vault.
    let (_, code, detail) = error_code(&direct.request(3, &confirm_for("T1", 279, fake_kcv(279))));
    assert_eq!(code, ErrorCode::KEY_NOT_DELIVERED);
    assert!(detail.contains("00000278"), "{detail}");
    assert_eq!(direct.vault.confirm_calls.len(), 1);
    // The adapter's own refusal maps to the same code.
    let mut vault = FakeVault::with_keys([5]);
    vault.refuse_confirmation = Some(ConfirmRefusal::NotDelivered);
    let mut direct = Direct::new(vault);
    direct.request(0, &hello_for("T1", vec![1]));
    direct.request(1, &key_request());
    let (_, code, _) = error_code(&direct.request(2, &confirm_for("T1", 5, fake_kcv(5))));
    assert_eq!(code, ErrorCode::KEY_NOT_DELIVERED);
}

#[test]
fn error_sequence_reused_changes_nothing() {
    let mut direct = Direct::new(FakeVault::with_keys([1]));
    direct.request(0, &hello_for("T1", vec![1]));
    direct.request(1, &key_request());
    // SEQ 1 again with a different body.
    let (seq, code, _) = error_code(&direct.request(1, &confirm_for("T1", 1, fake_kcv(1))));
    assert_eq!((seq, code), (1, ErrorCode::SEQUENCE_REUSED));
    // The session goes on: the identical retransmission still gets the delivery, SEQ 2 works.
    assert!(matches!(
        direct.request(1, &key_request())[..],
        [(1, Message::KeyDelivery(_))]
    ));
    assert!(matches!(
        direct.request(2, &confirm_for("T1", 1, fake_kcv(1)))[..],
        [(2, Message::Confirmed(_))]
    ));
    assert_eq!(direct.vault.reserve_calls.len(), 1);
}

#[test]
fn error_sequence_out_of_order_for_replays_and_skips() {
    let mut direct = Direct::new(FakeVault::with_keys([1]));
    let hello = hello_for("T1", vec![1]);
    direct.request(10, &hello);
    direct.request(11, &key_request());
    // A skipped SEQ.
    let (seq, code, _) = error_code(&direct.request(13, &confirm_for("T1", 1, fake_kcv(1))));
    assert_eq!((seq, code), (13, ErrorCode::SEQUENCE_OUT_OF_ORDER));
    // A replay of an older request (not HELLO, which would start over).
    let (_, code, _) = error_code(&direct.request(9, &key_request()));
    assert_eq!(code, ErrorCode::SEQUENCE_OUT_OF_ORDER);
    assert_eq!(direct.vault.reserve_calls.len(), 1);
    assert!(matches!(
        direct.request(12, &confirm_for("T1", 1, fake_kcv(1)))[..],
        [(12, Message::Confirmed(_))]
    ));
}

#[test]
fn error_frame_too_large() {
    let mut direct = Direct::new(FakeVault::with_keys([1]));
    direct.request(0, &hello_for("T1", vec![1]));
    // A real frame (good CRC) with a 5000-byte body.
    let length: u16 = 5000;
    let mut bytes = vec![STX];
    bytes.extend_from_slice(&length.to_be_bytes());
    bytes.push(1);
    bytes.push(0x12);
    bytes.resize(3 + usize::from(length), 0x41);
    let crc = crc32(&bytes[1..]);
    bytes.extend_from_slice(&crc.to_be_bytes());
    let (seq, code, _) = error_code(&direct.feed(&bytes));
    assert_eq!((seq, code), (1, ErrorCode::FRAME_TOO_LARGE));
    // Nothing changed: SEQ 1 is still the next request.
    assert!(matches!(
        direct.request(1, &key_request())[..],
        [(1, Message::KeyDelivery(_))]
    ));
}

#[test]
fn error_busy_while_the_adapter_works() {
    let mut direct = Direct::new(FakeVault::with_keys([1]));
    direct.request(0, &hello_for("T1", vec![1]));
    direct.hold_adapter = true;
    assert!(direct.request(1, &key_request()).is_empty());
    // The identical retransmission is ignored: its answer is on the way.
    assert!(direct.request(1, &key_request()).is_empty());
    // Anything else gets BUSY, a new HELLO included.
    let (seq, code, _) = error_code(&direct.request(2, &confirm_for("T1", 1, fake_kcv(1))));
    assert_eq!((seq, code), (2, ErrorCode::BUSY));
    let (_, code, _) = error_code(&direct.request(0, &hello_for("T1", vec![1])));
    assert_eq!(code, ErrorCode::BUSY);
    let answers = direct.release();
    assert!(matches!(answers[..], [(1, Message::KeyDelivery(_))]));
    assert_eq!(direct.vault.reserve_calls.len(), 1);
}

#[test]
fn error_internal() {
    let mut vault = FakeVault::with_keys([1]);
    vault.refuse_reservation = Some(DispenseRefusal::Internal("disk full\n".to_owned()));
    let mut direct = Direct::new(vault);
    direct.request(0, &hello_for("T1", vec![1]));
    let (_, code, detail) = error_code(&direct.request(1, &key_request()));
    assert_eq!(code, ErrorCode::INTERNAL_ERROR);
    assert_eq!(detail, "disk full?", "sanitised for the wire");
    // A configuration the protocol cannot carry is an internal error too.
    let mut config = appliance_config();
    config.device_id = "x".repeat(40);
    let mut direct = Direct::with_config(config, FakeVault::with_keys([1]));
    let (_, code, detail) = error_code(&direct.request(0, &hello_for("T1", vec![1])));
    assert_eq!(code, ErrorCode::INTERNAL_ERROR);
    assert!(detail.contains("device id"), "{detail}");
}

#[test]
fn error_answers_are_repeated_for_retransmissions() {
    let mut direct = Direct::new(FakeVault::with_keys([]));
    direct.request(0, &hello_for("T1", vec![1]));
    let first = direct.request(1, &key_request());
    let again = direct.request(1, &key_request());
    assert_eq!(first, again);
    assert_eq!(direct.vault.reserve_calls.len(), 1);
}

#[test]
fn every_error_code_is_produced_by_some_test() {
    // Keep this list in step with the tests above: one per code.
    let covered = [
        ErrorCode::MALFORMED_MESSAGE,
        ErrorCode::UNKNOWN_MESSAGE_TYPE,
        ErrorCode::OUT_OF_ORDER_MESSAGE,
        ErrorCode::UNSUPPORTED_VERSION,
        ErrorCode::NO_COMMON_MODE,
        ErrorCode::MODE_NOT_NEGOTIATED,
        ErrorCode::NO_KEYS_AVAILABLE,
        ErrorCode::NOT_READY,
        ErrorCode::KCV_MISMATCH,
        ErrorCode::KCV_MISMATCH_QUARANTINED,
        ErrorCode::SMN_MISMATCH,
        ErrorCode::KEY_NOT_DELIVERED,
        ErrorCode::SEQUENCE_REUSED,
        ErrorCode::SEQUENCE_OUT_OF_ORDER,
        ErrorCode::FRAME_TOO_LARGE,
        ErrorCode::BUSY,
        ErrorCode::CERTIFICATE_REFUSED,
        ErrorCode::RATE_LIMITED,
        ErrorCode::DEVICE_NOT_EXPECTED,
        ErrorCode::ALREADY_INJECTED,
        ErrorCode::SERIAL_BUSY,
        ErrorCode::KEY_BLOCK_VERSION_UNSUPPORTED,
        ErrorCode::INTERNAL_ERROR,
    ];
    assert_eq!(covered, ErrorCode::ALL);
}

#[test]
fn echoed_frames_are_ignored() {
    // A loopback on the line: the appliance hears its own WELCOME and must not answer it.
    let mut direct = Direct::new(FakeVault::with_keys([1]));
    let answers = direct.request(0, &hello_for("T1", vec![1]));
    let welcome = answers[0].1.encode_frame(0).unwrap();
    assert!(direct.feed(&welcome).is_empty());
    assert!(direct.events().iter().any(|event| matches!(
        event,
        SessionEvent::FrameIgnored {
            seq: 0,
            message_type: 0x91
        }
    )));
}

#[test]
fn nak_with_nothing_to_repeat_is_ignored() {
    let mut direct = Direct::new(FakeVault::with_keys([1]));
    assert!(direct.request(0, &Message::Nak).is_empty());
    direct.request(0, &hello_for("T1", vec![1]));
    let answers = direct.request(0, &Message::Nak);
    assert!(matches!(answers[..], [(0, Message::Welcome(_))]));
}

#[test]
fn one_nak_between_two_valid_frames() {
    let mut direct = Direct::new(FakeVault::with_keys([1]));
    let hello = hello_for("T1", vec![1]).encode_frame(0).unwrap();
    let mut damaged = hello.clone();
    damaged[10] ^= 0x20;
    // Two damaged frames in a row: one NAK.
    assert!(matches!(direct.feed(&damaged)[..], [(0, Message::Nak)]));
    assert!(direct.feed(&damaged).is_empty());
    // A valid frame re-arms it.
    assert!(matches!(
        direct.feed(&hello)[..],
        [(0, Message::Welcome(_))]
    ));
    assert!(matches!(direct.feed(&damaged)[..], [(0, Message::Nak)]));
    let naks = direct
        .events()
        .iter()
        .filter(|event| matches!(event, SessionEvent::NakSent))
        .count();
    assert_eq!(naks, 2);
}

#[test]
fn rejections_other_than_bad_crc_get_no_nak() {
    let mut direct = Direct::new(FakeVault::with_keys([1]));
    // Impossible and oversize lengths, garbage, and a partial frame that times out.
    assert!(
        direct
            .feed(&[STX, 0x00, 0x01, b'x', STX, 0x20, 0x00, b'y'])
            .is_empty()
    );
    assert!(direct.feed(&[STX, 0x00, 0x05, 0x00]).is_empty());
    assert!(direct.tick(direct.now + Duration::from_secs(1)).is_empty());
    assert!(direct.events().iter().any(|event| matches!(
        event,
        SessionEvent::FrameRejected(keymother_protocol::FrameRejection::InterByteTimeout { .. })
    )));
    assert!(!direct.events().contains(&SessionEvent::NakSent));
}

#[test]
fn a_transport_key_loaded_later_is_seen_by_the_same_hello() {
    let mut config = appliance_config();
    config.ttk_kcv = vec![];
    let mut direct = Direct::with_config(config, FakeVault::with_keys([1]));
    let hello = hello_for("T1", vec![1]);
    let (_, code, _) = error_code(&direct.request(0, &hello));
    assert_eq!(code, ErrorCode::NOT_READY);
    // A retransmission gets the same answer...
    let (_, code, _) = error_code(&direct.request(0, &hello));
    assert_eq!(code, ErrorCode::NOT_READY);
    // ...until the custodians load the transport key: then the rebooted terminal's identical
    // HELLO is welcomed.
    direct.appliance.reconfigure(appliance_config());
    assert!(matches!(
        direct.request(0, &hello)[..],
        [(0, Message::Welcome(_))]
    ));
}

#[test]
fn a_key_delivered_in_an_earlier_session_is_confirmed_in_a_new_one() {
    let mut direct = Direct::new(FakeVault::with_keys([278, 279]));
    direct.request(0, &hello_for("T1", vec![1]));
    assert!(matches!(
        direct.request(1, &key_request())[..],
        [(1, Message::KeyDelivery(_))]
    ));
    // The terminal lost power before CONFIRMED; it comes back and confirms what it holds.
    direct.request(0, &hello_for("T1", vec![1]));
    let answers = direct.request(1, &confirm_for("T1", 278, fake_kcv(278)));
    assert!(
        matches!(answers[..], [(1, Message::Confirmed(_))]),
        "{answers:?}"
    );
    // Another terminal cannot confirm T1's key.
    direct.request(0, &hello_for("T2", vec![1]));
    let (_, code, _) = error_code(&direct.request(1, &confirm_for("T2", 278, fake_kcv(278))));
    assert_eq!(code, ErrorCode::KEY_NOT_DELIVERED);
    assert_eq!(direct.vault.reserve_calls.len(), 1);
}

#[test]
fn a_terminal_holding_an_unconfirmed_key_confirms_it_instead_of_asking_again() {
    let mut bench = Bench::new(FakeVault::with_keys([278, 279]));
    let mut first = TerminalSession::new(terminal_config("T1"));
    injected(&bench.run(&mut first));
    // T1 confirmed 278 but pretend it never saw CONFIRMED: the next session confirms 278.
    let mut config = terminal_config("T1");
    config.unconfirmed_key = Some((278, fake_kcv(278)));
    let mut again = TerminalSession::new(config);
    let (key_index, _) = injected(&bench.run(&mut again));
    assert_eq!(key_index, 278);
    assert_eq!(
        bench.vault.reserve_calls.len(),
        1,
        "no second key was asked for"
    );

    // A key the appliance never gave this terminal: it falls back to asking for one.
    let mut config = terminal_config("T2");
    config.unconfirmed_key = Some((278, fake_kcv(278)));
    let mut stranger = TerminalSession::new(config);
    let (key_index, _) = injected(&bench.run(&mut stranger));
    assert_eq!(key_index, 279);
}
