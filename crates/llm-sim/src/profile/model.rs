//! Model profiles: the shape numbers the roofline cost model and the KV cache need.

use serde::{Deserialize, Serialize};

use crate::error::SimError;

/// A decoder-only transformer as the roofline model sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelProfile {
    /// Name the profile is looked up by.
    pub name: String,
    /// Parameter count.
    pub parameters: f64,
    /// Transformer layers.
    pub layers: u32,
    /// Hidden size (model width).
    pub hidden_size: u32,
    /// Query heads.
    pub attention_heads: u32,
    /// Key/value heads (grouped-query attention).
    pub kv_heads: u32,
    /// Dimension of one head.
    pub head_dim: u32,
    /// Bytes per weight (2 for bf16, 0.625 for llama.cpp's Q4_1).
    pub bytes_per_parameter: f64,
    /// Bytes per cached key or value element (2 for bf16/f16).
    pub kv_bytes_per_element: f64,
}

/// Names of the shipped model profiles.
pub const MODEL_NAMES: [&str; 3] = ["llama-3.1-8b", "llama-3.1-70b", "smollm2-135m"];

impl ModelProfile {
    /// A shipped profile (shapes from the models' `config.json`):
    ///
    /// - `llama-3.1-8b`: 8.03 B parameters, 32 layers, hidden 4096, 32 query and 8 KV heads of
    ///   dimension 128, bf16 weights and KV cache.
    /// - `llama-3.1-70b`: 70.6 B parameters, 80 layers, hidden 8192, 64 query and 8 KV heads of
    ///   dimension 128, bf16 (141 GB of weights: it needs tensor parallelism on 80 GB GPUs).
    /// - `smollm2-135m`: 134.5 M parameters, 30 layers, hidden 576, 9 query and 3 KV heads of
    ///   dimension 64, Q4_1 weights (5 bits, 0.625 bytes, per weight) and an f16 KV cache, as
    ///   llama.cpp serves it in this project's CI.
    pub fn by_name(name: &str) -> Result<ModelProfile, SimError> {
        let profile = |parameters: f64,
                       layers: u32,
                       hidden_size: u32,
                       attention_heads: u32,
                       kv_heads: u32,
                       head_dim: u32,
                       bytes_per_parameter: f64| ModelProfile {
            name: name.to_string(),
            parameters,
            layers,
            hidden_size,
            attention_heads,
            kv_heads,
            head_dim,
            bytes_per_parameter,
            kv_bytes_per_element: 2.0,
        };
        match name {
            "llama-3.1-8b" => Ok(profile(8.03e9, 32, 4096, 32, 8, 128, 2.0)),
            "llama-3.1-70b" => Ok(profile(70.6e9, 80, 8192, 64, 8, 128, 2.0)),
            "smollm2-135m" => Ok(profile(134.5e6, 30, 576, 9, 3, 64, 0.625)),
            _ => Err(SimError::UnknownProfile {
                kind: "model",
                name: name.to_string(),
                known: MODEL_NAMES.join(", "),
            }),
        }
    }

    /// Bytes of weights read by every step: `parameters × bytes_per_parameter`.
    pub fn weight_bytes(&self) -> f64 {
        self.parameters * self.bytes_per_parameter
    }

    /// KV-cache bytes per token: `2 (K and V) × layers × kv_heads × head_dim ×
    /// kv_bytes_per_element` (131,072 for Llama-3.1-8B).
    pub fn kv_bytes_per_token(&self) -> f64 {
        2.0 * f64::from(self.layers)
            * f64::from(self.kv_heads)
            * f64::from(self.head_dim)
            * self.kv_bytes_per_element
    }

    /// Width of the attention (query heads × head dimension), the `d` of the attention FLOPs.
    pub fn attention_width(&self) -> f64 {
        f64::from(self.attention_heads) * f64::from(self.head_dim)
    }

    /// Checks every number is finite and positive.
    pub fn validate(&self) -> Result<(), SimError> {
        let numbers = [
            ("parameters", self.parameters),
            ("layers", f64::from(self.layers)),
            ("hidden_size", f64::from(self.hidden_size)),
            ("attention_heads", f64::from(self.attention_heads)),
            ("kv_heads", f64::from(self.kv_heads)),
            ("head_dim", f64::from(self.head_dim)),
            ("bytes_per_parameter", self.bytes_per_parameter),
            ("kv_bytes_per_element", self.kv_bytes_per_element),
        ];
        for (key, value) in numbers {
            if !(value.is_finite() && value > 0.0) {
                return Err(SimError::invalid(
                    format!("model.{key}"),
                    format!("must be a positive number, not {value}"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama_8b_kv_bytes_per_token() {
        let m = ModelProfile::by_name("llama-3.1-8b").unwrap();
        assert_eq!(m.kv_bytes_per_token(), 131_072.0);
        assert_eq!(m.attention_width(), 4096.0);
        assert_eq!(m.weight_bytes(), 16.06e9);
    }

    #[test]
    fn every_shipped_profile_is_valid() {
        for name in MODEL_NAMES {
            ModelProfile::by_name(name).unwrap().validate().unwrap();
        }
    }
}
