//! `keymother tr34`: explains any ASC X9 TR-34 token, and builds a key token from a test key so a firmware team can test its KRD without an appliance.

mod build;
mod inspect;

use std::path::Path;
use std::time::SystemTime;

use clap::Subcommand;

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
