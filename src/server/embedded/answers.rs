//! Answer mode of the embedded server: it plays a model that knows the answers to the questions
//! of an accuracy task, and gives the right one with a probability that may fall with load.
//!
//! A request that asks for exactly `max_tokens` tokens (`ignore_eos`, as load requests do) gets
//! filler text. Any other request is looked up in the [`AnswerKey`] by how its prompt ends (the
//! question it asks); a known question gets its right or wrong reply, an unknown one filler.
//! Synthetic arithmetic questions (`What is 37 + 58 * 2?`) need no key: the server works them
//! out. Whether a reply is right is decided by a hash of the question against the probability at the
//! number of requests in the server, so it is repeatable: the same question at the same load
//! gets the same reply, and a question answered wrongly stays wrong when the load rises.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::Value;

use crate::case::AnswerSpec;

/// Bytes of a question's end that index it.
const TAIL_BYTES: usize = 48;

/// The questions a server knows, each with a right and a wrong reply.
#[derive(Debug, Default)]
pub struct AnswerKey {
    entries: Vec<KeyEntry>,
    /// Entries by the last `min(TAIL_BYTES, len)` bytes of their question.
    by_tail: HashMap<Vec<u8>, Vec<usize>>,
    /// The tail lengths in use (questions shorter than `TAIL_BYTES` have shorter tails).
    tail_lengths: BTreeSet<usize>,
}

#[derive(Debug)]
struct KeyEntry {
    question: String,
    right: String,
    wrong: String,
}

impl AnswerKey {
    /// A key from `(question, right reply, wrong reply)` triples. A prompt asks a question when
    /// it ends with it (trailing whitespace aside).
    pub fn new(entries: impl IntoIterator<Item = (String, String, String)>) -> AnswerKey {
        let mut key = AnswerKey::default();
        for (question, right, wrong) in entries {
            let question = question.trim_end().to_string();
            if question.is_empty() {
                continue;
            }
            let tail = tail(&question, TAIL_BYTES).to_vec();
            key.tail_lengths.insert(tail.len());
            key.by_tail.entry(tail).or_default().push(key.entries.len());
            key.entries.push(KeyEntry {
                question,
                right,
                wrong,
            });
        }
        key
    }

    /// The question `prompt` ends with and its right and wrong replies, if it is known. When
    /// several known questions end it, the longest wins.
    pub fn lookup(&self, prompt: &str) -> Option<(&str, &str, &str)> {
        let prompt = prompt.trim_end();
        self.tail_lengths
            .iter()
            .filter_map(|&len| self.by_tail.get(tail(prompt, len)))
            .flatten()
            .map(|&i| &self.entries[i])
            .filter(|e| prompt.ends_with(e.question.as_str()))
            .max_by_key(|e| e.question.len())
            .map(|e| (e.question.as_str(), e.right.as_str(), e.wrong.as_str()))
    }

    /// The key to an accuracy task: each of its questions with its right and wrong reply.
    pub fn for_task(task: &crate::accuracy::Task) -> AnswerKey {
        AnswerKey::for_tasks(std::slice::from_ref(task))
    }

    /// The key to several accuracy tasks (a case's list): all their questions.
    pub fn for_tasks(tasks: &[crate::accuracy::Task]) -> AnswerKey {
        AnswerKey::new(tasks.iter().flat_map(|t| t.samples()).map(|s| {
            (
                s.question.clone(),
                s.right_reply.clone(),
                s.wrong_reply.clone(),
            )
        }))
    }

    /// Number of questions known.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no question is known.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The last `len` bytes of `text` (all of it when shorter).
fn tail(text: &str, len: usize) -> &[u8] {
    let bytes = text.as_bytes();
    &bytes[bytes.len().saturating_sub(len)..]
}

/// What a generation request asks beyond its length.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ask {
    /// The text the answer follows: the prompt, or the last user message of a chat.
    pub query: String,
    /// `ignore_eos`: exactly `max_tokens` tokens are wanted, not an answer.
    pub exact: bool,
    /// Stop sequences: the reply ends before the first of them.
    pub stop: Vec<String>,
    /// The request offers tools (chat): a reply is a tool call, `NAME ARGUMENTS`.
    pub tools: bool,
}

impl Ask {
    /// Reads `ignore_eos` and `stop` (a string or a list of strings) from a request body.
    pub fn from_body(body: &Value, query: String) -> Ask {
        let stop = match &body["stop"] {
            Value::String(s) => vec![s.clone()],
            Value::Array(items) => items
                .iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        Ask {
            query,
            exact: body["ignore_eos"].as_bool().unwrap_or(false),
            stop: stop.into_iter().filter(|s| !s.is_empty()).collect(),
            tools: body["tools"].as_array().is_some_and(|t| !t.is_empty()),
        }
    }
}

/// What the server generates for one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// `tokens` filler words (` tok0 tok1 …`), ending for length.
    Filler {
        /// Tokens generated.
        tokens: u32,
    },
    /// A reply, one token per piece (a word with the whitespace before it).
    Reply {
        /// The pieces sent.
        pieces: Vec<String>,
        /// True when the reply was cut at `max_tokens` (finish reason `length`).
        cut: bool,
    },
}

impl Output {
    /// Tokens generated.
    pub fn tokens(&self) -> u32 {
        match self {
            Output::Filler { tokens } => *tokens,
            Output::Reply { pieces, .. } => u32::try_from(pieces.len()).unwrap_or(u32::MAX),
        }
    }

    /// The text of tokens `from..to`.
    pub fn text(&self, from: usize, to: usize) -> String {
        match self {
            Output::Filler { .. } => super::protocol::token_text(from, to),
            Output::Reply { pieces, .. } => pieces
                .get(from..to.min(pieces.len()))
                .unwrap_or_default()
                .concat(),
        }
    }

    /// Tool-call mode: the call's part in tokens `from..to` of a reply read as
    /// `NAME ARGUMENTS` — the name (token 0) and the arguments' fragment (the first argument
    /// token without the space before it). `None` for filler.
    pub fn tool_part(&self, from: usize, to: usize) -> Option<(Option<&str>, String)> {
        let Output::Reply { pieces, .. } = self else {
            return None;
        };
        let to = to.min(pieces.len());
        let name = (from == 0).then(|| pieces.first().map_or("", |p| p.trim()));
        let mut arguments = String::new();
        for (i, piece) in pieces.iter().enumerate().take(to).skip(from.max(1)) {
            arguments.push_str(if i == 1 { piece.trim_start() } else { piece });
        }
        Some((name, arguments))
    }

    /// OpenAI's finish reason: `stop` for a whole reply, `length` otherwise.
    pub fn finish_reason(&self) -> &'static str {
        match self {
            Output::Reply { cut: false, .. } => "stop",
            _ => "length",
        }
    }
}

/// The answer mode of one server: its key and how often it is right.
#[derive(Debug, Default)]
pub struct Answerer {
    key: Arc<AnswerKey>,
    spec: AnswerSpec,
}

impl Answerer {
    /// Answers the questions of `key` as `spec` says.
    pub fn new(key: Arc<AnswerKey>, spec: AnswerSpec) -> Answerer {
        Answerer { key, spec }
    }

    /// What to generate for `ask`, allowed `max_tokens`, with `in_flight` requests in the
    /// server (this one included).
    pub fn output(&self, ask: &Ask, max_tokens: u32, in_flight: usize) -> Output {
        let filler = Output::Filler { tokens: max_tokens };
        if ask.exact {
            return filler;
        }
        // A question of the key, else a synthetic arithmetic question it can work out.
        let (question, right, wrong): (&str, Cow<'_, str>, Cow<'_, str>) =
            match self.key.lookup(&ask.query) {
                Some((question, right, wrong)) => (question, right.into(), wrong.into()),
                None => match crate::accuracy::solve(&ask.query) {
                    Some(n) => (
                        ask.query.trim_end(),
                        n.to_string().into(),
                        n.wrapping_add(1).to_string().into(),
                    ),
                    None => return filler,
                },
            };
        let chance = self.spec.correct.at(in_flight);
        let reply: &str = if unit_hash(self.spec.seed, question.as_bytes()) < chance {
            &right
        } else {
            &wrong
        };
        let reply = crate::accuracy::cut_at_stop(reply, &ask.stop);
        let mut pieces = pieces(reply);
        let cut = pieces.len() > max_tokens as usize;
        pieces.truncate(max_tokens as usize);
        Output::Reply { pieces, cut }
    }
}

impl Answerer {
    /// The seed of the answer mode (fixing which questions are answered wrong).
    pub fn seed(&self) -> u64 {
        self.spec.seed
    }

    /// Whether the server answers `echo` with `logprobs` (see the `logprobs` module).
    pub fn answers_logprobs(&self) -> bool {
        self.spec.logprobs
    }

    /// When `prompt` is a known question followed by a continuation: where the continuation
    /// starts (a byte offset at a token boundary) and whether it is the reply the server would
    /// generate for the question at `in_flight` (trimmed texts equal). The longest prefix that
    /// is a known question wins; only the last 16 tokens are tried as the continuation.
    pub fn preferred_continuation(&self, prompt: &str, in_flight: usize) -> Option<(usize, bool)> {
        let mut ends: Vec<usize> = Vec::new();
        let mut end = 0;
        for piece in pieces(prompt) {
            end += piece.len();
            ends.push(end);
        }
        ends.pop();
        ends.iter().rev().take(16).find_map(|&end| {
            let (question, right, wrong) = self.key.lookup(&prompt[..end])?;
            let chance = self.spec.correct.at(in_flight);
            let reply = if unit_hash(self.spec.seed, question.as_bytes()) < chance {
                right
            } else {
                wrong
            };
            Some((end, prompt[end..].trim() == reply.trim()))
        })
    }
}

/// Splits text into tokens that join back into it: each word with the whitespace before it
/// (whitespace at the very end stays with the last word).
pub(super) fn pieces(text: &str) -> Vec<String> {
    let mut pieces: Vec<String> = Vec::new();
    let mut start = 0;
    let mut previous_word = false;
    for (i, c) in text.char_indices() {
        let space = c.is_whitespace();
        if space && previous_word {
            pieces.push(text[start..i].to_string());
            start = i;
        }
        previous_word = !space;
    }
    let rest = &text[start..];
    match pieces.last_mut() {
        Some(last) if rest.trim().is_empty() => last.push_str(rest),
        _ if rest.is_empty() => {}
        _ => pieces.push(rest.to_string()),
    }
    pieces
}

/// A number in [0, 1) fixed by the seed and the bytes (FNV-1a, 64 bits).
pub(super) fn unit_hash(seed: u64, bytes: &[u8]) -> f64 {
    let hash = seed
        .to_le_bytes()
        .iter()
        .chain(bytes)
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::case::CorrectRate;

    fn key() -> AnswerKey {
        AnswerKey::new([
            (
                "Question: What is 2 + 2?\nAnswer:".to_string(),
                "2 + 2 = 4\n#### 4".to_string(),
                "2 + 2 = 5\n#### 5".to_string(),
            ),
            (
                "Question: A long question about ducks and the eggs they lay every day?\nAnswer:"
                    .to_string(),
                "16 eggs\n#### 16".to_string(),
                "17 eggs\n#### 17".to_string(),
            ),
        ])
    }

    #[rstest]
    #[case("Question: What is 2 + 2?\nAnswer:", Some("2 + 2 = 4\n#### 4"))]
    #[case(
        "Question: What is 1 + 1?\nAnswer: 2\n\nQuestion: What is 2 + 2?\nAnswer:  \n",
        Some("2 + 2 = 4\n#### 4")
    )]
    #[case(
        "shots\n\nQuestion: A long question about ducks and the eggs they lay every day?\nAnswer:",
        Some("16 eggs\n#### 16")
    )]
    #[case("Question: What is 3 + 3?\nAnswer:", None)]
    #[case("", None)]
    fn prompts_are_known_by_the_question_they_end_with(
        #[case] prompt: &str,
        #[case] right: Option<&str>,
    ) {
        assert_eq!(key().lookup(prompt).map(|(_, r, _)| r), right);
    }

    #[rstest]
    #[case("2 + 2 = 4\n#### 4", &["2", " +", " 2", " =", " 4", "\n####", " 4"])]
    #[case("  lead", &["  lead"])]
    #[case("a  b\n", &["a", "  b\n"])]
    #[case("", &[])]
    fn pieces_join_back_into_the_text(#[case] text: &str, #[case] expected: &[&str]) {
        let got = pieces(text);
        assert_eq!(got, expected);
        assert_eq!(got.concat(), text);
    }

    fn answerer(correct: CorrectRate) -> Answerer {
        Answerer::new(
            Arc::new(key()),
            AnswerSpec {
                correct,
                seed: 0,
                logprobs: true,
            },
        )
    }

    fn ask(query: &str) -> Ask {
        Ask {
            query: query.into(),
            exact: false,
            stop: vec!["Question:".into()],
            tools: false,
        }
    }

    #[test]
    fn exact_length_requests_and_unknown_questions_get_filler() {
        let answerer = answerer(CorrectRate::Fixed(1.0));
        let mut exact = ask("Question: What is 2 + 2?\nAnswer:");
        exact.exact = true;
        assert_eq!(answerer.output(&exact, 5, 1), Output::Filler { tokens: 5 });
        assert_eq!(
            answerer.output(&ask("what?"), 3, 1),
            Output::Filler { tokens: 3 }
        );
    }

    #[rstest]
    #[case(1.0, "121")]
    #[case(0.0, "122")]
    fn arithmetic_is_worked_out_without_a_key(#[case] chance: f64, #[case] reply: &str) {
        let answerer = Answerer::new(
            Arc::default(),
            AnswerSpec {
                correct: CorrectRate::Fixed(chance),
                seed: 0,
                logprobs: true,
            },
        );
        let output = answerer.output(&ask("Question: What is 37 + 42 * 2?\nAnswer:"), 16, 1);
        assert_eq!(output.text(0, output.tokens() as usize), reply);
    }

    #[rstest]
    #[case(1.0, "2 + 2 = 4\n#### 4")]
    #[case(0.0, "2 + 2 = 5\n#### 5")]
    fn the_chance_of_a_right_answer_decides_the_reply(#[case] chance: f64, #[case] text: &str) {
        let output = answerer(CorrectRate::Fixed(chance)).output(
            &ask("Question: What is 2 + 2?\nAnswer:"),
            256,
            1,
        );
        assert_eq!(output.text(0, output.tokens() as usize), text);
        assert_eq!(output.finish_reason(), "stop");
    }

    #[test]
    fn replies_end_at_max_tokens_and_stop_sequences() {
        let answerer = answerer(CorrectRate::Fixed(1.0));
        let question = "Question: What is 2 + 2?\nAnswer:";
        let cut = answerer.output(&ask(question), 3, 1);
        assert_eq!(
            (cut.text(0, 3).as_str(), cut.finish_reason()),
            ("2 + 2", "length")
        );
        let mut stopped = ask(question);
        stopped.stop = vec!["=".into()];
        let output = answerer.output(&stopped, 256, 1);
        assert_eq!(output.text(0, output.tokens() as usize), "2 + 2 ");
    }

    #[test]
    fn right_answers_fall_with_load_and_stay_wrong_once_wrong() {
        let questions: Vec<String> = (0..2000)
            .map(|i| format!("Question: item {i}?\nAnswer:"))
            .collect();
        let key = AnswerKey::new(
            questions
                .iter()
                .map(|q| (q.clone(), "right".to_string(), "wrong".to_string())),
        );
        let rate = CorrectRate::ByLoad([(1, 0.9), (8, 0.5)].into_iter().collect());
        let answerer = Answerer::new(
            Arc::new(key),
            AnswerSpec {
                correct: rate,
                seed: 3,
                logprobs: true,
            },
        );
        let right_at = |in_flight: usize| -> Vec<bool> {
            questions
                .iter()
                .map(|q| answerer.output(&ask(q), 8, in_flight).text(0, 1) == "right")
                .collect()
        };
        let (low, high) = (right_at(1), right_at(8));
        let share = |v: &[bool]| v.iter().filter(|&&r| r).count() as f64 / v.len() as f64;
        assert!((share(&low) - 0.9).abs() < 0.03, "{}", share(&low));
        assert!((share(&high) - 0.5).abs() < 0.04, "{}", share(&high));
        assert!(
            low.iter().zip(&high).all(|(l, h)| *l || !*h),
            "a wrong answer at low load must stay wrong at high load"
        );
    }
}
