//! Sweeps: the load trials of one case that share kind, mode, ISL and OSL, so that their
//! points differ only in load — the concurrency (closed loop), the number of users, or the
//! requested rate (open loop). Throughput, latency and the knee are read along a sweep.

use std::collections::BTreeMap;

use super::knee::{LoadPoint, knee};
use super::run::RunTrial;
use super::{LoadShape, TrialReport};
use crate::case::Kind;

/// The load trials of one case that share kind, mode, OSL and load, so that their points
/// differ only in ISL: how TTFT grows with the prompt is read along one.
#[derive(Debug, Clone, PartialEq)]
pub struct IslSeries {
    /// `perf closed OSL 64, concurrency 1`.
    pub label: String,
    /// (ISL, median TTFT in ms), by increasing ISL, one per ISL.
    pub points: Vec<(f64, f64)>,
}

/// What the trials of one ISL series share: kind, mode, OSL, load.
type IslKey = (Kind, &'static str, u32, String);

/// The ISL series of a case's trials with two lengths or more (trials with
/// `prompts.isl_dist`/`osl_dist` left out: their lengths are spread).
pub fn isl_series(trials: &[RunTrial]) -> Vec<IslSeries> {
    let mut groups: BTreeMap<IslKey, Vec<(f64, f64)>> = BTreeMap::new();
    for trial in trials {
        let r = &trial.report;
        let (Some((axis, load)), Some(body)) = (load_of(r), r.load()) else {
            continue;
        };
        let Some(ttft) = body.summary.ttft_ms else {
            continue;
        };
        // A trial whose ISLs were drawn from a distribution has no one ISL to place it at.
        if crate::case::lengths::name_has_spread(&r.meta.trial) {
            continue;
        }
        groups
            .entry((
                r.meta.kind,
                body.shape.mode().as_str(),
                body.osl,
                axis.describe(load),
            ))
            .or_default()
            .push((f64::from(body.isl), ttft.p50));
    }
    groups
        .into_iter()
        .filter_map(|((kind, mode, osl, load), mut points)| {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            points.dedup_by(|a, b| a.0 == b.0);
            (points.len() >= 2).then(|| IslSeries {
                label: format!("{} {mode} OSL {osl}, {load}", kind.as_str()),
                points,
            })
        })
        .collect()
}

/// What the load of a sweep is measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Axis {
    /// Requests in flight (closed loop) or users.
    Concurrency,
    /// Requests per second asked for (open loop).
    Rate,
}

impl Axis {
    /// The axis title of charts.
    pub fn label(self) -> &'static str {
        match self {
            Axis::Concurrency => "concurrency (requests in flight or users)",
            Axis::Rate => "requested rate (req/s)",
        }
    }

    /// A short name: `concurrency` or `rate`.
    pub fn name(self) -> &'static str {
        match self {
            Axis::Concurrency => "concurrency",
            Axis::Rate => "rate",
        }
    }

    /// A load on this axis in words: `concurrency 4`, `20 req/s`.
    pub fn describe(self, load: f64) -> String {
        match self {
            Axis::Concurrency => format!("concurrency {load}"),
            Axis::Rate => format!("{load} req/s"),
        }
    }
}

/// Where a load trial sits on a load axis; `None` for trials that sent no load and for
/// consistency runs (one request at a time, not a level of load) and sessions (arrivals of
/// sessions, not of requests).
pub fn load_of(report: &TrialReport) -> Option<(Axis, f64)> {
    match report.shape()? {
        LoadShape::Open { rate, .. } => Some((Axis::Rate, rate)),
        LoadShape::Closed { concurrency } => Some((Axis::Concurrency, f64::from(concurrency))),
        LoadShape::Users { users } => Some((Axis::Concurrency, f64::from(users))),
        // Session arrivals are not requests: no sweep puts them on the request-rate axis.
        LoadShape::Consistency | LoadShape::Sessions { .. } => None,
    }
}

/// The load trials of one kind, mode, ISL and OSL, by load.
pub struct Sweep<'a> {
    /// `perf closed ISL 128 OSL 64`.
    pub label: String,
    /// What its load is measured in.
    pub axis: Axis,
    /// Its trials by increasing load, one per load level.
    pub trials: Vec<(f64, &'a TrialReport)>,
}

impl Sweep<'_> {
    /// (load, value) of every trial where `value` is measured.
    pub fn points(&self, value: impl Fn(&TrialReport) -> Option<f64>) -> Vec<(f64, f64)> {
        self.trials
            .iter()
            .filter_map(|(x, r)| value(r).filter(|v| v.is_finite()).map(|v| (*x, v)))
            .collect()
    }

    /// The sweep's knee (see [`crate::report::knee`]), if it reaches one.
    pub fn knee(&self) -> Option<LoadPoint> {
        let points: Vec<LoadPoint> = self
            .trials
            .iter()
            .filter_map(|(load, r)| {
                let summary = r.summary()?;
                Some(LoadPoint {
                    load: *load,
                    output_tok_s: summary.output_tok_s,
                    ttft_p50_ms: summary.ttft_ms.map(|d| d.p50),
                })
            })
            .collect();
        knee(&points)
    }
}

/// What the trials of one sweep share: load axis, kind, mode, ISL, OSL.
type SweepKey = (Axis, Kind, &'static str, u32, u32);

/// The case's sweeps with at least two load levels, in a stable order.
pub fn sweeps(trials: &[RunTrial]) -> Vec<Sweep<'_>> {
    let mut groups: BTreeMap<SweepKey, Vec<(f64, &TrialReport)>> = BTreeMap::new();
    for trial in trials {
        let r = &trial.report;
        if let (Some((axis, load)), Some(body)) = (load_of(r), r.load()) {
            let mode = body.shape.mode().as_str();
            groups
                .entry((axis, r.meta.kind, mode, body.isl, body.osl))
                .or_default()
                .push((load, r));
        }
    }
    groups
        .into_iter()
        .filter_map(|((axis, kind, mode, isl, osl), mut trials)| {
            trials.sort_by(|a, b| a.0.total_cmp(&b.0));
            trials.dedup_by(|a, b| a.0 == b.0);
            (trials.len() >= 2).then(|| Sweep {
                label: format!("{} {mode} ISL {isl} OSL {osl}", kind.as_str()),
                axis,
                trials,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::report::sample::{ReportBuilder, accuracy_summary, sample_report};

    fn trial(kind: Kind, shape: LoadShape, isl: u32) -> RunTrial {
        let mut report = sample_report();
        report.meta.kind = kind;
        if let Some(load) = report.load_mut() {
            load.shape = shape;
            load.isl = isl;
        }
        RunTrial {
            report,
            dir: PathBuf::new(),
        }
    }

    #[test]
    fn isl_series_leave_out_trials_with_spread_lengths() {
        let mut trials = crate::report::sample::isl_series_run(1.0);
        assert_eq!(isl_series(&trials)[0].points.len(), 6);
        for trial in &mut trials[..4] {
            trial.report.meta.trial.push_str("_osl4_c1_n8_isl64-128u");
        }
        assert_eq!(isl_series(&trials)[0].points.len(), 2);
        trials[4]
            .report
            .meta
            .trial
            .push_str("_osl4_c1_n8_osl2-4n3s1");
        assert!(isl_series(&trials).is_empty());
    }

    #[test]
    fn sweeps_group_by_kind_mode_and_lengths_and_need_two_loads() {
        let closed = |concurrency| LoadShape::Closed { concurrency };
        let open = |rate| LoadShape::Open {
            rate,
            max_in_flight: None,
        };
        let accuracy = RunTrial {
            report: ReportBuilder::accuracy(
                "demo-chat",
                "gsm8k_n40",
                Some(accuracy_summary(40, 90.0)),
            )
            .build(),
            dir: PathBuf::new(),
        };
        let trials = [
            trial(Kind::Perf, closed(4), 128),
            trial(Kind::Perf, closed(1), 128),
            trial(Kind::Perf, closed(1), 128),
            trial(Kind::Stress, closed(2), 128),
            trial(Kind::Perf, closed(1), 512),
            trial(Kind::Perf, closed(2), 512),
            trial(Kind::Perf, open(20.0), 128),
            trial(Kind::Perf, open(5.0), 128),
            accuracy,
        ];
        let found: Vec<(String, Axis, Vec<f64>)> = sweeps(&trials)
            .iter()
            .map(|s| {
                (
                    s.label.clone(),
                    s.axis,
                    s.trials.iter().map(|(load, _)| *load).collect(),
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                (
                    "perf closed ISL 128 OSL 16".to_string(),
                    Axis::Concurrency,
                    vec![1.0, 4.0]
                ),
                (
                    "perf closed ISL 512 OSL 16".to_string(),
                    Axis::Concurrency,
                    vec![1.0, 2.0]
                ),
                (
                    "perf open ISL 128 OSL 16".to_string(),
                    Axis::Rate,
                    vec![5.0, 20.0]
                ),
            ]
        );
    }
}
