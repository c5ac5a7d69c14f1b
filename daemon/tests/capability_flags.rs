//! HELLO's capability flags end to end: a terminal that cannot open the TR-31 version the appliance's transport key needs is refused at HELLO, before anything is reserved; one announcing that version, or nothing at all (flags 0), is served.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use keymother_daemon::DaemonEvent;
use keymother_protocol::{Capabilities, TerminalOutcome};
use keymother_terminal::{PtyLine, SoftwareKeyStore, inject};
use keymother_vault::KeyState;
use support::{Appliance, InProcessDaemon};

/// Runs the reference terminal `serial` with `store`; the injected key index or the failure.
fn run_terminal(
    line: &mut PtyLine,
    appliance: &Appliance,
    serial: &str,
    store: &mut SoftwareKeyStore,
) -> Result<u32, String> {
    match inject(line, appliance.terminal(serial), store)
        .unwrap()
        .outcome
    {
        TerminalOutcome::Injected { key_index, .. } => Ok(key_index),
        TerminalOutcome::Failed { reason } => Err(reason),
        other => panic!("tr31 only here: {other:?}"),
    }
}

#[test]
fn a_terminal_that_cannot_open_version_d_is_refused_at_hello_and_nothing_is_reserved() {
    // The test appliance's TTK is AES-256, so its keys travel as TR-31 version D blocks.
    let appliance = Appliance::provisioned(5);
    let (mut lines, settings) = appliance.ports(1);
    let daemon = InProcessDaemon::start(settings);

    let mut only_b = appliance
        .key_store()
        .with_capabilities(Capabilities::TR31_VERSION_B);
    let reason = run_terminal(&mut lines[0], &appliance, "9CAPB01", &mut only_b).unwrap_err();
    assert!(
        reason.contains("KEY_BLOCK_VERSION_UNSUPPORTED"),
        "the refusal names its code: {reason}"
    );
    assert!(
        reason.contains("TR-31 version D") && reason.contains("0x0002"),
        "the refusal names what the terminal lacks: {reason}"
    );
    assert!(only_b.installed().is_none(), "no key reached the terminal");
    daemon.wait_for(|event| {
        matches!(event, DaemonEvent::InjectionFailed { reason, .. }
            if reason == "terminal cannot open this key block version")
    });

    // A terminal announcing version D gets the first key: none was reserved for the refused one.
    let mut only_d = appliance
        .key_store()
        .with_capabilities(Capabilities::TR31_VERSION_D);
    assert_eq!(
        run_terminal(&mut lines[0], &appliance, "9CAPD01", &mut only_d),
        Ok(1)
    );
    // Flags 0 announce nothing: served as before the flags were read.
    let mut silent = appliance.key_store().with_capabilities(Capabilities::NONE);
    assert_eq!(
        run_terminal(&mut lines[0], &appliance, "9CAPN01", &mut silent),
        Ok(2)
    );
    // The refused terminal, asking again with every flag, is served the next key.
    let mut both = appliance.key_store();
    assert_eq!(
        run_terminal(&mut lines[0], &appliance, "9CAPB01", &mut both),
        Ok(3)
    );
    drop(daemon);

    let inventory = appliance.vault().inventory().unwrap();
    assert_eq!(inventory.count(KeyState::Used), 3);
    assert_eq!(inventory.count(KeyState::Available), 2);
    let rows = appliance.vault().smn_rows().unwrap();
    let serials: Vec<String> = rows
        .iter()
        .map(|row| row.hardware_serial.to_string())
        .collect();
    assert_eq!(serials, ["9CAPD01", "9CAPN01", "9CAPB01"]);
}
