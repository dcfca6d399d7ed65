//! What a trial sends: the token counter its prompts are measured with, and the prompts.

use std::path::Path;

use super::{Session, TrialError};
use crate::case::LoadedCase;
use crate::client::Generation;
use crate::load;
use crate::plan::LoadTrial;
use crate::prompts::{self, TokenCounter, Wanted};
use crate::server::RunningServer;

/// The token counter a case's prompts are measured with: the server's `/tokenize`
/// (`prompts.use_server_tokenizer`), the model spec's `tokenizer.json`, or words (exact for the
/// embedded server only).
fn token_counter(
    session: &Session,
    case: &LoadedCase,
    tokenizer_http: &reqwest::Client,
    server: &RunningServer,
) -> Result<TokenCounter, TrialError> {
    if case.spec.prompts.use_server_tokenizer {
        return Ok(TokenCounter::server(
            tokenizer_http.clone(),
            &server.base_url,
            &server.served_model,
        ));
    }
    Ok(model_tokenizer(session, case)?.unwrap_or_else(TokenCounter::words))
}

/// The model spec's `tokenizer.json` (relative to the spec file), if it names one.
pub(super) fn model_tokenizer(
    session: &Session,
    case: &LoadedCase,
) -> Result<Option<TokenCounter>, TrialError> {
    let Some(file) = case.model.as_ref().and_then(|m| m.tokenizer.as_ref()) else {
        return Ok(None);
    };
    let dir = case
        .model_path
        .as_deref()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."));
    session
        .tokenizers
        .get(&dir.join(file))
        .map(Some)
        .map_err(TrialError::Tokenizer)
}

/// The prompts a trial sends: measured, warmup, the later turns' user messages of its
/// conversations (`prompts.sessions.user_tokens`; empty without them), and the ShareGPT
/// conversations it replays turn by turn (empty unless it does).
pub(super) struct TrialPrompts {
    pub measured: Vec<Generation>,
    pub warmup: Vec<Generation>,
    pub follow_ups: Vec<Generation>,
    pub replay: Vec<Vec<load::ScriptedTurn>>,
}

/// Builds the measured and warmup prompts (before anything is measured), and gives each
/// endpoint's client the local tokenizer, if any, to count output text with. Their seed is
/// the trial's ([`LoadTrial::prompt_seed`]).
pub(super) async fn prompts_for(
    session: &Session,
    load: &LoadTrial,
    tokenizer_http: &reqwest::Client,
    server: &RunningServer,
) -> Result<TrialPrompts, TrialError> {
    let spec = &load.case.spec;
    let counter = token_counter(session, &load.case, tokenizer_http, server)?;
    let case_dir = load.case.path.parent().unwrap_or(Path::new("."));
    let point = &load.point;
    let c = &point.combination;
    let seed = load.prompt_seed();
    let build = |count: u32, index_base: u64, isl: u32| {
        let counter = &counter;
        async move {
            let wanted = Wanted {
                isl,
                osl: c.osl,
                seed,
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
                .map_err(TrialError::Prompts)
        }
    };
    let measured = build(point.shape.pool_size(), 0, c.isl).await?;
    let warmup_count = load::warmup_pool_size(&spec.load, &point.shape);
    let warmup = if warmup_count == 0 {
        Vec::new()
    } else {
        build(warmup_count, u64::MAX / 2, c.isl).await?
    };
    // Later turns' user messages of their own length: prompts of their own, seeded apart.
    let follow_ups = match spec.prompts.sessions.and_then(|s| s.user_tokens) {
        Some(tokens) => build(point.shape.pool_size(), u64::MAX / 4, tokens).await?,
        None => Vec::new(),
    };
    let replay = if spec.replays_conversations() {
        let path = spec.prompts.path.as_deref().unwrap_or_default();
        let limit = point.shape.pool_size() as usize;
        prompts::load_conversations(&case_dir.join(path), &counter, limit)
            .await
            .map_err(TrialError::Prompts)?
            .into_iter()
            .map(|turns| {
                turns
                    .into_iter()
                    .map(|entry| load::ScriptedTurn {
                        message: Generation::exact(entry.prompt, entry.osl),
                        tokens: entry.isl,
                    })
                    .collect()
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(TrialPrompts {
        measured,
        warmup,
        follow_ups,
        replay,
    })
}
