//! The accuracy part of a trial's results: scores by filter, the threshold, and one scored
//! sample per question (`accuracy.jsonl`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::case::ThresholdKind;

/// What an accuracy phase scored, and how it was judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccuracySummary {
    /// Task name, such as `gsm8k`.
    pub task: String,
    /// Where its questions came from, such as `gsm8k/test.jsonl` or `built-in`.
    pub dataset: String,
    /// Questions scored (failed requests count, as wrong answers).
    pub n: usize,
    /// Requests that failed (scored as wrong).
    pub errors: usize,
    /// The score of every filter of the task, in the task's order.
    pub filters: Vec<FilterScore>,
    /// The filter the threshold judges.
    pub judged_filter: String,
    /// The threshold, when the case sets one.
    pub threshold: Option<ThresholdSummary>,
    /// Stress trials: questions whose answers came back while the load was still running.
    pub under_load: Option<usize>,
    /// Stress trials: the judged filter's score in this run's accuracy trial of the same case,
    /// when that trial ran first.
    pub baseline: Option<f64>,
}

impl AccuracySummary {
    /// The judged filter's score (0–100).
    pub fn score(&self) -> Option<f64> {
        self.filters
            .iter()
            .find(|f| f.filter == self.judged_filter)
            .map(|f| f.score)
    }
}

/// One filter's score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilterScore {
    /// Filter name, such as `strict-match`.
    pub filter: String,
    /// Percentage of questions answered right (0–100).
    pub score: f64,
}

/// The threshold an accuracy score was judged against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdSummary {
    /// How the score was judged.
    pub kind: ThresholdKind,
    /// The bound the score had to reach (0–100).
    pub value: f64,
    /// Hypothesis test: the minimum detectable effect θ, in points.
    pub theta: Option<f64>,
    /// Whether the score met it.
    pub passed: bool,
}

/// One scored question: a line of `accuracy.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredSample {
    /// The question's id in its dataset, such as `test/17`.
    pub id: String,
    /// The end of the prompt (the question asked).
    pub prompt_excerpt: String,
    /// The answer, cut at the first stop sequence.
    pub response: String,
    /// What each filter extracted from the answer (`[invalid]` when nothing matched).
    pub extracted: BTreeMap<String, String>,
    /// The reference answer.
    pub target: String,
    /// Whether each filter's extraction matched the target.
    pub correct: BTreeMap<String, bool>,
    /// Why the request failed, when it did.
    pub error: Option<String>,
    /// Time from send to the end of the answer, milliseconds.
    pub e2el_ms: Option<f64>,
    /// Stress trials: whether the answer came back while the load was still running.
    pub under_load: Option<bool>,
    /// Loglikelihood tasks: each choice's continuation, summed logprob and greediness, in
    /// choice order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loglikelihoods: Option<Vec<ChoiceLoglikelihood>>,
}

/// The loglikelihood of one choice of a question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChoiceLoglikelihood {
    /// What was scored after the context, such as `" B"`.
    pub continuation: String,
    /// Summed logprob of its tokens.
    pub logprob: f64,
    /// Whether every one of its tokens was the most likely.
    pub is_greedy: bool,
}
