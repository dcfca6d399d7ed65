//! Load generation: drivers that send requests and collect one record per request.
//!
//! Three modes share one request source: closed loop ([`closed`]), open loop on a fixed
//! schedule ([`open`], [`schedule`]) and virtual users with ramp-up ([`users`]). A warmup,
//! never measured, runs first as a closed loop.

pub mod closed;
pub mod open;
pub mod schedule;
pub mod shape;
pub mod source;
pub mod users;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

pub use shape::Shape;
pub use source::{Endpoint, Phase, RequestSource, SourceError};

use crate::case::{LoadSpec, Warmup};
use crate::metrics::RequestRecord;

/// What a load run measured.
#[derive(Debug, Clone)]
pub struct LoadOutcome {
    /// The instant every record's `send_ms` counts from.
    pub window_start: Instant,
    /// One record per measured request that was sent, by id.
    pub records: Vec<RequestRecord>,
    /// Measured window: start of sending to the last completion, seconds.
    pub duration_s: f64,
    /// Open-loop arrivals that were never sent.
    pub dropped: u64,
}

/// Warmup requests to prepare prompts for.
pub fn warmup_pool_size(load: &LoadSpec, shape: &Shape) -> u32 {
    match load.warmup {
        Warmup::Requests(n) => n,
        Warmup::Duration(_) => warmup_concurrency(load, shape, u32::MAX),
    }
}

fn warmup_concurrency(load: &LoadSpec, shape: &Shape, requests: u32) -> u32 {
    shape
        .concurrency()
        .or(load.max_in_flight)
        .unwrap_or(requests.min(8))
        .max(1)
}

/// Runs the warmup, then the measured load of `shape`.
pub async fn run(load: &LoadSpec, shape: &Shape, source: &Arc<RequestSource>) -> LoadOutcome {
    let warmup = match load.warmup {
        Warmup::Requests(0) => None,
        Warmup::Requests(n) => Some(closed::Stop {
            requests: u64::from(n),
            after: None,
        }),
        Warmup::Duration(d) => Some(closed::Stop {
            requests: shape::MAX_REQUESTS,
            after: Some(d.0),
        }),
    };
    if let Some(stop) = warmup {
        let requests = u32::try_from(stop.requests).unwrap_or(u32::MAX);
        let concurrency = warmup_concurrency(load, shape, requests);
        closed::drive(source, Phase::Warmup, concurrency, stop).await;
    }
    let timeout = Duration::from_secs_f64(load.timeout_s);
    let (mut records, window_start, dropped) = match *shape {
        Shape::Closed {
            concurrency,
            requests,
            duration,
        } => {
            let stop = closed::Stop {
                requests: if duration.is_some() {
                    shape::MAX_REQUESTS
                } else {
                    u64::from(requests)
                },
                after: duration,
            };
            let (records, start) = closed::drive(source, Phase::Measured, concurrency, stop).await;
            (records, start, 0)
        }
        Shape::Open { rate, requests } => {
            let plan = open::OpenLoop {
                offsets: schedule::arrival_offsets(
                    load.arrival,
                    rate,
                    load.burstiness,
                    requests as usize,
                    load.seed,
                ),
                max_in_flight: load.max_in_flight,
                when_full: load.when_full,
                timeout,
            };
            let outcome = plan.drive(source).await;
            (outcome.records, outcome.window_start, outcome.dropped)
        }
        Shape::Users {
            users, duration, ..
        } => {
            let plan = users::Users {
                users,
                ramp_up: load.ramp_up.map_or(Duration::ZERO, |s| s.0),
                duration,
                think_time: load.think_time.map_or(Duration::ZERO, |s| s.0),
                progress_interval: load.progress_interval.map(|s| s.0),
                max_requests: shape::MAX_REQUESTS,
            };
            let (records, start) = plan.drive(source).await;
            (records, start, 0)
        }
    };
    let duration_s = Instant::now()
        .saturating_duration_since(window_start)
        .as_secs_f64();
    records.sort_by_key(|r| r.id);
    LoadOutcome {
        window_start,
        records,
        duration_s,
        dropped,
    }
}

/// Waits for every worker and gathers their records. A worker that panicked is a bug in
/// this crate (never server input): the panic is passed on rather than losing requests.
async fn join_all(mut tasks: JoinSet<Vec<RequestRecord>>) -> Vec<RequestRecord> {
    let mut records = Vec::new();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(mine) => records.extend(mine),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => {}
        }
    }
    records
}
