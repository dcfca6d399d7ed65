//! `load.mode: consistency` on the embedded server with jitter: the same prompt sent one
//! request at a time measures the coefficient of variation the server was configured with,
//! within one percentage point, for TTFT and for the decode rate.

use llm_stress::report::table::{Numbers, render};

use crate::support::CaseDir;

/// 40 ms to the first token and 5 ms per token, each varying by 10 % (log-normal, seeded)
/// from request to request: a base large enough that the 1 ms timer tick and the loopback
/// round trip add little to the variation.
const CASE: &str = r#"name: same
model: m
kinds: [perf]
server:
  embedded: { ttft_ms: 40, tpot_ms: 5, slots: 1, ttft_jitter: 0.10, tpot_jitter: 0.10, jitter_seed: 11 }
load: { mode: consistency, requests: 300, warmup: 0, timeout_s: 30 }
matrix:
  mode: custom
  isl: [16]
  osl: [8]
  concurrency: [1]
"#;

#[test]
fn consistency_measures_the_configured_jitter_within_one_point() {
    let dir = CaseDir::named("consistency");
    let plan = dir
        .model("m", "name: m\nmax_context: 256\nmax_concurrency: 1\n")
        .case("same", CASE)
        .plan();
    assert_eq!(plan.full_name(), "[perf] same::isl16_osl8_same_n300");
    let context = crate::support::context("consistency", dir.out(), None);
    let outcome = crate::support::session(context)
        .run_trial(&plan)
        .expect("reports written");
    let summary = outcome.report.summary().expect("a load trial");
    assert_eq!(summary.requests_ok, 300, "{summary:#?}");
    let c = summary.consistency.expect("a consistency summary");
    let decode = c.decode_tok_s.expect("a decode rate");
    eprintln!(
        "TTFT {} ms, decode {} tok/s, reading: {}",
        c.ttft_ms.describe(),
        decode.describe(),
        c.reading.describe()
    );
    assert!(
        (c.ttft_ms.cv - 0.10).abs() <= 0.01,
        "TTFT CV {}",
        c.ttft_ms.cv
    );
    assert!((decode.cv - 0.10).abs() <= 0.01, "decode CV {}", decode.cv);
    assert!(
        (c.ttft_ms.mean - 40.0).abs() < 3.0,
        "TTFT mean {}",
        c.ttft_ms.mean
    );
    assert!(
        (decode.mean - 200.0).abs() < 15.0,
        "decode mean {}",
        decode.mean
    );
    let table = render(&outcome.report, Numbers::Measured);
    assert!(table.contains("### Consistency"), "{table}");
    assert!(table.contains("| mode "), "{table}");
}
