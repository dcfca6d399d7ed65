//! GSM8K as lm-evaluation-harness v0.4 runs it (`tasks/gsm8k/gsm8k.yaml`): `Question: …\nAnswer:`
//! prompts with 5 shots drawn from train, the `strict-match` and `flexible-extract` filters and
//! `exact_match`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::dataset::{self, Line};
use super::exact_match::ExactMatch;
use super::fewshot::ContextSampler;
use super::filter::RegexFilter;
use super::{AccuracyError, Loaded, Sample, Shot};
use crate::case::AccuracySpec;

/// Stop sequences (`generation_kwargs.until`).
pub(crate) const STOP: [&str; 3] = ["Question:", "</s>", "<|im_end|>"];

/// `strict-match`: the number after the first `#### `.
const STRICT: &str = r"#### (\-?[0-9\.\,]+)";
/// `flexible-extract`: the last number-like run.
const FLEXIBLE: &str = r"(-?[$0-9.,]{2,})|(-?[0-9]+)";

/// One line of `test.jsonl` or `train.jsonl`.
#[derive(Debug, Deserialize)]
struct Doc {
    question: String,
    answer: String,
}

impl Doc {
    /// `doc_to_text`.
    fn text(&self) -> String {
        format!("Question: {}\nAnswer:", self.question)
    }
}

/// The test and train files a `dataset` value names: a folder holding both, or the test file
/// with `train.jsonl` beside it.
fn files(dataset: &Path) -> (PathBuf, PathBuf) {
    if dataset.is_dir() {
        (dataset.join("test.jsonl"), dataset.join("train.jsonl"))
    } else {
        let dir = dataset.parent().unwrap_or(Path::new(""));
        (dataset.to_path_buf(), dir.join("train.jsonl"))
    }
}

/// Reads the data and builds the samples, shots chosen as lm-eval's default sampler does.
pub(crate) fn load(spec: &AccuracySpec, dataset: &Path) -> Result<Loaded, AccuracyError> {
    let (test_path, train_path) = files(dataset);
    let test: Vec<Line<Doc>> = dataset::read_jsonl(&test_path)?;
    let num_fewshot = spec.num_fewshot() as usize;
    let train: Vec<Line<Doc>> = if num_fewshot == 0 {
        Vec::new()
    } else {
        match dataset::read_jsonl(&train_path) {
            Err(AccuracyError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Err(AccuracyError::MissingTrain { path: train_path });
            }
            other => other?,
        }
    };
    let stem = dataset::stem(&test_path);
    let mut sampler = ContextSampler::new(spec.fewshot_seed, num_fewshot);
    let mut samples = Vec::new();
    for index in dataset::select(test.len(), spec.limit, spec.subset_seed) {
        let Some(Line { doc, .. }) = test.get(index) else {
            continue;
        };
        let shots = sampler
            .shots(train.len())
            .ok_or_else(|| AccuracyError::TooFewShots {
                path: train_path.clone(),
                needed: num_fewshot,
                available: train.len(),
            })?
            .into_iter()
            .filter_map(|i| train.get(i))
            .map(|Line { doc, .. }| Shot {
                question: doc.text(),
                answer: doc.answer.clone(),
            })
            .collect();
        samples.push(Sample {
            id: format!("{stem}/{index}"),
            doc_index: index,
            shots,
            question: doc.text(),
            target: doc.answer.clone(),
            right_reply: doc.answer.clone(),
            wrong_reply: wrong_reply(&doc.answer),
            choices: 0,
        });
    }
    Ok(Loaded {
        samples,
        label: dataset::label(&test_path),
    })
}

/// The worked solution with its final answer changed, so that both filters extract a wrong
/// number: the text after the first `####` becomes `#### N+1`, the last number of the reply.
fn wrong_reply(answer: &str) -> String {
    let (head, tail) = answer.split_once("####").unwrap_or((answer, ""));
    let gold: String = tail
        .trim()
        .chars()
        .filter(|c| !matches!(c, ',' | '$'))
        .collect();
    let wrong = match gold.parse::<i64>() {
        Ok(n) => n.checked_add(1).unwrap_or(n - 1).to_string(),
        Err(_) => format!("{gold}1"),
    };
    format!("{head}#### {wrong}")
}

/// The gsm8k filters and metric.
#[derive(Debug, Clone)]
pub(crate) struct Scorer {
    strict: RegexFilter,
    flexible: RegexFilter,
    metric: ExactMatch,
}

impl Scorer {
    /// The filters of `gsm8k.yaml`.
    pub(crate) fn new() -> Result<Scorer, regex::Error> {
        Ok(Scorer {
            strict: RegexFilter::new(STRICT, 0)?,
            flexible: RegexFilter::new(FLEXIBLE, -1)?,
            metric: ExactMatch::gsm8k()?,
        })
    }

    /// (extracted, correct) for `strict-match` and `flexible-extract`.
    pub(crate) fn score(&self, target: &str, response: &str) -> Vec<(String, bool)> {
        [&self.strict, &self.flexible]
            .into_iter()
            .map(|filter| {
                let extracted = filter.apply(response);
                let correct = self.metric.matches(&extracted, target);
                (extracted, correct)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::accuracy::Task;
    use crate::accuracy::tests::{manifest_dir, spec};

    #[rstest]
    #[case::plain("so 18.\n#### 18", "18", "18")]
    #[case::negative("#### -5", "-5", "-5")]
    #[case::money("Total $1,234.\n#### $1,234.", INVALID_STRICT, "$1,234.")]
    #[case::first_hashes_strict_last_number_flexible("#### 3\n#### 4", "3", "4")]
    #[case::no_number("I don't know.", INVALID_STRICT, INVALID_STRICT)]
    #[case::empty("", INVALID_STRICT, INVALID_STRICT)]
    #[case::trailing_period("The answer is 42.", INVALID_STRICT, "42.")]
    #[case::several_dots("#### 1.2.3", "1.2.3", "1.2.3")]
    #[case::single_digit_last("12 apples and 5", INVALID_STRICT, "5")]
    #[case::unicode_text("Ünïcødé → 7 €", INVALID_STRICT, "7")]
    #[case::hashes_without_space("####5", INVALID_STRICT, "5")]
    #[case::comma_only_runs("a ,, b", INVALID_STRICT, ",,")]
    fn filters_extract_as_lm_eval(
        #[case] response: &str,
        #[case] strict: &str,
        #[case] flexible: &str,
    ) {
        let scorer = Scorer::new().expect("patterns");
        assert_eq!(scorer.strict.apply(response), strict);
        assert_eq!(scorer.flexible.apply(response), flexible);
    }

    const INVALID_STRICT: &str = super::super::filter::INVALID;

    #[rstest]
    #[case::right("He pays 18.\n#### 18", "Janet makes 18.\n#### 18", [true, true])]
    #[case::thousands("#### 1,000", "So 1000.\n#### 1000", [true, true])]
    #[case::flexible_only("The answer is $18.", "Janet makes 18.\n#### 18", [false, true])]
    #[case::wrong("#### 19", "Janet makes 18.\n#### 18", [false, false])]
    #[case::empty("", "Janet makes 18.\n#### 18", [false, false])]
    fn scoring_against_a_target(
        #[case] response: &str,
        #[case] target: &str,
        #[case] expected: [bool; 2],
    ) {
        let scorer = Scorer::new().expect("patterns");
        let correct: Vec<bool> = scorer
            .score(target, response)
            .into_iter()
            .map(|(_, c)| c)
            .collect();
        assert_eq!(correct, expected);
    }

    #[rstest]
    #[case("a 1.\n#### 18", "a 1.\n#### 19")]
    #[case("#### -1", "#### 0")]
    #[case("#### 1,000", "#### 1001")]
    #[case("#### 2.5", "#### 2.51")]
    #[case("no hashes 3", "no hashes 3#### 1")]
    fn wrong_replies(#[case] answer: &str, #[case] wrong: &str) {
        assert_eq!(wrong_reply(answer), wrong);
    }

    #[test]
    fn first_test_doc_prompt_and_shots() {
        let task = Task::from_spec(
            &spec("task: gsm8k\ndataset: stress-cases/data/gsm8k/test.jsonl\nlimit: 2\n"),
            manifest_dir(),
        )
        .expect("task");
        let first = &task.samples()[0];
        assert_eq!(first.id, "test/0");
        assert!(
            first
                .question
                .starts_with("Question: Janet’s ducks lay 16 eggs")
        );
        assert!(first.question.ends_with("farmers' market?\nAnswer:"));
        assert!(first.target.ends_with("#### 18"));
        assert_eq!(first.shots.len(), 5);
        // random.Random(1234).sample(train, 5) picks train docs 6374, 3610, 957, 61, 742.
        let train =
            std::fs::read_to_string(manifest_dir().join("stress-cases/data/gsm8k/train.jsonl"))
                .expect("train");
        let train: Vec<&str> = train.lines().collect();
        for (shot, index) in first.shots.iter().zip([6374, 3610, 957, 61, 742]) {
            let doc: serde_json::Value = serde_json::from_str(train[index]).expect("json");
            assert_eq!(shot.answer, doc["answer"].as_str().expect("answer"));
        }
        let prompt = first.prompt();
        assert!(prompt.starts_with(&format!(
            "{} {}\n\n",
            first.shots[0].question, first.shots[0].answer
        )));
        assert!(prompt.ends_with(&format!("\n\n{}", first.question)));
        assert_eq!(prompt.matches("Question: ").count(), 6);
    }

    #[test]
    fn subsets_and_limits() {
        let subset = Task::from_spec(
            &spec("task: gsm8k\ndataset: stress-cases/data/gsm8k\nlimit: 10\nsubset_seed: 3\nnum_fewshot: 0\n"),
            manifest_dir(),
        )
        .expect("task");
        let indices: Vec<usize> = subset.samples().iter().map(|s| s.doc_index).collect();
        assert_eq!(indices.len(), 10);
        assert!(indices.windows(2).all(|w| w[0] < w[1]));
        assert!(indices.iter().any(|&i| i >= 10), "{indices:?}");
        assert!(
            subset
                .samples()
                .iter()
                .all(|s| s.shots.is_empty() && s.id == format!("test/{}", s.doc_index))
        );
        let all = Task::from_spec(
            &spec("task: gsm8k\ndataset: stress-cases/data/gsm8k\nnum_fewshot: 0\n"),
            manifest_dir(),
        )
        .expect("task");
        assert_eq!(all.samples().len(), 1319);
    }

    #[test]
    fn a_missing_train_file_is_named() {
        let temp = tempfile::tempdir().expect("a temporary folder");
        let dir = temp.path().to_path_buf();
        std::fs::write(
            dir.join("test.jsonl"),
            "{\"question\": \"q\", \"answer\": \"#### 1\"}\n",
        )
        .expect("write");
        let error = Task::from_spec(&spec("task: gsm8k\ndataset: .\n"), &dir)
            .expect_err("no train")
            .to_string();
        assert!(error.contains("train.jsonl: missing"), "{error}");
        let ok = Task::from_spec(
            &spec("task: gsm8k\ndataset: test.jsonl\nnum_fewshot: 0\n"),
            &dir,
        )
        .expect("no shots, no train needed");
        assert_eq!(ok.samples().len(), 1);
        std::fs::write(
            dir.join("train.jsonl"),
            "{\"question\": \"q\", \"answer\": \"#### 1\"}\n",
        )
        .expect("write");
        let error = Task::from_spec(&spec("task: gsm8k\ndataset: .\n"), &dir)
            .expect_err("too few")
            .to_string();
        assert!(
            error.contains("5 docs needed for each few-shot draw, 1 available"),
            "{error}"
        );
    }
}
