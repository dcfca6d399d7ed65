//! Prompts for load runs: seeded, reproducible, unique per request.
//!
//! - [`exact_prompt`]: synthetic prompts of exactly ISL tokens per a [`TokenCounter`] (a local
//!   `tokenizer.json`, the server's `/tokenize`, or words for the embedded server).
//! - [`load_dataset`]: JSON Lines and ShareGPT datasets.
//! - [`build`]: the prompts of one trial, from either.
//! - [`train_fixture_tokenizer`]: the project's own small tokenizer for tests.

pub mod dataset;
mod error;
pub mod exact;
pub mod fixture;
pub mod lengths;
mod pool;
mod server;
pub mod tokens;
mod words;

pub use dataset::{DatasetEntry, load_conversations, load_dataset};
pub use error::PromptError;
pub use exact::exact_prompt;
pub use fixture::train_fixture_tokenizer;
pub use server::ServerTokenizer;
pub use tokens::{LocalTokenizer, TokenCounter};

use std::path::Path;

use futures_util::{StreamExt, TryStreamExt, stream};

use crate::case::{PromptSource, PromptSpec};
use exact::{exact_prompts_local, exact_prompts_local_each};
use lengths::Which;

/// Prompts built at once (matters for the server counter, whose counts are requests).
const IN_FLIGHT: usize = 8;

/// Which prompts [`build`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    /// Tokens per synthetic prompt.
    pub isl: u32,
    /// Tokens to generate (datasets: for entries that do not say).
    pub osl: u32,
    /// Seed of the run.
    pub seed: u64,
    /// How many prompts.
    pub count: usize,
    /// Index of the first prompt (warmup prompts start far from measured ones).
    pub index_base: u64,
}

/// One prompt of a trial with its lengths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptItem {
    /// The prompt text.
    pub text: String,
    /// Its length in tokens, per the counter.
    pub isl: u32,
    /// Tokens to generate for it.
    pub osl: u32,
}

/// The `count` prompts of a trial, for indices `index_base..index_base + count` (index_base
/// keeps warmup prompts apart from measured ones).
///
/// Synthetic: [`exact_prompt`]s of `isl` tokens with `osl` from the trial, or with
/// `prompts.prefix_tokens`, [`exact::shared_prefix_prompts`]; with `prompts.isl_dist` or
/// `osl_dist`, each index's lengths drawn by [`lengths::draw`] (at most the trial's). Datasets (the path
/// is relative to `case_dir`): the first `count` entries of the file, `osl` being the default
/// OSL of JSONL lines without `output_tokens`; index `i` takes entry `i mod n`, as it is when
/// `i < n`, otherwise (a cycled entry, or any index when `index_base` is past the entries)
/// prefixed with the index words of [`exact_prompt`] so that it is unique from its first token
/// on, and its ISL counted again.
pub async fn build(
    spec: &PromptSpec,
    case_dir: &Path,
    counter: &TokenCounter,
    wanted: &Wanted,
) -> Result<Vec<PromptItem>, PromptError> {
    let Wanted {
        isl,
        osl,
        seed,
        count,
        index_base,
    } = *wanted;
    if count == 0 {
        return Ok(Vec::new());
    }
    let indices = (0..count as u64).map(|i| index_base.wrapping_add(i));
    if let (PromptSource::Synthetic, Some((prefix, groups))) = (spec.source, spec.shared_prefix()) {
        let texts =
            exact::shared_prefix_prompts(counter, prefix, groups, isl, seed, index_base, count)
                .await?;
        return Ok(texts
            .into_iter()
            .map(|text| PromptItem { text, isl, osl })
            .collect());
    }
    if spec.source == PromptSource::Synthetic
        && (spec.isl_dist.is_some() || spec.osl_dist.is_some())
    {
        return spread(spec, counter, wanted).await;
    }
    if spec.source == PromptSource::Synthetic {
        let local = exact_prompts_local(counter, isl, seed, indices.clone().collect()).await;
        if let Some(texts) = local {
            let item = |text| PromptItem { text, isl, osl };
            return texts.map(|texts| texts.into_iter().map(item).collect());
        }
        return stream::iter(indices)
            .map(|index| async move {
                let text = exact_prompt(counter, isl, seed, index).await?;
                Ok(PromptItem { text, isl, osl })
            })
            .buffered(IN_FLIGHT)
            .try_collect()
            .await;
    }
    let path = spec
        .path
        .as_deref()
        .ok_or(PromptError::MissingDatasetPath {
            source_name: spec.source.as_str(),
        })?;
    let entries = load_dataset(spec.source, &case_dir.join(path), counter, osl, count).await?;
    let n = entries.len() as u64;
    stream::iter(indices)
        .map(|index| {
            let entry = &entries[(index % n) as usize];
            async move {
                if index < n {
                    return Ok(PromptItem {
                        text: entry.prompt.clone(),
                        isl: entry.isl,
                        osl: entry.osl,
                    });
                }
                let marker = counter.pool().await?.id_words(seed, index).join(" ");
                let text = format!("{marker} {}", entry.prompt);
                let isl = counter.count(&text).await?;
                Ok(PromptItem {
                    text,
                    isl,
                    osl: entry.osl,
                })
            }
        })
        .buffered(IN_FLIGHT)
        .try_collect()
        .await
}

/// Synthetic prompts whose ISL and/or OSL are drawn per index (`prompts.isl_dist`,
/// `prompts.osl_dist`); the trial's `isl`/`osl` are the nominal lengths, which every draw
/// must fit under.
async fn spread(
    spec: &PromptSpec,
    counter: &TokenCounter,
    wanted: &Wanted,
) -> Result<Vec<PromptItem>, PromptError> {
    let Wanted {
        isl,
        osl,
        seed,
        count,
        index_base,
    } = *wanted;
    for (key, what, dist, nominal) in [
        ("prompts.isl_dist", "ISL", &spec.isl_dist, isl),
        ("prompts.osl_dist", "OSL", &spec.osl_dist, osl),
    ] {
        if let Some(dist) = dist
            && dist.max() > nominal
        {
            return Err(PromptError::DistBeyondNominal {
                key,
                what,
                max: dist.max(),
                nominal,
            });
        }
    }
    let length = |dist: &Option<crate::case::LengthDist>, which, nominal, index| {
        dist.as_ref()
            .map_or(nominal, |d| lengths::draw(d, which, seed, index))
    };
    let wanted: Vec<(u64, u32, u32)> = (0..count as u64)
        .map(|i| {
            let index = index_base.wrapping_add(i);
            (
                index,
                length(&spec.isl_dist, Which::Isl, isl, index),
                length(&spec.osl_dist, Which::Osl, osl, index),
            )
        })
        .collect();
    let pairs = wanted.iter().map(|&(index, isl, _)| (index, isl)).collect();
    let texts = match exact_prompts_local_each(counter, seed, pairs).await {
        Some(texts) => texts?,
        None => {
            stream::iter(wanted.iter().copied())
                .map(|(index, isl, _)| exact_prompt(counter, isl, seed, index))
                .buffered(IN_FLIGHT)
                .try_collect()
                .await?
        }
    };
    Ok(texts
        .into_iter()
        .zip(wanted)
        .map(|(text, (_, isl, osl))| PromptItem { text, isl, osl })
        .collect())
}
