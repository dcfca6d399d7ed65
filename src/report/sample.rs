//! A fixed trial report for the report tests.

use std::path::PathBuf;

use super::run::{Run, RunTrial};
use super::{EndpointSummary, TrialReport};
use crate::case::Kind;
use crate::metrics::{Distribution, ErrorClass, Summary};
use crate::verdict::{Check, Status, Verdict};

fn distribution(mean: f64, p99: f64) -> Distribution {
    Distribution {
        count: 4,
        mean,
        std: mean / 10.0,
        min: mean * 0.8,
        p5: mean * 0.8,
        p25: mean * 0.9,
        p50: mean,
        p90: mean * 1.1,
        p95: mean * 1.15,
        p99,
        p999: p99,
        max: p99,
    }
}

/// A failing perf trial: four of five requests succeeded (one HTTP 503), no inter-token
/// samples, a passing run check, a passing TTFT target, a throughput target with no reference
/// value and a failing SLO.
pub fn sample_report() -> TrialReport {
    let summary = Summary {
        requests_ok: 4,
        requests_failed: 1,
        error_rate: 0.2,
        errors: [(ErrorClass::Http503, 1)].into_iter().collect(),
        duration_s: 2.5,
        ttft_ms: Some(distribution(50.125, 80.0)),
        tpot_ms: Some(distribution(5.0, 6.0)),
        itl_ms: None,
        e2el_ms: Some(distribution(365.125, 400.0)),
        input_tokens: 512,
        output_tokens: 64,
        estimated_token_counts: 0,
        input_tok_s: 204.8,
        output_tok_s: 25.6,
        req_s: 1.6,
        tput_user: 200.0,
        ..Summary::default()
    };
    let checks = vec![
        Check {
            name: "requests".into(),
            source: "run".into(),
            actual: Some(4.0),
            target: None,
            ratio: None,
            rule: "at least one request succeeds".into(),
            status: Status::Pass,
            reason: "4 of 5 requests succeeded".into(),
        },
        Check {
            name: "ttft_ms.mean (target)".into(),
            source: "target".into(),
            actual: Some(50.125),
            target: Some(100.0),
            ratio: Some(0.50125),
            rule: "actual/target < 1.10 (functional tier)".into(),
            status: Status::Pass,
            reason: "50.125 vs target 100.000: ratio 0.501, needs actual/target < 1.10 \
                     (functional tier)"
                .into(),
        },
        Check {
            name: "tput_user (target)".into(),
            source: "target".into(),
            actual: Some(200.0),
            target: None,
            ratio: None,
            rule: "no target".into(),
            status: Status::NotApplicable,
            reason: "no reference target for this combination".into(),
        },
        Check {
            name: "ttft_ms.p95 < 50".into(),
            source: "slo".into(),
            actual: Some(57.64375),
            target: Some(50.0),
            ratio: None,
            rule: "ttft_ms.p95 < 50".into(),
            status: Status::Fail,
            reason: "57.644 does not satisfy < 50".into(),
        },
    ];
    TrialReport {
        run_id: "run-1".into(),
        timestamp: "2026-11-24T19:00:00Z".into(),
        trial: "demo-chat::isl128_osl16_c2_n5".into(),
        kind: Kind::Perf,
        case: "demo-chat".into(),
        model: "sim-small".into(),
        server: "embedded".into(),
        api: "chat".into(),
        isl: 128,
        osl: 16,
        mode: "closed".into(),
        concurrency: 2,
        rate: None,
        num_prompts: 5,
        adjusted: None,
        summary,
        endpoints: Vec::new(),
        accuracy: None,
        accuracy_threshold: None,
        accuracy_detail: None,
        server_metrics: Vec::new(),
        sim: None,
        verdict: Verdict::from_checks(checks),
        expect_fail: false,
    }
}

/// A run of four trials over two cases: the failing sample, a passing sweep point, an
/// accuracy trial, and a trial split over two endpoints.
pub fn sample_run() -> Run {
    let trial = |report| RunTrial {
        report,
        dir: PathBuf::from("out/run-1/x"),
    };
    let failing = sample_report();
    let mut passing = sample_report();
    passing.trial = "demo-chat::isl128_osl16_c4_n5".into();
    passing.concurrency = 4;
    passing.summary.error_rate = 0.0;
    passing.summary.requests_failed = 0;
    passing.summary.errors.clear();
    passing.verdict = Verdict::from_checks(vec![passing.verdict.checks[0].clone()]);
    let mut accuracy = sample_report();
    accuracy.kind = Kind::Accuracy;
    accuracy.trial = "demo-chat::gsm8k_n40".into();
    accuracy.isl = 0;
    accuracy.osl = 0;
    accuracy.mode = "accuracy".into();
    accuracy.num_prompts = 40;
    accuracy.accuracy = Some(92.5);
    accuracy.verdict = Verdict::from_checks(Vec::new());
    let mut split = passing.clone();
    split.case = "demo-endpoints".into();
    split.trial = "demo-endpoints::isl128_osl16_c4_n5".into();
    split.endpoints = ["large", "small"]
        .iter()
        .map(|name| EndpointSummary {
            name: name.to_string(),
            summary: passing.summary.clone(),
        })
        .collect();
    Run {
        run_id: "run-1".into(),
        dir: PathBuf::from("out/run-1"),
        trials: vec![
            trial(accuracy),
            trial(failing),
            trial(passing),
            trial(split),
        ],
        notes: vec!["[perf] demo-chat::x ran 2 times in this run; the newest is shown".into()],
    }
}
