//! Hardware and model profiles: the numbers the roofline cost model and the KV-cache capacity
//! are computed from. Shipped profiles are looked up by name.

mod hardware;
mod model;

pub use hardware::{HARDWARE_NAMES, HardwareProfile};
pub use model::{MODEL_NAMES, ModelProfile};

use super::error::SimError;

/// The KV-cache capacity, in tokens, of one replica: what memory is left after the weights,
/// divided by the KV bytes of one token:
///
/// `capacity = ⌊(memory_bytes × tp × memory_utilization − weight_bytes) / kv_bytes_per_token⌋`
///
/// `memory_utilization` is the share of device memory the server may use (vLLM's
/// `gpu_memory_utilization`, default 0.9); activations and CUDA graphs are assumed to fit in the
/// rest. Errors when the weights alone do not fit.
pub fn kv_capacity_tokens(
    hardware: &HardwareProfile,
    model: &ModelProfile,
    tensor_parallel: u32,
    memory_utilization: f64,
) -> Result<u64, SimError> {
    if !(memory_utilization > 0.0 && memory_utilization <= 1.0) {
        return Err(SimError::invalid(
            "memory_utilization",
            format!("must be in (0, 1], not {memory_utilization}"),
        ));
    }
    let usable = hardware.memory_bytes * f64::from(tensor_parallel.max(1)) * memory_utilization;
    let left = usable - model.weight_bytes();
    let tokens = (left / model.kv_bytes_per_token()).floor();
    if tokens < 1.0 {
        return Err(SimError::invalid(
            "model",
            format!(
                "{} needs {:.1} GB for its weights but {} × {} (tensor parallel) at memory \
                 utilization {} has {:.1} GB; use a larger tensor-parallel degree",
                model.name,
                model.weight_bytes() / 1e9,
                tensor_parallel.max(1),
                hardware.name,
                memory_utilization,
                usable / 1e9
            ),
        ));
    }
    Ok(tokens as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama_8b_on_h100_leaves_about_427k_tokens_of_kv() {
        let hw = HardwareProfile::by_name("h100-sxm").unwrap();
        let model = ModelProfile::by_name("llama-3.1-8b").unwrap();
        // (80e9 × 0.9 − 8.03e9 × 2) / (2 × 32 × 8 × 128 × 2) = 55.94e9 / 131072 = 426,788.
        assert_eq!(kv_capacity_tokens(&hw, &model, 1, 0.9).unwrap(), 426_788);
    }

    #[test]
    fn llama_70b_needs_two_h100s() {
        let hw = HardwareProfile::by_name("h100-sxm").unwrap();
        let model = ModelProfile::by_name("llama-3.1-70b").unwrap();
        let err = kv_capacity_tokens(&hw, &model, 1, 0.9).unwrap_err();
        assert!(err.to_string().contains("tensor-parallel"), "{err}");
        assert!(kv_capacity_tokens(&hw, &model, 2, 0.9).unwrap() > 0);
    }

    #[test]
    fn memory_utilization_out_of_range_is_an_error() {
        let hw = HardwareProfile::by_name("h100-sxm").unwrap();
        let model = ModelProfile::by_name("llama-3.1-8b").unwrap();
        assert!(kv_capacity_tokens(&hw, &model, 1, 1.5).is_err());
        assert!(kv_capacity_tokens(&hw, &model, 1, f64::NAN).is_err());
    }
}
