//! BDK files (FORMAT.md, "BDK files"): what the writer makes opens with the KEK on the appliance it is for, and every other file is refused naming its line, never quoting it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_keyfiles::{BdkFileHeader, open_bdk_file, write_bdk_file};

/// ANSI X9.24-3-2017's AES-128 test BDK.
const AES_BDK: &str = "FEDCBA9876543210F1F1F1F1F1F1F1F1";

fn kek() -> SecretKey {
    SecretKey::from_hex(KeyAlgorithm::Aes256, &"3C".repeat(32)).unwrap()
}

fn header() -> BdkFileHeader {
    BdkFileHeader {
        name: "PIN".parse().unwrap(),
        algorithm: KeyAlgorithm::Aes128,
        bdk_id: "12345678".parse().unwrap(),
        devices: "90123456-9012FFFF".parse().unwrap(),
        device_id: "KM-0001".parse().unwrap(),
        created: "2026-12-06T10:00:00Z".parse().unwrap(),
    }
}

fn file() -> String {
    let bdk = SecretKey::from_hex(KeyAlgorithm::Aes128, AES_BDK).unwrap();
    write_bdk_file(&kek(), &header(), &bdk).unwrap()
}

fn refusal(text: &str, kek: &SecretKey, device: &str) -> String {
    let error = open_bdk_file(text.as_bytes(), "pin.bdk", kek, &device.parse().unwrap())
        .err()
        .expect("refused");
    let message = error.to_string();
    for line in text.lines().filter(|line| line.len() > 24) {
        assert!(!message.contains(line), "{message} quotes the file");
    }
    message
}

#[test]
fn a_written_file_opens_with_its_kek_on_its_appliance() {
    let text = file();
    assert!(text.starts_with("KEYMOTHER-BDKFILE/1\nname: PIN\nalgorithm: AES-128\n"));
    assert_eq!(text.lines().count(), 11);
    let opened = open_bdk_file(
        text.as_bytes(),
        "pin.bdk",
        &kek(),
        &"KM-0001".parse().unwrap(),
    )
    .unwrap();
    assert_eq!(opened.header, header());
    let bdk = SecretKey::from_hex(KeyAlgorithm::Aes128, AES_BDK).unwrap();
    assert_eq!(opened.key.kcv(), bdk.kcv());
    assert!(text.contains(&format!("\nkcv: {}\n", bdk.kcv())));
    // A TDES BDK under a TDES KEK travels as version B.
    let tdes_kek =
        SecretKey::from_hex(KeyAlgorithm::Tdes2Key, "0123456789ABCDEFFEDCBA9876543210").unwrap();
    let tdes_bdk =
        SecretKey::from_hex(KeyAlgorithm::Tdes2Key, "1F2F3E4C5D6B7A8980918AA2B3C4D5E6").unwrap();
    let mut tdes = header();
    tdes.algorithm = KeyAlgorithm::Tdes2Key;
    tdes.bdk_id = "FFFF987654".parse().unwrap();
    tdes.devices = "19087-7FFFF".parse().unwrap();
    let text = write_bdk_file(&tdes_kek, &tdes, &tdes_bdk).unwrap();
    assert!(text.contains("\nblock: B"));
    let opened = open_bdk_file(
        text.as_bytes(),
        "data.bdk",
        &tdes_kek,
        &"KM-0001".parse().unwrap(),
    )
    .unwrap();
    assert_eq!(opened.key.kcv(), tdes_bdk.kcv());
}

#[test]
fn another_device_another_kek_or_an_altered_file_is_refused_by_line() {
    let text = file();
    assert_eq!(
        refusal(&text, &kek(), "KM-0002"),
        "pin.bdk: line 6: the file is for device KM-0001, but this appliance is KM-0002"
    );
    let other = SecretKey::from_hex(KeyAlgorithm::Aes256, &"3D".repeat(32)).unwrap();
    assert!(
        refusal(&text, &other, "KM-0001")
            .starts_with("pin.bdk: line 7: the file was made under the KEK with check value")
    );
    let altered = text.replace("devices: 90123456-9012FFFF", "devices: 90123456-9013FFFF");
    assert_eq!(
        refusal(&altered, &kek(), "KM-0001"),
        "pin.bdk: line 11: the seal does not verify: the file was altered, or sealed under another KEK"
    );
    let lines: Vec<&str> = text.lines().collect();
    let no_kcv = text.replace(lines[9], "kcv: 0000000000");
    assert!(refusal(&no_kcv, &kek(), "KM-0001").starts_with("pin.bdk: line 11: the seal"));
}

#[test]
fn malformed_files_name_the_line_and_the_field() {
    let text = file();
    let cases = [
        (
            text.replacen("KEYMOTHER-BDKFILE/1", "KEYMOTHER-KEYFILE/1", 1),
            "line 1: this is not a keymother BDK file",
        ),
        (text.replace("name: PIN", "name: pin"), "line 2: name:"),
        (
            text.replace("algorithm: AES-128", "algorithm: TDES-3KEY"),
            "line 3: algorithm: not a BDK algorithm",
        ),
        (
            text.replace("bdk-id: 12345678", "bdk-id: 1234567"),
            "line 4: bdk-id:",
        ),
        (
            text.replace("devices: 90123456-9012FFFF", "devices: 19087-7FFFF"),
            "line 5: devices: device IDs of TDES DUKPT",
        ),
        (
            text.replace("name: PIN\n", ""),
            "a BDK file has 11 lines, this one 10",
        ),
        (text.trim_end().to_owned(), "the last line has no line feed"),
        (
            text.replace("created: 2026-12-06T10:00:00Z", "created: 2026-12-06"),
            "line 8: created:",
        ),
        (
            text.replace("\nkcv: ", "\nkvc: "),
            "line 10: expected the \"kcv\" line",
        ),
    ];
    for (text, expected) in cases {
        let message = refusal(&text, &kek(), "KM-0001");
        assert!(message.contains(expected), "{message} lacks {expected:?}");
    }
}

#[test]
fn a_bdk_stronger_than_the_kek_is_never_written() {
    let tdes_kek =
        SecretKey::from_hex(KeyAlgorithm::Tdes2Key, "0123456789ABCDEFFEDCBA9876543210").unwrap();
    let bdk = SecretKey::from_hex(KeyAlgorithm::Aes128, AES_BDK).unwrap();
    assert!(write_bdk_file(&tdes_kek, &header(), &bdk).is_err());
    let mut wrong = header();
    wrong.algorithm = KeyAlgorithm::Aes256;
    assert!(
        write_bdk_file(&kek(), &wrong, &bdk).is_err(),
        "the header names another algorithm"
    );
}
