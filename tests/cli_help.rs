//! Every command's help, walked: `keymother`, `keymother-terminal` and `keymotherd`, each subcommand recursively via `-h`; every option, argument and subcommand has a help line, and no help text shows Rust type names or Debug output.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A binary of the workspace beside `keymother` (cargo builds them all for the workspace's
/// tests; alone: `cargo build -p keymother-terminal -p keymother-daemon`).
fn sibling(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_keymother")).with_file_name(name);
    assert!(
        path.exists(),
        "build {name} first (cargo build --workspace): {} is missing",
        path.display()
    );
    path
}

/// One entry of a help section: its section, what it is called, its help (may be empty).
#[derive(Debug)]
struct Entry {
    section: String,
    name: String,
    help: String,
}

/// The entries of a `-h` output's sections (Commands, Arguments, Options).
fn entries(help: &str) -> Vec<Entry> {
    let mut found: Vec<Entry> = Vec::new();
    let mut section = String::new();
    for line in help.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            section = line.trim_end_matches(':').to_owned();
            continue;
        }
        if section.is_empty() || line.trim().is_empty() {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let text = line.trim();
        if indent > 8 {
            // A help text on its own line, under the entry.
            if let Some(last) = found.last_mut() {
                last.help.push(' ');
                last.help.push_str(text);
            }
            continue;
        }
        let (name, help) = match text.find("  ") {
            Some(at) => (text[..at].trim(), text[at..].trim()),
            None => (text, ""),
        };
        found.push(Entry {
            section: section.clone(),
            name: name.to_owned(),
            help: help.to_owned(),
        });
    }
    found
}

/// The help text without clap's bracketed notes ([default: ..], [env: ..], [possible
/// values: ..], [aliases: ..]).
fn words_of(help: &str) -> String {
    let mut words = String::new();
    let mut depth = 0usize;
    let mut rest = help;
    while let Some(at) = rest.find(['[', ']']) {
        let (before, after) = rest.split_at(at);
        if depth == 0 {
            words.push_str(before);
        }
        let note = [
            "[default:",
            "[env:",
            "[possible values:",
            "[aliases:",
            "[alias:",
        ]
        .iter()
        .any(|start| after.starts_with(start));
        if after.starts_with('[') && (depth > 0 || note) {
            depth += 1;
        } else if after.starts_with(']') && depth > 0 {
            depth -= 1;
        } else if depth == 0 {
            words.push_str(&after[..1]);
        }
        rest = &after[1..];
    }
    if depth == 0 {
        words.push_str(rest);
    }
    words.trim().to_owned()
}

/// Words that look like Rust: CamelCase type names (`NoKeysAvailable`,
/// `CertificateRefused("..")`), Debug forms (`Some(`, `None`, `{ field:`), paths (`::`).
fn rust_like_tokens(text: &str) -> Vec<String> {
    // ASN.1 and CMS type names are the standards' own words, not Rust's.
    const STANDARD_NAMES: [&str; 8] = [
        "ContentInfo",
        "SignedData",
        "EnvelopedData",
        "SubjectPublicKeyInfo",
        "KeyTransRecipientInfo",
        "IssuerAndSerialNumber",
        "SignerInfo",
        "PrivateKeyInfo",
    ];
    let mut found = Vec::new();
    for word in text.split(|c: char| !c.is_ascii_alphanumeric()) {
        let mut chars = word.chars();
        let camel = chars.next().is_some_and(|c| c.is_ascii_uppercase())
            && word.chars().any(|c| c.is_ascii_lowercase())
            && word
                .as_bytes()
                .windows(2)
                .any(|pair| pair[0].is_ascii_lowercase() && pair[1].is_ascii_uppercase());
        if camel && !STANDARD_NAMES.contains(&word) {
            found.push(word.to_owned());
        }
    }
    for debug in ["Some(", "None", "Ok(", "Err(", "::", "{ "] {
        if text.contains(debug) {
            found.push(debug.to_owned());
        }
    }
    found
}

/// Runs `binary path... -h`, checks its entries, and walks its subcommands; returns every
/// problem found.
fn walk(binary: &Path, path: &mut Vec<String>, problems: &mut Vec<String>) {
    let output = Command::new(binary)
        .args(path.iter())
        .arg("-h")
        .env_remove("KEYMOTHER_SOCKET")
        .output()
        .unwrap();
    let name = binary.file_name().unwrap().to_string_lossy();
    let command = format!("{name} {}", path.join(" "));
    assert!(
        output.status.success(),
        "{command} -h failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let help = String::from_utf8(output.stdout).unwrap();
    let about = help.lines().next().unwrap_or_default();
    if words_of(about).is_empty() || about.starts_with("Usage:") {
        problems.push(format!("{command}: no description"));
    }
    for token in rust_like_tokens(&help) {
        problems.push(format!("{command}: Rust-like {token:?} in its help"));
    }
    for entry in entries(&help) {
        if words_of(&entry.help).is_empty() {
            problems.push(format!(
                "{command}: {} {:?} has no help line",
                entry.section, entry.name
            ));
        }
        if entry.section == "Commands" && entry.name != "help" {
            path.push(entry.name.clone());
            walk(binary, path, problems);
            path.pop();
        }
    }
}

fn problems_of(binary: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    walk(binary, &mut Vec::new(), &mut problems);
    problems
}

#[test]
fn every_keymother_command_option_and_argument_has_help_in_plain_words() {
    let problems = problems_of(Path::new(env!("CARGO_BIN_EXE_keymother")));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_reference_terminal_and_the_daemon_have_help_for_every_option() {
    for binary in ["keymother-terminal", "keymotherd"] {
        let problems = problems_of(&sibling(binary));
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}

#[test]
fn the_walker_finds_what_it_must() {
    // The checks themselves: a missing help, a note alone, a Debug form, a type name.
    let help = "About\n\nUsage: x\n\nCommands:\n  go    Goes\n  stay\n\nOptions:\n      --baud <BAUD>  [default: 115200]\n      --long <X>\n          Said below\n  -h, --help     Print help\n";
    let found: Vec<(String, String)> = entries(help)
        .into_iter()
        .filter(|entry| words_of(&entry.help).is_empty())
        .map(|entry| (entry.section, entry.name))
        .collect();
    assert_eq!(
        found,
        [
            ("Commands".to_owned(), "stay".to_owned()),
            ("Options".to_owned(), "--baud <BAUD>".to_owned()),
        ]
    );
    assert_eq!(
        rust_like_tokens("refused: NoKeysAvailable, CertificateRefused(\"x\"), a SignedData"),
        ["NoKeysAvailable", "CertificateRefused"]
    );
    assert_eq!(
        words_of("Bit rate [default: 9600] [1, 2]"),
        "Bit rate  [1, 2]"
    );
}

#[test]
fn errors_are_printed_once_and_in_plain_words() {
    let run = |arguments: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_keymother"))
            .args(arguments)
            .env_remove("KEYMOTHER_SOCKET")
            .output()
            .unwrap();
        assert!(!output.status.success(), "{arguments:?} succeeded");
        String::from_utf8(output.stderr).unwrap()
    };
    let missing = tempfile::tempdir().unwrap().path().join("gone");
    let error = run(&[
        "vault",
        "inventory",
        "--data-dir",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(
        error.matches("No such file or directory").count(),
        1,
        "the cause once: {error}"
    );
    assert_eq!(error.lines().count(), 1, "{error}");
    let error = run(&["kcv", "--alg", "aes", "00"]);
    assert!(
        error.contains("an AES key cannot be 1 byte long"),
        "article and number: {error}"
    );
    assert!(rust_like_tokens(&error).is_empty(), "{error}");
}
