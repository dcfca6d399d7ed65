//! The `tool_calls` task end to end on the embedded server: a server whose tool calls carry
//! malformed arguments in 10 % of its answers scores 90 % (within the binomial bound), alone and
//! under load (a stress trial), streamed and not; every part of a call is reported.

use llm_stress::accuracy::summary::AccuracySummary;
use llm_stress::report::TrialBody;
use llm_stress::session::RunContext;

use crate::support::CaseDir;

/// Questions scored: enough that ±4 binomial standard deviations at 90 % stay within ±9 points.
const QUESTIONS: usize = 200;

fn case(kinds: &str, stream: bool) -> String {
    format!(
        r#"name: tools
model: m
kinds: [{kinds}]
api: chat
server:
  embedded: {{ ttft_ms: 1, tpot_ms: 0, slots: 32, answers: {{ correct: 0.9 }} }}
client: {{ stream: {stream} }}
load: {{ warmup: 0, duration: 2s, timeout_s: 30 }}
matrix:
  mode: custom
  isl: [16]
  osl: [8]
  concurrency: [4]
accuracy: {{ task: tool_calls, limit: {QUESTIONS}, concurrency: 8 }}
"#
    )
}

/// Runs the one trial of `kinds` and returns its accuracy summary, its trial folder and the
/// cases folder holding it (removed when dropped).
fn run(tag: &str, kinds: &str, stream: bool) -> (AccuracySummary, std::path::PathBuf, CaseDir) {
    let dir = CaseDir::named(tag);
    let plan = dir
        .model("m", "name: m\nmax_context: 4096\nmax_concurrency: 32\n")
        .case("tools", &case(kinds, stream))
        .plan();
    let context = RunContext {
        run_id: tag.into(),
        out_dir: dir.out(),
        url_override: None,
    };
    let outcome = crate::support::session(context)
        .run_trial(&plan)
        .expect("reports written");
    let summary = match &outcome.report.body {
        TrialBody::Accuracy(body) => body.accuracy.clone(),
        TrialBody::Load(body) => body.accuracy.clone(),
        TrialBody::Sim(_) => None,
    };
    (summary.expect("an accuracy summary"), outcome.dir, dir)
}

/// The score of `filter`, in points.
fn part(summary: &AccuracySummary, filter: &str) -> f64 {
    summary
        .filters
        .iter()
        .find(|f| f.filter == filter)
        .unwrap_or_else(|| panic!("no filter `{filter}` in {summary:?}"))
        .score
}

fn assert_ninety_percent(summary: &AccuracySummary) {
    assert_eq!(summary.n, QUESTIONS);
    assert_eq!(summary.errors, 0, "{summary:?}");
    assert_eq!(summary.judged_filter, "correct");
    let n = QUESTIONS as f64;
    let bound = 400.0 * (0.9 * 0.1 / n).sqrt();
    let score = summary.score().expect("a score");
    let parts: Vec<String> = summary
        .filters
        .iter()
        .map(|f| format!("{} {:.1}", f.filter, f.score))
        .collect();
    println!(
        "tool_calls over {} questions: {}",
        summary.n,
        parts.join(", ")
    );
    assert!(
        (score - 90.0).abs() <= bound,
        "score {score} not 90 ± {bound:.1}"
    );
    // A malformed call names the right function: only the argument parts drop.
    assert_eq!(part(summary, "function"), 100.0, "{summary:?}");
    for filter in ["valid-json", "schema", "values"] {
        assert_eq!(part(summary, filter), score, "{filter}: {summary:?}");
    }
}

#[test]
fn malformed_arguments_in_a_tenth_of_the_answers_score_ninety_percent() {
    let (summary, dir, _cases) = run("tools-accuracy", "accuracy", true);
    assert_ninety_percent(&summary);
    // Each question's call is in accuracy.jsonl as `NAME ARGUMENTS`, with every part.
    let lines = std::fs::read_to_string(dir.join("accuracy.jsonl")).expect("accuracy.jsonl");
    let first: serde_json::Value =
        serde_json::from_str(lines.lines().next().expect("a line")).expect("json");
    let response = first["response"].as_str().expect("response");
    let (name, arguments) = response.split_once(' ').expect("NAME ARGUMENTS");
    assert!(
        [
            "get_weather",
            "convert_currency",
            "set_timer",
            "search_flights"
        ]
        .contains(&name),
        "{first}"
    );
    assert!(arguments.starts_with('{'), "{first}");
    assert_eq!(
        first["correct"].as_object().map(|o| o.len()),
        Some(5),
        "{first}"
    );
}

#[test]
fn whole_answers_carry_their_tool_calls_too() {
    let (summary, _, _cases) = run("tools-whole", "accuracy", false);
    assert_ninety_percent(&summary);
}

#[test]
fn tool_accuracy_holds_under_load() {
    let (summary, _, _cases) = run("tools-load", "stress", true);
    assert_ninety_percent(&summary);
    assert!(summary.under_load.is_some(), "{summary:?}");
}
