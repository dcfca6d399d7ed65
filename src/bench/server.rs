//! A scripted streaming server whose truth is known: it writes each SSE chunk on a schedule
//! (or as fast as it can) and logs the CLOCK_MONOTONIC instant just before every write. The
//! client's stamps are compared with that log to measure timing error, in the same process
//! (tests) or across processes (`llm-stress bench-server`): the monotonic clock is one clock
//! for the whole machine.
//!
//! It speaks just enough HTTP/1.1 for what an inference server does: kept-alive connections
//! (one request at a time), answers in chunked transfer encoding with one SSE event per HTTP
//! chunk, as uvicorn-based servers send them. The request is an OpenAI completions body whose
//! prompt names the request as `req-N`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::clock::{monotonic_ns, sleep_until_ns};

/// How the server answers every request.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Script {
    /// From the request's arrival to the first content chunk (zero: at once).
    pub ttft: Duration,
    /// Between content chunks (zero: back to back).
    pub itl: Duration,
    /// Content chunks per answer (one token each).
    pub tokens: u32,
    /// The first request's answer is held back this long more (a stalled server).
    pub stall_first: Duration,
    /// Every content chunk goes out in its own write even with no latency (as a server that
    /// emits one token per decode step does); otherwise a zero-latency answer is one write.
    pub one_per_write: bool,
    /// Chunk instants fall on one grid of `itl` shared by every connection (synchronized
    /// rounds, as a batch scheduler's decode steps produce them): the first chunk goes out at
    /// the first grid instant at least `ttft` after the request arrived, then one per step.
    pub aligned: bool,
}

/// Request number → CLOCK_MONOTONIC nanoseconds when the server first saw the request.
pub type ArrivalLog = HashMap<u64, u64>;

/// The write log: request number → CLOCK_MONOTONIC nanoseconds before each content write.
pub type WriteLog = HashMap<u64, Vec<u64>>;

/// A running scripted server.
#[derive(Debug)]
pub struct ScriptServer {
    /// Base URL.
    pub url: String,
    log: Arc<Mutex<WriteLog>>,
    arrivals: Arc<Mutex<ArrivalLog>>,
    task: tokio::task::JoinHandle<()>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct ServeError {
    /// The address asked for.
    pub addr: String,
    /// The underlying error.
    pub source: std::io::Error,
}

impl ScriptServer {
    /// Starts the server on `127.0.0.1:port` (0: a free port). With `keep_log`, every write
    /// instant is logged and served at `GET /log`.
    pub async fn start(script: Script, port: u16, keep_log: bool) -> Result<Self, ServeError> {
        let addr = format!("127.0.0.1:{port}");
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|source| ServeError {
                addr: addr.clone(),
                source,
            })?;
        let local: SocketAddr = listener
            .local_addr()
            .map_err(|source| ServeError { addr, source })?;
        let log = Arc::new(Mutex::new(HashMap::new()));
        let arrivals = Arc::new(Mutex::new(HashMap::new()));
        let served = Arc::new(AtomicBool::new(false));
        let task_logs = Logs {
            writes: Arc::clone(&log),
            arrivals: Arc::clone(&arrivals),
        };
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let logs = keep_log.then(|| task_logs.clone());
                let first = !served.swap(true, Ordering::SeqCst);
                tokio::spawn(serve(stream, script, first, logs));
            }
        });
        Ok(ScriptServer {
            url: format!("http://{local}"),
            log,
            arrivals,
            task,
        })
    }

    /// The write instants of request `id`, if it was answered and logged.
    pub fn writes(&self, id: u64) -> Option<Vec<u64>> {
        self.log.lock().ok()?.get(&id).cloned()
    }

    /// When the server first saw request `id` (CLOCK_MONOTONIC ns), if it was logged.
    pub fn arrival(&self, id: u64) -> Option<u64> {
        self.arrivals.lock().ok()?.get(&id).copied()
    }

    /// Waits until the process is asked to stop (Ctrl-C), then stops.
    pub async fn run_until_interrupted(self) {
        let _ = tokio::signal::ctrl_c().await;
        self.task.abort();
    }
}

impl Drop for ScriptServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The logs a `--log` server keeps.
#[derive(Debug, Clone)]
struct Logs {
    writes: Arc<Mutex<WriteLog>>,
    arrivals: Arc<Mutex<ArrivalLog>>,
}

/// Reads one request: its first line and its content-length body.
async fn read_request(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
        let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
            if buffer.len() > 64 * 1024 {
                return None;
            }
            continue;
        };
        let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or(0)
            .min(16 * 1024 * 1024);
        let mut body = buffer[end + 4..].to_vec();
        while body.len() < length {
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            body.extend_from_slice(&chunk[..n]);
        }
        let first_line = head.lines().next().unwrap_or_default().to_string();
        return Some((first_line, body));
    }
}

/// The `N` of the first `req-N` in a body.
fn request_number(body: &[u8]) -> Option<u64> {
    let text = String::from_utf8_lossy(body);
    let start = text.find("req-")? + 4;
    let digits: String = text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Answers the requests of one connection until the client closes it.
async fn serve(mut stream: TcpStream, script: Script, mut first: bool, logs: Option<Logs>) {
    while let Some((request_line, body)) = read_request(&mut stream).await {
        if answer(
            &mut stream,
            &request_line,
            &body,
            script,
            first,
            logs.as_ref(),
        )
        .await
        .is_err()
        {
            return;
        }
        first = false;
    }
}

/// Appends `event` to `out` as one HTTP chunk.
fn frame(out: &mut Vec<u8>, event: &[u8]) {
    out.extend_from_slice(format!("{:x}\r\n", event.len()).as_bytes());
    out.extend_from_slice(event);
    out.extend_from_slice(b"\r\n");
}

/// Writes `event` as one HTTP chunk.
async fn write_chunk(stream: &mut TcpStream, event: &[u8]) -> std::io::Result<()> {
    let mut framed = Vec::with_capacity(event.len() + 12);
    frame(&mut framed, event);
    stream.write_all(&framed).await
}

async fn answer(
    stream: &mut TcpStream,
    request_line: &str,
    body: &[u8],
    script: Script,
    first: bool,
    logs: Option<&Logs>,
) -> std::io::Result<()> {
    let log = logs.map(|l| &l.writes);
    if request_line.starts_with("GET /log") {
        let json = log
            .and_then(|l| l.lock().ok().map(|l| serde_json::to_string(&*l)))
            .and_then(Result::ok)
            .unwrap_or_else(|| "{}".into());
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            json.len()
        );
        stream.write_all(head.as_bytes()).await?;
        return stream.write_all(json.as_bytes()).await;
    }
    let arrived = monotonic_ns();
    let id = request_number(body).unwrap_or(u64::MAX);
    if let Some(logs) = logs
        && let Ok(mut arrivals) = logs.arrivals.lock()
    {
        arrivals.insert(id, arrived);
    }
    let head =
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
    stream.write_all(head.as_bytes()).await?;
    let stall = if first {
        script.stall_first
    } else {
        Duration::ZERO
    };
    let mut start = arrived + (stall + script.ttft).as_nanos() as u64;
    let itl = script.itl.as_nanos() as u64;
    if script.aligned && itl > 0 {
        start = start.div_ceil(itl) * itl;
    }
    let mut writes = Vec::with_capacity(if log.is_some() {
        script.tokens as usize
    } else {
        0
    });
    let mut chunk = String::with_capacity(128);
    // With no latency every token is ready at once: the whole answer goes out in one write,
    // still one SSE event per HTTP chunk.
    let zero_latency = start <= arrived && itl == 0 && !script.one_per_write;
    let mut batch = Vec::new();
    for k in 0..script.tokens {
        let due = start + itl * u64::from(k);
        if due > monotonic_ns() {
            sleep_until_ns(due).await;
        }
        let finish = if k + 1 == script.tokens {
            "\"length\""
        } else {
            "null"
        };
        chunk.clear();
        chunk.push_str("data: {\"id\":\"cmpl-bench\",\"object\":\"text_completion\",\"model\":\"bench\",\"choices\":[{\"index\":0,\"text\":\" tok\",\"finish_reason\":");
        chunk.push_str(finish);
        chunk.push_str("}]}\n\n");
        if zero_latency {
            frame(&mut batch, chunk.as_bytes());
            continue;
        }
        if log.is_some() {
            writes.push(monotonic_ns());
        }
        write_chunk(stream, chunk.as_bytes()).await?;
    }
    if zero_latency {
        stream.write_all(&batch).await?;
    }
    let usage = format!(
        "data: {{\"id\":\"cmpl-bench\",\"choices\":[],\"usage\":{{\"prompt_tokens\":1,\"completion_tokens\":{}}}}}\n\ndata: [DONE]\n\n",
        script.tokens
    );
    if let Some(log) = log
        && let Ok(mut log) = log.lock()
    {
        log.insert(id, writes);
    }
    write_chunk(stream, usage.as_bytes()).await?;
    stream.write_all(b"0\r\n\r\n").await
}
