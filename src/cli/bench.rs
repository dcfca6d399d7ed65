//! `llm-stress bench-client` and `bench-server`: the client's own cost and precision against a
//! scripted server.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::bench::server::{Script, ScriptServer};
use crate::bench::{self, BenchConfig};
use crate::session;

/// Measure the client itself.
#[derive(clap::Args)]
pub struct ClientArgs {
    /// Concurrent streams, one measurement each.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 64, 512, 2048])]
    streams: Vec<u32>,
    /// Chunks per request in the throughput phase.
    #[arg(long, default_value_t = 256)]
    tokens: u32,
    /// Chunks received per throughput measurement.
    #[arg(long, default_value_t = 400_000)]
    chunks: u64,
    /// Gap between a stream's chunks in the precision phase, milliseconds.
    #[arg(long, default_value_t = 20)]
    paced_itl_ms: u64,
    /// Chunks per request in the precision phase.
    #[arg(long, default_value_t = 16)]
    paced_tokens: u32,
    /// Worker threads of the client's runtime (default: as trials use, 1 or
    /// `LLM_STRESS_CLIENT_THREADS`).
    #[arg(long, env = "LLM_STRESS_CLIENT_THREADS")]
    client_threads: Option<usize>,
}

/// Runs the benchmark against `bench-server` in a child process and prints one row per
/// stream count.
pub fn exec_client(args: ClientArgs) -> Result<ExitCode> {
    let config = BenchConfig {
        server_exe: std::env::current_exe().context("finding this executable")?,
        streams: args.streams,
        tokens: args.tokens,
        chunks: args.chunks,
        paced_itl: Duration::from_millis(args.paced_itl_ms),
        paced_tokens: args.paced_tokens,
    };
    let runtime =
        session::client_runtime(args.client_threads).context("starting the async runtime")?;
    println!("{}", bench::HEADER);
    for row in runtime.block_on(bench::run(&config))? {
        println!("{}", bench::render_row(&row));
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
