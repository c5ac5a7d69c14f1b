//! Sessions over noisy lines that drop, flip and insert bytes: every run ends injected or cleanly Failed, no key ever goes to two terminals, and no DUKPT device ID either.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use keymother_protocol::{
    HardwareSerial, SessionEvent, TerminalEvent, TerminalOutcome, TerminalSession,
};

/// Totals over many runs, to show the noise was felt and the link coped.
#[derive(Debug, Default)]
struct Tally {
    sessions: u32,
    injected: u32,
    failed: u32,
    bytes_damaged: u64,
    frames_rejected: u64,
    naks: u64,
    retransmissions: u64,
}

/// One port, one vault, three terminals plugged in one after the other; a terminal that failed
/// is plugged in again (up to three attempts). Returns the tally of this run.
fn run_port(seed: u64, noise: Noise, tally: &mut Tally) {
    let mut bench = Bench::with_config(appliance_config(), FakeVault::with_keys(100..104), seed);
    bench.to_appliance.noise = Some(noise);
    bench.to_terminal.noise = Some(noise);
    for name in ["T1", "T2", "T3"] {
        let mut first_key = None;
        for _attempt in 0..3 {
            let mut terminal = TerminalSession::new(terminal_config(name));
            let outcome = bench.run(&mut terminal);
            tally.sessions += 1;
            assert!(
                bench.installs.len() <= 1,
                "seed {seed}: {name} installed {:?} in one session",
                bench.installs
            );
            // The same terminal asking again gets the same key.
            if let Some((index, _)) = bench.vault.key_of(&serial(name)) {
                assert_eq!(
                    *first_key.get_or_insert(index),
                    index,
                    "seed {seed}: {name} changed key"
                );
            }
            match outcome {
                TerminalOutcome::Injected {
                    key_index,
                    smn,
                    kcv,
                } => {
                    tally.injected += 1;
                    assert_eq!(kcv, fake_kcv(key_index));
                    assert_eq!(smn.as_str(), format!("{name}{key_index:08}"));
                    assert_eq!(
                        bench.vault.keys[&key_index],
                        KeyState::Used {
                            serial: serial(name),
                            smn
                        },
                        "seed {seed}: the vault agrees with the terminal"
                    );
                    break;
                }
                TerminalOutcome::Failed { reason } => {
                    tally.failed += 1;
                    // Noise can only exhaust the retries; it never makes the appliance refuse.
                    assert!(
                        reason.starts_with("no valid response to"),
                        "seed {seed}: {name} failed: {reason}"
                    );
                    if std::env::var("SHOW_FAILURES").is_ok() {
                        println!("seed {seed} {name}: {reason}");
                    }
                }
                other => panic!("seed {seed}: a tr31 terminal ended {other:?}"),
            }
            // Unplugged: what is still on the line arrives or is lost, the session idles out.
            bench.settle(keymother_protocol::DEFAULT_IDLE_TIMEOUT + ms(100));
        }
        bench.settle(ms(100));
    }
    assert_eq!(
        bench.errors_sent(),
        [],
        "seed {seed}: noise led to an ERROR"
    );
    // The invariant: each key reserved for at most one terminal (FakeVault::reserve asserts it
    // as it goes); and every key the vault counts as used belongs to one of the three.
    let holders: Vec<_> = bench.vault.reservations.values().collect();
    let mut unique = holders.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        holders.len(),
        unique.len(),
        "seed {seed}: a terminal holds two keys"
    );
    tally.add_line_counts(&bench);
}

/// One port offering the three-key profile (a master key, an AES and a TDES DUKPT slot);
/// three terminals plugged in one after the other, each plugged in again with what its key
/// store holds (up to four attempts). Returns the tally of this run.
fn run_profile_port(seed: u64, noise: Noise, tally: &mut Tally) {
    let config = profile_appliance_config(three_key_profile());
    let mut bench = Bench::with_config(config, FakeVault::with_keys(100..104), seed);
    bench.dukpt = dukpt_vault(8);
    bench.to_appliance.noise = Some(noise);
    bench.to_terminal.noise = Some(noise);
    for name in ["T1", "T2", "T3"] {
        bench.forget_held();
        for _attempt in 0..4 {
            let config = bench.with_held(profile_terminal_config(name));
            let mut terminal = TerminalSession::new(config);
            let outcome = bench.run(&mut terminal);
            tally.sessions += 1;
            let mut labels: Vec<&String> = bench
                .dukpt_installs
                .iter()
                .map(|(label, _)| label)
                .collect();
            let installs = labels.len();
            labels.dedup();
            assert_eq!(
                labels.len(),
                installs,
                "seed {seed}: {name} installed a slot twice"
            );
            match outcome {
                TerminalOutcome::ProfileInjected { master, dukpt, .. } => {
                    tally.injected += 1;
                    let (key_index, smn) = master.expect("the profile has a master key");
                    assert_eq!(
                        bench.vault.keys[&key_index],
                        KeyState::Used {
                            serial: serial(name),
                            smn
                        },
                        "seed {seed}: the vault agrees with {name} on the master key"
                    );
                    let recorded = bench.dukpt.keys_of(&serial(name));
                    assert_eq!(
                        dukpt
                            .into_iter()
                            .collect::<std::collections::BTreeMap<_, _>>(),
                        recorded,
                        "seed {seed}: the vault agrees with {name} on the KSNs"
                    );
                    for ksn in recorded.values() {
                        assert_eq!(bench.dukpt.state(ksn), Some(DukptState::Used));
                    }
                    break;
                }
                TerminalOutcome::Failed { reason } => {
                    tally.failed += 1;
                    assert!(
                        reason.starts_with("no valid response to"),
                        "seed {seed}: {name} failed: {reason}"
                    );
                }
                other => panic!("seed {seed}: {name} ended {other:?}"),
            }
            bench.settle(keymother_protocol::DEFAULT_IDLE_TIMEOUT + ms(100));
        }
        bench.settle(ms(100));
    }
    assert_eq!(
        bench.errors_sent(),
        [],
        "seed {seed}: noise led to an ERROR"
    );
    // The invariants: a device ID (a KSN) goes to one terminal (FakeDukptVault::reserve
    // asserts it as it goes), and no terminal has two initial keys of one BDK.
    let mut pairs: Vec<(HardwareSerial, String)> = bench
        .dukpt
        .keys
        .values()
        .map(|record| (record.serial.clone(), record.label.clone()))
        .collect();
    let keys = pairs.len();
    pairs.sort();
    pairs.dedup();
    assert_eq!(
        pairs.len(),
        keys,
        "seed {seed}: a terminal has two keys of one BDK"
    );
    tally.add_line_counts(&bench);
}

impl Tally {
    /// What the lines and both sessions counted on `bench`.
    fn add_line_counts(&mut self, bench: &Bench) {
        let tally = self;
        tally.bytes_damaged += bench.to_appliance.bytes_damaged + bench.to_terminal.bytes_damaged;
        tally.frames_rejected += bench
            .appliance_events
            .iter()
            .filter(|event| matches!(event, SessionEvent::FrameRejected(_)))
            .count() as u64;
        tally.naks += bench
            .appliance_events
            .iter()
            .filter(|event| matches!(event, SessionEvent::NakSent))
            .count() as u64;
        tally.retransmissions += bench
            .terminal_events
            .iter()
            .filter(|event| matches!(event, TerminalEvent::Retransmitted { .. }))
            .count() as u64;
    }
}

#[test]
fn moderate_noise_mostly_injects_and_never_double_dispenses() {
    let noise = Noise {
        drop_ppm: 1_000,
        flip_ppm: 1_000,
        insert_ppm: 1_000,
    };
    let mut tally = Tally::default();
    for seed in 0..300 {
        run_port(seed, noise, &mut tally);
    }
    println!("{tally:?}");
    assert!(tally.bytes_damaged > 1_000, "{tally:?}");
    assert!(tally.frames_rejected > 100, "{tally:?}");
    assert!(tally.naks > 50, "{tally:?}");
    assert!(tally.retransmissions > 50, "{tally:?}");
    // With retries, nearly every terminal ends up injected.
    assert!(tally.injected >= 880, "{tally:?}");
}

#[test]
fn heavy_noise_ends_cleanly_every_time() {
    let noise = Noise {
        drop_ppm: 4_000,
        flip_ppm: 4_000,
        insert_ppm: 4_000,
    };
    let mut tally = Tally::default();
    for seed in 1_000..1_150 {
        run_port(seed, noise, &mut tally);
    }
    println!("{tally:?}");
    assert!(
        tally.failed > 50,
        "heavy noise should defeat many sessions: {tally:?}"
    );
    assert!(tally.injected > 100, "{tally:?}");
}

#[test]
fn profiles_over_noise_never_share_a_device_id_and_end_cleanly() {
    let moderate = Noise {
        drop_ppm: 1_000,
        flip_ppm: 1_000,
        insert_ppm: 1_000,
    };
    let mut tally = Tally::default();
    for seed in 2_000..2_150 {
        run_profile_port(seed, moderate, &mut tally);
    }
    println!("moderate: {tally:?}");
    assert!(tally.retransmissions > 50, "{tally:?}");
    assert!(tally.injected >= 430, "{tally:?}");
    let heavy = Noise {
        drop_ppm: 4_000,
        flip_ppm: 4_000,
        insert_ppm: 4_000,
    };
    let mut tally = Tally::default();
    for seed in 3_000..3_060 {
        run_profile_port(seed, heavy, &mut tally);
    }
    println!("heavy: {tally:?}");
    assert!(
        tally.failed > 20,
        "heavy noise should defeat many sessions: {tally:?}"
    );
    assert!(tally.injected > 60, "{tally:?}");
}
