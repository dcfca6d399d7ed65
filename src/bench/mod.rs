//! `llm-stress bench-client`: how much load the client itself can drive, and how exact its
//! timestamps are, against a scripted server in another process.
//!
//! For each number of concurrent streams, two phases run:
//! - throughput: a zero-latency server streams `tokens` chunks per request as fast as it can;
//!   the client's own CPU time (getrusage of this process; the server is another process) is
//!   measured, giving chunks per client CPU-second and requests per second;
//! - precision: a paced server writes one chunk every `paced_itl` per stream and logs the
//!   CLOCK_MONOTONIC instant before each write; each client stamp minus that instant is the
//!   timestamp error (it includes the kernel's loopback delivery and scheduling delay).

pub mod clock;
pub mod server;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::case::{Api, LoadSpec, Warmup};
use crate::client::{Client, ClientConfig, Generation};
use crate::load::{self, Endpoint, RequestSource};
use crate::metrics::Distribution;
use crate::os::{process_cpu_s, raise_open_file_limit};
use crate::plan::Shape;
use clock::ClockPair;
use server::WriteLog;

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// The `llm-stress` executable that serves (`bench-server`).
    pub server_exe: PathBuf,
    /// Concurrent streams, one measurement each.
    pub streams: Vec<u32>,
    /// Chunks per request in the throughput phase.
    pub tokens: u32,
    /// Chunks to receive per throughput measurement (requests are rounded up).
    pub chunks: u64,
    /// Gap between chunks of one stream in the precision phase.
    pub paced_itl: Duration,
    /// Chunks per request in the precision phase.
    pub paced_tokens: u32,
}

/// One line of the benchmark's table.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchRow {
    /// Concurrent streams.
    pub streams: u32,
    /// Throughput phase: requests completed.
    pub requests: u64,
    /// Throughput phase: content chunks received and parsed.
    pub chunks: u64,
    /// Throughput phase: failed requests (should be 0).
    pub failed: u64,
    /// Throughput phase: wall time, seconds.
    pub wall_s: f64,
    /// Throughput phase: CPU time of the client process, seconds.
    pub client_cpu_s: f64,
    /// Precision phase: stamp − server write, ms.
    pub stamp_error: Option<Distribution>,
}

impl BenchRow {
    /// Chunks per second of wall time.
    pub fn chunks_per_s(&self) -> f64 {
        self.chunks as f64 / self.wall_s.max(1e-9)
    }

    /// Chunks per second of client CPU time.
    pub fn chunks_per_cpu_s(&self) -> f64 {
        self.chunks as f64 / self.client_cpu_s.max(1e-9)
    }

    /// Requests per second of wall time.
    pub fn req_s(&self) -> f64 {
        self.requests as f64 / self.wall_s.max(1e-9)
    }
}

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The server process could not be started or did not say where it listens.
    #[error("bench server: {0}")]
    Server(String),
    /// The client could not be built.
    #[error(transparent)]
    Client(#[from] crate::client::ClientError),
    /// The request source could not be built.
    #[error(transparent)]
    Source(#[from] crate::load::SourceError),
}

/// A `bench-server` child process, killed when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    /// Its base URL.
    pub url: String,
    _child: Child,
}

/// Starts `exe bench-server ARGS` and waits for the line saying where it listens.
pub async fn spawn_server(exe: &Path, args: &[String]) -> Result<ServerProcess, BenchError> {
    let mut child = Command::new(exe)
        .arg("bench-server")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| BenchError::Server(format!("cannot start {}: {e}", exe.display())))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| BenchError::Server("no stdout".into()))?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .map_err(|_| BenchError::Server("did not start within 10 s".into()))?
        .map_err(|e| BenchError::Server(e.to_string()))?
        .ok_or_else(|| BenchError::Server("exited before listening".into()))?;
    let url = line
        .strip_prefix("listening on ")
        .ok_or_else(|| BenchError::Server(format!("unexpected first line `{line}`")))?
        .to_string();
    Ok(ServerProcess { url, _child: child })
}

fn source(url: &str, requests: u64, tokens: u32) -> Result<Arc<RequestSource>, BenchError> {
    let config = ClientConfig::new(url, Api::Completions, "bench", Duration::from_secs(120));
    let endpoint = Endpoint {
        name: "bench".into(),
        weight: 1.0,
        client: Client::new(config)?,
    };
    let prompts = (0..requests)
        .map(|i| Generation::exact(format!("req-{i}"), tokens))
        .collect();
    Ok(Arc::new(RequestSource::new(
        vec![endpoint],
        prompts,
        Vec::new(),
        0,
    )?))
}

/// A closed loop of `streams` streams sending `requests` requests in all, without warmup.
fn closed(streams: u32, requests: u64) -> (LoadSpec, Shape) {
    let load = LoadSpec {
        warmup: Warmup::Requests(0),
        ..LoadSpec::default()
    };
    let shape = Shape::Closed {
        concurrency: streams,
        requests: u32::try_from(requests).unwrap_or(u32::MAX),
        duration: None,
    };
    (load, shape)
}

/// One request per stream, unmeasured, so every stream has its kept-alive connection open.
async fn open_connections(source: &Arc<RequestSource>, streams: u32) {
    let (load, shape) = closed(streams, u64::from(streams));
    load::run(&load, &shape, source).await;
}

async fn throughput(config: &BenchConfig, streams: u32) -> Result<BenchRow, BenchError> {
    let server = spawn_server(
        &config.server_exe,
        &["--tokens".into(), config.tokens.to_string()],
    )
    .await?;
    let per_request = u64::from(config.tokens.max(1));
    let requests = config
        .chunks
        .div_ceil(per_request)
        .max(u64::from(streams) * 2);
    let source = source(&server.url, requests, config.tokens)?;
    open_connections(&source, streams).await;
    let (load, shape) = closed(streams, requests);
    let cpu_before = process_cpu_s();
    let outcome = load::run(&load, &shape, &source).await;
    let wall_s = outcome.duration_s;
    let client_cpu_s = process_cpu_s() - cpu_before;
    let ok = outcome.records.iter().filter(|r| r.is_ok()).count() as u64;
    Ok(BenchRow {
        streams,
        requests: ok,
        chunks: outcome
            .records
            .iter()
            .map(|r| r.chunk_ms.len() as u64)
            .sum(),
        failed: outcome.records.len() as u64 - ok,
        wall_s,
        client_cpu_s,
        stamp_error: None,
    })
}

async fn precision(config: &BenchConfig, streams: u32) -> Result<Distribution, BenchError> {
    let server = spawn_server(
        &config.server_exe,
        &[
            "--tokens".into(),
            config.paced_tokens.to_string(),
            "--ttft-us".into(),
            "5000".into(),
            "--itl-us".into(),
            config.paced_itl.as_micros().to_string(),
            "--log".into(),
        ],
    )
    .await?;
    let requests = u64::from(streams);
    let source = source(&server.url, requests, config.paced_tokens)?;
    open_connections(&source, streams).await;
    let (load, shape) = closed(streams, requests);
    let clocks = ClockPair::now();
    let outcome = load::run(&load, &shape, &source).await;
    let log = fetch_log(&server.url).await?;
    let start_ns = clocks.ns_of(outcome.window_start) as f64;
    let errors = outcome.records.iter().flat_map(|record| {
        let writes = log.get(&record.id).cloned().unwrap_or_default();
        let sent_ns = start_ns + record.send_ms * 1e6;
        writes
            .into_iter()
            .zip(record.chunk_ms.clone())
            .map(move |(write, stamp_ms)| (sent_ns + stamp_ms * 1e6 - write as f64) / 1e6)
    });
    Distribution::from_ms(errors.collect::<Vec<_>>())
        .ok_or_else(|| BenchError::Server("no chunk was logged".into()))
}

/// The write log of a `bench-server --log` at `url`.
pub async fn fetch_log(url: &str) -> Result<WriteLog, BenchError> {
    let failed = |e: reqwest::Error| BenchError::Server(format!("GET {url}/log: {e}"));
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(failed)?
        .get(format!("{url}/log"))
        .send()
        .await
        .map_err(failed)?
        .json()
        .await
        .map_err(failed)
}

/// Runs both phases for every stream count.
pub async fn run(config: &BenchConfig) -> Result<Vec<BenchRow>, BenchError> {
    raise_open_file_limit();
    let mut rows = Vec::new();
    for &streams in &config.streams {
        let mut row = throughput(config, streams).await?;
        row.stamp_error = Some(precision(config, streams).await?);
        eprintln!("{}", render_row(&row));
        rows.push(row);
    }
    Ok(rows)
}

/// The header of the benchmark's table.
pub const HEADER: &str = "| streams | requests | chunks | failed | wall s | chunks/s | req/s | client CPU s | chunks per client CPU-s | stamp error p50 ms | p99 ms | max ms |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|";

/// One table line.
pub fn render_row(row: &BenchRow) -> String {
    let (p50, p99, max) = row
        .stamp_error
        .map_or((f64::NAN, f64::NAN, f64::NAN), |d| (d.p50, d.p99, d.max));
    format!(
        "| {} | {} | {} | {} | {:.2} | {:.0} | {:.0} | {:.2} | {:.0} | {:.3} | {:.3} | {:.3} |",
        row.streams,
        row.requests,
        row.chunks,
        row.failed,
        row.wall_s,
        row.chunks_per_s(),
        row.req_s(),
        row.client_cpu_s,
        row.chunks_per_cpu_s(),
        p50,
        p99,
        max
    )
}
