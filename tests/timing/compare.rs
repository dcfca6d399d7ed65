//! `llm-stress compare` end to end on the embedded server: a candidate whose decode is 20 %
//! slower (TPOT 6 ms instead of 5) regresses and exits 1; the same settings again are
//! unchanged and exit 0.

use std::process::Command;

use crate::support::{self, CaseDir};

const MODEL: &str = "name: m\nmax_context: 512\nmax_concurrency: 4\n";

fn case(tpot_ms: u32) -> String {
    format!(
        "name: c\nmodel: m\nkinds: [perf]\nserver:\n  embedded: {{ ttft_ms: 10, tpot_ms: {tpot_ms}, slots: 4 }}\n\
         matrix:\n  mode: custom\n  isl: [32]\n  osl: [32]\n  concurrency: [4]\n  prompts: {{ fixed: 120 }}\n\
         load:\n  warmup: 4\n"
    )
}

/// Runs the case's one trial under run id `run_id`.
fn run(dir: &CaseDir, run_id: &str, tpot_ms: u32) {
    let plan = dir.model("m", MODEL).case("c", &case(tpot_ms)).plan();
    let outcome = support::session(support::context(run_id, dir.out(), None))
        .run_trial(&plan)
        .expect("reports written");
    assert!(outcome.passed, "{:?}", outcome.report.verdict);
}

fn compare(dir: &CaseDir, base: &str, new: &str) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_llm-stress"))
        .arg("compare")
        .arg(dir.out().join(base))
        .arg(dir.out().join(new))
        .env_remove("GITHUB_STEP_SUMMARY")
        .output()
        .expect("llm-stress compare runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code().unwrap_or(-1), text)
}

fn outcome_of<'a>(text: &'a str, metric: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(&format!("{metric} ")))
        .and_then(|l| l.split_whitespace().last())
        .unwrap_or_else(|| panic!("no {metric} row in:\n{text}"))
}

#[test]
fn a_slower_decode_regresses_and_the_same_settings_do_not() {
    let dir = CaseDir::named("compare-e2e");
    run(&dir, "base", 5);
    run(&dir, "slower", 6);
    run(&dir, "same", 5);

    let (code, text) = compare(&dir, "base", "slower");
    assert_eq!(code, 1, "{text}");
    for metric in ["tpot_ms.p50", "tpot_ms.p95", "itl_ms.p50", "tput_user"] {
        assert_eq!(outcome_of(&text, metric), "regressed", "{metric}:\n{text}");
    }
    assert_eq!(outcome_of(&text, "ttft_ms.p50"), "unchanged", "{text}");
    let json = std::fs::read_to_string(dir.out().join("slower/compare.json")).expect("json");
    let json: serde_json::Value = serde_json::from_str(&json).expect("compare.json parses");
    assert_eq!(json["outcome"], "regressed");
    assert_eq!(json["trials"][0]["trial"], "[perf] c::isl32_osl32_c4_n120");
    assert!(
        std::fs::read_to_string(dir.out().join("slower/compare.md"))
            .expect("md")
            .contains("**regressed**")
    );

    let (code, text) = compare(&dir, "base", "same");
    assert_eq!(code, 0, "{text}");
    assert!(
        !text.lines().any(|l| l.ends_with(" regressed")),
        "no metric regressed:\n{text}"
    );
}
