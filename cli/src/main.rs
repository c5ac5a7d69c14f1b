//! The `keymother` command: the bench calculator, custodian tools, key files, the vault and the demo.

mod arguments;
mod batch;
mod bdk;
mod calculator;
mod client;
mod clock;
mod control;
mod custodian;
mod demo;
mod display_preview;
mod dukpt;
mod expected;
mod hardening;
mod kdh;
mod keyfile;
mod operator;
mod pending;
mod prompt;
mod registry;
mod reinject;
mod report;
mod tr34;
mod vault;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use arguments::ArgumentError;

#[derive(Parser)]
#[command(
    name = "keymother",
    version,
    about = "keymother: terminal master-key loading appliance"
)]
struct Cli {
    /// keymotherd's control socket.
    #[arg(long, global = true, env = "KEYMOTHER_SOCKET", default_value = control::DEFAULT_SOCKET)]
    socket: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Key check value of a key (TDES: 3 bytes; AES: 5-byte CMAC, X9.24-1-2017).
    Kcv {
        /// Cipher family: tdes or aes (the key's length picks the variant).
        #[arg(long = "alg")]
        family: String,
        /// The key in hex; "-" to type it without echo.
        key: String,
    },
    /// ANSI X9.143 (TR-31) key blocks.
    #[command(subcommand)]
    Tr31(calculator::Tr31Command),
    /// DUKPT (ANSI X9.24-1 TDES, X9.24-3 AES): initial keys, working keys, test PIN blocks.
    #[command(subcommand)]
    Dukpt(dukpt::DukptCommand),
    /// ASC X9 TR-34 tokens: explain one, or build a key token from a test key for a KRD.
    #[command(subcommand)]
    Tr34(tr34::Tr34Command),
    /// Custodian key components (split knowledge).
    #[command(subcommand)]
    Component(custodian::ComponentCommand),
    /// Key files: the front end's writer and a header viewer.
    #[command(subcommand)]
    Keyfile(keyfile::KeyfileCommand),
    /// Operations on the running appliance, through keymotherd's control socket.
    #[command(flatten)]
    Daemon(control::DaemonCommand),
    /// Operator login at the bench: before keys are dispensed, an operator signs keymotherd's
    /// challenge with an operator certificate's key.
    #[command(subcommand)]
    Operator(operator::OperatorCommand),
    /// The appliance's clock: whether it is trusted, and setting it under dual control.
    #[command(subcommand)]
    Clock(clock::ClockCommand),
    /// Re-injection grants: a terminal that already holds a confirmed key is refused another
    /// until an operator grants one.
    #[command(subcommand)]
    Reinject(reinject::ReinjectCommand),
    /// Offline vault maintenance, only while keymotherd is stopped (it owns the vault).
    #[command(subcommand)]
    Vault(vault::VaultCommand),
    /// Runs the whole flow on generated keys in a temporary directory and shows it.
    Demo {
        /// Number of master keys in the demo key file.
        #[arg(long, default_value_t = 1000)]
        keys: u32,
        /// Keep the demo's files in this directory instead of a temporary one.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Terminals injected one after another on each of the four ports.
        #[arg(long, default_value_t = 3)]
        terminals_per_port: usize,
    },
    /// Writes every bench-display screen as a PNG into DIR (created if missing).
    DisplayPreview {
        /// Directory for the PNGs, one per screen: booting.png, locked-no-keys.png, ...
        #[arg(value_name = "DIR")]
        directory: PathBuf,
        /// Enlarge each pixel this many times (1 to 16).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=i64::from(keymother_display::MAX_PNG_SCALE)))]
        scale: u32,
    },
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Kcv { family, key } => calculator::kcv(&family, &key),
        Command::Tr31(command) => calculator::tr31(command),
        Command::Dukpt(command) => dukpt::run(command),
        Command::Tr34(command) => tr34::run(command),
        Command::Component(command) => custodian::run(command),
        Command::Keyfile(command) => keyfile::run(command),
        Command::Daemon(command) => control::run(&cli.socket, command),
        Command::Operator(command) => operator::run(&cli.socket, command),
        Command::Clock(command) => clock::run(&cli.socket, command),
        Command::Reinject(command) => reinject::run(&cli.socket, command),
        Command::Vault(command) => vault::run(command),
        Command::Demo {
            keys,
            dir,
            terminals_per_port,
        } => demo::run(keys, dir, terminals_per_port),
        Command::DisplayPreview { directory, scale } => display_preview::run(&directory, scale),
    }
}

fn main() -> ExitCode {
    hardening::harden();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            if let Some(argument) = error.downcast_ref::<ArgumentError>() {
                eprintln!("keymother: {argument}");
                return ExitCode::from(2);
            }
            eprintln!("keymother: {error:#}");
            ExitCode::FAILURE
        }
    }
}
