//! What can go wrong when calibrating.

use std::path::PathBuf;

use crate::report::ReportError;
use crate::sim::error::SimError;

/// A calibration that could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TwinError {
    /// The run could not be read.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// No load trial of the run matched the filter.
    #[error("no load trial of run `{run}` matches `{filter}`")]
    NoTrials {
        /// The run id.
        run: String,
        /// The filter as given.
        filter: String,
    },
    /// The records do not hold enough of what the fit needs.
    #[error("cannot calibrate: {0}")]
    TooFew(String),
    /// The simulator's fit refused the data.
    #[error(transparent)]
    Sim(#[from] SimError),
    /// The profile could not be written.
    #[error("{}: {source}", path.display())]
    Write {
        /// The profile's path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A what-if scenario could not be evaluated.
    #[error("what-if: {0}")]
    WhatIf(String),
    /// The profile could not be serialised.
    #[error("profile: {0}")]
    Serialise(String),
}
