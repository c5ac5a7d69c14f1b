//! Opening, sealing and refusing: the vault's own defences, each proven by breaking something on purpose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_keyfiles::testing::FileLines;
use keymother_keyfiles::{CreatedAt, GenerateOptions, KeyIndex};
use keymother_vault::{DATABASE_FILE, SecretName, Vault, VaultError};

fn new_vault(directory: &Path) -> Vault {
    Vault::create(&directory.join("data"), &"KM-TEST-0001".parse().unwrap()).unwrap()
}

fn error_text(result: Result<Vault, VaultError>) -> String {
    match result {
        Ok(_) => panic!("the vault opened"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn a_vault_reopens_with_its_device_id_and_secrets() {
    let directory = tempfile::tempdir().unwrap();
    let kek = SecretKey::generate(KeyAlgorithm::Aes256).unwrap();
    {
        let mut vault = new_vault(directory.path());
        vault.install_secret(SecretName::Kek, &kek, 3).unwrap();
    }
    let vault = Vault::open(&directory.path().join("data")).unwrap();
    assert_eq!(vault.device_id().as_str(), "KM-TEST-0001");
    let loaded = vault.load_secret(SecretName::Kek).unwrap();
    assert!(loaded.same_material_as(&kek));
    let info = vault.secret_info(SecretName::Kek).unwrap().unwrap();
    assert_eq!((info.kcv, info.component_count), (kek.kcv(), 3));
    assert!(vault.secret_info(SecretName::Ttk).unwrap().is_none());
    assert!(matches!(
        vault.load_secret(SecretName::Ttk),
        Err(VaultError::SecretMissing(SecretName::Ttk))
    ));
}

#[test]
fn creating_over_an_existing_vault_is_refused() {
    let directory = tempfile::tempdir().unwrap();
    drop(new_vault(directory.path()));
    let error = error_text(Vault::create(
        &directory.path().join("data"),
        &"KM-X".parse().unwrap(),
    ));
    assert!(
        error.ends_with("already holds a vault; refusing to overwrite it"),
        "{error}"
    );
}

#[test]
fn the_files_are_private_to_the_daemon_user() {
    let directory = tempfile::tempdir().unwrap();
    drop(new_vault(directory.path()));
    let data = directory.path().join("data");
    assert_eq!(
        fs::metadata(&data).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(
        fs::metadata(data.join("storage.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
}

#[test]
fn a_data_directory_others_can_read_is_refused() {
    let directory = tempfile::tempdir().unwrap();
    drop(new_vault(directory.path()));
    let data = directory.path().join("data");
    fs::set_permissions(&data, fs::Permissions::from_mode(0o755)).unwrap();
    let error = error_text(Vault::open(&data));
    assert!(
        error.contains("group or others have access (mode 0755)"),
        "{error}"
    );
    assert!(error.contains("chmod 700"), "{error}");
}

#[test]
fn a_storage_key_others_can_read_or_of_the_wrong_size_is_refused() {
    let directory = tempfile::tempdir().unwrap();
    drop(new_vault(directory.path()));
    let data = directory.path().join("data");
    let key_file = data.join("storage.key");
    fs::set_permissions(&key_file, fs::Permissions::from_mode(0o644)).unwrap();
    let error = error_text(Vault::open(&data));
    assert!(
        error.contains("storage.key") && error.contains("mode 0644"),
        "{error}"
    );
    fs::set_permissions(&key_file, fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(&key_file, [0u8; 31]).unwrap();
    let error = error_text(Vault::open(&data));
    assert!(error.contains("is 31 bytes long, expected 32"), "{error}");
}

#[test]
fn a_replaced_storage_key_cannot_open_the_secrets() {
    let directory = tempfile::tempdir().unwrap();
    {
        let mut vault = new_vault(directory.path());
        vault
            .install_secret(
                SecretName::Kek,
                &SecretKey::generate(KeyAlgorithm::Aes128).unwrap(),
                2,
            )
            .unwrap();
    }
    let data = directory.path().join("data");
    fs::write(data.join("storage.key"), [7u8; 32]).unwrap();
    let vault = Vault::open(&data).unwrap();
    let error = vault
        .load_secret(SecretName::Kek)
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.starts_with("the stored KEK does not open under the storage key"),
        "{error}"
    );
}

#[test]
fn swapped_secret_rows_are_detected_by_key_usage() {
    let directory = tempfile::tempdir().unwrap();
    {
        let mut vault = new_vault(directory.path());
        vault
            .install_secret(
                SecretName::Kek,
                &SecretKey::generate(KeyAlgorithm::Aes256).unwrap(),
                2,
            )
            .unwrap();
        vault
            .install_secret(
                SecretName::Ttk,
                &SecretKey::generate(KeyAlgorithm::Aes256).unwrap(),
                2,
            )
            .unwrap();
    }
    let data = directory.path().join("data");
    {
        let connection = rusqlite::Connection::open(data.join(DATABASE_FILE)).unwrap();
        // Put the TTK's sealed block (and check value) in the KEK's row.
        connection
            .execute_batch(
                "UPDATE sealed_secret SET key_block = (SELECT key_block FROM sealed_secret s WHERE s.name = 'TTK'),
                                          kcv = (SELECT kcv FROM sealed_secret s WHERE s.name = 'TTK')
                  WHERE name = 'KEK';",
            )
            .unwrap();
    }
    let vault = Vault::open(&data).unwrap();
    let error = vault
        .load_secret(SecretName::Kek)
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("its key usage is K1, not K0"), "{error}");
}

#[test]
fn a_newer_schema_is_refused() {
    let directory = tempfile::tempdir().unwrap();
    drop(new_vault(directory.path()));
    let data = directory.path().join("data");
    rusqlite::Connection::open(data.join(DATABASE_FILE))
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let error = error_text(Vault::open(&data));
    assert!(
        error.contains("schema version 99 is newer than this software understands ("),
        "{error}"
    );
}

/// A vault with a KEK and `count` imported keys of `algorithm`.
fn vault_with_keys(
    directory: &Path,
    kek: &SecretKey,
    algorithm: KeyAlgorithm,
    count: u32,
) -> Vault {
    let mut vault = new_vault(directory);
    vault.install_secret(SecretName::Kek, kek, 2).unwrap();
    let options = GenerateOptions {
        batch_id: "B-1".parse().unwrap(),
        issuer: "T".parse().unwrap(),
        algorithm,
        record_count: count,
        first_index: KeyIndex::new(1).unwrap(),
        device_id: "KM-TEST-0001".parse().unwrap(),
        created: CreatedAt::new(time::OffsetDateTime::now_utc()),
    };
    let path = directory.join("f.keys");
    fs::write(
        &path,
        FileLines::generated(kek, &options).unwrap().sealed(kek),
    )
    .unwrap();
    vault.import_key_file(&path, &mut |_| {}).unwrap();
    vault
}

#[test]
fn a_damaged_database_is_refused_on_open() {
    let directory = tempfile::tempdir().unwrap();
    let kek = SecretKey::generate(KeyAlgorithm::Aes256).unwrap();
    drop(vault_with_keys(
        directory.path(),
        &kek,
        KeyAlgorithm::Tdes2Key,
        2000,
    ));
    let database = directory.path().join("data").join(DATABASE_FILE);
    let mut bytes = fs::read(&database).unwrap();
    assert!(
        bytes.len() > 64 * 1024,
        "the database should span many pages"
    );
    // Scribble over the middle of the file: b-tree pages of the inventory.
    let middle = bytes.len() / 2;
    for byte in &mut bytes[middle..middle + 4096] {
        *byte = 0x5A;
    }
    fs::write(&database, bytes).unwrap();
    let error = error_text(Vault::open(&directory.path().join("data")));
    assert!(
        error.starts_with("the vault database is damaged") || error.starts_with("database:"),
        "{error}"
    );
}

#[test]
fn a_new_kek_may_not_strand_unused_keys() {
    let directory = tempfile::tempdir().unwrap();
    let kek = SecretKey::generate(KeyAlgorithm::Aes256).unwrap();
    let mut vault = vault_with_keys(directory.path(), &kek, KeyAlgorithm::Aes128, 4);
    let error = vault
        .install_secret(
            SecretName::Kek,
            &SecretKey::generate(KeyAlgorithm::Aes256).unwrap(),
            2,
        )
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.starts_with("4 keys imported under the current KEK are not yet used"),
        "{error}"
    );
    // The same KEK again (a repeated ceremony) is fine, and the old one still opens.
    vault.install_secret(SecretName::Kek, &kek, 2).unwrap();
    assert!(
        vault
            .load_secret(SecretName::Kek)
            .unwrap()
            .same_material_as(&kek)
    );
}
