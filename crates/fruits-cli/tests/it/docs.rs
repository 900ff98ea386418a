//! The README and docs speak to users: no development history (work
//! sessions, issue numbers, commit hashes), a README short enough to read,
//! a changelog, and no default quoted otherwise than the code sets it.

use std::path::{Path, PathBuf};

/// The repository's root (cargo runs the tests from the crate's folder).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// README.md and every page under docs/, with their text.
fn pages() -> Vec<(String, String)> {
    let root = root();
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("page");
            (p.display().to_string(), text)
        })
        .collect()
}

/// Words of 7 to 40 hex digits that mix digits and letters: commit hashes
/// (a sha256 of a file, 64 digits, is data a user can check, and stays).
fn commit_like(word: &str) -> bool {
    (7..=40).contains(&word.len())
        && word
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        && word.bytes().any(|b| b.is_ascii_digit())
        && word.bytes().any(|b| b.is_ascii_alphabetic())
}

#[test]
fn docs_hold_no_development_history() {
    let mut found = Vec::new();
    for (page, text) in pages() {
        for (n, line) in text.lines().enumerate() {
            let lower = line.to_lowercase();
            let words: Vec<&str> = lower
                .split(|c: char| !c.is_ascii_alphanumeric() && c != '#')
                .filter(|w| !w.is_empty())
                .collect();
            for pair in words.windows(2) {
                let numbered = pair[1].trim_start_matches('#').parse::<u32>().is_ok();
                if matches!(pair[0], "session" | "issue" | "issues") && numbered {
                    found.push(format!("{page}:{}: {:?} {:?}", n + 1, pair[0], pair[1]));
                }
            }
            for word in &words {
                if commit_like(word) {
                    found.push(format!("{page}:{}: {word:?} looks like a commit", n + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "development history in the docs:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_readme_is_short_and_the_changelog_exists() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README");
    let lines = readme.lines().count();
    assert!(lines <= 150, "README.md has {lines} lines");
    let changelog = std::fs::read_to_string(root().join("CHANGELOG.md")).expect("CHANGELOG.md");
    assert!(changelog.contains("## [Unreleased]") || changelog.contains("## [0."));
}

#[test]
fn defaults_are_quoted_as_the_code_sets_them() {
    let batch = fruits_pipeline::featurize::DEFAULT_BATCH_SIZE.to_string();
    for (page, text) in pages() {
        for (n, line) in text.lines().enumerate() {
            for (marker, value) in [("defaults: batch ", &batch), ("batch_size=", &batch)] {
                for (i, _) in line.match_indices(marker) {
                    let quoted: String = line[i + marker.len()..]
                        .chars()
                        .take_while(char::is_ascii_digit)
                        .collect();
                    // Only the signature's default, not an example's value.
                    if marker == "batch_size=" && !line.starts_with("### `fruits.featurize(") {
                        continue;
                    }
                    assert_eq!(&quoted, value, "{page}:{}: {line}", n + 1);
                }
            }
        }
    }
}

/// Each workspace crate and the workspace crates its `[dependencies]` name,
/// read from the crates' Cargo.toml files.
fn crate_graph() -> std::collections::BTreeMap<String, Vec<String>> {
    let mut graph = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(root().join("crates"))
        .expect("crates/")
        .flatten()
    {
        let Ok(manifest) = std::fs::read_to_string(entry.path().join("Cargo.toml")) else {
            continue;
        };
        let (mut name, mut section, mut deps) = (String::new(), String::new(), Vec::new());
        for line in manifest.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line.to_string();
            } else if section == "[package]" && line.starts_with("name") {
                name = line.split('"').nth(1).unwrap_or_default().to_string();
            } else if section == "[dependencies]" && line.starts_with("fruits-") {
                let dep = line.split(['.', ' ', '=']).next().unwrap_or_default();
                deps.push(dep.to_string());
            }
        }
        deps.sort();
        graph.insert(name, deps);
    }
    graph
}

#[test]
fn design_md_shows_the_crate_graph_the_manifests_declare() {
    let graph = crate_graph();
    assert!(graph.len() >= 10, "{graph:?}");
    // Dependencies first; among crates ready at the same time, by name (as
    // scripts/crate-graph.sh prints it).
    let mut order: Vec<&String> = Vec::new();
    while order.len() < graph.len() {
        let ready: Vec<&String> = graph
            .iter()
            .filter(|(n, deps)| !order.contains(n) && deps.iter().all(|d| order.contains(&d)))
            .map(|(n, _)| n)
            .collect();
        assert!(
            !ready.is_empty(),
            "the crates depend on each other in a cycle"
        );
        order.extend(ready);
    }
    let width = order.iter().map(|n| n.len()).max().unwrap_or(0);
    let expected: String = order
        .iter()
        .map(|n| {
            let deps = &graph[*n];
            let uses = if deps.is_empty() {
                "(none)".to_string()
            } else {
                deps.join(", ")
            };
            format!("{n:<width$}  <- {uses}\n")
        })
        .collect();
    let design = std::fs::read_to_string(root().join("docs/design.md")).expect("design.md");
    let block = design
        .split("<!-- crate-graph -->\n```text\n")
        .nth(1)
        .and_then(|rest| rest.split("```\n<!-- /crate-graph -->").next())
        .expect("docs/design.md has a crate-graph block");
    assert_eq!(
        block, expected,
        "docs/design.md's crate graph is stale: run scripts/crate-graph.sh and paste its output"
    );
}
