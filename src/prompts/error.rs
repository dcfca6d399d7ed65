//! Why prompts could not be made: each error names the file or endpoint and the problem.

use std::path::PathBuf;

/// An error while counting tokens, loading a dataset or building prompts.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    /// A tokenizer.json could not be read or parsed.
    #[error("cannot load tokenizer {}: {message}", path.display())]
    TokenizerLoad {
        /// The tokenizer file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The local tokenizer failed to encode a text.
    #[error("tokenizer cannot encode a {chars}-character text: {message}")]
    Encode {
        /// Length of the text, in characters.
        chars: usize,
        /// What went wrong.
        message: String,
    },
    /// The server's `/tokenize` endpoint could not be used.
    #[error("{url}: {message}")]
    Server {
        /// The endpoint.
        url: String,
        /// What went wrong (transport error, status and body excerpt, or unexpected body).
        message: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A dataset (or one line of a JSON Lines dataset) is malformed.
    #[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Dataset {
        /// The dataset file.
        path: PathBuf,
        /// 1-based line number, for JSON Lines files.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// A shared prefix as long as the prompt or longer leaves no room for the unique part.
    #[error(
        "prompts.prefix_tokens is {prefix} but the ISL is {isl}: the shared prefix must be \
         shorter than the prompt (the rest is unique to each request)"
    )]
    PrefixTooLong {
        /// Tokens of the shared prefix.
        prefix: u32,
        /// Tokens of the whole prompt.
        isl: u32,
    },
    /// A length distribution reaches past the trial's nominal length (its matrix ISL or OSL).
    #[error(
        "{key} reaches {max} tokens but the trial's {what} is {nominal}: set the matrix's {what} \
         to at least the distribution's `max` (it is the nominal length fitted to the context)"
    )]
    DistBeyondNominal {
        /// `prompts.isl_dist` or `prompts.osl_dist`.
        key: &'static str,
        /// `ISL` or `OSL`.
        what: &'static str,
        /// The distribution's `max`.
        max: u32,
        /// The trial's (fitted) matrix length.
        nominal: u32,
    },
    /// A case asks for a dataset source without giving `prompts.path`.
    #[error("prompts.source is {source_name} but prompts.path is not set")]
    MissingDatasetPath {
        /// The prompt source (`jsonl` or `sharegpt`).
        source_name: &'static str,
    },
    /// No prompt word encodes to a single token under this counter.
    #[error(
        "no word of the built-in list encodes to one token with the {counter} counter; \
         exact-length prompts need single-token words"
    )]
    NoSingleTokenWords {
        /// The counter's label.
        counter: &'static str,
    },
    /// The prompt length could not be made exact.
    #[error(
        "cannot build a prompt of exactly {isl} tokens with the {counter} counter: \
         the closest text had {got} tokens"
    )]
    NotExact {
        /// Tokens asked for.
        isl: u32,
        /// Tokens of the last attempt.
        got: u32,
        /// The counter's label.
        counter: &'static str,
    },
    /// Building was cancelled: the runtime shut down while prompts were being built.
    #[error("prompt building was cancelled: the runtime is shutting down")]
    Cancelled,
    /// The fixture tokenizer could not be trained or saved.
    #[error("cannot train the fixture tokenizer into {}: {message}", path.display())]
    Fixture {
        /// Where it was to be saved.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}
