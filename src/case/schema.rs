//! The YAML schema of cases (`stress-cases/*.yaml`) and model specs (`stress-cases/models/*.yaml`).
//!
//! Every struct denies unknown keys, so a typo is an error that names the key and suggests the
//! closest known one (see [`super::load`]).

use serde::{Deserialize, Serialize};

pub use super::accuracy::{
    AccuracySpec, AccuracyTasks, AccuracyThreshold, ArithmeticSpec, ExternalScore, Operator, Score,
    TaskName, ThresholdKind, tool_choice_problem,
};
pub use super::answer::{AnswerSpec, CorrectRate};
pub use super::fault::FaultSpec;
pub use super::request::{
    ClientSpec, EndpointSpec, MetricsSpec, PromptSource, PromptSpec, SessionSpec, ThinkDist,
    ThinkSpec, Transport, TurnsDist, TurnsSpec,
};
pub use super::sim::{SimStudySpec, StudyPreset};
use super::slo::Slo;
pub use super::traffic::{
    Arrival, LoadMode, LoadSpec, Rates, SessionProfile, Span, Warmup, WhenFull,
};
use crate::sim::config::SimConfig;

/// What a trial does: load only, accuracy only, both at once, or a simulator study.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Load only; judged on performance targets and SLOs.
    Perf,
    /// Accuracy only; judged on the accuracy threshold.
    Accuracy,
    /// Load and accuracy at the same time; both must pass.
    Stress,
    /// Simulator studies in virtual time.
    Sim,
}

impl Kind {
    /// The lower-case name used in trial names (`[perf] …`).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Perf => "perf",
            Kind::Accuracy => "accuracy",
            Kind::Stress => "stress",
            Kind::Sim => "sim",
        }
    }

    /// Whether trials of this kind drive load at a server.
    pub fn drives_load(self) -> bool {
        matches!(self, Kind::Perf | Kind::Stress)
    }

    /// Whether trials of this kind talk to a server, and so need the case's model spec and
    /// matrix (every kind but `sim`).
    pub fn uses_server(self) -> bool {
        self != Kind::Sim
    }
}

/// One case file: what to run, against which server, and how it is judged.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseSpec {
    /// Case name; the first part of every trial name. Letters, digits, `-` and `_`.
    pub name: String,
    /// Free text shown in reports.
    #[serde(default)]
    pub description: Option<String>,
    /// Name of the model spec in `models/` (file stem). Required by `perf`, `accuracy` and
    /// `stress` trials; `sim` trials simulate the model of their study instead.
    #[serde(default)]
    pub model: Option<String>,
    /// Kinds of trial: `perf` and `stress` make one per combination, `accuracy` one per case,
    /// `sim` one per step of the `sim` study.
    pub kinds: Vec<Kind>,
    /// The server under test (the embedded one when neither this nor `endpoints` is given).
    #[serde(default)]
    pub server: Option<ServerSpec>,
    /// Several servers sharing the load by weight (instead of `server`).
    #[serde(default)]
    pub endpoints: Vec<EndpointSpec>,
    /// With several `endpoints`: also measure each endpoint alone (a `_solo-NAME` trial per
    /// load trial), so the report can compare each endpoint's throughput alone and together.
    #[serde(default)]
    pub contention: bool,
    /// Protocol used to talk to the server.
    #[serde(default)]
    pub api: Api,
    /// Streaming, headers and API key.
    #[serde(default)]
    pub client: ClientSpec,
    /// Where prompts come from and how their tokens are counted.
    #[serde(default)]
    pub prompts: PromptSpec,
    /// How parameter combinations are generated. Required by `perf`, `accuracy` and `stress`
    /// trials.
    #[serde(default)]
    pub matrix: Option<MatrixSpec>,
    /// Load shape shared by every combination.
    #[serde(default)]
    pub load: LoadSpec,
    /// Which tier of the model spec's reference targets applies, and with what tolerance.
    #[serde(default)]
    pub targets: TargetSpec,
    /// The case's own thresholds, such as `ttft_ms.p95 < 500` (see [`Slo`]).
    #[serde(default)]
    pub slo: Vec<Slo>,
    /// The per-request SLOs goodput counts (`goodput: { ttft_ms: 200, tpot_ms: 50 }`): the
    /// summary's `goodput` is the fraction of measured requests that met them all.
    #[serde(default)]
    pub goodput: Option<crate::metrics::RequestSlo>,
    /// Accuracy task, or a list of them (run by `accuracy` and `stress` trials).
    #[serde(default)]
    pub accuracy: Option<AccuracyTasks>,
    /// The scaling study of `sim` trials.
    #[serde(default)]
    pub sim: Option<SimStudySpec>,
    /// Labels to select the case's trials by (`run --tag pr`, `LLM_STRESS_TAG=pr`), such as
    /// `pr` or `nightly`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// How a run compared with a baseline (`run --baseline`) judges this case's trials.
    #[serde(default)]
    pub gate: Option<super::gate::Gate>,
    /// Expected verdict. `fail` documents a case that must fail its checks: the trial passes
    /// only when the verdict is FAIL, so the failure path is exercised on every run.
    #[serde(default)]
    pub expect: Expect,
}

/// One server requests may go to, with its share of the requests.
#[derive(Debug, Clone, PartialEq)]
pub struct Destination {
    /// Name in per-endpoint summaries (`default` for a single server).
    pub name: String,
    /// Relative share of requests.
    pub weight: f64,
    /// The server.
    pub server: ServerSpec,
    /// Model name to send, when it differs from the model spec's.
    pub served_model: Option<String>,
}

/// What a trial name adds for a trial that measures one endpoint alone (`contention: true`):
/// the trial `case::SLUG_solo-NAME` measures endpoint `NAME` alone, beside `case::SLUG`, which
/// spreads the same load over every endpoint.
pub const SOLO_TAG: &str = "_solo-";

impl CaseSpec {
    /// Whether the trials replay ShareGPT conversations turn by turn: ShareGPT prompts
    /// (`prompts.source: sharegpt`) with conversations (`prompts.sessions`, or
    /// `load.mode: sessions`).
    pub fn replays_conversations(&self) -> bool {
        self.prompts.source == PromptSource::Sharegpt
            && (self.prompts.sessions.is_some() || self.load.mode == LoadMode::Sessions)
    }

    /// The servers requests go to: the `endpoints`, or the one `server` (embedded by default).
    pub fn destinations(&self) -> Vec<Destination> {
        if self.endpoints.is_empty() {
            return vec![Destination {
                name: "default".into(),
                weight: 1.0,
                server: self.server.clone().unwrap_or_default(),
                served_model: None,
            }];
        }
        self.endpoints
            .iter()
            .map(|e| Destination {
                name: e.name.clone(),
                weight: e.weight,
                server: e.server.clone(),
                served_model: e.served_model.clone(),
            })
            .collect()
    }
}

/// The verdict a case expects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    /// The normal case: every check must pass.
    #[default]
    Pass,
    /// At least one check must fail (a documented failure example).
    Fail,
}

/// Protocol adapter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    /// OpenAI `/v1/chat/completions`.
    #[default]
    Chat,
    /// OpenAI `/v1/completions`.
    Completions,
    /// llama.cpp's native `/completion` (`n_predict`, `tokens_predicted`, `timings`).
    LlamaCpp,
}

impl Api {
    /// Name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Api::Chat => "chat",
            Api::Completions => "completions",
            Api::LlamaCpp => "llama_cpp",
        }
    }
}

/// The server a case runs against.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerSpec {
    /// The crate's own simulated OpenAI-compatible server, started inside the trial process.
    Embedded(EmbeddedSpec),
    /// An already running server at a URL (`LLM_STRESS_URL` overrides it).
    Attach(AttachSpec),
    /// A server the harness starts from a command, on a free port, and stops at the end.
    Spawn(SpawnSpec),
}

impl Default for ServerSpec {
    fn default() -> Self {
        ServerSpec::Embedded(EmbeddedSpec::default())
    }
}

impl ServerSpec {
    /// What kind of server it is, as reports name it.
    pub fn kind(&self) -> ServerKind {
        match self {
            ServerSpec::Embedded(_) => ServerKind::Embedded,
            ServerSpec::Attach(_) => ServerKind::Attach,
            ServerSpec::Spawn(_) => ServerKind::Spawn,
        }
    }
}

/// What served a trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerKind {
    /// The crate's own embedded server.
    Embedded,
    /// A server the harness started from a command.
    Spawn,
    /// A server at a URL that was already running.
    Attach,
    /// No server: a sim trial's simulator, in virtual time.
    Simulator,
}

impl ServerKind {
    /// `embedded`, `spawn`, `attach` or `simulator`.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerKind::Embedded => "embedded",
            ServerKind::Spawn => "spawn",
            ServerKind::Attach => "attach",
            ServerKind::Simulator => "simulator",
        }
    }
}

/// Latency model of the embedded server.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbeddedSpec {
    /// Time from admission to the first token, in milliseconds.
    #[serde(deserialize_with = "super::limits::delay_ms")]
    pub ttft_ms: f64,
    /// Time between output tokens, in milliseconds.
    #[serde(deserialize_with = "super::limits::delay_ms")]
    pub tpot_ms: f64,
    /// Requests served at once; the rest wait in a FIFO queue.
    #[serde(deserialize_with = "super::limits::places")]
    pub slots: usize,
    /// Extra prefill time per prompt token, in microseconds.
    #[serde(deserialize_with = "super::limits::delay_ms")]
    pub prefill_us_per_token: f64,
    /// Tokens carried by each streamed chunk.
    #[serde(deserialize_with = "super::limits::tokens")]
    pub tokens_per_chunk: u32,
    /// Variation of the time to the first token from request to request, as a coefficient
    /// of variation (0.10: std is 10 % of the mean); each request's is drawn from a
    /// log-normal of mean 1 and this CV, seeded by `jitter_seed`. 0 (the default): none.
    pub ttft_jitter: f64,
    /// The same for the time per output token (one draw per request, for all its tokens).
    pub tpot_jitter: f64,
    /// Seed of the jitter draws (in arrival order).
    pub jitter_seed: u64,
    /// Model a prefix cache: a prompt's leading blocks of 16 tokens already seen skip their
    /// prefill (`prefill_us_per_token`), and `/metrics` counts vLLM's
    /// `vllm:prefix_cache_queries_total` and `vllm:prefix_cache_hits_total`.
    pub prefix_cache: bool,
    /// Answer mode: how often it answers the accuracy task's questions right.
    pub answers: AnswerSpec,
    /// Faults to inject: errors, refusals when the queue is full, cut streams, stalls,
    /// malformed events, a slow first byte.
    pub faults: FaultSpec,
    /// Serve with the discrete-event simulator (hardware and model profiles, scheduler, KV
    /// cache) against the wall clock instead of the fixed latencies above (`ttft_ms`,
    /// `tpot_ms`, `slots`, `prefill_us_per_token` are then ignored).
    pub sim: Option<Box<SimConfig>>,
}

impl Default for EmbeddedSpec {
    fn default() -> Self {
        Self {
            ttft_ms: 20.0,
            tpot_ms: 5.0,
            slots: 8,
            prefill_us_per_token: 0.0,
            tokens_per_chunk: 1,
            ttft_jitter: 0.0,
            tpot_jitter: 0.0,
            jitter_seed: 0,
            prefix_cache: false,
            answers: AnswerSpec::default(),
            faults: FaultSpec::default(),
            sim: None,
        }
    }
}

/// A running server to attach to.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AttachSpec {
    /// Base URL, such as `http://127.0.0.1:8000`.
    pub url: String,
    /// Model name sent in requests; defaults to the first model `/v1/models` lists.
    #[serde(default)]
    pub served_model: Option<String>,
}

/// A server started from a command for the trials that need it, and stopped (its whole
/// process group) when the run ends.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SpawnSpec {
    /// Shell command (`sh -c`). `{port}` (a free loopback port), `{host}` (`127.0.0.1`) and
    /// `{name}` for each `vars` entry are substituted; environment variables expand as in sh.
    pub command: String,
    /// Values for `{name}` in the command.
    #[serde(default)]
    pub vars: std::collections::BTreeMap<String, String>,
    /// Environment of the server (added to the harness's own).
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    /// Working folder, relative to the case file (default: the case file's folder).
    #[serde(default)]
    pub cwd: Option<String>,
    /// Seconds to wait for the server to answer its health check.
    #[serde(
        default = "default_startup_timeout_s",
        deserialize_with = "super::limits::timeout_seconds"
    )]
    pub startup_timeout_s: f64,
    /// Seconds a server shared by the trial processes of a run (under nextest) stays up with
    /// no trial holding it, before its supervisor stops it.
    #[serde(
        default = "default_idle_timeout_s",
        deserialize_with = "super::limits::timeout_seconds"
    )]
    pub idle_timeout_s: f64,
    /// Model name sent in requests (default: the model spec's `served_name`, else what
    /// `/v1/models` lists first).
    #[serde(default)]
    pub served_model: Option<String>,
    /// Environment variables that must name existing files (the server binary, the model):
    /// without them the case's trials are listed as ignored with `install_hint`, or fail when
    /// `LLM_STRESS_REQUIRE_REAL=1`.
    #[serde(default)]
    pub requires_files: Vec<String>,
    /// How to get what `requires_files` names.
    #[serde(default)]
    pub install_hint: Option<String>,
}

fn default_startup_timeout_s() -> f64 {
    120.0
}

fn default_idle_timeout_s() -> f64 {
    60.0
}

/// Matrix generation mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatrixMode {
    /// One combination: ISL = 0.75 × max_context, OSL 128, concurrency 1, one prompt.
    #[default]
    Single,
    /// The standard sweep over fractions of the context, OSLs, concurrencies and references.
    Multiple,
    /// The full cross product of the given lists.
    Custom,
}

/// What to do when ISL + OSL exceeds the context.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FitPolicy {
    /// Scale both sides proportionally.
    #[default]
    Neutral,
    /// Keep ISL, shrink OSL.
    PreserveIsl,
    /// Keep OSL, shrink ISL.
    PreserveOsl,
}

impl FitPolicy {
    /// The name used in case files and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            FitPolicy::Neutral => "neutral",
            FitPolicy::PreserveIsl => "preserve_isl",
            FitPolicy::PreserveOsl => "preserve_osl",
        }
    }
}

/// How many prompts a custom combination sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptsSpec {
    /// As many prompts as the concurrency.
    #[default]
    MatchConcurrency,
    /// A fixed number of prompts.
    Fixed(#[serde(deserialize_with = "super::limits::requests")] u32),
}

/// Matrix section of a case.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MatrixSpec {
    /// Generation mode.
    pub mode: MatrixMode,
    /// Context-fit policy.
    pub fit: FitPolicy,
    /// Overrides the model spec's max_context.
    #[serde(deserialize_with = "super::limits::opt_tokens")]
    pub max_context: Option<u32>,
    /// Input sequence lengths (custom mode); when left out, the lengths a `multiple` sweep
    /// takes from the model spec.
    #[serde(deserialize_with = "super::limits::opt_token_lists")]
    pub isl: Option<Vec<u32>>,
    /// Output sequence lengths (custom mode); when left out, the `multiple` sweep's.
    #[serde(deserialize_with = "super::limits::opt_token_lists")]
    pub osl: Option<Vec<u32>>,
    /// Concurrencies (custom mode); when left out, the `multiple` sweep's.
    #[serde(deserialize_with = "super::limits::opt_concurrencies")]
    pub concurrency: Option<Vec<u32>>,
    /// Prompt count rule (custom mode).
    pub prompts: PromptsSpec,
    /// Rounds of the concurrency: every combination sends `rounds × concurrency` prompts
    /// (TRT-LLM's `multi_round`), so a closed loop refills each stream `rounds` times and its
    /// distributions have enough samples to decide. Not with `prompts: {fixed: N}`.
    #[serde(deserialize_with = "super::limits::opt_requests")]
    pub rounds: Option<u32>,
    /// A combination that matches a reference entry of the model spec (same ISL, OSL and
    /// concurrency) sends the entry's `prompts`, the sample its targets were measured on,
    /// instead of the mode's count. Off by default: the generated matrix keeps its rules.
    pub reference_prompts: bool,
}

/// Performance target tier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// 10 % of theoretical.
    Functional,
    /// 50 % of theoretical.
    Complete,
    /// 100 % of theoretical.
    #[default]
    Target,
}

impl Tier {
    /// The fraction of theoretical performance this tier asks for.
    pub fn fraction(self) -> f64 {
        match self {
            Tier::Functional => 0.10,
            Tier::Complete => 0.50,
            Tier::Target => 1.0,
        }
    }

    /// Name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Functional => "functional",
            Tier::Complete => "complete",
            Tier::Target => "target",
        }
    }
}

/// Targets section of a case.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TargetSpec {
    /// Tier of the model spec's theoretical targets.
    pub tier: Tier,
    /// Relative tolerance, such as 0.10 for 10 %.
    pub tolerance: f64,
}

impl Default for TargetSpec {
    fn default() -> Self {
        Self {
            tier: Tier::Target,
            tolerance: 0.10,
        }
    }
}

/// A model spec: context and concurrency limits and reference performance.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Model name; the file stem under `models/` must match it.
    pub name: String,
    /// Model name sent in requests (defaults to `name`).
    #[serde(default)]
    pub served_name: Option<String>,
    /// Context window in tokens.
    #[serde(
        default = "default_max_context",
        deserialize_with = "super::limits::tokens"
    )]
    pub max_context: u32,
    /// Most concurrent requests the deployment is meant to serve.
    #[serde(
        default = "default_max_concurrency",
        deserialize_with = "super::limits::concurrency"
    )]
    pub max_concurrency: u32,
    /// Path to a HF `tokenizer.json` (relative to the spec file).
    #[serde(default)]
    pub tokenizer: Option<String>,
    /// Reference entries with theoretical targets.
    #[serde(default)]
    pub reference: Vec<ReferenceEntry>,
}

fn default_max_context() -> u32 {
    8192
}

fn default_max_concurrency() -> u32 {
    32
}

/// One reference point of a model spec.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceEntry {
    /// Input sequence length.
    #[serde(deserialize_with = "super::limits::tokens")]
    pub isl: u32,
    /// Output sequence length.
    #[serde(deserialize_with = "super::limits::tokens")]
    pub osl: u32,
    /// Concurrency.
    #[serde(deserialize_with = "super::limits::concurrency")]
    pub concurrency: u32,
    /// Number of prompts.
    #[serde(deserialize_with = "super::limits::requests")]
    pub prompts: u32,
    /// Targets at this point.
    #[serde(default)]
    pub targets: Option<ReferenceTargets>,
}

/// Targets of a reference entry.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceTargets {
    /// The theoretical (100 %) performance.
    pub theoretical: Theoretical,
}

/// Theoretical performance at a reference point.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Theoretical {
    /// Mean time to first token, milliseconds (lower is better).
    #[serde(default)]
    pub ttft_ms: Option<f64>,
    /// Tokens per second per user: 1000 / mean TPOT (higher is better).
    #[serde(default)]
    pub tput_user: Option<f64>,
    /// Output tokens per second over all users (higher is better).
    #[serde(default)]
    pub tput: Option<f64>,
}
