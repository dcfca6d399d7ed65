//! Sessions mode (`load.mode: sessions`) end to end on the embedded server: sessions arrive on
//! a fixed schedule, each runs the turns its profile draws, every later turn carries the
//! history, so the prompt (the context) grows with the turn position and, without a prefix
//! cache, so does the prefill and with it the TTFT. A session whose next turn would not fit
//! the model's context ends cleanly and is counted, not failed.

use std::collections::BTreeMap;

use llm_stress::metrics::{RequestRecord, SessionEnd};

use crate::support::CaseDir;

/// 20 sessions a second, evenly spaced, for 1.5 s: 30 sessions of 8 to 15 turns. The embedded
/// server has no prefix cache and prefills at 500 µs a token, so a turn's TTFT grows with its
/// prompt.
const CASE: &str = r#"name: sess
model: m
kinds: [perf]
server:
  embedded: { ttft_ms: 2, tpot_ms: 1, slots: 64, prefill_us_per_token: 500 }
prompts:
  sessions: { user_tokens: 8, think_time: 1ms }
load: { mode: sessions, profile: long, rate: 20, arrival: constant, duration: 1500ms, warmup: 0, timeout_s: 30 }
matrix:
  mode: custom
  isl: [32]
  osl: [4]
  concurrency: [1]
"#;

/// Each conversation's records, by turn.
fn by_conversation(records: &[RequestRecord]) -> BTreeMap<u64, Vec<&RequestRecord>> {
    let mut sessions: BTreeMap<u64, Vec<&RequestRecord>> = BTreeMap::new();
    for record in records {
        let conversation = record
            .conversation
            .expect("every record is a session's turn");
        sessions.entry(conversation).or_default().push(record);
    }
    for turns in sessions.values_mut() {
        turns.sort_by_key(|r| r.turn);
    }
    sessions
}

#[test]
fn a_long_profile_run_reports_sessions_turns_and_ttft_rising_with_the_turn() {
    let dir = CaseDir::named("sessions-long");
    let plan = dir
        .model("m", "name: m\nmax_context: 4096\nmax_concurrency: 64\n")
        .case("sess", CASE)
        .plan();
    assert_eq!(
        plan.full_name(),
        "[perf] sess::isl32_osl4_sr20_1500ms_u8_long"
    );
    let context = crate::support::context("sessions-long", dir.out(), None);
    let outcome = crate::support::session(context)
        .run_trial(&plan)
        .expect("reports written");
    assert!(outcome.passed, "{:#?}", outcome.report.verdict);

    let sessions = by_conversation(&outcome.records);
    assert_eq!(
        sessions.keys().copied().collect::<Vec<_>>(),
        (0..30).collect::<Vec<_>>(),
        "every scheduled session started"
    );
    for (conversation, turns) in &sessions {
        let positions: Vec<u32> = turns.iter().filter_map(|r| r.turn).collect();
        let expected: Vec<u32> = (1..=turns.len() as u32).collect();
        assert_eq!(
            positions, expected,
            "session {conversation}'s turns in order"
        );
        assert!(turns.len() <= 15, "session {conversation}: {}", turns.len());
        let ends: Vec<SessionEnd> = turns.iter().filter_map(|r| r.session_end).collect();
        assert_eq!(ends.len(), 1, "one end, on the last turn sent");
        assert_eq!(turns.last().and_then(|r| r.session_end), Some(ends[0]));
        match ends[0] {
            SessionEnd::Completed => assert!((8..=15).contains(&turns.len())),
            SessionEnd::Cut => {}
            other => panic!("session {conversation} ended {other:?}"),
        }
        // Turn 1 is a scheduled arrival: 50 ms apart from the window's start.
        let intended = turns[0]
            .intended_ms
            .expect("turn 1 keeps its intended send");
        assert!(
            (intended - *conversation as f64 * 50.0).abs() < 1.0,
            "session {conversation} intended at {intended} ms"
        );
    }
    let completed = sessions
        .values()
        .filter(|t| t.last().and_then(|r| r.session_end) == Some(SessionEnd::Completed))
        .count() as u64;
    assert!(completed >= 5, "{completed} sessions completed");

    let summary = outcome.report.summary().expect("a load trial");
    let turns = summary.turns.as_ref().expect("a turn summary");
    assert_eq!(turns.conversations, 30);
    assert_eq!(turns.conversations_completed, completed);
    assert_eq!(
        turns.by_turn.iter().map(|p| p.requests).sum::<u64>(),
        outcome.records.len() as u64
    );
    // The context grows with every turn: the answer and the next message are added.
    let context: Vec<f64> = turns
        .by_turn
        .iter()
        .filter_map(|p| p.prompt_tokens_mean)
        .collect();
    assert!(context.len() >= 8, "{context:?}");
    assert!(context.windows(2).all(|w| w[1] > w[0]), "{context:?}");
    // And so does the prefill: turn 8's prompt is about 140 tokens longer than turn 1's, 70 ms
    // of prefill at 500 µs a token.
    let p50 = |turn: u32| {
        turns
            .by_turn
            .iter()
            .find(|p| p.turn == turn)
            .and_then(|p| p.ttft_ms.as_ref())
            .map(|d| d.p50)
            .expect("a TTFT at this turn")
    };
    assert!(
        p50(8) > p50(1) + 30.0,
        "turn 1 {} ms, turn 8 {} ms",
        p50(1),
        p50(8)
    );
    assert!(turns.later_over_first_p50.is_some_and(|r| r > 1.0));

    let table = llm_stress::report::table::render(
        &outcome.report,
        llm_stress::report::table::Numbers::Measured,
    );
    assert!(
        table.contains("### Conversations (TTFT by turn)"),
        "{table}"
    );
    assert!(table.contains("| turn 8"), "{table}");
    assert!(table.contains("20 sessions/s"), "{table}");
}

#[test]
fn a_session_that_would_overflow_the_context_ends_cleanly_and_is_counted() {
    let dir = CaseDir::named("sessions-context");
    let case = CASE
        .replace("prefill_us_per_token: 500", "prefill_us_per_token: 0")
        .replace("rate: 20", "rate: 10")
        .replace("duration: 1500ms", "duration: 1s");
    // Chat prompts count words and 4 tokens a message: turn k's prompt is 36 + 20 (k − 1)
    // tokens. After turn 7 (156 tokens, 4 answered), turn 8 would need 156 + 4 + 8 + 4 = 172
    // tokens of a 160-token context.
    let plan = dir
        .model("m", "name: m\nmax_context: 160\nmax_concurrency: 64\n")
        .case("sess", &case)
        .plan();
    let context = crate::support::context("sessions-context", dir.out(), None);
    let outcome = crate::support::session(context)
        .run_trial(&plan)
        .expect("reports written");
    assert!(outcome.passed, "{:#?}", outcome.report.verdict);
    assert!(outcome.records.iter().all(|r| r.is_ok()), "nothing failed");
    let sessions = by_conversation(&outcome.records);
    assert_eq!(sessions.len(), 10);
    let full = sessions
        .values()
        .filter(|t| t.last().and_then(|r| r.session_end) == Some(SessionEnd::ContextFull))
        .count() as u64;
    assert!(full >= 8, "{full} sessions ended at the context");
    for turns in sessions.values() {
        assert!(turns.len() <= 7, "{} turns", turns.len());
        if turns.last().and_then(|r| r.session_end) == Some(SessionEnd::ContextFull) {
            assert_eq!(turns.len(), 7);
            assert!(turns[6].prompt_tokens.is_some_and(|p| p <= 160));
        }
    }
    let summary = outcome.report.summary().expect("a load trial");
    let turns = summary.turns.as_ref().expect("a turn summary");
    assert_eq!(turns.conversations_context_full, full);
    let table = llm_stress::report::table::render(
        &outcome.report,
        llm_stress::report::table::Numbers::Measured,
    );
    assert!(table.contains("ended at max_context"), "{table}");
}

/// Three ShareGPT conversations of 2, 3 and 1 exchanges (word counts in the names).
fn sharegpt_conversations() -> String {
    let turn = |from: &str, value: &str| serde_json::json!({"from": from, "value": value});
    serde_json::json!([
        {"id": "two", "conversations": [
            turn("human", "alpha beta gamma"), turn("gpt", "one two three four five"),
            turn("human", "delta epsilon"), turn("gpt", "six seven eight"),
        ]},
        {"id": "none", "conversations": [turn("gpt", "an orphan reply")]},
        {"id": "three", "conversations": [
            turn("system", "be brief"),
            turn("human", "zeta"), turn("gpt", "a b"),
            turn("human", "eta theta"), turn("gpt", "c d e f"),
            turn("human", "iota kappa lambda mu"), turn("gpt", "g"),
        ]},
        {"id": "one", "conversations": [turn("human", "nu xi"), turn("gpt", "h i j")]},
    ])
    .to_string()
}

/// A closed loop replaying ShareGPT conversations: each conversation sends its own human
/// messages in order, each turn asking for as many tokens as the dataset's reply had, and
/// carrying the history (earlier messages and the model's actual answers).
const REPLAY: &str = r#"name: replay
model: m
kinds: [perf]
server:
  embedded: { ttft_ms: 2, tpot_ms: 1, slots: 4 }
prompts:
  source: sharegpt
  path: conversations.json
  sessions: { think_time: 1ms }
load: { warmup: 0, timeout_s: 30 }
matrix:
  mode: custom
  isl: [16]
  osl: [8]
  concurrency: [1]
  prompts: { fixed: 9 }
"#;

#[test]
fn sharegpt_conversations_are_replayed_turn_by_turn() {
    let dir = CaseDir::named("sessions-replay");
    let plan = dir
        .model("m", "name: m\nmax_context: 4096\nmax_concurrency: 4\n")
        .file("conversations.json", &sharegpt_conversations())
        .case("replay", REPLAY)
        .plan();
    assert_eq!(plan.full_name(), "[perf] replay::isl16_osl8_c1_n9_replay");
    let context = crate::support::context("sessions-replay", dir.out(), None);
    let outcome = crate::support::session(context)
        .run_trial(&plan)
        .expect("reports written");
    assert!(outcome.passed, "{:#?}", outcome.report.verdict);
    assert!(outcome.records.iter().all(|r| r.is_ok()), "nothing failed");

    // 9 requests in blocks of the longest conversation (3 turns): conversations 0, 1 and 2,
    // replaying the dataset's three usable conversations in order (the orphan reply is
    // skipped).
    let sessions = by_conversation(&outcome.records);
    let turns: Vec<usize> = sessions.values().map(Vec::len).collect();
    assert_eq!(turns, [2, 3, 1], "each conversation has its own exchanges");
    for turns in sessions.values() {
        assert_eq!(
            turns.last().and_then(|r| r.session_end),
            Some(SessionEnd::Completed)
        );
    }
    // Each turn asks for the length of the dataset's reply (the embedded server answers
    // exactly that many tokens), and its prompt is every message so far: the words of the
    // human messages and of the answers, and 4 tokens a message.
    let outputs =
        |c: u64| -> Vec<Option<u64>> { sessions[&c].iter().map(|r| r.output_tokens).collect() };
    assert_eq!(outputs(0), [Some(5), Some(3)]);
    assert_eq!(outputs(1), [Some(2), Some(4), Some(1)]);
    assert_eq!(outputs(2), [Some(3)]);
    let prompts =
        |c: u64| -> Vec<Option<u64>> { sessions[&c].iter().map(|r| r.prompt_tokens).collect() };
    assert_eq!(prompts(0), [Some(3 + 4), Some(3 + 5 + 2 + 3 * 4)]);
    assert_eq!(
        prompts(1),
        [
            Some(1 + 4),
            Some(1 + 2 + 2 + 3 * 4),
            Some(1 + 2 + 2 + 4 + 4 + 5 * 4)
        ]
    );

    let summary = outcome.report.summary().expect("a load trial");
    let by_turn = &summary.turns.as_ref().expect("a turn summary").by_turn;
    assert_eq!(
        by_turn.iter().map(|p| p.requests).collect::<Vec<_>>(),
        [3, 2, 1]
    );
}

#[test]
fn sessions_mode_replays_sharegpt_conversations_as_they_arrive() {
    let dir = CaseDir::named("sessions-replay-arrive");
    let case = REPLAY
        .replace(
            "load: { warmup: 0, timeout_s: 30 }",
            "load: { mode: sessions, rate: 20, arrival: constant, duration: 190ms, warmup: 0, timeout_s: 30 }",
        )
        .replace("  prompts: { fixed: 9 }\n", "");
    let plan = dir
        .model("m", "name: m\nmax_context: 4096\nmax_concurrency: 4\n")
        .file("conversations.json", &sharegpt_conversations())
        .case("replay", &case)
        .plan();
    assert_eq!(
        plan.full_name(),
        "[perf] replay::isl16_osl8_sr20_190ms_replay"
    );
    let context = crate::support::context("sessions-replay-arrive", dir.out(), None);
    let outcome = crate::support::session(context)
        .run_trial(&plan)
        .expect("reports written");
    assert!(outcome.passed, "{:#?}", outcome.report.verdict);
    // Sessions at 0, 50, 100 and 150 ms replay conversations 0, 1, 2 and 0 again; a session
    // still running at 190 ms sends no further turn.
    let sessions = by_conversation(&outcome.records);
    assert_eq!(sessions.keys().copied().collect::<Vec<_>>(), [0, 1, 2, 3]);
    let outputs: Vec<Vec<Option<u64>>> = sessions
        .values()
        .map(|turns| turns.iter().map(|r| r.output_tokens).collect())
        .collect();
    assert_eq!(outputs[0], [Some(5), Some(3)]);
    assert_eq!(outputs[1], [Some(2), Some(4), Some(1)]);
    assert_eq!(outputs[2], [Some(3)]);
    assert_eq!(
        outputs[3].first(),
        Some(&Some(5)),
        "the first conversation again"
    );
}
