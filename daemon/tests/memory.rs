//! keymotherd's memory stays locked (mlockall) and is locked as it is touched (MCL_ONFAULT): its code and its threads' stacks are not made resident in full, nor its executable read whole.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use support::Appliance;
use support::process::{own_group, settings_text, start_process, stop};

/// The number of KiB after `name` in /proc/PID/status.
fn status_kib(pid: u32, name: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with(name))
        .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"));
    line[name.len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Whether mlockall can succeed for the daemon this test starts: no finite locked-memory
/// limit, or root with CAP_IPC_LOCK (which lifts it).
fn can_lock() -> bool {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let unlimited = limits
        .lines()
        .find(|line| line.starts_with("Max locked memory"))
        .is_some_and(|line| line.contains("unlimited"));
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let effective = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .map(|hex| u64::from_str_radix(hex.trim(), 16).unwrap())
        .unwrap();
    unlimited || (nix::unistd::geteuid().is_root() && effective & (1 << 14) != 0)
}

/// One mapping of /proc/PID/smaps: its header line, and its Size, Rss and Locked in KiB and
/// its VmFlags.
struct Mapping {
    header: String,
    size: u64,
    rss: u64,
    locked: u64,
    flags: Vec<String>,
}

fn mappings(pid: u32) -> Vec<Mapping> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap();
    let mut mappings: Vec<Mapping> = Vec::new();
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            mappings.push(Mapping {
                header: line.to_owned(),
                size: 0,
                rss: 0,
                locked: 0,
                flags: Vec::new(),
            });
            continue;
        }
        let mapping = mappings.last_mut().unwrap();
        let kib = || {
            line.split_whitespace()
                .nth(1)
                .unwrap()
                .parse::<u64>()
                .unwrap()
        };
        match first {
            "Size:" => mapping.size = kib(),
            "Rss:" => mapping.rss = kib(),
            "Locked:" => mapping.locked = kib(),
            "VmFlags:" => {
                mapping.flags = line.split_whitespace().skip(1).map(str::to_owned).collect()
            }
            _ => {}
        }
    }
    mappings
}

/// Started on a provisioned vault and ready, keymotherd has every mapping locked (mlockall
/// applies, MCL_FUTURE included: the heap and the threads' stacks made after it), every page
/// of its own that is resident is locked, and yet its executable's code is not resident in
/// full: pages are locked as they are touched, not all faulted in at once (MCL_ONFAULT).
#[test]
fn memory_is_locked_as_it_is_touched() {
    if !can_lock() {
        eprintln!(
            "skipped: a finite locked-memory limit without CAP_IPC_LOCK; mlockall cannot apply"
        );
        return;
    }
    let appliance = Appliance::provisioned(100);
    let (text, _line) = settings_text(&appliance, &own_group());
    let (child, log) = start_process(&appliance, &text, &[]);
    let pid = child.id();
    let locked = status_kib(pid, "VmLck:");
    let resident = status_kib(pid, "VmRSS:");
    let found = mappings(pid);
    let executable = std::fs::canonicalize(env!("CARGO_BIN_EXE_keymotherd")).unwrap();
    stop(child);
    let said = std::fs::read_to_string(log).unwrap();
    assert!(!said.contains("could not lock memory"), "{said}");
    assert!(locked > 0, "VmLck is 0 (VmRSS {resident} kB)");

    // Every mapping is locked, those made after mlockall (heap, thread stacks) too.
    let unlocked: Vec<&str> = found
        .iter()
        .filter(|mapping| !mapping.flags.iter().any(|flag| flag == "lo"))
        // The kernel's own special mappings ([vdso], [vvar], [vsyscall]) cannot be locked.
        .filter(|mapping| {
            !mapping
                .header
                .split_whitespace()
                .nth(5)
                .is_some_and(|name| name.starts_with("[v"))
        })
        .map(|mapping| mapping.header.as_str())
        .collect();
    assert!(unlocked.is_empty(), "mappings not locked: {unlocked:#?}");
    // Private anonymous memory (heap, stacks, allocator arenas): all of it that is resident is locked.
    for mapping in found.iter().filter(|mapping| {
        mapping.header.split_whitespace().count() == 5 || mapping.header.ends_with("[heap]")
    }) {
        assert_eq!(
            mapping.locked, mapping.rss,
            "resident but not locked: {}",
            mapping.header
        );
    }
    // The executable's code is resident only where it ran.
    let code: Vec<&Mapping> = found
        .iter()
        .filter(|mapping| {
            mapping.header.split_whitespace().nth(1) == Some("r-xp")
                && mapping.header.ends_with(executable.to_str().unwrap())
        })
        .collect();
    assert!(
        !code.is_empty(),
        "no code mapping of {}",
        executable.display()
    );
    let size: u64 = code.iter().map(|mapping| mapping.size).sum();
    let rss: u64 = code.iter().map(|mapping| mapping.rss).sum();
    assert!(
        rss < size,
        "the whole executable's code is resident ({rss} of {size} kB): faulted in at mlockall"
    );
}

/// keymotherd hashes its own executable at start (the `software` audit row) reading it in
/// pieces: its peak resident memory stays below the executable's size, which it would exceed
/// if it read the file whole.
#[test]
fn the_executable_is_hashed_without_holding_it_whole() {
    let appliance = Appliance::provisioned(10);
    let (text, _line) = settings_text(&appliance, &own_group());
    let (child, _log) = start_process(&appliance, &text, &[]);
    let peak = status_kib(child.id(), "VmHWM:");
    stop(child);
    let executable = std::fs::metadata(env!("CARGO_BIN_EXE_keymotherd"))
        .unwrap()
        .len()
        / 1024;
    assert!(
        peak < executable,
        "peak resident {peak} kB, executable {executable} kB: read whole"
    );
}
