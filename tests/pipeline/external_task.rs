//! The `external` task: a command run against the trial's embedded server, its score read from
//! a JSON file, its stdout (a JSON pointer) or a regex, gates the accuracy trial; a command that
//! fails, runs past its timeout or writes no score fails the trial with that evidence.

use llm_stress::report::TrialBody;
use llm_stress::session::RunContext;

use crate::support::{CaseDir, trial_names};

const CASE: &str = r#"name: ext
model: m
kinds: [accuracy]
server:
  embedded: { ttft_ms: 1, tpot_ms: 0, slots: 2 }
matrix: { mode: custom, isl: [16], osl: [4], concurrency: [1] }
accuracy:
  - task: external
    name: pass
    command: [sh, -c, 'printf "{\"results\": {\"t\": {\"acc,none\": 0.9}}, \"url\": \"%s\", \"model\": \"{model}\"}" "$LLM_STRESS_BASE_URL" > {out_dir}/r.json; echo wrote']
    score: { json: "{out_dir}/r.json", pointer: "/results/t/acc,none" }
    threshold: { kind: absolute, expected_value: 90, tolerance: 2% }
  - task: external
    name: low
    command: [sh, -c, 'echo "{\"acc\": 0.5}"']
    score: { json: stdout, pointer: /acc }
    threshold: { kind: absolute, expected_value: 90, tolerance: 2% }
  - task: external
    name: crash
    command: [sh, -c, 'echo boom >&2; exit 3']
    score: { regex: 'acc=(\S+)' }
  - task: external
    name: slow
    timeout_s: 1
    command: [sleep, '30']
    score: { regex: 'acc=(\S+)' }
  - task: external
    name: silent
    command: [sh, -c, 'echo nothing to see']
    score: { regex: 'acc=(\S+)' }
"#;

#[test]
fn an_external_command_gates_its_trial() {
    let dir = CaseDir::named("external-task");
    dir.model("m", "name: m\nmax_context: 4096\nmax_concurrency: 8\n")
        .case("ext", CASE);
    assert_eq!(
        trial_names(&dir.discover()),
        [
            "[accuracy] ext::crash",
            "[accuracy] ext::low",
            "[accuracy] ext::pass",
            "[accuracy] ext::silent",
            "[accuracy] ext::slow",
        ]
    );
    let context = RunContext {
        run_id: "external-task".into(),
        out_dir: dir.out(),
        url_override: None,
    };
    let session = crate::support::session(context);
    let outcomes: Vec<_> = dir
        .plans()
        .iter()
        .map(|plan| session.run_trial(plan).expect("reports written"))
        .collect();
    let found: Vec<(String, bool, Option<f64>)> = outcomes
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
        found,
        [
            ("ext::crash".into(), false, None),
            ("ext::low".into(), false, Some(50.0)),
            ("ext::pass".into(), true, Some(90.0)),
            ("ext::silent".into(), false, None),
            ("ext::slow".into(), false, None),
        ]
    );
    let reason = |i: usize| -> String {
        outcomes[i]
            .report
            .verdict
            .checks
            .iter()
            .map(|c| c.reason.clone())
            .collect::<Vec<_>>()
            .join(" | ")
    };
    let crash = reason(0);
    assert!(
        crash.contains("exited with status 3") && crash.contains("boom"),
        "{crash}"
    );
    assert!(reason(3).contains("matches nothing"), "{}", reason(3));
    assert!(reason(4).contains("timeout_s of 1 s"), "{}", reason(4));
    // The command reached this trial's server: the URL it was given is the trial's.
    let pass = &outcomes[2];
    let written = dir.out().join("external-task/external/ext/pass/r.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&written).expect("r.json")).expect("json");
    assert_eq!(
        json["url"].as_str(),
        pass.server_urls.first().map(String::as_str)
    );
    assert_eq!(json["model"], "m");
    let TrialBody::Accuracy(body) = &pass.report.body else {
        panic!("an accuracy trial");
    };
    let summary = body.accuracy.as_ref().expect("a summary");
    assert_eq!(
        (summary.task.as_str(), summary.judged_filter.as_str()),
        ("external", "score")
    );
    // Its stdout and stderr are in the trial's folder.
    let stdout = std::fs::read_to_string(pass.dir.join("external.stdout")).expect("stdout file");
    assert_eq!(stdout, "wrote\n");
    let stderr = std::fs::read_to_string(outcomes[0].dir.join("external.stderr")).expect("stderr");
    assert_eq!(stderr, "boom\n");
}
