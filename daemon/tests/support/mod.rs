//! Test benches for the daemon: a provisioned vault, pseudo-terminal ports, the daemon in-process or as a process, terminals.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod operators;
pub mod process;
pub mod profiles;
pub mod wire;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_daemon::{BenchBackends, DaemonEvent, Settings, Stats};
use keymother_keyfiles::testing::FileLines;
use keymother_keyfiles::{CreatedAt, GenerateOptions, KeyIndex};
use keymother_protocol::{Mode, TerminalAction, TerminalConfig, TerminalSession};
use keymother_terminal::Line;
use keymother_terminal::{PtyLine, SoftwareKeyStore};
use keymother_vault::{SecretName, Vault};
use tempfile::TempDir;

pub const DEVICE: &str = "KM-TEST-0001";

/// A provisioned appliance data directory and the transport key terminals share with it.
pub struct Appliance {
    pub directory: TempDir,
    pub data_dir: PathBuf,
    pub transport_key_hex: String,
    /// The KEK, for tests that hold its ceremony again.
    pub kek_hex: String,
}

impl Appliance {
    /// A vault with a KEK, a TTK (both AES-256) and `keys` TDES master keys from index 1.
    pub fn provisioned(keys: u32) -> Appliance {
        let directory = tempfile::tempdir().unwrap();
        let data_dir = directory.path().join("data");
        let mut vault = Vault::create(&data_dir, &DEVICE.parse().unwrap()).unwrap();
        let kek = SecretKey::generate(KeyAlgorithm::Aes256).unwrap();
        let ttk = SecretKey::generate(KeyAlgorithm::Aes256).unwrap();
        vault
            .install_secret(
                SecretName::Kek,
                &kek,
                &keymother_vault::CeremonyRecord::named(&["Ann Lee", "Raj Patel"]).unwrap(),
            )
            .unwrap();
        vault
            .install_secret(
                SecretName::Ttk,
                &ttk,
                &keymother_vault::CeremonyRecord::named(&["Ann Lee", "Raj Patel"]).unwrap(),
            )
            .unwrap();
        let path = directory.path().join("batch.keys");
        write_key_file(&path, &kek, "B-1", 1, keys);
        vault.import_key_file(&path, &mut |_| {}).unwrap();
        Appliance {
            transport_key_hex: ttk.expose_secret_hex().to_string(),
            kek_hex: kek.expose_secret_hex().to_string(),
            directory,
            data_dir,
        }
    }

    /// A key file from the front end under this appliance's KEK: batch `batch_id`, `count`
    /// TDES keys from `first_index`.
    pub fn key_file(&self, batch_id: &str, first_index: u32, count: u32) -> PathBuf {
        let kek = SecretKey::from_hex(KeyAlgorithm::Aes256, &self.kek_hex).unwrap();
        let path = self.directory.path().join(format!("{batch_id}.keys"));
        write_key_file(&path, &kek, batch_id, first_index, count);
        path
    }

    /// A fresh key store holding the TTK, as a terminal from the factory would.
    pub fn key_store(&self) -> SoftwareKeyStore {
        SoftwareKeyStore::new(
            &SecretKey::from_hex(KeyAlgorithm::Aes256, &self.transport_key_hex).unwrap(),
        )
    }

    /// A terminal's settings, with short timeouts for tests.
    pub fn terminal(&self, serial: &str) -> TerminalConfig {
        TerminalConfig {
            hardware_serial: serial.parse().unwrap(),
            model: "TEST-PINPAD".parse().unwrap(),
            modes: vec![Mode::Tr31],
            ttk_kcv: self.key_store().transport_key_kcv().as_bytes().to_vec(),
            response_timeout: Duration::from_millis(300),
            max_retries: 6,
            unconfirmed_key: None,
            unconfirmed_dukpt: Vec::new(),
            krd_credential_token: Vec::new(),
        }
    }

    /// `count` pseudo-terminal ports: the terminal ends, and daemon settings naming stable
    /// links to the appliance ends (as /dev/serial/by-id links would). Operator login is not
    /// required (these tests are not about operators; tests/operator.rs is).
    pub fn ports(&self, count: usize) -> (Vec<PtyLine>, Settings) {
        self.ports_with(count, "[operator]\nrequire = false\n")
    }

    /// [`Appliance::ports`] with `sections` (TOML, e.g. `[pki]` and `[operator]`) in the
    /// settings instead of the operator section that turns operator login off.
    pub fn ports_with(&self, count: usize, sections: &str) -> (Vec<PtyLine>, Settings) {
        let mut lines = Vec::new();
        let mut text = format!(
            "data_dir = {:?}\n[control]\nsocket = {:?}\n[dispensing]\nidle_timeout_seconds = 5\n{sections}",
            self.data_dir,
            self.directory.path().join("control.sock")
        );
        for number in 0..count {
            let (line, link) = pty_pair(self.directory.path(), &format!("port-{number}"));
            lines.push(line);
            text.push_str(&format!(
                "[[port]]\nname = \"bench-{number}\"\npath = {link:?}\n"
            ));
        }
        std::fs::write(self.directory.path().join("keymotherd.toml"), &text).unwrap();
        (
            lines,
            Settings::from_toml(&text, "keymotherd.toml").unwrap(),
        )
    }

    pub fn config_path(&self) -> PathBuf {
        self.directory.path().join("keymotherd.toml")
    }

    pub fn vault(&self) -> Vault {
        Vault::open(&self.data_dir).unwrap()
    }
}

fn write_key_file(path: &Path, kek: &SecretKey, batch_id: &str, first_index: u32, count: u32) {
    let options = GenerateOptions {
        batch_id: batch_id.parse().unwrap(),
        issuer: "TEST".parse().unwrap(),
        algorithm: KeyAlgorithm::Tdes2Key,
        record_count: count,
        first_index: KeyIndex::new(first_index).unwrap(),
        device_id: DEVICE.parse().unwrap(),
        created: CreatedAt::new(time::OffsetDateTime::now_utc()),
    };
    std::fs::write(
        path,
        FileLines::generated(kek, &options).unwrap().sealed(kek),
    )
    .unwrap();
}

/// The vault's database opened directly (another process, as far as the daemon knows).
pub fn raw_database(data_dir: &Path) -> rusqlite::Connection {
    let connection =
        rusqlite::Connection::open(data_dir.join(keymother_vault::DATABASE_FILE)).unwrap();
    connection.busy_timeout(Duration::from_secs(10)).unwrap();
    connection
}

/// A pseudo-terminal pair: the master end as a terminal's line, and a link named `name` in
/// `directory` to the slave end (the daemon's port).
pub fn pty_pair(directory: &Path, name: &str) -> (PtyLine, PathBuf) {
    let link = directory.join(name);
    (PtyLine::open_pair(&link).unwrap(), link)
}

/// The real daemon code running in this process, on its own runtime thread.
pub struct InProcessDaemon {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub events: std::sync::mpsc::Receiver<DaemonEvent>,
    log: std::sync::Mutex<Vec<DaemonEvent>>,
    pub stats: Arc<Stats>,
}

impl InProcessDaemon {
    pub fn start(settings: Settings) -> InProcessDaemon {
        InProcessDaemon::start_with(settings, BenchBackends::default())
    }

    /// [`InProcessDaemon::start`] with bench back ends (a `SimulatedSignals` handle).
    pub fn start_with(settings: Settings, backends: BenchBackends) -> InProcessDaemon {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (forward, events) = std::sync::mpsc::channel();
        let stats = Arc::new(Stats::default());
        let daemon_stats = Arc::clone(&stats);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
                tokio::spawn(async move {
                    while let Some(event) = receiver.recv().await {
                        let _ = forward.send(event);
                    }
                });
                keymother_daemon::run_with(
                    settings,
                    async {
                        let _ = stopped.await;
                    },
                    Some(sender),
                    daemon_stats,
                    backends,
                )
                .await
                .unwrap();
            });
        });
        let daemon = InProcessDaemon {
            stop: Some(stop),
            thread: Some(thread),
            events,
            log: std::sync::Mutex::new(Vec::new()),
            stats,
        };
        daemon.wait_for(|event| matches!(event, DaemonEvent::Ready { .. }));
        daemon
    }

    /// Waits (up to 10 s) for an event matching `wanted`.
    pub fn wait_for(&self, wanted: impl Fn(&DaemonEvent) -> bool) -> DaemonEvent {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let event = self
                .events
                .recv_timeout(left)
                .expect("the daemon did not report in time");
            // Kept for `saw`, which may look for an event that came before this one.
            self.log.lock().unwrap().push(event.clone());
            if wanted(&event) {
                return event;
            }
        }
    }

    /// Every event received so far, in order.
    pub fn events_so_far(&self) -> Vec<DaemonEvent> {
        let mut log = self.log.lock().unwrap();
        log.extend(self.events.try_iter());
        log.clone()
    }

    /// Waits (up to 2 s) until some event received so far, or arriving meanwhile, matches
    /// `wanted`. Events are kept, so one can be looked for more than once.
    pub fn saw(&self, wanted: impl Fn(&DaemonEvent) -> bool) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        loop {
            let mut log = self.log.lock().unwrap();
            log.extend(self.events.try_iter());
            if log.iter().any(&wanted) {
                return true;
            }
            if std::time::Instant::now() > deadline {
                eprintln!("events seen: {log:#?}");
                return false;
            }
            drop(log);
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for InProcessDaemon {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Runs a terminal session until its key is delivered, then stops answering (pulled cable,
/// power cut): the key is installed in the store but never confirmed.
pub fn vanish_after_delivery(
    line: &mut PtyLine,
    config: TerminalConfig,
    store: &mut SoftwareKeyStore,
) -> u32 {
    let started = std::time::Instant::now();
    let mut session = TerminalSession::new(config);
    let mut pending: std::collections::VecDeque<TerminalAction> =
        session.start(started.elapsed()).into();
    let mut buffer = [0u8; 2048];
    loop {
        while let Some(action) = pending.pop_front() {
            match action {
                TerminalAction::Send(bytes) => line.write_all(&bytes).unwrap(),
                TerminalAction::InstallKey {
                    key_index,
                    key_block,
                    kcv,
                    ..
                } => {
                    store.install(key_index, &key_block, &kcv).unwrap();
                    return key_index;
                }
                TerminalAction::Finished(outcome) => {
                    panic!("finished before delivery: {outcome:?}")
                }
                TerminalAction::Report(_) => {}
                TerminalAction::VerifyAppliance { .. } | TerminalAction::InstallDukptKey { .. } => {
                    panic!("tr31 only here")
                }
            }
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no delivery");
        let count = line
            .read_within(&mut buffer, Duration::from_millis(20))
            .unwrap();
        let now = started.elapsed();
        pending.extend(if count > 0 {
            session.handle_bytes(&buffer[..count], now)
        } else {
            session.handle_tick(now)
        });
    }
}
