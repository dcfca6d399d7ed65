//! The embedded OpenAI-compatible server: `/health`, `/v1/models`, `/v1/completions` and
//! `/v1/chat/completions` (streaming and not), llama.cpp's `/completion`, `/tokenize` (vLLM
//! and llama.cpp forms) and Prometheus `/metrics` (vLLM's names), with tokens released on the
//! schedule of an [`Engine`]. Trials start it on a free loopback port inside their own
//! process.

pub mod answers;
pub mod engine;
pub mod faults;
pub mod llama;
pub mod logprobs;
pub mod metrics;
pub mod prefix_cache;
pub mod protocol;
pub mod simulated;
pub mod thread;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use futures_util::FutureExt;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

use crate::case::EmbeddedSpec;
use answers::{AnswerKey, Answerer, Ask, Output};
use engine::{Admission, Engine, EngineRequest, LatencyModel};
use faults::{Fault, Faults};
use metrics::ServingCounts;
use prefix_cache::PrefixCache;
use protocol::{Endpoint, Responder, error_body};
use simulated::SimulatedEngine;

/// Why the embedded server could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// The port could not be bound (or the server's runtime not started).
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Listen {
        /// The port asked for.
        port: u16,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The simulated engine's configuration was refused.
    #[error("the simulated engine: {0}")]
    Simulator(#[from] crate::sim::SimError),
    /// The simulated engine's thread could not start.
    #[error("cannot start the simulated engine's thread: {0}")]
    Thread(std::io::Error),
    /// The server's own thread could not start.
    #[error("cannot start the server thread: {0}")]
    ServerThread(std::io::Error),
    /// The server's thread ended before the server listened.
    #[error("the server thread ended before listening")]
    ThreadEnded,
}

/// How the server behaves apart from its engine's timing: what it answers, how it streams,
/// which faults it injects.
pub struct Behaviour {
    /// Answers to known questions.
    pub answerer: Answerer,
    /// Tokens per streamed chunk (at least 1).
    pub tokens_per_chunk: usize,
    /// Injected faults.
    pub faults: Faults,
    /// Model a prefix cache: cached leading blocks of a prompt skip their prefill.
    pub prefix_cache: bool,
}

struct AppState {
    engine: Arc<dyn Engine>,
    answerer: Answerer,
    faults: Faults,
    model: String,
    tokens_per_chunk: usize,
    next_id: AtomicU64,
    /// Generation requests in the server: queued, in service or still streaming.
    in_flight: Arc<AtomicUsize>,
    /// What `/metrics` reports.
    counts: ServingCounts,
    /// The prefix cache, when the server models one.
    prefix_cache: Option<PrefixCache>,
}

impl AppState {
    /// Counts a request in until the returned guard is dropped, decides its output, and says
    /// what the engine must schedule for it.
    fn enter(
        &self,
        ask: &Ask,
        prompt_text: &str,
        prompt_tokens: u64,
        max_tokens: u32,
    ) -> (InFlight, Output, EngineRequest) {
        let in_flight = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        let guard = InFlight(Arc::clone(&self.in_flight));
        let output = self.answerer.output(ask, max_tokens, in_flight);
        let cached_tokens = self
            .prefix_cache
            .as_ref()
            .map_or(0, |cache| cache.admit(prompt_text))
            .min(prompt_tokens);
        let request = EngineRequest {
            prompt_tokens,
            cached_tokens,
            output_tokens: output.tokens(),
        };
        (guard, output, request)
    }
}

impl AppState {
    /// Applies the faults that come before generation: the slow first byte, the refusal of a
    /// full queue, an error answer. Returns the response to send instead, or the fault to
    /// apply while streaming.
    async fn fault_first(&self, id: u64) -> Result<Option<Fault>, Response> {
        if let Some(delay) = self.faults.first_byte_delay() {
            tokio::time::sleep(delay).await;
        }
        let waiting = self
            .in_flight
            .load(Ordering::Relaxed)
            .saturating_sub(self.counts.running());
        if let Some(status) = self.faults.refusal(waiting) {
            let body = Json(error_body("the queue is full; try again later"));
            return Err((status, [(header::RETRY_AFTER, "1")], body).into_response());
        }
        match self.faults.of(id) {
            Some(Fault::Error(status)) => {
                Err((status, Json(error_body("injected fault"))).into_response())
            }
            fault => Ok(fault),
        }
    }
}

/// One request counted in [`AppState::in_flight`] until dropped.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A running embedded server.
pub struct EmbeddedServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl EmbeddedServer {
    /// Binds `127.0.0.1:port` (0 picks a free port) and serves in a background task on the
    /// current tokio runtime, with the fixed-latency engine of `spec`, knowing no answers.
    pub async fn start(
        spec: EmbeddedSpec,
        served_model: String,
        port: u16,
    ) -> Result<EmbeddedServer, EmbeddedError> {
        Self::start_answering(spec, served_model, port, Arc::default()).await
    }

    /// Like [`EmbeddedServer::start`], answering the questions of `key` as `spec.answers`
    /// says; with `spec.sim`, the simulator is the engine.
    pub async fn start_answering(
        spec: EmbeddedSpec,
        served_model: String,
        port: u16,
        key: Arc<AnswerKey>,
    ) -> Result<EmbeddedServer, EmbeddedError> {
        let behaviour = Behaviour {
            answerer: Answerer::new(key, spec.answers.clone()),
            tokens_per_chunk: spec.tokens_per_chunk.max(1) as usize,
            faults: Faults::new(spec.faults.clone()),
            prefix_cache: spec.prefix_cache,
        };
        let engine: Arc<dyn Engine> = match &spec.sim {
            Some(sim) => Arc::new(SimulatedEngine::start(sim)?),
            None => Arc::new(LatencyModel::new(spec)),
        };
        Self::start_with_engine(engine, behaviour, served_model, port).await
    }

    /// Like [`EmbeddedServer::start_answering`] with any engine.
    pub async fn start_with_engine(
        engine: Arc<dyn Engine>,
        behaviour: Behaviour,
        served_model: String,
        port: u16,
    ) -> Result<EmbeddedServer, EmbeddedError> {
        let error = |source| EmbeddedError::Listen { port, source };
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(error)?;
        let addr = listener.local_addr().map_err(error)?;
        let state = Arc::new(AppState {
            engine,
            answerer: behaviour.answerer,
            faults: behaviour.faults,
            model: served_model,
            tokens_per_chunk: behaviour.tokens_per_chunk.max(1),
            next_id: AtomicU64::new(0),
            in_flight: Arc::new(AtomicUsize::new(0)),
            counts: ServingCounts::default(),
            prefix_cache: behaviour.prefix_cache.then(PrefixCache::default),
        });
        let app = Router::new()
            .route("/health", get(health))
            .route("/v1/models", get(models))
            .route("/v1/completions", post(completions))
            .route("/v1/chat/completions", post(chat))
            .route("/completion", post(llama_completion))
            .route("/tokenize", post(tokenize))
            .route("/metrics", get(prometheus))
            .layer(axum::middleware::from_fn(panic_guard))
            .with_state(state);
        let (stop, stopped) = oneshot::channel::<()>();
        // Without TCP_NODELAY, Nagle's algorithm holds small SSE writes on a kept-alive
        // connection until the client's delayed ACK, bunching tokens by ~10 ms.
        let listener = listener.tap_io(|tcp| {
            tcp.set_nodelay(true).ok();
        });
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                stopped.await.ok();
            });
            // An accept error ends serving; clients then see connection errors, which they
            // record as such.
            serve.await.ok();
        });
        Ok(EmbeddedServer {
            addr,
            stop: Some(stop),
            task,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets open responses finish for up to a second, then stops.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).ok();
        }
        if tokio::time::timeout(Duration::from_secs(1), &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
    }
}

impl Drop for EmbeddedServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn prometheus(State(state): State<Arc<AppState>>) -> Response {
    let mut text = state.counts.render(
        &state.model,
        state.in_flight.load(Ordering::Relaxed),
        state.engine.gauges(),
    );
    if let Some(cache) = &state.prefix_cache {
        let model = state.model.replace('\\', "\\\\").replace('"', "\\\"");
        cache.render(&model, &mut text);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn models(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({
        "object": "list",
        "data": [{"id": state.model, "object": "model", "owned_by": "llm-stress"}],
    }))
}

async fn completions(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    generate(state, Endpoint::Completions, &body).await
}

async fn chat(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    generate(state, Endpoint::Chat, &body).await
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn event(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

fn bad_request(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(error_body(message))).into_response()
}

async fn tokenize(body: Bytes) -> Response {
    match llama::tokenize(&body) {
        Ok(answer) => Json(answer).into_response(),
        Err(message) => bad_request(&message),
    }
}

async fn generate(state: Arc<AppState>, endpoint: Endpoint, body: &[u8]) -> Response {
    let request = match protocol::parse(endpoint, body) {
        Ok(request) => request,
        Err(message) => return bad_request(&message),
    };
    let id = state.next_id.fetch_add(1, Ordering::Relaxed);
    let fault = match state.fault_first(id).await {
        Ok(fault) => fault,
        Err(response) => return response,
    };
    let responder = Responder {
        endpoint,
        id: format!("cmpl-{id}"),
        model: state.model.clone(),
        created: unix_seconds(),
    };
    let (guard, output, engine_request) = state.enter(
        &request.ask,
        &request.prompt_text,
        request.prompt_tokens,
        request.max_tokens,
    );
    // A request the engine can never serve gets a 400, as vLLM answers one longer than its
    // context.
    if let Some(reason) = state.engine.refusal(engine_request) {
        return bad_request(&reason);
    }
    // A chat request offering tools gets its known answer as a tool call.
    let tool_call = endpoint == Endpoint::Chat
        && request.ask.tools
        && matches!(output, answers::Output::Reply { .. });
    if !request.stream {
        let Some(admission) = admit_all(&state, engine_request, fault).await else {
            return engine_stopped();
        };
        let body = if tool_call {
            responder.full_tool_call(request.prompt_tokens, &output)
        } else if request.echo_logprobs && state.answerer.answers_logprobs() {
            let in_flight = state.in_flight.load(Ordering::Relaxed);
            let logprobs =
                logprobs::echo(&state.answerer, &request.prompt_text, &output, in_flight);
            responder.full_echo(
                &request.prompt_text,
                request.prompt_tokens,
                &output,
                logprobs,
            )
        } else {
            responder.full(request.prompt_tokens, &output)
        };
        drop((admission, guard));
        return whole_answer(body, fault);
    }
    let first = (endpoint == Endpoint::Chat).then(|| event(&responder.role_chunk()));
    let total = output.tokens() as usize;
    let chunk_responder = responder.clone();
    let output = Arc::new(output);
    let last_output = Arc::clone(&output);
    stream_tokens(
        state,
        engine_request,
        (guard, fault),
        first,
        move |from, to| {
            if tool_call {
                return event(&chunk_responder.tool_chunk(&output, from, to, to == total));
            }
            let finish = (to == total).then(|| output.finish_reason());
            event(&chunk_responder.content_chunk(&output.text(from, to), finish))
        },
        move |_| {
            let usage = request.include_usage.then(|| {
                event(&responder.usage_chunk(request.prompt_tokens, last_output.tokens()))
            });
            usage
                .into_iter()
                .chain([Bytes::from_static(b"data: [DONE]\n\n")])
                .collect()
        },
    )
}

/// llama.cpp's native `/completion`: content chunks, then a last event with `stop: true`,
/// token counts and timings, and no `[DONE]` (as llama-server does).
async fn llama_completion(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let request = match llama::parse_completion(&body) {
        Ok(request) => request,
        Err(message) => return bad_request(&message),
    };
    let id = state.next_id.fetch_add(1, Ordering::Relaxed);
    let fault = match state.fault_first(id).await {
        Ok(fault) => fault,
        Err(response) => return response,
    };
    let (guard, output, engine_request) = state.enter(
        &request.ask,
        &request.ask.query,
        request.prompt_tokens,
        request.n_predict,
    );
    // A request the engine can never serve gets a 400, as vLLM answers one longer than its
    // context.
    if let Some(reason) = state.engine.refusal(engine_request) {
        return bad_request(&reason);
    }
    let model = state.model.clone();
    if !request.stream {
        let Some(admission) = admit_all(&state, engine_request, fault).await else {
            return engine_stopped();
        };
        let content = output.text(0, output.tokens() as usize);
        let body = llama::last(&model, &content, &request, &output, &admission);
        drop((admission, guard));
        return whole_answer(body, fault);
    }
    let output = Arc::new(output);
    let last_output = Arc::clone(&output);
    stream_tokens(
        state,
        engine_request,
        (guard, fault),
        None,
        move |from, to| event(&llama::chunk(&output.text(from, to))),
        move |admission| {
            vec![event(&llama::last(
                &model,
                "",
                &request,
                &last_output,
                admission,
            ))]
        },
    )
}

/// Admits a request and waits until its last token is due (non-streaming answers), plus a
/// stall's length if it has one. `None`: the engine stopped before releasing every token.
async fn admit_all(
    state: &AppState,
    request: EngineRequest,
    fault: Option<Fault>,
) -> Option<Admission> {
    let mut admission = state.engine.admit(request).await;
    let running = state.counts.admitted(request.prompt_tokens);
    let stall = match fault {
        Some(Fault::Stall(stall)) => stall,
        _ => Duration::ZERO,
    };
    if request.output_tokens > 0 {
        let due = admission
            .token_due(request.output_tokens as usize - 1)
            .await?;
        release_at(due + stall).await;
    }
    state.counts.sent(request.output_tokens as usize);
    state.counts.finished();
    drop(running);
    Some(admission)
}

/// The answer when the engine stopped before a request's last token.
fn engine_stopped() -> Response {
    let body = Json(error_body(
        "the engine stopped before the answer was complete",
    ));
    (StatusCode::INTERNAL_SERVER_ERROR, body).into_response()
}

/// Waits until `at`. An instant already past returns at once: tokio's timer would hold it
/// until its next millisecond tick (a simulated engine tells a token's instant only once it
/// has passed).
async fn release_at(at: tokio::time::Instant) {
    if at > tokio::time::Instant::now() {
        tokio::time::sleep_until(at).await;
    }
}

/// A whole (non-streamed) answer; a cut or malformed one is its JSON truncated.
fn whole_answer(body: Value, fault: Option<Fault>) -> Response {
    match fault {
        Some(Fault::Disconnect | Fault::Malformed) => {
            let text = body.to_string();
            let cut = text.len() / 2;
            (
                [(header::CONTENT_TYPE, "application/json")],
                text[..cut].to_string(),
            )
                .into_response()
        }
        _ => Json(body).into_response(),
    }
}

/// What a malformed event looks like: the start of a chunk that never ends.
const MALFORMED_EVENT: &[u8] = b"data: {\"choices\": [{\"text\": \n\n";

/// Runs every request under a panic guard: a handler that panics answers 500 with the panic's
/// message (the client records it as `http_5xx` with that evidence) instead of dropping the
/// connection, and the server goes on serving.
async fn panic_guard(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    match AssertUnwindSafe(next.run(request)).catch_unwind().await {
        Ok(response) => response,
        Err(payload) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            panic_text(payload.as_ref()),
        )
            .into_response(),
    }
}

/// What a caught panic says, as the embedded server reports it.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with no message".into());
    format!("the embedded server panicked: {message}")
}

/// Streams a response as server-sent events: once admitted, `first` (if any), then
/// `chunk(from, to)` for each run of `tokens_per_chunk` tokens when its last token is due, then
/// the events of `last`. A client that goes away stops it, which frees the engine's place;
/// the in-flight guard counts the request in the server until then. A fault strikes halfway
/// through the tokens: the stream is cut there, a malformed event is sent there, or the rest
/// comes a stall later.
fn stream_tokens<C, L>(
    state: Arc<AppState>,
    request: EngineRequest,
    (guard, fault): (InFlight, Option<Fault>),
    first: Option<Bytes>,
    chunk: C,
    last: L,
) -> Response
where
    C: Fn(usize, usize) -> Bytes + Send + 'static,
    L: FnOnce(&Admission) -> Vec<Bytes> + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(64);
    let on_panic = tx.clone();
    let work = async move {
        let mut admission = state.engine.admit(request).await;
        let running = state.counts.admitted(request.prompt_tokens);
        let send = |bytes: Bytes| tx.send(Ok(bytes));
        if let Some(first) = first
            && send(first).await.is_err()
        {
            return;
        }
        let total = request.output_tokens as usize;
        let mut next = 0;
        let mut fault = fault;
        let mut shift = Duration::ZERO;
        while next < total {
            if next >= total / 2 {
                match fault.take() {
                    Some(Fault::Disconnect) => return,
                    Some(Fault::Malformed) => {
                        if send(Bytes::from_static(MALFORMED_EVENT)).await.is_err() {
                            return;
                        }
                    }
                    Some(Fault::Stall(stall)) => shift = stall,
                    Some(Fault::Error(_)) | None => {}
                }
            }
            let end = (next + state.tokens_per_chunk).min(total);
            // An engine that stops releasing tokens cuts the stream.
            let Some(due) = admission.token_due(end - 1).await else {
                return;
            };
            release_at(due + shift).await;
            if send(chunk(next, end)).await.is_err() {
                return;
            }
            state.counts.sent(end - next);
            next = end;
        }
        for bytes in last(&admission) {
            if send(bytes).await.is_err() {
                return;
            }
        }
        state.counts.finished();
        drop((admission, running, guard));
    };
    // A panic while streaming ends the stream with an error event that says so, rather than
    // a cut stream that would read as the client's `broken_stream`.
    tokio::spawn(async move {
        if let Err(payload) = AssertUnwindSafe(work).catch_unwind().await {
            let event = json!({ "error": { "message": panic_text(payload.as_ref()) } });
            let _ = on_panic
                .send(Ok(Bytes::from(format!("data: {event}\n\n"))))
                .await;
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(ReceiverStream::new(rx)))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_handler_that_panics_answers_500_with_the_message_and_serving_goes_on() {
        async fn boom() -> &'static str {
            panic!("boom")
        }
        let app = Router::new()
            .route("/boom", get(boom))
            .route("/ok", get(|| async { "fine" }))
            .layer(axum::middleware::from_fn(panic_guard));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let answer = http
            .get(format!("http://{addr}/boom"))
            .send()
            .await
            .expect("an answer, not a dropped connection");
        assert_eq!(answer.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let text = answer.text().await.expect("body");
        assert_eq!(text, "the embedded server panicked: boom");
        let ok = http
            .get(format!("http://{addr}/ok"))
            .send()
            .await
            .expect("ok");
        assert_eq!(ok.text().await.expect("body"), "fine");
    }
}
