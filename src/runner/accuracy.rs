//! The accuracy phase of a trial: the task's questions sent to the server, each answer scored
//! by every filter of the task, and the judged score checked against the case's threshold.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use futures_util::StreamExt;

use crate::accuracy::{Sample, Task, cut_at_stop};
use crate::case::{AccuracySpec, Api};
use crate::client::{Client, Ending, Generation, Role, Turn};
use crate::report::accuracy::{AccuracySummary, FilterScore, ScoredSample, ThresholdSummary};
use crate::verdict::{Check, Status};

/// Bytes of the prompt's end kept in each scored sample.
const PROMPT_EXCERPT_BYTES: usize = 300;

/// Sends every question (at most `spec.concurrency` at once) and scores the answers. With
/// `load_running`, each sample notes whether its answer came back while the load still ran.
pub(super) async fn ask_all(
    task: &Task,
    spec: &AccuracySpec,
    client: &Client,
    api: Api,
    load_running: Option<Arc<AtomicBool>>,
) -> Vec<ScoredSample> {
    let start = Instant::now();
    let concurrency = spec.concurrency.max(1) as usize;
    let mut scored: Vec<(usize, ScoredSample)> =
        futures_util::stream::iter(task.samples().iter().enumerate())
            .map(|(i, sample)| {
                let load_running = load_running.clone();
                async move {
                    let request = generation(task, sample, api, spec.fewshot_as_multiturn);
                    let record = client.generate(i as u64, start, &request).await;
                    let under_load = load_running.map(|l| l.load(Ordering::Acquire));
                    let response = record
                        .text
                        .as_deref()
                        .map(|text| cut_at_stop(text, task.stop()))
                        .unwrap_or_default();
                    let error = record.error.map(|class| {
                        let detail = record.error_detail.as_deref().unwrap_or_default();
                        format!("{}: {detail}", class.as_str())
                    });
                    (
                        i,
                        score(
                            task,
                            sample,
                            &request,
                            response,
                            error,
                            record.e2el_ms,
                            under_load,
                        ),
                    )
                }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
    scored.sort_by_key(|(i, _)| *i);
    scored.into_iter().map(|(_, s)| s).collect()
}

/// The request for one question: the few-shot prompt as text, or as chat turns when the case
/// asks for few-shot examples as a conversation.
fn generation(task: &Task, sample: &Sample, api: Api, multiturn: bool) -> Generation {
    let turns = if api == Api::Chat && multiturn && !sample.shots.is_empty() {
        sample
            .shots
            .iter()
            .flat_map(|shot| {
                [
                    Turn {
                        role: Role::User,
                        content: shot.question.clone(),
                    },
                    Turn {
                        role: Role::Assistant,
                        content: shot.answer.clone(),
                    },
                ]
            })
            .chain([Turn {
                role: Role::User,
                content: sample.question.clone(),
            }])
            .collect()
    } else {
        Vec::new()
    };
    Generation {
        prompt: sample.prompt(),
        turns,
        max_tokens: task.max_tokens(),
        ending: Ending::Natural {
            stop: task.stop().to_vec(),
        },
    }
}

fn score(
    task: &Task,
    sample: &Sample,
    request: &Generation,
    response: &str,
    error: Option<String>,
    e2el_ms: Option<f64>,
    under_load: Option<bool>,
) -> ScoredSample {
    let results = task.score(sample, response);
    let prompt = request
        .turns
        .last()
        .map_or(request.prompt.as_str(), |t| t.content.as_str());
    ScoredSample {
        id: sample.id.clone(),
        prompt_excerpt: tail(prompt, PROMPT_EXCERPT_BYTES).to_string(),
        response: response.to_string(),
        extracted: results
            .iter()
            .map(|r| (r.filter.to_string(), r.extracted.clone()))
            .collect(),
        target: sample.target.clone(),
        correct: results
            .iter()
            .map(|r| (r.filter.to_string(), r.correct && error.is_none()))
            .collect(),
        error,
        e2el_ms,
        under_load,
    }
}

/// The last `max` bytes of `text` (at a character boundary).
fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// The scores of the samples, judged against the case's threshold: the summary for the report
/// and the checks (the threshold; for stress trials, that every answer came back under load).
pub(super) fn judge(
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
    let (threshold, mut checks) = match &spec.threshold {
        None => (
            None,
            vec![Check {
                name,
                source: "accuracy".into(),
                actual: Some(score),
                target: None,
                ratio: None,
                rule: "no threshold set".into(),
                status: Status::NotApplicable,
                reason: format!("score {score:.2} on {n} questions, no threshold set{failed_note}"),
            }],
        ),
        Some(threshold) => {
            let judgement = threshold.judge(score, n);
            let summary = ThresholdSummary {
                kind: threshold.kind.as_str().to_string(),
                value: judgement.threshold,
                theta: judgement.theta,
                passed: judgement.passed,
            };
            let check = Check {
                name,
                source: "accuracy".into(),
                actual: Some(score),
                target: Some(judgement.threshold),
                ratio: None,
                rule: judgement.rule,
                status: if judgement.passed {
                    Status::Pass
                } else {
                    Status::Fail
                },
                reason: format!("{}{failed_note}", judgement.reason),
            };
            (Some(summary), vec![check])
        }
    };
    if let Some(under) = under_load {
        checks.push(Check {
            name: "accuracy under load".into(),
            source: "run".into(),
            actual: Some(under as f64),
            target: Some(n as f64),
            ratio: None,
            rule: "every answer comes back while the load runs".into(),
            status: if under == n {
                Status::Pass
            } else {
                Status::Fail
            },
            reason: if under == n {
                format!("all {n} answers came back while the load ran")
            } else {
                format!(
                    "only {under} of {n} answers came back while the load ran: lengthen the \
                     load (load.requests or load.duration) or shorten the task (accuracy.limit)"
                )
            },
        });
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

fn percent(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case("abcdef", 3, "def")]
    #[case("ab", 5, "ab")]
    #[case("aé", 1, "")]
    fn excerpts_keep_the_end_at_a_character_boundary(
        #[case] text: &str,
        #[case] max: usize,
        #[case] kept: &str,
    ) {
        assert_eq!(tail(text, max), kept);
    }

    #[test]
    fn percent_of_nothing_is_zero() {
        assert_eq!(percent(0, 0), 0.0);
        assert_eq!(percent(1, 4), 25.0);
    }
}
