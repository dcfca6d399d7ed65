//! A simulation's settings, from YAML or flags, and how they become an engine and a workload.
//!
//! ```yaml
//! replicas: 4
//! router: least-outstanding          # or round-robin
//! scheduler:
//!   kind: multi-bin                  # static | continuous | multi-bin
//!   batch_size: 64                   # static and multi-bin batch; continuous max batch
//!   bins: 4                          # multi-bin
//!   max_wait_s: 1.0                  # static and multi-bin
//!   token_budget: 8192               # continuous
//!   chunked_prefill: false           # continuous
//!   dynamic: { min_batch: 1, tbt_deadline_s: 0.05, margin_s: 0.005 }   # optional
//! hardware: h100-sxm
//! model: llama-3.1-8b
//! tensor_parallel: 1
//! cost: roofline                     # or { fitted: { alpha: 0.006, beta: 2.0e-7, gamma: 1.5 } }
//!                                    # or { fitted_csv: steps.csv }
//! kv: { block_size: 16, memory_utilization: 0.9 }   # capacity_tokens overrides the profile
//! workload:
//!   requests: 10000
//!   arrival: { poisson: { rate: 20 } }
//!   prompt: { uniform: { min: 128, max: 1024 } }
//!   output: { exponential: { mean: 500 } }
//!   prediction_sigma: 0.3
//!   seed: 1
//! sla: { tpot_s: 0.05, e2e_s: 60 }
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::cost::{CostModel, FittedCost, Roofline, fit};
use super::engine::{EngineConfig, SimRun, simulate};
use super::error::SimError;
use super::kv::KvGeometry;
use super::metrics::{SimSummary, Sla};
use super::profile::{HardwareProfile, ModelProfile, kv_capacity_tokens};
use super::router::Router;
use super::scheduler::{
    BinBoundaries, ContinuousConfig, DynamicBatchConfig, MultiBinConfig, SchedulerConfig,
    SchedulerKind, StaticConfig,
};
use super::workload::{Arrival, Lengths, WorkloadSpec};

/// Predicted lengths drawn to place the multi-bin boundaries.
pub const CALIBRATION_SAMPLE: usize = 10_000;

/// Which scheduler, with its settings (those of other schedulers are ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerSpec {
    /// The scheduler.
    pub kind: SchedulerKind,
    /// Batch size (static, multi-bin) or maximum batch size (continuous).
    pub batch_size: u32,
    /// Continuous: most tokens per step.
    pub token_budget: u32,
    /// Continuous: split long prompts over steps.
    pub chunked_prefill: bool,
    /// Static and multi-bin: serve a batch that is not full once its oldest request waited
    /// this long; default 0 (static) and 1 s (multi-bin).
    pub max_wait_s: Option<f64>,
    /// Multi-bin: number of bins K.
    pub bins: usize,
    /// Continuous and multi-bin: dynamic batch size.
    pub dynamic: Option<DynamicBatchConfig>,
}

impl Default for SchedulerSpec {
    fn default() -> Self {
        SchedulerSpec {
            kind: SchedulerKind::Continuous,
            batch_size: 256,
            token_budget: 8192,
            chunked_prefill: false,
            max_wait_s: None,
            bins: 4,
            dynamic: None,
        }
    }
}

/// Which step-time model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum CostSpec {
    /// The roofline of `hardware` and `model`.
    Roofline,
    /// `α + β · L_max · (1 + γ (b − 1) / b)` with these parameters.
    Fitted(FittedCost),
    /// The fitted model, fitted to this CSV of (batch_size, max_seq_len, latency_s|latency_ms)
    /// measurements (a relative path is relative to the configuration file).
    FittedCsv(PathBuf),
}

/// The KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KvSpec {
    /// Tokens per block (1 counts tokens).
    pub block_size: u32,
    /// Share of device memory for weights and KV cache.
    pub memory_utilization: f64,
    /// Capacity in tokens per replica, instead of what the profiles leave.
    pub capacity_tokens: Option<u64>,
}

impl Default for KvSpec {
    fn default() -> Self {
        KvSpec {
            block_size: 16,
            memory_utilization: 0.9,
            capacity_tokens: None,
        }
    }
}

/// One simulation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// Replicas.
    pub replicas: usize,
    /// Router (ignored by multi-bin, whose bins all replicas share).
    pub router: Router,
    /// Scheduler.
    pub scheduler: SchedulerSpec,
    /// Hardware profile name.
    pub hardware: String,
    /// Model profile name.
    pub model: String,
    /// GPUs per replica.
    pub tensor_parallel: u32,
    /// Step-time model.
    pub cost: CostSpec,
    /// KV cache.
    pub kv: KvSpec,
    /// Requests.
    pub workload: WorkloadSpec,
    /// Deadlines for the violation rates.
    pub sla: Sla,
}

impl Default for SimConfig {
    /// One H100 serving Llama-3.1-8B with continuous batching, 1,000 Poisson requests at
    /// 10/s, prompts uniform on [128, 1024], outputs exponential of mean 500.
    fn default() -> Self {
        SimConfig {
            replicas: 1,
            router: Router::RoundRobin,
            scheduler: SchedulerSpec::default(),
            hardware: "h100-sxm".to_string(),
            model: "llama-3.1-8b".to_string(),
            tensor_parallel: 1,
            cost: CostSpec::Roofline,
            kv: KvSpec::default(),
            workload: WorkloadSpec {
                requests: 1000,
                arrival: Arrival::Poisson { rate: 10.0 },
                prompt: Lengths::Uniform {
                    min: 128,
                    max: 1024,
                },
                output: Lengths::Exponential {
                    mean: 500.0,
                    max: Some(8192),
                },
                prediction_sigma: 0.0,
                seed: 0,
            },
            sla: Sla::default(),
        }
    }
}

/// The result of [`SimConfig::run`].
#[derive(Debug, Clone)]
pub struct SimResult {
    /// The summary.
    pub summary: SimSummary,
    /// Every request's outcome and the engine's counters.
    pub run: SimRun,
}

impl SimConfig {
    /// Reads a YAML configuration; a relative `fitted_csv` path becomes relative to the file.
    pub fn load(path: &Path) -> Result<SimConfig, SimError> {
        let text = std::fs::read_to_string(path).map_err(|source| SimError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config: SimConfig =
            llm_stress_base::yaml::parse_yaml(path, &text).map_err(|e| SimError::Yaml {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        if let CostSpec::FittedCsv(csv) = &mut config.cost
            && csv.is_relative()
        {
            *csv = path.parent().unwrap_or(Path::new(".")).join(&*csv);
        }
        Ok(config)
    }

    fn profiles(&self) -> Result<(HardwareProfile, ModelProfile), SimError> {
        let hardware = HardwareProfile::by_name(&self.hardware)?;
        let model = ModelProfile::by_name(&self.model)?;
        hardware.validate()?;
        model.validate()?;
        Ok((hardware, model))
    }

    /// The step-time model.
    pub fn cost_model(&self) -> Result<CostModel, SimError> {
        Ok(match &self.cost {
            CostSpec::Roofline => {
                let (hardware, model) = self.profiles()?;
                CostModel::Roofline(Roofline::new(&hardware, &model, self.tensor_parallel))
            }
            CostSpec::Fitted(f) => CostModel::Fitted(*f),
            CostSpec::FittedCsv(path) => CostModel::Fitted(fit::fit_csv(path)?.model),
        })
    }

    /// The KV cache of one replica.
    pub fn kv_geometry(&self) -> Result<KvGeometry, SimError> {
        let tokens = match self.kv.capacity_tokens {
            Some(tokens) => tokens,
            None => {
                let (hardware, model) = self.profiles()?;
                kv_capacity_tokens(
                    &hardware,
                    &model,
                    self.tensor_parallel,
                    self.kv.memory_utilization,
                )?
            }
        };
        KvGeometry::from_tokens(tokens, self.kv.block_size)
    }

    /// The scheduler, with multi-bin boundaries at the equal-mass quantiles of
    /// [`CALIBRATION_SAMPLE`] predicted lengths drawn from the workload's distribution.
    pub fn scheduler_config(&self) -> Result<SchedulerConfig, SimError> {
        let s = &self.scheduler;
        Ok(match s.kind {
            SchedulerKind::Static => SchedulerConfig::Static(StaticConfig {
                batch_size: s.batch_size,
                max_wait_s: s.max_wait_s.unwrap_or(0.0),
            }),
            SchedulerKind::Continuous => SchedulerConfig::Continuous(ContinuousConfig {
                max_batch: s.batch_size,
                token_budget: s.token_budget,
                chunked_prefill: s.chunked_prefill,
                dynamic: s.dynamic,
            }),
            SchedulerKind::MultiBin => {
                let sample = self.workload.predicted_sample(CALIBRATION_SAMPLE)?;
                SchedulerConfig::MultiBin(MultiBinConfig {
                    batch_size: s.batch_size,
                    boundaries: BinBoundaries::equal_mass(s.bins, &sample)?,
                    max_wait_s: s.max_wait_s.unwrap_or(1.0),
                    dynamic: s.dynamic,
                })
            }
        })
    }

    /// The engine configuration.
    pub fn engine_config(&self) -> Result<EngineConfig, SimError> {
        let config = EngineConfig {
            replicas: self.replicas,
            router: self.router,
            scheduler: self.scheduler_config()?,
            cost: self.cost_model()?,
            kv: self.kv_geometry()?,
        };
        config.validate()?;
        self.sla_valid()?;
        Ok(config)
    }

    fn sla_valid(&self) -> Result<(), SimError> {
        for (key, value) in [
            ("sla.tpot_s", self.sla.tpot_s),
            ("sla.e2e_s", self.sla.e2e_s),
        ] {
            if value.is_nan() || value <= 0.0 {
                return Err(SimError::invalid(
                    key,
                    format!("must be positive, not {value}"),
                ));
            }
        }
        Ok(())
    }

    /// Generates the workload, simulates it and summarises the run.
    pub fn run(&self) -> Result<SimResult, SimError> {
        let engine = self.engine_config()?;
        let requests = self.workload.generate()?;
        let run = simulate(&engine, &requests)?;
        Ok(SimResult {
            summary: SimSummary::from_run(&run, &self.sla),
            run,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("llm-stress-simcfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_yaml_configuration_runs() {
        let path = write(
            "ok.yaml",
            "replicas: 2\nrouter: least-outstanding\nscheduler: { kind: multi-bin, batch_size: 8, bins: 2 }\n\
             workload:\n  requests: 200\n  arrival: { poisson: { rate: 5 } }\n  prompt: { fixed: 100 }\n  \
             output: { uniform: { min: 10, max: 200 } }\n",
        );
        let config = SimConfig::load(&path).unwrap();
        let result = config.run().unwrap();
        assert_eq!(result.summary.completed, 200);
        assert_eq!(
            config.scheduler_config().unwrap().kind(),
            SchedulerKind::MultiBin
        );
    }

    #[test]
    fn unknown_keys_and_profiles_are_named() {
        let path = write("typo.yaml", "replica: 2\n");
        let err = SimConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("replica") && err.contains("replicas"), "{err}");
        let config = SimConfig {
            hardware: "tpu".to_string(),
            ..SimConfig::default()
        };
        assert!(
            config
                .engine_config()
                .unwrap_err()
                .to_string()
                .contains("h100-sxm")
        );
    }

    #[test]
    fn a_fitted_csv_is_read_relative_to_the_configuration() {
        let mut csv = String::from("batch_size,max_seq_len,latency_ms\n");
        for b in [1u64, 4, 16] {
            for l in [100u64, 1000, 4000] {
                let t = 5.0 + 0.001 * l as f64 * (1.0 + 0.5 * (b - 1) as f64 / b as f64);
                csv.push_str(&format!("{b},{l},{t}\n"));
            }
        }
        write("steps.csv", &csv);
        let path = write("fitted.yaml", "cost: { fitted_csv: steps.csv }\n");
        let CostModel::Fitted(f) = SimConfig::load(&path).unwrap().cost_model().unwrap() else {
            panic!("not fitted");
        };
        assert!(
            (f.alpha - 0.005).abs() < 1e-9 && (f.gamma - 0.5).abs() < 1e-4,
            "{f:?}"
        );
    }
}
