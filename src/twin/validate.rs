//! Validation: calibrate on some trials of a run, predict the others, and measure the error.
//!
//! Each held-out trial's closed loop (its ISL, OSL, concurrency and request count, read from
//! its report) is simulated with the profile calibrated on the fit trials
//! ([`super::predict::closed_loop`], with the calibration's overhead), and each of
//! [`Metric::ALL`] of the prediction is compared with the measurement:
//! `error = predicted / measured − 1`. The validation fails when a held-out trial's TTFT p50
//! or output throughput is off by more than the allowed error.
//!
//! Every other closed-loop trial of the run (the fit trials too) is predicted the same way, so
//! that the run's report can draw the whole predicted curve over the measured one.

use std::fmt::Write as _;

use super::TwinError;
use super::calibrate::{CalibrateOptions, Calibration, calibrate_run, matches_filter};
use super::predict::{ClosedLoop, closed_loop};
use crate::metrics::Summary;
use crate::report::LoadShape;
use crate::report::run::{Run, RunTrial};

/// The error allowed unless one is given: 15 %.
pub const DEFAULT_MAX_ERROR: f64 = 0.15;

/// A metric compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Median time to first token.
    TtftP50,
    /// 95th percentile of the time to first token.
    TtftP95,
    /// Mean time per output token.
    TpotMean,
    /// Median end-to-end latency.
    E2elP50,
    /// Output tokens per second.
    OutputTokS,
}

impl Metric {
    /// Every metric, in table order.
    pub const ALL: [Metric; 5] = [
        Metric::TtftP50,
        Metric::TtftP95,
        Metric::TpotMean,
        Metric::E2elP50,
        Metric::OutputTokS,
    ];

    /// The name in tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::TtftP50 => "ttft_p50_ms",
            Metric::TtftP95 => "ttft_p95_ms",
            Metric::TpotMean => "tpot_mean_ms",
            Metric::E2elP50 => "e2el_p50_ms",
            Metric::OutputTokS => "output_tok_s",
        }
    }

    /// Whether its error decides the validation.
    pub fn gates(self) -> bool {
        matches!(self, Metric::TtftP50 | Metric::OutputTokS)
    }

    /// Its value in a summary.
    pub fn of(self, s: &Summary) -> Option<f64> {
        match self {
            Metric::TtftP50 => s.ttft_ms.as_ref().map(|d| d.p50),
            Metric::TtftP95 => s.ttft_ms.as_ref().map(|d| d.p95),
            Metric::TpotMean => s.tpot_ms.as_ref().map(|d| d.mean),
            Metric::E2elP50 => s.e2el_ms.as_ref().map(|d| d.p50),
            Metric::OutputTokS => Some(s.output_tok_s),
        }
    }
}

/// One metric of one held-out trial.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricError {
    /// The metric.
    pub metric: Metric,
    /// Measured.
    pub measured: f64,
    /// Predicted.
    pub predicted: f64,
    /// `predicted / measured − 1`.
    pub error: f64,
}

/// A held-out trial and its errors.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldOut {
    /// The trial's name.
    pub name: String,
    /// Its concurrency.
    pub concurrency: u32,
    /// One per metric both sides have.
    pub errors: Vec<MetricError>,
}

/// A validation.
#[derive(Debug, Clone)]
pub struct Validation {
    /// The calibration on the fit trials.
    pub calibration: Calibration,
    /// The held-out trials.
    pub held_out: Vec<HeldOut>,
    /// Held-out trials that could not be predicted, with why.
    pub skipped: Vec<(String, String)>,
    /// The error allowed on the gating metrics.
    pub max_error: f64,
    /// Every closed-loop trial of the run (fit and held out), its summary replaced by the
    /// prediction: what the report draws dashed over the measurements
    /// ([`crate::report::html::Extras::predicted`]).
    pub predicted: Vec<RunTrial>,
}

impl Validation {
    /// `trial metric error` of every gating metric past the allowed error.
    pub fn failures(&self) -> Vec<String> {
        self.held_out
            .iter()
            .flat_map(|t| {
                t.errors
                    .iter()
                    .filter(|e| e.metric.gates() && past(e.error, self.max_error))
                    .map(|e| format!("{} {} {:+.1} %", t.name, e.metric.as_str(), e.error * 100.0))
            })
            .collect()
    }

    /// The calibration's table, then one row per held-out trial and metric.
    pub fn render(&self) -> String {
        let mut s = self.calibration.render();
        let _ = writeln!(
            s,
            "\nheld-out trials (error = predicted / measured − 1; gating: ttft_p50_ms and \
             output_tok_s within ±{:.1} %):",
            self.max_error * 100.0
        );
        let _ = writeln!(
            s,
            "  {:<48} {:<13} {:>12} {:>12} {:>9}",
            "trial", "metric", "measured", "predicted", "error"
        );
        for t in &self.held_out {
            for e in &t.errors {
                let flag = if e.metric.gates() && past(e.error, self.max_error) {
                    "  FAIL"
                } else {
                    ""
                };
                let _ = writeln!(
                    s,
                    "  {:<48} {:<13} {:>12.3} {:>12.3} {:>+8.1} %{flag}",
                    t.name,
                    e.metric.as_str(),
                    e.measured,
                    e.predicted,
                    e.error * 100.0
                );
            }
        }
        for (name, why) in &self.skipped {
            let _ = writeln!(s, "  {name}: not predicted ({why})");
        }
        s
    }
}

/// Whether `error` is past the allowed `max` (a NaN error is).
fn past(error: f64, max: f64) -> bool {
    error.is_nan() || error.abs() > max
}

/// Calibrates on the trials of `run` matching `fit`, predicts those matching `holdout`, and
/// measures the error (module documentation).
pub fn validate_run(
    run: &Run,
    fit: &str,
    holdout: &str,
    slots: Option<u32>,
    max_error: f64,
) -> Result<Validation, TwinError> {
    let options = CalibrateOptions {
        trials: Some(fit.to_string()),
        slots,
    };
    let calibration = calibrate_run(run, &options)?;
    let profile = calibration.profile();
    let mut held_out = Vec::new();
    let mut skipped = Vec::new();
    let mut predicted_trials = Vec::new();
    for trial in &run.trials {
        let Some(load) = trial.report.load() else {
            continue;
        };
        let name = trial.name();
        let checked = matches_filter(&name, holdout);
        let LoadShape::Closed { concurrency } = load.shape else {
            if checked {
                skipped.push((name, "only closed-loop loads are predicted".to_string()));
            }
            continue;
        };
        let measured = &load.summary;
        let requests =
            u32::try_from(measured.requests_ok + measured.requests_failed).unwrap_or(u32::MAX);
        let records = closed_loop(
            &profile,
            ClosedLoop {
                concurrency,
                requests,
                isl: load.isl,
                osl: load.osl,
                overhead_s: calibration.overhead_s,
                send_gap_s: calibration.send_gap_s,
                admission_window_s: calibration.admission_window_s,
            },
        )?;
        let duration_s = records
            .iter()
            .filter_map(|r| r.e2el_ms.map(|e| r.send_ms + e))
            .fold(0.0, f64::max)
            / 1e3;
        let predicted = Summary::from_records(&records, duration_s);
        if checked {
            let errors = Metric::ALL
                .iter()
                .filter_map(|&metric| {
                    let (m, p) = (metric.of(measured)?, metric.of(&predicted)?);
                    (m > 0.0).then(|| MetricError {
                        metric,
                        measured: m,
                        predicted: p,
                        error: p / m - 1.0,
                    })
                })
                .collect();
            held_out.push(HeldOut {
                name,
                concurrency,
                errors,
            });
        }
        let mut twin = trial.clone();
        if let Some(body) = twin.report.load_mut() {
            body.summary = predicted;
            body.endpoints.clear();
            body.server_metrics.clear();
        }
        predicted_trials.push(twin);
    }
    if held_out.is_empty() && skipped.is_empty() {
        return Err(TwinError::NoTrials {
            run: run.run_id.clone(),
            filter: holdout.to_string(),
        });
    }
    Ok(Validation {
        calibration,
        held_out,
        skipped,
        max_error,
        predicted: predicted_trials,
    })
}
