//! Accuracy tasks without networking: the samples a task asks, the prompts it sends, how answers
//! are extracted and scored (as lm-evaluation-harness does), and the thresholds scores are judged
//! against.
//!
//! [`Task::from_spec`] reads a case's `accuracy` section and its data; the runner sends each
//! [`Sample`]'s prompt, passes the response to [`Task::score`], and judges the mean of the
//! judged filter's results with [`crate::case::AccuracyThreshold::judge`].

pub mod arithmetic;
mod dataset;
pub mod exact_match;
pub mod external;
pub mod fewshot;
pub mod filter;
mod gsm8k;
pub mod loglik;
mod mmlu;
pub mod summary;
pub mod threshold;
pub mod tools;

use std::path::{Path, PathBuf};

pub use arithmetic::solve;
pub use threshold::Judgement;

use crate::case::{AccuracySpec, TaskName};

/// Why a task could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AccuracyError {
    /// The `accuracy` section is invalid (see [`AccuracySpec::problem`]).
    #[error("key `{key}`: {message}")]
    Spec {
        /// Dotted key, such as `accuracy.limit`.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A data file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A line of a JSON Lines file is not a valid doc.
    #[error("{}:{line}: key `{key}`: {message}", path.display())]
    BadLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Dotted key within the line (`.` for the line as a whole).
        key: String,
        /// What is wrong.
        message: String,
    },
    /// gsm8k few-shot examples come from `train.jsonl` beside the test file, and it is missing.
    #[error(
        "{}: missing: gsm8k takes its few-shot examples from train.jsonl beside the test file \
         (or set num_fewshot: 0)",
        path.display()
    )]
    MissingTrain {
        /// Where the train file was looked for.
        path: PathBuf,
    },
    /// A data file holds no docs.
    #[error("{}: no docs", path.display())]
    EmptyDataset {
        /// The file.
        path: PathBuf,
    },
    /// Fewer docs than one prompt's few-shot draw needs.
    #[error("{}: {needed} docs needed for each few-shot draw, {available} available", path.display())]
    TooFewShots {
        /// The file shots come from.
        path: PathBuf,
        /// Docs drawn per prompt.
        needed: usize,
        /// Docs in the file.
        available: usize,
    },
    /// A generated arithmetic question has no 64-bit answer.
    #[error("arithmetic question `{question}` overflows 64-bit integers")]
    Overflow {
        /// The question.
        question: String,
    },
    /// One of the task's built-in patterns failed to compile.
    #[error("built-in pattern: {0}")]
    Regex(#[from] regex::Error),
}

/// `text` up to the first occurrence of any of the (non-empty) stop sequences: what a server
/// that honours `stop` sends, and how an answer from one that does not is scored.
pub fn cut_at_stop<'a>(text: &'a str, stop: &[String]) -> &'a str {
    stop.iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()))
        .min()
        .map_or(text, |end| &text[..end])
}

/// A few-shot example: a doc's question and its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shot {
    /// The doc's text (lm-eval's `doc_to_text`).
    pub question: String,
    /// The doc's answer (lm-eval's `doc_to_target`).
    pub answer: String,
}

/// One scored question with its few-shot examples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Stable id: the data file's stem and the doc's index in it, such as `test/17`.
    pub id: String,
    /// Index of the doc in its file (or in the generated sequence).
    pub doc_index: usize,
    /// Few-shot examples, in prompt order.
    pub shots: Vec<Shot>,
    /// The doc's text (lm-eval's `doc_to_text`), such as `Question: …\nAnswer:`.
    pub question: String,
    /// The reference answer (lm-eval's `doc_to_target`).
    pub target: String,
    /// What the simulated server answers to get this sample right on every filter.
    pub right_reply: String,
    /// What the simulated server answers to get this sample wrong on every filter.
    pub wrong_reply: String,
    /// Multiple-choice tasks: the number of choices (letters `A`…); 0 otherwise.
    pub choices: usize,
}

impl Sample {
    /// The completions prompt, as lm-eval builds it: each shot as `{question} {answer}`
    /// (target delimiter `" "`) followed by `"\n\n"` (few-shot delimiter), then the question.
    /// A shot with an empty answer adds its question alone, with no delimiters (as lm-eval).
    pub fn prompt(&self) -> String {
        let mut prompt = String::new();
        for shot in &self.shots {
            prompt.push_str(&shot.question);
            if !shot.answer.is_empty() {
                prompt.push(' ');
                prompt.push_str(&shot.answer);
                prompt.push_str("\n\n");
            }
        }
        prompt.push_str(&self.question);
        prompt
    }
}

/// What one filter made of one response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterResult {
    /// The filter, such as `strict-match`.
    pub filter: &'static str,
    /// The extracted answer, or `[invalid]`.
    pub extracted: String,
    /// Whether it counts as the target.
    pub correct: bool,
}

/// How a task scores responses.
#[derive(Debug, Clone)]
enum Scorer {
    Gsm8k(gsm8k::Scorer),
    Mmlu(mmlu::Scorer),
    /// `mmlu`: loglikelihood multiple choice, scored from the choices' loglikelihoods.
    Loglikelihood,
    Arithmetic,
    Tools(Box<tools::Tools>),
    /// `external`: a command scores the server; there are no samples to score here.
    External,
}

/// An accuracy task ready to run: its samples, request settings and scoring.
#[derive(Debug, Clone)]
pub struct Task {
    name: TaskName,
    dataset_label: String,
    samples: Vec<Sample>,
    judged_filter: &'static str,
    stop: Vec<String>,
    max_tokens: u32,
    scorer: Scorer,
}

impl Task {
    /// Builds the task of a case's `accuracy` section, reading its data relative to `case_dir`.
    pub fn from_spec(spec: &AccuracySpec, case_dir: &Path) -> Result<Task, AccuracyError> {
        if let Some((key, message)) = spec.problem() {
            return Err(AccuracyError::Spec { key, message });
        }
        let judged_filter = spec.judged_filter().ok_or_else(|| AccuracyError::Spec {
            key: "accuracy.filter".into(),
            message: "not a filter of the task".into(),
        })?;
        let data = || match spec.dataset.as_deref() {
            Some(dataset) => Ok(case_dir.join(dataset)),
            None => Err(AccuracyError::Spec {
                key: "accuracy.dataset".into(),
                message: "missing".into(),
            }),
        };
        let (loaded, scorer) = match spec.task {
            TaskName::ToolCalls => {
                let (loaded, tools) = tools::load(spec, case_dir)?;
                (loaded, Scorer::Tools(Box::new(tools)))
            }
            TaskName::Gsm8k => (
                gsm8k::load(spec, &data()?)?,
                Scorer::Gsm8k(gsm8k::Scorer::new()?),
            ),
            TaskName::MmluGenerative => (
                mmlu::load(spec, &data()?)?,
                Scorer::Mmlu(mmlu::Scorer::new()),
            ),
            TaskName::Mmlu => (
                mmlu::load_loglikelihood(spec, &data()?)?,
                Scorer::Loglikelihood,
            ),
            TaskName::SyntheticArithmetic => (arithmetic::load(spec)?, Scorer::Arithmetic),
            TaskName::External => (
                Loaded {
                    samples: Vec::new(),
                    label: "command".into(),
                },
                Scorer::External,
            ),
        };
        let stop: &[&str] = match spec.task {
            TaskName::Gsm8k => &gsm8k::STOP,
            TaskName::MmluGenerative => &mmlu::STOP,
            TaskName::SyntheticArithmetic => &arithmetic::STOP,
            TaskName::Mmlu | TaskName::ToolCalls | TaskName::External => &[],
        };
        Ok(Task {
            name: spec.task,
            dataset_label: loaded.label,
            samples: loaded.samples,
            judged_filter,
            stop: stop.iter().map(|s| s.to_string()).collect(),
            max_tokens: spec.max_tokens(),
            scorer,
        })
    }

    /// Whether a command scores the server (`external`) rather than questions asked here.
    pub fn is_external(&self) -> bool {
        matches!(self.scorer, Scorer::External)
    }

    /// Whether each question is asked as the loglikelihoods of its choices (`mmlu`) rather
    /// than answered by generation: see [`Task::continuations`] and [`Task::score_choices`].
    pub fn is_loglikelihood(&self) -> bool {
        matches!(self.scorer, Scorer::Loglikelihood)
    }

    /// Loglikelihood tasks: the (context, continuation) pair of each choice of `sample`, in
    /// choice order, as lm-eval asks them (white space at the context's end moved to the
    /// continuation); empty for other tasks.
    pub fn continuations(&self, sample: &Sample) -> Vec<(String, String)> {
        if !self.is_loglikelihood() {
            return Vec::new();
        }
        let context = sample.prompt();
        (0..sample.choices)
            .map(|i| loglik::split_pair(&context, &mmlu::continuation(i)))
            .collect()
    }

    /// Loglikelihood tasks: scores the loglikelihoods of `sample`'s choices (in choice order)
    /// as lm-eval's `process_results`: `acc` and `acc_norm`, each extracting the letter it
    /// chose.
    pub fn score_choices(&self, sample: &Sample, lls: &[f64]) -> Vec<FilterResult> {
        let choices: Vec<String> = (0..sample.choices)
            .map(|i| mmlu::continuation(i).trim_start().to_string())
            .collect();
        let gold = choices
            .iter()
            .position(|c| *c == sample.target)
            .unwrap_or(usize::MAX);
        let decision = loglik::decide(lls, &choices, gold);
        let letter = |i: usize| choices.get(i).cloned().unwrap_or_default();
        self.filters()
            .iter()
            .zip([
                (letter(decision.pred), decision.acc),
                (letter(decision.pred_norm), decision.acc_norm),
            ])
            .map(|(&filter, (extracted, correct))| FilterResult {
                filter,
                extracted,
                correct,
            })
            .collect()
    }

    /// The task's name, such as `gsm8k`.
    pub fn name(&self) -> &'static str {
        self.name.as_str()
    }

    /// The data the samples came from, the same on every machine: the last two components of
    /// the scored file's path (`gsm8k/test.jsonl`), or `built-in`.
    pub fn dataset_label(&self) -> String {
        self.dataset_label.clone()
    }

    /// The samples scored, in evaluation order.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// Worker `index` of `count`'s share of the questions: every `count`-th, from the
    /// `index`-th, so the workers' shares interleave back into evaluation order.
    pub fn share(&self, index: u32, count: u32) -> Task {
        let (index, count) = (index as usize, count.max(1) as usize);
        Task {
            samples: self
                .samples
                .iter()
                .skip(index)
                .step_by(count)
                .cloned()
                .collect(),
            ..self.clone()
        }
    }

    /// The task's filters, in the order [`Task::score`] returns their results.
    pub fn filters(&self) -> &[&'static str] {
        self.name.filters()
    }

    /// The filter the threshold judges.
    pub fn judged_filter(&self) -> &'static str {
        self.judged_filter
    }

    /// Stop sequences sent with each request.
    pub fn stop(&self) -> &[String] {
        &self.stop
    }

    /// Most tokens generated per answer.
    pub fn max_tokens(&self) -> u32 {
        self.max_tokens
    }

    /// `tool_calls`: the tools offered with every question (OpenAI function schemas).
    pub fn tools(&self) -> Option<&serde_json::Value> {
        match &self.scorer {
            Scorer::Tools(tools) => Some(&tools.tools),
            _ => None,
        }
    }

    /// `tool_calls`: the `tool_choice` sent with `sample`.
    pub fn tool_choice(&self, sample: &Sample) -> Option<&serde_json::Value> {
        match &self.scorer {
            Scorer::Tools(tools) => Some(tools.tool_choice(sample.doc_index)),
            _ => None,
        }
    }

    /// Scores one response: one result per filter, in [`Task::filters`] order.
    pub fn score(&self, sample: &Sample, response: &str) -> Vec<FilterResult> {
        let results: Vec<(String, bool)> = match &self.scorer {
            Scorer::Gsm8k(scorer) => scorer.score(&sample.target, response),
            Scorer::Mmlu(scorer) => vec![scorer.score(sample, response)],
            Scorer::Arithmetic => vec![arithmetic::score(&sample.target, response)],
            Scorer::Tools(tools) => tools.score(sample.doc_index, response),
            // Scored from loglikelihoods (`score_choices`), not from a reply.
            Scorer::Loglikelihood | Scorer::External => Vec::new(),
        };
        self.filters()
            .iter()
            .zip(results)
            .map(|(&filter, (extracted, correct))| FilterResult {
                filter,
                extracted,
                correct,
            })
            .collect()
    }
}

/// The samples a task loaded and the label of their data.
#[derive(Debug)]
pub(crate) struct Loaded {
    samples: Vec<Sample>,
    label: String,
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::case::load::parse_yaml;

    #[rstest]
    #[case("18\n\nQuestion: next", &["Question:"], "18\n\n")]
    #[case("18</s>x<|im_end|>", &["<|im_end|>", "</s>"], "18")]
    #[case("no stop", &["Question:"], "no stop")]
    #[case("empty stop", &[""], "empty stop")]
    fn answers_are_cut_at_the_first_stop_sequence(
        #[case] text: &str,
        #[case] stop: &[&str],
        #[case] cut: &str,
    ) {
        let stop: Vec<String> = stop.iter().map(|s| s.to_string()).collect();
        assert_eq!(cut_at_stop(text, &stop), cut);
    }

    pub(crate) fn spec(yaml: &str) -> AccuracySpec {
        parse_yaml(Path::new("c.yaml"), yaml).expect("spec parses")
    }

    pub(crate) fn manifest_dir() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR"))
    }

    #[test]
    fn prompts_follow_lm_eval_delimiters() {
        let shot = |q: &str, a: &str| Shot {
            question: q.into(),
            answer: a.into(),
        };
        let mut sample = Sample {
            id: "t/0".into(),
            doc_index: 0,
            shots: vec![],
            question: "Q: x?\nA:".into(),
            target: "1".into(),
            right_reply: "1".into(),
            wrong_reply: "2".into(),
            choices: 0,
        };
        assert_eq!(sample.prompt(), "Q: x?\nA:");
        sample.shots = vec![shot("Q: a?\nA:", "3"), shot("Q: b?\nA:", "4")];
        assert_eq!(sample.prompt(), "Q: a?\nA: 3\n\nQ: b?\nA: 4\n\nQ: x?\nA:");
        sample.shots = vec![shot("Q: a?", ""), shot("Q: b?\nA:", "4")];
        assert_eq!(sample.prompt(), "Q: a?Q: b?\nA: 4\n\nQ: x?\nA:");
    }

    #[test]
    fn invalid_specs_are_refused_before_reading_anything() {
        let error = Task::from_spec(&spec("task: gsm8k\n"), Path::new("/nonexistent"))
            .expect_err("no dataset");
        assert_eq!(
            error.to_string(),
            "key `accuracy.dataset`: task `gsm8k` needs a dataset"
        );
    }

    #[test]
    fn task_settings() {
        let task = Task::from_spec(
            &spec("task: gsm8k\ndataset: stress-cases/data/gsm8k\nlimit: 3\nfilter: flexible-extract\nmax_tokens: 100\n"),
            manifest_dir(),
        )
        .expect("task");
        assert_eq!(task.name(), "gsm8k");
        assert_eq!(task.dataset_label(), "gsm8k/test.jsonl");
        assert_eq!(task.samples().len(), 3);
        assert_eq!(task.filters(), ["strict-match", "flexible-extract"]);
        assert_eq!(task.judged_filter(), "flexible-extract");
        assert_eq!(task.stop(), ["Question:", "</s>", "<|im_end|>"]);
        assert_eq!(task.max_tokens(), 100);

        let task = Task::from_spec(
            &spec("task: mmlu_generative\ndataset: stress-cases/data/mmlu_sample.jsonl\n"),
            manifest_dir(),
        )
        .expect("task");
        assert_eq!(task.name(), "mmlu_generative");
        assert_eq!(task.dataset_label(), "data/mmlu_sample.jsonl");
        assert_eq!(task.filters(), ["letter"]);
        assert_eq!(task.judged_filter(), "letter");
        assert_eq!(task.stop(), ["</s>", "\n"]);
        assert_eq!(task.max_tokens(), 8);

        let task = Task::from_spec(
            &spec("task: synthetic_arithmetic\n"),
            Path::new("/nonexistent"),
        )
        .expect("task");
        assert_eq!(task.name(), "synthetic_arithmetic");
        assert_eq!(task.dataset_label(), "built-in");
        assert_eq!(task.samples().len(), 100);
        assert_eq!(task.filters(), ["first-number"]);
        assert_eq!(task.stop(), ["\n", "</s>", "<|im_end|>"]);
        assert_eq!(task.max_tokens(), 16);
    }

    /// Every sample's right reply is right on every filter, and its wrong reply wrong on every
    /// filter.
    fn assert_replies_score_as_meant(task: &Task) {
        assert!(!task.samples().is_empty());
        for sample in task.samples() {
            for result in task.score(sample, &sample.right_reply) {
                assert!(result.correct, "{}: right reply {result:?}", sample.id);
            }
            for result in task.score(sample, &sample.wrong_reply) {
                assert!(!result.correct, "{}: wrong reply {result:?}", sample.id);
            }
            assert_eq!(task.score(sample, "").len(), task.filters().len());
        }
    }

    #[test]
    fn replies_score_as_meant_on_gsm8k() {
        let task = Task::from_spec(
            &spec("task: gsm8k\ndataset: stress-cases/data/gsm8k\nlimit: 200\nnum_fewshot: 0\n"),
            manifest_dir(),
        )
        .expect("task");
        assert_eq!(task.samples().len(), 200);
        assert_replies_score_as_meant(&task);
    }

    #[test]
    fn replies_score_as_meant_on_mmlu() {
        let task = Task::from_spec(
            &spec("task: mmlu_generative\ndataset: stress-cases/data/mmlu_sample.jsonl\nnum_fewshot: 2\n"),
            manifest_dir(),
        )
        .expect("task");
        assert_replies_score_as_meant(&task);
    }

    #[test]
    fn mmlu_asks_each_letter_and_scores_acc_and_acc_norm() {
        let task = Task::from_spec(
            &spec("task: mmlu\ndataset: stress-cases/data/mmlu_sample.jsonl\nlimit: 2\nfilter: acc_norm\n"),
            manifest_dir(),
        )
        .expect("task");
        assert!(task.is_loglikelihood());
        assert_eq!(task.name(), "mmlu");
        assert_eq!(task.filters(), ["acc", "acc_norm"]);
        assert_eq!(task.judged_filter(), "acc_norm");
        assert!(task.stop().is_empty());
        assert_eq!(task.max_tokens(), 1);
        let first = &task.samples()[0];
        let context =
            "What is the capital of France?\nA. Berlin\nB. Madrid\nC. Paris\nD. Rome\nAnswer:";
        assert_eq!(first.prompt(), context);
        let pairs = task.continuations(first);
        let continuations: Vec<&str> = pairs.iter().map(|(_, c)| c.as_str()).collect();
        assert_eq!(continuations, [" A", " B", " C", " D"]);
        assert!(pairs.iter().all(|(c, _)| c == context));
        let scored = |lls: &[f64]| -> Vec<(String, bool)> {
            task.score_choices(first, lls)
                .into_iter()
                .map(|r| (r.extracted, r.correct))
                .collect()
        };
        assert_eq!(
            scored(&[-3.0, -2.0, -0.5, -4.0]),
            [("C".into(), true), ("C".into(), true)]
        );
        assert_eq!(
            scored(&[-0.1, -2.0, -0.5, -4.0]),
            [("A".into(), false), ("A".into(), false)]
        );
        // Not a generative task: nothing to score in a reply, no continuations elsewhere.
        assert!(task.score(first, "C").is_empty());
        let generative = Task::from_spec(
            &spec("task: mmlu_generative\ndataset: stress-cases/data/mmlu_sample.jsonl\n"),
            manifest_dir(),
        )
        .expect("task");
        assert!(!generative.is_loglikelihood());
        assert!(
            generative
                .continuations(&generative.samples()[0])
                .is_empty()
        );
    }

    #[test]
    fn mmlu_descriptions_name_the_subject() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let dir = dir.path();
        std::fs::write(
            dir.join("m.jsonl"),
            "{\"question\": \" q?\\n\", \"choices\": [\"a\", \"b\"], \"answer\": 1, \"subject\": \"high_school_biology\"}\n",
        )
        .expect("write");
        let task = Task::from_spec(&spec("task: mmlu\ndataset: m.jsonl\n"), dir).expect("task");
        assert_eq!(
            task.samples()[0].prompt(),
            "The following are multiple choice questions (with answers) about high school \
             biology.\n\nq?\nA. a\nB. b\nAnswer:"
        );
        assert_eq!(task.samples()[0].target, "B");
    }

    #[test]
    fn replies_score_as_meant_on_tool_calls() {
        let task =
            Task::from_spec(&spec("task: tool_calls\nlimit: 60\n"), Path::new(".")).expect("task");
        assert_eq!(
            task.filters(),
            ["correct", "valid-json", "function", "schema", "values"]
        );
        assert!(task.stop().is_empty());
        assert_eq!(
            task.tools().and_then(|t| t.as_array()).map(Vec::len),
            Some(4)
        );
        // The wrong reply is a right call with malformed arguments: the name still scores.
        for sample in task.samples() {
            let right: Vec<bool> = task
                .score(sample, &sample.right_reply)
                .iter()
                .map(|r| r.correct)
                .collect();
            let wrong: Vec<bool> = task
                .score(sample, &sample.wrong_reply)
                .iter()
                .map(|r| r.correct)
                .collect();
            assert_eq!(right, [true; 5], "{}", sample.id);
            assert_eq!(wrong, [false, false, true, false, false], "{}", sample.id);
        }
    }

    #[test]
    fn replies_score_as_meant_on_arithmetic() {
        let task = Task::from_spec(
            &spec("task: synthetic_arithmetic\nlimit: 300\narithmetic: {operands: 4, digits: 3}\n"),
            Path::new("."),
        )
        .expect("task");
        assert_replies_score_as_meant(&task);
    }
}
