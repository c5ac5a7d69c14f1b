//! Profile mode over pseudo-terminals under load: a noise relay on four ports and eight ports at once with a device range running out midway; no device ID reaches two terminals and every confirmed initial key is in the registry.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use keymother_protocol::TerminalOutcome;
use keymother_terminal::{NoisyLine, PtyLine, inject};
use keymother_vault::KeyState;
use support::profiles::{
    DATA, PIN, PINPAD_SLOTS, ProfileTerminal, check_profiles, load_bdk, load_bdks, profile_ports,
    profile_terminal,
};
use support::{Appliance, InProcessDaemon};

#[test]
fn noise_on_the_line_never_gives_a_device_id_to_two_terminals() {
    let appliance = Appliance::provisioned(200);
    load_bdks(&appliance, 200);
    let (lines, settings) = profile_ports(&appliance, 4, PINPAD_SLOTS);
    let _daemon = InProcessDaemon::start(settings);
    let appliance = Arc::new(appliance);
    let handles: Vec<_> = lines
        .into_iter()
        .enumerate()
        .map(|(port, line)| {
            let appliance = Arc::clone(&appliance);
            std::thread::spawn(move || {
                let mut line = NoisyLine::new(line, 0.004, 15 + port as u64);
                let mut terminals = Vec::new();
                let mut failures = 0;
                for n in 0..8 {
                    let serial = format!("N{port}T{n}");
                    let mut store = appliance.key_store();
                    let mut terminal = ProfileTerminal::new(&serial);
                    // A technician retries a failed injection with the same terminal.
                    loop {
                        let mut config = profile_terminal(&appliance, &serial);
                        // The protocol's shortest response timeout (PROTOCOL.md 6), longer than
                        // the appliance's inter-byte timeout, so a partial frame a noise STX
                        // began is dropped before the request comes again; and one
                        // retransmission only, so the noise ends some sessions midway.
                        config.response_timeout = Duration::from_secs(1);
                        config.max_retries = 1;
                        let outcome = inject(&mut line, config, &mut store).unwrap().outcome;
                        if terminal.after_session(&outcome, &store) {
                            break;
                        }
                        failures += 1;
                        assert!(failures < 60, "the line is too noisy to ever finish");
                    }
                    terminals.push(terminal);
                }
                (terminals, line.damage())
            })
        })
        .collect();
    let mut terminals = Vec::new();
    let mut damaged = 0;
    for handle in handles {
        let (mine, damage) = handle.join().unwrap();
        damaged += damage.dropped + damage.flipped + damage.inserted;
        terminals.extend(mine);
    }
    let tally = check_profiles(&appliance, &terminals);
    eprintln!(
        "{damaged} bytes damaged; {} profiles in {} sessions, {} failed holding a DUKPT key",
        tally.injected, tally.sessions, tally.failed_holding_dukpt
    );
    assert!(damaged > 20, "the noise relay damaged only {damaged} bytes");
    assert_eq!(tally.injected, 32);
    assert!(tally.sessions > 32, "the noise never cut a session short");
    // One initial key per terminal and BDK, each confirmed and in the registry.
    assert_eq!(tally.registry_rows, 64);
    assert_eq!(tally.allocations, 64);
    assert_eq!(appliance.vault().smn_rows().unwrap().len(), 32);
}

/// Four terminals on one port, one session each: each ends injected or refused (its refusal).
fn until_refused(
    port: usize,
    mut line: PtyLine,
    appliance: &Appliance,
) -> Vec<(ProfileTerminal, Option<String>)> {
    let mut ended = Vec::new();
    for n in 0..4 {
        let serial = format!("P{port}T{n}");
        let mut store = appliance.key_store();
        let mut terminal = ProfileTerminal::new(&serial);
        let config = profile_terminal(appliance, &serial);
        let outcome = inject(&mut line, config, &mut store).unwrap().outcome;
        let refusal = match &outcome {
            TerminalOutcome::Failed { reason } => Some(reason.clone()),
            _ => None,
        };
        assert!(
            terminal.after_session(&outcome, &store) || refusal.is_some(),
            "{serial}: {outcome:?}"
        );
        ended.push((terminal, refusal));
    }
    ended
}

#[test]
fn eight_ports_at_once_until_the_device_ranges_run_out() {
    let appliance = Appliance::provisioned(100);
    // 32 terminals; 24 device IDs of PIN (slot 0) and 20 of DATA (slot 1).
    load_bdk(&appliance, &PIN, 24);
    load_bdk(&appliance, &DATA, 20);
    let (lines, settings) = profile_ports(&appliance, 8, PINPAD_SLOTS);
    let daemon = InProcessDaemon::start(settings);
    let appliance = Arc::new(appliance);
    let handles: Vec<_> = lines
        .into_iter()
        .enumerate()
        .map(|(port, line)| {
            let appliance = Arc::clone(&appliance);
            std::thread::spawn(move || until_refused(port, line, &appliance))
        })
        .collect();
    let mut terminals = Vec::new();
    let mut refusals = Vec::new();
    for handle in handles {
        for (terminal, refusal) in handle.join().unwrap() {
            refusals.extend(refusal);
            terminals.push(terminal);
        }
    }
    let tally = check_profiles(&appliance, &terminals);
    // Every refusal is NO_KEYS_AVAILABLE at a DUKPT_REQUEST: 8 terminals found PIN used up,
    // 4 more (which got PIN) found DATA used up.
    for reason in &refusals {
        assert!(
            reason.contains("DUKPT_REQUEST with ERROR 0x0007 NO_KEYS_AVAILABLE"),
            "{reason}"
        );
    }
    let refused_at = |bdk: &str| {
        let detail = format!("no device ID of BDK {bdk} is left");
        refusals
            .iter()
            .filter(|reason| reason.contains(&detail))
            .count()
    };
    assert_eq!(
        (refused_at("PIN"), refused_at("DATA")),
        (8, 4),
        "{refusals:#?}"
    );
    assert_eq!(tally.injected, 20);
    assert_eq!(tally.injected + refusals.len(), 32);
    // The counts add up: every device ID of both ranges given once and confirmed, and each
    // terminal's master key confirmed before its DUKPT keys were asked for.
    assert_eq!(tally.allocations, 24 + 20);
    assert_eq!(tally.registry_rows, 24 + 20);
    let confirmed = daemon.stats.dukpt_injections.load(Ordering::Relaxed);
    assert_eq!(confirmed, 24 + 20, "DUKPT confirmations the daemon counted");
    let allocations = appliance.vault().dukpt_allocations().unwrap();
    assert!(allocations.iter().all(|a| a.state == KeyState::Used));
    for bdk in [&PIN, &DATA] {
        let status = appliance
            .vault()
            .bdks()
            .unwrap()
            .into_iter()
            .find(|status| status.name.as_str() == bdk.name)
            .unwrap();
        assert_eq!(
            (status.remaining, status.next_device),
            (0, None),
            "{}",
            bdk.name
        );
    }
    assert_eq!(appliance.vault().smn_rows().unwrap().len(), 32);
    let inventory = appliance.vault().inventory().unwrap();
    assert_eq!(inventory.count(KeyState::Used), 32);
    assert_eq!(
        inventory.count(KeyState::Reserved) + inventory.count(KeyState::Sent),
        0
    );
}
