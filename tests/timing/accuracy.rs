//! The accuracy phase end to end against the embedded server's answer mode: scores are what
//! the server was told to get right, every question leaves its evidence, and a server whose
//! answers get worse under load passes its accuracy trial and fails its stress trial.

use std::path::Path;

use llm_stress::accuracy::summary::ScoredSample;
use llm_stress::judge::Status;
use llm_stress::plan::TrialPlan;
use llm_stress::session::{RunContext, TrialOutcome};

use crate::support::CaseDir;

/// A cases folder holding one case (`case_yaml` after `name: c`, `model: m`), with the
/// repository's GSM8K copy reachable as `gsm8k/`.
fn cases(tag: &str, case_yaml: &str) -> CaseDir {
    let gsm8k = Path::new(env!("CARGO_MANIFEST_DIR")).join("stress-cases/data/gsm8k");
    let dir = CaseDir::named(&format!("accuracy-{tag}"));
    dir.model("m", "name: m\nmax_context: 4096\nmax_concurrency: 32\n")
        .case(
            "c",
            &format!(
                "name: c\nmodel: m\n{}",
                case_yaml.replace("GSM8K", &gsm8k.display().to_string())
            ),
        );
    dir
}

fn plans(dir: &CaseDir) -> Vec<TrialPlan> {
    dir.plans()
}

fn context(dir: &CaseDir) -> RunContext {
    RunContext {
        run_id: "accuracy-run".into(),
        out_dir: dir.out(),
        url_override: None,
    }
}

fn samples(outcome: &TrialOutcome) -> Vec<ScoredSample> {
    std::fs::read_to_string(outcome.dir.join("accuracy.jsonl"))
        .expect("accuracy.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("sample"))
        .collect()
}

#[test]
fn a_server_that_knows_the_answers_scores_what_it_was_told_on_every_api() {
    for (api, stream) in [
        ("completions", true),
        ("chat", true),
        ("chat", false),
        ("llama_cpp", true),
    ] {
        let dir = cases(
            &format!("apis-{api}-{stream}"),
            &format!(
                "kinds: [accuracy]\napi: {api}\nclient: {{ stream: {stream} }}\n\
                 server:\n  embedded: {{ ttft_ms: 1, tpot_ms: 0, slots: 8, answers: {{ correct: 0.5, seed: 11 }} }}\n\
                 matrix: {{ mode: single }}\n\
                 accuracy:\n  task: gsm8k\n  dataset: GSM8K\n  limit: 60\n  concurrency: 4\n"
            ),
        );
        let plans = plans(&dir);
        assert_eq!(plans.len(), 1, "one accuracy trial per case");
        assert_eq!(plans[0].name(), "c::gsm8k_n60");
        let outcome = crate::support::session(context(&dir))
            .run_trial(&plans[0])
            .expect("reports");
        let detail = outcome.report.accuracy().cloned().expect("accuracy ran");
        assert_eq!((detail.n, detail.errors), (60, 0), "{api}");
        let scored = samples(&outcome);
        assert_eq!(scored.len(), 60);
        // The server answers right with probability 0.5, decided per question: the two
        // filters agree on every answer (right replies end `#### N`, wrong ones `#### N+1`).
        let right = scored.iter().filter(|s| s.correct["strict-match"]).count();
        assert!((15..=45).contains(&right), "{api}: {right} of 60");
        for sample in &scored {
            assert_eq!(
                sample.correct["strict-match"], sample.correct["flexible-extract"],
                "{sample:?}"
            );
            assert!(sample.prompt_excerpt.ends_with("Answer:"), "{sample:?}");
            assert!(sample.response.contains("#### "), "{sample:?}");
        }
        let score = 100.0 * right as f64 / 60.0;
        assert_eq!(outcome.report.accuracy_score(), Some(score), "{api}");
        // No threshold: the accuracy check says so and does not pass or fail the trial.
        assert_eq!(outcome.report.verdict.status, Status::NotApplicable);
    }
}

#[test]
fn the_same_questions_get_the_same_answers_in_every_run() {
    let yaml = "kinds: [accuracy]\napi: completions\n\
                server:\n  embedded: { ttft_ms: 1, tpot_ms: 0, slots: 8, answers: { correct: 0.7 } }\n\
                matrix: { mode: single }\n\
                accuracy:\n  task: synthetic_arithmetic\n  limit: 50\n  concurrency: 8\n";
    let scores: Vec<Vec<bool>> = (0..2)
        .map(|run| {
            let dir = cases(&format!("repeat-{run}"), yaml);
            let outcome = crate::support::session(context(&dir))
                .run_trial(&plans(&dir)[0])
                .expect("reports");
            samples(&outcome)
                .iter()
                .map(|s| s.correct["first-number"])
                .collect()
        })
        .collect();
    assert_eq!(scores[0], scores[1]);
    let right = scores[0].iter().filter(|&&r| r).count();
    assert!((25..=45).contains(&right), "{right} of 50 at a 0.7 chance");
}

#[test]
fn answers_that_get_worse_under_load_fail_the_load_trial_but_not_the_accuracy_trial() {
    // Right every time with up to 4 requests in the server, one time in five from 12 on.
    let dir = cases(
        "degrade",
        "kinds: [accuracy, perf, stress]\napi: completions\n\
         server:\n  embedded: { ttft_ms: 2, tpot_ms: 1, slots: 32, answers: { correct: { 4: 1.0, 12: 0.2 } } }\n\
         matrix: { mode: custom, isl: [32], osl: [32], concurrency: [16] }\n\
         load: { duration: 3s, warmup: 0 }\n\
         slo:\n  - error_rate < 0.01\n\
         accuracy:\n  task: gsm8k\n  dataset: GSM8K\n  limit: 40\n  concurrency: 4\n  \
         threshold: { kind: absolute, expected_value: 100%, tolerance: 10% }\n",
    );
    let plans = plans(&dir);
    let names: Vec<String> = plans.iter().map(TrialPlan::full_name).collect();
    assert_eq!(
        names,
        [
            "[accuracy] c::gsm8k_n40",
            "[perf] c::isl32_osl32_c16_3s",
            "[stress] c::isl32_osl32_c16_3s",
        ],
        "the accuracy trial comes first"
    );
    let ctx = context(&dir);
    // One session per trial, as nextest runs them (one process each): the stress trial finds
    // the accuracy trial's score in the run's results.csv.
    let outcomes: Vec<TrialOutcome> = plans
        .iter()
        .map(|p| {
            crate::support::session(ctx.clone())
                .run_trial(p)
                .expect("reports")
        })
        .collect();
    let (accuracy, perf, stress) = (&outcomes[0], &outcomes[1], &outcomes[2]);

    assert!(accuracy.passed, "{:#?}", accuracy.report.verdict);
    assert_eq!(accuracy.report.accuracy_score(), Some(100.0));
    assert!(perf.passed, "{:#?}", perf.report.verdict);

    assert!(!stress.passed);
    let failed: Vec<&str> = stress
        .report
        .verdict
        .checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        failed,
        ["accuracy gsm8k/strict-match"],
        "only accuracy fails"
    );
    let detail = stress.report.accuracy().expect("accuracy ran");
    assert_eq!(
        detail.under_load,
        Some(40),
        "every answer came back under load"
    );
    assert_eq!(detail.baseline, Some(100.0), "the accuracy trial's score");
    let under_load = detail.score().expect("score");
    assert!(under_load < 50.0, "{under_load}");
    assert_eq!(stress.report.accuracy_threshold(), Some(90.0));
    assert!(stress.dir.join("accuracy.jsonl").is_file());
    assert!(stress.dir.join("records.jsonl").is_file());
    let csv = std::fs::read_to_string(dir.path().join("out/results.csv")).expect("csv");
    assert_eq!(csv.lines().count(), 4, "header and three rows");
}
