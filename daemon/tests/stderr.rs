//! keymotherd logging to standard error outlives whoever reads it: with stderr a pipe nobody reads any more, every log line fails (EPIPE) and the daemon goes on serving.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::Appliance;

/// Kills the daemon when the test ends, passed or not.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Daemon {
    /// Panics if the daemon has exited.
    fn assert_running(&mut self, when: &str) {
        if let Some(status) = self.0.try_wait().unwrap() {
            panic!("keymotherd exited {when}: {status}");
        }
    }
}

/// One request, one answer line; `None` when the socket is not there (yet) or closes.
fn ask(socket: &Path, line: &str) -> Option<serde_json::Value> {
    let mut stream = UnixStream::connect(socket).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    stream.write_all(format!("{line}\n").as_bytes()).ok()?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).ok()?;
    serde_json::from_str(&answer).ok()
}

#[test]
fn the_daemon_keeps_serving_when_its_stderr_reader_is_gone() {
    let appliance = Appliance::provisioned(5);
    // Log everything to stderr; a second port whose adapter is missing makes the daemon log
    // each failed open, again and again, while the test runs.
    let (_lines, _) = appliance.ports_with(
        1,
        "[operator]\nrequire = false\n[logging]\ntarget = \"stderr\"\nlevel = \"debug\"\n",
    );
    let config = appliance.config_path();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("[[port]]\nname = \"unplugged\"\npath = \"/nonexistent/ttyUSB9\"\n");
    std::fs::write(&config, text).unwrap();
    let socket = appliance.directory.path().join("control.sock");

    // Nobody reads standard error: the read end is closed before the daemon writes a byte.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut daemon = Daemon(
        Command::new(env!("CARGO_BIN_EXE_keymotherd"))
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(writer)
            .spawn()
            .unwrap(),
    );

    // It starts (logging as it goes) and answers.
    let started = Instant::now();
    let status = loop {
        daemon.assert_running("while starting");
        if let Some(answer) = ask(&socket, r#"{"command":"status"}"#) {
            break answer;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no control socket after 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status["ok"], true, "{status}");
    assert_eq!(status["result"]["device_id"], support::DEVICE);

    // Requests it logs a warning for, and the missing adapter's retries meanwhile.
    for _ in 0..5 {
        let answer = ask(&socket, "{not json").expect("an answer to a malformed request");
        assert_eq!(answer["ok"], false, "{answer}");
        std::thread::sleep(Duration::from_millis(300));
        daemon.assert_running("after logging to a closed stderr");
    }
    let answer = ask(&socket, r#"{"command":"status"}"#).expect("still answering");
    assert_eq!(answer["ok"], true, "{answer}");
    daemon.assert_running("at the end");
}
