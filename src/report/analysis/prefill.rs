//! How prefill scales: for trials that differ only in ISL, fit TTFT = a + b·ISLᵏ and say
//! whether the cost grows linearly with the prompt (k ≈ 1, what a prefill pass costs),
//! sub-linearly (k < 1: fixed costs dominate, or a prefix cache absorbs part of the prompt)
//! or super-linearly (k > 1: something recomputes per request, or attention's quadratic term
//! shows — a WARNING).
//!
//! The fit: for each floor a on a grid below the smallest TTFT, least squares of
//! ln(TTFT − a) on ln(ISL) gives ln b and k; the a with the smallest squared error on that log
//! scale wins. k's interval is the regression's, Student's t with n − 3 degrees of freedom
//! (a, b and k are fitted), so it needs four lengths or more; with three the class rests on k
//! alone.

use statrs::distribution::{ContinuousCDF, StudentsT};

/// Steps of the floor grid.
const FLOOR_STEPS: usize = 400;
/// k within this distance of 1 is linear.
const LINEAR_BAND: f64 = 0.1;

/// How TTFT grows with the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefillClass {
    /// k clearly below 1.
    SubLinear,
    /// k near 1 (or not clearly away from it).
    Linear,
    /// k clearly above 1: a WARNING.
    SuperLinear,
}

impl PrefillClass {
    /// `sub-linear`, `linear` or `super-linear`.
    pub fn as_str(self) -> &'static str {
        match self {
            PrefillClass::SubLinear => "sub-linear",
            PrefillClass::Linear => "linear",
            PrefillClass::SuperLinear => "super-linear",
        }
    }
}

/// TTFT = a + b·ISLᵏ, fitted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrefillFit {
    /// The floor: TTFT with an empty prompt, ms.
    pub a: f64,
    /// The scale, ms per ISLᵏ.
    pub b: f64,
    /// The exponent.
    pub k: f64,
    /// k's interval at 95 %, with four lengths or more.
    pub k_interval: Option<(f64, f64)>,
    /// The class.
    pub class: PrefillClass,
    /// Lengths fitted.
    pub points: usize,
}

impl PrefillFit {
    /// The fitted TTFT at `isl`.
    pub fn at(&self, isl: f64) -> f64 {
        self.a + self.b * isl.powf(self.k)
    }

    /// One line: `TTFT ≈ 20.1 + 0.031·ISL^1.02 ms; k = 1.02 [0.96, 1.08]: linear`.
    pub fn describe(&self) -> String {
        let interval = self
            .k_interval
            .map(|(low, high)| format!(" [{low:.2}, {high:.2}]"))
            .unwrap_or_default();
        format!(
            "TTFT ≈ {:.1} + {:.3}·ISL^{:.2} ms over {} lengths; k = {:.2}{interval}: {}",
            self.a,
            self.b,
            self.k,
            self.points,
            self.k,
            self.class.as_str()
        )
    }
}

/// Fits `(isl, ttft_ms)` points: at least three distinct lengths, all positive; none
/// otherwise.
pub fn fit(points: &[(f64, f64)]) -> Option<PrefillFit> {
    let mut points: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(x, y)| *x > 0.0 && *y > 0.0 && x.is_finite() && y.is_finite())
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    points.dedup_by(|a, b| a.0 == b.0);
    if points.len() < 3 {
        return None;
    }
    let lowest = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let mut best: Option<(f64, Regression)> = None;
    for step in 0..FLOOR_STEPS {
        let a = lowest * step as f64 / FLOOR_STEPS as f64;
        let logs: Vec<(f64, f64)> = points
            .iter()
            .map(|&(x, y)| (x.ln(), (y - a).ln()))
            .collect();
        let Some(r) = regress(&logs) else { continue };
        if best.as_ref().is_none_or(|(_, b)| r.sse < b.sse) {
            best = Some((a, r));
        }
    }
    let (a, r) = best?;
    let n = points.len();
    let k_interval = (n >= 4).then(|| {
        let t = StudentsT::new(0.0, 1.0, (n - 3) as f64)
            .map(|t| t.inverse_cdf(0.975))
            .unwrap_or(f64::INFINITY);
        let se = (r.sse / (n - 3) as f64 / r.sxx).sqrt();
        (r.slope - t * se, r.slope + t * se)
    });
    let (low, high) = k_interval.unwrap_or((r.slope, r.slope));
    let class = if r.slope > 1.0 + LINEAR_BAND && low > 1.0 {
        PrefillClass::SuperLinear
    } else if r.slope < 1.0 - LINEAR_BAND && high < 1.0 {
        PrefillClass::SubLinear
    } else {
        PrefillClass::Linear
    };
    Some(PrefillFit {
        a,
        b: r.intercept.exp(),
        k: r.slope,
        k_interval,
        class,
        points: n,
    })
}

/// Least squares y = intercept + slope·x.
struct Regression {
    intercept: f64,
    slope: f64,
    sse: f64,
    sxx: f64,
}

fn regress(points: &[(f64, f64)]) -> Option<Regression> {
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx <= 0.0 || !my.is_finite() {
        return None;
    }
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let sse = points
        .iter()
        .map(|p| (p.1 - intercept - slope * p.0).powi(2))
        .sum();
    Some(Regression {
        intercept,
        slope,
        sse,
        sxx,
    })
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution as _, Normal};
    use rstest::rstest;

    use super::*;

    const ISLS: [f64; 6] = [128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0];

    /// TTFT = 20 + b·ISLᵏ with 2 % noise, b chosen so the longest prompt costs about 400 ms.
    fn curve(k: f64, seed: u64) -> Vec<(f64, f64)> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let noise = Normal::new(1.0, 0.02).expect("normal");
        let b = 400.0 / 4096f64.powf(k);
        ISLS.iter()
            .map(|&isl| (isl, (20.0 + b * isl.powf(k)) * noise.sample(&mut rng)))
            .collect()
    }

    #[rstest]
    #[case::linear(1.0, PrefillClass::Linear)]
    #[case::sub_linear(0.7, PrefillClass::SubLinear)]
    #[case::super_linear(1.5, PrefillClass::SuperLinear)]
    fn synthetic_curves_are_classified(#[case] k: f64, #[case] class: PrefillClass) {
        for seed in 0..5 {
            let fit = fit(&curve(k, seed)).expect("a fit");
            assert_eq!(fit.class, class, "seed {seed}: {}", fit.describe());
            let (low, high) = fit.k_interval.expect("six lengths");
            assert!(low <= k + 0.1 && k - 0.1 <= high, "{}", fit.describe());
        }
    }

    #[test]
    fn an_exact_curve_is_recovered() {
        let points: Vec<(f64, f64)> = ISLS
            .iter()
            .map(|&isl| (isl, 15.0 + 0.05 * isl.powf(1.2)))
            .collect();
        let fit = fit(&points).expect("a fit");
        assert!((fit.k - 1.2).abs() < 0.02, "{}", fit.describe());
        assert!((fit.at(1000.0) - (15.0 + 0.05 * 1000f64.powf(1.2))).abs() < 2.0);
    }

    #[test]
    fn fewer_than_three_lengths_make_no_fit() {
        assert!(fit(&[(128.0, 20.0), (256.0, 30.0)]).is_none());
        assert!(fit(&[(128.0, 20.0), (128.0, 21.0), (256.0, 30.0)]).is_none());
        let three = fit(&[(128.0, 20.0), (256.0, 30.0), (512.0, 50.0)]).expect("a fit");
        assert!(three.k_interval.is_none());
    }
}
