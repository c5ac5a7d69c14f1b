//! The bench calculator: check values and TR-31 key blocks, so nobody needs a third-party tool.

use clap::Subcommand;
use keymother_crypto::tr31::{self, Header};
use keymother_crypto::{KeyFamily, SecretKey, parity};
use zeroize::Zeroizing;

use crate::arguments::argument_error;
use crate::prompt::read_secret;

#[derive(Subcommand)]
pub enum Tr31Command {
    /// Opens a key block: prints its header fields, the key and its check value.
    Unwrap {
        /// Key-block protection key in hex; "-" to type it without echo.
        #[arg(long)]
        kbpk: String,
        /// The key block.
        block: String,
    },
    /// Makes a key block (version B under a TDES KBPK, D under an AES KBPK).
    Wrap {
        /// Key-block protection key in hex; "-" to type it without echo.
        #[arg(long)]
        kbpk: String,
        /// The key to wrap, in hex; "-" to type it without echo.
        #[arg(long)]
        key: String,
        /// Header template, e.g. D0000P0AE00E0000 (the length digits are filled in).
        #[arg(long)]
        header: String,
    },
}

/// A secret argument's value, asked for without echo when given as "-".
fn secret_argument(name: &str, value: &str) -> anyhow::Result<Zeroizing<String>> {
    if value == "-" {
        read_secret(&format!("{name} (hex, not shown): "))
    } else {
        Ok(Zeroizing::new(value.to_owned()))
    }
}

/// Parses a key of `family` from hex (16 or 24 bytes could be either family, so the caller
/// says which); errors name `argument`.
fn parse_key(argument: &str, hex: &str, family: KeyFamily) -> anyhow::Result<SecretKey> {
    SecretKey::from_hex_in_family(family, hex).map_err(|error| argument_error(argument, error))
}

pub fn kcv(family: &str, key: &str) -> anyhow::Result<()> {
    let family: KeyFamily = family
        .parse()
        .map_err(|error| argument_error("--alg", error))?;
    let hex = secret_argument("key", key)?;
    let key = parse_key("KEY_HEX", &hex, family)?;
    println!("{}", key.kcv());
    Ok(())
}

/// The KBPK's family follows from the block version (A, B, C: TDES; D: AES) or the template.
fn kbpk_family(version: char) -> KeyFamily {
    if version == 'D' {
        KeyFamily::Aes
    } else {
        KeyFamily::Tdes
    }
}

pub fn tr31(command: Tr31Command) -> anyhow::Result<()> {
    match command {
        Tr31Command::Unwrap { kbpk, block } => {
            let version = block.chars().next().unwrap_or('?');
            let kbpk_hex = secret_argument("KBPK", &kbpk)?;
            let kbpk = parse_key("--kbpk", &kbpk_hex, kbpk_family(version))?;
            let unwrapped = tr31::unwrap(&kbpk, block.trim())
                .map_err(|error| argument_error("BLOCK", error))?;
            print_header(&unwrapped.header);
            let key = &unwrapped.key;
            for warning in strength_warnings(&kbpk, key) {
                eprintln!("warning: {warning}");
            }
            println!("{:<16} {}", "key", key.expose_secret_hex().as_str());
            println!("{:<16} {}", "key algorithm", key.algorithm());
            println!("{:<16} {}", "kcv", key.kcv());
            if key.algorithm().family() == KeyFamily::Tdes {
                let verdict = match parity::check_odd(key.expose_secret_bytes()) {
                    Ok(()) => "odd".to_owned(),
                    Err(error) => format!("not odd (byte {} is even)", error.byte),
                };
                println!("{:<16} {verdict}", "parity");
            }
            Ok(())
        }
        Tr31Command::Wrap { kbpk, key, header } => {
            let template: Header = header
                .parse()
                .map_err(|error| argument_error("--header", error))?;
            let version = header.chars().next().unwrap_or('?');
            let kbpk_hex = secret_argument("KBPK", &kbpk)?;
            let kbpk = parse_key("--kbpk", &kbpk_hex, kbpk_family(version))?;
            let key_family = if template.algorithm == tr31::Algorithm::Aes {
                KeyFamily::Aes
            } else {
                KeyFamily::Tdes
            };
            let key_hex = secret_argument("key", &key)?;
            let key = parse_key("--key", &key_hex, key_family)?;
            let block = tr31::wrap(&kbpk, &template, &key).map_err(|error| {
                let argument = match error {
                    tr31::Tr31Error::WeakKey(_) => "--key",
                    tr31::Tr31Error::WeakProtectionKey(_) => "--kbpk",
                    _ => "--header",
                };
                argument_error(argument, error)
            })?;
            println!("{block}");
            Ok(())
        }
    }
}

/// What `tr31 unwrap` warns about (the block opened, so none of it is an error): a key
/// stronger than the KBPK that protects it (it is only as safe as the KBPK), and a key or
/// KBPK whose TDES parts repeat, which keymother would refuse to wrap.
fn strength_warnings(kbpk: &SecretKey, key: &SecretKey) -> Vec<String> {
    let mut warnings = Vec::new();
    let (key_algorithm, kbpk_algorithm) = (key.algorithm(), kbpk.algorithm());
    if key_algorithm.strength_bits() > kbpk_algorithm.strength_bits() {
        warnings.push(format!(
            "the {key_algorithm} key ({} bits of strength) is stronger than the {kbpk_algorithm} \
             key-block protection key that protects it ({} bits): it is only as safe as that key",
            key_algorithm.strength_bits(),
            kbpk_algorithm.strength_bits()
        ));
    }
    if let Err(weak) = key.check_strength() {
        warnings.push(format!("the wrapped key: {weak}"));
    }
    if let Err(weak) = kbpk.check_strength() {
        warnings.push(format!("the key-block protection key: {weak}"));
    }
    warnings
}

fn print_header(header: &Header) {
    let field = |name: &str, code: String, meaning: &str| {
        println!("{name:<16} {code:<3} {meaning}");
    };
    field(
        "version",
        header.version.to_string(),
        header.version.binding_method(),
    );
    field(
        "key usage",
        header.key_usage.to_string(),
        header.key_usage.description(),
    );
    field(
        "algorithm",
        header.algorithm.to_string(),
        header.algorithm.description(),
    );
    field(
        "mode of use",
        header.mode_of_use.to_string(),
        header.mode_of_use.description(),
    );
    println!("{:<16} {}", "key version", header.key_version);
    field(
        "exportability",
        header.exportability.to_string(),
        header.exportability.description(),
    );
    if header.optional_blocks.is_empty() {
        println!("{:<16} none", "optional blocks");
    }
    for block in &header.optional_blocks {
        println!("{:<16} {block}", "optional block");
    }
}
