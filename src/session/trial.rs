//! One trial, start to finish: measure (or simulate), judge, and put the report together.
//! Nothing is written here: the session's sinks write what the outcome holds.

use std::time::SystemTime;

use super::measure::{Measured, measure};
use super::{Session, SessionBaseline, SessionError, TrialOutcome, client_runtime};
use crate::case::ServerKind;
use crate::judge::Verdict;
use crate::plan::Shape;
use crate::plan::TrialPlan;
use crate::report::{
    AccuracyBody, LoadBody, LoadShape, TrialBody, TrialMeta, TrialReport, trial_dir,
};

/// Runs the plan and returns its outcome.
pub(super) fn run(session: &Session, plan: &TrialPlan) -> Result<TrialOutcome, SessionError> {
    let (report, records, samples, study) = match plan {
        TrialPlan::Sim(sim) => {
            let (report, study) = super::sim::run(&session.context, plan, sim.step);
            (report, Vec::new(), Vec::new(), Some(study))
        }
        TrialPlan::Load(_) | TrialPlan::Accuracy(_) => {
            let runtime = client_runtime(session.client_threads)?;
            let baseline = SessionBaseline {
                session: &session.scores,
                run: &session.run_baseline,
            };
            let mut measured = runtime.block_on(measure(session, plan, &baseline));
            let records = std::mem::take(&mut measured.records);
            let samples = std::mem::take(&mut measured.samples);
            (report(session, plan, measured), records, samples, None)
        }
    };
    let passed = report.passed();
    let dir = trial_dir::trial_dir(&session.context.out_dir, &report, !passed);
    Ok(TrialOutcome {
        report,
        records,
        samples,
        study,
        passed,
        dir,
    })
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

/// The report of a load or accuracy trial from what it measured.
fn report(session: &Session, plan: &TrialPlan, measured: Measured) -> TrialReport {
    let case = plan.case();
    let spec = &case.spec;
    let model = case
        .model
        .as_ref()
        .map(|m| m.name.clone())
        .unwrap_or_default();
    let meta = meta(&session.context.run_id, plan, model, measured.server);
    let body = match plan {
        TrialPlan::Load(load) => {
            let c = &load.point.combination;
            let shape = match load.point.shape {
                Shape::Closed { concurrency, .. } => LoadShape::Closed { concurrency },
                Shape::Open { rate, .. } => LoadShape::Open {
                    rate,
                    max_in_flight: spec.load.max_in_flight,
                },
                Shape::Users { users, .. } => LoadShape::Users { users },
            };
            TrialBody::Load(Box::new(LoadBody {
                isl: c.isl,
                osl: c.osl,
                shape,
                num_prompts: load.point.shape.pool_size(),
                adjusted: c.adjusted,
                summary: measured.summary,
                endpoints: measured.endpoints,
                server_metrics: measured.server_metrics,
                accuracy: measured.accuracy,
            }))
        }
        TrialPlan::Accuracy(_) | TrialPlan::Sim(_) => TrialBody::Accuracy(AccuracyBody {
            concurrency: spec.accuracy.as_ref().map_or(0, |a| a.concurrency),
            accuracy: measured.accuracy,
        }),
    };
    TrialReport {
        meta,
        body,
        verdict: Verdict::from_checks(measured.checks),
    }
}
