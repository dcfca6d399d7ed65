//! The hostile corpus, `tests/hostile/`: case files and model specs that once panicked,
//! aborted on allocation or hung the run (infinite or huge durations, counts near `u32::MAX`,
//! prompts that cannot fit in memory), plus what cannot live in git — a directory, a FIFO
//! and a symbolic-link loop named like cases, and a FIFO named as a prompts dataset. Each
//! corpus file names the error it must give in its first line (`# expect: …`). For every one:
//! the named error (file, line, column and key where the YAML has them), no panic, no hang,
//! and the one good case beside them still runs and passes.

use std::path::{Path, PathBuf};

use llm_stress::plan::discovery::Discovered;

use crate::support::CaseDir;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile")
}

/// The corpus's `(relative path, expected message)` pairs: every file with an `# expect:`
/// first line.
fn expectations() -> Vec<(String, String)> {
    let mut found = Vec::new();
    for sub in ["", "models"] {
        let dir = corpus_dir().join(sub);
        for entry in std::fs::read_dir(&dir).expect("the corpus") {
            let path = entry.expect("an entry").path();
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if let Some(expect) = text
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("# expect: "))
            {
                let name = path.file_name().expect("a name").to_string_lossy();
                let relative = if sub.is_empty() {
                    name.into_owned()
                } else {
                    format!("{sub}/{name}")
                };
                found.push((relative, expect.to_string()));
            }
        }
    }
    found.sort();
    found
}

fn mkfifo(path: &Path) {
    let name = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("c path");
    // SAFETY: mkfifo only creates a file system node from a valid C string.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// The corpus copied into a fresh cases folder, with the entries git cannot hold.
fn corpus() -> CaseDir {
    let dir = CaseDir::named("hostile");
    for sub in ["", "models"] {
        for entry in std::fs::read_dir(corpus_dir().join(sub)).expect("the corpus") {
            let path = entry.expect("an entry").path();
            if path.is_file() {
                let name = path
                    .file_name()
                    .expect("a name")
                    .to_string_lossy()
                    .into_owned();
                let relative = if sub.is_empty() {
                    name
                } else {
                    format!("{sub}/{name}")
                };
                dir.file(&relative, &std::fs::read_to_string(&path).expect("text"));
            }
        }
    }
    let cases = dir.cases();
    std::fs::create_dir(cases.join("a-directory.yaml")).expect("dir");
    mkfifo(&cases.join("a-fifo.yaml"));
    std::os::unix::fs::symlink("loop-b.yaml", cases.join("loop-a.yaml")).expect("link");
    std::os::unix::fs::symlink("loop-a.yaml", cases.join("loop-b.yaml")).expect("link");
    mkfifo(&cases.join("prompts.fifo"));
    dir.case(
        "fifo-dataset",
        "name: fifo-dataset\nmodel: m\nkinds: [perf]\nserver:\n  embedded: { ttft_ms: 1, tpot_ms: 1 }\n\
         prompts: { source: jsonl, path: prompts.fifo }\n\
         matrix: { mode: custom, isl: [16], osl: [8], concurrency: [1] }\n",
    );
    dir
}

#[test]
fn every_hostile_case_is_named_with_its_error_and_the_good_one_still_runs() {
    let expected = expectations();
    assert!(
        expected.len() >= 25,
        "the corpus has {} entries",
        expected.len()
    );
    let dir = corpus();
    let found = dir.discover();
    let broken: Vec<(String, String)> = found
        .iter()
        .filter_map(|d| match d {
            Discovered::Broken { name, message, .. } => Some((name.clone(), message.clone())),
            Discovered::Plan(_) => None,
        })
        .collect();
    let mut wrong = Vec::new();
    for (file, expect) in &expected {
        if file.starts_with("models/") {
            continue; // checked through the case that names the model
        }
        let stem = file.trim_end_matches(".yaml");
        let mine = |(name, message): &&(String, String)| {
            name.starts_with(stem) || message.contains(&format!("/{stem}.yaml"))
        };
        match broken.iter().find(mine).map(|(_, message)| message) {
            Some(message) if message.contains(expect.as_str()) => {}
            Some(message) => {
                wrong.push(format!("{file}: {}", message.lines().next().unwrap_or("")))
            }
            None => wrong.push(format!("{file}: not reported as broken")),
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    for (entry, why) in [
        ("a-directory.yaml", "is a directory"),
        ("a-fifo.yaml", "not a regular file"),
        ("loop-a.yaml", "symbolic links"),
    ] {
        assert!(
            broken
                .iter()
                .any(|(_, m)| m.contains(entry) && m.contains(why)),
            "{entry}: {broken:#?}"
        );
    }
    let plans: Vec<_> = found
        .into_iter()
        .filter_map(|d| match d {
            Discovered::Plan(plan) => Some(plan),
            Discovered::Broken { .. } => None,
        })
        .collect();
    let names: Vec<String> = plans.iter().map(|p| p.name()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    let session = crate::support::session(crate::support::context("hostile", dir.out(), None));
    for plan in &plans {
        let started = std::time::Instant::now();
        let outcome = session.run_trial(plan).expect("reports written");
        assert!(started.elapsed().as_secs() < 30, "{} hung", plan.name());
        let reasons = outcome.report.verdict.failure_reasons().join("; ");
        if plan.case().spec.name == "good" {
            assert!(outcome.passed, "{reasons}");
        } else {
            assert!(!outcome.passed);
            assert!(reasons.contains("not a regular file"), "{reasons}");
        }
    }
}
