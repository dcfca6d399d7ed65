//! Load generation: drivers that send requests and collect one record per request.
//!
//! Three modes share one request source: closed loop ([`closed`]), open loop on a fixed
//! schedule ([`open`], [`schedule`]) and virtual users with ramp-up ([`users`]); a
//! consistency run is a closed loop of one over a pool of one prompt. A warmup, never
//! measured, runs first as a closed loop.

pub mod barrier;
pub mod closed;
pub mod conversation;
pub mod limit;
pub mod open;
pub mod progress;
pub mod schedule;
pub mod share;
pub mod source;
pub mod spool;
pub mod users;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

pub use conversation::{Conversations, ScriptedTurn};
pub use share::Share;
pub use source::{CUT_OFF_NOTE, Endpoint, Phase, RequestSource, SourceError};

use crate::case::{LoadSpec, Warmup};
use crate::metrics::RequestRecord;
use crate::plan::shape::{MAX_REQUESTS, Shape};

/// What a load run measured.
#[derive(Debug, Clone)]
pub struct LoadOutcome {
    /// The instant every record's `send_ms` counts from.
    pub window_start: Instant,
    /// One record per measured request that was sent, by id; none of those the request
    /// source streamed to its spool ([`RequestSource::with_spool`]).
    pub records: Vec<RequestRecord>,
    /// Measured window: start of sending to the last completion, seconds.
    pub duration_s: f64,
    /// Open-loop arrivals that were never sent.
    pub dropped: u64,
}

impl LoadOutcome {
    /// This run followed by `next` as one measurement: `next`'s requests are renumbered after
    /// this run's and its times shifted by this run's measured window, so the pooled window
    /// is the two windows back to back (the pause between them, with `next`'s warmup, is in
    /// neither); the windows' lengths and the dropped arrivals add up. `next` sends the same
    /// prompts, so none of its requests is the first of its shared prefix (`prefix_cold`): the
    /// server has seen every prefix already. Its conversations are renumbered after this
    /// run's.
    pub fn followed_by(mut self, next: LoadOutcome) -> LoadOutcome {
        let shift_ms = self.duration_s * 1000.0;
        let first_id = self.records.iter().map(|r| r.id + 1).max().unwrap_or(0);
        let first_conversation = self
            .records
            .iter()
            .filter_map(|r| r.conversation.map(|c| c + 1))
            .max()
            .unwrap_or(0);
        self.records.extend(next.records.into_iter().map(|mut r| {
            r.id += first_id;
            r.send_ms += shift_ms;
            r.intended_ms = r.intended_ms.map(|t| t + shift_ms);
            r.prefix_cold = false;
            r.conversation = r.conversation.map(|c| c + first_conversation);
            r
        }));
        self.duration_s += next.duration_s;
        self.dropped += next.dropped;
        self
    }
}

/// Warmup requests to prepare prompts for (open loop: the arrivals of the warmup).
pub fn warmup_pool_size(load: &LoadSpec, shape: &Shape) -> u32 {
    match (load.warmup, shape.rate()) {
        (Warmup::Requests(n), _) => n,
        (Warmup::Duration(d), Some(rate)) => open_arrivals(rate, d.0),
        (Warmup::Duration(_), None) => shape.concurrency().unwrap_or(1).max(1),
    }
}

/// Arrivals at `rate` per second over `span`, at least one.
fn open_arrivals(rate: f64, span: Duration) -> u32 {
    (rate * span.as_secs_f64())
        .ceil()
        .clamp(1.0, MAX_REQUESTS as f64) as u32
}

/// Runs the warmup: for closed loops and users, a closed loop at the trial's concurrency; for
/// open loops, the same arrival process at the same rate. Nothing of it is measured.
/// A worker ([`Share`]) warms up with its share of the warmup.
async fn warm_up(load: &LoadSpec, shape: &Shape, source: &Arc<RequestSource>) {
    let share = source.share();
    if share.is_idle() {
        return;
    }
    if let Some(rate) = shape.rate() {
        let arrivals = match load.warmup {
            Warmup::Requests(n) => n,
            Warmup::Duration(d) => open_arrivals(rate, d.0),
        };
        if arrivals > 0 {
            let mut warmup = open_loop(load, rate, arrivals, Phase::Warmup);
            warmup.offsets = share.pick(&warmup.offsets);
            warmup.drive(source).await;
        }
        return;
    }
    let stop = match load.warmup {
        Warmup::Requests(0) => return,
        Warmup::Requests(n) if share.portion(u64::from(n)) == 0 => return,
        Warmup::Requests(n) => closed::Stop {
            requests: share.portion(u64::from(n)),
            after: None,
        },
        Warmup::Duration(d) => closed::Stop {
            requests: MAX_REQUESTS,
            after: Some(d.0),
        },
    };
    let concurrency = share
        .portion(u64::from(shape.concurrency().unwrap_or(1)))
        .max(1) as u32;
    closed::drive(source, Phase::Warmup, concurrency, stop).await;
}

/// The share of `shape`'s load that `worker` sends: a closed loop (or a consistency run, a
/// closed loop of one) of fewer streams than workers is split among as many workers as it
/// has streams ([`Share::for_streams`]). Set it on the request source
/// ([`RequestSource::with_share`]) before [`run`].
pub fn share_of(shape: &Shape, worker: Share) -> Share {
    match *shape {
        Shape::Closed { concurrency, .. } => worker.for_streams(concurrency),
        Shape::Consistency { .. } => worker.for_streams(1),
        Shape::Open { .. } | Shape::Users { .. } | Shape::Sessions { .. } => worker,
    }
}

/// The intended send offsets of `share`'s arrivals of the open loop of `requests` arrivals at
/// `rate`: arrivals I, I+N, … of the one seeded schedule, each at its own offset.
pub fn intended_offsets(load: &LoadSpec, rate: f64, requests: u32, share: Share) -> Vec<Duration> {
    share.pick(&open_loop(load, rate, requests, Phase::Measured).offsets)
}

/// The open loop of `arrivals` at `rate` that `load` describes.
fn open_loop(load: &LoadSpec, rate: f64, arrivals: u32, phase: Phase) -> open::OpenLoop {
    open::OpenLoop {
        offsets: schedule::arrival_offsets(
            load.arrival,
            rate,
            load.burstiness,
            arrivals as usize,
            load.seed,
        ),
        max_in_flight: load.max_in_flight,
        when_full: load.when_full,
        timeout: Duration::from_secs_f64(load.timeout_s),
        phase,
    }
}

/// Runs the warmup, then the measured load of `shape`.
pub async fn run(load: &LoadSpec, shape: &Shape, source: &Arc<RequestSource>) -> LoadOutcome {
    warm_up(load, shape, source).await;
    let share = source.share();
    if let Some(barrier) = source.barrier()
        && barrier.wait().await.is_err()
    {
        // The workers could not start together: nothing is measured, and the barrier keeps
        // the error for the trial's verdict.
        return LoadOutcome {
            window_start: Instant::now(),
            records: Vec::new(),
            duration_s: 0.0,
            dropped: 0,
        };
    }
    let observer = source.progress();
    if let Some(progress) = observer {
        progress.load_started(shape.planned_requests());
    }
    let (mut records, window_start, dropped) = match *shape {
        Shape::Closed {
            concurrency,
            requests,
            duration,
        } => {
            let streams = share.portion(u64::from(concurrency)) as u32;
            let stop = closed::Stop {
                requests: match duration {
                    _ if streams == 0 => 0,
                    Some(_) => MAX_REQUESTS,
                    None => share.portion(u64::from(requests)),
                },
                after: duration,
            };
            let (records, start) = if source.conversations().is_some() {
                // Conversations are split whole among workers, not request by request: the
                // driver takes its share of the whole run's conversations.
                let whole = closed::Stop {
                    requests: match duration {
                        _ if streams == 0 => 0,
                        Some(_) => MAX_REQUESTS,
                        None => u64::from(requests),
                    },
                    after: duration,
                };
                conversation::drive(source, streams, whole).await
            } else {
                closed::drive(source, Phase::Measured, streams, stop).await
            };
            (records, start, 0)
        }
        Shape::Consistency { requests } => {
            // One at a time; the source's pool holds the one prompt every request sends.
            let stop = closed::Stop {
                requests: share.portion(u64::from(requests)),
                after: None,
            };
            let (records, start) = closed::drive(source, Phase::Measured, 1, stop).await;
            (records, start, 0)
        }
        Shape::Open { rate, requests } => {
            let mut plan = open_loop(load, rate, requests, Phase::Measured);
            plan.offsets = share.pick(&plan.offsets);
            let outcome = plan.drive(source).await;
            (outcome.records, outcome.window_start, outcome.dropped)
        }
        Shape::Sessions {
            rate,
            sessions,
            duration,
        } => {
            let offsets = schedule::arrival_offsets(
                load.arrival,
                rate,
                load.burstiness,
                sessions as usize,
                load.seed,
            );
            // Whole sessions are split among workers: arrivals I, I+N, … of the one schedule.
            let (records, start) =
                conversation::arrive(source, &share.pick(&offsets), duration).await;
            (records, start, 0)
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
                max_requests: MAX_REQUESTS,
            };
            let (records, start) = plan.drive(source).await;
            (records, start, 0)
        }
    };
    let duration_s = Instant::now()
        .saturating_duration_since(window_start)
        .as_secs_f64();
    if let Some(progress) = observer {
        progress.load_finished();
    }
    records.sort_by_key(|r| r.id);
    if source.has_prefix_groups() {
        crate::metrics::prefix::mark_cold(&mut records);
    }
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
        gather(done, &mut records);
    }
    records
}

/// Adds a finished worker's records to `records`, passing a panic on.
fn gather(
    done: Result<Vec<RequestRecord>, tokio::task::JoinError>,
    records: &mut Vec<RequestRecord>,
) {
    match done {
        Ok(mine) => records.extend(mine),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::LoadOutcome;
    use crate::metrics::RequestRecord;

    fn run(ids: &[u64], duration_s: f64, dropped: u64) -> LoadOutcome {
        LoadOutcome {
            window_start: std::time::Instant::now(),
            records: ids
                .iter()
                .map(|&id| RequestRecord {
                    id,
                    send_ms: id as f64 * 10.0,
                    intended_ms: Some(id as f64 * 10.0),
                    prefix_cold: id == 0,
                    ..RequestRecord::default()
                })
                .collect(),
            duration_s,
            dropped,
        }
    }

    #[rstest::rstest]
    #[case(crate::case::Arrival::Poisson, 1)]
    #[case(crate::case::Arrival::Gamma, 4)]
    #[case(crate::case::Arrival::Constant, 3)]
    fn workers_intended_send_times_union_to_the_single_process_schedule(
        #[case] arrival: crate::case::Arrival,
        #[case] workers: u32,
    ) {
        use super::{Share, intended_offsets};
        let load = crate::case::LoadSpec {
            arrival,
            burstiness: 0.5,
            seed: 42,
            ..crate::case::LoadSpec::default()
        };
        // An open loop of 1,000 req/s for 10 s.
        let single = intended_offsets(&load, 1000.0, 10_000, Share::WHOLE);
        let mut union: Vec<(u64, std::time::Duration)> = (0..workers)
            .flat_map(|i| {
                let share = Share::new(i, workers).expect("valid");
                intended_offsets(&load, 1000.0, 10_000, share)
                    .into_iter()
                    .enumerate()
                    .map(move |(local, at)| (share.global(local as u64), at))
            })
            .collect();
        union.sort();
        let expected: Vec<(u64, std::time::Duration)> = single
            .into_iter()
            .enumerate()
            .map(|(id, at)| (id as u64, at))
            .collect();
        assert_eq!(union.len(), 10_000);
        assert_eq!(
            union, expected,
            "arrival j·N+I at the single schedule's offset j·N+I"
        );
    }

    #[test]
    fn a_pooled_run_follows_the_first_one() {
        let pooled = run(&[0, 1, 2], 2.0, 1).followed_by(run(&[0, 1], 1.5, 2));
        let ids: Vec<u64> = pooled.records.iter().map(|r| r.id).collect();
        assert_eq!(ids, [0, 1, 2, 3, 4]);
        assert_eq!(pooled.records[3].send_ms, 2000.0);
        assert_eq!(pooled.records[4].intended_ms, Some(2010.0));
        assert_eq!(pooled.duration_s, 3.5);
        assert_eq!(pooled.dropped, 3);
        let cold: Vec<bool> = pooled.records.iter().map(|r| r.prefix_cold).collect();
        assert_eq!(
            cold,
            [true, false, false, false, false],
            "only the first run's"
        );
    }
}
