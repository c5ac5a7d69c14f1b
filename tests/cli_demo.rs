//! `keymother demo` as a user runs it: a relative `--dir`, too few `--keys` refused before anything starts, the saved bench screens, and its report against the registry.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli_common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use cli_common::{stderr, stdout};

/// `keymother` with `arguments`, run in `directory`.
fn keymother_in(directory: &Path, arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keymother"))
        .args(arguments)
        .current_dir(directory)
        .env_remove("KEYMOTHER_SOCKET")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn too_few_keys_are_refused_before_anything_starts() {
    let directory = tempfile::tempdir().unwrap();
    let output = keymother_in(
        directory.path(),
        &["demo", "--keys", "5", "--dir", "./demo1"],
    );
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let error = stderr(&output);
    assert!(
        error.contains("--keys: 5 is too few")
            && error.contains("12 terminals")
            && error.contains("--keys 12 or more"),
        "{error}"
    );
    assert_eq!(error.lines().count(), 1, "said once: {error}");
    assert!(stdout(&output).is_empty(), "nothing started");
    assert!(!directory.path().join("demo1").exists(), "nothing made");
    // One terminal per port needs four keys: three are too few, and say so in the singular
    // where it applies.
    let output = keymother_in(
        directory.path(),
        &["demo", "--keys", "3", "--terminals-per-port", "1"],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("4 terminals (1 on each of its 4 ports"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_relative_dir_works_and_the_saved_screens_include_an_injected_one() {
    let directory = tempfile::tempdir().unwrap();
    let output = keymother_in(
        directory.path(),
        &[
            "demo",
            "--keys",
            "300",
            "--terminals-per-port",
            "1",
            "--dir",
            "./demo1",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let work = directory.path().join("demo1");
    assert!(work.join("vault").is_dir(), "the vault is in ./demo1");
    let text = stdout(&output);
    assert!(
        text.contains(&format!("keymother demo in {}", work.display())),
        "the directory is shown absolute: {text}"
    );
    let names: Vec<String> = std::fs::read_dir(work.join("screens"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|name| name.ends_with("-injected.png")),
        "no INJECTED screen among {names:?}"
    );
    // (An INJECTING frame is not asserted: the display shows a change at most every 100 ms,
    // and a demo terminal's whole session can fit between two.)

    // The report over the run counts what the registry holds: its total, and each line's
    // injections summed, equal the SMN rows of the demo's vault, read here on their own.
    let vault = keymother_vault::Vault::open(&work.join("vault")).unwrap();
    let registry = vault.smn_rows().unwrap().len();
    assert!(registry >= 4, "{registry} SMN rows");
    let report: Vec<&str> = text
        .lines()
        .skip_while(|line| !line.starts_with("the report over the demo"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .collect();
    let total = report.last().unwrap();
    assert_eq!(
        *total,
        format!("  total: {registry} injections, as many as the registry's SMN rows"),
        "{text}"
    );
    let summed: usize = report[..report.len() - 1]
        .iter()
        .map(|line| {
            let (_, counts) = line.rsplit_once(": ").unwrap();
            let (injections, _) = counts.split_once(' ').unwrap();
            injections.parse::<usize>().unwrap()
        })
        .sum();
    assert_eq!(summed, registry, "{report:?}");
}
