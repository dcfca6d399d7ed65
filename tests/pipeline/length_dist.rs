//! Length distributions end to end on the embedded server: with `prompts.isl_dist` and
//! `osl_dist`, each request's prompt and output lengths are drawn within the distributions'
//! bounds (the records say so), the trial's name says the shape, and a distribution reaching
//! past the matrix's nominal length fails the trial naming the key.

use std::collections::BTreeSet;

use crate::support::CaseDir;

const CASE: &str = r#"name: spread
model: m
kinds: [perf]
server:
  embedded: { ttft_ms: 1, tpot_ms: 1, slots: 4 }
prompts:
  isl_dist: { dist: uniform, min: 16, max: 64 }
  osl_dist: { dist: normal, mean: 6, std: 2, min: 2, max: 8 }
load: { warmup: 2, timeout_s: 30 }
matrix:
  mode: custom
  isl: [64]
  osl: [8]
  concurrency: [2]
  prompts: { fixed: 40 }
"#;

#[test]
fn drawn_lengths_vary_within_their_bounds() {
    let dir = CaseDir::named("length-dist");
    let plan = dir
        .model("m", "name: m\nmax_context: 256\nmax_concurrency: 4\n")
        .case("spread", CASE)
        .plan();
    assert_eq!(
        plan.full_name(),
        "[perf] spread::isl64_osl8_c2_n40_isl16-64u_osl2-8n6s2"
    );
    let context = crate::support::context("length-dist", dir.out(), None);
    let outcome = crate::support::session(context)
        .run_trial(&plan)
        .expect("reports written");
    assert!(outcome.passed, "{:#?}", outcome.report.verdict);
    assert_eq!(outcome.records.len(), 40);
    // Words, plus 4 tokens of the embedded server's chat template for the one message.
    let prompts: Vec<u64> = outcome
        .records
        .iter()
        .map(|r| r.prompt_tokens.expect("counted") - 4)
        .collect();
    let outputs: Vec<u64> = outcome
        .records
        .iter()
        .map(|r| r.output_tokens.expect("counted"))
        .collect();
    assert!(prompts.iter().all(|n| (16..=64).contains(n)), "{prompts:?}");
    assert!(outputs.iter().all(|n| (2..=8).contains(n)), "{outputs:?}");
    let distinct = |v: &[u64]| v.iter().collect::<BTreeSet<_>>().len();
    assert!(distinct(&prompts) >= 15, "{prompts:?}");
    assert!(distinct(&outputs) >= 4, "{outputs:?}");
}

#[test]
fn a_distribution_past_the_nominal_length_fails_the_trial_naming_the_key() {
    let dir = CaseDir::named("length-dist-long");
    let plan = dir
        .model("m", "name: m\nmax_context: 256\nmax_concurrency: 4\n")
        .case("spread", &CASE.replace("isl: [64]", "isl: [32]"))
        .plan();
    let context = crate::support::context("length-dist-long", dir.out(), None);
    let outcome = crate::support::session(context)
        .run_trial(&plan)
        .expect("reports written");
    assert!(!outcome.passed);
    let reasons = outcome.report.verdict.failure_reasons();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("prompts.isl_dist reaches 64 tokens but the trial's ISL is 32")),
        "{reasons:?}"
    );
}

/// A histogram read from a CSV file beside the case: every prompt takes one of the file's
/// lengths, and the heavier one most often.
#[test]
fn a_histogram_file_gives_the_prompts_its_lengths() {
    let dir = CaseDir::named("length-dist-histogram");
    let case = CASE.replace(
        "isl_dist: { dist: uniform, min: 16, max: 64 }",
        "isl_dist: { dist: histogram, file: isl.csv }",
    );
    let plan = dir
        .model("m", "name: m\nmax_context: 256\nmax_concurrency: 4\n")
        .file("isl.csv", "length,count\n20,1\n48,4\n")
        .case("spread", &case)
        .plan();
    assert_eq!(
        plan.full_name(),
        "[perf] spread::isl64_osl8_c2_n40_isl20-48h2_osl2-8n6s2"
    );
    let context = crate::support::context("length-dist-histogram", dir.out(), None);
    let outcome = crate::support::session(context)
        .run_trial(&plan)
        .expect("reports written");
    assert!(outcome.passed, "{:#?}", outcome.report.verdict);
    let prompts: Vec<u64> = outcome
        .records
        .iter()
        .map(|r| r.prompt_tokens.expect("counted") - 4)
        .collect();
    assert!(prompts.iter().all(|n| *n == 20 || *n == 48), "{prompts:?}");
    let long = prompts.iter().filter(|n| **n == 48).count();
    assert!(long > prompts.len() / 2, "{prompts:?}");
}
