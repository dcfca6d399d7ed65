//! Token counting: a local Hugging Face tokenizer, the server's own `/tokenize` endpoint, or
//! whitespace-separated words (what the embedded server counts).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::OnceCell;

use super::PromptError;
use super::pool::WordPool;
use super::server::ServerTokenizer;

/// Counts the tokens of a text the way the server under test will.
///
/// Cloning is cheap and clones share what was learnt (the word pool of exact prompts, the
/// server's `/tokenize` form).
#[derive(Clone, Debug)]
pub enum TokenCounter {
    /// A local `tokenizer.json`, loaded offline.
    Tokenizer(LocalTokenizer),
    /// The server's `/tokenize` endpoint (vLLM, SGLang or llama.cpp form).
    Server(ServerTokenizer),
    /// Whitespace-separated words: exact for the embedded server only.
    Words,
}

/// A local Hugging Face tokenizer with the word pool learnt from it.
#[derive(Clone)]
pub struct LocalTokenizer {
    tokenizer: Arc<tokenizers::Tokenizer>,
    pool: Arc<OnceCell<Arc<WordPool>>>,
}

impl fmt::Debug for LocalTokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalTokenizer")
            .field("vocab_size", &self.tokenizer.get_vocab_size(true))
            .finish_non_exhaustive()
    }
}

/// The word pool of the [`TokenCounter::Words`] counter, shared by all of them. It is a
/// constant built on first use (the same words in every process, never changed), not state:
/// process-global only so that it is built once.
static WORDS_POOL: OnceCell<Arc<WordPool>> = OnceCell::const_new();

impl TokenCounter {
    /// Loads a Hugging Face `tokenizer.json` (offline).
    pub fn from_file(path: &Path) -> Result<TokenCounter, PromptError> {
        let tokenizer =
            tokenizers::Tokenizer::from_file(path).map_err(|e| PromptError::TokenizerLoad {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        Ok(TokenCounter::Tokenizer(LocalTokenizer {
            tokenizer: Arc::new(tokenizer),
            pool: Arc::default(),
        }))
    }

    /// Counts with the server's `/tokenize` endpoint under `base_url`. vLLM and SGLang:
    /// `POST /tokenize {"model","prompt","add_special_tokens":false}` answering
    /// `{"count":N,"tokens":[..]}`; llama.cpp: `POST /tokenize {"content","add_special":false}`
    /// answering `{"tokens":[..]}`. The vLLM form is tried first; on a 4xx or an answer without
    /// a count the llama.cpp form is tried, and whichever worked is used from then on.
    pub fn server(http: reqwest::Client, base_url: &str, model: &str) -> TokenCounter {
        TokenCounter::Server(ServerTokenizer::new(http, base_url, model))
    }

    /// Whitespace-separated words (what the embedded simulated server counts). Exact for the
    /// embedded server only.
    pub fn words() -> TokenCounter {
        TokenCounter::Words
    }

    /// Tokens of `text` without special tokens (no BOS).
    pub async fn count(&self, text: &str) -> Result<u32, PromptError> {
        match self {
            TokenCounter::Tokenizer(local) => local.count(text).map(saturate),
            TokenCounter::Server(server) => server.count(text).await,
            TokenCounter::Words => Ok(saturate(words(text))),
        }
    }

    /// This counter without network; `None` for the server counter.
    pub(crate) fn offline(&self) -> Option<Offline> {
        match self {
            TokenCounter::Tokenizer(local) => {
                Some(Offline::Tokenizer(Arc::clone(&local.tokenizer)))
            }
            TokenCounter::Server(_) => None,
            TokenCounter::Words => Some(Offline::Words),
        }
    }

    /// Like [`TokenCounter::count`] without network: `Some` for a local tokenizer (unless it
    /// fails to encode) and for words, `None` for the server.
    pub fn count_local(&self, text: &str) -> Option<u64> {
        match self {
            TokenCounter::Tokenizer(local) => local.count(text).ok(),
            TokenCounter::Server(_) => None,
            TokenCounter::Words => Some(words(text)),
        }
    }

    /// Short label for reports: `tokenizer`, `server` or `words`.
    pub fn label(&self) -> &'static str {
        match self {
            TokenCounter::Tokenizer(_) => "tokenizer",
            TokenCounter::Server(_) => "server",
            TokenCounter::Words => "words",
        }
    }

    /// The single-token words of this counter, learnt on first use and kept.
    pub(crate) async fn pool(&self) -> Result<Arc<WordPool>, PromptError> {
        let cell = match self {
            TokenCounter::Tokenizer(local) => &local.pool,
            TokenCounter::Server(server) => server.pool_cell(),
            TokenCounter::Words => &WORDS_POOL,
        };
        cell.get_or_try_init(|| async { WordPool::learn(self).await.map(Arc::new) })
            .await
            .cloned()
    }
}

/// A [`TokenCounter`] that needs no network, to count on other threads.
#[derive(Clone)]
pub(crate) enum Offline {
    Tokenizer(Arc<tokenizers::Tokenizer>),
    Words,
}

impl Offline {
    /// [`TokenCounter::count`], synchronously.
    pub(crate) fn count(&self, text: &str) -> Result<u32, PromptError> {
        match self {
            Offline::Tokenizer(tokenizer) => encode_count(tokenizer, text).map(saturate),
            Offline::Words => Ok(saturate(words(text))),
        }
    }
}

impl LocalTokenizer {
    fn count(&self, text: &str) -> Result<u64, PromptError> {
        encode_count(&self.tokenizer, text)
    }
}

fn encode_count(tokenizer: &tokenizers::Tokenizer, text: &str) -> Result<u64, PromptError> {
    tokenizer
        .encode_fast(text, false)
        .map(|encoding| encoding.len() as u64)
        .map_err(|e| PromptError::Encode {
            chars: text.chars().count(),
            message: e.to_string(),
        })
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

fn saturate(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl crate::client::CountTokens for TokenCounter {
    fn count_tokens(&self, text: &str) -> Option<u64> {
        self.count_local(text)
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case("", 0)]
    #[case("one", 1)]
    #[case("  two\twords\n", 2)]
    #[tokio::test]
    async fn words_count_whitespace_separated_words(#[case] text: &str, #[case] n: u32) {
        let counter = TokenCounter::words();
        assert_eq!(counter.count(text).await.expect("counts"), n);
        assert_eq!(counter.count_local(text), Some(u64::from(n)));
        assert_eq!(counter.label(), "words");
    }

    #[test]
    fn a_missing_tokenizer_file_is_named() {
        let error = TokenCounter::from_file(Path::new("/nonexistent/tokenizer.json"))
            .expect_err("no such file");
        assert!(
            error.to_string().contains("/nonexistent/tokenizer.json"),
            "{error}"
        );
    }

    #[test]
    fn server_counts_need_the_network() {
        let counter = TokenCounter::server(reqwest::Client::new(), "http://127.0.0.1:9", "m");
        assert_eq!(counter.count_local("a b"), None);
        assert_eq!(counter.label(), "server");
    }
}
