//! Servers under test: the embedded simulated server, spawned servers (shared by a run's
//! processes through a supervisor, `shared`) and attached servers.

pub mod attach;
pub mod embedded;
pub mod shared;
pub mod spawn;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::case::{ModelSpec, ServerKind, ServerSpec};
use embedded::answers::AnswerKey;
use embedded::thread::ServerThread;

/// Environment variable that points every trial at a running server instead of the case's.
pub const URL_ENV: &str = "LLM_STRESS_URL";

/// Why a server could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The embedded server could not start.
    #[error("embedded server failed to start: {0}")]
    Embedded(#[source] embedded::EmbeddedError),
    /// A spawned server could not be had (missing binary or model, exited, never healthy).
    #[error("spawned server: {0}")]
    Spawn(String),
    /// Nothing healthy answers at the URL.
    #[error("server at {url} is not usable: {reason}")]
    Unreachable {
        /// The URL tried.
        url: String,
        /// What went wrong.
        reason: String,
    },
}

/// A server a trial can send requests to, torn down when dropped or shut down.
pub struct RunningServer {
    /// Base URL, such as `http://127.0.0.1:39123`.
    pub base_url: String,
    /// Model name to put in requests.
    pub served_model: String,
    /// Embedded, spawned or attached.
    pub kind: ServerKind,
    /// What happened on the way up that a report should say (a spawned server restarted).
    pub notes: Vec<String>,
    embedded: Option<ServerThread>,
}

/// What bringing up a server needs besides its spec.
pub struct Surroundings<'a> {
    /// The model spec (its `served_name` is the default model name).
    pub model: &'a ModelSpec,
    /// The questions an embedded server answers.
    pub answers: &'a Arc<AnswerKey>,
    /// The case file's folder (a spawned server's default working folder).
    pub case_dir: &'a Path,
    /// Where a spawned server's log goes.
    pub log_dir: &'a Path,
    /// The session's spawned servers, started here or reused.
    pub spawned: &'a spawn::SpawnedServers,
    /// Environment variables a spawned server does not inherit (the case's API key variable)
    /// unless its own `env` sets them.
    pub hidden_env: &'a [String],
}

impl RunningServer {
    /// Brings up the case's server: starts an embedded one (answering the questions of
    /// `answers`), starts or reuses a spawned one, or health-checks an attached one.
    pub async fn bring_up(
        spec: &ServerSpec,
        around: &Surroundings<'_>,
    ) -> Result<RunningServer, ServerError> {
        let model = around.model;
        let configured_name = model.served_name.clone();
        let server = |base_url: String, served_model: String, kind| RunningServer {
            base_url,
            served_model,
            kind,
            notes: Vec::new(),
            embedded: None,
        };
        match spec {
            ServerSpec::Attach(a) => {
                let listed = attach::check(&a.url, Duration::from_secs(10)).await?;
                let name = a.served_model.clone().or(configured_name).or(listed);
                Ok(server(
                    a.url.clone(),
                    name.unwrap_or_else(|| model.name.clone()),
                    ServerKind::Attach,
                ))
            }
            ServerSpec::Spawn(s) => {
                let acquired = around
                    .spawned
                    .acquire(s, around.case_dir, around.log_dir, around.hidden_env)
                    .await?;
                let name = s
                    .served_model
                    .clone()
                    .or(configured_name)
                    .or(acquired.listed_model);
                let mut running = server(
                    acquired.base_url,
                    name.unwrap_or_else(|| model.name.clone()),
                    ServerKind::Spawn,
                );
                running.notes.extend(acquired.restarted);
                Ok(running)
            }
            ServerSpec::Embedded(e) => {
                let served_model = configured_name.unwrap_or_else(|| model.name.clone());
                let thread = ServerThread::start(
                    e.clone(),
                    served_model.clone(),
                    Arc::clone(around.answers),
                )
                .await
                .map_err(ServerError::Embedded)?;
                let mut running = server(
                    thread.base_url().to_string(),
                    served_model,
                    ServerKind::Embedded,
                );
                running.embedded = Some(thread);
                Ok(running)
            }
        }
    }

    /// Stops the server if it is embedded (spawned servers stay up for later trials until
    /// the session ends, see [`spawn::SpawnedServers`]).
    pub async fn shutdown(self) {
        if let Some(server) = self.embedded {
            server.shutdown().await;
        }
    }
}
