//! Why a simulation could not be set up or run.

use std::path::PathBuf;

/// Everything the simulator can refuse, with a message that says what to change.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A hardware or model profile name that is not shipped.
    #[error("unknown {kind} profile `{name}`; known: {known}")]
    UnknownProfile {
        /// `hardware` or `model`.
        kind: &'static str,
        /// The name asked for.
        name: String,
        /// The names that exist, comma-separated.
        known: String,
    },
    /// A setting outside its valid range, or settings that do not fit together.
    #[error("`{key}`: {message}")]
    Invalid {
        /// The offending setting.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// A request pushed into the engine at a virtual time already passed.
    #[error(
        "a request arriving at {arrival_s} s cannot be pushed: the engine is at {now_s} s and \
         the previous arrival was at {previous_s} s (arrivals must come in time order, not before now)"
    )]
    PastArrival {
        /// The arrival time asked for.
        arrival_s: f64,
        /// The engine's virtual time.
        now_s: f64,
        /// The latest arrival pushed before.
        previous_s: f64,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A CSV file that does not have the expected columns or values.
    #[error("{}: {message}", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the row when known.
        message: String,
    },
    /// A YAML configuration that does not parse or fit the schema.
    #[error("{message}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// The parser's message, with the file, position and key when known.
        message: String,
    },
    /// A least-squares fit whose data do not determine the model.
    #[error("cannot fit the step-time model: {0}")]
    Fit(String),
    /// The study's page could not be drawn or written.
    #[error("study.html: {0}")]
    Report(String),
}

impl SimError {
    /// An [`SimError::Invalid`] for `key`.
    pub fn invalid(key: impl Into<String>, message: impl Into<String>) -> SimError {
        SimError::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}
