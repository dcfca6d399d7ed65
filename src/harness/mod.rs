//! The test harness: cases become libtest-mimic trials named `[kind] case::isl…_osl…_c…_n…`
//! (`[sim] case::STEP` for simulator study steps), run by `cargo test --test stress` and
//! `cargo nextest run`. It is a thin adapter over the [`Session`]: discovery gives the plans,
//! each libtest trial runs one through the session, and a failed trial prints its table.
//!
//! Besides the YAML cases, the harness runs every attributed trial function of the test
//! binary ([`crate::trial`]): `llm_stress::main!()` is [`Harness::new`] with the crate's
//! folders and its insta snapshots. Both kinds of trial share one sorted list; two trials of
//! the same name are one failing trial that says where both come from.

use std::collections::BTreeMap;
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
use crate::session::{RunContext, Session, TrialOutcome};
use crate::trial::registry::Expanded;
use crate::trial::{self, Registration, TRIALS};

/// Environment variable naming the folder of cases (default `stress-cases/`).
pub const CASES_ENV: &str = "LLM_STRESS_CASES";

/// Environment variable listing tags (comma-separated) whose attributed trials are listed as
/// ignored, such as `nightly`.
pub const SKIP_TAGS_ENV: &str = "LLM_STRESS_SKIP_TAGS";

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
    /// The attributed trial functions (by default every one linked into the binary).
    pub registrations: &'static [Registration],
    /// Tags whose attributed trials are listed as ignored (with [`SKIP_TAGS_ENV`]'s).
    pub skip_tags: Vec<String>,
}

/// One entry of the harness's list: a YAML case's trial or an attributed function's.
enum Entry {
    Yaml(Discovered),
    Attributed(Expanded),
}

impl Entry {
    fn discovered(&self) -> &Discovered {
        match self {
            Entry::Yaml(d) => d,
            Entry::Attributed(e) => &e.discovered,
        }
    }

    fn full_name(&self) -> String {
        match self.discovered() {
            Discovered::Plan(plan) => plan.full_name(),
            Discovered::Broken { name, kind, .. } => format!("[{kind}] {name}"),
        }
    }

    /// Where the trial comes from, for the duplicate-name message.
    fn origin(&self) -> String {
        match (self, self.discovered()) {
            (Entry::Attributed(e), _) => e.registration.location(),
            (Entry::Yaml(_), Discovered::Plan(plan)) => plan.case().path.display().to_string(),
            (Entry::Yaml(_), Discovered::Broken { .. }) => "a case file".to_string(),
        }
    }
}

impl Harness {
    /// Cases from `LLM_STRESS_CASES`, or `stress-cases/` under `manifest_dir`.
    pub fn new(manifest_dir: &str) -> Harness {
        let cases_dir = std::env::var_os(CASES_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(manifest_dir).join("stress-cases"));
        let skip_tags = std::env::var(SKIP_TAGS_ENV)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        Harness {
            cases_dir,
            snapshot: None,
            registrations: &TRIALS,
            skip_tags,
        }
    }

    /// Reads the cases from this folder instead.
    pub fn cases_dir(mut self, dir: impl Into<PathBuf>) -> Harness {
        self.cases_dir = dir.into();
        self
    }

    /// Lists the attributed trials with one of these tags as ignored.
    pub fn skip_tags(mut self, tags: impl IntoIterator<Item = impl Into<String>>) -> Harness {
        self.skip_tags.extend(tags.into_iter().map(Into::into));
        self
    }

    /// Runs these attributed trial functions instead of every one linked into the binary.
    pub fn registrations(mut self, registrations: &'static [Registration]) -> Harness {
        self.registrations = registrations;
        self
    }

    /// Every trial, YAML and attributed, in one list sorted as discovery sorts, with
    /// duplicate names made one failing trial each. With `exact` (nextest's one trial per
    /// process), only what can hold that name is read: the attributed function it names, or
    /// else the case file named after it.
    fn entries(&self, exact: Option<&str>) -> Vec<Entry> {
        let function = exact.and_then(first_part);
        let attributed: Vec<Entry> = self
            .registrations
            .iter()
            .filter(|r| function.is_none_or(|f| f == r.function))
            .flat_map(Registration::expand)
            .map(Entry::Attributed)
            .collect();
        let mut entries: Vec<Entry> = if exact.is_some() && !attributed.is_empty() {
            Vec::new()
        } else {
            discover(&self.cases_dir, exact)
                .into_iter()
                .map(Entry::Yaml)
                .collect()
        };
        entries.extend(attributed);
        entries.sort_by_key(|e| e.discovered().sort_key());
        let mut by_name: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
        let mut order = Vec::new();
        for entry in entries {
            let name = entry.full_name();
            if !by_name.contains_key(&name) {
                order.push(name.clone());
            }
            by_name.entry(name).or_default().push(entry);
        }
        order
            .into_iter()
            .filter_map(|name| {
                let mut same = by_name.remove(&name)?;
                if same.len() == 1 {
                    return same.pop();
                }
                let origins: Vec<String> = same.iter().map(Entry::origin).collect();
                let (kind, bare) = match same[0].discovered() {
                    Discovered::Plan(plan) => (plan.kind().as_str().to_string(), plan.name()),
                    Discovered::Broken { kind, name, .. } => (kind.clone(), name.clone()),
                };
                Some(Entry::Yaml(Discovered::Broken {
                    name: bare,
                    kind,
                    message: format!(
                        "{} trials are named `{name}`: {}; rename one",
                        origins.len(),
                        origins.join(", ")
                    ),
                }))
            })
            .collect()
    }

    /// Adds a snapshot check.
    pub fn with_snapshot(mut self, check: SnapshotCheck) -> Harness {
        self.snapshot = Some(check);
        self
    }

    /// Parses the test arguments, discovers trials and runs them. Load trials run one at a
    /// time unless `--test-threads` says otherwise.
    pub fn main(self) -> ExitCode {
        // A trial process of this binary started it as a shared server's supervisor.
        if let Some(code) = crate::server::shared::supervise_from_env() {
            return code;
        }
        let mut args = Arguments::from_args();
        if args.test_threads.is_none() {
            args.test_threads = Some(1);
        }
        let exact = args.filter.as_deref().filter(|_| args.exact);
        // One session per process: every trial of a `cargo test` run shares its run id.
        let context = RunContext::from_env(None, None);
        let snapshots_pinned = context.url_override.is_none();
        // Under nextest each trial is a process: spawned servers are shared through supervisors.
        let mut session = Session::new(context.clone()).sharing_spawned_servers();
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
        let trials = self
            .entries(exact)
            .into_iter()
            .map(|entry| self.trial(entry, &session, snapshots_pinned, &tags))
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

    fn trial(&self, entry: Entry, session: &Arc<Session>, pinned: bool, tags: &[String]) -> Trial {
        let (discovered, registration) = match entry {
            Entry::Yaml(discovered) => (discovered, None),
            Entry::Attributed(e) => (e.discovered, Some(e.registration)),
        };
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
                let Some(registration) = registration else {
                    return Trial::test(name, move || run_trial(&plan, &session, snapshot))
                        .with_kind(kind);
                };
                if let Some(tag) = registration
                    .tags
                    .iter()
                    .find(|t| self.skip_tags.iter().any(|s| s == *t))
                {
                    let reason = format!("tag `{tag}` is skipped ({SKIP_TAGS_ENV})");
                    return Trial::ignorable_test(name, move || {
                        Ok(Completion::ignored_with(reason))
                    })
                    .with_kind(kind)
                    .with_ignored_flag(true);
                }
                let body = registration.body;
                Trial::test(name, move || {
                    let outcome =
                        trial::run_function(body, plan.clone(), &session).map_err(|e| {
                            session.note_failure(plan.full_name());
                            Failed::from(e)
                        })?;
                    conclude(&plan, outcome, snapshot)
                })
                .with_kind(kind)
                .with_ignored_flag(registration.ignore.is_some())
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
    conclude(plan, outcome, snapshot)
}

/// A finished trial as a test: failed with its table when it did not pass, else checked
/// against its snapshot.
fn conclude(
    plan: &TrialPlan,
    outcome: TrialOutcome,
    snapshot: Option<SnapshotCheck>,
) -> Result<(), Failed> {
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

/// The part of a trial name before its first `::`, after the kind: the case or function.
fn first_part(name: &str) -> Option<&str> {
    let name = match name.split_once("] ") {
        Some((kind, rest)) if kind.starts_with('[') => rest,
        _ => name,
    };
    name.split_once("::").map(|(first, _)| first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trial::{AttrKind, Trial, TrialResult};

    async fn nothing(t: Trial) -> TrialResult {
        Ok(t.run().await?.into())
    }

    const fn demo(function: &'static str, line: u32) -> Registration {
        Registration {
            function,
            kind: AttrKind::Perf,
            case: Some("stress-cases/demo-chat.yaml"),
            manifest_dir: env!("CARGO_MANIFEST_DIR"),
            isl: &[],
            osl: &[],
            concurrency: &[1],
            rate: &[],
            users: &[],
            cases: &[],
            ignore: None,
            expect_fail: false,
            tags: &[],
            file: file!(),
            line,
            body: |t| Box::pin(nothing(t)),
        }
    }

    static TWO_OF_A_NAME: [Registration; 3] = [demo("f", 1), demo("f", 2), demo("g", 3)];

    static TAGGED_AND_IGNORED: [Registration; 3] = [
        Registration {
            tags: &["nightly"],
            ..demo("tagged", 1)
        },
        Registration {
            ignore: Some("slow"),
            ..demo("ignored", 2)
        },
        demo("plain", 3),
    ];

    #[test]
    fn skipped_tags_and_ignore_list_a_trial_as_ignored() {
        let harness = Harness::new(env!("CARGO_MANIFEST_DIR"))
            .registrations(&TAGGED_AND_IGNORED)
            .skip_tags(["nightly"]);
        let session = Arc::new(Session::new(RunContext {
            run_id: "t".into(),
            out_dir: std::env::temp_dir(),
            url_override: None,
        }));
        let ignored: Vec<(String, bool)> = harness
            .entries(None)
            .into_iter()
            .filter(|e| matches!(e, Entry::Attributed(_)))
            .map(|e| {
                let trial = harness.trial(e, &session, true, &[]);
                (
                    format!("[{}] {}", trial.kind(), trial.name()),
                    trial.has_ignored_flag(),
                )
            })
            .collect();
        assert_eq!(
            ignored,
            [
                ("[perf] ignored::isl128_osl64_c1_n8".to_string(), true),
                ("[perf] plain::isl128_osl64_c1_n8".to_string(), false),
                ("[perf] tagged::isl128_osl64_c1_n8".to_string(), true),
            ]
        );
    }

    fn harness() -> Harness {
        Harness::new(env!("CARGO_MANIFEST_DIR")).registrations(&TWO_OF_A_NAME)
    }

    #[test]
    fn attributed_and_yaml_trials_share_one_sorted_list_and_duplicates_fail() {
        let names: Vec<String> = harness()
            .entries(None)
            .iter()
            .map(Entry::full_name)
            .collect();
        let mut sorted = names.clone();
        sorted.sort_by_key(|n| {
            let bare = n.split_once("] ").map_or(n.as_str(), |(_, rest)| rest);
            bare.split("::").next().unwrap_or_default().to_string()
        });
        assert_eq!(names, sorted, "sorted by case or function");
        assert!(names.contains(&"[perf] demo-chat::isl128_osl64_c1_n8".to_string()));
        assert!(names.contains(&"[perf] g::isl128_osl64_c1_n8".to_string()));
        let f: Vec<&String> = names.iter().filter(|n| n.contains("] f::")).collect();
        assert_eq!(f, ["[perf] f::isl128_osl64_c1_n8"], "one entry for the two");
        let entries = harness().entries(None);
        let duplicate = entries
            .iter()
            .find(|e| e.full_name() == "[perf] f::isl128_osl64_c1_n8")
            .expect("listed");
        let Discovered::Broken { message, .. } = duplicate.discovered() else {
            panic!("a duplicate name is a failing trial");
        };
        assert!(message.contains("2 trials are named"), "{message}");
        assert!(
            message.contains(":1 (f)") && message.contains(":2 (f)"),
            "{message}"
        );
    }

    #[test]
    fn an_exact_name_reads_only_the_function_it_names() {
        let entries = harness().entries(Some("[perf] g::isl128_osl64_c1_n8"));
        let names: Vec<String> = entries.iter().map(Entry::full_name).collect();
        assert_eq!(names, ["[perf] g::isl128_osl64_c1_n8"]);
        assert_eq!(first_part("[perf] g::x"), Some("g"));
        assert_eq!(first_part("demo::x::y"), Some("demo"));
        assert_eq!(first_part("plain"), None);
    }
}
