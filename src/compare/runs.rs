//! Comparing two runs read from disk: trials matched by name, each trial's evidence read
//! from its folder, trials only one side ran listed.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Gate;
use super::sample::{Answers, TrialData};
use super::{Outcome, TrialComparison, compare_trial};
use crate::accuracy::summary::ScoredSample;
use crate::case::Kind;
use crate::metrics::RequestRecord;
use crate::report::run::{self, Run, RunTrial};
use crate::report::trial_dir::{ACCURACY_FILE, RECORDS_FILE};
use crate::report::{ReportError, TrialReport};

/// The seed of every comparison's bootstrap unless one is given: the same two runs always
/// compare the same way.
pub const DEFAULT_SEED: u64 = 0x5eed_c0de;

/// Two runs compared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunComparison {
    /// BASE's run id.
    pub base_run: String,
    /// NEW's run id.
    pub new_run: String,
    /// The allowed change, as a fraction.
    pub max_regression: f64,
    /// The confidence level.
    pub confidence: f64,
    /// Every trial both runs hold, in NEW's order.
    pub trials: Vec<TrialComparison>,
    /// Trials only BASE ran.
    pub only_in_base: Vec<String>,
    /// Trials only NEW ran.
    pub only_in_new: Vec<String>,
    /// Trials both ran that cannot be compared (sim steps run in virtual time), with why.
    pub not_compared: Vec<String>,
    /// The worst trial outcome (`unchanged` when none was compared).
    pub outcome: Outcome,
}

impl RunComparison {
    /// Trials whose outcome is this one.
    pub fn count(&self, outcome: Outcome) -> usize {
        self.trials.iter().filter(|t| t.outcome == outcome).count()
    }
}

/// Reads a run: `path` is a run folder (it holds `perf/`, `stress/`, … folders) or an output
/// folder holding runs, of which `run_id` (default: the newest) is read.
pub fn read_run(path: &Path, run_id: Option<&str>) -> Result<Run, ReportError> {
    let is_run_folder = ["perf", "stress", "accuracy", "sim"]
        .iter()
        .any(|kind| path.join(kind).is_dir());
    match (is_run_folder, path.file_name(), path.parent()) {
        (true, Some(name), Some(parent)) if run_id.is_none() => {
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            run::load(parent, Some(&name.to_string_lossy()))
        }
        _ => run::load(path, run_id),
    }
}

/// The evidence of one trial, from its folder.
pub fn read_trial(trial: &RunTrial) -> Result<TrialData, ReportError> {
    let records: Vec<RequestRecord> = read_lines(&trial.dir.join(RECORDS_FILE), true)?;
    let duration_s = trial.report.summary().map_or(0.0, |s| s.duration_s);
    let mut data = TrialData::new(records, duration_s);
    if let Some(accuracy) = trial.report.accuracy() {
        let samples: Vec<ScoredSample> = read_lines(&trial.dir.join(ACCURACY_FILE), false)?;
        if !samples.is_empty() {
            data.answers = Some(Answers::from_samples(&accuracy.judged_filter, &samples));
        }
    }
    Ok(data)
}

/// JSON lines of `path`; a missing file is empty unless `required`.
fn read_lines<T: DeserializeOwned>(path: &PathBuf, required: bool) -> Result<Vec<T>, ReportError> {
    let file = match fs::File::open(path) {
        Ok(file) => file,
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ReportError::corrupt(path, None, e.to_string())),
    };
    let mut values = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| ReportError::corrupt(path, Some(i + 1), e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        values.push(
            serde_json::from_str(&line)
                .map_err(|e| ReportError::corrupt(path, Some(i + 1), e.to_string()))?,
        );
    }
    Ok(values)
}

/// The gate that applies to a trial: accuracy trials are compared on accuracy alone (their
/// requests are questions, not load).
pub fn gate_for(report: &TrialReport, gate: &Gate) -> Gate {
    gate_for_kind(report.meta.kind, gate)
}

/// [`gate_for`] a trial of `kind`.
pub fn gate_for_kind(kind: Kind, gate: &Gate) -> Gate {
    let mut gate = gate.clone();
    if kind == Kind::Accuracy {
        gate.metrics.retain(|m| *m == super::Metric::Accuracy);
    }
    gate
}

/// The `gate:` of the case as NEW's trial ran it (its folder's `case.yaml`), when it set one.
/// A folder without `case.yaml` (written by an older version) or one that no longer reads
/// as a case leaves the command's gate in force.
fn case_gate(trial: &RunTrial) -> Option<Gate> {
    let path = trial.dir.join(crate::report::rerun::CASE_FILE);
    let text = fs::read_to_string(&path).ok()?;
    let spec: crate::case::CaseSpec = crate::case::load::parse_yaml(&path, &text).ok()?;
    spec.gate
}

/// Compares every trial the two runs share; a trial whose case sets a `gate:` is held to
/// it, the others to `gate`.
pub fn compare_runs(
    base: &Run,
    new: &Run,
    gate: &Gate,
    seed: u64,
) -> Result<RunComparison, ReportError> {
    let mut trials = Vec::new();
    let mut not_compared = Vec::new();
    let mut only_in_new = Vec::new();
    for new_trial in &new.trials {
        let name = new_trial.name();
        let Some(base_trial) = base.trials.iter().find(|t| t.name() == name) else {
            only_in_new.push(name);
            continue;
        };
        if new_trial.report.meta.kind == Kind::Sim {
            not_compared.push(format!(
                "{name}: a sim step runs in virtual time; its checks judge it"
            ));
            continue;
        }
        let gate = gate_for(
            &new_trial.report,
            case_gate(new_trial).as_ref().unwrap_or(gate),
        );
        let comparison = compare_trial(
            &name,
            &read_trial(base_trial)?,
            &read_trial(new_trial)?,
            &gate,
            seed,
        );
        trials.push(comparison);
    }
    let only_in_base = base
        .trials
        .iter()
        .map(RunTrial::name)
        .filter(|name| !new.trials.iter().any(|t| &t.name() == name))
        .collect();
    let outcome = trials
        .iter()
        .map(|t| t.outcome)
        .filter(|o| *o >= Outcome::Inconclusive)
        .max()
        .unwrap_or(Outcome::Unchanged);
    Ok(RunComparison {
        base_run: base.run_id.clone(),
        new_run: new.run_id.clone(),
        max_regression: gate.max_regression,
        confidence: gate.confidence,
        trials,
        only_in_base,
        only_in_new,
        not_compared,
        outcome,
    })
}
