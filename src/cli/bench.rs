//! `llm-stress bench-client` and `bench-server`: the client's own cost and precision against a
//! scripted server.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::bench::anchor::AnchorConfig;
use crate::bench::server::{Script, ScriptServer};
use crate::bench::{self, BenchConfig, Mode};
use crate::case::Transport;
use crate::session;

/// Measure the client itself.
#[derive(clap::Args)]
pub struct ClientArgs {
    /// Concurrent streams, one measurement each.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 64, 512, 2048])]
    streams: Vec<u32>,
    /// paced: one chunk per write, one write per stream per step, as servers stream; burst:
    /// whole answers in one write (throughput), then a paced precision phase.
    #[arg(long, value_enum, default_value_t = ModeArg::Paced)]
    mode: ModeArg,
    /// Paced: gap between a stream's chunks, milliseconds (0: back to back, still one chunk
    /// per write).
    #[arg(long, default_value_t = 10.0)]
    step: f64,
    /// Paced: every stream's chunks fall on one shared grid of the step (synchronized rounds,
    /// as a batch scheduler produces them).
    #[arg(long)]
    aligned: bool,
    /// Paced with a step: seconds of streaming per measurement (at least two requests per
    /// stream).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Chunks per request (paced, and burst's throughput phase).
    #[arg(long, default_value_t = 256)]
    tokens: u32,
    /// Chunks received per measurement (burst, and paced with --step 0).
    #[arg(long, default_value_t = 400_000)]
    chunks: u64,
    /// Burst: gap between a stream's chunks in the precision phase, milliseconds.
    #[arg(long, default_value_t = 20)]
    paced_itl_ms: u64,
    /// Burst: chunks per request in the precision phase.
    #[arg(long, default_value_t = 16)]
    paced_tokens: u32,
    /// Also run another client against the same server after each of ours: `vllm` runs
    /// vLLM's benchmark client at a pinned version (scripts/vllm-anchor.py; skipped with the
    /// reason when Python or the download is unavailable).
    #[arg(long, value_enum)]
    anchor: Option<AnchorArg>,
    /// The Python interpreter that starts the anchor's script.
    #[arg(long, default_value = "python3")]
    anchor_python: std::path::PathBuf,
    /// Measurements per stream count: with an anchor, ours and the anchor's alternate, and
    /// the ratio table gives each stream count's median ratio over the rounds and its range.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// How our client's streams reach the server: the harness's own HTTP/1.1 reader, as
    /// trials use by default, or reqwest (`client.transport: reqwest`).
    #[arg(long, value_enum, default_value_t = TransportArg::Direct)]
    transport: TransportArg,
    /// Worker threads of the client's runtime (default: as trials use, 1 or
    /// `LLM_STRESS_CLIENT_THREADS`).
    #[arg(long, env = "LLM_STRESS_CLIENT_THREADS")]
    client_threads: Option<usize>,
}

/// `--mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ModeArg {
    Paced,
    Burst,
}

/// `--transport`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum TransportArg {
    Direct,
    Reqwest,
}

/// `--anchor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum AnchorArg {
    Vllm,
}

/// Runs the benchmark against `bench-server` in a child process and prints one row per
/// stream count.
pub fn exec_client(args: ClientArgs) -> Result<ExitCode> {
    let config = BenchConfig {
        server_exe: std::env::current_exe().context("finding this executable")?,
        streams: args.streams,
        mode: match args.mode {
            ModeArg::Paced => Mode::Paced,
            ModeArg::Burst => Mode::Burst,
        },
        step: Duration::try_from_secs_f64(args.step / 1e3)
            .context("--step must be a non-negative number of milliseconds")?,
        aligned: args.aligned,
        seconds: args.seconds,
        tokens: args.tokens,
        chunks: args.chunks,
        paced_itl: Duration::from_millis(args.paced_itl_ms),
        paced_tokens: args.paced_tokens,
        anchor: args.anchor.map(|AnchorArg::Vllm| AnchorConfig {
            python: args.anchor_python.clone(),
            ..AnchorConfig::default_script()
        }),
        rounds: args.rounds,
        transport: match args.transport {
            TransportArg::Direct => Transport::Direct,
            TransportArg::Reqwest => Transport::Reqwest,
        },
    };
    let runtime =
        session::client_runtime(args.client_threads).context("starting the async runtime")?;
    let rows = runtime.block_on(bench::run(&config))?;
    println!("{}", bench::HEADER);
    for row in &rows {
        println!("{}", bench::render_row(row));
    }
    let ratios = bench::render_ratios(&rows);
    if !ratios.is_empty() {
        println!("\n{ratios}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Serve the scripted benchmark server.
#[derive(clap::Args)]
pub struct ServerArgs {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Content chunks per answer.
    #[arg(long, default_value_t = 256)]
    tokens: u32,
    /// From request to first chunk, microseconds.
    #[arg(long, default_value_t = 0)]
    ttft_us: u64,
    /// Between chunks, microseconds (0: back to back).
    #[arg(long, default_value_t = 0)]
    itl_us: u64,
    /// Log every write instant and serve the log at GET /log.
    #[arg(long)]
    log: bool,
    /// Every chunk in its own write even with no latency (otherwise a zero-latency answer is
    /// one write).
    #[arg(long)]
    one_per_write: bool,
    /// Chunk instants on one grid of --itl-us shared by every connection (synchronized
    /// rounds).
    #[arg(long)]
    aligned: bool,
    /// Worker threads of the server's runtime.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

/// Serves the scripted server until Ctrl-C.
pub fn exec_server(args: ServerArgs) -> Result<ExitCode> {
    let script = Script {
        ttft: Duration::from_micros(args.ttft_us),
        itl: Duration::from_micros(args.itl_us),
        tokens: args.tokens,
        stall_first: Duration::ZERO,
        one_per_write: args.one_per_write,
        aligned: args.aligned,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        crate::os::raise_open_file_limit();
        let server = ScriptServer::start(script, args.port, args.log).await?;
        println!("listening on {}", server.url);
        server.run_until_interrupted().await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
