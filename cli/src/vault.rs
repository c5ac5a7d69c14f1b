//! Offline vault commands on a data directory: creating the vault, and maintenance while keymotherd is stopped.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use keymother_keyfiles::DeviceId;
use keymother_vault::{
    ComponentEntry, FailedCeremony, HeadMacStatus, ImportReport, InventorySummary, SecretName,
    Vault, check_ceremony,
};

use crate::arguments::argument_error;
use crate::custodian::{CeremonyArguments, print_combined};

#[derive(Subcommand)]
pub enum VaultCommand {
    /// Creates a vault bound to a device id, with a fresh storage key.
    Init {
        /// The vault's data directory (keymotherd's data_dir, e.g. /var/lib/keymother).
        #[arg(long)]
        data_dir: PathBuf,
        /// The appliance's device id (A-Z 0-9 -), to which key files are bound.
        #[arg(long)]
        device_id: String,
    },
    /// Key ceremony: custodians type their components; the combined key is sealed in the vault.
    Ceremony {
        /// The vault's data directory (keymotherd's data_dir, e.g. /var/lib/keymother).
        #[arg(long)]
        data_dir: PathBuf,
        #[command(flatten)]
        ceremony: CeremonyArguments,
    },
    /// Imports a key file: all records or none.
    Import {
        /// The vault's data directory (keymotherd's data_dir, e.g. /var/lib/keymother).
        #[arg(long)]
        data_dir: PathBuf,
        /// The key file.
        file: PathBuf,
    },
    /// Counts keys per state and per batch.
    Inventory {
        /// The vault's data directory (keymotherd's data_dir, e.g. /var/lib/keymother).
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// After a zeroize: archives the zeroized vault read-only beside a fresh one (new storage
    /// key, no keys), whose audit chain starts by naming the archive and its last row; audited.
    Recommission {
        /// The vault's data directory (keymotherd's data_dir, e.g. /var/lib/keymother).
        #[arg(long)]
        data_dir: PathBuf,
        /// Why (recorded in the new audit trail).
        #[arg(long)]
        reason: String,
        /// The security officer's name (recorded as the actor).
        #[arg(long)]
        officer: String,
        /// The new vault's device id; the zeroized vault's when not given.
        #[arg(long)]
        device_id: Option<String>,
    },
    /// Verifies the audit chain of a vault: a data directory, or an archive left by
    /// recommission (also checked against the row of the vault that succeeded it).
    AuditVerify {
        /// A data directory, or an archived vault file (vault-zeroized-DATE.sqlite).
        #[arg(long)]
        vault: PathBuf,
    },
    /// Writes the audit trail of a vault (a data directory or an archived vault file).
    AuditExport {
        /// A data directory, or an archived vault file.
        #[arg(long)]
        vault: PathBuf,
        /// Where to write it; an existing file is not replaced without --force.
        #[arg(long)]
        out: PathBuf,
        /// Replace the file if it exists.
        #[arg(long)]
        force: bool,
    },
}

/// Imports with a progress bar on the terminal.
pub fn import_with_progress(vault: &mut Vault, file: &Path) -> anyhow::Result<ImportReport> {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("importing {bar:40} {pos}/{len} keys ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let report = vault.import_key_file(file, &mut |progress| {
        bar.set_length(u64::from(progress.records_total));
        bar.set_position(u64::from(progress.records_done));
    });
    bar.finish_and_clear();
    Ok(report?)
}

pub fn print_report(report: &ImportReport) {
    println!(
        "imported batch {} from {}: {} {} {}, indexes {:08}..{:08}, file SHA-256 {}",
        report.batch_id,
        report.issuer,
        report.records,
        report.algorithm,
        if report.records == 1 { "key" } else { "keys" },
        report.first_index,
        report.last_index,
        report.file_sha256
    );
}

pub fn print_inventory(summary: &InventorySummary) {
    let states: Vec<String> = summary
        .by_state
        .iter()
        .map(|(state, count)| format!("{state} {count}"))
        .collect();
    let erased = if summary.erased > 0 {
        format!(", erased by the zeroize {}", summary.erased)
    } else {
        String::new()
    };
    println!("keys: {} ({}{erased})", summary.total(), states.join(", "));
    for batch in &summary.batches {
        println!(
            "  batch {:<20} {:<10} {:>9} keys, {:>9} available, imported {}",
            batch.batch_id, batch.algorithm, batch.record_count, batch.available, batch.imported_at
        );
    }
}

/// A ceremony on a vault keymotherd does not hold: checked, combined and sealed here; a
/// refusal after the components were entered is recorded (`ceremony-refused`) as the daemon
/// records it.
fn offline_ceremony(data_dir: &Path, arguments: &CeremonyArguments) -> anyhow::Result<()> {
    // The vault first: no custodian types a component for a vault keymotherd owns.
    let mut vault = Vault::open_as_owner(data_dir)?;
    let plan = arguments.plan()?;
    if let Some(loaded) = vault.secret_info(plan.name)? {
        if !plan.replace {
            return Err(crate::custodian::replacement_refused(
                &plan.name.to_string(),
                &loaded.kcv.to_string(),
                &loaded.loaded_at,
            ));
        }
    }
    let entries = arguments.read_entries(&plan)?;
    let outcome = (|| -> Result<_, String> {
        let typed: Vec<ComponentEntry<'_>> = entries
            .iter()
            .map(|entry| ComponentEntry {
                custodian: &entry.custodian,
                component_hex: entry.component.expose_secret(),
                form_kcv: entry.kcv.as_deref(),
            })
            .collect();
        let checked = check_ceremony(
            plan.algorithm.name(),
            plan.expect_kcv.as_deref(),
            &typed,
            plan.replace,
            None,
        )?;
        let combined = checked.combine()?;
        let installed = vault
            .install_secret(plan.name, &combined.key, &checked.record)
            .map_err(|error| error.to_string())?;
        Ok((combined, installed))
    })();
    let (combined, installed) = match outcome {
        Ok(done) => done,
        Err(reason) => {
            vault.record_failed_ceremony(&FailedCeremony {
                secret: plan.name.to_string(),
                custodians: entries
                    .iter()
                    .map(|entry| entry.custodian.clone())
                    .collect(),
                reason: reason.clone(),
                peer: None,
            })?;
            anyhow::bail!(
                "{} ceremony refused (recorded in the audit trail): {reason}",
                plan.name
            );
        }
    };
    print_combined(&combined);
    println!(
        "{} loaded: {} from {} components, KCV {}",
        installed.name, installed.algorithm, installed.component_count, installed.kcv
    );
    Ok(())
}

pub fn run(command: VaultCommand) -> anyhow::Result<()> {
    match command {
        VaultCommand::Init {
            data_dir,
            device_id,
        } => {
            let device_id = device_id
                .parse()
                .map_err(|error| argument_error("--device-id", error))?;
            let vault = Vault::create(&data_dir, &device_id)?;
            println!(
                "created vault for device {} in {}",
                vault.device_id(),
                data_dir.display()
            );
            Ok(())
        }
        VaultCommand::Ceremony { data_dir, ceremony } => offline_ceremony(&data_dir, &ceremony),
        VaultCommand::Import { data_dir, file } => {
            let mut vault = Vault::open_as_owner(&data_dir)?;
            let report = import_with_progress(&mut vault, &file)?;
            print_report(&report);
            Ok(())
        }
        VaultCommand::Recommission {
            data_dir,
            reason,
            officer,
            device_id,
        } => recommission(&data_dir, &reason, &officer, device_id.as_deref()),
        VaultCommand::AuditVerify { vault } => audit_verify(&vault),
        VaultCommand::AuditExport { vault, out, force } => {
            crate::client::check_destination(&out, force)?;
            let report = open_to_read(&vault)?.export_audit(&out)?;
            println!(
                "exported {} audit {} to {} ({})",
                report.rows,
                if report.rows == 1 { "row" } else { "rows" },
                out.display(),
                report.verification
            );
            Ok(())
        }
        VaultCommand::Inventory { data_dir } => {
            let vault = match Vault::open_as_owner(&data_dir) {
                Err(keymother_vault::VaultError::Zeroized(_)) => {
                    println!("the vault was zeroized");
                    Vault::open_zeroized_as_owner(&data_dir)?
                }
                opened => opened?,
            };
            for name in SecretName::ALL {
                match vault.secret_info(name)? {
                    Some(info) => println!(
                        "{name}: {} KCV {} ({} components, loaded {})",
                        info.algorithm, info.kcv, info.component_count, info.loaded_at
                    ),
                    None => println!("{name}: not loaded"),
                }
            }
            print_inventory(&vault.inventory()?);
            Ok(())
        }
    }
}

fn recommission(
    data_dir: &Path,
    reason: &str,
    officer: &str,
    device_id: Option<&str>,
) -> anyhow::Result<()> {
    let device_id: Option<DeviceId> = device_id
        .map(|text| text.parse())
        .transpose()
        .map_err(|error| argument_error("--device-id", error))?;
    let (_vault, done) = Vault::recommission(data_dir, device_id.as_ref(), reason, officer)?;
    let predecessor = &done.predecessor;
    println!(
        "archived the zeroized vault of {} as {} (read-only, SHA-256 {})",
        predecessor.device_id,
        done.archive.display(),
        predecessor.archive_sha256
    );
    println!(
        "its audit chain ends at row {} (hash {}); verify it with: keymother vault audit-verify --vault {}",
        predecessor.last_sequence,
        predecessor.last_hash,
        done.archive.display()
    );
    println!(
        "new vault for device {} in {}: audit row {} names the archive; run the KEK and TTK ceremonies next",
        done.device_id,
        data_dir.display(),
        predecessor.audit_sequence
    );
    Ok(())
}

/// A vault to read: an archived vault file, or the vault in a data directory.
fn open_to_read(path: &Path) -> anyhow::Result<Vault> {
    Ok(if path.is_file() {
        Vault::open_archive(path)?
    } else {
        Vault::open_for_audit(path)?
    })
}

fn audit_verify(path: &Path) -> anyhow::Result<()> {
    let report = open_to_read(path)?
        .verify_audit()
        .map_err(|failure| anyhow::anyhow!("the audit chain does not verify: {failure}"))?;
    let mac = match report.head_mac {
        HeadMacStatus::Verified => "verified",
        HeadMacStatus::NotChecked => "not checked: no storage key",
    };
    println!(
        "audit trail verifies: {} {}, head {} (head MAC {mac})",
        report.rows,
        if report.rows == 1 { "row" } else { "rows" },
        report.head_hash
    );
    if !path.is_file() {
        return Ok(());
    }
    // An archive: the vault beside it that succeeded it recorded where its chain ended.
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let linked = match Vault::open_for_audit(directory) {
        Ok(successor) => successor.check_archive_link(path)?,
        Err(_) => false,
    };
    if linked {
        println!(
            "linked: the vault in {} succeeded this archive and recorded this file and this head",
            directory.display()
        );
    } else {
        println!(
            "no successor beside it names this archive: compare the head with the recommission row of the vault that succeeded it"
        );
    }
    Ok(())
}
