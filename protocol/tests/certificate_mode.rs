//! Certificate mode (mode 2, TR-34 tokens) through both real sessions, back to back, with the adapters' cryptography replaced by recorded decisions and the tokens by stand-ins.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use keymother_protocol::{
    AbortReason, ApplianceAction, ApplianceConfig, ApplianceSession, CertificateDelivery,
    CertificateFreshness, CertificatePass, CertificateProblem, CertificateRefusal,
    CertificateRequest, ConfirmRefusal, Confirmed, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_RETRIES,
    DEFAULT_RESPONSE_TIMEOUT, Delivery, DispenseRefusal, ErrorCode, InstallRefusal, KeyRequest,
    Message, Mode, ModeRequest, SessionEvent, TerminalAction, TerminalConfig, TerminalOutcome,
    TerminalSession,
};

// Stand-ins: the protocol does not parse the tokens, the adapters do.
const KDH_CREDENTIAL_TOKEN: &[u8] = b"0\x82 stand-in for the KDH credential token (CT_KDH)";
const KRD_CREDENTIAL_TOKEN: &[u8] = b"0\x82 stand-in for the KRD credential token (CT_KRD)";
const RANDOM_NUMBER_TOKEN: &[u8] = b"0\x24 stand-in for the random number token (RT_KRD)";
/// The TR-34 key block header of key 278 with an AES master key (docs/PROTOCOL.md 9.1).
const KEY_BLOCK_HEADER: &str = "D0028K0AD00N0100010C00000278";
const KCV: [u8; 5] = [1, 2, 3, 4, 5];

fn appliance_config() -> ApplianceConfig {
    ApplianceConfig {
        device_id: "KM-0001".to_owned(),
        ttk_kcv: vec![0xAA; 5],
        modes: vec![Mode::Certificate, Mode::Tr31],
        idle_timeout: DEFAULT_IDLE_TIMEOUT,
        kdh_credential_token: KDH_CREDENTIAL_TOKEN.to_vec(),
        certificate_requests_per_minute: 0,
        profiles: Vec::new(),
    }
}

fn terminal_config() -> TerminalConfig {
    TerminalConfig {
        hardware_serial: "123L013K".parse().unwrap(),
        model: "ACME T100".parse().unwrap(),
        modes: vec![Mode::Certificate, Mode::Tr31],
        // No transport key in common: certificate mode does not need one.
        ttk_kcv: vec![0xBB; 5],
        response_timeout: DEFAULT_RESPONSE_TIMEOUT,
        max_retries: DEFAULT_MAX_RETRIES,
        unconfirmed_key: None,
        unconfirmed_dukpt: Vec::new(),
        krd_credential_token: KRD_CREDENTIAL_TOKEN.to_vec(),
    }
}

fn two_pass() -> CertificateFreshness {
    CertificateFreshness::TwoPass {
        random_number_token: RANDOM_NUMBER_TOKEN.to_vec(),
    }
}

/// A stand-in key token "bound" to what the request asked for: the pass byte, then the random
/// number token (two-pass).
fn key_token_for(pass: CertificatePass, random_number_token: &[u8]) -> Vec<u8> {
    let mut token = vec![pass.id()];
    token.extend_from_slice(random_number_token);
    token
}

fn sealed(key_token: Vec<u8>) -> Delivery {
    Delivery {
        key_index: 278,
        key_block: KEY_BLOCK_HEADER.to_owned(),
        kcv: KCV.to_vec(),
        mode_data: CertificateDelivery { key_token }.encode().unwrap(),
    }
}

type Reservation = Box<dyn FnMut(&ModeRequest) -> Result<Delivery, DispenseRefusal>>;
type Install =
    Box<dyn FnMut(&str, &Option<CertificateDelivery>) -> Result<Vec<u8>, InstallRefusal>>;
type Confirmation = Box<dyn FnMut(u32) -> Result<(), ConfirmRefusal>>;

/// What the fake adapters decide.
struct Decisions {
    appliance_verdict: Result<CertificateFreshness, String>,
    reservation: Reservation,
    install: Install,
    confirmation: Confirmation,
}

impl Default for Decisions {
    fn default() -> Self {
        Decisions {
            appliance_verdict: Ok(two_pass()),
            reservation: Box::new(|request| match request {
                ModeRequest::Certificate(request) => Ok(sealed(key_token_for(
                    request.pass,
                    &request.random_number_token,
                ))),
                other => panic!("{other:?} reservation in a certificate-mode test"),
            }),
            install: Box::new(|header, certificate| {
                let certificate = certificate.as_ref().expect("certificate-mode delivery");
                if header != KEY_BLOCK_HEADER {
                    return Err(InstallRefusal::NotAuthentic(
                        "the key block header is not the signed one".to_owned(),
                    ));
                }
                let expected = key_token_for(CertificatePass::TwoPass, RANDOM_NUMBER_TOKEN);
                if certificate.key_token == expected {
                    Ok(KCV.to_vec())
                } else {
                    Err(InstallRefusal::NotAuthentic(
                        "the key token answers another nonce".to_owned(),
                    ))
                }
            }),
            confirmation: Box::new(|_| Ok(())),
        }
    }
}

/// Everything that happened in one run.
#[derive(Default)]
struct Run {
    appliance_events: Vec<SessionEvent>,
    reservations: Vec<ModeRequest>,
    confirmations: usize,
    verified: Vec<Vec<u8>>,
    installs: Vec<(String, Option<CertificateDelivery>)>,
    outcome: Option<TerminalOutcome>,
}

/// Runs one terminal session against one appliance session until the terminal finishes.
fn run(
    appliance: &mut ApplianceSession,
    terminal: &mut TerminalSession,
    mut decisions: Decisions,
) -> Run {
    let mut run = Run::default();
    let now = Duration::from_millis(5);
    let mut to_appliance: Vec<Vec<u8>> = Vec::new();
    let mut terminal_actions = terminal.start(now);
    for _ in 0..100 {
        let mut to_terminal: Vec<Vec<u8>> = Vec::new();
        while let Some(action) = (!terminal_actions.is_empty()).then(|| terminal_actions.remove(0))
        {
            match action {
                TerminalAction::Send(bytes) => to_appliance.push(bytes),
                TerminalAction::VerifyAppliance {
                    kdh_credential_token,
                    ..
                } => {
                    run.verified.push(kdh_credential_token);
                    terminal_actions.extend(
                        terminal
                            .handle_appliance_verified(decisions.appliance_verdict.clone(), now),
                    );
                }
                TerminalAction::InstallKey {
                    key_block,
                    certificate,
                    ..
                } => {
                    let outcome = (decisions.install)(&key_block, &certificate);
                    run.installs.push((key_block, certificate));
                    terminal_actions.extend(terminal.handle_key_installed(outcome, now));
                }
                TerminalAction::Report(_) => {}
                TerminalAction::InstallDukptKey { .. } => {
                    panic!("no DUKPT key in certificate mode")
                }
                TerminalAction::Finished(outcome) => {
                    run.outcome = Some(outcome);
                    return run;
                }
            }
        }
        for bytes in to_appliance.drain(..) {
            let mut queue = appliance.handle_bytes(&bytes, now);
            while let Some(action) = (!queue.is_empty()).then(|| queue.remove(0)) {
                match action {
                    ApplianceAction::Send(bytes) => to_terminal.push(bytes),
                    ApplianceAction::Reserve { request, .. } => {
                        let outcome = (decisions.reservation)(&request);
                        run.reservations.push(request);
                        queue.extend(appliance.handle_reservation(outcome, now));
                    }
                    ApplianceAction::MarkSent { .. } => {}
                    ApplianceAction::Confirm { key_index, smn, .. } => {
                        run.confirmations += 1;
                        let outcome = (decisions.confirmation)(key_index)
                            .map(|()| Confirmed { key_index, smn });
                        queue.extend(appliance.handle_confirmation(outcome, now));
                    }
                    ApplianceAction::Report(event) => run.appliance_events.push(event),
                    other @ (ApplianceAction::ReserveDukpt { .. }
                    | ApplianceAction::MarkDukptSent { .. }
                    | ApplianceAction::ConfirmDukpt { .. }) => {
                        panic!("{other:?} in certificate mode")
                    }
                }
            }
        }
        for bytes in to_terminal {
            terminal_actions.extend(terminal.handle_bytes(&bytes, now));
        }
    }
    panic!("the session did not finish");
}

fn failure(run: &Run) -> &str {
    match &run.outcome {
        Some(TerminalOutcome::Failed { reason }) => reason,
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn aborted_with(run: &Run) -> AbortReason {
    run.appliance_events
        .iter()
        .find_map(|event| match event {
            SessionEvent::Aborted { reason, .. } => Some(*reason),
            _ => None,
        })
        .expect("the appliance saw an ABORT")
}

fn error_sent(run: &Run) -> (ErrorCode, String) {
    run.appliance_events
        .iter()
        .find_map(|event| match event {
            SessionEvent::ErrorSent { code, detail, .. } => Some((*code, detail.clone())),
            _ => None,
        })
        .expect("the appliance sent an ERROR")
}

#[test]
fn a_two_pass_session_carries_the_credential_tokens_the_random_number_token_and_the_key_token() {
    let mut appliance = ApplianceSession::new(appliance_config());
    let mut terminal = TerminalSession::new(terminal_config());
    let run = run(&mut appliance, &mut terminal, Decisions::default());
    assert!(
        matches!(
            run.outcome,
            Some(TerminalOutcome::Injected { key_index: 278, .. })
        ),
        "{:?}",
        run.outcome
    );
    assert_eq!(run.verified, vec![KDH_CREDENTIAL_TOKEN.to_vec()]);
    assert_eq!(
        run.reservations,
        vec![ModeRequest::Certificate(CertificateRequest {
            pass: CertificatePass::TwoPass,
            random_number_token: RANDOM_NUMBER_TOKEN.to_vec(),
            krd_credential_token: KRD_CREDENTIAL_TOKEN.to_vec(),
        })]
    );
    let (header, install) = &run.installs[0];
    assert_eq!(header, KEY_BLOCK_HEADER);
    assert_eq!(
        install.as_ref().unwrap().key_token,
        key_token_for(CertificatePass::TwoPass, RANDOM_NUMBER_TOKEN)
    );
    assert_eq!(run.confirmations, 1);
    assert!(run.appliance_events.iter().any(|event| matches!(
        event,
        SessionEvent::Welcomed {
            mode: Mode::Certificate,
            ..
        }
    )));
}

#[test]
fn a_one_pass_session_sends_no_random_number_token() {
    let mut appliance = ApplianceSession::new(appliance_config());
    let mut terminal = TerminalSession::new(terminal_config());
    let decisions = Decisions {
        appliance_verdict: Ok(CertificateFreshness::OnePass),
        install: Box::new(|_, certificate| {
            let token = &certificate.as_ref().unwrap().key_token;
            assert_eq!(token, &key_token_for(CertificatePass::OnePass, &[]));
            Ok(KCV.to_vec())
        }),
        ..Decisions::default()
    };
    let run = run(&mut appliance, &mut terminal, decisions);
    assert!(
        matches!(run.outcome, Some(TerminalOutcome::Injected { .. })),
        "{:?}",
        run.outcome
    );
    assert_eq!(
        run.reservations,
        vec![ModeRequest::Certificate(CertificateRequest {
            pass: CertificatePass::OnePass,
            random_number_token: Vec::new(),
            krd_credential_token: KRD_CREDENTIAL_TOKEN.to_vec(),
        })]
    );
}

#[test]
fn certificate_mode_is_chosen_only_when_both_sides_have_a_credential_token() {
    // An appliance without a KDH credential token falls back to tr31 ...
    let mut config = appliance_config();
    config.kdh_credential_token.clear();
    let mut appliance = ApplianceSession::new(config.clone());
    let mut terminal = TerminalSession::new(terminal_config());
    let hello = sends(terminal.start(Duration::ZERO));
    let welcome = appliance_sends(appliance.handle_bytes(&hello, Duration::ZERO));
    let Message::Welcome(welcome) = decode(&welcome) else {
        panic!("expected WELCOME");
    };
    assert_eq!(welcome.mode_id, Mode::Tr31.id());
    assert!(welcome.mode_data.is_empty());
    // ... and refuses a terminal offering certificate mode only, saying what it serves.
    let mut only_certificate = terminal_config();
    only_certificate.modes = vec![Mode::Certificate];
    let mut appliance = ApplianceSession::new(config);
    let hello = sends(TerminalSession::new(only_certificate.clone()).start(Duration::ZERO));
    let answer = appliance_sends(appliance.handle_bytes(&hello, Duration::ZERO));
    let Message::Error(error) = decode(&answer) else {
        panic!("expected ERROR");
    };
    assert_eq!(error.code, ErrorCode::NO_COMMON_MODE);
    assert!(
        error.detail.contains("appliance serves tr31"),
        "{}",
        error.detail
    );
    // A terminal without a KRD credential token does not offer certificate mode at all.
    let mut without_token = terminal_config();
    without_token.krd_credential_token.clear();
    let hello = sends(TerminalSession::new(without_token).start(Duration::ZERO));
    let Message::Hello(hello) = decode(&hello) else {
        panic!("expected HELLO");
    };
    assert_eq!(hello.mode_ids, vec![Mode::Tr31.id()]);
}

#[test]
fn capability_flags_steer_a_terminal_to_certificate_mode_which_sends_no_tr31_block() {
    // The appliance's TTK is AES (version D); this terminal opens version B only.
    let welcome_mode = |modes: Vec<Mode>| {
        let mut config = terminal_config();
        config.modes = modes;
        let mut appliance = ApplianceSession::new(appliance_config());
        let hello = sends(
            TerminalSession::new(config)
                .with_capabilities(keymother_protocol::Capabilities::TR31_VERSION_B)
                .start(Duration::ZERO),
        );
        decode(&appliance_sends(
            appliance.handle_bytes(&hello, Duration::ZERO),
        ))
    };
    // Preferring tr31, it still gets certificate mode: tr31 would send a version D block.
    match welcome_mode(vec![Mode::Tr31, Mode::Certificate]) {
        Message::Welcome(welcome) => assert_eq!(welcome.mode_id, Mode::Certificate.id()),
        other => panic!("expected WELCOME, got {other:?}"),
    }
    // Offering tr31 alone, it is refused with the version it lacks.
    match welcome_mode(vec![Mode::Tr31]) {
        Message::Error(error) => {
            assert_eq!(error.code, ErrorCode::KEY_BLOCK_VERSION_UNSUPPORTED);
            assert!(error.detail.contains("version D"), "{}", error.detail);
        }
        other => panic!("expected ERROR, got {other:?}"),
    }
}

#[test]
fn a_refused_kdh_credential_token_aborts_before_any_key_is_requested() {
    let mut appliance = ApplianceSession::new(appliance_config());
    let mut terminal = TerminalSession::new(terminal_config());
    let decisions = Decisions {
        appliance_verdict: Err("the KDH certificate has expired".to_owned()),
        ..Decisions::default()
    };
    let run = run(&mut appliance, &mut terminal, decisions);
    assert!(failure(&run).contains("has expired"), "{}", failure(&run));
    assert_eq!(aborted_with(&run), AbortReason::CERTIFICATE_REFUSED);
    assert!(run.reservations.is_empty());
}

#[test]
fn refused_tokens_or_device_certificates_are_answered_with_certificate_refused() {
    for (problem, detail) in [
        (
            CertificateProblem::Revoked,
            "the terminal device certificate with serial 1003 was revoked",
        ),
        (
            CertificateProblem::BadToken,
            "the KRD credential token is not a degenerate SignedData",
        ),
    ] {
        let mut appliance = ApplianceSession::new(appliance_config());
        let mut terminal = TerminalSession::new(terminal_config());
        let decisions = Decisions {
            reservation: Box::new(move |_| {
                Err(DispenseRefusal::CertificateRefused(CertificateRefusal {
                    problem,
                    detail: detail.to_owned(),
                }))
            }),
            ..Decisions::default()
        };
        let run = run(&mut appliance, &mut terminal, decisions);
        let (code, sent) = error_sent(&run);
        assert_eq!(code, ErrorCode::CERTIFICATE_REFUSED);
        assert_eq!(sent, detail);
        assert!(
            failure(&run).contains("CERTIFICATE_REFUSED"),
            "{}",
            failure(&run)
        );
        assert!(run.installs.is_empty());
    }
}

#[test]
fn a_key_token_that_is_not_authentic_is_aborted_and_never_confirmed() {
    let mut appliance = ApplianceSession::new(appliance_config());
    let mut terminal = TerminalSession::new(terminal_config());
    // The appliance answers another nonce (a replayed key token).
    let decisions = Decisions {
        reservation: Box::new(|_| {
            Ok(sealed(key_token_for(
                CertificatePass::TwoPass,
                b"an older random number token",
            )))
        }),
        ..Decisions::default()
    };
    let run = run(&mut appliance, &mut terminal, decisions);
    assert_eq!(aborted_with(&run), AbortReason::DELIVERY_NOT_AUTHENTIC);
    assert!(failure(&run).contains("another nonce"), "{}", failure(&run));
    assert_eq!(run.confirmations, 0);
    // The appliance knows the key left and was not confirmed: it stays with this terminal.
    assert!(run.appliance_events.iter().any(|event| matches!(
        event,
        SessionEvent::Aborted {
            unconfirmed_key: Some(278),
            ..
        }
    )));
}

/// Sends a certificate-mode KEY_REQUEST with these mode data bytes after a HELLO, and returns
/// the appliance's ERROR.
fn refusal_of(mode_data: Vec<u8>) -> keymother_protocol::ErrorMessage {
    let mut appliance = ApplianceSession::new(appliance_config());
    let hello = sends(TerminalSession::new(terminal_config()).start(Duration::ZERO));
    appliance_sends(appliance.handle_bytes(&hello, Duration::ZERO));
    let request = Message::KeyRequest(KeyRequest {
        mode_id: Mode::Certificate.id(),
        mode_data,
    })
    .encode_frame(1)
    .unwrap();
    let answer = appliance_sends(appliance.handle_bytes(&request, Duration::ZERO));
    let Message::Error(error) = decode(&answer) else {
        panic!("expected ERROR");
    };
    error
}

#[test]
fn malformed_certificate_mode_data_is_refused_naming_the_field_and_offset() {
    // A pass byte that is neither one-pass nor two-pass.
    let error = refusal_of(vec![3, 0, 0, 0, 1, 0x30]);
    assert_eq!(error.code, ErrorCode::MALFORMED_MESSAGE);
    // The example docs/PROTOCOL.md 9.1.1 gives.
    assert_eq!(
        error.detail,
        "KEY_REQUEST pass at mode-data offset 0: 3 is not allowed (1 (one-pass) or 2 (two-pass))"
    );
    // One-pass with a random number token.
    let error = refusal_of(vec![1, 0, 2, 0xAB, 0xCD, 0, 1, 0x30]);
    assert_eq!(error.code, ErrorCode::MALFORMED_MESSAGE);
    assert!(
        error
            .detail
            .contains("random number token length at mode-data offset 1"),
        "{}",
        error.detail
    );
    // A KRD credential token cut short.
    let error = refusal_of(vec![1, 0, 0, 0, 9, 0x30]);
    assert!(
        error
            .detail
            .contains("KRD credential token at mode-data offset 5"),
        "{}",
        error.detail
    );
}

#[test]
fn a_tr31_delivery_with_trailing_bytes_is_refused_by_the_terminal() {
    let mut config = terminal_config();
    config.modes = vec![Mode::Tr31];
    config.ttk_kcv = vec![0xAA; 5];
    let mut appliance_config = appliance_config();
    appliance_config.modes = vec![Mode::Tr31];
    let mut appliance = ApplianceSession::new(appliance_config);
    let mut terminal = TerminalSession::new(config);
    let decisions = Decisions {
        reservation: Box::new(|_| Ok(sealed(b"key token".to_vec()))),
        install: Box::new(|_, _| panic!("nothing may be installed")),
        ..Decisions::default()
    };
    let run = run(&mut appliance, &mut terminal, decisions);
    assert_eq!(aborted_with(&run), AbortReason::UNEXPECTED_RESPONSE);
    assert!(failure(&run).contains("after the KCV"), "{}", failure(&run));
}

#[test]
fn a_malformed_certificate_mode_delivery_is_aborted_by_the_terminal() {
    let mut appliance = ApplianceSession::new(appliance_config());
    let mut terminal = TerminalSession::new(terminal_config());
    let decisions = Decisions {
        reservation: Box::new(|_| {
            let mut delivery = sealed(b"key token".to_vec());
            delivery.mode_data.push(0);
            Ok(delivery)
        }),
        install: Box::new(|_, _| panic!("nothing may be installed")),
        ..Decisions::default()
    };
    let run = run(&mut appliance, &mut terminal, decisions);
    assert_eq!(aborted_with(&run), AbortReason::UNEXPECTED_RESPONSE);
    assert!(
        failure(&run).contains("mode data at mode-data offset 11"),
        "{}",
        failure(&run)
    );
}

#[test]
fn certificate_mode_key_requests_are_rate_limited_per_port() {
    let mut config = appliance_config();
    config.certificate_requests_per_minute = 2;
    let mut appliance = ApplianceSession::new(config);
    let mut reserved = 0;
    let mut limited = 0;
    for (session, seconds) in [(0u8, 0u64), (1, 10), (2, 20), (3, 61)] {
        let now = Duration::from_secs(seconds);
        let mut terminal_config = terminal_config();
        terminal_config.hardware_serial = format!("T{session}").parse().unwrap();
        let hello = sends(TerminalSession::new(terminal_config).start(now));
        appliance_sends(appliance.handle_bytes(&hello, now));
        let request = Message::KeyRequest(KeyRequest {
            mode_id: Mode::Certificate.id(),
            mode_data: CertificateRequest {
                pass: CertificatePass::TwoPass,
                random_number_token: RANDOM_NUMBER_TOKEN.to_vec(),
                krd_credential_token: KRD_CREDENTIAL_TOKEN.to_vec(),
            }
            .encode()
            .unwrap(),
        })
        .encode_frame(1)
        .unwrap();
        for action in appliance.handle_bytes(&request, now) {
            match action {
                ApplianceAction::Reserve { .. } => {
                    reserved += 1;
                    appliance.handle_reservation(Err(DispenseRefusal::NoKeysAvailable), now);
                }
                ApplianceAction::Send(bytes) => {
                    if let Message::Error(error) = decode(&bytes) {
                        if error.code == ErrorCode::RATE_LIMITED {
                            assert!(error.detail.contains("more than 2"), "{}", error.detail);
                            limited += 1;
                        }
                    }
                }
                _ => {}
            }
        }
    }
    // Two within the minute, the third refused, the fourth a minute after the first.
    assert_eq!((reserved, limited), (3, 1));
}

#[test]
fn a_terminal_resuming_in_certificate_mode_verifies_the_appliance_then_confirms() {
    let mut appliance = ApplianceSession::new(appliance_config());
    let mut config = terminal_config();
    config.unconfirmed_key = Some((278, KCV.to_vec()));
    let mut terminal = TerminalSession::new(config);
    let run = run(&mut appliance, &mut terminal, Decisions::default());
    assert!(
        matches!(
            run.outcome,
            Some(TerminalOutcome::Injected { key_index: 278, .. })
        ),
        "{:?}",
        run.outcome
    );
    assert_eq!(run.verified.len(), 1, "the appliance is checked first");
    assert!(run.reservations.is_empty(), "no new key asked for");
    assert_eq!(run.confirmations, 1);
}

#[test]
fn a_resumed_key_the_appliance_never_sent_is_asked_for_with_the_freshness_chosen_earlier() {
    let mut appliance = ApplianceSession::new(appliance_config());
    let mut config = terminal_config();
    config.unconfirmed_key = Some((4711, KCV.to_vec()));
    let mut terminal = TerminalSession::new(config);
    let decisions = Decisions {
        // No record of key 4711; the key delivered afterwards is confirmed.
        confirmation: Box::new(|key_index| match key_index {
            4711 => Err(ConfirmRefusal::NotDelivered),
            _ => Ok(()),
        }),
        ..Decisions::default()
    };
    let run = run(&mut appliance, &mut terminal, decisions);
    assert!(
        matches!(
            run.outcome,
            Some(TerminalOutcome::Injected { key_index: 278, .. })
        ),
        "{:?}",
        run.outcome
    );
    assert_eq!(run.verified.len(), 1, "the appliance is verified once");
    assert_eq!(
        run.reservations,
        vec![ModeRequest::Certificate(CertificateRequest {
            pass: CertificatePass::TwoPass,
            random_number_token: RANDOM_NUMBER_TOKEN.to_vec(),
            krd_credential_token: KRD_CREDENTIAL_TOKEN.to_vec(),
        })]
    );
    assert_eq!(run.confirmations, 2);
}

fn sends(actions: Vec<TerminalAction>) -> Vec<u8> {
    actions
        .into_iter()
        .find_map(|action| match action {
            TerminalAction::Send(bytes) => Some(bytes),
            _ => None,
        })
        .expect("the terminal sent a frame")
}

fn appliance_sends(actions: Vec<ApplianceAction>) -> Vec<u8> {
    actions
        .into_iter()
        .find_map(|action| match action {
            ApplianceAction::Send(bytes) => Some(bytes),
            _ => None,
        })
        .expect("the appliance sent a frame")
}

fn decode(bytes: &[u8]) -> Message {
    let mut decoder = keymother_protocol::FrameDecoder::new(Duration::from_secs(1));
    match decoder.push(bytes, Duration::ZERO).pop() {
        Some(keymother_protocol::DecodeEvent::Frame(frame)) => Message::from_frame(&frame).unwrap(),
        other => panic!("not a frame: {other:?}"),
    }
}
