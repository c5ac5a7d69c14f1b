//! Published TR-31 / ANSI X9.143 key blocks from tests/vectors: each opens (or is refused) as recorded, and the B and D ones re-wrap byte for byte.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use keymother_crypto::tr31::{CheckValue, Header, KeyBlockProtectionKey, OptionalBlock, Version};
use keymother_crypto::{KeyFamily, SecretKey};

/// One vector: its fields and the line it starts on (for failure messages).
struct Stanza {
    line: usize,
    fields: BTreeMap<String, String>,
}

impl Stanza {
    fn get(&self, field: &str) -> Option<&str> {
        self.fields.get(field).map(String::as_str)
    }

    fn field(&self, field: &str) -> &str {
        self.get(field)
            .unwrap_or_else(|| panic!("vector at line {} has no `{field}`", self.line))
    }

    fn describe(&self) -> String {
        format!("{} (line {})", self.field("name"), self.line)
    }

    /// The KBPK: its family follows the block's version unless `kbpk_algorithm` says otherwise.
    fn kbpk(&self) -> SecretKey {
        let hex = self.field("kbpk");
        if let Some(algorithm) = self.get("kbpk_algorithm") {
            return SecretKey::from_hex(algorithm.parse().unwrap(), hex).unwrap();
        }
        let family = match self.field("block").as_bytes()[0] {
            b'D' => KeyFamily::Aes,
            _ => KeyFamily::Tdes,
        };
        SecretKey::from_hex_in_family(family, hex).unwrap()
    }
}

fn load(file: &str) -> Vec<Stanza> {
    let path = format!("{}/tests/vectors/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"));
    let mut stanzas = Vec::new();
    let mut current: Option<Stanza> = None;
    for (index, line) in text.lines().enumerate() {
        let line_number = index + 1;
        if line.starts_with('#') {
            continue;
        }
        if line.trim().is_empty() {
            stanzas.extend(current.take());
            continue;
        }
        let (name, value) = line
            .split_once(" = ")
            .unwrap_or_else(|| panic!("{path}:{line_number}: expected `field = value`"));
        let stanza = current.get_or_insert_with(|| Stanza {
            line: line_number,
            fields: BTreeMap::new(),
        });
        let previous = stanza.fields.insert(name.to_owned(), value.to_owned());
        assert!(
            previous.is_none(),
            "{path}:{line_number}: `{name}` given twice"
        );
    }
    stanzas.extend(current);
    stanzas
}

/// The header of `block` as keymother writes it back: its text with the length digits zeroed.
fn header_text_of(block: &str, header_length: usize) -> String {
    format!("{}0000{}", &block[..1], &block[5..header_length])
}

#[test]
fn published_blocks_unwrap_to_the_published_keys() {
    let vectors = load("tr31_unwrap.txt");
    assert!(vectors.len() >= 30, "only {} vectors loaded", vectors.len());
    for version in Version::ALL {
        assert!(
            vectors
                .iter()
                .any(|vector| vector.field("block").starts_with(version.code())),
            "no vector of version {version}"
        );
    }

    for vector in &vectors {
        let kbpk = vector.kbpk();
        let block = vector.field("block");
        let result = KeyBlockProtectionKey::new(&kbpk).unwrap(block);
        let header = match (vector.get("key"), vector.get("error")) {
            (Some(expected_key), None) => {
                let unwrapped =
                    result.unwrap_or_else(|error| panic!("{}: {error}", vector.describe()));
                assert_eq!(
                    unwrapped.key.expose_secret_hex().as_str(),
                    expected_key,
                    "{}",
                    vector.describe()
                );
                let family = unwrapped.header.algorithm.family().unwrap();
                assert_eq!(
                    unwrapped.key.algorithm().family(),
                    family,
                    "{}",
                    vector.describe()
                );
                if let Some(OptionalBlock::KeyCheckValue(check)) =
                    unwrapped.header.optional_block("KC")
                {
                    assert_check_value(check, &unwrapped.key, vector);
                }
                unwrapped.header
            }
            (None, Some(expected_error)) => {
                let error = match result {
                    Ok(_) => panic!("{}: unwrapped, expected an error", vector.describe()),
                    Err(error) => error.to_string(),
                };
                assert!(
                    error.contains(expected_error),
                    "{}: error {error:?} does not contain {expected_error:?}",
                    vector.describe()
                );
                // The MAC verified, so the header is genuine: read it without a key.
                Header::from_key_block(block).unwrap()
            }
            _ => panic!(
                "{}: give exactly one of `key` and `error`",
                vector.describe()
            ),
        };

        // The header reads the same without the KBPK.
        assert_eq!(
            Header::from_key_block(block).unwrap(),
            header,
            "{}",
            vector.describe()
        );

        // The typed header writes back to the block's own header text.
        let written = header.to_string();
        let expected = match vector.get("header") {
            Some(text) => text.to_owned(),
            None => header_text_of(block, written.len()),
        };
        assert_eq!(written, expected, "{}", vector.describe());
        assert_eq!(
            written.parse::<Header>().unwrap(),
            header,
            "{}",
            vector.describe()
        );

        // A KP block, where keymother computes check values the same way, matches the KBPK.
        if let Some(OptionalBlock::ProtectionKeyCheckValue(check)) = header.optional_block("KP") {
            assert_check_value(check, &kbpk, vector);
        }
    }
}

fn assert_check_value(check: &CheckValue, key: &SecretKey, vector: &Stanza) {
    // keymother computes legacy check values for TDES keys and CMAC ones for AES keys; a
    // check value made the other way cannot be compared.
    let ours = CheckValue::of(key);
    if check.algorithm == ours.algorithm {
        assert!(
            ours.value.starts_with(&check.value),
            "{}: check value {:02X?} is not {:02X?}",
            vector.describe(),
            check.value,
            ours.value
        );
    }
}

#[test]
fn published_b_and_d_keys_rewrap_byte_for_byte_with_the_published_padding() {
    let vectors = load("tr31_unwrap.txt");
    let mut rewrapped = Vec::new();
    for vector in vectors
        .iter()
        .filter(|vector| vector.get("padding").is_some())
    {
        let kbpk = KeyBlockProtectionKey::new(&vector.kbpk());
        let block = vector.field("block");
        let unwrapped = kbpk.unwrap(block).unwrap();
        let padding = hex::decode(vector.field("padding")).unwrap();
        let wrapped = kbpk
            .wrap_with_padding(&unwrapped.header, &unwrapped.key, &padding)
            .unwrap_or_else(|error| panic!("{}: {error}", vector.describe()));
        assert_eq!(wrapped, block, "{}", vector.describe());
        rewrapped.push(block.as_bytes()[0]);
    }
    assert!(
        rewrapped.contains(&b'B'),
        "no version B vector was re-wrapped"
    );
    assert!(
        rewrapped.contains(&b'D'),
        "no version D vector was re-wrapped"
    );
}

#[test]
fn published_b_and_d_keys_rewrap_from_a_fresh_header() {
    // The same, starting from the header parsed as a template rather than from the unwrapped
    // one, and from a key built from the published hex.
    let vectors = load("tr31_unwrap.txt");
    for vector in vectors
        .iter()
        .filter(|vector| vector.get("padding").is_some())
    {
        let block = vector.field("block");
        let header = Header::from_key_block(block).unwrap();
        let template: Header = header.to_string().parse().unwrap();
        let family = template.algorithm.family().unwrap();
        let key = SecretKey::from_hex_in_family(family, vector.field("key")).unwrap();
        let padding = hex::decode(vector.field("padding")).unwrap();
        let wrapped = KeyBlockProtectionKey::new(&vector.kbpk())
            .wrap_with_padding(&template, &key, &padding)
            .unwrap();
        assert_eq!(wrapped, block, "{}", vector.describe());
    }
}

#[test]
fn published_faulty_blocks_are_refused_with_the_recorded_error() {
    let vectors = load("tr31_invalid.txt");
    assert!(vectors.len() >= 20, "only {} vectors loaded", vectors.len());
    for vector in &vectors {
        let expected = vector.field("error");
        match KeyBlockProtectionKey::new(&vector.kbpk()).unwrap(vector.field("block")) {
            Ok(_) => panic!("{}: unwrapped, expected {expected:?}", vector.describe()),
            Err(error) => {
                let message = error.to_string();
                assert!(
                    message.contains(expected),
                    "{}: error {message:?} does not contain {expected:?}",
                    vector.describe()
                );
            }
        }
    }
}

#[test]
fn the_published_kbpk_check_values_match_keymothers() {
    // ANSI X9.143:2021 8.5 and 8.6 carry KP blocks (CMAC check values of their KBPKs).
    let vectors = load("tr31_unwrap.txt");
    let mut checked = 0;
    for vector in &vectors {
        let header = Header::from_key_block(vector.field("block")).unwrap();
        if let Some(OptionalBlock::ProtectionKeyCheckValue(check)) = header.optional_block("KP") {
            assert_eq!(
                check,
                &CheckValue::of(&vector.kbpk()),
                "{}",
                vector.describe()
            );
            checked += 1;
        }
    }
    assert!(checked >= 4, "only {checked} KP blocks checked");
}
