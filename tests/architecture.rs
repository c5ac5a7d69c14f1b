//! The command's modules import each other in one direction only: no loop among them, nor through the crate root (main.rs), checked from the source.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crate root: it declares every module and dispatches to them, so a module that takes
/// something from it imports it back.
const ROOT: &str = "main";

/// The top-level module a file belongs to: `demo/steps.rs` is `demo`, `main.rs` the root.
fn module_of(relative: &Path) -> String {
    let first = relative.components().next().unwrap();
    let name = first.as_os_str().to_str().unwrap();
    name.trim_end_matches(".rs").to_owned()
}

/// Every `.rs` file under `directory`.
fn source_files(directory: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![directory.to_path_buf()];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(directory).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                files.push(path);
            }
        }
    }
    files
}

/// A file's text without its comment lines.
fn code_of(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What each top-level module imports: the modules it names as `crate::X`, and the root
/// when it names an item of the root (`crate::something` that is no module). The root
/// imports every module it declares with `mod X;`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = source_files(&source);
    let modules: BTreeSet<String> = files
        .iter()
        .map(|path| module_of(path.strip_prefix(&source).unwrap()))
        .collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in &files {
        let module = module_of(path.strip_prefix(&source).unwrap());
        let code = code_of(path);
        let used = graph.entry(module.clone()).or_default();
        if module == ROOT {
            for line in code.lines() {
                let line = line.trim_start().trim_start_matches("pub ");
                if let Some(name) = line
                    .strip_prefix("mod ")
                    .and_then(|rest| rest.strip_suffix(';'))
                {
                    used.insert(name.trim().to_owned());
                }
            }
        }
        for (at, _) in code.match_indices("crate::") {
            let name: String = code[at + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let imported = if modules.contains(&name) {
                name
            } else {
                ROOT.to_owned()
            };
            if imported != module {
                used.insert(imported);
            }
        }
    }
    graph
}

/// A cycle through `start`, if any, as the modules on it.
fn cycle_from(
    graph: &BTreeMap<String, BTreeSet<String>>,
    start: &str,
    path: &mut Vec<String>,
) -> Option<Vec<String>> {
    for next in graph.get(path.last().unwrap()).into_iter().flatten() {
        if next == start {
            let mut cycle = path.clone();
            cycle.push(next.clone());
            return Some(cycle);
        }
        if !path.contains(next) {
            path.push(next.clone());
            if let Some(cycle) = cycle_from(graph, start, path) {
                return Some(cycle);
            }
            path.pop();
        }
    }
    None
}

#[test]
fn no_module_of_the_command_imports_one_that_imports_it_back() {
    let graph = imports();
    assert!(
        graph.contains_key("demo") && graph[ROOT].contains("control"),
        "{graph:?}"
    );
    let mut cycles = Vec::new();
    for module in graph.keys() {
        let mut path = vec![module.clone()];
        if let Some(cycle) = cycle_from(&graph, module, &mut path) {
            cycles.push(cycle.join(" -> "));
        }
    }
    assert!(cycles.is_empty(), "import loops:\n{}", cycles.join("\n"));
}
