//! The discrete-event engine: requests arrive, a router or a shared pool hands them to
//! replicas, each replica's scheduler forms batch steps, and a cost model times them, all in
//! virtual time.
//!
//! Events are kept in a binary heap ordered by time, then class, then scheduling order, so a
//! run is deterministic. The engine never simulates token by token: a replica's *segment* is a
//! run of steps of unchanged batch, timed in closed form ([`crate::cost::StepSeries`]),
//! and it ends at the next event that changes the batch (a request finishing, the KV cache
//! filling up, a waiting request that can join). The work is proportional to arrivals,
//! admissions, completions and preemptions, not to steps or tokens.
//!
//! Two ways to drive it:
//!
//! - offline: [`simulate`] runs a whole workload and returns every request's outcome;
//! - incrementally: [`Engine::push`] requests (in arrival order, not in the past),
//!   [`Engine::advance_to`] a virtual time and get back what happened by then
//!   ([`EngineEvent`]: admissions, every token, completions, preemptions, rejections), with
//!   [`Engine::snapshot`] for queue, batch and KV gauges. Pushing a request at or after the
//!   engine's time is equivalent to having pushed it up front, so both ways give the same
//!   results for the same workload.

mod arrive;
mod complete;
mod event_queue;
mod observe;
mod plan;
mod pool;
mod replica;
mod tracked;

pub use observe::{EngineEvent, EngineSnapshot, ReplicaSnapshot, RequestId};
pub use replica::ReplicaStats;

use event_queue::{Event, EventQueue};
use pool::Pool;
use replica::Replica;
use tracked::{Phase, Tracked};

use super::cost::CostModel;
use super::error::SimError;
use super::kv::KvGeometry;
use super::request::{MAX_TOKENS, SimRequest};
use super::router::Router;
use super::scheduler::{DynamicBatch, SchedulerConfig};

/// The most replicas an engine simulates.
pub const MAX_REPLICAS: usize = 100_000;

/// Everything an engine needs.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// Replicas (GPUs, or tensor-parallel groups), at least 1.
    pub replicas: usize,
    /// How arrivals are spread over replicas (multi-bin ignores it: its bins are shared by all
    /// replicas, and an idle replica takes its next batch from them).
    pub router: Router,
    /// The scheduler every replica runs.
    pub scheduler: SchedulerConfig,
    /// Step times.
    pub cost: CostModel,
    /// Each replica's KV cache.
    pub kv: KvGeometry,
}

impl EngineConfig {
    /// Checks the configuration can run.
    pub fn validate(&self) -> Result<(), SimError> {
        if !(1..=MAX_REPLICAS).contains(&self.replicas) {
            return Err(SimError::invalid(
                "replicas",
                format!("must be 1 to {MAX_REPLICAS}, not {}", self.replicas),
            ));
        }
        self.scheduler.validate()?;
        self.cost.validate()
    }

    /// Whether every replica takes work from one shared pool (multi-bin).
    fn shared_pool(&self) -> bool {
        matches!(self.scheduler, SchedulerConfig::MultiBin(_))
    }
}

/// What happened to one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestOutcome {
    /// The request as offered.
    pub request: SimRequest,
    /// Replica it ran on (last), if admitted.
    pub replica: Option<usize>,
    /// First admission, seconds.
    pub admitted_s: Option<f64>,
    /// First token, seconds.
    pub first_token_s: Option<f64>,
    /// Last token, seconds.
    pub finished_s: Option<f64>,
    /// Times it was preempted.
    pub preemptions: u32,
    /// Refused at arrival (would never fit in a KV cache).
    pub rejected: bool,
}

/// Counters of the engine's own work and of each replica's.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineStats {
    /// Events processed: arrivals, wake-ups, timers and segment ends (stale ones included).
    pub events: u64,
    /// Per replica.
    pub replicas: Vec<ReplicaStats>,
    /// Time of the last event processed, seconds.
    pub last_event_s: f64,
}

impl EngineStats {
    /// Steps over all replicas.
    pub fn steps(&self) -> u64 {
        self.replicas.iter().map(|r| r.steps).sum()
    }

    /// Segments (runs of steps) over all replicas.
    pub fn segments(&self) -> u64 {
        self.replicas.iter().map(|r| r.segments).sum()
    }
}

/// The result of an offline run.
#[derive(Debug, Clone)]
pub struct SimRun {
    /// Per request, in the order given.
    pub outcomes: Vec<RequestOutcome>,
    /// The engine's counters.
    pub stats: EngineStats,
}

/// Runs a whole workload (requests in arrival order) to the end.
pub fn simulate(config: &EngineConfig, requests: &[SimRequest]) -> Result<SimRun, SimError> {
    let mut engine = Engine::build(config.clone(), false)?;
    engine.requests.reserve(requests.len());
    for &request in requests {
        engine.push(request)?;
    }
    engine.close();
    engine.process(f64::INFINITY);
    Ok(SimRun {
        outcomes: engine.outcomes().collect(),
        stats: engine.stats(),
    })
}

/// A simulated serving system in virtual time (see the module documentation).
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    requests: Vec<Tracked>,
    /// Index of the first request whose arrival has not been processed.
    next_arrival: usize,
    /// Arrivals routed so far (round-robin's turn).
    routed: u64,
    replicas: Vec<Replica>,
    pools: Vec<Pool>,
    queue: EventQueue,
    now: f64,
    /// No more pushes will come.
    closed: bool,
    /// Closed and every arrival processed: bins are served without waiting to fill up.
    draining: bool,
    /// Events to report, when reporting.
    reported: Option<Vec<EngineEvent>>,
    processed: u64,
    finished: usize,
    rejected: usize,
    last_event_s: f64,
    /// How long an idle replica takes to start a step once work reaches it (see
    /// [`Engine::with_wake_delay`]); 0 by default.
    wake_delay_s: f64,
}

impl Engine {
    /// An engine for incremental use: [`Engine::advance_to`] reports what happened.
    pub fn new(config: EngineConfig) -> Result<Engine, SimError> {
        Engine::build(config, true)
    }

    fn build(config: EngineConfig, report: bool) -> Result<Engine, SimError> {
        config.validate()?;
        let max_batch = config.scheduler.max_batch();
        let dynamic = config
            .scheduler
            .dynamic()
            .map(|d| DynamicBatch::new(*d, max_batch, config.kv.capacity_tokens()));
        let (pools, replicas) = if config.shared_pool() {
            let bins = match &config.scheduler {
                SchedulerConfig::MultiBin(m) => m.boundaries.count(),
                _ => 1,
            };
            let mut pool = Pool::new(bins);
            pool.idle = (0..config.replicas).collect();
            let replicas = (0..config.replicas)
                .map(|_| Replica::new(0, config.kv.block_size, dynamic.clone()))
                .collect();
            (vec![pool], replicas)
        } else {
            let pools = (0..config.replicas)
                .map(|r| {
                    let mut pool = Pool::new(1);
                    pool.idle.insert(r);
                    pool
                })
                .collect();
            let replicas = (0..config.replicas)
                .map(|r| Replica::new(r, config.kv.block_size, dynamic.clone()))
                .collect();
            (pools, replicas)
        };
        Ok(Engine {
            config,
            requests: Vec::new(),
            next_arrival: 0,
            routed: 0,
            replicas,
            pools,
            queue: EventQueue::default(),
            now: 0.0,
            closed: false,
            draining: false,
            reported: report.then(Vec::new),
            processed: 0,
            finished: 0,
            rejected: 0,
            last_event_s: 0.0,
            wake_delay_s: 0.0,
        })
    }

    /// An idle replica starts its first step `seconds` after work reaches it, not at once:
    /// whatever else arrives meanwhile joins that step. A real server's loop takes time to
    /// wake and form a batch, so requests sent a fraction of a millisecond apart are prefilled
    /// together (llama-server does); with 0 (the default) the first arrival starts a step
    /// alone. A replica between steps is not delayed. Negative or non-finite values count as 0.
    pub fn with_wake_delay(mut self, seconds: f64) -> Engine {
        self.wake_delay_s = if seconds.is_finite() {
            seconds.max(0.0)
        } else {
            0.0
        };
        self
    }

    /// The wake delay in use, seconds ([`Engine::with_wake_delay`], after its clamping).
    pub fn wake_delay_s(&self) -> f64 {
        self.wake_delay_s
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Virtual time, seconds.
    pub fn now_s(&self) -> f64 {
        self.now
    }

    /// Adds a request arriving at `request.arrival_s`, which must not be before the engine's
    /// time nor before the previous push's arrival.
    pub fn push(&mut self, request: SimRequest) -> Result<RequestId, SimError> {
        let previous_s = self.requests.last().map_or(0.0, |t| t.request.arrival_s);
        if !(request.arrival_s.is_finite() && request.arrival_s >= self.now.max(previous_s)) {
            return Err(SimError::PastArrival {
                arrival_s: request.arrival_s,
                now_s: self.now,
                previous_s,
            });
        }
        let tokens_ok = |n: u32| (1..=MAX_TOKENS).contains(&n);
        if !(tokens_ok(request.prompt_tokens) && tokens_ok(request.output_tokens)) {
            return Err(SimError::invalid(
                "request",
                format!(
                    "prompt and output must be 1 to {MAX_TOKENS} tokens, got {} and {}",
                    request.prompt_tokens, request.output_tokens
                ),
            ));
        }
        if self.closed {
            return Err(SimError::invalid(
                "request",
                "the engine was closed to new requests",
            ));
        }
        self.requests.push(Tracked::new(request));
        Ok(RequestId(self.requests.len() - 1))
    }

    /// Declares that no more requests will be pushed: bins that are not full are then served
    /// once every arrival has come, without waiting for `max_wait_s`.
    pub fn close(&mut self) {
        self.closed = true;
        self.start_draining_if_done();
    }

    /// Processes every event strictly before `t` and moves the engine's time to `t`; returns
    /// what happened, in time order (tokens of steps that ended before `t` included). An
    /// engine made by [`simulate`] reports nothing.
    pub fn advance_to(&mut self, t: f64) -> Vec<EngineEvent> {
        self.process(t);
        if t.is_finite() {
            self.now = self.now.max(t);
        }
        for r in 0..self.replicas.len() {
            self.report_progress(r, t);
        }
        let mut events = self
            .reported
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        events.sort_by(|a, b| a.at_s().total_cmp(&b.at_s()));
        events
    }

    /// Time of the next event the engine will process, if any: a driver against the wall
    /// clock can sleep until then (or until the next token, see [`Engine::next_token_s`]).
    pub fn next_event_s(&self) -> Option<f64> {
        let arrival = self
            .requests
            .get(self.next_arrival)
            .map(|t| t.request.arrival_s);
        match (arrival, self.queue.peek_time()) {
            (Some(a), Some(q)) => Some(a.min(q)),
            (a, q) => a.or(q),
        }
    }

    /// When the next step of any replica ends (its tokens are reported by an
    /// [`Engine::advance_to`] past that time).
    pub fn next_token_s(&self) -> Option<f64> {
        self.replicas
            .iter()
            .filter_map(|r| {
                let seg = r.segment.as_ref()?;
                (seg.reported < seg.steps).then(|| seg.start_s + seg.elapsed(seg.reported + 1))
            })
            .min_by(f64::total_cmp)
    }

    /// Processes events strictly before `horizon`.
    fn process(&mut self, horizon: f64) {
        loop {
            let arrival = self
                .requests
                .get(self.next_arrival)
                .map(|t| t.request.arrival_s);
            let queued = self.queue.peek_time();
            let take_arrival = match (arrival, queued) {
                (Some(a), Some(q)) => a <= q,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if take_arrival {
                let Some(a) = arrival.filter(|&a| a < horizon) else {
                    return;
                };
                self.now = a;
                self.processed += 1;
                self.last_event_s = a;
                self.arrive(self.next_arrival);
                continue;
            }
            match queued {
                Some(q) if q < horizon => {}
                _ => return,
            }
            let Some((time, event)) = self.queue.pop() else {
                return;
            };
            self.now = time;
            self.processed += 1;
            self.last_event_s = time;
            match event {
                Event::Wake(r) => {
                    self.replicas[r].wake_pending = false;
                    if self.replicas[r].segment.is_none() {
                        self.plan(r);
                    }
                }
                Event::Timer(p) => self.timer(p),
                Event::SegmentEnd {
                    replica,
                    generation,
                } => {
                    if self.replicas[replica].generation == generation {
                        self.complete_segment(replica);
                        self.plan(replica);
                    }
                }
            }
        }
    }

    /// The engine now.
    pub fn snapshot(&self) -> EngineSnapshot {
        let replicas: Vec<ReplicaSnapshot> = self
            .replicas
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let done = r.segment.as_ref().map_or(0, |s| s.steps_before(self.now));
                ReplicaSnapshot {
                    queued: if self.config.shared_pool() {
                        0
                    } else {
                        self.pools[i].len()
                    },
                    running: r.running,
                    kv_used_blocks: r.blocks_at(r.counter + done),
                    busy: r.segment.is_some(),
                }
            })
            .collect();
        EngineSnapshot {
            now_s: self.now,
            pending: self.requests.len() - self.next_arrival,
            queued: self.pools.iter().map(Pool::len).sum(),
            running: replicas.iter().map(|r| r.running).sum(),
            finished: self.finished,
            rejected: self.rejected,
            kv_used_blocks: replicas.iter().map(|r| r.kv_used_blocks).sum(),
            kv_capacity_blocks: self.config.kv.capacity_blocks * self.replicas.len() as u64,
            kv_block_size: self.config.kv.block_size,
            replicas,
        }
    }

    /// What happened to request `id` so far.
    pub fn outcome(&self, id: RequestId) -> Option<RequestOutcome> {
        let t = self.requests.get(id.0)?;
        let time = |x: f64| (!x.is_nan()).then_some(x);
        Some(RequestOutcome {
            request: t.request,
            replica: (!t.admitted_s.is_nan()).then_some(t.replica as usize),
            admitted_s: time(t.admitted_s),
            first_token_s: time(t.first_token_s),
            finished_s: time(t.finished_s),
            preemptions: t.preemptions,
            rejected: t.phase == Phase::Rejected,
        })
    }

    /// Every request's outcome so far, in push order.
    pub fn outcomes(&self) -> impl Iterator<Item = RequestOutcome> + '_ {
        (0..self.requests.len()).filter_map(|i| self.outcome(RequestId(i)))
    }

    /// The engine's counters.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            events: self.processed,
            replicas: self.replicas.iter().map(|r| r.stats).collect(),
            last_event_s: self.last_event_s,
        }
    }

    fn emit(&mut self, event: EngineEvent) {
        if let Some(events) = self.reported.as_mut() {
            events.push(event);
        }
    }
}

#[cfg(test)]
mod tests;
