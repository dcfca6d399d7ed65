//! `llm-stress init`: scaffolds llm-stress into a repository — a case and model spec in
//! `stress-cases/`, `tests/stress.rs` with `llm_stress::main!()` and one attributed trial, the
//! `[[test]] harness = false` entry and the dev-dependency in `Cargo.toml` (edited with
//! `toml_edit`, keeping its formatting and comments), `.config/nextest.toml` and a CI workflow.
//! A repository without a `Cargo.toml` gets a small package of its own under `stress/`.
//!
//! Nothing is written when a file it would write exists (or `Cargo.toml` already has the
//! entries), unless `--force`: the check comes first, so a refused `init` changes nothing.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use toml_edit::{DocumentMut, Item, Table, value};

/// Scaffold llm-stress into a repository: cases, a test target with one trial written in Rust,
/// nextest settings and a CI workflow.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The repository (default: the current folder).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Overwrite files that exist (and replace the Cargo.toml entries).
    #[arg(long)]
    pub force: bool,
    /// Depend on a local checkout of llm-stress at DIR instead of the crates.io version.
    #[arg(long, value_name = "DIR")]
    pub path_dependency: Option<PathBuf>,
}

/// Why `init` wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// Files exist that it would overwrite.
    #[error(
        "not overwriting what exists (use --force to replace it; nothing was changed):\n  {}",
        .0.join("\n  ")
    )]
    Exists(Vec<String>),
    /// `Cargo.toml` is not valid TOML.
    #[error("{}: {source}", path.display())]
    Manifest {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: toml_edit::TomlError,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Runs the command: scaffolds and prints what it wrote.
pub fn exec(args: Args) -> Result<ExitCode> {
    let written = scaffold(&args.dir, args.path_dependency.as_deref(), args.force)?;
    for path in &written {
        println!("wrote {}", path.display());
    }
    println!(
        "next: `cargo nextest run` (the first run writes the snapshots with INSTA_UPDATE=unseen; \
         commit them)"
    );
    Ok(ExitCode::SUCCESS)
}

/// Scaffolds into `repo`; returns the files written (or edited), in order.
pub fn scaffold(
    repo: &Path,
    path_dependency: Option<&Path>,
    force: bool,
) -> Result<Vec<PathBuf>, InitError> {
    let manifest = repo.join("Cargo.toml");
    let (package, new_package) = if manifest.is_file() {
        (repo.to_path_buf(), false)
    } else {
        (repo.join("stress"), true)
    };
    let package_manifest = package.join("Cargo.toml");
    let dependency = match path_dependency {
        Some(dir) => Dependency::Path(absolute(dir)?),
        None => Dependency::Version(env!("CARGO_PKG_VERSION").to_string()),
    };
    let mut files: Vec<(PathBuf, String)> = vec![
        (package.join("stress-cases/example.yaml"), CASE.to_string()),
        (
            package.join("stress-cases/models/example-model.yaml"),
            MODEL.to_string(),
        ),
        (package.join("tests/stress.rs"), TESTS.to_string()),
        (package.join(".config/nextest.toml"), NEXTEST.to_string()),
        (
            repo.join(".github/workflows/llm-stress.yml"),
            workflow(if new_package { "stress" } else { "." }),
        ),
    ];
    if new_package {
        files.push((package.join("src/lib.rs"), LIB.to_string()));
    }
    let mut exists: Vec<String> = files
        .iter()
        .filter(|(path, _)| path.exists())
        .map(|(path, _)| path.display().to_string())
        .collect();
    let original = if new_package {
        if package_manifest.exists() {
            exists.push(package_manifest.display().to_string());
        }
        NEW_PACKAGE.to_string()
    } else {
        std::fs::read_to_string(&package_manifest).map_err(|source| InitError::Io {
            path: package_manifest.clone(),
            source,
        })?
    };
    let mut document: DocumentMut = original.parse().map_err(|source| InitError::Manifest {
        path: package_manifest.clone(),
        source,
    })?;
    if !new_package {
        exists.extend(
            manifest_conflicts(&document)
                .into_iter()
                .map(|entry| format!("{}: {entry}", package_manifest.display())),
        );
    }
    if !exists.is_empty() && !force {
        return Err(InitError::Exists(exists));
    }
    edit_manifest(&mut document, &dependency);
    files.insert(0, (package_manifest, document.to_string()));
    let mut written = Vec::with_capacity(files.len());
    for (path, text) in files {
        write(&path, &text)?;
        written.push(path);
    }
    Ok(written)
}

/// What `init` would add that the manifest already has.
fn manifest_conflicts(document: &DocumentMut) -> Vec<String> {
    let mut conflicts = Vec::new();
    if document
        .get("dev-dependencies")
        .and_then(|d| d.get("llm-stress"))
        .is_some()
    {
        conflicts.push("[dev-dependencies] llm-stress".to_string());
    }
    if test_index(document).is_some() {
        conflicts.push("[[test]] name = \"stress\"".to_string());
    }
    conflicts
}

/// The `[[test]]` entry named `stress`, if there is one.
fn test_index(document: &DocumentMut) -> Option<usize> {
    document
        .get("test")
        .and_then(Item::as_array_of_tables)?
        .iter()
        .position(|t| t.get("name").and_then(Item::as_str) == Some("stress"))
}

enum Dependency {
    Version(String),
    Path(PathBuf),
}

/// Adds (or replaces) the dev-dependency, the test target and the dependencies' optimisation,
/// leaving everything else as written.
fn edit_manifest(document: &mut DocumentMut, dependency: &Dependency) {
    let dev = document
        .entry("dev-dependencies")
        .or_insert_with(|| Item::Table(Table::new()));
    if let Some(dev) = dev.as_table_like_mut() {
        let item = match dependency {
            Dependency::Version(version) => value(format!("={version}")),
            Dependency::Path(dir) => {
                let mut inline = toml_edit::InlineTable::new();
                inline.insert("path", dir.display().to_string().into());
                value(inline)
            }
        };
        dev.insert("llm-stress", item);
    }
    let mut test = Table::new();
    test.insert("name", value("stress"));
    test.insert("path", value("tests/stress.rs"));
    test.insert("harness", value(false));
    match (test_index(document), document.get_mut("test")) {
        (Some(i), Some(tests)) => {
            if let Some(entry) = tests.as_array_of_tables_mut().and_then(|t| t.get_mut(i)) {
                *entry = test;
            }
        }
        (None, Some(Item::ArrayOfTables(tests))) => tests.push(test),
        _ => {
            let mut tests = toml_edit::ArrayOfTables::new();
            tests.push(test);
            document.insert("test", Item::ArrayOfTables(tests));
        }
    }
    // The load client's hot path runs in test builds: dependencies built optimised, unless
    // the repository already says how.
    let has_profile = document
        .get("profile")
        .and_then(|p| p.get("dev"))
        .and_then(|d| d.get("package"))
        .and_then(|p| p.get("*"))
        .is_some();
    if !has_profile {
        let mut star = Table::new();
        star.insert("opt-level", value(2));
        let mut package = Table::new();
        package.set_implicit(true);
        package.insert("*", Item::Table(star));
        let mut dev = Table::new();
        dev.set_implicit(true);
        dev.insert("package", Item::Table(package));
        let profile = document.entry("profile").or_insert_with(|| {
            let mut t = Table::new();
            t.set_implicit(true);
            Item::Table(t)
        });
        if let Some(profile) = profile.as_table_mut() {
            profile.insert("dev", Item::Table(dev));
        }
    }
}

fn absolute(dir: &Path) -> Result<PathBuf, InitError> {
    std::path::absolute(dir).map_err(|source| InitError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

fn write(path: &Path, text: &str) -> Result<(), InitError> {
    let io = |source| InitError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    std::fs::write(path, text).map_err(io)
}

const NEW_PACKAGE: &str = r#"# The stress tests of this repository (llm-stress): `cargo nextest run` here.
[package]
name = "stress-tests"
version = "0.1.0"
edition = "2024"
publish = false

[workspace]
"#;

const LIB: &str =
    "//! The stress tests of this repository live in `tests/stress.rs` and `stress-cases/`.\n";

const CASE: &str = r#"# An example case: streaming chat at one and four users. It runs against the embedded
# simulated server, or the server at LLM_STRESS_URL when that is set.
name: example
model: example-model
kinds: [perf]
server:
  embedded: { ttft_ms: 20, tpot_ms: 5, slots: 8 }
api: chat
matrix:
  mode: custom
  isl: [128]
  osl: [64]
  concurrency: [1, 4]
  prompts: { fixed: 4 }
load:
  timeout_s: 30
slo:
  - error_rate < 0.01
  - ttft_ms.p95 < 2000
"#;

const MODEL: &str = r#"# The model under test: context and concurrency limits. Add `reference` entries with
# theoretical targets to judge performance against them.
name: example-model
max_context: 4096
max_concurrency: 16
"#;

const TESTS: &str = r#"//! Stress tests: every case in `stress-cases/` and every attributed trial below, one test
//! per trial (`cargo nextest run`; one trial: `cargo nextest run -E 'test(=[perf] NAME)'`).

use llm_stress::prelude::*;

/// A trial written in Rust: the example case at two users, with a check of our own.
#[llm_stress::perf(case = "stress-cases/example.yaml", concurrency = [2])]
async fn example_in_rust(t: Trial) -> TrialResult {
    let run = t.run().await?;
    run.require("error_rate < 0.01")?;
    run.check("every request was measured", !run.records().is_empty())?;
    Ok(run.into())
}

llm_stress::main!();
"#;

const NEXTEST: &str = r#"# Load trials run one at a time, each with every test thread, so that none competes with
# another for the CPU while it measures.
[test-groups]
serial-load = { max-threads = 1 }

# Each load trial ends at its own time limit (`load.trial_timeout`); nextest's limit is only
# a backstop against a hang. A trial meant to run longer than 5 minutes has `endurance` in
# its name: nextest then waits up to 25 hours.
[[profile.default.overrides]]
filter = 'binary(stress) & test(/endurance/)'
slow-timeout = { period = "60s", terminate-after = 1500 }

[[profile.default.overrides]]
filter = 'binary(stress)'
test-group = 'serial-load'
threads-required = 'num-test-threads'
slow-timeout = { period = "60s", terminate-after = 5 }

[profile.ci]
fail-fast = false
failure-output = "immediate-final"

[profile.ci.junit]
path = "junit.xml"
"#;

/// The gating workflow: trials on every pull request and push to main, the run uploaded, and a
/// pull request's run compared with the target branch's latest successful one (the same steps
/// as this repository's `.github/workflows/stress.yml`, with `llm-stress` installed from
/// crates.io at this version for `compare`).
fn workflow(dir: &str) -> String {
    format!(
        r#"# Stress trials on every pull request, compared with the latest successful run on main
# (written by `llm-stress init`; see the book's "Gating against a baseline"). The trials run
# against the embedded server, or the server at the LLM_STRESS_URL secret when it is set.
name: llm-stress

on:
  pull_request:
  push:
    branches: [main]
  workflow_dispatch:

permissions:
  contents: read
  actions: read

env:
  CI: "true"
  LLM_STRESS_URL: ${{{{ secrets.LLM_STRESS_URL }}}}
  LLM_STRESS_OUT: ${{{{ github.workspace }}}}/llm-stress-out
  LLM_STRESS_RUN_ID: run-${{{{ github.run_id }}}}-${{{{ github.run_attempt }}}}

jobs:
  trials:
    runs-on: ubuntu-latest
    defaults:
      run:
        working-directory: {dir}
    steps:
      - uses: actions/checkout@v5
      - uses: dtolnay/rust-toolchain@stable
      - uses: Swatinem/rust-cache@v2
      - uses: taiki-e/install-action@v2
        with:
          tool: nextest
      - name: Trials
        run: cargo nextest run --profile ci
      - name: Upload the run
        if: always()
        uses: actions/upload-artifact@v7
        with:
          name: llm-stress-run
          path: ${{{{ env.LLM_STRESS_OUT }}}}/${{{{ env.LLM_STRESS_RUN_ID }}}}
          if-no-files-found: ignore
      - name: Fetch the baseline (the target branch's latest successful run)
        id: baseline
        if: github.event_name == 'pull_request'
        continue-on-error: true
        uses: dawidd6/action-download-artifact@v24
        with:
          workflow: llm-stress.yml
          branch: ${{{{ github.base_ref }}}}
          workflow_conclusion: success
          name: llm-stress-run
          path: baseline-run
      - name: Compare with the baseline
        if: github.event_name == 'pull_request' && steps.baseline.outcome == 'success'
        run: |
          cargo install llm-stress --locked --version {version}
          llm-stress compare "$GITHUB_WORKSPACE/baseline-run" "$LLM_STRESS_OUT/$LLM_STRESS_RUN_ID"
"#,
        version = env!("CARGO_PKG_VERSION"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(dir: &Path) -> Vec<(PathBuf, String)> {
        let mut found = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).expect("readable") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let text = std::fs::read_to_string(&path).expect("text");
                    found.push((path, text));
                }
            }
        }
        found.sort();
        found
    }

    const USER_MANIFEST: &str = "[package]\nname = \"demo\"   # ours\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[dependencies]\nserde = \"1\"\n";

    #[test]
    fn init_edits_the_manifest_keeping_its_formatting_and_writes_every_file() {
        let dir = tempfile::tempdir().expect("temp");
        std::fs::write(dir.path().join("Cargo.toml"), USER_MANIFEST).expect("write");
        let written =
            scaffold(dir.path(), Some(Path::new("/opt/llm-stress")), false).expect("scaffolded");
        let names: Vec<String> = written
            .iter()
            .map(|p| {
                p.strip_prefix(dir.path())
                    .expect("inside")
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(
            names,
            [
                "Cargo.toml",
                "stress-cases/example.yaml",
                "stress-cases/models/example-model.yaml",
                "tests/stress.rs",
                ".config/nextest.toml",
                ".github/workflows/llm-stress.yml",
            ]
        );
        let manifest = std::fs::read_to_string(dir.path().join("Cargo.toml")).expect("read");
        assert!(manifest.starts_with(USER_MANIFEST), "{manifest}");
        assert!(
            manifest.contains("llm-stress = { path = \"/opt/llm-stress\" }"),
            "{manifest}"
        );
        assert!(
            manifest.contains(
                "[[test]]\nname = \"stress\"\npath = \"tests/stress.rs\"\nharness = false"
            ),
            "{manifest}"
        );
        assert!(
            manifest.contains("[profile.dev.package.\"*\"]\nopt-level = 2"),
            "{manifest}"
        );
        let case = crate::case::load_case(&dir.path().join("stress-cases/example.yaml"));
        assert!(case.is_ok(), "the scaffolded case loads: {case:?}");
    }

    #[test]
    fn a_second_init_refuses_and_changes_nothing_unless_forced() {
        let dir = tempfile::tempdir().expect("temp");
        std::fs::write(dir.path().join("Cargo.toml"), USER_MANIFEST).expect("write");
        scaffold(dir.path(), None, false).expect("first");
        let before = tree(dir.path());
        let err = scaffold(dir.path(), None, false).expect_err("refused");
        let message = err.to_string();
        assert!(message.contains("nothing was changed"), "{message}");
        assert!(message.contains("tests/stress.rs"), "{message}");
        assert!(
            message.contains("[dev-dependencies] llm-stress"),
            "{message}"
        );
        assert_eq!(tree(dir.path()), before, "nothing changed");
        scaffold(dir.path(), None, true).expect("forced");
        let manifest = std::fs::read_to_string(dir.path().join("Cargo.toml")).expect("read");
        assert_eq!(manifest.matches("[[test]]").count(), 1, "{manifest}");
    }

    #[test]
    fn a_repository_without_cargo_gets_a_package_of_its_own() {
        let dir = tempfile::tempdir().expect("temp");
        let written = scaffold(dir.path(), None, false).expect("scaffolded");
        assert!(written.contains(&dir.path().join("stress/Cargo.toml")));
        assert!(dir.path().join("stress/src/lib.rs").is_file());
        let workflow = std::fs::read_to_string(dir.path().join(".github/workflows/llm-stress.yml"))
            .expect("workflow");
        assert!(workflow.contains("working-directory: stress"), "{workflow}");
        assert!(
            workflow.contains("${{ secrets.LLM_STRESS_URL }}"),
            "{workflow}"
        );
        let manifest =
            std::fs::read_to_string(dir.path().join("stress/Cargo.toml")).expect("manifest");
        let version = format!("llm-stress = \"={}\"", env!("CARGO_PKG_VERSION"));
        assert!(manifest.contains(&version), "{manifest}");
    }
}
