//! The shape of the production source (issue 14): no function over 150 lines, no file over 1,000, one `//!` line atop every module; read from rustfmt-formatted source.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

/// The longest production function, in lines from its `fn` line to its closing brace.
const MAX_FUNCTION_LINES: usize = 150;
/// The longest source file, tests included.
const MAX_FILE_LINES: usize = 1_000;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Every `.rs` file under each workspace member's `src/`.
fn production_files() -> Vec<PathBuf> {
    let root = workspace();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let members: Vec<&str> = manifest
        .split("members = [")
        .nth(1)
        .unwrap()
        .split(']')
        .next()
        .unwrap()
        .split('"')
        .skip(1)
        .step_by(2)
        .collect();
    assert!(members.contains(&"daemon") && members.contains(&"domain"));
    let mut files = Vec::new();
    let mut pending: Vec<PathBuf> = members.iter().map(|m| root.join(m).join("src")).collect();
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(&directory).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// Whether `line` starts a function item (not a `fn` type or a call).
fn starts_function(line: &str) -> Option<String> {
    let mut words = line.trim_start();
    for prefix in [
        "pub(crate) ",
        "pub(super) ",
        "pub ",
        "const ",
        "async ",
        "unsafe ",
    ] {
        words = words.strip_prefix(prefix).unwrap_or(words);
    }
    let rest = words.strip_prefix("fn ")?;
    let name: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// The functions of one file longer than the limit, outside `#[cfg(test)]` items, as
/// `(name, first line, length)`.
fn long_functions(text: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    let mut number = 0;
    while number < lines.len() {
        let line = lines[number];
        if line.trim() == "#[cfg(test)]" {
            // Skip the item it guards: up to the closing line at its indentation.
            let depth = indent(line);
            let mut end = number + 1;
            let one_line = lines
                .get(end)
                .is_some_and(|next| next.trim_end().ends_with(';'));
            if !one_line {
                while end < lines.len()
                    && !(indent(lines[end]) == depth && lines[end].trim() == "}")
                {
                    end += 1;
                }
            }
            number = end + 1;
            continue;
        }
        if let Some(name) = starts_function(line) {
            let depth = indent(line);
            let mut end = number;
            // A declaration without a body (in a trait) ends with `;`.
            while end < lines.len() {
                let candidate = lines[end];
                if candidate.trim_end().ends_with(';') && end == number {
                    break;
                }
                if indent(candidate) == depth && candidate.trim_start().starts_with('}') {
                    break;
                }
                if end == number && candidate.trim_end().ends_with('}') {
                    break;
                }
                end += 1;
            }
            let length = end - number + 1;
            if length > MAX_FUNCTION_LINES {
                found.push((name, number + 1, length));
            }
        }
        number += 1;
    }
    found
}

#[test]
fn no_production_function_is_over_150_lines_and_no_file_over_1000() {
    let root = workspace();
    let mut problems = Vec::new();
    let files = production_files();
    assert!(files.len() > 50, "found only {} files", files.len());
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let shown = path.strip_prefix(&root).unwrap().display().to_string();
        let lines = text.lines().count();
        if lines > MAX_FILE_LINES {
            problems.push(format!("{shown}: {lines} lines"));
        }
        for (name, line, length) in long_functions(&text) {
            problems.push(format!("{shown}:{line}: fn {name} is {length} lines"));
        }
        if !text.starts_with("//!") {
            problems.push(format!("{shown}: does not start with a `//!` line"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_measure_sees_a_long_function_and_skips_tests() {
    let body = "    let x = 1;\n".repeat(MAX_FUNCTION_LINES);
    let long = format!("pub fn long() {{\n{body}}}\n");
    assert_eq!(
        long_functions(&long),
        vec![("long".to_owned(), 1, MAX_FUNCTION_LINES + 2)]
    );
    let short = format!("fn short() {{\n{}}}\n", "    x;\n".repeat(10));
    assert!(long_functions(&short).is_empty());
    let tested = format!(
        "#[cfg(test)]\nmod tests {{\n    {}\n}}\n",
        long.replace('\n', "\n    ")
    );
    assert!(long_functions(&tested).is_empty());
    let nested = format!("impl A {{\n    {}\n}}\n", long.replace('\n', "\n    "));
    assert_eq!(long_functions(&nested).len(), 1);
}
