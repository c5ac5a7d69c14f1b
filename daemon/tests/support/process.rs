//! keymotherd as a process of its own, on an appliance's vault: its settings, start (until its socket answers) and stop.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use super::Appliance;

/// Settings for a daemon process whose socket is open to `group`, with one port (whose
/// terminal end is returned: keep it open).
/// The name of this process's primary group (the control socket's group in these tests).
pub fn own_group() -> String {
    nix::unistd::Group::from_gid(nix::unistd::getgid())
        .unwrap()
        .unwrap()
        .name
}

pub fn settings_text(appliance: &Appliance, group: &str) -> (String, keymother_terminal::PtyLine) {
    let (line, port) = super::pty_pair(appliance.directory.path(), "process-port");
    let ports = [port];
    let mut text = format!(
        "data_dir = {:?}\n[control]\nsocket = {:?}\ngroup = {group:?}\n[operator]\nrequire = false\n",
        appliance.data_dir,
        appliance.directory.path().join("control.sock")
    );
    for (number, path) in ports.iter().enumerate() {
        text.push_str(&format!(
            "[[port]]\nname = \"bench-{number}\"\npath = {path:?}\n"
        ));
    }
    (text, line)
}

/// keymotherd as a process (`prefix` runs before it, e.g. prlimit), its log in a file;
/// returns once its socket answers.
// The child is returned; its caller waits for it in `stop`.
#[allow(clippy::zombie_processes)]
pub fn start_process(appliance: &Appliance, text: &str, prefix: &[&str]) -> (Child, PathBuf) {
    let config = appliance.directory.path().join("process.toml");
    std::fs::write(&config, text).unwrap();
    let log = appliance.directory.path().join("keymotherd.log");
    let mut command = match prefix.split_first() {
        Some((program, arguments)) => {
            let mut command = Command::new(program);
            command
                .args(arguments)
                .arg(env!("CARGO_BIN_EXE_keymotherd"));
            command
        }
        None => Command::new(env!("CARGO_BIN_EXE_keymotherd")),
    };
    let mut child = command
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let socket = appliance.directory.path().join("control.sock");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut stream) = UnixStream::connect(&socket) {
            if writeln!(stream, "{}", json!({"command": "status"})).is_ok() {
                let mut answer = String::new();
                if BufReader::new(stream).read_line(&mut answer).is_ok()
                    && answer.contains("\"ok\":true")
                {
                    return (child, log);
                }
            }
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "keymotherd did not come up: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn stop(mut child: Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
}

/// For a crash test's killer: on a loaded machine a start-up can outlast every random interval
/// between kills, so every other kill (odd `kills`) waits, at most 10 s, until `progress` (the
/// test's count of confirmed injections) has moved since the last kill; the kills between stay
/// anywhere, mid-start-up included. Returns the progress to remember for the next kill.
pub fn let_one_through(
    kills: &AtomicUsize,
    progress: &AtomicUsize,
    at_last_kill: usize,
    done: &AtomicBool,
) -> usize {
    if kills.load(Ordering::Relaxed) % 2 == 1 {
        let patience = Instant::now() + Duration::from_secs(10);
        while progress.load(Ordering::Relaxed) == at_last_kill
            && Instant::now() < patience
            && !done.load(Ordering::Relaxed)
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    progress.load(Ordering::Relaxed)
}
