//! What a trial folder records so the trial can be run again as it ran: the case as it was
//! run (after overrides) in `case.yaml`, and in `rerun.json` the crate version, the tested
//! repository's commit, the case and model spec files, the overrides, the seed, the tokenizer
//! and the server.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ReportError;

/// The resolved case, beside `summary.json`.
pub const CASE_FILE: &str = "case.yaml";
/// The rest of what a rerun needs.
pub const RERUN_FILE: &str = "rerun.json";

/// What a rerun needs besides the case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rerun {
    /// The `llm-stress` version that ran the trial.
    pub llm_stress_version: String,
    /// The commit checked out in the cases' repository (`git rev-parse HEAD`), when known.
    pub git_commit: Option<String>,
    /// The case file.
    pub case_file: PathBuf,
    /// The model spec file, when the case names one.
    pub model_file: Option<PathBuf>,
    /// `--set` / `LLM_STRESS_SET` overrides applied, as given.
    pub overrides: Vec<String>,
    /// The seed of prompts, arrivals and endpoint choice.
    pub seed: u64,
    /// The model spec's tokenizer, when it names one.
    pub tokenizer: Option<String>,
    /// The server the trial was attached to (`LLM_STRESS_URL` or the case's `attach`); none
    /// for an embedded or spawned server, which the case itself describes.
    pub url: Option<String>,
}

/// Writes [`CASE_FILE`] and [`RERUN_FILE`] into the trial folder `dir`.
pub fn write(dir: &Path, case_yaml: &str, rerun: &Rerun) -> Result<(), ReportError> {
    let case = dir.join(CASE_FILE);
    std::fs::write(&case, case_yaml).map_err(|e| ReportError::io(&case, "write", e))?;
    let path = dir.join(RERUN_FILE);
    let mut json = serde_json::to_string_pretty(rerun)
        .map_err(|e| ReportError::corrupt(&path, None, e.to_string()))?;
    json.push('\n');
    std::fs::write(&path, json).map_err(|e| ReportError::io(&path, "write", e))
}
