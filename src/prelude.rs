//! What a test target with attributed trials uses: `use llm_stress::prelude::*;` brings the
//! trial API ([`Trial`], [`Run`], [`TrialResult`], [`Case`]), the types a case builder takes and
//! `serde_json`'s `json!` for request customisers.

pub use crate::case::{Api, EmbeddedSpec, ServerSpec};
pub use crate::trial::{
    Case, RequestCustomiser, Run, Trial, TrialError, TrialFailure, TrialResult,
};
pub use serde_json::{Value, json};
