//! Tokenizer files read once per session and shared by its trials.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use crate::prompts::{PromptError, TokenCounter};

/// The tokenizers a session has read, by file.
#[derive(Debug, Default)]
pub(super) struct TokenizerCache(Mutex<HashMap<PathBuf, TokenCounter>>);

impl TokenizerCache {
    /// The tokenizer in `path`, read the first time it is asked for.
    pub(super) fn get(&self, path: &Path) -> Result<TokenCounter, PromptError> {
        if let Some(counter) = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(path)
        {
            return Ok(counter.clone());
        }
        let counter = TokenCounter::from_file(path)?;
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(path.to_path_buf(), counter.clone());
        Ok(counter)
    }
}
