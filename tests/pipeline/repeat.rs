//! `load.repeat`: a perf trial runs its load several times and pools the requests; the report
//! keeps each run's figures with their median and range.

use llm_stress::report::attempts::AttemptCause;
use llm_stress::report::table::{self, Numbers};

use crate::support::{self, CaseDir};

const MODEL: &str = "name: m\nmax_context: 256\nmax_concurrency: 2\n";

const CASE: &str = "name: r\nmodel: m\nkinds: [perf]\nserver:\n  embedded: { ttft_ms: 2, tpot_ms: 1, slots: 2 }\n\
matrix:\n  mode: custom\n  isl: [16]\n  osl: [8]\n  concurrency: [2]\n  prompts: { fixed: 6 }\n\
load:\n  warmup: 2\n  repeat: 3\n";

#[test]
fn a_repeated_load_pools_its_runs_and_reports_each() {
    let dir = CaseDir::named("repeat");
    let plan = dir.model("m", MODEL).case("r", CASE).plan();
    let session = support::session(support::context("repeat", dir.out(), None));
    let outcome = session.run_trial(&plan).expect("reports written");
    assert!(outcome.passed, "{:?}", outcome.report.verdict);

    let load = outcome.report.load().expect("a load trial");
    let causes: Vec<AttemptCause> = load.attempts.iter().map(|a| a.cause).collect();
    assert_eq!(causes, [AttemptCause::Repeat; 3]);
    for attempt in &load.attempts {
        assert_eq!(attempt.requests_ok, 6, "{attempt:?}");
    }
    // The summary pools the three runs: every request, over the three windows.
    assert_eq!(load.summary.requests_ok, 18);
    let windows: f64 = load.attempts.iter().map(|a| a.duration_s).sum();
    assert!((load.summary.duration_s - windows).abs() < 1e-9);
    let ids: Vec<u64> = outcome.records.iter().map(|r| r.id).collect();
    assert_eq!(ids, (0..18).collect::<Vec<_>>());
    // Each run's requests come after the earlier runs' windows.
    let mut before_ms = 0.0;
    for (run, attempt) in load.attempts.iter().enumerate() {
        let mine = &outcome.records[run * 6..run * 6 + 6];
        assert!(mine.iter().all(|r| r.send_ms >= before_ms), "run {run}");
        before_ms += attempt.duration_s * 1000.0;
    }

    // summary.json keeps the runs; the table shows them with their median and range, and so
    // does the redacted table (repeats are part of the case, not of what was measured).
    let json = std::fs::read_to_string(outcome.dir.join("summary.json")).expect("summary.json");
    let json: serde_json::Value = serde_json::from_str(&json).expect("parses");
    assert_eq!(json["attempts"].as_array().map(Vec::len), Some(3));
    assert_eq!(json["attempts"][1]["cause"], "repeat");
    let measured = table::render(&outcome.report, Numbers::Measured);
    assert!(measured.contains("### Runs"), "{measured}");
    assert!(
        measured.lines().any(|l| l.starts_with("| median")),
        "{measured}"
    );
    let redacted = table::render(&outcome.report, Numbers::Redacted);
    assert!(redacted.contains("### Runs"), "{redacted}");
    let first = format!("{:.3}", load.attempts[0].output_tok_s);
    assert!(measured.contains(&first), "{measured}");
    assert!(!redacted.contains(&first), "{redacted}");
}

#[test]
fn a_repeat_out_of_range_names_its_key() {
    let dir = CaseDir::named("repeat-range");
    let case = CASE.replace("repeat: 3", "repeat: 0");
    let found = dir.model("m", MODEL).case("r", &case).discover();
    let text = format!("{found:?}");
    assert!(text.contains("load.repeat"), "{text}");
    assert!(text.contains("between 1 and 100"), "{text}");
}
