//! `keymother tr34 build`: a TR-34 key token made from a TEST key for a KRD certificate, so a KRD can be tested without an appliance; the certificates are verified as the appliance verifies them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context;
use clap::Args;
use keymother_crypto::{KeyFamily, SecretKey};
use keymother_domain::KeyIndex;
use keymother_pki::tr34::{
    BuiltKeyToken, Freshness, KeyTokenInput, NONCE_LENGTHS, Tr34Error, build_key_token,
    parse_random_number_token,
};
use keymother_pki::{Crl, PkiError, PrivateKey, Role, TrustAnchors, VerifiedCertificate};
use zeroize::Zeroizing;

use super::{print_sections, read_input, time_text, token_der};
use crate::arguments::argument_error;
use crate::client::check_destination;
use crate::prompt::read_secret;

#[derive(Args)]
#[command(group(clap::ArgGroup::new("freshness").required(true).args(["nonce", "random_number_token", "one_pass"])))]
pub struct BuildArguments {
    /// The KDH's private key: PKCS#8, PEM or DER, encrypted or not.
    #[arg(long, value_name = "KEY.pem")]
    kdh_key: PathBuf,
    /// The environment variable holding the passphrase of an encrypted --kdh-key.
    #[arg(long, value_name = "VAR")]
    kdh_key_passphrase_env: Option<String>,
    /// The KDH certificate (PEM or DER); it must verify against --kdh-ca as a KDH certificate.
    #[arg(long, value_name = "CERT")]
    kdh_certificate: PathBuf,
    /// The KDH CA certificate (PEM or DER).
    #[arg(long, value_name = "CA")]
    kdh_ca: PathBuf,
    /// The KRD's device certificate (PEM or DER), the token's recipient; it must verify against
    /// --krd-ca as a terminal device certificate.
    #[arg(long, value_name = "CERT")]
    krd_certificate: PathBuf,
    /// The KRD CA (terminal manufacturer CA) certificate (PEM or DER); never the KDH CA.
    #[arg(long, value_name = "CA")]
    krd_ca: PathBuf,
    /// The KDH CA's CRL (PEM or DER): checked, the KDH certificate looked up on it, and carried
    /// in the token.
    #[arg(long, value_name = "CRL")]
    crl: Option<PathBuf>,
    /// Two-pass: the KRD's random number in hex (8 to 32 bytes).
    #[arg(long, value_name = "HEX")]
    nonce: Option<String>,
    /// Two-pass: the KRD's random number token (DER or PEM) holding the nonce.
    #[arg(long, value_name = "FILE")]
    random_number_token: Option<PathBuf>,
    /// One-pass: the token carries the current time as its signing time instead of a nonce.
    #[arg(long)]
    one_pass: bool,
    /// The TEST key to deliver, in hex; "-" to type it without echo. Never a production key.
    #[arg(long, value_name = "HEX|-")]
    key: String,
    /// The test key's cipher family: tdes or aes (its length picks the variant).
    #[arg(long = "alg", value_name = "FAMILY", default_value = "tdes")]
    family: String,
    /// The key index bound into the signed key block header (0 to 99999999).
    #[arg(long, value_name = "N", default_value_t = 0)]
    key_index: u32,
    /// Where to write the token; an existing file is not replaced without --force.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Replace an existing --out.
    #[arg(long)]
    force: bool,
    /// Write PEM ("-----BEGIN CMS-----") instead of DER.
    #[arg(long)]
    pem: bool,
}

/// The verified certificates and the KDH key.
struct Parties {
    kdh_key: PrivateKey,
    kdh: VerifiedCertificate,
    krd: VerifiedCertificate,
    crl: Vec<u8>,
}

pub fn run(arguments: &BuildArguments) -> anyhow::Result<()> {
    check_destination(&arguments.out, arguments.force)?;
    let family: KeyFamily = arguments
        .family
        .parse()
        .map_err(|error| argument_error("--alg", error))?;
    let key_index = KeyIndex::new(arguments.key_index).ok_or_else(|| {
        argument_error(
            "--key-index",
            format!("{} has more than eight digits", arguments.key_index),
        )
    })?;
    let nonce = nonce_of(arguments)?;
    let parties = verify_parties(arguments, SystemTime::now())?;
    let signing_time = SystemTime::now();
    let freshness = match &nonce {
        Some(nonce) => Freshness::TwoPass { nonce },
        None => Freshness::OnePass { signing_time },
    };
    let key = test_key(&arguments.key, family)?;
    let input = KeyTokenInput {
        kdh_key: &parties.kdh_key,
        kdh: &parties.kdh,
        krd: &parties.krd,
        freshness,
        key_index,
        crl: &parties.crl,
    };
    let built = build_key_token(&input, &key).map_err(|error| match error {
        Tr34Error::NonceLength { .. } => argument_error(nonce_argument(arguments), error),
        other => anyhow::Error::new(other).context("cannot build the key token"),
    })?;
    let written = write_token(&arguments.out, arguments.force, arguments.pem, &built)?;
    let binding = match &nonce {
        Some(nonce) => ("random number", hex::encode_upper(nonce)),
        None => ("signing time", time_text(signing_time)),
    };
    report(arguments, &parties, &built, binding, written);
    Ok(())
}

/// The two-pass nonce from --nonce or --random-number-token, checked before any key is asked
/// for; `None` for --one-pass.
fn nonce_of(arguments: &BuildArguments) -> anyhow::Result<Option<Vec<u8>>> {
    let nonce = read_nonce(arguments)?;
    if let Some(nonce) = &nonce {
        if !NONCE_LENGTHS.contains(&nonce.len()) {
            let error = Tr34Error::NonceLength {
                length: nonce.len(),
            };
            return Err(argument_error(nonce_argument(arguments), error));
        }
    }
    Ok(nonce)
}

fn read_nonce(arguments: &BuildArguments) -> anyhow::Result<Option<Vec<u8>>> {
    if let Some(text) = &arguments.nonce {
        let nonce = hex::decode(text.trim())
            .map_err(|error| argument_error("--nonce", format!("not hexadecimal ({error})")))?;
        return Ok(Some(nonce));
    }
    if let Some(path) = &arguments.random_number_token {
        let bytes = read_input("--random-number-token", path)?;
        let nonce = token_der(&bytes)
            .and_then(|der| parse_random_number_token(&der).map_err(|error| error.to_string()))
            .map_err(|error| {
                argument_error(
                    "--random-number-token",
                    format!("{}: {error}", path.display()),
                )
            })?;
        return Ok(Some(nonce));
    }
    Ok(None)
}

fn nonce_argument(arguments: &BuildArguments) -> &'static str {
    if arguments.nonce.is_some() {
        "--nonce"
    } else {
        "--random-number-token"
    }
}

/// Reads the KDH key, the certificates, the CAs and the CRL, and verifies both certificates
/// as the appliance does: one anchor per role (the two CAs may not be the same), the KDH
/// certificate as a KDH (and not on the CRL), the KRD certificate as a terminal device.
fn verify_parties(arguments: &BuildArguments, now: SystemTime) -> anyhow::Result<Parties> {
    let kdh_ca = read_input("--kdh-ca", &arguments.kdh_ca)?;
    let krd_ca = read_input("--krd-ca", &arguments.krd_ca)?;
    let anchors = TrustAnchors::for_roles(Some(&krd_ca), Some(&kdh_ca), None)
        .map_err(|error| anchor_error(arguments, error))?;
    let crl = match &arguments.crl {
        Some(path) => read_input("--crl", path)?,
        None => Vec::new(),
    };
    let parsed_crl = match &arguments.crl {
        Some(path) => Some(
            Crl::parse(&crl)
                .map_err(|error| argument_error("--crl", format!("{}: {error}", path.display())))?,
        ),
        None => None,
    };
    let kdh_path = &arguments.kdh_certificate;
    let kdh_certificate = read_input("--kdh-certificate", kdh_path)?;
    let kdh = anchors
        .verify(
            Role::KeyDistributionHost,
            &kdh_certificate,
            now,
            parsed_crl.as_ref(),
        )
        .with_context(|| format!("--kdh-certificate {}: refused", kdh_path.display()))?;
    let krd_path = &arguments.krd_certificate;
    let krd_certificate = read_input("--krd-certificate", krd_path)?;
    let krd = anchors
        .verify(Role::TerminalDevice, &krd_certificate, now, None)
        .with_context(|| format!("--krd-certificate {}: refused", krd_path.display()))?;
    let kdh_key = read_kdh_key(arguments)?;
    if !kdh_key.matches(&kdh) {
        return Err(argument_error(
            "--kdh-key",
            format!(
                "{}: not the key of the KDH certificate {}",
                arguments.kdh_key.display(),
                kdh_path.display()
            ),
        ));
    }
    Ok(Parties {
        kdh_key,
        kdh,
        krd,
        crl,
    })
}

/// A CA that does not load, or the two CAs shared (role separation): a usage error naming
/// what was given.
fn anchor_error(arguments: &BuildArguments, error: PkiError) -> anyhow::Error {
    let files = format!(
        "--kdh-ca {}, --krd-ca {}",
        arguments.kdh_ca.display(),
        arguments.krd_ca.display()
    );
    argument_error("--kdh-ca/--krd-ca", format!("{files}: {error}"))
}

/// The KDH private key, with the passphrase from the environment variable named, if any.
fn read_kdh_key(arguments: &BuildArguments) -> anyhow::Result<PrivateKey> {
    let path = &arguments.kdh_key;
    let bytes = Zeroizing::new(read_input("--kdh-key", path)?);
    let passphrase = match &arguments.kdh_key_passphrase_env {
        Some(variable) => Some(Zeroizing::new(std::env::var(variable).map_err(|_| {
            argument_error(
                "--kdh-key-passphrase-env",
                format!("the environment variable {variable} is not set (or not UTF-8)"),
            )
        })?)),
        None => None,
    };
    PrivateKey::from_pkcs8(&bytes, passphrase.as_ref().map(|p| p.as_bytes())).map_err(|error| {
        let hint = match error {
            PkiError::PassphraseRequired => {
                " (name the variable holding it with --kdh-key-passphrase-env)"
            }
            _ => "",
        };
        argument_error("--kdh-key", format!("{}: {error}{hint}", path.display()))
    })
}

/// The test key from --key, asked for without echo when "-".
fn test_key(value: &str, family: KeyFamily) -> anyhow::Result<SecretKey> {
    let hex = if value == "-" {
        read_secret("test key (hex, not shown): ")?
    } else {
        Zeroizing::new(value.to_owned())
    };
    SecretKey::from_hex_in_family(family, &hex).map_err(|error| argument_error("--key", error))
}

/// Writes the token (DER, or PEM labelled CMS); never over an existing file unless `force`.
/// Returns the number of bytes written.
fn write_token(out: &Path, force: bool, pem: bool, built: &BuiltKeyToken) -> anyhow::Result<usize> {
    let bytes = if pem {
        keymother_pki::der::pem::encode_string(
            "CMS",
            keymother_pki::der::pem::LineEnding::LF,
            &built.der,
        )
        .context("cannot encode the token as PEM")?
        .into_bytes()
    } else {
        built.der.clone()
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options
        .open(out)
        .with_context(|| format!("{}: cannot write the token there", out.display()))?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("{}: cannot write the token there", out.display()))?;
    Ok(bytes.len())
}

fn report(
    arguments: &BuildArguments,
    parties: &Parties,
    built: &BuiltKeyToken,
    (binding, value): (&str, String),
    written: usize,
) {
    let kind = if arguments.one_pass {
        "one-pass key token"
    } else {
        "two-pass key token"
    };
    let mut token = vec![
        ("token".to_owned(), kind.to_owned()),
        (binding.to_owned(), value),
    ];
    token.push(("key block header".into(), built.header.clone()));
    token.push(("kcv".into(), hex::encode_upper(&built.kcv)));
    let parties_lines = vec![
        ("signer".to_owned(), parties.kdh.subject().to_string()),
        ("recipient".to_owned(), parties.krd.subject().to_string()),
        (
            "CRL".to_owned(),
            if parties.crl.is_empty() {
                "none"
            } else {
                "the KDH CA's, carried"
            }
            .to_owned(),
        ),
    ];
    let written_lines = vec![(
        "written".to_owned(),
        format!(
            "{} ({written} bytes, {})",
            arguments.out.display(),
            if arguments.pem { "PEM" } else { "DER" }
        ),
    )];
    print_sections(&[token, parties_lines, written_lines]);
}
