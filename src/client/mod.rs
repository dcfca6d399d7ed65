//! Talking to the server: one shared HTTP client, protocol adapters, and SSE reading with
//! arrival timestamps.

pub mod arrival;
pub mod h1;
pub mod protocol;
pub mod secrets;
pub mod sse;
pub mod stream;
pub mod tool_calls;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::case::{Api, Transport};
use crate::metrics::record::excerpt;
use crate::metrics::{ErrorClass, RequestRecord};

/// How much of an error body a record keeps.
pub const BODY_EXCERPT_BYTES: usize = 512;

/// How much of an error body is read (the rest is never read): enough to redact a secret that
/// crosses the excerpt's cut before cutting.
pub const ERROR_BODY_READ_BYTES: usize = 8 * BODY_EXCERPT_BYTES;

/// Most bytes of a whole JSON answer [`Client::post_json`] reads (an echoed prompt with its
/// logprobs is a few hundred bytes a token).
const JSON_ANSWER_BYTES: usize = 64 << 20;

/// Most bytes of failure evidence held before the secrets are redacted and the excerpt is
/// cut.
const DETAIL_HOLD_BYTES: usize = 64 * 1024;

/// One generation request.
#[derive(Debug, Clone)]
pub struct Generation {
    /// The prompt text (sent as one user message on chat endpoints unless `turns` is given).
    pub prompt: String,
    /// Chat endpoints: the whole conversation, when it is more than `prompt` as one user
    /// message (few-shot examples as turns). Ignored by the other endpoints.
    pub turns: Vec<Turn>,
    /// `max_tokens`: the output sequence length asked for (or allowed).
    pub max_tokens: u32,
    /// Whether generation runs to exactly `max_tokens` or stops where the model stops.
    pub ending: Ending,
    /// Keep the answer's text in the record even for an exact-length request (a
    /// conversation's next turn carries it).
    pub keep_text: bool,
    /// Chat endpoints: the tools offered and the `tool_choice` (the `tool_calls` task).
    pub tools: Option<Arc<ToolRequest>>,
}

/// The tools a chat request offers (OpenAI function schemas) and its `tool_choice`.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolRequest {
    /// The `tools` list.
    pub tools: serde_json::Value,
    /// The `tool_choice`: `auto`, `none`, `required` or a named function.
    pub tool_choice: serde_json::Value,
}

impl Generation {
    /// A load request: exactly `max_tokens` tokens for `prompt`.
    pub fn exact(prompt: String, max_tokens: u32) -> Generation {
        Generation {
            prompt,
            turns: Vec::new(),
            max_tokens,
            ending: Ending::Exact,
            keep_text: false,
            tools: None,
        }
    }
}

/// How a generation ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Exactly `max_tokens` tokens (`ignore_eos`): load requests, whose lengths are the
    /// combination's. The text is not kept.
    Exact,
    /// Where the model stops: end of sequence, one of these stop sequences, or `max_tokens`.
    /// The text is kept in the record (answers that are scored).
    Natural {
        /// Stop sequences sent to the server.
        stop: Vec<String>,
    },
}

/// One message of a chat conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    /// Who says it.
    pub role: Role,
    /// What is said.
    pub content: String,
}

/// The speaker of a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The user.
    User,
    /// The model.
    Assistant,
}

impl Role {
    /// The role's name in the OpenAI API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// Counts tokens of generated text locally (a tokenizer), for servers that report no usage
/// and to check the counts of those that do.
pub trait CountTokens: Send + Sync + std::fmt::Debug {
    /// Tokens in `text`, or `None` when this counter cannot count without the network.
    fn count_tokens(&self, text: &str) -> Option<u64>;
}

/// Everything a client needs to know about one server.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URL, such as `http://127.0.0.1:8000`.
    pub base_url: String,
    /// Protocol.
    pub api: Api,
    /// Model name put in requests.
    pub model: String,
    /// Per-request timeout, from send to the end of the response.
    pub timeout: Duration,
    /// Stream responses (SSE).
    pub stream: bool,
    /// Extra headers sent with every request.
    pub headers: Vec<(String, String)>,
    /// Sent as `Authorization: Bearer …`; redacted from every recorded error.
    pub api_key: Option<String>,
    /// Local token counter for output text.
    pub tokenizer: Option<Arc<dyn CountTokens>>,
    /// Reuse connections between requests (keep-alive).
    pub keep_alive: bool,
    /// Fields merged into every request body (`tools`, `response_format`, `logprobs`: a
    /// trial's request customiser); when set, every answer's text is kept in its record.
    pub extra_body: Option<Arc<serde_json::Map<String, serde_json::Value>>>,
    /// Most bytes of one SSE line or event (a longer one is a `protocol` error).
    pub max_event_bytes: usize,
    /// Counts the body reads of this client's streams (the client benchmark's reads per
    /// chunk); none by default.
    pub reads: Option<Arc<stream::ReadCounter>>,
    /// How streamed requests reach the server.
    pub transport: Transport,
}

impl ClientConfig {
    /// A streaming client configuration with no extra headers, key or tokenizer.
    pub fn new(base_url: &str, api: Api, model: &str, timeout: Duration) -> ClientConfig {
        ClientConfig {
            base_url: base_url.to_string(),
            api,
            model: model.to_string(),
            timeout,
            stream: true,
            headers: Vec::new(),
            api_key: None,
            tokenizer: None,
            keep_alive: true,
            extra_body: None,
            max_event_bytes: sse::MAX_EVENT_BYTES,
            reads: None,
            transport: Transport::default(),
        }
    }
}

/// A client for one server: the protocol, the model name and one pooled HTTP client.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base_url: Arc<str>,
    api: Api,
    model: Arc<str>,
    timeout: Duration,
    stream: bool,
    secrets: Arc<secrets::Secrets>,
    tokenizer: Option<Arc<dyn CountTokens>>,
    extra_body: Option<Arc<serde_json::Map<String, serde_json::Value>>>,
    max_event_bytes: usize,
    reads: Option<Arc<stream::ReadCounter>>,
    /// The direct HTTP/1.1 path of streamed requests; `None` when they go through reqwest
    /// (asked for, or a URL that is not plain `http://`).
    direct: Option<Arc<h1::H1Client>>,
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// reqwest refused the configuration.
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    /// A header name or value is not valid HTTP.
    #[error("header `{0}` is not a valid HTTP header name and value")]
    Header(String),
}

impl Client {
    /// A client for `config.base_url` speaking `config.api`.
    pub fn new(config: ClientConfig) -> Result<Client, ClientError> {
        use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let parsed = HeaderName::from_bytes(name.as_bytes())
                .ok()
                .zip(HeaderValue::from_str(value).ok())
                .ok_or_else(|| ClientError::Header(name.clone()))?;
            headers.insert(parsed.0, parsed.1);
        }
        if let Some(key) = &config.api_key {
            let mut value = HeaderValue::from_str(&format!("Bearer {key}"))
                .map_err(|_| ClientError::Header("Authorization".into()))?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let direct = (config.stream && config.transport == Transport::Direct)
            .then(|| direct_client(&config))
            .flatten()
            .map(Arc::new);
        let idle_per_host = if config.keep_alive { usize::MAX } else { 0 };
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(idle_per_host)
            .tcp_nodelay(true)
            .no_proxy()
            .default_headers(headers)
            .build()?;
        Ok(Client {
            http,
            base_url: config.base_url.trim_end_matches('/').into(),
            api: config.api,
            model: config.model.into(),
            timeout: config.timeout,
            stream: config.stream,
            secrets: Arc::new(secrets::Secrets::new(
                config.api_key.as_deref(),
                config.headers.iter().map(|(_, v)| v.as_str()),
            )),
            tokenizer: config.tokenizer,
            extra_body: config.extra_body.filter(|extra| !extra.is_empty()),
            max_event_bytes: config.max_event_bytes,
            reads: config.reads,
            direct,
        })
    }

    /// The server's base URL, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The model name its requests carry.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The shared HTTP client (for calls beside generation, such as `/tokenize`).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The secrets this client sends (API key, header values), for redacting text the server
    /// sent back.
    pub fn secrets(&self) -> &secrets::Secrets {
        &self.secrets
    }

    /// Sends one streaming generation request and measures it. Never panics and never returns
    /// an error: every failure is a record with its class and evidence. The client's secrets
    /// are redacted from the evidence and the kept text, before the evidence is cut to its
    /// excerpt.
    pub async fn generate(
        &self,
        id: u64,
        window_start: Instant,
        request: &Generation,
    ) -> RequestRecord {
        self.generate_until(id, window_start, request, None).await
    }

    /// [`Client::generate`], cut off at `cut_off` when that comes before the request's own
    /// timeout: the request then ends as a timeout at that instant, with what had arrived.
    pub async fn generate_until(
        &self,
        id: u64,
        window_start: Instant,
        request: &Generation,
        cut_off: Option<Instant>,
    ) -> RequestRecord {
        let mut record = self.exchange(id, window_start, request, cut_off).await;
        if let Some(detail) = record.error_detail.as_mut() {
            *detail = excerpt(&self.secrets.redact(detail), BODY_EXCERPT_BYTES);
        }
        if let Some(text) = record.text.as_mut() {
            self.secrets.redact_in_place(text);
        }
        record
    }

    /// Posts `body` to `path` and reads the whole JSON answer, not streamed, within the
    /// client's timeout: an accuracy task's loglikelihood requests. The error is a sentence
    /// (the HTTP status and the start of the body, or why no answer came), the client's
    /// secrets redacted.
    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        let url = format!("{}{}", self.base_url, path);
        let exchange = async {
            let response = self
                .http
                .post(&url)
                .json(body)
                .send()
                .await
                .map_err(|e| error_chain(&e))?;
            let status = response.status();
            let cap = if status.is_success() {
                JSON_ANSWER_BYTES
            } else {
                ERROR_BODY_READ_BYTES
            };
            let (bytes, cut) = stream::read_capped(response, cap)
                .await
                .map_err(|e| error_chain(&e))?;
            if !status.is_success() {
                return Err(format!(
                    "HTTP {status}: {}",
                    String::from_utf8_lossy(&bytes)
                ));
            }
            if cut {
                return Err(format!(
                    "the answer is longer than {JSON_ANSWER_BYTES} bytes"
                ));
            }
            serde_json::from_slice(&bytes).map_err(|e| format!("the answer is not JSON: {e}"))
        };
        let answer = tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or_else(|_| Err("no answer before the timeout".into()));
        answer.map_err(|e| excerpt(&self.secrets.redact(&e), BODY_EXCERPT_BYTES))
    }

    async fn exchange(
        &self,
        id: u64,
        window_start: Instant,
        request: &Generation,
        cut_off: Option<Instant>,
    ) -> RequestRecord {
        let (path, mut body) = protocol::request_body(self.api, &self.model, request, self.stream);
        if let (Some(extra), Some(fields)) = (&self.extra_body, body.as_object_mut()) {
            fields.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        // Each path's future is boxed: a streamed request's state then lives in an allocation
        // of its own, and the futures around it (the load's task, the request source) stay
        // small. Every chunk's poll passes through each of those futures' states; inline, they
        // were spread over 3.6 KB, a cache line each, cold again by the stream's next chunk
        // when hundreds of streams take turns (the book's client-performance page).
        let outgoing = Outgoing {
            id,
            window_start,
            request,
            path,
            body: &body,
            cut_off,
        };
        if let Some(direct) = self.direct.as_deref() {
            return Box::pin(self.exchange_direct(direct, outgoing)).await;
        }
        Box::pin(self.exchange_reqwest(outgoing)).await
    }

    /// Starts the record of `outgoing`, sent now: when it was sent, the record, and when it
    /// gives up.
    fn start(&self, outgoing: &Outgoing<'_>) -> (Instant, RequestRecord, tokio::time::Instant) {
        let sent = Instant::now();
        let record = RequestRecord {
            id: outgoing.id,
            send_ms: ms_between(outgoing.window_start, sent),
            ..Default::default()
        };
        (sent, record, self.deadline(sent, outgoing.cut_off))
    }

    /// [`Client::exchange`] through reqwest.
    async fn exchange_reqwest(&self, outgoing: Outgoing<'_>) -> RequestRecord {
        let url = format!("{}{}", self.base_url, outgoing.path);
        let (sent, mut record, deadline) = self.start(&outgoing);
        let post = self.http.post(&url).json(outgoing.body).send();
        let response = tokio::time::timeout_at(deadline, post).await;
        let response = match response {
            Err(_) => {
                return failed(
                    record,
                    ErrorClass::Timeout,
                    "no response before the timeout",
                );
            }
            Ok(Err(e)) => return send_failed(record, &e, e.is_timeout()),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        record.status = Some(status.as_u16());
        if !status.is_success() {
            // Only the start of the body is read: a server answering an error with gigabytes
            // must not make the client hold them.
            let body = tokio::time::timeout_at(
                deadline,
                stream::read_capped(response, ERROR_BODY_READ_BYTES),
            )
            .await
            .ok()
            .and_then(Result::ok)
            .map(|(bytes, _)| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default();
            return failed(
                record,
                ErrorClass::from_status(status.as_u16()),
                &format!("HTTP {status}: {body}"),
            );
        }
        let request = outgoing.request;
        let reading = self.reading(request, sent, deadline);
        if self.stream {
            let expected = expected_chunks(request);
            stream::read_stream(
                stream::ReqwestBody::from(response),
                record,
                &reading,
                expected,
            )
            .await
        } else {
            stream::read_whole(response, record, &reading).await
        }
    }

    /// [`Client::exchange`] of a streamed request on the direct HTTP/1.1 path.
    async fn exchange_direct(
        &self,
        direct: &h1::H1Client,
        outgoing: Outgoing<'_>,
    ) -> RequestRecord {
        // A JSON value always serialises.
        let body = serde_json::to_vec(outgoing.body).unwrap_or_default();
        let (sent, mut record, deadline) = self.start(&outgoing);
        let post = direct.post(outgoing.path, &body);
        let response = match tokio::time::timeout_at(deadline, post).await {
            Err(_) => {
                return failed(
                    record,
                    ErrorClass::Timeout,
                    "no response before the timeout",
                );
            }
            Ok(Err(e)) => return send_failed(record, &e, false),
            Ok(Ok(response)) => response,
        };
        let code = response.status;
        record.status = Some(code);
        if (300..400).contains(&code) {
            let to = response.location.as_deref().unwrap_or("nowhere");
            let detail = format!(
                "HTTP {code}: a redirect to {to}; streamed requests do not follow redirects: \
                 give the server's final URL"
            );
            return failed(record, ErrorClass::Protocol, &detail);
        }
        if !(200..300).contains(&code) {
            let mut body = response.body;
            let mut text = Vec::new();
            let capped = async {
                let mut waited = false;
                while text.len() < ERROR_BODY_READ_BYTES {
                    match body.read(&mut waited).await {
                        Ok(Some(_)) => text.extend_from_slice(body.bytes()),
                        _ => break,
                    }
                }
            };
            let _ = tokio::time::timeout_at(deadline, capped).await;
            text.truncate(ERROR_BODY_READ_BYTES);
            let status = reqwest::StatusCode::from_u16(code)
                .map_or_else(|_| code.to_string(), |s| s.to_string());
            return failed(
                record,
                ErrorClass::from_status(code),
                &format!("HTTP {status}: {}", String::from_utf8_lossy(&text)),
            );
        }
        let request = outgoing.request;
        let reading = self.reading(request, sent, deadline);
        stream::read_stream(response.body, record, &reading, expected_chunks(request)).await
    }

    /// When a request sent at `sent` gives up: its own timeout, or the trial's cut-off when
    /// that comes first.
    fn deadline(&self, sent: Instant, cut_off: Option<Instant>) -> tokio::time::Instant {
        let own_deadline = sent + self.timeout;
        tokio::time::Instant::from_std(cut_off.map_or(own_deadline, |cut| cut.min(own_deadline)))
    }

    /// How the answer to `request`, sent at `sent`, is read.
    fn reading(
        &self,
        request: &Generation,
        sent: Instant,
        deadline: tokio::time::Instant,
    ) -> stream::Reading<'_> {
        stream::Reading {
            sent,
            deadline,
            counter: self.tokenizer.as_deref(),
            keep_text: matches!(request.ending, Ending::Natural { .. })
                || request.keep_text
                || self.extra_body.is_some(),
            // A server may send a few content chunks without tokens (a role, an empty delta);
            // far more than one per token asked for is a server out of control.
            max_chunks: (request.max_tokens as usize).saturating_mul(2).max(1024),
            max_event_bytes: self.max_event_bytes,
            reads: self.reads.as_deref(),
        }
    }
}

/// A request that got no response: the client's own resource shortage, a timeout, or a
/// connection failure, with the error's whole chain as evidence.
fn send_failed(
    record: RequestRecord,
    error: &(dyn std::error::Error + 'static),
    timed_out: bool,
) -> RequestRecord {
    let chain = error_chain(error);
    if let Some(resource) = client_resource(error) {
        let detail = format!("{CLIENT_RAN_OUT} ({resource}): {chain}");
        return failed(record, ErrorClass::Client, &detail);
    }
    let class = if timed_out {
        ErrorClass::Timeout
    } else {
        ErrorClass::Connect
    };
    failed(record, class, &chain)
}

/// Content chunks a streamed answer to `request` is expected to have: at most one per token
/// asked for (capped: `max_tokens` is the caller's number).
fn expected_chunks(request: &Generation) -> usize {
    (request.max_tokens as usize).min(1 << 16)
}

/// The direct HTTP/1.1 client of `config`, when its URL is plain `http://` (else the streamed
/// requests go through reqwest, which reports what is wrong with the URL).
fn direct_client(config: &ClientConfig) -> Option<h1::H1Client> {
    let mut headers = config.headers.clone();
    if let Some(key) = &config.api_key {
        headers.push(("Authorization".into(), format!("Bearer {key}")));
    }
    h1::H1Client::new(&config.base_url, &headers, config.keep_alive).ok()
}

/// Milliseconds from `from` to `to` (zero if `to` is earlier).
pub fn ms_between(from: Instant, to: Instant) -> f64 {
    to.saturating_duration_since(from).as_secs_f64() * 1000.0
}

/// Marks a record failed with the evidence, bounded ([`Client::generate`] redacts it and cuts
/// it to its excerpt).
pub fn failed(mut record: RequestRecord, class: ErrorClass, detail: &str) -> RequestRecord {
    record.error = Some(class);
    record.error_detail = Some(excerpt(detail, DETAIL_HOLD_BYTES));
    record
}

/// The start of every `client` error's evidence.
pub const CLIENT_RAN_OUT: &str = "the client, not the server, ran out of a resource";

/// The resource the client ran out of, when `error` (or one of its causes) is an OS error
/// of the client's own making rather than the server's: no file descriptor left (EMFILE,
/// ENFILE), no local port or address (EADDRNOTAVAIL), no buffer space (ENOBUFS), no memory.
pub fn client_resource(error: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        let io = e.downcast_ref::<std::io::Error>();
        if let Some(name) = io
            .and_then(std::io::Error::raw_os_error)
            .and_then(resource_of_errno)
        {
            return Some(name);
        }
        // An io::Error wrapping another error names it through `get_ref`, not `source`.
        cause = match io.and_then(std::io::Error::get_ref) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

/// The client-side resource an OS error number says ran out, if it is one.
pub fn resource_of_errno(code: i32) -> Option<&'static str> {
    match code {
        libc::EMFILE => Some("EMFILE: no file descriptor left in this process"),
        libc::ENFILE => Some("ENFILE: no file descriptor left in the system"),
        libc::EADDRNOTAVAIL => Some("EADDRNOTAVAIL: no local port or address left"),
        libc::ENOBUFS => Some("ENOBUFS: no socket buffer space left"),
        libc::ENOMEM => Some("ENOMEM: no memory left"),
        _ => None,
    }
}

pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// One request on its way out: what both transports take.
struct Outgoing<'a> {
    id: u64,
    /// The start of the run's measurement window (send times are counted from it).
    window_start: Instant,
    request: &'a Generation,
    path: &'static str,
    body: &'a serde_json::Value,
    /// The trial's cut-off, if any: no request outlives it.
    cut_off: Option<Instant>,
}
