//! A load trial's time limit (`load.trial_timeout`): the case's own, or a bound computed from
//! what the load asks for, so that a trial ends by itself however long its case runs and a
//! test runner need not kill it.

use std::time::Duration;

use crate::case::{LoadSpec, Warmup, WhenFull};
use crate::plan::shape::Shape;

/// Added to the computed bound for what it does not count: connecting, the pauses between
/// repeated runs, the last records being gathered.
pub const MARGIN: Duration = Duration::from_secs(30);

/// The time limit of a trial whose load runs `runs` times (its `repeat` plus the gate's
/// retries): the case's `load.trial_timeout` when set, else [`default_limit`].
pub fn trial_limit(load: &LoadSpec, shape: &Shape, runs: u32) -> Duration {
    load.trial_timeout
        .map_or_else(|| default_limit(load, shape, runs), |span| span.0)
}

/// The longest a load of `shape` can take when every request takes its whole timeout: per run,
/// the warmup plus the measured load, each ending with one request timeout for the requests
/// still in flight; times `runs`, plus [`MARGIN`]. A load bounded by a duration is bounded
/// by it; one bounded by a request count takes at most `⌈requests / concurrency⌉` timeouts.
pub fn default_limit(load: &LoadSpec, shape: &Shape, runs: u32) -> Duration {
    let timeout = Duration::from_secs_f64(load.timeout_s);
    let rounds = |requests: u64, lanes: u32| timeout.saturating_mul(rounds_of(requests, lanes));
    let lanes = shape.concurrency().unwrap_or(1).max(1);
    let warmup = match (load.warmup, shape.rate()) {
        (Warmup::Requests(0), _) => Duration::ZERO,
        (Warmup::Requests(n), Some(rate)) => open_bound(load, rate, u64::from(n)),
        (Warmup::Requests(n), None) => rounds(u64::from(n), lanes),
        (Warmup::Duration(d), _) => d.0.saturating_add(timeout),
    };
    let measured = match *shape {
        Shape::Closed {
            duration: Some(d), ..
        } => d.saturating_add(timeout),
        Shape::Closed {
            concurrency,
            requests,
            duration: None,
        } => rounds(u64::from(requests), concurrency),
        Shape::Consistency { requests } => rounds(u64::from(requests), 1),
        Shape::Open { rate, requests } => open_bound(load, rate, u64::from(requests)),
        // No turn is sent after the duration: the last ones then run for a timeout at most.
        Shape::Sessions { duration, .. } => duration.saturating_add(timeout),
        Shape::Users { duration, .. } => {
            let ramp = load.ramp_up.map_or(Duration::ZERO, |s| s.0);
            let think = load.think_time.map_or(Duration::ZERO, |s| s.0);
            duration
                .saturating_add(ramp)
                .saturating_add(think)
                .saturating_add(timeout)
        }
    };
    warmup
        .saturating_add(measured)
        .saturating_mul(runs.max(1))
        .saturating_add(MARGIN)
}

/// An open loop of `arrivals` at `rate`: the schedule, then one timeout for the last requests;
/// arrivals that wait for a slot (`when_full: wait`) may each wait a timeout for it.
fn open_bound(load: &LoadSpec, rate: f64, arrivals: u64) -> Duration {
    let timeout = Duration::from_secs_f64(load.timeout_s);
    let schedule = Duration::try_from_secs_f64(arrivals as f64 / rate).unwrap_or(Duration::MAX);
    let queued = match (load.max_in_flight, load.when_full) {
        (Some(slots), WhenFull::Wait) => timeout.saturating_mul(rounds_of(arrivals, slots)),
        _ => timeout,
    };
    schedule.saturating_add(queued)
}

/// `⌈requests / lanes⌉`, as a multiplier of a duration.
fn rounds_of(requests: u64, lanes: u32) -> u32 {
    u32::try_from(requests.div_ceil(u64::from(lanes.max(1)))).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rstest::rstest;

    use super::{MARGIN, default_limit, trial_limit};
    use crate::case::{LoadSpec, Span, Warmup, WhenFull};
    use crate::plan::shape::Shape;

    fn load(timeout_s: f64, warmup: Warmup) -> LoadSpec {
        LoadSpec {
            timeout_s,
            warmup,
            ..LoadSpec::default()
        }
    }

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[rstest]
    // 10 requests over 4 lanes: 3 rounds of 10 s; no warmup.
    #[case(Shape::Closed { concurrency: 4, requests: 10, duration: None }, Warmup::Requests(0), S(30))]
    // A duration bounds a closed loop: 60 s + one timeout; a 2-request warmup at 4 lanes: 1 round.
    #[case(Shape::Closed { concurrency: 4, requests: 10, duration: Some(S(60)) }, Warmup::Requests(2), S(80))]
    // Consistency sends one at a time; a warmup of 5 s ends with one timeout.
    #[case(Shape::Consistency { requests: 3 }, Warmup::Duration(Span(S(5))), S(45))]
    // 100 arrivals at 10/s: 10 s, then one timeout.
    #[case(Shape::Open { rate: 10.0, requests: 100 }, Warmup::Requests(0), S(20))]
    // Users: the duration and one timeout.
    #[case(Shape::Users { users: 8, duration: S(120), pool: 4 }, Warmup::Requests(0), S(130))]
    fn bounds_the_load_by_its_timeouts(
        #[case] shape: Shape,
        #[case] warmup: Warmup,
        #[case] expected: Duration,
    ) {
        assert_eq!(
            default_limit(&load(10.0, warmup), &shape, 1),
            expected + MARGIN
        );
    }

    #[test]
    fn each_run_adds_the_whole_load() {
        let shape = Shape::Closed {
            concurrency: 1,
            requests: 2,
            duration: None,
        };
        let spec = load(5.0, Warmup::Requests(1));
        assert_eq!(default_limit(&spec, &shape, 3), S(45) + MARGIN);
    }

    #[test]
    fn waiting_arrivals_may_each_wait_a_timeout() {
        let spec = LoadSpec {
            max_in_flight: Some(2),
            when_full: WhenFull::Wait,
            ..load(10.0, Warmup::Requests(0))
        };
        let shape = Shape::Open {
            rate: 4.0,
            requests: 8,
        };
        assert_eq!(default_limit(&spec, &shape, 1), S(2) + S(40) + MARGIN);
    }

    #[test]
    fn the_case_limit_wins() {
        let spec = LoadSpec {
            trial_timeout: Some(Span(S(7))),
            ..load(10.0, Warmup::Requests(0))
        };
        let shape = Shape::Consistency { requests: 1000 };
        assert_eq!(trial_limit(&spec, &shape, 5), S(7));
    }

    #[test]
    fn a_huge_load_saturates_instead_of_overflowing() {
        let spec = load(1e9, Warmup::Requests(u32::MAX));
        let shape = Shape::Consistency { requests: u32::MAX };
        assert_eq!(default_limit(&spec, &shape, 100), Duration::MAX);
    }
}
