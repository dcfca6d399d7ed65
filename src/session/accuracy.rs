//! The accuracy phase of a trial: the task's questions sent to the server, each answer scored
//! by every filter of the task (the judge checks the score, see [`crate::judge::accuracy`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use futures_util::StreamExt;

use crate::accuracy::summary::ScoredSample;
use crate::accuracy::{Sample, Task, cut_at_stop};
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
