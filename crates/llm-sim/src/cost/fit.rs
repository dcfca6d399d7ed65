//! Fitting [`FittedCost`] to measured step latencies by least squares.
//!
//! For a fixed γ the model `t = α + β · x` with `x = L_max (1 + γ (b − 1) / b)` is linear in α
//! and β, so ordinary least squares gives them in closed form:
//! `β = Σ (xᵢ − x̄)(tᵢ − t̄) / Σ (xᵢ − x̄)²`, `α = t̄ − β x̄`. The residual sum of squares is then a
//! function of γ alone. It is searched over `w = γ / (1 + γ)`, which maps γ ∈ `[0, GAMMA_MAX]`
//! onto `[0, GAMMA_MAX / (1 + GAMMA_MAX)]`: a grid of step [`W_STEP`] there is fine near γ = 0
//! (where a step of 0.0005 in `w` is about 0.0005 in γ) and still reaches batch factors far
//! above 1 (llama-server on 2 CPU cores, whose step time grows with its batch, fitted γ from 14
//! to over 100 in six runs). The best grid point is refined by golden-section search in `w`.

use std::path::Path;

use super::FittedCost;
use crate::error::SimError;

/// Largest γ searched. An earlier bound of 20 was reached by llama-server on 2 CPU cores
/// (every bootstrap fit at the bound); γ beyond 1000 is a step cost that does not grow with
/// the sequence length at batch 1, which the fit's β then cannot tell apart from 0.
pub const GAMMA_MAX: f64 = 1000.0;
/// Grid step of the search in `w = γ / (1 + γ)`, before golden-section refinement.
pub const W_STEP: f64 = 0.0005;

/// One measured step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    /// Sequences in the step, `b`.
    pub batch_size: u64,
    /// Longest sequence in the step, tokens.
    pub max_seq_len: u64,
    /// Step latency, seconds.
    pub latency_s: f64,
}

/// A fitted model and how well it fits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    /// The fitted α, β, γ.
    pub model: FittedCost,
    /// Root-mean-square residual, seconds.
    pub rms_residual_s: f64,
    /// Measurements used.
    pub points: usize,
}

/// α, β and the residual sum of squares of the linear fit at one γ; `None` when the `x` do not
/// vary (α and β are then not determined).
fn linear_fit(points: &[Measurement], gamma: f64) -> Option<(f64, f64, f64)> {
    let x = |p: &Measurement| {
        let b = p.batch_size as f64;
        p.max_seq_len as f64 * (1.0 + gamma * (b - 1.0) / b)
    };
    let n = points.len() as f64;
    let mean_x = points.iter().map(x).sum::<f64>() / n;
    let mean_t = points.iter().map(|p| p.latency_s).sum::<f64>() / n;
    let (mut sxx, mut sxt) = (0.0, 0.0);
    for p in points {
        let dx = x(p) - mean_x;
        sxx += dx * dx;
        sxt += dx * (p.latency_s - mean_t);
    }
    if sxx <= f64::EPSILON * mean_x * mean_x * n {
        return None;
    }
    let beta = sxt / sxx;
    let alpha = mean_t - beta * mean_x;
    let sse = points
        .iter()
        .map(|p| (p.latency_s - alpha - beta * x(p)).powi(2))
        .sum();
    Some((alpha, beta, sse))
}

/// Fits α, β, γ to the measurements (see the module documentation). Needs at least three
/// measurements at two or more batch sizes (one of them above 1) and two or more sequence
/// lengths, and a fit whose α and β are not negative.
pub fn fit(points: &[Measurement]) -> Result<Fit, SimError> {
    if points.len() < 3 {
        return Err(SimError::Fit(format!(
            "needs at least 3 measurements, got {}",
            points.len()
        )));
    }
    if let Some(bad) = points
        .iter()
        .find(|p| p.batch_size == 0 || !(p.latency_s.is_finite() && p.latency_s >= 0.0))
    {
        return Err(SimError::Fit(format!(
            "batch sizes must be ≥ 1 and latencies finite and ≥ 0: {bad:?}"
        )));
    }
    let batch_sizes_vary = points.iter().any(|p| p.batch_size != points[0].batch_size);
    if !batch_sizes_vary || points.iter().all(|p| p.batch_size == 1) {
        return Err(SimError::Fit(
            "γ needs measurements at two or more batch sizes, one of them above 1".to_string(),
        ));
    }
    let sse = |gamma: f64| linear_fit(points, gamma).map_or(f64::INFINITY, |(_, _, sse)| sse);
    let gamma_of = |w: f64| w / (1.0 - w);
    let w_max = GAMMA_MAX / (1.0 + GAMMA_MAX);
    let steps = (w_max / W_STEP).ceil() as usize;
    let w_at = |i: usize| (i as f64 * W_STEP).min(w_max);
    let best_index = (0..=steps)
        .map(|i| (i, sse(gamma_of(w_at(i)))))
        .fold(
            (0, f64::INFINITY),
            |best, (i, s)| if s < best.1 { (i, s) } else { best },
        )
        .0;
    let best = w_at(best_index);
    let gamma = gamma_of(golden_section(
        |w| sse(gamma_of(w)),
        (best - W_STEP).max(0.0),
        (best + W_STEP).min(w_max),
    ));
    let (alpha, beta, sse_best) = linear_fit(points, gamma).ok_or_else(|| {
        SimError::Fit("the sequence lengths do not vary, so β is not determined".to_string())
    })?;
    let model = FittedCost {
        alpha,
        beta,
        gamma,
        prefill_per_token: 0.0,
    };
    if alpha < 0.0 || beta < 0.0 {
        return Err(SimError::Fit(format!(
            "the best fit has alpha {alpha:.3e} s and beta {beta:.3e} s/token; a negative \
             value means the measurements do not follow t = α + β·L·(1 + γ(b−1)/b)"
        )));
    }
    Ok(Fit {
        model,
        rms_residual_s: (sse_best / points.len() as f64).sqrt(),
        points: points.len(),
    })
}

/// Fits α and β with γ held at `gamma` (ordinary least squares, see the module documentation):
/// the model with a given batch factor, or the batch-independent `t = α + β·L` at `gamma = 0`.
/// Needs at least two measurements whose `L_max (1 + γ (b − 1) / b)` differ; α and β may come
/// out negative (the caller judges the form).
pub fn fit_fixed_gamma(points: &[Measurement], gamma: f64) -> Result<Fit, SimError> {
    if points.len() < 2 {
        return Err(SimError::Fit(format!(
            "needs at least 2 measurements, got {}",
            points.len()
        )));
    }
    let (alpha, beta, sse) = linear_fit(points, gamma).ok_or_else(|| {
        SimError::Fit("the sequence lengths do not vary, so β is not determined".to_string())
    })?;
    Ok(Fit {
        model: FittedCost {
            alpha,
            beta,
            gamma,
            prefill_per_token: 0.0,
        },
        rms_residual_s: (sse / points.len() as f64).sqrt(),
        points: points.len(),
    })
}

/// The minimum of `f` on `[lo, hi]` by golden-section search (f unimodal there).
fn golden_section(f: impl Fn(f64) -> f64, mut lo: f64, mut hi: f64) -> f64 {
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    let mut a = hi - ratio * (hi - lo);
    let mut b = lo + ratio * (hi - lo);
    let (mut fa, mut fb) = (f(a), f(b));
    for _ in 0..80 {
        if fa <= fb {
            hi = b;
            b = a;
            fb = fa;
            a = hi - ratio * (hi - lo);
            fa = f(a);
        } else {
            lo = a;
            a = b;
            fa = fb;
            b = lo + ratio * (hi - lo);
            fb = f(b);
        }
    }
    (lo + hi) / 2.0
}

/// Reads measurements from a CSV file with a header naming the columns `batch_size`,
/// `max_seq_len` and either `latency_s` or `latency_ms` (other columns are ignored).
pub fn read_csv(path: &Path) -> Result<Vec<Measurement>, SimError> {
    let csv_error = |message: String| SimError::Csv {
        path: path.to_path_buf(),
        message,
    };
    let mut reader = ::csv::ReaderBuilder::new()
        .trim(::csv::Trim::All)
        .from_path(path)
        .map_err(|e| csv_error(e.to_string()))?;
    let headers = reader
        .headers()
        .map_err(|e| csv_error(e.to_string()))?
        .clone();
    let column = |name: &str| headers.iter().position(|h| h == name);
    let (batch, length) = match (column("batch_size"), column("max_seq_len")) {
        (Some(b), Some(l)) => (b, l),
        _ => {
            return Err(csv_error(format!(
                "needs columns batch_size, max_seq_len and latency_s or latency_ms; found {}",
                headers.iter().collect::<Vec<_>>().join(", ")
            )));
        }
    };
    let (latency, scale) = match (column("latency_s"), column("latency_ms")) {
        (Some(c), _) => (c, 1.0),
        (None, Some(c)) => (c, 1e-3),
        (None, None) => {
            return Err(csv_error(
                "needs a latency_s or latency_ms column".to_string(),
            ));
        }
    };
    let mut points = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let row = index + 2;
        let record = record.map_err(|e| csv_error(format!("row {row}: {e}")))?;
        let field = |c: usize, name: &str| {
            record
                .get(c)
                .ok_or_else(|| csv_error(format!("row {row}: no {name}")))
        };
        let parse_int = |c: usize, name: &str| -> Result<u64, SimError> {
            let text = field(c, name)?;
            text.parse()
                .map_err(|_| csv_error(format!("row {row}: {name} `{text}` is not a whole number")))
        };
        let text = field(latency, "latency")?;
        let latency_s: f64 = text
            .parse::<f64>()
            .map_err(|_| csv_error(format!("row {row}: latency `{text}` is not a number")))?
            * scale;
        points.push(Measurement {
            batch_size: parse_int(batch, "batch_size")?,
            max_seq_len: parse_int(length, "max_seq_len")?,
            latency_s,
        });
    }
    Ok(points)
}

/// Reads and fits a CSV of measurements ([`read_csv`], [`fit`]).
pub fn fit_csv(path: &Path) -> Result<Fit, SimError> {
    fit(&read_csv(path)?)
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn synthetic(truth: FittedCost, noise: f64) -> Vec<Measurement> {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut points = Vec::new();
        for batch in [1, 2, 4, 8, 16, 32, 64] {
            for length in [128, 512, 1024, 2048, 4096] {
                let shape = crate::cost::StepShape {
                    sequences: batch,
                    max_seq_len: length,
                    ..Default::default()
                };
                let t = truth.step_time(&shape) * (1.0 + noise * rng.random_range(-1.0..1.0));
                points.push(Measurement {
                    batch_size: batch,
                    max_seq_len: length,
                    latency_s: t,
                });
            }
        }
        points
    }

    /// γ = 32 is beyond the search's earlier bound of 20 (a CPU server's batch factor).
    #[rstest::rstest]
    #[case::batch_independent(0.0)]
    #[case::gpu_like(2.35)]
    #[case::cpu_like(32.0)]
    fn recovers_exact_parameters_from_noise_free_data(#[case] gamma: f64) {
        let truth = FittedCost {
            alpha: 0.012,
            beta: 3e-6,
            gamma,
            prefill_per_token: 0.0,
        };
        let fit = fit(&synthetic(truth, 0.0)).unwrap();
        assert!((fit.model.alpha - truth.alpha).abs() < 1e-9, "{fit:?}");
        assert!((fit.model.beta - truth.beta).abs() < 1e-12, "{fit:?}");
        assert!(
            (fit.model.gamma - truth.gamma).abs() < 1e-5 * (1.0 + truth.gamma),
            "{fit:?}"
        );
        assert!(fit.rms_residual_s < 1e-9);
    }

    #[test]
    fn a_fixed_gamma_fit_recovers_alpha_and_beta() {
        let truth = FittedCost {
            alpha: 0.004,
            beta: 8e-6,
            gamma: 0.0,
            prefill_per_token: 0.0,
        };
        let fit = fit_fixed_gamma(&synthetic(truth, 0.0), 0.0).unwrap();
        assert!((fit.model.alpha - truth.alpha).abs() < 1e-12, "{fit:?}");
        assert!((fit.model.beta - truth.beta).abs() < 1e-15, "{fit:?}");
        assert_eq!(fit.model.gamma, 0.0);
        assert!(fit_fixed_gamma(&synthetic(truth, 0.0)[..1], 0.0).is_err());
    }

    #[test]
    fn too_few_or_degenerate_points_are_refused() {
        let one_batch: Vec<Measurement> = (1..10)
            .map(|l| Measurement {
                batch_size: 4,
                max_seq_len: l * 100,
                latency_s: 0.01,
            })
            .collect();
        assert!(fit(&one_batch).is_err());
        assert!(fit(&one_batch[..2]).is_err());
    }

    #[test]
    fn reads_milliseconds_and_names_a_bad_row() {
        let dir = std::env::temp_dir().join(format!("llm-stress-fit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.csv");
        std::fs::write(
            &good,
            "batch_size,max_seq_len,latency_ms\n1,100,5.5\n8,200,7\n",
        )
        .unwrap();
        let points = read_csv(&good).unwrap();
        assert_eq!(points.len(), 2);
        assert!((points[0].latency_s - 0.0055).abs() < 1e-15);
        let bad = dir.join("bad.csv");
        std::fs::write(
            &bad,
            "batch_size,max_seq_len,latency_s\n1,100,0.1\nx,1,0.1\n",
        )
        .unwrap();
        let err = read_csv(&bad).unwrap_err().to_string();
        assert!(err.contains("row 3") && err.contains("batch_size"), "{err}");
        let missing = dir.join("missing.csv");
        std::fs::write(&missing, "b,l,t\n1,2,3\n").unwrap();
        assert!(
            read_csv(&missing)
                .unwrap_err()
                .to_string()
                .contains("needs columns")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
