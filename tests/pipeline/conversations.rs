//! Multi-turn conversations (`prompts.sessions`) end to end on the embedded server with its
//! prefix cache: each conversation's turns carry the history (the prompts grow by the answer
//! and the next user message), the records say which conversation and turn they are,
//! `summary.json` carries the TTFT by turn, the table shows it, and the server's prefix
//! cache serves each history. (Whether later turns answer sooner is a measurement of time:
//! `tests/timing/conversations.rs`.)

use llm_stress::server_metrics::Reading;

use crate::support::CaseDir;

const CASE: &str = r#"name: conv
model: m
kinds: [perf]
server:
  embedded: { ttft_ms: 1, tpot_ms: 1, slots: 4, prefix_cache: true }
prompts:
  sessions: { turns: 3, user_tokens: 16, think_time: 5ms }
load: { warmup: 2, timeout_s: 30 }
matrix:
  mode: custom
  isl: [64]
  osl: [8]
  concurrency: [2]
  prompts: { fixed: 12 }
"#;

#[test]
fn conversations_carry_their_history_and_are_summarised_by_turn() {
    let dir = CaseDir::named("conversations");
    let plan = dir
        .model("m", "name: m\nmax_context: 512\nmax_concurrency: 4\n")
        .case("conv", CASE)
        .plan();
    assert_eq!(plan.full_name(), "[perf] conv::isl64_osl8_c2_n12_turns3u16");
    let context = crate::support::context("conversations", dir.out(), None);
    let outcome = crate::support::session(context)
        .run_trial(&plan)
        .expect("reports written");
    assert!(outcome.passed, "{:#?}", outcome.report.verdict);
    let turns: Vec<(u64, Option<u64>, Option<u32>)> = outcome
        .records
        .iter()
        .map(|r| (r.id, r.conversation, r.turn))
        .collect();
    let expected: Vec<(u64, Option<u64>, Option<u32>)> = (0..12)
        .map(|id| (id, Some(id / 3), Some(id as u32 % 3 + 1)))
        .collect();
    assert_eq!(turns, expected);
    // The embedded server counts words and 4 tokens per chat message: turn 1 is the 64-word
    // prompt; turn 2 adds the 8-word answer and a 16-word message; turn 3 the same again.
    let prompt_tokens: Vec<Option<u64>> = outcome.records.iter().map(|r| r.prompt_tokens).collect();
    let per_turn = [
        Some(64 + 4),
        Some(64 + 8 + 16 + 3 * 4),
        Some(64 + 2 * (8 + 16) + 5 * 4),
    ];
    let expected: Vec<Option<u64>> = (0..12).map(|i| per_turn[i % 3]).collect();
    assert_eq!(prompt_tokens, expected);
    assert!(
        outcome.records.iter().all(|r| r.text.is_none()),
        "the answers go into the history, not the records"
    );

    let summary = outcome.report.summary().expect("a load trial");
    let by_turn = summary.turns.as_ref().expect("a turn summary");
    assert_eq!(
        (by_turn.conversations, by_turn.conversations_completed),
        (4, 4)
    );
    let positions: Vec<(u32, u64)> = by_turn
        .by_turn
        .iter()
        .map(|p| (p.turn, p.requests))
        .collect();
    assert_eq!(positions, [(1, 4), (2, 4), (3, 4)]);
    assert!(by_turn.first_ttft_ms.is_some() && by_turn.later_ttft_ms.is_some());

    let json: serde_json::Value =
        serde_json::to_value(&outcome.report).expect("summary.json's form");
    assert_eq!(json["summary"]["turns"]["conversations"], 4);
    assert_eq!(json["summary"]["turns"]["by_turn"][2]["turn"], 3);
    assert!(json["summary"]["turns"]["by_turn"][0]["ttft_ms"]["p50"].is_number());

    // Turn 2 finds turn 1's prompt cached (64 words: 4 blocks of 16); turn 3 finds turn 2's
    // prompt cached (88 words: 5 whole blocks). The warmup's prompts are others.
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
        Some(Reading::Counter { increase, .. }) => assert_eq!(increase, 4.0 * (64.0 + 80.0)),
        other => panic!("no prefix-cache hits counter: {other:?}"),
    }
    let table = llm_stress::report::table::render(
        &outcome.report,
        llm_stress::report::table::Numbers::Measured,
    );
    assert!(
        table.contains("### Conversations (TTFT by turn)"),
        "{table}"
    );
    assert!(table.contains("| turn 3"), "{table}");
}

#[test]
fn a_duration_ends_conversations_under_way() {
    let dir = CaseDir::named("conversations-duration");
    let case = CASE
        .replace("think_time: 5ms", "think_time: 400ms")
        .replace("timeout_s: 30", "timeout_s: 30, duration: 200ms");
    let plan = dir
        .model("m", "name: m\nmax_context: 512\nmax_concurrency: 4\n")
        .case("conv", &case)
        .plan();
    let context = crate::support::context("conversations-duration", dir.out(), None);
    let outcome = crate::support::session(context)
        .run_trial(&plan)
        .expect("reports written");
    assert!(outcome.passed, "{:#?}", outcome.report.verdict);
    // Two workers each send turn 1, think past the deadline, and send nothing more.
    let turns: Vec<Option<u32>> = outcome.records.iter().map(|r| r.turn).collect();
    assert_eq!(turns, [Some(1), Some(1)]);
    let summary = outcome.report.summary().expect("a load trial");
    let by_turn = summary.turns.as_ref().expect("a turn summary");
    assert_eq!(
        (by_turn.conversations, by_turn.conversations_completed),
        (2, 0),
        "both were cut by the duration before their second turn"
    );
    let ends: Vec<_> = outcome.records.iter().map(|r| r.session_end).collect();
    assert_eq!(ends, [Some(llm_stress::metrics::SessionEnd::Cut); 2]);
}
