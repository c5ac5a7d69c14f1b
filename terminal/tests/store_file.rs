//! The reference terminal's store file: keys and their confirmation survive a restart, the file is private and bound to one terminal, and errors never quote a key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::os::unix::fs::PermissionsExt;

use keymother_crypto::dukpt::InitialKeyIdentity;
use keymother_crypto::tr31::{
    Algorithm, Exportability, Header, KeyBlockProtectionKey, KeyUsage, ModeOfUse, Version,
};
use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_terminal::{SoftwareKeyStore, StoreFileError};

fn ttk() -> SecretKey {
    SecretKey::from_hex(KeyAlgorithm::Aes256, &"4B".repeat(32)).unwrap()
}

/// A master key delivered under the TTK, as tr31 mode sends it.
fn delivery(master: &SecretKey) -> (String, Vec<u8>) {
    let header = Header::new(
        Version::D,
        KeyUsage::KeyEncryption,
        Algorithm::Tdes,
        ModeOfUse::DecryptOnly,
        Exportability::NonExportable,
    );
    let block = KeyBlockProtectionKey::new(&ttk())
        .wrap(&header, master)
        .unwrap();
    (block, master.kcv().as_bytes().to_vec())
}

#[test]
fn keys_and_their_confirmation_survive_a_restart_in_a_private_file() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("pinpad.store");
    let master = SecretKey::generate(KeyAlgorithm::Tdes2Key).unwrap();
    let (block, kcv) = delivery(&master);

    let mut store = SoftwareKeyStore::new(&ttk())
        .with_store_file(&path, "123L013K")
        .unwrap();
    assert!(store.unconfirmed().is_none());
    store.install(42, &block, &kcv).unwrap();
    store.save().unwrap();
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // No temporary file is left beside it.
    assert_eq!(fs::read_dir(directory.path()).unwrap().count(), 1);

    // A new process: the key is back, still unconfirmed, with its check value.
    let mut restarted = SoftwareKeyStore::new(&ttk())
        .with_store_file(&path, "123L013K")
        .unwrap();
    assert_eq!(restarted.unconfirmed(), Some((42, kcv.clone())));
    restarted.mark_confirmed();
    restarted.save().unwrap();
    let again = SoftwareKeyStore::new(&ttk())
        .with_store_file(&path, "123L013K")
        .unwrap();
    assert_eq!(again.unconfirmed(), None);
    assert_eq!(again.installed(), Some((42, master.kcv())));
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("# keymother-terminal key store: TEST keys in the clear"));
    assert!(text.contains("\nserial 123L013K\nmaster 00000042 TDES-2KEY "));
    assert!(text.ends_with(" confirmed\n"));
}

#[test]
fn dukpt_keys_are_kept_with_their_identity() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("pinpad.store");
    let bdk =
        SecretKey::from_hex(KeyAlgorithm::Tdes2Key, "0123456789ABCDEFFEDCBA9876543210").unwrap();
    let identity = InitialKeyIdentity::Tdes("FFFF9876543210E00000".parse().unwrap());
    let initial = identity.derive(&bdk, KeyAlgorithm::Tdes2Key).unwrap();
    let block = KeyBlockProtectionKey::new(&ttk())
        .wrap(
            &identity.key_block_header(Version::D, KeyAlgorithm::Tdes2Key),
            &initial,
        )
        .unwrap();
    let mut store = SoftwareKeyStore::new(&ttk())
        .with_store_file(&path, "T1")
        .unwrap();
    store
        .install_dukpt(
            "DATA",
            &identity.to_bytes(),
            &block,
            initial.kcv().as_bytes(),
        )
        .unwrap();
    store.save().unwrap();
    let restarted = SoftwareKeyStore::new(&ttk())
        .with_store_file(&path, "T1")
        .unwrap();
    let held = restarted.unconfirmed_dukpt();
    assert_eq!(held.len(), 1);
    assert_eq!(
        (
            held[0].label.as_str(),
            held[0].ksn.clone(),
            held[0].kcv.clone()
        ),
        (
            "DATA",
            identity.to_bytes(),
            initial.kcv().as_bytes().to_vec()
        )
    );
    assert_eq!(
        restarted.dukpt_key("DATA").unwrap().identity().to_string(),
        "FFFF9876543210E00000"
    );
}

#[test]
fn a_readable_file_another_terminals_file_and_a_broken_line_are_refused_without_quoting_a_key() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("pinpad.store");
    let master = SecretKey::generate(KeyAlgorithm::Tdes2Key).unwrap();
    let (block, kcv) = delivery(&master);
    let mut store = SoftwareKeyStore::new(&ttk())
        .with_store_file(&path, "AAAA0001")
        .unwrap();
    store.install(7, &block, &kcv).unwrap();
    store.save().unwrap();

    let open = |serial: &str| {
        SoftwareKeyStore::new(&ttk())
            .with_store_file(&path, serial)
            .err()
            .unwrap()
    };
    let other = open("BBBB0002");
    assert!(
        matches!(other, StoreFileError::OtherTerminal { .. }),
        "{other}"
    );
    assert!(
        other
            .to_string()
            .contains("terminal AAAA0001, not of BBBB0002")
    );

    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let exposed = open("AAAA0001");
    assert!(
        exposed
            .to_string()
            .contains("others may read it (mode 644)"),
        "{exposed}"
    );
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();

    let key_hex = master.expose_secret_hex().to_string();
    let text = fs::read_to_string(&path).unwrap();
    // The key cut short by one digit, and the state misspelt.
    for (broken, words) in [
        (
            text.replace(&key_hex, &key_hex[1..]),
            "line 4: the key is not a TDES-2KEY key in hex",
        ),
        (
            text.replace(" unconfirmed", " maybe"),
            "line 4: expected \"confirmed\" or \"unconfirmed\", found \"maybe\"",
        ),
    ] {
        fs::write(&path, broken).unwrap();
        let error = open("AAAA0001").to_string();
        assert!(error.ends_with(words), "{error}");
        assert!(!error.contains(&key_hex[4..20]), "{error}");
    }
}
