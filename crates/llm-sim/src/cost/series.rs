//! Closed-form step times of a run of decode steps whose batch does not change.
//!
//! While a replica's batch composition is fixed, every decode step adds one token to each
//! sequence, so the work of step `k` (0-based) grows linearly in `k`. Both cost models then give
//! a step time of the form
//!
//! `t(k) = overhead + max(a₁ + s₁·k, a₂ + s₂·k)`
//!
//! (the roofline's compute and memory lines; the fitted model uses one line twice). The time of
//! `n` steps is a sum of at most two arithmetic series split where the lines cross, so the
//! simulator accounts for any number of steps in constant time.

/// `intercept + slope × k`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Line {
    /// Value at step 0, seconds.
    pub intercept: f64,
    /// Increase per step, seconds.
    pub slope: f64,
}

impl Line {
    /// Σ_{k=lo}^{hi−1} (intercept + slope·k) = count·intercept + slope·(lo + hi − 1)·count/2.
    fn sum(&self, lo: u64, hi: u64) -> f64 {
        if hi <= lo {
            return 0.0;
        }
        let count = (hi - lo) as f64;
        count * self.intercept + self.slope * (lo as f64 + hi as f64 - 1.0) * count / 2.0
    }
}

/// The step times of one run of decode steps: `t(k) = overhead + max(first(k), second(k))`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepSeries {
    /// Time added to every step, seconds.
    pub overhead: f64,
    /// The first line (the roofline's compute time).
    pub first: Line,
    /// The second line (the roofline's memory time).
    pub second: Line,
}

impl StepSeries {
    /// Time of step `k` (0-based).
    pub fn step(&self, k: u64) -> f64 {
        let k = k as f64;
        self.overhead
            + (self.first.intercept + self.first.slope * k)
                .max(self.second.intercept + self.second.slope * k)
    }

    /// Time of the first `n` steps: `n·overhead` plus the sum of the upper line, split at the
    /// crossing `k* = (a₂ − a₁) / (s₁ − s₂)`: where `s₁ > s₂` the first line is the upper one
    /// from `⌈k*⌉` on, where `s₁ < s₂` up to `⌊k*⌋`.
    pub fn total(&self, n: u64) -> f64 {
        let (first, second) = (self.first, self.second);
        let split = |crossing: f64| -> u64 {
            if crossing <= 0.0 {
                0
            } else if crossing >= n as f64 {
                n
            } else {
                crossing as u64
            }
        };
        let lines = if first.slope == second.slope {
            let upper = if first.intercept >= second.intercept {
                first
            } else {
                second
            };
            upper.sum(0, n)
        } else {
            let crossing = (second.intercept - first.intercept) / (first.slope - second.slope);
            if first.slope > second.slope {
                // The first line is on top from ⌈k*⌉.
                let m = split(crossing.ceil());
                second.sum(0, m) + first.sum(m, n)
            } else {
                // The first line is on top up to ⌊k*⌋.
                let m = split(crossing.floor() + 1.0);
                first.sum(0, m) + second.sum(m, n)
            }
        };
        n as f64 * self.overhead + lines
    }

    /// The most steps, up to `max_steps`, that end by `start + total ≤ deadline` (binary search
    /// on [`StepSeries::total`], which grows with `n`; compared as absolute times so that a step
    /// found here ends at exactly the time an event computed from `start + total(n)` carries).
    pub fn steps_by(&self, start: f64, deadline: f64, max_steps: u64) -> u64 {
        if start + self.total(max_steps) <= deadline {
            return max_steps;
        }
        // total(lo) fits, total(hi) does not.
        let (mut lo, mut hi) = (0u64, max_steps);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if start + self.total(mid) <= deadline {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn brute(series: &StepSeries, n: u64) -> f64 {
        (0..n).map(|k| series.step(k)).sum()
    }

    #[rstest]
    #[case::memory_then_compute(1.0, 0.5, 3.0, 0.1)]
    #[case::compute_then_memory(3.0, 0.1, 1.0, 0.5)]
    #[case::parallel_lines(2.0, 0.2, 1.0, 0.2)]
    #[case::crossing_far_away(1.0, 1e-9, 5.0, 0.0)]
    #[case::crossing_before_zero(5.0, 1.0, 1.0, 0.5)]
    #[case::crossing_on_a_step(0.0, 1.0, 10.0, 0.0)]
    fn closed_form_matches_the_sum_of_steps(
        #[case] a1: f64,
        #[case] s1: f64,
        #[case] a2: f64,
        #[case] s2: f64,
    ) {
        let series = StepSeries {
            overhead: 0.25,
            first: Line {
                intercept: a1,
                slope: s1,
            },
            second: Line {
                intercept: a2,
                slope: s2,
            },
        };
        for n in [0, 1, 2, 3, 7, 10, 11, 50, 333] {
            let (exact, closed) = (brute(&series, n), series.total(n));
            assert!(
                (exact - closed).abs() <= 1e-9 * exact.max(1.0),
                "n {n}: {exact} vs {closed}"
            );
        }
    }

    #[test]
    fn steps_by_finds_the_last_step_ending_in_time() {
        let series = StepSeries {
            overhead: 1.0,
            first: Line {
                intercept: 0.0,
                slope: 1.0,
            },
            second: Line {
                intercept: 0.0,
                slope: 0.0,
            },
        };
        // Steps take 1, 2, 3, 4, … seconds: they end at 1, 3, 6, 10, 15.
        assert_eq!(series.steps_by(0.0, 0.5, 100), 0);
        assert_eq!(series.steps_by(0.0, 6.0, 100), 3);
        assert_eq!(series.steps_by(0.0, 9.99, 100), 3);
        assert_eq!(series.steps_by(10.0, 20.0, 100), 4);
        assert_eq!(series.steps_by(0.0, 1e9, 100), 100);
    }
}
