//! A load bounded by time streams its records to `records.jsonl` while it runs
//! (`load::spool`): the trial's outcome keeps none of them in memory, the file holds every one,
//! and the summary streamed from them is the summary of the file's records.

use std::time::Duration;

use llm_stress::metrics::{RequestRecord, Summary};
use llm_stress::session::TrialOutcome;
use serde_json::Value;

use crate::support::{self, CaseDir};

const MODEL: &str = "name: m\nmax_context: 4096\nmax_concurrency: 64\n";

/// A case of `load` against the embedded server (two short streams at a time at most).
fn case(load: &str, extra: &str) -> String {
    format!(
        "name: s\nmodel: m\nkinds: [perf]\nserver:\n  embedded: {{ ttft_ms: 3, tpot_ms: 1, slots: 8 }}\n\
         matrix:\n  mode: custom\n  isl: [16]\n  osl: [8]\n  concurrency: [4]\n  prompts: {{ fixed: 16 }}\n\
         load: {load}\n{extra}"
    )
}

/// Runs the case's one trial with every time-bound load streamed; the folder lives as long
/// as the returned `CaseDir`.
fn run(tag: &str, case_yaml: &str) -> (CaseDir, TrialOutcome) {
    let dir = CaseDir::named(tag);
    let plan = dir.model("m", MODEL).case("s", case_yaml).plan();
    let session = support::session(support::context(tag, dir.out(), None))
        .stream_records_from(Duration::ZERO);
    let outcome = session.run_trial(&plan).expect("reports written");
    (dir, outcome)
}

fn read_records(outcome: &TrialOutcome) -> Vec<RequestRecord> {
    let text = std::fs::read_to_string(outcome.dir.join("records.jsonl")).expect("records.jsonl");
    text.lines()
        .map(|line| serde_json::from_str(line).expect("one whole record a line"))
        .collect()
}

/// Fields whose value is a sum of floating-point numbers added in completion order by the
/// stream and in id order by the fold: equal to 1e-9 relative. Every other field (counts,
/// percentiles, min, max, rates from counts) is equal exactly.
const SUMMED: [&str; 3] = ["mean", "std", "tput_user"];

fn same(streamed: &Value, folded: &Value, path: &str, differences: &mut Vec<String>) {
    match (streamed, folded) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let (x, y) = (
                    a.get(key).unwrap_or(&Value::Null),
                    b.get(key).unwrap_or(&Value::Null),
                );
                same(x, y, &format!("{path}.{key}"), differences);
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                same(x, y, &format!("{path}[{i}]"), differences);
            }
        }
        (Value::Number(x), Value::Number(y)) if x != y => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            let summed = SUMMED.iter().any(|k| path.ends_with(&format!(".{k}")));
            let close = (x - y).abs() <= 1e-9 * x.abs().max(y.abs());
            if !(summed && close) {
                differences.push(format!("{path}: streamed {x} vs {y}"));
            }
        }
        (x, y) if x != y => differences.push(format!("{path}: streamed {x} vs {y}")),
        _ => {}
    }
}

#[rstest::rstest]
#[case::closed_loop("{ warmup: 2, duration: 2s, timeout_s: 30 }", "")]
#[case::open_loop(
    "{ mode: open, rate: 150, arrival: poisson, duration: 2s, warmup: 0, timeout_s: 30 }",
    ""
)]
#[case::users(
    "{ mode: users, duration: 2s, ramp_up: 500ms, warmup: 0, timeout_s: 30 }",
    ""
)]
#[case::two_endpoints(
    "{ warmup: 0, duration: 2s, timeout_s: 30 }",
    "endpoints:\n  - { name: a, weight: 1, server: { embedded: { ttft_ms: 3, tpot_ms: 1, slots: 8 } } }\n  - { name: b, weight: 2, server: { embedded: { ttft_ms: 5, tpot_ms: 1, slots: 8 } } }\n"
)]
fn a_time_bound_load_streams_every_record_to_its_file(#[case] load: &str, #[case] extra: &str) {
    let tag = format!("spool-{}", load.len() + extra.len());
    let yaml = case(load, extra).replace(
        "server:\n  embedded: { ttft_ms: 3, tpot_ms: 1, slots: 8 }\n",
        if extra.is_empty() {
            "server:\n  embedded: { ttft_ms: 3, tpot_ms: 1, slots: 8 }\n"
        } else {
            ""
        },
    );
    let (_dir, outcome) = run(&tag, &yaml);
    assert!(outcome.passed, "{:?}", outcome.report.verdict);
    let spooled = outcome.spooled.as_ref().expect("the load streamed");
    // In memory: no record at all; the spool file went into the trial's folder.
    assert!(
        outcome.records.is_empty(),
        "{} records held",
        outcome.records.len()
    );
    assert!(!spooled.path.exists(), "moved: {}", spooled.path.display());

    let records = read_records(&outcome);
    let summary = &outcome.report.load().expect("a load trial").summary;
    let total = summary.requests_ok + summary.requests_failed;
    assert!(total > 50, "a real load: {total} requests");
    assert_eq!(records.len() as u64, total, "every record in the file");
    assert_eq!(spooled.records, total);
    let mut ids: Vec<u64> = records.iter().map(|r| r.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len() as u64, total, "each request once");

    // The streamed summary is the summary of the file's records.
    let mut by_id = records.clone();
    by_id.sort_by_key(|r| r.id);
    let folded = Summary::from_records(&by_id, summary.duration_s)
        .with_arrivals(summary.requested_rate, summary.dropped);
    let mut differences = Vec::new();
    same(
        &serde_json::to_value(summary).expect("json"),
        &serde_json::to_value(&folded).expect("json"),
        "summary",
        &mut differences,
    );
    assert!(differences.is_empty(), "{differences:#?}");
    let endpoints = &outcome.report.load().expect("load").endpoints;
    if !extra.is_empty() {
        assert_eq!(endpoints.len(), 2);
        for (i, endpoint) in endpoints.iter().enumerate() {
            let mine: Vec<RequestRecord> = by_id
                .iter()
                .filter(|r| r.endpoint as usize == i)
                .cloned()
                .collect();
            assert!(!mine.is_empty(), "endpoint {i} took requests");
            let folded = Summary::from_records(&mine, summary.duration_s);
            let mut differences = Vec::new();
            same(
                &serde_json::to_value(&endpoint.summary).expect("json"),
                &serde_json::to_value(&folded).expect("json"),
                &endpoint.name,
                &mut differences,
            );
            assert!(differences.is_empty(), "{differences:#?}");
        }
    }

    // windows.csv: every request once, as the fold over the file gives it.
    let windows = std::fs::read(outcome.dir.join("windows.csv")).expect("windows.csv");
    let windows = llm_stress::metrics::windows::from_csv(&windows).expect("reads");
    assert_eq!(windows.iter().map(|w| w.requests).sum::<u64>(), total);
    let width = llm_stress::metrics::windows::window_length(summary.duration_s);
    let expected = llm_stress::metrics::windows::windows(&by_id, summary.duration_s, width);
    assert_eq!(windows.len(), expected.len());
    assert_eq!(
        windows.iter().map(|w| w.requests).collect::<Vec<_>>(),
        expected.iter().map(|w| w.requests).collect::<Vec<_>>()
    );
    // Nothing is left of the run's spool folder.
    let folder = spooled.path.parent().expect("folder");
    assert!(!folder.exists(), "{} is gone", folder.display());
}

#[test]
fn a_load_bounded_by_its_request_count_keeps_its_records() {
    let (_dir, outcome) = run("spool-count", &case("{ warmup: 0, timeout_s: 30 }", ""));
    assert!(outcome.passed, "{:?}", outcome.report.verdict);
    assert!(outcome.spooled.is_none());
    assert_eq!(outcome.records.len(), 16);
}
