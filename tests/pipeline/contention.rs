//! Contention between endpoints (`contention: true`): each endpoint is also measured alone at
//! its share of the load, and the analysis compares. Two embedded servers share nothing, so
//! together they deliver what they deliver alone; two endpoints of one small server share its
//! slots, so together they deliver less than the sum of what each delivers alone.

use llm_stress::report::analysis::contention::contention;
use llm_stress::report::run::RunTrial;
use llm_stress::server::embedded::EmbeddedServer;

use crate::support::CaseDir;

/// An open loop of 40 requests/s for 2 s over two endpoints, 50/50 (`ENDPOINTS` is replaced).
const CASE: &str = r#"name: mix
model: m
kinds: [perf]
contention: true
endpoints:
ENDPOINTS
matrix:
  mode: custom
  isl: [16]
  osl: [16]
  concurrency: [1]
load: { mode: open, rate: 40, arrival: constant, requests: 80, warmup: 0, timeout_s: 30, seed: 3 }
"#;

/// Runs every trial of the case in `endpoints`, returning them as a run's trials.
fn run_all(tag: &str, endpoints: &str) -> Vec<RunTrial> {
    let dir = CaseDir::named(tag);
    dir.model("m", "name: m\nmax_context: 4096\nmax_concurrency: 64\n")
        .case("mix", &CASE.replace("ENDPOINTS", endpoints));
    let plans = dir.plans();
    let names: Vec<String> = plans.iter().map(|p| p.full_name()).collect();
    assert_eq!(
        names,
        [
            "[perf] mix::isl16_osl16_r40_n80",
            "[perf] mix::isl16_osl16_r40_n80_solo-a",
            "[perf] mix::isl16_osl16_r40_n80_solo-b",
        ]
    );
    let context = crate::support::context(tag, dir.out(), None);
    let session = crate::support::session(context);
    plans
        .iter()
        .map(|plan| {
            let outcome = session.run_trial(plan).expect("reports written");
            assert!(
                outcome.passed,
                "{}: {:#?}",
                plan.full_name(),
                outcome.report.verdict
            );
            RunTrial {
                dir: dir.out(),
                report: outcome.report,
            }
        })
        .collect()
}

#[test]
fn endpoints_that_share_nothing_deliver_together_what_they_deliver_alone() {
    let trials = run_all(
        "contention-none",
        "  - { name: a, weight: 1, server: { embedded: { ttft_ms: 5, tpot_ms: 2, slots: 64 } } }\n  - { name: b, weight: 1, server: { embedded: { ttft_ms: 5, tpot_ms: 2, slots: 64 } } }",
    );
    // Each endpoint alone gets its share: 20 requests/s, 40 requests.
    let solo = trials[1].report.summary().expect("a load trial");
    assert_eq!(solo.requests_ok, 40);
    assert_eq!(solo.requested_rate, Some(20.0));
    let found = contention(&trials);
    assert_eq!(found.len(), 1, "{found:#?}");
    eprintln!("{}", found[0].describe());
    let ratio = found[0].ratio().expect("delivered");
    assert!((0.95..1.05).contains(&ratio), "{}", found[0].describe());
    assert!(!found[0].contended(), "{}", found[0].describe());
    assert!(found[0].describe().contains("no contention"));
}

#[test]
fn endpoints_of_one_small_server_contend() {
    // One server of 2 slots, about 90 ms a request: 22 requests/s at most. Each endpoint alone
    // asks 20/s; together they ask 40/s and queue.
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let spec = serde_saphyr::from_str("{ ttft_ms: 10, tpot_ms: 5, slots: 2 }").expect("spec");
    let server = runtime
        .block_on(EmbeddedServer::start(spec, "m".into(), 0))
        .expect("starts");
    let url = server.base_url();
    let endpoint = |name: &str| {
        format!("  - {{ name: {name}, weight: 1, server: {{ attach: {{ url: \"{url}\" }} }} }}")
    };
    let trials = run_all(
        "contention-shared",
        &format!("{}\n{}", endpoint("a"), endpoint("b")),
    );
    runtime.block_on(server.shutdown());
    let found = contention(&trials);
    assert_eq!(found.len(), 1, "{found:#?}");
    let line = found[0].describe();
    eprintln!("{line}");
    assert!(found[0].contended(), "{line}");
    assert!(line.contains("the endpoints contend"), "{line}");
    for endpoint in &found[0].endpoints {
        assert!(
            endpoint.together_ttft_p50_ms > endpoint.alone_ttft_p50_ms,
            "{line}"
        );
    }
    let summary = llm_stress::report::summary_md::contention_lines(
        &trials,
        llm_stress::report::table::Numbers::Measured,
    );
    assert_eq!(summary.len(), 1);
    assert!(
        summary[0].starts_with("[perf] mix::isl16_osl16_r40_n80: a "),
        "{summary:?}"
    );
}
