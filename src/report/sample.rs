//! Trial reports for tests: a fixed sample, a run of them, and a builder for more.

use std::path::PathBuf;

use super::run::{Run, RunTrial};
use super::{
    AccuracyBody, EndpointSummary, LoadBody, LoadShape, TrialBody, TrialMeta, TrialReport,
};
use crate::accuracy::summary::{AccuracySummary, FilterScore};
use crate::case::{Api, Expect, Kind, ServerKind};
use crate::judge::{Check, CheckSource, Status, Verdict};
use crate::metrics::{Distribution, ErrorClass, Summary};

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
            source: CheckSource::Run,
            actual: Some(4.0),
            target: None,
            ratio: None,
            rule: "at least one request succeeds".into(),
            status: Status::Pass,
            reason: "4 of 5 requests succeeded".into(),
        },
        Check {
            name: "ttft_ms.mean (target)".into(),
            source: CheckSource::Target,
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
            source: CheckSource::Target,
            actual: Some(200.0),
            target: None,
            ratio: None,
            rule: "no target".into(),
            status: Status::NotApplicable,
            reason: "no reference target for this combination".into(),
        },
        Check {
            name: "ttft_ms.p95 < 50".into(),
            source: CheckSource::Slo,
            actual: Some(57.64375),
            target: Some(50.0),
            ratio: None,
            rule: "ttft_ms.p95 < 50".into(),
            status: Status::Fail,
            reason: "57.644 does not satisfy < 50".into(),
        },
    ];
    ReportBuilder::load("demo-chat", "isl128_osl16_c2_n5")
        .run_id("run-1")
        .timestamp("2026-11-24T19:00:00Z")
        .lengths(128, 16)
        .shape(LoadShape::Closed { concurrency: 2 })
        .num_prompts(5)
        .summary(summary)
        .checks(checks)
        .build()
}

/// Builds trial reports for tests: a load or accuracy trial of a case, with the defaults of
/// the embedded server (`sim-small`, chat, one closed-loop request in flight) and no checks.
#[derive(Debug, Clone)]
pub struct ReportBuilder {
    report: TrialReport,
}

impl ReportBuilder {
    fn new(kind: Kind, case: &str, slug: &str, body: TrialBody) -> ReportBuilder {
        ReportBuilder {
            report: TrialReport {
                meta: TrialMeta {
                    run_id: "run-1".into(),
                    timestamp: "2026-01-01T00:00:00Z".into(),
                    trial: format!("{case}::{slug}"),
                    kind,
                    case: case.into(),
                    model: "sim-small".into(),
                    server: ServerKind::Embedded,
                    api: Some(Api::Chat),
                    expect: Expect::Pass,
                },
                body,
                verdict: Verdict::from_checks(Vec::new()),
            },
        }
    }

    /// A perf trial `case::slug`.
    pub fn load(case: &str, slug: &str) -> ReportBuilder {
        let body = TrialBody::Load(Box::new(LoadBody {
            isl: 128,
            osl: 16,
            shape: LoadShape::Closed { concurrency: 1 },
            num_prompts: 1,
            adjusted: None,
            summary: Summary::default(),
            endpoints: Vec::new(),
            server_metrics: Vec::new(),
            accuracy: None,
            attempts: Vec::new(),
        }));
        ReportBuilder::new(Kind::Perf, case, slug, body)
    }

    /// An accuracy trial `case::slug` that scored `accuracy`.
    pub fn accuracy(case: &str, slug: &str, accuracy: Option<AccuracySummary>) -> ReportBuilder {
        let body = TrialBody::Accuracy(AccuracyBody {
            concurrency: 1,
            accuracy,
        });
        ReportBuilder::new(Kind::Accuracy, case, slug, body)
    }

    /// The kind (`perf` or `stress` for a load trial).
    pub fn kind(mut self, kind: Kind) -> ReportBuilder {
        self.report.meta.kind = kind;
        self
    }

    /// The run id.
    pub fn run_id(mut self, run_id: &str) -> ReportBuilder {
        self.report.meta.run_id = run_id.into();
        self
    }

    /// When the trial finished.
    pub fn timestamp(mut self, timestamp: &str) -> ReportBuilder {
        self.report.meta.timestamp = timestamp.into();
        self
    }

    /// The trial name without the kind.
    pub fn trial(mut self, trial: &str) -> ReportBuilder {
        self.report.meta.trial = trial.into();
        self
    }

    /// What the case expects.
    pub fn expect(mut self, expect: Expect) -> ReportBuilder {
        self.report.meta.expect = expect;
        self
    }

    /// The checks (the verdict follows from them).
    pub fn checks(mut self, checks: Vec<Check>) -> ReportBuilder {
        self.report.verdict = Verdict::from_checks(checks);
        self
    }

    fn with_load(mut self, change: impl FnOnce(&mut LoadBody)) -> ReportBuilder {
        if let Some(load) = self.report.load_mut() {
            change(load);
        }
        self
    }

    /// A load trial's ISL and OSL.
    pub fn lengths(self, isl: u32, osl: u32) -> ReportBuilder {
        self.with_load(|l| {
            l.isl = isl;
            l.osl = osl;
        })
    }

    /// A load trial's shape.
    pub fn shape(self, shape: LoadShape) -> ReportBuilder {
        self.with_load(|l| l.shape = shape)
    }

    /// A load trial's measured requests.
    pub fn num_prompts(self, n: u32) -> ReportBuilder {
        self.with_load(|l| l.num_prompts = n)
    }

    /// A load trial's summary.
    pub fn summary(self, summary: Summary) -> ReportBuilder {
        self.with_load(|l| l.summary = summary)
    }

    /// A load trial's per-endpoint summaries.
    pub fn endpoints(self, endpoints: Vec<EndpointSummary>) -> ReportBuilder {
        self.with_load(|l| l.endpoints = endpoints)
    }

    /// A stress trial's accuracy phase.
    pub fn load_accuracy(self, accuracy: AccuracySummary) -> ReportBuilder {
        self.with_load(|l| l.accuracy = Some(accuracy))
    }

    /// The report.
    pub fn build(self) -> TrialReport {
        self.report
    }
}

/// An accuracy phase of `n` questions that scored `score` on its one filter, `exact`.
pub fn accuracy_summary(n: usize, score: f64) -> AccuracySummary {
    AccuracySummary {
        task: "gsm8k".into(),
        dataset: "gsm8k/test.jsonl".into(),
        n,
        errors: 0,
        filters: vec![FilterScore {
            filter: "exact".into(),
            score,
        }],
        judged_filter: "exact".into(),
        threshold: None,
        under_load: None,
        baseline: None,
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
    passing.meta.trial = "demo-chat::isl128_osl16_c4_n5".into();
    if let Some(load) = passing.load_mut() {
        load.shape = LoadShape::Closed { concurrency: 4 };
        load.summary.error_rate = 0.0;
        load.summary.requests_failed = 0;
        load.summary.errors.clear();
    }
    passing.verdict = Verdict::from_checks(vec![passing.verdict.checks[0].clone()]);
    let mut accuracy =
        ReportBuilder::accuracy("demo-chat", "gsm8k_n40", Some(accuracy_summary(40, 92.5)))
            .timestamp("2026-11-24T19:00:00Z")
            .build();
    if let TrialBody::Accuracy(body) = &mut accuracy.body {
        body.concurrency = 2;
    }
    let mut split = passing.clone();
    split.meta.case = "demo-endpoints".into();
    split.meta.trial = "demo-endpoints::isl128_osl16_c4_n5".into();
    let passing_summary = passing.summary().cloned().unwrap_or_default();
    if let Some(load) = split.load_mut() {
        load.endpoints = ["large", "small"]
            .iter()
            .map(|name| EndpointSummary {
                name: name.to_string(),
                summary: passing_summary.clone(),
            })
            .collect();
    }
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

/// Trials of one case at ISL 128 … 4096 and concurrency 1 whose median TTFT is
/// 20 + 400·(ISL/4096)ᵏ ms: how prefill scales, with a known exponent.
pub fn isl_series_run(k: f64) -> Vec<RunTrial> {
    [128u32, 256, 512, 1024, 2048, 4096]
        .into_iter()
        .map(|isl| {
            let mut report = sample_report();
            report.meta.trial = format!("demo-chat::isl{isl}");
            let load = report.load_mut().expect("a load trial");
            load.isl = isl;
            load.shape = LoadShape::Closed { concurrency: 1 };
            if let Some(ttft) = load.summary.ttft_ms.as_mut() {
                ttft.p50 = 20.0 + 400.0 * (f64::from(isl) / 4096.0).powf(k);
            }
            RunTrial {
                report,
                dir: PathBuf::new(),
            }
        })
        .collect()
}
