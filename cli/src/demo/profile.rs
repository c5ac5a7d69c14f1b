//! The demo's device profile: two BDKs loaded by custodians over the control socket, the `[[profile]]` a port offers, and what the summary checks and says about the DUKPT initial keys.

use std::path::Path;

use keymother_control as api;
use keymother_crypto::component::{self, Component};
use keymother_crypto::key::decode_hex_secret;
use keymother_crypto::{KeyAlgorithm, KeyFamily, SecretKey, parity};
use keymother_vault::Vault;

/// The profile's name, as the settings and the terminals' WELCOME carry it.
pub(super) const PROFILE: &str = "PINPAD-DUKPT";

/// The model of the demo's profile terminals: the profile is offered to it.
pub(super) const PROFILE_MODEL: &str = "REF-PINPAD-DUKPT";

/// The port (1-based) that offers the profile; the others stay tr31 and certificate ports.
pub(super) const PROFILE_PORT: usize = 2;

/// One of the demo's BDKs: the published test BDKs, so that the first device IDs give the
/// published initial keys.
struct DemoBdk {
    name: &'static str,
    algorithm: KeyAlgorithm,
    key: &'static str,
    bdk_id: &'static str,
    /// The first device ID of this appliance's range, and its width in hex digits.
    first_device: u32,
    digits: usize,
    /// The initial key the first device ID gets, from the standard.
    first_ksn: &'static str,
    first_initial_key: &'static str,
    source: &'static str,
}

/// PIN: the ANSI X9.24-3-2017 AES-128 test BDK; DATA: the ANSI X9.24-1-2009 A.4 TDES BDK.
/// Profile slots deliver them in this order.
const BDKS: [DemoBdk; 2] = [
    DemoBdk {
        name: "PIN",
        algorithm: KeyAlgorithm::Aes128,
        key: "FEDCBA9876543210F1F1F1F1F1F1F1F1",
        bdk_id: "12345678",
        first_device: 0x9012_3456,
        digits: 8,
        first_ksn: "1234567890123456",
        first_initial_key: "1273671EA26AC29AFA4D1084127652A1",
        source: "ANSI X9.24-3-2017",
    },
    DemoBdk {
        name: "DATA",
        algorithm: KeyAlgorithm::Tdes2Key,
        key: "0123456789ABCDEFFEDCBA9876543210",
        bdk_id: "FFFF987654",
        first_device: 0x1_9087,
        digits: 5,
        first_ksn: "FFFF9876543210E00000",
        first_initial_key: "6AC292FAA1315B4D858AB3A3D7D5933A",
        source: "ANSI X9.24-1-2009 A.4",
    },
];

/// Device IDs each BDK assigns to the demo appliance: at least this many.
const DEVICES: u32 = 1000;

/// The settings' `[[profile]]`: the master key, then a PIN key (AES-128 DUKPT) and a data
/// key (TDES DUKPT), for the demo's profile terminals.
pub(super) fn settings_section() -> String {
    let slots: Vec<String> = BDKS
        .iter()
        .map(|bdk| {
            format!(
                "{{ bdk = {:?}, key_type = {:?} }}",
                bdk.name,
                bdk.algorithm.name()
            )
        })
        .collect();
    format!(
        "\n[[profile]]\nname = {PROFILE:?}\nmodels = [{PROFILE_MODEL:?}]\nmaster_key = true\n\
         dukpt = [{}]\n",
        slots.join(", ")
    )
}

/// What a terminal's key is called: an AES DUKPT initial key has an initial key ID, a TDES
/// one an initial KSN.
pub(super) fn identity_word(label: &str) -> &'static str {
    match BDKS.iter().find(|bdk| bdk.name == label) {
        Some(bdk) if bdk.algorithm.family() == KeyFamily::Aes => "initial key ID",
        _ => "initial KSN",
    }
}

/// The custodians load the demo's BDKs over the control socket, as `keymother bdk ceremony`
/// does: two components each, with the BDK's identifier and this appliance's device range
/// (wide enough for `terminals` terminals).
pub(super) fn load_bdks(socket: &Path, terminals: usize) -> anyhow::Result<()> {
    let devices = DEVICES.max(u32::try_from(terminals)?);
    for bdk in &BDKS {
        let key = SecretKey::from_hex(bdk.algorithm, bdk.key)?;
        let components = split(&key)?;
        for (number, component) in components.iter().enumerate() {
            println!(
                "custodian {} types component {} of 2 ({}), KCV {}",
                number + 1,
                number + 1,
                bdk.algorithm,
                component.kcv()
            );
        }
        let last = bdk.first_device + (devices - 1);
        let width = bdk.digits;
        let request = api::BdkCeremony {
            name: bdk.name.parse()?,
            algorithm: bdk.algorithm.name().to_owned(),
            bdk_id: bdk.bdk_id.parse()?,
            devices: format!("{:0width$X}-{last:0width$X}", bdk.first_device).parse()?,
            components: components
                .iter()
                .zip(["Ann Lee", "Raj Patel"])
                .map(|(component, custodian)| api::CustodianComponent {
                    custodian: custodian.to_owned(),
                    component: api::ComponentHex::new(component.expose_secret_hex().to_string()),
                    kcv: Some(component.kcv().to_string()),
                })
                .collect(),
            expect_kcv: Some(key.kcv().to_string()),
            replace: false,
        };
        drop(components);
        let loaded = crate::client::call(socket, request)?.bdk;
        println!(
            "BDK {} loaded over the control socket (bdk-ceremony): {} DUKPT, {}, BDK ID {}, KCV {}, \
             devices {} ({} left), the {} test BDK",
            loaded.name,
            loaded.kind,
            loaded.algorithm,
            loaded.bdk_id,
            loaded.kcv,
            loaded.devices,
            loaded.remaining,
            bdk.source
        );
    }
    Ok(())
}

/// Two custodian components of `key`: a random one, and `key` XOR it (odd parity for TDES;
/// combining two TDES components adjusts the parity back, so they combine to `key`).
fn split(key: &SecretKey) -> anyhow::Result<[Component; 2]> {
    let algorithm = key.algorithm();
    let first = Component::generate(algorithm)?;
    let mut second = decode_hex_secret(&first.expose_secret_hex())?;
    for (byte, share) in second.iter_mut().zip(key.expose_secret_bytes()) {
        *byte ^= share;
    }
    if algorithm.family() == KeyFamily::Tdes {
        parity::adjust_to_odd(&mut second);
    }
    let second = SecretKey::from_bytes(algorithm, &second)?;
    let second = Component::from_hex(algorithm, 2, &second.expose_secret_hex())?;
    let components = [first, second];
    // The custodians' components must give the BDK: checked before they leave for the daemon.
    component::combine(&components, Some(key.kcv()))?;
    Ok(components)
}

/// Checks the DUKPT registry after the run (two initial keys per profile terminal, none
/// twice, each under the demo operator, on the profile port, the first device IDs giving the
/// standards' initial keys) and prints the profile summary with the device IDs left per BDK,
/// as `keymother bdk status` shows them.
pub(super) fn summary(
    vault: &Vault,
    profiles: usize,
    port: &str,
    operator: &str,
) -> anyhow::Result<()> {
    let rows = vault.dukpt_rows()?;
    anyhow::ensure!(
        rows.len() == profiles * BDKS.len(),
        "{profiles} profiles injected but {} DUKPT registry rows",
        rows.len()
    );
    let ksns: std::collections::HashSet<&str> =
        rows.iter().map(|row| row.initial_ksn.as_str()).collect();
    anyhow::ensure!(ksns.len() == rows.len(), "an initial KSN was given twice");
    anyhow::ensure!(
        rows.iter()
            .all(|row| row.operator.as_deref() == Some(operator) && row.port == port),
        "a DUKPT registry row does not name the operator or the profile port"
    );
    for bdk in &BDKS {
        let Some(first) = rows.iter().find(|row| row.initial_ksn == bdk.first_ksn) else {
            anyhow::ensure!(profiles == 0, "no terminal got {}", bdk.first_ksn);
            continue;
        };
        let published = SecretKey::from_hex(bdk.algorithm, bdk.first_initial_key)?;
        anyhow::ensure!(
            first.kcv == published.kcv(),
            "the initial key for {} is not the {} one",
            bdk.first_ksn,
            bdk.source
        );
    }
    let mut left = Vec::new();
    for status in vault.bdks()? {
        let used = status.range.len() - status.remaining;
        anyhow::ensure!(
            used == profiles as u64,
            "BDK {} gave out {used} device IDs for {profiles} terminals",
            status.name
        );
        let next = status
            .next_device
            .map_or_else(|| "none".to_owned(), |device| device.to_string());
        left.push(format!(
            "{} {} of {} (next {next})",
            status.name,
            status.remaining,
            status.range.len()
        ));
    }
    println!(
        "{profiles} profiles {PROFILE} injected on {port} (the master key and {} DUKPT initial \
         keys each): {} DUKPT initial keys in the registry, no initial KSN twice; device IDs \
         left: {}",
        BDKS.len(),
        rows.len(),
        left.join(", ")
    );
    if profiles > 0 {
        println!(
            "the first device IDs gave the published initial keys (the registry's check values \
             are theirs): {}",
            BDKS.iter()
                .map(|bdk| format!(
                    "{} {} {} ({})",
                    bdk.name,
                    identity_word(bdk.name),
                    bdk.first_ksn,
                    bdk.source
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}
