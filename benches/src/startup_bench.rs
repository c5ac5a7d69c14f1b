//! Start-up benchmark: keymotherd's time from exec to READY with 10,000, 100,000 and 1,000,000 keys in the vault, with the page cache warm and dropped, how long the background integrity check takes after READY, and the daemon's VmRSS at READY and after that check; with `--audit-rows`, the same with that many audit rows, before and after a last verified point of the chain.
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
    /// Instead of the key sizes: audit chain lengths to measure (rows appended one by one
    /// through `Vault::record_audit`, each a real chain row), with `--audit-keys` keys.
    #[arg(long, value_delimiter = ',')]
    audit_rows: Vec<u64>,
    /// Keys in the vault of the `--audit-rows` cases.
    #[arg(long, default_value_t = 10_000)]
    audit_keys: u32,
}

/// The journal line of the background integrity check, and of the background chain walk.
const INTEGRITY_LINE: &str = "event=integrity-verified";
const CHAIN_LINE: &str = "event=audit-chain-verified";

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
    let daemon = match arguments.daemon.clone() {
        Some(path) => path,
        None => std::env::current_exe()?.with_file_name("keymotherd"),
    };
    if !arguments.audit_rows.is_empty() {
        return audit_table(&arguments, &daemon);
    }
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
        let mut builds = vec![("after", daemon.clone(), Some(INTEGRITY_LINE))];
        if let Some(before) = &arguments.before {
            builds.insert(0, ("before", before.clone(), None));
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
/// `event=ready` line, waits for the background line `background` (`event=integrity-verified`
/// or `event=audit-chain-verified`; a build before issue 19 checks before READY and logs
/// none) and stops it.
fn start_once(
    binary: &Path,
    settings: &Path,
    cold: bool,
    background: Option<&str>,
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

fn read_start(
    child: &mut Child,
    started: Instant,
    background: Option<&str>,
) -> anyhow::Result<Start> {
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
            if background.is_none() {
                break;
            }
        }
        if let Some(wanted) = background
            && line.contains(wanted)
        {
            let milliseconds: u64 = line
                .split("milliseconds=")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .context("no milliseconds= in the background line")?
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

/// The `--audit-rows` table: for each chain length, exec to READY on a vault that has no last
/// verified point yet (the whole chain walked before READY), the background walk that
/// records the point, then exec to READY with it (the rows since it walked before READY).
/// With `--before`, that build first, on the same vault taken back to its schema (the
/// checkpoint table and the event index dropped). Warm page cache.
fn audit_table(arguments: &Arguments, daemon: &Path) -> anyhow::Result<()> {
    println!(
        "| audit rows | keys | database | before (--before build): exec to READY | no verified point yet: exec to READY | background chain walk after READY | with the verified point: exec to READY |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for &rows in &arguments.audit_rows {
        let work = tempfile::tempdir()?;
        let data_dir = work.path().join("data");
        let pristine = work.path().join("pristine");
        fill_audit_vault(work.path(), &pristine, arguments.audit_keys, rows)?;
        let (settings, _terminal) = write_settings(work.path(), &data_dir)?;
        let size = std::fs::metadata(pristine.join(keymother_vault::DATABASE_FILE))?.len();
        let mut old_build = Vec::new();
        if let Some(binary) = &arguments.before {
            for _ in 0..arguments.runs {
                copy_directory(&pristine, &data_dir)?;
                previous_schema(&data_dir)?;
                old_build.push(start_once(binary, &settings, false, None)?);
            }
        }
        let mut before = Vec::new();
        for _ in 0..arguments.runs {
            copy_directory(&pristine, &data_dir)?;
            before.push(start_once(daemon, &settings, false, None)?);
        }
        copy_directory(&pristine, &data_dir)?;
        let walk = start_once(daemon, &settings, false, Some(CHAIN_LINE))?;
        let after = (0..arguments.runs)
            .map(|_| start_once(daemon, &settings, false, None))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let milliseconds = |start: &Start| start.ready.as_secs_f64() * 1e3;
        let old_build = if old_build.is_empty() {
            "—".to_owned()
        } else {
            format!("{:.0} ms", milliseconds(&median(old_build)))
        };
        println!(
            "| {rows} | {} | {:.1} MiB | {old_build} | {:.0} ms | {} | {:.0} ms |",
            arguments.audit_keys,
            size as f64 / (1024.0 * 1024.0),
            milliseconds(&median(before)),
            walk.background
                .map(|time| format!("{:.0} ms", time.as_secs_f64() * 1e3))
                .unwrap_or_default(),
            milliseconds(&median(after)),
        );
    }
    Ok(())
}

/// A vault with `keys` keys and `rows` more audit rows, each appended by `Vault::record_audit`
/// (a logout, as a session's end records it): built in /dev/shm when it exists (one fsync per
/// row costs nothing there), then copied to `data_dir`.
fn fill_audit_vault(work: &Path, data_dir: &Path, keys: u32, rows: u64) -> anyhow::Result<()> {
    let shm = Path::new("/dev/shm");
    let scratch = if shm.is_dir() {
        Some(tempfile::tempdir_in(shm)?)
    } else {
        None
    };
    let build_dir = match &scratch {
        Some(scratch) => scratch.path().join("data"),
        None => data_dir.to_path_buf(),
    };
    prepare_vault(work, &build_dir, keys)?;
    let mut vault = Vault::open(&build_dir)?;
    for row in 0..rows {
        vault.record_audit(keymother_vault::AuditEvent::Logout {
            operator: format!("Operator {}", row % 16),
            reason: "logged out".to_owned(),
        })?;
    }
    drop(vault);
    if scratch.is_some() {
        copy_directory(&build_dir, data_dir)?;
    }
    Ok(())
}

/// Takes the vault in `data_dir` back to the schema before the last verified point (for a
/// build from before it, schema 12): its table and the event index, and the staged imports'
/// table (a later migration), dropped. (The state CHECK's rewrite, 14, an older build reads.)
fn previous_schema(data_dir: &Path) -> anyhow::Result<()> {
    let connection = rusqlite::Connection::open(data_dir.join(keymother_vault::DATABASE_FILE))?;
    connection.execute_batch(
        "DROP TABLE audit_checkpoint; DROP INDEX audit_log_by_event;
         DROP TRIGGER key_inventory_staged_batch_dispenses_nothing;
         DROP TRIGGER batch_withdrawal_not_of_a_staged_batch;
         DROP TRIGGER key_inventory_only_staged_keys_deleted;
         DROP TRIGGER batch_only_staged_deleted; DROP TABLE batch_staging;
         PRAGMA user_version = 12;",
    )?;
    Ok(())
}

/// Replaces `to` with a copy of the directory `from` (files only; modes kept).
fn copy_directory(from: &Path, to: &Path) -> anyhow::Result<()> {
    if to.exists() {
        std::fs::remove_dir_all(to)?;
    }
    std::fs::create_dir(to)?;
    std::fs::set_permissions(to, std::fs::metadata(from)?.permissions())?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}
