//! The global router: which replica an arriving request goes to.

use serde::{Deserialize, Serialize};

/// How arriving requests are spread over replicas that keep their own queues.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Router {
    /// Replicas in turn.
    #[default]
    RoundRobin,
    /// The replica with the fewest outstanding (queued + running) requests; the lowest index
    /// on ties.
    LeastOutstanding,
}

impl Router {
    /// Name as the CLI and reports write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Router::RoundRobin => "round-robin",
            Router::LeastOutstanding => "least-outstanding",
        }
    }

    /// The replica for the `nth` arrival (0-based), given each replica's outstanding count.
    pub fn pick(self, nth: u64, outstanding: impl ExactSizeIterator<Item = usize>) -> usize {
        match self {
            Router::RoundRobin => (nth % outstanding.len().max(1) as u64) as usize,
            Router::LeastOutstanding => outstanding
                .enumerate()
                .min_by_key(|&(i, n)| (n, i))
                .map_or(0, |(i, _)| i),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_cycles_and_least_outstanding_takes_the_emptiest() {
        let loads = [3usize, 1, 1, 4];
        let picks: Vec<usize> = (0..5)
            .map(|n| Router::RoundRobin.pick(n, loads.iter().copied()))
            .collect();
        assert_eq!(picks, [0, 1, 2, 3, 0]);
        assert_eq!(Router::LeastOutstanding.pick(0, loads.iter().copied()), 1);
    }
}
