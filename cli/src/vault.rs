//! Offline vault commands on a data directory: creating the vault, and maintenance while keymotherd is stopped.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use keymother_vault::{
    ComponentEntry, FailedCeremony, ImportReport, InventorySummary, SecretName, Vault,
    check_ceremony,
};

use crate::arguments::argument_error;
use crate::custodian::{CeremonyArguments, print_combined};

#[derive(Subcommand)]
pub enum VaultCommand {
    /// Creates a vault bound to a device id, with a fresh storage key.
    Init {
        #[arg(long)]
        data_dir: PathBuf,
        /// The appliance's device id (A-Z 0-9 -), to which key files are bound.
        #[arg(long)]
        device_id: String,
    },
    /// Key ceremony: custodians type their components; the combined key is sealed in the vault.
    Ceremony {
        #[arg(long)]
        data_dir: PathBuf,
        #[command(flatten)]
        ceremony: CeremonyArguments,
    },
    /// Imports a key file: all records or none.
    Import {
        #[arg(long)]
        data_dir: PathBuf,
        /// The key file.
        file: PathBuf,
    },
    /// Counts keys per state and per batch.
    Inventory {
        #[arg(long)]
        data_dir: PathBuf,
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
        "imported batch {} from {}: {} {} keys, indexes {:08}..{:08}, file SHA-256 {}",
        report.batch_id,
        report.issuer,
        report.records,
        report.algorithm,
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
    println!("keys: {} ({})", summary.total(), states.join(", "));
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
        VaultCommand::Inventory { data_dir } => {
            let vault = Vault::open_as_owner(&data_dir)?;
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
