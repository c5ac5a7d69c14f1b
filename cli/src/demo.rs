//! The demo: key ceremony, the front end's key file, a verified import and the refusals that protect the inventory.

use std::path::PathBuf;
use std::time::Instant;

use keymother_crypto::component::{self, Component};
use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_keyfiles::DeviceId;
use keymother_vault::{SecretName, Vault};

use crate::keyfile::{options, write_key_file};
use crate::vault::{import_with_progress, print_inventory, print_report};

const DEVICE_ID: &str = "KM-DEMO-0001";

fn step(title: &str) {
    println!();
    println!("== {title}");
}

/// Runs a ceremony with freshly generated components; prints check values only.
fn ceremony(
    vault: &mut Vault,
    name: SecretName,
    algorithm: KeyAlgorithm,
    count: usize,
) -> anyhow::Result<()> {
    let components = (0..count)
        .map(|_| Component::generate(algorithm))
        .collect::<Result<Vec<_>, _>>()?;
    for (number, component) in components.iter().enumerate() {
        println!(
            "custodian {} enters a {algorithm} component, KCV {}",
            number + 1,
            component.kcv()
        );
    }
    let combined = component::combine(&components, None)?;
    let installed = vault.install_secret(name, &combined.key, count)?;
    println!(
        "{name} loaded from {count} components: {} KCV {} (sealed under the device storage key)",
        installed.algorithm, installed.kcv
    );
    Ok(())
}

pub fn run(keys: u32, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let started = Instant::now();
    let temporary = tempfile::tempdir()?;
    let work = dir.unwrap_or_else(|| temporary.path().to_path_buf());
    std::fs::create_dir_all(&work)?;
    let data_dir = work.join("vault");
    println!("keymother demo in {}", work.display());

    step("1. the appliance's vault");
    let device_id: DeviceId = DEVICE_ID.parse().map_err(anyhow::Error::msg)?;
    let mut vault = Vault::create(&data_dir, &device_id)?;
    println!(
        "vault created for device {DEVICE_ID} (data directory mode 0700, storage key mode 0600)"
    );

    step("2. key ceremonies (split knowledge, dual control)");
    ceremony(&mut vault, SecretName::Kek, KeyAlgorithm::Aes256, 3)?;
    ceremony(&mut vault, SecretName::Ttk, KeyAlgorithm::Aes256, 2)?;

    step("3. the front end writes a key file for this appliance");
    // The front end holds the same KEK (it was shared by these components); the demo reads
    // it back from the vault to play the front end's part.
    let kek: SecretKey = vault.load_secret(SecretName::Kek)?;
    let key_file = work.join("batch-0001.keys");
    let batch = options(
        "TDES-2KEY",
        keys,
        1,
        DEVICE_ID,
        "DEMO-0001",
        "DEMO ACQUIRER FRONT END",
    )?;
    write_key_file(&key_file, &batch, &kek, true)?;

    step("4. import: seal, every key's check value, duplicates, device binding; all or nothing");
    let report = import_with_progress(&mut vault, &key_file)?;
    print_report(&report);
    print_inventory(&vault.inventory()?);

    step("5. what the vault refuses (each leaves the inventory unchanged)");
    let before = vault.inventory()?;
    let refusals = demo_refusals(&work, &kek, keys)?;
    for (what, path) in refusals {
        match vault.import_key_file(&path, &mut |_| {}) {
            Ok(_) => anyhow::bail!("the vault accepted {what}; it must not"),
            Err(error) => println!("{what}:\n  refused: {error}"),
        }
    }
    anyhow::ensure!(
        vault.inventory()? == before,
        "a refused import changed the inventory"
    );
    println!("inventory unchanged: {} keys", before.total());

    step("summary");
    println!(
        "{} keys available for injection, device {DEVICE_ID}, in {:.1?}",
        before.count(keymother_vault::KeyState::Available),
        started.elapsed()
    );
    println!("(serial injection, the daemon and the display come with the next issues)");
    Ok(())
}

/// Files the vault must refuse: the same batch again, a tampered copy, a file for another
/// appliance, and one with an index already in the inventory.
fn demo_refusals(
    work: &std::path::Path,
    kek: &SecretKey,
    keys: u32,
) -> anyhow::Result<Vec<(&'static str, PathBuf)>> {
    let original = work.join("batch-0001.keys");

    let fresh = work.join("batch-0004.keys");
    let batch = options(
        "TDES-2KEY",
        keys,
        keys + 100,
        DEVICE_ID,
        "DEMO-0004",
        "DEMO ACQUIRER FRONT END",
    )?;
    write_key_file(&fresh, &batch, kek, false)?;
    let tampered = work.join("batch-0004-tampered.keys");
    let mut bytes = std::fs::read(&fresh)?;
    let middle = bytes.len() / 2;
    bytes[middle] = if bytes[middle] == b'0' { b'1' } else { b'0' };
    std::fs::write(&tampered, bytes)?;

    let other_device = work.join("batch-0002-other-device.keys");
    let batch = options(
        "TDES-2KEY",
        10,
        keys + 1,
        "KM-OTHER-0002",
        "DEMO-0002",
        "DEMO ACQUIRER FRONT END",
    )?;
    write_key_file(&other_device, &batch, kek, false)?;

    let overlapping = work.join("batch-0003-overlap.keys");
    let batch = options(
        "TDES-2KEY",
        10,
        keys.saturating_sub(4).max(1),
        DEVICE_ID,
        "DEMO-0003",
        "DEMO ACQUIRER FRONT END",
    )?;
    write_key_file(&overlapping, &batch, kek, false)?;

    Ok(vec![
        ("the same file again", original),
        ("a copy with one byte changed in transit", tampered),
        ("a file made for another appliance", other_device),
        (
            "a file reusing key indexes already in the inventory",
            overlapping,
        ),
    ])
}
