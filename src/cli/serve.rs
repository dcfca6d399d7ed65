//! `llm-stress serve`: the embedded OpenAI-compatible server, on its fixed latency model or on
//! the simulator against the wall clock, until Ctrl-C.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};

use super::values::{HardwareArg, ModelArg, SchedulerArg, value_name};
use crate::accuracy::Task;
use crate::case::{self, AnswerSpec, CorrectRate, EmbeddedSpec, FaultSpec};
use crate::server::embedded::EmbeddedServer;
use crate::server::embedded::answers::AnswerKey;
use crate::sim::config::SimConfig;

/// Serve the embedded simulated server.
#[derive(clap::Args)]
pub struct Args {
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
    /// Request-to-request variation of TTFT, as a coefficient of variation (0.1 = 10 %).
    #[arg(long, default_value_t = 0.0)]
    ttft_jitter: f64,
    /// Request-to-request variation of the time per output token, as a CV.
    #[arg(long, default_value_t = 0.0)]
    tpot_jitter: f64,
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
}

/// The embedded server's injected faults, as `serve` flags (see a case's `faults`).
#[derive(clap::Args)]
pub struct FaultArgs {
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
    /// The faults as a case would give them, or why they are not valid.
    pub fn spec(&self) -> Result<FaultSpec> {
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
pub struct SimServeArgs {
    /// Serve with the discrete-event simulator on this hardware profile against the wall
    /// clock; --ttft-ms, --tpot-ms, --slots and --prefill-us-per-token are then ignored.
    #[arg(long, value_name = "NAME")]
    profile: Option<HardwareArg>,
    /// Model profile of the simulator; default smollm2-135m on cpu-2core, else llama-3.1-8b.
    #[arg(long, value_name = "NAME")]
    model_profile: Option<ModelArg>,
    /// Serve with the simulator configured by this YAML file (as `sim run --config`; its
    /// workload only places multi-bin boundaries and sets the length predictor's noise).
    #[arg(long, value_name = "FILE")]
    sim_config: Option<PathBuf>,
    /// Simulator scheduler.
    #[arg(long)]
    scheduler: Option<SchedulerArg>,
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
        if let Some(profile) = self.profile {
            config.hardware = value_name(profile);
            if self.model_profile.is_none() && profile == HardwareArg::Cpu2Core {
                config.model = value_name(ModelArg::Smollm2_135m);
            }
        }
        if let Some(model) = self.model_profile {
            config.model = value_name(model);
        }
        if let Some(kind) = self.scheduler {
            config.scheduler.kind = kind.into();
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

/// Serves until Ctrl-C.
pub fn exec(args: Args) -> Result<ExitCode> {
    for (flag, cv) in [
        ("--ttft-jitter", args.ttft_jitter),
        ("--tpot-jitter", args.tpot_jitter),
    ] {
        if !(0.0..=1.0).contains(&cv) {
            bail!("{flag} must be a coefficient of variation between 0 and 1, not {cv}");
        }
    }
    if !(0.0..=1.0).contains(&args.correct) {
        bail!(
            "--correct must be a chance between 0 and 1, not {}",
            args.correct
        );
    }
    let spec = EmbeddedSpec {
        ttft_ms: args.ttft_ms,
        tpot_ms: args.tpot_ms,
        slots: args.slots,
        prefill_us_per_token: args.prefill_us_per_token,
        tokens_per_chunk: args.tokens_per_chunk,
        ttft_jitter: args.ttft_jitter,
        tpot_jitter: args.tpot_jitter,
        jitter_seed: 0,
        prefix_cache: false,
        answers: AnswerSpec {
            correct: CorrectRate::Fixed(args.correct),
            seed: 0,
            logprobs: true,
        },
        faults: args.faults.spec()?,
        sim: args.sim.config()?.map(Box::new),
    };
    let key = match &args.answers {
        Some(case) => answer_key(case)?,
        None => AnswerKey::default(),
    };
    serve(spec, args.model, args.port, key)?;
    Ok(ExitCode::SUCCESS)
}

/// The key to the questions of a case's accuracy tasks.
fn answer_key(case_path: &Path) -> Result<AnswerKey> {
    let loaded = case::load_case(case_path)?;
    let accuracy = loaded
        .spec
        .accuracy
        .as_ref()
        .with_context(|| format!("{} has no accuracy section", case_path.display()))?;
    let case_dir = case_path.parent().unwrap_or(Path::new("."));
    let tasks = accuracy
        .tasks()
        .iter()
        .map(|spec| Task::from_spec(spec, case_dir))
        .collect::<Result<Vec<Task>, _>>()?;
    let key = AnswerKey::for_tasks(&tasks);
    let names: Vec<String> = tasks
        .iter()
        .map(|t| format!("{} ({})", t.name(), t.dataset_label()))
        .collect();
    eprintln!("answering {} questions of {}", key.len(), names.join(", "));
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
