//! `keymother bdk`: DUKPT base derivation keys on the appliance — a custodian ceremony that loads one from components with its identifier and this appliance's device-ID range, and their status.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use keymother_control as api;
use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_domain::{BdkId, BdkName, DeviceRange};
use keymother_keyfiles::{BdkFileHeader, CreatedAt, write_bdk_file};

use crate::arguments::argument_error;
use crate::client::{call, open_regular, upload};
use crate::custodian::{CustodianArguments, parse_algorithm, parse_count, parse_expected_kcv};
use crate::prompt::read_secret;

#[derive(Subcommand)]
pub enum BdkCommand {
    /// Loads a BDK from its custodians' components (typed, never echoed), with its identifier
    /// and the device IDs this appliance may give out. Audited.
    Ceremony {
        /// The name device profiles use for it, e.g. PIN or DATA (A-Z 0-9 - _, 1 to 16).
        #[arg(long)]
        name: String,
        /// TDES-2KEY (ANSI X9.24-1 DUKPT) or AES-128, AES-192, AES-256 (X9.24-3).
        #[arg(long = "alg")]
        algorithm: String,
        /// TDES: the 40-bit key set identifier (10 hex digits); AES: the 32-bit BDK ID (8).
        #[arg(long)]
        bdk_id: String,
        /// This appliance's device IDs, FIRST-LAST in hex (TDES: 5 digits, at most 7FFFF;
        /// AES: 8 digits). Two appliances of one site must never share one.
        #[arg(long)]
        devices: String,
        /// Number of components (2 to 9).
        #[arg(long)]
        components: usize,
        /// The check value the combined BDK must have.
        #[arg(long)]
        expect_kcv: Option<String>,
        /// Replace the BDK loaded under this name; without it a loaded name is refused before
        /// any component is asked for.
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        custodians: CustodianArguments,
    },
    /// Imports a BDK from the front end's sealed BDK file (a TR-31 B0 block under the KEK, for
    /// this appliance). Audited.
    Import {
        /// The BDK file, on this machine.
        file: PathBuf,
        /// Replace the BDK loaded under the file's name.
        #[arg(long)]
        replace: bool,
    },
    /// The BDKs loaded: identifier, check value, device range, next device ID, IDs left.
    Status,
    /// Writes a sealed BDK file (the front end's side, for tests and the bench): the KEK and
    /// the BDK are typed without echo (or piped on stdin, KEK first).
    WriteFile {
        /// The KEK's algorithm.
        #[arg(long)]
        kek_alg: String,
        /// The BDK's algorithm: TDES-2KEY or AES-128, AES-192, AES-256.
        #[arg(long = "alg")]
        algorithm: String,
        /// The BDK's name (A-Z 0-9 - _, 1 to 16).
        #[arg(long)]
        name: String,
        /// TDES: the 40-bit key set identifier (10 hex digits); AES: the 32-bit BDK ID (8).
        #[arg(long)]
        bdk_id: String,
        /// The device IDs the appliance may give out, FIRST-LAST in hex.
        #[arg(long)]
        devices: String,
        /// The appliance the file is for.
        #[arg(long)]
        device_id: String,
        /// Where to write the file.
        #[arg(long)]
        out: PathBuf,
    },
}

pub fn run(socket: &Path, command: BdkCommand) -> anyhow::Result<()> {
    match command {
        BdkCommand::Status => {
            let bdks = call(socket, api::BdkStatus {})?;
            if bdks.is_empty() {
                println!("no BDK loaded");
            }
            for bdk in bdks {
                print_bdk(&bdk);
            }
            Ok(())
        }
        BdkCommand::Import { file, replace } => import(socket, &file, replace),
        BdkCommand::WriteFile {
            kek_alg,
            algorithm,
            name,
            bdk_id,
            devices,
            device_id,
            out,
        } => {
            let header = BdkFileHeader {
                name: name
                    .parse()
                    .map_err(|error| argument_error("--name", error))?,
                algorithm: parse_algorithm(&algorithm)?,
                bdk_id: bdk_id
                    .parse()
                    .map_err(|error| argument_error("--bdk-id", error))?,
                devices: devices
                    .parse()
                    .map_err(|error| argument_error("--devices", error))?,
                device_id: device_id
                    .parse()
                    .map_err(|error| argument_error("--device-id", error))?,
                created: CreatedAt::new(time::OffsetDateTime::now_utc()),
            };
            write_file(&kek_alg, &header, &out)
        }
        BdkCommand::Ceremony {
            name,
            algorithm,
            bdk_id,
            devices,
            components,
            expect_kcv,
            replace,
            custodians,
        } => {
            let request = api::BdkCeremony {
                name: name
                    .parse::<BdkName>()
                    .map_err(|error| argument_error("--name", error))?,
                bdk_id: bdk_id
                    .parse::<BdkId>()
                    .map_err(|error| argument_error("--bdk-id", error))?,
                devices: devices
                    .parse::<DeviceRange>()
                    .map_err(|error| argument_error("--devices", error))?,
                algorithm: parse_algorithm(&algorithm)?.name().to_owned(),
                components: Vec::new(),
                expect_kcv,
                replace,
            };
            ceremony(socket, request, components, &custodians)
        }
    }
}

fn import(socket: &Path, file: &Path, replace: bool) -> anyhow::Result<()> {
    let name = file.display().to_string();
    let (mut opened, size) = open_regular(file)?;
    let request = api::BdkImport {
        file_name: name.clone(),
        size,
        replace,
    };
    let bdk = upload(socket, request, &mut opened, &name, size, None)?;
    println!("BDK imported from {name}:");
    print_bdk(&bdk);
    Ok(())
}

fn write_file(kek_alg: &str, header: &BdkFileHeader, out: &Path) -> anyhow::Result<()> {
    let kek_algorithm: KeyAlgorithm = kek_alg
        .parse()
        .map_err(|error| argument_error("--kek-alg", error))?;
    let kek_hex = read_secret(&format!("KEK ({kek_algorithm}, hex, not shown): "))?;
    let kek = SecretKey::from_hex(kek_algorithm, &kek_hex)
        .map_err(|error| argument_error("KEK", error))?;
    let bdk_hex = read_secret(&format!("BDK ({}, hex, not shown): ", header.algorithm))?;
    let bdk = SecretKey::from_hex(header.algorithm, &bdk_hex)
        .map_err(|error| argument_error("BDK", error))?;
    let text = write_bdk_file(&kek, header, &bdk).map_err(|error| argument_error("BDK", error))?;
    std::fs::write(out, text)
        .map_err(|error| argument_error("--out", format!("{}: {error}", out.display())))?;
    println!(
        "wrote {}: BDK {} ({}, KCV {}), devices {}, for {}",
        out.display(),
        header.name,
        header.algorithm,
        bdk.kcv(),
        header.devices,
        header.device_id
    );
    Ok(())
}

fn ceremony(
    socket: &Path,
    mut request: api::BdkCeremony,
    count: usize,
    custodians: &CustodianArguments,
) -> anyhow::Result<()> {
    let algorithm = parse_algorithm(&request.algorithm)?;
    let count = parse_count(count)
        .map_err(|_| argument_error("--components", format!("must be 2 to 9, got {count}")))?;
    parse_expected_kcv(request.expect_kcv.as_deref(), algorithm)?;
    // A loaded BDK is replaced only with --replace: said before anyone types a component.
    if !request.replace {
        let loaded = call(socket, api::BdkStatus {})?;
        if let Some(bdk) = loaded
            .iter()
            .find(|bdk| bdk.name == request.name && !bdk.destroyed)
        {
            return Err(crate::custodian::replacement_refused(
                &format!("BDK {}", bdk.name),
                &bdk.kcv.to_string(),
                &bdk.loaded_at,
            ));
        }
    }
    request.components = custodians.read_entries(algorithm, count)?;
    let result = call(socket, request)?;
    for (number, (kcv, custodian)) in result
        .component_kcvs
        .iter()
        .zip(&result.custodians)
        .enumerate()
    {
        println!("component {} KCV   {kcv}   {custodian}", number + 1);
    }
    println!("combined KCV      {}", result.bdk.kcv);
    println!("BDK loaded from {count} components:");
    print_bdk(&result.bdk);
    Ok(())
}

fn print_bdk(bdk: &api::BdkReport) {
    let next = bdk.next_device.map_or_else(
        || "none (range used up)".to_owned(),
        |device| device.to_string(),
    );
    println!(
        "{}  {} DUKPT, {}, BDK ID {}, KCV {}, devices {}, next {next}, {} left{}",
        bdk.name,
        bdk.kind,
        bdk.algorithm,
        bdk.bdk_id,
        bdk.kcv,
        bdk.devices,
        bdk.remaining,
        if bdk.destroyed {
            ", DESTROYED (load it again)"
        } else {
            ""
        }
    );
}
