//! Operator login (source document 003) against the real daemon and its control socket: what opens a session, every kind of refusal, how a session ends, and that no key leaves without one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use keymother_daemon::DaemonEvent;
use keymother_pki::PrivateKey;
use keymother_pki::login::{LoginResponse, sign_login};
use keymother_protocol::TerminalOutcome;
use keymother_terminal::{PtyLine, inject};
use keymother_vault::{AuditRow, KeyState, Vault};
use serde_json::{Value, json};
use support::operators::{
    ask, challenge, fixture, good_certificate, login, login_request, ok, operator_certificate,
    operator_key, pki_sections, refused, seconds_from_now, signed, status_operator,
};
use support::{Appliance, InProcessDaemon};

/// An appliance with `keys` keys, one port, operator login required (`operator`: more
/// `[operator]` keys), and its daemon running.
struct Bench {
    appliance: Appliance,
    lines: Vec<PtyLine>,
    daemon: InProcessDaemon,
    socket: PathBuf,
}

impl Bench {
    fn start(keys: u32, operator: &str) -> Bench {
        let bench = Bench::with_sections(keys, &pki_sections(operator));
        assert!(bench.daemon_requires_operators());
        bench
    }

    /// An appliance whose settings have `sections` (`[pki]`, `[operator]`) or nothing of the
    /// kind.
    fn with_sections(keys: u32, sections: &str) -> Bench {
        let appliance = Appliance::provisioned(keys);
        let (lines, settings) = appliance.ports_with(1, sections);
        let daemon = InProcessDaemon::start(settings);
        let socket = appliance.directory.path().join("control.sock");
        Bench {
            appliance,
            lines,
            daemon,
            socket,
        }
    }

    fn socket(&self) -> &Path {
        &self.socket
    }

    fn daemon_requires_operators(&self) -> bool {
        ok(ask(self.socket(), &json!({"command": "status"})))["operator_required"] == true
    }

    /// The events' appliance state reaches `reason`.
    fn assert_state_reason(&self, reason: &str) {
        assert!(
            self.daemon.saw(|event| matches!(
                event,
                DaemonEvent::ApplianceState(state) if state.reason == reason
            )),
            "the appliance state never said {reason:?}"
        );
    }

    /// A terminal asks for a key: its SMN, or why it failed.
    fn terminal(&mut self, serial: &str) -> Result<String, String> {
        let mut store = self.appliance.key_store();
        let injection = inject(
            &mut self.lines[0],
            self.appliance.terminal(serial),
            &mut store,
        )
        .unwrap();
        match injection.outcome {
            TerminalOutcome::Injected { smn, .. } => Ok(smn.to_string()),
            TerminalOutcome::Failed { reason } => Err(reason),
            other => panic!("tr31 only here: {other:?}"),
        }
    }

    /// The audit rows so far, read as the security officer would while the daemon runs.
    fn audit(&self) -> Vec<AuditRow> {
        Vault::open_for_audit(&self.appliance.data_dir)
            .unwrap()
            .audit_rows()
            .unwrap()
    }

    fn last_audit(&self, event: &str) -> AuditRow {
        self.audit()
            .into_iter()
            .rev()
            .find(|row| row.event == event)
            .unwrap_or_else(|| panic!("no {event} row"))
    }

    /// Key states as the vault holds them (nothing reserved, nothing used, ...).
    fn inventory(&self) -> keymother_vault::InventorySummary {
        self.appliance.vault().inventory().unwrap()
    }

    fn assert_chain_verifies(&self) {
        let verified = ok(ask(self.socket(), &json!({"command": "audit-verify"})));
        assert!(verified["rows"].as_u64().unwrap() > 1, "{verified}");
    }
}

/// Asserts a terminal is turned away for want of an operator and nothing was reserved.
fn assert_no_key_without_an_operator(bench: &mut Bench, serial: &str) {
    let before = bench.inventory();
    let reason = bench.terminal(serial).unwrap_err();
    assert!(
        reason.contains("NOT_READY") && reason.contains("no operator is logged in"),
        "{reason}"
    );
    assert_eq!(bench.inventory(), before, "a key was touched");
    assert!(
        bench
            .appliance
            .vault()
            .key_assignments()
            .unwrap()
            .iter()
            .all(|(_, bound_to, _)| bound_to != serial),
        "a key was bound to {serial}"
    );
}

/// Asserts a login is refused with `words`, audited as such, and opens no session.
fn assert_refused(bench: &Bench, request: &Value, words: &str) {
    let before = status_operator(bench.socket());
    let inventory = bench.inventory();
    let error = refused(ask(bench.socket(), request));
    eprintln!("refused: {error}");
    assert!(
        error.starts_with("login refused: ") && error.contains(words),
        "expected {words:?} in {error:?}"
    );
    assert_eq!(
        status_operator(bench.socket()),
        before,
        "the session changed"
    );
    assert_eq!(bench.inventory(), inventory, "a key was touched");
    let row = bench.last_audit("login-refused");
    assert!(row.details.contains("reason="), "{row:?}");
    assert!(!row.actor.is_empty());
}

#[test]
fn a_valid_login_opens_a_session_and_injections_name_the_operator() {
    let mut bench = Bench::start(5, "");
    let status = ok(ask(bench.socket(), &json!({"command": "status"})));
    assert_eq!(status["operator"], Value::Null);
    assert_eq!(status["operator_required"], true);

    let certificate = good_certificate("Ann Operator", 0x41);
    let session = ok(login(bench.socket(), &certificate));
    assert_eq!(session["name"], "Ann Operator");
    assert_eq!(session["serial"], "41");
    assert!(
        session["subject"]
            .as_str()
            .unwrap()
            .contains("CN=Ann Operator"),
        "{session}"
    );
    assert_eq!(status_operator(bench.socket()), session);
    let row = bench.last_audit("login");
    assert_eq!(row.actor, "Ann Operator");
    assert!(
        row.details.contains("serial=41") && row.details.contains("until="),
        "{}",
        row.details
    );

    let smn = bench.terminal("123L013K").unwrap();
    assert_eq!(smn, "123L013K00000001");
    let rows = ok(ask(bench.socket(), &json!({"command": "smn-rows"})));
    assert_eq!(rows[0]["smn"], smn);
    assert_eq!(rows[0]["operator"], "Ann Operator");
    let injection = bench.last_audit("injection");
    assert_eq!(injection.actor, "Ann Operator");
    assert!(
        injection.details.ends_with("; operator=Ann Operator"),
        "{}",
        injection.details
    );
    assert!(bench.daemon.saw(|event| matches!(
        event,
        DaemonEvent::Injected { operator: Some(name), .. } if name == "Ann Operator"
    )));
    // The sealed SMN export keeps its fixed format (docs/SMN-EXPORT.md): no operator in it.
    let (file, answer) = support::wire::download(
        bench.socket(),
        &json!({"command": "export-smn", "file_name": "smn.csv"}),
    );
    ok(answer);
    let text = String::from_utf8(file).unwrap();
    assert!(!text.contains("Ann Operator"), "{text}");
    assert_eq!(bench.last_audit("export").actor, "Ann Operator");
    bench.assert_chain_verifies();
}

#[test]
fn without_a_session_no_key_is_dispensed_voided_or_exported() {
    let mut bench = Bench::start(5, "");
    assert_no_key_without_an_operator(&mut bench, "123L013K");
    let error = refused(ask(
        bench.socket(),
        &json!({"command": "void", "key_index": 1, "reason": "test"}),
    ));
    assert!(error.contains("no operator is logged in"), "{error}");
    let (file, answer) = support::wire::download(
        bench.socket(),
        &json!({"command": "export-smn", "file_name": "smn.csv"}),
    );
    let error = refused(answer);
    assert!(error.contains("no operator is logged in"), "{error}");
    assert!(file.is_empty());
    // Logout with nobody logged in changes nothing.
    let answer = ok(ask(bench.socket(), &json!({"command": "logout"})));
    assert_eq!(answer["logged_out"], Value::Null);
    bench.assert_chain_verifies();
}

#[test]
fn certificates_that_are_not_a_valid_operator_certificate_are_refused() {
    let bench = Bench::start(1, "");
    let key = operator_key();
    let cases: Vec<(&str, Vec<u8>, PrivateKey, &str)> = vec![
        (
            "issued by another CA (wrong root)",
            fixture("operator-other-ca.der"),
            operator_key(),
            "was not issued by the operator CA",
        ),
        (
            "expired",
            operator_certificate(
                "Old Operator",
                2,
                seconds_from_now(-86400 * 30),
                seconds_from_now(-60),
            ),
            operator_key(),
            "the certificate has expired",
        ),
        (
            "not yet valid",
            operator_certificate(
                "Future Operator",
                3,
                seconds_from_now(3600),
                seconds_from_now(86400),
            ),
            operator_key(),
            "the certificate is not yet valid",
        ),
        (
            "a terminal's device certificate",
            fixture("device.der"),
            PrivateKey::from_pkcs8(&fixture("test-only-device.key"), None).unwrap(),
            "a terminal device certificate was presented as an operator certificate",
        ),
        (
            "the KDH certificate",
            fixture("kdh.der"),
            PrivateKey::from_pkcs8(&fixture("test-only-kdh.key"), None).unwrap(),
            "certificate was presented as an operator certificate",
        ),
    ];
    for (what, certificate, signer, words) in cases {
        eprintln!("{what}");
        let response = signed(bench.socket(), &signer, &certificate);
        assert_refused(&bench, &login_request(&response), words);
    }
    // Garbage where the certificate goes.
    let mut response = signed(bench.socket(), &key, &good_certificate("Ann Operator", 4));
    response.certificate = b"not a certificate".to_vec();
    assert_refused(&bench, &login_request(&response), "cannot parse");
    assert_eq!(status_operator(bench.socket()), Value::Null);
    bench.assert_chain_verifies();
}

#[test]
fn a_revoked_operator_certificate_is_refused() {
    use keymother_pki::Role;
    let appliance = Appliance::provisioned(1);
    let crl = appliance.directory.path().join("operator.crl");
    std::fs::write(
        &crl,
        keymother_pki::builder::crl(
            &fixture("ca-operator.pem"),
            &support::operators::ca_key(Role::Operator),
            1,
            seconds_from_now(-3600),
            seconds_from_now(86400),
            &[(vec![0x66], seconds_from_now(-60))],
        )
        .unwrap(),
    )
    .unwrap();
    let sections =
        pki_sections("").replace("[operator]", &format!("operator_crl = {crl:?}\n[operator]"));
    let (_lines, settings) = appliance.ports_with(1, &sections);
    let _daemon = InProcessDaemon::start(settings);
    let socket = appliance.directory.path().join("control.sock");
    let error = refused(login(&socket, &good_certificate("Revoked Operator", 0x66)));
    assert!(error.contains("with serial 66 was revoked"), "{error}");
    ok(login(&socket, &good_certificate("Ann Operator", 0x67)));
}

#[test]
fn a_challenge_answers_once_and_only_as_issued() {
    let bench = Bench::start(1, "");
    let key = operator_key();
    let certificate = good_certificate("Ann Operator", 5);

    // A challenge the appliance never issued.
    let (_, device_id) = challenge(bench.socket());
    let invented = sign_login(
        &key,
        &certificate,
        &device_id,
        &[0x5A; 32],
        SystemTime::now(),
    )
    .unwrap();
    assert_refused(
        &bench,
        &login_request(&invented),
        "unknown or already used login challenge",
    );

    // Signed over another challenge than the one it names.
    let (issued, _) = challenge(bench.socket());
    let mut swapped = sign_login(
        &key,
        &certificate,
        &device_id,
        &[0xA5; 32],
        SystemTime::now(),
    )
    .unwrap();
    swapped.challenge = issued;
    assert_refused(
        &bench,
        &login_request(&swapped),
        "the login signature does not verify",
    );
    // ...and that challenge is used up by the attempt.
    let honest = sign_login(&key, &certificate, &device_id, &issued, SystemTime::now()).unwrap();
    assert_refused(
        &bench,
        &login_request(&honest),
        "unknown or already used login challenge",
    );

    // Signed for another appliance.
    let (issued, _) = challenge(bench.socket());
    let elsewhere = sign_login(
        &key,
        &certificate,
        "KM-OTHER-0002",
        &issued,
        SystemTime::now(),
    )
    .unwrap();
    assert_refused(
        &bench,
        &login_request(&elsewhere),
        "the login signature does not verify",
    );

    // A good answer works once; the same answer again is a replay.
    let response = signed(bench.socket(), &key, &certificate);
    ok(ask(bench.socket(), &login_request(&response)));
    let logins = bench
        .audit()
        .iter()
        .filter(|row| row.event == "login")
        .count();
    assert_refused(
        &bench,
        &login_request(&response),
        "unknown or already used login challenge",
    );
    assert_eq!(status_operator(bench.socket())["name"], "Ann Operator");
    assert_eq!(
        bench
            .audit()
            .iter()
            .filter(|row| row.event == "login")
            .count(),
        logins
    );

    // Malformed fields are refused before anything is looked at.
    for (field, value, words) in [
        ("challenge", json!("00"), "challenge: must be 64 hex digits"),
        ("signature", json!("***"), "signature: not standard base64"),
        (
            "certificate",
            json!("***"),
            "certificate: not standard base64",
        ),
        ("signed_at", json!(-1), "malformed request"),
    ] {
        let mut request = login_request(&response);
        request[field] = value;
        let error = refused(ask(bench.socket(), &request));
        assert!(error.contains(words), "{field}: {error}");
    }
    bench.assert_chain_verifies();
}

#[test]
fn a_login_signed_outside_the_time_window_is_refused() {
    let bench = Bench::start(1, "login_window_seconds = 60\n");
    let key = operator_key();
    let certificate = good_certificate("Ann Operator", 6);
    for offset in [-200i64, 200] {
        let (issued, device_id) = challenge(bench.socket());
        let at = if offset < 0 {
            SystemTime::now() - Duration::from_secs(offset.unsigned_abs())
        } else {
            SystemTime::now() + Duration::from_secs(offset as u64)
        };
        let response: LoginResponse =
            sign_login(&key, &certificate, &device_id, &issued, at).unwrap();
        assert_refused(
            &bench,
            &login_request(&response),
            "more than the 60 s allowed",
        );
    }
    // Within the window either way is fine.
    let (issued, device_id) = challenge(bench.socket());
    let response = sign_login(
        &key,
        &certificate,
        &device_id,
        &issued,
        SystemTime::now() - Duration::from_secs(50),
    )
    .unwrap();
    ok(ask(bench.socket(), &login_request(&response)));
}

#[test]
fn after_logout_dispensing_stops_again() {
    let mut bench = Bench::start(5, "");
    ok(login(bench.socket(), &good_certificate("Ann Operator", 7)));
    bench.terminal("123L013K").unwrap();
    let answer = ok(ask(bench.socket(), &json!({"command": "logout"})));
    assert_eq!(answer["logged_out"]["name"], "Ann Operator");
    assert_eq!(status_operator(bench.socket()), Value::Null);
    let row = bench.last_audit("logout");
    assert_eq!(
        (row.actor.as_str(), row.details.as_str()),
        ("Ann Operator", "reason=logged out; operator=Ann Operator")
    );
    assert_no_key_without_an_operator(&mut bench, "123L013L");
    bench.assert_chain_verifies();
}

#[test]
fn a_new_login_replaces_the_session_before() {
    let mut bench = Bench::start(5, "");
    ok(login(bench.socket(), &good_certificate("Ann Operator", 8)));
    ok(login(bench.socket(), &good_certificate("Bob Operator", 9)));
    assert_eq!(status_operator(bench.socket())["name"], "Bob Operator");
    let row = bench.last_audit("logout");
    assert_eq!(row.actor, "Ann Operator");
    assert!(
        row.details
            .starts_with("reason=replaced by a login of Bob Operator"),
        "{}",
        row.details
    );
    bench.terminal("123L013K").unwrap();
    assert_eq!(bench.last_audit("injection").actor, "Bob Operator");
}

#[test]
fn a_session_ends_at_its_limit() {
    let mut bench = Bench::start(5, "session_limit_seconds = 1\n");
    let session = ok(login(bench.socket(), &good_certificate("Ann Operator", 10)));
    assert_ne!(session["until"], Value::Null);
    std::thread::sleep(Duration::from_millis(1600));
    assert_eq!(status_operator(bench.socket()), Value::Null);
    let row = bench.last_audit("logout");
    assert_eq!(row.details, "reason=expired; operator=Ann Operator");
    assert_no_key_without_an_operator(&mut bench, "123L013K");
    bench.assert_chain_verifies();
}

#[test]
fn a_session_ends_when_the_certificate_does() {
    let mut bench = Bench::start(5, "");
    let not_after = seconds_from_now(2);
    let certificate = operator_certificate("Ann Operator", 11, seconds_from_now(-60), not_after);
    let session = ok(login(bench.socket(), &certificate));
    assert_eq!(
        session["until"],
        keymother_daemon::operator::rfc3339(not_after),
        "the certificate ends before the session limit"
    );
    let wait = not_after
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        + Duration::from_millis(400);
    std::thread::sleep(wait);
    assert_eq!(status_operator(bench.socket()), Value::Null);
    assert_eq!(
        bench.last_audit("logout").details,
        "reason=expired; operator=Ann Operator"
    );
    assert_no_key_without_an_operator(&mut bench, "123L013K");
}

#[test]
fn a_zeroize_ends_the_session_first() {
    let bench = Bench::start(2, "");
    ok(login(bench.socket(), &good_certificate("Ann Operator", 12)));
    ok(ask(
        bench.socket(),
        &json!({"command": "zeroize", "confirm_device_id": support::DEVICE, "reason": "end of test"}),
    ));
    assert_eq!(status_operator(bench.socket()), Value::Null);
    let rows = bench.audit();
    // Between them, the four final exports the zeroize sealed (tests/zeroized.rs).
    assert!(
        rows[rows.len() - 5..rows.len() - 1]
            .iter()
            .all(|row| row.event == "final-export" && row.actor == "Ann Operator")
    );
    let tail: Vec<(&str, &str, &str)> = [&rows[rows.len() - 6], &rows[rows.len() - 1]]
        .into_iter()
        .map(|row| (row.event.as_str(), row.actor.as_str(), row.details.as_str()))
        .collect();
    assert_eq!(
        tail,
        [
            (
                "logout",
                "Ann Operator",
                "reason=zeroize: end of test; operator=Ann Operator"
            ),
            (
                "zeroize",
                "Ann Operator",
                "reason=end of test; operator=Ann Operator"
            ),
        ]
    );
    // After the zeroize nobody can log in: nothing could be audited.
    let error = refused(login(bench.socket(), &good_certificate("Ann Operator", 13)));
    assert!(
        error.contains("could not be recorded in the audit trail"),
        "{error}"
    );
    assert_eq!(status_operator(bench.socket()), Value::Null);
}

/// What login-challenge and login answer without an operator CA.
const NO_OPERATOR_CA: &str =
    "operator login is not possible: no operator CA is configured ([pki] operator_ca)";

/// Asserts that neither a challenge nor a login answer gets anywhere without an operator CA,
/// and that nothing changes: no session, no audit row.
fn assert_login_is_not_possible(bench: &Bench) {
    let rows = bench.audit().len();
    let error = refused(ask(bench.socket(), &json!({"command": "login-challenge"})));
    assert_eq!(error, NO_OPERATOR_CA);
    // An answer to a challenge the appliance could not have issued.
    let answer = sign_login(
        &operator_key(),
        &good_certificate("Ann Operator", 0x51),
        support::DEVICE,
        &[0x5A; 32],
        SystemTime::now(),
    )
    .unwrap();
    let error = refused(ask(bench.socket(), &login_request(&answer)));
    assert_eq!(error, format!("login refused: {NO_OPERATOR_CA}"));
    assert_eq!(status_operator(bench.socket()), Value::Null);
    assert_eq!(bench.audit().len(), rows, "something was audited");
}

/// The factory settings of a freshly flashed appliance: operator login required (by default)
/// and no [pki] yet. The daemon runs and takes ceremonies and key files, says what is missing,
/// and dispenses nothing: nobody can log in.
#[test]
fn required_without_pki_the_daemon_runs_and_dispenses_nothing() {
    let mut bench = Bench::with_sections(2, "");
    assert!(bench.daemon_requires_operators(), "required by default");
    bench.assert_state_reason("no operator CA configured: add [pki]");
    let status = ok(ask(bench.socket(), &json!({"command": "status"})));
    assert_eq!(
        (
            &status["operator"],
            &status["operator_required"],
            &status["operator_ca"],
            &status["reason"],
        ),
        (
            &Value::Null,
            &json!(true),
            &json!(false),
            &json!("no operator CA configured: add [pki]"),
        ),
        "{status}"
    );
    assert_login_is_not_possible(&bench);

    // Custodians may hold a ceremony and the front end's keys may be imported meanwhile.
    let ttk = hex::decode(&bench.appliance.transport_key_hex).unwrap();
    let mask: Vec<u8> = ttk.iter().map(|_| fastrand::u8(..)).collect();
    let masked: Vec<u8> = ttk.iter().zip(&mask).map(|(key, bit)| key ^ bit).collect();
    let ceremony = ok(ask(
        bench.socket(),
        &json!({
            "command": "ceremony",
            "secret": "ttk",
            "algorithm": "AES-256",
            "components": [
                {"custodian": "Ann Lee", "component": hex::encode_upper(mask)},
                {"custodian": "Raj Patel", "component": hex::encode_upper(masked)},
            ],
            "replace": true,
        }),
    ));
    assert_eq!(ceremony["ready"], true, "{ceremony}");
    let file = bench.appliance.key_file("B-2", 3, 2);
    let import = support::wire::import_file(bench.socket(), &file);
    assert_eq!(ok(import)["records"], 2);
    assert_eq!(bench.inventory().count(KeyState::Available), 4);

    // A terminal asking for a key is turned away and nothing is reserved.
    assert_no_key_without_an_operator(&mut bench, "123L013K");
    assert_eq!(bench.inventory().count(KeyState::Available), 4);
    let status = ok(ask(bench.socket(), &json!({"command": "status"})));
    assert_eq!(status["reason"], "no operator CA configured: add [pki]");
    bench.assert_chain_verifies();
}

/// Without [pki] and without operator login (demo and test benches) keys flow as before, and
/// login says why it cannot happen.
#[test]
fn not_required_without_pki_keys_flow_and_login_is_not_possible() {
    let mut bench = Bench::with_sections(1, "[operator]\nrequire = false\n");
    assert!(!bench.daemon_requires_operators());
    assert_login_is_not_possible(&bench);
    let status = ok(ask(bench.socket(), &json!({"command": "status"})));
    assert_eq!(
        (&status["operator"], &status["operator_ca"]),
        (&Value::Null, &json!(false))
    );
    assert_eq!(bench.terminal("123L013K").unwrap(), "123L013K00000001");
}

#[test]
fn a_key_sent_in_a_session_and_confirmed_after_it_ended_names_that_session() {
    let mut bench = Bench::start(5, "");
    ok(login(bench.socket(), &good_certificate("Ann Operator", 14)));
    let mut store = bench.appliance.key_store();
    let config = bench.appliance.terminal("VANISH01");
    support::vanish_after_delivery(&mut bench.lines[0], config, &mut store);
    let deadline = Instant::now() + Duration::from_secs(2);
    while bench.inventory().count(KeyState::Sent) != 1 {
        assert!(Instant::now() < deadline, "never marked sent");
        std::thread::sleep(Duration::from_millis(10));
    }
    ok(ask(bench.socket(), &json!({"command": "logout"})));

    // The key already left: its confirmation is still recorded, under the session it left in.
    let (key_index, kcv) = store.installed().unwrap();
    let mut config = bench.appliance.terminal("VANISH01");
    config.unconfirmed_key = Some((key_index, kcv.as_bytes().to_vec()));
    let injection = inject(&mut bench.lines[0], config, &mut store).unwrap();
    assert!(
        matches!(injection.outcome, TerminalOutcome::Injected { .. }),
        "{:?}",
        injection.outcome
    );
    let rows = ok(ask(bench.socket(), &json!({"command": "smn-rows"})));
    assert_eq!(rows[0]["smn"], format!("VANISH01{key_index:08}"));
    assert_eq!(rows[0]["operator"], "Ann Operator");
    assert_eq!(bench.last_audit("injection").actor, "Ann Operator");
    // A new key still needs a session.
    assert_no_key_without_an_operator(&mut bench, "123L013K");
    bench.assert_chain_verifies();
}
