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
use keymother_keyfiles::{CreatedAt, GenerateOptions, KeyIndex, generate};
use keymother_vault::{SecretName, Vault};

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

fn import_child(directory: &Path, file: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut vault = Vault::open(directory)?;
    let report = vault.import_key_file(file, &mut |_| {})?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "IMPORT records={} seconds={seconds:.3} peak_kib={}",
        report.records,
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
    let work = tempfile::tempdir()?;
    let data = work.path().join("data");
    let mut vault = Vault::create(&data, &DEVICE.parse().map_err(anyhow::Error::msg)?)?;
    let kek = SecretKey::generate(kek_algorithm)?;
    vault.install_secret(
        SecretName::Kek,
        &kek,
        &keymother_vault::CeremonyRecord::named(&["Ann Lee", "Raj Patel"])
            .map_err(anyhow::Error::msg)?,
    )?;
    drop(vault);

    let file = work.path().join("bench.keys");
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
        let floor = sqlite_import_floor(work.path(), &file)?;
        println!(
            "floor (sqlite3 .import of the same rows, no checks, one transaction): {floor:.3} s"
        );
    }
    Ok(())
}

/// Times the sqlite3 shell importing the same rows into a table of the same shape, with no
/// checking at all: the least any import of these rows into SQLite can cost.
fn sqlite_import_floor(work: &Path, key_file: &Path) -> anyhow::Result<f64> {
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
    if !output.status.success() {
        bail!(
            "sqlite3 failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(seconds)
}
