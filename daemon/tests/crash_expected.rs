//! A run over an expected-device list with keymotherd killed (SIGKILL) at random moments, as the crash test does: afterwards the reconciliation's injected, pending, missing and refused serials agree with the vault and with what the terminals saw.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{BTreeSet, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_protocol::TerminalOutcome;
use keymother_terminal::inject;
use keymother_vault::{KeyState, verify_reconcile_export};
use support::Appliance;

/// Serials on the list.
const LISTED: usize = 200;
const TARGET_INJECTIONS: usize = 100;
const TARGET_KILLS: usize = 40;

fn start_daemon(config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_keymotherd"))
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// What the terminals saw, over all ports.
#[derive(Default)]
struct Seen {
    /// Listed serials that saw their confirmation.
    injected: BTreeSet<String>,
    /// Unlisted serials that were told DEVICE_NOT_EXPECTED.
    refused: BTreeSet<String>,
    /// Unlisted serials tried at all.
    unlisted: BTreeSet<String>,
}

#[test]
fn reconcile_counts_match_the_vault_after_a_run_with_kills() {
    let appliance = Arc::new(Appliance::provisioned(400));
    let (lines, _) = appliance.ports(2);
    let config = appliance.config_path();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(
            "idle_timeout_seconds = 5\n",
            "idle_timeout_seconds = 5\nrequire_expected_devices = true\n",
        ),
    )
    .unwrap();
    let list: String = (0..LISTED).map(|n| format!("L{n:05}\n")).collect();
    appliance
        .vault()
        .import_expected_list(
            &"RUN-1".parse().unwrap(),
            format!("serial\n{list}").as_bytes(),
            "run.csv",
            None,
        )
        .unwrap();
    // The last listed terminal had its key reserved when the bench lost power before the run
    // (never delivered): it stays pending, as does any that gives up after a kill.
    appliance
        .vault()
        .reserve_key(&format!("L{:05}", LISTED - 1).parse().unwrap(), "bench-0")
        .unwrap();
    // The nine before it never come to the bench: missing.
    let queue = Arc::new(Mutex::new(
        (0..LISTED - 10)
            .map(|n| format!("L{n:05}"))
            .collect::<Vec<_>>(),
    ));
    let daemon = Arc::new(Mutex::new(start_daemon(&config)));
    let done = Arc::new(AtomicBool::new(false));
    let injections = Arc::new(AtomicUsize::new(0));
    let kills = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();

    let killer = {
        let (daemon, done, config, kills, progress) = (
            Arc::clone(&daemon),
            Arc::clone(&done),
            config.clone(),
            Arc::clone(&kills),
            Arc::clone(&injections),
        );
        std::thread::spawn(move || {
            let mut random = fastrand::Rng::with_seed(17);
            let mut progress_at_last_kill = 0;
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(5 + random.u64(..150)));
                progress_at_last_kill = support::process::let_one_through(
                    &kills,
                    &progress,
                    progress_at_last_kill,
                    &done,
                );
                let mut child = daemon.lock().unwrap();
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills.fetch_add(1, Ordering::Relaxed);
                *child = start_daemon(&config);
            }
        })
    };
    let seen = Arc::new(Mutex::new(Seen::default()));
    let terminals: Vec<_> = lines
        .into_iter()
        .enumerate()
        .map(|(port, mut line)| {
            let (appliance, queue, seen, injections, kills) = (
                Arc::clone(&appliance),
                Arc::clone(&queue),
                Arc::clone(&seen),
                Arc::clone(&injections),
                Arc::clone(&kills),
            );
            std::thread::spawn(move || {
                let mut number = 0;
                while injections.load(Ordering::Relaxed) < TARGET_INJECTIONS
                    || kills.load(Ordering::Relaxed) < TARGET_KILLS
                {
                    if started.elapsed() > Duration::from_secs(180) {
                        break;
                    }
                    number += 1;
                    // Every fourth terminal on the bench is not on the list, nor is any
                    // once the list's terminals are all through.
                    let listed = if number % 4 == 0 {
                        None
                    } else {
                        queue.lock().unwrap().pop()
                    };
                    let Some(serial) = listed else {
                        let serial = format!("U{port}N{number:04}");
                        seen.lock().unwrap().unlisted.insert(serial.clone());
                        let outcome = inject(
                            &mut line,
                            appliance.terminal(&serial),
                            &mut appliance.key_store(),
                        )
                        .unwrap()
                        .outcome;
                        if let TerminalOutcome::Failed { reason } = &outcome {
                            if reason.contains("DEVICE_NOT_EXPECTED") {
                                seen.lock().unwrap().refused.insert(serial);
                            }
                        }
                        assert!(
                            !matches!(outcome, TerminalOutcome::Injected { .. }),
                            "{outcome}"
                        );
                        continue;
                    };
                    let mut store = appliance.key_store();
                    // A few attempts, as a technician would (only one for every seventh
                    // terminal); one that never got through stays pending or missing.
                    let attempts = if number % 7 == 0 { 1 } else { 8 };
                    for _attempt in 0..attempts {
                        let outcome = inject(&mut line, appliance.terminal(&serial), &mut store)
                            .unwrap()
                            .outcome;
                        if let TerminalOutcome::Injected { .. } = outcome {
                            seen.lock().unwrap().injected.insert(serial.clone());
                            injections.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    for terminal in terminals {
        terminal.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    killer.join().unwrap();
    {
        let mut child = daemon.lock().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let seen = seen.lock().unwrap();
    let kills = kills.load(Ordering::Relaxed);
    assert!(kills >= TARGET_KILLS, "only {kills} kills");
    assert!(
        seen.injected.len() >= TARGET_INJECTIONS,
        "only {} injections",
        seen.injected.len()
    );

    let vault = appliance.vault();
    let reconciliation = vault.reconcile(Some(&"RUN-1".parse().unwrap())).unwrap();
    let list = &reconciliation.lists[0];
    let names = |serials: Vec<String>| serials.into_iter().collect::<BTreeSet<_>>();
    let injected = names(
        list.injected
            .iter()
            .map(|d| d.hardware_serial.to_string())
            .collect(),
    );
    let pending = names(
        list.pending
            .iter()
            .map(|d| d.hardware_serial.to_string())
            .collect(),
    );
    let missing = names(
        list.missing
            .iter()
            .map(|d| d.hardware_serial.to_string())
            .collect(),
    );
    let refused = names(
        list.refused
            .iter()
            .map(|d| d.hardware_serial.to_string())
            .collect(),
    );
    eprintln!(
        "{kills} kills; reconciliation: {} injected, {} pending, {} missing, {} refused ({} unlisted tried)",
        injected.len(),
        pending.len(),
        missing.len(),
        refused.len(),
        seen.unlisted.len()
    );

    // The vault's own records: SMN rows, keys still bound and unconfirmed, refusals.
    let with_smn = names(
        vault
            .smn_rows()
            .unwrap()
            .into_iter()
            .map(|row| row.hardware_serial.to_string())
            .collect(),
    );
    let bound_pending = names(
        vault
            .key_assignments()
            .unwrap()
            .into_iter()
            .filter(|(_, _, state)| matches!(state, KeyState::Reserved | KeyState::Sent))
            .map(|(_, serial, _)| serial)
            .collect(),
    );
    let recorded_refusals: BTreeSet<String> = support::raw_database(&appliance.data_dir)
        .prepare("SELECT DISTINCT hardware_serial FROM expected_refusal")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(injected, with_smn, "injected = the serials with SMN rows");
    assert_eq!(
        pending,
        &bound_pending - &with_smn,
        "pending = bound, unconfirmed"
    );
    assert_eq!(injected.len() + pending.len() + missing.len(), LISTED);
    assert!(injected.is_disjoint(&missing) && pending.is_disjoint(&missing));
    assert!(
        seen.injected.is_subset(&injected),
        "every confirmation the terminals saw"
    );
    assert!(pending.contains(&format!("L{:05}", LISTED - 1)));
    assert!((LISTED - 10..LISTED - 1).all(|n| missing.contains(&format!("L{n:05}"))));
    assert_eq!(refused, recorded_refusals);
    assert!(
        seen.refused.is_subset(&refused),
        "every refusal the terminals saw"
    );
    assert!(
        refused.is_subset(&seen.unlisted),
        "only unlisted serials are refused"
    );
    let unlisted: HashSet<&String> = seen.unlisted.iter().collect();
    assert!(
        vault
            .key_assignments()
            .unwrap()
            .iter()
            .all(|(_, serial, _)| !unlisted.contains(serial)),
        "no unlisted serial holds a key"
    );

    // The sealed export says the same.
    let mut bytes = Vec::new();
    vault
        .write_reconcile_export(&mut bytes, None, std::path::Path::new("rec.csv"))
        .unwrap();
    let kek = SecretKey::from_hex(KeyAlgorithm::Aes256, &appliance.kek_hex).unwrap();
    let verified = verify_reconcile_export(bytes.as_slice(), "rec.csv", &kek).unwrap();
    assert_eq!(
        verified.counts()[&"RUN-1".parse().unwrap()],
        [
            injected.len() as u64,
            pending.len() as u64,
            missing.len() as u64,
            refused.len() as u64
        ]
    );
}
