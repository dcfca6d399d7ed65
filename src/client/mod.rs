//! Talking to the server: one shared HTTP client, protocol adapters, and SSE reading with
//! arrival timestamps.

pub mod protocol;
pub mod stream;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::case::Api;
use crate::metrics::record::excerpt;
use crate::metrics::{ErrorClass, RequestRecord};

/// How much of an error body a record keeps.
pub const BODY_EXCERPT_BYTES: usize = 512;

/// One generation request.
#[derive(Debug, Clone)]
pub struct Generation {
    /// The prompt text (sent as one user message on chat endpoints).
    pub prompt: String,
    /// `max_tokens`: the output sequence length asked for.
    pub max_tokens: u32,
}

/// A client for one server: the protocol, the model name and one pooled HTTP client.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base_url: Arc<str>,
    api: Api,
    model: Arc<str>,
    timeout: Duration,
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client: {0}")]
pub struct ClientError(#[from] reqwest::Error);

impl Client {
    /// A client for `base_url` (such as `http://127.0.0.1:8000`) speaking `api`.
    pub fn new(
        base_url: &str,
        api: Api,
        model: &str,
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(usize::MAX)
            .tcp_nodelay(true)
            .no_proxy()
            .build()?;
        Ok(Client {
            http,
            base_url: base_url.trim_end_matches('/').into(),
            api,
            model: model.into(),
            timeout,
        })
    }

    /// Sends one streaming generation request and measures it. Never panics and never returns
    /// an error: every failure is a record with its class and evidence.
    pub async fn generate(
        &self,
        id: u64,
        window_start: Instant,
        request: &Generation,
    ) -> RequestRecord {
        let (path, body) = protocol::request_body(self.api, &self.model, request, true);
        let url = format!("{}{}", self.base_url, path);
        let sent = Instant::now();
        let mut record = RequestRecord {
            id,
            send_ms: ms_between(window_start, sent),
            ..Default::default()
        };
        let deadline = tokio::time::Instant::from_std(sent + self.timeout);
        let response =
            tokio::time::timeout_at(deadline, self.http.post(&url).json(&body).send()).await;
        let response = match response {
            Err(_) => {
                return failed(
                    record,
                    ErrorClass::Timeout,
                    "no response before the timeout",
                );
            }
            Ok(Err(e)) => {
                let class = if e.is_timeout() {
                    ErrorClass::Timeout
                } else {
                    ErrorClass::Connect
                };
                return failed(record, class, &error_chain(&e));
            }
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        record.status = Some(status.as_u16());
        if !status.is_success() {
            let body = tokio::time::timeout_at(deadline, response.text())
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            return failed(
                record,
                ErrorClass::from_status(status.as_u16()),
                &format!("HTTP {status}: {body}"),
            );
        }
        stream::read_stream(response, sent, deadline, record).await
    }
}

/// Milliseconds from `from` to `to` (zero if `to` is earlier).
pub fn ms_between(from: Instant, to: Instant) -> f64 {
    to.saturating_duration_since(from).as_secs_f64() * 1000.0
}

/// Marks a record failed with a bounded excerpt of the evidence.
pub fn failed(mut record: RequestRecord, class: ErrorClass, detail: &str) -> RequestRecord {
    record.error = Some(class);
    record.error_detail = Some(excerpt(detail, BODY_EXCERPT_BYTES));
    record
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
