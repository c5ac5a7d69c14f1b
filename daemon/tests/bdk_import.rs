//! BDKs over the control socket: `bdk-import` takes the front end's sealed BDK file as data lines, `bdk-status` shows it; a file for another device is refused and loads nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use keymother_crypto::{KeyAlgorithm, SecretKey};
use keymother_keyfiles::{BdkFileHeader, CreatedAt, write_bdk_file};
use serde_json::json;
use support::wire::upload_lines;
use support::{Appliance, InProcessDaemon};

fn bdk_file(appliance: &Appliance, device: &str) -> String {
    let kek = SecretKey::from_hex(KeyAlgorithm::Aes256, &appliance.kek_hex).unwrap();
    let header = BdkFileHeader {
        name: "DATA".parse().unwrap(),
        algorithm: KeyAlgorithm::Tdes2Key,
        bdk_id: "FFFF987654".parse().unwrap(),
        devices: "19087-7FFFF".parse().unwrap(),
        device_id: device.parse().unwrap(),
        created: CreatedAt::new(time::OffsetDateTime::now_utc()),
    };
    let bdk =
        SecretKey::from_hex(KeyAlgorithm::Tdes2Key, "0123456789ABCDEFFEDCBA9876543210").unwrap();
    write_bdk_file(&kek, &header, &bdk).unwrap()
}

fn import(socket: &std::path::Path, name: &str, text: &str) -> serde_json::Value {
    let request = json!({"command": "bdk-import", "file_name": name, "size": text.len()});
    upload_lines(socket, &request, text.as_bytes(), 100)
        .pop()
        .unwrap()
}

#[test]
fn a_bdk_file_travels_over_the_socket_and_a_foreign_one_loads_nothing() {
    let appliance = Appliance::provisioned(1);
    let (_lines, settings) = appliance.ports(1);
    let socket = settings.control_socket.clone();
    let _daemon = InProcessDaemon::start(settings);
    let foreign = import(
        &socket,
        "/media/usb/data.bdk",
        &bdk_file(&appliance, "KM-OTHER-0009"),
    );
    assert_eq!(foreign["ok"], false, "{foreign}");
    let error = foreign["error"].as_str().unwrap();
    assert!(
        error.starts_with("/media/usb/data.bdk: line 6: the file is for device KM-OTHER-0009"),
        "{error}"
    );
    let status = support::operators::ask(&socket, &json!({"command": "bdk-status"}));
    assert_eq!(status["result"], json!([]));
    let answer = import(
        &socket,
        "/media/usb/data.bdk",
        &bdk_file(&appliance, support::DEVICE),
    );
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(answer["result"]["name"], "DATA");
    assert_eq!(answer["result"]["kcv"], "08D7B4");
    assert_eq!(answer["result"]["source"], "file");
    assert_eq!(answer["result"]["next_device"], "19087");
    let status = support::operators::ask(&socket, &json!({"command": "bdk-status"}));
    assert_eq!(status["result"][0]["bdk_id"], "FFFF987654");
    let too_large = json!({"command": "bdk-import", "file_name": "big.bdk", "size": 16385});
    let refused = upload_lines(&socket, &too_large, b"", 1).pop().unwrap();
    assert_eq!(
        refused["error"],
        "big.bdk: the file is 16385 bytes; keymotherd takes BDK files of at most 16384 bytes"
    );
}
