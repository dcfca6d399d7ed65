//! The fitted step-time model.

use serde::{Deserialize, Serialize};

use super::{Line, StepSeries, StepShape};
use crate::error::SimError;

/// `t(b, L_max) = α + β · L_max · (1 + γ (b − 1) / b)`: a fixed cost α, and a cost linear in the
/// longest sequence of the batch `L_max` whose slope β grows with the batch size `b` towards
/// `β (1 + γ)`; plus, optionally, `π` per prefilled token past one per sequence.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FittedCost {
    /// Fixed seconds per step.
    pub alpha: f64,
    /// Seconds per token of the longest sequence, at batch size 1.
    pub beta: f64,
    /// How much a full batch raises the per-token slope.
    pub gamma: f64,
    /// π: seconds per prompt token beyond what `α + β·L` already charges, on a step's new
    /// tokens past one per sequence (prefill: a prompt of `P` tokens adds `π·(P − 1)`; a
    /// decode step nothing). Fitted from the TTFT of requests that ran alone when the data
    /// determines it; 0, the default, and left out of a profile, otherwise.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub prefill_per_token: f64,
}

/// Whether a value is 0 (π is left out of a profile then).
fn is_zero(value: &f64) -> bool {
    *value == 0.0
}

impl FittedCost {
    /// `1 + γ (b − 1) / b`.
    pub fn batch_factor(&self, batch: u64) -> f64 {
        let b = batch.max(1) as f64;
        1.0 + self.gamma * (b - 1.0) / b
    }

    /// Seconds one step takes, with `L_max` the step's longest sequence after the step.
    pub fn step_time(&self, shape: &StepShape) -> f64 {
        self.alpha
            + self.beta * shape.max_seq_len as f64 * self.batch_factor(shape.sequences)
            + self.prefill_per_token * shape.new_tokens.saturating_sub(shape.sequences) as f64
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

    /// Checks α, β ≥ 0 with α + β > 0, γ > −1 and β + π ≥ 0, so every step takes a positive
    /// time and a longer prompt never a shorter one.
    pub fn validate(&self) -> Result<(), SimError> {
        let ok = self.alpha.is_finite()
            && self.beta.is_finite()
            && self.gamma.is_finite()
            && self.prefill_per_token.is_finite()
            && self.alpha >= 0.0
            && self.beta >= 0.0
            && self.alpha + self.beta > 0.0
            && self.gamma > -1.0
            && self.beta + self.prefill_per_token >= 0.0;
        if ok {
            Ok(())
        } else {
            Err(SimError::invalid(
                "cost.fitted",
                format!(
                    "needs alpha ≥ 0, beta ≥ 0, alpha + beta > 0, gamma > −1 and \
                     beta + prefill_per_token ≥ 0; got alpha {}, beta {}, gamma {}, \
                     prefill_per_token {}",
                    self.alpha, self.beta, self.gamma, self.prefill_per_token
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
            prefill_per_token: 0.0,
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
        assert!(
            FittedCost {
                alpha,
                beta,
                gamma,
                prefill_per_token: 0.0
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn pi_charges_prefilled_tokens_past_one_per_sequence_and_nothing_on_decode() {
        let base = FittedCost {
            alpha: 0.004,
            beta: 8e-6,
            gamma: 1.0,
            prefill_per_token: 0.0,
        };
        let with_pi = FittedCost {
            prefill_per_token: 2e-6,
            ..base
        };
        let mut prefill = StepShape::default();
        prefill.add(0, 512);
        let extra = with_pi.step_time(&prefill) - base.step_time(&prefill);
        assert!((extra - 2e-6 * 511.0).abs() < 1e-15, "{extra}");
        let decode = StepShape::decode(4, 2000, 600);
        assert_eq!(with_pi.step_time(&decode), base.step_time(&decode));
        // A prefill cheaper per token than β·L is allowed, a negative total slope is not.
        assert!(
            FittedCost {
                prefill_per_token: -4e-6,
                ..base
            }
            .validate()
            .is_ok()
        );
        assert!(
            FittedCost {
                prefill_per_token: -9e-6,
                ..base
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn a_profile_without_pi_loads_and_pi_is_written_only_when_set() {
        let old: FittedCost =
            serde_json::from_str(r#"{"alpha": 0.004, "beta": 8.0e-6, "gamma": 1.0}"#)
                .expect("loads");
        assert_eq!(old.prefill_per_token, 0.0);
        let text = serde_json::to_string(&old).expect("writes");
        assert!(!text.contains("prefill_per_token"), "{text}");
        let with_pi = FittedCost {
            prefill_per_token: 3e-6,
            ..old
        };
        let text = serde_json::to_string(&with_pi).expect("writes");
        let back: FittedCost = serde_json::from_str(&text).expect("loads");
        assert_eq!(back, with_pi);
    }
}
