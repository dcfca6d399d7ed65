//! The test harness: cases become libtest-mimic trials named `[kind] case::isl…_osl…_c…_n…`
//! (`[sim] case::STEP` for simulator study steps), run by `cargo test --test stress` and
//! `cargo nextest run`. It is a thin adapter over the [`Session`]: discovery gives the plans,
//! each libtest trial runs one through the session, and a failed trial prints its table.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use libtest_mimic::{Arguments, Completion, Failed, Trial};

use crate::case::Kind;
use crate::compare::baseline::{BASELINE_ENV, BaselineRun};
use crate::judge::CheckSource;
use crate::plan::TrialPlan;
use crate::plan::discovery::{Discovered, TAG_ENV, discover, tags_from_env};
use crate::progress::{self, ProgressDisplay};
use crate::report::table::{self, Numbers};
use crate::session::sinks::TrialFiles;
use crate::session::{RunContext, Session};

/// Environment variable naming the folder of cases (default `stress-cases/`).
pub const CASES_ENV: &str = "LLM_STRESS_CASES";

/// Checks a trial's redacted summary table against a stored snapshot. Called with the snapshot
/// name and the table; panics (fails the trial) on a mismatch, as insta's assertions do.
pub type SnapshotCheck = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// How the harness is set up by the test target.
#[derive(Clone)]
pub struct Harness {
    /// Folder of case files.
    pub cases_dir: PathBuf,
    /// Snapshot check of each trial's table, when the test target provides one.
    pub snapshot: Option<SnapshotCheck>,
}

impl Harness {
    /// Cases from `LLM_STRESS_CASES`, or `stress-cases/` under `manifest_dir`.
    pub fn new(manifest_dir: &str) -> Harness {
        let cases_dir = std::env::var_os(CASES_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(manifest_dir).join("stress-cases"));
        Harness {
            cases_dir,
            snapshot: None,
        }
    }

    /// Adds a snapshot check.
    pub fn with_snapshot(mut self, check: SnapshotCheck) -> Harness {
        self.snapshot = Some(check);
        self
    }

    /// Parses the test arguments, discovers trials and runs them. Load trials run one at a
    /// time unless `--test-threads` says otherwise.
    pub fn main(self) -> ExitCode {
        let mut args = Arguments::from_args();
        if args.test_threads.is_none() {
            args.test_threads = Some(1);
        }
        let exact = args.filter.as_deref().filter(|_| args.exact);
        // One session per process: every trial of a `cargo test` run shares its run id.
        let context = RunContext::from_env(None, None);
        let snapshots_pinned = context.url_override.is_none();
        let mut session = Session::new(context.clone());
        if !args.list
            && let Some(baseline) = BaselineRun::from_env()
        {
            session = session.compare_with(baseline.map_err(|e| format!("{BASELINE_ENV}: {e}")));
        }
        if let Some(display) = progress_display() {
            session = display.watch(session);
        }
        let session = Arc::new(session.with_sink(TrialFiles::new(context.out_dir.clone())));
        let tags = tags_from_env();
        let trials = discover(&self.cases_dir, exact)
            .into_iter()
            .map(|d| self.trial(d, &session, snapshots_pinned, &tags))
            .collect();
        let conclusion = libtest_mimic::run(&args, trials);
        // Every trial closure is gone: the session ends here, stopping its spawned servers.
        if let Ok(session) = Arc::try_unwrap(session)
            && let Err(e) = session.finish()
        {
            eprintln!("error: {e}");
        }
        conclusion.exit_code()
    }

    fn trial(
        &self,
        discovered: Discovered,
        session: &Arc<Session>,
        pinned: bool,
        tags: &[String],
    ) -> Trial {
        match discovered {
            Discovered::Broken {
                name,
                kind,
                message,
            } => Trial::test(name, move || Err(Failed::from(message))).with_kind(kind),
            Discovered::Plan(plan) => {
                let kind = plan.kind().as_str();
                let name = plan.name();
                let untagged = (!plan.has_any_tag(tags))
                    .then(|| format!("its case has none of the tags {TAG_ENV}={}", tags.join(",")));
                if let Some(reason) = untagged.or_else(|| plan.unsupported_reason()) {
                    return Trial::ignorable_test(name, move || {
                        Ok(Completion::ignored_with(reason))
                    })
                    .with_kind(kind)
                    .with_ignored_flag(true);
                }
                // Snapshots pin the embedded server's tables; an attached server is another
                // system. A sim trial talks to no server: its table is the same wherever it
                // runs.
                let snapshot = self
                    .snapshot
                    .clone()
                    .filter(|_| pinned || plan.kind() == Kind::Sim);
                let session = Arc::clone(session);
                Trial::test(name, move || run_trial(&plan, &session, snapshot)).with_kind(kind)
            }
        }
    }
}

/// The progress display the harness shows only when [`progress::PROGRESS_ENV`] asks for one
/// (passing trials stay quiet otherwise).
fn progress_display() -> Option<ProgressDisplay> {
    let setting = std::env::var(progress::PROGRESS_ENV).ok()?;
    match progress::style_from(&setting) {
        Ok(style) => style.map(ProgressDisplay::start),
        Err(e) => {
            eprintln!("{}: {e}; no progress shown", progress::PROGRESS_ENV);
            None
        }
    }
}

fn run_trial(
    plan: &TrialPlan,
    session: &Session,
    snapshot: Option<SnapshotCheck>,
) -> Result<(), Failed> {
    let outcome = session
        .run_trial(plan)
        .map_err(|e| Failed::from(e.to_string()))?;
    if !outcome.passed {
        let measured = table::render(&outcome.report, Numbers::Measured);
        let expectation = if outcome.report.expects_failure() {
            "the case expects FAIL but every check passed\n"
        } else {
            ""
        };
        return Err(Failed::from(format!(
            "{expectation}{measured}\nreports: {}",
            outcome.dir.display()
        )));
    }
    if let Some(check) = snapshot {
        // Snapshots pin the trial's own checks; a baseline's rows depend on the baseline.
        let mut report = outcome.report;
        report
            .verdict
            .checks
            .retain(|c| c.source != CheckSource::Baseline);
        let name = format!(
            "{}__{}",
            plan.kind().as_str(),
            plan.name().replace("::", "__")
        );
        check(&name, &table::render(&report, Numbers::Redacted));
    }
    Ok(())
}
