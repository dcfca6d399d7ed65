//! The run summary gathered from trial folders as nextest's processes leave them: the newest
//! run by default, every trial once (a re-run keeps the newest and says so), `summary.md` in
//! the run's folder, and clear errors for missing or corrupt files.

use std::fs;
use std::time::{Duration, SystemTime};

use llm_stress::report::analysis::Thresholds;
use llm_stress::report::html::Extras;
use llm_stress::report::summary_md::{self, Detail, SUMMARY_MD};
use llm_stress::report::table::Numbers;
use llm_stress::report::{publish, run};

use crate::support::Temp;
use crate::support::runs::{Spec, full_run, write_trial};

/// Makes every file of an older run look written an hour ago.
fn age(dir: &std::path::Path) {
    let past = SystemTime::now() - Duration::from_secs(3600);
    for entry in fs::read_dir(dir).expect("folder").flatten() {
        let path = entry.path();
        if path.is_dir() {
            age(&path);
        } else {
            fs::File::options()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_modified(past))
                .expect("set mtime");
        }
    }
}

#[test]
fn the_newest_run_is_gathered_with_every_trial_once() {
    let out = Temp::new("summary-newest");
    let old = write_trial(
        out.path(),
        &Spec {
            run_id: "run-old",
            ..Spec::perf("old-case", 1)
        },
    );
    age(old.parent().and_then(|p| p.parent()).expect("run folder"));
    let specs = full_run(out.path());
    // The flaky trial again in the same run, later, this time passing: the newest is kept.
    write_trial(
        out.path(),
        &Spec {
            timestamp: "2026-11-24T19:30:00Z",
            ..Spec::perf("flaky", 4)
        },
    );

    let runs = run::runs(out.path()).expect("runs");
    let names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["run-new", "run-old"]);

    let gathered = run::load(out.path(), None).expect("newest run");
    assert_eq!(gathered.run_id, "run-new");
    assert_eq!(gathered.trials.len(), specs.len());
    let flaky: Vec<_> = gathered
        .trials
        .iter()
        .filter(|t| t.report.meta.case == "flaky")
        .collect();
    assert_eq!(flaky.len(), 1);
    assert_eq!(flaky[0].report.meta.timestamp, "2026-11-24T19:30:00Z");
    assert_eq!(
        gathered.notes,
        [
            "[perf] flaky::isl128_osl64_c4_n40 ran 2 times in this run; the newest \
          (2026-11-24T19:30:00Z, passed) is shown"
        ]
    );

    let older = run::load(out.path(), Some("run-old")).expect("named run");
    assert_eq!(older.trials.len(), 1);
    assert!(older.notes.is_empty(), "{:?}", older.notes);
}

#[test]
fn the_summary_is_written_in_the_run_folder() {
    let out = Temp::new("summary-written");
    full_run(out.path());
    let written = publish::write_run(out.path(), None, &Thresholds::default(), &Extras::default())
        .expect("reports");
    assert_eq!(written.summary, out.path().join("run-new").join(SUMMARY_MD));
    let text = fs::read_to_string(&written.summary).expect("summary.md");
    assert!(text.starts_with("# Run `run-new`"), "{text}");
    for expected in [
        "## knee",
        "| large ",
        "CRITICAL 20.00 %",
        "E2EL (ms):",
        " 4 users |",
        "20 req/s",
        "- perf closed ISL 128 OSL 64: concurrency 4\n",
    ] {
        assert!(text.contains(expected), "{expected} in\n{text}");
    }
    let verdicts = text
        .split("## Verdicts")
        .nth(1)
        .expect("verdicts")
        .lines()
        .find(|l| l.starts_with("| ") && !l.starts_with("| verdict"))
        .expect("first verdict");
    assert!(
        verdicts.contains("**FAIL**") && verdicts.contains("flaky"),
        "{verdicts}"
    );
    assert!(written.html.is_file());
}

#[test]
fn redacted_run_summary_snapshot() {
    let out = Temp::new("summary-snapshot");
    full_run(out.path());
    let gathered = run::load(out.path(), None).expect("run");
    insta::assert_snapshot!(summary_md::render(
        &gathered,
        &Thresholds::default(),
        Numbers::Redacted,
        Detail::Full
    ));
}

#[test]
fn a_trial_folder_without_its_summary_is_an_error_naming_the_file() {
    let out = Temp::new("summary-missing");
    full_run(out.path());
    let empty = out.path().join("run-new/perf/knee/isl1_osl1_c1_n1");
    fs::create_dir_all(&empty).expect("folder");
    let error = run::load(out.path(), None)
        .expect_err("missing")
        .to_string();
    assert!(
        error.contains(&empty.join("summary.json").display().to_string()),
        "{error}"
    );
    assert!(error.contains("missing"), "{error}");
}

#[test]
fn an_incomplete_older_run_does_not_hide_the_newest() {
    let out = Temp::new("summary-incomplete");
    let old = write_trial(
        out.path(),
        &Spec {
            run_id: "run-old",
            ..Spec::perf("knee", 1)
        },
    );
    fs::create_dir_all(old.with_file_name("isl1_osl1_c1_n1")).expect("folder");
    age(&out.path().join("run-old"));
    write_trial(out.path(), &Spec::perf("knee", 2));
    let gathered = run::load(out.path(), None).expect("newest run");
    assert_eq!(gathered.run_id, "run-new");
    let error = run::load(out.path(), Some("run-old"))
        .expect_err("incomplete")
        .to_string();
    assert!(error.contains("isl1_osl1_c1_n1/summary.json"), "{error}");
}

#[test]
fn a_corrupt_summary_is_an_error_naming_file_and_line() {
    let out = Temp::new("summary-corrupt");
    let dir = write_trial(out.path(), &Spec::perf("knee", 1));
    let path = dir.join("summary.json");
    fs::write(&path, "{\n  \"run_id\": \"run-new\",\n  \"trial\": 7\n}\n").expect("write");
    let error = run::load(out.path(), None)
        .expect_err("corrupt")
        .to_string();
    assert!(
        error.starts_with(&format!("{}:3: ", path.display())),
        "{error}"
    );
}

#[test]
fn a_corrupt_records_file_is_an_error_naming_file_and_line() {
    let out = Temp::new("summary-records");
    let dir = write_trial(out.path(), &Spec::perf("knee", 1));
    let path = dir.join("records.jsonl");
    let mut text = fs::read_to_string(&path).expect("records");
    text.push_str("{\"send_ms\": \"soon\"}\n");
    fs::write(&path, text).expect("write");
    let error = publish::write_run(out.path(), None, &Thresholds::default(), &Extras::default())
        .expect_err("corrupt")
        .to_string();
    assert!(
        error.starts_with(&format!("{}:41: ", path.display())),
        "{error}"
    );
}

#[test]
fn an_unknown_run_lists_the_runs_there() {
    let out = Temp::new("summary-unknown");
    write_trial(out.path(), &Spec::perf("knee", 1));
    let error = run::load(out.path(), Some("nope"))
        .expect_err("unknown")
        .to_string();
    assert!(error.contains("no run `nope`"), "{error}");
    assert!(error.contains("run-new"), "{error}");
}

#[test]
fn a_folder_without_runs_says_so() {
    let out = Temp::new("summary-empty");
    fs::create_dir_all(out.path().join("run-x/servers")).expect("folder");
    let error = run::load(out.path(), None).expect_err("no run").to_string();
    assert!(error.contains("no run found"), "{error}");
    let missing = out.path().join("absent");
    let error = run::load(&missing, None)
        .expect_err("no folder")
        .to_string();
    assert!(error.contains(&missing.display().to_string()), "{error}");
}
