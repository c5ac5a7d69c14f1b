//! keymother-terminal: the reference terminal on a real serial port, for checking an appliance on the bench.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_protocol::{
    Capabilities, CertificatePass, DEFAULT_MAX_RETRIES, DEFAULT_RESPONSE_TIMEOUT, Mode,
    TerminalConfig, TerminalOutcome,
};
use keymother_terminal::{CertificateIdentity, SerialLine, SoftwareKeyStore, inject};

#[derive(Parser)]
#[command(
    name = "keymother-terminal",
    version,
    about = "keymother reference terminal: a TEST terminal for checking an appliance (its key store, and the --store file, hold keys in the clear)"
)]
struct Arguments {
    /// Serial port (or pseudo-terminal) connected to the appliance.
    #[arg(long)]
    port: String,
    /// This terminal's hardware serial number (1-24 characters, A-Z 0-9).
    #[arg(long)]
    serial: String,
    /// Terminal model reported to the appliance.
    #[arg(long, default_value = "KEYMOTHER-REF")]
    model: String,
    /// Bit rate of the serial line (both ends must use the same; the protocol's default is 115200).
    #[arg(long, default_value_t = 115200)]
    baud: u32,
    /// The transport key's algorithm; the key itself is typed without echo (or piped on stdin).
    #[arg(long, default_value = "AES-256")]
    ttk_alg: String,
    /// Response timeout in milliseconds (docs/PROTOCOL.md section 6: 3000 unless told).
    #[arg(long, default_value_t = DEFAULT_RESPONSE_TIMEOUT.as_millis() as u64)]
    timeout_ms: u64,
    /// Retransmissions of one request before the terminal gives up (docs/PROTOCOL.md section 6).
    #[arg(long, default_value_t = DEFAULT_MAX_RETRIES)]
    retries: u32,
    /// The TR-31 key block versions this terminal announces it unwraps in HELLO's capability
    /// flags: "B,D" (the default), "B", "D", "none" (flags 0), or the flags in hex ("0x0001").
    /// To check how the appliance treats a terminal that cannot open some version.
    #[arg(long, default_value = "B,D")]
    capabilities: Capabilities,
    /// Certificate mode: the device's private key (PKCS#8 PEM or DER; an encrypted key asks
    /// for its passphrase). With --device-certificate and --kdh-ca, the terminal offers
    /// certificate mode first, then tr31.
    #[arg(long, requires_all = ["device_certificate", "kdh_ca"])]
    device_key: Option<PathBuf>,
    /// Certificate mode: the device certificate issued by the terminal manufacturer's CA.
    #[arg(long, requires = "device_key")]
    device_certificate: Option<PathBuf>,
    /// Certificate mode: the KDH CA certificate the appliance's KDH certificate must chain to.
    #[arg(long, requires = "device_key")]
    kdh_ca: Option<PathBuf>,
    /// Certificate mode: ask for one-pass TR-34 key tokens (bound to a signing time within
    /// five minutes of this machine's clock) instead of two-pass ones (bound to a nonce).
    #[arg(long, requires = "device_key")]
    one_pass: bool,
    /// Offer profile mode first (a device profile: the master key and DUKPT initial keys).
    #[arg(long)]
    profile: bool,
    /// After a profile, print a test PIN block of this PIN from each DUKPT key (ISO format 0
    /// under a TDES PIN key, format 4 under an AES one), for a host to check with
    /// `keymother dukpt pin`. A test tool: use test PINs only.
    #[arg(long, requires_all = ["test_pan", "test_counter"])]
    test_pin: Option<String>,
    /// The PAN of the test PIN block (12 to 19 digits).
    #[arg(long, requires = "test_pin")]
    test_pan: Option<String>,
    /// The transaction counter of the test PIN block (the KSN's counter, 1 or more).
    #[arg(long, requires = "test_pin")]
    test_counter: Option<u32>,
    /// Keep this terminal's keys in FILE between runs, as a PIN pad's secure memory keeps
    /// them: the installed keys and whether the appliance confirmed each, written (mode 0600,
    /// atomically, synced) after every change, so a run killed after a delivery resumes its
    /// confirmation instead of asking for another key. A TEST terminal's file: it holds the
    /// keys IN THE CLEAR; use test keys only. Bound to --serial.
    #[arg(long, value_name = "FILE")]
    store: Option<PathBuf>,
}

/// Prints a test PIN block from each DUKPT key the store holds.
fn print_test_pin_blocks(
    key_store: &SoftwareKeyStore,
    pin: &str,
    pan: &str,
    counter: u32,
) -> anyhow::Result<()> {
    let pin = keymother_crypto::pin_block::Pin::new(pin).context("--test-pin")?;
    let pan = keymother_crypto::pin_block::Pan::new(pan).context("--test-pan")?;
    for key in key_store.dukpt_keys() {
        let (ksn, block) = key
            .test_pin_block(counter, &pin, &pan)
            .with_context(|| format!("DUKPT key {}", key.label()))?;
        let block: String = block.iter().map(|byte| format!("{byte:02X}")).collect();
        println!(
            "DUKPT key {} (initial {}): KSN {ksn}, test PIN block {block}",
            key.label(),
            key.identity()
        );
    }
    Ok(())
}

fn read_transport_key(algorithm: KeyAlgorithm) -> anyhow::Result<SecretKey> {
    let prompt = format!("transport key ({algorithm}, hex, not shown): ");
    let typed = if std::io::stdin().is_terminal() {
        zeroize::Zeroizing::new(rpassword::prompt_password(prompt)?)
    } else {
        let mut line = zeroize::Zeroizing::new(String::new());
        std::io::stdin().lock().read_line(&mut line)?;
        line
    };
    SecretKey::from_hex(algorithm, typed.trim()).context("transport key")
}

fn run(arguments: Arguments) -> anyhow::Result<bool> {
    let algorithm: KeyAlgorithm = arguments.ttk_alg.parse().context("--ttk-alg")?;
    let config = TerminalConfig {
        hardware_serial: arguments
            .serial
            .parse()
            .map_err(|error| anyhow::anyhow!("--serial: {error}"))?,
        model: arguments
            .model
            .parse()
            .map_err(|error| anyhow::anyhow!("--model: {error}"))?,
        modes: vec![Mode::Tr31],
        ttk_kcv: Vec::new(),
        response_timeout: Duration::from_millis(arguments.timeout_ms),
        max_retries: arguments.retries,
        unconfirmed_key: None,
        unconfirmed_dukpt: Vec::new(),
        krd_credential_token: Vec::new(),
    };
    let transport_key = read_transport_key(algorithm)?;
    let mut key_store =
        SoftwareKeyStore::new(&transport_key).with_capabilities(arguments.capabilities);
    drop(transport_key);
    let mut modes = vec![Mode::Tr31];
    if let (Some(key), Some(certificate), Some(kdh_ca)) = (
        &arguments.device_key,
        &arguments.device_certificate,
        &arguments.kdh_ca,
    ) {
        let identity = match CertificateIdentity::load(key, None, certificate, kdh_ca) {
            Err(keymother_terminal::IdentityError::Key(
                keymother_pki::PkiError::PassphraseRequired,
            )) => {
                let passphrase = zeroize::Zeroizing::new(rpassword::prompt_password(
                    "device key passphrase (not shown): ",
                )?);
                CertificateIdentity::load(key, Some(passphrase.as_bytes()), certificate, kdh_ca)
            }
            other => other,
        }
        .context("certificate mode")?;
        let pass = if arguments.one_pass {
            CertificatePass::OnePass
        } else {
            CertificatePass::TwoPass
        };
        key_store = key_store.with_certificate(identity.with_pass(pass));
        modes.insert(0, Mode::Certificate);
    }
    if arguments.profile {
        modes.insert(0, Mode::Profile);
    }
    if let Some(path) = &arguments.store {
        key_store = key_store
            .with_store_file(path, &arguments.serial)
            .context("--store")?;
        if let Some((key_index, _)) = key_store.unconfirmed() {
            eprintln!(
                "keymother-terminal: {}: key {key_index:08} installed, not yet confirmed: confirming it",
                path.display()
            );
        }
    }
    let config = TerminalConfig {
        ttk_kcv: key_store.transport_key_kcv().as_bytes().to_vec(),
        modes,
        ..config
    };
    let mut line = SerialLine::open(&arguments.port, arguments.baud)
        .with_context(|| arguments.port.clone())?;
    let injection = inject(&mut line, config, &mut key_store)?;
    match injection.outcome {
        TerminalOutcome::Injected {
            key_index,
            smn,
            kcv,
        } => {
            let kcv: String = kcv.iter().map(|byte| format!("{byte:02X}")).collect();
            println!(
                "injected key {key_index:08}, SMN {smn}, KCV {kcv}, in {:.0?}",
                injection.elapsed
            );
            Ok(true)
        }
        profile @ TerminalOutcome::ProfileInjected { .. } => {
            println!("{profile}, in {:.0?}", injection.elapsed);
            if let (Some(pin), Some(pan), Some(counter)) = (
                &arguments.test_pin,
                &arguments.test_pan,
                arguments.test_counter,
            ) {
                print_test_pin_blocks(&key_store, pin, pan, counter)?;
            }
            Ok(true)
        }
        TerminalOutcome::Failed { reason } => {
            eprintln!("keymother-terminal: injection failed: {reason}");
            Ok(false)
        }
    }
}

fn main() -> ExitCode {
    match run(Arguments::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("keymother-terminal: {error:#}");
            ExitCode::from(2)
        }
    }
}
