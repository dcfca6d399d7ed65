//! What a trial folder records so the trial can be run again as it ran: the case as it was
//! run (after overrides) in `case.yaml`, and in `rerun.json` the crate version, the tested
//! repository's commit, the case and model spec files, the overrides, the seed, the tokenizer,
//! the server, and what each server said of itself (`/v1/models`, its `Server` header).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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
    /// What each endpoint's server said of itself when the trial began.
    #[serde(default)]
    pub servers: Vec<ServerIdentity>,
}

/// What a server said of itself: its `/v1/models` answer and its `Server` header.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerIdentity {
    /// The endpoint's name in the case (`default` with one server).
    pub endpoint: String,
    /// The `/v1/models` answer, as JSON (the models served, their ids and, for vLLM, the
    /// maximum model length).
    pub models: Option<serde_json::Value>,
    /// The response's `Server` header (llama.cpp, TGI and others name themselves there).
    pub server_header: Option<String>,
    /// Why there is no answer (a status, a timeout, text that is not JSON).
    pub unavailable: Option<String>,
}

/// [`CASE_FILE`] and [`RERUN_FILE`] as (name, contents), for the trial folder's writer.
pub fn files(
    case_yaml: &str,
    rerun: &Rerun,
) -> Result<Vec<(&'static str, Vec<u8>)>, serde_json::Error> {
    let mut json = serde_json::to_vec_pretty(rerun)?;
    json.push(b'\n');
    Ok(vec![
        (CASE_FILE, case_yaml.as_bytes().to_vec()),
        (RERUN_FILE, json),
    ])
}
