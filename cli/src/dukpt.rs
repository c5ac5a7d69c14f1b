//! The DUKPT calculator: a device's initial key, a transaction's working keys and a test PIN block's PIN, from a BDK, to check a terminal at the bench.

use clap::{Subcommand, ValueEnum};
use keymother_crypto::dukpt::{
    AesKsn, DukptError, InitialKeyId, Ksn, TdesKsn,
    aes::{self, AesKeyUsage},
    tdes::{self, TdesKeyVariant},
};
use keymother_crypto::pin_block::{self, Pan};
use keymother_crypto::{KeyAlgorithm, KeyFamily, SecretKey};
use zeroize::Zeroizing;

use crate::arguments::argument_error;
use crate::prompt::read_secret;

/// Width of the label column of every line the calculator prints.
const LABEL_WIDTH: usize = 20;

#[derive(Subcommand)]
pub enum DukptCommand {
    /// A device's initial key and its check value: TDES DUKPT (ANSI X9.24-1-2009, the IPEK) from
    /// a TDES-2KEY BDK and the device's KSN, or AES DUKPT (ANSI X9.24-3-2017) from an AES BDK
    /// and the initial key ID.
    InitialKey {
        /// The base derivation key in hex; "-" to type it without echo.
        #[arg(long)]
        bdk: String,
        /// TDES DUKPT: the device's KSN, 20 hex digits (its transaction counter is ignored).
        #[arg(long, required_unless_present = "key_id", conflicts_with = "key_id")]
        ksn: Option<String>,
        /// AES DUKPT: the initial key ID, 16 hex digits (4-byte BDK ID, 4-byte derivation ID).
        #[arg(long)]
        key_id: Option<String>,
        /// AES DUKPT: the initial key's type, no stronger than the BDK [default: the BDK's].
        #[arg(long, value_enum)]
        key_type: Option<KeyType>,
    },
    /// A transaction's key and its PIN, MAC and data keys, each with its check value, from the
    /// BDK and the full KSN the terminal sent.
    WorkingKeys {
        /// The base derivation key in hex; "-" to type it without echo.
        #[arg(long)]
        bdk: String,
        /// The transaction's KSN: 20 hex digits for TDES DUKPT, 24 for AES DUKPT.
        #[arg(long)]
        ksn: String,
        /// AES DUKPT: the working keys' type, no stronger than the initial key [default: aes128].
        #[arg(long, value_enum)]
        key_type: Option<KeyType>,
        /// AES DUKPT: the initial key's type, no stronger than the BDK [default: the BDK's].
        #[arg(long, value_enum)]
        initial_key_type: Option<KeyType>,
    },
    /// Bench test tool: decrypts a test PIN block and prints the clear PIN, to check that a
    /// terminal encrypts PINs under the right DUKPT key. For test keys and test cards only: it
    /// shows the PIN on the screen. ISO 9564 format 0 under a TDES PIN key, format 4 under an
    /// AES PIN key.
    Pin {
        /// The base derivation key in hex; "-" to type it without echo.
        #[arg(long)]
        bdk: String,
        /// The transaction's KSN: 20 hex digits for TDES DUKPT, 24 for AES DUKPT.
        #[arg(long)]
        ksn: String,
        /// The encrypted PIN block in hex: 16 digits (format 0) or 32 (format 4).
        #[arg(long)]
        pin_block: String,
        /// The card's PAN, 12 to 19 digits.
        #[arg(long)]
        pan: String,
        /// AES DUKPT: the PIN key's type, no stronger than the initial key [default: aes128].
        #[arg(long, value_enum)]
        key_type: Option<KeyType>,
        /// AES DUKPT: the initial key's type, no stronger than the BDK [default: the BDK's].
        #[arg(long, value_enum)]
        initial_key_type: Option<KeyType>,
    },
}

/// A DUKPT key type as typed on the command line.
#[derive(Clone, Copy, ValueEnum)]
pub enum KeyType {
    Tdes2,
    Tdes3,
    Aes128,
    Aes192,
    Aes256,
}

impl KeyType {
    fn algorithm(self) -> KeyAlgorithm {
        match self {
            KeyType::Tdes2 => KeyAlgorithm::Tdes2Key,
            KeyType::Tdes3 => KeyAlgorithm::Tdes3Key,
            KeyType::Aes128 => KeyAlgorithm::Aes128,
            KeyType::Aes192 => KeyAlgorithm::Aes192,
            KeyType::Aes256 => KeyAlgorithm::Aes256,
        }
    }
}

/// The AES DUKPT key types of one command: the initial key's and the working keys'.
struct AesKeyTypes {
    initial: Option<KeyType>,
    working: Option<KeyType>,
}

impl AesKeyTypes {
    /// Refuses key types given for a TDES DUKPT command: its keys are always TDES-2KEY.
    fn refuse_for_tdes(&self) -> anyhow::Result<()> {
        let reason = "applies to AES DUKPT only (TDES DUKPT keys are TDES-2KEY)";
        if self.working.is_some() {
            return Err(argument_error("--key-type", reason));
        }
        if self.initial.is_some() {
            return Err(argument_error("--initial-key-type", reason));
        }
        Ok(())
    }
}

pub fn run(command: DukptCommand) -> anyhow::Result<()> {
    match command {
        DukptCommand::InitialKey {
            bdk,
            ksn,
            key_id,
            key_type,
        } => initial_key(&bdk, ksn.as_deref(), key_id.as_deref(), key_type),
        DukptCommand::WorkingKeys {
            bdk,
            ksn,
            key_type,
            initial_key_type,
        } => {
            let types = AesKeyTypes {
                initial: initial_key_type,
                working: key_type,
            };
            match parse_ksn(&ksn)? {
                Ksn::Tdes(ksn) => tdes_working_keys(&bdk, &ksn, &types),
                Ksn::Aes(ksn) => aes_working_keys(&bdk, &ksn, &types),
            }
        }
        DukptCommand::Pin {
            bdk,
            ksn,
            pin_block,
            pan,
            key_type,
            initial_key_type,
        } => {
            let types = AesKeyTypes {
                initial: initial_key_type,
                working: key_type,
            };
            decrypt_pin(&bdk, &ksn, &pin_block, &pan, &types)
        }
    }
}

/// The BDK of `family`, typed with `--bdk` or asked for without echo when given as "-".
fn read_bdk(value: &str, family: KeyFamily) -> anyhow::Result<SecretKey> {
    let hex = if value == "-" {
        read_secret(&format!("{family} BDK (hex, not shown): "))?
    } else {
        Zeroizing::new(value.to_owned())
    };
    SecretKey::from_hex_in_family(family, hex.trim())
        .map_err(|error| argument_error("--bdk", error))
}

fn parse_ksn(text: &str) -> anyhow::Result<Ksn> {
    text.parse().map_err(|error| argument_error("--ksn", error))
}

/// Names the argument a derivation error is about: the BDK, the KSN or a key type.
fn derivation_error(error: DukptError, key_type_argument: &str) -> anyhow::Error {
    let argument = match &error {
        DukptError::TooManyOneBits { .. } | DukptError::CounterZero | DukptError::Ksn(_) => "--ksn",
        DukptError::StrongerThanSource { .. } => key_type_argument,
        DukptError::WrongAlgorithm { role, .. } if role.contains("BDK") => "--bdk",
        DukptError::WrongAlgorithm { .. } => key_type_argument,
        DukptError::Key(_) => "--bdk",
    };
    argument_error(argument, error)
}

/// One line of output: a label and its value.
fn line(label: &str, value: impl std::fmt::Display) {
    println!("{label:<LABEL_WIDTH$} {value}");
}

/// One key: its hex and its check value on one line.
fn key_line(label: &str, key: &SecretKey) {
    line(
        label,
        format!("{}  KCV {}", key.expose_secret_hex().as_str(), key.kcv()),
    );
}

fn initial_key(
    bdk: &str,
    ksn: Option<&str>,
    key_id: Option<&str>,
    key_type: Option<KeyType>,
) -> anyhow::Result<()> {
    let key = match (ksn, key_id) {
        (Some(ksn), _) => {
            AesKeyTypes {
                initial: None,
                working: key_type,
            }
            .refuse_for_tdes()?;
            let ksn: TdesKsn = ksn
                .parse()
                .map_err(|error| argument_error("--ksn", error))?;
            let bdk = read_bdk(bdk, KeyFamily::Tdes)?;
            let key = tdes::derive_initial_key(&bdk, &ksn)
                .map_err(|error| derivation_error(error, "--bdk"))?;
            line("initial KSN", ksn.initial());
            key
        }
        (None, Some(key_id)) => {
            let key_id: InitialKeyId = key_id
                .parse()
                .map_err(|error| argument_error("--key-id", error))?;
            let bdk = read_bdk(bdk, KeyFamily::Aes)?;
            let key_type = key_type.map_or(bdk.algorithm(), KeyType::algorithm);
            let key = aes::derive_initial_key(&bdk, &key_id, key_type)
                .map_err(|error| derivation_error(error, "--key-type"))?;
            print_key_id(&key_id);
            key
        }
        (None, None) => {
            return Err(argument_error(
                "--ksn",
                "give --ksn (TDES) or --key-id (AES)",
            ));
        }
    };
    line("initial key", key.expose_secret_hex().as_str());
    line("key algorithm", key.algorithm());
    line("kcv", key.kcv());
    Ok(())
}

fn print_key_id(key_id: &InitialKeyId) {
    line("initial key ID", key_id);
    line("BDK ID", format!("{:08X}", key_id.bdk_id()));
    line("derivation ID", format!("{:08X}", key_id.derivation_id()));
}

fn print_counter(counter: u32) {
    line("transaction counter", format!("{counter} ({counter:#X})"));
}

fn tdes_working_keys(bdk: &str, ksn: &TdesKsn, types: &AesKeyTypes) -> anyhow::Result<()> {
    types.refuse_for_tdes()?;
    let bdk = read_bdk(bdk, KeyFamily::Tdes)?;
    let transaction_key = tdes::transaction_key_from_bdk(&bdk, ksn)
        .map_err(|error| derivation_error(error, "--bdk"))?;
    line("KSN", ksn);
    print_counter(ksn.counter());
    key_line("transaction key", &transaction_key);
    for variant in TdesKeyVariant::ALL {
        let key = tdes::derive_working_key(&transaction_key, variant)
            .map_err(|error| derivation_error(error, "--bdk"))?;
        key_line(variant.name(), &key);
    }
    Ok(())
}

/// The AES DUKPT transaction key of `ksn` and the working key type, from the BDK.
fn aes_transaction_key(
    bdk: &str,
    ksn: &AesKsn,
    types: &AesKeyTypes,
) -> anyhow::Result<(SecretKey, KeyAlgorithm)> {
    let bdk = read_bdk(bdk, KeyFamily::Aes)?;
    let initial_type = types.initial.map_or(bdk.algorithm(), KeyType::algorithm);
    let working_type = types
        .working
        .map_or(KeyAlgorithm::Aes128, KeyType::algorithm);
    let initial_key = aes::derive_initial_key(&bdk, &ksn.key_id(), initial_type)
        .map_err(|error| derivation_error(error, "--initial-key-type"))?;
    let transaction_key = aes::derive_transaction_key(&initial_key, ksn)
        .map_err(|error| derivation_error(error, "--initial-key-type"))?;
    Ok((transaction_key, working_type))
}

fn aes_working_keys(bdk: &str, ksn: &AesKsn, types: &AesKeyTypes) -> anyhow::Result<()> {
    let (transaction_key, working_type) = aes_transaction_key(bdk, ksn, types)?;
    let mut working_keys = Vec::new();
    for usage in AesKeyUsage::WORKING {
        let key = aes::derive_working_key(&transaction_key, ksn, usage, working_type)
            .map_err(|error| derivation_error(error, "--key-type"))?;
        working_keys.push((usage, key));
    }
    line("KSN", ksn);
    print_key_id(&ksn.key_id());
    print_counter(ksn.counter());
    line("initial key type", transaction_key.algorithm());
    line("working key type", working_type);
    key_line("transaction key", &transaction_key);
    for (usage, key) in &working_keys {
        key_line(usage.name(), key);
    }
    Ok(())
}

/// The PIN key of a transaction: TDES DUKPT's PIN variant or AES DUKPT's PIN encryption key.
fn pin_key(bdk: &str, ksn: &Ksn, types: &AesKeyTypes) -> anyhow::Result<SecretKey> {
    match ksn {
        Ksn::Tdes(ksn) => {
            types.refuse_for_tdes()?;
            let bdk = read_bdk(bdk, KeyFamily::Tdes)?;
            tdes::transaction_key_from_bdk(&bdk, ksn)
                .and_then(|key| tdes::derive_working_key(&key, TdesKeyVariant::Pin))
                .map_err(|error| derivation_error(error, "--bdk"))
        }
        Ksn::Aes(ksn) => {
            let (transaction_key, key_type) = aes_transaction_key(bdk, ksn, types)?;
            let usage = AesKeyUsage::PinEncryption;
            aes::derive_working_key(&transaction_key, ksn, usage, key_type)
                .map_err(|error| derivation_error(error, "--key-type"))
        }
    }
}

fn decrypt_pin(
    bdk: &str,
    ksn: &str,
    block: &str,
    pan: &str,
    types: &AesKeyTypes,
) -> anyhow::Result<()> {
    let ksn = parse_ksn(ksn)?;
    let pan = Pan::new(pan).map_err(|error| argument_error("--pan", error))?;
    let block = hex::decode(block.trim()).map_err(|_| {
        argument_error(
            "--pin-block",
            "not hexadecimal: a PIN block is 16 or 32 hex digits",
        )
    })?;
    let pin_key = pin_key(bdk, &ksn, types)?;
    let (pin, format) = pin_block::decrypt(&pin_key, &block, &pan)
        .map_err(|error| argument_error("--pin-block", error))?;
    line("KSN", ksn);
    print_counter(ksn.counter());
    key_line("PIN key", &pin_key);
    line("PIN block format", format);
    line("PIN", pin.expose_digits());
    Ok(())
}
