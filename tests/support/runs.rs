//! Output folders of made-up runs, written through the same code trials use, for the report
//! tests.

use std::path::{Path, PathBuf};

use llm_stress::metrics::{ErrorClass, RequestRecord, Summary};
use llm_stress::report::trial_dir;
use llm_stress::report::{EndpointSummary, TrialReport, csv};
use serde_json::json;

/// What a made-up trial ran and how its requests went.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Run id.
    pub run_id: &'static str,
    /// `perf`, `stress` or `accuracy`.
    pub kind: &'static str,
    /// Case name.
    pub case: &'static str,
    /// `closed`, `users` or `open`.
    pub mode: &'static str,
    /// ISL.
    pub isl: u32,
    /// Concurrency (closed), users, or the open loop's cap.
    pub concurrency: u32,
    /// Open loop: requests per second.
    pub rate: Option<f64>,
    /// Measured requests.
    pub requests: u32,
    /// Every `fail_every`th request fails with HTTP 503 (0: none).
    pub fail_every: u32,
    /// Accuracy score, when the trial scored one.
    pub accuracy: Option<f64>,
    /// `PASS`, `FAIL` or `NA`.
    pub verdict: &'static str,
    /// Split the requests over two endpoints.
    pub endpoints: bool,
    /// Finishing time, RFC 3339.
    pub timestamp: &'static str,
}

impl Spec {
    /// A passing closed-loop perf trial of case `case` at `concurrency`.
    pub fn perf(case: &'static str, concurrency: u32) -> Spec {
        Spec {
            run_id: "run-new",
            kind: "perf",
            case,
            mode: "closed",
            isl: 128,
            concurrency,
            rate: None,
            requests: 40,
            fail_every: 0,
            accuracy: None,
            verdict: "PASS",
            endpoints: false,
            timestamp: "2026-11-24T19:00:00Z",
        }
    }

    /// The trial name without the kind.
    pub fn trial(&self) -> String {
        match (self.kind, self.rate) {
            ("accuracy", _) => format!("{}::gsm8k_n40", self.case),
            (_, Some(rate)) => format!(
                "{}::isl{}_osl64_r{rate}_n{}",
                self.case, self.isl, self.requests
            ),
            _ => format!(
                "{}::isl{}_osl64_c{}_n{}",
                self.case, self.isl, self.concurrency, self.requests
            ),
        }
    }
}

/// Requests from a server with two slots, each request taking 20 ms to the first token and
/// 5 ms per token after it (64 tokens): beyond two in flight, requests queue, so throughput
/// stops growing while TTFT rises. Sent in waves of `concurrency`.
pub fn records(spec: &Spec) -> Vec<RequestRecord> {
    if spec.kind == "accuracy" {
        return Vec::new();
    }
    let service_ms = 20.0 + 63.0 * 5.0;
    let queued = (f64::from(spec.concurrency) / 2.0).max(1.0) - 1.0;
    let ttft = 20.0 + queued * service_ms + f64::from(spec.isl) * 0.01;
    let e2el = ttft + 63.0 * 5.0;
    (0..spec.requests)
        .map(|i| {
            let wave = f64::from(i / spec.concurrency.max(1));
            let jitter = f64::from(i % 7) * 0.3;
            let failed = spec.fail_every > 0 && i % spec.fail_every == spec.fail_every - 1;
            RequestRecord {
                id: u64::from(i),
                send_ms: wave * e2el + jitter,
                endpoint: if spec.endpoints { i % 2 } else { 0 },
                ttft_ms: (!failed).then_some(ttft + jitter),
                e2el_ms: (!failed).then_some(e2el + jitter),
                chunk_ms: if failed {
                    Vec::new()
                } else {
                    (0..64)
                        .map(|t| ttft + jitter + f64::from(t) * 5.0)
                        .collect()
                },
                chunk_tokens: if failed { Vec::new() } else { vec![1; 64] },
                prompt_tokens: Some(u64::from(spec.isl)),
                output_tokens: (!failed).then_some(64),
                status: Some(if failed { 503 } else { 200 }),
                error: failed.then_some(ErrorClass::Http503),
                ..Default::default()
            }
        })
        .collect()
}

/// The trial's report, built from its records as a trial builds it.
pub fn report(spec: &Spec, records: &[RequestRecord]) -> TrialReport {
    let window_s = records
        .iter()
        .filter_map(|r| Some(r.send_ms + r.e2el_ms?))
        .fold(0.0f64, f64::max)
        / 1000.0;
    let summary = Summary::from_records(records, window_s);
    let endpoints: Vec<EndpointSummary> = if spec.endpoints {
        ["large", "small"]
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let mine: Vec<RequestRecord> = records
                    .iter()
                    .filter(|r| r.endpoint as usize == i)
                    .cloned()
                    .collect();
                EndpointSummary {
                    name: name.to_string(),
                    summary: Summary::from_records(&mine, window_s),
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    let checks = match spec.verdict {
        "FAIL" => json!([{
            "name": "error_rate < 0.01", "source": "slo", "actual": summary.error_rate,
            "target": 0.01, "ratio": null, "rule": "error_rate < 0.01", "status": "FAIL",
            "reason": format!("{:.3} does not satisfy < 0.01", summary.error_rate)
        }]),
        "PASS" => json!([{
            "name": "requests", "source": "run", "actual": summary.requests_ok, "target": null,
            "ratio": null, "rule": "at least one request succeeds", "status": "PASS",
            "reason": "requests succeeded"
        }]),
        _ => json!([]),
    };
    let load = spec.kind != "accuracy";
    // What an accuracy phase of `requests` questions that scored `accuracy` writes.
    let accuracy_detail = spec.accuracy.map(|score| {
        json!({
            "task": "gsm8k", "dataset": "gsm8k/test.jsonl", "n": spec.requests, "errors": 0,
            "filters": [{ "filter": "strict-match", "score": score }],
            "judged_filter": "strict-match",
            "threshold": { "kind": "absolute", "value": 81.6, "theta": null, "passed": true },
            "under_load": if load { Some(spec.requests) } else { None },
            "baseline": null,
        })
    });
    serde_json::from_value(json!({
        "run_id": spec.run_id,
        "timestamp": spec.timestamp,
        "trial": spec.trial(),
        "kind": spec.kind,
        "case": spec.case,
        "model": "sim-small",
        "server": "embedded",
        "api": "chat",
        "isl": if load { spec.isl } else { 0 },
        "osl": if load { 64 } else { 0 },
        "mode": if load { spec.mode } else { "accuracy" },
        "concurrency": spec.concurrency,
        "rate": spec.rate,
        "num_prompts": spec.requests,
        "adjusted": null,
        "summary": if load { summary } else { Summary::default() },
        "endpoints": endpoints,
        "accuracy": spec.accuracy,
        "accuracy_threshold": spec.accuracy.map(|_| 81.6),
        "accuracy_detail": accuracy_detail,
        "verdict": { "status": spec.verdict, "checks": checks },
        "expect_fail": false,
    }))
    .expect("a trial report")
}

/// Writes the trial's folder and its `results.csv` row, as a trial does; returns the folder.
pub fn write_trial(out: &Path, spec: &Spec) -> PathBuf {
    let records = records(spec);
    let report = report(spec, &records);
    csv::append(&out.join("results.csv"), &report).expect("csv row");
    trial_dir::write(out, &report, &records, &[], !report.passed()).expect("trial folder")
}

/// A run with a knee sweep (1, 2, 4, 8 in flight), a user-mode and an open-loop trial, a
/// failing trial, a trial split over two endpoints, an accuracy trial and stress trials
/// under load, and a large trial (for downsampling).
pub fn full_run(out: &Path) -> Vec<Spec> {
    let mut specs: Vec<Spec> = [1, 2, 4, 8]
        .iter()
        .map(|c| Spec::perf("knee", *c))
        .collect();
    specs.push(Spec {
        isl: 1024,
        ..Spec::perf("knee", 1)
    });
    specs.push(Spec {
        mode: "users",
        ..Spec::perf("users", 4)
    });
    specs.push(Spec {
        mode: "open",
        rate: Some(20.0),
        concurrency: 0,
        ..Spec::perf("open", 0)
    });
    specs.push(Spec {
        fail_every: 5,
        verdict: "FAIL",
        ..Spec::perf("flaky", 4)
    });
    specs.push(Spec {
        endpoints: true,
        ..Spec::perf("split", 4)
    });
    specs.push(Spec {
        kind: "accuracy",
        accuracy: Some(95.0),
        ..Spec::perf("gsm", 4)
    });
    for c in [2, 8] {
        specs.push(Spec {
            kind: "stress",
            accuracy: Some(if c == 2 { 92.5 } else { 85.0 }),
            ..Spec::perf("gsm", c)
        });
    }
    specs.push(Spec {
        requests: 2000,
        ..Spec::perf("large", 16)
    });
    for spec in &specs {
        write_trial(out, spec);
    }
    specs
}
