//! The `keymother` process itself: output whose reader has gone ends it quietly (`keymother status | head -1`); it is not dumpable, has no core file limit, and locks its memory only where that cannot make it fail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, ChildStderr, Command, ExitStatus, Output, Stdio};

const TR31_B: &str =
    "B0080P0TE00E000094B420079CC80BA3461F86FE26EFC4A3B8E4FA4C5F5341176EED7B727B8A248E";
const TR31_B_KBPK: &str = "DD7515F2BFC17F85CE48F3CA25CB21F6";
const SIGPIPE: i32 = 13;

fn keymother() -> Command {
    Command::new(env!("CARGO_BIN_EXE_keymother"))
}

/// A write end whose reader is already closed: the first write fails with EPIPE.
fn reader_gone() -> std::io::PipeWriter {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    writer
}

/// Ended quietly, as SIGPIPE's default action would end it: status 0 or 141, or SIGPIPE.
fn assert_quiet_end(status: ExitStatus, stderr: &str, what: &str) {
    assert!(
        status.success() || status.code() == Some(141) || status.signal() == Some(SIGPIPE),
        "{what}: {status}, stderr {stderr:?}"
    );
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    assert!(!stderr.contains("failed printing"), "{what}: {stderr}");
}

/// Commands that need no daemon and print, each several lines or one.
fn printing_commands(directory: &Path) -> Vec<Vec<String>> {
    let owned = |arguments: &[&str]| arguments.iter().map(|s| (*s).to_owned()).collect();
    vec![
        owned(&["--help"]),
        owned(&["--version"]),
        owned(&["kcv", "--alg", "tdes", "0123456789ABCDEFFEDCBA9876543210"]),
        owned(&["tr31", "unwrap", "--kbpk", TR31_B_KBPK, TR31_B]),
        owned(&["display-preview", directory.to_str().unwrap()]),
    ]
}

#[test]
fn output_whose_reader_has_gone_ends_the_command_quietly() {
    let directory = tempfile::tempdir().unwrap();
    for arguments in printing_commands(directory.path()) {
        // It prints when someone reads...
        let read = keymother()
            .args(&arguments)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(read.status.success(), "{arguments:?}: {read:?}");
        assert!(!read.stdout.is_empty(), "{arguments:?} prints nothing");
        // ...and ends quietly when nobody does any more.
        let output = keymother()
            .args(&arguments)
            .stdin(Stdio::null())
            .stdout(reader_gone())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_quiet_end(output.status, &stderr, &format!("{arguments:?}"));
        assert_eq!(stderr, "", "{arguments:?}");
    }
}

/// An error message whose reader has gone (`keymother ... 2>&1 | head -1`) ends it quietly too.
#[test]
fn an_error_whose_reader_has_gone_ends_the_command_quietly() {
    let output = keymother()
        .args(["kcv", "--alg", "tdes", "0123456789ABCDEFFEDCBA987654321G"])
        .stdin(Stdio::null())
        .stdout(reader_gone())
        .stderr(reader_gone())
        .status()
        .unwrap();
    assert_quiet_end(output, "", "kcv with a bad key");
    assert!(!output.success(), "a quiet end is not a success: {output}");
}

/// Output that fails for another reason than a lost reader (a full disk) is still reported.
#[test]
fn output_that_fails_otherwise_is_still_reported() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let output = keymother()
        .args(["kcv", "--alg", "tdes", "0123456789ABCDEFFEDCBA9876543210"])
        .stdin(Stdio::null())
        .stdout(full)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert_ne!(output.status.code(), Some(141), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
}

/// SIGPIPE stays ignored: a daemon that hangs up while a key file is still being sent makes
/// the write fail (EPIPE), and the command says so, where SIGPIPE's default action would end
/// it silently mid-write. (With a std whose `UnixStream` writes pass MSG_NOSIGNAL, as 1.95's
/// do, this holds either way; it guards what the client's upload relies on.)
#[test]
fn a_control_socket_that_hangs_up_mid_upload_is_reported() {
    use std::io::BufRead;
    let directory = tempfile::tempdir().unwrap();
    let socket = directory.path().join("control.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    // Far more than a socket buffer holds: the sending is still going on when it hangs up.
    let file = directory.path().join("batch.keys");
    std::fs::write(&file, "0".repeat(63).repeat(1 << 17).as_bytes()).unwrap();
    let daemon = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut request = String::new();
        std::io::BufReader::new(&stream)
            .read_line(&mut request)
            .unwrap();
        drop(stream);
        request
    });
    let output = keymother()
        .arg("--socket")
        .arg(&socket)
        .arg("import")
        .arg(&file)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!daemon.join().unwrap().is_empty(), "no request line");
    assert_ne!(output.status.signal(), Some(SIGPIPE), "killed by SIGPIPE");
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("keymother: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// The effective user ID of this test (its /proc/self/status `Uid:` line's second field).
fn euid() -> u32 {
    status_field(
        &std::fs::read_to_string("/proc/self/status").unwrap(),
        "Uid:",
    )
    .split_whitespace()
    .nth(1)
    .unwrap()
    .parse()
    .unwrap()
}

fn status_field<'a>(status: &'a str, name: &str) -> &'a str {
    status
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in {status}"))
        .trim()
}

/// `keymother kcv --alg tdes -` waiting for the key on standard input, once it has asked
/// (by then `main` has run its hardening), as `uid` (`None`: as this test's user).
struct Waiting {
    child: Child,
    /// Kept open: keymother ends its prompt's line once the key is read.
    stderr: ChildStderr,
}

impl Waiting {
    fn start(uid: Option<u32>) -> Waiting {
        let mut command = keymother();
        command
            .args(["kcv", "--alg", "tdes", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(uid) = uid {
            command.uid(uid).gid(uid);
        }
        let mut child = command.spawn().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let mut said = Vec::new();
        let mut byte = [0u8; 1];
        while !String::from_utf8_lossy(&said).contains("not shown") {
            let read = stderr.read(&mut byte).unwrap();
            assert_eq!(
                read,
                1,
                "keymother ended before asking: {}",
                String::from_utf8_lossy(&said)
            );
            said.push(byte[0]);
        }
        Waiting { child, stderr }
    }

    fn proc(&self, name: &str) -> String {
        std::fs::read_to_string(format!("/proc/{}/{name}", self.child.id())).unwrap()
    }

    /// The owner of /proc/PID/`name`: the process's user while it is dumpable, root once it
    /// is not (/proc/PID itself stays the user's).
    fn proc_owner(&self, name: &str) -> u32 {
        std::fs::metadata(format!("/proc/{}/{name}", self.child.id()))
            .unwrap()
            .uid()
    }

    /// `VmLck:` in kB.
    fn locked_kb(&self) -> u64 {
        status_field(&self.proc("status"), "VmLck:")
            .trim_end_matches("kB")
            .trim()
            .parse()
            .unwrap()
    }

    /// Gives the key; the command prints its check value and ends. Returns what it said on
    /// each stream after its prompt.
    fn finish(mut self) -> Output {
        let mut stdin = self.child.stdin.take().unwrap();
        stdin
            .write_all(b"0123456789ABCDEFFEDCBA9876543210\n")
            .unwrap();
        drop(stdin);
        let mut stderr = Vec::new();
        self.stderr.read_to_end(&mut stderr).unwrap();
        let mut output = self.child.wait_with_output().unwrap();
        output.stderr = stderr;
        output
    }
}

/// Nobody, when this test runs as root: root may look into any process, so a process of
/// another user shows whether /proc/PID turned root's.
const NOBODY: u32 = 65534;

#[test]
fn the_process_is_not_dumpable_and_writes_no_core_file() {
    let uid = if euid() == 0 { Some(NOBODY) } else { None };
    let expected_uid = uid.unwrap_or_else(euid);
    let waiting = Waiting::start(uid);
    let status = waiting.proc("status");
    let real_uid: u32 = status_field(&status, "Uid:")
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(real_uid, expected_uid);
    assert_ne!(expected_uid, 0);
    // Not dumpable: its /proc/PID entries are root's, not its user's (no ptrace, no reading
    // /proc/PID/mem or environ by the user's other processes).
    for name in ["mem", "environ", "status"] {
        assert_eq!(
            waiting.proc_owner(name),
            0,
            "{name}: keymother is still dumpable"
        );
    }
    // No core file, and the hard limit is down too.
    let limits = waiting.proc("limits");
    let core = limits
        .lines()
        .find(|line| line.starts_with("Max core file size"))
        .unwrap();
    let fields: Vec<&str> = core["Max core file size".len()..]
        .split_whitespace()
        .collect();
    assert_eq!(&fields[..2], ["0", "0"], "{core}");
    let output = waiting.finish();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "08D7B4\n");
}

/// The `Max locked memory` soft limit this test passes on, in bytes; `None` when unlimited.
fn memlock_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max locked memory"))
        .unwrap();
    line["Max locked memory".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .ok()
}

/// Whether this test has CAP_IPC_LOCK (which lifts the limit for the child too, as root's).
fn has_cap_ipc_lock() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let effective = u64::from_str_radix(status_field(&status, "CapEff:"), 16).unwrap();
    effective & (1 << 14) != 0
}

/// Memory is locked (MCL_CURRENT | MCL_FUTURE) where the locked-memory limit cannot bite,
/// and not at all under a finite limit, where MCL_FUTURE would make later allocations fail;
/// the command works either way.
#[test]
fn memory_is_locked_only_where_the_limit_cannot_bite() {
    let unlimited = memlock_limit().is_none();
    let privileged = euid() == 0 && has_cap_ipc_lock();
    let waiting = Waiting::start(None);
    let locked = waiting.locked_kb();
    if unlimited || privileged {
        assert!(locked > 0, "nothing locked, though it could be");
    } else {
        assert_eq!(locked, 0, "locked under a finite limit");
    }
    let output = waiting.finish();
    assert!(output.status.success(), "{output:?}");

    // An ordinary user under root's finite limit (no capability after setuid): unlocked, and
    // the command still works.
    if euid() == 0 && !unlimited {
        let waiting = Waiting::start(Some(NOBODY));
        assert_eq!(waiting.locked_kb(), 0, "locked under a finite limit");
        let output = waiting.finish();
        assert!(output.status.success(), "{output:?}");
        assert_eq!(String::from_utf8_lossy(&output.stdout), "08D7B4\n");
    }
}
