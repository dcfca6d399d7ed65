//! Why a session, a trial or a sink could not do its work.

use crate::accuracy::AccuracyError;
use crate::client::ClientError;
use crate::load::SourceError;
use crate::prompts::PromptError;
use crate::report::ReportError;
use crate::server::ServerError;
use crate::sim::error::SimError;

/// Why a trial could not measure: each becomes the reason of its failed `server` check (the
/// trial fails with it as evidence; the run goes on).
#[derive(Debug, thiserror::Error)]
pub enum TrialError {
    /// A load or accuracy trial of a case that names no model spec.
    #[error("the case names no model spec (`model`)")]
    NoModel,
    /// The case's accuracy task could not be read.
    #[error("accuracy: {0}")]
    AccuracyTask(#[source] AccuracyError),
    /// An accuracy trial of a case with no accuracy task.
    #[error("the case has no accuracy task")]
    NoAccuracyTask,
    /// One of the case's servers could not be had.
    #[error("endpoint `{endpoint}`: {source}")]
    Server {
        /// The endpoint's name in the case.
        endpoint: String,
        /// Why.
        source: ServerError,
    },
    /// The case has no server to send to.
    #[error("no server to send to")]
    NoServer,
    /// The API key's environment variable is not set.
    #[error("environment variable `{0}` (client.api_key_env) is not set")]
    ApiKeyEnv(String),
    /// A client could not be built.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The model spec's tokenizer could not be read.
    #[error(transparent)]
    Tokenizer(PromptError),
    /// The prompts could not be made.
    #[error("prompts: {0}")]
    Prompts(#[source] PromptError),
    /// The requests could not be set up (endpoint weights, an empty prompt pool).
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The spool a streamed load's records go to could not be created.
    #[error(transparent)]
    Spool(crate::load::spool::SpoolError),
}

/// Why a sink could not handle an event.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A report could not be written.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// A sim trial's study files could not be written.
    #[error(transparent)]
    Sim(#[from] SimError),
}

/// Why a session could not run a trial or finish.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[from] std::io::Error),
    /// A sink failed (a trial's results could not be written).
    #[error(transparent)]
    Sink(#[from] SinkError),
}
