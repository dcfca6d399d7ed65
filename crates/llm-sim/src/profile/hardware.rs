//! Accelerator profiles for the roofline cost model.

use serde::{Deserialize, Serialize};

use crate::error::SimError;

/// One accelerator (or a CPU) as the roofline model sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HardwareProfile {
    /// Name the profile is looked up by.
    pub name: String,
    /// Peak dense bf16 throughput, FLOP/s.
    pub peak_flops: f64,
    /// Peak memory bandwidth, bytes/s.
    pub memory_bandwidth: f64,
    /// Device memory, bytes.
    pub memory_bytes: f64,
    /// Share of `peak_flops` a real step reaches (0–1].
    pub compute_efficiency: f64,
    /// Share of `memory_bandwidth` a real step reaches (0–1].
    pub memory_efficiency: f64,
    /// Fixed time every step costs on top of the roofline (scheduling, kernel launches,
    /// sampling), seconds.
    pub step_overhead_s: f64,
}

/// Names of the shipped hardware profiles.
pub const HARDWARE_NAMES: [&str; 4] = ["h100-sxm", "h200", "a100-80gb", "cpu-2core"];

impl HardwareProfile {
    /// A shipped profile:
    ///
    /// - `h100-sxm`: 989 TFLOP/s dense bf16, 3.35 TB/s HBM3, 80 GB (NVIDIA datasheet).
    /// - `h200`: 989 TFLOP/s, 4.8 TB/s HBM3e, 141 GB.
    /// - `a100-80gb`: 312 TFLOP/s, 2.039 TB/s HBM2e, 80 GB (SXM).
    ///
    /// The GPUs share assumed efficiencies of 0.6 (compute) and 0.8 (memory) and a 0.4 ms
    /// per-step overhead, typical of a CUDA-graph decode step in vLLM.
    ///
    /// - `cpu-2core`: two x86 cores running llama.cpp, calibrated to SmolLM2-135M (Q4_1) on
    ///   this project's CI machine, which decodes about 160 tok/s for one stream and about
    ///   230 tok/s with 4 slots: 2 cores × 3 GHz × 32 FLOP/cycle (AVX2 FMA) = 192 GFLOP/s at
    ///   efficiency 0.38, 40 GB/s of DRAM bandwidth at efficiency 0.6, 8 GB of memory and a
    ///   2.5 ms per-step overhead. A 128-token prefill then takes 0.47 s, close to the 0.45 s
    ///   the `smollm2-knee` case measured.
    pub fn by_name(name: &str) -> Result<HardwareProfile, SimError> {
        let gpu = |name: &str, peak_flops: f64, memory_bandwidth: f64, memory_bytes: f64| {
            HardwareProfile {
                name: name.to_string(),
                peak_flops,
                memory_bandwidth,
                memory_bytes,
                compute_efficiency: 0.6,
                memory_efficiency: 0.8,
                step_overhead_s: 0.4e-3,
            }
        };
        match name {
            "h100-sxm" => Ok(gpu(name, 989.4e12, 3.35e12, 80e9)),
            "h200" => Ok(gpu(name, 989.4e12, 4.8e12, 141e9)),
            "a100-80gb" => Ok(gpu(name, 312e12, 2.039e12, 80e9)),
            "cpu-2core" => Ok(HardwareProfile {
                name: name.to_string(),
                peak_flops: 192e9,
                memory_bandwidth: 40e9,
                memory_bytes: 8e9,
                compute_efficiency: 0.38,
                memory_efficiency: 0.6,
                step_overhead_s: 2.5e-3,
            }),
            _ => Err(SimError::UnknownProfile {
                kind: "hardware",
                name: name.to_string(),
                known: HARDWARE_NAMES.join(", "),
            }),
        }
    }

    /// Checks every number is finite and in range.
    pub fn validate(&self) -> Result<(), SimError> {
        let positive = [
            ("peak_flops", self.peak_flops),
            ("memory_bandwidth", self.memory_bandwidth),
            ("memory_bytes", self.memory_bytes),
        ];
        for (key, value) in positive {
            if !(value.is_finite() && value > 0.0) {
                return Err(SimError::invalid(
                    format!("hardware.{key}"),
                    format!("must be a positive number, not {value}"),
                ));
            }
        }
        for (key, value) in [
            ("compute_efficiency", self.compute_efficiency),
            ("memory_efficiency", self.memory_efficiency),
        ] {
            if !(value > 0.0 && value <= 1.0) {
                return Err(SimError::invalid(
                    format!("hardware.{key}"),
                    format!("must be in (0, 1], not {value}"),
                ));
            }
        }
        if !(self.step_overhead_s.is_finite() && self.step_overhead_s >= 0.0) {
            return Err(SimError::invalid(
                "hardware.step_overhead_s",
                format!("must be zero or more, not {}", self.step_overhead_s),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_profile_is_valid() {
        for name in HARDWARE_NAMES {
            HardwareProfile::by_name(name).unwrap().validate().unwrap();
        }
    }

    #[test]
    fn unknown_name_lists_the_known_ones() {
        let err = HardwareProfile::by_name("h300").unwrap_err().to_string();
        assert!(
            err.contains("h100-sxm") && err.contains("cpu-2core"),
            "{err}"
        );
    }
}
