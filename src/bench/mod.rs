//! `llm-stress bench-client`: how much load the client itself can drive, and how exact its
//! timestamps are, against a scripted server in another process.
//!
//! Two modes, one measurement per number of concurrent streams:
//! - paced (the default), the way servers really stream: every chunk goes out in its own write,
//!   one per stream every `step` (or, with a zero step, back to back as fast as the socket
//!   takes them), so each chunk costs the client what it costs against a real server. The
//!   server logs the CLOCK_MONOTONIC instant before each write; the same run gives the client's
//!   user and system CPU per chunk, its body reads per chunk and its stamp error (client stamp
//!   − write instant; it includes the kernel's loopback delivery and scheduling delay);
//! - burst: the old two phases. Throughput: a zero-latency server writes a whole answer at
//!   once (the kernel coalesces many chunks per segment and per read), and the client's CPU
//!   per chunk is measured; precision: a paced server gives the stamp error.
//!
//! The client's CPU time is getrusage of this process (the server is another process): its
//! total is exact. Its split between user and system time is sampled ([`user_cpu`]: about
//! 10 kHz per thread), because getrusage's own split is the scheduler tick's, which a client
//! woken on a timer grid can fool; where sampling is refused, the tick split is used and the
//! table says so.
//! [`anchor`] runs vLLM's own benchmark client against the same server for comparison.

pub mod anchor;
pub mod clock;
pub mod server;
#[cfg(target_os = "linux")]
pub mod user_cpu;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::case::{Api, LoadSpec, Transport, Warmup};
use crate::client::stream::{ReadCounter, ReadCounts};
use crate::client::{Client, ClientConfig, Generation};
use crate::load::{self, Endpoint, LoadOutcome, RequestSource};
use crate::metrics::Distribution;
use crate::os::raise_open_file_limit;
use crate::plan::Shape;
use clock::ClockPair;
use server::WriteLog;

/// How the benchmark server delivers chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One chunk per write, one write per stream per step.
    Paced,
    /// Whole answers in one write (throughput), then a paced precision phase.
    Burst,
}

impl Mode {
    /// The mode's name in tables and flags.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Paced => "paced",
            Mode::Burst => "burst",
        }
    }
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// The `llm-stress` executable that serves (`bench-server`).
    pub server_exe: PathBuf,
    /// Concurrent streams, one measurement each.
    pub streams: Vec<u32>,
    /// Paced or burst.
    pub mode: Mode,
    /// Paced: the gap between a stream's chunks (zero: back to back, one chunk per write).
    pub step: Duration,
    /// Paced: every stream's chunks fall on one shared grid of `step` (synchronized rounds).
    pub aligned: bool,
    /// Paced with a step: about this many seconds of streaming per measurement (at least two
    /// requests per stream).
    pub seconds: f64,
    /// Chunks per request (paced, and burst's throughput phase).
    pub tokens: u32,
    /// Burst, and paced with a zero step: chunks to receive per measurement (requests are
    /// rounded up).
    pub chunks: u64,
    /// Burst: gap between chunks of one stream in the precision phase.
    pub paced_itl: Duration,
    /// Burst: chunks per request in the precision phase.
    pub paced_tokens: u32,
    /// Run vLLM's client against the same server after each of ours.
    pub anchor: Option<anchor::AnchorConfig>,
    /// Measurements per stream count (at least one): ours and the anchor's alternate, so
    /// that each ratio compares two measurements taken one after the other, and a machine
    /// whose speed drifts over minutes moves both sides of it.
    pub rounds: u32,
    /// How our client's streams reach the server (the direct reader, or reqwest to compare).
    pub transport: Transport,
}

/// Which client a row measured.
#[derive(Debug, Clone, PartialEq)]
pub enum Measured {
    /// This harness's client.
    LlmStress,
    /// The anchor: vLLM's benchmark client at the pinned version.
    Vllm(String),
}

/// One line of the benchmark's table.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchRow {
    /// Which client.
    pub client: Measured,
    /// Which of the stream count's rounds (from 1).
    pub round: u32,
    /// How the server delivered chunks.
    pub mode: Mode,
    /// Concurrent streams.
    pub streams: u32,
    /// Requests completed.
    pub requests: u64,
    /// Content chunks received and parsed.
    pub chunks: u64,
    /// Failed requests (should be 0).
    pub failed: u64,
    /// Wall time, seconds.
    pub wall_s: f64,
    /// User CPU time of the client process by getrusage (the scheduler tick's split), seconds.
    pub user_s: f64,
    /// System CPU time of the client process by getrusage (the scheduler tick's split),
    /// seconds. `user_s + sys_s` is exact.
    pub sys_s: f64,
    /// User CPU time of the client process sampled at about 10 kHz, seconds; or why it was
    /// not sampled (the tick split is used then).
    pub sampled_user_s: Result<f64, String>,
    /// Body reads of the streams (this harness's client only).
    pub reads: Option<ReadCounts>,
    /// Stamp − server write, ms (burst: from the precision phase).
    pub stamp_error: Option<Distribution>,
}

impl BenchRow {
    /// Chunks per second of wall time.
    pub fn chunks_per_s(&self) -> f64 {
        self.chunks as f64 / self.wall_s.max(1e-9)
    }

    /// Chunks per second of client CPU time (user + system).
    pub fn chunks_per_cpu_s(&self) -> f64 {
        self.chunks as f64 / (self.user_s + self.sys_s).max(1e-9)
    }

    /// User CPU time, seconds: sampled where it was, else the tick's (never above the total).
    pub fn user_cpu_s(&self) -> f64 {
        self.sampled_user_s
            .as_ref()
            .map_or(self.user_s, |&sampled| {
                sampled.min(self.user_s + self.sys_s)
            })
    }

    /// System CPU time, seconds: the exact total less [`user_cpu_s`](Self::user_cpu_s).
    pub fn sys_cpu_s(&self) -> f64 {
        (self.user_s + self.sys_s - self.user_cpu_s()).max(0.0)
    }

    /// How the user/system split was measured: `sampled` or `ticks`.
    pub fn user_split(&self) -> &'static str {
        if self.sampled_user_s.is_ok() {
            "sampled"
        } else {
            "ticks"
        }
    }

    /// User CPU per chunk, microseconds ([`user_cpu_s`](Self::user_cpu_s)).
    pub fn user_us_per_chunk(&self) -> f64 {
        self.user_cpu_s() * 1e6 / (self.chunks.max(1) as f64)
    }

    /// User CPU per chunk by the tick's split, microseconds.
    pub fn tick_user_us_per_chunk(&self) -> f64 {
        self.user_s * 1e6 / (self.chunks.max(1) as f64)
    }

    /// Whole-process CPU (user + system) per chunk, microseconds.
    pub fn cpu_us_per_chunk(&self) -> f64 {
        (self.user_s + self.sys_s) * 1e6 / (self.chunks.max(1) as f64)
    }

    /// Body reads and waited reads per content chunk.
    pub fn reads_per_chunk(&self) -> Option<(f64, f64)> {
        let chunks = self.chunks.max(1) as f64;
        self.reads
            .map(|r| (r.reads as f64 / chunks, r.waited as f64 / chunks))
    }
}

/// User and system CPU time of this process, seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuTimes {
    /// User time.
    pub user_s: f64,
    /// System (kernel) time.
    pub sys_s: f64,
}

impl CpuTimes {
    /// This process's CPU times so far.
    pub fn now() -> CpuTimes {
        // SAFETY: getrusage writes only the struct it is given; zeroed is a valid rusage.
        let usage = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_SELF, &mut usage);
            usage
        };
        CpuTimes::of(&usage)
    }

    /// The user and system times of a getrusage (or wait4) result.
    pub(crate) fn of(usage: &libc::rusage) -> CpuTimes {
        let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        CpuTimes {
            user_s: seconds(usage.ru_utime),
            sys_s: seconds(usage.ru_stime),
        }
    }

    /// The times spent since `earlier`.
    pub fn since(self, earlier: CpuTimes) -> CpuTimes {
        CpuTimes {
            user_s: (self.user_s - earlier.user_s).max(0.0),
            sys_s: (self.sys_s - earlier.sys_s).max(0.0),
        }
    }
}

/// Sampling of one process's user time over a measurement ([`user_cpu`], Linux only), or why
/// there is none (the tick split of getrusage is used then).
#[derive(Debug)]
pub struct UserSampling(Result<SamplingHandle, String>);

#[cfg(target_os = "linux")]
type SamplingHandle = user_cpu::UserCpuSampling;
#[cfg(not(target_os = "linux"))]
type SamplingHandle = std::convert::Infallible;

impl UserSampling {
    /// Starts sampling every thread of process `pid`.
    pub fn start(pid: u32) -> UserSampling {
        #[cfg(target_os = "linux")]
        let started = user_cpu::UserCpuSampling::start(pid).map_err(|e| e.to_string());
        #[cfg(not(target_os = "linux"))]
        let started = Err(format!(
            "sampling process {pid} needs Linux's perf_event_open"
        ));
        UserSampling(started)
    }

    /// The sampled user time since the start, seconds, or why there is none.
    pub fn finish(self) -> Result<f64, String> {
        #[cfg(target_os = "linux")]
        return self
            .0?
            .finish()
            .map(user_cpu::SampledUser::seconds)
            .map_err(|e| e.to_string());
        #[cfg(not(target_os = "linux"))]
        return match self.0 {
            Err(reason) => Err(reason),
        };
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

fn source(
    url: &str,
    requests: u64,
    tokens: u32,
    reads: &Arc<ReadCounter>,
    transport: Transport,
) -> Result<Arc<RequestSource>, BenchError> {
    let config = ClientConfig {
        reads: Some(Arc::clone(reads)),
        transport,
        ..ClientConfig::new(url, Api::Completions, "bench", Duration::from_secs(120))
    };
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

/// One measurement's plan: how the server is started and how many requests run. The anchor
/// runs the same plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Concurrent streams.
    pub streams: u32,
    /// `bench-server` arguments.
    pub server_args: Vec<String>,
    /// Measured requests (after one unmeasured request per stream).
    pub requests: u64,
    /// Chunks per request.
    pub tokens: u32,
    /// Whether the server logs its writes (the stamp error is measured).
    pub logged: bool,
}

impl Plan {
    /// The paced measurement at `streams`.
    pub fn paced(config: &BenchConfig, streams: u32) -> Plan {
        let step_us = config.step.as_micros().to_string();
        let mut server_args = vec![
            "--tokens".into(),
            config.tokens.to_string(),
            "--ttft-us".into(),
            step_us.clone(),
            "--itl-us".into(),
            step_us,
            "--one-per-write".into(),
            "--log".into(),
        ];
        if config.aligned {
            server_args.push("--aligned".into());
        }
        let per_request = u64::from(config.tokens.max(1));
        let requests = if config.step.is_zero() {
            config
                .chunks
                .div_ceil(per_request)
                .max(u64::from(streams) * 2)
        } else {
            let request_s = config.step.as_secs_f64() * (per_request + 1) as f64;
            let rounds = (config.seconds / request_s).ceil().max(2.0) as u64;
            u64::from(streams) * rounds
        };
        Plan {
            streams,
            server_args,
            requests,
            tokens: config.tokens,
            logged: true,
        }
    }

    /// Burst's throughput phase at `streams`: whole answers in one write, not logged.
    pub fn burst(config: &BenchConfig, streams: u32) -> Plan {
        let per_request = u64::from(config.tokens.max(1));
        Plan {
            streams,
            server_args: vec!["--tokens".into(), config.tokens.to_string()],
            requests: config
                .chunks
                .div_ceil(per_request)
                .max(u64::from(streams) * 2),
            tokens: config.tokens,
            logged: false,
        }
    }

    /// Burst's precision phase at `streams`: one request per stream, paced and logged.
    fn precision(config: &BenchConfig, streams: u32) -> Plan {
        Plan {
            streams,
            server_args: vec![
                "--tokens".into(),
                config.paced_tokens.to_string(),
                "--ttft-us".into(),
                "5000".into(),
                "--itl-us".into(),
                config.paced_itl.as_micros().to_string(),
                "--log".into(),
            ],
            requests: u64::from(streams),
            tokens: config.paced_tokens,
            logged: true,
        }
    }
}

/// What one run of a plan by this harness's client gave.
struct Measurement {
    outcome: LoadOutcome,
    cpu: CpuTimes,
    sampled_user_s: Result<f64, String>,
    reads: ReadCounts,
    stamp_error: Option<Distribution>,
}

/// Runs `plan` with this harness's client against a fresh server.
async fn measure(config: &BenchConfig, plan: &Plan) -> Result<Measurement, BenchError> {
    let server = spawn_server(&config.server_exe, &plan.server_args).await?;
    let counter = Arc::new(ReadCounter::default());
    let source = source(
        &server.url,
        plan.requests,
        plan.tokens,
        &counter,
        config.transport,
    )?;
    open_connections(&source, plan.streams).await;
    let (load, shape) = closed(plan.streams, plan.requests);
    let clocks = ClockPair::now();
    let sampling = UserSampling::start(std::process::id());
    let (cpu, reads) = (CpuTimes::now(), counter.counts());
    let outcome = load::run(&load, &shape, &source).await;
    let (cpu, reads) = (CpuTimes::now().since(cpu), counter.counts().since(reads));
    let sampled_user_s = sampling.finish();
    let stamp_error = if plan.logged {
        let log = fetch_log(&server.url).await?;
        Some(
            stamp_errors(&outcome, &log, clocks)
                .ok_or_else(|| BenchError::Server("no chunk was logged".into()))?,
        )
    } else {
        None
    };
    Ok(Measurement {
        outcome,
        cpu,
        sampled_user_s,
        reads,
        stamp_error,
    })
}

/// Every chunk's stamp minus the server's write instant, ms.
fn stamp_errors(outcome: &LoadOutcome, log: &WriteLog, clocks: ClockPair) -> Option<Distribution> {
    let start_ns = clocks.ns_of(outcome.window_start) as f64;
    let errors = outcome.records.iter().flat_map(|record| {
        let writes = log.get(&record.id).map(Vec::as_slice).unwrap_or_default();
        let sent_ns = start_ns + record.send_ms * 1e6;
        writes
            .iter()
            .zip(&record.chunk_ms)
            .map(move |(&write, &stamp_ms)| (sent_ns + stamp_ms * 1e6 - write as f64) / 1e6)
    });
    Distribution::from_ms(errors.collect::<Vec<_>>())
}

/// The table row of a measurement.
fn row(mode: Mode, plan: &Plan, measured: &Measurement) -> BenchRow {
    let records = &measured.outcome.records;
    let ok = records.iter().filter(|r| r.is_ok()).count() as u64;
    BenchRow {
        client: Measured::LlmStress,
        round: 1,
        mode,
        streams: plan.streams,
        requests: ok,
        chunks: records.iter().map(|r| r.chunk_ms.len() as u64).sum(),
        failed: records.len() as u64 - ok,
        wall_s: measured.outcome.duration_s,
        user_s: measured.cpu.user_s,
        sys_s: measured.cpu.sys_s,
        sampled_user_s: measured.sampled_user_s.clone(),
        reads: Some(measured.reads),
        stamp_error: measured.stamp_error,
    }
}

/// This harness's row at `streams`, and the plan the anchor repeats.
async fn ours(config: &BenchConfig, streams: u32) -> Result<(BenchRow, Plan), BenchError> {
    match config.mode {
        Mode::Paced => {
            let plan = Plan::paced(config, streams);
            let measured = measure(config, &plan).await?;
            Ok((row(Mode::Paced, &plan, &measured), plan))
        }
        Mode::Burst => {
            let plan = Plan::burst(config, streams);
            let measured = measure(config, &plan).await?;
            let mut burst = row(Mode::Burst, &plan, &measured);
            let precise = measure(config, &Plan::precision(config, streams)).await?;
            burst.stamp_error = precise.stamp_error;
            Ok((burst, plan))
        }
    }
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

/// Measures every stream count (and, with an anchor, vLLM's client after each), printing each
/// row to stderr as it is done. A skipped anchor is said once, with its reason.
pub async fn run(config: &BenchConfig) -> Result<Vec<BenchRow>, BenchError> {
    raise_open_file_limit();
    let mut rows = Vec::new();
    let mut anchor = config.anchor.clone();
    for &streams in &config.streams {
        for round in 1..=config.rounds.max(1) {
            let (row, plan) = ours(config, streams).await?;
            keep(&mut rows, row, round);
            let Some(settings) = &anchor else {
                continue;
            };
            match anchor::run(config, settings, &plan).await {
                Ok(row) => keep(&mut rows, row, round),
                Err(reason) => {
                    eprintln!("anchor skipped: {reason}");
                    anchor = None;
                }
            }
        }
    }
    Ok(rows)
}

/// Numbers `row` as of `round`, prints it to stderr (with why its user time is the tick's,
/// if it is) and keeps it.
fn keep(rows: &mut Vec<BenchRow>, mut row: BenchRow, round: u32) {
    row.round = round;
    say_unsampled(&row);
    eprintln!("{}", render_row(&row));
    rows.push(row);
}

/// Says on stderr why a row's user time is the tick's, if it is.
fn say_unsampled(row: &BenchRow) {
    if let Err(reason) = &row.sampled_user_s {
        eprintln!(
            "{} at {} streams: user/system split by getrusage's ticks ({reason})",
            row_client(row),
            row.streams
        );
    }
}

fn row_client(row: &BenchRow) -> String {
    match &row.client {
        Measured::LlmStress => "llm-stress".to_string(),
        Measured::Vllm(version) => format!("vLLM {version}"),
    }
}

/// The header of the benchmark's table.
pub const HEADER: &str = "| client | round | mode | streams | requests | chunks | failed | wall s | chunks/s | user CPU s | sys CPU s | user µs/chunk | CPU µs/chunk | chunks per CPU-s | reads/chunk | waited reads/chunk | stamp error p50 ms | p99 ms | max ms | user/sys split | tick user µs/chunk |\n|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|";

/// One table line.
pub fn render_row(row: &BenchRow) -> String {
    let (p50, p99, max) = row.stamp_error.map_or_else(
        || ("-".into(), "-".into(), "-".into()),
        |d| {
            (
                format!("{:.3}", d.p50),
                format!("{:.3}", d.p99),
                format!("{:.3}", d.max),
            )
        },
    );
    let (reads, waited) = row.reads_per_chunk().map_or_else(
        || ("-".into(), "-".into()),
        |(r, w)| (format!("{r:.3}"), format!("{w:.3}")),
    );
    let client = row_client(row);
    format!(
        "| {client} | {} | {} | {} | {} | {} | {} | {:.2} | {:.0} | {:.3} | {:.3} | {:.3} | {:.3} | {:.0} | {reads} | {waited} | {p50} | {p99} | {max} | {} | {:.3} |",
        row.round,
        row.mode.name(),
        row.streams,
        row.requests,
        row.chunks,
        row.failed,
        row.wall_s,
        row.chunks_per_s(),
        row.user_cpu_s(),
        row.sys_cpu_s(),
        row.user_us_per_chunk(),
        row.cpu_us_per_chunk(),
        row.chunks_per_cpu_s(),
        row.user_split(),
        row.tick_user_us_per_chunk(),
    )
}

/// The ratios of vLLM's client's CPU per chunk to ours, per stream count, as a table: user
/// CPU and whole-process CPU (user + system). Each anchor row is paired with our row of the
/// same stream count and round; over several rounds the table gives the median of the pairs'
/// ratios and their range. User CPU compares sampled figures when both rows of every pair have
/// them, else all pairs by their tick figures (the table says which). Empty when no anchor row
/// was measured.
pub fn render_ratios(rows: &[BenchRow]) -> String {
    let mut streams: Vec<u32> = rows
        .iter()
        .filter(|r| matches!(r.client, Measured::Vllm(_)))
        .map(|r| r.streams)
        .collect();
    streams.dedup();
    let mut out = String::new();
    for streams in streams {
        let pairs: Vec<(&BenchRow, &BenchRow)> = rows
            .iter()
            .filter(|r| matches!(r.client, Measured::Vllm(_)) && r.streams == streams)
            .filter_map(|theirs| {
                rows.iter()
                    .find(|r| {
                        r.client == Measured::LlmStress
                            && r.streams == streams
                            && r.round == theirs.round
                    })
                    .map(|ours| (ours, theirs))
            })
            .collect();
        if pairs.is_empty() {
            continue;
        }
        if out.is_empty() {
            out.push_str("| streams | rounds | user CPU per chunk, vLLM ÷ llm-stress | range | user/sys split | whole-process CPU per chunk, vLLM ÷ llm-stress | range |\n|---:|---:|---:|---|---|---:|---|\n");
        }
        let sampled = pairs
            .iter()
            .all(|(ours, theirs)| ours.sampled_user_s.is_ok() && theirs.sampled_user_s.is_ok());
        let user = pairs.iter().map(|(ours, theirs)| {
            if sampled {
                (theirs.user_us_per_chunk(), ours.user_us_per_chunk())
            } else {
                (
                    theirs.tick_user_us_per_chunk(),
                    ours.tick_user_us_per_chunk(),
                )
            }
        });
        let whole = pairs
            .iter()
            .map(|(ours, theirs)| (theirs.cpu_us_per_chunk(), ours.cpu_us_per_chunk()));
        let (user, user_range) = summarize_ratios(user);
        let (whole, whole_range) = summarize_ratios(whole);
        out.push_str(&format!(
            "| {streams} | {} | {user} | {user_range} | {} | {whole} | {whole_range} |\n",
            pairs.len(),
            if sampled { "sampled" } else { "ticks" },
        ));
    }
    out
}

/// The median and the range of the ratios theirs ÷ ours of `pairs`, as table cells. A pair
/// whose figure of ours is zero (a time the clock's tick did not see) gives no ratio: the
/// median is then of the others, and the range says how many had none.
fn summarize_ratios(pairs: impl Iterator<Item = (f64, f64)>) -> (String, String) {
    use statrs::statistics::{Data, Max, Median, Min};
    let mut unseen = 0;
    let ratios: Vec<f64> = pairs
        .filter_map(|(theirs, ours)| {
            let ratio = (ours > 0.0).then(|| theirs / ours);
            unseen += usize::from(ratio.is_none());
            ratio
        })
        .collect();
    let unseen_note = if unseen > 0 {
        format!(" ({unseen} under the clock's tick)")
    } else {
        String::new()
    };
    if ratios.is_empty() {
        return (
            "- (ours under the clock's tick)".to_string(),
            format!("-{unseen_note}"),
        );
    }
    // statrs's median is the mean of the middle two of an even count.
    let ratios = Data::new(ratios);
    (
        format!("{:.2}", ratios.median()),
        format!("{:.2}–{:.2}{unseen_note}", ratios.min(), ratios.max()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(step_ms: u64) -> BenchConfig {
        BenchConfig {
            server_exe: PathBuf::from("llm-stress"),
            streams: vec![4],
            mode: Mode::Paced,
            step: Duration::from_millis(step_ms),
            aligned: false,
            seconds: 3.0,
            tokens: 64,
            chunks: 1000,
            paced_itl: Duration::from_millis(20),
            paced_tokens: 16,
            anchor: None,
            rounds: 1,
            transport: Transport::Direct,
        }
    }

    #[test]
    fn rounds_pair_each_anchor_row_with_ours_of_the_same_round() {
        let vllm = || Measured::Vllm("0.33.0".into());
        let round = |mut row: BenchRow, round: u32| {
            row.round = round;
            row
        };
        // Three rounds whose user ratios are 4, 8 and 5 (whole-process 2, 3, 1): the median
        // pairs each anchor row with our row of its own round, not with our best or first.
        let rows = [
            round(sampled_row(Measured::LlmStress, 0.002, 0.0, Ok(0.001)), 1),
            round(sampled_row(vllm(), 0.004, 0.0, Ok(0.004)), 1),
            round(sampled_row(Measured::LlmStress, 0.002, 0.0, Ok(0.0005)), 2),
            round(sampled_row(vllm(), 0.006, 0.0, Ok(0.004)), 2),
            round(sampled_row(Measured::LlmStress, 0.004, 0.0, Ok(0.0008)), 3),
            round(sampled_row(vllm(), 0.004, 0.0, Ok(0.004)), 3),
        ];
        let table = render_ratios(&rows);
        assert!(
            table.contains("| 4 | 3 | 5.00 | 4.00–8.00 | sampled | 2.00 | 1.00–3.00 |"),
            "{table}"
        );
        // Two rounds: the median is the mean of the middle two.
        let table = render_ratios(&rows[..4]);
        assert!(
            table.contains("| 4 | 2 | 6.00 | 4.00–8.00 | sampled | 2.50 | 2.00–3.00 |"),
            "{table}"
        );
        // One pair by ticks makes the whole stream count's comparison by ticks.
        let mut mixed = rows.clone();
        mixed[5].sampled_user_s = Err("refused".into());
        assert!(
            render_ratios(&mixed).contains("| ticks |"),
            "{}",
            render_ratios(&mixed)
        );
    }

    #[test]
    fn a_paced_plan_writes_one_chunk_per_write_for_about_the_seconds_asked() {
        let plan = Plan::paced(&config(10), 4);
        assert!(plan.server_args.contains(&"--one-per-write".to_string()));
        assert!(plan.logged);
        // 65 steps of 10 ms per request: 5 rounds make 3 s.
        assert_eq!(plan.requests, 4 * 5);
        let zero = Plan::paced(&config(0), 4);
        assert_eq!(zero.requests, 1000u64.div_ceil(64).max(8));
    }

    fn measured_row(client: Measured, user_s: f64, sys_s: f64) -> BenchRow {
        sampled_row(client, user_s, sys_s, Err("not sampled".into()))
    }

    fn sampled_row(
        client: Measured,
        user_s: f64,
        sys_s: f64,
        sampled_user_s: Result<f64, String>,
    ) -> BenchRow {
        BenchRow {
            client,
            round: 1,
            mode: Mode::Paced,
            streams: 4,
            requests: 10,
            chunks: 1000,
            failed: 0,
            wall_s: 1.0,
            user_s,
            sys_s,
            sampled_user_s,
            reads: None,
            stamp_error: None,
        }
    }

    #[test]
    fn ratios_compare_cpu_per_chunk_with_the_same_stream_count() {
        let rows = [
            measured_row(Measured::LlmStress, 0.001, 0.002),
            measured_row(Measured::Vllm("0.33.0".into()), 0.005, 0.001),
        ];
        assert_eq!(rows[0].user_us_per_chunk(), 1.0);
        let table = render_ratios(&rows);
        assert!(
            table.contains("| 4 | 1 | 5.00 | 5.00–5.00 | ticks | 2.00 | 2.00–2.00 |"),
            "{table}"
        );
        assert!(render_ratios(&rows[..1]).is_empty());
    }

    #[test]
    fn sampled_user_time_replaces_the_tick_split_only_when_both_rows_have_it() {
        let vllm = || Measured::Vllm("0.33.0".into());
        let ours = sampled_row(Measured::LlmStress, 0.002, 0.001, Ok(0.0005));
        // The total stays getrusage's; the split is the sampled one.
        assert_eq!((ours.user_cpu_s(), ours.sys_cpu_s()), (0.0005, 0.0025));
        assert_eq!(
            (ours.user_us_per_chunk(), ours.user_split()),
            (0.5, "sampled")
        );
        assert_eq!(ours.tick_user_us_per_chunk(), 2.0);
        let theirs = sampled_row(vllm(), 0.004, 0.002, Ok(0.005));
        let table = render_ratios(&[ours.clone(), theirs]);
        assert!(
            table.contains("| 4 | 1 | 10.00 | 10.00–10.00 | sampled | 2.00 | 2.00–2.00 |"),
            "{table}"
        );
        // One side unsampled: both sides by ticks.
        let unsampled = measured_row(vllm(), 0.004, 0.002);
        let table = render_ratios(&[ours, unsampled]);
        assert!(
            table.contains("| 4 | 1 | 2.00 | 2.00–2.00 | ticks | 2.00 | 2.00–2.00 |"),
            "{table}"
        );
        // A sampled figure above the exact total (sampling error) is capped at it.
        let capped = sampled_row(Measured::LlmStress, 0.001, 0.0, Ok(0.0011));
        assert_eq!((capped.user_cpu_s(), capped.sys_cpu_s()), (0.001, 0.0));
    }

    #[test]
    fn a_row_without_reads_or_stamps_shows_dashes() {
        let line = render_row(&measured_row(Measured::Vllm("0.33.0".into()), 0.005, 0.001));
        assert!(
            line.starts_with("| vLLM 0.33.0 | 1 | paced | 4 |"),
            "{line}"
        );
        assert!(
            line.ends_with("| - | - | - | - | - | ticks | 5.000 |"),
            "{line}"
        );
        assert_eq!(
            line.matches('|').count(),
            HEADER
                .lines()
                .next()
                .unwrap_or_default()
                .matches('|')
                .count()
        );
    }
}
