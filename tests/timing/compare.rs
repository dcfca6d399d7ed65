//! Comparing with a baseline end to end on the embedded server: a candidate whose decode is
//! 40 % slower (TPOT 7 ms instead of 5) regresses — `llm-stress compare` exits 1, and a run
//! with the baseline fails exactly that trial with the comparison's rows as its reasons —
//! while the same settings again are unchanged and exit 0.

use std::process::Command;

use llm_stress::compare::Gate;
use llm_stress::compare::baseline::BaselineRun;
use llm_stress::judge::CheckSource;
use llm_stress::session::TrialOutcome;

use crate::support::{self, CaseDir};

const MODEL: &str = "name: m\nmax_context: 512\nmax_concurrency: 4\n";

fn case(name: &str, tpot_ms: u32, extra: &str) -> String {
    format!(
        "name: {name}\nmodel: m\nkinds: [perf]\nserver:\n  embedded: {{ ttft_ms: 10, tpot_ms: {tpot_ms}, slots: 4 }}\n\
         matrix:\n  mode: custom\n  isl: [32]\n  osl: [32]\n  concurrency: [4]\n  prompts: {{ fixed: 100 }}\n\
         load:\n  warmup: 4\n{extra}"
    )
}

/// Case `d` gates on two metrics only: its own `gate:` wins over the command's.
const D_GATE: &str = "gate:\n  metrics: [error_rate, ttft_ms.p50]\n";

/// Runs cases `c` (decode at `c_tpot_ms`) and `d` (always 5 ms) under run id `run_id`,
/// compared with `baseline` when given.
fn run(dir: &CaseDir, run_id: &str, c_tpot_ms: u32, baseline: Option<&str>) -> Vec<TrialOutcome> {
    let plans = dir
        .model("m", MODEL)
        .case("c", &case("c", c_tpot_ms, ""))
        .case("d", &case("d", 5, D_GATE))
        .plans();
    let mut session = support::session(support::context(run_id, dir.out(), None));
    if let Some(base) = baseline {
        let base = BaselineRun::load(&dir.out().join(base), None, Gate::default());
        session = session.compare_with(base.map_err(|e| e.to_string()));
    }
    plans
        .iter()
        .map(|plan| session.run_trial(plan).expect("reports written"))
        .collect()
}

fn compare(dir: &CaseDir, base: &str, new: &str, flags: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_llm-stress"))
        .arg("compare")
        .arg(dir.out().join(base))
        .arg(dir.out().join(new))
        .args(flags)
        .env_remove("GITHUB_STEP_SUMMARY")
        .output()
        .expect("llm-stress compare runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), text)
}

/// The outcome column of `metric`'s row in the table of `trial`.
fn outcome_of<'a>(text: &'a str, trial: &str, metric: &str) -> &'a str {
    text.split("\n\n")
        .find(|table| table.starts_with(trial))
        .and_then(|table| table.lines().find(|l| l.starts_with(&format!("{metric} "))))
        .and_then(|l| l.split_whitespace().last())
        .unwrap_or_else(|| panic!("no {metric} row for {trial} in:\n{text}"))
}

#[test]
fn a_slower_decode_regresses_and_the_same_settings_do_not() {
    let dir = CaseDir::named("compare-e2e");
    for base in run(&dir, "base", 5, None) {
        assert!(base.passed, "{:?}", base.report.verdict);
    }

    // With the baseline, the slower trial fails on its decode metrics and the other passes.
    // 40 % slower, not 20: on this shared machine a base run's ITL p50 came out 5.32 ms
    // instead of 5.0 (two runs in ten), and 6 ms was then +13 % with an interval of
    // [+8 %, +20 %] — inconclusive against the 10 % allowance, as it should be.
    let slower = run(&dir, "slower", 7, Some("base"));
    let (c, d) = (&slower[0], &slower[1]);
    assert_eq!(c.report.meta.case, "c");
    assert!(!c.passed, "the slower decode fails against the baseline");
    let reasons = c.report.verdict.failure_reasons().join("\n");
    assert!(reasons.contains("tpot_ms.p50 vs baseline"), "{reasons}");
    assert!(reasons.contains("regressed"), "{reasons}");
    assert!(
        !reasons.contains("ttft_ms.p50"),
        "TTFT did not change: {reasons}"
    );
    assert!(c.dir.to_string_lossy().ends_with("_ERROR"));
    assert!(d.passed, "{:?}", d.report.verdict.failure_reasons());
    let compared = |o: &TrialOutcome| {
        o.report
            .verdict
            .checks
            .iter()
            .filter(|check| check.source == CheckSource::Baseline)
            .count()
    };
    assert!(
        compared(c) >= 10,
        "every metric is a check: {}",
        compared(c)
    );
    assert_eq!(compared(d), 2, "d's own gate names two metrics");

    let (code, text) = compare(&dir, "base", "slower", &[]);
    assert_eq!(code, 1, "{text}");
    let trial = "[perf] c::isl32_osl32_c4_n100";
    for metric in ["tpot_ms.p50", "itl_ms.p50", "e2el_ms.p50", "tput_user"] {
        assert_eq!(
            outcome_of(&text, trial, metric),
            "regressed",
            "{metric}:\n{text}"
        );
    }
    assert_eq!(
        outcome_of(&text, trial, "ttft_ms.p50"),
        "unchanged",
        "{text}"
    );
    let json = std::fs::read_to_string(dir.out().join("slower/compare.json")).expect("json");
    let json: serde_json::Value = serde_json::from_str(&json).expect("compare.json parses");
    assert_eq!(json["outcome"], "regressed");
    assert_eq!(json["trials"][0]["trial"], trial);
    assert!(
        std::fs::read_to_string(dir.out().join("slower/compare.md"))
            .expect("md")
            .contains("**regressed**")
    );

    // The same settings again. Medians and throughputs only: a tail (p95) of a run on a
    // machine shared with other work moves with that work, and the interval, which is about
    // the requests a run sampled, rightly reports the move (see the book's "What the
    // interval does not cover").
    run(&dir, "same", 5, None);
    let medians =
        "ttft_ms.p50,tpot_ms.p50,itl_ms.p50,e2el_ms.p50,output_tok_s,req_s,tput_user,error_rate";
    let (code, text) = compare(&dir, "base", "same", &["--metrics", medians]);
    assert_eq!(code, 0, "{text}");
    assert!(
        !text.lines().any(|l| l.ends_with(" regressed")),
        "no metric regressed:\n{text}"
    );
}

/// Runs case `t` (4 closed-loop requests a run unless `prompts` says otherwise) under
/// `run_id`, compared with `baseline` when given.
fn run_small(
    dir: &CaseDir,
    run_id: &str,
    tpot_ms: f64,
    prompts: u32,
    gate: &str,
    baseline: Option<&str>,
) -> TrialOutcome {
    let yaml = format!(
        "name: t\nmodel: m\nkinds: [perf]\nserver:\n  embedded: {{ ttft_ms: 10, tpot_ms: {tpot_ms}, slots: 4 }}\n\
         matrix:\n  mode: custom\n  isl: [32]\n  osl: [16]\n  concurrency: [1]\n  prompts: {{ fixed: {prompts} }}\n\
         load:\n  warmup: 1\n{gate}"
    );
    let plan = dir.model("m", MODEL).case("t", &yaml).plan();
    let mut session = support::session(support::context(run_id, dir.out(), None));
    if let Some(base) = baseline {
        let base = BaselineRun::load(&dir.out().join(base), None, Gate::default());
        session = session.compare_with(base.map_err(|e| e.to_string()));
    }
    session.run_trial(&plan).expect("reports written")
}

#[test]
fn an_inconclusive_trial_runs_again_and_pools_its_requests() {
    use llm_stress::report::attempts::AttemptCause;
    let dir = CaseDir::named("compare-retries");
    // A decode exactly 10 % slower, against a 10 % bound, from a baseline of 4 requests (two
    // blocks of two, whose interval Student's t with one degree of freedom widens to several
    // per cent at 99.9 % confidence, however many requests the candidate pools): the interval
    // straddles the bound run after run.
    assert!(run_small(&dir, "base", 5.0, 4, "", None).passed);
    let gate = "gate:\n  metrics: [tpot_ms.p50, e2el_ms.p95]\n  confidence: 0.999\n  retries: 2\n";
    let retried = run_small(&dir, "retried", 5.5, 4, gate, Some("base"));
    let load = retried.report.load().expect("a load trial");
    let causes: Vec<AttemptCause> = load.attempts.iter().map(|a| a.cause).collect();
    assert_eq!(
        causes,
        [
            AttemptCause::Repeat,
            AttemptCause::Retry,
            AttemptCause::Retry
        ],
        "{:?}",
        retried.report.verdict
    );
    assert_eq!(load.summary.requests_ok, 12, "the three runs are pooled");
    assert_eq!(retried.records.len(), 12);
    let compared: Vec<_> = retried
        .report
        .verdict
        .checks
        .iter()
        .filter(|c| c.source == CheckSource::Baseline)
        .collect();
    assert_eq!(compared.len(), 2, "{compared:?}");
    for check in &compared {
        assert!(check.reason.contains("3 runs pooled"), "{}", check.reason);
    }
    assert!(
        compared.iter().any(|c| c.reason.contains("inconclusive")),
        "still inconclusive after the retries: {compared:?}"
    );
    // Inconclusive passes with a warning by default.
    assert!(retried.passed, "{:?}", retried.report.verdict);
}

#[test]
fn a_confident_regression_is_not_run_again() {
    let dir = CaseDir::named("compare-no-retry");
    assert!(run_small(&dir, "base", 5.0, 40, "", None).passed);
    // Twice as slow a decode: regressed after the first run, whatever the retries allow.
    let gate = "gate:\n  metrics: [tpot_ms.p50]\n  retries: 2\n";
    let slower = run_small(&dir, "slower", 10.0, 40, gate, Some("base"));
    let load = slower.report.load().expect("a load trial");
    assert!(load.attempts.is_empty(), "{:?}", load.attempts);
    assert_eq!(load.summary.requests_ok, 40);
    let reasons = slower.report.verdict.failure_reasons().join("\n");
    assert!(reasons.contains("regressed"), "{reasons}");
    assert!(!reasons.contains("pooled"), "{reasons}");
}
