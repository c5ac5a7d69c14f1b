//! The thin client of keymotherd's control socket: one JSON request per connection, progress lines, then the answer.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use zeroize::Zeroize;

use crate::argument_error;
use crate::custodian::CeremonyArguments;

/// Where keymotherd listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/keymother/control.sock";

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
    /// Imports a key file (read by the daemon): all records or none.
    Import {
        /// The key file, as the daemon sees it (e.g. on the USB stick).
        file: PathBuf,
    },
    /// Keys per state and per batch.
    Inventory,
    /// The SMN registry: one row per confirmed injection.
    Smn,
    /// Writes the sealed SMN file for the front end's terminal table (e.g. onto a USB stick).
    ExportSmn {
        /// Where to write it, as the daemon sees the path.
        #[arg(long)]
        out: PathBuf,
        /// Only rows not exported before.
        #[arg(long)]
        only_new: bool,
    },
    /// The hash-chained audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The appliance's KDH identity for certificate mode.
    #[command(subcommand)]
    Kdh(crate::kdh::KdhCommand),
    /// Voids a key that was sent but never confirmed, so it can never be used; audited.
    Void {
        /// The key index.
        key_index: u32,
        /// Why (recorded in the audit trail).
        #[arg(long)]
        reason: String,
    },
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
        #[arg(long)]
        out: PathBuf,
    },
}

/// Paths are resolved here: the daemon has no idea of the caller's working directory.
fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    Ok(if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    })
}

/// Sends `request` and returns the result, rendering progress lines on a bar.
pub fn call(socket: &Path, mut request: Value, bar: Option<&ProgressBar>) -> anyhow::Result<Value> {
    let mut stream = UnixStream::connect(socket).with_context(|| {
        format!(
            "cannot reach keymotherd at {} (is it running, and are you in its operators' group?)",
            socket.display()
        )
    })?;
    let mut line = request.to_string();
    wipe_components(&mut request);
    line.push('\n');
    let sent = stream.write_all(line.as_bytes());
    line.zeroize();
    sent?;
    let reader = BufReader::new(stream);
    for answer in reader.lines() {
        let answer: Value = serde_json::from_str(&answer?)
            .context("keymotherd answered something that is not JSON")?;
        if let Some(progress) = answer.get("progress") {
            if let Some(bar) = bar {
                bar.set_length(progress["total"].as_u64().unwrap_or(0));
                bar.set_position(progress["done"].as_u64().unwrap_or(0));
            }
            continue;
        }
        if answer["ok"] == json!(true) {
            return Ok(answer["result"].clone());
        }
        anyhow::bail!(
            "{}",
            answer["error"]
                .as_str()
                .unwrap_or("keymotherd refused the request")
        );
    }
    anyhow::bail!("keymotherd closed the connection without answering")
}

fn wipe_components(request: &mut Value) {
    if let Some(Value::Array(components)) = request.get_mut("components") {
        for component in components.iter_mut() {
            if let Value::String(text) = component {
                text.zeroize();
            }
        }
    }
}

fn print_counts(keys: &Value) {
    if let Some(keys) = keys.as_object() {
        let parts: Vec<String> = keys
            .iter()
            .map(|(state, count)| format!("{state} {count}"))
            .collect();
        println!("keys: {}", parts.join(", "));
    }
}

/// "state: ready", or the state and what holds the keys back.
fn state_line(status: &Value) -> String {
    let state = status["state"].as_str().unwrap_or("?");
    let reason = status["reason"].as_str().unwrap_or("?");
    match state {
        "ready" => "state: ready: keys flow".to_owned(),
        "locked" => "state: locked: load the KEK and the TTK (keymother ceremony)".to_owned(),
        _ => format!("state: {state}: {reason}"),
    }
}

/// Whether the tamper input is watched, and whether keys wait for it.
fn tamper_input_line(tamper_input: &Value) -> String {
    let input = tamper_input["input"].as_str().unwrap_or("?");
    let required = tamper_input["required"] == json!(true);
    match tamper_input["state"].as_str() {
        Some("watched") => format!("tamper input: {input}, watched"),
        Some("not watched") => format!(
            "tamper input: {input}, NOT WATCHED: {}; {}",
            tamper_input["reason"].as_str().unwrap_or("?"),
            if required {
                "no key is dispensed until it is back"
            } else {
                "keys still flow ([bench] require_tamper_input = false)"
            }
        ),
        Some("none") => "tamper input: none ([bench] gpio = \"none\")".to_owned(),
        _ => "tamper input: unknown".to_owned(),
    }
}

pub fn run(socket: &Path, command: DaemonCommand) -> anyhow::Result<()> {
    match command {
        DaemonCommand::Kdh(command) => crate::kdh::run(socket, command),
        DaemonCommand::Status { json } => {
            let status = call(socket, json!({"command": "status"}), None)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
                return Ok(());
            }
            println!("device {}", status["device_id"].as_str().unwrap_or("?"));
            println!("{}", state_line(&status));
            if let Some(secrets) = status["secrets"].as_object() {
                for (name, secret) in secrets {
                    match secret {
                        Value::Null => println!("{name}: not loaded"),
                        secret => println!(
                            "{name}: {} KCV {} ({} components, loaded {})",
                            secret["algorithm"].as_str().unwrap_or("?"),
                            secret["kcv"].as_str().unwrap_or("?"),
                            secret["components"],
                            secret["loaded_at"].as_str().unwrap_or("?")
                        ),
                    }
                }
            }
            println!("{}", crate::operator::operator_line(&status));
            print_counts(&status["keys"]);
            if let Some(ports) = status["ports"].as_object() {
                for (port, state) in ports {
                    println!("port {port}: {}", state.as_str().unwrap_or("?"));
                }
            }
            println!("{}", tamper_input_line(&status["tamper_input"]));
            println!("SMN rows: {}", status["smn_rows"]);
            Ok(())
        }
        DaemonCommand::Ceremony(arguments) => {
            let input = arguments.collect()?;
            let count = input.components.len();
            let request = json!({
                "command": "ceremony",
                "secret": input.name.to_string(),
                "algorithm": input.combined.key.algorithm().name(),
                "components": input.components.iter().map(|component| component.expose_secret_hex().to_string()).collect::<Vec<_>>(),
                "expect_kcv": input.combined.key.kcv().to_string(),
            });
            drop(input);
            let result = call(socket, request, None)?;
            if let Some(kcvs) = result["component_kcvs"].as_array() {
                for (number, kcv) in kcvs.iter().enumerate() {
                    println!(
                        "component {} KCV   {}",
                        number + 1,
                        kcv.as_str().unwrap_or("?")
                    );
                }
            }
            println!(
                "combined KCV      {}",
                result["kcv"].as_str().unwrap_or("?")
            );
            println!(
                "{} loaded: {} from {count} components, KCV {}",
                result["secret"].as_str().unwrap_or("?"),
                result["algorithm"].as_str().unwrap_or("?"),
                result["kcv"].as_str().unwrap_or("?")
            );
            if result["ready"] == json!(true) {
                println!("the appliance is ready: KEK and TTK are loaded");
            }
            Ok(())
        }
        DaemonCommand::Import { file } => {
            let path = std::fs::canonicalize(&file)
                .map_err(|error| argument_error(&file.display().to_string(), error))?;
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("importing {bar:40} {pos}/{len} keys ({eta} left)")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            let result = call(
                socket,
                json!({"command": "import", "path": path}),
                Some(&bar),
            );
            bar.finish_and_clear();
            let result = result?;
            println!(
                "imported batch {} from {}: {} {} keys, indexes {:08}..{:08}, file SHA-256 {}",
                result["batch_id"].as_str().unwrap_or("?"),
                result["issuer"].as_str().unwrap_or("?"),
                result["records"],
                result["algorithm"].as_str().unwrap_or("?"),
                result["first_index"].as_u64().unwrap_or(0),
                result["last_index"].as_u64().unwrap_or(0),
                result["file_sha256"].as_str().unwrap_or("?")
            );
            Ok(())
        }
        DaemonCommand::Inventory => {
            let result = call(socket, json!({"command": "inventory"}), None)?;
            print_counts(&result["keys"]);
            for batch in result["batches"].as_array().into_iter().flatten() {
                println!(
                    "  batch {:<20} {:<10} {:>9} keys, {:>9} available, imported {}",
                    batch["batch_id"].as_str().unwrap_or("?"),
                    batch["algorithm"].as_str().unwrap_or("?"),
                    batch["records"],
                    batch["available"],
                    batch["imported_at"].as_str().unwrap_or("?")
                );
            }
            Ok(())
        }
        DaemonCommand::ExportSmn { out, only_new } => {
            let result = call(
                socket,
                json!({"command": "export-smn", "path": absolute(&out)?, "only_new": only_new}),
                None,
            )?;
            println!(
                "exported {} SMN rows{} to {} (SHA-256 {})",
                result["rows"],
                if only_new { " not exported before" } else { "" },
                out.display(),
                result["file_sha256"].as_str().unwrap_or("?")
            );
            Ok(())
        }
        DaemonCommand::Audit(AuditCommand::Verify) => {
            let result = call(socket, json!({"command": "audit-verify"}), None)?;
            println!(
                "audit trail verifies: {} rows, head {} (head MAC {})",
                result["rows"],
                result["head_hash"].as_str().unwrap_or("?"),
                result["head_mac"].as_str().unwrap_or("?")
            );
            Ok(())
        }
        DaemonCommand::Audit(AuditCommand::Export { out }) => {
            let result = call(
                socket,
                json!({"command": "audit-export", "path": absolute(&out)?}),
                None,
            )?;
            println!(
                "exported {} audit rows to {}",
                result["rows"],
                out.display()
            );
            Ok(())
        }
        DaemonCommand::Void { key_index, reason } => {
            let result = call(
                socket,
                json!({"command": "void", "key_index": key_index, "reason": reason}),
                None,
            )?;
            println!(
                "key {key_index:08} ({}, was {}) is void",
                result["hardware_serial"].as_str().unwrap_or("?"),
                result["previous_state"].as_str().unwrap_or("?")
            );
            Ok(())
        }
        DaemonCommand::Zeroize { confirm, reason } => {
            let result = call(
                socket,
                json!({"command": "zeroize", "confirm_device_id": confirm, "reason": reason}),
                None,
            )?;
            println!(
                "zeroized: {} sealed secrets deleted, {} key blocks erased, storage key destroyed",
                result["secrets_deleted"], result["key_blocks_erased"]
            );
            Ok(())
        }
        DaemonCommand::Smn => {
            let rows = call(socket, json!({"command": "smn-rows"}), None)?;
            for row in rows.as_array().into_iter().flatten() {
                println!(
                    "{}  serial {:<12} key {:08}  KCV {}  port {}  {}  operator {}",
                    row["smn"].as_str().unwrap_or("?"),
                    row["hardware_serial"].as_str().unwrap_or("?"),
                    row["key_index"].as_u64().unwrap_or(0),
                    row["kcv"].as_str().unwrap_or("?"),
                    row["port"].as_str().unwrap_or("?"),
                    row["injected_at"].as_str().unwrap_or("?"),
                    row["operator"].as_str().unwrap_or("-")
                );
            }
            Ok(())
        }
    }
}
