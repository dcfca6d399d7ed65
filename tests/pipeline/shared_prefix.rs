//! Shared prefixes end to end on the embedded server with its prefix cache: every request's
//! prompt begins with one of the groups' prefixes, the record says which and whether it was
//! the group's first (cold), `summary.json` carries the cold-against-shared split, and the
//! server's prefix-cache counters are scraped. (Whether shared prefixes answer sooner is a
//! measurement of time: `tests/timing/prefix.rs`.)

use llm_stress::server_metrics::Reading;

use crate::support::CaseDir;

const CASE: &str = r#"name: prefix
model: m
kinds: [perf]
server:
  embedded: { ttft_ms: 1, tpot_ms: 1, slots: 4, prefix_cache: true }
prompts: { prefix_tokens: 64, prefix_groups: 4 }
load: { warmup: 2, timeout_s: 30 }
matrix:
  mode: custom
  isl: [80]
  osl: [4]
  concurrency: [2]
  prompts: { fixed: 12 }
"#;

#[test]
fn shared_prefix_requests_are_grouped_marked_and_summarised() {
    let dir = CaseDir::named("shared-prefix");
    let plan = dir
        .model("m", "name: m\nmax_context: 256\nmax_concurrency: 4\n")
        .case("prefix", CASE)
        .plan();
    // The trial's name is what it was without a shared prefix.
    assert_eq!(plan.full_name(), "[perf] prefix::isl80_osl4_c2_n12");
    let context = crate::support::context("shared-prefix", dir.out(), None);
    let outcome = crate::support::session(context)
        .run_trial(&plan)
        .expect("reports written");
    assert!(outcome.passed, "{:#?}", outcome.report.verdict);
    let groups: Vec<Option<u32>> = outcome.records.iter().map(|r| r.prefix_group).collect();
    let expected: Vec<Option<u32>> = (0..12).map(|i| Some(i % 4)).collect();
    assert_eq!(groups, expected);
    assert_eq!(outcome.records.iter().filter(|r| r.prefix_cold).count(), 4);
    // 80 words, and 4 tokens of the embedded server's chat template for the one message.
    assert!(
        outcome.records.iter().all(|r| r.prompt_tokens == Some(84)),
        "{:?}",
        outcome
            .records
            .iter()
            .map(|r| r.prompt_tokens)
            .collect::<Vec<_>>()
    );

    let summary = outcome.report.summary().expect("a load trial");
    let prefix = summary.prefix.as_ref().expect("a prefix summary");
    assert_eq!(
        (prefix.groups, prefix.requests_cold, prefix.requests_shared),
        (4, 4, 8)
    );
    assert!(prefix.cold_ttft_ms.is_some() && prefix.shared_ttft_ms.is_some());

    let json: serde_json::Value =
        serde_json::to_value(&outcome.report).expect("summary.json's form");
    assert_eq!(json["summary"]["prefix"]["requests_cold"], 4);

    // 8 shared requests × 64 cached tokens (4 blocks of 16); the warmup's prompts have
    // prefixes of their own, so they hit nothing the measured requests sent.
    let hits = outcome
        .report
        .load()
        .expect("a load trial")
        .server_metrics
        .iter()
        .flat_map(|s| &s.metrics)
        .find(|m| m.name == "vllm:prefix_cache_hits_total")
        .map(|m| m.reading);
    match hits {
        Some(Reading::Counter { increase, .. }) => assert_eq!(increase, 512.0),
        other => panic!("no prefix-cache hits counter: {other:?}"),
    }
    let table = llm_stress::report::table::render(
        &outcome.report,
        llm_stress::report::table::Numbers::Measured,
    );
    assert!(table.contains("### Shared prefix"), "{table}");
    assert!(table.contains("prefix cache hits (tokens)"), "{table}");
}

#[test]
fn a_prefix_as_long_as_the_prompt_fails_the_trial_naming_the_key() {
    let dir = CaseDir::named("long-prefix");
    let plan = dir
        .model("m", "name: m\nmax_context: 256\nmax_concurrency: 4\n")
        .case(
            "prefix",
            &CASE.replace("prefix_tokens: 64", "prefix_tokens: 80"),
        )
        .plan();
    let context = crate::support::context("long-prefix", dir.out(), None);
    let outcome = crate::support::session(context)
        .run_trial(&plan)
        .expect("reports written");
    assert!(!outcome.passed);
    let reasons = outcome.report.verdict.failure_reasons();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("prompts.prefix_tokens is 80 but the ISL is 80")),
        "{reasons:?}"
    );
}
