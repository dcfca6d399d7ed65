//! Fitting the simulator's step-time model to a run's observations, and the profile it gives.
//!
//! Two forms of the decode step time are fitted by `llm-sim`'s least squares
//! ([`crate::sim::cost::fit`]):
//!
//! - [`ModelForm::BatchScaled`]: `t(b, L) = α + β·L·(1 + γ(b−1)/b)`;
//! - [`ModelForm::Flat`]: `t(b, L) = α + β·L` (γ = 0: the batch costs nothing extra).
//!
//! Each is scored by its held-out error: the requests are split into [`FOLDS`] folds, each fold
//! is predicted by the fit to the others, and the root-mean-square of those residuals is taken
//! relative to the mean step time. The form with the lower held-out error is kept (the flat one
//! on a tie). Its parameters' 95 % intervals come from refitting [`BOOTSTRAP`] resamples of the
//! requests (percentile bootstrap); R² and the residuals are those of the fit to everything.
//!
//! Before fitting, steps a stall stretched are left out ([`trim_outliers`]).
//!
//! The slot count is the largest batch seen when some trial offered more concurrency than
//! that (requests queued for a slot), else it is not determined and the profile keeps the
//! simulator's default unless `--slots` gives it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::TwinError;
use super::observe::{self, Observations, OpeningBatch, PrefillPoint, StepPoint};
use crate::metrics::RequestRecord;
use crate::report::LoadShape;
use crate::report::ReportError;
use crate::report::html::chart::{Chart, Layer, Stroke};
use crate::report::run::Run;
use crate::report::trial_dir::RECORDS_FILE;
use crate::sim::config::{CostSpec, SimConfig};
use crate::sim::cost::FittedCost;
use crate::sim::cost::fit::{self, Fit, Measurement};
use crate::sim::scheduler::SchedulerKind;

/// Folds of the held-out comparison.
pub const FOLDS: u64 = 5;
/// Bootstrap resamples behind the intervals.
pub const BOOTSTRAP: usize = 40;
/// Residuals beyond this many scaled MADs are outliers ([`trim_outliers`]).
pub const OUTLIER_MADS: f64 = 5.0;
/// Most step observations fitted (a larger run is thinned evenly, for speed).
pub const MAX_POINTS: usize = 20_000;

/// The most dots the fit chart draws.
pub const FIT_CHART_POINTS: usize = 2_000;

/// The decode step-time forms compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelForm {
    /// `α + β·L·(1 + γ(b−1)/b)`.
    BatchScaled,
    /// `α + β·L`.
    Flat,
}

impl ModelForm {
    /// Every form, simplest first (the tie-break).
    pub const ALL: [ModelForm; 2] = [ModelForm::Flat, ModelForm::BatchScaled];

    /// The name in tables.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelForm::BatchScaled => "batch-scaled",
            ModelForm::Flat => "flat",
        }
    }

    /// The formula.
    pub fn formula(self) -> &'static str {
        match self {
            ModelForm::BatchScaled => "t(b, L) = α + β·L·(1 + γ(b−1)/b)",
            ModelForm::Flat => "t(b, L) = α + β·L",
        }
    }

    fn fit(self, points: &[Measurement]) -> Result<Fit, TwinError> {
        let fit = match self {
            ModelForm::BatchScaled => fit::fit(points)?,
            ModelForm::Flat => fit::fit_fixed_gamma(points, 0.0)?,
        };
        Ok(fit)
    }
}

/// What the calibration may be told.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CalibrateOptions {
    /// Trial-name filter (see [`matches_filter`]); `None`: every load trial.
    pub trials: Option<String>,
    /// The server's slot count (largest batch), when known.
    pub slots: Option<u32>,
}

/// A value and its 95 % interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The fit to every observation.
    pub value: f64,
    /// Lower end of the interval.
    pub low: f64,
    /// Upper end of the interval.
    pub high: f64,
}

/// One form's held-out score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FormScore {
    /// The form.
    pub form: ModelForm,
    /// Held-out RMS residual over the mean step time; `None` when the form cannot be fitted.
    pub held_out: Option<f64>,
}

/// The linear fit of prefill time to prompt length, from requests that ran alone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrefillFit {
    /// TTFT at zero prompt tokens, seconds (client and network overhead included).
    pub intercept_s: f64,
    /// Seconds per prompt token.
    pub per_token_s: f64,
    /// The standard error of `per_token_s`, seconds per token.
    pub per_token_se_s: f64,
    /// R².
    pub r_squared: f64,
    /// Requests.
    pub points: usize,
}

/// Where the slot count came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotSource {
    /// `--slots`.
    Given,
    /// The largest batch, while more requests were in flight.
    Inferred,
    /// No trial reached a limit: the simulator's default.
    NotReached,
}

/// One trial's share of the observations.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialRow {
    /// The trial's name.
    pub name: String,
    /// Its closed-loop concurrency (or users, or in-flight cap), when it had one.
    pub concurrency: Option<u32>,
    /// Requests used.
    pub requests: usize,
    /// Decode steps observed.
    pub steps: usize,
    /// Largest batch seen.
    pub max_batch: u64,
}

/// A calibrated model of a server.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    /// The run calibrated from.
    pub run: String,
    /// The trials used.
    pub trials: Vec<TrialRow>,
    /// Every form's held-out score.
    pub scores: Vec<FormScore>,
    /// The form kept.
    pub form: ModelForm,
    /// α, seconds.
    pub alpha: Estimate,
    /// β, seconds per token.
    pub beta: Estimate,
    /// γ (0 in the flat form).
    pub gamma: Estimate,
    /// R² of the kept form on every observation.
    pub r_squared: f64,
    /// RMS residual, seconds.
    pub rms_residual_s: f64,
    /// Residual percentiles (p5, p50, p95), seconds.
    pub residuals_s: [f64; 3],
    /// Observations fitted.
    pub points: usize,
    /// Observations left out as outliers (see [`trim_outliers`]).
    pub trimmed: usize,
    /// The prefill fit, when requests ran alone at two or more prompt lengths.
    pub prefill: Option<PrefillFit>,
    /// π, the prefill term of the profile, seconds per prompt token (see
    /// [`prefill_term`]); 0 when the data does not determine it.
    pub prefill_per_token: f64,
    /// What the client sees beyond the model: the median of TTFT − (α + β·prompt) over the
    /// requests that ran alone (request and response travel, the server's own delivery), seconds;
    /// 0 when none ran alone.
    pub overhead_s: f64,
    /// The median gap between the client's opening sends ([`Observations::send_gaps_s`]),
    /// seconds; 0 when no trial had more than one request in its opening burst.
    pub send_gap_s: f64,
    /// How long the idle server takes to start a step once a request reaches it, seconds
    /// ([`admission_window`]); 0 when it was never seen to gather two opening requests into
    /// its first step (it then starts a step at the first arrival).
    pub admission_window_s: f64,
    /// The slot count.
    pub slots: u32,
    /// Where it came from.
    pub slot_source: SlotSource,
    /// The decode steps fitted (outliers left out): what [`Calibration::fit_chart`] draws.
    pub steps: Vec<Measurement>,
}

/// Whether trial `name` matches `filter`: a comma-separated list of patterns, each matching a
/// name that holds it between separators (start, end, `_`, `:`, space, `[`, `]`, `-`), so `c1`
/// matches `…_c1_n8` but not `…_c16_n8`. An empty filter matches every name.
pub fn matches_filter(name: &str, filter: &str) -> bool {
    let patterns: Vec<&str> = filter
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if patterns.is_empty() {
        return true;
    }
    let boundary = |c: Option<char>| c.is_none_or(|c| "_: []-".contains(c));
    patterns.iter().any(|p| {
        name.match_indices(p).any(|(at, _)| {
            boundary(name[..at].chars().next_back())
                && boundary(name[at + p.len()..].chars().next())
        })
    })
}

fn concurrency(shape: &LoadShape) -> Option<u32> {
    match shape {
        LoadShape::Closed { concurrency } => Some(*concurrency),
        LoadShape::Users { users } => Some(*users),
        LoadShape::Open { max_in_flight, .. } => *max_in_flight,
        LoadShape::Consistency => Some(1),
        LoadShape::Sessions { .. } => None,
    }
}

fn read_records(path: &Path) -> Result<Vec<RequestRecord>, TwinError> {
    let text = std::fs::read_to_string(path).map_err(|e| ReportError::io(path, "read", e))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| {
                TwinError::Report(ReportError::io(
                    path,
                    "parse",
                    std::io::Error::other(format!("line {}: {e}", i + 1)),
                ))
            })
        })
        .collect()
}

/// Calibrates from the load trials of `run` that match the options' filter.
pub fn calibrate_run(run: &Run, options: &CalibrateOptions) -> Result<Calibration, TwinError> {
    let filter = options.trials.as_deref().unwrap_or("");
    let mut seen = Vec::new();
    for trial in &run.trials {
        let Some(load) = trial.report.load() else {
            continue;
        };
        let name = trial.name();
        if !matches_filter(&name, filter) {
            continue;
        }
        // A streamed load's file is in completion order: put it in id order.
        let mut records = read_records(&trial.dir.join(RECORDS_FILE))?;
        records.sort_by_key(|r| r.id);
        seen.push((name, concurrency(&load.shape), observe::observe(&records)));
    }
    if seen.is_empty() {
        return Err(TwinError::NoTrials {
            run: run.run_id.clone(),
            filter: filter.to_string(),
        });
    }
    calibrate(&run.run_id, &seen, options.slots)
}

/// Calibrates from observed trials: `(name, concurrency, observations)` each.
pub fn calibrate(
    run: &str,
    trials: &[(String, Option<u32>, Observations)],
    slots: Option<u32>,
) -> Result<Calibration, TwinError> {
    // Requests are numbered per trial; key them by trial too.
    let mut points: Vec<(u64, Measurement)> = Vec::new();
    let mut prefills: Vec<PrefillPoint> = Vec::new();
    for (t, (_, _, seen)) in trials.iter().enumerate() {
        let key = |p: &StepPoint| ((t as u64) << 40) ^ p.request;
        points.extend(seen.steps.iter().map(|p| (key(p), p.step)));
        prefills.extend(&seen.prefills);
    }
    if points.len() > MAX_POINTS {
        let stride = points.len().div_ceil(MAX_POINTS);
        points = points.into_iter().step_by(stride).collect();
    }
    if points.len() < 3 {
        return Err(TwinError::TooFew(format!(
            "{} decode steps seen; the records need streamed chunks of one token and prompt \
             token counts",
            points.len()
        )));
    }
    let (points, trimmed) = trim_outliers(points);
    let steps: Vec<Measurement> = points.iter().map(|(_, m)| *m).collect();
    let scores: Vec<FormScore> = ModelForm::ALL
        .iter()
        .map(|&form| FormScore {
            form,
            held_out: held_out(form, &points),
        })
        .collect();
    let best = scores
        .iter()
        .filter_map(|s| s.held_out.map(|e| (s.form, e)))
        .fold(
            None,
            |best: Option<(ModelForm, f64)>, (form, e)| match best {
                Some((_, b)) if b <= e => best,
                _ => Some((form, e)),
            },
        )
        .map(|(form, _)| form)
        .ok_or_else(|| {
            TwinError::TooFew(
                "no form could be fitted: the sequence lengths do not vary enough".to_string(),
            )
        })?;
    let full = best.fit(&steps)?;
    let predict = |m: &Measurement| full.model.step_time(&shape(m));
    let residuals: Vec<f64> = steps.iter().map(|m| m.latency_s - predict(m)).collect();
    let mean = steps.iter().map(|m| m.latency_s).sum::<f64>() / steps.len() as f64;
    let sst: f64 = steps.iter().map(|m| (m.latency_s - mean).powi(2)).sum();
    let sse: f64 = residuals.iter().map(|r| r * r).sum();
    let (alpha, beta, gamma) = intervals(best, &points, &full.model);
    let max_batch = trials
        .iter()
        .map(|(_, _, s)| s.max_batch)
        .max()
        .unwrap_or(0);
    let saturated = trials
        .iter()
        .any(|(_, c, _)| c.is_some_and(|c| u64::from(c) > max_batch));
    let (slots, slot_source) = match slots {
        Some(s) => (s, SlotSource::Given),
        None if saturated && max_batch > 0 => (
            u32::try_from(max_batch).unwrap_or(u32::MAX),
            SlotSource::Inferred,
        ),
        None => (
            crate::sim::config::SchedulerSpec::default().batch_size,
            SlotSource::NotReached,
        ),
    };
    let prefill = prefill_fit(&prefills);
    let pi = prefill
        .as_ref()
        .map_or(0.0, |p| prefill_term(p, full.model.beta));
    let send_gap_s = median(
        trials
            .iter()
            .flat_map(|(_, _, seen)| seen.send_gaps_s.iter().copied())
            .collect(),
    )
    .unwrap_or(0.0);
    let admission_window_s = admission_window(
        trials.iter().filter_map(|(_, _, seen)| seen.opening_batch),
        send_gap_s,
    );
    Ok(Calibration {
        run: run.to_string(),
        trials: trials
            .iter()
            .map(|(name, concurrency, seen)| TrialRow {
                name: name.clone(),
                concurrency: *concurrency,
                requests: seen.requests,
                steps: seen.steps.len(),
                max_batch: seen.max_batch,
            })
            .collect(),
        scores,
        form: best,
        alpha,
        beta,
        gamma,
        r_squared: if sst > 0.0 { 1.0 - sse / sst } else { 1.0 },
        rms_residual_s: (sse / steps.len() as f64).sqrt(),
        residuals_s: percentiles(residuals, [0.05, 0.5, 0.95]),
        points: steps.len(),
        trimmed,
        prefill,
        prefill_per_token: pi,
        overhead_s: median(
            prefills
                .iter()
                .map(|p| {
                    p.ttft_s
                        - full.model.alpha
                        - full.model.beta * p.prompt_tokens as f64
                        - pi * p.prompt_tokens.saturating_sub(1) as f64
                })
                .collect(),
        )
        .unwrap_or(0.0),
        send_gap_s,
        admission_window_s,
        steps: steps.clone(),
        slots,
        slot_source,
    })
}

/// The admission window the opening bursts show: a server seen to prefill `k` opening
/// requests in its first step, sent up to `spread` apart, gathers at least `k` requests sent
/// at the median gap — the window reaches past the `(k − 1)`-th gap and the widest spread by
/// half a gap (and not to the `k`-th gap: no burst showed more). 0 when no burst had two
/// requests share the first step.
pub fn admission_window(batches: impl Iterator<Item = OpeningBatch>, send_gap_s: f64) -> f64 {
    let (requests, spread_s) = batches.fold((1, 0.0_f64), |(k, s), b| {
        (k.max(b.requests), s.max(b.spread_s))
    });
    if requests < 2 {
        return 0.0;
    }
    spread_s.max((requests - 1) as f64 * send_gap_s) + send_gap_s / 2.0
}

fn shape(m: &Measurement) -> crate::sim::cost::StepShape {
    crate::sim::cost::StepShape {
        sequences: m.batch_size,
        max_seq_len: m.max_seq_len,
        ..Default::default()
    }
}

/// Leaves out the steps a stall stretched: those whose residual from a first fit (the
/// batch-scaled form, else the flat one) lies more than [`OUTLIER_MADS`] scaled median absolute
/// deviations from the median residual. A client or server that is descheduled for a moment
/// (a busy host, a collector pause) makes a few steps look many times longer than they were;
/// least squares would follow them. Returns the kept points and how many were left out.
pub fn trim_outliers(points: Vec<(u64, Measurement)>) -> (Vec<(u64, Measurement)>, usize) {
    let steps: Vec<Measurement> = points.iter().map(|(_, m)| *m).collect();
    let Some(first) = [ModelForm::BatchScaled, ModelForm::Flat]
        .iter()
        .find_map(|form| form.fit(&steps).ok())
    else {
        return (points, 0);
    };
    let residual = |m: &Measurement| m.latency_s - first.model.step_time(&shape(m));
    let residuals: Vec<f64> = steps.iter().map(residual).collect();
    let Some(center) = median(residuals.clone()) else {
        return (points, 0);
    };
    let mad = median(residuals.iter().map(|r| (r - center).abs()).collect()).unwrap_or(0.0);
    let mean = steps.iter().map(|m| m.latency_s).sum::<f64>() / steps.len() as f64;
    // A floor, so noise-free data (MAD 0) keeps what is within a part in a million.
    let limit = (OUTLIER_MADS * 1.4826 * mad).max(mean * 1e-6);
    let before = points.len();
    let kept: Vec<(u64, Measurement)> = points
        .into_iter()
        .filter(|(_, m)| (residual(m) - center).abs() <= limit)
        .collect();
    let trimmed = before - kept.len();
    (kept, trimmed)
}

/// The fold of a request: a hash of its key, so a request's steps stay together.
fn fold(key: u64) -> u64 {
    let mut x = key.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (x ^ (x >> 31)) % FOLDS
}

/// The form's held-out RMS residual over the mean step time (module documentation).
fn held_out(form: ModelForm, points: &[(u64, Measurement)]) -> Option<f64> {
    let mut sse = 0.0;
    let mut n = 0usize;
    for k in 0..FOLDS {
        let train: Vec<Measurement> = points
            .iter()
            .filter(|(key, _)| fold(*key) != k)
            .map(|(_, m)| *m)
            .collect();
        let test: Vec<&Measurement> = points
            .iter()
            .filter(|(key, _)| fold(*key) == k)
            .map(|(_, m)| m)
            .collect();
        if test.is_empty() {
            continue;
        }
        let model = form.fit(&train).ok()?.model;
        for m in test {
            sse += (m.latency_s - model.step_time(&shape(m))).powi(2);
            n += 1;
        }
    }
    let mean = points.iter().map(|(_, m)| m.latency_s).sum::<f64>() / points.len() as f64;
    (n > 0 && mean > 0.0).then(|| (sse / n as f64).sqrt() / mean)
}

/// Percentile bootstrap over requests of the form's parameters.
fn intervals(
    form: ModelForm,
    points: &[(u64, Measurement)],
    full: &FittedCost,
) -> (Estimate, Estimate, Estimate) {
    let mut by_request: BTreeMap<u64, Vec<Measurement>> = BTreeMap::new();
    for (key, m) in points {
        by_request.entry(*key).or_default().push(*m);
    }
    let groups: Vec<Vec<Measurement>> = by_request.into_values().collect();
    let mut rng = ChaCha8Rng::seed_from_u64(0x7017);
    let mut samples: [Vec<f64>; 3] = Default::default();
    for _ in 0..BOOTSTRAP {
        let resample: Vec<Measurement> = (0..groups.len())
            .flat_map(|_| groups[rng.random_range(0..groups.len())].iter().copied())
            .collect();
        if let Ok(fit) = form.fit(&resample) {
            samples[0].push(fit.model.alpha);
            samples[1].push(fit.model.beta);
            samples[2].push(fit.model.gamma);
        }
    }
    let estimate = |value: f64, s: &[f64]| {
        if s.is_empty() {
            return Estimate {
                value,
                low: f64::NAN,
                high: f64::NAN,
            };
        }
        let [low, high] = percentiles(s.to_vec(), [0.025, 0.975]);
        Estimate { value, low, high }
    };
    (
        estimate(full.alpha, &samples[0]),
        estimate(full.beta, &samples[1]),
        estimate(full.gamma, &samples[2]),
    )
}

fn median(values: Vec<f64>) -> Option<f64> {
    (!values.is_empty()).then(|| percentiles(values, [0.5])[0])
}

fn percentiles<const N: usize>(mut values: Vec<f64>, at: [f64; N]) -> [f64; N] {
    values.sort_by(f64::total_cmp);
    at.map(|q| {
        if values.is_empty() {
            return f64::NAN;
        }
        let i = ((values.len() - 1) as f64 * q).round() as usize;
        values[i]
    })
}

/// The least R² of the prefill fit for its slope to set π.
pub const PREFILL_MIN_R2: f64 = 0.9;

/// π from the prefill fit: a lone request's TTFT grows by `β + π` per prompt token (its one
/// prefill step costs `α + β·P + π·(P − 1)`), so `π = slope − β` — when the data determines it:
/// the fit explains at least [`PREFILL_MIN_R2`] of the variance and the slope differs from β
/// by more than three standard errors. Otherwise 0, the step model's own prefill.
pub fn prefill_term(fit: &PrefillFit, beta: f64) -> f64 {
    let pi = fit.per_token_s - beta;
    let determined = fit.r_squared >= PREFILL_MIN_R2
        && fit.per_token_s >= 0.0
        && pi.abs() > 3.0 * fit.per_token_se_s;
    if determined { pi } else { 0.0 }
}

fn prefill_fit(points: &[PrefillPoint]) -> Option<PrefillFit> {
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.prompt_tokens as f64).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.ttft_s).sum::<f64>() / n;
    let (mut sxx, mut sxy, mut syy) = (0.0, 0.0, 0.0);
    for p in points {
        let (dx, dy) = (p.prompt_tokens as f64 - mean_x, p.ttft_s - mean_y);
        sxx += dx * dx;
        sxy += dx * dy;
        syy += dy * dy;
    }
    if points.len() < 3 || sxx <= 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    let sse = (syy - slope * sxy).max(0.0);
    Some(PrefillFit {
        intercept_s: mean_y - slope * mean_x,
        per_token_s: slope,
        per_token_se_s: (sse / (n - 2.0) / sxx).sqrt(),
        r_squared: if syy > 0.0 { 1.0 - sse / syy } else { 1.0 },
        points: points.len(),
    })
}

impl Calibration {
    /// The fitted step-time model.
    pub fn cost(&self) -> FittedCost {
        FittedCost {
            alpha: self.alpha.value,
            beta: self.beta.value,
            gamma: self.gamma.value,
            prefill_per_token: self.prefill_per_token,
        }
    }

    /// Measured against fitted decode step time, ms: one dot per fitted step (every n-th when
    /// there are more than [`FIT_CHART_POINTS`]), and the line where the two agree.
    pub fn fit_chart(&self) -> Chart {
        let model = self.cost();
        let stride = self.steps.len().div_ceil(FIT_CHART_POINTS).max(1);
        let points: Vec<(f64, f64)> = self
            .steps
            .iter()
            .step_by(stride)
            .map(|m| (model.step_time(&shape(m)) * 1e3, m.latency_s * 1e3))
            .collect();
        let (lo, hi) = points
            .iter()
            .flat_map(|&(x, y)| [x, y])
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            });
        let mut layers = vec![Layer::Points {
            label: format!("decode steps ({} of {})", points.len(), self.steps.len()),
            points,
            color: "#4E79A7",
        }];
        if lo <= hi {
            layers.push(Layer::Line {
                label: "measured = fitted".into(),
                points: vec![(lo, lo), (hi, hi)],
                color: 1,
                stroke: Stroke::Dashed,
            });
        }
        Chart {
            id: "calibration-fit".into(),
            title: format!(
                "{}: measured against fitted decode step time ({}, R² {:.4})",
                self.run,
                self.form.formula(),
                self.r_squared
            ),
            x_label: "fitted step time (ms)".into(),
            y_label: "measured step time (ms)".into(),
            layers,
            y_from_zero: false,
            x_integer: false,
            y_integer: false,
        }
    }

    /// Writes [`Calibration::fit_chart`] as an SVG file.
    pub fn write_fit_chart(&self, path: &Path) -> Result<(), TwinError> {
        let svg = self.fit_chart().to_svg()?;
        std::fs::write(path, svg).map_err(|source| TwinError::Write {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The profile: the simulator's configuration with the fitted cost and a continuous
    /// scheduler of the calibrated slot count (the workload is the default; `sim predict`
    /// replaces it with a case's).
    pub fn profile(&self) -> SimConfig {
        let mut config = SimConfig {
            cost: CostSpec::Fitted(self.cost()),
            ..SimConfig::default()
        };
        config.scheduler.kind = SchedulerKind::Continuous;
        config.scheduler.batch_size = self.slots;
        config
    }

    /// The profile as YAML, the fit table as its leading comment.
    pub fn profile_yaml(&self) -> Result<String, TwinError> {
        let yaml = serde_saphyr::to_string(&self.profile())
            .map_err(|e| TwinError::Serialise(e.to_string()))?;
        let comment: String = self
            .render()
            .lines()
            .map(|l| format!("# {l}\n").replace("# \n", "#\n"))
            .collect();
        Ok(format!(
            "# A calibrated profile (llm-stress sim calibrate): an llm-sim configuration.\n\
             {comment}{yaml}"
        ))
    }

    /// Writes [`Calibration::profile_yaml`] to `path`.
    pub fn write_profile(&self, path: &Path) -> Result<(), TwinError> {
        std::fs::write(path, self.profile_yaml()?).map_err(|source| TwinError::Write {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The fit table: trials, forms, parameters with intervals, residuals, R², prefill, slots.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "calibrated from run {}:", self.run);
        let _ = writeln!(
            s,
            "  {:<48} {:>6} {:>8} {:>7} {:>9}",
            "trial", "conc", "requests", "steps", "max batch"
        );
        for t in &self.trials {
            let c = t.concurrency.map_or("-".to_string(), |c| c.to_string());
            let _ = writeln!(
                s,
                "  {:<48} {:>6} {:>8} {:>7} {:>9}",
                t.name, c, t.requests, t.steps, t.max_batch
            );
        }
        let _ = writeln!(
            s,
            "decode step forms (held-out RMS error / mean step time):"
        );
        for score in &self.scores {
            let e = score
                .held_out
                .map_or("not fitted".to_string(), |e| format!("{:.2} %", e * 100.0));
            let kept = if score.form == self.form {
                "  (kept)"
            } else {
                ""
            };
            let _ = writeln!(
                s,
                "  {:<13} {:<34} {e}{kept}",
                score.form.as_str(),
                score.form.formula()
            );
        }
        let row = |s: &mut String, name: &str, unit: &str, scale: f64, e: &Estimate| {
            let _ = writeln!(
                s,
                "  {name:<6} {:>12.4} {unit:<9} [{:.4}, {:.4}]",
                e.value * scale,
                e.low * scale,
                e.high * scale
            );
        };
        let _ = writeln!(s, "parameters (95 % bootstrap interval over requests):");
        row(&mut s, "alpha", "ms", 1e3, &self.alpha);
        row(&mut s, "beta", "µs/token", 1e6, &self.beta);
        row(&mut s, "gamma", "", 1.0, &self.gamma);
        let [p5, p50, p95] = self.residuals_s;
        let _ = writeln!(
            s,
            "fit: {} steps ({} outliers left out), R² {:.4}, RMS residual {:.3} ms, residual \
             p5/p50/p95 {:.3}/{:.3}/{:.3} ms",
            self.points,
            self.trimmed,
            self.r_squared,
            self.rms_residual_s * 1e3,
            p5 * 1e3,
            p50 * 1e3,
            p95 * 1e3
        );
        match &self.prefill {
            Some(p) => {
                let _ = writeln!(
                    s,
                    "prefill (TTFT of {} requests that ran alone) = {:.3} ms + {:.3} µs/token · \
                     prompt, R² {:.4} (the step model charges α + β·prompt = {:.3} ms + {:.3} \
                     µs/token)",
                    p.points,
                    p.intercept_s * 1e3,
                    p.per_token_s * 1e6,
                    p.r_squared,
                    self.alpha.value * 1e3,
                    self.beta.value * 1e6
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "prefill: not fitted (needs requests that ran alone at two or more prompt \
                     lengths)"
                );
            }
        }
        if let Some(p) = &self.prefill {
            if self.prefill_per_token != 0.0 {
                let _ = writeln!(
                    s,
                    "prefill term π = {:+.3} µs/token (TTFT slope − β, ± {:.3} µs/token): in the \
                     profile, a prefill step costs α + β·P + π·(P − 1)",
                    self.prefill_per_token * 1e6,
                    p.per_token_se_s * 1e6
                );
            } else {
                let _ = writeln!(
                    s,
                    "prefill term π: not used (the TTFT slope is within 3 standard errors of β, \
                     ± {:.3} µs/token, or R² < {PREFILL_MIN_R2}): a prefill step costs α + β·P",
                    p.per_token_se_s * 1e6
                );
            }
        }
        let _ = writeln!(
            s,
            "overhead (median TTFT beyond the model of requests that ran alone): {:.3} ms",
            self.overhead_s * 1e3
        );
        let _ = writeln!(
            s,
            "opening sends (median gap between the first requests of a closed loop): {:.3} ms",
            self.send_gap_s * 1e3
        );
        let _ = writeln!(
            s,
            "admission window (the most opening sends the server prefilled in one step, at \
             the median gap, + half a gap): {:.3} ms",
            self.admission_window_s * 1e3
        );
        let source = match self.slot_source {
            SlotSource::Given => "given".to_string(),
            SlotSource::Inferred => "inferred: no batch was larger while more requests were \
                                     in flight"
                .to_string(),
            SlotSource::NotReached => format!(
                "no limit reached (largest batch {}); the simulator's default",
                self.trials.iter().map(|t| t.max_batch).max().unwrap_or(0)
            ),
        };
        let _ = writeln!(s, "slots: {} ({source})", self.slots);
        s
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case("[perf] c::isl64_osl8_c1_n4", "c1", true)]
    #[case("[perf] c::isl64_osl8_c16_n4", "c1", false)]
    #[case("[perf] c::isl64_osl8_c16_n4", "c1,c16", true)]
    #[case("[perf] c::isl64_osl8_c16_n4", "", true)]
    #[case("[perf] c::isl64_osl8_c16_n4", "isl64", true)]
    #[case("[perf] c::isl64_osl8_c16_n4", "isl6", false)]
    fn filters_match_whole_parts(#[case] name: &str, #[case] filter: &str, #[case] hit: bool) {
        assert_eq!(matches_filter(name, filter), hit);
    }

    /// Steps of a server with `truth`, at batches 1–4 and a spread of lengths.
    fn observed(truth: FittedCost) -> Vec<(String, Option<u32>, Observations)> {
        let mut steps = Vec::new();
        for request in 0..40u64 {
            let batch = request % 4 + 1;
            for k in 0..20 {
                let m = Measurement {
                    batch_size: batch,
                    max_seq_len: 100 + request * 20 + k,
                    latency_s: 0.0,
                };
                steps.push(StepPoint {
                    step: Measurement {
                        latency_s: truth.step_time(&shape(&m)),
                        ..m
                    },
                    request,
                });
            }
        }
        let seen = Observations {
            steps,
            prefills: Vec::new(),
            max_batch: 4,
            requests: 40,
            send_gaps_s: Vec::new(),
            opening_batch: None,
        };
        vec![("t".to_string(), Some(8), seen)]
    }

    #[test]
    fn recovers_a_batch_scaled_model_and_infers_the_slots() {
        let truth = FittedCost {
            alpha: 0.004,
            beta: 8e-6,
            gamma: 1.0,
            prefill_per_token: 0.0,
        };
        let c = calibrate("r", &observed(truth), None).unwrap();
        assert_eq!(c.form, ModelForm::BatchScaled);
        assert!((c.alpha.value / truth.alpha - 1.0).abs() < 1e-6, "{c:?}");
        assert!((c.beta.value / truth.beta - 1.0).abs() < 1e-6, "{c:?}");
        assert!((c.gamma.value - truth.gamma).abs() < 1e-4, "{c:?}");
        assert!(c.r_squared > 0.999_999);
        assert_eq!((c.slots, c.slot_source), (4, SlotSource::Inferred));
        let text = c.render();
        assert!(
            text.contains("(kept)") && text.contains("slots: 4"),
            "{text}"
        );
        // The fit chart: every step a dot on the measured = fitted line (noise-free data).
        let chart = c.fit_chart();
        let Layer::Points { points, .. } = &chart.layers[0] else {
            panic!("no dots: {chart:?}");
        };
        assert_eq!(points.len(), 800);
        assert!(
            points.iter().all(|(x, y)| (x - y).abs() < 1e-6 * y),
            "{points:?}"
        );
        assert!(matches!(chart.layers[1], Layer::Line { .. }));
        let svg = chart.to_svg().expect("draws");
        assert!(svg.starts_with("<svg") && svg.contains("<circle"), "{svg}");
    }

    #[test]
    fn a_batch_independent_server_keeps_the_flat_form_or_a_zero_gamma() {
        let truth = FittedCost {
            alpha: 0.004,
            beta: 8e-6,
            gamma: 0.0,
            prefill_per_token: 0.0,
        };
        let c = calibrate("r", &observed(truth), Some(6)).unwrap();
        assert!(c.gamma.value.abs() < 1e-4, "{c:?}");
        assert_eq!((c.slots, c.slot_source), (6, SlotSource::Given));
        let profile = c.profile_yaml().unwrap();
        let back: SimConfig = serde_saphyr::from_str(&profile).unwrap();
        assert_eq!(back, c.profile());
    }

    /// `observed(truth)` plus requests that ran alone at prompts 64…512, their TTFT
    /// `overhead + α + β·P + π·(P − 1)`, every other one `wobble` seconds late.
    fn with_prefills(
        truth: FittedCost,
        overhead_s: f64,
        wobble: f64,
    ) -> Vec<(String, Option<u32>, Observations)> {
        let mut trials = observed(truth);
        trials[0].2.prefills = (0..16u64)
            .map(|i| {
                let prompt = 64 + i * 30;
                let mut shape = crate::sim::cost::StepShape::default();
                shape.add(0, prompt);
                PrefillPoint {
                    prompt_tokens: prompt,
                    ttft_s: overhead_s + truth.step_time(&shape) + wobble * (i % 2) as f64,
                }
            })
            .collect();
        trials
    }

    #[test]
    fn a_prefill_dearer_than_the_step_model_sets_pi_and_the_profile_keeps_it() {
        let truth = FittedCost {
            alpha: 0.004,
            beta: 8e-6,
            gamma: 1.0,
            prefill_per_token: 20e-6,
        };
        let c = calibrate("r", &with_prefills(truth, 0.0005, 0.0), None).unwrap();
        assert!(
            (c.prefill_per_token / truth.prefill_per_token - 1.0).abs() < 1e-6,
            "{}",
            c.render()
        );
        assert!((c.overhead_s - 0.0005).abs() < 1e-7, "{}", c.render());
        assert!(c.render().contains("prefill term π = +20.000 µs/token"));
        let back: SimConfig = serde_saphyr::from_str(&c.profile_yaml().unwrap()).unwrap();
        assert_eq!(back.cost, CostSpec::Fitted(c.cost()));
        assert_eq!(c.cost().prefill_per_token, c.prefill_per_token);
    }

    #[test]
    fn a_prefill_the_step_model_explains_leaves_pi_out() {
        let truth = FittedCost {
            alpha: 0.004,
            beta: 8e-6,
            gamma: 1.0,
            prefill_per_token: 0.0,
        };
        let c = calibrate("r", &with_prefills(truth, 0.0005, 0.0002), None).unwrap();
        assert_eq!(c.prefill_per_token, 0.0, "{}", c.render());
        assert!(c.render().contains("prefill term π: not used"));
        let yaml = c.profile_yaml().unwrap();
        assert!(!yaml.contains("prefill_per_token"), "{yaml}");
    }

    /// The window covers as many opening requests at the median gap as a burst showed
    /// sharing the first step (or their wider measured spread), plus half a gap.
    #[rstest::rstest]
    #[case::no_burst(&[], 0.07, 0.0)]
    #[case::always_alone(&[(1, 0.0)], 0.07, 0.0)]
    #[case::four_sent_closer_than_the_median(&[(1, 0.0), (4, 0.117)], 0.07, 0.245)]
    #[case::two_sent_far_apart(&[(2, 0.5)], 0.1, 0.55)]
    fn the_admission_window_covers_the_largest_opening_batch(
        #[case] batches: &[(usize, f64)],
        #[case] gap_ms: f64,
        #[case] window_ms: f64,
    ) {
        let batches = batches.iter().map(|&(requests, spread_ms)| OpeningBatch {
            requests,
            spread_s: spread_ms / 1e3,
        });
        let got = admission_window(batches, gap_ms / 1e3) * 1e3;
        assert!((got - window_ms).abs() < 1e-9, "{got}");
    }
}
