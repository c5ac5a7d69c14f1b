//! Profile mode (mode 3) through both real sessions, back to back, with fake vaults: the master key and each DUKPT slot in turn, lost and damaged frames, restarts, resumed confirmations.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use keymother_protocol::{
    AbortReason, DukptKind, ErrorCode, KeyAlgorithm, MessageType, Mode, Profile, SessionEvent, Smn,
    TerminalAction, TerminalEvent, TerminalOutcome, TerminalSession,
};

const PIN_KSN: [u8; 8] = [0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56];
const DATA_KSN: [u8; 10] = [0xFF, 0xFF, 0x98, 0x76, 0x54, 0x32, 0x10, 0xE0, 0x00, 0x00];

/// A profile's name, its master key's index and SMN, and each slot's label and KSN.
type Injected = (String, Option<(u32, Smn)>, Vec<(String, Vec<u8>)>);

/// The outcome's parts when the profile was injected.
fn profile_injected(outcome: &TerminalOutcome) -> Injected {
    match outcome {
        TerminalOutcome::ProfileInjected {
            profile,
            master,
            dukpt,
        } => (profile.clone(), master.clone(), dukpt.clone()),
        other => panic!("expected ProfileInjected, got {other:?}"),
    }
}

fn failed(outcome: &TerminalOutcome) -> String {
    match outcome {
        TerminalOutcome::Failed { reason } => reason.clone(),
        other => panic!("expected Failed, got {other:?}"),
    }
}

fn profile_bench(profile: Profile, master_keys: Vec<u32>) -> Bench {
    let mut bench = Bench::with_config(
        profile_appliance_config(profile),
        FakeVault::with_keys(master_keys),
        1,
    );
    bench.dukpt = dukpt_vault(10);
    bench
}

fn count(events: &[SessionEvent], wanted: impl Fn(&SessionEvent) -> bool) -> usize {
    events.iter().filter(|event| wanted(event)).count()
}

fn sent_types(writes: &[Vec<u8>]) -> Vec<MessageType> {
    writes.iter().map(|bytes| message_type_of(bytes)).collect()
}

#[test]
fn a_profile_session_delivers_the_master_key_then_each_slot_in_order() {
    let mut bench = profile_bench(three_key_profile(), vec![278, 279]);
    let mut terminal = TerminalSession::new(profile_terminal_config("123L013K"));
    let outcome = bench.run(&mut terminal);
    let (profile, master, dukpt) = profile_injected(&outcome);
    assert_eq!(profile, "POS-3KEY");
    let (key_index, smn) = master.unwrap();
    assert_eq!((key_index, smn.as_str()), (278, "123L013K00000278"));
    assert_eq!(
        dukpt,
        vec![
            ("PIN".to_owned(), PIN_KSN.to_vec()),
            ("DATA".to_owned(), DATA_KSN.to_vec())
        ]
    );
    assert_eq!(
        outcome.to_string(),
        "profile POS-3KEY injected: key 00000278, SMN 123L013K00000278; \
         PIN KSN 1234567890123456; DATA KSN FFFF9876543210E00000"
    );
    assert_eq!(
        sent_types(&bench.terminal_sent),
        [
            MessageType::Hello,
            MessageType::KeyRequest,
            MessageType::Confirm,
            MessageType::DukptRequest,
            MessageType::DukptConfirm,
            MessageType::DukptRequest,
            MessageType::DukptConfirm,
        ]
    );
    // The vaults: the master key used, each initial key reserved, sent and used once.
    assert!(matches!(bench.vault.keys[&278], KeyState::Used { .. }));
    assert_eq!(bench.dukpt.reserve_calls.len(), 2);
    assert_eq!(
        bench.dukpt.mark_sent_calls,
        vec![(0, PIN_KSN.to_vec()), (1, DATA_KSN.to_vec())]
    );
    assert_eq!(bench.dukpt.state(&PIN_KSN), Some(DukptState::Used));
    assert_eq!(bench.dukpt.state(&DATA_KSN), Some(DukptState::Used));
    assert_eq!(
        bench.dukpt_installs,
        vec![
            ("PIN".to_owned(), PIN_KSN.to_vec()),
            ("DATA".to_owned(), DATA_KSN.to_vec())
        ]
    );
    // What the appliance reported, and how it reads.
    let events = &bench.appliance_events;
    assert_eq!(
        count(events, |e| matches!(
            e,
            SessionEvent::ProfileCompleted { .. }
        )),
        1
    );
    let texts: Vec<String> = events.iter().map(ToString::to_string).collect();
    let terminal = "123L013K (KM-REFERENCE-TERMINAL)";
    for expected in [
        format!("welcomed {terminal} in mode profile"),
        format!("{terminal} requests the DUKPT key of slot 0 (PIN)"),
        format!("DUKPT key of slot 0 (PIN), KSN 1234567890123456, delivered to {terminal}"),
        format!("{terminal} confirms the DUKPT key of slot 1 (DATA), KSN FFFF9876543210E00000"),
        format!("DUKPT key of slot 1 (DATA), KSN FFFF9876543210E00000, confirmed by {terminal}"),
        format!("profile POS-3KEY injected into {terminal}"),
    ] {
        assert!(texts.contains(&expected), "{expected:?} not in {texts:#?}");
    }
    assert!(
        texts
            .last()
            .unwrap()
            .starts_with("profile POS-3KEY injected"),
        "the profile is complete after the last confirmation: {texts:#?}"
    );
}

#[test]
fn a_profile_without_a_master_key_starts_with_slot_0() {
    let mut profile = three_key_profile();
    profile.master_key = false;
    let mut bench = profile_bench(profile, vec![]);
    let mut terminal = TerminalSession::new(profile_terminal_config("T1"));
    let (_, master, dukpt) = profile_injected(&bench.run(&mut terminal));
    assert_eq!(master, None);
    assert_eq!(dukpt.len(), 2);
    assert!(
        bench.vault.reserve_calls.is_empty(),
        "no master key asked for"
    );
    assert_eq!(
        sent_types(&bench.terminal_sent),
        [
            MessageType::Hello,
            MessageType::DukptRequest,
            MessageType::DukptConfirm,
            MessageType::DukptRequest,
            MessageType::DukptConfirm,
        ]
    );
}

#[test]
fn the_profile_follows_the_terminal_model_and_mode_3_needs_one() {
    let mut other_model = three_key_profile();
    other_model.name = "OTHER".to_owned();
    other_model.models = vec!["ACME T100".parse().unwrap()];
    let mut ours = three_key_profile();
    ours.name = "OURS".to_owned();
    ours.models = vec!["KM-REFERENCE-TERMINAL".parse().unwrap()];
    let mut config = profile_appliance_config(other_model.clone());
    config.profiles.push(ours);
    let mut direct = Direct::with_config(config, FakeVault::with_keys([1]));
    let answers = direct.request(0, &hello_for("T1", vec![3, 1]));
    let [(0, keymother_protocol::Message::Welcome(welcome))] = &answers[..] else {
        panic!("expected WELCOME, got {answers:?}");
    };
    assert_eq!(welcome.mode_id, Mode::Profile.id());
    assert_eq!(Profile::decode(&welcome.mode_data).unwrap().name, "OURS");
    // No profile for this model: mode 3 is not offered; tr31 is, if the terminal lists it.
    let mut direct = Direct::with_config(
        profile_appliance_config(other_model),
        FakeVault::with_keys([1]),
    );
    let answers = direct.request(0, &hello_for("T1", vec![3, 1]));
    let [(0, keymother_protocol::Message::Welcome(welcome))] = &answers[..] else {
        panic!("expected WELCOME, got {answers:?}");
    };
    assert_eq!(welcome.mode_id, Mode::Tr31.id());
    let (_, code, detail) = error_code(&direct.request(0, &hello_for("T1", vec![3])));
    assert_eq!(code, ErrorCode::NO_COMMON_MODE);
    assert!(detail.contains("appliance serves tr31"), "{detail}");
}

#[test]
fn lost_and_damaged_frames_are_recovered_without_a_second_reservation() {
    let mut bench = profile_bench(three_key_profile(), vec![5]);
    bench.to_terminal.filter = Some(drop_first(MessageType::DukptDelivery));
    bench.to_appliance.filter = Some(corrupt_first(MessageType::DukptConfirm, 6));
    let mut terminal = TerminalSession::new(profile_terminal_config("T1"));
    let (_, _, dukpt) = profile_injected(&bench.run(&mut terminal));
    assert_eq!(dukpt[0].1, PIN_KSN.to_vec());
    assert_eq!(
        bench.dukpt.reserve_calls.len(),
        2,
        "one reservation per slot"
    );
    assert_eq!(
        bench.dukpt.confirm_calls.len(),
        2,
        "one confirmation per slot"
    );
    assert_eq!(
        bench.dukpt.mark_sent_calls[..2],
        [(0, PIN_KSN.to_vec()), (0, PIN_KSN.to_vec())],
        "the lost delivery was sent again from the cache, and marked again"
    );
    assert_eq!(bench.dukpt_installs.len(), 2, "each key installed once");
    assert!(
        bench
            .appliance_events
            .iter()
            .any(|event| matches!(event, SessionEvent::ResponseRepeated { .. }))
    );
    assert!(bench.appliance_events.contains(&SessionEvent::NakSent));

    // A lost DUKPT_CONFIRMED: the retransmitted DUKPT_CONFIRM is answered from the cache.
    let mut bench = profile_bench(three_key_profile(), vec![5]);
    bench.to_terminal.filter = Some(drop_first(MessageType::DukptConfirmed));
    let mut terminal = TerminalSession::new(profile_terminal_config("T1"));
    profile_injected(&bench.run(&mut terminal));
    assert_eq!(bench.dukpt.confirm_calls.len(), 2);
}

#[test]
fn a_restarted_terminal_confirms_what_it_holds_and_gets_the_same_ksns() {
    let mut bench = profile_bench(three_key_profile(), vec![5, 6]);
    // The first session: no DUKPT_CONFIRM ever arrives, so the terminal gives up after
    // installing slot 0's key.
    bench.to_appliance.filter = Some(Box::new(|bytes: &[u8]| {
        if message_type_of(bytes) == MessageType::DukptConfirm {
            vec![]
        } else {
            vec![bytes.to_vec()]
        }
    }));
    let mut terminal = TerminalSession::new(profile_terminal_config("T1"));
    let reason = failed(&bench.run(&mut terminal));
    assert!(reason.contains("DUKPT_CONFIRM"), "{reason}");
    bench.settle(keymother_protocol::DEFAULT_IDLE_TIMEOUT + ms(100));
    assert!(bench.appliance_events.iter().any(|event| matches!(
        event,
        SessionEvent::SessionEnded {
            unconfirmed_dukpt: Some(unconfirmed),
            ..
        } if unconfirmed.slot == 0 && unconfirmed.ksn == PIN_KSN
    )));
    assert_eq!(bench.held_master.as_ref().map(|held| held.0), Some(5));
    assert!(bench.held_dukpt.contains_key("PIN"));
    // The restart: the master key and slot 0 are confirmed again (resumed), slot 1 asked for.
    bench.to_appliance.filter = None;
    bench.appliance_events.clear();
    let config = bench.with_held(profile_terminal_config("T1"));
    let mut terminal = TerminalSession::new(config);
    let (_, master, dukpt) = profile_injected(&bench.run(&mut terminal));
    assert_eq!(master.map(|(index, _)| index), Some(5));
    assert_eq!(dukpt[0], ("PIN".to_owned(), PIN_KSN.to_vec()));
    assert_eq!(bench.vault.reserve_calls.len(), 1, "no second master key");
    assert_eq!(
        bench.dukpt.reserve_calls.len(),
        2,
        "slot 0 in the first session, slot 1 in the second"
    );
    assert_eq!(
        sent_types(&bench.terminal_sent[bench.terminal_sent.len() - 5..]),
        [
            MessageType::Hello,
            MessageType::Confirm,
            MessageType::DukptConfirm,
            MessageType::DukptRequest,
            MessageType::DukptConfirm,
        ]
    );
    assert_eq!(
        count(&bench.appliance_events, |e| matches!(
            e,
            SessionEvent::ProfileCompleted { .. }
        )),
        1,
        "resumed confirmations count towards the profile"
    );
    assert!(bench.held_dukpt.is_empty() && bench.held_master.is_none());
}

#[test]
fn a_terminal_that_lost_its_keys_gets_the_same_ksns_from_the_vault() {
    let mut bench = profile_bench(three_key_profile(), vec![5]);
    bench.install_behaviour = InstallBehaviour::DoesNotUnwrap;
    let mut profile = three_key_profile();
    profile.master_key = false;
    bench
        .appliance
        .reconfigure(profile_appliance_config(profile));
    let mut terminal = TerminalSession::new(profile_terminal_config("T1"));
    let reason = failed(&bench.run(&mut terminal));
    assert!(
        reason.contains("the DUKPT key of slot 0 (PIN) did not unwrap"),
        "{reason}"
    );
    assert!(bench.appliance_events.iter().any(|event| matches!(
        event,
        SessionEvent::Aborted {
            reason: AbortReason::KEY_BLOCK_DOES_NOT_UNWRAP,
            unconfirmed_dukpt: Some(unconfirmed),
            ..
        } if unconfirmed.label == "PIN"
    )));
    // Restarted with an empty key store: it asks, and the vault gives the same device ID.
    bench.install_behaviour = InstallBehaviour::Honest;
    bench.forget_held();
    let mut terminal = TerminalSession::new(profile_terminal_config("T1"));
    let (_, _, dukpt) = profile_injected(&bench.run(&mut terminal));
    assert_eq!(dukpt[0].1, PIN_KSN.to_vec());
    assert_eq!(
        bench.dukpt.bdks["PIN"].next_device_id, 0x9012_3457,
        "one ID used"
    );
    // Another terminal gets the next device IDs.
    let mut other = TerminalSession::new(profile_terminal_config("T2"));
    let (_, _, dukpt) = profile_injected(&bench.run(&mut other));
    assert_eq!(dukpt[0].1, [0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x57]);
    assert_eq!(
        dukpt[1].1,
        [0xFF, 0xFF, 0x98, 0x76, 0x54, 0x32, 0x11, 0x00, 0x00, 0x00]
    );
}

#[test]
fn a_held_key_the_vault_never_gave_is_discarded_and_requested() {
    let mut profile = three_key_profile();
    profile.master_key = false;
    let mut bench = profile_bench(profile, vec![]);
    let mut config = profile_terminal_config("T1");
    config.unconfirmed_dukpt = vec![keymother_protocol::HeldDukptKey {
        label: "PIN".to_owned(),
        ksn: vec![0x12, 0x34, 0x56, 0x78, 0, 0, 0, 1],
        kcv: vec![1, 2, 3, 4, 5],
    }];
    let mut terminal = TerminalSession::new(config);
    let (_, _, dukpt) = profile_injected(&bench.run(&mut terminal));
    assert_eq!(dukpt[0].1, PIN_KSN.to_vec());
    assert_eq!(bench.errors_sent(), [ErrorCode::KEY_NOT_DELIVERED]);
    assert_eq!(
        sent_types(&bench.terminal_sent[..3]),
        [
            MessageType::Hello,
            MessageType::DukptConfirm,
            MessageType::DukptRequest,
        ]
    );
}

#[test]
fn the_terminal_refuses_a_profile_it_cannot_take_before_asking_for_anything() {
    let mut direct = Direct::with_config(
        profile_appliance_config(three_key_profile()),
        FakeVault::with_keys([1]),
    );
    let mut terminal = TerminalSession::new(profile_terminal_config("T1"));
    let hello = sent_by(terminal.start(ms(0)));
    let welcome = direct.feed(&hello);
    let [(seq, keymother_protocol::Message::Welcome(welcome))] = &welcome[..] else {
        panic!("expected WELCOME");
    };
    // The same WELCOME with slot 0's DUKPT kind changed to an unknown one.
    let mut changed = welcome.clone();
    let kind_at = 1 + "POS-3KEY".len() + 2;
    changed.mode_data[kind_at] = 9;
    let bytes = keymother_protocol::Message::Welcome(changed)
        .encode_frame(*seq)
        .unwrap();
    let abort = sent_by(terminal.handle_bytes(&bytes, ms(10)));
    let (_, message) = message_in(&abort);
    let keymother_protocol::Message::Abort(abort) = message else {
        panic!("expected ABORT, got {message:?}");
    };
    assert_eq!(abort.reason, AbortReason::UNEXPECTED_RESPONSE);
    assert!(
        abort.detail.contains("WELCOME DUKPT kind"),
        "{}",
        abort.detail
    );
}

#[test]
fn the_terminal_checks_what_the_appliance_sends_for_a_slot() {
    // A DUKPT_DELIVERY for the wrong slot: ABORT, nothing installed.
    let mut profile = three_key_profile();
    profile.master_key = false;
    let mut terminal = TerminalSession::new(profile_terminal_config("T1"));
    let mut direct = Direct::with_config(profile_appliance_config(profile), FakeVault::default());
    direct.dukpt = dukpt_vault(5);
    let welcome = direct.feed(&sent_by(terminal.start(ms(0))));
    let request = sent_by(terminal.handle_bytes(&encode(&welcome), ms(10)));
    let [(seq, keymother_protocol::Message::DukptDelivery(delivery))] = &direct.feed(&request)[..]
    else {
        panic!("expected DUKPT_DELIVERY");
    };
    let mut other_slot = delivery.clone();
    other_slot.slot = 1;
    let bytes = keymother_protocol::Message::DukptDelivery(other_slot)
        .encode_frame(*seq)
        .unwrap();
    let actions = terminal.handle_bytes(&bytes, ms(20));
    assert!(
        !actions
            .iter()
            .any(|action| matches!(action, TerminalAction::InstallDukptKey { .. }))
    );
    let (_, message) = message_in(&sent_by(actions));
    assert!(
        matches!(&message, keymother_protocol::Message::Abort(abort)
            if abort.reason == AbortReason::UNEXPECTED_RESPONSE && abort.detail.contains("slot 1")),
        "{message:?}"
    );

    // A key whose check value is not the delivered one: the vault refuses the confirmation,
    // the key stays sent to this terminal (not quarantined here).
    let mut profile = three_key_profile();
    profile.master_key = false;
    let mut bench = profile_bench(profile, vec![]);
    bench.install_behaviour = InstallBehaviour::WrongKcv;
    let mut terminal = TerminalSession::new(profile_terminal_config("T2"));
    let reason = failed(&bench.run(&mut terminal));
    assert!(reason.contains("KCV_MISMATCH"), "{reason}");
    assert_eq!(bench.dukpt.state(&PIN_KSN), Some(DukptState::Sent));
}

/// The one frame a terminal's actions send.
fn sent_by(actions: Vec<TerminalAction>) -> Vec<u8> {
    actions
        .into_iter()
        .find_map(|action| match action {
            TerminalAction::Send(bytes) => Some(bytes),
            _ => None,
        })
        .expect("the terminal sent a frame")
}

/// The bytes of the one answer a Direct appliance gave.
fn encode(answers: &[(u8, keymother_protocol::Message)]) -> Vec<u8> {
    let [(seq, message)] = answers else {
        panic!("expected one answer, got {answers:?}");
    };
    message.encode_frame(*seq).unwrap()
}

#[test]
fn dukpt_kinds_and_key_types_travel_as_configured() {
    let mut profile = three_key_profile();
    profile.slots = vec![
        dukpt_slot("PIN", DukptKind::Aes, KeyAlgorithm::Aes256),
        dukpt_slot("DATA", DukptKind::Tdes, KeyAlgorithm::Tdes2Key),
    ];
    let mut bench = profile_bench(profile, vec![1]);
    let mut terminal = TerminalSession::new(profile_terminal_config("T1"));
    profile_injected(&bench.run(&mut terminal));
    let installs: Vec<TerminalEvent> = bench
        .terminal_events
        .iter()
        .filter(|event| matches!(event, TerminalEvent::DukptKeyConfirmed { .. }))
        .cloned()
        .collect();
    assert_eq!(installs.len(), 2);
    assert_eq!(
        bench.dukpt.keys[&PIN_KSN[..]].key_type,
        KeyAlgorithm::Aes256
    );
    assert_eq!(
        bench.dukpt.keys[&DATA_KSN[..]].key_type,
        KeyAlgorithm::Tdes2Key
    );
    assert!(bench.terminal_events.iter().any(|event| matches!(
        event,
        TerminalEvent::MasterKeyConfirmed { key_index: 1, .. }
    )));
}
