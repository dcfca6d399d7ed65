//! Running one trial end to end: server, load, summary, verdict, reports. Shared by the test
//! harness and the CLI.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use crate::case::{AttachSpec, Destination, Expect, Kind, LoadMode, LoadedCase, ServerSpec};
use crate::client::{Client, ClientConfig, CountTokens, Generation};
use crate::load::{self, Endpoint, LoadOutcome, RequestSource, Shape};
use crate::matrix::Combination;
use crate::metrics::{RequestRecord, Summary};
use crate::prompts::{self, TokenCounter, Wanted};
use crate::report::{self, EndpointSummary, TrialReport};
use crate::server::RunningServer;
use crate::verdict::{self, Check, Status, Verdict};

/// One trial to run: a kind, a case and one combination of its matrix.
#[derive(Debug, Clone)]
pub struct TrialPlan {
    /// What the trial does.
    pub kind: Kind,
    /// The case (shared by all its trials).
    pub case: Arc<LoadedCase>,
    /// The combination.
    pub combination: Combination,
    /// How the combination is driven (closed, open at a rate, users).
    pub shape: Shape,
}

impl TrialPlan {
    /// The trial name without the kind: `case::isl128_osl64_c4_n4`.
    pub fn name(&self) -> String {
        format!(
            "{}::{}",
            self.case.spec.name,
            self.shape.slug(&self.combination)
        )
    }

    /// Why this trial cannot run in this build, if it cannot.
    pub fn unsupported_reason(&self) -> Option<&'static str> {
        match self.kind {
            Kind::Perf | Kind::Stress => None,
            Kind::Accuracy => Some("the accuracy phase is not in this build yet"),
            Kind::Sim => Some("simulator studies are not in this build yet"),
        }
    }
}

/// Settings shared by every trial of a run.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// Identifies the run in reports.
    pub run_id: String,
    /// Output folder (results.csv and trial folders go under it).
    pub out_dir: PathBuf,
    /// Attach every trial to this server instead of the case's.
    pub url_override: Option<String>,
}

impl RunContext {
    /// A context from the environment: `LLM_STRESS_RUN_ID` or nextest's run id or a fresh one,
    /// `LLM_STRESS_OUT` (or `out`), and `LLM_STRESS_URL`.
    pub fn from_env(out: Option<PathBuf>, url: Option<String>) -> RunContext {
        RunContext {
            run_id: run_id(),
            out_dir: report::trial_dir::out_dir(out.as_deref()),
            url_override: url.or_else(|| std::env::var(crate::server::URL_ENV).ok()),
        }
    }
}

fn run_id() -> String {
    if let Some(id) = ["LLM_STRESS_RUN_ID", "NEXTEST_RUN_ID"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    {
        return id;
    }
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let compact: String = stamp
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    format!("{compact}-{}", std::process::id())
}

/// What a finished trial produced.
#[derive(Debug, Clone)]
pub struct TrialOutcome {
    /// The result model every report is a view of.
    pub report: TrialReport,
    /// Whether the trial passed (the verdict is what the case expects).
    pub passed: bool,
    /// Where the trial's folder was written.
    pub dir: PathBuf,
}

/// Why a trial's results could not be written.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[from] std::io::Error),
    /// Writing reports failed.
    #[error(transparent)]
    Report(#[from] report::ReportError),
}

/// Environment variable setting the client runtime's worker threads.
pub const CLIENT_THREADS_ENV: &str = "LLM_STRESS_CLIENT_THREADS";

/// Worker threads of the client runtime unless set: one thread handles about a million
/// streamed chunks per second (see the README's benchmark), far more than a server on the
/// same machine produces, and leaves the other cores to that server. The open-loop schedule
/// and the embedded server have threads of their own.
pub const DEFAULT_CLIENT_THREADS: usize = 1;

/// The async runtime load runs on, with `threads` workers (default
/// [`DEFAULT_CLIENT_THREADS`]).
pub fn client_runtime(threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.filter(|t| *t > 0).unwrap_or(DEFAULT_CLIENT_THREADS))
        .enable_all()
        .build()
}

/// Runs one trial and writes its reports (CSV row, trial folder). A server that cannot be
/// had, or requests that fail, make a FAIL verdict with the evidence; only failing to write
/// results is an error.
pub fn execute(plan: &TrialPlan, ctx: &RunContext) -> Result<TrialOutcome, RunError> {
    let threads = std::env::var(CLIENT_THREADS_ENV)
        .ok()
        .and_then(|v| v.parse().ok());
    let runtime = client_runtime(threads)?;
    let measured = runtime.block_on(measure(plan, ctx));
    let verdict = Verdict::from_checks(measured.checks);
    let expect_fail = plan.case.spec.expect == Expect::Fail;
    let spec = &plan.case.spec;
    let c = &plan.combination;
    let report = TrialReport {
        run_id: ctx.run_id.clone(),
        timestamp: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        trial: plan.name(),
        kind: plan.kind,
        case: spec.name.clone(),
        model: plan.case.model.name.clone(),
        server: measured.server_label.to_string(),
        api: spec.api.as_str().to_string(),
        isl: c.isl,
        osl: c.osl,
        mode: plan.shape.mode().as_str().to_string(),
        concurrency: plan
            .shape
            .concurrency()
            .or(spec.load.max_in_flight)
            .unwrap_or(0),
        rate: plan.shape.rate(),
        num_prompts: plan.shape.pool_size(),
        adjusted: c
            .adjusted
            .map(|a| format!("{}/{} {}", a.isl, a.osl, a.policy.as_str())),
        summary: measured.summary,
        endpoints: measured.endpoints,
        accuracy: None,
        accuracy_threshold: None,
        verdict,
        expect_fail,
    };
    let passed = !report::trial_dir::trial_failed(&report);
    report::csv::append(&ctx.out_dir.join("results.csv"), &report)?;
    let dir = report::trial_dir::write(&ctx.out_dir, &report, &measured.records, !passed)?;
    Ok(TrialOutcome {
        report,
        passed,
        dir,
    })
}

/// What the load phase of a trial produced.
struct Measured {
    summary: Summary,
    endpoints: Vec<EndpointSummary>,
    records: Vec<RequestRecord>,
    checks: Vec<Check>,
    server_label: &'static str,
}

impl Measured {
    fn failed(server_label: &'static str, reason: String) -> Measured {
        Measured {
            summary: Summary::default(),
            endpoints: Vec::new(),
            records: Vec::new(),
            checks: vec![server_check(reason)],
            server_label,
        }
    }
}

async fn measure(plan: &TrialPlan, ctx: &RunContext) -> Measured {
    let spec = &plan.case.spec;
    let destinations = match &ctx.url_override {
        // One attached server replaces every endpoint of the case.
        Some(url) => vec![Destination {
            name: "default".into(),
            weight: 1.0,
            server: ServerSpec::Attach(AttachSpec {
                url: url.clone(),
                served_model: None,
            }),
            served_model: None,
        }],
        None => spec.destinations(),
    };
    let label = destinations
        .first()
        .map_or("embedded", |d| d.server.label());
    let mut servers = Vec::new();
    for destination in &destinations {
        match RunningServer::bring_up(&destination.server, &plan.case.model, None).await {
            Ok(server) => servers.push(server),
            Err(e) => {
                shutdown_all(servers).await;
                return Measured::failed(label, format!("endpoint `{}`: {e}", destination.name));
            }
        }
    }
    let result = drive(plan, &destinations, &servers).await;
    shutdown_all(servers).await;
    match result {
        Err(reason) => Measured::failed(label, reason),
        Ok((outcome, endpoint_names)) => judge(plan, outcome, &endpoint_names, label),
    }
}

async fn shutdown_all(servers: Vec<RunningServer>) {
    for server in servers {
        server.shutdown().await;
    }
}

/// Builds the clients and prompts, and runs the load.
async fn drive(
    plan: &TrialPlan,
    destinations: &[Destination],
    servers: &[RunningServer],
) -> Result<(LoadOutcome, Vec<String>), String> {
    let spec = &plan.case.spec;
    let api_key = match &spec.client.api_key_env {
        None => None,
        Some(var) => Some(std::env::var(var).map_err(|_| {
            format!("environment variable `{var}` (client.api_key_env) is not set")
        })?),
    };
    // A local tokenizer also counts each answer, to check the server's counts (or stand in
    // for them when it gives none).
    let output_counter: Option<Arc<dyn CountTokens>> = match (
        &plan.case.model.tokenizer,
        spec.prompts.use_server_tokenizer,
    ) {
        (Some(file), false) => {
            let path = plan
                .case
                .model_path
                .parent()
                .unwrap_or(Path::new("."))
                .join(file);
            Some(Arc::new(cached_tokenizer(&path)?))
        }
        _ => None,
    };
    let mut endpoints = Vec::with_capacity(servers.len());
    for (destination, server) in destinations.iter().zip(servers) {
        let config = ClientConfig {
            base_url: server.base_url.clone(),
            api: spec.api,
            model: destination
                .served_model
                .clone()
                .unwrap_or_else(|| server.served_model.clone()),
            timeout: Duration::from_secs_f64(spec.load.timeout_s),
            stream: spec.client.stream,
            headers: spec.client.headers.clone().into_iter().collect(),
            api_key: api_key.clone(),
            tokenizer: output_counter.clone(),
        };
        let client = Client::new(config).map_err(|e| e.to_string())?;
        endpoints.push(Endpoint {
            name: destination.name.clone(),
            weight: destination.weight,
            client,
        });
    }
    let names = endpoints.iter().map(|e| e.name.clone()).collect();
    let (measured, warmup) = prompts_for(plan, &endpoints, &servers[0]).await?;
    let source = RequestSource::new(endpoints, measured, warmup, spec.load.seed)
        .map_err(|e| e.to_string())?;
    let outcome = load::run(&spec.load, &plan.shape, &Arc::new(source)).await;
    Ok((outcome, names))
}

/// The token counter a case's prompts are measured with: the server's `/tokenize`
/// (`prompts.use_server_tokenizer`), the model spec's `tokenizer.json`, or words (exact for the
/// embedded server only).
fn token_counter(
    plan: &TrialPlan,
    endpoints: &[Endpoint],
    server: &RunningServer,
) -> Result<TokenCounter, String> {
    let case = &plan.case;
    if case.spec.prompts.use_server_tokenizer {
        let http = endpoints
            .first()
            .map(|e| e.client.http().clone())
            .ok_or("no endpoint")?;
        return Ok(TokenCounter::server(
            http,
            &server.base_url,
            &server.served_model,
        ));
    }
    match &case.model.tokenizer {
        Some(file) => {
            let path = case
                .model_path
                .parent()
                .unwrap_or(Path::new("."))
                .join(file);
            cached_tokenizer(&path)
        }
        None => Ok(TokenCounter::words()),
    }
}

/// Tokenizer files are read once per process and shared by its trials.
fn cached_tokenizer(path: &Path) -> Result<TokenCounter, String> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, TokenCounter>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(counter) = cache.lock().ok().and_then(|c| c.get(path).cloned()) {
        return Ok(counter);
    }
    let counter = TokenCounter::from_file(path).map_err(|e| e.to_string())?;
    if let Ok(mut cache) = cache.lock() {
        cache.insert(path.to_path_buf(), counter.clone());
    }
    Ok(counter)
}

/// Builds the measured and warmup prompts (before anything is measured), and gives each
/// endpoint's client the local tokenizer, if any, to count output text with.
async fn prompts_for(
    plan: &TrialPlan,
    endpoints: &[Endpoint],
    server: &RunningServer,
) -> Result<(Vec<Generation>, Vec<Generation>), String> {
    let spec = &plan.case.spec;
    let counter = token_counter(plan, endpoints, server)?;
    let case_dir = plan.case.path.parent().unwrap_or(Path::new("."));
    let c = &plan.combination;
    let build = |count: u32, index_base: u64| {
        let counter = &counter;
        async move {
            let wanted = Wanted {
                isl: c.isl,
                osl: c.osl,
                seed: spec.load.seed,
                count: count as usize,
                index_base,
            };
            prompts::build(&spec.prompts, case_dir, counter, &wanted)
                .await
                .map(|items| {
                    items
                        .into_iter()
                        .map(|item| Generation {
                            prompt: item.text,
                            max_tokens: item.osl,
                        })
                        .collect::<Vec<_>>()
                })
                .map_err(|e| format!("prompts: {e}"))
        }
    };
    let measured = build(plan.shape.pool_size(), 0).await?;
    let warmup_count = load::warmup_pool_size(&spec.load, &plan.shape);
    let warmup = if warmup_count == 0 {
        Vec::new()
    } else {
        build(warmup_count, u64::MAX / 2).await?
    };
    Ok((measured, warmup))
}

/// Summarises the outcome (overall and per endpoint) and checks it.
fn judge(
    plan: &TrialPlan,
    outcome: LoadOutcome,
    endpoint_names: &[String],
    server_label: &'static str,
) -> Measured {
    let spec = &plan.case.spec;
    let rate = plan.shape.rate();
    let summary = Summary::from_records(&outcome.records, outcome.duration_s)
        .with_arrivals(rate, outcome.dropped);
    let endpoints = if endpoint_names.len() > 1 {
        endpoint_names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let mine: Vec<RequestRecord> = outcome
                    .records
                    .iter()
                    .filter(|r| r.endpoint as usize == i)
                    .cloned()
                    .collect();
                EndpointSummary {
                    name: name.clone(),
                    summary: Summary::from_records(&mine, outcome.duration_s),
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut checks = vec![verdict::run_check(&summary)];
    // Reference targets are measured at a concurrency: an open-loop trial has none to match.
    let targets = if plan.shape.mode() == LoadMode::Open {
        None
    } else {
        plan.combination.targets.as_ref()
    };
    checks.extend(verdict::target_checks(targets, &spec.targets, &summary));
    checks.extend(spec.slo.iter().map(|slo| slo.check(&summary)));
    Measured {
        summary,
        endpoints,
        records: outcome.records,
        checks,
        server_label,
    }
}

fn server_check(reason: String) -> Check {
    Check {
        name: "server".to_string(),
        source: "run".to_string(),
        actual: None,
        target: None,
        ratio: None,
        rule: "the server is usable".to_string(),
        status: Status::Fail,
        reason,
    }
}
