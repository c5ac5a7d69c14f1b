//! DUKPT at rest: the schema refuses rebinding, reusing and rewriting; BDKs are sealed, survive reopening, are refused when swapped, and are erased by a zeroize or a tamper without freeing any device id.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod dukpt_bench;

use dukpt_bench::*;
use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_domain::Kcv;
use keymother_vault::{BdkSource, DukptError, SecretName, Vault, VaultError};

/// A vault where PIN device 100 is used by AAAA0001, 101 reserved by BBBB0002 (with one
/// wrong check value counted) and 102 sent to CCCC0003.
fn bench_with_allocations() -> DukptBench {
    let mut bench = DukptBench::new();
    bench.inject("PIN", "AAAA0001");
    let reserved = bench.reserve("PIN", "BBBB0002");
    let wrong: Kcv = "0000000000".parse().unwrap();
    assert!(confirm(&mut bench.vault, &reserved, "BBBB0002", wrong).is_err());
    let sent = bench.reserve("PIN", "CCCC0003");
    bench
        .vault
        .mark_dukpt_sent(&name("PIN"), sent.device_id, &serial_of("CCCC0003"))
        .unwrap();
    bench
}

#[test]
fn the_schema_refuses_rebinding_reusing_and_rewriting() {
    let bench = bench_with_allocations();
    let allocations = bench.vault.dukpt_allocations().unwrap();
    let registry = bench.vault.dukpt_rows().unwrap();
    let connection = bench.raw();
    let insert = |device: u32, serial: &str, state: &str| {
        format!(
            "INSERT INTO dukpt_allocation (bdk_name, device_id, hardware_serial, state, initial_ksn,
                                           key_type, kcv, port, reserved_at)
             VALUES ('PIN', {device}, '{serial}', '{state}', '12345678{device:08X}', 'AES-128',
                     'A000000000', 'evil', '2026-01-01T00:00:00Z')"
        )
    };
    for (statement, words) in [
        ("UPDATE dukpt_allocation SET hardware_serial = 'EVIL0001' WHERE device_id = 257".to_owned(), "never bound to another"),
        ("UPDATE dukpt_allocation SET hardware_serial = 'EVIL0001' WHERE device_id = 256".to_owned(), "never bound to another"),
        ("UPDATE dukpt_allocation SET state = 'reserved' WHERE device_id = 256".to_owned(), "state never goes back"),
        ("UPDATE dukpt_allocation SET state = 'sent' WHERE device_id = 256".to_owned(), "state never goes back"),
        ("UPDATE dukpt_allocation SET state = 'reserved' WHERE device_id = 258".to_owned(), "state never goes back"),
        ("UPDATE dukpt_allocation SET device_id = 300 WHERE device_id = 256".to_owned(), "BDK and device id never change"),
        ("UPDATE dukpt_allocation SET bdk_name = 'DATA' WHERE device_id = 257".to_owned(), "BDK and device id never change"),
        ("UPDATE dukpt_allocation SET kcv = 'A000000000' WHERE device_id = 257".to_owned(), "initial key and reservation never change"),
        ("UPDATE dukpt_allocation SET initial_ksn = '1234567800000999' WHERE device_id = 257".to_owned(), "initial key and reservation never change"),
        ("UPDATE dukpt_allocation SET operator = 'Mallory' WHERE device_id = 257".to_owned(), "initial key and reservation never change"),
        ("UPDATE dukpt_allocation SET failed_confirmations = 0 WHERE device_id = 257".to_owned(), "never forgotten"),
        ("DELETE FROM dukpt_allocation WHERE device_id = 256".to_owned(), "allocations are never deleted"),
        // Reusing a device id, for another terminal or the same one.
        (insert(256, "EVIL0001", "reserved"), "UNIQUE constraint failed: dukpt_allocation.bdk_name, dukpt_allocation.device_id"),
        // (AAAA0001 holds a confirmed key of PIN: a second one needs a re-injection grant.)
        (insert(256, "AAAA0001", "reserved"), "gets another only under a re-injection grant"),
        // Outside the range, under no BDK, born used, a second pending id for a terminal.
        (insert(0x200, "EVIL0001", "reserved"), "outside its BDK's range is never allocated"),
        (insert(0xFF, "EVIL0001", "reserved"), "outside its BDK's range is never allocated"),
        (insert(0x103, "EVIL0001", "reserved").replace("'PIN'", "'NOPE'"), "outside its BDK's range is never allocated"),
        (insert(0x103, "EVIL0001", "used"), "an allocation starts reserved"),
        (insert(0x103, "BBBB0002", "reserved"), "UNIQUE constraint failed: dukpt_allocation.bdk_name, dukpt_allocation.hardware_serial"),
        // The registry.
        ("UPDATE dukpt_registry SET hardware_serial = 'EVIL0001'".to_owned(), "DUKPT registry rows are never rewritten"),
        ("UPDATE dukpt_registry SET operator = 'Mallory'".to_owned(), "DUKPT registry rows are never rewritten"),
        ("DELETE FROM dukpt_registry".to_owned(), "DUKPT registry rows are never deleted"),
        (
            "INSERT INTO dukpt_registry (hardware_serial, bdk_name, bdk_id, device_id, initial_ksn, key_type, kcv,
                                         port, terminal_model, injected_at)
             SELECT hardware_serial, bdk_name, '12345678', device_id, initial_ksn, key_type, kcv, port, 'M', 'now'
               FROM dukpt_allocation WHERE device_id = 257".to_owned(),
            "records a confirmed allocation of its terminal",
        ),
        // The BDKs.
        ("DELETE FROM bdk WHERE name = 'DATA'".to_owned(), "a BDK row is never deleted"),
        ("UPDATE bdk SET kind = 'aes' WHERE name = 'DATA'".to_owned(), "a BDK name keeps its kind"),
    ] {
        let error = connection.execute(&statement, []).unwrap_err().to_string();
        assert!(error.contains(words), "{statement}: {error}");
    }
    drop(connection);
    let vault = Vault::open(&bench.data_dir()).unwrap();
    assert_eq!(vault.dukpt_allocations().unwrap(), allocations);
    assert_eq!(vault.dukpt_rows().unwrap(), registry);
    vault.verify_audit().unwrap();
}

#[test]
fn a_bdk_survives_reopening_and_is_gone_after_zeroize() {
    let mut bench = DukptBench::new();
    let injected = bench.inject("DATA", "AAAA0001");
    let data_dir = bench.data_dir();
    let DukptBench {
        vault,
        pin,
        data,
        directory: _directory,
    } = bench;
    drop(vault);
    // At rest the BDKs are sealed: no byte of the database or its log is a BDK's.
    for file in ["vault.sqlite", "vault.sqlite-wal"] {
        let bytes = std::fs::read(data_dir.join(file)).unwrap_or_default();
        for key in [&pin, &data] {
            let secret = key.expose_secret_bytes();
            assert!(
                !bytes.windows(secret.len()).any(|window| window == secret),
                "{file}"
            );
            let hex = key.expose_secret_hex().to_string();
            assert!(
                !bytes
                    .windows(hex.len())
                    .any(|window| window.eq_ignore_ascii_case(hex.as_bytes())),
                "{file}"
            );
        }
    }
    let mut vault = Vault::open(&data_dir).unwrap();
    let (status, key) = vault.load_bdk(&name("PIN")).unwrap();
    assert!(key.same_material_as(&pin));
    assert_eq!(
        (status.next_device, status.remaining),
        (Some(device("00000100")), 256)
    );
    let (status, key) = vault.load_bdk(&name("DATA")).unwrap();
    assert!(key.same_material_as(&data));
    assert_eq!(
        (status.next_device, status.remaining),
        (Some(device("00001")), 255)
    );

    let report = vault.zeroize("decommissioned", Some("Ann Lee")).unwrap();
    assert_eq!((report.secrets_deleted, report.bdks_erased), (0, 2));
    assert!(matches!(
        vault.load_bdk(&name("PIN")),
        Err(DukptError::Vault(VaultError::Zeroized(_)))
    ));
    let reserve_after = vault.reserve_dukpt(
        &name("PIN"),
        &serial_of("T1"),
        "bench-1",
        None,
        &mut |device| Ok::<_, std::convert::Infallible>(facts(bdk_id_of("PIN"), device)),
    );
    assert!(reserve_after.is_err());
    let blocks: Vec<String> = raw(&data_dir)
        .prepare("SELECT key_block FROM bdk")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(blocks, ["", ""]);
    drop(vault);
    // The registry, the BDK records and the audit trail stay readable for the officer.
    let audit = Vault::open_for_audit(&data_dir).unwrap();
    let rows = audit.dukpt_rows().unwrap();
    assert_eq!((rows.len(), rows[0].device_id), (1, injected.device_id));
    assert!(audit.bdks().unwrap().iter().all(|status| status.destroyed));
    audit.verify_audit().unwrap();
}

#[test]
fn a_tamper_erases_the_bdks_and_a_reloaded_bdk_never_gives_an_id_twice() {
    let mut bench = DukptBench::new();
    bench.inject("PIN", "AAAA0001");
    let pending = bench.reserve("PIN", "BBBB0002");
    let report = bench.vault.tamper("GPIO23").unwrap();
    assert_eq!(report.bdks_erased, 2);
    assert!(matches!(
        bench.vault.load_bdk(&name("PIN")),
        Err(DukptError::BdkDestroyed(_))
    ));
    let error = bench
        .vault
        .reserve_dukpt(
            &name("PIN"),
            &serial_of("BBBB0002"),
            "bench-1",
            None,
            &mut |device| Ok::<_, std::convert::Infallible>(facts(bdk_id_of("PIN"), device)),
        )
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "the BDK PIN was destroyed by a tamper response or a zeroize; its custodians must load it again"
    );
    assert!(
        bench
            .vault
            .bdks()
            .unwrap()
            .iter()
            .all(|status| status.destroyed)
    );
    // Another key under the name would strand the pending terminal; the same key is welcome.
    let other = SecretKey::generate(KeyAlgorithm::Aes128).unwrap();
    assert!(matches!(
        bench
            .vault
            .install_bdk(&new_bdk("PIN", PIN_ID, PIN_RANGE, false), &other, None),
        Err(DukptError::PendingAllocations { pending: 1, .. })
    ));
    let pin = bench.pin.duplicate();
    bench
        .vault
        .install_bdk(&new_bdk("PIN", PIN_ID, PIN_RANGE, false), &pin, None)
        .unwrap();
    let last = bench.vault.audit_rows().unwrap().pop().unwrap();
    assert!(last.details.contains("replaced=yes"), "{}", last.details);
    assert_eq!(
        bench.reserve("PIN", "BBBB0002"),
        keymother_vault::DukptReservation {
            resumed: true,
            ..pending
        }
    );
    assert_eq!(
        bench.reserve("PIN", "CCCC0003").device_id,
        device("00000102")
    );
    // DATA is still destroyed until its custodians load it.
    assert!(matches!(
        bench.vault.load_bdk(&name("DATA")),
        Err(DukptError::BdkDestroyed(_))
    ));
}

#[test]
fn loading_a_bdk_refuses_what_would_break_its_device_ids() {
    let mut bench = DukptBench::new();
    bench.reserve("PIN", "AAAA0001");
    let audit_rows = bench.vault.audit_rows().unwrap().len();
    let statuses = bench.vault.bdks().unwrap();
    let aes = SecretKey::generate(KeyAlgorithm::Aes128).unwrap();
    let tdes3 = SecretKey::generate(KeyAlgorithm::Tdes3Key).unwrap();
    let mut refuse = |record: keymother_vault::NewBdk, key: &SecretKey| {
        bench
            .vault
            .install_bdk(&record, key, None)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        refuse(new_bdk("MAC", "0102030405", "00000-00010", false), &tdes3),
        "a TDES BDK is double-length (TDES-2KEY); MAC would be TDES-3KEY"
    );
    assert_eq!(
        refuse(
            new_bdk("MAC", "0102030405", "00000000-00000010", false),
            &aes
        ),
        "BDK MAC's key is AES but its identifier is for TDES DUKPT"
    );
    assert_eq!(
        refuse(new_bdk("MAC", "01020304", "00000-00010", false), &aes),
        "BDK MAC's key is AES but its device range is for TDES DUKPT"
    );
    assert_eq!(
        refuse(new_bdk("PIN", PIN_ID, PIN_RANGE, false), &aes),
        "a BDK named PIN is already loaded; loading another under its name must ask to replace it"
    );
    assert_eq!(
        refuse(new_bdk("MAC", PIN_ID, PIN_RANGE, false), &aes),
        "BDK identifier 12345678 already belongs to BDK PIN; a host could not tell their KSNs apart"
    );
    assert_eq!(
        refuse(new_bdk("DATA", "01020304", "00000000-00000010", true), &aes),
        "BDK DATA is of the TDES kind; a name keeps its kind, so load the AES BDK under another name"
    );
    assert_eq!(
        refuse(new_bdk("PIN", "01020304", PIN_RANGE, true), &aes),
        "BDK PIN has device ids reserved or sent but not confirmed (1); confirm or void them before loading another key under its name"
    );
    assert_eq!(bench.vault.audit_rows().unwrap().len(), audit_rows);
    assert_eq!(bench.vault.bdks().unwrap(), statuses);
    // Asked to replace: a new range for the same key, or a new key once nothing is pending.
    let pin = bench.pin.duplicate();
    bench
        .vault
        .install_bdk(
            &new_bdk("PIN", PIN_ID, "00000100-000002FF", true),
            &pin,
            None,
        )
        .unwrap();
    bench
        .vault
        .void_dukpt(&name("PIN"), device("00000100"), "re-keying", "Ann Lee")
        .unwrap();
    let mut file = new_bdk("PIN", "01020304", "00000100-000002FF", true);
    file.source = BdkSource::File;
    let status = bench.vault.install_bdk(&file, &aes, Some("Bob")).unwrap();
    assert_eq!(
        (status.bdk_id.to_string(), status.source, status.next_device),
        (
            "01020304".to_owned(),
            BdkSource::File,
            Some(device("00000101"))
        )
    );
    assert!(
        bench
            .vault
            .load_bdk(&name("PIN"))
            .unwrap()
            .1
            .same_material_as(&aes)
    );
}

#[test]
fn a_swapped_or_foreign_key_block_does_not_unseal() {
    let mut bench = DukptBench::new();
    let mac = SecretKey::generate(KeyAlgorithm::Tdes2Key).unwrap();
    bench
        .vault
        .install_bdk(
            &new_bdk("MAC", "0102030405", "00000-00010", false),
            &mac,
            None,
        )
        .unwrap();
    bench
        .vault
        .install_secret(
            SecretName::Kek,
            &SecretKey::generate(KeyAlgorithm::Aes128).unwrap(),
            &keymother_vault::CeremonyRecord::named(&["Ann Lee", "Raj Patel"]).unwrap(),
        )
        .unwrap();
    let connection = bench.raw();
    // DATA's block and check value moved to MAC: the block names DATA and its identifier.
    connection
        .execute_batch(
            "UPDATE bdk SET (key_block, kcv) = (SELECT key_block, kcv FROM bdk WHERE name = 'DATA')
              WHERE name = 'MAC';
             UPDATE bdk SET (key_block, kcv) = (SELECT key_block, kcv FROM sealed_secret WHERE name = 'KEK')
              WHERE name = 'PIN';",
        )
        .unwrap();
    drop(connection);
    let error = bench
        .vault
        .load_bdk(&name("MAC"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("it is sealed for another BDK name or identifier"),
        "{error}"
    );
    let error = bench
        .vault
        .load_bdk(&name("PIN"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("it is not sealed as a base derivation key"),
        "{error}"
    );
    assert!(bench.vault.load_bdk(&name("DATA")).is_ok());
}

#[test]
fn a_changed_range_is_allocated_from_its_lowest_free_id() {
    let mut bench = DukptBench::with_ranges("00000010-00000013", DATA_RANGE);
    bench.inject("PIN", "T1");
    bench.inject("PIN", "T2");
    let pin = bench.pin.duplicate();
    let status = bench
        .vault
        .install_bdk(
            &new_bdk("PIN", PIN_ID, "0000000E-00000012", true),
            &pin,
            None,
        )
        .unwrap();
    assert_eq!(
        (status.next_device, status.remaining),
        (Some(device("0000000E")), 3)
    );
    let ids: Vec<String> = ["T3", "T4", "T5"]
        .into_iter()
        .map(|terminal| bench.reserve("PIN", terminal).device_id.to_string())
        .collect();
    assert_eq!(ids, ["0000000E", "0000000F", "00000012"]);
    let status = &bench.vault.bdks().unwrap()[1];
    assert_eq!((status.next_device, status.remaining), (None, 0));
}
