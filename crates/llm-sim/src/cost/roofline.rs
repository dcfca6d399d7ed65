//! The roofline step-time model.

use super::{Line, StepSeries, StepShape};
use crate::error::SimError;
use crate::profile::{HardwareProfile, ModelProfile};

/// Step time as the slower of compute and memory traffic, plus a fixed overhead:
///
/// `t = max(FLOPs / (eff_c × peak × tp), bytes / (eff_m × bandwidth × tp)) + overhead`
///
/// with, for a step of shape [`StepShape`] (`T = Σ nᵢ` new tokens, `Σ cᵢ` cached tokens):
///
/// - `FLOPs = 2 × parameters × T + 4 × layers × d × Σ nᵢ (cᵢ + (nᵢ + 1) / 2)`: two FLOPs per
///   weight per token for the matrix multiplications, and for attention, per layer, two
///   products (`QKᵀ` and `AV`) of two FLOPs per multiply-add over every causal query–key pair
///   with `d = attention_heads × head_dim`;
/// - `bytes = weight_bytes + kv_bytes_per_token × (Σ cᵢ + T)`: every weight is read once per
///   step, the cached keys and values are read and the new ones written.
///
/// A replica of `tp` GPUs (tensor parallelism) has `tp` times the FLOP/s and the bandwidth;
/// communication is not modelled.
#[derive(Debug, Clone, PartialEq)]
pub struct Roofline {
    /// Effective FLOP/s, `eff_c × peak × tp`.
    pub flops_per_s: f64,
    /// Effective bytes/s, `eff_m × bandwidth × tp`.
    pub bytes_per_s: f64,
    /// Fixed time per step, seconds.
    pub overhead_s: f64,
    /// FLOPs per new token in the matrix multiplications, `2 × parameters`.
    pub flops_per_token: f64,
    /// FLOPs per causal query–key pair, `4 × layers × d`.
    pub flops_per_pair: f64,
    /// Weight bytes read per step.
    pub weight_bytes: f64,
    /// KV-cache bytes per token.
    pub kv_bytes_per_token: f64,
}

impl Roofline {
    /// The roofline of `model` on a replica of `tensor_parallel` × `hardware`.
    pub fn new(hardware: &HardwareProfile, model: &ModelProfile, tensor_parallel: u32) -> Roofline {
        let tp = f64::from(tensor_parallel.max(1));
        Roofline {
            flops_per_s: hardware.compute_efficiency * hardware.peak_flops * tp,
            bytes_per_s: hardware.memory_efficiency * hardware.memory_bandwidth * tp,
            overhead_s: hardware.step_overhead_s,
            flops_per_token: 2.0 * model.parameters,
            flops_per_pair: 4.0 * f64::from(model.layers) * model.attention_width(),
            weight_bytes: model.weight_bytes(),
            kv_bytes_per_token: model.kv_bytes_per_token(),
        }
    }

    /// FLOPs of a step (see the type's documentation).
    pub fn flops(&self, shape: &StepShape) -> f64 {
        self.flops_per_token * shape.new_tokens as f64 + self.flops_per_pair * shape.attention_pairs
    }

    /// Bytes moved by a step (see the type's documentation).
    pub fn bytes(&self, shape: &StepShape) -> f64 {
        self.weight_bytes
            + self.kv_bytes_per_token * (shape.context_tokens + shape.new_tokens) as f64
    }

    /// Seconds one step takes.
    pub fn step_time(&self, shape: &StepShape) -> f64 {
        let compute = self.flops(shape) / self.flops_per_s;
        let memory = self.bytes(shape) / self.bytes_per_s;
        compute.max(memory) + self.overhead_s
    }

    /// Decode steps of `b` sequences from `S` cached tokens: step `k` has `S + b·k` cached
    /// tokens, so its compute line is `(2P·b + 4·layers·d·(S + b + b·k)) / flops_per_s` and its
    /// memory line `(W + kv·(S + b + b·k)) / bytes_per_s`.
    pub fn decode_series(&self, batch: u64, context_tokens: u64) -> StepSeries {
        let (b, s) = (batch as f64, context_tokens as f64);
        StepSeries {
            overhead: self.overhead_s,
            first: Line {
                intercept: (self.flops_per_token * b + self.flops_per_pair * (s + b))
                    / self.flops_per_s,
                slope: self.flops_per_pair * b / self.flops_per_s,
            },
            second: Line {
                intercept: (self.weight_bytes + self.kv_bytes_per_token * (s + b))
                    / self.bytes_per_s,
                slope: self.kv_bytes_per_token * b / self.bytes_per_s,
            },
        }
    }

    /// Checks the rates are positive, so every step takes a positive, finite time.
    pub fn validate(&self) -> Result<(), SimError> {
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if !(positive(self.flops_per_s) && positive(self.bytes_per_s)) {
            return Err(SimError::invalid(
                "cost.roofline",
                "effective FLOP/s and bytes/s must be positive and finite",
            ));
        }
        if !(self.weight_bytes > 0.0 || self.overhead_s > 0.0) {
            return Err(SimError::invalid(
                "cost.roofline",
                "a step with no weights and no overhead would take no time",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smollm2_on_two_cpu_cores_decodes_about_160_tokens_per_second() {
        let hw = HardwareProfile::by_name("cpu-2core").unwrap();
        let model = ModelProfile::by_name("smollm2-135m").unwrap();
        let roofline = Roofline::new(&hw, &model, 1);
        // One stream with 128 tokens of context; four streams of 128 each.
        let one = roofline.step_time(&StepShape::decode(1, 128, 128));
        let four = roofline.step_time(&StepShape::decode(4, 512, 128));
        let (single, batched) = (1.0 / one, 4.0 / four);
        assert!((150.0..170.0).contains(&single), "{single} tok/s");
        assert!((215.0..245.0).contains(&batched), "{batched} tok/s");
    }

    #[test]
    fn tensor_parallel_divides_the_weight_read_time() {
        let hw = HardwareProfile::by_name("h100-sxm").unwrap();
        let model = ModelProfile::by_name("llama-3.1-70b").unwrap();
        let shape = StepShape::decode(1, 0, 0);
        let one = Roofline::new(&hw, &model, 1).step_time(&shape) - hw.step_overhead_s;
        let two = Roofline::new(&hw, &model, 2).step_time(&shape) - hw.step_overhead_s;
        assert!((one / two - 2.0).abs() < 1e-9);
    }
}
