//! Multi-turn conversations on the embedded server: with its prefix cache on, a later turn
//! finds the conversation so far cached and prefills only the last answer and the new user
//! message, so its TTFT is lower than turn 1's; with the cache off it prefills the whole,
//! longer history, and its TTFT is not lower.

use rstest::rstest;

use crate::support::CaseDir;

/// 5 ms plus 200 µs per prompt token not in the cache. Turn 1: a 256-token prompt (about
/// 57 ms). Turn k: the history (256 + (k−1) × (4 + 16) words) plus a 16-token message: with
/// the cache about 12–14 ms, without it 63 ms and more.
const CASE: &str = r#"name: conv
model: m
kinds: [perf]
server:
  embedded: { ttft_ms: 5, tpot_ms: 1, prefill_us_per_token: 200, slots: 4, prefix_cache: CACHE }
prompts:
  sessions: { turns: 4, user_tokens: 16 }
load: { warmup: 0, timeout_s: 30 }
matrix:
  mode: custom
  isl: [256]
  osl: [4]
  concurrency: [1]
  prompts: { fixed: 32 }
"#;

#[rstest]
#[case::cached(true)]
#[case::uncached(false)]
fn later_turns_answer_sooner_only_with_the_history_cached(#[case] cache: bool) {
    let name = format!("conv-ttft-{cache}");
    let dir = CaseDir::named(&name);
    let plan = dir
        .model("m", "name: m\nmax_context: 1024\nmax_concurrency: 4\n")
        .case("conv", &CASE.replace("CACHE", &cache.to_string()))
        .plan();
    let context = crate::support::context(&name, dir.out(), None);
    let outcome = crate::support::session(context)
        .run_trial(&plan)
        .expect("reports written");
    assert!(outcome.passed, "{:#?}", outcome.report.verdict);
    let turns = outcome
        .report
        .summary()
        .and_then(|s| s.turns.clone())
        .expect("a turn summary");
    let (first, later) = (
        turns.first_ttft_ms.expect("turn 1 measured"),
        turns.later_ttft_ms.expect("later turns measured"),
    );
    eprintln!(
        "prefix cache {cache}: turn 1 TTFT p50 {:.1} ms ({}), turns ≥ 2 p50 {:.1} ms ({}), ratio {:.3}",
        first.p50,
        first.count,
        later.p50,
        later.count,
        turns.later_over_first_p50.unwrap_or(f64::NAN)
    );
    assert_eq!((first.count, later.count), (8, 24));
    if cache {
        assert!(later.p50 < first.p50, "turn 1 {first:?}, later {later:?}");
        assert!(
            later.p50 < 0.5 * first.p50,
            "turn 1 {first:?}, later {later:?}"
        );
    } else {
        assert!(later.p50 >= first.p50, "turn 1 {first:?}, later {later:?}");
    }
}
