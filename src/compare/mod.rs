//! Comparing a run with a baseline: for each trial both ran and each gated metric, is NEW
//! worse than BASE by more than the allowed change, with what confidence?
//!
//! - Latencies: a seeded block-bootstrap interval of the ratio NEW/BASE of the statistic
//!   (p50, p95, …) over the per-request records ([`stats`] says why blocks).
//! - Throughput (`output_tok_s`, `req_s`): the same over per-window throughputs — the
//!   measured window cut into equal windows — because a throughput is a property of a span
//!   of time, not of one request; `tput_user` (1000 / mean TPOT) from the TPOT interval.
//! - Error rate: Fisher's exact test that NEW fails more often.
//! - Accuracy: McNemar's exact test on the questions both runs answered, which uses the
//!   pairing (the same question right in one run and wrong in the other) and is far more
//!   sensitive than comparing two scores.
//!
//! Each metric's [`Outcome`]: `regressed` when the whole interval is worse than the allowed
//! change, `inconclusive` when it straddles that bound, `improved` when the whole interval
//! is better by more than the allowed change, `unchanged` otherwise. The tests give
//! `regressed`/`improved` when significant at the confidence level, `unchanged` otherwise.

pub mod baseline;
pub mod render;
pub mod runs;
pub mod sample;
pub mod stats;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use serde::Serialize;

pub use crate::case::gate::{Gate, InconclusivePolicy, Metric};
pub use sample::{Answers, TrialData};

use crate::case::gate::{Stat, Throughput};
use stats::{RatioInterval, Statistic};

/// What a comparison concluded about one metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Better by more than the allowed change, confidently.
    Improved,
    /// Within the allowed change (or no significant difference).
    Unchanged,
    /// Could be within or beyond the allowed change: more samples would tell.
    Inconclusive,
    /// Worse by more than the allowed change, confidently.
    Regressed,
}

impl Outcome {
    /// `improved`, `unchanged`, `inconclusive` or `regressed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Improved => "improved",
            Outcome::Unchanged => "unchanged",
            Outcome::Inconclusive => "inconclusive",
            Outcome::Regressed => "regressed",
        }
    }

    /// Whether the gate fails on this outcome under `policy`.
    pub fn fails(self, policy: InconclusivePolicy) -> bool {
        match self {
            Outcome::Regressed => true,
            Outcome::Inconclusive => policy == InconclusivePolicy::Fail,
            Outcome::Improved | Outcome::Unchanged => false,
        }
    }
}

/// One metric of one trial, compared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricComparison {
    /// The metric, such as `ttft_ms.p95`.
    #[serde(serialize_with = "serialize_display")]
    pub metric: Metric,
    /// BASE's value.
    pub base: f64,
    /// NEW's value.
    pub new: f64,
    /// The change: NEW/BASE − 1 for ratios; NEW − BASE for the error rate and accuracy (in
    /// points of percentage for accuracy).
    pub change: f64,
    /// The interval of NEW/BASE − 1 at the gate's confidence, for ratio metrics.
    pub interval: Option<(f64, f64)>,
    /// The test's p-value, for the error rate and accuracy.
    pub p_value: Option<f64>,
    /// Samples behind it: (BASE, NEW).
    pub samples: (usize, usize),
    /// The conclusion.
    pub outcome: Outcome,
    /// What the reader should know (few samples for a tail, the discordant questions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

fn serialize_display<S: serde::Serializer, T: std::fmt::Display>(
    value: &T,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// A trial compared metric by metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrialComparison {
    /// `[kind] case::combination`.
    pub trial: String,
    /// Every metric that both runs measured.
    pub metrics: Vec<MetricComparison>,
    /// Gated metrics neither side could compare, with why.
    pub skipped: Vec<String>,
    /// The worst metric outcome (`unchanged` when there is none).
    pub outcome: Outcome,
}

impl TrialComparison {
    /// The metrics with this outcome.
    pub fn with_outcome(&self, outcome: Outcome) -> impl Iterator<Item = &MetricComparison> {
        self.metrics.iter().filter(move |m| m.outcome == outcome)
    }
}

/// Compares one trial's evidence under `gate`. `seed` makes the bootstrap reproducible:
/// each metric's resampling is seeded from it and the trial's name.
pub fn compare_trial(
    name: &str,
    base: &TrialData,
    new: &TrialData,
    gate: &Gate,
    seed: u64,
) -> TrialComparison {
    let mut metrics = Vec::new();
    let mut skipped = Vec::new();
    for &metric in &gate.metrics {
        match compare_metric(metric, base, new, gate, metric_seed(seed, name, metric)) {
            Ok(m) => metrics.push(m),
            Err(why) => skipped.push(format!("{metric}: {why}")),
        }
    }
    let worst = metrics.iter().map(|m| m.outcome).max();
    let outcome = match worst {
        Some(worst) if worst >= Outcome::Inconclusive => worst,
        _ if metrics.iter().any(|m| m.outcome == Outcome::Improved) => Outcome::Improved,
        _ => Outcome::Unchanged,
    };
    TrialComparison {
        trial: name.to_string(),
        metrics,
        skipped,
        outcome,
    }
}

fn metric_seed(seed: u64, name: &str, metric: Metric) -> u64 {
    let mut hasher = DefaultHasher::new();
    (seed, name, metric.to_string()).hash(&mut hasher);
    hasher.finish()
}

/// One metric, or why it cannot be compared.
fn compare_metric(
    metric: Metric,
    base: &TrialData,
    new: &TrialData,
    gate: &Gate,
    seed: u64,
) -> Result<MetricComparison, String> {
    match metric {
        Metric::Latency(latency, stat) => {
            let (b, n) = (base.latency(latency), new.latency(latency));
            let samples = (b.values.len(), n.values.len());
            let interval = stats::ratio_interval(&b, &n, statistic(stat), gate.confidence, seed)
                .ok_or("no successful request on one side")?;
            let mut compared = ratio_comparison(metric, interval, samples, gate);
            let fewest = samples.0.min(samples.1);
            if fewest < stat.few_samples() {
                compared.note = Some(format!(
                    "{fewest} samples: a {} rests on few values",
                    stat.as_str()
                ));
            }
            Ok(compared)
        }
        Metric::Throughput(Throughput::TputUser) => {
            let (b, n) = (
                base.latency(crate::case::gate::Latency::Tpot),
                new.latency(crate::case::gate::Latency::Tpot),
            );
            let samples = (b.values.len(), n.values.len());
            let tpot = stats::ratio_interval(&b, &n, Statistic::Mean, gate.confidence, seed)
                .ok_or("no TPOT on one side")?;
            // tput_user = 1000 / mean TPOT: the ratio inverts and the interval flips.
            let interval = RatioInterval {
                base: 1000.0 / tpot.base,
                new: 1000.0 / tpot.new,
                ratio: 1.0 / tpot.ratio,
                low: 1.0 / tpot.high,
                high: 1.0 / tpot.low,
            };
            Ok(ratio_comparison(metric, interval, samples, gate))
        }
        Metric::Throughput(throughput) => {
            let (b, n) = (base.windows(throughput), new.windows(throughput));
            let samples = (b.values.len(), n.values.len());
            let interval = stats::ratio_interval(&b, &n, Statistic::Mean, gate.confidence, seed)
                .ok_or("no throughput on the baseline")?;
            Ok(ratio_comparison(metric, interval, samples, gate))
        }
        Metric::ErrorRate => {
            let ((bf, bt), (nf, nt)) = (base.failures(), new.failures());
            if bt == 0 || nt == 0 {
                return Err("no measured request on one side".into());
            }
            let (base_rate, new_rate) = (bf as f64 / bt as f64, nf as f64 / nt as f64);
            let alpha = 1.0 - gate.confidence;
            let worse = stats::fisher_more_failures(bf, bt, nf, nt);
            let better = stats::fisher_more_failures(nf, nt, bf, bt);
            let (outcome, p_value) =
                if worse < alpha && new_rate - base_rate > gate.max_error_rate_increase {
                    (Outcome::Regressed, worse)
                } else if better < alpha {
                    (Outcome::Improved, better)
                } else {
                    (Outcome::Unchanged, worse.min(better))
                };
            Ok(MetricComparison {
                metric,
                base: base_rate,
                new: new_rate,
                change: new_rate - base_rate,
                interval: None,
                p_value: Some(p_value),
                samples: (bt as usize, nt as usize),
                outcome,
                note: None,
            })
        }
        Metric::Accuracy => {
            let (Some(b), Some(n)) = (&base.answers, &new.answers) else {
                return Err("no scored answers on one side".into());
            };
            let paired: Vec<(bool, bool)> = b
                .correct
                .iter()
                .filter_map(|(id, &right)| Some((right, *n.correct.get(id)?)))
                .collect();
            if paired.is_empty() {
                return Err("no question asked in both runs".into());
            }
            let worse = paired.iter().filter(|(b, n)| *b && !*n).count() as u64;
            let better = paired.iter().filter(|(b, n)| !*b && *n).count() as u64;
            let right = |side: fn(&(bool, bool)) -> bool| {
                100.0 * paired.iter().filter(|p| side(p)).count() as f64 / paired.len() as f64
            };
            let (base_score, new_score) = (right(|p| p.0), right(|p| p.1));
            let p_value = stats::mcnemar_exact(worse, better);
            let significant = p_value < 1.0 - gate.confidence;
            let outcome = match (significant, worse.cmp(&better)) {
                (true, std::cmp::Ordering::Greater) => Outcome::Regressed,
                (true, std::cmp::Ordering::Less) => Outcome::Improved,
                _ => Outcome::Unchanged,
            };
            Ok(MetricComparison {
                metric,
                base: base_score,
                new: new_score,
                change: new_score - base_score,
                interval: None,
                p_value: Some(p_value),
                samples: (paired.len(), paired.len()),
                outcome,
                note: Some(format!(
                    "{} paired questions ({}): {worse} right before and wrong now, {better} the reverse",
                    paired.len(),
                    b.filter
                )),
            })
        }
    }
}

/// The bootstrap statistic of a gated statistic.
fn statistic(stat: Stat) -> Statistic {
    stat.quantile().map_or(Statistic::Mean, Statistic::Quantile)
}

/// The outcome of a ratio interval under the gate's allowed change.
fn ratio_comparison(
    metric: Metric,
    interval: RatioInterval,
    samples: (usize, usize),
    gate: &Gate,
) -> MetricComparison {
    let allowed = gate.max_regression;
    // Work in "worse is larger" terms: latencies as they are, throughputs inverted.
    let (low, high) = if metric.higher_is_worse() {
        (interval.low, interval.high)
    } else {
        (2.0 - interval.high, 2.0 - interval.low)
    };
    let outcome = if low > 1.0 + allowed {
        Outcome::Regressed
    } else if high > 1.0 + allowed {
        Outcome::Inconclusive
    } else if high < 1.0 - allowed {
        Outcome::Improved
    } else {
        Outcome::Unchanged
    };
    MetricComparison {
        metric,
        base: interval.base,
        new: interval.new,
        change: interval.ratio - 1.0,
        interval: Some((interval.low - 1.0, interval.high - 1.0)),
        p_value: None,
        samples,
        outcome,
        note: None,
    }
}

#[cfg(test)]
mod tests;
