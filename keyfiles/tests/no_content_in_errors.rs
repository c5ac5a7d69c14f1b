//! Errors name the file and the line, never what the line holds: an operator who picks the
//! wrong file (a key component, a list of clear keys) must not find a key quoted in an error,
//! a log line or an audit row. Every line of a valid file is replaced in turn by secret-looking
//! text, and neither the error's Display nor its Debug may contain any 6 characters of it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keymother_crypto::{KeyAlgorithm, KeyFamily, SecretKey};
use keymother_keyfiles::testing::{FIRST_RECORD_LINE, FileLines};
use keymother_keyfiles::{
    BatchId, CreatedAt, DeviceId, GenerateOptions, Issuer, KeyFileError, KeyIndex, Problem,
    RecordOpener, SealKey, Stopped, open_records_in_order, peek_header,
};
use proptest::prelude::*;

const NAME: &str = "picked.keys";
const RECORDS: u32 = 5;
/// Header field names, in the order of lines 2 to 8.
const FIELDS: [&str; 7] = [
    "batch-id",
    "issuer",
    "algorithm",
    "record-count",
    "device-id",
    "kek-kcv",
    "created",
];

fn options(algorithm: KeyAlgorithm) -> GenerateOptions {
    GenerateOptions {
        batch_id: "B-SECRET-1".parse().unwrap(),
        issuer: "TEST FRONT END".parse().unwrap(),
        algorithm,
        record_count: RECORDS,
        first_index: KeyIndex::new(1).unwrap(),
        device_id: "KM-TEST-0001".parse().unwrap(),
        created: CreatedAt::new(time::OffsetDateTime::now_utc()),
    }
}

/// `count` random bytes as upper-case hex.
fn random_hex(count: usize) -> String {
    let mut bytes = vec![0u8; count];
    keymother_crypto::key::fill_random(&mut bytes).unwrap();
    hex::encode_upper(bytes)
}

/// Random printable ASCII without space, quote or backslash (so Debug shows it as it is).
fn random_printable(count: usize) -> String {
    const ALPHABET: &[u8] =
        b"!#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_`abcdefghijklmnopqrstuvwxyz{|}~";
    let mut bytes = vec![0u8; count];
    keymother_crypto::key::fill_random(&mut bytes).unwrap();
    bytes
        .iter()
        .map(|byte| char::from(ALPHABET[usize::from(*byte) % ALPHABET.len()]))
        .collect()
}

/// Text put into a file, and the part of it that must never show in an error.
#[derive(Debug, Clone)]
struct Insert {
    what: &'static str,
    text: String,
    secret: String,
}

impl Insert {
    fn plain(what: &'static str, text: String) -> Insert {
        Insert {
            what,
            secret: text.clone(),
            text,
        }
    }
}

/// Secret-looking text without spaces, to stand for a whole line or one field.
fn secrets(kek: &SecretKey) -> Vec<Insert> {
    let key = SecretKey::generate(KeyAlgorithm::Tdes2Key).unwrap();
    let key_hex = key.expose_secret_hex().to_string();
    // A block that parses as far as its MAC: a valid header in front of hex of key length.
    let (version, body) = match kek.algorithm().family() {
        KeyFamily::Tdes => ('B', random_hex(32)),
        KeyFamily::Aes => ('D', random_hex(48)),
    };
    let block_header = format!("{version}{:04}K0TB00E0000", 16 + body.len());
    vec![
        Insert::plain("a TDES-2KEY key in upper-case hex", key_hex.clone()),
        Insert::plain("a key in lower-case hex", key_hex.to_ascii_lowercase()),
        Insert::plain("a TDES-3KEY key", random_hex(24)),
        Insert::plain("an AES-256 key", random_hex(32)),
        Insert::plain(
            "8 hex digits with a letter",
            format!("F{}", &random_hex(4)[1..]),
        ),
        Insert::plain("printable text", random_printable(40)),
        Insert {
            what: "a key behind a valid key block header",
            text: format!("{block_header}{body}"),
            secret: body,
        },
        Insert {
            what: "a key as the data of an optional block",
            text: format!(
                "{version}{:04}K0TB00E0100TS{:02X}{key_hex}",
                16 + 4 + key_hex.len(),
                4 + key_hex.len()
            ),
            secret: key_hex,
        },
    ]
}

/// Secret-looking whole lines with spaces: a line of a list of clear keys, a component form.
fn secret_lines() -> Vec<Insert> {
    let key = random_hex(16);
    let kcv = random_hex(3);
    let grouped: Vec<String> = random_hex(16)
        .as_bytes()
        .chunks(4)
        .map(|group| String::from_utf8(group.to_vec()).unwrap())
        .collect();
    let grouped = grouped.join(" ");
    vec![
        Insert {
            what: "a record-shaped line holding a clear key",
            text: format!("00000001 {key} {kcv}"),
            secret: key,
        },
        Insert {
            what: "a component form line",
            text: format!("component 1: {grouped}"),
            // Each group is 4 characters; the secret is the groups as written.
            secret: grouped,
        },
        Insert::plain("printable text with spaces", {
            let text = random_printable(60);
            format!("{} {} {}", &text[..20], &text[20..40], &text[40..])
        }),
    ]
}

/// Reads, checks the seal and opens every record, as an import does (without a vault).
fn read(bytes: &[u8], kek: &SecretKey) -> Result<(), KeyFileError> {
    let mut reader = keymother_keyfiles::KeyFileReader::open(bytes, NAME, &SealKey::derive(kek))?;
    let opener = RecordOpener::new(kek, reader.header()).map_err(|p| reader.error_at(4, p))?;
    match open_records_in_order::<_, ()>(&mut reader, &opener, &mut |_| Ok(())) {
        Ok(()) => Ok(()),
        Err(Stopped::File(error)) => Err(error),
        Err(Stopped::Other(())) => panic!("the store cannot fail"),
    }
}

/// Fails if `error` shows any 6 consecutive characters of `secret`, as written or as Debug
/// escapes it.
fn assert_quotes_nothing(error: &KeyFileError, secret: &str, context: &str) {
    let shown = error.to_string();
    let debugged = format!("{error:?}");
    let escaped = format!("{secret:?}");
    let escaped = &escaped[1..escaped.len() - 1];
    for text in [secret, escaped] {
        let characters: Vec<char> = text.chars().collect();
        for window in characters.windows(6) {
            let window: String = window.iter().collect();
            assert!(
                !shown.contains(&window) && !debugged.contains(&window),
                "{context}: the error shows {window:?} of the inserted text\n  Display: {shown}\n  Debug: {debugged}"
            );
        }
    }
}

fn assert_names_line(error: &KeyFileError, line: u64, context: &str) {
    assert_eq!(error.line, line, "{context}: {error}");
    assert!(
        error
            .to_string()
            .starts_with(&format!("{NAME}: line {line}: ")),
        "{context}: {error}"
    );
}

/// Would the header accept `value` for `field`? (Batch id, issuer and device id take free-ish
/// text; a secret that fits is a valid value, and may then be named like any other.)
fn header_accepts(field: &str, value: &str) -> bool {
    match field {
        "batch-id" => value.parse::<BatchId>().is_ok(),
        "issuer" => value.parse::<Issuer>().is_ok(),
        "device-id" => value.parse::<DeviceId>().is_ok(),
        _ => false,
    }
}

/// The line's new text, given the inserted text and the original line.
type Place = Box<dyn Fn(&str, &str) -> String>;

/// One way to put secret text into a file: which line (1-based) and what the line becomes.
struct Placement {
    line: usize,
    place: Place,
    /// Whether a sealed file with this line is valid (the text is a valid header value).
    accepted: Box<dyn Fn(&str) -> bool>,
    what: String,
}

fn placements() -> Vec<Placement> {
    let mut placements = vec![Placement {
        line: 1,
        place: Box::new(|text, _| text.to_owned()),
        accepted: Box::new(|_| false),
        what: "the magic line".to_owned(),
    }];
    for (number, field) in FIELDS.into_iter().enumerate() {
        let line = number + 2;
        placements.push(Placement {
            line,
            place: Box::new(|text, _| text.to_owned()),
            accepted: Box::new(|_| false),
            what: format!("the whole {field} line"),
        });
        placements.push(Placement {
            line,
            place: Box::new(move |text, _| format!("{field}: {text}")),
            accepted: Box::new(move |text| header_accepts(field, text)),
            what: format!("the {field} value"),
        });
    }
    for record in [0, 2, RECORDS as usize - 1] {
        let line = FIRST_RECORD_LINE + record;
        placements.push(Placement {
            line,
            place: Box::new(|text, _| text.to_owned()),
            accepted: Box::new(|_| false),
            what: format!("the whole line of record {}", record + 1),
        });
        for (field, name) in ["index", "key block", "check value"]
            .into_iter()
            .enumerate()
        {
            placements.push(Placement {
                line,
                place: Box::new(move |text, original| {
                    let mut fields: Vec<&str> = original.split(' ').collect();
                    fields[field] = text;
                    fields.join(" ")
                }),
                accepted: Box::new(|_| false),
                what: format!("the {name} of record {}", record + 1),
            });
        }
    }
    placements
}

fn check_every_line(kek_algorithm: KeyAlgorithm, master_keys: KeyAlgorithm) {
    let kek = SecretKey::generate(kek_algorithm).unwrap();
    let file = FileLines::generated(&kek, &options(master_keys)).unwrap();
    let sealed = String::from_utf8(file.sealed(&kek)).unwrap();
    let seal_line = file.lines.len() as u64 + 1;
    let mut inserts = secrets(&kek);
    inserts.extend(secret_lines());
    let mut checked = 0;
    for placement in placements() {
        for insert in &inserts {
            let has_space = insert.text.contains(' ');
            let whole_line = (placement.place)("X", "A B C") == "X";
            if has_space && !whole_line {
                continue;
            }
            let original = &file.lines[placement.line - 1];
            let new_line = (placement.place)(&insert.text, original);
            let context = format!(
                "{kek_algorithm} KEK, {master_keys} keys: {} as {} (line {})",
                insert.what, placement.what, placement.line
            );
            let accepted = (placement.accepted)(&insert.text);

            // Sealed again after the change, as a faulty front end would: the problem itself.
            let mut changed = file.clone();
            changed.lines[placement.line - 1] = new_line.clone();
            let bytes = changed.sealed(&kek);
            match read(&bytes, &kek) {
                Ok(()) => assert!(accepted, "{context}: accepted"),
                Err(error) => {
                    assert!(!accepted, "{context}: refused a valid value: {error}");
                    assert_names_line(&error, placement.line as u64, &context);
                    assert_quotes_nothing(&error, &insert.secret, &context);
                }
            }
            if let Err(error) = peek_header(&bytes[..], NAME) {
                assert_quotes_nothing(&error, &insert.secret, &format!("{context}, peeked"));
            }

            // Changed after sealing: reported as altered, the problem as its first symptom.
            let mut lines: Vec<&str> = sealed.lines().collect();
            lines[placement.line - 1] = &new_line;
            let altered = format!("{}\n", lines.join("\n"));
            let error = read(altered.as_bytes(), &kek).expect_err(&context);
            assert_quotes_nothing(&error, &insert.secret, &format!("{context}, altered"));
            if placement.line == 1 {
                assert_names_line(&error, 1, &context);
            } else {
                assert_names_line(&error, seal_line, &context);
                assert!(
                    matches!(error.problem, Problem::SealMismatch { .. }),
                    "{context}: {error}"
                );
                if !accepted {
                    assert!(
                        error.to_string().contains(&format!(
                            "the first problem seen was on line {}",
                            placement.line
                        )),
                        "{context}: {error}"
                    );
                }
            }
            checked += 1;
        }
    }

    // The seal line: secret text instead of it, and secret text after "seal: ".
    let mut lines: Vec<String> = sealed.lines().map(str::to_owned).collect();
    for insert in &inserts {
        for text in [insert.text.clone(), format!("seal: {}", insert.text)] {
            let context = format!(
                "{kek_algorithm} KEK: {} as the seal line: {text}",
                insert.what
            );
            *lines.last_mut().unwrap() = text;
            let bytes = format!("{}\n", lines.join("\n"));
            let error = read(bytes.as_bytes(), &kek).expect_err(&context);
            assert_names_line(&error, seal_line, &context);
            assert_quotes_nothing(&error, &insert.secret, &context);
            checked += 1;
        }
    }
    assert!(checked > 150, "only {checked} cases");
}

#[test]
fn no_line_of_a_tdes_file_under_an_aes_kek_is_quoted_in_an_error() {
    check_every_line(KeyAlgorithm::Aes256, KeyAlgorithm::Tdes2Key);
}

#[test]
fn no_line_of_a_tdes_file_under_a_tdes_kek_is_quoted_in_an_error() {
    check_every_line(KeyAlgorithm::Tdes3Key, KeyAlgorithm::Tdes2Key);
}

#[test]
fn no_line_of_an_aes_file_is_quoted_in_an_error() {
    check_every_line(KeyAlgorithm::Aes256, KeyAlgorithm::Aes128);
}

/// The words for each problem, now that nothing is quoted.
#[test]
fn refusals_say_what_was_wrong_in_words() {
    let kek = SecretKey::generate(KeyAlgorithm::Aes256).unwrap();
    let file = FileLines::generated(&kek, &options(KeyAlgorithm::Tdes2Key)).unwrap();
    // Starts with a letter that is no TR-31 version, so a key block of it fails at once.
    let key = format!("F{}", &random_hex(16)[1..]);
    let refusal = |change: fn(&mut FileLines, &str)| {
        let mut changed = file.clone();
        change(&mut changed, &key);
        read(&changed.sealed(&kek), &kek).unwrap_err().to_string()
    };
    let cases: Vec<(String, String)> = vec![
        (
            refusal(|f, key| f.lines[0] = key.to_owned()),
            format!(
                "{NAME}: line 1: this is not a keymother key file (expected the line \"KEYMOTHER-KEYFILE/1\")"
            ),
        ),
        (
            refusal(|f, key| f.lines[2] = key.to_owned()),
            format!("{NAME}: line 3: expected the \"issuer\" header line"),
        ),
        (
            refusal(|f, key| f.set_header("batch-id", &key.to_ascii_lowercase())),
            format!(
                "{NAME}: line 2: batch-id: character 1 is not allowed; allowed are A-Z 0-9 . _ -"
            ),
        ),
        (
            refusal(|f, key| f.set_header("algorithm", key)),
            format!(
                "{NAME}: line 4: algorithm: not a key algorithm; expected one of TDES-2KEY, TDES-3KEY, AES-128, AES-192, AES-256"
            ),
        ),
        (
            refusal(|f, key| f.set_header("record-count", key)),
            format!(
                "{NAME}: line 5: record-count: not a count from 1 to 99999999 without leading zeros"
            ),
        ),
        (
            refusal(|f, key| f.set_header("kek-kcv", key)),
            format!(
                "{NAME}: line 7: kek-kcv: not 6 (TDES KEK) or 10 (AES KEK) upper-case hex digits"
            ),
        ),
        (
            refusal(|f, key| {
                let fields = f.record_fields(0);
                *f.record_mut(0) = format!("{key} {} {}", fields[1], fields[2]);
            }),
            format!("{NAME}: line 9: key index is not 8 decimal digits"),
        ),
        (
            refusal(|f, key| {
                let fields = f.record_fields(1);
                *f.record_mut(1) = format!("{} {} {key}", fields[0], fields[1]);
            }),
            format!(
                "{NAME}: line 10: check value is not 6 upper-case hex digits (the check value of a TDES key)"
            ),
        ),
        (
            refusal(|f, key| {
                let fields = f.record_fields(2);
                *f.record_mut(2) = format!("{} {key} {}", fields[0], fields[2]);
            }),
            format!(
                "{NAME}: line 11: the key block does not start with a TR-31 version letter (expected D, as the KEK requires)"
            ),
        ),
        (
            refusal(|f, key| {
                let fields = f.record_fields(4);
                *f.record_mut(4) = format!("{} D0052K0TB00E0100TS24{key} {}", fields[0], fields[2]);
            }),
            format!(
                "{NAME}: line 13: key block: optional block \"TS\" at character 17: the time stamp is 32 characters; expected YYYYMMDDhhmmssZ, YYYYMMDDhhmmssffZ, YYYY-MM-DDThh:mm:ssZ or YYYY-MM-DDThh:mm:ss.ffZ (UTC)"
            ),
        ),
        (
            refusal(|f, key| *f.record_mut(3) = key.to_owned()),
            format!(
                "{NAME}: line 12: a record is \"INDEX BLOCK KCV\" separated by single spaces; found 1 fields"
            ),
        ),
    ];
    for (refused, expected) in cases {
        assert_eq!(refused, expected);
    }

    let sealed = String::from_utf8(file.sealed(&kek)).unwrap();
    let mut lines: Vec<&str> = sealed.lines().collect();
    let bad_seal = format!("seal: {key}");
    *lines.last_mut().unwrap() = &bad_seal;
    let bytes = format!("{}\n", lines.join("\n"));
    assert_eq!(
        read(bytes.as_bytes(), &kek).unwrap_err().to_string(),
        format!(
            "{NAME}: line {}: seal line: expected 64 upper-case hex digits after \"seal: \"",
            FIRST_RECORD_LINE + RECORDS as usize
        )
    );
}

fn inserted_line() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{6,100}",
        "[0-9A-F]{32}",
        "[0-9A-F]{48}",
        "[0-9A-F]{64}",
        "[0-9a-f]{32}",
        "[0-9]{8} [0-9A-F]{32} [0-9A-F]{6}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// A random printable line inserted anywhere, the file sealed again or not: the error names
    /// where, and shows nothing of the line.
    #[test]
    fn an_inserted_line_is_never_quoted(
        text in inserted_line(),
        at in any::<prop::sample::Index>(),
        seal_again in any::<bool>(),
    ) {
        thread_local! {
            static FIXTURE: (SecretKey, FileLines, String) = {
                let kek = SecretKey::generate(KeyAlgorithm::Aes256).unwrap();
                let file = FileLines::generated(&kek, &options(KeyAlgorithm::Tdes2Key)).unwrap();
                let sealed = String::from_utf8(file.sealed(&kek)).unwrap();
                (kek, file, sealed)
            };
        }
        FIXTURE.with(|(kek, file, sealed)| {
            let seal_line = file.lines.len() + 1;
            let (bytes, position) = if seal_again {
                let position = at.index(file.lines.len() + 1);
                let mut changed = file.clone();
                changed.lines.insert(position, text.clone());
                (changed.sealed(kek), position)
            } else {
                let mut lines: Vec<&str> = sealed.lines().collect();
                let position = at.index(lines.len() + 1);
                lines.insert(position, &text);
                (format!("{}\n", lines.join("\n")).into_bytes(), position)
            };
            let line = position as u64 + 1;
            let error = read(&bytes, kek).expect_err("an inserted line was accepted");
            assert_quotes_nothing(&error, &text, "inserted");
            if let Err(error) = peek_header(&bytes[..], NAME) {
                assert_quotes_nothing(&error, &text, "inserted, peeked");
            }
            if position == 0 {
                prop_assert!(matches!(error.problem, Problem::BadMagic), "{}", error);
                prop_assert_eq!(error.line, 1);
            } else if seal_again {
                prop_assert_eq!(error.line, line, "{}", error);
            } else if position == seal_line {
                prop_assert!(matches!(error.problem, Problem::TrailingData), "{}", error);
                prop_assert_eq!(error.line, line);
            } else {
                prop_assert!(matches!(error.problem, Problem::SealMismatch { .. }), "{}", error);
                prop_assert_eq!(error.line, seal_line as u64 + 1);
                let first = format!("the first problem seen was on line {line}");
                prop_assert!(error.to_string().contains(&first), "{}", error);
            }
            Ok(())
        })?;
    }
}
