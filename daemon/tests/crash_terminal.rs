//! The crash test with reference-terminal processes: `keymother-terminal --store` processes on four ports are killed with SIGKILL right after a delivery (and keymotherd at random moments), then run again; each resumes from its store file, and no terminal ever holds two keys.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keymother_terminal::{Line, PtyLine};
use support::Appliance;

/// Terminal processes to kill right after a delivery (their store holding the key, not yet
/// confirmed) before stopping.
const TARGET_KILLS: usize = 40;
/// Terminals to see injected before stopping.
const TARGET_INJECTED: usize = 60;
/// Times keymotherd is killed (and started again) before stopping.
const TARGET_DAEMON_KILLS: usize = 10;
/// Runs of one terminal before it is given up (its keys are still checked).
const ATTEMPTS: usize = 60;

fn terminal_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_keymotherd")).with_file_name("keymother-terminal");
    assert!(
        path.exists(),
        "build the reference terminal first (cargo build -p keymother-terminal): {} is missing",
        path.display()
    );
    path
}

fn start_daemon(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_keymotherd"))
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Carries bytes both ways between the daemon's pseudo-terminal and the one a terminal
/// process opens (by its link), as a serial cable would, until `done`.
fn bridge(mut daemon_side: PtyLine, mut terminal_side: PtyLine, done: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        let tick = Duration::from_millis(1);
        while !done.load(Ordering::Relaxed) {
            let count = daemon_side.read_within(&mut buffer, tick).unwrap_or(0);
            if count > 0 {
                let _ = terminal_side.write_all(&buffer[..count]);
            }
            let count = terminal_side.read_within(&mut buffer, tick).unwrap_or(0);
            if count > 0 {
                let _ = daemon_side.write_all(&buffer[..count]);
            }
        }
    });
}

/// Whether the store file holds a master key not yet confirmed (a delivery was installed).
fn holds_unconfirmed_key(store: &Path) -> bool {
    std::fs::read_to_string(store)
        .map(|text| {
            text.lines()
                .any(|line| line.starts_with("master ") && line.ends_with(" unconfirmed"))
        })
        .unwrap_or(false)
}

/// One run of `keymother-terminal --store`; with `kill_after_delivery`, it is killed the
/// moment its store holds a delivered key that is not confirmed. Returns (injected, killed).
fn run_terminal(
    binary: &Path,
    link: &Path,
    serial: &str,
    store: &Path,
    transport_key: &str,
    kill_after_delivery: bool,
) -> (bool, bool) {
    let mut child = Command::new(binary)
        .arg("--port")
        .arg(link)
        .args([
            "--serial",
            serial,
            "--ttk-alg",
            "AES-256",
            "--timeout-ms",
            "300",
        ])
        .arg("--store")
        .arg(store)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{transport_key}").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status.success(), false);
        }
        if kill_after_delivery && holds_unconfirmed_key(store) {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            return (false, true);
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            return (false, false);
        }
        std::thread::sleep(Duration::from_micros(300));
    }
}

/// What one port's terminals saw: serial to (its store file, whether it was injected).
type Seen = Vec<(String, PathBuf, bool)>;

struct Counters {
    kills: AtomicUsize,
    injected: AtomicUsize,
    daemon_kills: Arc<AtomicUsize>,
}

impl Counters {
    fn targets_met(&self) -> bool {
        self.kills.load(Ordering::Relaxed) >= TARGET_KILLS
            && self.injected.load(Ordering::Relaxed) >= TARGET_INJECTED
            && self.daemon_kills.load(Ordering::Relaxed) >= TARGET_DAEMON_KILLS
    }
}

fn run_port(
    port: usize,
    appliance: &Appliance,
    link: &Path,
    counters: &Counters,
    started: Instant,
) -> Seen {
    let binary = terminal_binary();
    let stores = appliance.directory.path().join("stores");
    std::fs::create_dir_all(&stores).unwrap();
    let mut random = fastrand::Rng::with_seed(17 + port as u64);
    let mut seen = Vec::new();
    let mut number = 0;
    while !counters.targets_met() && started.elapsed() < Duration::from_secs(240) {
        let serial = format!("P{port}T{number:05}");
        number += 1;
        let store = stores.join(format!("{serial}.store"));
        let mut injected = false;
        for _attempt in 0..ATTEMPTS {
            // Half the runs are killed once their key is delivered; the rest run to the end.
            let kill = random.bool();
            let (done, killed) = run_terminal(
                &binary,
                link,
                &serial,
                &store,
                &appliance.transport_key_hex,
                kill,
            );
            if killed {
                counters.kills.fetch_add(1, Ordering::Relaxed);
            }
            if done {
                injected = true;
                counters.injected.fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
        seen.push((serial, store, injected));
    }
    seen
}

#[test]
fn terminals_killed_after_a_delivery_resume_from_their_store_and_none_holds_two_keys() {
    let appliance = Arc::new(Appliance::provisioned(2000));
    let (daemon_sides, _) = appliance.ports(4);
    let config = appliance.config_path();
    let done = Arc::new(AtomicBool::new(false));
    let mut links = Vec::new();
    for (port, daemon_side) in daemon_sides.into_iter().enumerate() {
        let link = appliance.directory.path().join(format!("terminal-{port}"));
        let terminal_side = PtyLine::open_pair(&link).unwrap();
        bridge(daemon_side, terminal_side, Arc::clone(&done));
        links.push(link);
    }
    let daemon = Arc::new(Mutex::new(start_daemon(&config)));
    let daemon_kills = Arc::new(AtomicUsize::new(0));
    // keymotherd is killed too, now and then, as in the crash test.
    let killer = {
        let (daemon, done, config, daemon_kills) = (
            Arc::clone(&daemon),
            Arc::clone(&done),
            config.clone(),
            Arc::clone(&daemon_kills),
        );
        std::thread::spawn(move || {
            let mut random = fastrand::Rng::with_seed(40);
            while !done.load(Ordering::Relaxed) {
                // Anywhere from mid-start-up to a few injections in.
                std::thread::sleep(Duration::from_millis(20 + random.u64(..300)));
                let mut child = daemon.lock().unwrap();
                child.kill().unwrap();
                child.wait().unwrap();
                daemon_kills.fetch_add(1, Ordering::Relaxed);
                *child = start_daemon(&config);
            }
        })
    };
    let counters = Arc::new(Counters {
        kills: AtomicUsize::new(0),
        injected: AtomicUsize::new(0),
        daemon_kills: Arc::clone(&daemon_kills),
    });
    let started = Instant::now();
    let ports: Vec<_> = links
        .into_iter()
        .enumerate()
        .map(|(port, link)| {
            let (appliance, counters) = (Arc::clone(&appliance), Arc::clone(&counters));
            std::thread::spawn(move || run_port(port, &appliance, &link, &counters, started))
        })
        .collect();
    let seen: Seen = ports
        .into_iter()
        .flat_map(|port| port.join().unwrap())
        .collect();
    done.store(true, Ordering::Relaxed);
    killer.join().unwrap();
    {
        let mut child = daemon.lock().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    // Ground truth: the vault's keys per terminal.
    let vault = appliance.vault();
    let mut keys: HashMap<String, Vec<u32>> = HashMap::new();
    for (index, serial, _) in vault.key_assignments().unwrap() {
        keys.entry(serial).or_default().push(index);
    }
    let with_two_keys = keys.values().filter(|indexes| indexes.len() > 1).count();
    let kills = counters.kills.load(Ordering::Relaxed);
    let injected = seen.iter().filter(|(_, _, injected)| *injected).count();
    eprintln!(
        "{injected} of {} terminals injected by keymother-terminal processes over 4 ports, {kills} processes killed after a delivery, keymotherd killed {} times, {:.1?}; {with_two_keys} terminals with two keys",
        seen.len(),
        daemon_kills.load(Ordering::Relaxed),
        started.elapsed()
    );
    assert!(kills >= TARGET_KILLS, "only {kills} kills after a delivery");
    assert!(counters.targets_met(), "keymotherd was killed too seldom");
    assert!(injected >= TARGET_INJECTED, "only {injected} injected");
    // A terminal resumes from its store: none is left refused (ALREADY_INJECTED) or stuck.
    let stuck: Vec<&String> = seen
        .iter()
        .filter(|(_, _, injected)| !injected)
        .map(|(serial, _, _)| serial)
        .collect();
    assert!(stuck.is_empty(), "never injected: {stuck:?}");
    assert_eq!(with_two_keys, 0, "terminals with two keys: {keys:?}");
    // Every terminal that finished holds, in its store, the one key the vault bound to it,
    // confirmed, with its SMN row.
    let rows: HashMap<u32, String> = vault
        .smn_rows()
        .unwrap()
        .into_iter()
        .map(|row| (row.key_index.value(), row.hardware_serial.to_string()))
        .collect();
    for (serial, store, injected) in &seen {
        if !injected {
            continue;
        }
        let text = std::fs::read_to_string(store).unwrap();
        let master = text
            .lines()
            .find(|line| line.starts_with("master "))
            .unwrap_or_else(|| panic!("{serial}: no master key in its store"));
        assert!(master.ends_with(" confirmed"), "{serial}: {master:.24}");
        let index: u32 = master[7..15].parse().unwrap();
        assert_eq!(keys[serial], [index], "{serial}");
        assert_eq!(rows.get(&index), Some(serial), "{serial}");
    }
}
