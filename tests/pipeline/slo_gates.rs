//! The SLO forms beyond a summary metric, end to end on the embedded server: drift, an error
//! class, goodput, per-endpoint summaries, the scraped server metrics (the embedded server
//! serves `/metrics` under vLLM's names) and the accuracy score of a stress trial. A metric the
//! server does not expose fails its SLO with the reason, and goodput reaches `summary.json`
//! and `results.csv`.

use llm_stress::judge::{Check, CheckSource, Status};
use llm_stress::report::csv::COLUMNS;
use llm_stress::session::RunContext;

use crate::support::CaseDir;

const CASE: &str = r#"name: gates
model: m
kinds: [stress]
endpoints:
  - name: small
    weight: 1
    server: { embedded: { ttft_ms: 5, tpot_ms: 1, slots: 8 } }
  - name: large
    weight: 1
    server: { embedded: { ttft_ms: 60, tpot_ms: 1, slots: 8 } }
load: { warmup: 0, timeout_s: 30 }
matrix:
  mode: custom
  isl: [16]
  osl: [8]
  concurrency: [2]
  prompts: { fixed: 16 }
accuracy: { task: synthetic_arithmetic, limit: 6, concurrency: 2 }
goodput: { ttft_ms: 10000, e2el_ms: 20000 }
slo:
  - drift.ttft_change < 100
  - errors.timeout == 0
  - errors.http_503 != 1
  - goodput >= 0.9
  - goodput_req_s > 0
  - endpoint.small.ttft_ms.p50 < 1000
  - endpoint.large.ttft_ms.min >= 60
  - endpoint.large.errors.connect == 0
  - server."vllm:generation_tokens_total".increase > 0
  - server.vllm:num_requests_running.max <= 8
  - server."vllm:num_preemptions_total".increase == 0
  - accuracy >= 0.5
"#;

fn slo_check<'a>(checks: &'a [Check], name: &str) -> &'a Check {
    checks
        .iter()
        .find(|c| c.source == CheckSource::Slo && c.name == name)
        .unwrap_or_else(|| panic!("no check `{name}` in {checks:#?}"))
}

#[test]
fn every_slo_form_is_judged_on_a_trial_under_load_with_accuracy() {
    let dir = CaseDir::named("slo-gates");
    let plan = dir
        .model("m", "name: m\nmax_context: 256\nmax_concurrency: 8\n")
        .case("gates", CASE)
        .plan();
    let context = RunContext {
        run_id: "slo-gates".into(),
        out_dir: dir.out(),
        url_override: None,
    };
    let results_csv = context.results_csv();
    let outcome = crate::support::session(context)
        .run_trial(&plan)
        .expect("reports written");
    let checks = &outcome.report.verdict.checks;
    let passing = [
        "drift.ttft_change < 100",
        "errors.timeout == 0",
        "errors.http_503 != 1",
        "goodput >= 0.9",
        "goodput_req_s > 0",
        "endpoint.small.ttft_ms.p50 < 1000",
        "endpoint.large.ttft_ms.min >= 60",
        "endpoint.large.errors.connect == 0",
        "server.\"vllm:generation_tokens_total\".increase > 0",
        "server.\"vllm:num_requests_running\".max <= 8",
        "accuracy >= 0.5",
    ];
    for name in passing {
        let check = slo_check(checks, name);
        assert_eq!(check.status, Status::Pass, "{check:#?}");
        assert!(check.actual.is_some(), "{check:#?}");
    }
    // Every request was good, and the accuracy score is a fraction.
    assert_eq!(slo_check(checks, "goodput >= 0.9").actual, Some(1.0));
    let accuracy = slo_check(checks, "accuracy >= 0.5").actual.expect("score");
    assert!((0.0..=1.0).contains(&accuracy), "{accuracy}");
    // The plain embedded server has no engine to preempt, so it does not expose preemptions:
    // the gate fails rather than pass what it could not check, on both servers.
    let preemptions = slo_check(
        checks,
        "server.\"vllm:num_preemptions_total\".increase == 0",
    );
    assert_eq!(preemptions.status, Status::Fail);
    assert!(
        preemptions
            .reason
            .contains("was not scraped from endpoint `small` (its server does not expose it)"),
        "{}",
        preemptions.reason
    );
    assert_eq!(outcome.report.verdict.status, Status::Fail);
    // SLOs come after the run's checks and before the accuracy threshold's.
    let sources: Vec<CheckSource> = checks.iter().map(|c| c.source).collect();
    let first_slo = sources.iter().position(|s| *s == CheckSource::Slo);
    let last_slo = sources.iter().rposition(|s| *s == CheckSource::Slo);
    let accuracy_at = sources.iter().position(|s| *s == CheckSource::Accuracy);
    assert!(first_slo.is_some() && last_slo < accuracy_at, "{sources:?}");

    // Goodput is reported: in summary.json's summary and per endpoint, and in results.csv.
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(outcome.dir.join("summary.json")).expect("summary.json"),
    )
    .expect("json");
    assert_eq!(json["summary"]["goodput"], serde_json::json!(1.0), "{json}");
    assert_eq!(
        json["endpoints"][1]["summary"]["goodput"],
        serde_json::json!(1.0)
    );
    let csv = std::fs::read_to_string(results_csv).expect("results.csv");
    let mut reader = ::csv::Reader::from_reader(csv.as_bytes());
    let row = reader.records().next().expect("a row").expect("a record");
    let at = COLUMNS
        .iter()
        .position(|c| *c == "goodput")
        .expect("column");
    assert_eq!(&row[at], "1.0000");
}

#[test]
fn an_slo_on_an_unknown_endpoint_is_a_load_time_error() {
    let case = CASE.replace("endpoint.large.ttft_ms.min", "endpoint.lrage.ttft_ms.min");
    let dir = CaseDir::named("slo-unknown-endpoint");
    dir.model("m", "name: m\nmax_context: 256\nmax_concurrency: 8\n")
        .case("gates", &case);
    let found = dir.discover();
    let message = found
        .iter()
        .find_map(|d| match d {
            llm_stress::plan::discovery::Discovered::Broken { message, .. } => Some(message),
            _ => None,
        })
        .expect("a broken case");
    assert!(
        message.contains("the case has no endpoint `lrage`, did you mean `large`?"),
        "{message}"
    );
}

#[test]
fn server_metric_slos_pass_on_the_simulating_embedded_server() {
    // With its simulator the embedded server exposes KV cache usage and preemptions, as vLLM
    // does; two requests at a time on a simulated H100 neither preempt nor fill the cache.
    let case = r#"name: sim-gates
model: m
kinds: [perf]
server:
  embedded:
    sim:
      hardware: h100-sxm
      model: llama-3.1-8b
load: { warmup: 0, timeout_s: 30 }
matrix:
  mode: custom
  isl: [16]
  osl: [8]
  concurrency: [2]
  prompts: { fixed: 8 }
slo:
  - server."vllm:num_preemptions_total".increase == 0
  - server."vllm:kv_cache_usage_perc".max < 0.5
  - server."vllm:request_success_total".per_s > 0
"#;
    let dir = CaseDir::named("slo-sim-gates");
    let plan = dir
        .model("m", "name: m\nmax_context: 256\nmax_concurrency: 8\n")
        .case("sim-gates", case)
        .plan();
    let context = RunContext {
        run_id: "slo-sim-gates".into(),
        out_dir: dir.out(),
        url_override: None,
    };
    let outcome = crate::support::session(context)
        .run_trial(&plan)
        .expect("reports written");
    let checks = &outcome.report.verdict.checks;
    for name in [
        "server.\"vllm:num_preemptions_total\".increase == 0",
        "server.\"vllm:kv_cache_usage_perc\".max < 0.5",
        "server.\"vllm:request_success_total\".per_s > 0",
    ] {
        let check = slo_check(checks, name);
        assert_eq!(check.status, Status::Pass, "{check:#?}");
        assert!(check.actual.is_some(), "{check:#?}");
    }
    assert_eq!(
        slo_check(
            checks,
            "server.\"vllm:num_preemptions_total\".increase == 0"
        )
        .actual,
        Some(0.0)
    );
}
