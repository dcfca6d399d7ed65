//! Loglikelihood parity with lm-evaluation-harness 0.4.13: the `mmlu` task's prompts and
//! request bodies, the loglikelihood read from each response and `acc` / `acc_norm` equal what
//! lm-eval's own code makes of the same responses (`tests/fixtures/loglik_parity.json`, written
//! by `scripts/lm_eval_loglik_parity.py`), bit for bit.
//!
//! The responses are the embedded server's (`loglik_recorded.json`, checked here to be what the
//! server answers today; `LLM_STRESS_RECORD_FIXTURES=1` rewrites it) and hand-made edge cases
//! (`loglik_hand_made.json`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use llm_stress::accuracy::{Task, loglik};
use llm_stress::case::{AccuracySpec, AnswerSpec, Api, CorrectRate, EmbeddedSpec};
use llm_stress::client::{Client, ClientConfig};
use llm_stress::server::embedded::EmbeddedServer;
use llm_stress::server::embedded::answers::AnswerKey;

/// One question: its context, choices and each choice's response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Case {
    id: String,
    /// Recorded cases: the doc's line in `mmlu_loglik.jsonl`, 0-based.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    doc_index: Option<usize>,
    context: String,
    choices: Vec<String>,
    gold: usize,
    target_delimiter: String,
    /// The context's tokens as lm-eval's tokenizer counts them (`ctxlen`).
    ctxlens: Vec<usize>,
    responses: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Cases {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    about: Option<String>,
    cases: Vec<Case>,
}

/// What lm-eval made of one case.
#[derive(Debug, Deserialize)]
struct Expected {
    id: String,
    payloads: Vec<Value>,
    results: Vec<(f64, bool)>,
    acc: f64,
    acc_norm: f64,
    #[serde(default)]
    context: Option<String>,
    #[serde(default)]
    arguments: Option<Vec<(String, String)>>,
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn read<T: for<'de> Deserialize<'de>>(name: &str) -> T {
    let text = std::fs::read_to_string(fixture(name)).expect("fixture");
    serde_json::from_str(&text).expect("fixture json")
}

fn task() -> Task {
    let spec: AccuracySpec = llm_stress::yaml::parse_yaml(
        Path::new("c.yaml"),
        "task: mmlu\ndataset: mmlu_loglik.jsonl\n",
    )
    .expect("spec");
    Task::from_spec(&spec, &fixture("")).expect("task")
}

/// The embedded server's answers to every request of the `mmlu` task on the fixture's docs,
/// right with a chance of 0.6 (seed 7), as recorded cases.
fn record() -> Vec<Case> {
    let task = task();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let spec = EmbeddedSpec {
            answers: AnswerSpec {
                correct: CorrectRate::Fixed(0.6),
                seed: 7,
                logprobs: true,
            },
            ..EmbeddedSpec::default()
        };
        let server = EmbeddedServer::start_answering(
            spec,
            "m".into(),
            0,
            Arc::new(AnswerKey::for_task(&task)),
        )
        .await
        .expect("server");
        let client = Client::new(ClientConfig::new(
            &server.base_url(),
            Api::Completions,
            "m",
            Duration::from_secs(30),
        ))
        .expect("client");
        let mut cases = Vec::new();
        for sample in task.samples() {
            let pairs = task.continuations(sample);
            let mut responses = Vec::new();
            for (context, continuation) in &pairs {
                let body = loglik::request_body("m", context, continuation);
                let mut response = client
                    .post_json("/v1/completions", &body)
                    .await
                    .expect("answer");
                // What differs from run to run: the time and the request's number.
                if let Some(fields) = response.as_object_mut() {
                    fields.remove("created");
                    fields.remove("id");
                }
                responses.push(response);
            }
            let choices: Vec<String> = pairs
                .iter()
                .map(|(_, c)| c.trim_start().to_string())
                .collect();
            let context = sample.prompt();
            cases.push(Case {
                id: sample.id.clone(),
                doc_index: Some(sample.doc_index),
                // The embedded server counts one token a word.
                ctxlens: vec![context.split_whitespace().count(); pairs.len()],
                gold: choices
                    .iter()
                    .position(|c| *c == sample.target)
                    .expect("gold"),
                context,
                choices,
                target_delimiter: " ".into(),
                responses,
                note: None,
            });
        }
        server.shutdown().await;
        cases
    })
}

#[test]
fn recorded_responses_are_what_the_embedded_server_answers() {
    let cases = record();
    if std::env::var_os("LLM_STRESS_RECORD_FIXTURES").is_some() {
        let file = Cases {
            about: Some(
                "The embedded server's answers to the mmlu task's loglikelihood requests on \
                 mmlu_loglik.jsonl (answers: {correct: 0.6, seed: 7}); written by \
                 tests/pipeline/loglik_parity.rs with LLM_STRESS_RECORD_FIXTURES=1."
                    .into(),
            ),
            cases: cases.clone(),
        };
        let text = serde_json::to_string_pretty(&file).expect("json") + "\n";
        std::fs::write(fixture("loglik_recorded.json"), text).expect("write");
    }
    let recorded: Cases = read("loglik_recorded.json");
    assert_eq!(recorded.cases.len(), cases.len());
    for (old, new) in recorded.cases.iter().zip(&cases) {
        // Compared by case, so that a difference names its question.
        assert!(
            old == new,
            "{} differs from what the server answers now",
            new.id
        );
    }
    // The server prefers some right and some wrong answers.
    let right = cases
        .iter()
        .filter(|c| {
            let lls: Vec<f64> = c
                .choices
                .iter()
                .zip(&c.responses)
                .map(|(choice, r)| {
                    loglik::loglikelihood(r, &format!(" {choice}"))
                        .expect("ll")
                        .logprob
                })
                .collect();
            loglik::decide(&lls, &c.choices, c.gold).acc
        })
        .count();
    assert!(
        right > 0 && right < cases.len(),
        "{right} of {}",
        cases.len()
    );
}

#[test]
fn loglikelihoods_and_scores_equal_lm_evals() {
    let recorded: Cases = read("loglik_recorded.json");
    let hand_made: Cases = read("loglik_hand_made.json");
    let expected: Cases2 = read("loglik_parity.json");
    let cases: Vec<Case> = recorded.cases.into_iter().chain(hand_made.cases).collect();
    assert_eq!(cases.len(), expected.cases.len());
    let task = task();
    for (case, lm_eval) in cases.iter().zip(&expected.cases) {
        assert_eq!(case.id, lm_eval.id);
        let pairs: Vec<(String, String)> = case
            .choices
            .iter()
            .map(|c| loglik::split_pair(&case.context, &format!("{}{c}", case.target_delimiter)))
            .collect();
        // The request body of each choice is lm-eval's.
        for ((context, continuation), payload) in pairs.iter().zip(&lm_eval.payloads) {
            assert_eq!(
                &loglik::request_body("m", context, continuation),
                payload,
                "{}",
                case.id
            );
        }
        // The context's tokens, the summed logprob and the greediness of each choice.
        let mut lls = Vec::new();
        for (i, ((_, continuation), response)) in pairs.iter().zip(&case.responses).enumerate() {
            let logprobs = loglik::logprobs_of(response).expect("logprobs");
            let ctxlen = loglik::context_tokens(&logprobs, continuation).expect("ctxlen");
            assert_eq!(ctxlen, case.ctxlens[i], "{} choice {i}", case.id);
            let ll = loglik::parse_logprobs(&logprobs, ctxlen).expect("ll");
            let (logprob, is_greedy) = lm_eval.results[i];
            assert_eq!(
                (ll.logprob.to_bits(), ll.is_greedy),
                (logprob.to_bits(), is_greedy),
                "{} choice {i}: {} vs lm-eval's {logprob}",
                case.id,
                ll.logprob
            );
            lls.push(ll.logprob);
        }
        let decision = loglik::decide(&lls, &case.choices, case.gold);
        assert_eq!(
            (decision.acc, decision.acc_norm),
            (lm_eval.acc == 1.0, lm_eval.acc_norm == 1.0),
            "{}",
            case.id
        );
        // Recorded cases: the task's prompt and continuations are lm-eval's own for the doc,
        // and its scores are the decision's.
        if let Some(index) = case.doc_index {
            let sample = task
                .samples()
                .iter()
                .find(|s| s.doc_index == index)
                .expect("sample");
            assert_eq!(
                Some(&sample.prompt()),
                lm_eval.context.as_ref(),
                "{}",
                case.id
            );
            assert_eq!(
                Some(&task.continuations(sample)),
                lm_eval.arguments.as_ref(),
                "{}",
                case.id
            );
            let scored: Vec<bool> = task
                .score_choices(sample, &lls)
                .iter()
                .map(|r| r.correct)
                .collect();
            assert_eq!(scored, [decision.acc, decision.acc_norm], "{}", case.id);
        }
    }
    // The edge cases do what they are meant to.
    let by_id = |id: &str| {
        expected
            .cases
            .iter()
            .find(|c| c.id == id)
            .unwrap_or_else(|| panic!("case {id}"))
    };
    assert_eq!(
        (
            by_id("norm_disagrees").acc,
            by_id("norm_disagrees").acc_norm
        ),
        (0.0, 1.0)
    );
    assert_eq!((by_id("tie").acc, by_id("tie").acc_norm), (0.0, 0.0));
}

#[derive(Debug, Deserialize)]
struct Cases2 {
    cases: Vec<Expected>,
}
