//! `keymother tr34 inspect`: any TR-34 token explained one "label: value" a line, and its signature checked against a given certificate.

use std::path::PathBuf;
use std::time::SystemTime;

use clap::Args;
use keymother_pki::der::Decode;
use keymother_pki::tr34::Token;
use keymother_pki::x509_cert::Certificate;

use super::{parse_time, print_sections, read_input, time_text, token_der};
use crate::arguments::argument_error;

#[derive(Args)]
pub struct InspectArguments {
    /// The token: DER, or PEM with any label.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Checks the token's signature (and its messageDigest) with this certificate's key (DER
    /// or PEM); it must be the certificate the token names as its signer, valid at --at.
    #[arg(long, value_name = "CERT")]
    signer_certificate: Option<PathBuf>,
    /// The instant the signer certificate must be valid at, RFC 3339 [default: now]; e.g.
    /// 2019-06-01T00:00:00Z for the TR-34-2019 Annex B samples, whose certificates expired in
    /// 2020.
    #[arg(long, value_name = "RFC3339-TIME", requires = "signer_certificate")]
    at: Option<String>,
}

type Lines = Vec<(String, String)>;

pub fn run(arguments: &InspectArguments) -> anyhow::Result<()> {
    let at = match &arguments.at {
        Some(text) => parse_time("--at", text)?,
        None => SystemTime::now(),
    };
    let path = &arguments.file;
    let bytes = read_input("FILE", path)?;
    let token = token_der(&bytes)
        .and_then(|der| Token::parse(&der).map_err(|error| error.to_string()))
        .map_err(|error| argument_error("FILE", format!("{}: {error}", path.display())))?;
    let certificate = match &arguments.signer_certificate {
        Some(certificate_path) => {
            let bytes = read_input("--signer-certificate", certificate_path)?;
            let der = keymother_pki::certificate_der(&bytes).map_err(|error| {
                argument_error(
                    "--signer-certificate",
                    format!("{}: {error}", certificate_path.display()),
                )
            })?;
            Some((certificate_path, der))
        }
        None => None,
    };
    let mut sections = describe(&token);
    let Some((certificate_path, der)) = certificate else {
        print_sections(&sections);
        return Ok(());
    };
    let (lines, refusal) = check_signature(&token, &der, at);
    sections.push(lines);
    print_sections(&sections);
    match refusal {
        None => Ok(()),
        Some(why) => anyhow::bail!(
            "{}: the signature does not verify with {}: {why}",
            path.display(),
            certificate_path.display()
        ),
    }
}

/// The token's description in sections: what it is, its contents, its signer, its envelope,
/// an inner token, the identifiers it names.
fn describe(token: &Token) -> Vec<Lines> {
    let mut summary: Lines = vec![
        ("token".into(), token.kind().to_string()),
        ("wire form".into(), token.form().to_string()),
    ];
    if let Some(nonce) = token.nonce() {
        summary.push(("random number".into(), hex::encode_upper(nonce)));
    }
    if let Some(time) = token.signing_time() {
        summary.push(("signing time".into(), time_text(time)));
    }
    if let Some(header) = token.key_block_header() {
        summary.push(("key block header".into(), header.to_owned()));
    }
    let mut sections = vec![summary];
    let mut current: Option<&'static str> = None;
    for (label, value) in token.describe() {
        if sections[0].iter().any(|(known, _)| *known == label) {
            continue;
        }
        let section = section_of(&label).or(current);
        if section != current || sections.len() == 1 {
            sections.push(Vec::new());
            current = section;
        }
        let value = name_the_issuer(&label, value);
        if let Some(last) = sections.last_mut() {
            last.push((label, value));
        }
    }
    sections
}

/// A signer, recipient or identified party is named by its certificate's issuer and serial:
/// "issuer " says so, lest the CA's name read as the signer's.
fn name_the_issuer(label: &str, value: String) -> String {
    let names_a_party = matches!(
        label,
        "signer" | "inner signer" | "recipient" | "identifies"
    );
    if names_a_party && value.contains(", serial ") && !value.starts_with("none") {
        format!("issuer {value}")
    } else {
        value
    }
}

/// Which section a line of [`Token::describe`] belongs to; `None` for a label not known
/// here, which stays in the section before it.
fn section_of(label: &str) -> Option<&'static str> {
    if label.starts_with("inner ") {
        return Some("inner");
    }
    if label.starts_with("signed attribute") {
        return Some("signer");
    }
    match label {
        "content type" | "content" | "certificate" | "CRL" => Some("contents"),
        "signer" | "digest algorithm" | "signature algorithm" => Some("signer"),
        "recipient"
        | "key encryption algorithm"
        | "encrypted key"
        | "encrypted content type"
        | "content encryption algorithm"
        | "encrypted content"
        | "enveloped data" => Some("envelope"),
        "identifies" => Some("identifiers"),
        _ => None,
    }
}

/// The signature check's lines, and why it failed if it did: the certificate must be valid
/// at `at`, be the token's signer, and its key must verify the signature and messageDigest.
fn check_signature(token: &Token, der: &[u8], at: SystemTime) -> (Lines, Option<String>) {
    let certificate = match Certificate::from_der(der) {
        Ok(certificate) => certificate,
        Err(error) => {
            let why = format!("the certificate does not parse ({error})");
            return (
                vec![("signature".into(), format!("not checked: {why}"))],
                Some(why),
            );
        }
    };
    let tbs = certificate.tbs_certificate();
    let subject = tbs.subject().to_string();
    let not_before = tbs.validity().not_before.to_system_time();
    let not_after = tbs.validity().not_after.to_system_time();
    let mut lines: Lines = vec![
        (
            "signer certificate".into(),
            format!(
                "subject {subject}, serial {}, issuer {}",
                hex::encode_upper(tbs.serial_number().as_bytes()),
                tbs.issuer()
            ),
        ),
        (
            "signer certificate validity".into(),
            format!("{} to {}", time_text(not_before), time_text(not_after)),
        ),
        ("checked at".into(), time_text(at)),
    ];
    let valid = not_before <= at && at <= not_after;
    let refusal = match (token.verify_signature(der), valid) {
        (Ok(()), true) => {
            lines.push(("signature".into(), format!("verified with {subject}")));
            None
        }
        (Ok(()), false) => Some(format!(
            "the signature checks out under {subject}'s key, but that certificate is not valid at {} (give --at to check at another time)",
            time_text(at)
        )),
        (Err(error), _) => Some(error.to_string()),
    };
    if let Some(why) = &refusal {
        lines.push(("signature".into(), format!("not verified: {why}")));
    }
    (lines, refusal)
}
