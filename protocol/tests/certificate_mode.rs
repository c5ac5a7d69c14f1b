//! Certificate mode (mode 2) through both real sessions, back to back, with the adapters' cryptography replaced by recorded decisions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use keymother_protocol::{
    AbortReason, ApplianceAction, ApplianceConfig, ApplianceSession, CertificateDelivery,
    CertificateProblem, CertificateRefusal, CertificateRequest, Confirmed, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_RETRIES, DEFAULT_RESPONSE_TIMEOUT, Delivery, DispenseRefusal, ErrorCode,
    InstallRefusal, KeyRequest, Message, Mode, ModeRequest, NONCE_LENGTH, SessionEvent,
    TerminalAction, TerminalConfig, TerminalOutcome, TerminalSession,
};

const KDH_CERTIFICATE: &[u8] = b"0\x82 stand-in for the KDH certificate";
const DEVICE_CERTIFICATE: &[u8] = b"0\x82 stand-in for the device certificate";
const NONCE: [u8; NONCE_LENGTH] = [0x5A; NONCE_LENGTH];
const KEY_BLOCK: &str = "D0144K0AD00N00000123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF";
const KCV: [u8; 5] = [1, 2, 3, 4, 5];

fn appliance_config() -> ApplianceConfig {
    ApplianceConfig {
        device_id: "KM-0001".to_owned(),
        ttk_kcv: vec![0xAA; 5],
        modes: vec![Mode::Certificate, Mode::Tr31],
        idle_timeout: DEFAULT_IDLE_TIMEOUT,
        kdh_certificate: KDH_CERTIFICATE.to_vec(),
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
        device_certificate: DEVICE_CERTIFICATE.to_vec(),
    }
}

fn sealed(nonce: [u8; NONCE_LENGTH]) -> Delivery {
    Delivery {
        key_index: 278,
        key_block: KEY_BLOCK.to_owned(),
        kcv: KCV.to_vec(),
        mode_data: CertificateDelivery {
            nonce,
            encrypted_key: vec![0xE0; 256],
            signature: vec![0x51; 256],
            crl: Vec::new(),
        }
        .encode()
        .unwrap(),
    }
}

type Reservation = Box<dyn FnMut(&ModeRequest) -> Result<Delivery, DispenseRefusal>>;
type Install = Box<dyn FnMut(&Option<CertificateDelivery>) -> Result<Vec<u8>, InstallRefusal>>;

/// What the fake adapters decide.
struct Decisions {
    appliance_verdict: Result<[u8; NONCE_LENGTH], String>,
    reservation: Reservation,
    install: Install,
}

impl Default for Decisions {
    fn default() -> Self {
        Decisions {
            appliance_verdict: Ok(NONCE),
            reservation: Box::new(|request| match request {
                ModeRequest::Certificate(request) => Ok(sealed(request.nonce)),
                other => panic!("{other:?} reservation in a certificate-mode test"),
            }),
            install: Box::new(|certificate| {
                let certificate = certificate.as_ref().expect("certificate-mode delivery");
                if certificate.nonce == NONCE {
                    Ok(KCV.to_vec())
                } else {
                    Err(InstallRefusal::NotAuthentic(
                        "the delivery answers another nonce".to_owned(),
                    ))
                }
            }),
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
    installs: Vec<Option<CertificateDelivery>>,
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
                    kdh_certificate, ..
                } => {
                    run.verified.push(kdh_certificate);
                    terminal_actions.extend(
                        terminal
                            .handle_appliance_verified(decisions.appliance_verdict.clone(), now),
                    );
                }
                TerminalAction::InstallKey { certificate, .. } => {
                    let outcome = (decisions.install)(&certificate);
                    run.installs.push(certificate);
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
                        queue.extend(
                            appliance.handle_confirmation(Ok(Confirmed { key_index, smn }), now),
                        );
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
fn a_certificate_mode_session_carries_both_certificates_the_nonce_and_the_sealed_key() {
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
    assert_eq!(run.verified, vec![KDH_CERTIFICATE.to_vec()]);
    assert_eq!(
        run.reservations,
        vec![ModeRequest::Certificate(CertificateRequest {
            nonce: NONCE,
            device_certificate: DEVICE_CERTIFICATE.to_vec(),
        })]
    );
    let install = run.installs[0].as_ref().unwrap();
    assert_eq!(install.nonce, NONCE);
    assert_eq!(install.signature, vec![0x51; 256]);
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
fn certificate_mode_is_chosen_only_when_both_sides_have_a_certificate() {
    // An appliance without a KDH certificate falls back to tr31 ...
    let mut config = appliance_config();
    config.kdh_certificate.clear();
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
    // A terminal without a device certificate does not offer certificate mode at all.
    let mut without_certificate = terminal_config();
    without_certificate.device_certificate.clear();
    let hello = sends(TerminalSession::new(without_certificate).start(Duration::ZERO));
    let Message::Hello(hello) = decode(&hello) else {
        panic!("expected HELLO");
    };
    assert_eq!(hello.mode_ids, vec![Mode::Tr31.id()]);
}

#[test]
fn a_refused_kdh_certificate_aborts_before_any_key_is_requested() {
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
fn a_refused_device_certificate_is_answered_with_certificate_refused() {
    let mut appliance = ApplianceSession::new(appliance_config());
    let mut terminal = TerminalSession::new(terminal_config());
    let decisions = Decisions {
        reservation: Box::new(|_| {
            Err(DispenseRefusal::CertificateRefused(CertificateRefusal {
                problem: CertificateProblem::Revoked,
                detail: "the terminal device certificate with serial 1003 was revoked".to_owned(),
            }))
        }),
        ..Decisions::default()
    };
    let run = run(&mut appliance, &mut terminal, decisions);
    let (code, detail) = error_sent(&run);
    assert_eq!(code, ErrorCode::CERTIFICATE_REFUSED);
    assert!(detail.contains("revoked"), "{detail}");
    assert!(
        failure(&run).contains("CERTIFICATE_REFUSED"),
        "{}",
        failure(&run)
    );
    assert!(run.installs.is_empty());
}

#[test]
fn a_delivery_that_is_not_authentic_is_aborted_and_never_confirmed() {
    let mut appliance = ApplianceSession::new(appliance_config());
    let mut terminal = TerminalSession::new(terminal_config());
    // The appliance answers another nonce (a replayed delivery).
    let decisions = Decisions {
        reservation: Box::new(|_| Ok(sealed([0x11; NONCE_LENGTH]))),
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

#[test]
fn malformed_certificate_mode_data_is_refused_naming_the_field() {
    let mut appliance = ApplianceSession::new(appliance_config());
    let hello = sends(TerminalSession::new(terminal_config()).start(Duration::ZERO));
    appliance_sends(appliance.handle_bytes(&hello, Duration::ZERO));
    // A nonce cut short.
    let request = Message::KeyRequest(KeyRequest {
        mode_id: Mode::Certificate.id(),
        mode_data: vec![0; 20],
    })
    .encode_frame(1)
    .unwrap();
    let answer = appliance_sends(appliance.handle_bytes(&request, Duration::ZERO));
    let Message::Error(error) = decode(&answer) else {
        panic!("expected ERROR");
    };
    assert_eq!(error.code, ErrorCode::MALFORMED_MESSAGE);
    assert!(error.detail.contains("nonce"), "{}", error.detail);
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
        reservation: Box::new(|_| Ok(sealed(NONCE))),
        install: Box::new(|_| panic!("nothing may be installed")),
        ..Decisions::default()
    };
    let run = run(&mut appliance, &mut terminal, decisions);
    assert_eq!(aborted_with(&run), AbortReason::UNEXPECTED_RESPONSE);
    assert!(failure(&run).contains("after the KCV"), "{}", failure(&run));
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
                nonce: NONCE,
                device_certificate: DEVICE_CERTIFICATE.to_vec(),
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
