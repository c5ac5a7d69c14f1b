//! Write/parse round trips of whole key files, and the reader's refusals that need no vault.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keymother_crypto::tr31::{
    Algorithm, Exportability, Header, KeyBlockProtectionKey, KeyUsage, ModeOfUse, Version,
};
use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_keyfiles::testing::FileLines;
use keymother_keyfiles::{
    CreatedAt, GenerateOptions, KeyFileHeader, KeyFileReader, KeyFileWriter, KeyIndex, Problem,
    Record, RecordOpener, SealKey, peek_header,
};
use proptest::prelude::*;

fn algorithm() -> impl Strategy<Value = KeyAlgorithm> {
    prop::sample::select(KeyAlgorithm::ALL.to_vec())
}

fn header(algorithm: KeyAlgorithm, count: u32, kek: &SecretKey) -> KeyFileHeader {
    KeyFileHeader {
        batch_id: "B-PROP".parse().unwrap(),
        issuer: "PROPERTY TEST".parse().unwrap(),
        algorithm,
        record_count: count,
        device_id: "KM-PROP".parse().unwrap(),
        kek_kcv: kek.kcv(),
        created: "2026-11-21T08:00:00Z".parse().unwrap(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Whatever the writer writes, the reader reads back: header, indexes, keys, check values.
    #[test]
    fn write_then_read_gives_the_same_keys(
        master_algorithm in algorithm(),
        kek_algorithm in algorithm(),
        indexes in prop::collection::btree_set(0u32..=99_999_999, 1..40),
    ) {
        prop_assume!(kek_algorithm.strength_bits() >= master_algorithm.strength_bits());
        let kek = SecretKey::generate(kek_algorithm).unwrap();
        let header = header(master_algorithm, indexes.len() as u32, &kek);
        let keys: Vec<(KeyIndex, SecretKey)> = indexes
            .iter()
            .map(|index| (KeyIndex::new(*index).unwrap(), SecretKey::generate(master_algorithm).unwrap()))
            .collect();
        let mut writer = KeyFileWriter::new(Vec::new(), header.clone(), &kek).unwrap();
        for (index, key) in &keys {
            writer.write_record(*index, key).unwrap();
        }
        let bytes = writer.finish().unwrap();

        let mut reader = KeyFileReader::open(&bytes[..], "prop.keys", &SealKey::derive(&kek)).unwrap();
        prop_assert_eq!(reader.header(), &header);
        let opener = RecordOpener::new(&kek, &header).unwrap();
        let mut on_one_thread = opener.on_one_thread();
        let mut read = Vec::new();
        while let Some(record) = reader.next_record().unwrap() {
            let again = on_one_thread.open(record.clone()).unwrap();
            prop_assert!(again.master_key.same_material_as(&opener.open(record.clone()).unwrap().master_key));
            read.push(opener.open(record).unwrap());
        }
        prop_assert_eq!(read.len(), keys.len());
        for (opened, (index, key)) in read.iter().zip(&keys) {
            prop_assert_eq!(opened.record.index, *index);
            prop_assert_eq!(opened.record.kcv, key.kcv());
            prop_assert!(opened.master_key.same_material_as(key));
        }
        prop_assert_eq!(peek_header(&bytes[..], "prop.keys").unwrap(), header);
    }
}

#[test]
fn generated_files_have_the_documented_shape() {
    let kek = SecretKey::generate(KeyAlgorithm::Aes256).unwrap();
    let options = GenerateOptions {
        batch_id: "B20261121-0001".parse().unwrap(),
        issuer: "ACQUIRER FRONT END 01".parse().unwrap(),
        algorithm: KeyAlgorithm::Tdes2Key,
        record_count: 3,
        first_index: KeyIndex::new(277).unwrap(),
        device_id: "KM-0001".parse().unwrap(),
        created: CreatedAt::new(time::macros::datetime!(2026-11-21 08:00:00.5 UTC)),
    };
    let lines = FileLines::generated(&kek, &options).unwrap();
    assert_eq!(
        lines.lines[..8],
        [
            "KEYMOTHER-KEYFILE/1".to_owned(),
            "batch-id: B20261121-0001".to_owned(),
            "issuer: ACQUIRER FRONT END 01".to_owned(),
            "algorithm: TDES-2KEY".to_owned(),
            "record-count: 3".to_owned(),
            "device-id: KM-0001".to_owned(),
            format!("kek-kcv: {}", kek.kcv()),
            "created: 2026-11-21T08:00:00Z".to_owned(),
        ]
    );
    let indexes: Vec<String> = (0..3).map(|n| lines.record_fields(n)[0].clone()).collect();
    assert_eq!(indexes, ["00000277", "00000278", "00000279"]);
    for n in 0..3 {
        let fields = lines.record_fields(n);
        assert!(
            fields[1].starts_with('D'),
            "AES KEK means version D blocks: {}",
            fields[1]
        );
        assert_eq!(&fields[1][5..8], "K0T", "usage K0, algorithm T");
        assert_eq!(fields[2].len(), 6);
    }
    let sealed = String::from_utf8(lines.sealed(&kek)).unwrap();
    let seal = sealed.lines().last().unwrap();
    assert!(seal.starts_with("seal: ") && seal.len() == 6 + 64, "{seal}");
}

#[test]
fn the_seal_depends_on_the_kek() {
    let kek = SecretKey::generate(KeyAlgorithm::Aes128).unwrap();
    let other = SecretKey::generate(KeyAlgorithm::Aes128).unwrap();
    let mut writer =
        KeyFileWriter::new(Vec::new(), header(KeyAlgorithm::Aes128, 1, &kek), &kek).unwrap();
    writer
        .write_record(
            KeyIndex::new(1).unwrap(),
            &SecretKey::generate(KeyAlgorithm::Aes128).unwrap(),
        )
        .unwrap();
    let bytes = writer.finish().unwrap();
    let mut reader = KeyFileReader::open(&bytes[..], "f.keys", &SealKey::derive(&other)).unwrap();
    reader.next_record().unwrap().unwrap();
    let error = reader.next_record().err().unwrap();
    assert_eq!(
        error.to_string(),
        "f.keys: line 10: the seal does not verify: the file was altered, or sealed under another KEK"
    );
}

#[test]
fn overlong_lines_are_refused_without_reading_them_whole() {
    let kek = SecretKey::generate(KeyAlgorithm::Aes128).unwrap();
    let mut bytes = b"KEYMOTHER-KEYFILE/1\nbatch-id: ".to_vec();
    bytes.extend(std::iter::repeat_n(b'A', 10_000_000));
    let error = KeyFileReader::open(&bytes[..], "huge.keys", &SealKey::derive(&kek))
        .err()
        .unwrap();
    assert_eq!(
        error.to_string(),
        "huge.keys: line 2: line is longer than 1024 bytes"
    );
}

#[test]
fn writer_refuses_a_count_it_does_not_meet() {
    let kek = SecretKey::generate(KeyAlgorithm::Aes128).unwrap();
    let writer =
        KeyFileWriter::new(Vec::new(), header(KeyAlgorithm::Aes128, 2, &kek), &kek).unwrap();
    assert_eq!(
        writer.finish().err().unwrap().to_string(),
        "the header promises 2 records but 0 were written"
    );
}

/// A worker's opener keeps the MAC state of the last key block header; records whose headers
/// differ (in runs, alternating, one refused) open exactly as one at a time.
#[test]
fn a_thread_opener_follows_records_whose_headers_differ() {
    for kek_algorithm in [KeyAlgorithm::Tdes3Key, KeyAlgorithm::Aes256] {
        let kek = SecretKey::generate(kek_algorithm).unwrap();
        let header = header(KeyAlgorithm::Tdes2Key, 7, &kek);
        let version = match kek_algorithm {
            KeyAlgorithm::Aes256 => Version::D,
            _ => Version::B,
        };
        let block_header = |usage, mode| {
            Header::new(
                version,
                usage,
                Algorithm::Tdes,
                mode,
                Exportability::Exportable,
            )
        };
        let both = block_header(KeyUsage::KeyEncryption, ModeOfUse::EncryptDecrypt);
        let decrypt = block_header(KeyUsage::KeyEncryption, ModeOfUse::DecryptOnly);
        let pin = block_header(KeyUsage::PinEncryption, ModeOfUse::EncryptDecrypt);
        let protection = KeyBlockProtectionKey::new(&kek);
        let records: Vec<(Record, SecretKey)> =
            [&both, &both, &decrypt, &pin, &both, &decrypt, &decrypt]
                .iter()
                .enumerate()
                .map(|(number, block_header)| {
                    let key = SecretKey::generate(KeyAlgorithm::Tdes2Key).unwrap();
                    let record = Record {
                        line: 9 + number as u64,
                        index: KeyIndex::new(number as u32 + 1).unwrap(),
                        key_block: protection.wrap(block_header, &key).unwrap(),
                        kcv: key.kcv(),
                    };
                    (record, key)
                })
                .collect();
        let opener = RecordOpener::new(&kek, &header).unwrap();
        let mut on_one_thread = opener.on_one_thread();
        for (number, (record, key)) in records.into_iter().enumerate() {
            let alone = opener.open(record.clone());
            match on_one_thread.open(record) {
                Ok(opened) => {
                    assert_ne!(number, 3);
                    assert!(opened.master_key.same_material_as(&key));
                    assert!(alone.unwrap().master_key.same_material_as(&key));
                }
                Err(problem) => {
                    assert_eq!(number, 3, "{problem}");
                    assert!(
                        matches!(problem, Problem::WrongKeyUsage { .. }),
                        "{problem}"
                    );
                    assert_eq!(alone.err(), Some(problem));
                }
            }
        }
    }
}
