//! The crash test in profile mode: keymotherd is killed with SIGKILL at random moments while terminals on four ports take a device profile (a master key and two DUKPT initial keys), and restarted each time; the terminals keep their key stores, as PIN pads do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keymother_terminal::{PtyLine, inject};
use support::Appliance;
use support::profiles::{
    PINPAD_SLOTS, ProfileTerminal, check_profiles, load_bdks, profile_ports, profile_terminal,
};

/// Profiles to see injected before stopping: three keys each, so as many keys confirmed as
/// the master-key crash test's 300 injections.
const TARGET_PROFILES: usize = 100;
/// Kills to reach before stopping, however quickly the injections went.
const TARGET_KILLS: usize = 40;
/// Sessions a terminal tries before it is given up (its keys are still checked).
const ATTEMPTS: usize = 200;

fn start_daemon(config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_keymotherd"))
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Kills the daemon at random moments (5 to 155 ms apart) and starts it again, until `done`;
/// returns how many times it was killed. `progress` counts injected profiles.
fn killer(
    daemon: Arc<Mutex<Child>>,
    config: std::path::PathBuf,
    done: Arc<AtomicBool>,
    kills: Arc<AtomicUsize>,
    progress: Arc<AtomicUsize>,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut random = fastrand::Rng::with_seed(15);
        let mut progress_at_last_kill = 0;
        while !done.load(Ordering::Relaxed) {
            // Anywhere from mid-start-up to a profile or two in.
            std::thread::sleep(Duration::from_millis(5 + random.u64(..150)));
            progress_at_last_kill =
                support::process::let_one_through(&kills, &progress, progress_at_last_kill, &done);
            let mut child = daemon.lock().unwrap();
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            kills.fetch_add(1, Ordering::Relaxed);
            *child = start_daemon(&config);
        }
        kills.load(Ordering::Relaxed)
    })
}

/// Terminal after terminal on one port, each retried until its profile is injected, until
/// both targets are met (or four minutes have passed).
fn run_port(
    port: usize,
    mut line: PtyLine,
    appliance: &Appliance,
    injected: &AtomicUsize,
    kills: &AtomicUsize,
    started: Instant,
) -> Vec<ProfileTerminal> {
    let mut seen = Vec::new();
    let mut number = 0;
    while injected.load(Ordering::Relaxed) < TARGET_PROFILES
        || kills.load(Ordering::Relaxed) < TARGET_KILLS
    {
        let serial = format!("K{port}T{number:05}");
        number += 1;
        // One PIN pad: its key store outlives every session (and the daemon's deaths), so it
        // confirms what it holds rather than asking again.
        let mut store = appliance.key_store();
        let mut terminal = ProfileTerminal::new(&serial);
        for _attempt in 0..ATTEMPTS {
            let config = profile_terminal(appliance, &serial);
            let outcome = inject(&mut line, config, &mut store).unwrap().outcome;
            if terminal.after_session(&outcome, &store) {
                injected.fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
        seen.push(terminal);
        if started.elapsed() > Duration::from_secs(240) {
            break;
        }
    }
    seen
}

#[test]
fn killing_the_daemon_during_profiles_never_shares_a_device_id_and_loses_no_injection() {
    let appliance = Arc::new(Appliance::provisioned(1000));
    load_bdks(&appliance, 1000);
    let (lines, _) = profile_ports(&appliance, 4, PINPAD_SLOTS);
    let config = appliance.config_path();
    let daemon = Arc::new(Mutex::new(start_daemon(&config)));
    let done = Arc::new(AtomicBool::new(false));
    let injected_count = Arc::new(AtomicUsize::new(0));
    let kill_count = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let killer = killer(
        Arc::clone(&daemon),
        config,
        Arc::clone(&done),
        Arc::clone(&kill_count),
        Arc::clone(&injected_count),
    );

    let ports: Vec<_> = lines
        .into_iter()
        .enumerate()
        .map(|(port, line)| {
            let (appliance, injected, kills) = (
                Arc::clone(&appliance),
                Arc::clone(&injected_count),
                Arc::clone(&kill_count),
            );
            std::thread::spawn(move || run_port(port, line, &appliance, &injected, &kills, started))
        })
        .collect();
    let terminals: Vec<ProfileTerminal> = ports
        .into_iter()
        .flat_map(|port| port.join().unwrap())
        .collect();
    done.store(true, Ordering::Relaxed);
    let kills = killer.join().unwrap();
    {
        let mut child = daemon.lock().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    let tally = check_profiles(&appliance, &terminals);
    let unfinished = terminals.len() - tally.injected;
    eprintln!(
        "{} profiles confirmed by terminals over 4 ports in {} sessions ({} failed while the \
         terminal held a DUKPT key; {} registry rows, {} allocations, {unfinished} terminals \
         unfinished), daemon killed {kills} times, {:.1?}",
        tally.injected,
        tally.sessions,
        tally.failed_holding_dukpt,
        tally.registry_rows,
        tally.allocations,
        started.elapsed()
    );
    assert!(
        tally.injected >= TARGET_PROFILES,
        "only {} profiles",
        tally.injected
    );
    assert!(
        kills >= TARGET_KILLS,
        "the daemon was killed only {kills} times"
    );
    // The kills hit profiles midway: terminals holding initial keys had to resume them.
    assert!(
        tally.failed_holding_dukpt > 0,
        "no session was cut off while its terminal held a DUKPT key"
    );
    // Each terminal was retried until its profile was injected.
    assert_eq!(unfinished, 0, "terminals that never finished");
}
