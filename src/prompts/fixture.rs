//! The project's own test tokenizer: a small byte-level BPE (GPT-2 style, as SmolLM2 and many
//! others use) trained on English-like text generated here, so tests need no download.

use std::path::Path;

use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper,
    TokenizerBuilder,
};

use super::{PromptError, words};

/// Vocabulary size of the fixture tokenizer.
const VOCAB: usize = 2000;
/// Sentences of training text.
const SENTENCES: usize = 3000;
/// Seed of the training text.
const SEED: u64 = 0x5EED;

/// Trains a small byte-level BPE tokenizer (vocabulary 2,000) on English-like text this
/// function writes itself (no download) and saves it as `tokenizer.json` at `path`, creating
/// its folder. Deterministic: the same file every time.
pub fn train_fixture_tokenizer(path: &Path) -> Result<(), PromptError> {
    let error = |message: String| PromptError::Fixture {
        path: path.to_path_buf(),
        message,
    };
    let byte_level = ByteLevel::new(false, true, true);
    let mut tokenizer = TokenizerBuilder::<
        BPE,
        NormalizerWrapper,
        PreTokenizerWrapper,
        PostProcessorWrapper,
        DecoderWrapper,
    >::new()
    .with_model(BPE::default())
    .with_pre_tokenizer(Some(byte_level.into()))
    .with_post_processor(Some(byte_level.into()))
    .with_decoder(Some(byte_level.into()))
    .build()
    .map_err(|e| error(e.to_string()))?;
    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(VOCAB)
        .min_frequency(2)
        .show_progress(false)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .special_tokens(vec![AddedToken::from("<|endoftext|>", true)])
        .build();
    tokenizer
        .train(&mut trainer, corpus().into_iter())
        .map_err(|e| error(e.to_string()))?;
    if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder).map_err(|e| error(e.to_string()))?;
    }
    tokenizer
        .save(path, false)
        .map_err(|e| error(e.to_string()))
}

/// Endings some words get, so the text has more distinct words than the vocabulary holds.
const SUFFIXES: &[&str] = &["s", "ed", "ing", "er", "ly", "ness"];

/// Sentences of words drawn with Zipf-like frequencies, some capitalised or suffixed, a few
/// numbers, commas and full stops, one per line: common words get their own tokens, rare
/// words and forms stay split.
fn corpus() -> Vec<String> {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let weights = (1..=words::COMMON.len()).map(|rank| 1.0 / rank as f64);
    let Ok(zipf) = WeightedIndex::new(weights) else {
        return Vec::new();
    };
    (0..SENTENCES)
        .map(|_| {
            let length = rng.random_range(6..16);
            let mut line = String::new();
            for i in 0..length {
                let word = words::COMMON[zipf.sample(&mut rng)];
                if i > 0 {
                    line.push_str(if rng.random_bool(0.08) { ", " } else { " " });
                }
                if rng.random_bool(0.03) {
                    line.push_str(&rng.random_range(0..2000).to_string());
                    continue;
                }
                if rng.random_bool(if i == 0 { 0.5 } else { 0.05 }) {
                    let mut chars = word.chars();
                    line.extend(chars.next().map(|c| c.to_ascii_uppercase()));
                    line.push_str(chars.as_str());
                } else {
                    line.push_str(word);
                }
                if rng.random_bool(0.15) {
                    line.push_str(SUFFIXES[rng.random_range(0..SUFFIXES.len())]);
                }
            }
            line.push('.');
            line
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus_is_english_like_and_fixed() {
        let corpus = corpus();
        assert_eq!(corpus.len(), SENTENCES);
        assert_eq!(corpus, super::corpus());
        assert!(corpus.iter().all(|line| line.ends_with('.')));
    }
}
