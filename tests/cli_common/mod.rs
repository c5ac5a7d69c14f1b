//! Helpers shared by the `keymother` command's end-to-end tests: running the binary, reading its output, and keymotherd in this process.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

pub fn keymother(arguments: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keymother"))
        .args(arguments)
        .env_remove("KEYMOTHER_SOCKET")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

pub fn assert_usage_error(output: &Output, words: &str) {
    assert_eq!(output.status.code(), Some(2), "stderr: {}", stderr(output));
    assert!(
        stderr(output).contains(words),
        "stderr lacks {words:?}: {}",
        stderr(output)
    );
}

pub fn run_ok(arguments: &[&str], stdin: &str) -> String {
    let output = keymother(arguments, stdin);
    assert!(
        output.status.success(),
        "{arguments:?} failed: {}",
        stderr(&output)
    );
    stdout(&output)
}

/// A file of the pki crate's test fixtures (public test data).
pub fn fixture(name: &str) -> String {
    format!(
        "{}/../pki/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// keymotherd in this process with operator login required, the fixture CAs, no keys.
pub struct Daemon {
    pub directory: tempfile::TempDir,
    socket: std::path::PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Daemon {
    pub fn start() -> Daemon {
        let directory = tempfile::tempdir().unwrap();
        let data = directory.path().join("data");
        keymother_vault::Vault::create(&data, &"KM-CLI-0002".parse().unwrap()).unwrap();
        let socket = directory.path().join("control.sock");
        let text = format!(
            "data_dir = {data:?}\n[control]\nsocket = {socket:?}\n\
             [pki]\ndevice_ca = {:?}\nkdh_ca = {:?}\noperator_ca = {:?}\n\
             [operator]\nrequire = true\n\
             [[port]]\nname = \"bench-1\"\npath = {:?}\n",
            fixture("ca-device.pem"),
            fixture("ca-kdh.pem"),
            fixture("ca-operator.pem"),
            directory.path().join("no-such-tty"),
        );
        let settings = keymother_daemon::Settings::from_toml(&text, "keymotherd.toml").unwrap();
        let (stop, thread) = run_in_process(settings);
        Daemon {
            directory,
            socket,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn keymother(&self, arguments: &[&str], stdin: &str) -> Output {
        let mut all = vec!["--socket", self.socket.to_str().unwrap()];
        all.extend_from_slice(arguments);
        keymother(&all, stdin)
    }

    pub fn file(&self, name: &str, text: &str) -> String {
        let path = self.directory.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub fn run_ok_with(daemon: &Daemon, arguments: &[&str], stdin: &str) -> String {
    let output = daemon.keymother(arguments, stdin);
    assert!(
        output.status.success(),
        "{arguments:?} failed: {}",
        stderr(&output)
    );
    stdout(&output)
}

/// keymotherd with `settings` in a thread of this process, returned once it is ready (its
/// control socket bound): the sender that stops it and its thread.
pub fn run_in_process(
    settings: keymother_daemon::Settings,
) -> (
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<()>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (ready, is_ready) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let (events, mut receiver) = tokio::sync::mpsc::unbounded_channel();
            tokio::spawn(async move {
                while let Some(event) = receiver.recv().await {
                    if let keymother_daemon::DaemonEvent::Ready { .. } = event {
                        let _ = ready.send(());
                    }
                }
            });
            keymother_daemon::run(
                settings,
                async {
                    let _ = stopped.await;
                },
                Some(events),
                std::sync::Arc::new(keymother_daemon::Stats::default()),
            )
            .await
            .unwrap();
        });
    });
    is_ready
        .recv_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    (stop, thread)
}
