//! Selecting and overriding without editing the cases: `run --tag` runs only the tagged
//! cases' trials, `run --set KEY=VALUE` (and `LLM_STRESS_SET`) changes a key of every case
//! before validation, and a bad override fails with a message naming it.

use std::process::Command;

use llm_stress::case::Overrides;
use llm_stress::plan::discovery::{Discovered, discover_with};

use crate::support::CaseDir;

const MODEL: &str = "name: m\nmax_context: 256\nmax_concurrency: 8\n";

fn case(name: &str, tags: &str) -> String {
    format!(
        "name: {name}\nmodel: m\nkinds: [perf]\ntags: {tags}\nserver:\n  embedded: {{ ttft_ms: 2, tpot_ms: 1, slots: 8 }}\n\
         matrix:\n  mode: custom\n  isl: [16]\n  osl: [4]\n  concurrency: [2]\n"
    )
}

fn cases() -> CaseDir {
    let dir = CaseDir::named("selection");
    dir.model("m", MODEL)
        .case("tagged", &case("tagged", "[pr, nightly]"))
        .case("other", &case("other", "[nightly]"));
    dir
}

use crate::support::trial_names as names;

#[test]
fn overrides_change_every_case_before_its_trials_are_named() {
    let dir = cases();
    let overrides = Overrides::parse(&["matrix.concurrency=[1, 4]"]).expect("overrides");
    let found = discover_with(dir.cases(), None, &overrides);
    assert_eq!(
        names(&found),
        [
            "[perf] other::isl16_osl4_c1_n1",
            "[perf] other::isl16_osl4_c4_n4",
            "[perf] tagged::isl16_osl4_c1_n1",
            "[perf] tagged::isl16_osl4_c4_n4",
        ]
    );
    let bad = Overrides::parse(&["matrix.concurency=[1]"]).expect("overrides");
    let found = discover_with(dir.cases(), None, &bad);
    assert_eq!(found.len(), 2, "{:?}", names(&found));
    for d in &found {
        let Discovered::Broken { message, .. } = d else {
            panic!("a broken case expected: {:?}", names(&found));
        };
        assert!(message.contains("concurency"), "{message}");
    }
}

#[test]
fn the_cli_runs_only_tagged_cases_with_their_overrides() {
    let dir = cases();
    let run = Command::new(env!("CARGO_BIN_EXE_llm-stress"))
        .arg("run")
        .arg(dir.cases())
        .args(["--out"])
        .arg(dir.out())
        .args([
            "--tag",
            "pr",
            "--set",
            "matrix.concurrency=[1]",
            "--progress",
            "off",
        ])
        .env_remove("LLM_STRESS_URL")
        .env_remove("LLM_STRESS_SET")
        .env_remove("LLM_STRESS_TAG")
        .env("LLM_STRESS_RUN_ID", "selected")
        .output()
        .expect("llm-stress run");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&run.stderr)
    );
    let csv = std::fs::read_to_string(dir.out().join("results.csv")).expect("results.csv");
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{csv}");
    assert!(rows[0].contains("tagged::isl16_osl4_c1_n1"), "{csv}");

    // The trial folder says how to run it again: the case as it ran, and the rest.
    let folder = dir.out().join("selected/perf/tagged/isl16_osl4_c1_n1");
    let case_yaml = std::fs::read_to_string(folder.join("case.yaml")).expect("case.yaml");
    let rerun_again: llm_stress::case::CaseSpec =
        llm_stress::case::load::parse_yaml(&folder.join("case.yaml"), &case_yaml)
            .expect("case.yaml is a case");
    assert_eq!(
        rerun_again.matrix.expect("matrix").concurrency,
        Some(vec![1])
    );
    let rerun: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(folder.join("rerun.json")).expect("rerun.json"),
    )
    .expect("rerun.json parses");
    assert_eq!(rerun["overrides"][0], "matrix.concurrency=[1]");
    assert_eq!(rerun["seed"], 0);
    assert_eq!(rerun["llm_stress_version"], env!("CARGO_PKG_VERSION"));
    // And what the server said of itself: the embedded server's `/v1/models` answer.
    assert_eq!(rerun["servers"][0]["endpoint"], "default", "{rerun}");
    assert_eq!(rerun["servers"][0]["models"]["object"], "list", "{rerun}");
    assert!(
        rerun["servers"][0]["models"]["data"][0]["id"].is_string(),
        "{rerun}"
    );
    assert!(rerun["servers"][0]["unavailable"].is_null(), "{rerun}");

    let bad = Command::new(env!("CARGO_BIN_EXE_llm-stress"))
        .arg("run")
        .arg(dir.cases())
        .args(["--out"])
        .arg(dir.out())
        .args(["--set", "matrix.concurrency"])
        .env_remove("LLM_STRESS_SET")
        .output()
        .expect("llm-stress run");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("override `matrix.concurrency`"), "{stderr}");
}

/// `llm-stress bench --url … --concurrency 1,4` against the embedded server: no YAML written
/// by the user, the same trial folders, `results.csv` rows and run reports as a case.
#[test]
fn bench_from_flags_writes_the_reports_of_a_case() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime
        .block_on(llm_stress::server::embedded::EmbeddedServer::start(
            llm_stress::case::EmbeddedSpec {
                ttft_ms: 2.0,
                tpot_ms: 1.0,
                ..Default::default()
            },
            "served".into(),
            0,
        ))
        .expect("embedded server");
    let out = crate::support::Temp::new("bench-flags");
    let run = Command::new(env!("CARGO_BIN_EXE_llm-stress"))
        .args([
            "bench",
            "--url",
            &server.base_url(),
            "--isl",
            "32",
            "--osl",
            "8",
        ])
        .args([
            "--concurrency",
            "1,4",
            "--rounds",
            "2",
            "--progress",
            "off",
            "--out",
        ])
        .arg(out.path())
        .env_remove("LLM_STRESS_URL")
        .env_remove("LLM_STRESS_SET")
        .env("LLM_STRESS_RUN_ID", "flags")
        .output()
        .expect("llm-stress bench");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&run.stderr)
    );
    for trial in ["isl32_osl8_c1_n2", "isl32_osl8_c4_n8"] {
        let dir = out.path().join("flags/perf/bench").join(trial);
        assert!(dir.join("summary.json").is_file(), "{}", dir.display());
        assert!(dir.join("records.jsonl").is_file());
    }
    let csv = std::fs::read_to_string(out.path().join("results.csv")).expect("results.csv");
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(out.path().join("flags/report.html").is_file());
    assert!(out.path().join("bench-cases/bench.yaml").is_file());
    runtime.block_on(server.shutdown());
}
