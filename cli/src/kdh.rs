//! `keymother kdh`: the appliance's key distribution host identity for certificate mode — make the key pair and its request, install the signed certificate, show it.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde_json::json;

use crate::argument_error;
use crate::control::call;

#[derive(Subcommand)]
pub enum KdhCommand {
    /// Makes a new KDH key pair on the appliance and writes its certificate request (PEM) for
    /// the KDH CA. Replaces any earlier KDH identity: certificate mode stops until the new
    /// certificate is installed.
    Request {
        /// Where to write the request (PEM), on this machine.
        #[arg(long)]
        out: PathBuf,
        /// The subject, RFC 4514 (default: CN=<device id>,OU=KDH).
        #[arg(long)]
        subject: Option<String>,
        /// RSA key size, 2048 to 4096.
        #[arg(long, default_value_t = 2048)]
        bits: usize,
    },
    /// Installs the certificate the KDH CA issued for the appliance's key pair (PEM or DER);
    /// the daemon checks it against the KDH CA and the key pair first.
    Install {
        /// The certificate file, on this machine.
        certificate: PathBuf,
    },
    /// The KDH identity: subject, key size, whether certificate mode is on.
    Status,
}

pub fn run(socket: &Path, command: KdhCommand) -> anyhow::Result<()> {
    match command {
        KdhCommand::Request { out, subject, bits } => {
            let result = call(
                socket,
                json!({"command": "kdh-request", "subject": subject, "bits": bits}),
                None,
            )?;
            let request = result["request"].as_str().unwrap_or_default();
            std::fs::write(&out, request)
                .map_err(|error| argument_error("--out", format!("{}: {error}", out.display())))?;
            println!(
                "KDH key pair made ({} bits) for {}; request written to {}",
                result["bits"],
                result["subject"].as_str().unwrap_or("?"),
                out.display()
            );
            println!("certificate mode is off until the KDH CA's certificate is installed");
            Ok(())
        }
        KdhCommand::Install { certificate } => {
            let bytes = std::fs::read(&certificate).map_err(|error| {
                argument_error("CERTIFICATE", format!("{}: {error}", certificate.display()))
            })?;
            let der = keymother_pki::certificate_der(&bytes).map_err(|error| {
                argument_error("CERTIFICATE", format!("{}: {error}", certificate.display()))
            })?;
            let result = call(
                socket,
                json!({
                    "command": "kdh-install",
                    "certificate": keymother_pki::testing::pem("CERTIFICATE", &der),
                }),
                None,
            )?;
            println!(
                "KDH certificate installed: {} (serial {}); certificate mode {}",
                result["subject"].as_str().unwrap_or("?"),
                result["serial"].as_str().unwrap_or("?"),
                if result["certificate_mode"] == json!(true) {
                    "on"
                } else {
                    "off (check the [pki] trust anchors)"
                }
            );
            Ok(())
        }
        KdhCommand::Status => {
            let status = call(socket, json!({"command": "kdh-status"}), None)?;
            if status.is_null() {
                println!("no KDH identity: run `keymother kdh request`");
                return Ok(());
            }
            println!(
                "KDH {} ({} bits), requested {}",
                status["subject"].as_str().unwrap_or("?"),
                status["bits"],
                status["requested_at"].as_str().unwrap_or("?")
            );
            match status["certificate_installed_at"].as_str() {
                Some(at) => println!("certificate installed {at}"),
                None => println!("certificate: not installed (send the request to the KDH CA)"),
            }
            println!(
                "certificate mode: {}",
                if status["certificate_mode"] == json!(true) {
                    "on"
                } else {
                    "off"
                }
            );
            Ok(())
        }
    }
}
