//! What a run measured: latency distributions, throughput, SLA violations, batch size and
//! utilisation.

use llm_stress_base::distribution::Distribution;
use serde::Serialize;

use super::engine::{RequestOutcome, SimRun};

/// Service-level deadlines a request must meet.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sla {
    /// Per-token deadline: a request violates it when its TPOT exceeds this, seconds.
    pub tpot_s: f64,
    /// Per-request deadline: a request violates it when its end-to-end latency exceeds this,
    /// seconds.
    pub e2e_s: f64,
}

impl Default for Sla {
    /// 50 ms per token, 60 s per request.
    fn default() -> Self {
        Sla {
            tpot_s: 0.050,
            e2e_s: 60.0,
        }
    }
}

/// Summary of one run. Latencies are per completed request: TTFT = first token − arrival,
/// TPOT = (last token − first token) / (output − 1) (requests of one token have none),
/// E2E = last token − arrival.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SimSummary {
    /// Requests offered.
    pub requests: usize,
    /// Requests that finished.
    pub completed: usize,
    /// Requests refused (too long for the KV cache).
    pub rejected: usize,
    /// Preemptions over all requests.
    pub preemptions: u64,
    /// First arrival to last completion, seconds.
    pub makespan_s: f64,
    /// Completed requests per second of makespan.
    pub qps: f64,
    /// Prompt tokens of completed requests per second.
    pub input_tok_s: f64,
    /// Output tokens of completed requests per second.
    pub output_tok_s: f64,
    /// Time to first token, ms.
    pub ttft_ms: Distribution,
    /// Time per output token after the first, ms.
    pub tpot_ms: Distribution,
    /// End-to-end latency, ms.
    pub e2e_ms: Distribution,
    /// Share of requests whose TPOT broke the per-token deadline.
    pub tpot_violation_rate: f64,
    /// Share of requests whose E2E broke the per-request deadline.
    pub e2e_violation_rate: f64,
    /// Share of requests that broke either deadline, or were rejected or did not finish.
    pub sla_violation_rate: f64,
    /// Mean sequences per step.
    pub mean_batch: f64,
    /// Busy time over makespan, averaged over replicas.
    pub utilisation: f64,
    /// Engine events processed.
    pub events: u64,
    /// Batch steps simulated.
    pub steps: u64,
    /// Runs of steps (segments) planned.
    pub segments: u64,
}

/// A completed request's latencies, seconds: (TTFT, TPOT if more than one token, E2E).
fn latencies(o: &RequestOutcome) -> Option<(f64, Option<f64>, f64)> {
    let (first, last) = (o.first_token_s?, o.finished_s?);
    let arrival = o.request.arrival_s;
    let tokens = o.request.output_tokens;
    let tpot = (tokens > 1).then(|| (last - first) / f64::from(tokens - 1));
    Some((first - arrival, tpot, last - arrival))
}

impl SimSummary {
    /// Summarises a run against `sla`.
    pub fn from_run(run: &SimRun, sla: &Sla) -> SimSummary {
        let outcomes = &run.outcomes;
        let requests = outcomes.len();
        let (mut ttft, mut tpot, mut e2e) = (Vec::new(), Vec::new(), Vec::new());
        let (mut tpot_late, mut e2e_late, mut any_late) = (0usize, 0usize, 0usize);
        let (mut input, mut output) = (0u64, 0u64);
        let mut first_arrival = f64::INFINITY;
        let mut last_finish = f64::NEG_INFINITY;
        for o in outcomes {
            first_arrival = first_arrival.min(o.request.arrival_s);
            let Some((t, p, e)) = latencies(o) else {
                any_late += 1;
                continue;
            };
            last_finish = last_finish.max(o.finished_s.unwrap_or(0.0));
            input += u64::from(o.request.prompt_tokens);
            output += u64::from(o.request.output_tokens);
            ttft.push(t * 1e3);
            e2e.push(e * 1e3);
            let token_late = p.is_some_and(|p| p > sla.tpot_s);
            if let Some(p) = p {
                tpot.push(p * 1e3);
            }
            let request_late = e > sla.e2e_s;
            tpot_late += usize::from(token_late);
            e2e_late += usize::from(request_late);
            any_late += usize::from(token_late || request_late);
        }
        let completed = ttft.len();
        let makespan_s = if completed > 0 {
            last_finish - first_arrival
        } else {
            0.0
        };
        let per_s = |x: f64| {
            if makespan_s > 0.0 {
                x / makespan_s
            } else {
                0.0
            }
        };
        let share = |n: usize| {
            if requests > 0 {
                n as f64 / requests as f64
            } else {
                0.0
            }
        };
        let stats = &run.stats;
        let steps = stats.steps();
        let sequence_steps: u64 = stats.replicas.iter().map(|r| r.sequence_steps).sum();
        let busy: f64 = stats.replicas.iter().map(|r| r.busy_s).sum();
        SimSummary {
            requests,
            completed,
            rejected: outcomes.iter().filter(|o| o.rejected).count(),
            preemptions: outcomes.iter().map(|o| u64::from(o.preemptions)).sum(),
            makespan_s,
            qps: per_s(completed as f64),
            input_tok_s: per_s(input as f64),
            output_tok_s: per_s(output as f64),
            ttft_ms: Distribution::from_ms(ttft).unwrap_or_default(),
            tpot_ms: Distribution::from_ms(tpot).unwrap_or_default(),
            e2e_ms: Distribution::from_ms(e2e).unwrap_or_default(),
            tpot_violation_rate: share(tpot_late),
            e2e_violation_rate: share(e2e_late),
            sla_violation_rate: share(any_late),
            mean_batch: if steps > 0 {
                sequence_steps as f64 / steps as f64
            } else {
                0.0
            },
            utilisation: if makespan_s > 0.0 && !stats.replicas.is_empty() {
                busy / (makespan_s * stats.replicas.len() as f64)
            } else {
                0.0
            },
            events: stats.events,
            steps,
            segments: stats.segments(),
        }
    }
}
