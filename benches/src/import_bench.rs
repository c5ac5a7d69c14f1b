//! Import benchmark: generate a large key file, import it in a child process, report time and peak memory, and the bare `sqlite3 .import` floor.
//!
//! Run with `scripts/bench-import` (which builds in release mode and installs the sqlite3
//! command-line tool if it is missing); the figures go to docs/BENCHMARKS.md.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Parser;
use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_keyfiles::{
    CreatedAt, GenerateOptions, KeyFileReader, KeyIndex, RecordOpener, SealKey, Stopped, generate,
    open_records_in_order,
};
use keymother_vault::{SecretName, Vault};
use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::time::TimeVal;

const DEVICE: &str = "KM-BENCH-0001";

#[derive(Parser)]
struct Arguments {
    /// Number of master keys in the generated file.
    #[arg(long, default_value_t = 1_000_000)]
    keys: u32,
    /// Master-key algorithm.
    #[arg(long, default_value = "TDES-2KEY")]
    algorithm: String,
    /// KEK algorithm (decides TR-31 version B or D for the records).
    #[arg(long, default_value = "AES-256")]
    kek_algorithm: String,
    /// Skip the `sqlite3 .import` floor measurement.
    #[arg(long)]
    skip_floor: bool,
    /// Also time the import's phases alone, in this process: reading the file with its seal
    /// and digest, then reading and opening every record on the worker threads without
    /// storing anything (what the database adds is the full import minus the second).
    #[arg(long)]
    phases: bool,
    /// Work in DIR (created; must not exist) and keep it: the vault in DIR/data, the file in
    /// DIR/bench.keys, so the import can be profiled on its own, e.g.
    /// `valgrind --tool=callgrind import-bench --import-child DIR/data DIR/bench.keys`.
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
    /// Stop after generating the vault and the file (with --keep, to profile the import).
    #[arg(long)]
    generate_only: bool,
    /// Internal: import FILE into the vault in DIR and report (run as a child process so
    /// its peak memory is the import's alone).
    #[arg(long, num_args = 2, value_names = ["DIR", "FILE"], hide = true)]
    import_child: Option<Vec<PathBuf>>,
}

/// Peak resident memory of this process in KiB (VmHWM), from /proc.
fn peak_resident_kib() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .context("no VmHWM in /proc/self/status")?;
    let kib = line
        .split_whitespace()
        .nth(1)
        .context("VmHWM without a value")?
        .parse()?;
    Ok(kib)
}

/// CPU seconds (user and system) used so far by `who`: on a machine shared with other work,
/// CPU time moves much less than wall-clock time, and the calling thread's share against the
/// whole process's tells whether the reader/database thread or the workers bound the import.
fn cpu_seconds(who: UsageWho) -> anyhow::Result<f64> {
    let usage = getrusage(who)?;
    let seconds = |time: TimeVal| time.tv_sec() as f64 + time.tv_usec() as f64 / 1e6;
    Ok(seconds(usage.user_time()) + seconds(usage.system_time()))
}

fn import_child(directory: &Path, file: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut vault = Vault::open(directory)?;
    let report = vault.import_key_file(file, &mut |_| {})?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "IMPORT records={} seconds={seconds:.3} cpu_s={:.3} main_thread_cpu_s={:.3} peak_kib={}",
        report.records,
        cpu_seconds(UsageWho::RUSAGE_SELF)?,
        cpu_seconds(UsageWho::RUSAGE_THREAD)?,
        peak_resident_kib()?
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let arguments = Arguments::parse();
    if let Some(paths) = &arguments.import_child {
        return import_child(&paths[0], &paths[1]);
    }
    let algorithm: KeyAlgorithm = arguments.algorithm.parse()?;
    let kek_algorithm: KeyAlgorithm = arguments.kek_algorithm.parse()?;
    let temporary;
    let work: &Path = match &arguments.keep {
        Some(directory) => {
            std::fs::create_dir(directory)
                .with_context(|| format!("creating {}", directory.display()))?;
            directory
        }
        None => {
            temporary = tempfile::tempdir()?;
            temporary.path()
        }
    };
    let data = work.join("data");
    let mut vault = Vault::create(&data, &DEVICE.parse().map_err(anyhow::Error::msg)?)?;
    let kek = SecretKey::generate(kek_algorithm)?;
    vault.install_secret(
        SecretName::Kek,
        &kek,
        &keymother_vault::CeremonyRecord::named(&["Ann Lee", "Raj Patel"])
            .map_err(anyhow::Error::msg)?,
    )?;
    drop(vault);

    let file = work.join("bench.keys");
    let options = GenerateOptions {
        batch_id: "BENCH-0001".parse().map_err(anyhow::Error::msg)?,
        issuer: "BENCH FRONT END".parse().map_err(anyhow::Error::msg)?,
        algorithm,
        record_count: arguments.keys,
        first_index: KeyIndex::new(1).context("index 1")?,
        device_id: DEVICE.parse().map_err(anyhow::Error::msg)?,
        created: CreatedAt::new(time::OffsetDateTime::now_utc()),
    };
    let started = Instant::now();
    let out = BufWriter::with_capacity(1 << 16, File::create(&file)?);
    let (mut out, _) = generate(out, &options, &kek, &mut |_| {})?;
    out.flush()?;
    let generate_seconds = started.elapsed().as_secs_f64();
    let file_bytes = std::fs::metadata(&file)?.len();
    if arguments.generate_only {
        println!(
            "generated {} and the vault {}",
            file.display(),
            data.display()
        );
        return Ok(());
    }
    let phases = if arguments.phases {
        Some(time_phases(&file, &kek)?)
    } else {
        None
    };

    let child = Command::new(std::env::current_exe()?)
        .arg("--import-child")
        .arg(&data)
        .arg(&file)
        .output()?;
    if !child.status.success() {
        bail!("import failed: {}", String::from_utf8_lossy(&child.stderr));
    }
    let report = String::from_utf8(child.stdout)?;
    let import_line = report
        .lines()
        .find(|line| line.starts_with("IMPORT "))
        .context("the import child printed no result")?;

    println!(
        "keys: {} {algorithm} under a {kek_algorithm} KEK",
        arguments.keys
    );
    println!("file: {:.1} MiB", file_bytes as f64 / 1_048_576.0);
    println!("generate (front end's writer): {generate_seconds:.3} s");
    if let Some(phases) = phases {
        println!(
            "phase: read the file (lines, seal, no records opened): {:.3} s (cpu {:.3} s)",
            phases.read, phases.read_cpu
        );
        println!(
            "phase: read and open every record on the workers (no database): {:.3} s (cpu {:.3} s)",
            phases.open, phases.open_cpu
        );
    }
    println!("import (verify seal, unwrap every key, check every KCV, store): {import_line}");
    let started = Instant::now();
    drop(Vault::open(&data)?);
    println!(
        "reopen (permissions, storage key, full integrity check, migrations): {:.3} s",
        started.elapsed().as_secs_f64()
    );
    let database_bytes = std::fs::metadata(data.join(keymother_vault::DATABASE_FILE))?.len();
    println!(
        "vault database: {:.1} MiB",
        database_bytes as f64 / 1_048_576.0
    );

    if !arguments.skip_floor {
        let (floor, floor_cpu) = sqlite_import_floor(work, &file)?;
        println!(
            "floor (sqlite3 .import of the same rows, no checks, one transaction): {floor:.3} s (cpu {floor_cpu:.3} s)"
        );
    }
    Ok(())
}

/// Seconds taken by the import's phases without the database.
struct Phases {
    read: f64,
    read_cpu: f64,
    open: f64,
    open_cpu: f64,
}

/// Times reading the file alone (every line checked, the seal verified), then reading and
/// opening every record on the worker threads as the import does, storing nothing.
fn time_phases(file: &Path, kek: &SecretKey) -> anyhow::Result<Phases> {
    let seal_key = SealKey::derive(kek);
    let open_reader = || -> anyhow::Result<KeyFileReader<BufReader<File>>> {
        let source = BufReader::with_capacity(1 << 16, File::open(file)?);
        Ok(KeyFileReader::open(source, "bench.keys", &seal_key)?)
    };
    let cpu = cpu_seconds(UsageWho::RUSAGE_SELF)?;
    let started = Instant::now();
    let mut reader = open_reader()?;
    let mut records = 0u32;
    while reader.next_record()?.is_some() {
        records += 1;
    }
    let read = started.elapsed().as_secs_f64();
    let read_cpu = cpu_seconds(UsageWho::RUSAGE_SELF)? - cpu;

    let cpu = cpu_seconds(UsageWho::RUSAGE_SELF)?;
    let started = Instant::now();
    let mut reader = open_reader()?;
    let opener = RecordOpener::new(kek, reader.header()).map_err(anyhow::Error::msg)?;
    let mut opened = 0u32;
    let outcome =
        open_records_in_order::<_, std::convert::Infallible>(&mut reader, &opener, &mut |_| {
            opened += 1;
            Ok(())
        });
    match outcome {
        Ok(()) => {}
        Err(Stopped::File(error)) => return Err(error.into()),
        Err(Stopped::Other(never)) => match never {},
    }
    let open = started.elapsed().as_secs_f64();
    let open_cpu = cpu_seconds(UsageWho::RUSAGE_SELF)? - cpu;
    if opened != records {
        bail!("opened {opened} records of {records}");
    }
    Ok(Phases {
        read,
        read_cpu,
        open,
        open_cpu,
    })
}

/// Times the sqlite3 shell importing the same rows into a table of the same shape, with no
/// checking at all: the least any import of these rows into SQLite can cost. Wall-clock and
/// CPU seconds of the sqlite3 process.
fn sqlite_import_floor(work: &Path, key_file: &Path) -> anyhow::Result<(f64, f64)> {
    let csv = work.join("rows.csv");
    let mut out = BufWriter::new(File::create(&csv)?);
    for line in BufReader::new(File::open(key_file)?).lines() {
        let line = line?;
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.len() == 3 && fields[0].bytes().all(|b| b.is_ascii_digit()) {
            writeln!(
                out,
                "{},BENCH-0001,0,{},{}",
                fields[0].trim_start_matches('0'),
                fields[1],
                fields[2]
            )?;
        }
    }
    out.flush()?;
    let database = work.join("floor.sqlite");
    let script = format!(
        "PRAGMA journal_mode=WAL;\nPRAGMA synchronous=FULL;\n\
         CREATE TABLE key_inventory (key_index INTEGER PRIMARY KEY, batch_id TEXT NOT NULL, \
         source_line INTEGER NOT NULL, key_block TEXT NOT NULL, kcv TEXT NOT NULL) STRICT;\n\
         .import --csv {} key_inventory\n",
        csv.display()
    );
    let children_cpu = cpu_seconds(UsageWho::RUSAGE_CHILDREN)?;
    let started = Instant::now();
    let output = Command::new("sqlite3")
        .arg(&database)
        .arg("-bail")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            if let Some(stdin) = child.stdin.as_mut() {
                stdin.write_all(script.as_bytes())?;
            }
            child.wait_with_output()
        })
        .context("running sqlite3 (scripts/bench-import installs it)")?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(UsageWho::RUSAGE_CHILDREN)? - children_cpu;
    if !output.status.success() {
        bail!(
            "sqlite3 failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok((seconds, cpu))
}
