//! Sim trials end to end: each study step writes its CSV, table and summary into its trial
//! folder, fails when a simulated request is not served, leaves `results.csv` to load trials,
//! and appears in the run's summary and HTML report.

use std::path::Path;

use llm_stress::judge::Status;
use llm_stress::plan::TrialPlan;
use llm_stress::report::analysis::Thresholds;
use llm_stress::report::html::Extras;
use llm_stress::report::publish;
use llm_stress::session::RunContext;
use llm_stress::sim::study::COLUMNS;

use crate::support::CaseDir;

/// A quick study: one request count (five scheduler variants), three replica counts, two bin
/// counts, 500 requests per scaled run.
const STUDY: &str = "sim:\n  request_counts: [200]\n  replica_counts: [1, 2, 4]\n  \
                     bin_counts: [1, 4]\n  scaled_requests: 500\n";

/// Writes `case` as the only case (beside a model spec `m`) and returns its plans, in
/// discovery order.
fn setup(tag: &str, case: &str) -> (CaseDir, Vec<TrialPlan>) {
    let dir = CaseDir::named(&format!("sim-{tag}"));
    let plans = dir
        .model("m", "name: m\nmax_context: 256\nmax_concurrency: 2\n")
        .case("c", case)
        .plans();
    (dir, plans)
}

fn context(dir: &CaseDir) -> RunContext {
    RunContext {
        run_id: "test-run".into(),
        out_dir: dir.out(),
        url_override: None,
    }
}

fn plan<'a>(plans: &'a [TrialPlan], name: &str) -> &'a TrialPlan {
    plans
        .iter()
        .find(|p| p.name() == name)
        .unwrap_or_else(|| panic!("no trial {name}"))
}

/// The values of `column` in a study CSV, checking its header.
fn column(path: &Path, column: &str) -> Vec<String> {
    let mut reader = csv::Reader::from_path(path).expect("csv");
    let header = reader.headers().expect("header").clone();
    assert_eq!(
        header.iter().collect::<Vec<_>>(),
        COLUMNS,
        "{}",
        path.display()
    );
    let at = header.iter().position(|h| h == column).expect("column");
    reader
        .records()
        .map(|r| r.expect("row")[at].to_string())
        .collect()
}

#[test]
fn each_step_writes_its_csv_table_and_summary() {
    let (dir, plans) = setup("files", &format!("name: c\nkinds: [sim]\n{STUDY}"));
    let names: Vec<String> = plans.iter().map(TrialPlan::name).collect();
    assert_eq!(
        names,
        ["c::bins", "c::replica-scaling", "c::request-scaling"]
    );
    let ctx = context(&dir);
    let mut knees = Vec::new();
    for (plan, files) in plans.iter().zip([
        &[("replica-scaling", 3), ("bins", 2)][..],
        &[("replica-scaling", 3)],
        &[("request-scaling", 5)],
    ]) {
        let outcome = crate::support::session(ctx.clone())
            .run_trial(plan)
            .expect("written");
        assert!(outcome.passed, "{:?}", outcome.report.verdict);
        let step = plan.name().replace("c::", "");
        assert_eq!(
            outcome.dir,
            dir.path().join("out/test-run/sim/c").join(&step)
        );
        for (name, rows) in files {
            let steps = column(&outcome.dir.join(format!("{name}.csv")), "step");
            assert_eq!(steps.len(), *rows, "{name}.csv");
            assert!(steps.iter().all(|s| s == name), "{steps:?}");
        }
        let table = std::fs::read_to_string(outcome.dir.join("table.md")).expect("table");
        assert!(
            table.starts_with(&format!("## [sim] c::{step}\n")),
            "{table}"
        );
        assert!(
            table.contains("| step ") && table.contains("verdict: PASS"),
            "{table}"
        );
        let summary: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(outcome.dir.join("summary.json")).expect("summary"),
        )
        .expect("json");
        assert_eq!(summary["kind"], "sim");
        assert_eq!(summary["sim"]["step"], step);
        let sim = outcome.report.sim().expect("sim report");
        assert_eq!(sim.completed, sim.requests);
        knees.push(sim.knee_replicas);
    }
    // The bins trial ran replica scaling itself and its K-bins runs at the same knee.
    let [bins_knee, scaling_knee, request_knee] = knees[..] else {
        panic!("{knees:?}");
    };
    assert!(scaling_knee.is_some(), "{knees:?}");
    assert_eq!(bins_knee, scaling_knee);
    assert_eq!(request_knee, None);
    let bins_dir = dir.path().join("out/test-run/sim/c/bins");
    let replicas = column(&bins_dir.join("bins.csv"), "replicas");
    assert!(
        replicas
            .iter()
            .all(|r| Some(r.as_str()) == scaling_knee.map(|k| k.to_string()).as_deref()),
        "{replicas:?} vs knee {scaling_knee:?}"
    );
    assert!(
        !dir.path().join("out/results.csv").exists(),
        "sim trials write no results.csv row"
    );
}

#[rstest::rstest]
#[case::fails_the_trial("", false, "c::replica-scaling_ERROR")]
#[case::as_a_case_that_expects_it("expect: fail\n", true, "c::replica-scaling")]
fn a_request_that_never_fits_the_kv_cache(
    #[case] expect: &str,
    #[case] passed: bool,
    #[case] folder: &str,
) {
    // Prompts of up to 1,024 tokens and outputs of mean 500 often need more than 1,024 tokens
    // of KV cache: those requests are rejected.
    let (dir, plans) = setup(
        &format!("kv{}", expect.len()),
        &format!("name: c\nkinds: [sim]\n{STUDY}  kv_tokens: 1024\n{expect}"),
    );
    let outcome = crate::support::session(context(&dir))
        .run_trial(plan(&plans, "c::replica-scaling"))
        .expect("written");
    assert_eq!(outcome.passed, passed, "{:?}", outcome.report.verdict);
    assert_eq!(outcome.report.verdict.status, Status::Fail);
    let reasons = outcome.report.verdict.failure_reasons().join("; ");
    assert!(
        reasons.starts_with("requests served: 3 of 3 simulations did not serve every request")
            && reasons.contains("rejected (never fit the KV cache)"),
        "{reasons}"
    );
    let sim = outcome.report.sim().expect("sim report");
    assert!(
        sim.rejected > 0 && sim.completed + sim.rejected == sim.requests,
        "{sim:?}"
    );
    // The evidence is written either way.
    assert!(
        outcome.dir.ends_with(folder.replace("::", "/")),
        "{}",
        outcome.dir.display()
    );
    assert_eq!(
        column(&outcome.dir.join("replica-scaling.csv"), "step").len(),
        3
    );
    let table = std::fs::read_to_string(outcome.dir.join("table.md")).expect("table");
    assert!(
        table.contains(&reasons.replace("requests served: ", "")),
        "{table}"
    );
}

#[test]
fn sim_trials_leave_results_csv_to_load_trials_and_join_the_run_report() {
    let (dir, plans) = setup(
        "report",
        &format!(
            "name: c\nmodel: m\nkinds: [perf, sim]\n\
             server:\n  embedded: {{ ttft_ms: 5, tpot_ms: 1, slots: 2 }}\n\
             matrix:\n  mode: custom\n  isl: [16]\n  osl: [8]\n  concurrency: [2]\n{STUDY}"
        ),
    );
    let ctx = context(&dir);
    for name in ["c::isl16_osl8_c2_n2", "c::replica-scaling"] {
        let outcome = crate::support::session(ctx.clone())
            .run_trial(plan(&plans, name))
            .expect("written");
        assert!(outcome.passed, "{name}: {:?}", outcome.report.verdict);
    }
    let csv = std::fs::read_to_string(dir.path().join("out/results.csv")).expect("csv");
    assert_eq!(
        csv.lines().count(),
        2,
        "the header and the perf trial's row:\n{csv}"
    );
    assert!(csv.contains(",perf,") && !csv.contains(",sim,"), "{csv}");

    let written = publish::write_run(
        &ctx.out_dir,
        None,
        &Thresholds::default(),
        &Extras::default(),
    )
    .expect("reports written");
    let names: Vec<String> = written.run.trials.iter().map(|t| t.name()).collect();
    assert_eq!(
        names,
        ["[perf] c::isl16_osl8_c2_n2", "[sim] c::replica-scaling"]
    );
    let summary = std::fs::read_to_string(&written.summary).expect("summary.md");
    assert!(summary.contains("2 trials: 2 PASS"), "{summary}");
    let sim_row: Vec<&str> = summary
        .lines()
        .find(|line| line.starts_with("| sim "))
        .map(|line| {
            line.split('|')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        sim_row.iter().filter(|c| **c == "-").count(),
        11,
        "a sim trial has no load parameters or measurements: {sim_row:?}\n{summary}"
    );
    assert_eq!(sim_row.first(), Some(&"sim"));
    assert_eq!(sim_row.last(), Some(&"PASS"));
    let html = std::fs::read_to_string(&written.html).expect("report.html");
    assert!(
        html.contains("[sim] c::replica-scaling"),
        "report.html names the sim trial"
    );
}
