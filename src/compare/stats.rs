//! The statistics of a comparison: a seeded block-bootstrap confidence interval of a
//! NEW/BASE ratio, Fisher's exact test of two error rates, and McNemar's exact test of
//! paired right/wrong answers.
//!
//! Why a *block* bootstrap: the requests of one run are not independent. In a closed loop of
//! C streams, the C requests in flight share the server's batch, so a slow step slows all of
//! them; neighbours in send order are coupled. Resampling single requests would treat n
//! coupled requests as n independent ones and make the interval too narrow (A/A runs would
//! flag "regressions"). Resampling blocks of consecutive requests (in send order) keeps that
//! coupling inside each block; the block length is at least the mean number of requests in
//! flight (Little's law: the sum of end-to-end latencies over the measured window), so one
//! block spans at least one "generation" of the queue, and at least twice the series' own
//! integrated autocorrelation time (how many neighbours a value is coupled with, estimated
//! from the values: see [`coupling`]).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use statrs::distribution::{
    Binomial, ContinuousCDF, DiscreteCDF, Hypergeometric, Normal, StudentsT,
};

/// Resamples per bootstrap interval. 2,000 puts the 2.5 % and 97.5 % percentiles of the
/// resampled ratios within about ±0.5 % of their converged values for the sample sizes a
/// trial has, at a cost of milliseconds per metric.
pub const RESAMPLES: usize = 2000;

/// The statistic a bootstrap interval is about.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Statistic {
    /// The arithmetic mean.
    Mean,
    /// A quantile in (0, 1), linearly interpolated between order statistics (the "type 7"
    /// definition of R and NumPy).
    Quantile(f64),
}

impl Statistic {
    /// The statistic of `values`, reordering them; `None` when there are none.
    pub fn of(self, values: &mut [f64]) -> Option<f64> {
        if values.is_empty() {
            return None;
        }
        match self {
            Statistic::Mean => Some(values.iter().sum::<f64>() / values.len() as f64),
            Statistic::Quantile(q) => {
                let position = q.clamp(0.0, 1.0) * (values.len() - 1) as f64;
                let lower = position.floor() as usize;
                let fraction = position - lower as f64;
                let (_, low, above) = values.select_nth_unstable_by(lower, f64::total_cmp);
                let low = *low;
                if fraction == 0.0 || above.is_empty() {
                    return Some(low);
                }
                let high = above.iter().copied().fold(f64::INFINITY, f64::min);
                Some(low + fraction * (high - low))
            }
        }
    }
}

/// A sample of one run for the bootstrap: values in time order and the block length that
/// keeps coupled neighbours together.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The values, in the order their requests were sent (or their windows followed).
    pub values: Vec<f64>,
    /// Consecutive values resampled together (1 = independent values).
    pub block: usize,
}

impl Sample {
    /// A sample whose blocks are `block` long, kept between 1 and a fifth of the values (so
    /// that a resample draws at least five blocks).
    pub fn new(values: Vec<f64>, block: usize) -> Sample {
        let most = (values.len() / 5).max(1);
        Sample {
            block: block.clamp(1, most),
            values,
        }
    }

    /// How many blocks the sample holds (at least 1).
    pub fn blocks(&self) -> usize {
        (self.values.len() / self.block).max(1)
    }

    /// Independent values (blocks of one).
    pub fn independent(values: Vec<f64>) -> Sample {
        Sample::new(values, 1)
    }

    /// Fills `into` with a circular-block resample of the same length: blocks start
    /// anywhere and wrap around the end, so the first and last values are drawn as often as
    /// the others.
    fn resample(&self, rng: &mut ChaCha8Rng, into: &mut Vec<f64>) {
        into.clear();
        let n = self.values.len();
        while into.len() < n {
            let start = rng.random_range(0..n);
            let take = self.block.min(n - into.len());
            let end = start + take;
            if end <= n {
                into.extend_from_slice(&self.values[start..end]);
            } else {
                into.extend_from_slice(&self.values[start..]);
                into.extend_from_slice(&self.values[..end - n]);
            }
        }
    }
}

/// How many consecutive values move together: the integrated autocorrelation time
/// 1 + 2·Σ ρ(k), summing the sample autocorrelations ρ(k) up to the first lag where ρ falls
/// below the noise level 2/√n (at most n/5 lags). 1 for independent values.
pub fn coupling(values: &[f64]) -> f64 {
    let n = values.len();
    if n < 10 {
        return 1.0;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let centred: Vec<f64> = values.iter().map(|v| v - mean).collect();
    let variance = centred.iter().map(|v| v * v).sum::<f64>();
    if variance <= 0.0 {
        return 1.0;
    }
    let noise = 2.0 / (n as f64).sqrt();
    let mut tau = 1.0;
    for lag in 1..=(n / 5).min(1000) {
        let rho = centred[lag..]
            .iter()
            .zip(&centred)
            .map(|(a, b)| a * b)
            .sum::<f64>()
            / variance;
        if rho < noise {
            break;
        }
        tau += 2.0 * rho;
    }
    tau
}

/// How much wider an interval from `blocks` independent blocks must be than the bootstrap
/// percentiles say: t(blocks − 1) over the normal quantile at `tail`, times √(k/(k−1)). A
/// percentile bootstrap from few blocks is too narrow (it cannot see the variance between
/// blocks it never drew); the factor tends to 1 as blocks grow.
fn few_blocks_factor(blocks: usize, tail: f64) -> f64 {
    let k = blocks.max(2) as f64;
    let (Ok(t), Ok(z)) = (StudentsT::new(0.0, 1.0, k - 1.0), Normal::new(0.0, 1.0)) else {
        return 1.0;
    };
    (t.inverse_cdf(1.0 - tail) / z.inverse_cdf(1.0 - tail)) * (k / (k - 1.0)).sqrt()
}

/// A ratio NEW/BASE of one statistic, with its bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RatioInterval {
    /// The statistic of BASE's sample.
    pub base: f64,
    /// The statistic of NEW's sample.
    pub new: f64,
    /// new / base.
    pub ratio: f64,
    /// Lower end of the interval of the ratio.
    pub low: f64,
    /// Upper end.
    pub high: f64,
}

/// The two-sided percentile bootstrap interval at `confidence` of `statistic(new) /
/// statistic(base)`, resampling each run's blocks independently, seeded (the same inputs and
/// seed give the same interval). `None` when either sample is empty or BASE's statistic is
/// not positive.
pub fn ratio_interval(
    base: &Sample,
    new: &Sample,
    statistic: Statistic,
    confidence: f64,
    seed: u64,
) -> Option<RatioInterval> {
    let base_value = statistic.of(&mut base.values.clone())?;
    let new_value = statistic.of(&mut new.values.clone())?;
    if base_value <= 0.0 || !base_value.is_finite() || !new_value.is_finite() {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut base_draw, mut new_draw) = (Vec::new(), Vec::new());
    let mut ratios = Vec::with_capacity(RESAMPLES);
    for _ in 0..RESAMPLES {
        base.resample(&mut rng, &mut base_draw);
        new.resample(&mut rng, &mut new_draw);
        let (Some(b), Some(n)) = (statistic.of(&mut base_draw), statistic.of(&mut new_draw)) else {
            continue;
        };
        if b > 0.0 {
            ratios.push(n / b);
        }
    }
    let tail = (1.0 - confidence.clamp(0.5, 0.9999)) / 2.0;
    let low = Statistic::Quantile(tail).of(&mut ratios)?;
    let high = Statistic::Quantile(1.0 - tail).of(&mut ratios)?;
    let ratio = new_value / base_value;
    // Few blocks: widen (in log-ratio terms, around the observed ratio) by Student's t over
    // the normal quantile and the k/(k−1) variance correction, as batch means do.
    let widen = few_blocks_factor(base.blocks().min(new.blocks()), tail);
    let stretch = |end: f64| ratio * (end / ratio).powf(widen);
    Some(RatioInterval {
        base: base_value,
        new: new_value,
        ratio,
        low: if low > 0.0 { stretch(low) } else { low },
        high: stretch(high),
    })
}

/// Fisher's exact one-sided test that NEW fails more often than BASE: the probability, were
/// both runs' failures drawn from one rate, of NEW having at least `new_failed` of all the
/// failures. Small p means NEW's error rate is higher.
pub fn fisher_more_failures(
    base_failed: u64,
    base_total: u64,
    new_failed: u64,
    new_total: u64,
) -> f64 {
    let failed = base_failed + new_failed;
    if failed == 0 || new_total == 0 || base_total == 0 {
        return 1.0;
    }
    let population = base_total + new_total;
    match Hypergeometric::new(population, failed, new_total) {
        // P(X ≥ k) = 1 − P(X ≤ k − 1).
        Ok(h) if new_failed > 0 => h.sf(new_failed - 1),
        _ => 1.0,
    }
}

/// McNemar's exact test on paired outcomes: `worse` items BASE answered right and NEW wrong,
/// `better` the reverse. The two-sided p-value of the discordant split under "no
/// difference" (each discordant item equally likely either way): 2·P(X ≥ max) for X ~
/// Binomial(worse + better, ½), at most 1.
pub fn mcnemar_exact(worse: u64, better: u64) -> f64 {
    let discordant = worse + better;
    if discordant == 0 {
        return 1.0;
    }
    let extreme = worse.max(better);
    match Binomial::new(0.5, discordant) {
        Ok(b) if extreme > 0 => (2.0 * b.sf(extreme - 1)).min(1.0),
        _ => 1.0,
    }
}

#[cfg(test)]
mod tests {
    use rand_distr::{Distribution as _, LogNormal};
    use rstest::rstest;

    use super::*;

    fn lognormal(n: usize, median: f64, seed: u64) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let d = LogNormal::new(median.ln(), 0.3).expect("lognormal");
        (0..n).map(|_| d.sample(&mut rng)).collect()
    }

    #[rstest]
    #[case(Statistic::Quantile(0.5), &[3.0, 1.0, 2.0], 2.0)]
    #[case(Statistic::Quantile(0.5), &[4.0, 1.0, 2.0, 3.0], 2.5)]
    #[case(Statistic::Quantile(0.95), &[1.0, 2.0, 3.0, 4.0, 5.0], 4.8)]
    #[case(Statistic::Quantile(0.0), &[5.0, 7.0], 5.0)]
    #[case(Statistic::Quantile(1.0), &[5.0, 7.0], 7.0)]
    #[case(Statistic::Mean, &[1.0, 2.0, 6.0], 3.0)]
    fn statistics_follow_their_definitions(
        #[case] statistic: Statistic,
        #[case] values: &[f64],
        #[case] expected: f64,
    ) {
        let got = statistic.of(&mut values.to_vec()).expect("a value");
        assert!((got - expected).abs() < 1e-12, "{got} vs {expected}");
    }

    #[test]
    fn the_interval_holds_the_true_ratio_and_is_reproducible() {
        let base = Sample::independent(lognormal(400, 100.0, 1));
        let new = Sample::independent(lognormal(400, 115.0, 2));
        let a = ratio_interval(&base, &new, Statistic::Quantile(0.5), 0.95, 7).expect("ci");
        let b = ratio_interval(&base, &new, Statistic::Quantile(0.5), 0.95, 7).expect("ci");
        assert_eq!(a, b);
        assert!(a.low < 1.15 && 1.15 < a.high, "{a:?}");
        assert!(a.low > 1.0, "a 15 % shift at n=400 is resolved: {a:?}");
    }

    #[test]
    fn blocks_widen_the_interval_of_coupled_values() {
        // Values that move together in runs of 20 (a queue's slow phases): resampled one by
        // one they look more certain than they are.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let coupled: Vec<f64> = (0..40)
            .flat_map(|_| {
                let level = 50.0 + rng.random_range(0.0..100.0);
                std::iter::repeat_n(level, 20)
            })
            .collect();
        let width = |block| {
            let s = Sample::new(coupled.clone(), block);
            let ci = ratio_interval(&s, &s, Statistic::Mean, 0.95, 1).expect("ci");
            ci.high - ci.low
        };
        assert!(width(20) > 2.0 * width(1), "{} vs {}", width(20), width(1));
    }

    #[test]
    fn coupling_is_one_for_independent_values_and_grows_with_correlation() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let independent: Vec<f64> = (0..2000).map(|_| rng.random_range(0.0..1.0)).collect();
        assert!(coupling(&independent) < 1.5, "{}", coupling(&independent));
        // AR(1) with φ = 0.8: 1 + 2·Σ 0.8^k = 9.
        let mut level = 0.0;
        let ar: Vec<f64> = (0..20_000)
            .map(|_| {
                level = 0.8 * level + rng.random_range(-1.0..1.0);
                level
            })
            .collect();
        let tau = coupling(&ar);
        assert!((7.0..11.0).contains(&tau), "{tau}");
    }

    #[test]
    fn the_block_is_at_most_a_fifth_of_the_sample() {
        assert_eq!(Sample::new(vec![1.0; 10], 8).block, 2);
        assert_eq!(Sample::new(vec![1.0; 3], 8).block, 1);
        assert_eq!(Sample::new(vec![1.0; 100], 0).block, 1);
    }

    #[test]
    fn no_interval_without_values_or_with_a_zero_base() {
        let empty = Sample::independent(vec![]);
        let some = Sample::independent(vec![1.0, 2.0]);
        let zero = Sample::independent(vec![0.0, 0.0]);
        assert!(ratio_interval(&empty, &some, Statistic::Mean, 0.95, 1).is_none());
        assert!(ratio_interval(&zero, &some, Statistic::Mean, 0.95, 1).is_none());
    }

    /// Hand-computed: 10 worse, 2 better → 2·P(X ≥ 10 | n = 12) = 2·(66 + 12 + 1)/4096.
    #[rstest]
    #[case(10, 2, 2.0 * 79.0 / 4096.0)]
    #[case(2, 10, 2.0 * 79.0 / 4096.0)]
    #[case(0, 0, 1.0)]
    #[case(3, 3, 1.0)]
    #[case(5, 0, 2.0 / 32.0)]
    fn mcnemar_matches_the_hand_computed_table(
        #[case] worse: u64,
        #[case] better: u64,
        #[case] p: f64,
    ) {
        assert!((mcnemar_exact(worse, better) - p).abs() < 1e-12);
    }

    /// Hand-computed: BASE 0 of 10 failed, NEW 3 of 10: P(X ≥ 3) with X hypergeometric
    /// (N = 20, K = 3, n = 10) = C(10,3)/C(20,3) = 120/1140.
    #[rstest]
    #[case(0, 10, 3, 10, 120.0 / 1140.0)]
    #[case(0, 100, 0, 100, 1.0)]
    #[case(3, 10, 0, 10, 1.0)]
    fn fisher_matches_the_hand_computed_table(
        #[case] base_failed: u64,
        #[case] base_total: u64,
        #[case] new_failed: u64,
        #[case] new_total: u64,
        #[case] p: f64,
    ) {
        let got = fisher_more_failures(base_failed, base_total, new_failed, new_total);
        assert!((got - p).abs() < 1e-9, "{got} vs {p}");
    }
}
