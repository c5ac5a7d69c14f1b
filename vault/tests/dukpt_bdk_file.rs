//! BDKs from the front end's sealed BDK file: imported under the KEK for this appliance; a file for another device or under another KEK is refused with its line and changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_keyfiles::{BdkFileHeader, CreatedAt, write_bdk_file};
use keymother_vault::{BdkSource, SecretName, Vault};

const DEVICE: &str = "KM-BDK-0001";

fn vault_with_kek() -> (tempfile::TempDir, Vault, SecretKey) {
    let directory = tempfile::tempdir().unwrap();
    let mut vault =
        Vault::create(&directory.path().join("data"), &DEVICE.parse().unwrap()).unwrap();
    let kek = SecretKey::generate(KeyAlgorithm::Aes256).unwrap();
    vault
        .install_secret(
            SecretName::Kek,
            &kek,
            &keymother_vault::CeremonyRecord::named(&["Ann Lee", "Raj Patel"]).unwrap(),
        )
        .unwrap();
    (directory, vault, kek)
}

fn header(device: &str) -> BdkFileHeader {
    BdkFileHeader {
        name: "PIN".parse().unwrap(),
        algorithm: KeyAlgorithm::Aes128,
        bdk_id: "12345678".parse().unwrap(),
        devices: "90123456-9012FFFF".parse().unwrap(),
        device_id: device.parse().unwrap(),
        created: CreatedAt::new(time::OffsetDateTime::now_utc()),
    }
}

#[test]
fn a_bdk_file_for_this_appliance_under_its_kek_is_imported_and_audited() {
    let (_directory, mut vault, kek) = vault_with_kek();
    let bdk = SecretKey::generate(KeyAlgorithm::Aes128).unwrap();
    let text = write_bdk_file(&kek, &header(DEVICE), &bdk).unwrap();
    let status = vault
        .import_bdk_file(text.as_bytes(), "pin.bdk", false, None)
        .unwrap();
    assert_eq!(status.name.as_str(), "PIN");
    assert_eq!(status.source, BdkSource::File);
    assert_eq!(status.kcv, bdk.kcv());
    assert_eq!(status.remaining, 0xFFFF - 0x3456 + 1);
    let (_, loaded) = vault.load_bdk(&"PIN".parse().unwrap()).unwrap();
    assert_eq!(loaded.kcv(), bdk.kcv());
    assert_eq!(
        vault.audit_rows().unwrap().last().unwrap().event,
        "bdk-loaded"
    );
    // Once loaded, the same file again needs replace.
    assert!(
        vault
            .import_bdk_file(text.as_bytes(), "pin.bdk", false, None)
            .is_err()
    );
    vault
        .import_bdk_file(text.as_bytes(), "pin.bdk", true, None)
        .unwrap();
    vault.verify_audit().unwrap();
}

#[test]
fn another_device_or_another_kek_is_refused_and_nothing_is_loaded() {
    let (_directory, mut vault, kek) = vault_with_kek();
    let bdk = SecretKey::generate(KeyAlgorithm::Aes128).unwrap();
    let audit_rows = vault.audit_rows().unwrap().len();
    let other_device = write_bdk_file(&kek, &header("KM-OTHER-0002"), &bdk).unwrap();
    let error = vault
        .import_bdk_file(other_device.as_bytes(), "other.bdk", false, None)
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "other.bdk: line 6: the file is for device KM-OTHER-0002, but this appliance is {DEVICE}"
        )
    );
    let other_kek = SecretKey::generate(KeyAlgorithm::Aes256).unwrap();
    let foreign = write_bdk_file(&other_kek, &header(DEVICE), &bdk).unwrap();
    let error = vault
        .import_bdk_file(foreign.as_bytes(), "foreign.bdk", false, None)
        .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("foreign.bdk: line 7: the file was made under the KEK with check value"),
        "{error}"
    );
    assert!(vault.bdks().unwrap().is_empty());
    assert_eq!(vault.audit_rows().unwrap().len(), audit_rows);
}
