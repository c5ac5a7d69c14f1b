//! Latency-during-import benchmark: injection latency (HELLO to CONFIRMED, p50, p99, max) on 4 ports idle, then while a 1,000,000-key import runs over the control socket.
//!
//! Run with `scripts/bench-import-latency` (which builds keymotherd and this binary in release
//! mode); the figures go to docs/BENCHMARKS.md. keymotherd runs as its own process with a
//! reference terminal on each of its ports (pseudo-terminals), every terminal injecting one
//! device after another without pause. An injection's latency is the terminal side's wall
//! time from sending HELLO to receiving CONFIRMED (the `elapsed` of the reference terminal's
//! `inject`). The import is sent as `keymother daemon import` sends it: the `import` request,
//! the file's bytes as data lines, the daemon's progress lines read until its answer
//! (docs/CONTROL.md, "Import"); its keys have indexes above the vault's stock, so the
//! terminals keep drawing stock keys while it runs.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use keymother_control::{self as api, ClientLine, ServerLine, StreamLine};
use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_keyfiles::testing::FileLines;
use keymother_keyfiles::{CreatedAt, GenerateOptions, KeyIndex};
use keymother_protocol::{Mode, TerminalConfig, TerminalOutcome};
use keymother_terminal::{PtyLine, SoftwareKeyStore, inject};
use keymother_vault::{SecretName, Vault};

const DEVICE: &str = "KM-BENCH-0001";

#[derive(Parser)]
struct Arguments {
    /// Ports, one reference terminal on each.
    #[arg(long, default_value_t = 4)]
    ports: usize,
    /// Keys in the vault before the import (the terminals draw these; enough for both phases).
    #[arg(long, default_value_t = 200_000)]
    stock: u32,
    /// Keys in the imported file (indexes above the stock's).
    #[arg(long, default_value_t = 1_000_000)]
    import_keys: u32,
    /// Seconds of injections measured with the ports idle, before the import starts.
    #[arg(long, default_value_t = 10)]
    idle_seconds: u64,
    /// The keymotherd binary (default: next to this one; scripts/bench-import-latency builds it).
    #[arg(long)]
    daemon: Option<PathBuf>,
}

/// One injection as a terminal saw it.
struct Sample {
    /// When the terminal sent HELLO.
    started: Instant,
    /// HELLO to CONFIRMED (or to the failure).
    latency: Duration,
    /// False when the session ended without CONFIRMED.
    confirmed: bool,
}

/// Injections after this long with the daemon ready are measured (the first warm caches).
const WARM_UP: Duration = Duration::from_secs(1);

fn main() -> anyhow::Result<()> {
    let arguments = Arguments::parse();
    let daemon_path = match &arguments.daemon {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("keymotherd"),
    };
    let work = tempfile::tempdir()?;
    let data_dir = work.path().join("data");
    let started = Instant::now();
    let (ttk, key_file) = prepare(work.path(), &data_dir, &arguments)?;
    let ttk = Arc::new(ttk);
    println!(
        "prepared: {} stock keys in the vault, a sealed file of {} keys (indexes {}..{}, {:.1} MiB), in {:.1} s",
        arguments.stock,
        arguments.import_keys,
        arguments.stock + 1,
        u64::from(arguments.stock) + u64::from(arguments.import_keys),
        std::fs::metadata(&key_file)?.len() as f64 / (1024.0 * 1024.0),
        started.elapsed().as_secs_f64()
    );
    let (settings, socket, lines) = write_settings(work.path(), &data_dir, arguments.ports)?;
    let daemon = DaemonProcess::start(&daemon_path, &settings, arguments.ports)?;

    let stop = Arc::new(AtomicBool::new(false));
    let terminals: Vec<_> = lines
        .into_iter()
        .enumerate()
        .map(|(port, line)| {
            let ttk = Arc::clone(&ttk);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || run_port(line, port, &ttk, &stop))
        })
        .collect();
    std::thread::sleep(WARM_UP);
    let idle_start = Instant::now();
    std::thread::sleep(Duration::from_secs(arguments.idle_seconds));
    let import_start = Instant::now();
    let imported = import(&socket, &key_file);
    let import_end = Instant::now();
    stop.store(true, Ordering::Release);
    let mut samples = Vec::new();
    for terminal in terminals {
        samples.extend(
            terminal
                .join()
                .map_err(|_| anyhow::anyhow!("terminal thread panicked"))??,
        );
    }
    daemon.stop()?;
    let imported = imported?;
    let report = &imported.report;

    let idle: Vec<&Sample> = samples
        .iter()
        .filter(|sample| {
            sample.started >= idle_start && sample.started + sample.latency < import_start
        })
        .collect();
    // Every injection the import overlapped, from the request to the answer.
    let during: Vec<&Sample> = samples
        .iter()
        .filter(|sample| {
            sample.started <= import_end && sample.started + sample.latency >= import_start
        })
        .collect();
    let seconds = |from: Instant, to: Instant| (to - from).as_secs_f64();
    println!(
        "import: {} keys (batch {}, indexes {}..{}) in {:.2} s from the request to the answer: file sent in {:.2} s, {:.2} s from the daemon's first progress line to its answer",
        report.records,
        report.batch_id,
        report.first_index,
        report.last_index,
        seconds(import_start, import_end),
        seconds(import_start, imported.sent),
        seconds(imported.first_progress.unwrap_or(import_end), import_end)
    );
    println!(
        "latency: the terminal's wall time from sending HELLO to receiving CONFIRMED; during the import: every injection that overlapped the request to answer; longest pause: the longest time in the phase with no injection confirmed on any port"
    );
    println!(
        "| {} ports | injections | failed | p50 | p99 | max | longest pause |",
        arguments.ports
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let idle_row = row("idle", &idle, (idle_start, import_start));
    let during_row = row("during the import", &during, (import_start, import_end));
    if let (Some(idle), Some(during)) = (idle_row, during_row) {
        println!(
            "p99 during the import / p99 idle: {:.2}x (the goal: at most 2x)",
            during.as_secs_f64() / idle.as_secs_f64()
        );
    }
    Ok(())
}

/// Prints one phase's row; returns its p99 (None without confirmed injections). `window`:
/// the phase's start and end, for the longest pause.
fn row(phase: &str, samples: &[&Sample], window: (Instant, Instant)) -> Option<Duration> {
    let mut confirmed: Vec<Duration> = samples
        .iter()
        .filter(|sample| sample.confirmed)
        .map(|sample| sample.latency)
        .collect();
    let failed = samples.len() - confirmed.len();
    confirmed.sort();
    let milliseconds = |quantile: f64| {
        percentile(&confirmed, quantile)
            .map(|latency| format!("{:.1} ms", latency.as_secs_f64() * 1e3))
            .unwrap_or_else(|| "—".to_owned())
    };
    println!(
        "| {phase} | {} | {failed} | {} | {} | {} | {:.1} ms |",
        confirmed.len(),
        milliseconds(0.50),
        milliseconds(0.99),
        milliseconds(1.0),
        longest_pause(samples, window).as_secs_f64() * 1e3
    );
    percentile(&confirmed, 0.99)
}

/// The longest time within `window` in which no injection of `samples` was confirmed (a
/// stall of every port shows here even when it is too few injections to reach the p99).
fn longest_pause(samples: &[&Sample], (start, end): (Instant, Instant)) -> Duration {
    let mut confirmations: Vec<Instant> = samples
        .iter()
        .filter(|sample| sample.confirmed)
        .map(|sample| sample.started + sample.latency)
        .filter(|&confirmed| confirmed > start && confirmed < end)
        .collect();
    confirmations.sort();
    let mut previous = start;
    let mut longest = Duration::ZERO;
    for confirmed in confirmations.into_iter().chain([end]) {
        longest = longest.max(confirmed - previous);
        previous = confirmed;
    }
    longest
}

/// The nearest-rank percentile of sorted `values`.
fn percentile(values: &[Duration], quantile: f64) -> Option<Duration> {
    if values.is_empty() {
        return None;
    }
    let rank = (quantile * values.len() as f64).ceil() as usize;
    values.get(rank.clamp(1, values.len()) - 1).copied()
}

/// A vault with a KEK, a TTK and `stock` master keys (indexes from 1), and beside it the
/// sealed file of `import_keys` more (the next indexes), as custodians would leave them.
/// Returns the TTK the terminals share and the file's path.
fn prepare(
    work: &Path,
    data_dir: &Path,
    arguments: &Arguments,
) -> anyhow::Result<(SecretKey, PathBuf)> {
    let mut vault = Vault::create(data_dir, &DEVICE.parse().map_err(anyhow::Error::msg)?)?;
    let kek = SecretKey::generate(KeyAlgorithm::Aes256)?;
    let ttk = SecretKey::generate(KeyAlgorithm::Aes256)?;
    for (name, secret) in [(SecretName::Kek, &kek), (SecretName::Ttk, &ttk)] {
        vault.install_secret(
            name,
            secret,
            &keymother_vault::CeremonyRecord::named(&["Ann Lee", "Raj Patel"])
                .map_err(anyhow::Error::msg)?,
        )?;
    }
    let batch = |batch_id: &str, first: u32, count: u32| -> anyhow::Result<GenerateOptions> {
        Ok(GenerateOptions {
            batch_id: batch_id.parse().map_err(anyhow::Error::msg)?,
            issuer: "BENCH".parse().map_err(anyhow::Error::msg)?,
            algorithm: KeyAlgorithm::Tdes2Key,
            record_count: count,
            first_index: KeyIndex::new(first).context("index")?,
            device_id: DEVICE.parse().map_err(anyhow::Error::msg)?,
            created: CreatedAt::new(time::OffsetDateTime::now_utc()),
        })
    };
    let stock = work.join("stock.keys");
    let options = batch("STOCK-1", 1, arguments.stock)?;
    std::fs::write(&stock, FileLines::generated(&kek, &options)?.sealed(&kek))?;
    vault.import_key_file(&stock, &mut |_| {})?;
    std::fs::remove_file(&stock)?;
    let file = work.join("import.keys");
    let options = batch("IMPORT-1", arguments.stock + 1, arguments.import_keys)?;
    std::fs::write(&file, FileLines::generated(&kek, &options)?.sealed(&kek))?;
    Ok((ttk, file))
}

/// Opens one pseudo-terminal pair per port and writes the daemon's settings (operator login
/// off: dispensing is measured); returns the settings file, the control socket and the
/// terminals' ends.
fn write_settings(
    work: &Path,
    data_dir: &Path,
    ports: usize,
) -> anyhow::Result<(PathBuf, PathBuf, Vec<PtyLine>)> {
    let socket = work.join("control.sock");
    let mut text = format!(
        "data_dir = {:?}\n[control]\nsocket = {:?}\n[operator]\nrequire = false\n",
        data_dir.display().to_string(),
        socket.display().to_string()
    );
    let mut lines = Vec::new();
    for number in 0..ports {
        let link = work.join(format!("tty{number}"));
        lines.push(PtyLine::open_pair(&link)?);
        text.push_str(&format!(
            "[[port]]\nname = \"bench-{number}\"\npath = {:?}\n",
            link.display().to_string()
        ));
    }
    let settings = work.join("keymotherd.toml");
    std::fs::write(&settings, text)?;
    Ok((settings, socket, lines))
}

/// Injects one device after another on `line` until `stop`; returns every injection's sample.
fn run_port(
    mut line: PtyLine,
    port: usize,
    ttk: &SecretKey,
    stop: &AtomicBool,
) -> anyhow::Result<Vec<Sample>> {
    let mut samples = Vec::new();
    let mut number = 0u32;
    while !stop.load(Ordering::Acquire) {
        let mut key_store = SoftwareKeyStore::new(ttk);
        let config = TerminalConfig {
            hardware_serial: format!("L{port:02}T{number:06}")
                .parse()
                .map_err(|e| anyhow::anyhow!("{e}"))?,
            model: "BENCH".parse().map_err(|e| anyhow::anyhow!("{e}"))?,
            modes: vec![Mode::Tr31],
            ttk_kcv: key_store.transport_key_kcv().as_bytes().to_vec(),
            // A stall shows as latency, not as retries or a failed session.
            response_timeout: Duration::from_secs(60),
            max_retries: 3,
            unconfirmed_key: None,
            unconfirmed_dukpt: Vec::new(),
            krd_credential_token: Vec::new(),
        };
        let started = Instant::now();
        let injection = inject(&mut line, config, &mut key_store)?;
        samples.push(Sample {
            started,
            latency: injection.elapsed,
            confirmed: matches!(injection.outcome, TerminalOutcome::Injected { .. }),
        });
        if let TerminalOutcome::Failed { reason } = injection.outcome {
            eprintln!("port {port}: an injection failed: {reason}");
        }
        number += 1;
    }
    Ok(samples)
}

/// An import as the client saw it.
struct Imported {
    report: api::ImportReport,
    /// When the file's last data line was written.
    sent: Instant,
    /// When the daemon's first progress line arrived (it sends one as it starts importing).
    first_progress: Option<Instant>,
}

/// Imports `file` over the control socket as `keymother daemon import` does; returns the
/// daemon's report once it has answered.
fn import(socket: &Path, file: &Path) -> anyhow::Result<Imported> {
    let mut opened = std::fs::File::open(file)?;
    let size = opened.metadata()?.len();
    let mut stream = UnixStream::connect(socket)
        .with_context(|| format!("cannot reach keymotherd at {}", socket.display()))?;
    let request: api::Request = api::Import {
        file_name: file.display().to_string(),
        size,
    }
    .into();
    stream.write_all(&api::encode_line(&request))?;
    let mut buffer = vec![0u8; api::DATA_CHUNK];
    loop {
        let read = opened.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        let line = api::encode_line(&ClientLine::Data(api::encode_data(&buffer[..read])));
        stream.write_all(&line)?;
    }
    let sent = Instant::now();
    let mut first_progress = None;
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            bail!("keymotherd closed the connection without answering the import");
        }
        match api::decode_line::<ServerLine>(&line)? {
            ServerLine::Answer(answer) => {
                return Ok(Imported {
                    report: answer.into_result::<api::Import>()?,
                    sent,
                    first_progress,
                });
            }
            ServerLine::Stream(StreamLine::Progress(_)) => {
                first_progress.get_or_insert_with(Instant::now);
            }
            ServerLine::Stream(_) => bail!("keymotherd sent a file during an import"),
        }
    }
}

/// keymotherd as its own process; its log lines are read on a thread of their own (a full
/// pipe would stop it).
struct DaemonProcess {
    child: Child,
}

impl DaemonProcess {
    /// Starts the daemon and waits until it has opened its `ports` ports.
    fn start(daemon_path: &Path, settings: &Path, ports: usize) -> anyhow::Result<Self> {
        let mut child = Command::new(daemon_path)
            .arg("--config")
            .arg(settings)
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", daemon_path.display()))?;
        let log = BufReader::new(child.stderr.take().context("daemon stderr")?);
        let (log_lines, log_receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in log.lines().map_while(Result::ok) {
                let _ = log_lines.send(line);
            }
        });
        let daemon = Self { child };
        let mut opened = 0;
        while opened < ports {
            let line = log_receiver
                .recv_timeout(Duration::from_secs(60))
                .context("the daemon did not open its ports")?;
            if line.contains("event=port-opened") {
                opened += 1;
            }
        }
        Ok(daemon)
    }

    /// Stops the daemon with SIGTERM and waits for it.
    fn stop(mut self) -> anyhow::Result<()> {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id())?);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for DaemonProcess {
    /// A run that fails midway does not leave the daemon running.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
