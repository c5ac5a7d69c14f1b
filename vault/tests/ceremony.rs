//! Ceremonies on record: every custodian named in the audit row, a loaded key replaced only when asked (and audited as a replacement), weak keys refused, and a failed ceremony audited with its reason and custodians.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_vault::{
    BdkSource, CeremonyRecord, Custodian, FailedCeremony, NewBdk, SecretName, Vault,
};

fn new_vault(directory: &std::path::Path) -> Vault {
    Vault::create(&directory.join("data"), &"KM-TEST-0001".parse().unwrap()).unwrap()
}

fn custodians(names: &[&str], keys: &[&SecretKey]) -> CeremonyRecord {
    CeremonyRecord::new(
        names
            .iter()
            .zip(keys)
            .map(|(name, key)| Custodian {
                name: name.parse().unwrap(),
                component_kcv: Some(key.kcv()),
            })
            .collect(),
    )
    .unwrap()
}

#[test]
fn the_ceremony_row_names_every_custodian_their_components_and_who_ran_it() {
    let directory = tempfile::tempdir().unwrap();
    let mut vault = new_vault(directory.path());
    let (first, second) = (
        SecretKey::generate(KeyAlgorithm::Aes128).unwrap(),
        SecretKey::generate(KeyAlgorithm::Aes128).unwrap(),
    );
    let ttk = SecretKey::generate(KeyAlgorithm::Aes128).unwrap();
    let record = custodians(&["Ann Lee", "Raj Patel"], &[&first, &second]).run_by("custodian1");
    let installed = vault
        .install_secret(SecretName::Ttk, &ttk, &record)
        .unwrap();
    assert_eq!((installed.component_count, installed.replaced), (2, None));
    let row = vault.audit_rows().unwrap().pop().unwrap();
    assert_eq!(
        (row.event.as_str(), row.actor.as_str()),
        ("ceremony", "Ann Lee/Raj Patel")
    );
    assert_eq!(
        row.details,
        format!(
            "secret=TTK; algorithm=AES-128; kcv={}; components=2; custodians=Ann Lee/Raj Patel; \
             component_kcvs={}/{}; peer=custodian1",
            ttk.kcv(),
            first.kcv(),
            second.kcv()
        )
    );
}

#[test]
fn a_loaded_key_is_replaced_only_when_asked_and_the_row_says_so() {
    let directory = tempfile::tempdir().unwrap();
    let mut vault = new_vault(directory.path());
    let old = SecretKey::generate(KeyAlgorithm::Aes256).unwrap();
    let new = SecretKey::generate(KeyAlgorithm::Aes256).unwrap();
    let record = CeremonyRecord::named(&["Ann Lee", "Raj Patel"]).unwrap();
    vault
        .install_secret(SecretName::Ttk, &old, &record)
        .unwrap();
    let rows = vault.audit_rows().unwrap().len();

    let error = vault
        .install_secret(SecretName::Ttk, &new, &record)
        .err()
        .unwrap()
        .to_string();
    assert_eq!(
        error,
        format!(
            "a TTK is loaded (KCV {}); a TTK ceremony replaces it only when asked to (keymother \
             ceremony --replace, \"replace\": true)",
            old.kcv()
        )
    );
    assert!(
        vault
            .load_secret(SecretName::Ttk)
            .unwrap()
            .same_material_as(&old)
    );
    assert_eq!(
        vault.audit_rows().unwrap().len(),
        rows,
        "a refusal is rolled back"
    );

    let installed = vault
        .install_secret(SecretName::Ttk, &new, &record.clone().replacing(true))
        .unwrap();
    assert_eq!(installed.replaced, Some(old.kcv()));
    assert!(
        vault
            .load_secret(SecretName::Ttk)
            .unwrap()
            .same_material_as(&new)
    );
    let row = vault.audit_rows().unwrap().pop().unwrap();
    assert!(
        row.details.ends_with(&format!(
            "custodians=Ann Lee/Raj Patel; replaced={}",
            old.kcv()
        )),
        "{}",
        row.details
    );
}

#[test]
fn weak_keys_are_refused_for_every_secret() {
    let directory = tempfile::tempdir().unwrap();
    let mut vault = new_vault(directory.path());
    let weak = SecretKey::from_hex(KeyAlgorithm::Tdes2Key, &"0123456789ABCDEF".repeat(2)).unwrap();
    let record = CeremonyRecord::named(&["Ann Lee", "Raj Patel"]).unwrap();
    let error = vault
        .install_secret(SecretName::Kek, &weak, &record)
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.starts_with("the KEK: the TDES-2KEY key's parts K1 and K2 are equal"),
        "{error}"
    );
    let bdk = NewBdk {
        name: "DATA".parse().unwrap(),
        bdk_id: "FFFF987654".parse().unwrap(),
        range: "00000-000FF".parse().unwrap(),
        source: BdkSource::Ceremony,
        replace: false,
        ceremony: Some(record.clone()),
    };
    let error = vault
        .install_bdk(&bdk, &weak, None)
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("the BDK DATA: the TDES-2KEY key's parts K1 and K2"),
        "{error}"
    );
    // A ceremony's BDK must name its custodians.
    let strong = SecretKey::generate(KeyAlgorithm::Tdes2Key).unwrap();
    let unnamed = NewBdk {
        ceremony: None,
        ..bdk
    };
    let error = vault
        .install_bdk(&unnamed, &strong, None)
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("its custodians are not named"), "{error}");
    assert!(vault.secret_info(SecretName::Kek).unwrap().is_none());
    assert!(vault.bdks().unwrap().is_empty());
}

#[test]
fn a_failed_ceremony_is_recorded_with_its_reason_and_custodians() {
    let directory = tempfile::tempdir().unwrap();
    let mut vault = new_vault(directory.path());
    let sequence = vault
        .record_failed_ceremony(&FailedCeremony {
            secret: "KEK".to_owned(),
            custodians: vec!["Ann Lee".to_owned(), "Raj Patel".to_owned()],
            reason: "combined check value is 49CA509F80, but 88E6FE154F was expected".to_owned(),
            peer: Some("custodian1".to_owned()),
        })
        .unwrap();
    let row = vault.audit_rows().unwrap().pop().unwrap();
    assert_eq!(row.sequence, sequence);
    assert_eq!(row.event, "ceremony-refused");
    assert_eq!(row.actor, "Ann Lee/Raj Patel");
    assert_eq!(
        row.details,
        "secret=KEK; custodians=Ann Lee/Raj Patel; reason=combined check value is 49CA509F80%2C \
         but 88E6FE154F was expected; peer=custodian1"
    );
    assert!(vault.verify_audit().is_ok());
}
