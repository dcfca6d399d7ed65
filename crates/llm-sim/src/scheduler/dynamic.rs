//! Dynamic batch size: the smaller of a memory bound and an SLA bound.
//!
//! `batch = min(b_mem, b_SLA)`, clamped to `[B_min, B_max]`:
//!
//! - `b_mem = ⌊(η − L₀) / E[l_in + l_out]⌋`, with `η` the replica's KV capacity in tokens
//!   (device memory less the model's, over the KV bytes per token), `L₀ = 0.1 η` held back, and
//!   `E[·]` an exponential moving average (α = 0.2) of the prompt-plus-output length of
//!   finished requests (seeded with the first admitted request's prompt plus predicted output).
//! - `b_SLA` from a feedback controller on the moving averages (α = 0.2) `τ` of the decode
//!   time between tokens (the step time) and `b̄` of the batch size, against a deadline `D` with
//!   margin `ε`: if `τ > D + ε`, `b_high = min(b_high, max(b̄, b_low + 4))` and
//!   `b_low = max(b_low − 2, B_min)`; if `τ < D − ε`, `b_low = max(b_low, min(b̄, b_high − 4))`
//!   and `b_high = min(b_high + 2, B_max)`; otherwise `[b_low, b_high] = [b̄ − 1, b̄ + 1]`; then
//!   `b_SLA = ⌊(b_low + b_high) / 2⌋`.
//!
//! The simulator accounts for a run of steps of unchanged batch at once, so the controller is
//! updated once per run (each time the batch can change), with the moving averages advanced
//! over the run's `n` steps in closed form as if each took the run's mean step time:
//! `τ ← (1 − α)ⁿ τ + (1 − (1 − α)ⁿ) · mean`.

use serde::{Deserialize, Serialize};

use crate::error::SimError;

/// Smoothing factor of the moving averages.
pub const EMA_ALPHA: f64 = 0.2;
/// Share of the KV capacity `b_mem` holds back (`L₀ = 0.1 η`).
pub const RESERVED_SHARE: f64 = 0.1;

/// Settings of the dynamic batch size.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamicBatchConfig {
    /// Smallest batch, `B_min`.
    pub min_batch: u32,
    /// Deadline on the decode time between tokens, `D`, seconds.
    pub tbt_deadline_s: f64,
    /// Dead band around the deadline, `ε`, seconds.
    pub margin_s: f64,
}

impl DynamicBatchConfig {
    /// Checks `1 ≤ B_min ≤ max_batch`, `D > 0`, `0 ≤ ε < D`.
    pub fn validate(&self, max_batch: u32) -> Result<(), SimError> {
        if self.min_batch == 0 || self.min_batch > max_batch {
            return Err(SimError::invalid(
                "dynamic.min_batch",
                format!("must be in [1, {max_batch}], not {}", self.min_batch),
            ));
        }
        if !(self.tbt_deadline_s.is_finite() && self.tbt_deadline_s > 0.0) {
            return Err(SimError::invalid(
                "dynamic.tbt_deadline_s",
                format!("must be positive, not {}", self.tbt_deadline_s),
            ));
        }
        if !(self.margin_s >= 0.0 && self.margin_s < self.tbt_deadline_s) {
            return Err(SimError::invalid(
                "dynamic.margin_s",
                format!(
                    "must be in [0, tbt_deadline_s), not {} (deadline {})",
                    self.margin_s, self.tbt_deadline_s
                ),
            ));
        }
        Ok(())
    }
}

/// The controller's state on one replica.
#[derive(Debug, Clone)]
pub struct DynamicBatch {
    config: DynamicBatchConfig,
    max_batch: u32,
    eta_tokens: f64,
    mean_length: Option<f64>,
    mean_step_s: Option<f64>,
    mean_batch: Option<f64>,
    low: f64,
    high: f64,
}

impl DynamicBatch {
    /// A controller for a replica with `eta_tokens` of KV capacity and batches of at most
    /// `max_batch` (`B_max`). It starts at `[b_low, b_high] = [B_min, B_max]`.
    pub fn new(config: DynamicBatchConfig, max_batch: u32, eta_tokens: u64) -> DynamicBatch {
        DynamicBatch {
            config,
            max_batch,
            eta_tokens: eta_tokens as f64,
            mean_length: None,
            mean_step_s: None,
            mean_batch: None,
            low: f64::from(config.min_batch),
            high: f64::from(max_batch),
        }
    }

    fn clamp(&self, b: f64) -> u32 {
        let b = if b.is_finite() { b.floor() } else { f64::MAX };
        b.clamp(f64::from(self.config.min_batch), f64::from(self.max_batch)) as u32
    }

    /// `b_mem` (B_max before any length is known).
    pub fn memory_bound(&self) -> u32 {
        match self.mean_length {
            Some(len) => self.clamp((self.eta_tokens * (1.0 - RESERVED_SHARE)) / len.max(1.0)),
            None => self.max_batch,
        }
    }

    /// `b_SLA`.
    pub fn sla_bound(&self) -> u32 {
        self.clamp((self.low + self.high) / 2.0)
    }

    /// The batch size to use now: `min(b_mem, b_SLA)`.
    pub fn limit(&self) -> u32 {
        self.memory_bound().min(self.sla_bound())
    }

    /// Seeds the length average with an admitted request's prompt plus predicted output, if
    /// nothing finished yet.
    pub fn seed_length(&mut self, tokens: u64) {
        if self.mean_length.is_none() {
            self.mean_length = Some(tokens as f64);
        }
    }

    /// A request finished with `tokens` prompt plus output tokens.
    pub fn observe_finished(&mut self, tokens: u64) {
        let x = tokens as f64;
        self.mean_length = Some(match self.mean_length {
            Some(m) => (1.0 - EMA_ALPHA) * m + EMA_ALPHA * x,
            None => x,
        });
    }

    /// `steps` steps of `batch` sequences took `mean_step_s` each on average: advances the
    /// moving averages and updates the controller's bounds once.
    pub fn observe_steps(&mut self, steps: u64, batch: u64, mean_step_s: f64) {
        if steps == 0 {
            return;
        }
        let keep = (1.0 - EMA_ALPHA).powf(steps as f64);
        let advance = |old: Option<f64>, x: f64| match old {
            Some(m) => keep * m + (1.0 - keep) * x,
            None => x,
        };
        let tau = advance(self.mean_step_s, mean_step_s);
        let b = advance(self.mean_batch, batch as f64);
        self.mean_step_s = Some(tau);
        self.mean_batch = Some(b);
        let (deadline, margin) = (self.config.tbt_deadline_s, self.config.margin_s);
        let (b_min, b_max) = (f64::from(self.config.min_batch), f64::from(self.max_batch));
        if tau > deadline + margin {
            self.high = self.high.min(b.max(self.low + 4.0));
            self.low = (self.low - 2.0).max(b_min);
        } else if tau < deadline - margin {
            self.low = self.low.max(b.min(self.high - 4.0));
            self.high = (self.high + 2.0).min(b_max);
        } else {
            self.low = b - 1.0;
            self.high = b + 1.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn controller() -> DynamicBatch {
        let config = DynamicBatchConfig {
            min_batch: 1,
            tbt_deadline_s: 0.050,
            margin_s: 0.005,
        };
        DynamicBatch::new(config, 256, 100_000)
    }

    #[test]
    fn memory_bound_follows_the_mean_length() {
        let mut d = controller();
        assert_eq!(d.memory_bound(), 256);
        d.seed_length(1_000);
        // ⌊0.9 × 100,000 / 1,000⌋ = 90.
        assert_eq!(d.memory_bound(), 90);
        d.observe_finished(2_000);
        // EMA 0.8 × 1,000 + 0.2 × 2,000 = 1,200 → ⌊90,000 / 1,200⌋ = 75.
        assert_eq!(d.memory_bound(), 75);
        assert_eq!(d.limit(), 75);
    }

    #[test]
    fn slow_steps_shrink_the_batch_and_fast_steps_grow_it() {
        let mut d = controller();
        let start = d.sla_bound();
        for _ in 0..20 {
            d.observe_steps(10, 128, 0.080);
        }
        let shrunk = d.sla_bound();
        assert!(shrunk < start, "{start} → {shrunk}");
        for _ in 0..200 {
            d.observe_steps(10, u64::from(d.sla_bound()), 0.010);
        }
        assert!(d.sla_bound() > shrunk, "{shrunk} → {}", d.sla_bound());
    }

    #[test]
    fn within_the_margin_the_bounds_close_around_the_batch() {
        let mut d = controller();
        d.observe_steps(1, 40, 0.050);
        assert_eq!((d.low, d.high), (39.0, 41.0));
        assert_eq!(d.sla_bound(), 40);
    }

    #[test]
    fn bad_settings_are_refused() {
        let ok = DynamicBatchConfig {
            min_batch: 1,
            tbt_deadline_s: 0.05,
            margin_s: 0.01,
        };
        assert!(ok.validate(8).is_ok());
        assert!(
            DynamicBatchConfig { min_batch: 9, ..ok }
                .validate(8)
                .is_err()
        );
        assert!(
            DynamicBatchConfig {
                margin_s: 0.06,
                ..ok
            }
            .validate(8)
            .is_err()
        );
        assert!(
            DynamicBatchConfig {
                tbt_deadline_s: 0.0,
                ..ok
            }
            .validate(8)
            .is_err()
        );
    }
}
