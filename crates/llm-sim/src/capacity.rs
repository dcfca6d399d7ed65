//! Capacity under SLA: the highest arrival rate at which the share of requests breaking a
//! deadline stays within a bound, found by searching over the rate.

use serde::Serialize;

use super::config::SimConfig;
use super::error::SimError;
use super::metrics::SimSummary;
use super::workload::{Arrival, MAX_REQUESTS};

/// How to search.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CapacitySearch {
    /// Largest acceptable SLA violation rate (e.g. 0.05).
    pub max_violation: f64,
    /// First rate tried, requests per second; doubled until it fails.
    pub start_qps: f64,
    /// Bisection steps once a passing and a failing rate bracket the capacity.
    pub bisections: u32,
    /// Each probe offers at least this many per-request deadlines' worth of arrivals
    /// (`span_deadlines × sla.e2e_s × rate` requests, or the workload's count if more): a run
    /// much shorter than the deadline would let an overloaded system drain its backlog within
    /// the deadline and pass. A rate `r` above the sustainable rate `μ` builds a backlog that
    /// delays the last arrivals by about `(r/μ − 1) · span_deadlines` deadlines, so the
    /// capacity found is at most `1/span_deadlines` (10 %) above `μ`.
    pub span_deadlines: f64,
}

impl Default for CapacitySearch {
    /// 5 % violations, from 1 request/s, 12 bisections, probes spanning at least 10
    /// per-request deadlines.
    fn default() -> Self {
        CapacitySearch {
            max_violation: 0.05,
            start_qps: 1.0,
            bisections: 12,
            span_deadlines: 10.0,
        }
    }
}

/// One rate tried.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Probe {
    /// Arrival rate, requests per second.
    pub rate: f64,
    /// Requests offered.
    pub requests: usize,
    /// SLA violation rate measured.
    pub violation_rate: f64,
}

/// The result of a search.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Capacity {
    /// Highest passing rate found, requests per second (0 if none passed).
    pub qps: f64,
    /// Every rate tried, in order.
    pub probes: Vec<Probe>,
}

/// Most doublings of the rate before giving up on finding a failing one.
const MAX_DOUBLINGS: u32 = 40;

/// Searches the Poisson (or gamma, keeping its cv) arrival rate of `config`'s workload, every
/// probe with the same seed (and at least `span_deadlines` per-request deadlines of arrivals),
/// for the highest rate whose SLA violation rate is at most `search.max_violation`: doubling
/// from `start_qps` until a rate fails, then bisecting.
pub fn capacity_qps(config: &SimConfig, search: &CapacitySearch) -> Result<Capacity, SimError> {
    if !(0.0..1.0).contains(&search.max_violation) {
        return Err(SimError::invalid(
            "capacity.max_violation",
            "must be in [0, 1)",
        ));
    }
    max_rate(config, search, |summary| {
        summary.sla_violation_rate <= search.max_violation
    })
}

/// The search of [`capacity_qps`] with another test of a probe: the highest rate whose run
/// `passes` (a latency objective on its percentiles, say). `search.max_violation` is not used.
pub fn max_rate(
    config: &SimConfig,
    search: &CapacitySearch,
    mut passes: impl FnMut(&SimSummary) -> bool,
) -> Result<Capacity, SimError> {
    if !(search.start_qps.is_finite() && search.start_qps > 0.0) {
        return Err(SimError::invalid("capacity.start_qps", "must be positive"));
    }
    let mut probes = Vec::new();
    let mut probe = |rate: f64| -> Result<bool, SimError> {
        let mut c = config.clone();
        let span = (search.span_deadlines * config.sla.e2e_s * rate).ceil();
        c.workload.requests = config
            .workload
            .requests
            .max(span.min(MAX_REQUESTS as f64) as usize);
        c.workload.arrival = match config.workload.arrival {
            Arrival::Gamma { cv, .. } => Arrival::Gamma { rate, cv },
            Arrival::AtOnce | Arrival::Poisson { .. } => Arrival::Poisson { rate },
        };
        let summary = c.run()?.summary;
        probes.push(Probe {
            rate,
            requests: c.workload.requests,
            violation_rate: summary.sla_violation_rate,
        });
        Ok(passes(&summary))
    };
    let (mut pass, mut fail) = (0.0, search.start_qps);
    let mut doublings = 0;
    while probe(fail)? {
        pass = fail;
        fail *= 2.0;
        doublings += 1;
        if doublings == MAX_DOUBLINGS {
            return Err(SimError::invalid(
                "capacity",
                format!("no rate up to {pass} req/s breaks the SLA"),
            ));
        }
    }
    for _ in 0..search.bisections {
        let mid = (pass + fail) / 2.0;
        if probe(mid)? {
            pass = mid;
        } else {
            fail = mid;
        }
    }
    Ok(Capacity { qps: pass, probes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CostSpec;
    use crate::cost::FittedCost;
    use crate::metrics::Sla;
    use crate::scheduler::SchedulerKind;
    use crate::workload::Lengths;

    #[test]
    fn capacity_of_one_slot_is_below_its_service_rate() {
        // One request at a time, 10 steps of 10 ms each: 10 requests/s at most.
        let mut config = SimConfig::default();
        config.scheduler.kind = SchedulerKind::Continuous;
        config.scheduler.batch_size = 1;
        config.cost = CostSpec::Fitted(FittedCost {
            alpha: 0.010,
            beta: 0.0,
            gamma: 0.0,
            prefill_per_token: 0.0,
        });
        config.workload.requests = 2000;
        config.workload.prompt = Lengths::Fixed(10);
        config.workload.output = Lengths::Fixed(10);
        config.sla = Sla {
            tpot_s: 1.0,
            e2e_s: 0.5,
        };
        let capacity = capacity_qps(&config, &CapacitySearch::default()).unwrap();
        assert!(capacity.qps > 3.0 && capacity.qps < 10.0, "{capacity:?}");
        let last_pass = capacity
            .probes
            .iter()
            .find(|p| p.rate == capacity.qps)
            .unwrap();
        assert!(last_pass.violation_rate <= 0.05);
    }

    #[test]
    fn short_workloads_are_lengthened_so_overload_shows() {
        // Continuous batching on one H100 sustains about 22 requests/s of this workload. With
        // only 300 requests a far higher rate drains within the 60 s deadline; probes of at
        // least ten deadlines of arrivals expose it.
        let mut config = SimConfig::default();
        config.workload.requests = 300;
        let capacity = capacity_qps(&config, &CapacitySearch::default()).unwrap();
        assert!(capacity.qps < 25.0, "{capacity:?}");
        assert!(capacity.probes.iter().all(|p| p.requests >= 300));
    }
}
