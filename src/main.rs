//! `llm-stress`: run stress cases against a server, report on a run, serve the embedded
//! simulated server, or print a case's parameter matrix.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use llm_stress::accuracy::Task;
use llm_stress::bench::server::{Script, ScriptServer};
use llm_stress::bench::{self, BenchConfig};
use llm_stress::case::{self, AnswerSpec, CorrectRate, EmbeddedSpec, FaultSpec};
use llm_stress::harness::discovery::{Discovered, discover};
use llm_stress::matrix;
use llm_stress::os;
use llm_stress::progress::{self, ProgressDisplay};
use llm_stress::report::analysis::Thresholds;
use llm_stress::report::html::Extras;
use llm_stress::report::pushgateway::{self, Gateway, PeriodicPush};
use llm_stress::report::summary_md::{self, Detail};
use llm_stress::report::table::{self, Numbers};
use llm_stress::report::{publish, trial_dir};
use llm_stress::runner::{self, RunContext};
use llm_stress::server::embedded::EmbeddedServer;
use llm_stress::server::embedded::answers::AnswerKey;
use llm_stress::sim::config::SimConfig;
use llm_stress::sim::scheduler::SchedulerKind;

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

/// The embedded server's injected faults, as `serve` flags (see a case's `faults`).
#[derive(clap::Args)]
struct FaultArgs {
    /// Share of requests answered with --error-status.
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// Status of injected errors.
    #[arg(long, default_value_t = 500)]
    error_status: u16,
    /// Share of streams cut halfway.
    #[arg(long, default_value_t = 0.0)]
    disconnect_rate: f64,
    /// Share of streams that stall halfway for --stall-ms.
    #[arg(long, default_value_t = 0.0)]
    stall_rate: f64,
    /// Length of a stall, milliseconds.
    #[arg(long, default_value_t = 0.0)]
    stall_ms: f64,
    /// Share of streams with one malformed event halfway.
    #[arg(long, default_value_t = 0.0)]
    malformed_rate: f64,
    /// Delay before every response's first byte, milliseconds.
    #[arg(long, default_value_t = 0.0)]
    slow_first_byte_ms: f64,
    /// Requests allowed to wait for a place; more are refused with --queue-full-status.
    #[arg(long)]
    max_queue: Option<usize>,
    /// Status of a refusal for a full queue (429 or 503).
    #[arg(long, default_value_t = 429)]
    queue_full_status: u16,
    /// Seeds which requests get which fault.
    #[arg(long, default_value_t = 0)]
    fault_seed: u64,
}

impl FaultArgs {
    fn spec(&self) -> Result<FaultSpec> {
        let spec = FaultSpec {
            error_rate: self.error_rate,
            error_status: Some(self.error_status),
            disconnect_rate: self.disconnect_rate,
            stall_rate: self.stall_rate,
            stall_ms: self.stall_ms,
            malformed_rate: self.malformed_rate,
            slow_first_byte_ms: self.slow_first_byte_ms,
            max_queue: self.max_queue,
            queue_full_status: Some(self.queue_full_status),
            seed: self.fault_seed,
        };
        match spec.problem() {
            Some(problem) => bail!("faults: {problem}"),
            None => Ok(spec),
        }
    }
}

/// `serve` on the simulator instead of fixed latencies.
#[derive(clap::Args)]
struct SimServeArgs {
    /// Serve with the discrete-event simulator on this hardware profile (h100-sxm, h200,
    /// a100-80gb, cpu-2core) against the wall clock; --ttft-ms, --tpot-ms, --slots and
    /// --prefill-us-per-token are then ignored.
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
    /// Model profile of the simulator (llama-3.1-8b, llama-3.1-70b, smollm2-135m); default
    /// smollm2-135m on cpu-2core, else llama-3.1-8b.
    #[arg(long, value_name = "NAME")]
    model_profile: Option<String>,
    /// Serve with the simulator configured by this YAML file (as `sim run --config`; its
    /// workload only places multi-bin boundaries and sets the length predictor's noise).
    #[arg(long, value_name = "FILE")]
    sim_config: Option<PathBuf>,
    /// Simulator scheduler: static, continuous or multi-bin.
    #[arg(long, value_parser = llm_stress::cli::sim::parse_scheduler)]
    scheduler: Option<SchedulerKind>,
    /// Simulator batch size (static, multi-bin) or maximum batch size (continuous).
    #[arg(long)]
    batch_size: Option<u32>,
    /// Simulator replicas.
    #[arg(long)]
    replicas: Option<usize>,
}

impl SimServeArgs {
    /// The simulator's configuration, if `serve` should run on it.
    fn config(&self) -> Result<Option<SimConfig>> {
        let mut config = match (&self.sim_config, &self.profile) {
            (Some(path), _) => SimConfig::load(path)?,
            (None, Some(_)) => SimConfig::default(),
            (None, None) => {
                if self.model_profile.is_some()
                    || self.scheduler.is_some()
                    || self.batch_size.is_some()
                    || self.replicas.is_some()
                {
                    bail!("simulator flags need --profile or --sim-config");
                }
                return Ok(None);
            }
        };
        if let Some(profile) = &self.profile {
            config.hardware = profile.clone();
            if self.model_profile.is_none() && profile == "cpu-2core" {
                config.model = "smollm2-135m".into();
            }
        }
        if let Some(model) = &self.model_profile {
            config.model = model.clone();
        }
        if let Some(kind) = self.scheduler {
            config.scheduler.kind = kind;
        }
        if let Some(batch) = self.batch_size {
            config.scheduler.batch_size = batch;
        }
        if let Some(replicas) = self.replicas {
            config.replicas = replicas;
        }
        config.engine_config()?;
        Ok(Some(config))
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the cases' perf, accuracy, stress and sim trials and write reports.
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
        /// Live progress of each load: auto (a bar on a terminal, else a line every 10 s on
        /// stderr), bar, lines or off.
        #[arg(long, env = progress::PROGRESS_ENV, default_value = "auto")]
        progress: String,
        #[command(flatten)]
        analysis: AnalysisArgs,
        #[command(flatten)]
        push: PushArgs,
        /// Also push every so often while the run goes (e.g. `30s`), not only at its end.
        #[arg(long, env = "LLM_STRESS_PUSH_INTERVAL", requires = "pushgateway")]
        push_interval: Option<humantime::Duration>,
    },
    /// Gather a run's trials into `summary.md` and `report.html` in its folder, print the
    /// summary, and optionally push its metrics to a Prometheus Pushgateway.
    Report {
        /// Output folder (default: `LLM_STRESS_OUT`, else target/llm-stress).
        out: Option<PathBuf>,
        /// The run id (default: the newest run in the folder).
        #[arg(long)]
        run: Option<String>,
        /// Print the detailed summary (every latency's distribution) too.
        #[arg(long)]
        detailed: bool,
        #[command(flatten)]
        analysis: AnalysisArgs,
        #[command(flatten)]
        push: PushArgs,
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
        #[command(flatten)]
        faults: FaultArgs,
        #[command(flatten)]
        sim: SimServeArgs,
    },
    /// The discrete-event serving simulator: run one simulation, the scaling study, or its
    /// benchmark.
    Sim {
        #[command(subcommand)]
        command: llm_stress::cli::sim::SimCommand,
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

/// Thresholds of the automatic analysis.
#[derive(clap::Args)]
struct AnalysisArgs {
    /// YAML file of analysis thresholds (see the README); keys left out keep their defaults.
    #[arg(long, value_name = "FILE")]
    thresholds: Option<PathBuf>,
    /// One analysis threshold, such as `e2el_p90_s.warning=2` (repeatable; applied after
    /// --thresholds).
    #[arg(long = "threshold", value_name = "NAME.LEVEL=VALUE")]
    threshold: Vec<String>,
}

impl AnalysisArgs {
    fn thresholds(&self) -> Result<Thresholds> {
        let base = match &self.thresholds {
            Some(path) => Thresholds::from_file(path)?,
            None => Thresholds::default(),
        };
        Ok(base.with_overrides(&self.threshold)?)
    }
}

/// Where to push metrics.
#[derive(clap::Args)]
struct PushArgs {
    /// Push the run's metrics to this Prometheus Pushgateway, such as http://127.0.0.1:9091.
    #[arg(long, env = "LLM_STRESS_PUSHGATEWAY")]
    pushgateway: Option<String>,
    /// The `job` grouping label.
    #[arg(long, env = "LLM_STRESS_PUSH_JOB", default_value = pushgateway::DEFAULT_JOB)]
    push_job: String,
    /// The `instance` grouping label (default: this machine's host name).
    #[arg(long, env = "LLM_STRESS_PUSH_INSTANCE")]
    push_instance: Option<String>,
}

impl PushArgs {
    fn gateway(&self) -> Option<Gateway> {
        let url = self.pushgateway.clone().filter(|u| !u.is_empty())?;
        Some(Gateway {
            url,
            job: self.push_job.clone(),
            instance: self.push_instance.clone().unwrap_or_else(os::host_name),
        })
    }
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
            progress,
            analysis,
            push,
            push_interval,
        } => {
            let style = progress::style_from(&progress).map_err(anyhow::Error::msg)?;
            let reporting = Reporting {
                thresholds: analysis.thresholds()?,
                gateway: push.gateway(),
                push_interval: push_interval.map(Into::into),
            };
            run(&cases, url, out, filter.as_deref(), style, &reporting)
        }
        Command::Report {
            out,
            run,
            detailed,
            analysis,
            push,
        } => {
            let thresholds = analysis.thresholds()?;
            let out = trial_dir::out_dir(out.as_deref());
            let written =
                publish::write_run(&out, run.as_deref(), &thresholds, &Extras::default())?;
            let detail = if detailed {
                Detail::Full
            } else {
                Detail::Compact
            };
            print!(
                "{}",
                summary_md::render(&written.run, &thresholds, Numbers::Measured, detail)
            );
            println!("\nsummary: {}", written.summary.display());
            println!("report:  {}", written.html.display());
            if let Some(gateway) = push.gateway() {
                let reports: Vec<_> = written.run.trials.iter().map(|t| &t.report).collect();
                gateway.push_blocking(pushgateway::exposition(&reports, &thresholds))?;
                println!("pushed:  {}", gateway.endpoint());
            }
            Ok(ExitCode::SUCCESS)
        }
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
            faults,
            sim,
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
                faults: faults.spec()?,
                sim: sim.config()?.map(Box::new),
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
                os::raise_open_file_limit();
                let server = ScriptServer::start(script, port, log).await?;
                println!("listening on {}", server.url);
                server.run_until_interrupted().await;
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sim { command } => {
            llm_stress::cli::sim::execute(command, &mut std::io::stdout().lock())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Matrix { case } => {
            let loaded = case::load_case(&case)?;
            let (Some(spec), Some(model)) = (&loaded.spec.matrix, &loaded.model) else {
                bail!(
                    "{}: the case needs a `matrix` and a `model` to generate combinations (a case of only `sim` trials has none)",
                    case.display()
                );
            };
            let combinations = matrix::generate(spec, model)
                .with_context(|| format!("{}: key `matrix`", case.display()))?;
            println!(
                "{}: {} combinations (max_context {}, max_concurrency {})",
                loaded.spec.name,
                combinations.len(),
                spec.max_context.unwrap_or(model.max_context),
                model.max_concurrency
            );
            print!("{}", matrix::render_table(&combinations));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// What `run` does with its results besides the trial reports.
struct Reporting {
    thresholds: Thresholds,
    gateway: Option<Gateway>,
    push_interval: Option<Duration>,
}

fn run(
    cases: &std::path::Path,
    url: Option<String>,
    out: Option<PathBuf>,
    filter: Option<&str>,
    progress: Option<progress::Style>,
    reporting: &Reporting,
) -> Result<ExitCode> {
    let ctx = RunContext::from_env(out, url);
    let display = progress.map(ProgressDisplay::start);
    let pusher = reporting
        .gateway
        .clone()
        .zip(reporting.push_interval)
        .map(|(gateway, every)| PeriodicPush::start(gateway, every));
    let mut failed = Vec::new();
    let mut reports = Vec::new();
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
                eprintln!("running {full}");
                if let Some(display) = &display {
                    display.trial(&full);
                }
                let outcome = runner::execute(&plan, &ctx);
                if let Some(display) = &display {
                    display.finish_trial();
                }
                let outcome = outcome?;
                println!("{}", table::render(&outcome.report, Numbers::Measured));
                if !outcome.passed {
                    failed.push(full);
                }
                reports.push(outcome.report);
                if let Some(pusher) = &pusher {
                    let all: Vec<_> = reports.iter().collect();
                    pusher.update(pushgateway::exposition(&all, &reporting.thresholds));
                }
            }
        }
    }
    drop(display);
    llm_stress::server::spawn::stop_all();
    println!(
        "{} trials, {} failed; reports in {}",
        reports.len(),
        failed.len(),
        ctx.out_dir.display()
    );
    for name in &failed {
        println!("FAILED {name}");
    }
    if !reports.is_empty() {
        let written = publish::write_run(
            &ctx.out_dir,
            Some(&ctx.run_id),
            &reporting.thresholds,
            &Extras::default(),
        )?;
        println!("summary: {}", written.summary.display());
        println!("report:  {}", written.html.display());
        let all: Vec<_> = written.run.trials.iter().map(|t| &t.report).collect();
        let body = pushgateway::exposition(&all, &reporting.thresholds);
        // The trials decide the exit code; a gateway that cannot be reached is reported.
        let pushed = match (pusher, &reporting.gateway) {
            (Some(pusher), Some(gateway)) => Some((pusher.finish(body), gateway)),
            (None, Some(gateway)) => Some((gateway.push_blocking(body), gateway)),
            _ => None,
        };
        match pushed {
            Some((Ok(()), gateway)) => println!("pushed:  {}", gateway.endpoint()),
            Some((Err(e), _)) => eprintln!("warning: {e}"),
            None => {}
        }
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
