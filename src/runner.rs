//! Running one trial end to end: server, load, summary, verdict, reports. Shared by the test
//! harness and the CLI.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::case::{Expect, Kind, LoadedCase};
use crate::client::Client;
use crate::load::ClosedLoop;
use crate::matrix::Combination;
use crate::metrics::{RequestRecord, Summary};
use crate::report::{self, TrialReport};
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
}

impl TrialPlan {
    /// The trial name without the kind: `case::isl128_osl64_c4_n4`.
    pub fn name(&self) -> String {
        format!("{}::{}", self.case.spec.name, self.combination.slug())
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

/// Runs one trial and writes its reports (CSV row, trial folder). A server that cannot be
/// had, or requests that fail, make a FAIL verdict with the evidence; only failing to write
/// results is an error.
pub fn execute(plan: &TrialPlan, ctx: &RunContext) -> Result<TrialOutcome, RunError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (summary, records, checks, server_label) = runtime.block_on(measure(plan, ctx));
    let verdict = Verdict::from_checks(checks);
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
        server: server_label.to_string(),
        api: spec.api.as_str().to_string(),
        isl: c.isl,
        osl: c.osl,
        concurrency: c.concurrency,
        num_prompts: c.prompts,
        adjusted: c
            .adjusted
            .map(|a| format!("{}/{} {}", a.isl, a.osl, a.policy.as_str())),
        summary,
        accuracy: None,
        accuracy_threshold: None,
        verdict,
        expect_fail,
    };
    let passed = !report::trial_dir::trial_failed(&report);
    report::csv::append(&ctx.out_dir.join("results.csv"), &report)?;
    let dir = report::trial_dir::write(&ctx.out_dir, &report, &records, !passed)?;
    Ok(TrialOutcome {
        report,
        passed,
        dir,
    })
}

async fn measure(
    plan: &TrialPlan,
    ctx: &RunContext,
) -> (Summary, Vec<RequestRecord>, Vec<Check>, &'static str) {
    let spec = &plan.case.spec;
    let first = spec.destinations().remove(0).server;
    let server = match RunningServer::bring_up(
        &first,
        &plan.case.model,
        ctx.url_override.as_deref(),
    )
    .await
    {
        Ok(server) => server,
        Err(e) => {
            let label = if ctx.url_override.is_some() {
                "attach"
            } else {
                first.label()
            };
            return (
                Summary::default(),
                Vec::new(),
                vec![server_check(e.to_string())],
                label,
            );
        }
    };
    let label = server.label;
    let timeout = Duration::from_secs_f64(spec.load.timeout_s);
    let client = match Client::new(&server.base_url, spec.api, &server.served_model, timeout) {
        Ok(client) => client,
        Err(e) => {
            server.shutdown().await;
            return (
                Summary::default(),
                Vec::new(),
                vec![server_check(e.to_string())],
                label,
            );
        }
    };
    let c = &plan.combination;
    let load = ClosedLoop {
        concurrency: c.concurrency,
        num_prompts: c.prompts,
        warmup: match spec.load.warmup {
            crate::case::Warmup::Requests(n) => n,
            crate::case::Warmup::Duration(_) => 1,
        },
        isl: c.isl,
        osl: c.osl,
        seed: spec.load.seed,
    };
    let outcome = load.run(&client).await;
    server.shutdown().await;
    let summary = Summary::from_records(&outcome.records, outcome.duration_s);
    let mut checks = vec![verdict::run_check(&summary)];
    checks.extend(verdict::target_checks(
        c.targets.as_ref(),
        &spec.targets,
        &summary,
    ));
    checks.extend(spec.slo.iter().map(|slo| slo.check(&summary)));
    (summary, outcome.records, checks, label)
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
