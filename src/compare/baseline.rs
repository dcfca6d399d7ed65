//! A baseline run that a session's trials are compared with as they finish (`llm-stress run
//! --baseline`, `LLM_STRESS_BASELINE` under the harness): each compared metric becomes a check
//! of the trial, so a confident regression fails it like any other check, with the
//! comparison's row as the reason.

use std::path::Path;

use super::render;
use super::runs::{self, read_trial};
use super::sample::{Answers, TrialData};
use super::{Gate, MetricComparison, TrialComparison, compare_trial};
use crate::accuracy::summary::ScoredSample;
use crate::case::Kind;
use crate::judge::{Check, CheckSource, Status};
use crate::metrics::RequestRecord;
use crate::report::run::Run;
use crate::report::{ReportError, TrialReport};

/// Environment variable naming the baseline (a run folder, or an output folder whose newest
/// run is the baseline).
pub const BASELINE_ENV: &str = "LLM_STRESS_BASELINE";

/// The baseline run and how strictly trials are held to it.
#[derive(Debug, Clone)]
pub struct BaselineRun {
    run: Run,
    gate: Gate,
    seed: u64,
}

impl BaselineRun {
    /// Reads the baseline at `path` (a run folder, or an output folder and `run_id`, default
    /// its newest run); `gate` applies to trials whose case sets none.
    pub fn load(path: &Path, run_id: Option<&str>, gate: Gate) -> Result<BaselineRun, ReportError> {
        Ok(BaselineRun {
            run: runs::read_run(path, run_id)?,
            gate,
            seed: runs::DEFAULT_SEED,
        })
    }

    /// The baseline named by [`BASELINE_ENV`], if it is set.
    pub fn from_env() -> Option<Result<BaselineRun, ReportError>> {
        let path = std::env::var_os(BASELINE_ENV).filter(|v| !v.is_empty())?;
        Some(BaselineRun::load(Path::new(&path), None, Gate::default()))
    }

    /// The baseline's run id.
    pub fn run_id(&self) -> &str {
        &self.run.run_id
    }

    /// Compares a finished trial with the baseline's trial of the same name under `gate`
    /// (the case's, else the baseline's own); none for a sim step, which runs in virtual time.
    pub fn compare(
        &self,
        report: &TrialReport,
        records: &[RequestRecord],
        samples: &[ScoredSample],
        gate: Option<&Gate>,
    ) -> Option<Result<TrialComparison, ReportError>> {
        let mut new = TrialData::new(
            records.to_vec(),
            report.summary().map_or(0.0, |s| s.duration_s),
        );
        if let Some(accuracy) = report.accuracy()
            && !samples.is_empty()
        {
            new.answers = Some(Answers::from_samples(&accuracy.judged_filter, samples));
        }
        self.compare_data(&report.full_name(), report.meta.kind, new, gate)
    }

    /// Compares the evidence `new` of the trial `name` (`[kind] case::combination`) with the
    /// baseline's trial of that name, as [`BaselineRun::compare`] does a finished trial's.
    pub fn compare_data(
        &self,
        name: &str,
        kind: Kind,
        new: TrialData,
        gate: Option<&Gate>,
    ) -> Option<Result<TrialComparison, ReportError>> {
        if kind == Kind::Sim {
            return None;
        }
        let base = self.run.trials.iter().find(|t| t.name() == name)?;
        let gate = runs::gate_for_kind(kind, gate.unwrap_or(&self.gate));
        let base = match read_trial(base) {
            Ok(base) => base,
            Err(e) => return Some(Err(e)),
        };
        Some(Ok(compare_trial(name, &base, &new, &gate, self.seed)))
    }

    /// The gate a trial of the case with `case_gate` is held to.
    pub fn gate<'a>(&'a self, case_gate: Option<&'a Gate>) -> &'a Gate {
        case_gate.unwrap_or(&self.gate)
    }

    /// The checks a finished trial gets from the comparison: one per compared metric; a
    /// trial the baseline lacks, or whose baseline cannot be read, says so (the first does
    /// not fail, the second does: a gate must not pass what it could not check).
    pub fn checks(
        &self,
        report: &TrialReport,
        records: &[RequestRecord],
        samples: &[ScoredSample],
        gate: Option<&Gate>,
    ) -> Vec<Check> {
        let gate_used = gate.unwrap_or(&self.gate);
        let rule = format!(
            "no metric worse than the baseline by more than {:.0} % at {:.0} % confidence",
            gate_used.max_regression * 100.0,
            gate_used.confidence * 100.0
        );
        match self.compare(report, records, samples, gate) {
            None if report.meta.kind == Kind::Sim => Vec::new(),
            None => vec![Check::not_applicable(
                CheckSource::Baseline,
                "baseline",
                rule,
                format!("not in the baseline run {}", self.run.run_id),
            )],
            Some(Err(e)) => vec![Check::fail(
                CheckSource::Baseline,
                "baseline",
                rule,
                format!("the baseline's evidence cannot be read: {e}"),
            )],
            Some(Ok(comparison)) => {
                let runs = report.load().map_or(0, |l| l.attempts.len());
                let mut checks: Vec<Check> = comparison
                    .metrics
                    .iter()
                    .map(|m| metric_check(m, gate_used))
                    .collect();
                if runs > 1 {
                    for check in &mut checks {
                        check.reason.push_str(&format!("; {runs} runs pooled"));
                    }
                }
                checks
            }
        }
    }
}

/// A compared metric as a check: FAIL when it fails the gate, PASS otherwise; the reason is
/// the comparison's row.
fn metric_check(m: &MetricComparison, gate: &Gate) -> Check {
    let status = if m.outcome.fails(gate.inconclusive) {
        Status::Fail
    } else {
        Status::Pass
    };
    let reason = match &m.note {
        Some(note) => format!("{}; {note}", render::summary(m)),
        None => render::summary(m),
    };
    let ratio = match m.metric {
        super::Metric::ErrorRate | super::Metric::Accuracy => None,
        _ => Some(1.0 + m.change),
    };
    let rule = format!(
        "within {:.0} % of the baseline ({:.0} % confidence)",
        gate.max_regression * 100.0,
        gate.confidence * 100.0
    );
    Check::new(
        status,
        CheckSource::Baseline,
        format!("{} vs baseline", m.metric),
        rule,
        reason,
    )
    .measured(Some(m.new))
    .against(Some(m.base))
    .with_ratio(ratio)
}
