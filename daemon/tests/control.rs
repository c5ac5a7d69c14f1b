//! The control socket refuses what it should: malformed requests, unknown commands, clients outside the operators' group; and keeps serving.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use support::{Appliance, InProcessDaemon};

fn ask(socket: &Path, line: &str) -> serde_json::Value {
    let mut stream = UnixStream::connect(socket).unwrap();
    // An oversized request is answered (and the socket closed) before the client has
    // finished writing it: the write may then fail with a broken pipe, the answer is there.
    let _ = stream
        .write_all(line.as_bytes())
        .and_then(|()| stream.write_all(b"\n"));
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).unwrap();
    serde_json::from_str(&answer).unwrap()
}

#[test]
fn malformed_and_unknown_requests_get_a_clear_error_and_change_nothing() {
    let appliance = Appliance::provisioned(5);
    let (_lines, settings) = appliance.ports(1);
    let socket = appliance.directory.path().join("control.sock");
    let _daemon = InProcessDaemon::start(settings);
    let before = appliance.vault().inventory().unwrap();
    for (request, words) in [
        (
            "{not json",
            "malformed request: key must be a string at line 1 column 2",
        ),
        (
            r#"{"command":"launch-missiles"}"#,
            "malformed request: unknown variant `launch-missiles`",
        ),
        (
            r#"{"command":"status","extra":1}"#,
            "malformed request: unknown field `extra`",
        ),
        (
            r#"{"command":"import"}"#,
            "malformed request: missing field `file_name`",
        ),
        // The daemon opens no path a client names: a path is not even a field.
        (
            r#"{"command":"import","path":"/etc/shadow"}"#,
            "malformed request: unknown field `path`",
        ),
        (
            r#"{"command":"export-smn","path":"/var/lib/keymother/storage.key"}"#,
            "malformed request: unknown field `path`",
        ),
        (
            r#"{"command":"ceremony","secret":"kek","algorithm":"AES-128","components":[{"custodian":"Ann Lee","component":"00"}]}"#,
            "component 1: AES-128 keys are 16 bytes",
        ),
        (
            r#"{"command":"ceremony","secret":"pin","algorithm":"AES-128","components":[]}"#,
            "unknown secret \"pin\"",
        ),
    ] {
        let answer = ask(&socket, request);
        assert_eq!(answer["ok"], false, "{request}: {answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(
            error.contains(words),
            "{request}: expected {words:?}, got {error:?}"
        );
    }
    assert_eq!(appliance.vault().inventory().unwrap(), before);
    // Still serving.
    let answer = ask(&socket, r#"{"command":"status"}"#);
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(answer["result"]["device_id"], support::DEVICE);
}

#[test]
fn a_client_outside_the_operators_group_is_refused() {
    let appliance = Appliance::provisioned(5);
    let (_lines, settings) = appliance.ports(1);
    let socket = appliance.directory.path().join("control.sock");
    let _daemon = InProcessDaemon::start(settings);
    let cli = Path::new(env!("CARGO_BIN_EXE_keymotherd")).with_file_name("keymother");
    assert!(
        cli.exists(),
        "build the CLI first (cargo build -p keymother)"
    );
    // The test's directory must be reachable by the unprivileged client.
    std::fs::set_permissions(
        appliance.directory.path(),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let as_nobody = || {
        let mut command = Command::new(&cli);
        command
            .arg("--socket")
            .arg(&socket)
            .arg("status")
            .uid(65534)
            .gid(65534);
        command.output().unwrap()
    };

    // The socket's own permissions keep it out...
    let output = as_nobody();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot reach keymotherd") && stderr.contains("Permission denied"),
        "{stderr}"
    );

    // ...and if they were loosened by mistake, the daemon checks the peer itself.
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let output = as_nobody();
    assert!(
        !output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("permission denied: only members of group"),
        "{stderr}"
    );
}
