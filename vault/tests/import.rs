//! Key-file import: every rejection names the line and leaves the inventory unchanged; good files go in whole.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use keymother_crypto::tr31::{Algorithm, Exportability, Header, KeyUsage, ModeOfUse, Version};
use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_keyfiles::testing::{FIRST_RECORD_LINE, FileLines, record_line};
use keymother_keyfiles::{CreatedAt, GenerateOptions, KeyIndex};
use keymother_vault::{ImportError, InventorySummary, KeyState, SecretName, Vault};
use proptest::prelude::*;
use tempfile::TempDir;

const DEVICE: &str = "KM-TEST-0001";

struct Bench {
    directory: TempDir,
    vault: Vault,
    kek: SecretKey,
}

impl Bench {
    fn new(kek_algorithm: KeyAlgorithm) -> Bench {
        let directory = tempfile::tempdir().unwrap();
        let mut vault =
            Vault::create(&directory.path().join("data"), &DEVICE.parse().unwrap()).unwrap();
        let kek = SecretKey::generate(kek_algorithm).unwrap();
        vault
            .install_secret(
                SecretName::Kek,
                &kek,
                &keymother_vault::CeremonyRecord::named(&["Ann Lee", "Raj Patel"]).unwrap(),
            )
            .unwrap();
        Bench {
            directory,
            vault,
            kek,
        }
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.directory.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn import(&mut self, path: &Path) -> Result<keymother_vault::ImportReport, ImportError> {
        self.vault.import_key_file(path, &mut |_| {})
    }

    fn inventory(&self) -> InventorySummary {
        self.vault.inventory().unwrap()
    }

    /// Imports `lines` sealed under the bench KEK and expects a refusal mentioning `line`
    /// and `words`, with the inventory unchanged.
    fn refuse(&mut self, lines: &FileLines, line: usize, words: &str) -> String {
        let bytes = lines.sealed(&self.kek);
        self.refuse_bytes(&bytes, line, words)
    }

    fn refuse_bytes(&mut self, bytes: &[u8], line: usize, words: &str) -> String {
        let before = self.inventory();
        let path = self.write("refused.keys", bytes);
        let message = match self.import(&path) {
            Ok(report) => panic!("accepted a bad file: {report:?}"),
            Err(error) => error.to_string(),
        };
        assert!(
            message.starts_with(&format!("{}: line {line}: ", path.display())),
            "message does not name the file and line {line}: {message}"
        );
        assert!(
            message.contains(words),
            "message lacks {words:?}: {message}"
        );
        assert_eq!(
            self.inventory(),
            before,
            "a refused import changed the inventory"
        );
        message
    }
}

fn options(
    batch: &str,
    algorithm: KeyAlgorithm,
    count: u32,
    first: u32,
    device: &str,
) -> GenerateOptions {
    GenerateOptions {
        batch_id: batch.parse().unwrap(),
        issuer: "TEST FRONT END".parse().unwrap(),
        algorithm,
        record_count: count,
        first_index: KeyIndex::new(first).unwrap(),
        device_id: device.parse().unwrap(),
        created: CreatedAt::new(time::OffsetDateTime::now_utc()),
    }
}

fn lines(bench: &Bench, count: u32) -> FileLines {
    FileLines::generated(
        &bench.kek,
        &options("B-1", KeyAlgorithm::Tdes2Key, count, 1, DEVICE),
    )
    .unwrap()
}

fn block_header(
    usage: KeyUsage,
    algorithm: Algorithm,
    mode: ModeOfUse,
    exportability: Exportability,
) -> Header {
    Header::new(Version::D, usage, algorithm, mode, exportability)
}

/// The header a front end gives a TDES terminal master key.
fn tdes_master_key_header() -> Header {
    block_header(
        KeyUsage::KeyEncryption,
        Algorithm::Tdes,
        ModeOfUse::EncryptDecrypt,
        Exportability::Exportable,
    )
}

#[test]
fn a_good_file_is_imported_whole_with_progress() {
    let mut bench = Bench::new(KeyAlgorithm::Aes256);
    let bytes = lines(&bench, 10_000).sealed(&bench.kek);
    let path = bench.write("good.keys", &bytes);
    let mut reports = Vec::new();
    let report = bench
        .vault
        .import_key_file(&path, &mut |progress| reports.push(progress))
        .unwrap();
    assert_eq!(report.records, 10_000);
    assert_eq!((report.first_index, report.last_index), (1, 10_000));
    assert_eq!(bench.inventory().count(KeyState::Available), 10_000);
    assert!(
        reports.len() >= 3,
        "progress reported {} times",
        reports.len()
    );
    assert_eq!(reports.last().unwrap().records_done, 10_000);
    assert!(
        reports
            .windows(2)
            .all(|pair| pair[0].records_done <= pair[1].records_done)
    );
}

#[test]
fn every_algorithm_imports_under_a_strong_enough_kek() {
    for kek_algorithm in KeyAlgorithm::ALL {
        let mut bench = Bench::new(kek_algorithm);
        for (number, algorithm) in KeyAlgorithm::ALL.into_iter().enumerate() {
            let options = options(
                &format!("B-{number}"),
                algorithm,
                5,
                1 + 10 * number as u32,
                DEVICE,
            );
            let file = FileLines::generated(&bench.kek, &options);
            if algorithm.strength_bits() > kek_algorithm.strength_bits() {
                assert!(
                    file.is_err(),
                    "writer accepted {algorithm} under {kek_algorithm}"
                );
                continue;
            }
            let path = bench.write("file.keys", &file.unwrap().sealed(&bench.kek));
            bench.import(&path).unwrap();
        }
    }
}

#[test]
fn a_file_for_another_device_is_refused() {
    let mut bench = Bench::new(KeyAlgorithm::Aes256);
    let file = FileLines::generated(
        &bench.kek,
        &options("B-1", KeyAlgorithm::Tdes2Key, 5, 1, "KM-OTHER"),
    )
    .unwrap();
    bench.refuse(
        &file,
        6,
        "the file is for device KM-OTHER, but this appliance is KM-TEST-0001",
    );
}

#[test]
fn a_file_under_another_kek_is_refused() {
    let mut bench = Bench::new(KeyAlgorithm::Aes256);
    let other_kek = SecretKey::generate(KeyAlgorithm::Aes256).unwrap();
    let file = FileLines::generated(
        &other_kek,
        &options("B-1", KeyAlgorithm::Tdes2Key, 5, 1, DEVICE),
    )
    .unwrap();
    let bytes = file.sealed(&other_kek);
    bench.refuse_bytes(&bytes, 7, "was made under a KEK with check value");
}

#[test]
fn the_same_batch_is_imported_once() {
    let mut bench = Bench::new(KeyAlgorithm::Aes256);
    let file = lines(&bench, 5);
    let path = bench.write("first.keys", &file.sealed(&bench.kek));
    bench.import(&path).unwrap();
    bench.refuse(&file, 2, "batch B-1 was already imported on");
}

#[test]
fn an_index_repeated_inside_the_file_names_both_lines() {
    let mut bench = Bench::new(KeyAlgorithm::Aes256);
    let mut file = lines(&bench, 10);
    let third = file.record_fields(2);
    let replacement = format!(
        "{} {} {}",
        third[0],
        file.record_fields(6)[1],
        file.record_fields(6)[2]
    );
    *file.record_mut(6) = replacement;
    let line = FIRST_RECORD_LINE + 6;
    let first = FIRST_RECORD_LINE + 2;
    bench.refuse(
        &file,
        line,
        &format!("key index 00000003 already appears on line {first}"),
    );
}

#[test]
fn an_index_already_in_the_inventory_names_its_batch() {
    let mut bench = Bench::new(KeyAlgorithm::Aes256);
    let first = FileLines::generated(
        &bench.kek,
        &options("B-1", KeyAlgorithm::Tdes2Key, 10, 1, DEVICE),
    )
    .unwrap();
    let path = bench.write("first.keys", &first.sealed(&bench.kek));
    bench.import(&path).unwrap();
    let second = FileLines::generated(
        &bench.kek,
        &options("B-2", KeyAlgorithm::Tdes2Key, 10, 8, DEVICE),
    )
    .unwrap();
    bench.refuse(
        &second,
        FIRST_RECORD_LINE,
        "key index 00000008 is already in the inventory (batch B-1)",
    );
}

#[test]
fn a_truncated_file_is_refused() {
    let mut bench = Bench::new(KeyAlgorithm::Aes256);
    let file = lines(&bench, 10);
    let bytes = file.sealed(&bench.kek);
    let text = String::from_utf8(bytes).unwrap();
    // Cut after the sixth record: whole lines, no seal.
    let kept: Vec<&str> = text.lines().take(FIRST_RECORD_LINE - 1 + 6).collect();
    let truncated = format!("{}\n", kept.join("\n"));
    bench.refuse_bytes(
        truncated.as_bytes(),
        FIRST_RECORD_LINE + 6,
        "the file ends after 6 of 10 records",
    );
    // Cut in the middle of a line.
    let mut middle = text.len() / 2;
    if text.as_bytes()[middle - 1] == b'\n' {
        middle -= 1;
    }
    let cut = &text.as_bytes()[..middle];
    let line = text[..middle].matches('\n').count() + 1;
    bench.refuse_bytes(cut, line, "the last line has no line feed");
}

#[test]
fn bad_hex_in_a_check_value_or_a_block_is_refused() {
    let mut bench = Bench::new(KeyAlgorithm::Aes256);
    let mut file = lines(&bench, 5);
    let fields = file.record_fields(1);
    *file.record_mut(1) = format!("{} {} 12G456", fields[0], fields[1]);
    bench.refuse(
        &file,
        FIRST_RECORD_LINE + 1,
        "check value is not 6 upper-case hex digits",
    );

    let mut file = lines(&bench, 5);
    let fields = file.record_fields(3);
    let mut block = fields[1].clone();
    block.replace_range(40..41, "Z");
    *file.record_mut(3) = format!("{} {block} {}", fields[0], fields[2]);
    bench.refuse(&file, FIRST_RECORD_LINE + 3, "key block");
}

#[test]
fn record_counts_must_match_the_header() {
    let mut bench = Bench::new(KeyAlgorithm::Aes256);
    let mut file = lines(&bench, 10);
    file.set_header("record-count", "11");
    bench.refuse(
        &file,
        FIRST_RECORD_LINE + 10,
        "the seal line comes after 10 records, but the header's record-count is 11",
    );
    file.set_header("record-count", "9");
    bench.refuse(
        &file,
        FIRST_RECORD_LINE + 9,
        "more records than the header's record-count of 9",
    );
}

#[test]
fn a_wrong_check_value_is_refused() {
    let mut bench = Bench::new(KeyAlgorithm::Aes256);
    let mut file = lines(&bench, 5);
    let fields = file.record_fields(4);
    let other = file.record_fields(0);
    *file.record_mut(4) = format!("{} {} {}", fields[0], fields[1], other[2]);
    bench.refuse(
        &file,
        FIRST_RECORD_LINE + 4,
        &format!("check value {} does not match", other[2]),
    );
}

#[test]
fn key_blocks_must_carry_a_terminal_master_key() {
    let mut bench = Bench::new(KeyAlgorithm::Aes256);
    let key = SecretKey::generate(KeyAlgorithm::Tdes2Key).unwrap();
    let cases = [
        (
            block_header(
                KeyUsage::PinEncryption,
                Algorithm::Tdes,
                ModeOfUse::EncryptDecrypt,
                Exportability::Exportable,
            ),
            "key usage P0",
        ),
        (
            block_header(
                KeyUsage::KeyEncryption,
                Algorithm::Tdes,
                ModeOfUse::EncryptOnly,
                Exportability::Exportable,
            ),
            "mode of use E",
        ),
        (
            block_header(
                KeyUsage::KeyEncryption,
                Algorithm::Tdes,
                ModeOfUse::EncryptDecrypt,
                Exportability::NonExportable,
            ),
            "non-exportable",
        ),
    ];
    for (header, words) in cases {
        let mut file = lines(&bench, 5);
        *file.record_mut(2) = record_line(&bench.kek, "00000003", &key, &header);
        bench.refuse(&file, FIRST_RECORD_LINE + 2, words);
    }
    // A TDES-3KEY key in a TDES-2KEY file.
    let long_key = SecretKey::generate(KeyAlgorithm::Tdes3Key).unwrap();
    let header = tdes_master_key_header();
    let mut file = lines(&bench, 5);
    *file.record_mut(0) = record_line(&bench.kek, "00000001", &long_key, &header);
    bench.refuse(
        &file,
        FIRST_RECORD_LINE,
        "master key is TDES-3KEY, but the header says TDES-2KEY",
    );
}

#[test]
fn tdes_master_keys_need_odd_parity() {
    let mut bench = Bench::new(KeyAlgorithm::Aes256);
    let mut bytes = [0x01u8; 16];
    bytes[..8].copy_from_slice(&[0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF]);
    bytes[5] = 0xAA; // even parity
    let key = SecretKey::from_bytes(KeyAlgorithm::Tdes2Key, &bytes).unwrap();
    let header = tdes_master_key_header();
    let mut file = lines(&bench, 5);
    *file.record_mut(1) = record_line(&bench.kek, "00000002", &key, &header);
    bench.refuse(
        &file,
        FIRST_RECORD_LINE + 1,
        "byte 6 of the key does not have odd DES parity",
    );
}

#[test]
fn a_block_version_that_does_not_fit_the_kek_is_refused() {
    let mut bench = Bench::new(KeyAlgorithm::Tdes3Key);
    let mut file = FileLines::generated(
        &bench.kek,
        &options("B-1", KeyAlgorithm::Tdes2Key, 5, 1, DEVICE),
    )
    .unwrap();
    let fields = file.record_fields(2);
    let mut block = fields[1].clone();
    block.replace_range(0..1, "D");
    *file.record_mut(2) = format!("{} {block} {}", fields[0], fields[2]);
    bench.refuse(
        &file,
        FIRST_RECORD_LINE + 2,
        "key block version D does not match the KEK (expected B)",
    );
}

#[test]
fn a_kek_weaker_than_the_master_keys_is_refused() {
    let mut bench = Bench::new(KeyAlgorithm::Tdes2Key);
    let mut file = lines(&bench, 3);
    file.set_header("algorithm", "AES-128");
    bench.refuse(
        &file,
        4,
        "a TDES-2KEY KEK cannot protect AES-128 master keys",
    );
}

#[test]
fn header_mistakes_name_their_line() {
    let mut bench = Bench::new(KeyAlgorithm::Aes256);
    let mut file = lines(&bench, 3);
    file.lines[0] = "KEYMOTHER-KEYFILE/2".to_owned();
    bench.refuse(&file, 1, "this is not a keymother key file");

    let mut file = lines(&bench, 3);
    file.set_header("batch-id", "B/1");
    bench.refuse(&file, 2, "batch-id: character 2 is not allowed");

    let mut file = lines(&bench, 3);
    file.lines.swap(2, 3);
    bench.refuse(&file, 3, "expected the \"issuer\" header line");

    let mut file = lines(&bench, 3);
    file.set_header("created", "yesterday");
    bench.refuse(&file, 8, "created:");

    let mut file = lines(&bench, 3);
    file.set_header("algorithm", "DES");
    bench.refuse(&file, 4, "algorithm: not a key algorithm");
}

#[test]
fn layout_mistakes_are_refused() {
    let mut bench = Bench::new(KeyAlgorithm::Aes256);
    let file = lines(&bench, 3);
    let sealed = file.sealed(&bench.kek);
    let mut trailing = sealed.clone();
    trailing.extend_from_slice(b"extra\n");
    bench.refuse_bytes(
        &trailing,
        FIRST_RECORD_LINE + 4,
        "nothing may follow the seal line",
    );

    let crlf = String::from_utf8(sealed).unwrap().replace('\n', "\r\n");
    bench.refuse_bytes(crlf.as_bytes(), 1, "carriage return");

    let mut file = lines(&bench, 3);
    let record = file.record_mut(1);
    *record = record.replacen(' ', "  ", 1);
    bench.refuse(&file, FIRST_RECORD_LINE + 1, "a field is empty");
}

#[test]
fn an_altered_file_is_reported_as_altered_with_the_first_symptom() {
    let mut bench = Bench::new(KeyAlgorithm::Aes256);
    let mut sealed = lines(&bench, 10).sealed(&bench.kek);
    // Damage the KCV of the fourth record after sealing: the seal no longer verifies.
    let text = String::from_utf8(sealed.clone()).unwrap();
    let line_start: usize = text
        .lines()
        .take(FIRST_RECORD_LINE - 1 + 3)
        .map(|l| l.len() + 1)
        .sum();
    let line_length = text.lines().nth(FIRST_RECORD_LINE - 1 + 3).unwrap().len();
    sealed[line_start + line_length - 1] = if sealed[line_start + line_length - 1] == b'0' {
        b'1'
    } else {
        b'0'
    };
    let message = bench.refuse_bytes(&sealed, FIRST_RECORD_LINE + 10, "the seal does not verify");
    assert!(
        message.contains(&format!(
            "the first problem seen was on line {}",
            FIRST_RECORD_LINE + 3
        )),
        "{message}"
    );
}

#[test]
fn no_kek_loaded_means_no_import() {
    let directory = tempfile::tempdir().unwrap();
    let mut vault =
        Vault::create(&directory.path().join("data"), &DEVICE.parse().unwrap()).unwrap();
    let error = vault
        .import_key_file(Path::new("/nonexistent"), &mut |_| {})
        .err()
        .unwrap();
    assert_eq!(
        error.to_string(),
        "no KEK is loaded; run the KEK key ceremony first"
    );
}

#[test]
fn a_missing_file_is_named() {
    let mut bench = Bench::new(KeyAlgorithm::Aes256);
    let path = bench.directory.path().join("absent.keys");
    let message = bench.import(&path).err().unwrap().to_string();
    assert!(
        message.starts_with(&format!("{}: could not read the file", path.display())),
        "{message}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    /// Any single changed byte anywhere in a sealed file is refused, and nothing changes.
    #[test]
    fn any_flipped_byte_is_refused(position in any::<prop::sample::Index>(), flip in 1u8..=255) {
        thread_local! {
            static FIXTURE: std::cell::RefCell<Option<(Bench, Vec<u8>)>> = const { std::cell::RefCell::new(None) };
        }
        FIXTURE.with(|fixture| {
            let mut fixture = fixture.borrow_mut();
            let (bench, sealed) = fixture.get_or_insert_with(|| {
                let mut bench = Bench::new(KeyAlgorithm::Aes256);
                let first = FileLines::generated(&bench.kek, &options("B-0", KeyAlgorithm::Tdes2Key, 5, 100, DEVICE)).unwrap();
                let path = bench.write("first.keys", &first.sealed(&bench.kek));
                bench.import(&path).unwrap();
                let sealed = lines(&bench, 8).sealed(&bench.kek);
                (bench, sealed)
            });
            let before = bench.inventory();
            let mut altered = sealed.clone();
            let at = position.index(altered.len());
            altered[at] ^= flip;
            let path = bench.write("altered.keys", &altered);
            let result = bench.import(&path);
            prop_assert!(result.is_err(), "byte {} changed by {:#04x} was accepted", at, flip);
            prop_assert_eq!(bench.inventory(), before);
            Ok(())
        })?;
    }
}

#[test]
fn the_first_problem_in_file_order_is_reported_even_when_a_later_line_is_worse() {
    let mut bench = Bench::new(KeyAlgorithm::Tdes3Key);
    let mut file = FileLines::generated(
        &bench.kek,
        &options("B-1", KeyAlgorithm::Tdes2Key, 2000, 1, DEVICE),
    )
    .unwrap();
    // Record 3: a wrong check value (found by a verification thread);
    // record 8: a malformed line (found by the reader, which runs ahead).
    let wrong_kcv = file.record_fields(0)[2].clone();
    let fields = file.record_fields(2);
    *file.record_mut(2) = format!("{} {} {wrong_kcv}", fields[0], fields[1]);
    *file.record_mut(7) = "00000008".to_owned();
    bench.refuse(
        &file,
        FIRST_RECORD_LINE + 2,
        "does not match the decrypted master key's",
    );

    // The same faults in a file altered after sealing: altered is the headline, record 3 the symptom.
    let mut sealed = String::from_utf8(file.sealed(&bench.kek)).unwrap();
    sealed = sealed.replacen("issuer: TEST FRONT END", "issuer: TEST FRONT-END", 1);
    let message = bench.refuse_bytes(
        sealed.as_bytes(),
        FIRST_RECORD_LINE + 2000,
        "the seal does not verify",
    );
    assert!(
        message.contains(&format!(
            "the first problem seen was on line {}",
            FIRST_RECORD_LINE + 2
        )),
        "{message}"
    );
}
