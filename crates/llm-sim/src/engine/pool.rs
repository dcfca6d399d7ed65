//! Where admitted-to-be requests wait: one FIFO per bin, and the replicas that take work from
//! it. A replica-routed scheduler has one pool per replica with one bin; multi-bin has one
//! pool shared by every replica with K bins.

use std::collections::{BTreeSet, VecDeque};

/// A waiting room.
#[derive(Debug, Default)]
pub(super) struct Pool {
    bins: Vec<VecDeque<usize>>,
    len: usize,
    /// The bin round-robin looks at first.
    next_bin: usize,
    /// Replicas of this pool with nothing to run.
    pub idle: BTreeSet<usize>,
    /// When the pending max-wait timer fires, if one is pending.
    pub timer_at: Option<f64>,
}

/// What an idle replica finds in a pool.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Readiness {
    /// Take a batch from this bin.
    Bin(usize),
    /// Nothing ready; the earliest a bin becomes due.
    DueAt(f64),
    /// Nothing waiting.
    Empty,
}

impl Pool {
    pub fn new(bins: usize) -> Pool {
        Pool {
            bins: vec![VecDeque::new(); bins.max(1)],
            ..Pool::default()
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn push_back(&mut self, bin: usize, id: usize) {
        self.bins[bin].push_back(id);
        self.len += 1;
    }

    /// Puts a preempted request back at the head of its bin.
    pub fn push_front(&mut self, bin: usize, id: usize) {
        self.bins[bin].push_front(id);
        self.len += 1;
    }

    pub fn front(&self, bin: usize) -> Option<usize> {
        self.bins[bin].front().copied()
    }

    pub fn pop_front(&mut self, bin: usize) -> Option<usize> {
        let id = self.bins[bin].pop_front()?;
        self.len -= 1;
        Some(id)
    }

    /// After serving `bin`, round-robin moves on to the next.
    pub fn served(&mut self, bin: usize) {
        self.next_bin = (bin + 1) % self.bins.len();
    }

    /// The bin an idle replica with batch size `batch` should serve at `now`: in round-robin
    /// order from the last served, the first holding a full batch; else the first whose oldest
    /// request arrived at least `max_wait` ago (`arrival + max_wait ≤ now`), or any non-empty
    /// bin when `draining` (no more arrivals will come). `arrival` gives a request's arrival
    /// time.
    pub fn readiness(
        &self,
        batch: usize,
        now: f64,
        max_wait: f64,
        draining: bool,
        arrival: impl Fn(usize) -> f64,
    ) -> Readiness {
        if self.len == 0 {
            return Readiness::Empty;
        }
        let k = self.bins.len();
        let order = (0..k).map(|i| (self.next_bin + i) % k);
        if let Some(bin) = order.clone().find(|&b| self.bins[b].len() >= batch) {
            return Readiness::Bin(bin);
        }
        let mut due = f64::INFINITY;
        for bin in order {
            if let Some(&oldest) = self.bins[bin].front() {
                let at = arrival(oldest) + max_wait;
                if draining || at <= now {
                    return Readiness::Bin(bin);
                }
                due = due.min(at);
            }
        }
        Readiness::DueAt(due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_bins_first_then_overdue_in_round_robin_order() {
        let mut pool = Pool::new(3);
        let arrivals = [0.0, 1.0, 2.0, 3.0, 4.0];
        pool.push_back(0, 0);
        pool.push_back(2, 1);
        pool.push_back(1, 2);
        pool.push_back(1, 3);
        let at = |id: usize| arrivals[id];
        assert_eq!(pool.readiness(2, 2.5, 10.0, false, at), Readiness::Bin(1));
        assert_eq!(
            pool.readiness(3, 2.5, 10.0, false, at),
            Readiness::DueAt(10.0)
        );
        assert_eq!(pool.readiness(3, 10.0, 10.0, false, at), Readiness::Bin(0));
        pool.served(0);
        assert_eq!(pool.readiness(3, 12.0, 10.0, false, at), Readiness::Bin(1));
        assert_eq!(pool.readiness(3, 0.0, 10.0, true, at), Readiness::Bin(1));
        for bin in 0..3 {
            while pool.pop_front(bin).is_some() {}
        }
        assert_eq!(pool.readiness(1, 0.0, 0.0, true, at), Readiness::Empty);
    }
}
