//! The accuracy phase of a trial: the task's questions sent to the server, each answer scored
//! by every filter of the task (the judge checks the score, see [`crate::judge::accuracy`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use futures_util::StreamExt;

use crate::accuracy::summary::{ChoiceLoglikelihood, ScoredSample};
use crate::accuracy::{Sample, Task, cut_at_stop, loglik};
use crate::case::{AccuracySpec, Api};
use crate::client::tool_calls::scored_text;
use crate::client::{Client, Ending, Generation, Role, ToolRequest, Turn};

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
                    if task.is_loglikelihood() {
                        return (i, ask_choices(task, sample, client, load_running).await);
                    }
                    let request = generation(task, sample, api, spec.fewshot_as_multiturn);
                    let record = client.generate(i as u64, start, &request).await;
                    let under_load = load_running.map(|l| l.load(Ordering::Acquire));
                    // A tool task scores the first call (`NAME ARGUMENTS`), else the text.
                    let call = record.tool_calls.as_deref().and_then(scored_text);
                    let response = call.as_deref().unwrap_or_else(|| {
                        record
                            .text
                            .as_deref()
                            .map(|text| cut_at_stop(text, task.stop()))
                            .unwrap_or_default()
                    });
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

/// A loglikelihood task's question: each choice asked in turn on the completions endpoint
/// (whatever the case's `api`) as lm-eval's `local-completions` asks it, then scored from the
/// choices' loglikelihoods. A request that fails, or an answer without the echoed logprobs,
/// leaves the question unscored with the reason as its error.
async fn ask_choices(
    task: &Task,
    sample: &Sample,
    client: &Client,
    load_running: Option<Arc<AtomicBool>>,
) -> ScoredSample {
    let start = Instant::now();
    let context = sample.prompt();
    let mut choices = Vec::new();
    let mut error = None;
    for (context, continuation) in task.continuations(sample) {
        let body = loglik::request_body(client.model(), &context, &continuation);
        let answer = client.post_json("/v1/completions", &body).await;
        match answer.and_then(|answer| {
            loglik::loglikelihood(&answer, &continuation).map_err(|e| e.to_string())
        }) {
            Ok(ll) => choices.push(ChoiceLoglikelihood {
                continuation,
                logprob: ll.logprob,
                is_greedy: ll.is_greedy,
            }),
            Err(reason) => {
                error = Some(format!("no loglikelihood of {continuation:?}: {reason}"));
                break;
            }
        }
    }
    let under_load = load_running.map(|l| l.load(Ordering::Acquire));
    let e2el_ms = Some(start.elapsed().as_secs_f64() * 1000.0);
    let lls: Vec<f64> = choices.iter().map(|c| c.logprob).collect();
    let results = match error {
        None => task.score_choices(sample, &lls),
        Some(_) => Vec::new(),
    };
    let response = choices
        .iter()
        .map(|c| format!("{}: {}", c.continuation.trim_start(), c.logprob))
        .collect::<Vec<_>>()
        .join(", ");
    ScoredSample {
        id: sample.id.clone(),
        prompt_excerpt: tail(&context, PROMPT_EXCERPT_BYTES).to_string(),
        response,
        extracted: results
            .iter()
            .map(|r| (r.filter.to_string(), r.extracted.clone()))
            .collect(),
        target: sample.target.clone(),
        correct: task
            .filters()
            .iter()
            .map(|&filter| {
                let right = results.iter().any(|r| r.filter == filter && r.correct);
                (filter.to_string(), right)
            })
            .collect(),
        error,
        e2el_ms,
        under_load,
        loglikelihoods: Some(choices),
    }
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
        keep_text: true,
        tools: task.tools().map(|tools| {
            Arc::new(ToolRequest {
                tools: tools.clone(),
                tool_choice: task
                    .tool_choice(sample)
                    .cloned()
                    .unwrap_or_else(|| serde_json::json!("auto")),
            })
        }),
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
        loglikelihoods: None,
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
}
