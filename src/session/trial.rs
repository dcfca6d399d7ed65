//! One trial, start to finish: measure (or simulate), judge, and put the report together.
//! Nothing is written here: the session's sinks write what the outcome holds.

use std::time::SystemTime;

use super::measure::{Measured, measure};
use super::{Session, SessionBaseline, SessionError, TrialOutcome, client_runtime};
use crate::accuracy::summary::ScoredSample;
use crate::case::ServerKind;
use crate::judge::Verdict;
use crate::metrics::RequestRecord;
use crate::plan::{LoadTrial, Shape, TrialPlan};
use crate::report::rerun::ServerIdentity;
use crate::report::{
    AccuracyBody, LoadBody, LoadShape, TrialBody, TrialMeta, TrialReport, trial_dir,
};

/// Runs the plan and returns its outcome.
pub(super) fn run(session: &Session, plan: &TrialPlan) -> Result<TrialOutcome, SessionError> {
    let mut shard = None;
    let mut spooled = None;
    let (report, records, samples, study, servers) = match plan {
        TrialPlan::Sim(sim) => {
            let (report, study) = super::sim::run(&session.context, plan, sim.step);
            (
                report,
                Vec::new(),
                Vec::new(),
                Some(study),
                Servers::default(),
            )
        }
        TrialPlan::Load(load) => {
            let (server, mut measured) = measure_on_client_runtime(session, plan)?;
            let (records, samples, servers) = take_files(&mut measured);
            shard = measured.shard.take();
            spooled = measured.spooled.take();
            let body = TrialBody::Load(Box::new(load_body(load, &mut measured)));
            (
                report(session, plan, server, body, measured),
                records,
                samples,
                None,
                servers,
            )
        }
        TrialPlan::Accuracy(_) => {
            let (server, mut measured) = measure_on_client_runtime(session, plan)?;
            let (records, samples, servers) = take_files(&mut measured);
            let body = TrialBody::Accuracy(AccuracyBody {
                concurrency: accuracy_concurrency(plan),
                accuracy: measured.accuracy.take(),
            });
            (
                report(session, plan, server, body, measured),
                records,
                samples,
                None,
                servers,
            )
        }
    };
    let mut report = report;
    let compared = session.baseline_checks(plan, &report, &records, &samples);
    if !compared.is_empty() {
        let mut checks = std::mem::take(&mut report.verdict.checks);
        checks.extend(compared);
        report.verdict = Verdict::from_checks(checks);
    }
    let passed = report.passed();
    let dir = trial_dir::trial_dir(&session.context.out_dir, &report, !passed);
    let mut rerun = session.rerun(plan);
    rerun.servers = servers.identities;
    Ok(TrialOutcome {
        report,
        records,
        samples,
        study,
        passed,
        case_yaml: case_yaml(plan),
        rerun,
        dir,
        server_urls: servers.urls,
        shard,
        attachments: servers.attachments,
        spooled,
    })
}

/// The case as it ran, for `case.yaml`, with the secrets its clients send (header values, the
/// API key) redacted like every other text the trial keeps.
fn case_yaml(plan: &TrialPlan) -> String {
    let case = plan.case();
    super::measure::case_secrets(&case.spec)
        .redact(&case.resolved)
        .into_owned()
}

/// The outcome of a trial that panicked: FAIL, with the panic's message as the evidence and
/// nothing measured.
pub(super) fn panicked(session: &Session, plan: &TrialPlan, message: &str) -> TrialOutcome {
    let mut measured = Measured {
        checks: vec![crate::judge::run::panicked(message)],
        ..Measured::default()
    };
    let (server, body) = match plan {
        TrialPlan::Load(load) => (
            ServerKind::Embedded,
            TrialBody::Load(Box::new(load_body(load, &mut measured))),
        ),
        TrialPlan::Accuracy(_) => (
            ServerKind::Embedded,
            TrialBody::Accuracy(AccuracyBody {
                concurrency: accuracy_concurrency(plan),
                accuracy: None,
            }),
        ),
        TrialPlan::Sim(sim) => (
            ServerKind::Simulator,
            TrialBody::Sim(crate::report::sim::SimStepReport {
                preset: plan
                    .case()
                    .spec
                    .sim
                    .as_ref()
                    .map_or("small", |s| s.preset.as_str())
                    .to_string(),
                step: sim.step.name().to_string(),
                hardware: String::new(),
                runs: 0,
                requests: 0,
                completed: 0,
                rejected: 0,
                knee_replicas: None,
                best_bins: None,
                findings: Vec::new(),
                table: String::new(),
                wall_s: 0.0,
            }),
        ),
    };
    let server = match (plan, plan.case().spec.destinations().first()) {
        (TrialPlan::Sim(_), _) | (_, None) => server,
        (_, Some(d)) => d.server.kind(),
    };
    let report = report(session, plan, server, body, measured);
    let dir = trial_dir::trial_dir(&session.context.out_dir, &report, true);
    TrialOutcome {
        passed: report.passed(),
        report,
        records: Vec::new(),
        samples: Vec::new(),
        study: None,
        case_yaml: case_yaml(plan),
        rerun: session.rerun(plan),
        server_urls: Vec::new(),
        dir,
        shard: None,
        attachments: Vec::new(),
        spooled: None,
    }
}

/// Measures the plan on a client runtime of its own, comparing a stress trial's accuracy
/// with the session's baselines.
fn measure_on_client_runtime(
    session: &Session,
    plan: &TrialPlan,
) -> Result<(ServerKind, Measured), SessionError> {
    let runtime = client_runtime(session.client_threads)?;
    let baseline = SessionBaseline {
        session: &session.scores,
        run: &session.run_baseline,
    };
    Ok(runtime.block_on(measure(session, plan, &baseline)))
}

/// What a trial knows of the servers it measured.
#[derive(Default)]
struct Servers {
    /// Their base URLs, one per endpoint.
    urls: Vec<String>,
    /// What each said of itself.
    identities: Vec<ServerIdentity>,
    /// Other files for the trial's folder.
    attachments: Vec<(&'static str, Vec<u8>)>,
}

/// The records, scored samples and servers, which go to the trial's files rather than its
/// report.
fn take_files(measured: &mut Measured) -> (Vec<RequestRecord>, Vec<ScoredSample>, Servers) {
    (
        std::mem::take(&mut measured.records),
        std::mem::take(&mut measured.samples),
        Servers {
            urls: std::mem::take(&mut measured.urls),
            identities: std::mem::take(&mut measured.identities),
            attachments: std::mem::take(&mut measured.attachments),
        },
    )
}

/// What every report of the plan's trial starts with.
pub(super) fn meta(
    session_run_id: &str,
    plan: &TrialPlan,
    model: String,
    server: ServerKind,
) -> TrialMeta {
    let spec = &plan.case().spec;
    TrialMeta {
        run_id: session_run_id.to_string(),
        timestamp: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        trial: plan.name(),
        kind: plan.kind(),
        case: spec.name.clone(),
        model,
        server,
        api: match plan {
            TrialPlan::Sim(_) => None,
            _ => Some(spec.api),
        },
        expect: spec.expect,
    }
}

/// What a load trial measured, taken out of `measured`.
fn load_body(load: &LoadTrial, measured: &mut Measured) -> LoadBody {
    let c = &load.point.combination;
    let shape = match load.point.shape {
        Shape::Closed { concurrency, .. } => LoadShape::Closed { concurrency },
        Shape::Open { rate, .. } => LoadShape::Open {
            rate,
            max_in_flight: load.case.spec.load.max_in_flight,
        },
        Shape::Users { users, .. } => LoadShape::Users { users },
        Shape::Consistency { .. } => LoadShape::Consistency,
        Shape::Sessions { rate, .. } => LoadShape::Sessions { rate },
    };
    LoadBody {
        isl: c.isl,
        osl: c.osl,
        shape,
        num_prompts: load.point.shape.pool_size(),
        adjusted: c.adjusted,
        summary: std::mem::take(&mut measured.summary),
        endpoints: std::mem::take(&mut measured.endpoints),
        server_metrics: std::mem::take(&mut measured.server_metrics),
        accuracy: measured.accuracy.take(),
        attempts: std::mem::take(&mut measured.attempts),
    }
}

/// The report of a load or accuracy trial: its body and the checks it measured.
fn report(
    session: &Session,
    plan: &TrialPlan,
    server: ServerKind,
    body: TrialBody,
    measured: Measured,
) -> TrialReport {
    let case = plan.case();
    let model = case
        .model
        .as_ref()
        .map(|m| m.name.clone())
        .unwrap_or_default();
    TrialReport {
        meta: meta(&session.context.run_id, plan, model, server),
        body,
        verdict: Verdict::from_checks(measured.checks),
    }
}

/// Questions an accuracy trial keeps in flight (0 when the case has no accuracy task).
fn accuracy_concurrency(plan: &TrialPlan) -> u32 {
    plan.accuracy_spec().map_or(0, |a| a.concurrency)
}
