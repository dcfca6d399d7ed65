//! Per-replica schedulers: which requests run in the next batch step.
//!
//! - `static`: a fixed batch size; a batch runs until its longest request ends, no request
//!   joins it midway.
//! - `continuous`: iteration-level batching; requests join and leave at every step, within a
//!   maximum batch size and a per-step token budget, with optional chunked prefill.
//! - `multi-bin`: requests wait in K bins by predicted output length (equal-mass boundaries);
//!   an idle replica takes a static batch from one bin, bins served round-robin, a bin whose
//!   oldest request has waited `max_wait_s` served even when not full.
//!
//! `continuous` and `multi-bin` can size their batches dynamically ([`dynamic`]).

pub mod bins;
pub mod dynamic;

use serde::{Deserialize, Serialize};

pub use bins::BinBoundaries;
pub use dynamic::{DynamicBatch, DynamicBatchConfig};

use super::error::SimError;

/// A scheduler and its settings.
#[derive(Debug, Clone, PartialEq)]
pub enum SchedulerConfig {
    /// Fixed-size static batches.
    Static(StaticConfig),
    /// Iteration-level (continuous) batching.
    Continuous(ContinuousConfig),
    /// Static batches drawn from bins of predicted output length.
    MultiBin(MultiBinConfig),
}

/// Settings of the `static` scheduler.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StaticConfig {
    /// Requests per batch.
    pub batch_size: u32,
    /// An idle replica starts a batch that is not full once its oldest request has waited this
    /// long (0: at once with whatever is queued), seconds.
    pub max_wait_s: f64,
}

/// Settings of the `continuous` scheduler.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContinuousConfig {
    /// Most sequences in one step.
    pub max_batch: u32,
    /// Most tokens (prompt chunks plus one per decoding sequence) in one step.
    pub token_budget: u32,
    /// Split prompts longer than what is left of the budget over several steps.
    pub chunked_prefill: bool,
    /// Size the batch dynamically (capped by `max_batch`).
    pub dynamic: Option<DynamicBatchConfig>,
}

/// Settings of the `multi-bin` scheduler.
#[derive(Debug, Clone, PartialEq)]
pub struct MultiBinConfig {
    /// Requests per batch (the largest batch when `dynamic`).
    pub batch_size: u32,
    /// Bin boundaries on predicted output length.
    pub boundaries: BinBoundaries,
    /// A bin whose oldest request has waited this long is served even if not full, seconds.
    pub max_wait_s: f64,
    /// Size the batch dynamically (capped by `batch_size`).
    pub dynamic: Option<DynamicBatchConfig>,
}

/// The scheduler families, as named in configurations and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SchedulerKind {
    /// [`SchedulerConfig::Static`].
    Static,
    /// [`SchedulerConfig::Continuous`].
    Continuous,
    /// [`SchedulerConfig::MultiBin`].
    MultiBin,
}

impl SchedulerKind {
    /// Name as configurations and reports write it.
    pub fn as_str(self) -> &'static str {
        match self {
            SchedulerKind::Static => "static",
            SchedulerKind::Continuous => "continuous",
            SchedulerKind::MultiBin => "multi-bin",
        }
    }
}

impl SchedulerConfig {
    /// Which family this is.
    pub fn kind(&self) -> SchedulerKind {
        match self {
            SchedulerConfig::Static(_) => SchedulerKind::Static,
            SchedulerConfig::Continuous(_) => SchedulerKind::Continuous,
            SchedulerConfig::MultiBin(_) => SchedulerKind::MultiBin,
        }
    }

    /// The dynamic batch sizing, when enabled.
    pub fn dynamic(&self) -> Option<&DynamicBatchConfig> {
        match self {
            SchedulerConfig::Static(_) => None,
            SchedulerConfig::Continuous(c) => c.dynamic.as_ref(),
            SchedulerConfig::MultiBin(m) => m.dynamic.as_ref(),
        }
    }

    /// The largest batch the scheduler ever runs.
    pub fn max_batch(&self) -> u32 {
        match self {
            SchedulerConfig::Static(s) => s.batch_size,
            SchedulerConfig::Continuous(c) => c.max_batch,
            SchedulerConfig::MultiBin(m) => m.batch_size,
        }
    }

    /// Checks the settings are in range and consistent.
    pub fn validate(&self) -> Result<(), SimError> {
        if self.max_batch() == 0 {
            return Err(SimError::invalid("batch_size", "must be at least 1"));
        }
        let wait_ok = |w: f64| w.is_finite() && w >= 0.0;
        match self {
            SchedulerConfig::Static(s) if !wait_ok(s.max_wait_s) => Err(SimError::invalid(
                "max_wait_s",
                format!(
                    "must be a finite number of seconds ≥ 0, not {}",
                    s.max_wait_s
                ),
            )),
            SchedulerConfig::MultiBin(m) if !wait_ok(m.max_wait_s) => Err(SimError::invalid(
                "max_wait_s",
                format!(
                    "must be a finite number of seconds ≥ 0, not {}",
                    m.max_wait_s
                ),
            )),
            SchedulerConfig::Continuous(c) if c.token_budget < c.max_batch => {
                Err(SimError::invalid(
                    "token_budget",
                    format!(
                        "{} tokens cannot hold a step of {} decoding sequences; make it at \
                         least max_batch",
                        c.token_budget, c.max_batch
                    ),
                ))
            }
            _ => match self.dynamic() {
                Some(d) => d.validate(self.max_batch()),
                None => Ok(()),
            },
        }
    }
}
