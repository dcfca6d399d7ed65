//! The session: the one run loop. It runs trial plans one by one — servers up, load, accuracy,
//! summary, judge — and tells its [`Sink`]s what happens ([`Event`]): a trial started, a trial
//! finished (with everything it measured), the run finished. The CLI's `run` and the
//! libtest-mimic harness are thin adapters over it.
//!
//! The session owns what trials share: the servers it spawned (stopped when it ends, and by
//! the signal handler on an interrupt), the tokenizers it read, and the accuracy trials'
//! scores that its stress trials compare with. Live load progress reaches a display through
//! counters given to the session ([`Session::count_load_into`]), which the display samples on
//! its own thread: a per-request event would put the display on the client's hot path.
//!
//! Inside: `trial` runs one plan; `measure` brings up the servers and drives the load, the
//! accuracy phase (`accuracy`) or both; `prompting` prepares what is sent; `sim` runs a step
//! of the simulator study instead; [`sinks`] are the sinks the adapters use.

mod accuracy;
mod error;
mod external;
mod measure;
pub mod merge;
mod prompting;
pub mod shard;
mod sim;
pub mod sinks;
mod tokenizers;
mod trial;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

pub use error::{SessionError, SinkError, TrialError};
pub use sim::StudyFiles;

use crate::accuracy::summary::ScoredSample;
use crate::compare::baseline::BaselineRun;
use crate::judge::{Baseline, Check, CheckSource};
use crate::load::progress::LoadProgress;
use crate::metrics::RequestRecord;
use crate::plan::{LoadKind, TrialPlan};
use crate::report::csv::RunCsvBaseline;
use crate::report::rerun::Rerun;
use crate::report::{self, TrialReport};
use crate::server::spawn::SpawnedServers;
use tokenizers::TokenizerCache;

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
            // Set but empty (a CI secret that is not defined) means unset.
            url_override: url
                .filter(|u| !u.is_empty())
                .or_else(|| std::env::var(crate::server::URL_ENV).ok())
                .filter(|u| !u.is_empty()),
        }
    }

    /// The run's `results.csv`.
    pub fn results_csv(&self) -> PathBuf {
        self.out_dir.join(report::run::RESULTS_FILE)
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

/// Environment variable setting the client runtime's worker threads.
pub const CLIENT_THREADS_ENV: &str = "LLM_STRESS_CLIENT_THREADS";

/// Worker threads of the client runtime unless set: one thread handles about a million
/// streamed chunks per second (see the book's client-performance page), far more than a
/// server on the same machine produces, and leaves the other cores to that server. The
/// open-loop schedule and the embedded server have threads of their own.
pub const DEFAULT_CLIENT_THREADS: usize = 1;

/// The async runtime load runs on, with `threads` workers (default
/// [`DEFAULT_CLIENT_THREADS`]).
pub fn client_runtime(threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.filter(|t| *t > 0).unwrap_or(DEFAULT_CLIENT_THREADS))
        .enable_all()
        .build()
}

/// What a finished trial produced: the report every view is made from, and what its files
/// hold besides.
#[derive(Debug, Clone)]
pub struct TrialOutcome {
    /// The result model every report is a view of.
    pub report: TrialReport,
    /// One record per measured load request (`records.jsonl`).
    pub records: Vec<RequestRecord>,
    /// One scored question per line of `accuracy.jsonl`.
    pub samples: Vec<ScoredSample>,
    /// A sim trial's study rows (its CSV files).
    pub study: Option<StudyFiles>,
    /// Whether the trial passed (the verdict is what the case expects).
    pub passed: bool,
    /// The case as it ran (after overrides), as YAML, for `case.yaml`.
    pub case_yaml: String,
    /// What else a rerun needs (`rerun.json`).
    pub rerun: Rerun,
    /// The trial's folder.
    pub dir: PathBuf,
    /// The base URLs its requests went to, one per endpoint (none for a sim trial).
    pub server_urls: Vec<String>,
    /// A worker's load trial: what its folder is a share of (`shard.json`).
    pub shard: Option<shard::ShardFile>,
    /// Other files for the trial's folder (an external task's stdout and stderr).
    pub attachments: Vec<(&'static str, Vec<u8>)>,
    /// A load whose records streamed to a spool file while it ran (a long run): `records` is
    /// then empty, and the file, moved into the trial's folder as `records.jsonl`, holds them
    /// all (see the book's "Long runs").
    pub spooled: Option<crate::load::spool::Spooled>,
}

impl TrialOutcome {
    /// Adds checks made after the measurement (an attributed trial's `require` and `check`)
    /// to the verdict, and recomputes whether the trial passed and its folder (`_ERROR` when
    /// it did not). Call before [`Session::finish_trial`].
    pub fn add_checks(&mut self, checks: Vec<crate::judge::Check>, out_dir: &std::path::Path) {
        if checks.is_empty() {
            return;
        }
        let mut all = std::mem::take(&mut self.report.verdict.checks);
        all.extend(checks);
        self.report.verdict = crate::judge::Verdict::from_checks(all);
        self.passed = self.report.passed();
        self.dir = report::trial_dir::trial_dir(out_dir, &self.report, !self.passed);
    }
}

/// What happens in a session, in order.
#[derive(Debug)]
pub enum Event<'a> {
    /// A trial is about to run.
    TrialStarted {
        /// The plan.
        plan: &'a TrialPlan,
    },
    /// A trial finished, whatever its verdict.
    TrialFinished {
        /// What it produced.
        outcome: &'a TrialOutcome,
    },
    /// Every trial of the session has run (its spawned servers are already stopped).
    RunFinished {
        /// The run's settings.
        context: &'a RunContext,
        /// Trials that ran (their reports went out with [`Event::TrialFinished`]; a sink that
        /// needs them keeps them, so the session's memory does not grow with the run).
        trials: usize,
        /// The full names of the trials that failed (and of cases that could not be read).
        failed: &'a [String],
    },
}

/// Something told what a session does: a display, a printer, a file writer, a publisher.
pub trait Sink: Send {
    /// Handles one event. An error (say, a folder that cannot be written) fails the trial the
    /// event was about, or the run for [`Event::RunFinished`]; the other sinks still get the
    /// event.
    fn event(&mut self, event: &Event<'_>) -> Result<(), SinkError>;
}

/// The accuracy scores of the accuracy trials this session ran, by trial name.
#[derive(Debug, Default)]
struct SessionScores(Mutex<HashMap<String, f64>>);

impl Baseline for SessionScores {
    fn accuracy_score(&self, trial: &str) -> Option<f64> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(trial)
            .copied()
    }
}

/// The baselines a stress trial looks in: this session's accuracy trials, then the run's
/// `results.csv` (an accuracy trial that ran in another process of the same nextest run).
struct SessionBaseline<'a> {
    session: &'a SessionScores,
    run: &'a RunCsvBaseline,
}

impl Baseline for SessionBaseline<'_> {
    fn accuracy_score(&self, trial: &str) -> Option<f64> {
        self.session
            .accuracy_score(trial)
            .or_else(|| self.run.accuracy_score(trial))
    }
}

/// One run of trials. See the module documentation.
pub struct Session {
    context: RunContext,
    sinks: Mutex<Vec<Box<dyn Sink>>>,
    spawned: SpawnedServers,
    tokenizers: TokenizerCache,
    scores: SessionScores,
    run_baseline: RunCsvBaseline,
    progress: Option<Arc<LoadProgress>>,
    client_threads: Option<usize>,
    compared_with: Option<Result<BaselineRun, String>>,
    git_commit: std::sync::OnceLock<Option<String>>,
    trials: std::sync::atomic::AtomicUsize,
    failed: Mutex<Vec<String>>,
    hook: Option<TrialHook>,
    worker: Option<shard::Worker>,
    replays: Mutex<HashMap<String, merge::Replay>>,
    stream_from: Duration,
}

/// Code run at the start of every trial, inside the trial's panic guard (see
/// [`Session::with_trial_hook`]).
pub type TrialHook = Box<dyn Fn(&TrialPlan) + Send + Sync>;

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("context", &self.context)
            .field("spawned", &self.spawned)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session with no sinks. The client runtime's threads come from
    /// [`CLIENT_THREADS_ENV`] when it is set.
    pub fn new(context: RunContext) -> Session {
        let client_threads = std::env::var(CLIENT_THREADS_ENV)
            .ok()
            .and_then(|v| v.parse().ok());
        let run_baseline = RunCsvBaseline {
            path: context.results_csv(),
            run_id: context.run_id.clone(),
        };
        Session {
            context,
            sinks: Mutex::new(Vec::new()),
            spawned: SpawnedServers::new(),
            tokenizers: TokenizerCache::default(),
            scores: SessionScores::default(),
            run_baseline,
            progress: None,
            client_threads,
            compared_with: None,
            git_commit: std::sync::OnceLock::new(),
            trials: std::sync::atomic::AtomicUsize::new(0),
            failed: Mutex::new(Vec::new()),
            hook: None,
            worker: None,
            replays: Mutex::new(HashMap::new()),
            stream_from: crate::load::spool::STREAM_FROM,
        }
    }

    /// Streams the records of every load bounded by time and planned to run at least `from`
    /// to a spool file rather than keeping them in memory (see [`crate::load::spool`];
    /// [`crate::load::spool::STREAM_FROM`] unless set). A load that needs its records whole
    /// keeps them whatever its length (see the book's "Long runs").
    pub fn stream_records_from(mut self, from: Duration) -> Session {
        self.stream_from = from;
        self
    }

    /// Shares spawned servers with the run's other processes when the run id is shared
    /// (`LLM_STRESS_RUN_ID` or `NEXTEST_RUN_ID`), for a process that runs some of a run's
    /// trials (the test harness, one process per trial under nextest): the first starts each
    /// server under a supervisor, the others attach (see [`crate::server::shared`]).
    pub fn sharing_spawned_servers(mut self) -> Session {
        if crate::server::shared::run_is_shared(&self.context.run_id) {
            self.spawned = SpawnedServers::across_processes();
        }
        self
    }

    /// Makes the session one worker of trials spread over many processes: each load trial
    /// sends the worker's share of the load ([`crate::load::Share`]), starts its measured
    /// load with the other workers at a barrier, and its folder holds a `shard.json`.
    pub fn as_worker(mut self, worker: shard::Worker) -> Session {
        self.worker = Some(worker);
        self
    }

    /// Replays merged loads (`llm-stress merge`): a load trial named in `replays` (by full
    /// name) takes its outcome from the merged records instead of driving a server, then is
    /// summarised, judged and written as any other.
    pub fn replaying(self, replays: std::collections::BTreeMap<String, merge::Replay>) -> Session {
        *self.replays.lock().unwrap_or_else(PoisonError::into_inner) =
            replays.into_iter().collect();
        self
    }

    /// Whether the trial named `full_name` is replayed from merged shards.
    pub fn replays(&self, full_name: &str) -> bool {
        self.replays
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(full_name)
    }

    /// Takes the merged load of `plan`'s trial, if it is replayed.
    fn take_replay(&self, plan: &TrialPlan) -> Option<merge::Replay> {
        self.replays
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&plan.full_name())
    }

    /// Adds a sink; sinks get each event in the order they were added.
    pub fn with_sink(self, sink: impl Sink + 'static) -> Session {
        self.sinks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Box::new(sink));
        self
    }

    /// Counts every measured load request into `progress` (for a live display).
    pub fn count_load_into(mut self, progress: Option<Arc<LoadProgress>>) -> Session {
        self.progress = progress;
        self
    }

    /// Runs `hook` at the start of every trial, inside the trial's panic guard: whatever it
    /// does (log, check preconditions, or panic on purpose in a test) counts as part of the
    /// trial.
    pub fn with_trial_hook(mut self, hook: impl Fn(&TrialPlan) + Send + Sync + 'static) -> Session {
        self.hook = Some(Box::new(hook));
        self
    }

    /// Compares every load and accuracy trial with its namesake in a baseline run: each
    /// compared metric becomes a check (source `baseline`), so a confident regression fails
    /// the trial. A baseline that could not be read (`Err`, its message) fails every trial
    /// that would have been compared, saying why.
    pub fn compare_with(mut self, baseline: Result<BaselineRun, String>) -> Session {
        self.compared_with = Some(baseline);
        self
    }

    /// The checks of a finished trial against the baseline, if the session has one.
    fn baseline_checks(
        &self,
        plan: &TrialPlan,
        report: &TrialReport,
        records: &[RequestRecord],
        samples: &[ScoredSample],
    ) -> Vec<Check> {
        match &self.compared_with {
            None => Vec::new(),
            Some(Ok(baseline)) => {
                baseline.checks(report, records, samples, plan.case().spec.gate.as_ref())
            }
            Some(Err(_)) if matches!(plan, TrialPlan::Sim(_)) => Vec::new(),
            Some(Err(message)) => vec![Check::fail(
                CheckSource::Baseline,
                "baseline",
                "the baseline run can be read",
                message.clone(),
            )],
        }
    }

    /// How many more times a trial of `plan` may run its load when a metric compared with
    /// the baseline is inconclusive: the gate's `retries` for a perf trial when the session
    /// compares with a baseline, else none. A stress trial runs once (its questions are
    /// paired with the baseline's one to one), and so does an accuracy trial.
    fn retries(&self, plan: &TrialPlan) -> u32 {
        match (&self.compared_with, plan) {
            (Some(Ok(baseline)), TrialPlan::Load(load)) if load.kind == LoadKind::Perf => {
                baseline.gate(plan.case().spec.gate.as_ref()).retries
            }
            _ => 0,
        }
    }

    /// Whether the pooled `records` of `plan`'s trial, over a window of `duration_s`, leave
    /// a metric inconclusive against the baseline.
    fn inconclusive(&self, plan: &TrialPlan, records: &[RequestRecord], duration_s: f64) -> bool {
        let Some(Ok(baseline)) = &self.compared_with else {
            return false;
        };
        let data = crate::compare::TrialData::new(records.to_vec(), duration_s);
        match baseline.compare_data(
            &plan.full_name(),
            plan.kind(),
            data,
            plan.case().spec.gate.as_ref(),
        ) {
            Some(Ok(comparison)) => comparison
                .metrics
                .iter()
                .any(|m| m.outcome == crate::compare::Outcome::Inconclusive),
            _ => false,
        }
    }

    /// What a rerun of `plan` needs besides its case. The repository's commit is asked of
    /// `git` once per session, in the folder of the first case.
    fn rerun(&self, plan: &TrialPlan) -> Rerun {
        let case = plan.case();
        let git_commit = self
            .git_commit
            .get_or_init(|| git_commit(case.path.parent().unwrap_or(std::path::Path::new("."))))
            .clone();
        let url = self
            .context
            .url_override
            .clone()
            .or_else(|| match &case.spec.server {
                Some(crate::case::ServerSpec::Attach(attach)) => Some(attach.url.clone()),
                _ => None,
            });
        Rerun {
            llm_stress_version: env!("CARGO_PKG_VERSION").to_string(),
            git_commit,
            case_file: case.path.clone(),
            model_file: case.model_path.clone(),
            overrides: case.overrides.clone(),
            seed: case.spec.load.seed,
            tokenizer: case.model.as_ref().and_then(|m| m.tokenizer.clone()),
            url,
            servers: Vec::new(),
        }
    }

    /// The run's settings.
    pub fn context(&self) -> &RunContext {
        &self.context
    }

    /// Runs one trial and tells the sinks. A server that cannot be had, requests that fail,
    /// or a panic while the trial runs make a FAIL verdict with the evidence (the panic's
    /// message), and the next trial runs as usual; only a sink's failure (results that could
    /// not be written) or a runtime that cannot start is an error.
    pub fn run_trial(&self, plan: &TrialPlan) -> Result<TrialOutcome, SessionError> {
        let outcome = self.measure_trial(plan)?;
        self.finish_trial(plan, outcome)
    }

    /// The first half of [`Session::run_trial`]: tells the sinks the trial started, runs it
    /// and returns its outcome without telling them it finished, so that an adapter can add
    /// checks ([`TrialOutcome::add_checks`]) before [`Session::finish_trial`] writes it.
    pub fn measure_trial(&self, plan: &TrialPlan) -> Result<TrialOutcome, SessionError> {
        self.emit(&Event::TrialStarted { plan })?;
        // Nothing the trial touched is used after a panic but the session's own lists, which
        // tolerate poisoning (spawned servers stay listed and are stopped when it ends).
        let guarded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if let Some(hook) = &self.hook {
                hook(plan);
            }
            trial::run(self, plan)
        }));
        let outcome = match guarded {
            Ok(outcome) => outcome?,
            Err(payload) => trial::panicked(self, plan, &panic_message(payload.as_ref())),
        };
        Ok(outcome)
    }

    /// The second half of [`Session::run_trial`]: keeps an accuracy trial's score, records a
    /// failure, and tells the sinks the trial finished (they write its folder and CSV row).
    pub fn finish_trial(
        &self,
        plan: &TrialPlan,
        outcome: TrialOutcome,
    ) -> Result<TrialOutcome, SessionError> {
        if let (TrialPlan::Accuracy(_), Some(score)) = (plan, outcome.report.accuracy_score()) {
            self.scores
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(plan.name(), score);
        }
        if !outcome.passed {
            self.note_failure(plan.full_name());
        }
        self.trials
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.emit(&Event::TrialFinished { outcome: &outcome })?;
        Ok(outcome)
    }

    /// Records a failure for [`Event::RunFinished`]: [`Session::run_trial`] records the trials
    /// that fail; an adapter records what else failed (a case that could not be read, a trial
    /// whose results could not be written).
    pub fn note_failure(&self, name: String) {
        self.failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(name);
    }

    /// Ends the session: stops the servers it spawned, then tells the sinks the run finished.
    pub fn finish(self) -> Result<RunTally, SessionError> {
        self.spawned.stop_all();
        let trials = self.trials.load(std::sync::atomic::Ordering::Relaxed);
        let failed =
            std::mem::take(&mut *self.failed.lock().unwrap_or_else(PoisonError::into_inner));
        self.emit(&Event::RunFinished {
            context: &self.context,
            trials,
            failed: &failed,
        })?;
        Ok(RunTally { trials, failed })
    }

    /// Tells every sink; the first error is returned after all have been told.
    fn emit(&self, event: &Event<'_>) -> Result<(), SessionError> {
        let mut sinks = self.sinks.lock().unwrap_or_else(PoisonError::into_inner);
        let mut first = None;
        for sink in sinks.iter_mut() {
            if let Err(e) = sink.event(event) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), |e| Err(SessionError::Sink(e)))
    }
}

/// The message a panic was raised with (`panic!("…")` gives a `&str` or a `String`).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with no message".to_string())
}

/// The commit checked out in the repository holding `folder`, when `git` knows one.
fn git_commit(folder: &std::path::Path) -> Option<String> {
    let output = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(folder)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let commit = String::from_utf8(output.stdout).ok()?.trim().to_string();
    (output.status.success() && !commit.is_empty()).then_some(commit)
}

/// How a finished run went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunTally {
    /// Trials that ran.
    pub trials: usize,
    /// Full names of the trials that failed (and of cases that could not be read).
    pub failed: Vec<String>,
}

impl RunTally {
    /// Whether every trial passed.
    pub fn passed(&self) -> bool {
        self.failed.is_empty()
    }
}
