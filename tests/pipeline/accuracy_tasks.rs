//! Several accuracy tasks in one case: one accuracy trial per task, named after the task and its
//! size, each judged on its own threshold and written as its own row; the stress trials ask the
//! first task under load and compare with that task's accuracy trial.

use llm_stress::report::TrialBody;
use llm_stress::session::RunContext;

use crate::support::{CaseDir, trial_names};

const CASE: &str = r#"name: multi
model: m
kinds: [accuracy, stress]
server:
  embedded: { ttft_ms: 1, tpot_ms: 0, slots: 8 }
load: { warmup: 0, duration: 1s, timeout_s: 30 }
matrix: { mode: custom, isl: [16], osl: [4], concurrency: [2] }
accuracy:
  - task: synthetic_arithmetic
    limit: 20
    threshold: { kind: absolute, expected_value: 100, tolerance: 1% }
  - task: mmlu_generative
    dataset: mmlu.jsonl
    limit: 6
    # The embedded server answers every question right: 100 is not within 5 % of 50.
    threshold: { kind: relative, expected_value: 50, tolerance: 5% }
"#;

#[test]
fn each_task_is_a_trial_with_its_own_threshold_and_row() {
    let dir = CaseDir::named("accuracy-tasks");
    let mmlu = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("stress-cases/data/mmlu_sample.jsonl"),
    )
    .expect("mmlu sample");
    dir.model("m", "name: m\nmax_context: 4096\nmax_concurrency: 8\n")
        .file("mmlu.jsonl", &mmlu)
        .case("multi", CASE);
    let names = trial_names(&dir.discover());
    assert_eq!(
        names,
        [
            "[accuracy] multi::mmlu_generative_n6",
            "[accuracy] multi::synthetic_arithmetic_n20",
            "[stress] multi::isl16_osl4_c2_1s",
        ]
    );
    let context = RunContext {
        run_id: "accuracy-tasks".into(),
        out_dir: dir.out(),
        url_override: None,
    };
    let results_csv = context.results_csv();
    let session = crate::support::session(context);
    let outcomes: Vec<_> = dir
        .plans()
        .iter()
        .map(|plan| session.run_trial(plan).expect("reports written"))
        .collect();
    let verdicts: Vec<(String, bool, Option<f64>)> = outcomes
        .iter()
        .map(|o| {
            (
                o.report.meta.trial.clone(),
                o.passed,
                o.report.accuracy_score(),
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            ("multi::mmlu_generative_n6".into(), false, Some(100.0)),
            ("multi::synthetic_arithmetic_n20".into(), true, Some(100.0)),
            ("multi::isl16_osl4_c2_1s".into(), true, Some(100.0)),
        ]
    );
    // The stress trial asked the first task's questions and compared with its trial.
    let TrialBody::Load(load) = &outcomes[2].report.body else {
        panic!("a load trial");
    };
    let under_load = load.accuracy.as_ref().expect("accuracy under load");
    assert_eq!(under_load.n, 20);
    assert_eq!(under_load.baseline, Some(100.0));
    // One row per trial, the task's trial name in each.
    let csv = std::fs::read_to_string(results_csv).expect("results.csv");
    for name in [
        "multi::mmlu_generative_n6",
        "multi::synthetic_arithmetic_n20",
    ] {
        assert_eq!(
            csv.lines()
                .filter(|l| l.contains(&format!(",{name},accuracy,")))
                .count(),
            1,
            "{name} in\n{csv}"
        );
    }
    // Each trial folder holds its own task's questions.
    let scored = |o: &llm_stress::session::TrialOutcome| o.samples.len();
    assert_eq!(outcomes.iter().map(scored).collect::<Vec<_>>(), [6, 20, 20]);
}
