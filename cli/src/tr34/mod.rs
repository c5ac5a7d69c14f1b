//! `keymother tr34`: explains any ASC X9 TR-34 token, and builds a key token from a test key so a firmware team can test its KRD without an appliance.

mod build;
mod inspect;

use std::path::Path;
use std::time::SystemTime;

use base64ct::{Base64, Encoding};
use clap::Subcommand;
use keymother_pki::tr34::pem_to_der;

use crate::arguments::argument_error;

#[derive(Subcommand)]
pub enum Tr34Command {
    /// Explains a TR-34 token (DER or PEM): which token, wire form, signer, recipients,
    /// certificates, CRLs, signed attributes and algorithms; with --signer-certificate, checks
    /// its signature (exit status 1 when it does not verify). Never shows key material: a
    /// token holds none in clear, and this command decrypts nothing.
    Inspect(inspect::InspectArguments),
    /// FOR TESTING A KRD ONLY, never for production keys: makes a TR-34 key token (one-pass or
    /// two-pass) that delivers a test key typed here to a KRD certificate, signed with a KDH
    /// key and certificate. Both certificates are verified first (the KDH certificate against
    /// --kdh-ca as a KDH, the KRD certificate against --krd-ca as a terminal device) at the
    /// current time.
    Build(Box<build::BuildArguments>),
}

pub fn run(command: Tr34Command) -> anyhow::Result<()> {
    match command {
        Tr34Command::Inspect(arguments) => inspect::run(&arguments),
        Tr34Command::Build(arguments) => build::run(&arguments),
    }
}

/// Reads a file given as `argument`; the error names the argument and the file, never its
/// content (a usage error).
fn read_input(argument: &str, path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|error| argument_error(argument, format!("{}: {error}", path.display())))
}

/// A token's DER from DER or PEM text. PEM is read by the library first; a PEM text it refuses
/// (a label with a hyphen, lines not 64 characters long, CRLF line ends) is read leniently:
/// the Base64 between the first BEGIN line and its END line, whatever the label.
fn token_der(bytes: &[u8]) -> Result<Vec<u8>, String> {
    match pem_to_der(bytes) {
        Ok(der) => Ok(der),
        Err(error) => lenient_pem(bytes).ok_or_else(|| error.to_string()),
    }
}

fn lenient_pem(bytes: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.lines().map(str::trim);
    lines.find(|line| line.starts_with("-----BEGIN ") && line.ends_with("-----"))?;
    let mut body = String::new();
    for line in lines {
        if line.starts_with("-----END ") {
            return Base64::decode_vec(&body).ok();
        }
        body.push_str(line);
    }
    None
}

/// An instant as RFC 3339 text (UTC, whole seconds).
fn time_text(time: SystemTime) -> String {
    let time = time::OffsetDateTime::from(time);
    let whole = time.replace_nanosecond(0).unwrap_or(time);
    whole
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| whole.to_string())
}

/// Parses `--at` style RFC 3339 text.
fn parse_time(argument: &str, text: &str) -> anyhow::Result<SystemTime> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(SystemTime::from)
        .map_err(|error| {
            argument_error(
                argument,
                format!("not an RFC 3339 time such as 2019-06-01T00:00:00Z ({error})"),
            )
        })
}

/// Prints `label: value` lines, a blank line before every section but the first.
fn print_sections(sections: &[Vec<(String, String)>]) {
    let mut first = true;
    for section in sections.iter().filter(|section| !section.is_empty()) {
        if !first {
            println!();
        }
        first = false;
        for (label, value) in section {
            println!("{label}: {value}");
        }
    }
}
