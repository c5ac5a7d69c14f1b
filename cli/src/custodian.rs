//! Custodian tools: new random components, and combining typed components with every check value shown.

use clap::Subcommand;
use keymother_crypto::component::{self, Combined, Component, MAX_COMPONENTS, MIN_COMPONENTS};
use keymother_crypto::{Kcv, KeyAlgorithm};

use crate::arguments::argument_error;
use crate::prompt::read_secret;

#[derive(Subcommand)]
pub enum ComponentCommand {
    /// Generates random components (odd parity for TDES) and prints each with its check value.
    New {
        /// TDES-2KEY, TDES-3KEY, AES-128, AES-192 or AES-256.
        #[arg(long = "alg")]
        algorithm: String,
        /// How many components.
        #[arg(long, default_value_t = 2)]
        count: usize,
    },
    /// Combines typed components (never echoed) and prints every check value; never the key.
    Combine {
        /// TDES-2KEY, TDES-3KEY, AES-128, AES-192 or AES-256.
        #[arg(long = "alg")]
        algorithm: String,
        /// How many components will be typed (2 to 9).
        #[arg(long)]
        count: usize,
        /// The check value the combined key must have.
        #[arg(long)]
        expect_kcv: Option<String>,
    },
}

pub fn parse_algorithm(text: &str) -> anyhow::Result<KeyAlgorithm> {
    text.parse().map_err(|error| argument_error("--alg", error))
}

pub fn parse_count(count: usize) -> anyhow::Result<usize> {
    if !(MIN_COMPONENTS..=MAX_COMPONENTS).contains(&count) {
        return Err(argument_error(
            "--count",
            format!("must be {MIN_COMPONENTS} to {MAX_COMPONENTS}, got {count}"),
        ));
    }
    Ok(count)
}

pub fn parse_expected_kcv(
    text: Option<&str>,
    algorithm: KeyAlgorithm,
) -> anyhow::Result<Option<Kcv>> {
    text.map(|text| {
        Kcv::from_hex(algorithm.family(), text)
            .map_err(|error| argument_error("--expect-kcv", error))
    })
    .transpose()
}

/// Asks for `count` components one by one, showing each one's check value as it is accepted
/// so its custodian can compare it with the form. A mistyped component is asked again.
pub fn read_components(algorithm: KeyAlgorithm, count: usize) -> anyhow::Result<Vec<Component>> {
    let mut components = Vec::with_capacity(count);
    let digits = algorithm.key_length() * 2;
    while components.len() < count {
        let number = components.len() + 1;
        let typed = read_secret(&format!(
            "component {number} of {count} ({algorithm}, {digits} hex digits, not shown): "
        ))?;
        match Component::from_hex(algorithm, number, &typed) {
            Ok(component) => {
                eprintln!("component {number} accepted, KCV {}", component.kcv());
                components.push(component);
            }
            Err(error) if std::io::IsTerminal::is_terminal(&std::io::stdin()) => {
                eprintln!("{error}; type component {number} again");
            }
            Err(error) => return Err(error.into()),
        }
    }
    Ok(components)
}

/// The arguments of a key ceremony, shared by the daemon's and the offline command.
#[derive(clap::Args)]
pub struct CeremonyArguments {
    /// kek or ttk.
    #[arg(long)]
    secret: String,
    /// TDES-2KEY, TDES-3KEY, AES-128, AES-192 or AES-256.
    #[arg(long = "alg")]
    algorithm: String,
    /// Number of components (2 to 9).
    #[arg(long)]
    components: usize,
    /// The check value the combined key must have.
    #[arg(long)]
    expect_kcv: Option<String>,
}

/// What custodians typed, checked: every argument, every component, and the combination
/// (so a wrong expected check value is reported before anything is stored or sent).
pub struct CeremonyInput {
    pub name: keymother_vault::SecretName,
    pub components: Vec<Component>,
    pub combined: Combined,
}

impl CeremonyArguments {
    /// Checks the arguments, then asks each custodian for a component.
    pub fn collect(&self) -> anyhow::Result<CeremonyInput> {
        let name: keymother_vault::SecretName = self
            .secret
            .parse()
            .map_err(|error| argument_error("--secret", error))?;
        let algorithm = parse_algorithm(&self.algorithm)?;
        let components = self.components;
        let count = parse_count(components).map_err(|_| {
            argument_error("--components", format!("must be 2 to 9, got {components}"))
        })?;
        let expected = parse_expected_kcv(self.expect_kcv.as_deref(), algorithm)?;
        let typed = read_components(algorithm, count)?;
        let combined = component::combine(&typed, expected)?;
        Ok(CeremonyInput {
            name,
            components: typed,
            combined,
        })
    }
}

/// Prints the ceremony outcome: every component's check value and the combined one.
pub fn print_combined(combined: &Combined) {
    for (number, kcv) in combined.component_kcvs.iter().enumerate() {
        println!("component {} KCV   {kcv}", number + 1);
    }
    println!("combined KCV      {}", combined.key.kcv());
    if combined.parity_adjusted {
        println!("(combined key adjusted to odd DES parity)");
    }
}

pub fn run(command: ComponentCommand) -> anyhow::Result<()> {
    match command {
        ComponentCommand::New { algorithm, count } => {
            let algorithm = parse_algorithm(&algorithm)?;
            let count = parse_count(count)?;
            for number in 1..=count {
                let component = Component::generate(algorithm)?;
                println!(
                    "component {number}  {}  KCV {}",
                    component.expose_secret_hex().as_str(),
                    component.kcv()
                );
            }
            Ok(())
        }
        ComponentCommand::Combine {
            algorithm,
            count,
            expect_kcv,
        } => {
            let algorithm = parse_algorithm(&algorithm)?;
            let count = parse_count(count)?;
            let expected = parse_expected_kcv(expect_kcv.as_deref(), algorithm)?;
            let components = read_components(algorithm, count)?;
            let combined = component::combine(&components, expected)?;
            print_combined(&combined);
            Ok(())
        }
    }
}
