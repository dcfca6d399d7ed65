//! The documentation stays true to the code and to itself, with no network and no `mdbook`:
//!
//! - the CSV-columns reference page lists exactly the columns `results.csv` gets
//!   ([`llm_stress::report::csv::COLUMNS`]), in the same order;
//! - every relative link in `README.md` and in the book (`docs/src/**/*.md`) points to a file
//!   that exists, and a `#fragment` into a page names one of its headings;
//! - `docs/src/SUMMARY.md` lists every page of the book;
//! - the README's example case is a real file of `stress-cases/`, verbatim.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Component, Path, PathBuf};

use llm_stress::report::csv::COLUMNS;

/// The repository root.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The book's source folder.
fn book_src() -> PathBuf {
    root().join("docs").join("src")
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Every `.md` file under `dir`, sorted.
fn markdown_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let entries =
            fs::read_dir(&folder).unwrap_or_else(|e| panic!("listing {}: {e}", folder.display()));
        for entry in entries {
            let path = entry.expect("a folder entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The lines of a markdown text outside fenced code blocks, with their 1-based numbers.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut in_fence = false;
    let mut lines = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if !in_fence {
            lines.push((index + 1, line));
        }
    }
    lines
}

/// A line with its inline code spans (`` `…` ``) removed, so that code is never read as a link.
fn without_code_spans(line: &str) -> String {
    let mut out = String::new();
    let mut in_code = false;
    for c in line.chars() {
        if c == '`' {
            in_code = !in_code;
        } else if !in_code {
            out.push(c);
        }
    }
    out
}

/// The targets of the inline links `[text](target)` on one line of prose.
fn link_targets(line: &str) -> Vec<String> {
    let line = without_code_spans(line);
    let mut targets = Vec::new();
    let mut rest = line.as_str();
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        match after.find(')') {
            Some(end) => {
                // `[text](target "title")`: the target is the first word.
                let target = after[..end].split_whitespace().next().unwrap_or("");
                targets.push(target.to_string());
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    targets
}

/// Whether a link leaves the repository (a URL with a scheme, or mail).
fn is_external(target: &str) -> bool {
    target.contains("://") || target.starts_with("mailto:")
}

/// The anchor mdBook gives a heading: lower case, spaces to `-`, only letters, digits, `-`
/// and `_` kept (the text of inline code included, its backticks dropped).
fn heading_anchor(heading: &str) -> String {
    heading
        .trim()
        .chars()
        .filter_map(|c| {
            if c.is_whitespace() {
                Some('-')
            } else if c.is_alphanumeric() || c == '-' || c == '_' {
                Some(c.to_ascii_lowercase())
            } else {
                None
            }
        })
        .collect()
}

/// The anchors of a markdown page's headings.
fn anchors(text: &str) -> BTreeSet<String> {
    prose_lines(text)
        .into_iter()
        .filter_map(|(_, line)| {
            let trimmed = line.trim_start_matches('#');
            (line.starts_with('#') && trimmed.starts_with(' ')).then(|| heading_anchor(trimmed))
        })
        .collect()
}

/// `base/relative`, with `.` and `..` resolved without touching the file system.
fn resolve(base: &Path, relative: &str) -> PathBuf {
    let mut path = base.to_path_buf();
    for component in Path::new(relative).components() {
        match component {
            Component::ParentDir => {
                path.pop();
            }
            Component::CurDir => {}
            other => path.push(other),
        }
    }
    path
}

/// Every broken relative link in `file`, as `file:line: why`.
fn broken_links(file: &Path) -> Vec<String> {
    let text = read(file);
    let folder = file.parent().expect("a file has a folder");
    let mut problems = Vec::new();
    for (number, line) in prose_lines(&text) {
        for target in link_targets(line) {
            if target.is_empty() || is_external(&target) {
                continue;
            }
            let (path_part, fragment) = match target.split_once('#') {
                Some((path, fragment)) => (path, Some(fragment)),
                None => (target.as_str(), None),
            };
            let where_ = format!("{}:{number}", file.display());
            let linked = if path_part.is_empty() {
                file.to_path_buf()
            } else {
                resolve(folder, path_part)
            };
            if !linked.exists() {
                problems.push(format!(
                    "{where_}: `{target}`: {} does not exist",
                    linked.display()
                ));
                continue;
            }
            if let Some(fragment) = fragment
                && linked.extension().is_some_and(|e| e == "md")
                && !anchors(&read(&linked)).contains(fragment)
            {
                problems.push(format!(
                    "{where_}: `{target}`: {} has no heading with the anchor `#{fragment}`",
                    linked.display()
                ));
            }
        }
    }
    problems
}

#[test]
fn every_relative_link_points_to_an_existing_file() {
    let mut files = vec![root().join("README.md")];
    let architecture = root().join("ARCHITECTURE.md");
    if architecture.exists() {
        files.push(architecture);
    }
    files.extend(markdown_files(&book_src()));
    let problems: Vec<String> = files.iter().flat_map(|f| broken_links(f)).collect();
    assert!(
        problems.is_empty(),
        "{} broken links:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn summary_lists_every_page_of_the_book() {
    let src = book_src();
    let summary_path = src.join("SUMMARY.md");
    let summary = read(&summary_path);
    let listed: BTreeSet<PathBuf> = prose_lines(&summary)
        .into_iter()
        .flat_map(|(_, line)| link_targets(line))
        .filter(|t| !is_external(t))
        .map(|t| resolve(&src, t.split('#').next().unwrap_or("")))
        .collect();
    let pages: BTreeSet<PathBuf> = markdown_files(&src)
        .into_iter()
        .filter(|p| *p != summary_path)
        .collect();
    let unlisted: Vec<_> = pages.difference(&listed).map(|p| p.display()).collect();
    let missing: Vec<_> = listed.difference(&pages).map(|p| p.display()).collect();
    assert!(
        unlisted.is_empty() && missing.is_empty(),
        "SUMMARY.md and docs/src/ disagree\n  pages SUMMARY.md does not list: {unlisted:?}\n  \
         entries with no page: {missing:?}"
    );
}

/// The column names of the first markdown table on the page whose header's first cell is
/// `column`: each row's first cell, a name in backticks.
fn documented_columns(page: &str) -> Vec<String> {
    let mut columns = Vec::new();
    let mut in_table = false;
    for (number, line) in prose_lines(page) {
        let line = line.trim();
        if !line.starts_with('|') {
            if in_table {
                break;
            }
            continue;
        }
        let first = line
            .trim_matches('|')
            .split('|')
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        if !in_table {
            in_table = first == "column";
            continue;
        }
        if first.chars().all(|c| c == '-' || c == ':') {
            continue;
        }
        let name = first
            .strip_prefix('`')
            .and_then(|f| f.strip_suffix('`'))
            .unwrap_or_else(|| panic!("line {number}: the column `{first}` is not in backticks"));
        columns.push(name.to_string());
    }
    assert!(in_table, "no table whose first header cell is `column`");
    columns
}

#[test]
fn csv_columns_page_lists_exactly_the_columns_written() {
    let path = book_src().join("reference").join("csv-columns.md");
    let documented = documented_columns(&read(&path));
    let code: Vec<String> = COLUMNS.iter().map(|c| c.to_string()).collect();
    if documented == code {
        return;
    }
    let documented_set: BTreeSet<&String> = documented.iter().collect();
    let code_set: BTreeSet<&String> = code.iter().collect();
    let undocumented: Vec<_> = code_set.difference(&documented_set).collect();
    let not_written: Vec<_> = documented_set.difference(&code_set).collect();
    let mut counts: BTreeMap<&String, usize> = BTreeMap::new();
    for name in &documented {
        *counts.entry(name).or_default() += 1;
    }
    let repeated: Vec<_> = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(c, _)| c)
        .collect();
    let first_difference = documented
        .iter()
        .zip(&code)
        .position(|(d, c)| d != c)
        .map(|i| {
            format!(
                "position {}: the page says `{}`, the code writes `{}`",
                i + 1,
                documented[i],
                code[i]
            )
        })
        .unwrap_or_else(|| {
            format!(
                "the page lists {} columns, the code writes {}",
                documented.len(),
                code.len()
            )
        });
    panic!(
        "{} does not match llm_stress::report::csv::COLUMNS\n  written but not documented: \
         {undocumented:?}\n  documented but not written: {not_written:?}\n  listed twice: \
         {repeated:?}\n  first difference in order: {first_difference}",
        path.display()
    );
}

#[test]
fn readme_example_case_is_a_real_case_file() {
    let readme = read(&root().join("README.md"));
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        match (&mut current, line.trim_start()) {
            (None, "```yaml") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(!blocks.is_empty(), "README.md has no yaml example");
    let cases: Vec<(PathBuf, String)> = fs::read_dir(root().join("stress-cases"))
        .expect("stress-cases/")
        .map(|e| e.expect("a folder entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| {
            let text = read(&p);
            (p, text)
        })
        .collect();
    for block in &blocks {
        assert!(
            cases.iter().any(|(_, text)| text == block),
            "this yaml example in README.md is not, verbatim, a file of stress-cases/:\n{block}"
        );
    }
}

#[test]
fn the_checks_themselves_read_markdown_as_intended() {
    assert_eq!(
        link_targets("see [a](x.md) and [b](../y.md#z \"t\"), not `[c](code.md)`"),
        ["x.md", "../y.md#z"]
    );
    assert_eq!(
        heading_anchor(" The run summary: `llm-stress report`"),
        "the-run-summary-llm-stress-report"
    );
    assert_eq!(heading_anchor(" server.embedded"), "serverembedded");
    assert_eq!(
        documented_columns("text\n\n| column | meaning |\n|---|---|\n| `a` | x |\n| `b` | y |\n"),
        ["a", "b"]
    );
    assert_eq!(
        resolve(Path::new("/r/docs/src/guide"), "../reference/cli.md"),
        Path::new("/r/docs/src/reference/cli.md")
    );
}

/// The rows of `ARCHITECTURE.md`'s module map: each module of `llm_stress` and the modules it
/// may import from (backticked names in the third column; `—` for none).
fn module_map() -> BTreeMap<String, BTreeSet<String>> {
    let text = read(&root().join("ARCHITECTURE.md"));
    let start = text
        .find("## Module map")
        .expect("ARCHITECTURE.md has a module map");
    let backticked = |cell: &str| -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    let mut map = BTreeMap::new();
    for line in text[start..].lines().skip(1) {
        if line.starts_with("## ") {
            break;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 || cells[1].starts_with("---") || cells[1] == "module" {
            continue;
        }
        let Some(module) = backticked(cells[1]).into_iter().next() else {
            continue;
        };
        map.insert(module, backticked(cells[3]).into_iter().collect());
    }
    map
}

/// Every other module of `llm_stress` that the code of `module` names as `crate::NAME`
/// (outside comments and `#[cfg(test)]` modules), with a file where it does.
fn imports_of(module: &str) -> BTreeMap<String, PathBuf> {
    let src = root().join("src");
    let file = src.join(format!("{module}.rs"));
    let mut files = if file.exists() {
        vec![file]
    } else {
        Vec::new()
    };
    let mut pending = vec![src.join(module)];
    while let Some(folder) = pending.pop() {
        let Ok(entries) = fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a folder entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut found = BTreeMap::new();
    for path in files {
        let text = read(&path);
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for line in code.lines() {
            let line = line.trim_start();
            if line.starts_with("//") {
                continue;
            }
            for (at, _) in line.match_indices("crate::") {
                let name: String = line[at + "crate::".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != module {
                    found.entry(name).or_insert_with(|| path.clone());
                }
            }
        }
    }
    found
}

/// The top-level modules `src/lib.rs` declares or re-exports.
fn crate_modules() -> BTreeSet<String> {
    read(&root().join("src").join("lib.rs"))
        .lines()
        // The attribute macros re-exported from llm-stress-macros are not modules.
        .filter(|line| !line.trim().starts_with("pub use llm_stress_macros::"))
        .filter_map(|line| {
            let line = line.trim();
            let rest = line
                .strip_prefix("pub mod ")
                .map(|r| r.trim_end_matches(';').to_string())
                .or_else(|| {
                    let rest = line.strip_prefix("pub use ")?.trim_end_matches(';');
                    Some(rest.rsplit(' ').next()?.trim_end_matches('}').to_string())
                })?;
            Some(rest)
        })
        .flat_map(|names| {
            names
                .trim_start_matches('{')
                .split(',')
                .map(|n| n.trim().rsplit("::").next().unwrap_or_default().to_string())
                .filter(|n| !n.is_empty())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn every_module_imports_only_what_the_architecture_map_allows() {
    let map = module_map();
    let modules = crate_modules();
    let unmapped: Vec<&String> = modules.iter().filter(|m| !map.contains_key(*m)).collect();
    assert!(
        unmapped.is_empty(),
        "modules of src/lib.rs missing from ARCHITECTURE.md's module map: {unmapped:?}"
    );
    let mut breaches = Vec::new();
    for (module, allowed) in &map {
        for (import, file) in imports_of(module) {
            if modules.contains(&import) && !allowed.contains(&import) {
                breaches.push(format!(
                    "`{module}` imports `{import}` ({}), which the map does not allow",
                    file.display()
                ));
            }
        }
    }
    assert!(breaches.is_empty(), "{}", breaches.join("\n"));
}

#[test]
fn the_architecture_map_has_no_cycle() {
    let map = module_map();
    // Depth-first search for a back edge.
    fn visit<'a>(
        module: &'a str,
        map: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<String> {
        if let Some(at) = path.iter().position(|m| *m == module) {
            return Some(format!("{} -> {module}", path[at..].join(" -> ")));
        }
        if done.contains(module) {
            return None;
        }
        path.push(module);
        for next in map.get(module).into_iter().flatten() {
            if let Some(cycle) = visit(next, map, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(module);
        None
    }
    let mut done = BTreeSet::new();
    for module in map.keys() {
        if let Some(cycle) = visit(module, &map, &mut Vec::new(), &mut done) {
            panic!("the module map has a cycle: {cycle}");
        }
    }
}
