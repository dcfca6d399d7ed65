//! The calibrated twin: a simulator profile fitted to a server from black-box runs.
//!
//! - [`observe`]: a trial's per-request records → the decode steps they reveal (batch size,
//!   longest sequence, step time) and the prefills of requests that ran alone.
//! - [`calibrate`]: those observations → the step-time model `llm-sim` runs
//!   (`t(b, L) = α + β·L·(1 + γ(b−1)/b)` or its batch-independent form, the one with the lower
//!   held-out error), intervals, R², the slot count, and the profile (a `SimConfig`).
//! - [`predict`]: a profile and a case's closed-loop trials → predicted trial folders and
//!   `results.csv` rows in the harness's own format.
//! - [`validate`]: calibrate on some trials of a run, predict the others, the error per
//!   held-out trial and metric.
//! - [`whatif`]: a profile under other deployments and loads (replicas and router, K bins,
//!   lengths, burstiness): the knee and the highest rate meeting a TTFT/TPOT objective of each.
//!
//! The fitting itself is `llm-sim`'s ([`crate::sim::cost::fit`]); this module turns a run's
//! records into what it fits.

pub mod calibrate;
mod error;
pub mod observe;
pub mod predict;
pub mod validate;
pub mod whatif;

pub use calibrate::{CalibrateOptions, Calibration, calibrate_run};
pub use error::TwinError;
