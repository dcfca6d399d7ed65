//! The loglikelihood task `mmlu` end to end on the embedded server: each choice asked with
//! `echo` + `logprobs`, the score exactly what the server's answer key makes it (gated by a
//! threshold, passing and failing), the same as the generative task's on the same questions,
//! under load too; and a server that ignores `echo`/`logprobs` fails the trial with that reason.

use llm_stress::accuracy::summary::AccuracySummary;
use llm_stress::report::TrialBody;
use llm_stress::session::{RunContext, TrialOutcome};

use crate::support::{CaseDir, trial_names};

fn case(answers: &str, threshold: &str) -> String {
    format!(
        r#"name: ll
model: m
kinds: [accuracy, stress]
server:
  embedded: {{ ttft_ms: 1, tpot_ms: 0, slots: 16, answers: {answers} }}
load: {{ warmup: 0, duration: 2s, timeout_s: 30 }}
matrix: {{ mode: custom, isl: [16], osl: [4], concurrency: [2] }}
accuracy:
  - task: mmlu
    dataset: mmlu.jsonl
    concurrency: 4
    threshold: {threshold}
  - task: mmlu_generative
    dataset: mmlu.jsonl
"#
    )
}

/// Runs every trial of the case and returns the outcomes in plan order (accuracy `mmlu`,
/// accuracy `mmlu_generative`, the stress trial) and the cases folder (removed when dropped).
fn run(tag: &str, answers: &str, threshold: &str) -> (Vec<TrialOutcome>, CaseDir) {
    let dir = CaseDir::named(tag);
    let mmlu = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("stress-cases/data/mmlu_sample.jsonl"),
    )
    .expect("mmlu sample");
    dir.model("m", "name: m\nmax_context: 4096\nmax_concurrency: 16\n")
        .file("mmlu.jsonl", &mmlu)
        .case("ll", &case(answers, threshold));
    assert_eq!(
        trial_names(&dir.discover()),
        [
            "[accuracy] ll::mmlu",
            "[accuracy] ll::mmlu_generative",
            "[stress] ll::isl16_osl4_c2_2s",
        ]
    );
    let context = RunContext {
        run_id: tag.into(),
        out_dir: dir.out(),
        url_override: None,
    };
    let session = crate::support::session(context);
    let outcomes = dir
        .plans()
        .iter()
        .map(|plan| session.run_trial(plan).expect("reports written"))
        .collect();
    (outcomes, dir)
}

fn summary(outcome: &TrialOutcome) -> AccuracySummary {
    match &outcome.report.body {
        TrialBody::Accuracy(body) => body.accuracy.clone(),
        TrialBody::Load(body) => body.accuracy.clone(),
        TrialBody::Sim(_) => None,
    }
    .expect("an accuracy summary")
}

fn scores(summary: &AccuracySummary) -> Vec<(String, f64)> {
    summary
        .filters
        .iter()
        .map(|f| (f.filter.clone(), f.score))
        .collect()
}

fn reasons(outcome: &TrialOutcome) -> String {
    outcome
        .report
        .verdict
        .checks
        .iter()
        .map(|c| format!("{}: {}", c.name, c.reason))
        .collect::<Vec<_>>()
        .join(" | ")
}

#[test]
fn a_server_that_knows_every_answer_scores_100_and_passes_its_threshold() {
    let (outcomes, _dir) = run(
        "loglik-right",
        "{ correct: 1.0 }",
        "{ kind: absolute, expected_value: 100, tolerance: 1% }",
    );
    let mmlu = summary(&outcomes[0]);
    assert_eq!(
        (mmlu.task.as_str(), mmlu.n, mmlu.errors),
        ("mmlu", 20, 0),
        "{mmlu:?}"
    );
    assert_eq!(mmlu.judged_filter, "acc");
    assert_eq!(
        scores(&mmlu),
        [("acc".to_string(), 100.0), ("acc_norm".to_string(), 100.0)]
    );
    assert!(outcomes[0].passed, "{}", reasons(&outcomes[0]));
    // Each question's choices are in accuracy.jsonl with their loglikelihoods.
    let first = &outcomes[0].samples[0];
    let lls = first.loglikelihoods.as_ref().expect("loglikelihoods");
    let continuations: Vec<&str> = lls.iter().map(|c| c.continuation.as_str()).collect();
    assert_eq!(continuations, [" A", " B", " C", " D"]);
    assert_eq!(first.target, "C");
    assert_eq!(first.extracted.get("acc").map(String::as_str), Some("C"));
    assert!(lls[2].is_greedy && !lls[0].is_greedy, "{lls:?}");
    let lines = std::fs::read_to_string(outcomes[0].dir.join("accuracy.jsonl")).expect("jsonl");
    let line: serde_json::Value =
        serde_json::from_str(lines.lines().next().expect("a line")).expect("json");
    assert_eq!(line["loglikelihoods"][2]["continuation"], " C", "{line}");
    // Under load: the same questions asked while the load runs score the same.
    let under_load = summary(&outcomes[2]);
    assert_eq!((under_load.task.as_str(), under_load.n), ("mmlu", 20));
    assert_eq!(under_load.score(), Some(100.0));
    assert_eq!(under_load.baseline, Some(100.0));
    assert!(outcomes[2].passed, "{}", reasons(&outcomes[2]));
}

#[test]
fn a_server_that_is_always_wrong_scores_0_and_fails_its_threshold() {
    let (outcomes, _dir) = run(
        "loglik-wrong",
        "{ correct: 0.0 }",
        "{ kind: absolute, expected_value: 100, tolerance: 1% }",
    );
    let mmlu = summary(&outcomes[0]);
    assert_eq!(
        scores(&mmlu),
        [("acc".to_string(), 0.0), ("acc_norm".to_string(), 0.0)]
    );
    assert_eq!(mmlu.errors, 0);
    assert!(!outcomes[0].passed);
    assert!(
        reasons(&outcomes[0]).contains("accuracy mmlu/acc"),
        "{}",
        reasons(&outcomes[0])
    );
}

#[test]
fn the_loglikelihood_score_is_the_generative_score_of_the_same_server() {
    // With a 60 % chance, which questions the server gets right is fixed by a hash of each
    // question: both tasks ask the same questions and must agree on every one.
    let (outcomes, _dir) = run(
        "loglik-same",
        "{ correct: 0.6, seed: 7 }",
        "{ kind: absolute, expected_value: 60, tolerance: 50% }",
    );
    let (mmlu, generative) = (summary(&outcomes[0]), summary(&outcomes[1]));
    let score = generative.score().expect("a score");
    assert!(score > 0.0 && score < 100.0, "{generative:?}");
    assert_eq!(mmlu.score(), Some(score), "{mmlu:?} vs {generative:?}");
    let right = |o: &TrialOutcome, filter: &str| -> Vec<bool> {
        o.samples.iter().map(|s| s.correct[filter]).collect()
    };
    assert_eq!(right(&outcomes[0], "acc"), right(&outcomes[1], "letter"));
}

#[test]
fn a_server_without_logprobs_fails_the_trial_with_that_reason() {
    let (outcomes, _dir) = run(
        "loglik-none",
        "{ correct: 1.0, logprobs: false }",
        // A threshold any score passes: the trial fails for the missing logprobs alone.
        "{ kind: absolute, expected_value: 100, tolerance: 100% }",
    );
    let mmlu = summary(&outcomes[0]);
    assert_eq!((mmlu.n, mmlu.errors), (20, 20), "{mmlu:?}");
    assert!(!outcomes[0].passed);
    let reasons = reasons(&outcomes[0]);
    assert!(
        reasons.contains(
            "loglikelihood support: 20 of 20 questions got no loglikelihoods; the first: no \
             loglikelihood of \" A\": the response has no `logprobs`: the server does not \
             answer `echo` with `logprobs`"
        ),
        "{reasons}"
    );
    // The generative task on the same server is unaffected.
    assert!(outcomes[1].passed, "{}", self::reasons(&outcomes[1]));
    // Under load the stress trial fails for the same reason.
    assert!(!outcomes[2].passed);
    assert!(
        self::reasons(&outcomes[2]).contains("loglikelihood support"),
        "{}",
        self::reasons(&outcomes[2])
    );
}

#[test]
fn a_server_that_answers_with_an_http_error_fails_the_trial_with_it() {
    let dir = CaseDir::named("loglik-http");
    let mmlu = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("stress-cases/data/mmlu_sample.jsonl"),
    )
    .expect("mmlu sample");
    let plan = dir
        .model("m", "name: m\nmax_context: 4096\nmax_concurrency: 16\n")
        .file("mmlu.jsonl", &mmlu)
        .case(
            "ll",
            "name: ll\nmodel: m\nkinds: [accuracy]\nserver:\n  embedded: { ttft_ms: 1, tpot_ms: 0, \
             faults: { error_rate: 1.0, error_status: 404 } }\nmatrix: { mode: custom, isl: [16], osl: \
             [4], concurrency: [1] }\naccuracy: { task: mmlu, dataset: \
             mmlu.jsonl, limit: 3 }\n",
        )
        .plan();
    let context = RunContext {
        run_id: "loglik-http".into(),
        out_dir: dir.out(),
        url_override: None,
    };
    let outcome = crate::support::session(context)
        .run_trial(&plan)
        .expect("reports written");
    assert!(!outcome.passed);
    let reasons = reasons(&outcome);
    assert!(
        reasons.contains(
            "loglikelihood support: 3 of 3 questions got no loglikelihoods; the first: no \
             loglikelihood of \" A\": HTTP 404 Not Found"
        ),
        "{reasons}"
    );
    assert_eq!(summary(&outcome).score(), Some(0.0));
}
