//! The appliance's clock: untrusted without an RTC, logins and certificate checks refused with "clock not set", set under dual control (audited with old and new time), a step back only when both say so, and an RTC that set the time at boot trusted from the start.
//! One test function: the appliance's clock offset is process-wide.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use support::operators::{ask, good_certificate, login, ok, pki_sections, refused};
use support::{Appliance, InProcessDaemon};

fn rfc3339(at: SystemTime) -> String {
    time::OffsetDateTime::from(at)
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn clock_set(socket: &Path, name: &str, role: &str, reading: SystemTime, backwards: bool) -> Value {
    ask(
        socket,
        &json!({"command": "clock-set", "time": rfc3339(reading), "name": name, "role": role, "backwards": backwards}),
    )
}

fn status(socket: &Path) -> Value {
    ok(ask(socket, &json!({"command": "status"})))
}

fn start(
    appliance: &Appliance,
    rtc_class: &Path,
) -> (
    InProcessDaemon,
    std::path::PathBuf,
    Vec<keymother_terminal::PtyLine>,
) {
    let sections = format!(
        "{}[clock]\nrequire_trusted = true\nrtc_class = {rtc_class:?}\n",
        pki_sections("")
    );
    let (lines, settings) = appliance.ports_with(1, &sections);
    let daemon = InProcessDaemon::start(settings);
    (
        daemon,
        appliance.directory.path().join("control.sock"),
        lines,
    )
}

#[test]
fn the_clock_must_be_vouched_for_before_logins_and_two_people_vouch_for_it() {
    let appliance = Appliance::provisioned(3);
    let rtc_class = tempfile::tempdir().unwrap();
    let (daemon, socket, _lines) = start(&appliance, rtc_class.path());

    // No RTC: not trusted, and it says so everywhere.
    let clock = status(&socket)["clock"].clone();
    assert_eq!(
        (clock["trusted"].clone(), clock["source"].clone()),
        (json!(false), json!("not set")),
        "{clock}"
    );
    assert_eq!(clock["detail"], "no real-time clock set the time at boot");
    let reason = status(&socket)["reason"].as_str().unwrap().to_owned();
    assert!(
        reason.starts_with("clock not set: no real-time clock"),
        "{reason}"
    );
    let error = refused(ask(&socket, &json!({"command": "login-challenge"})));
    assert!(error.starts_with("clock not set: "), "{error}");
    let error = refused(ask(
        &socket,
        &json!({"command": "kdh-install", "certificate": "AAAA"}),
    ));
    assert!(error.starts_with("clock not set: "), "{error}");

    // One person is not enough; the same person twice, or two operators, neither.
    let now = SystemTime::now();
    let first = ok(clock_set(
        &socket,
        "Alice Custodian",
        "custodian",
        now,
        false,
    ));
    assert_eq!(first["state"], "waiting", "{first}");
    let error = refused(clock_set(
        &socket,
        "alice custodian",
        "operator",
        now,
        false,
    ));
    assert!(
        error.contains("another person than Alice Custodian"),
        "{error}"
    );
    assert!(
        refused(ask(&socket, &json!({"command": "login-challenge"}))).starts_with("clock not set")
    );
    // A reading far from the first drops it.
    let error = refused(clock_set(
        &socket,
        "Bob Operator",
        "operator",
        now + Duration::from_secs(600),
        false,
    ));
    assert!(error.contains("differ by"), "{error}");
    ok(clock_set(
        &socket,
        "Alice Custodian",
        "custodian",
        SystemTime::now(),
        false,
    ));
    let set = ok(clock_set(
        &socket,
        "Bob Operator",
        "operator",
        SystemTime::now(),
        false,
    ));
    assert_eq!(set["state"], "set", "{set}");
    assert!(
        set["witnesses"]
            .as_str()
            .unwrap()
            .contains("Alice Custodian (custodian"),
        "{set}"
    );

    // Trusted now: the operator logs in.
    let clock = status(&socket)["clock"].clone();
    assert_eq!(
        (clock["trusted"].clone(), clock["source"].clone()),
        (json!(true), json!("dual-control")),
        "{clock}"
    );
    ok(login(&socket, &good_certificate("Ann Operator", 31)));
    let rows = appliance.vault().audit_rows().unwrap();
    let row = rows
        .iter()
        .find(|row| row.event == "clock-set")
        .expect("a clock-set row");
    assert!(
        row.details.contains("old=") && row.details.contains("new="),
        "{}",
        row.details
    );
    assert!(
        row.details.contains("Alice Custodian") && row.details.contains("Bob Operator"),
        "{}",
        row.details
    );
    appliance.vault().verify_audit().unwrap();

    // A step back: refused unless both say --backwards; then the appliance's clock is a day
    // behind the system's, and audit rows carry the appliance's time.
    let yesterday = SystemTime::now() - Duration::from_secs(86_400);
    let error = refused(clock_set(
        &socket,
        "Carol Custodian",
        "custodian",
        yesterday,
        false,
    ));
    assert!(error.contains("needs --backwards from both"), "{error}");
    ok(clock_set(
        &socket,
        "Carol Custodian",
        "custodian",
        yesterday,
        true,
    ));
    let error = refused(clock_set(
        &socket,
        "Dan Custodian",
        "custodian",
        yesterday,
        false,
    ));
    assert!(error.contains("both must say --backwards"), "{error}");
    let set = ok(clock_set(
        &socket,
        "Dan Custodian",
        "custodian",
        yesterday,
        true,
    ));
    assert_eq!(set["state"], "set", "{set}");
    let now_text = status(&socket)["clock"]["now"].as_str().unwrap().to_owned();
    let appliance_now = SystemTime::from(
        time::OffsetDateTime::parse(&now_text, &time::format_description::well_known::Rfc3339)
            .unwrap(),
    );
    let behind = SystemTime::now().duration_since(appliance_now).unwrap();
    assert!((86_300..86_500).contains(&behind.as_secs()), "{behind:?}");
    drop(daemon);

    // After a restart the setting is gone (the clock is vouched for again), unless an RTC
    // set the time at boot; an RTC behind the last audit record is not trusted.
    keymother_vault::clock::set_offset_seconds(0);
    let rtc = rtc_class.path().join("rtc0");
    std::fs::create_dir(&rtc).unwrap();
    std::fs::write(rtc.join("hctosys"), "1\n").unwrap();
    std::fs::write(rtc.join("name"), "rtc-ds1307 1-0068\n").unwrap();
    let (daemon, socket, _lines) = start(&appliance, rtc_class.path());
    let clock = status(&socket)["clock"].clone();
    assert_eq!(
        (clock["trusted"].clone(), clock["source"].clone()),
        (json!(true), json!("rtc")),
        "{clock}"
    );
    assert_eq!(clock["detail"], "set at boot by rtc0 (rtc-ds1307 1-0068)");
    ok(login(&socket, &good_certificate("Ann Operator", 32)));
    drop(daemon);
    keymother_vault::clock::set_offset_seconds(-2 * 86_400);
    let (_daemon, socket, _lines) = start(&appliance, rtc_class.path());
    let clock = status(&socket)["clock"].clone();
    assert_eq!(clock["trusted"], false, "{clock}");
    assert!(
        clock["detail"]
            .as_str()
            .unwrap()
            .contains("before the last audit record"),
        "{clock}"
    );
    keymother_vault::clock::set_offset_seconds(0);
}
