//! Helpers for the TR-34 tests: the project's vector files (hex, "name = value") read back.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn vector_path(file: &str) -> String {
    format!("{}/tests/vectors/tr34/{file}", env!("CARGO_MANIFEST_DIR"))
}

/// The hex value of a `.hex` vector file (comment lines start with '#').
pub fn hex_vector(name: &str) -> Vec<u8> {
    let path = vector_path(&format!("{name}.hex"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let hex: String = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .collect::<Vec<_>>()
        .concat();
    hex::decode(hex.trim()).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The value `name` of a "name = value" vector file.
pub fn named_value(file: &str, name: &str) -> String {
    let path = vector_path(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once(" = "))
        .find(|(key, _)| key.trim() == name)
        .map(|(_, value)| value.trim().to_string())
        .unwrap_or_else(|| panic!("{path}: no value {name}"))
}

/// A value of annex_b_values.txt.
pub fn annex_b(name: &str) -> String {
    named_value("annex_b_values.txt", name)
}

/// A hex value of annex_b_values.txt, decoded.
pub fn annex_b_bytes(name: &str) -> Vec<u8> {
    hex::decode(annex_b(name)).unwrap()
}

/// 2019-06-01T00:00:00Z: inside the sample certificates' validity (2010-11-02..2020-10-29).
pub fn sample_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_559_347_200)
}
