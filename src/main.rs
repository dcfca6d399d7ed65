//! `llm-stress`: run stress cases against a server, serve the embedded simulated server, or
//! print a case's parameter matrix.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use llm_stress::accuracy::Task;
use llm_stress::bench::server::{Script, ScriptServer};
use llm_stress::bench::{self, BenchConfig};
use llm_stress::case::{self, AnswerSpec, CorrectRate, EmbeddedSpec};
use llm_stress::harness::discovery::{Discovered, discover};
use llm_stress::matrix;
use llm_stress::report::table::{self, Numbers};
use llm_stress::runner::{self, RunContext};
use llm_stress::server::embedded::EmbeddedServer;
use llm_stress::server::embedded::answers::AnswerKey;

#[derive(Parser)]
#[command(
    name = "llm-stress",
    version,
    about = "Stress-test LLM inference servers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the cases' perf, accuracy and stress trials and write reports.
    Run {
        /// Folder of case files.
        #[arg(default_value = "stress-cases")]
        cases: PathBuf,
        /// Attach every trial to this OpenAI-compatible server instead of the case's own.
        #[arg(long, env = "LLM_STRESS_URL")]
        url: Option<String>,
        /// Output folder.
        #[arg(long, env = "LLM_STRESS_OUT")]
        out: Option<PathBuf>,
        /// Only trials whose `[kind] case::combination` name contains this text.
        #[arg(long)]
        filter: Option<String>,
    },
    /// Serve the embedded simulated OpenAI-compatible server until Ctrl-C.
    Serve {
        /// Port on 127.0.0.1 (0 picks a free one).
        #[arg(long, default_value_t = 8000)]
        port: u16,
        /// Model name the server reports.
        #[arg(long, default_value = "llm-stress-sim")]
        model: String,
        /// Time to first token once admitted, milliseconds.
        #[arg(long, default_value_t = EmbeddedSpec::default().ttft_ms)]
        ttft_ms: f64,
        /// Time between output tokens, milliseconds.
        #[arg(long, default_value_t = EmbeddedSpec::default().tpot_ms)]
        tpot_ms: f64,
        /// Requests served at once; the rest queue.
        #[arg(long, default_value_t = EmbeddedSpec::default().slots)]
        slots: usize,
        /// Extra prefill time per prompt token, microseconds.
        #[arg(long, default_value_t = 0.0)]
        prefill_us_per_token: f64,
        /// Tokens per streamed chunk.
        #[arg(long, default_value_t = 1)]
        tokens_per_chunk: u32,
        /// Answer the questions of this case's accuracy task (synthetic arithmetic is always
        /// answered).
        #[arg(long, value_name = "CASE.yaml")]
        answers: Option<PathBuf>,
        /// Chance of answering a known question right.
        #[arg(long, default_value_t = 1.0)]
        correct: f64,
    },
    /// The discrete-event serving simulator: run one simulation, the scaling study, or its
    /// benchmark.
    Sim {
        #[command(subcommand)]
        command: llm_stress::sim::cli::SimCommand,
    },
    /// Print the parameter combinations a case generates.
    Matrix {
        /// The case file.
        case: PathBuf,
    },
    /// Measure the client itself: chunks per client CPU-second and timestamp error against a
    /// scripted server in a child process.
    BenchClient {
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
    },
    /// Serve the scripted benchmark server (used by bench-client) until Ctrl-C.
    BenchServer {
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
    },
}

fn main() -> ExitCode {
    match run_cli(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run_cli(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Run {
            cases,
            url,
            out,
            filter,
        } => run(&cases, url, out, filter.as_deref()),
        Command::Serve {
            port,
            model,
            ttft_ms,
            tpot_ms,
            slots,
            prefill_us_per_token,
            tokens_per_chunk,
            answers,
            correct,
        } => {
            if !(0.0..=1.0).contains(&correct) {
                bail!("--correct must be a chance between 0 and 1, not {correct}");
            }
            let spec = EmbeddedSpec {
                ttft_ms,
                tpot_ms,
                slots,
                prefill_us_per_token,
                tokens_per_chunk,
                answers: AnswerSpec {
                    correct: CorrectRate::Fixed(correct),
                    seed: 0,
                },
            };
            let key = match answers {
                Some(case) => answer_key(&case)?,
                None => AnswerKey::default(),
            };
            serve(spec, model, port, key)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::BenchClient {
            streams,
            tokens,
            chunks,
            paced_itl_ms,
            paced_tokens,
            client_threads,
        } => {
            let config = BenchConfig {
                server_exe: std::env::current_exe().context("finding this executable")?,
                streams,
                tokens,
                chunks,
                paced_itl: Duration::from_millis(paced_itl_ms),
                paced_tokens,
            };
            let runtime =
                runner::client_runtime(client_threads).context("starting the async runtime")?;
            println!("{}", bench::HEADER);
            for row in runtime.block_on(bench::run(&config))? {
                println!("{}", bench::render_row(&row));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::BenchServer {
            port,
            tokens,
            ttft_us,
            itl_us,
            log,
            threads,
        } => {
            let script = Script {
                ttft: Duration::from_micros(ttft_us),
                itl: Duration::from_micros(itl_us),
                tokens,
                stall_first: Duration::ZERO,
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads.max(1))
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(async {
                bench::raise_open_file_limit();
                let server = ScriptServer::start(script, port, log).await?;
                println!("listening on {}", server.url);
                server.run_until_interrupted().await;
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sim { command } => {
            llm_stress::sim::cli::execute(command, &mut std::io::stdout().lock())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Matrix { case } => {
            let loaded = case::load_case(&case)?;
            let combinations = matrix::generate(&loaded.spec.matrix, &loaded.model)
                .with_context(|| format!("{}: key `matrix`", case.display()))?;
            println!(
                "{}: {} combinations (max_context {}, max_concurrency {})",
                loaded.spec.name,
                combinations.len(),
                loaded
                    .spec
                    .matrix
                    .max_context
                    .unwrap_or(loaded.model.max_context),
                loaded.model.max_concurrency
            );
            print!("{}", matrix::render_table(&combinations));
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn run(
    cases: &std::path::Path,
    url: Option<String>,
    out: Option<PathBuf>,
    filter: Option<&str>,
) -> Result<ExitCode> {
    let ctx = RunContext::from_env(out, url);
    let mut failed = Vec::new();
    let mut ran = 0usize;
    for found in discover(cases, None) {
        match found {
            Discovered::Broken {
                name,
                kind,
                message,
            } => {
                eprintln!("[{kind}] {name}: {message}\n");
                failed.push(format!("[{kind}] {name}"));
            }
            Discovered::Plan(plan) => {
                let full = format!("[{}] {}", plan.kind.as_str(), plan.name());
                if filter.is_some_and(|f| !full.contains(f)) {
                    continue;
                }
                if let Some(reason) = plan.unsupported_reason() {
                    eprintln!("skipping {full}: {reason}");
                    continue;
                }
                ran += 1;
                eprintln!("running {full}");
                let outcome = runner::execute(&plan, &ctx)?;
                println!("{}", table::render(&outcome.report, Numbers::Measured));
                if !outcome.passed {
                    failed.push(full);
                }
            }
        }
    }
    llm_stress::server::spawn::stop_all();
    println!(
        "{ran} trials, {} failed; reports in {}",
        failed.len(),
        ctx.out_dir.display()
    );
    for name in &failed {
        println!("FAILED {name}");
    }
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The key to the questions of a case's accuracy task.
fn answer_key(case_path: &std::path::Path) -> Result<AnswerKey> {
    let loaded = case::load_case(case_path)?;
    let accuracy = loaded
        .spec
        .accuracy
        .as_ref()
        .with_context(|| format!("{} has no accuracy section", case_path.display()))?;
    let case_dir = case_path.parent().unwrap_or(std::path::Path::new("."));
    let task = Task::from_spec(accuracy, case_dir)?;
    let key = AnswerKey::for_task(&task);
    eprintln!(
        "answering {} questions of {} ({})",
        key.len(),
        task.name(),
        task.dataset_label()
    );
    Ok(key)
}

fn serve(spec: EmbeddedSpec, model: String, port: u16, key: AnswerKey) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let server = EmbeddedServer::start_answering(spec, model, port, Arc::new(key))
            .await
            .context("starting the embedded server")?;
        println!("serving on {} (Ctrl-C to stop)", server.base_url());
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
        server.shutdown().await;
        Ok(())
    })
}
