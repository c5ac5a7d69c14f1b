//! `keymother kdh`: the appliance's key distribution host identity for certificate mode — make the key pair and its request, install the signed certificate, show it.

use std::path::{Path, PathBuf};

use base64ct::{Base64, Encoding};
use clap::Subcommand;
use keymother_control as api;

use crate::arguments::argument_error;
use crate::client::call;

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
            let request = api::KdhRequest {
                subject,
                bits: Some(bits),
            };
            let result = call(socket, request)?;
            std::fs::write(&out, &result.request)
                .map_err(|error| argument_error("--out", format!("{}: {error}", out.display())))?;
            println!(
                "KDH key pair made ({} bits) for {}; request written to {}",
                result.bits,
                result.subject,
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
            let request = api::KdhInstall {
                certificate: Base64::encode_string(&der),
            };
            let result = call(socket, request)?;
            println!(
                "KDH certificate installed: {} (serial {}); certificate mode {}",
                result.subject,
                result.serial,
                if result.certificate_mode {
                    "on"
                } else {
                    "off (check the [pki] trust anchors)"
                }
            );
            Ok(())
        }
        KdhCommand::Status => {
            let Some(status) = call(socket, api::KdhStatus {})? else {
                println!("no KDH identity: run `keymother kdh request`");
                return Ok(());
            };
            println!(
                "KDH {} ({} bits), requested {}",
                status.subject, status.bits, status.requested_at
            );
            match &status.certificate_installed_at {
                Some(at) => println!("certificate installed {at}"),
                None => println!("certificate: not installed (send the request to the KDH CA)"),
            }
            println!(
                "certificate mode: {}",
                if status.certificate_mode { "on" } else { "off" }
            );
            Ok(())
        }
    }
}
