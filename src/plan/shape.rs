//! The load shape of one trial: the case's `load` section applied to one matrix combination.

use std::time::Duration;

use crate::case::{LoadMode, LoadSpec};
use crate::matrix::Combination;

/// Most requests any duration-bound run sends, whatever its duration.
pub const MAX_REQUESTS: u64 = 1_000_000;

/// How one trial drives its server.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// `concurrency` in flight; `requests` in all, or for `duration` cycling `requests` prompts.
    Closed {
        /// Requests in flight.
        concurrency: u32,
        /// Measured requests (or the prompt pool size with a duration).
        requests: u32,
        /// Send for this long instead of stopping after `requests`.
        duration: Option<Duration>,
    },
    /// `requests` arrivals at `rate` per second.
    Open {
        /// Requests per second.
        rate: f64,
        /// Arrivals scheduled.
        requests: u32,
    },
    /// `users` virtual users for `duration`, cycling `pool` prompts.
    Users {
        /// Virtual users.
        users: u32,
        /// Run length.
        duration: Duration,
        /// Prompt pool size.
        pool: u32,
    },
    /// One prompt sent `requests` times, one at a time.
    Consistency {
        /// Measured requests.
        requests: u32,
    },
    /// Multi-turn sessions arriving at `rate` per second, `sessions` of them scheduled, for
    /// `duration` (no turn is sent after it).
    Sessions {
        /// Session arrivals per second.
        rate: f64,
        /// Sessions scheduled.
        sessions: u32,
        /// How long sessions arrive and turns are sent.
        duration: Duration,
    },
}

impl Shape {
    /// The part `share` (0 to 1) of this load: what one endpoint of several gets when the load
    /// is spread by weight. Concurrency, users, rates and counts are scaled (counts rounded,
    /// at least 1); a consistency run (one request at a time) is the same.
    pub fn share(&self, share: f64) -> Shape {
        let count = |n: u32| ((f64::from(n) * share).round() as u32).max(1);
        match *self {
            Shape::Closed {
                concurrency,
                requests,
                duration,
            } => Shape::Closed {
                concurrency: count(concurrency),
                requests: count(requests),
                duration,
            },
            Shape::Open { rate, requests } => Shape::Open {
                rate: rate * share,
                requests: count(requests),
            },
            Shape::Users {
                users,
                duration,
                pool,
            } => Shape::Users {
                users: count(users),
                duration,
                pool,
            },
            Shape::Consistency { requests } => Shape::Consistency { requests },
            Shape::Sessions {
                rate,
                sessions,
                duration,
            } => Shape::Sessions {
                rate: rate * share,
                sessions: count(sessions),
                duration,
            },
        }
    }

    /// The shapes a combination becomes: one, or one per rate in open mode.
    pub fn for_combination(load: &LoadSpec, c: &Combination) -> Vec<Shape> {
        let requests = load.requests.unwrap_or(c.prompts).max(1);
        let duration = load.duration.map(|d| d.0);
        match load.mode {
            LoadMode::Closed => vec![Shape::Closed {
                concurrency: c.concurrency,
                requests,
                duration,
            }],
            LoadMode::Open => load
                .rate
                .0
                .iter()
                .map(|&rate| Shape::Open {
                    rate,
                    requests: match (load.requests, duration) {
                        (None, Some(d)) => (rate * d.as_secs_f64())
                            .ceil()
                            .clamp(1.0, MAX_REQUESTS as f64)
                            as u32,
                        _ => requests,
                    },
                })
                .collect(),
            LoadMode::Users => vec![Shape::Users {
                users: c.concurrency,
                duration: duration.unwrap_or(Duration::from_secs(60)),
                pool: requests,
            }],
            LoadMode::Consistency => vec![Shape::Consistency { requests }],
            LoadMode::Sessions => {
                let duration = duration.unwrap_or(Duration::from_secs(60));
                load.rate
                    .0
                    .iter()
                    .map(|&rate| {
                        let arrivals = (rate * duration.as_secs_f64())
                            .ceil()
                            .clamp(1.0, MAX_REQUESTS as f64)
                            as u32;
                        Shape::Sessions {
                            rate,
                            sessions: load.requests.map_or(arrivals, |n| n.min(arrivals)),
                            duration,
                        }
                    })
                    .collect()
            }
        }
    }

    /// The trial-name part after `case::`: `isl128_osl64_c4_n4` (closed), `…_c4_30s` (closed
    /// for a duration), `…_r10_n100` (open), `…_u16_60s` (users), `…_same_n50` (consistency),
    /// `…_sr2_20s` (sessions: 2 session arrivals per second for 20 s).
    pub fn slug(&self, c: &Combination) -> String {
        let lengths = format!("isl{}_osl{}", c.isl, c.osl);
        match *self {
            Shape::Closed {
                duration: None,
                requests,
                concurrency,
            } => format!("{lengths}_c{concurrency}_n{requests}"),
            Shape::Closed {
                duration: Some(d),
                concurrency,
                ..
            } => format!("{lengths}_c{concurrency}_{}", compact(d)),
            Shape::Open { rate, requests } => format!("{lengths}_r{rate}_n{requests}"),
            Shape::Users {
                users, duration, ..
            } => format!("{lengths}_u{users}_{}", compact(duration)),
            Shape::Consistency { requests } => format!("{lengths}_same_n{requests}"),
            Shape::Sessions { rate, duration, .. } => {
                format!("{lengths}_sr{rate}_{}", compact(duration))
            }
        }
    }

    /// Requests in flight (closed; 1 for consistency), users (users), or none (open).
    pub fn concurrency(&self) -> Option<u32> {
        match *self {
            Shape::Closed { concurrency, .. } => Some(concurrency),
            Shape::Consistency { .. } => Some(1),
            Shape::Users { users, .. } => Some(users),
            Shape::Open { .. } | Shape::Sessions { .. } => None,
        }
    }

    /// Measured requests the load will send, when that is fixed up front (a closed loop of
    /// N requests, an open loop's arrivals); `None` when a duration decides.
    pub fn planned_requests(&self) -> Option<u64> {
        match *self {
            Shape::Closed {
                duration: None,
                requests,
                ..
            }
            | Shape::Open { requests, .. }
            | Shape::Consistency { requests } => Some(u64::from(requests)),
            Shape::Closed { .. } | Shape::Users { .. } | Shape::Sessions { .. } => None,
        }
    }

    /// Distinct measured prompts to prepare (one for consistency: every request sends it).
    pub fn pool_size(&self) -> u32 {
        match *self {
            Shape::Consistency { .. } => 1,
            Shape::Closed { requests, .. } | Shape::Open { requests, .. } => requests,
            Shape::Users { pool, .. } => pool,
            Shape::Sessions { sessions, .. } => sessions,
        }
    }

    /// Requests per second asked for (open), or session arrivals per second (sessions).
    pub fn rate(&self) -> Option<f64> {
        match *self {
            Shape::Open { rate, .. } | Shape::Sessions { rate, .. } => Some(rate),
            _ => None,
        }
    }

    /// The load mode.
    pub fn mode(&self) -> LoadMode {
        match self {
            Shape::Closed { .. } => LoadMode::Closed,
            Shape::Open { .. } => LoadMode::Open,
            Shape::Users { .. } => LoadMode::Users,
            Shape::Consistency { .. } => LoadMode::Consistency,
            Shape::Sessions { .. } => LoadMode::Sessions,
        }
    }
}

/// `30s`, `1500ms`: a duration as one token for trial names.
fn compact(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use rstest::rstest;

    use super::*;
    use crate::case::load::parse_yaml;

    #[rstest]
    #[case::closed(
        Shape::Closed { concurrency: 8, requests: 40, duration: None },
        0.3,
        Shape::Closed { concurrency: 2, requests: 12, duration: None }
    )]
    #[case::closed_at_least_one(
        Shape::Closed { concurrency: 1, requests: 1, duration: Some(Duration::from_secs(5)) },
        0.1,
        Shape::Closed { concurrency: 1, requests: 1, duration: Some(Duration::from_secs(5)) }
    )]
    #[case::open(Shape::Open { rate: 40.0, requests: 80 }, 0.25, Shape::Open { rate: 10.0, requests: 20 })]
    #[case::users(
        Shape::Users { users: 10, duration: Duration::from_secs(60), pool: 50 },
        0.5,
        Shape::Users { users: 5, duration: Duration::from_secs(60), pool: 50 }
    )]
    #[case::sessions(
        Shape::Sessions { rate: 2.0, sessions: 40, duration: Duration::from_secs(20) },
        0.5,
        Shape::Sessions { rate: 1.0, sessions: 20, duration: Duration::from_secs(20) }
    )]
    #[case::consistency(Shape::Consistency { requests: 30 }, 0.5, Shape::Consistency { requests: 30 })]
    fn an_endpoint_alone_gets_its_share_of_the_load(
        #[case] whole: Shape,
        #[case] share: f64,
        #[case] part: Shape,
    ) {
        assert_eq!(whole.share(share), part);
    }
    use crate::matrix::Source;

    fn combination(concurrency: u32, prompts: u32) -> Combination {
        Combination {
            isl: 128,
            osl: 64,
            concurrency,
            prompts,
            source: Source::Generated,
            adjusted: None,
            targets: None,
        }
    }

    #[rstest]
    #[case("{}", &["isl128_osl64_c4_n8"])]
    #[case("{duration: 30s}", &["isl128_osl64_c4_30s"])]
    #[case("{duration: 1500ms, requests: 3}", &["isl128_osl64_c4_1500ms"])]
    #[case("{mode: open, rate: [10, 2.5]}", &["isl128_osl64_r10_n8", "isl128_osl64_r2.5_n8"])]
    #[case("{mode: open, rate: 20, duration: 5s}", &["isl128_osl64_r20_n100"])]
    #[case("{mode: open, rate: 20, requests: 7, duration: 5s}", &["isl128_osl64_r20_n7"])]
    #[case("{mode: users, duration: 1m}", &["isl128_osl64_u4_60s"])]
    #[case("{mode: consistency}", &["isl128_osl64_same_n8"])]
    #[case("{mode: consistency, requests: 50}", &["isl128_osl64_same_n50"])]
    #[case("{mode: sessions, rate: [2, 0.5], duration: 20s}", &["isl128_osl64_sr2_20s", "isl128_osl64_sr0.5_20s"])]
    fn shapes_name_their_trials(#[case] load: &str, #[case] slugs: &[&str]) {
        let load: LoadSpec = parse_yaml(Path::new("l.yaml"), load).expect("parses");
        let c = combination(4, 8);
        let names: Vec<String> = Shape::for_combination(&load, &c)
            .iter()
            .map(|s| s.slug(&c))
            .collect();
        assert_eq!(names, slugs);
    }

    #[rstest]
    #[case("{}", Some(8))]
    #[case("{duration: 30s}", None)]
    #[case("{mode: open, rate: 10}", Some(8))]
    #[case("{mode: open, rate: 20, duration: 5s}", Some(100))]
    #[case("{mode: users, duration: 1m}", None)]
    #[case("{mode: consistency, requests: 30}", Some(30))]
    fn planned_requests_are_known_unless_a_duration_decides(
        #[case] load: &str,
        #[case] planned: Option<u64>,
    ) {
        let load: LoadSpec = parse_yaml(Path::new("l.yaml"), load).expect("parses");
        let shapes = Shape::for_combination(&load, &combination(4, 8));
        assert_eq!(shapes[0].planned_requests(), planned);
    }
}
