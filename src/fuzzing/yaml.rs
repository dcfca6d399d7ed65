//! Target `yaml`: the repository's real case files (`stress-cases/`, `tests/hostile/`) mutated
//! — bytes cut out, hostile tokens inserted (non-finite and huge numbers, brackets, anchors
//! and aliases, tags, tabs, NULs, document markers), numbers swapped for them, lines
//! duplicated, swapped, re-indented, the file truncated — then discovered as a cases folder
//! (loaded, validated, expanded into trial plans). Properties: no panic, and every case that
//! cannot run is reported with an error naming its file and a line and column or a key.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseResult;

use crate::case::overrides::Overrides;
use crate::plan::discovery::{Discovered, discover_with};

/// Tokens inserted into or swapped for parts of a case.
const HOSTILE: [&str; 36] = [
    ".inf",
    "-.inf",
    ".nan",
    "-1",
    "0",
    "1e300",
    "4294967295",
    "18446744073709551616",
    "400000000000y",
    "99999999999999999999999h",
    "[",
    "]",
    "{",
    "}",
    ":",
    "- ",
    "\n",
    "\t",
    "&a ",
    "*a",
    "<<: *a\n",
    "!!binary ",
    "!!float ",
    "? ",
    "'",
    "\"",
    "#",
    "~",
    "null",
    "\u{0}",
    "\u{feff}",
    "---\n",
    "...\n",
    "%YAML 1.2\n",
    "  ",
    "\\",
];

/// Ordinary values swapped for numbers.
const BENIGN: [&str; 8] = ["1", "2", "3", "8", "16", "64", "0.5", "100"];

/// One mutation of a case's text.
#[derive(Debug, Clone)]
enum Mutation {
    Delete(Index, usize),
    Insert(Index, &'static str),
    SwapNumber(Index, &'static str),
    DuplicateLine(Index),
    SwapLines(Index, Index),
    Indent(Index, i8),
    Truncate(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let token = || prop::sample::select(&HOSTILE[..]);
    prop_oneof![
        2 => (any::<Index>(), 1usize..16).prop_map(|(at, n)| Mutation::Delete(at, n)),
        3 => (any::<Index>(), token()).prop_map(|(at, t)| Mutation::Insert(at, t)),
        4 => (any::<Index>(), token()).prop_map(|(at, t)| Mutation::SwapNumber(at, t)),
        // Plausible values too, so that many mutated cases stay valid and reach the plans.
        4 => (any::<Index>(), prop::sample::select(&BENIGN[..]))
            .prop_map(|(at, t)| Mutation::SwapNumber(at, t)),
        1 => any::<Index>().prop_map(Mutation::DuplicateLine),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        1 => (any::<Index>(), -4i8..4).prop_map(|(at, by)| Mutation::Indent(at, by)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
    ]
}

/// The nearest character boundary at or before `at`.
fn boundary(text: &str, at: usize) -> usize {
    (0..=at.min(text.len()))
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0)
}

/// Byte spans of the numbers (and number-like words) in `text`.
fn numbers(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric()) {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.') {
                i += 1;
            }
            spans.push((start, i));
        } else {
            i += 1;
        }
    }
    spans
}

fn apply(text: &mut String, mutation: &Mutation) {
    match mutation {
        Mutation::Delete(at, n) => {
            let start = boundary(text, at.index(text.len() + 1));
            let end = boundary(text, start + n);
            text.replace_range(start..end, "");
        }
        Mutation::Insert(at, token) => {
            let at = boundary(text, at.index(text.len() + 1));
            text.insert_str(at, token);
        }
        Mutation::SwapNumber(at, token) => {
            let spans = numbers(text);
            if !spans.is_empty() {
                let (start, end) = spans[at.index(spans.len())];
                text.replace_range(start..end, token);
            }
        }
        Mutation::DuplicateLine(at) | Mutation::SwapLines(at, _) | Mutation::Indent(at, _) => {
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            if lines.is_empty() {
                return;
            }
            let i = at.index(lines.len());
            match mutation {
                Mutation::DuplicateLine(_) => lines.insert(i, lines[i].clone()),
                Mutation::SwapLines(_, other) => {
                    let j = other.index(lines.len());
                    lines.swap(i, j);
                }
                Mutation::Indent(_, by) if *by >= 0 => {
                    lines[i].insert_str(0, &" ".repeat(*by as usize));
                }
                Mutation::Indent(_, by) => {
                    let strip = lines[i]
                        .chars()
                        .take(by.unsigned_abs() as usize)
                        .take_while(|c| *c == ' ')
                        .count();
                    lines[i].replace_range(..strip, "");
                }
                _ => {}
            }
            *text = lines.join("\n");
            text.push('\n');
        }
        Mutation::Truncate(at) => {
            let at = boundary(text, at.index(text.len() + 1));
            text.truncate(at);
        }
    }
}

/// The real case files the mutations start from.
fn seeds() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seeds = Vec::new();
    for dir in ["stress-cases", "tests/hostile"] {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
            .expect("a folder of cases")
            .map(|e| e.expect("an entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        paths.sort();
        seeds.extend(
            paths
                .iter()
                .map(|p| std::fs::read_to_string(p).expect("a case file")),
        );
    }
    seeds
}

/// A cases folder holding every model spec of the seeds' folders, for one case at a time.
struct Folder {
    _temp: tempfile::TempDir,
    cases: PathBuf,
}

impl Folder {
    fn new() -> Folder {
        let temp = tempfile::Builder::new()
            .prefix("llm-stress-fuzz-yaml-")
            .tempdir()
            .expect("a temporary folder");
        let cases = temp.path().join("cases");
        let models = cases.join("models");
        std::fs::create_dir_all(&models).expect("models");
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for dir in ["stress-cases/models", "tests/hostile/models"] {
            for entry in std::fs::read_dir(root.join(dir)).expect("models") {
                let path = entry.expect("an entry").path();
                std::fs::copy(&path, models.join(path.file_name().expect("a name")))
                    .expect("copy a model");
            }
        }
        // Datasets named by the seeds, relative to the case file.
        let data = root.join("stress-cases/data");
        if data.is_dir() {
            std::fs::create_dir_all(cases.join("data")).expect("data");
            for entry in std::fs::read_dir(&data).expect("data") {
                let path = entry.expect("an entry").path();
                if path.is_file() {
                    std::fs::copy(
                        &path,
                        cases.join("data").join(path.file_name().expect("name")),
                    )
                    .expect("copy a dataset");
                }
            }
        }
        Folder { _temp: temp, cases }
    }

    /// Discovers the folder with `text` as its one case; checks every error's message.
    /// Counts the cases that still expanded into trial plans in `planned`.
    fn check(&self, text: &[u8], planned: &AtomicUsize) -> TestCaseResult {
        let case = self.cases.join("c.yaml");
        std::fs::write(&case, text).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let found = discover_with(&self.cases, None, &Overrides::default());
        for entry in &found {
            if let Discovered::Broken { message, .. } = entry {
                prop_assert!(
                    names_where(message),
                    "an error that names no place: {message}"
                );
            }
        }
        if found.iter().any(|d| matches!(d, Discovered::Plan(_))) {
            planned.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Whether `message` names a file and in it a line and column or a key.
fn names_where(message: &str) -> bool {
    let Some(at) = message.find(".yaml") else {
        return false;
    };
    let after = &message[at + ".yaml".len()..];
    let line_col = after.strip_prefix(':').is_some_and(|rest| {
        let mut parts = rest.splitn(3, ':');
        let line = parts.next().unwrap_or("");
        let column = parts.next().unwrap_or("");
        !line.is_empty()
            && line.bytes().all(|b| b.is_ascii_digit())
            && !column.is_empty()
            && column.bytes().all(|b| b.is_ascii_digit())
    });
    line_col || message.contains("key `")
}

#[test]
fn mutated_real_cases_fail_with_a_place_never_a_panic() {
    let seeds = seeds();
    assert!(seeds.len() >= 20, "{} seed cases", seeds.len());
    let folder = Folder::new();
    let planned = AtomicUsize::new(0);
    super::fuzz(
        "yaml",
        (any::<Index>(), prop::collection::vec(mutation(), 0..5)),
        |(seed, mutations)| {
            let mut text = seeds[seed.index(seeds.len())].clone();
            for m in mutations {
                apply(&mut text, m);
            }
            text.into_bytes()
        },
        |bytes| folder.check(bytes, &planned),
        |(seed, mutations)| {
            let mut text = seeds[seed.index(seeds.len())].clone();
            for m in &mutations {
                apply(&mut text, m);
            }
            folder.check(text.as_bytes(), &planned)
        },
    );
    // The mutations must leave some cases valid, or only the parser's errors were fuzzed.
    let planned = planned.into_inner();
    eprintln!("yaml: {planned} mutated cases still expanded into trial plans");
    assert!(planned > 0, "no mutated case got as far as its trial plans");
}

#[test]
fn a_case_that_is_not_utf8_is_named_with_its_file() {
    let folder = Folder::new();
    std::fs::write(folder.cases.join("c.yaml"), b"name: c\nmodel: \xff\xfe\n").expect("write");
    let found = discover_with(&folder.cases, None, &Overrides::default());
    let messages: Vec<&str> = found
        .iter()
        .filter_map(|d| match d {
            Discovered::Broken { message, .. } => Some(message.as_str()),
            Discovered::Plan(_) => None,
        })
        .collect();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(messages[0].contains("c.yaml"), "{}", messages[0]);
}
