//! The `keymother` commands that operate the running appliance through keymotherd's control socket, with typed answers.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use keymother_control as api;

use crate::client::{call, download, open_regular, upload};
use crate::custodian::CeremonyArguments;

pub use crate::client::DEFAULT_SOCKET;

#[derive(Subcommand)]
pub enum DaemonCommand {
    /// The appliance's state: keys, secrets, ports.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Key ceremony: custodians type their components (never echoed); the daemon combines
    /// them and seals the result.
    Ceremony(CeremonyArguments),
    /// Imports a key file: this command reads it (as you) and streams it to the daemon,
    /// which stores all its records or none. Ctrl-C cancels the import.
    Import {
        /// The key file (e.g. on the USB stick).
        file: PathBuf,
    },
    /// Keys per state and per batch.
    Inventory(crate::registry::InventoryArguments),
    /// The SMN registry: one row per confirmed injection.
    Smn(crate::registry::SmnArguments),
    /// Writes the sealed SMN file for the front end's terminal table (e.g. onto a USB stick);
    /// its rows are marked exported once the file is written.
    ExportSmn {
        /// Where to write it; an existing file is not replaced without --force.
        #[arg(long)]
        out: PathBuf,
        /// Only rows not exported before.
        #[arg(long)]
        only_new: bool,
        /// Replace the file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Writes the sealed DUKPT file for the front end: one row per confirmed DUKPT injection
    /// (e.g. onto a USB stick); its rows are marked exported once the file is written.
    ExportDukpt {
        /// Where to write it; an existing file is not replaced without --force.
        #[arg(long)]
        out: PathBuf,
        /// Only rows not exported before.
        #[arg(long)]
        only_new: bool,
        /// Replace the file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// The hash-chained audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The appliance's KDH identity for certificate mode.
    #[command(subcommand)]
    Kdh(crate::kdh::KdhCommand),
    /// DUKPT base derivation keys: load one in a custodian ceremony, or show them.
    #[command(subcommand)]
    Bdk(crate::bdk::BdkCommand),
    /// Expected-device lists for injection runs (PCI PIN 30-3): import a run's serials,
    /// close the list when the run ends.
    #[command(subcommand)]
    Expected(crate::expected::ExpectedCommand),
    /// Per expected-device list: what was injected, what is pending, what is missing, and
    /// which serials were refused; or, with --export, the sealed file for the front end.
    Reconcile(crate::expected::ReconcileArguments),
    /// Key batches: withdraw the unused rest of one.
    #[command(subcommand)]
    Batch(crate::batch::BatchCommand),
    /// Voids a key that was sent but never confirmed, so it can never be used; audited.
    /// Name the key by its index, or the terminal by its hardware serial.
    #[command(group(clap::ArgGroup::new("key").required(true).args(["key_index", "index", "serial"])))]
    Void {
        /// The key index (the same as --index).
        key_index: Option<u32>,
        /// The key index.
        #[arg(long, value_name = "KEY_INDEX")]
        index: Option<u32>,
        /// The hardware serial of the terminal whose one pending master key is voided.
        #[arg(long, value_name = "SERIAL")]
        serial: Option<String>,
        /// Why (recorded in the audit trail).
        #[arg(long)]
        reason: String,
    },
    /// The keys reserved or sent to a terminal and never confirmed: key, serial, state,
    /// port, model, age and operator.
    Pending(crate::pending::PendingArguments),
    /// Injections, failures, pending and voided keys of a shift, a day or a period, per
    /// operator, batch, terminal model and port.
    Report(crate::report::ReportArguments),
    /// Destroys the KEK, the TTK, the storage key and every master key on the appliance.
    Zeroize {
        /// The appliance's device id, typed out to show this is meant.
        #[arg(long)]
        confirm: String,
        /// Why (recorded in the audit trail).
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Checks every row's hash, the links between rows and the head.
    Verify,
    /// Writes the trail with its hashes for the security officer.
    Export {
        /// Where to write it; an existing file is not replaced without --force.
        #[arg(long)]
        out: PathBuf,
        /// Replace the file if it exists.
        #[arg(long)]
        force: bool,
    },
}

fn print_counts(keys: &BTreeMap<String, u64>) {
    let parts: Vec<String> = keys
        .iter()
        .map(|(state, count)| format!("{state} {count}"))
        .collect();
    println!("keys: {}", parts.join(", "));
}

/// "state: ready", or the state and what holds the keys back.
fn state_line(status: &api::StatusReport) -> String {
    match status.state {
        api::ApplianceState::Ready => "state: ready: keys flow".to_owned(),
        api::ApplianceState::Locked => {
            "state: locked: load the KEK and the TTK (keymother ceremony)".to_owned()
        }
        api::ApplianceState::Waiting => format!("state: waiting: {}", status.reason),
        api::ApplianceState::Tampered => format!("state: tampered: {}", status.reason),
        api::ApplianceState::Zeroized => format!("state: zeroized: {}", status.reason),
        api::ApplianceState::Damaged => format!("state: damaged: {}", status.reason),
    }
}

/// Whether the tamper input is watched, and whether keys wait for it.
fn tamper_input_line(tamper_input: &api::TamperInput) -> String {
    let input = tamper_input.input.as_deref().unwrap_or("?");
    match tamper_input.state {
        api::TamperInputState::Watched => format!("tamper input: {input}, watched"),
        api::TamperInputState::NotWatched => format!(
            "tamper input: {input}, NOT WATCHED: {}; {}",
            tamper_input.reason.as_deref().unwrap_or("no reason given"),
            if tamper_input.required {
                "no key is dispensed until it is back"
            } else {
                "keys still flow ([bench] require_tamper_input = false)"
            }
        ),
        api::TamperInputState::None => "tamper input: none ([bench] gpio = \"none\")".to_owned(),
    }
}

fn print_status(status: &api::StatusReport) {
    println!("device {}", status.device_id);
    println!("{}", state_line(status));
    for (name, secret) in &status.secrets {
        match secret {
            None => println!("{name}: not loaded"),
            Some(secret) => println!(
                "{name}: {} KCV {} ({} components, loaded {})",
                secret.algorithm, secret.kcv, secret.components, secret.loaded_at
            ),
        }
    }
    println!("{}", crate::operator::operator_line(status));
    print_counts(&status.keys);
    for (port, state) in &status.ports {
        println!("port {port}: {state}");
    }
    println!("{}", tamper_input_line(&status.tamper_input));
    println!("{}", crate::clock::clock_line(&status.clock));
    println!("SMN rows: {}", status.smn_rows);
    for line in status_facts(status) {
        println!("{line}");
    }
}

/// The facts of `status --json` the lines above leave out or only imply, one line each, so
/// that the text and the JSON say the same.
fn status_facts(status: &api::StatusReport) -> Vec<String> {
    let yes_no = |value: bool| if value { "yes" } else { "no" };
    let available = match status.keys.get("available").copied().unwrap_or(0) {
        1 => "1 key".to_owned(),
        count => format!("{count} keys"),
    };
    let mut facts = vec![
        format!("control protocol version: {}", status.control_version),
        format!(
            "key ceremonies done (KEK and TTK loaded): {}",
            yes_no(status.ready)
        ),
        format!("tampered: {}", status.tampered.as_deref().unwrap_or("no")),
        format!(
            "operator login required: {}; operator CA configured: {}",
            yes_no(status.operator_required),
            yes_no(status.operator_ca)
        ),
        format!(
            "tamper input required: {}",
            yes_no(status.tamper_input.required)
        ),
        format!(
            "clock trusted: {}; trusted clock required: {}",
            yes_no(status.clock.trusted),
            yes_no(status.clock.required)
        ),
        format!("injections since start: {}", status.injections_since_start),
        if status.low_inventory {
            format!(
                "low inventory: yes: {available} available, fewer than {} (import a key file)",
                status.low_inventory_threshold
            )
        } else {
            format!(
                "low inventory: no: {available} available, the warning starts below {}",
                status.low_inventory_threshold
            )
        },
    ];
    if let Some(session) = &status.operator {
        facts.push(format!("operator certificate subject: {}", session.subject));
    }
    facts
}

fn ceremony(socket: &Path, arguments: CeremonyArguments) -> anyhow::Result<()> {
    let plan = arguments.plan()?;
    // A loaded key is replaced only with --replace: said before anyone types a component.
    let status = call(socket, api::Status {})?;
    if let Some(Some(loaded)) = status.secrets.get(&plan.name.to_string()) {
        if !plan.replace {
            return Err(crate::custodian::replacement_refused(
                &plan.name.to_string(),
                &loaded.kcv,
                &loaded.loaded_at,
            ));
        }
    }
    let components = arguments.read_entries(&plan)?;
    let count = components.len();
    let request = api::Ceremony {
        secret: plan.name.to_string(),
        algorithm: plan.algorithm.name().to_owned(),
        components,
        expect_kcv: plan.expect_kcv,
        replace: plan.replace,
    };
    let result = call(socket, request)?;
    for (number, (kcv, custodian)) in result
        .component_kcvs
        .iter()
        .zip(&result.custodians)
        .enumerate()
    {
        println!("component {} KCV   {kcv}   {custodian}", number + 1);
    }
    println!("combined KCV      {}", result.kcv);
    println!(
        "{} loaded: {} from {count} components, KCV {}{}",
        result.secret,
        result.algorithm,
        result.kcv,
        result
            .replaced
            .as_deref()
            .map(|old| format!(", replacing KCV {old}"))
            .unwrap_or_default()
    );
    if result.ready {
        println!("the appliance is ready: KEK and TTK are loaded");
    }
    Ok(())
}

fn import(socket: &Path, file: &Path) -> anyhow::Result<()> {
    let name = file.display().to_string();
    let (mut opened, size) = open_regular(file)?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("importing {bar:40} {pos}/{len} keys ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    // Without a terminal (a script, a log) the bar draws nothing: a line per tenth instead.
    let terminal = std::io::stderr().is_terminal();
    let mut tenths_said = 0;
    let mut on_progress = |progress: api::Progress| {
        bar.set_length(progress.total);
        bar.set_position(progress.done);
        let tenths = (progress.done * 10)
            .checked_div(progress.total)
            .unwrap_or(0);
        if !terminal && tenths > tenths_said && progress.done < progress.total {
            tenths_said = tenths;
            eprintln!(
                "importing: {} of {} {} ({} %)",
                progress.done,
                progress.total,
                if progress.total == 1 { "key" } else { "keys" },
                tenths * 10
            );
        }
    };
    let request = api::Import {
        file_name: name.clone(),
        size,
    };
    let result = upload(
        socket,
        request,
        &mut opened,
        &name,
        size,
        Some(&mut on_progress),
    );
    bar.finish_and_clear();
    let result = result?;
    println!(
        "imported batch {} from {}: {} {} {}, indexes {:08}..{:08}, file SHA-256 {}",
        result.batch_id,
        result.issuer,
        result.records,
        result.algorithm,
        if result.records == 1 { "key" } else { "keys" },
        result.first_index,
        result.last_index,
        result.file_sha256
    );
    Ok(())
}

/// A row count with its noun: "1 SMN row", "2 SMN rows".
fn rows(count: u64, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun} row")
    } else {
        format!("{count} {noun} rows")
    }
}

pub fn run(socket: &Path, command: DaemonCommand) -> anyhow::Result<()> {
    match command {
        DaemonCommand::Kdh(command) => crate::kdh::run(socket, command),
        DaemonCommand::Bdk(command) => crate::bdk::run(socket, command),
        DaemonCommand::Expected(command) => crate::expected::run(socket, command),
        DaemonCommand::Reconcile(arguments) => crate::expected::reconcile(socket, arguments),
        DaemonCommand::Batch(command) => crate::batch::run(socket, command),
        DaemonCommand::Status { json } => {
            let status = call(socket, api::Status {})?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print_status(&status);
            }
            Ok(())
        }
        DaemonCommand::Ceremony(arguments) => ceremony(socket, arguments),
        DaemonCommand::Import { file } => import(socket, &file),
        DaemonCommand::Inventory(arguments) => crate::registry::inventory(socket, arguments),
        DaemonCommand::Pending(arguments) => crate::pending::run(socket, arguments),
        DaemonCommand::Report(arguments) => crate::report::run(socket, arguments),
        DaemonCommand::ExportSmn {
            out,
            only_new,
            force,
        } => {
            let request = api::ExportSmn {
                file_name: out.display().to_string(),
                only_new,
            };
            let result = download(socket, request, &out, force)?;
            println!(
                "exported {}{} to {} (SHA-256 {})",
                rows(result.rows, "SMN"),
                if only_new { " not exported before" } else { "" },
                out.display(),
                result.file_sha256
            );
            Ok(())
        }
        DaemonCommand::ExportDukpt {
            out,
            only_new,
            force,
        } => {
            let request = api::ExportDukpt {
                file_name: out.display().to_string(),
                only_new,
            };
            let result = download(socket, request, &out, force)?;
            println!(
                "exported {}{} to {} (SHA-256 {})",
                rows(result.rows, "DUKPT"),
                if only_new { " not exported before" } else { "" },
                out.display(),
                result.file_sha256
            );
            Ok(())
        }
        DaemonCommand::Audit(AuditCommand::Verify) => {
            let result = call(socket, api::AuditVerify {})?;
            println!(
                "audit trail verifies: {}, head {} (head MAC {})",
                rows(result.rows, "audit"),
                result.head_hash,
                result.head_mac
            );
            Ok(())
        }
        DaemonCommand::Audit(AuditCommand::Export { out, force }) => {
            let request = api::AuditExport {
                file_name: out.display().to_string(),
            };
            let result = download(socket, request, &out, force)?;
            println!(
                "exported {} to {}",
                rows(result.rows, "audit"),
                out.display()
            );
            Ok(())
        }
        DaemonCommand::Void {
            key_index,
            index,
            serial,
            reason,
        } => {
            let key_index = key_index
                .or(index)
                .map(|index| {
                    keymother_domain::KeyIndex::try_from(index)
                        .map_err(|error| crate::arguments::argument_error("KEY_INDEX", error))
                })
                .transpose()?;
            let hardware_serial = serial
                .map(|serial| {
                    serial
                        .parse::<keymother_domain::HardwareSerial>()
                        .map_err(|error| crate::arguments::argument_error("--serial", error))
                })
                .transpose()?;
            let request = api::Void {
                key_index,
                hardware_serial,
                reason,
            };
            let result = call(socket, request)?;
            println!(
                "key {} ({}, was {}) is void",
                result.key_index, result.hardware_serial, result.previous_state
            );
            Ok(())
        }
        DaemonCommand::Zeroize { confirm, reason } => {
            let request = api::Zeroize {
                confirm_device_id: confirm,
                reason,
            };
            let result = call(socket, request)?;
            println!(
                "zeroized: {} sealed secrets deleted, {} key blocks erased, storage key destroyed",
                result.secrets_deleted, result.key_blocks_erased
            );
            if result.final_exports == 0 {
                println!(
                    "no final export was sealed (no KEK was loaded): export-smn and export-dukpt are refused from now on; smn and the audit export still read the rows"
                );
            } else {
                println!(
                    "{} final exports sealed under the KEK before it went: export-smn and export-dukpt deliver them from now on",
                    result.final_exports
                );
            }
            Ok(())
        }
        DaemonCommand::Smn(arguments) => crate::registry::smn(socket, arguments),
    }
}
