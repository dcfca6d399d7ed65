//! `load.trial_timeout`: the harness ends a load that runs past the trial's time limit by
//! itself, fails the trial with a check saying so, and keeps the requests it cut as timeouts
//! with that evidence, however many requests the case still asked for.

use std::time::Instant;

use llm_stress::load::CUT_OFF_NOTE;
use llm_stress::metrics::ErrorClass;

use crate::support::CaseDir;

/// Each request takes 40 × 100 ms = 4 s, and 20 of them two at a time would take 40 s: the
/// 1.5 s limit cuts the first two mid-stream and sends nothing after them.
const CASE: &str = r#"name: cut
model: m
kinds: [perf]
server:
  embedded: { ttft_ms: 10, tpot_ms: 100, slots: 2 }
load: { mode: closed, requests: 20, warmup: 0, timeout_s: 60, trial_timeout: 1500ms }
matrix:
  mode: custom
  isl: [16]
  osl: [40]
  concurrency: [2]
"#;

#[test]
fn a_load_past_its_time_limit_is_cut_there_and_fails_with_evidence() {
    let dir = CaseDir::named("trial-limit");
    let plan = dir
        .model("m", "name: m\nmax_context: 256\nmax_concurrency: 2\n")
        .case("cut", CASE)
        .plan();
    let context = crate::support::context("trial-limit", dir.out(), None);
    let started = Instant::now();
    let outcome = crate::support::session(context)
        .run_trial(&plan)
        .expect("reports written");
    let took = started.elapsed().as_secs_f64();
    assert!(!outcome.passed, "a cut-off trial fails");
    assert!(
        took < 6.0,
        "the load ends at its 1.5 s limit, not after its 40 s of requests: took {took:.1} s"
    );
    let reasons = outcome.report.verdict.failure_reasons().join("\n");
    assert!(
        reasons.contains("cut off at the trial's time limit of 1s 500ms")
            && reasons.contains("2 requests still running"),
        "{reasons}"
    );
    assert_eq!(outcome.records.len(), 2, "{:#?}", outcome.records);
    for record in &outcome.records {
        assert_eq!(record.error, Some(ErrorClass::Timeout));
        let detail = record.error_detail.as_deref().unwrap_or_default();
        assert!(detail.starts_with(CUT_OFF_NOTE), "{detail}");
        // Cut mid-stream: the chunks that had arrived are kept.
        assert!(!record.chunk_ms.is_empty(), "{record:#?}");
        // It ended at the limit, 1.5 s after the window began (both requests were sent at once).
        let ended = record.send_ms + record.e2el_ms.unwrap_or_default();
        assert!((1450.0..2500.0).contains(&ended), "{record:#?}");
    }
}
