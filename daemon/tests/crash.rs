//! The crash test: keymotherd is killed with SIGKILL at random moments during hundreds of injections on four ports, and restarted each time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keymother_protocol::TerminalOutcome;
use keymother_terminal::inject;
use support::Appliance;

const TARGET_INJECTIONS: usize = 300;
/// Kills to reach before stopping, however quickly the injections went.
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

/// What one terminal saw.
struct Seen {
    serial: String,
    /// Keys installed from a delivery (confirmed or not).
    installed: Vec<u32>,
    /// The confirmed key, if the terminal saw CONFIRMED.
    confirmed: Option<(u32, String)>,
}

#[test]
fn killing_the_daemon_at_random_loses_nothing_and_duplicates_nothing() {
    let appliance = Arc::new(Appliance::provisioned(2000));
    let (lines, _) = appliance.ports(4);
    let config = appliance.config_path();
    let daemon = Arc::new(Mutex::new(start_daemon(&config)));
    let done = Arc::new(AtomicBool::new(false));
    let confirmed_count = Arc::new(AtomicUsize::new(0));
    let kill_count = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();

    let killer = {
        let (daemon, done, config, kill_count, confirmed_count) = (
            Arc::clone(&daemon),
            Arc::clone(&done),
            config.clone(),
            Arc::clone(&kill_count),
            Arc::clone(&confirmed_count),
        );
        std::thread::spawn(move || {
            let mut random = fastrand_seed(42);
            let mut confirmed_at_last_kill = 0;
            while !done.load(Ordering::Relaxed) {
                // Anywhere from mid-start-up to several injections in.
                std::thread::sleep(Duration::from_millis(5 + random() % 150));
                confirmed_at_last_kill = support::process::let_one_through(
                    &kill_count,
                    &confirmed_count,
                    confirmed_at_last_kill,
                    &done,
                );
                let mut child = daemon.lock().unwrap();
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kill_count.fetch_add(1, Ordering::Relaxed);
                *child = start_daemon(&config);
            }
            kill_count.load(Ordering::Relaxed)
        })
    };

    let terminals: Vec<_> = lines
        .into_iter()
        .enumerate()
        .map(|(port, mut line)| {
            let (appliance, confirmed_count, kill_count) = (
                Arc::clone(&appliance),
                Arc::clone(&confirmed_count),
                Arc::clone(&kill_count),
            );
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                let mut number = 0;
                while confirmed_count.load(Ordering::Relaxed) < TARGET_INJECTIONS
                    || kill_count.load(Ordering::Relaxed) < TARGET_KILLS
                {
                    let serial = format!("C{port}T{number:05}");
                    number += 1;
                    let mut store = appliance.key_store();
                    let mut terminal = Seen {
                        serial: serial.clone(),
                        installed: Vec::new(),
                        confirmed: None,
                    };
                    // Retry this terminal until it is injected, as a technician would.
                    for _attempt in 0..200 {
                        let injection =
                            inject(&mut line, appliance.terminal(&serial), &mut store).unwrap();
                        if let Some((index, _)) = store.installed() {
                            terminal.installed.push(index);
                        }
                        if let TerminalOutcome::Injected { key_index, smn, .. } = injection.outcome
                        {
                            terminal.confirmed = Some((key_index, smn.to_string()));
                            confirmed_count.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                    }
                    seen.push(terminal);
                    if started.elapsed() > Duration::from_secs(240) {
                        break;
                    }
                }
                seen
            })
        })
        .collect();
    let seen: Vec<Seen> = terminals
        .into_iter()
        .flat_map(|thread| thread.join().unwrap())
        .collect();
    done.store(true, Ordering::Relaxed);
    let kills = killer.join().unwrap();
    {
        let mut child = daemon.lock().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    let confirmed: Vec<&Seen> = seen
        .iter()
        .filter(|terminal| terminal.confirmed.is_some())
        .collect();
    let given_two_keys = seen
        .iter()
        .filter(|terminal| terminal.installed.iter().collect::<HashSet<_>>().len() > 1)
        .count();
    eprintln!(
        "{} injections confirmed by terminals over 4 ports, daemon killed {kills} times, {:.1?}; \
         {given_two_keys} terminals were given a second key",
        confirmed.len(),
        started.elapsed()
    );
    assert!(
        confirmed.len() >= TARGET_INJECTIONS,
        "only {} injections",
        confirmed.len()
    );
    assert!(
        kills >= TARGET_KILLS,
        "the daemon was killed only {kills} times"
    );

    // What the terminals received: no key index at two hardware serials.
    let mut receivers: HashMap<u32, HashSet<&str>> = HashMap::new();
    for terminal in &seen {
        for index in &terminal.installed {
            receivers
                .entry(*index)
                .or_default()
                .insert(&terminal.serial);
        }
    }
    for (index, serials) in &receivers {
        assert_eq!(serials.len(), 1, "key {index} reached {serials:?}");
    }
    // The database agrees: each key bound to the terminal that received it.
    let vault = appliance.vault();
    let bound: HashMap<u32, String> = vault
        .key_assignments()
        .unwrap()
        .into_iter()
        .map(|(index, serial, _)| (index, serial))
        .collect();
    for (index, serials) in &receivers {
        let serial = serials.iter().next().unwrap();
        assert_eq!(
            bound.get(index).map(String::as_str),
            Some(*serial),
            "key {index}"
        );
    }
    // Nothing lost: every terminal that saw its confirmation has its SMN row.
    let rows: HashMap<u32, (String, String)> = vault
        .smn_rows()
        .unwrap()
        .into_iter()
        .map(|row| {
            (
                row.key_index.value(),
                (row.hardware_serial.to_string(), row.smn.to_string()),
            )
        })
        .collect();
    for terminal in confirmed {
        let (index, smn) = terminal.confirmed.clone().unwrap();
        assert_eq!(
            rows.get(&index),
            Some(&(terminal.serial.clone(), smn)),
            "terminal {}",
            terminal.serial
        );
    }
}

/// A small deterministic pseudo-random sequence for the kill schedule.
fn fastrand_seed(seed: u64) -> impl FnMut() -> u64 {
    let mut random = fastrand::Rng::with_seed(seed);
    move || random.u64(..)
}
