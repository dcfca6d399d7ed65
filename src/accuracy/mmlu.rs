//! Generative multiple choice from an MMLU-style JSON Lines file: lm-eval's `mmlu_generative`
//! prompt (`{question}\nA. …\nB. …\nAnswer:`), the answer letter read from the reply.
//!
//! Each line is `{"question": "...", "choices": ["..", ".."], "answer": "B"}`; `answer` may also
//! be a 0-based index, and there are 2 to 10 choices. Other keys (such as `subject`) are ignored.

use std::path::Path;

use serde::Deserialize;

use super::dataset::{self, Line};
use super::exact_match::ExactMatch;
use super::fewshot::ContextSampler;
use super::filter::{INVALID, py_strip};
use super::{AccuracyError, Loaded, Sample, Shot};
use crate::case::AccuracySpec;

/// Stop sequences of lm-eval's generative MMLU.
pub(crate) const STOP: [&str; 2] = ["</s>", "\n"];

/// Most choices a question may have (letters `A` to `J`).
const MAX_CHOICES: usize = 10;

/// One line as read.
#[derive(Debug, Deserialize)]
struct RawDoc {
    question: String,
    choices: Vec<String>,
    answer: serde_json::Value,
    #[serde(default)]
    subject: Option<String>,
}

/// A validated question.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Doc {
    question: String,
    choices: Vec<String>,
    answer: usize,
    subject: Option<String>,
}

/// The letter of choice `index` (`A` for 0).
fn letter(index: usize) -> String {
    char::from(b'A' + (index % 26) as u8).to_string()
}

impl Doc {
    fn from_raw(raw: RawDoc) -> Result<Doc, (&'static str, String)> {
        let n = raw.choices.len();
        if !(2..=MAX_CHOICES).contains(&n) {
            return Err((
                "choices",
                format!("needs 2 to {MAX_CHOICES} choices, not {n}"),
            ));
        }
        let last = letter(n - 1);
        let answer = match &raw.answer {
            serde_json::Value::Number(number) => number.as_u64().map(|i| i as usize),
            serde_json::Value::String(text) => match text.trim().as_bytes() {
                [c] if c.is_ascii_alphabetic() => Some(usize::from(c.to_ascii_uppercase() - b'A')),
                _ => None,
            },
            _ => None,
        }
        .filter(|&i| i < n)
        .ok_or_else(|| {
            (
                "answer",
                format!(
                    "expected a letter A to {last} or an index 0 to {}, not {}",
                    n - 1,
                    raw.answer
                ),
            )
        })?;
        Ok(Doc {
            question: raw.question,
            choices: raw.choices,
            answer,
            subject: raw.subject,
        })
    }

    /// `doc_to_text`: the stripped question, one `L. choice` line per choice, `Answer:`.
    fn text(&self) -> String {
        let mut text = py_strip(&self.question).to_string();
        for (i, choice) in self.choices.iter().enumerate() {
            text.push_str(&format!("\n{}. {choice}", letter(i)));
        }
        text.push_str("\nAnswer:");
        text
    }
}

/// lm-eval's `mmlu` description of a subject (`_generate_configs.py`), prepended to the
/// question: `The following are multiple choice questions (with answers) about high school
/// biology.` and a blank line; none when the doc names no subject.
fn description(subject: Option<&str>) -> String {
    subject.map_or_else(String::new, |subject| {
        format!(
            "The following are multiple choice questions (with answers) about {}.\n\n",
            subject.replace('_', " ")
        )
    })
}

/// Reads the file for the loglikelihood task `mmlu` (lm-eval's default MMLU template,
/// zero-shot): each sample's question is the subject's description and `doc_to_text`, its
/// target the answer's letter; the choices are asked as `" A"`, `" B"`, … (target delimiter
/// and `doc_to_choice`). A doc's own `subject` key gives the description.
pub(crate) fn load_loglikelihood(
    spec: &AccuracySpec,
    path: &Path,
) -> Result<Loaded, AccuracyError> {
    let docs = read_docs(path)?;
    let stem = dataset::stem(path);
    let samples = dataset::select(docs.len(), spec.limit, spec.subset_seed)
        .into_iter()
        .filter_map(|index| docs.get(index).map(|doc| (index, doc)))
        .map(|(index, doc)| {
            let n = doc.choices.len();
            Sample {
                id: format!("{stem}/{index}"),
                doc_index: index,
                shots: Vec::new(),
                question: format!("{}{}", description(doc.subject.as_deref()), doc.text()),
                target: letter(doc.answer),
                right_reply: letter(doc.answer),
                wrong_reply: letter((doc.answer + 1) % n),
                choices: n,
            }
        })
        .collect();
    Ok(Loaded {
        samples,
        label: dataset::label(path),
    })
}

/// The docs of an MMLU-style file, each validated.
fn read_docs(path: &Path) -> Result<Vec<Doc>, AccuracyError> {
    dataset::read_jsonl::<RawDoc>(path)?
        .into_iter()
        .map(|Line { line, doc }| {
            Doc::from_raw(doc).map_err(|(key, message)| AccuracyError::BadLine {
                path: path.to_path_buf(),
                line,
                key: key.into(),
                message,
            })
        })
        .collect()
}

/// The continuation of choice `index`: the target delimiter and the choice's letter.
pub(crate) fn continuation(index: usize) -> String {
    format!(" {}", letter(index))
}

/// Reads the file and builds the samples; shots, when asked for, come from the same file as
/// lm-eval draws them when the few-shot split is the test split.
pub(crate) fn load(spec: &AccuracySpec, path: &Path) -> Result<Loaded, AccuracyError> {
    let docs = read_docs(path)?;
    let num_fewshot = spec.num_fewshot() as usize;
    let stem = dataset::stem(path);
    let mut sampler = ContextSampler::new(spec.fewshot_seed, num_fewshot);
    let mut samples = Vec::new();
    for index in dataset::select(docs.len(), spec.limit, spec.subset_seed) {
        let Some(doc) = docs.get(index) else {
            continue;
        };
        let shots = sampler
            .shots_excluding(docs.len(), |i| docs.get(i) == Some(doc))
            .ok_or_else(|| AccuracyError::TooFewShots {
                path: path.to_path_buf(),
                needed: num_fewshot + 1,
                available: docs.len(),
            })?
            .into_iter()
            .filter_map(|i| docs.get(i))
            .map(|shot| Shot {
                question: shot.text(),
                answer: letter(shot.answer),
            })
            .collect();
        let n = doc.choices.len();
        samples.push(Sample {
            id: format!("{stem}/{index}"),
            doc_index: index,
            shots,
            question: doc.text(),
            target: letter(doc.answer),
            right_reply: letter(doc.answer),
            wrong_reply: letter((doc.answer + 1) % n),
            choices: n,
        });
    }
    Ok(Loaded {
        samples,
        label: dataset::label(path),
    })
}

/// The `letter` filter: the first line of the reply, stripped; its first letter among the
/// sample's choices that stands alone (not next to another letter, digit or `_`), so `B`,
/// `(B)`, `B.`, `B)`, `Answer: B` and `The answer is B` all give `B`. Lower-case letters do not
/// count (`a` is a word). Scored by exact match ignoring case and punctuation.
#[derive(Debug, Clone)]
pub(crate) struct Scorer {
    metric: ExactMatch,
}

impl Scorer {
    pub(crate) fn new() -> Scorer {
        Scorer {
            metric: ExactMatch::case_and_punctuation(),
        }
    }

    /// (extracted, correct) for the `letter` filter.
    pub(crate) fn score(&self, sample: &Sample, response: &str) -> (String, bool) {
        let extracted = extract_letter(response, sample.choices);
        let correct = self.metric.matches(&extracted, &sample.target);
        (extracted, correct)
    }
}

fn extract_letter(response: &str, choices: usize) -> String {
    let first_line = py_strip(response.split('\n').next().unwrap_or(""));
    let chars: Vec<char> = first_line.chars().collect();
    let is_word = |c: Option<&char>| c.is_some_and(|c| c.is_alphanumeric() || *c == '_');
    let last = char::from(b'A' + choices.clamp(1, 26) as u8 - 1);
    for (i, c) in chars.iter().enumerate() {
        if ('A'..=last).contains(c)
            && !is_word(i.checked_sub(1).and_then(|j| chars.get(j)))
            && !is_word(chars.get(i + 1))
        {
            return c.to_string();
        }
    }
    INVALID.to_string()
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::accuracy::Task;
    use crate::accuracy::tests::{manifest_dir, spec};

    #[rstest]
    #[case::bare("B", 4, "B")]
    #[case::leading_space(" B", 4, "B")]
    #[case::parenthesised("(B)", 4, "B")]
    #[case::period("B. Paris", 4, "B")]
    #[case::bracket("B) Paris", 4, "B")]
    #[case::answer_colon("Answer: C", 4, "C")]
    #[case::sentence("The answer is D", 4, "D")]
    #[case::pronoun_is_not_a_choice("I think C", 4, "C")]
    #[case::beyond_choices("E", 4, INVALID)]
    #[case::beyond_two_choices("C or A", 2, "A")]
    #[case::lower_case("b", 4, INVALID)]
    #[case::inside_words("ABC", 4, INVALID)]
    #[case::second_line_ignored("none\nB", 4, INVALID)]
    #[case::empty("", 4, INVALID)]
    #[case::unicode_neighbour("éB", 4, INVALID)]
    #[case::tenth_choice("J", 10, "J")]
    fn letters(#[case] response: &str, #[case] choices: usize, #[case] expected: &str) {
        assert_eq!(extract_letter(response, choices), expected);
    }

    #[rstest]
    #[case::letter(r#"{"question": "q", "choices": ["a", "b"], "answer": "B"}"#, Ok(1))]
    #[case::lower_letter(r#"{"question": "q", "choices": ["a", "b"], "answer": "a"}"#, Ok(0))]
    #[case::index(r#"{"question": "q", "choices": ["a", "b", "c"], "answer": 2}"#, Ok(2))]
    #[case::index_out_of_range(
        r#"{"question": "q", "choices": ["a", "b"], "answer": 2}"#,
        Err("answer")
    )]
    #[case::letter_out_of_range(
        r#"{"question": "q", "choices": ["a", "b"], "answer": "C"}"#,
        Err("answer")
    )]
    #[case::word(
        r#"{"question": "q", "choices": ["a", "b"], "answer": "AB"}"#,
        Err("answer")
    )]
    #[case::one_choice(r#"{"question": "q", "choices": ["a"], "answer": 0}"#, Err("choices"))]
    #[case::eleven_choices(r#"{"question": "q", "choices": ["a","b","c","d","e","f","g","h","i","j","k"], "answer": 0}"#, Err("choices"))]
    fn docs_are_validated(#[case] line: &str, #[case] expected: Result<usize, &str>) {
        let raw: RawDoc = serde_json::from_str(line).expect("json");
        assert_eq!(
            Doc::from_raw(raw).map(|d| d.answer).map_err(|(key, _)| key),
            expected
        );
    }

    #[test]
    fn bad_lines_name_line_and_key() {
        let temp = tempfile::tempdir().expect("a temporary folder");
        let dir = temp.path().to_path_buf();
        std::fs::write(
            dir.join("m.jsonl"),
            "{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"answer\": 0}\n{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"answer\": \"Z\"}\n",
        )
        .expect("write");
        let error = Task::from_spec(&spec("task: mmlu_generative\ndataset: m.jsonl\n"), &dir)
            .expect_err("bad answer")
            .to_string();
        assert!(
            error.ends_with(
                "m.jsonl:2: key `answer`: expected a letter A to B or an index 0 to 1, not \"Z\""
            ),
            "{error}"
        );
        std::fs::write(
            dir.join("m.jsonl"),
            "{\"question\": \"q\", \"choices\": [\"a\", \"b\"], \"answer\": 0}\n{\"question\": \"r\", \"choices\": [\"a\", \"b\"], \"answer\": \"B\"}\n",
        )
        .expect("write");
        let error = Task::from_spec(
            &spec("task: mmlu_generative\ndataset: m.jsonl\nlimit: 1\nnum_fewshot: 5\n"),
            &dir,
        )
        .expect_err("too few")
        .to_string();
        assert!(
            error.contains("6 docs needed for each few-shot draw, 2 available"),
            "{error}"
        );
    }

    #[test]
    fn prompts_and_targets() {
        let task = Task::from_spec(
            &spec(
                "task: mmlu_generative\ndataset: stress-cases/data/mmlu_sample.jsonl\nlimit: 3\n",
            ),
            manifest_dir(),
        )
        .expect("task");
        let first = &task.samples()[0];
        assert_eq!(first.id, "mmlu_sample/0");
        assert!(first.shots.is_empty());
        assert_eq!(
            first.prompt(),
            "What is the capital of France?\nA. Berlin\nB. Madrid\nC. Paris\nD. Rome\nAnswer:"
        );
        assert_eq!(
            (
                first.target.as_str(),
                first.right_reply.as_str(),
                first.wrong_reply.as_str()
            ),
            ("C", "C", "D")
        );
        assert_eq!(first.choices, 4);
    }

    #[test]
    fn shots_never_include_the_doc_itself() {
        let task = Task::from_spec(
            &spec("task: mmlu_generative\ndataset: stress-cases/data/mmlu_sample.jsonl\nnum_fewshot: 3\nfewshot_seed: 5\n"),
            manifest_dir(),
        )
        .expect("task");
        assert!(task.samples().len() >= 20);
        for sample in task.samples() {
            assert_eq!(sample.shots.len(), 3);
            assert!(
                sample.shots.iter().all(|s| s.question != sample.question),
                "{}",
                sample.id
            );
            assert!(sample.prompt().starts_with(&format!(
                "{} {}\n\n",
                sample.shots[0].question, sample.shots[0].answer
            )));
        }
    }
}
