//! Unit tests of the profile codec: round trips, and every malformed field refused by name.

use super::*;

fn profile() -> Profile {
    Profile {
        name: "ACME-T100".to_owned(),
        models: Vec::new(),
        master_key: true,
        slots: vec![
            DukptSlot {
                label: "PIN".to_owned(),
                kind: DukptKind::Aes,
                key_type: KeyAlgorithm::Aes128,
            },
            DukptSlot {
                label: "DATA".to_owned(),
                kind: DukptKind::Tdes,
                key_type: KeyAlgorithm::Tdes2Key,
            },
        ],
    }
}

fn field_of(bytes: &[u8]) -> (Field, FieldProblem) {
    match Profile::decode(bytes) {
        Err(DecodeError::Field { field, problem, .. }) => (field, problem),
        other => panic!("expected a field error, got {other:?}"),
    }
}

#[test]
fn a_profile_round_trips_without_its_models() {
    let mut offered = profile();
    offered.models = vec!["ACME T100".parse().unwrap()];
    let bytes = offered.encode().unwrap();
    assert_eq!(
        bytes,
        [
            &[9][..],
            b"ACME-T100",
            &[1, 2],
            &[2, 3, 3],
            b"PIN",
            &[1, 1, 4],
            b"DATA"
        ]
        .concat()
    );
    assert_eq!(Profile::decode(&bytes).unwrap(), profile());
    let mut dukpt_only = profile();
    dukpt_only.master_key = false;
    assert_eq!(
        Profile::decode(&dukpt_only.encode().unwrap()).unwrap(),
        dukpt_only
    );
}

#[test]
fn every_key_type_id_is_one_algorithm() {
    for key_type in KeyAlgorithm::ALL {
        assert_eq!(key_type_from_id(key_type_id(key_type)), Some(key_type));
    }
    assert_eq!(key_type_from_id(0), None);
    assert_eq!(key_type_from_id(6), None);
    assert_eq!(DukptKind::from_id(3), None);
}

#[test]
fn malformed_profiles_are_refused_naming_the_field() {
    let good = profile().encode().unwrap();
    let mut bad_master = good.clone();
    bad_master[10] = 2;
    assert!(matches!(
        field_of(&bad_master),
        (Field::MasterKey, FieldProblem::Value { value: 2, .. })
    ));
    let mut too_many = good.clone();
    too_many[11] = 9;
    assert_eq!(field_of(&too_many).0, Field::SlotCount);
    let empty = [&[1][..], b"X", &[0, 0]].concat();
    assert_eq!(field_of(&empty).0, Field::SlotCount);
    let mut unknown_kind = good.clone();
    unknown_kind[12] = 3;
    assert_eq!(field_of(&unknown_kind).0, Field::DukptKind);
    let mut unknown_type = good.clone();
    unknown_type[13] = 6;
    assert_eq!(field_of(&unknown_type).0, Field::KeyType);
    // A TDES DUKPT slot of AES-128.
    let mut tdes_aes = good.clone();
    tdes_aes[19] = 3;
    assert_eq!(field_of(&tdes_aes).0, Field::KeyType);
    // An AES DUKPT slot of TDES-2KEY: AES DUKPT initial keys are AES.
    let mut aes_tdes = good.clone();
    aes_tdes[13] = 1;
    assert_eq!(field_of(&aes_tdes).0, Field::KeyType);
    let mut lower_case = good.clone();
    lower_case[15] = b'p';
    assert!(matches!(
        field_of(&lower_case),
        (Field::Label, FieldProblem::Character { position: 1, .. })
    ));
    let mut no_label = good.clone();
    no_label[14] = 0;
    assert_eq!(field_of(&no_label).0, Field::LabelLength);
    let mut twice = profile();
    twice.slots[1].label = "PIN".to_owned();
    twice.slots[1].kind = DukptKind::Aes;
    twice.slots[1].key_type = KeyAlgorithm::Aes128;
    let error = twice.encode().unwrap_err();
    assert!(
        error.to_string().contains("\"PIN\" appears twice"),
        "{error}"
    );
    let mut longer = good.clone();
    longer.push(0);
    assert_eq!(field_of(&longer).0, Field::Payload);
    for cut in 0..good.len() {
        assert!(Profile::decode(&good[..cut]).is_err(), "cut at {cut}");
    }
}

#[test]
fn configured_profiles_are_checked_before_any_welcome() {
    let mut nine = profile();
    nine.slots = (0..9)
        .map(|n| DukptSlot {
            label: format!("K{n}"),
            kind: DukptKind::Aes,
            key_type: KeyAlgorithm::Aes256,
        })
        .collect();
    let error = nine.check().unwrap_err();
    assert!(error.to_string().contains("slot count"), "{error}");
    let mut nameless = profile();
    nameless.name.clear();
    assert!(
        nameless
            .check()
            .unwrap_err()
            .to_string()
            .contains("profile name")
    );
    let mut bad_label = profile();
    bad_label.slots[0].label = "PIN KEY".to_owned();
    assert!(bad_label.check().unwrap_err().to_string().contains("label"));
    assert!(profile().check().is_ok());
}
