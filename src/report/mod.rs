//! Reports: every view here is computed from one [`TrialReport`] per trial.

pub mod accuracy;
pub mod analysis;
pub mod columns;
pub mod csv;
mod error;
pub mod html;
pub mod knee;
pub mod markdown;
pub mod publish;
pub mod pushgateway;
pub mod run;
#[cfg(test)]
mod sample;
pub mod sim;
pub mod summary_md;
pub mod sweep;
pub mod table;
pub mod trial_dir;

pub use error::ReportError;

use serde::{Deserialize, Serialize};

use crate::case::Kind;
use crate::metrics::Summary;
use crate::verdict::Verdict;

/// The measurements of the requests that went to one endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointSummary {
    /// Endpoint name from the case.
    pub name: String,
    /// Its requests' summary (throughputs over the whole window).
    pub summary: Summary,
}

/// Everything known about one finished trial: the single result model that CSV rows, JSON
/// summaries and tables are views of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialReport {
    /// Identifies the run (one `cargo test` / `llm-stress run` invocation, or a nextest run).
    pub run_id: String,
    /// When the trial finished, RFC 3339 UTC.
    pub timestamp: String,
    /// Full trial name without the kind, such as `demo-chat::isl128_osl64_c4_n4`.
    pub trial: String,
    /// Trial kind.
    pub kind: Kind,
    /// Case name.
    pub case: String,
    /// Model spec name.
    pub model: String,
    /// Server label (`embedded`, `attach`, …).
    pub server: String,
    /// Protocol (`chat`, `completions`).
    pub api: String,
    /// Input sequence length.
    pub isl: u32,
    /// Output sequence length.
    pub osl: u32,
    /// Load mode: `closed`, `open` or `users`.
    pub mode: String,
    /// Requests in flight (closed), users (users), or the in-flight cap (open; 0 = none).
    pub concurrency: u32,
    /// Open loop: requests per second asked for.
    pub rate: Option<f64>,
    /// Measured requests.
    pub num_prompts: u32,
    /// The pre-adjustment ISL/OSL when the matrix fitted them to the context, e.g. `8192/128 neutral`.
    pub adjusted: Option<String>,
    /// Measurements.
    pub summary: Summary,
    /// The same measurements split by endpoint, when requests went to several.
    pub endpoints: Vec<EndpointSummary>,
    /// Accuracy score (0–100), when an accuracy phase ran.
    pub accuracy: Option<f64>,
    /// The accuracy threshold it was judged against.
    pub accuracy_threshold: Option<f64>,
    /// The accuracy phase in full: every filter's score, the threshold, the comparison with
    /// the accuracy trial.
    pub accuracy_detail: Option<accuracy::AccuracySummary>,
    /// The servers' own Prometheus metrics over the load, one per scraped server.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server_metrics: Vec<crate::server_metrics::ServerMetrics>,
    /// The simulator study step a `sim` trial ran (its load fields are empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sim: Option<sim::SimStepReport>,
    /// Checks and overall status.
    pub verdict: Verdict,
    /// True when the case expects its checks to fail (`expect: fail`).
    pub expect_fail: bool,
}
