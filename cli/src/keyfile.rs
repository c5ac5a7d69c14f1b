//! Key files on the command line: the front end's writer (generate), a header viewer (inspect), the front end's checks of the SMN, DUKPT and reconciliation exports (verify-*-export), and its sealing of expected-device lists (seal-expected-list).

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use keymother_crypto::SecretKey;
use keymother_keyfiles::{CreatedAt, GenerateOptions, KeyIndex, generate, peek_header};

use crate::arguments::argument_error;
use crate::custodian::parse_algorithm;
use crate::prompt::read_secret;

#[derive(Subcommand)]
pub enum KeyfileCommand {
    /// Generates random master keys under a KEK and writes a sealed key file (the front end's side).
    Generate {
        /// The KEK's algorithm; the KEK itself is typed without echo (or piped on stdin).
        #[arg(long)]
        kek_alg: String,
        /// The master keys' algorithm.
        #[arg(long = "alg")]
        algorithm: String,
        /// How many master keys.
        #[arg(long)]
        count: u32,
        /// Index of the first key; the others follow consecutively.
        #[arg(long, default_value_t = 1)]
        first_index: u32,
        /// The appliance the file is for.
        #[arg(long)]
        device_id: String,
        /// Batch id, unique per appliance.
        #[arg(long)]
        batch_id: String,
        /// Who issues the file.
        #[arg(long)]
        issuer: String,
        /// Where to write the file (written to a temporary name, then renamed).
        #[arg(long)]
        out: PathBuf,
    },
    /// Shows a key file's header without importing it (the seal is not checked).
    Inspect {
        /// The key file.
        file: PathBuf,
    },
    /// The front end's side of an SMN export: checks its seal under the KEK and lists it.
    VerifySmnExport {
        /// The KEK's algorithm; the KEK itself is typed without echo (or piped on stdin).
        #[arg(long)]
        kek_alg: String,
        /// The SMN export file.
        file: PathBuf,
    },
    /// The front end's side of a DUKPT export: checks its seal under the KEK and lists it.
    VerifyDukptExport {
        /// The KEK's algorithm; the KEK itself is typed without echo (or piped on stdin).
        #[arg(long)]
        kek_alg: String,
        /// The DUKPT export file.
        file: PathBuf,
    },
    /// The front end's side of a reconciliation export (`keymother reconcile --export`):
    /// checks its seal under the KEK and lists it with each list's counts.
    VerifyReconcileExport {
        /// The KEK's algorithm; the KEK itself is typed without echo (or piped on stdin).
        #[arg(long)]
        kek_alg: String,
        /// The reconciliation export file.
        file: PathBuf,
    },
    /// The front end's side of an expected-device list: seals a plain list (`serial` or
    /// `serial,model` and its rows) for one appliance under the KEK.
    SealExpectedList {
        /// The KEK's algorithm; the KEK itself is typed without echo (or piped on stdin).
        #[arg(long)]
        kek_alg: String,
        /// The appliance the list is for.
        #[arg(long)]
        device_id: String,
        /// The plain list.
        file: PathBuf,
        /// Where to write the sealed list (written to a temporary name, then renamed).
        #[arg(long)]
        out: PathBuf,
    },
}

/// Generation options from command-line text, each error naming its argument.
pub fn options(
    algorithm: &str,
    count: u32,
    first_index: u32,
    device_id: &str,
    batch_id: &str,
    issuer: &str,
) -> anyhow::Result<GenerateOptions> {
    Ok(GenerateOptions {
        batch_id: batch_id
            .parse()
            .map_err(|e| argument_error("--batch-id", e))?,
        issuer: issuer.parse().map_err(|e| argument_error("--issuer", e))?,
        algorithm: parse_algorithm(algorithm)?,
        record_count: count,
        first_index: KeyIndex::new(first_index)
            .ok_or_else(|| argument_error("--first-index", "must be at most 99999999"))?,
        device_id: device_id
            .parse()
            .map_err(|e| argument_error("--device-id", e))?,
        created: CreatedAt::new(time::OffsetDateTime::now_utc()),
    })
}

/// Writes a generated key file atomically (a temporary file in the same directory, renamed);
/// `announce` shows a progress bar and a summary line.
pub fn write_key_file(
    out: &Path,
    options: &GenerateOptions,
    kek: &SecretKey,
    announce: bool,
) -> anyhow::Result<()> {
    let directory = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let temporary = tempfile::NamedTempFile::new_in(directory)?;
    let bar = if announce {
        ProgressBar::new(u64::from(options.record_count))
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("writing  {bar:40} {pos}/{len} keys ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let writer = BufWriter::with_capacity(1 << 16, temporary.as_file());
    let (writer, generated) = generate(writer, options, kek, &mut |done| {
        bar.set_position(u64::from(done));
    })?;
    drop(writer);
    bar.finish_and_clear();
    temporary.as_file().sync_all()?;
    temporary.persist(out).map_err(|error| error.error)?;
    if !announce {
        return Ok(());
    }
    println!(
        "wrote {}: batch {}, {} {} {}, indexes {}..{}, device {}, KEK KCV {}",
        out.display(),
        generated.header.batch_id,
        generated.header.record_count,
        generated.header.algorithm,
        if generated.header.record_count == 1 {
            "key"
        } else {
            "keys"
        },
        generated.first_index,
        generated.last_index,
        generated.header.device_id,
        generated.header.kek_kcv
    );
    Ok(())
}

/// An export file opened for reading, with its name, and the KEK typed without echo.
fn export_and_kek(kek_alg: &str, file: &Path) -> anyhow::Result<(String, File, SecretKey)> {
    let kek_algorithm: keymother_crypto::KeyAlgorithm = kek_alg
        .parse()
        .map_err(|e| argument_error("--kek-alg", e))?;
    let name = file.display().to_string();
    let source = File::open(file).map_err(|error| argument_error(&name, error))?;
    let kek_hex = read_secret(&format!("KEK ({kek_algorithm}, hex, not shown): "))?;
    let kek = SecretKey::from_hex(kek_algorithm, &kek_hex)
        .map_err(|error| argument_error("KEK", error))?;
    Ok((name, source, kek))
}

pub fn run(command: KeyfileCommand) -> anyhow::Result<()> {
    match command {
        KeyfileCommand::Generate {
            kek_alg,
            algorithm,
            count,
            first_index,
            device_id,
            batch_id,
            issuer,
            out,
        } => {
            let kek_algorithm: keymother_crypto::KeyAlgorithm = kek_alg
                .parse()
                .map_err(|e| argument_error("--kek-alg", e))?;
            let options = options(
                &algorithm,
                count,
                first_index,
                &device_id,
                &batch_id,
                &issuer,
            )?;
            let kek_hex = read_secret(&format!("KEK ({kek_algorithm}, hex, not shown): "))?;
            let kek = SecretKey::from_hex(kek_algorithm, &kek_hex)
                .map_err(|error| argument_error("KEK", error))?;
            write_key_file(&out, &options, &kek, true)
        }
        KeyfileCommand::VerifySmnExport { kek_alg, file } => {
            let (name, source, kek) = export_and_kek(&kek_alg, &file)?;
            let verified = keymother_vault::verify_smn_export(BufReader::new(source), &name, &kek)?;
            let count = verified.rows.len();
            let noun = if count == 1 { "row" } else { "rows" };
            println!("{name}: seal verifies, {count} SMN {noun}");
            for row in &verified.rows {
                println!(
                    "{}  serial {}  key {:08}  KCV {}",
                    row.smn, row.hardware_serial, row.key_index, row.kcv
                );
            }
            Ok(())
        }
        KeyfileCommand::VerifyDukptExport { kek_alg, file } => {
            let (name, source, kek) = export_and_kek(&kek_alg, &file)?;
            let verified =
                keymother_vault::verify_dukpt_export(BufReader::new(source), &name, &kek)?;
            println!(
                "{name}: seal verifies, {} DUKPT {} (device {}, exported {})",
                verified.rows.len(),
                if verified.rows.len() == 1 {
                    "row"
                } else {
                    "rows"
                },
                verified.device_id,
                verified.exported_at
            );
            for row in &verified.rows {
                println!(
                    "{}  BDK {} ({})  device {}  {}  KCV {}  serial {}  port {}  model {}  operator {}  {}",
                    row.initial_ksn,
                    row.bdk,
                    row.bdk_id,
                    row.device_id,
                    row.key_type,
                    row.kcv,
                    row.hardware_serial,
                    row.port,
                    row.terminal_model,
                    row.operator.as_deref().unwrap_or("-"),
                    row.injected_at
                );
            }
            Ok(())
        }
        KeyfileCommand::VerifyReconcileExport { kek_alg, file } => {
            let (name, source, kek) = export_and_kek(&kek_alg, &file)?;
            let verified =
                keymother_vault::verify_reconcile_export(BufReader::new(source), &name, &kek)?;
            println!(
                "{name}: seal verifies, {} reconciliation {} (device {}, exported {})",
                verified.rows.len(),
                if verified.rows.len() == 1 {
                    "row"
                } else {
                    "rows"
                },
                verified.device_id,
                verified.exported_at
            );
            for (list, [injected, pending, missing, refused]) in verified.counts() {
                println!(
                    "list {list}: injected {injected}, pending {pending}, missing {missing}, refused {refused}"
                );
            }
            for row in &verified.rows {
                println!("{}", row.line());
            }
            Ok(())
        }
        KeyfileCommand::SealExpectedList {
            kek_alg,
            device_id,
            file,
            out,
        } => seal_expected_list(&kek_alg, &device_id, &file, &out),
        KeyfileCommand::Inspect { file } => {
            let name = file.display().to_string();
            let source = File::open(&file).map_err(|error| argument_error(&name, error))?;
            let header = peek_header(BufReader::new(source), &name)?;
            println!("batch-id      {}", header.batch_id);
            println!("issuer        {}", header.issuer);
            println!("algorithm     {}", header.algorithm);
            println!("record-count  {}", header.record_count);
            println!("device-id     {}", header.device_id);
            println!("kek-kcv       {}", header.kek_kcv);
            println!("created       {}", header.created);
            println!("(seal not checked: that needs the KEK; import checks it)");
            Ok(())
        }
    }
}

/// Seals the plain list `file` for `device_id` under the KEK typed without echo, and writes it
/// atomically to `out`.
fn seal_expected_list(
    kek_alg: &str,
    device_id: &str,
    file: &Path,
    out: &Path,
) -> anyhow::Result<()> {
    let device_id = device_id
        .parse()
        .map_err(|e| argument_error("--device-id", e))?;
    let name = file.display().to_string();
    let plain = std::fs::read(file).map_err(|error| argument_error(&name, error))?;
    let (_, source, kek) = export_and_kek(kek_alg, file)?;
    drop(source);
    // The plain list must read as one before it is sealed; its errors name the line.
    keymother_vault::read_list_file(&plain, &name, &device_id, || {
        Err("a sealed list cannot be sealed again".to_owned())
    })?;
    let text = String::from_utf8(plain).map_err(|_| argument_error(&name, "not ASCII"))?;
    // A spreadsheet's byte order mark belongs at the start of a file, not on line 4.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let sealed = keymother_vault::seal_expected_list(text, &device_id, &kek);
    let directory = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let temporary = tempfile::NamedTempFile::new_in(directory)?;
    std::fs::write(temporary.path(), sealed.as_bytes())?;
    temporary.as_file().sync_all()?;
    temporary.persist(out).map_err(|error| error.error)?;
    println!(
        "wrote {}: sealed for device {device_id} under the KEK with check value {}",
        out.display(),
        kek.kcv()
    );
    Ok(())
}
