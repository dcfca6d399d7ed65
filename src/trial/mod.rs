//! Trials written in Rust: the attributes `#[llm_stress::perf]`, `#[llm_stress::stress]` and
//! `#[llm_stress::accuracy]` (from the `llm-stress-macros` crate) register an
//! `async fn NAME(t: Trial) -> TrialResult` in [`TRIALS`]; [`registry`] expands each
//! registration into plans named like YAML trials (`[kind] NAME::isl…_osl…_c…_n…`), and the
//! harness runs them beside the YAML cases through the same [`Session`].
//!
//! A [`Trial`] is the plan and the session. [`Trial::run`] runs the normal pipeline (server,
//! load, accuracy, judge) and returns a [`Run`]; its [`Run::require`], [`Run::check`] and
//! [`Run::require_accuracy_at_least`] add checks to the same verdict, so they appear in the
//! check table, `summary.json`, the `results.csv` row and the snapshot like the YAML checks.
//! The trial's files are written when the function returns (or fails), with every check.
//!
//! Registration uses `linkme` distributed slices rather than `inventory`: the linker gathers
//! the registrations into one static slice, with no code run before `main` (inventory
//! registers from static constructors, which some platforms and sanitisers handle poorly),
//! no allocation, and no build script.

pub mod case_builder;
pub mod customise;
pub mod registry;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

pub use case_builder::{Case, CaseBuildError, CaseBuilder};
pub use customise::RequestCustomiser;
pub use registry::{AttrKind, Registration};

use crate::case::{Kind, LoadedCase, SloError};
use crate::judge::{self, Check, CheckSource, Status};
use crate::metrics::{RequestRecord, Summary};
use crate::plan::{AccuracyTrial, LoadTrial, MatrixPoint, TrialPlan};
use crate::report::TrialReport;
use crate::session::{Session, SessionError, TrialOutcome};

/// Every attributed trial of the program, gathered by the linker.
#[linkme::distributed_slice]
pub static TRIALS: [Registration];

/// What an attributed trial function returns: `Ok(run.into())` when it ran, or the first
/// failure (`?` on a failed [`Run::require`], or any error of the user's own).
pub type TrialResult = Result<Finished, TrialFailure>;

/// The future of an attributed trial function.
pub type TrialFuture = Pin<Box<dyn Future<Output = TrialResult>>>;

/// An attributed trial function, as registered.
pub type TrialFn = fn(Trial) -> TrialFuture;

/// A trial function's success: made from its [`Run`] (`Ok(run.into())`).
#[derive(Debug)]
pub struct Finished(());

impl From<Run> for Finished {
    fn from(run: Run) -> Finished {
        drop(run);
        Finished(())
    }
}

/// Why a trial function stopped: a failed check, or any error of its own (`?` converts any
/// `std::error::Error`). Not itself an `Error`, so that the conversion can be general.
pub struct TrialFailure {
    error: Box<dyn std::error::Error + Send + Sync>,
    /// Whether the error is a check already in the check table.
    is_check: bool,
}

impl TrialFailure {
    /// The error.
    pub fn error(&self) -> &(dyn std::error::Error + Send + Sync) {
        &*self.error
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for TrialFailure {
    fn from(error: E) -> TrialFailure {
        let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(error);
        let is_check = matches!(
            boxed.downcast_ref::<TrialError>(),
            Some(TrialError::Check { .. } | TrialError::Slo { .. })
        );
        TrialFailure {
            error: boxed,
            is_check,
        }
    }
}

impl fmt::Display for TrialFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl fmt::Debug for TrialFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.error, f)
    }
}

/// What can go wrong in the trial API.
#[derive(Debug, thiserror::Error)]
pub enum TrialError {
    /// A `require` or `check` failed (it is in the check table).
    #[error("check `{name}` failed: {reason}")]
    Check {
        /// The check's name.
        name: String,
        /// Why, with the measured value.
        reason: String,
    },
    /// A `require` expression is not an SLO (it is in the check table as failed).
    #[error("`{expression}`: {source}")]
    Slo {
        /// What was written.
        expression: String,
        /// Why it could not be read.
        source: SloError,
    },
    /// The session could not run the trial (a runtime that would not start, results that
    /// could not be written).
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The trial's thread stopped without an outcome (it panicked).
    #[error("the trial's run stopped without an outcome (a panic; see the output above)")]
    Lost,
}

/// What a trial leaves for the harness: the plan that ran, its outcome, and the checks added
/// after it.
#[derive(Default)]
pub(crate) struct Slot {
    pub(crate) plan: Option<TrialPlan>,
    pub(crate) outcome: Option<TrialOutcome>,
    pub(crate) checks: Vec<Check>,
}

type SharedSlot = Arc<Mutex<Slot>>;

fn lock(slot: &SharedSlot) -> std::sync::MutexGuard<'_, Slot> {
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One trial of an attributed function: its plan (kind, matrix point, case) and the session
/// that runs it.
pub struct Trial {
    plan: TrialPlan,
    session: Arc<Session>,
    slot: SharedSlot,
}

impl fmt::Debug for Trial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trial")
            .field("name", &self.plan.full_name())
            .finish_non_exhaustive()
    }
}

impl Trial {
    pub(crate) fn new(plan: TrialPlan, session: Arc<Session>) -> (Trial, SharedSlot) {
        let slot = SharedSlot::default();
        let trial = Trial {
            plan,
            session,
            slot: Arc::clone(&slot),
        };
        (trial, slot)
    }

    /// The plan: kind, matrix point and case.
    pub fn plan(&self) -> &TrialPlan {
        &self.plan
    }

    /// The trial's full name, such as `[perf] chat_keeps_ttft::isl128_osl64_c8_n8`.
    pub fn name(&self) -> String {
        self.plan.full_name()
    }

    /// Perf, stress or accuracy.
    pub fn kind(&self) -> Kind {
        self.plan.kind()
    }

    /// The matrix point of a load trial.
    pub fn point(&self) -> Option<&MatrixPoint> {
        match &self.plan {
            TrialPlan::Load(load) => Some(&load.point),
            _ => None,
        }
    }

    /// The case the trial runs.
    pub fn case(&self) -> &LoadedCase {
        self.plan.case()
    }

    /// The URL of the server the trial attaches to, when it attaches to one (`LLM_STRESS_URL`
    /// or the case's `attach` server); the embedded and spawned servers are started by
    /// [`Trial::run`], and [`Run::urls`] gives theirs.
    pub fn server_url(&self) -> Option<String> {
        if let Some(url) = &self.session.context().url_override {
            return Some(url.clone());
        }
        self.case()
            .spec
            .destinations()
            .into_iter()
            .find_map(|d| match d.server {
                crate::case::ServerSpec::Attach(attach) => Some(attach.url),
                _ => None,
            })
    }

    /// The same trial (name, kind, matrix point, `expect`) run with another case: its server,
    /// API, client, load and checks.
    pub fn with_case(mut self, case: Case) -> Trial {
        let old = self.plan.case();
        let mut loaded = case.into_loaded();
        loaded.spec.name = old.spec.name.clone();
        loaded.spec.kinds = old.spec.kinds.clone();
        loaded.spec.expect = old.spec.expect;
        self.plan = replace_case(&self.plan, Arc::new(loaded));
        self
    }

    /// Runs the trial: the server brought up or attached, the load (and for stress trials the
    /// accuracy questions), the judge. Its files are written when the trial function returns,
    /// with the checks the [`Run`] adds.
    pub async fn run(self) -> Result<Run, TrialError> {
        let Trial {
            plan,
            session,
            slot,
        } = self;
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let ran = plan.clone();
        let thread_session = Arc::clone(&session);
        // The session runs the load on a client runtime of its own: on another thread, so that
        // any executor can await it.
        std::thread::spawn(move || {
            let _ = sender.send(thread_session.measure_trial(&ran));
        });
        let outcome = receiver.await.map_err(|_| TrialError::Lost)??;
        lock(&slot).plan = Some(plan);
        Ok(Run {
            outcome: Some(outcome),
            slot,
            read_back: std::sync::OnceLock::new(),
        })
    }

    /// [`Trial::run`] with every request customised: extra body fields (`tools`,
    /// `response_format`, `logprobs`) and headers. The answers' texts are kept
    /// ([`Run::responses`]).
    pub async fn run_with(
        mut self,
        customise: impl FnOnce(RequestCustomiser) -> RequestCustomiser,
    ) -> Result<Run, TrialError> {
        let customiser = customise(RequestCustomiser::default());
        let mut loaded = (**self.plan.case()).clone();
        customiser.apply(&mut loaded.spec.client);
        self.plan = replace_case(&self.plan, Arc::new(loaded));
        self.run().await
    }
}

fn replace_case(plan: &TrialPlan, case: Arc<LoadedCase>) -> TrialPlan {
    match plan {
        TrialPlan::Load(load) => TrialPlan::Load(LoadTrial {
            kind: load.kind,
            case,
            point: load.point.clone(),
        }),
        TrialPlan::Accuracy(trial) => TrialPlan::Accuracy(AccuracyTrial {
            case,
            task: trial.task,
        }),
        TrialPlan::Sim(sim) => TrialPlan::Sim(crate::plan::SimTrial {
            case,
            step: sim.step,
        }),
    }
}

/// A trial that ran: what it measured and its verdict so far. Checks added here join the
/// verdict; the trial's files are written, with them, when the trial function returns.
pub struct Run {
    /// Always set while the run is alive; handed to the harness when it is dropped.
    outcome: Option<TrialOutcome>,
    slot: SharedSlot,
    /// A streamed load's records, read back from its spool the first time they are asked for.
    read_back: std::sync::OnceLock<Vec<RequestRecord>>,
}

impl fmt::Debug for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Run")
            .field("trial", &self.report().full_name())
            .finish_non_exhaustive()
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        lock(&self.slot).outcome = self.outcome.take();
    }
}

impl Run {
    fn outcome(&self) -> &TrialOutcome {
        self.outcome
            .as_ref()
            .expect("a run holds its outcome until it is dropped")
    }

    /// The report: meta, body (load summary, accuracy) and the verdict of the measured checks.
    pub fn report(&self) -> &TrialReport {
        &self.outcome().report
    }

    /// The load summary (latency distributions, throughput, errors), for load trials.
    pub fn summary(&self) -> Option<&Summary> {
        self.report().summary()
    }

    /// One record per measured load request, by id. A load whose records streamed to a spool
    /// while it ran (a long run, see the book's "Long runs") kept none in memory: they are read
    /// back from the spool file the first time they are asked for (none if it cannot be read).
    pub fn records(&self) -> &[RequestRecord] {
        let outcome = self.outcome();
        match &outcome.spooled {
            None => &outcome.records,
            Some(spooled) => self
                .read_back
                .get_or_init(|| spooled.read_back().unwrap_or_default()),
        }
    }

    /// The texts of the answers that were kept: every answer of a run customised with
    /// [`Trial::run_with`], and those ending naturally (accuracy questions) otherwise.
    pub fn responses(&self) -> impl Iterator<Item = &str> {
        self.records().iter().filter_map(|r| r.text.as_deref())
    }

    /// The base URLs the requests went to, one per endpoint.
    pub fn urls(&self) -> &[String] {
        &self.outcome().server_urls
    }

    /// Whether the verdict of the measured checks, with those added so far, meets what the
    /// trial expects.
    pub fn passed(&self) -> bool {
        let added = lock(&self.slot)
            .checks
            .iter()
            .any(|c| c.status == Status::Fail);
        self.outcome().passed && !added
    }

    /// Requires an SLO, in the YAML `slo` grammar (`ttft_ms.p95 < 300`): a check in the same
    /// table, failing the trial when it fails (and returning the failure, for `?`).
    pub fn require(&self, expression: &str) -> Result<(), TrialError> {
        let slo: crate::case::Slo = match expression.parse() {
            Ok(slo) => slo,
            Err(source) => {
                self.add(Check::fail(
                    CheckSource::Slo,
                    expression,
                    "an SLO `metric op number`",
                    source.to_string(),
                ));
                return Err(TrialError::Slo {
                    expression: expression.to_string(),
                    source,
                });
            }
        };
        let check = match self.summary() {
            Some(summary) => judge::slo::check(&slo, summary),
            None => Check::fail(
                CheckSource::Slo,
                slo.to_string(),
                slo.to_string(),
                "not measured (the trial sent no load)",
            ),
        };
        self.add_required(check)
    }

    /// Requires the accuracy score (of an accuracy or stress trial) to be at least
    /// `fraction` (0.9 = 90 %).
    pub fn require_accuracy_at_least(&self, fraction: f64) -> Result<(), TrialError> {
        let bound = fraction * 100.0;
        let name = format!("accuracy >= {bound}%");
        let check = match self.report().accuracy_score() {
            Some(score) if score >= bound => Check::pass(
                CheckSource::Accuracy,
                &name,
                &name,
                format!("{score:.1}% >= {bound}%"),
            ),
            Some(score) => Check::fail(
                CheckSource::Accuracy,
                &name,
                &name,
                format!("{score:.1}% is below {bound}%"),
            ),
            None => Check::fail(
                CheckSource::Accuracy,
                &name,
                &name,
                "no accuracy score (only accuracy and stress trials ask questions)",
            ),
        }
        .measured(self.report().accuracy_score())
        .against(Some(bound));
        self.add_required(check)
    }

    /// A check of the trial's own: passes when `ok`; a failure fails the trial.
    pub fn check(&self, name: &str, ok: bool) -> Result<(), TrialError> {
        let check = if ok {
            Check::pass(CheckSource::Code, name, name, "holds")
        } else {
            Check::fail(CheckSource::Code, name, name, "does not hold")
        };
        self.add_required(check)
    }

    fn add(&self, check: Check) {
        lock(&self.slot).checks.push(check);
    }

    fn add_required(&self, check: Check) -> Result<(), TrialError> {
        let failed = (check.status == Status::Fail).then(|| TrialError::Check {
            name: check.name.clone(),
            reason: check.reason.clone(),
        });
        self.add(check);
        failed.map_or(Ok(()), Err)
    }
}

/// Runs a trial function (as the harness runs a registered one) on a runtime of its own and finishes the trial in the
/// session with every check it added. Returns the finished outcome, or why there is none.
pub fn run_function(
    body: TrialFn,
    plan: TrialPlan,
    session: &Arc<Session>,
) -> Result<TrialOutcome, String> {
    let (trial, slot) = Trial::new(plan, Arc::clone(session));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the trial's runtime: {e}"))?;
    let result = runtime.block_on(body(trial));
    drop(runtime);
    let Slot {
        plan,
        outcome,
        mut checks,
    } = std::mem::take(&mut *lock(&slot));
    let (Some(plan), Some(mut outcome)) = (plan, outcome) else {
        return Err(match result {
            Err(failure) => failure.to_string(),
            Ok(_) => "the trial function returned without running the trial (`t.run().await?`)"
                .to_string(),
        });
    };
    if let Err(failure) = &result
        && !failure.is_check
    {
        checks.push(Check::fail(
            CheckSource::Code,
            "trial function",
            "the trial function returns Ok",
            failure.to_string(),
        ));
    }
    outcome.add_checks(checks, &session.context().out_dir);
    session
        .finish_trial(&plan, outcome)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
