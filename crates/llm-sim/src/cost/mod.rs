//! Step-time cost models: how long one batch step takes, and a run of decode steps in closed
//! form.
//!
//! - [`Roofline`]: from a hardware and a model profile, the slower of the compute and the
//!   memory time of the step, plus a fixed overhead.
//! - [`FittedCost`]: `t(b, L_max) = α + β · L_max · (1 + γ (b − 1) / b)` with α, β, γ given or
//!   fitted to measurements ([`fit`]).

pub mod fit;
mod fitted;
mod roofline;
mod series;

pub use fitted::FittedCost;
pub use roofline::Roofline;
pub use series::{Line, StepSeries};

use super::error::SimError;

/// The work of one batch step, in aggregate over its sequences. Sequence `i` brings `nᵢ` new
/// tokens (its prompt chunk, or 1 when decoding) on top of `cᵢ` tokens already in its KV cache.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepShape {
    /// Sequences in the step, `b`.
    pub sequences: u64,
    /// New tokens processed, `Σ nᵢ`.
    pub new_tokens: u64,
    /// Tokens already cached and read by attention, `Σ cᵢ`.
    pub context_tokens: u64,
    /// Query–key pairs of causal attention, `Σ nᵢ · (cᵢ + (nᵢ + 1) / 2)`.
    pub attention_pairs: f64,
    /// The longest sequence after the step, `max (cᵢ + nᵢ)`.
    pub max_seq_len: u64,
}

impl StepShape {
    /// Adds sequence `(context, new)` to the step.
    pub fn add(&mut self, context: u64, new: u64) {
        self.sequences += 1;
        self.new_tokens += new;
        self.context_tokens += context;
        self.attention_pairs += new as f64 * (context as f64 + (new as f64 + 1.0) / 2.0);
        self.max_seq_len = self.max_seq_len.max(context + new);
    }

    /// A step of `batch` decoding sequences holding `context_tokens` cached tokens in all, the
    /// longest `max_context`.
    pub fn decode(batch: u64, context_tokens: u64, max_context: u64) -> StepShape {
        StepShape {
            sequences: batch,
            new_tokens: batch,
            context_tokens,
            attention_pairs: context_tokens as f64 + batch as f64,
            max_seq_len: max_context + 1,
        }
    }
}

/// A selectable step-time model.
#[derive(Debug, Clone, PartialEq)]
pub enum CostModel {
    /// The roofline of a hardware and a model profile.
    Roofline(Roofline),
    /// The fitted `α + β · L_max · (1 + γ (b − 1) / b)`.
    Fitted(FittedCost),
}

impl CostModel {
    /// Seconds one step of this shape takes.
    pub fn step_time(&self, shape: &StepShape) -> f64 {
        match self {
            CostModel::Roofline(r) => r.step_time(shape),
            CostModel::Fitted(f) => f.step_time(shape),
        }
    }

    /// The step times of decode steps of `batch` sequences starting from `context_tokens` cached
    /// tokens in all (the longest `max_context`): after `k` steps the cache holds
    /// `context_tokens + batch·k` tokens and the longest sequence `max_context + k`, so step
    /// `k` takes `step_time(StepShape::decode(batch, context_tokens + batch·k, max_context + k))`
    /// exactly — in closed form.
    pub fn decode_series(&self, batch: u64, context_tokens: u64, max_context: u64) -> StepSeries {
        match self {
            CostModel::Roofline(r) => r.decode_series(batch, context_tokens),
            CostModel::Fitted(f) => f.decode_series(batch, max_context),
        }
    }

    /// Checks the model gives every step a positive, finite time.
    pub fn validate(&self) -> Result<(), SimError> {
        match self {
            CostModel::Roofline(r) => r.validate(),
            CostModel::Fitted(f) => f.validate(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{HardwareProfile, ModelProfile};

    fn models() -> Vec<CostModel> {
        let hw = HardwareProfile::by_name("h100-sxm").unwrap();
        let model = ModelProfile::by_name("llama-3.1-8b").unwrap();
        vec![
            CostModel::Roofline(Roofline::new(&hw, &model, 1)),
            CostModel::Fitted(FittedCost {
                alpha: 5e-3,
                beta: 2e-6,
                gamma: 0.7,
                prefill_per_token: 0.0,
            }),
        ]
    }

    #[test]
    fn decode_series_agrees_with_step_by_step_costs() {
        for model in models() {
            for (batch, context, longest) in
                [(1, 100, 100), (64, 64_000, 3_000), (300, 9e5 as u64, 4000)]
            {
                let series = model.decode_series(batch, context, longest);
                let mut total = 0.0;
                for k in 0..200u64 {
                    let shape = StepShape::decode(batch, context + batch * k, longest + k);
                    let t = model.step_time(&shape);
                    assert!((series.step(k) - t).abs() <= 1e-12 * t, "{model:?} k {k}");
                    total += t;
                }
                assert!((series.total(200) - total).abs() <= 1e-9 * total);
            }
        }
    }

    #[test]
    fn shape_of_a_prefill_and_a_decode_together() {
        let mut shape = StepShape::default();
        shape.add(0, 4); // a 4-token prompt: pairs 4 × (0 + 2.5) = 10
        shape.add(9, 1); // a decode at context 9: pairs 1 × (9 + 1) = 10
        assert_eq!(shape.sequences, 2);
        assert_eq!(shape.new_tokens, 5);
        assert_eq!(shape.context_tokens, 9);
        assert_eq!(shape.attention_pairs, 20.0);
        assert_eq!(shape.max_seq_len, 10);
    }
}
