//! Accuracy: the judged score against the case's threshold, that a stress trial's answers
//! came back while its load ran, and the accuracy trial's score a stress trial compares with
//! ([`Baseline`]).

use super::{Check, CheckSource, Status};
use crate::accuracy::Task;
use crate::accuracy::summary::{AccuracySummary, FilterScore, ScoredSample, ThresholdSummary};
use crate::case::AccuracySpec;

/// Where a stress trial finds the score of its case's accuracy trial, to report the change
/// under load. It adds a comparison to the report and never decides an outcome: a stress
/// trial run alone passes or fails exactly as it would beside its accuracy trial.
pub trait Baseline: Send + Sync {
    /// The judged score (0–100) of the accuracy trial named `trial` (`case::gsm8k_n50`, its
    /// name without the kind) in this run, if it has finished.
    fn accuracy_score(&self, trial: &str) -> Option<f64>;
}

/// No baseline: a stress trial reports that no accuracy-trial score was available.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoBaseline;

impl Baseline for NoBaseline {
    fn accuracy_score(&self, _trial: &str) -> Option<f64> {
        None
    }
}

/// The scores of the samples, judged against the case's threshold: the summary for the report
/// and the checks (the threshold; for stress trials, that every answer came back under load).
pub fn judge(
    task: &Task,
    spec: &AccuracySpec,
    samples: &[ScoredSample],
    baseline: Option<f64>,
) -> (AccuracySummary, Vec<Check>) {
    let n = samples.len();
    let filters: Vec<FilterScore> = task
        .filters()
        .iter()
        .map(|&filter| {
            let right = samples
                .iter()
                .filter(|s| s.correct.get(filter).copied().unwrap_or(false))
                .count();
            FilterScore {
                filter: filter.to_string(),
                score: percent(right, n),
            }
        })
        .collect();
    let judged = task.judged_filter();
    let score = filters
        .iter()
        .find(|f| f.filter == judged)
        .map_or(0.0, |f| f.score);
    let errors = samples.iter().filter(|s| s.error.is_some()).count();
    let under_load = samples
        .iter()
        .map(|s| s.under_load)
        .collect::<Option<Vec<bool>>>()
        .filter(|_| n > 0)
        .map(|flags| flags.into_iter().filter(|&u| u).count());
    let name = format!("accuracy {}/{judged}", task.name());
    let failed_note = if errors > 0 {
        format!(" ({errors} of {n} requests failed and count as wrong)")
    } else {
        String::new()
    };
    let (threshold, check) = threshold_check(
        spec,
        name,
        score,
        n,
        &format!("score {score:.2} on {n} questions"),
        &failed_note,
    );
    let mut checks = vec![check];
    // A loglikelihood task never scores a server that cannot answer it: one question without
    // its loglikelihoods fails the trial, with the server's reason.
    if task.is_loglikelihood()
        && let Some(first) = samples.iter().find_map(|s| s.error.as_deref())
    {
        checks.push(
            Check::new(
                Status::Fail,
                CheckSource::Accuracy,
                "loglikelihood support",
                "every choice's loglikelihood comes back (`echo` + `logprobs` on /v1/completions)",
                format!("{errors} of {n} questions got no loglikelihoods; the first: {first}"),
            )
            .measured(Some(errors as f64))
            .against(Some(0.0)),
        );
    }
    if let Some(under) = under_load {
        checks.push(
            Check::new(
                Status::of(under == n),
                CheckSource::Run,
                "accuracy under load",
                "every answer comes back while the load runs",
                if under == n {
                    format!("all {n} answers came back while the load ran")
                } else {
                    format!(
                        "only {under} of {n} answers came back while the load ran: lengthen the \
                     load (load.requests or load.duration) or shorten the task (accuracy.limit)"
                    )
                },
            )
            .measured(Some(under as f64))
            .against(Some(n as f64)),
        );
    }
    let summary = AccuracySummary {
        task: task.name().to_string(),
        dataset: task.dataset_label(),
        n,
        errors,
        filters,
        judged_filter: judged.to_string(),
        threshold,
        under_load,
        baseline,
    };
    (summary, checks)
}

/// An `external` task's score, or why the command gave none, judged against the case's
/// threshold: a command that failed, timed out or wrote no score fails the trial, with
/// `evidence` (its exit, the end of its stderr) in the reason.
pub fn judge_external(
    task: &Task,
    spec: &AccuracySpec,
    score: Result<f64, String>,
) -> (AccuracySummary, Vec<Check>) {
    let name = format!("accuracy {}/score", task.name());
    let n = spec.threshold.as_ref().and_then(|t| t.n).unwrap_or(0) as usize;
    let (filters, errors, threshold, check) = match score {
        Err(reason) => (
            Vec::new(),
            1,
            None,
            Check::new(
                Status::Fail,
                CheckSource::Accuracy,
                name,
                "the command exits 0 and its output holds a score",
                reason,
            ),
        ),
        Ok(score) => {
            let filters = vec![FilterScore {
                filter: "score".into(),
                score,
            }];
            let (threshold, check) = threshold_check(
                spec,
                name,
                score,
                n.max(1),
                &format!("the command scored {score:.2}"),
                "",
            );
            (filters, 0, threshold, check)
        }
    };
    let summary = AccuracySummary {
        task: task.name().to_string(),
        dataset: task.dataset_label(),
        n,
        errors,
        filters,
        judged_filter: "score".into(),
        threshold,
        under_load: None,
        baseline: None,
    };
    (summary, vec![check])
}

/// The check of `score` (on `n` questions) against the case's threshold, and the threshold's
/// summary; without a threshold, a not-applicable check saying `scored` (`score 80.00 on 20
/// questions`). `note` ends the reason (requests that failed and count as wrong).
fn threshold_check(
    spec: &AccuracySpec,
    name: String,
    score: f64,
    n: usize,
    scored: &str,
    note: &str,
) -> (Option<ThresholdSummary>, Check) {
    let Some(threshold) = &spec.threshold else {
        let check = Check::not_applicable(
            CheckSource::Accuracy,
            name,
            "no threshold set",
            format!("{scored}, no threshold set{note}"),
        )
        .measured(Some(score));
        return (None, check);
    };
    let judgement = threshold.judge(score, n);
    let summary = ThresholdSummary {
        kind: threshold.kind,
        value: judgement.threshold,
        theta: judgement.theta,
        passed: judgement.passed,
    };
    let check = Check::new(
        Status::of(judgement.passed),
        CheckSource::Accuracy,
        name,
        judgement.rule,
        format!("{}{note}", judgement.reason),
    )
    .measured(Some(score))
    .against(Some(judgement.threshold));
    (Some(summary), check)
}

fn percent(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_of_nothing_is_zero() {
        assert_eq!(percent(0, 0), 0.0);
        assert_eq!(percent(1, 4), 25.0);
    }

    #[test]
    fn no_baseline_has_no_score() {
        assert_eq!(NoBaseline.accuracy_score("demo-gsm8k"), None);
    }
}
