//! What a trial sends: the token counter its prompts are measured with, and the prompts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use super::{MatrixPoint, TrialPlan};
use crate::client::Generation;
use crate::load;
use crate::prompts::{self, TokenCounter, Wanted};
use crate::server::RunningServer;

/// The token counter a case's prompts are measured with: the server's `/tokenize`
/// (`prompts.use_server_tokenizer`), the model spec's `tokenizer.json`, or words (exact for the
/// embedded server only).
fn token_counter(
    plan: &TrialPlan,
    tokenizer_http: &reqwest::Client,
    server: &RunningServer,
) -> Result<TokenCounter, String> {
    let case = &plan.case;
    if case.spec.prompts.use_server_tokenizer {
        return Ok(TokenCounter::server(
            tokenizer_http.clone(),
            &server.base_url,
            &server.served_model,
        ));
    }
    Ok(model_tokenizer(plan)?.unwrap_or_else(TokenCounter::words))
}

/// The model spec's `tokenizer.json` (relative to the spec file), if it names one.
pub(super) fn model_tokenizer(plan: &TrialPlan) -> Result<Option<TokenCounter>, String> {
    let case = &plan.case;
    let Some(file) = case.model.as_ref().and_then(|m| m.tokenizer.as_ref()) else {
        return Ok(None);
    };
    let dir = case
        .model_path
        .as_deref()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."));
    cached_tokenizer(&dir.join(file)).map(Some)
}

/// Tokenizer files are read once per process and shared by its trials.
fn cached_tokenizer(path: &Path) -> Result<TokenCounter, String> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, TokenCounter>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(counter) = cache.lock().ok().and_then(|c| c.get(path).cloned()) {
        return Ok(counter);
    }
    let counter = TokenCounter::from_file(path).map_err(|e| e.to_string())?;
    if let Ok(mut cache) = cache.lock() {
        cache.insert(path.to_path_buf(), counter.clone());
    }
    Ok(counter)
}

/// The prompts' seed: the case's, mixed with the trial's kind and name, so that no two trials
/// send the same prompts. A server that caches prompts (llama.cpp's slots, vLLM's prefix cache)
/// would otherwise skip the prefill of every trial after the first, and TTFT would not
/// include it.
fn trial_prompt_seed(seed: u64, plan: &TrialPlan) -> u64 {
    let name = format!("[{}] {}", plan.kind.as_str(), plan.name());
    name.bytes().fold(seed ^ 0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Builds the measured and warmup prompts (before anything is measured), and gives each
/// endpoint's client the local tokenizer, if any, to count output text with.
pub(super) async fn prompts_for(
    plan: &TrialPlan,
    point: &MatrixPoint,
    tokenizer_http: &reqwest::Client,
    server: &RunningServer,
) -> Result<(Vec<Generation>, Vec<Generation>), String> {
    let spec = &plan.case.spec;
    let counter = token_counter(plan, tokenizer_http, server)?;
    let case_dir = plan.case.path.parent().unwrap_or(Path::new("."));
    let c = &point.combination;
    let build = |count: u32, index_base: u64| {
        let counter = &counter;
        async move {
            let wanted = Wanted {
                isl: c.isl,
                osl: c.osl,
                seed: trial_prompt_seed(spec.load.seed, plan),
                count: count as usize,
                index_base,
            };
            prompts::build(&spec.prompts, case_dir, counter, &wanted)
                .await
                .map(|items| {
                    items
                        .into_iter()
                        .map(|item| Generation::exact(item.text, item.osl))
                        .collect::<Vec<_>>()
                })
                .map_err(|e| format!("prompts: {e}"))
        }
    };
    let measured = build(point.shape.pool_size(), 0).await?;
    let warmup_count = load::warmup_pool_size(&spec.load, &point.shape);
    let warmup = if warmup_count == 0 {
        Vec::new()
    } else {
        build(warmup_count, u64::MAX / 2).await?
    };
    Ok((measured, warmup))
}
