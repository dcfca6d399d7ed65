//! Reports: every view here is computed from one [`TrialReport`] per trial.

pub mod analysis;
pub mod attempts;
pub mod columns;
pub mod csv;
mod error;
pub mod html;
pub mod knee;
pub mod markdown;
pub mod publish;
pub mod pushgateway;
pub mod rerun;
pub mod run;
pub mod sample;
pub mod sim;
pub mod summary_md;
pub mod sweep;
pub mod table;
pub mod trial_dir;
mod wire;

pub use error::ReportError;

use serde::{Deserialize, Serialize};

use crate::accuracy::summary::AccuracySummary;
use crate::case::{Api, Expect, Kind, LoadMode, ServerKind};
use crate::judge::Verdict;
use crate::matrix::Adjustment;
use crate::metrics::Summary;
use crate::server_metrics::ServerMetrics;
use sim::SimStepReport;

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
///
/// In JSON (`summary.json`) it is one flat object whose keys have not changed since the first
/// release (see `wire.rs`); in memory it is typed: what every trial has ([`TrialMeta`]),
/// what its kind measured ([`TrialBody`]), and the verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "wire::TrialRecord", try_from = "wire::TrialRecord")]
pub struct TrialReport {
    /// Names, kind and provenance.
    pub meta: TrialMeta,
    /// What the trial measured.
    pub body: TrialBody,
    /// Checks and overall status.
    pub verdict: Verdict,
}

/// What every trial report has, whatever its kind.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialMeta {
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
    /// Model spec name (the simulated model for a sim trial).
    pub model: String,
    /// What served it.
    pub server: ServerKind,
    /// Protocol; none for a sim trial, which talks to no server.
    pub api: Option<Api>,
    /// What the case expects of its checks (`expect: fail` inverts the test outcome).
    pub expect: Expect,
}

/// What a trial measured, by what kind of trial it was.
#[derive(Debug, Clone, PartialEq)]
pub enum TrialBody {
    /// A load trial (`perf`, `stress`).
    Load(Box<LoadBody>),
    /// An accuracy trial: the task alone, no load.
    Accuracy(AccuracyBody),
    /// A simulator study step (`sim`), in virtual time.
    Sim(SimStepReport),
}

/// What a load trial measured.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadBody {
    /// Input sequence length.
    pub isl: u32,
    /// Output sequence length.
    pub osl: u32,
    /// How the load was driven.
    pub shape: LoadShape,
    /// Measured requests planned (the prompt pool with a duration).
    pub num_prompts: u32,
    /// The pre-fit ISL/OSL when the matrix fitted them to the context.
    pub adjusted: Option<Adjustment>,
    /// Measurements of every load request.
    pub summary: Summary,
    /// The same measurements split by endpoint, when requests went to several.
    pub endpoints: Vec<EndpointSummary>,
    /// The servers' own Prometheus metrics over the load, one per scraped server.
    pub server_metrics: Vec<ServerMetrics>,
    /// A stress trial's accuracy phase (asked while the load ran).
    pub accuracy: Option<AccuracySummary>,
    /// Each run's figures when the load ran more than once (`load.repeat`, a gate's
    /// `retries`); empty when it ran once. The summary above pools every run.
    pub attempts: Vec<attempts::Attempt>,
}

/// What an accuracy trial measured.
#[derive(Debug, Clone, PartialEq)]
pub struct AccuracyBody {
    /// Questions in flight at once.
    pub concurrency: u32,
    /// The scores; none when the trial could not ask (its server failed).
    pub accuracy: Option<AccuracySummary>,
}

/// How a load trial drove its server.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LoadShape {
    /// A closed loop of `concurrency` requests in flight.
    Closed {
        /// Requests in flight.
        concurrency: u32,
    },
    /// An open loop: arrivals at `rate` per second, whatever the server does.
    Open {
        /// Requests per second asked for.
        rate: f64,
        /// The case's cap on requests in flight, if any.
        max_in_flight: Option<u32>,
    },
    /// Closed-loop virtual users.
    Users {
        /// Virtual users.
        users: u32,
    },
    /// The same prompt, one request at a time (`load.mode: consistency`).
    Consistency,
    /// Multi-turn sessions arriving at `rate` per second (`load.mode: sessions`).
    Sessions {
        /// Session arrivals per second asked for.
        rate: f64,
    },
}

impl LoadShape {
    /// The load mode.
    pub fn mode(&self) -> LoadMode {
        match self {
            LoadShape::Closed { .. } => LoadMode::Closed,
            LoadShape::Open { .. } => LoadMode::Open,
            LoadShape::Users { .. } => LoadMode::Users,
            LoadShape::Consistency => LoadMode::Consistency,
            LoadShape::Sessions { .. } => LoadMode::Sessions,
        }
    }

    /// The open loop's rate (requests per second), or the session arrivals per second.
    pub fn rate(&self) -> Option<f64> {
        match *self {
            LoadShape::Open { rate, .. } | LoadShape::Sessions { rate } => Some(rate),
            _ => None,
        }
    }

    /// The `concurrency` column: requests in flight (closed; 1 for consistency), users
    /// (users), or the open loop's cap (0 for none).
    pub fn concurrency_column(&self) -> u32 {
        match *self {
            LoadShape::Consistency => 1,
            LoadShape::Closed { concurrency } => concurrency,
            LoadShape::Users { users } => users,
            LoadShape::Open { max_in_flight, .. } => max_in_flight.unwrap_or(0),
            LoadShape::Sessions { .. } => 0,
        }
    }
}

/// A trial's load parameters in the flat form of `summary.json` and `results.csv`: an
/// accuracy trial has mode `accuracy`, no lengths, its questions in flight and its questions
/// as prompts; a sim trial has mode `sim` and zeros.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Listing {
    /// `closed`, `open`, `users`, `consistency`, `accuracy` or `sim`.
    pub mode: &'static str,
    /// Input sequence length (0 without load).
    pub isl: u32,
    /// Output sequence length (0 without load).
    pub osl: u32,
    /// Requests in flight, users, the open loop's cap (0 for none), or questions in flight.
    pub concurrency: u32,
    /// The open loop's rate.
    pub rate: Option<f64>,
    /// Measured requests, or an accuracy trial's questions.
    pub num_prompts: u32,
}

impl TrialReport {
    /// The load trial's body, if it is one.
    pub fn load(&self) -> Option<&LoadBody> {
        match &self.body {
            TrialBody::Load(load) => Some(load),
            _ => None,
        }
    }

    /// The load trial's body, mutably.
    pub fn load_mut(&mut self) -> Option<&mut LoadBody> {
        match &mut self.body {
            TrialBody::Load(load) => Some(load),
            _ => None,
        }
    }

    /// The sim trial's step, if it is one.
    pub fn sim(&self) -> Option<&SimStepReport> {
        match &self.body {
            TrialBody::Sim(sim) => Some(sim),
            _ => None,
        }
    }

    /// The load summary; `None` for accuracy and sim trials, which send no load.
    pub fn summary(&self) -> Option<&Summary> {
        self.load().map(|l| &l.summary)
    }

    /// The accuracy phase in full, when one ran (accuracy and stress trials).
    pub fn accuracy(&self) -> Option<&AccuracySummary> {
        match &self.body {
            TrialBody::Load(load) => load.accuracy.as_ref(),
            TrialBody::Accuracy(body) => body.accuracy.as_ref(),
            TrialBody::Sim(_) => None,
        }
    }

    /// The judged accuracy score (0–100), when an accuracy phase ran.
    pub fn accuracy_score(&self) -> Option<f64> {
        self.accuracy().and_then(AccuracySummary::score)
    }

    /// The accuracy threshold the score was judged against.
    pub fn accuracy_threshold(&self) -> Option<f64> {
        self.accuracy()
            .and_then(|a| a.threshold.as_ref())
            .map(|t| t.value)
    }

    /// The load parameters as the flat views (`summary.json`, `results.csv`, the run's
    /// order) list them, whatever the kind of trial.
    pub fn listing(&self) -> Listing {
        match &self.body {
            TrialBody::Load(load) => Listing {
                mode: load.shape.mode().as_str(),
                isl: load.isl,
                osl: load.osl,
                concurrency: load.shape.concurrency_column(),
                rate: load.shape.rate(),
                num_prompts: load.num_prompts,
            },
            TrialBody::Accuracy(body) => Listing {
                mode: wire::ACCURACY_MODE,
                isl: 0,
                osl: 0,
                concurrency: body.concurrency,
                rate: None,
                num_prompts: body
                    .accuracy
                    .as_ref()
                    .map_or(0, |a| u32::try_from(a.n).unwrap_or(u32::MAX)),
            },
            TrialBody::Sim(_) => Listing {
                mode: wire::SIM_MODE,
                isl: 0,
                osl: 0,
                concurrency: 0,
                rate: None,
                num_prompts: 0,
            },
        }
    }

    /// The load shape, for load trials.
    pub fn shape(&self) -> Option<LoadShape> {
        self.load().map(|l| l.shape)
    }

    /// `[kind] trial`, as the harness names it.
    pub fn full_name(&self) -> String {
        format!("[{}] {}", self.meta.kind.as_str(), self.meta.trial)
    }

    /// Whether the trial passes as a test: its verdict is what the case expects.
    pub fn passed(&self) -> bool {
        self.verdict.meets(self.meta.expect)
    }

    /// Whether the case expects its checks to fail (`expect: fail`).
    pub fn expects_failure(&self) -> bool {
        self.meta.expect == Expect::Fail
    }
}
