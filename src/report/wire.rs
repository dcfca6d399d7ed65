//! The JSON edge of [`TrialReport`]: the flat object `summary.json` has always held. Enums
//! become strings here and nowhere earlier; reading a `summary.json` back gives the typed
//! report again.

use serde::{Deserialize, Serialize};

use super::attempts::Attempt;
use super::sim::SimStepReport;
use super::{
    AccuracyBody, EndpointSummary, LoadBody, LoadShape, TrialBody, TrialMeta, TrialReport,
};
use crate::accuracy::summary::AccuracySummary;
use crate::case::{Api, Expect, FitPolicy, Kind, ServerKind};
use crate::judge::Verdict;
use crate::matrix::Adjustment;
use crate::metrics::Summary;
use crate::server_metrics::ServerMetrics;

/// `mode` of an accuracy trial.
pub(super) const ACCURACY_MODE: &str = "accuracy";
/// `mode` of a sim trial.
pub(super) const SIM_MODE: &str = "sim";
/// `api` of a sim trial, which talks to no server.
const NO_API: &str = "-";

/// One trial as `summary.json` holds it, and as the CSV row is made from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct TrialRecord {
    pub(super) run_id: String,
    pub(super) timestamp: String,
    pub(super) trial: String,
    pub(super) kind: Kind,
    pub(super) case: String,
    pub(super) model: String,
    pub(super) server: ServerKind,
    pub(super) api: String,
    pub(super) isl: u32,
    pub(super) osl: u32,
    pub(super) mode: String,
    pub(super) concurrency: u32,
    pub(super) rate: Option<f64>,
    pub(super) num_prompts: u32,
    pub(super) adjusted: Option<String>,
    pub(super) summary: Summary,
    pub(super) endpoints: Vec<EndpointSummary>,
    pub(super) accuracy: Option<f64>,
    pub(super) accuracy_threshold: Option<f64>,
    pub(super) accuracy_detail: Option<AccuracySummary>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) server_metrics: Vec<ServerMetrics>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) sim: Option<SimStepReport>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) attempts: Vec<Attempt>,
    pub(super) verdict: Verdict,
    pub(super) expect_fail: bool,
}

/// Why a `summary.json` could not be read as a trial report.
#[derive(Debug, thiserror::Error)]
pub(super) enum WireError {
    /// A field's text is not one of its values.
    #[error("`{field}`: `{value}` is not {expected}")]
    Value {
        /// The field.
        field: &'static str,
        /// The text found.
        value: String,
        /// What it should be.
        expected: &'static str,
    },
}

/// `8192/128 neutral`: the lengths before the fit, and the policy.
pub(super) fn adjusted_text(a: &Adjustment) -> String {
    format!("{}/{} {}", a.isl, a.osl, a.policy.as_str())
}

fn parse_adjusted(text: &str) -> Result<Adjustment, WireError> {
    let bad = || WireError::Value {
        field: "adjusted",
        value: text.to_string(),
        expected: "`ISL/OSL policy`",
    };
    let (lengths, policy) = text.split_once(' ').ok_or_else(bad)?;
    let (isl, osl) = lengths.split_once('/').ok_or_else(bad)?;
    let policy = [
        FitPolicy::Neutral,
        FitPolicy::PreserveIsl,
        FitPolicy::PreserveOsl,
    ]
    .into_iter()
    .find(|p| p.as_str() == policy)
    .ok_or_else(bad)?;
    Ok(Adjustment {
        isl: isl.parse().map_err(|_| bad())?,
        osl: osl.parse().map_err(|_| bad())?,
        policy,
    })
}

fn parse_api(text: &str) -> Result<Option<Api>, WireError> {
    if text == NO_API {
        return Ok(None);
    }
    [Api::Chat, Api::Completions, Api::LlamaCpp]
        .into_iter()
        .find(|a| a.as_str() == text)
        .map(Some)
        .ok_or_else(|| WireError::Value {
            field: "api",
            value: text.to_string(),
            expected: "`chat`, `completions`, `llama_cpp` or `-`",
        })
}

impl From<TrialReport> for TrialRecord {
    fn from(report: TrialReport) -> TrialRecord {
        let listing = report.listing();
        let TrialReport {
            meta,
            body,
            verdict,
        } = report;
        let mut record = TrialRecord {
            run_id: meta.run_id,
            timestamp: meta.timestamp,
            trial: meta.trial,
            kind: meta.kind,
            case: meta.case,
            model: meta.model,
            server: meta.server,
            api: meta.api.map_or(NO_API, Api::as_str).to_string(),
            isl: listing.isl,
            osl: listing.osl,
            mode: listing.mode.to_string(),
            concurrency: listing.concurrency,
            rate: listing.rate,
            num_prompts: listing.num_prompts,
            adjusted: None,
            summary: Summary::default(),
            endpoints: Vec::new(),
            accuracy: None,
            accuracy_threshold: None,
            accuracy_detail: None,
            server_metrics: Vec::new(),
            sim: None,
            attempts: Vec::new(),
            verdict,
            expect_fail: meta.expect == Expect::Fail,
        };
        let accuracy = match body {
            TrialBody::Load(load) => {
                let load = *load;
                record.adjusted = load.adjusted.as_ref().map(adjusted_text);
                record.summary = load.summary;
                record.endpoints = load.endpoints;
                record.server_metrics = load.server_metrics;
                record.attempts = load.attempts;
                load.accuracy
            }
            TrialBody::Accuracy(body) => body.accuracy,
            TrialBody::Sim(sim) => {
                record.sim = Some(sim);
                None
            }
        };
        record.accuracy = accuracy.as_ref().and_then(AccuracySummary::score);
        record.accuracy_threshold = accuracy
            .as_ref()
            .and_then(|a| a.threshold.as_ref())
            .map(|t| t.value);
        record.accuracy_detail = accuracy;
        record
    }
}

impl TryFrom<TrialRecord> for TrialReport {
    type Error = WireError;

    fn try_from(r: TrialRecord) -> Result<TrialReport, WireError> {
        let body = match (r.sim, r.mode.as_str()) {
            (Some(sim), _) => TrialBody::Sim(sim),
            (None, ACCURACY_MODE) => TrialBody::Accuracy(AccuracyBody {
                concurrency: r.concurrency,
                accuracy: r.accuracy_detail,
            }),
            (None, mode) => {
                let shape = match mode {
                    "closed" => LoadShape::Closed {
                        concurrency: r.concurrency,
                    },
                    "users" => LoadShape::Users {
                        users: r.concurrency,
                    },
                    "consistency" => LoadShape::Consistency,
                    "sessions" => LoadShape::Sessions {
                        rate: r.rate.unwrap_or(0.0),
                    },
                    "open" => LoadShape::Open {
                        rate: r.rate.unwrap_or(0.0),
                        max_in_flight: (r.concurrency > 0).then_some(r.concurrency),
                    },
                    other => {
                        return Err(WireError::Value {
                            field: "mode",
                            value: other.to_string(),
                            expected: "`closed`, `open`, `users`, `consistency`, `sessions`, `accuracy` or `sim`",
                        });
                    }
                };
                TrialBody::Load(Box::new(LoadBody {
                    isl: r.isl,
                    osl: r.osl,
                    shape,
                    num_prompts: r.num_prompts,
                    adjusted: r.adjusted.as_deref().map(parse_adjusted).transpose()?,
                    summary: r.summary,
                    endpoints: r.endpoints,
                    server_metrics: r.server_metrics,
                    accuracy: r.accuracy_detail,
                    attempts: r.attempts,
                }))
            }
        };
        Ok(TrialReport {
            meta: TrialMeta {
                run_id: r.run_id,
                timestamp: r.timestamp,
                trial: r.trial,
                kind: r.kind,
                case: r.case,
                model: r.model,
                server: r.server,
                api: parse_api(&r.api)?,
                expect: if r.expect_fail {
                    Expect::Fail
                } else {
                    Expect::Pass
                },
            },
            body,
            verdict: r.verdict,
        })
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::report::sample::{ReportBuilder, accuracy_summary, sample_report};

    /// The keys `summary.json` has always had, in order.
    const KEYS: [&str; 24] = [
        "run_id",
        "timestamp",
        "trial",
        "kind",
        "case",
        "model",
        "server",
        "api",
        "isl",
        "osl",
        "mode",
        "concurrency",
        "rate",
        "num_prompts",
        "adjusted",
        "summary",
        "endpoints",
        "accuracy",
        "accuracy_threshold",
        "accuracy_detail",
        "server_metrics",
        "sim",
        "verdict",
        "expect_fail",
    ];

    fn sim_report() -> TrialReport {
        let mut report = sample_report();
        report.meta.kind = Kind::Sim;
        report.meta.api = None;
        report.body = TrialBody::Sim(SimStepReport {
            preset: "small".into(),
            step: "bins".into(),
            hardware: "h100-sxm".into(),
            runs: 1,
            requests: 10,
            completed: 10,
            rejected: 0,
            knee_replicas: Some(2),
            best_bins: None,
            findings: Vec::new(),
            table: String::new(),
            wall_s: 0.5,
        });
        report
    }

    /// A consistency trial, with its consistency summary.
    fn consistency_report() -> TrialReport {
        use crate::metrics::consistency::{Consistency, Reading, Spread};
        let mut report = sample_report();
        let load = report.load_mut().expect("a load trial");
        load.shape = LoadShape::Consistency;
        load.summary.consistency = Some(Consistency {
            requests: 40,
            ttft_ms: Spread {
                count: 40,
                mean: 41.0,
                std: 4.1,
                cv: 0.1,
            },
            decode_tok_s: None,
            drift: None,
            reading: Reading::BeforeTheGpu,
        });
        report
    }

    #[rstest]
    #[case::load(sample_report())]
    #[case::consistency(consistency_report())]
    #[case::accuracy(ReportBuilder::accuracy("c", "gsm8k_n40", Some(accuracy_summary(40, 90.0))).build())]
    #[case::accuracy_that_could_not_ask(ReportBuilder::accuracy("c", "gsm8k_n40", None).build())]
    #[case::sim(sim_report())]
    fn every_kind_of_report_reads_back_as_written(#[case] report: TrialReport) {
        let json = serde_json::to_string(&report).expect("json");
        let back: TrialReport = serde_json::from_str(&json).expect("reads back");
        assert_eq!(back, report);
    }

    #[rstest]
    #[case::load(sample_report(), &["server_metrics", "sim"])]
    #[case::sim(sim_report(), &["server_metrics"])]
    fn summary_json_keeps_its_flat_keys(#[case] report: TrialReport, #[case] absent: &[&str]) {
        let value = serde_json::to_value(&report).expect("json");
        let mut keys: Vec<&str> = value
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        let mut expected: Vec<&str> = KEYS
            .iter()
            .copied()
            .filter(|k| !absent.contains(k))
            .collect();
        expected.sort_unstable();
        assert_eq!(keys, expected);
    }

    #[test]
    fn a_consistency_trial_says_its_mode_and_reading() {
        let value = serde_json::to_value(consistency_report()).expect("json");
        assert_eq!(value["mode"], "consistency");
        assert_eq!(value["concurrency"], 1);
        assert_eq!(value["summary"]["consistency"]["ttft_ms"]["cv"], 0.1);
        assert_eq!(value["summary"]["consistency"]["reading"], "before_the_gpu");
        let plain = serde_json::to_value(sample_report()).expect("json");
        assert!(plain["summary"].get("consistency").is_none());
    }

    #[test]
    fn an_unknown_mode_is_an_error_naming_it() {
        let mut value = serde_json::to_value(sample_report()).expect("json");
        value["mode"] = "sideways".into();
        let err = serde_json::from_value::<TrialReport>(value).expect_err("unknown mode");
        assert!(err.to_string().contains("`mode`: `sideways`"), "{err}");
    }

    #[rstest]
    #[case("8192/128 neutral")]
    #[case("100/28 preserve_isl")]
    #[case("1/2 preserve_osl")]
    fn adjustments_read_back_as_written(#[case] text: &str) {
        let parsed = parse_adjusted(text).expect("valid");
        assert_eq!(adjusted_text(&parsed), text);
    }

    #[rstest]
    #[case("8192 neutral")]
    #[case("8192/128 sideways")]
    #[case("a/128 neutral")]
    fn bad_adjustments_are_errors(#[case] text: &str) {
        let err = parse_adjusted(text).expect_err("invalid");
        assert!(err.to_string().contains("`adjusted`"), "{err}");
    }
}
