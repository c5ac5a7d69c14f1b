//! Key strength in key files: the writer refuses a master key, a KEK or a BDK whose TDES parts repeat, and the reader refuses a sealed file whose master key does, naming the line and the parts, never the key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keymother_crypto::tr31::{
    Algorithm, Exportability, Header, KeyBlockProtectionKey, KeyUsage, ModeOfUse, Version,
};
use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_keyfiles::testing::{FIRST_RECORD_LINE, FileLines};
use keymother_keyfiles::{
    BdkFileHeader, CreatedAt, GenerateOptions, KeyFileError, KeyFileHeader, KeyFileWriter,
    KeyIndex, RecordOpener, SealKey, Stopped, WriteError, open_records_in_order, write_bdk_file,
};

/// A TDES-2KEY key whose halves are the same DES key (K1 = K2).
const WEAK_TDES: &str = "0123456789ABCDEF0123456789ABCDEF";

fn weak() -> SecretKey {
    SecretKey::from_hex(KeyAlgorithm::Tdes2Key, WEAK_TDES).unwrap()
}

fn kek() -> SecretKey {
    SecretKey::generate(KeyAlgorithm::Aes256).unwrap()
}

fn options() -> GenerateOptions {
    GenerateOptions {
        batch_id: "B-WEAK-1".parse().unwrap(),
        issuer: "TEST FRONT END".parse().unwrap(),
        algorithm: KeyAlgorithm::Tdes2Key,
        record_count: 3,
        first_index: KeyIndex::new(1).unwrap(),
        device_id: "KM-TEST-0001".parse().unwrap(),
        created: CreatedAt::new(time::OffsetDateTime::now_utc()),
    }
}

fn header(kek: &SecretKey) -> KeyFileHeader {
    let options = options();
    KeyFileHeader {
        batch_id: options.batch_id,
        issuer: options.issuer,
        algorithm: options.algorithm,
        record_count: options.record_count,
        device_id: options.device_id,
        kek_kcv: kek.kcv(),
        created: options.created,
    }
}

fn assert_names_parts_not_key(message: &str) {
    assert!(message.contains("K1 and K2"), "{message}");
    assert!(message.contains("single DES"), "{message}");
    assert!(
        !message.contains(&WEAK_TDES[..16]),
        "{message} quotes the key"
    );
}

#[test]
fn the_writer_refuses_a_weak_master_key_naming_its_index() {
    let kek = kek();
    let mut writer = KeyFileWriter::new(Vec::new(), header(&kek), &kek).unwrap();
    let index = KeyIndex::new(1).unwrap();
    let error = writer.write_record(index, &weak()).err().unwrap();
    assert!(matches!(error, WriteError::WeakMasterKey { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.starts_with("master key for index 00000001: "),
        "{message}"
    );
    assert_names_parts_not_key(&message);
}

#[test]
fn the_writer_refuses_a_weak_kek() {
    let weak_kek = weak();
    let error = KeyFileWriter::new(Vec::new(), header(&weak_kek), &weak_kek)
        .err()
        .unwrap();
    assert!(matches!(error, WriteError::WeakKek(_)), "{error}");
    assert_names_parts_not_key(&error.to_string());
}

/// Reads and opens every record of `bytes` under `kek`.
fn read_all(bytes: &[u8], kek: &SecretKey) -> Result<(), KeyFileError> {
    let mut reader =
        keymother_keyfiles::KeyFileReader::open(bytes, "weak.keys", &SealKey::derive(kek))?;
    let opener = RecordOpener::new(kek, reader.header()).map_err(|p| reader.error_at(4, p))?;
    match open_records_in_order::<_, ()>(&mut reader, &opener, &mut |_| Ok(())) {
        Ok(()) => Ok(()),
        Err(Stopped::File(error)) => Err(error),
        Err(Stopped::Other(())) => panic!("the store cannot fail"),
    }
}

#[test]
fn the_reader_refuses_a_sealed_file_whose_master_key_repeats_its_parts() {
    let kek = kek();
    let mut lines = FileLines::generated(&kek, &options()).unwrap();
    assert!(read_all(&lines.sealed(&kek), &kek).is_ok());
    // A front end that wrapped a K1 = K2 key: the block is authentic, the seal right.
    let block_header = Header::new(
        Version::D,
        KeyUsage::KeyEncryption,
        Algorithm::Tdes,
        ModeOfUse::EncryptDecrypt,
        Exportability::Exportable,
    );
    let block = KeyBlockProtectionKey::new(&kek)
        .wrap_with_padding(&block_header, &weak(), &[0x5A; 14])
        .unwrap();
    let index = lines.record_fields(1)[0].clone();
    *lines.record_mut(1) = format!("{index} {block} {}", weak().kcv());
    let error = read_all(&lines.sealed(&kek), &kek).err().unwrap();
    assert_eq!(error.line, FIRST_RECORD_LINE as u64 + 1);
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "weak.keys: line {}: master key: ",
            FIRST_RECORD_LINE + 1
        )),
        "{message}"
    );
    assert_names_parts_not_key(&message);
}

#[test]
fn a_reader_refuses_a_weak_kek() {
    let weak_kek = weak();
    let error = RecordOpener::new(&weak_kek, &header(&weak_kek))
        .err()
        .unwrap();
    assert_names_parts_not_key(&error.to_string());
}

#[test]
fn the_bdk_file_writer_refuses_a_weak_bdk() {
    let header = BdkFileHeader {
        name: "DATA".parse().unwrap(),
        algorithm: KeyAlgorithm::Tdes2Key,
        bdk_id: "FFFF987654".parse().unwrap(),
        devices: "19087-7FFFF".parse().unwrap(),
        device_id: "KM-0001".parse().unwrap(),
        created: "2026-12-06T10:00:00Z".parse().unwrap(),
    };
    let error = write_bdk_file(&kek(), &header, &weak()).err().unwrap();
    assert!(error.starts_with("the BDK: "), "{error}");
    assert_names_parts_not_key(&error);
}
