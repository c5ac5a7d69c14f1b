//! Custodian tools: new random components, combining typed components with every check value shown, and entering a ceremony's components under each custodian's name.

use clap::Subcommand;
use keymother_control as api;
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
            Err(error) if at_terminal() => {
                eprintln!("{error}; type component {number} again");
            }
            Err(error) => return Err(error.into()),
        }
    }
    Ok(components)
}

fn at_terminal() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stdin())
}

/// Reads one visible line (a name, a check value): typed at the terminal, or the next line of
/// standard input when a script pipes the ceremony in.
fn read_visible(prompt: &str) -> anyhow::Result<String> {
    use std::io::{BufRead, Write};
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line)? == 0 {
        anyhow::bail!("standard input ended before the ceremony was complete");
    }
    Ok(line.trim().to_owned())
}

/// Who enters each component, and the check value on each component's form: given on the
/// command line, or asked for as each custodian comes to the keyboard.
#[derive(clap::Args)]
pub struct CustodianArguments {
    /// Each custodian's name, in component order (asked for when not given). Recorded in the
    /// audit trail.
    #[arg(long = "custodian", value_name = "NAME")]
    custodians: Vec<String>,
    /// The check value on each component's form, in order (asked for at a terminal when not
    /// given; Enter for none): each component is checked against it as it is entered.
    #[arg(long = "component-kcv", value_name = "KCV")]
    component_kcvs: Vec<String>,
}

impl CustodianArguments {
    fn check_counts(&self, count: usize) -> anyhow::Result<()> {
        for (argument, given) in [
            ("--custodian", self.custodians.len()),
            ("--component-kcv", self.component_kcvs.len()),
        ] {
            if given != 0 && given != count {
                return Err(argument_error(
                    argument,
                    format!(
                        "given {given} times for {count} components: once per component, or not at all"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Asks each custodian in turn for their name, their component (never shown) and the check
    /// value on their form. At a terminal each component is checked as it is entered (hex,
    /// parity, repeated TDES parts, the form's check value) and a mistyped one is typed again
    /// at once, before the next custodian's turn; from a script nothing is retried, and the
    /// daemon refuses (and audits) what is wrong.
    pub fn read_entries(
        &self,
        algorithm: KeyAlgorithm,
        count: usize,
    ) -> anyhow::Result<Vec<api::CustodianComponent>> {
        self.check_counts(count)?;
        let digits = algorithm.key_length() * 2;
        let mut entries = Vec::with_capacity(count);
        for index in 0..count {
            let number = index + 1;
            let custodian = match self.custodians.get(index) {
                Some(name) => name.clone(),
                None => read_name(number, count)?,
            };
            loop {
                let component = read_secret(&format!(
                    "{custodian}: component {number} of {count} ({algorithm}, {digits} hex digits, not shown): "
                ))?;
                // A script passes the forms' check values with --component-kcv; a person at
                // the terminal is asked for theirs.
                let form_kcv = match self.component_kcvs.get(index) {
                    Some(kcv) => kcv.clone(),
                    None if at_terminal() => read_visible(&format!(
                        "{custodian}: check value on the form of component {number} (Enter if none): "
                    ))?,
                    None => String::new(),
                };
                let form_kcv = (!form_kcv.is_empty()).then_some(form_kcv);
                if at_terminal() {
                    let expected = match form_kcv
                        .as_deref()
                        .map(|text| Kcv::from_hex(algorithm.family(), text))
                        .transpose()
                    {
                        Ok(expected) => expected,
                        Err(error) => {
                            eprintln!(
                                "component {number}'s check value: {error}; type component {number} again"
                            );
                            continue;
                        }
                    };
                    match Component::from_hex_expecting(algorithm, number, &component, expected) {
                        Ok(checked) => eprintln!(
                            "component {number} accepted from {custodian}, KCV {}",
                            checked.kcv()
                        ),
                        Err(error) => {
                            eprintln!("{error}; {custodian}, type component {number} again");
                            continue;
                        }
                    }
                }
                entries.push(api::CustodianComponent {
                    custodian: custodian.clone(),
                    component: api::ComponentHex::new(component.to_string()),
                    kcv: form_kcv,
                });
                break;
            }
        }
        Ok(entries)
    }
}

/// Asks for custodian `number`'s name; at a terminal a name the vault would refuse is asked
/// again.
fn read_name(number: usize, count: usize) -> anyhow::Result<String> {
    loop {
        let name = read_visible(&format!("custodian {number} of {count}, your name: "))?;
        // The error never quotes the name: a component typed at this prompt stays unshown.
        match name.parse::<keymother_vault::CustodianName>() {
            Ok(_) => return Ok(name),
            Err(error) if at_terminal() => eprintln!("that name {error}; type it again"),
            Err(error) => anyhow::bail!("custodian {number}'s name {error}"),
        }
    }
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
    /// Replace the KEK or TTK that is loaded; without it the ceremony is refused before any
    /// component is asked for.
    #[arg(long)]
    replace: bool,
    #[command(flatten)]
    custodians: CustodianArguments,
}

/// A ceremony's arguments, checked before any custodian is asked for anything.
pub struct CeremonyPlan {
    pub name: keymother_vault::SecretName,
    pub algorithm: KeyAlgorithm,
    pub count: usize,
    pub expect_kcv: Option<String>,
    pub replace: bool,
}

impl CeremonyArguments {
    /// Checks the arguments (a wrong expected check value is reported before any component).
    pub fn plan(&self) -> anyhow::Result<CeremonyPlan> {
        let name: keymother_vault::SecretName = self
            .secret
            .parse()
            .map_err(|error| argument_error("--secret", error))?;
        let algorithm = parse_algorithm(&self.algorithm)?;
        let components = self.components;
        let count = parse_count(components).map_err(|_| {
            argument_error("--components", format!("must be 2 to 9, got {components}"))
        })?;
        parse_expected_kcv(self.expect_kcv.as_deref(), algorithm)?;
        self.custodians.check_counts(count)?;
        Ok(CeremonyPlan {
            name,
            algorithm,
            count,
            expect_kcv: self.expect_kcv.clone(),
            replace: self.replace,
        })
    }

    /// Asks each custodian for their name and component (see [`CustodianArguments::read_entries`]).
    pub fn read_entries(
        &self,
        plan: &CeremonyPlan,
    ) -> anyhow::Result<Vec<api::CustodianComponent>> {
        self.custodians.read_entries(plan.algorithm, plan.count)
    }
}

/// The refusal of a ceremony that would replace a loaded key without `--replace`, said before
/// any custodian types anything.
pub fn replacement_refused(name: &str, kcv: &str, loaded_at: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "the {name} is loaded (KCV {kcv}, loaded {loaded_at}); a {name} ceremony replaces it \
         only with --replace. No component was asked for."
    )
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
