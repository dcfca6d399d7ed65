//! One trial's load spread over N client processes ("workers"): the deterministic share of
//! worker I, so that the union of every worker's load is the single process's load.
//!
//! - closed loop of C streams and R requests: worker I runs C/N streams (one more when
//!   I < C mod N) and sends the requests whose global id is I, I+N, I+2N, … ([`Share::portion`]);
//!   when C < N only workers 0..C take part ([`Share::for_streams`]), as shares of C;
//! - virtual users U: worker I runs the global users I, I+N, …, each starting at the offset it
//!   has in the single-process ramp-up ([`Share::users`]);
//! - open loop: worker I sends arrivals I, I+N, … of the one seeded schedule, each at its own
//!   intended offset ([`Share::pick`]), so the union of intended send times is the schedule.
//!
//! Request ids are global: the request source maps a worker's local id j to j·N+I
//! ([`Share::global`]) in one place, so prompts and endpoint choices are the single process's.

use std::fmt;
use std::str::FromStr;

/// The share of worker `index` of `count` (0-based). [`Share::WHOLE`] is the single process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Share {
    index: u32,
    count: u32,
    idle: bool,
}

/// Why a worker share cannot be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareError {
    /// Not `I/N` with whole numbers.
    #[error("a worker is I/N (0-based I, N workers), such as 2/8: not {0:?}")]
    Syntax(String),
    /// N is zero, or I is not below N.
    #[error("worker {index}/{count}: I must be below N and N at least 1")]
    Range {
        /// I.
        index: u64,
        /// N.
        count: u64,
    },
    /// Only one of a pair of environment variables is set, or one is not a number.
    #[error("environment: {0}")]
    Env(String),
}

/// Kubernetes Indexed Job: this pod's index (0-based).
pub const K8S_INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
/// Kubernetes Indexed Job: the job's completions (not set by Kubernetes itself; the shipped
/// manifest sets it from `spec.completions`).
pub const K8S_COUNT_ENV: &str = "JOB_COMPLETION_COUNT";
/// Slurm job array: this task's id.
pub const SLURM_INDEX_ENV: &str = "SLURM_ARRAY_TASK_ID";
/// Slurm job array: the number of tasks.
pub const SLURM_COUNT_ENV: &str = "SLURM_ARRAY_TASK_COUNT";
/// Slurm job array: the lowest task id (arrays may start at 1: `--array=1-8`).
pub const SLURM_MIN_ENV: &str = "SLURM_ARRAY_TASK_MIN";

impl Share {
    /// The whole load: one process.
    pub const WHOLE: Share = Share {
        index: 0,
        count: 1,
        idle: false,
    };

    /// Worker `index` of `count`.
    pub fn new(index: u32, count: u32) -> Result<Share, ShareError> {
        if count == 0 || index >= count {
            return Err(ShareError::Range {
                index: u64::from(index),
                count: u64::from(count),
            });
        }
        Ok(Share {
            index,
            count,
            idle: false,
        })
    }

    /// The worker read from the environment a job engine sets: a Kubernetes Indexed Job
    /// (`JOB_COMPLETION_INDEX` with `JOB_COMPLETION_COUNT`), else a Slurm job array
    /// (`SLURM_ARRAY_TASK_ID − SLURM_ARRAY_TASK_MIN` of `SLURM_ARRAY_TASK_COUNT`; the minimum
    /// is 0 when unset). `None` when neither pair is set. `var` reads a variable.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Option<Share>, ShareError> {
        let number =
            |name: &str| -> Result<Option<u64>, ShareError> {
                match var(name).filter(|v| !v.trim().is_empty()) {
                    None => Ok(None),
                    Some(v) => v.trim().parse().map(Some).map_err(|_| {
                        ShareError::Env(format!("{name}={v:?} is not a whole number"))
                    }),
                }
            };
        let pair = |index: &str, count: &str| -> Result<Option<(u64, u64)>, ShareError> {
            match (number(index)?, number(count)?) {
                (Some(i), Some(n)) => Ok(Some((i, n))),
                (None, None) => Ok(None),
                (Some(_), None) => Err(ShareError::Env(format!(
                    "{index} is set but {count} is not"
                ))),
                (None, Some(_)) => Err(ShareError::Env(format!(
                    "{count} is set but {index} is not"
                ))),
            }
        };
        let found = match pair(K8S_INDEX_ENV, K8S_COUNT_ENV)? {
            Some(found) => Some(found),
            None => match pair(SLURM_INDEX_ENV, SLURM_COUNT_ENV)? {
                Some((id, n)) => {
                    let min = number(SLURM_MIN_ENV)?.unwrap_or(0);
                    let index = id.checked_sub(min).ok_or_else(|| {
                        ShareError::Env(format!(
                            "{SLURM_INDEX_ENV}={id} is below {SLURM_MIN_ENV}={min}"
                        ))
                    })?;
                    Some((index, n))
                }
                None => None,
            },
        };
        found
            .map(|(index, count)| {
                let range = ShareError::Range { index, count };
                let index = u32::try_from(index).map_err(|_| range.clone())?;
                let count = u32::try_from(count).map_err(|_| range)?;
                Share::new(index, count)
            })
            .transpose()
    }

    /// I.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// N.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Whether this worker sends nothing (a closed loop of fewer streams than workers).
    pub fn is_idle(&self) -> bool {
        self.idle
    }

    /// Whether this is the whole load of one process.
    pub fn is_whole(&self) -> bool {
        self.count == 1 && !self.idle
    }

    /// This share of a closed loop of `streams` streams: when there are fewer streams than
    /// workers, workers `0..streams` each take one (as shares of `streams`: the requests are
    /// split among them) and the others are idle.
    pub fn for_streams(self, streams: u32) -> Share {
        let streams = streams.max(1);
        if self.idle || self.count <= streams {
            self
        } else if self.index < streams {
            Share {
                index: self.index,
                count: streams,
                idle: false,
            }
        } else {
            Share { idle: true, ..self }
        }
    }

    /// The global id of this worker's `local`-th request: local·N + I.
    pub fn global(&self, local: u64) -> u64 {
        local
            .saturating_mul(u64::from(self.count))
            .saturating_add(u64::from(self.index))
    }

    /// How many of `total` items (streams, requests, users) numbered 0.. are this worker's:
    /// those ≡ I mod N, that is total/N, plus one when I < total mod N.
    pub fn portion(&self, total: u64) -> u64 {
        if self.idle {
            return 0;
        }
        let n = u64::from(self.count);
        total / n + u64::from(u64::from(self.index) < total % n)
    }

    /// The global numbers of this worker's users of `total`: I, I+N, … below `total`.
    pub fn users(&self, total: u32) -> impl Iterator<Item = u32> + use<> {
        let (start, step) = (self.index, self.count as usize);
        let end = if self.idle { start } else { total };
        (start..end).step_by(step.max(1))
    }

    /// This worker's items of `all` (an arrival schedule): positions I, I+N, …, in order;
    /// the `j`-th kept is global item j·N+I.
    pub fn pick<T: Clone>(&self, all: &[T]) -> Vec<T> {
        if self.idle {
            return Vec::new();
        }
        all.iter()
            .skip(self.index as usize)
            .step_by(self.count as usize)
            .cloned()
            .collect()
    }
}

impl Default for Share {
    fn default() -> Share {
        Share::WHOLE
    }
}

impl fmt::Display for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)?;
        if self.idle {
            f.write_str(" (idle)")?;
        }
        Ok(())
    }
}

impl FromStr for Share {
    type Err = ShareError;

    fn from_str(text: &str) -> Result<Share, ShareError> {
        let syntax = || ShareError::Syntax(text.to_string());
        let (index, count) = text.trim().split_once('/').ok_or_else(syntax)?;
        let index: u64 = index.trim().parse().map_err(|_| syntax())?;
        let count: u64 = count.trim().parse().map_err(|_| syntax())?;
        let range = ShareError::Range { index, count };
        Share::new(
            u32::try_from(index).map_err(|_| range.clone())?,
            u32::try_from(count).map_err(|_| range)?,
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rstest::rstest;

    use super::*;

    fn share(index: u32, count: u32) -> Share {
        Share::new(index, count).expect("a valid share")
    }

    #[rstest]
    #[case("0/1", 0, 1)]
    #[case("3/4", 3, 4)]
    #[case(" 2 / 8 ", 2, 8)]
    fn worker_arguments_parse(#[case] text: &str, #[case] index: u32, #[case] count: u32) {
        assert_eq!(text.parse::<Share>(), Ok(share(index, count)));
    }

    #[rstest]
    #[case("4/4")]
    #[case("0/0")]
    #[case("1")]
    #[case("a/2")]
    #[case("-1/2")]
    #[case("1/99999999999")]
    fn bad_worker_arguments_are_errors(#[case] text: &str) {
        assert!(text.parse::<Share>().is_err(), "{text}");
    }

    #[rstest]
    // C streams over N workers: C/N each, one more for I < C mod N; the sum is C.
    #[case(512, 4, &[128, 128, 128, 128])]
    #[case(10, 4, &[3, 3, 2, 2])]
    #[case(3, 4, &[1, 1, 1, 0])]
    #[case(0, 3, &[0, 0, 0])]
    fn portions_add_up_to_the_whole(#[case] total: u64, #[case] n: u32, #[case] each: &[u64]) {
        let got: Vec<u64> = (0..n).map(|i| share(i, n).portion(total)).collect();
        assert_eq!(got, each);
        assert_eq!(got.iter().sum::<u64>(), total);
    }

    #[rstest]
    #[case(7, 3)]
    #[case(100, 4)]
    #[case(5, 8)]
    fn global_ids_partition_the_single_process_ids(#[case] requests: u64, #[case] n: u32) {
        let mut ids: Vec<u64> = (0..n)
            .flat_map(|i| {
                let s = share(i, n);
                (0..s.portion(requests)).map(move |local| s.global(local))
            })
            .collect();
        ids.sort_unstable();
        assert_eq!(ids, (0..requests).collect::<Vec<_>>());
    }

    #[rstest]
    #[case(2, 4, &[(0, 2), (1, 2)])]
    #[case(8, 4, &[(0, 4), (1, 4), (2, 4), (3, 4)])]
    #[case(1, 3, &[(0, 1)])]
    fn fewer_streams_than_workers_leave_the_rest_idle(
        #[case] streams: u32,
        #[case] n: u32,
        #[case] active: &[(u32, u32)],
    ) {
        let shares: Vec<Share> = (0..n).map(|i| share(i, n).for_streams(streams)).collect();
        let busy: Vec<(u32, u32)> = shares
            .iter()
            .filter(|s| !s.is_idle())
            .map(|s| (s.index(), s.count()))
            .collect();
        assert_eq!(busy, active);
        let streams_run: u64 = shares.iter().map(|s| s.portion(u64::from(streams))).sum();
        assert_eq!(streams_run, u64::from(streams));
        let requests: u64 = shares.iter().map(|s| s.portion(101)).sum();
        assert_eq!(requests, 101, "the requests are all sent, once");
    }

    #[test]
    fn users_interleave_so_the_union_ramps_as_one() {
        let mut all: Vec<u32> = (0..4)
            .flat_map(|i| share(i, 4).users(10).collect::<Vec<_>>())
            .collect();
        assert_eq!(share(1, 4).users(10).collect::<Vec<_>>(), [1, 5, 9]);
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn picks_keep_every_nth_item_in_order() {
        let all: Vec<u32> = (0..10).collect();
        assert_eq!(share(2, 4).pick(&all), [2, 6]);
        assert_eq!(Share::WHOLE.pick(&all), all);
        assert!(share(3, 4).for_streams(2).pick(&all).is_empty());
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[rstest]
    #[case(&[], None)]
    #[case(&[("JOB_COMPLETION_INDEX", "3"), ("JOB_COMPLETION_COUNT", "8")], Some((3, 8)))]
    #[case(&[("SLURM_ARRAY_TASK_ID", "2"), ("SLURM_ARRAY_TASK_COUNT", "4")], Some((2, 4)))]
    #[case(
        &[("SLURM_ARRAY_TASK_ID", "4"), ("SLURM_ARRAY_TASK_COUNT", "4"), ("SLURM_ARRAY_TASK_MIN", "1")],
        Some((3, 4))
    )]
    // Kubernetes first when both are set.
    #[case(
        &[("JOB_COMPLETION_INDEX", "0"), ("JOB_COMPLETION_COUNT", "2"),
          ("SLURM_ARRAY_TASK_ID", "5"), ("SLURM_ARRAY_TASK_COUNT", "9")],
        Some((0, 2))
    )]
    fn the_worker_comes_from_the_job_engine(
        #[case] vars: &[(&str, &str)],
        #[case] expected: Option<(u32, u32)>,
    ) {
        let got = Share::from_env(env(vars)).expect("valid");
        assert_eq!(got, expected.map(|(i, n)| share(i, n)));
    }

    #[rstest]
    #[case(&[("JOB_COMPLETION_INDEX", "3")])]
    #[case(&[("JOB_COMPLETION_INDEX", "3"), ("JOB_COMPLETION_COUNT", "x")])]
    #[case(&[("JOB_COMPLETION_INDEX", "8"), ("JOB_COMPLETION_COUNT", "8")])]
    #[case(&[("SLURM_ARRAY_TASK_ID", "0"), ("SLURM_ARRAY_TASK_COUNT", "4"), ("SLURM_ARRAY_TASK_MIN", "1")])]
    fn half_set_or_bad_variables_are_errors(#[case] vars: &[(&str, &str)]) {
        assert!(Share::from_env(env(vars)).is_err());
    }
}
