//! `keymother expected` and `keymother reconcile`: expected-device lists for injection runs (PCI PIN 30-3), imported and closed through keymotherd, and each list reconciled as text or as a sealed export for the front end.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use keymother_control as api;

use crate::client::{call, download, open_regular, upload};

#[derive(Subcommand)]
pub enum ExpectedCommand {
    /// Imports a list of device serials for a run (keyfiles/FORMAT.md, "Expected-device
    /// lists"): a CSV with the column line `serial` or `serial,model`, plain or sealed under the
    /// KEK. Refused whole when a line is wrong; the error names the line.
    Import {
        /// The list file, on this machine.
        file: PathBuf,
        /// The run's name (1 to 32 characters A-Z a-z 0-9 . _ -), never used before.
        #[arg(long)]
        name: String,
    },
    /// Closes a list: its serials are refused from now on, and its reconciliation is final.
    Close {
        /// The list's name.
        name: String,
    },
}

/// `keymother reconcile [NAME] [--export FILE]`.
#[derive(Args)]
pub struct ReconcileArguments {
    /// One list; without it, every list.
    name: Option<String>,
    /// Write the sealed reconciliation for the front end to FILE instead of showing it.
    #[arg(long, value_name = "FILE")]
    export: Option<PathBuf>,
    /// Replace FILE if it exists.
    #[arg(long, requires = "export")]
    force: bool,
}

fn list_line(list: &api::ExpectedListReport) -> String {
    let state = match (&list.closed_at, &list.closed_by) {
        (Some(at), by) => format!(
            "closed {at}{}",
            by.as_ref()
                .map(|by| format!(" by {by}"))
                .unwrap_or_default()
        ),
        (None, _) => "open".to_owned(),
    };
    format!(
        "list {}: {state}; {} {}{} from {} (SHA-256 {}), imported {}{}",
        list.name,
        list.devices,
        if list.devices == 1 {
            "serial"
        } else {
            "serials"
        },
        if list.sealed { ", sealed" } else { "" },
        list.file_name,
        list.file_sha256,
        list.imported_at,
        list.imported_by
            .as_ref()
            .map(|by| format!(" by {by}"))
            .unwrap_or_default()
    )
}

fn model(model: &Option<String>) -> String {
    model
        .as_ref()
        .map(|model| format!(" ({model})"))
        .unwrap_or_default()
}

fn key_words(key: &api::ReconciledKey) -> String {
    let what = match (&key.smn, key.kind.as_str()) {
        (Some(smn), _) => format!("key {} SMN {smn}", key.key),
        (None, "dukpt") => format!("DUKPT {}", key.key),
        (None, _) => key.key.clone(),
    };
    format!("{what} {} on {} at {}", key.state, key.port, key.at)
}

fn print_list(list: &api::ListReconciliationReport) {
    println!("{}", list_line(&list.list));
    println!(
        "  injected {}, pending {}, missing {}, refused {}",
        list.injected.len(),
        list.pending.len(),
        list.missing.len(),
        list.refused.len()
    );
    for device in &list.injected {
        for key in device.keys.iter().chain(&device.pending) {
            println!(
                "  injected  {}{}  {}",
                device.hardware_serial,
                model(&device.terminal_model),
                key_words(key)
            );
        }
    }
    for device in &list.pending {
        for key in &device.keys {
            println!(
                "  pending   {}{}  {}",
                device.hardware_serial,
                model(&device.terminal_model),
                key_words(key)
            );
        }
    }
    for device in &list.missing {
        println!(
            "  missing   {}{}  (line {} of the list)",
            device.hardware_serial,
            model(&device.terminal_model),
            device.line
        );
    }
    for device in &list.refused {
        println!(
            "  refused   {}  {} attempt{}, last on {} at {}",
            device.hardware_serial,
            device.attempts,
            if device.attempts == 1 { "" } else { "s" },
            device.last_port,
            device.last_at
        );
    }
}

pub fn run(socket: &Path, command: ExpectedCommand) -> anyhow::Result<()> {
    match command {
        ExpectedCommand::Import { file, name } => {
            let file_name = file.display().to_string();
            let (mut opened, size) = open_regular(&file)?;
            let request = api::ExpectedImport {
                name,
                file_name: file_name.clone(),
                size,
            };
            let list = upload(socket, request, &mut opened, &file_name, size, None)?;
            println!("{}", list_line(&list));
            Ok(())
        }
        ExpectedCommand::Close { name } => {
            let list = call(socket, api::ExpectedClose { name })?;
            println!("{}", list_line(&list));
            Ok(())
        }
    }
}

pub fn reconcile(socket: &Path, arguments: ReconcileArguments) -> anyhow::Result<()> {
    let ReconcileArguments {
        name,
        export,
        force,
    } = arguments;
    if let Some(out) = export {
        let request = api::ReconcileExport {
            name,
            file_name: out.display().to_string(),
        };
        let result = download(socket, request, &out, force)?;
        println!(
            "exported {} reconciliation {} to {} (SHA-256 {})",
            result.rows,
            if result.rows == 1 { "row" } else { "rows" },
            out.display(),
            result.file_sha256
        );
        return Ok(());
    }
    let report = call(socket, api::Reconcile { name })?;
    if report.lists.is_empty() {
        println!(
            "no expected-device list: import one with `keymother expected import FILE --name RUN`"
        );
    }
    for list in &report.lists {
        print_list(list);
    }
    Ok(())
}
