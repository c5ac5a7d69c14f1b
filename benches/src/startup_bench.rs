//! Start-up benchmark: keymotherd's time from exec to READY with 10,000, 100,000 and 1,000,000 keys in the vault, with the page cache warm and dropped, how long the background integrity check takes after READY, and the daemon's VmRSS at READY and after that check.
//!
//! Run with `scripts/bench-startup` (which builds keymotherd and this binary in release
//! mode); the figures go to docs/BENCHMARKS.md. `--before PATH` also times another
//! keymotherd build (the one before issue 19) on the same vaults. Dropping the page cache
//! needs root (`/proc/sys/vm/drop_caches`); without it the cold column is left out.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_keyfiles::testing::FileLines;
use keymother_keyfiles::{CreatedAt, GenerateOptions, KeyIndex};
use keymother_vault::{SecretName, Vault};

const DEVICE: &str = "KM-BENCH-0001";

#[derive(Parser)]
struct Arguments {
    /// Vault sizes to measure, in master keys.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000,1000000")]
    keys: Vec<u32>,
    /// The keymotherd binary (default: next to this one; scripts/bench-startup builds it).
    #[arg(long)]
    daemon: Option<PathBuf>,
    /// Another keymotherd build to time on the same vaults (the one before the change).
    #[arg(long)]
    before: Option<PathBuf>,
    /// Starts per case; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

/// One start: exec to READY, and (when the build logs it) the background check's own time;
/// the daemon's resident memory (VmRSS, KiB) read just after its ready line and just after the
/// background check's line.
struct Start {
    ready: Duration,
    background: Option<Duration>,
    rss_ready: Option<u64>,
    rss_checked: Option<u64>,
}

fn main() -> anyhow::Result<()> {
    let arguments = Arguments::parse();
    let daemon = match arguments.daemon {
        Some(path) => path,
        None => std::env::current_exe()?.with_file_name("keymotherd"),
    };
    let can_drop = drop_caches().is_ok();
    if !can_drop {
        println!("cannot write /proc/sys/vm/drop_caches (not root): cold starts left out");
    }
    println!(
        "| keys | database | build | warm: exec to READY | cold: exec to READY | background check after READY (warm) | VmRSS at READY (warm) | VmRSS after the background check (warm) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for keys in arguments.keys {
        let work = tempfile::tempdir()?;
        let data_dir = work.path().join("data");
        prepare_vault(work.path(), &data_dir, keys)?;
        let (settings, _terminal) = write_settings(work.path(), &data_dir)?;
        let size = std::fs::metadata(data_dir.join(keymother_vault::DATABASE_FILE))?.len();
        // The build before issue 19 checks the whole database before READY, logging nothing after.
        let mut builds = vec![("after", daemon.clone(), true)];
        if let Some(before) = &arguments.before {
            builds.insert(0, ("before", before.clone(), false));
        }
        for (name, binary, background) in builds {
            let warm = median(
                (0..arguments.runs)
                    .map(|_| start_once(&binary, &settings, false, background))
                    .collect::<anyhow::Result<Vec<_>>>()?,
            );
            let cold = if can_drop {
                let starts = (0..arguments.runs)
                    .map(|_| start_once(&binary, &settings, true, background))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                format!("{:.0} ms", median(starts).ready.as_secs_f64() * 1e3)
            } else {
                "—".to_owned()
            };
            println!(
                "| {keys} | {:.1} MiB | {name} | {:.0} ms | {cold} | {} | {} | {} |",
                size as f64 / (1024.0 * 1024.0),
                warm.ready.as_secs_f64() * 1e3,
                warm.background
                    .map(|time| format!("{:.0} ms", time.as_secs_f64() * 1e3))
                    .unwrap_or_else(|| "— (before READY)".to_owned()),
                mebibytes(warm.rss_ready),
                mebibytes(warm.rss_checked)
            );
        }
    }
    Ok(())
}

/// KiB as MiB for the table.
fn mebibytes(kibibytes: Option<u64>) -> String {
    kibibytes
        .map(|kib| format!("{:.1} MiB", kib as f64 / 1024.0))
        .unwrap_or_else(|| "—".to_owned())
}

/// A process's resident memory (VmRSS in /proc/PID/status), in KiB; None once it is gone.
fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line["VmRSS:".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The start with the median time to READY.
fn median(mut starts: Vec<Start>) -> Start {
    starts.sort_by_key(|start| start.ready);
    let middle = starts.len() / 2;
    starts.swap_remove(middle)
}

/// Empties the page cache (root only).
fn drop_caches() -> std::io::Result<()> {
    nix::unistd::sync();
    std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/sys/vm/drop_caches")?
        .write_all(b"3\n")
}

/// Starts keymotherd once (after dropping the page cache when `cold`), times exec to its
/// `event=ready` line, waits for the background check's `event=integrity-verified` line when
/// `background` (a build before issue 19 checks before READY and logs none) and stops it.
fn start_once(
    binary: &Path,
    settings: &Path,
    cold: bool,
    background: bool,
) -> anyhow::Result<Start> {
    if cold {
        drop_caches()?;
    }
    let started = Instant::now();
    let mut child = Command::new(binary)
        .arg("--config")
        .arg(settings)
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let outcome = read_start(&mut child, started, background);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id())?),
        nix::sys::signal::Signal::SIGTERM,
    );
    child.wait()?;
    outcome
}

fn read_start(child: &mut Child, started: Instant, background: bool) -> anyhow::Result<Start> {
    let pid = child.id();
    let log = BufReader::new(child.stderr.take().context("daemon stderr")?);
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in log.lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut ready = None;
    let mut rss_ready = None;
    let mut said = Vec::new();
    loop {
        let line = received.recv_timeout(Duration::from_secs(120)).with_context(|| {
            format!("keymotherd stopped talking before READY or before its background check (last lines: {})", said.join(" | "))
        })?;
        said.push(line.clone());
        if ready.is_none() && line.contains("event=ready") {
            ready = Some(started.elapsed());
            rss_ready = resident_kib(pid);
            if !background {
                break;
            }
        }
        if line.contains("event=integrity-verified") {
            let milliseconds: u64 = line
                .split("milliseconds=")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .context("no milliseconds= in the integrity line")?
                .parse()?;
            return Ok(Start {
                ready: ready.context("the check ended before READY")?,
                background: Some(Duration::from_millis(milliseconds)),
                rss_ready,
                rss_checked: resident_kib(pid),
            });
        }
    }
    Ok(Start {
        ready: ready.context("keymotherd did not become ready")?,
        background: None,
        rss_ready,
        rss_checked: None,
    })
}

/// A vault with a KEK, a TTK and `keys` master keys imported, as custodians would leave it.
fn prepare_vault(work: &Path, data_dir: &Path, keys: u32) -> anyhow::Result<()> {
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
    let options = GenerateOptions {
        batch_id: "BENCH-1".parse().map_err(anyhow::Error::msg)?,
        issuer: "BENCH".parse().map_err(anyhow::Error::msg)?,
        algorithm: KeyAlgorithm::Tdes2Key,
        record_count: keys,
        first_index: KeyIndex::new(1).context("index")?,
        device_id: DEVICE.parse().map_err(anyhow::Error::msg)?,
        created: CreatedAt::new(time::OffsetDateTime::now_utc()),
    };
    let file = work.join("batch.keys");
    std::fs::write(&file, FileLines::generated(&kek, &options)?.sealed(&kek))?;
    vault.import_key_file(&file, &mut |_| {})?;
    std::fs::remove_file(&file)?;
    Ok(())
}

/// Settings with one port on a pseudo-terminal (keymotherd needs one; no terminal talks on
/// it) and operator login off. The terminal's end is returned, to keep the port open.
fn write_settings(
    work: &Path,
    data_dir: &Path,
) -> anyhow::Result<(PathBuf, keymother_terminal::PtyLine)> {
    let link = work.join("tty0");
    let line = keymother_terminal::PtyLine::open_pair(&link)?;
    let text = format!(
        "data_dir = {:?}\n[control]\nsocket = {:?}\n[operator]\nrequire = false\n[[port]]\nname = \"bench-0\"\npath = {:?}\n",
        data_dir.display().to_string(),
        work.join("control.sock").display().to_string(),
        link.display().to_string()
    );
    let settings = work.join("keymotherd.toml");
    std::fs::write(&settings, text)?;
    Ok((settings, line))
}
