//! Drawing per-request lengths from a [`LengthDist`] (`prompts.isl_dist`, `prompts.osl_dist`):
//! deterministic per (trial seed, which length, request index), so that a request's length
//! does not depend on how many prompts are built or in what order.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Normal};

use crate::case::LengthDist;
use crate::case::lengths::Bin;

/// Which of a request's lengths is drawn (each has its own stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// The prompt's length.
    Isl,
    /// The tokens to generate.
    Osl,
}

impl Which {
    fn salt(self) -> u64 {
        match self {
            Which::Isl => 0x4953_4c5f_4449_5354,
            Which::Osl => 0x4f53_4c5f_4449_5354,
        }
    }
}

/// The length of request `index` of a trial seeded `seed`: a draw from `dist`, rounded and
/// clipped to `[min, max]`.
pub fn draw(dist: &LengthDist, which: Which, seed: u64, index: u64) -> u32 {
    let mixed = seed ^ which.salt() ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut rng = ChaCha8Rng::seed_from_u64(mixed);
    let (min, max) = (dist.min(), dist.max());
    let value = match *dist {
        LengthDist::Uniform { .. } => return rng.random_range(min..=max.max(min)),
        LengthDist::Histogram { ref bins, .. } => return from_histogram(bins, &mut rng),
        LengthDist::Normal { mean, std, .. } => Normal::new(mean, std).map(|d| d.sample(&mut rng)),
        LengthDist::Lognormal { mean, std, .. } => {
            // The log-normal whose own mean and std are these.
            let sigma2 = (1.0 + (std / mean).powi(2)).ln();
            LogNormal::new(mean.ln() - sigma2 / 2.0, sigma2.sqrt()).map(|d| d.sample(&mut rng))
        }
    };
    // Parameters are checked when the case is read; an invalid one falls back to `max`.
    let value = value.unwrap_or(f64::from(max));
    value.round().clamp(f64::from(min), f64::from(max)) as u32
}

/// A bin picked by weight, then a length uniformly within it. The bins were checked when the
/// case was read; none with weight (impossible then) gives the first bin's `min`.
fn from_histogram(bins: &[Bin], rng: &mut ChaCha8Rng) -> u32 {
    let total: f64 = bins.iter().map(|b| b.weight).sum();
    let mut point = rng.random::<f64>() * total;
    let picked = bins.iter().find(|bin| {
        point -= bin.weight;
        point < 0.0 && bin.weight > 0.0
    });
    match picked.or_else(|| bins.iter().rev().find(|b| b.weight > 0.0)) {
        Some(bin) => rng.random_range(bin.min..=bin.max.max(bin.min)),
        None => bins.first().map_or(1, |b| b.min),
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    const N: u64 = 20_000;

    fn draws(dist: &LengthDist, which: Which, seed: u64) -> Vec<u32> {
        (0..N).map(|i| draw(dist, which, seed, i)).collect()
    }

    fn mean_std(values: &[u32]) -> (f64, f64) {
        let n = values.len() as f64;
        let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = values
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / (n - 1.0);
        (mean, var.sqrt())
    }

    /// (distribution, expected mean, expected std): wide bounds, so clipping barely matters.
    #[rstest]
    #[case(LengthDist::Uniform { min: 64, max: 512 }, 288.0, 448.0 / 12f64.sqrt())]
    #[case(LengthDist::Normal { mean: 256.0, std: 32.0, min: 1, max: 1024 }, 256.0, 32.0)]
    #[case(LengthDist::Lognormal { mean: 300.0, std: 120.0, min: 1, max: 100_000 }, 300.0, 120.0)]
    fn draws_have_the_asked_mean_and_std(
        #[case] dist: LengthDist,
        #[case] mean: f64,
        #[case] std: f64,
    ) {
        let values = draws(&dist, Which::Isl, 7);
        assert!(
            values.iter().all(|v| (dist.min()..=dist.max()).contains(v)),
            "out of bounds"
        );
        let (got_mean, got_std) = mean_std(&values);
        assert!((got_mean - mean).abs() < 0.02 * mean, "mean {got_mean}");
        assert!((got_std - std).abs() < 0.05 * std, "std {got_std}");
    }

    #[rstest]
    #[case(LengthDist::Uniform { min: 10, max: 20 })]
    #[case(LengthDist::Normal { mean: 100.0, std: 500.0, min: 50, max: 150 })]
    #[case(LengthDist::Lognormal { mean: 100.0, std: 400.0, min: 20, max: 300 })]
    #[case(LengthDist::Uniform { min: 33, max: 33 })]
    fn draws_stay_within_bounds_and_reach_them(#[case] dist: LengthDist) {
        let values = draws(&dist, Which::Osl, 3);
        assert_eq!(values.iter().min(), Some(&dist.min()));
        assert_eq!(values.iter().max(), Some(&dist.max()));
    }

    #[test]
    fn draws_are_deterministic_and_differ_by_seed_index_and_length() {
        let dist = LengthDist::Uniform {
            min: 1,
            max: 1 << 20,
        };
        assert_eq!(draws(&dist, Which::Isl, 11), draws(&dist, Which::Isl, 11));
        assert_ne!(draws(&dist, Which::Isl, 11), draws(&dist, Which::Isl, 12));
        assert_ne!(draws(&dist, Which::Isl, 11), draws(&dist, Which::Osl, 11));
        assert_ne!(
            draw(&dist, Which::Isl, 11, 0),
            draw(&dist, Which::Isl, 11, 1)
        );
    }

    #[test]
    fn histogram_draws_pick_bins_by_weight_and_stay_inside_them() {
        let dist = LengthDist::Histogram {
            bins: vec![
                Bin {
                    min: 10,
                    max: 20,
                    weight: 3.0,
                },
                Bin {
                    min: 100,
                    max: 100,
                    weight: 1.0,
                },
                Bin {
                    min: 500,
                    max: 600,
                    weight: 0.0,
                },
            ],
            file: None,
        };
        let values = draws(&dist, Which::Isl, 5);
        let first = values.iter().filter(|v| (10..=20).contains(*v)).count() as f64;
        let second = values.iter().filter(|v| **v == 100).count() as f64;
        assert_eq!(
            first + second,
            N as f64,
            "every draw falls in a weighted bin"
        );
        // 3 : 1, within five standard errors of a binomial share of 0.75 over N draws.
        let share = first / N as f64;
        let se = (0.75 * 0.25 / N as f64).sqrt();
        assert!((share - 0.75).abs() < 5.0 * se, "share {share}");
        // Uniform within the bin: both ends are drawn.
        assert!(values.contains(&10) && values.contains(&20));
    }
}
