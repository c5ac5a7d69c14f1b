//! The `keymother` process before it does anything: what it holds (custodian components, keys typed for the calculator, operator keys and passphrases) stays out of core dumps and other processes' reach, and out of swap where that is safe; and a reader that goes away (`keymother status | head -1`) ends it quietly.
//!
//! Nothing here fails the command: each step is best effort, silently, because an ordinary
//! user may not be allowed some of it and the command must still run.

use std::os::fd::{AsFd, BorrowedFd};
use std::panic::PanicHookInfo;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::mman::{MlockAllFlags, mlockall};
use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit, setrlimit};

/// The exit status of a command whose output lost its reader: 128 + SIGPIPE, what a shell
/// reports for a process SIGPIPE ended.
const READER_GONE: i32 = 141;

/// Call first thing in `main`, before any thread is started or any secret is read.
pub fn harden() {
    end_quietly_when_the_reader_is_gone();
    // No core file (the hard limit too, so nothing later raises it again), and not dumpable:
    // no core dump whatever the limit, no ptrace by the user's other processes, and
    // /proc/PID/mem, environ and the like become root's.
    let _ = setrlimit(Resource::RLIMIT_CORE, 0, 0);
    let _ = nix::sys::prctl::set_dumpable(false);
    lock_memory();
}

/// A print to standard output or error whose reader has gone (a closed pipe, a closed
/// socket) ends the command with status 141 and nothing said, as SIGPIPE's default action
/// would. Rust ignores SIGPIPE, so such a write fails with EPIPE and `println!` panics
/// ("failed printing to stdout"): a panic message, and with `panic = "abort"` an abort.
///
/// Restoring SIGPIPE's default action would do the same for standard output, but for every
/// other write too: a daemon that refuses an upload and closes before it has read the whole
/// file would kill this process in mid-write, silently, where the client is built to get
/// EPIPE and then read the daemon's answer saying why (`client::upload`). Only socket writes
/// made with MSG_NOSIGNAL are spared: std's `UnixStream` has used it only since 2025
/// (rust-lang/rust#140005, newer than the workspace's rust-version), and `std::io::copy` from
/// a file into a socket (splice, sendfile) never does. So SIGPIPE stays ignored, and only a
/// failed print to a stream whose reader is gone is made quiet; any other panic, and a print
/// that failed otherwise (a full disk), is reported as before. No `unsafe` is needed.
fn end_quietly_when_the_reader_is_gone() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let gone = match failed_print(info) {
            Some(Stream::Stdout) => reader_gone(std::io::stdout().as_fd()),
            Some(Stream::Stderr) => reader_gone(std::io::stderr().as_fd()),
            None => false,
        };
        if gone {
            std::process::exit(READER_GONE);
        }
        report(info);
    }));
}

enum Stream {
    Stdout,
    Stderr,
}

/// Which stream a panic of `print!`, `println!`, `eprint!` or `eprintln!` failed to write.
fn failed_print(info: &PanicHookInfo<'_>) -> Option<Stream> {
    let payload = info.payload();
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())?;
    if message.starts_with("failed printing to stdout") {
        Some(Stream::Stdout)
    } else if message.starts_with("failed printing to stderr") {
        Some(Stream::Stderr)
    } else {
        None
    }
}

/// Whether nobody reads `fd` any more: a pipe without readers polls POLLERR, a stream socket
/// whose peer closed POLLHUP. A terminal, a file or /dev/null never does.
fn reader_gone(fd: BorrowedFd<'_>) -> bool {
    let mut fds = [PollFd::new(fd, PollFlags::empty())];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(1))
        && fds[0]
            .revents()
            .is_some_and(|events| events.intersects(PollFlags::POLLERR | PollFlags::POLLHUP))
}

/// Locks the process's memory against swapping, only where the lock cannot backfire.
///
/// `mlockall(MCL_CURRENT | MCL_FUTURE)` as the daemon does, but only when RLIMIT_MEMLOCK is
/// unlimited or the process has CAP_IPC_LOCK (root, ordinarily), which lifts the limit.
/// Otherwise nothing is locked:
/// - with MCL_FUTURE under a finite limit (an ordinary user's is 8 MiB, 64 KiB on older
///   kernels), every later mapping is locked too and counts against it, and once it is
///   reached `mmap` and `brk` fail: a large allocation fails, or aborts the process. Reading
///   an encrypted operator key alone takes 16 MiB (scrypt), and each thread's stack counts;
/// - MCL_CURRENT alone would lock only what is mapped now (the program, an empty heap), not
///   the buffers secrets are read into later, and would use up the limit for nothing.
///
/// Secrets are short-lived and zeroized when dropped either way; swap is the risk left for
/// an unprivileged user, as the daemon (locked, under the unit's LimitMEMLOCK=infinity)
/// holds the keys that matter.
fn lock_memory() {
    let unlimited =
        matches!(getrlimit(Resource::RLIMIT_MEMLOCK), Ok((soft, _)) if soft == RLIM_INFINITY);
    if unlimited || has_cap_ipc_lock() {
        let _ = mlockall(MlockAllFlags::MCL_CURRENT | MlockAllFlags::MCL_FUTURE);
    }
}

/// CAP_IPC_LOCK in the effective set (`CapEff:` in /proc/self/status).
fn has_cap_ipc_lock() -> bool {
    const CAP_IPC_LOCK: u32 = 14;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .is_some_and(|effective| effective & (1 << CAP_IPC_LOCK) != 0)
}
