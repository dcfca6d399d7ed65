//! The fitted step-time model.

use serde::{Deserialize, Serialize};

use super::{Line, StepSeries, StepShape};
use crate::error::SimError;

/// `t(b, L_max) = α + β · L_max · (1 + γ (b − 1) / b)`: a fixed cost α, and a cost linear in the
/// longest sequence of the batch `L_max` whose slope β grows with the batch size `b` towards
/// `β (1 + γ)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FittedCost {
    /// Fixed seconds per step.
    pub alpha: f64,
    /// Seconds per token of the longest sequence, at batch size 1.
    pub beta: f64,
    /// How much a full batch raises the per-token slope.
    pub gamma: f64,
}

impl FittedCost {
    /// `1 + γ (b − 1) / b`.
    pub fn batch_factor(&self, batch: u64) -> f64 {
        let b = batch.max(1) as f64;
        1.0 + self.gamma * (b - 1.0) / b
    }

    /// Seconds one step takes, with `L_max` the step's longest sequence after the step.
    pub fn step_time(&self, shape: &StepShape) -> f64 {
        self.alpha + self.beta * shape.max_seq_len as f64 * self.batch_factor(shape.sequences)
    }

    /// Decode steps of `b` sequences, the longest holding `M` tokens: step `k` has
    /// `L_max = M + 1 + k`, a line of slope `β (1 + γ (b − 1) / b)`.
    pub fn decode_series(&self, batch: u64, max_context: u64) -> StepSeries {
        let slope = self.beta * self.batch_factor(batch);
        let line = Line {
            intercept: self.alpha + slope * (max_context + 1) as f64,
            slope,
        };
        StepSeries {
            overhead: 0.0,
            first: line,
            second: line,
        }
    }

    /// Checks α, β ≥ 0 with α + β > 0 and γ > −1, so every step takes a positive time.
    pub fn validate(&self) -> Result<(), SimError> {
        let ok = self.alpha.is_finite()
            && self.beta.is_finite()
            && self.gamma.is_finite()
            && self.alpha >= 0.0
            && self.beta >= 0.0
            && self.alpha + self.beta > 0.0
            && self.gamma > -1.0;
        if ok {
            Ok(())
        } else {
            Err(SimError::invalid(
                "cost.fitted",
                format!(
                    "needs alpha ≥ 0, beta ≥ 0, alpha + beta > 0 and gamma > −1; got alpha {}, \
                     beta {}, gamma {}",
                    self.alpha, self.beta, self.gamma
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case::batch_of_one(1, 1000, 0.010 + 1e-5 * 1000.0)]
    #[case::batch_of_two(2, 1000, 0.010 + 1e-5 * 1000.0 * 1.25)]
    #[case::batch_of_four(4, 500, 0.010 + 1e-5 * 500.0 * 1.375)]
    fn formula(#[case] batch: u64, #[case] longest: u64, #[case] expected: f64) {
        let model = FittedCost {
            alpha: 0.010,
            beta: 1e-5,
            gamma: 0.5,
        };
        let shape = StepShape {
            sequences: batch,
            max_seq_len: longest,
            ..StepShape::default()
        };
        assert!((model.step_time(&shape) - expected).abs() < 1e-15);
    }

    #[rstest]
    #[case(-1.0, 1.0, 0.0)]
    #[case(0.0, 0.0, 0.0)]
    #[case(1.0, 1.0, -1.0)]
    #[case(f64::NAN, 1.0, 0.0)]
    fn invalid_parameters_are_refused(#[case] alpha: f64, #[case] beta: f64, #[case] gamma: f64) {
        assert!(FittedCost { alpha, beta, gamma }.validate().is_err());
    }
}
