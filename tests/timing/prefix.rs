//! A shared prefix on the embedded server with its prefix cache: the requests that share a
//! prefix already sent skip most of their prefill, and their TTFT shows it.

use crate::support::CaseDir;

/// 5 ms plus 200 µs per prompt token not in the cache: a cold prompt of 288 tokens takes
/// about 63 ms to its first token, one whose 256-token prefix is cached about 11 ms.
const CASE: &str = r#"name: prefix
model: m
kinds: [perf]
server:
  embedded: { ttft_ms: 5, tpot_ms: 1, prefill_us_per_token: 200, slots: 4, prefix_cache: true }
prompts: { prefix_tokens: 256, prefix_groups: 4 }
load: { warmup: 0, timeout_s: 30 }
matrix:
  mode: custom
  isl: [288]
  osl: [4]
  concurrency: [1]
  prompts: { fixed: 24 }
"#;

#[test]
fn shared_prefixes_answer_sooner_than_cold_ones() {
    let dir = CaseDir::named("prefix-ttft");
    let plan = dir
        .model("m", "name: m\nmax_context: 512\nmax_concurrency: 4\n")
        .case("prefix", CASE)
        .plan();
    let context = crate::support::context("prefix-ttft", dir.out(), None);
    let outcome = crate::support::session(context)
        .run_trial(&plan)
        .expect("reports written");
    let prefix = outcome
        .report
        .summary()
        .and_then(|s| s.prefix.clone())
        .expect("a prefix summary");
    let (cold, shared) = (
        prefix.cold_ttft_ms.expect("cold measured"),
        prefix.shared_ttft_ms.expect("shared measured"),
    );
    eprintln!(
        "cold TTFT mean {:.1} ms ({} requests), shared {:.1} ms ({}), ratio {:.3}",
        cold.mean,
        prefix.requests_cold,
        shared.mean,
        prefix.requests_shared,
        prefix.shared_over_cold.unwrap_or(f64::NAN)
    );
    assert!(cold.min > 55.0, "cold {cold:?}");
    assert!(shared.max < 30.0, "shared {shared:?}");
    assert!(prefix.shared_over_cold.is_some_and(|r| r < 0.5));
}
