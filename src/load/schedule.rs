//! Open-loop arrival schedules, computed up front from the seed.
//!
//! Each arrival has an absolute offset from the start of the run. The driver sleeps until
//! `start + offset`, never for "the next gap" after the previous send, so a late send does
//! not push every later arrival back (sleep-relative schedules drift below the asked rate).

use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, Gamma};

use crate::case::Arrival;

/// Absolute send offsets of `count` arrivals at `rate` requests per second. The first arrival
/// is at zero; the mean gap is 1/rate for every process.
///
/// `burstiness` is the gamma shape k (scale 1/(rate·k)), as in vLLM's benchmark: k = 1 is a
/// Poisson process, k < 1 burstier, k > 1 more regular. It is ignored by the other processes.
/// Rates and shapes are validated when the case is loaded; a non-positive value here gives
/// evenly spaced arrivals rather than a panic.
pub fn arrival_offsets(
    arrival: Arrival,
    rate: f64,
    burstiness: f64,
    count: usize,
    seed: u64,
) -> Vec<Duration> {
    let mean_gap_s = 1.0 / rate;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0A11_1BA1_5EED);
    let mut gap: Box<dyn FnMut() -> f64> = match arrival {
        Arrival::Poisson => match Exp::new(rate) {
            Ok(exp) => Box::new(move || exp.sample(&mut rng)),
            Err(_) => Box::new(move || mean_gap_s),
        },
        Arrival::Gamma => match Gamma::new(burstiness, mean_gap_s / burstiness) {
            Ok(gamma) => Box::new(move || gamma.sample(&mut rng)),
            Err(_) => Box::new(move || mean_gap_s),
        },
        Arrival::Constant => Box::new(move || mean_gap_s),
    };
    let mut at = 0.0f64;
    let mut offsets = Vec::with_capacity(count);
    for i in 0..count {
        if i > 0 {
            at += gap();
        }
        offsets.push(Duration::from_secs_f64(at.clamp(0.0, 1e9)));
    }
    offsets
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn gaps(offsets: &[Duration]) -> Vec<f64> {
        offsets
            .windows(2)
            .map(|w| (w[1] - w[0]).as_secs_f64())
            .collect()
    }

    fn mean_and_cv(values: &[f64]) -> (f64, f64) {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        (mean, var.sqrt() / mean)
    }

    #[rstest]
    // Gap CV: constant 0, Poisson 1, gamma 1/sqrt(k).
    #[case(Arrival::Constant, 1.0, 0.0)]
    #[case(Arrival::Poisson, 1.0, 1.0)]
    #[case(Arrival::Gamma, 0.25, 2.0)]
    #[case(Arrival::Gamma, 4.0, 0.5)]
    fn gaps_have_mean_one_over_rate_and_the_process_spread(
        #[case] arrival: Arrival,
        #[case] burstiness: f64,
        #[case] cv: f64,
    ) {
        let offsets = arrival_offsets(arrival, 50.0, burstiness, 40_001, 7);
        assert_eq!(offsets[0], Duration::ZERO);
        let (mean, measured_cv) = mean_and_cv(&gaps(&offsets));
        assert!((mean - 0.02).abs() < 0.02 * 0.03, "mean gap {mean}");
        assert!((measured_cv - cv).abs() < 0.05, "cv {measured_cv} vs {cv}");
    }

    #[test]
    fn schedules_are_reproducible_from_the_seed_and_non_decreasing() {
        let a = arrival_offsets(Arrival::Poisson, 10.0, 1.0, 100, 1);
        assert_eq!(a, arrival_offsets(Arrival::Poisson, 10.0, 1.0, 100, 1));
        assert_ne!(a, arrival_offsets(Arrival::Poisson, 10.0, 1.0, 100, 2));
        assert!(a.windows(2).all(|w| w[0] <= w[1]));
        assert!(arrival_offsets(Arrival::Constant, 1.0, 1.0, 0, 0).is_empty());
    }
}
