//! docs/PROTOCOL.md against the code: the defaults of section 6's table and the limits and defaults the prose states, read from the document and compared with keymotherd's settings (a settings file that sets nothing) and the protocol crate's constants.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use keymother_daemon::Settings;
use keymother_protocol::message::MAX_DETAIL_LENGTH;
use keymother_protocol::{
    DEFAULT_IDLE_TIMEOUT, DEFAULT_INTER_BYTE_TIMEOUT, DEFAULT_MAX_RETRIES,
    DEFAULT_RESPONSE_TIMEOUT, MAX_BODY_LENGTH, MAX_FRAME_LENGTH, MAX_TOKEN_LENGTH,
};

fn protocol_md() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md");
    std::fs::read_to_string(path).unwrap()
}

/// keymotherd's settings when the file sets only what has no default.
fn default_settings() -> Settings {
    Settings::from_toml(
        "data_dir = \"/var/lib/keymother\"\n[[port]]\nname = \"bench-1\"\npath = \"/dev/ttyUSB0\"\n",
        "keymotherd.toml",
    )
    .unwrap()
}

/// The section that starts with the heading `## {number}. ` up to the next `## ` heading.
fn section<'a>(document: &'a str, number: &str) -> &'a str {
    let heading = format!("\n## {number}. ");
    let start = document
        .find(&heading)
        .unwrap_or_else(|| panic!("PROTOCOL.md has no section {number}"));
    let rest = &document[start + heading.len()..];
    let end = rest.find("\n## ").unwrap_or(rest.len());
    &rest[..end]
}

/// Section 6's table: name -> default, as written.
fn defaults_table(document: &str) -> BTreeMap<String, String> {
    let rows: Vec<Vec<String>> = section(document, "6")
        .lines()
        .filter(|line| line.starts_with('|'))
        .map(|line| {
            line.trim_matches('|')
                .split('|')
                .map(|cell| cell.trim().to_owned())
                .collect()
        })
        .collect();
    assert_eq!(
        rows.first().map(|header| &header[..2]),
        Some(&["name".to_owned(), "default".to_owned()][..]),
        "section 6's table starts with name and default"
    );
    rows.iter()
        .skip(2) // the header and the --- line
        .map(|row| (row[0].clone(), row[1].clone()))
        .collect()
}

/// "500 ms", "3 s" as a duration.
fn duration(text: &str) -> Duration {
    let (number, unit) = text
        .split_once(' ')
        .unwrap_or_else(|| panic!("{text:?} is not a number and a unit"));
    let number: u64 = number.parse().unwrap();
    match unit {
        "ms" => Duration::from_millis(number),
        "s" => Duration::from_secs(number),
        other => panic!("unit {other:?} in {text:?}"),
    }
}

/// The number right after `before` in `text`, whitespace runs (line breaks, list indents)
/// read as one space (digits and thousands commas, `**` around it allowed).
fn number_after(text: &str, before: &str) -> u64 {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let start = text
        .find(before)
        .unwrap_or_else(|| panic!("PROTOCOL.md no longer says {before:?}"))
        + before.len();
    let digits: String = text[start..]
        .trim_start_matches('*')
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number after {before:?}"))
}

#[test]
fn section_6_defaults_are_the_appliances_and_the_protocol_crates() {
    let document = protocol_md();
    let table = defaults_table(&document);
    let settings = default_settings();
    assert_eq!(
        duration(&table["inter-byte timeout"]),
        DEFAULT_INTER_BYTE_TIMEOUT
    );
    assert_eq!(
        duration(&table["response timeout"]),
        DEFAULT_RESPONSE_TIMEOUT
    );
    let retries = table["retry limit"]
        .strip_suffix(" retransmissions")
        .expect("the retry limit counts retransmissions");
    assert_eq!(retries.parse::<u32>().unwrap(), DEFAULT_MAX_RETRIES);
    let idle = duration(&table["idle timeout"]);
    assert_eq!(idle, settings.idle_timeout, "keymotherd's default");
    assert_eq!(idle, DEFAULT_IDLE_TIMEOUT, "the protocol crate's default");
    // The rule of the retry limit counts the transmissions: one more than the retries.
    let rule = section(&document, "6");
    assert!(
        rule.contains(&format!(
            "after {} transmissions of one request",
            DEFAULT_MAX_RETRIES + 1
        )),
        "section 6's retry rule"
    );
}

#[test]
fn limits_and_defaults_in_the_prose_are_the_codes() {
    let document = protocol_md();
    let settings = default_settings();
    let line = section(&document, "2");
    assert_eq!(
        number_after(line, "Bit rate: **"),
        u64::from(settings.ports[0].baud),
        "the line's default bit rate"
    );
    let frames = section(&document, "3");
    assert_eq!(number_after(frames, "LEN above **"), MAX_BODY_LENGTH as u64);
    assert_eq!(
        number_after(frames, "The longest frame on the wire is "),
        MAX_FRAME_LENGTH as u64
    );
    let receiving = section(&document, "4");
    assert_eq!(
        duration(&format!(
            "{} ms",
            number_after(receiving, "inter-byte timeout (")
        )),
        DEFAULT_INTER_BYTE_TIMEOUT
    );
    let modes = section(&document, "9");
    assert_eq!(
        number_after(modes, "A token is at most **"),
        MAX_TOKEN_LENGTH as u64
    );
    assert_eq!(
        number_after(modes, "(by default "),
        u64::from(settings.certificate_requests_per_minute),
        "certificate-mode key requests per port per minute"
    );
    let messages = section(&document, "8");
    assert_eq!(
        number_after(messages, "| detail length *d* | 0 to "),
        MAX_DETAIL_LENGTH as u64
    );
}
