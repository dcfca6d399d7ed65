//! Servers under test: the embedded simulated server and attached servers.

pub mod attach;
pub mod embedded;

use std::sync::Arc;
use std::time::Duration;

use crate::case::{ModelSpec, ServerSpec};
use embedded::answers::AnswerKey;
use embedded::thread::ServerThread;

/// Environment variable that points every trial at a running server instead of the case's.
pub const URL_ENV: &str = "LLM_STRESS_URL";

/// Why a server could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The embedded server could not start.
    #[error("embedded server failed to start: {0}")]
    Embedded(String),
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
    /// `embedded` or `attach`.
    pub label: &'static str,
    embedded: Option<ServerThread>,
}

impl RunningServer {
    /// Brings up the case's server, or attaches to `url_override` (the CLI's `--url` or
    /// `LLM_STRESS_URL`) when given. An embedded server answers the questions of `answers`.
    pub async fn bring_up(
        spec: &ServerSpec,
        model: &ModelSpec,
        url_override: Option<&str>,
        answers: &Arc<AnswerKey>,
    ) -> Result<RunningServer, ServerError> {
        let configured_name = model.served_name.clone();
        let attach_to = |url: &str, name: Option<String>| {
            let url = url.to_string();
            async move {
                let listed = attach::check(&url, Duration::from_secs(10)).await?;
                Ok(RunningServer {
                    served_model: name.or(listed).unwrap_or_else(|| model.name.clone()),
                    base_url: url,
                    label: "attach",
                    embedded: None,
                })
            }
        };
        if let Some(url) = url_override {
            return attach_to(url, configured_name).await;
        }
        match spec {
            ServerSpec::Attach(a) => {
                attach_to(&a.url, a.served_model.clone().or(configured_name)).await
            }
            ServerSpec::Embedded(e) => {
                let served_model = configured_name.unwrap_or_else(|| model.name.clone());
                let server =
                    ServerThread::start(e.clone(), served_model.clone(), Arc::clone(answers))
                        .await
                        .map_err(ServerError::Embedded)?;
                Ok(RunningServer {
                    base_url: server.base_url().to_string(),
                    served_model,
                    label: "embedded",
                    embedded: Some(server),
                })
            }
        }
    }

    /// Stops the server if this process started it.
    pub async fn shutdown(self) {
        if let Some(server) = self.embedded {
            server.shutdown().await;
        }
    }
}
