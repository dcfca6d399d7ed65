//! What the study's rows say: the knee of replica scaling, the best number of bins, and how
//! the schedulers compare.

use serde::Serialize;

use super::StudyRow;
use crate::scheduler::SchedulerKind;

/// The knee of replica scaling is the fewest replicas whose output throughput is within this
/// share of the best.
pub const KNEE_SHARE: f64 = 0.95;
/// A run meets the SLA when at most this share of its requests break a deadline.
pub const SLA_SHARE: f64 = 0.05;

/// A scheduler's throughput in the largest request-scaling run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SchedulerThroughput {
    /// Scheduler.
    pub scheduler: SchedulerKind,
    /// Replicas.
    pub replicas: usize,
    /// Requests.
    pub requests: usize,
    /// Output tokens per second.
    pub output_tok_s: f64,
}

/// The study's findings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    /// Fewest replicas within [`KNEE_SHARE`] of the best replica-scaling throughput.
    pub knee_replicas: Option<usize>,
    /// Output tokens per second at the knee.
    pub knee_output_tok_s: f64,
    /// Best replica-scaling output tokens per second.
    pub peak_output_tok_s: f64,
    /// Fewest replicas meeting the SLA ([`SLA_SHARE`]).
    pub sla_replicas: Option<usize>,
    /// Replicas of the K-bins runs.
    pub bins_replicas: Option<usize>,
    /// K with the highest goodput (requests meeting the SLA per second; fewer bins on ties).
    pub best_bins: Option<usize>,
    /// Goodput of the best K, requests per second.
    pub best_bins_goodput: f64,
    /// Goodput of K = 1, requests per second.
    pub one_bin_goodput: f64,
    /// Throughput per scheduler at the largest request count.
    pub schedulers: Vec<SchedulerThroughput>,
    /// The findings in words.
    pub findings: Vec<String>,
}

/// Requests that met the SLA per second of the run.
pub fn goodput(row: &StudyRow) -> f64 {
    let s = &row.summary;
    if s.makespan_s > 0.0 {
        s.requests as f64 * (1.0 - s.sla_violation_rate) / s.makespan_s
    } else {
        0.0
    }
}

fn step<'a>(rows: &'a [StudyRow], name: &'a str) -> impl Iterator<Item = &'a StudyRow> + 'a {
    rows.iter().filter(move |r| r.step == name)
}

/// The knee of the replica-scaling rows: the fewest replicas whose output throughput is at
/// least [`KNEE_SHARE`] of the best.
pub fn knee(rows: &[StudyRow]) -> Option<usize> {
    let peak = step(rows, "replica-scaling")
        .map(|r| r.summary.output_tok_s)
        .fold(0.0, f64::max);
    step(rows, "replica-scaling")
        .filter(|r| r.summary.output_tok_s >= KNEE_SHARE * peak)
        .map(|r| r.replicas)
        .min()
}

/// Analyses the study's rows.
pub fn analyse(rows: &[StudyRow]) -> Analysis {
    let mut findings = Vec::new();
    let scaling: Vec<&StudyRow> = step(rows, "replica-scaling").collect();
    let peak = scaling
        .iter()
        .map(|r| r.summary.output_tok_s)
        .fold(0.0, f64::max);
    let knee_replicas = knee(rows);
    let at = |replicas: usize| scaling.iter().find(|r| r.replicas == replicas);
    let knee_output_tok_s = knee_replicas
        .and_then(at)
        .map_or(0.0, |r| r.summary.output_tok_s);
    if let (Some(knee), Some(first)) = (knee_replicas, scaling.first()) {
        findings.push(format!(
            "Replica scaling: output throughput grows from {:.0} tok/s on {} replica(s) to \
             {:.0} tok/s on {} (the knee: the fewest replicas within {:.0} % of the peak \
             {:.0} tok/s); more replicas add little because the offered load is served.",
            first.summary.output_tok_s,
            first.replicas,
            knee_output_tok_s,
            knee,
            KNEE_SHARE * 100.0,
            peak
        ));
    }
    let sla_replicas = scaling
        .iter()
        .filter(|r| r.summary.sla_violation_rate <= SLA_SHARE)
        .map(|r| r.replicas)
        .min();
    match sla_replicas {
        Some(n) => findings.push(format!(
            "The SLA is met (at most {:.0} % of requests late) from {n} replicas on.",
            SLA_SHARE * 100.0
        )),
        None if !scaling.is_empty() => findings.push(format!(
            "No replica count meets the SLA (at most {:.0} % of requests late).",
            SLA_SHARE * 100.0
        )),
        None => {}
    }
    let bins: Vec<&StudyRow> = step(rows, "bins").collect();
    let best = bins
        .iter()
        .copied()
        .fold(None::<&StudyRow>, |best, r| match best {
            Some(b) if goodput(b) >= goodput(r) => Some(b),
            _ => Some(r),
        });
    let one_bin_goodput = bins
        .iter()
        .find(|r| r.bins == 1)
        .map_or(0.0, |r| goodput(r));
    if let Some(best) = best {
        findings.push(format!(
            "K-bins at {} replicas: K = {} gives the most goodput, {:.2} requests/s meeting \
             the SLA, against {:.2} with one bin (×{:.2}).",
            best.replicas,
            best.bins,
            goodput(best),
            one_bin_goodput,
            if one_bin_goodput > 0.0 {
                goodput(best) / one_bin_goodput
            } else {
                f64::INFINITY
            }
        ));
    }
    let largest = step(rows, "request-scaling").map(|r| r.requests).max();
    let schedulers: Vec<SchedulerThroughput> = step(rows, "request-scaling")
        .filter(|r| Some(r.requests) == largest)
        .map(|r| SchedulerThroughput {
            scheduler: r.scheduler,
            replicas: r.replicas,
            requests: r.requests,
            output_tok_s: r.summary.output_tok_s,
        })
        .collect();
    let one_replica = |kind: SchedulerKind| {
        schedulers
            .iter()
            .find(|s| s.scheduler == kind && s.replicas == 1)
            .map(|s| s.output_tok_s)
    };
    if let (Some(stat), Some(cont), Some(multi)) = (
        one_replica(SchedulerKind::Static),
        one_replica(SchedulerKind::Continuous),
        one_replica(SchedulerKind::MultiBin),
    ) {
        findings.push(format!(
            "One replica, {} requests: static batching serves {stat:.0} tok/s, multi-bin \
             {multi:.0} (×{:.2}), continuous batching {cont:.0} (×{:.2}).",
            largest.unwrap_or(0),
            multi / stat,
            cont / stat
        ));
    }
    Analysis {
        knee_replicas,
        knee_output_tok_s,
        peak_output_tok_s: peak,
        sla_replicas,
        bins_replicas: bins.first().map(|r| r.replicas),
        best_bins: best.map(|r| r.bins),
        best_bins_goodput: best.map_or(0.0, goodput),
        one_bin_goodput,
        schedulers,
        findings,
    }
}
