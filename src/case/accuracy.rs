//! The `accuracy` section of a case: which task is scored, on which data, and the threshold the
//! score is judged against.
//!
//! Scores are points on a 0–100 scale throughout. Values that are scores ([`Score`]) accept a
//! fraction, points or a percentage, so that `expected_value: 0.85, sigma: 0.05` means 85 and 5
//! points rather than being silently compared against a 0–100 score.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// The accuracy tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskName {
    /// GSM8K grade-school maths, scored as lm-evaluation-harness's `gsm8k` task.
    Gsm8k,
    /// Generative multiple choice from an MMLU-style JSON Lines file.
    MmluGenerative,
    /// Loglikelihood multiple choice from an MMLU-style JSON Lines file, as lm-eval's `mmlu`
    /// task (output type `multiple_choice`): each choice's loglikelihood asked through the
    /// completions API with `echo` and `logprobs`, scored `acc` and `acc_norm`.
    Mmlu,
    /// Built-in, seeded integer arithmetic; needs no data file.
    SyntheticArithmetic,
    /// Tool calling on a chat endpoint: the right function, called with arguments that are
    /// valid JSON, match its schema and (optionally) the expected values. Built-in synthetic
    /// tools and questions unless `dataset` names a question file.
    ToolCalls,
    /// Any evaluator: a command run against the trial's server, its score read from its
    /// output (a JSON pointer into a JSON file or stdout, or a regex).
    External,
}

impl TaskName {
    /// The name used in case files and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskName::Gsm8k => "gsm8k",
            TaskName::MmluGenerative => "mmlu_generative",
            TaskName::Mmlu => "mmlu",
            TaskName::SyntheticArithmetic => "synthetic_arithmetic",
            TaskName::ToolCalls => "tool_calls",
            TaskName::External => "external",
        }
    }

    /// The task's answer filters; the first is judged unless the case names another.
    pub fn filters(self) -> &'static [&'static str] {
        match self {
            TaskName::Gsm8k => &["strict-match", "flexible-extract"],
            TaskName::MmluGenerative => &["letter"],
            TaskName::Mmlu => &["acc", "acc_norm"],
            TaskName::SyntheticArithmetic => &["first-number"],
            TaskName::ToolCalls => &["correct", "valid-json", "function", "schema", "values"],
            TaskName::External => &["score"],
        }
    }

    /// Few-shot examples per prompt when the case does not say.
    pub fn default_num_fewshot(self) -> u32 {
        match self {
            TaskName::Gsm8k => 5,
            TaskName::MmluGenerative | TaskName::Mmlu => 0,
            TaskName::SyntheticArithmetic => 3,
            TaskName::ToolCalls | TaskName::External => 0,
        }
    }

    /// Most tokens generated per answer when the case does not say.
    pub fn default_max_tokens(self) -> u32 {
        match self {
            TaskName::Gsm8k => 256,
            TaskName::MmluGenerative => 8,
            // lm-eval's local-completions asks one token beside the echoed prompt.
            TaskName::Mmlu => 1,
            TaskName::SyntheticArithmetic => 16,
            TaskName::ToolCalls | TaskName::External => 256,
        }
    }
}

/// Accuracy section of a case (the phase itself is run by accuracy and stress trials).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AccuracySpec {
    /// The task.
    pub task: TaskName,
    /// Data, relative to the case file. `gsm8k`: a folder holding `test.jsonl` and
    /// `train.jsonl`, or a test `.jsonl` with `train.jsonl` beside it. `mmlu_generative`: a
    /// `.jsonl` file. `synthetic_arithmetic`: must be absent.
    #[serde(default)]
    pub dataset: Option<String>,
    /// Score the first N docs (lm-eval's `--limit`); all by default (100 for
    /// `synthetic_arithmetic`).
    #[serde(default)]
    pub limit: Option<u32>,
    /// With `limit`: score a seeded random subset of N docs (in doc order) instead of the first N.
    #[serde(default)]
    pub subset_seed: Option<u64>,
    /// Few-shot examples per prompt (default: gsm8k 5, mmlu_generative 0,
    /// synthetic_arithmetic 3).
    #[serde(default)]
    pub num_fewshot: Option<u32>,
    /// Seed of the few-shot choice (lm-eval's `--fewshot_seed`, default 1234).
    #[serde(default = "default_fewshot_seed")]
    pub fewshot_seed: u64,
    /// Chat endpoints only: send the shots as user/assistant turns.
    #[serde(default)]
    pub fewshot_as_multiturn: bool,
    /// Most tokens generated per answer (default: gsm8k 256, mmlu_generative 8,
    /// synthetic_arithmetic 16).
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Requests in flight during the accuracy phase (at least 1).
    #[serde(
        default = "default_concurrency",
        deserialize_with = "super::limits::concurrency"
    )]
    pub concurrency: u32,
    /// The filter the threshold judges (default: the task's first filter).
    #[serde(default)]
    pub filter: Option<String>,
    /// `synthetic_arithmetic` and `tool_calls`: seed of the built-in question generator
    /// (default 0).
    #[serde(default)]
    pub seed: Option<u64>,
    /// `synthetic_arithmetic` only: the shape of the questions.
    #[serde(default)]
    pub arithmetic: Option<ArithmeticSpec>,
    /// `tool_calls` only: the tools offered (OpenAI function schemas), inline. With a
    /// question file, this or `tools_file` is required; the built-in questions bring their own.
    #[serde(default)]
    pub tools: Option<Vec<serde_json::Value>>,
    /// `tool_calls` only: a JSON file holding the list of tools, relative to the case file.
    #[serde(default)]
    pub tools_file: Option<String>,
    /// `tool_calls` only: the `tool_choice` sent (default `auto`), unless a question gives its
    /// own: `auto`, `required`, `none` or `{type: function, function: {name: …}}`.
    #[serde(default)]
    pub tool_choice: Option<serde_json::Value>,
    /// `external` only: the command run against the trial's server, as an argument list;
    /// `{base_url}`, `{model}` and `{out_dir}` are substituted in each argument.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// `external` only: seconds the command may run before it is killed and the trial fails
    /// (default 3600).
    #[serde(default)]
    pub timeout_s: Option<u64>,
    /// `external` only: where the command's score is read.
    #[serde(default)]
    pub score: Option<ExternalScore>,
    /// `external` only: the trial's name in place of `external` (letters, digits, `_`, `-`),
    /// for a case with several external tasks.
    #[serde(default)]
    pub name: Option<String>,
    /// Threshold the score must meet.
    #[serde(default)]
    pub threshold: Option<AccuracyThreshold>,
}

/// Where an `external` task's score is read: a JSON pointer into a JSON file or the command's
/// stdout, or the one capture group of a regex over stdout or a file. The value read is a
/// score as thresholds write them: a number up to 1 is a fraction, a larger one points, and
/// text may end in `%`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalScore {
    /// With `pointer`: `stdout`, or the JSON file the command writes (`{out_dir}` substituted;
    /// relative to the case file). A folder means the newest `*.json` file under it (as
    /// `lm_eval --output_path` writes one per run).
    #[serde(default)]
    pub json: Option<String>,
    /// The JSON pointer (RFC 6901) of the score, such as `/results/gsm8k/exact_match,strict-match`.
    #[serde(default)]
    pub pointer: Option<String>,
    /// A regex with one capture group: the score.
    #[serde(default)]
    pub regex: Option<String>,
    /// With `regex`: the file it reads instead of stdout (as `json`).
    #[serde(default)]
    pub file: Option<String>,
}

impl ExternalScore {
    /// The first invalid combination, as (key within `score`, message).
    fn problem(&self) -> Option<(&'static str, String)> {
        match (&self.pointer, &self.regex) {
            (Some(_), Some(_)) => {
                return Some(("regex", "give `pointer` (JSON) or `regex`, not both".into()));
            }
            (None, None) => {
                return Some((
                    "pointer",
                    "give `json` and `pointer`, or `regex` (with one capture group)".into(),
                ));
            }
            (Some(pointer), None) => {
                if self.json.as_deref().is_none_or(|j| j.trim().is_empty()) {
                    return Some(("json", "`pointer` needs `json`: `stdout` or a file".into()));
                }
                if self.file.is_some() {
                    return Some(("file", "only with `regex` (`json` names the file)".into()));
                }
                if !pointer.is_empty() && !pointer.starts_with('/') {
                    return Some((
                        "pointer",
                        format!("a JSON pointer starts with `/`, such as `/{pointer}`"),
                    ));
                }
            }
            (None, Some(regex)) => {
                if self.json.is_some() {
                    return Some(("json", "only with `pointer` (`file` names the file)".into()));
                }
                match regex::Regex::new(regex) {
                    Err(e) => return Some(("regex", e.to_string())),
                    Ok(r) if r.captures_len() != 2 => {
                        return Some((
                            "regex",
                            format!(
                                "needs exactly one capture group (the score), not {}",
                                r.captures_len() - 1
                            ),
                        ));
                    }
                    Ok(_) => {}
                }
            }
        }
        None
    }
}

/// The `accuracy` section of a case: one task (a mapping, as `accuracy: {task: gsm8k, …}`) or
/// several (a list of mappings, each with its own threshold). A case has one accuracy trial per
/// task; its stress trials ask the first task's questions under load.
#[derive(Debug, Clone, PartialEq)]
pub struct AccuracyTasks {
    tasks: Vec<AccuracySpec>,
    listed: bool,
}

impl AccuracyTasks {
    /// One task, written as a mapping.
    pub fn one(spec: AccuracySpec) -> AccuracyTasks {
        AccuracyTasks {
            tasks: vec![spec],
            listed: false,
        }
    }

    /// Several tasks, written as a list.
    pub fn list(tasks: Vec<AccuracySpec>) -> AccuracyTasks {
        AccuracyTasks {
            tasks,
            listed: true,
        }
    }

    /// The tasks, in the case's order.
    pub fn tasks(&self) -> &[AccuracySpec] {
        &self.tasks
    }

    /// The tasks, to change them (overrides).
    pub fn tasks_mut(&mut self) -> &mut [AccuracySpec] {
        &mut self.tasks
    }

    /// The first task: the one stress trials ask under load.
    pub fn first(&self) -> Option<&AccuracySpec> {
        self.tasks.first()
    }

    /// The task at `index`.
    pub fn get(&self, index: usize) -> Option<&AccuracySpec> {
        self.tasks.get(index)
    }

    /// The key of the task at `index` in error messages: `accuracy` for a single mapping,
    /// `accuracy[1]` in a list.
    pub fn key(&self, index: usize) -> String {
        if self.listed {
            format!("accuracy[{index}]")
        } else {
            "accuracy".to_string()
        }
    }

    /// The first invalid value of any task, or two tasks whose trials would share a name, as
    /// (dotted key, message), such as `accuracy[1].threshold.tolerance`. Reads no files.
    pub fn problem(&self) -> Option<(String, String)> {
        if self.tasks.is_empty() {
            return Some(("accuracy".into(), "list at least one task".into()));
        }
        for (index, task) in self.tasks.iter().enumerate() {
            if let Some((key, message)) = task.problem() {
                let rest = key.strip_prefix("accuracy").unwrap_or(&key);
                return Some((format!("{}{rest}", self.key(index)), message));
            }
        }
        for (index, task) in self.tasks.iter().enumerate() {
            let slug = task.slug();
            if let Some(earlier) = self.tasks[..index].iter().position(|t| t.slug() == slug) {
                return Some((
                    format!("{}.task", self.key(index)),
                    format!(
                        "the trial `{slug}` is already that of {}: give one of them another \
                         `{}`",
                        self.key(earlier),
                        if task.task == TaskName::External {
                            "name"
                        } else {
                            "limit"
                        },
                    ),
                ));
            }
        }
        None
    }
}

impl Serialize for AccuracyTasks {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.tasks.as_slice() {
            [one] if !self.listed => one.serialize(serializer),
            tasks => tasks.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for AccuracyTasks {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TasksVisitor)
    }
}

/// Reads a mapping as one task and a sequence as several, through the deserializer's own map
/// and sequence access, so that errors keep their key path (`accuracy[1].threshold`).
struct TasksVisitor;

impl<'de> Visitor<'de> for TasksVisitor {
    type Value = AccuracyTasks;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an accuracy task (a mapping with `task`) or a list of them")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<AccuracyTasks, A::Error> {
        AccuracySpec::deserialize(de::value::MapAccessDeserializer::new(map))
            .map(AccuracyTasks::one)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<AccuracyTasks, A::Error> {
        Vec::<AccuracySpec>::deserialize(de::value::SeqAccessDeserializer::new(seq))
            .map(AccuracyTasks::list)
    }
}

/// Seconds an `external` task's command may run when the case does not say.
pub const DEFAULT_EXTERNAL_TIMEOUT_S: u64 = 3600;

fn default_fewshot_seed() -> u64 {
    1234
}

fn default_concurrency() -> u32 {
    1
}

impl AccuracySpec {
    /// The task and its size, as its accuracy trial is named: `gsm8k_n50`, `mmlu_generative`.
    /// An `external` task is named `external`, or its `name`.
    pub fn slug(&self) -> String {
        if self.task == TaskName::External {
            return self.name.clone().unwrap_or_else(|| "external".into());
        }
        let size = self.limit.map(|n| format!("_n{n}")).unwrap_or_default();
        format!("{}{size}", self.task.as_str())
    }

    /// Seconds an `external` task's command may run.
    pub fn timeout_s(&self) -> u64 {
        self.timeout_s.unwrap_or(DEFAULT_EXTERNAL_TIMEOUT_S)
    }

    /// Few-shot examples per prompt: the case's value or the task's default.
    pub fn num_fewshot(&self) -> u32 {
        self.num_fewshot
            .unwrap_or_else(|| self.task.default_num_fewshot())
    }

    /// Most tokens generated per answer: the case's value or the task's default.
    pub fn max_tokens(&self) -> u32 {
        self.max_tokens
            .unwrap_or_else(|| self.task.default_max_tokens())
    }

    /// The filter the threshold judges: the case's `filter` or the task's first filter.
    /// `None` when the case names a filter the task does not have.
    pub fn judged_filter(&self) -> Option<&'static str> {
        let filters = self.task.filters();
        match &self.filter {
            None => filters.first().copied(),
            Some(name) => filters.iter().copied().find(|f| f == name),
        }
    }

    /// The first invalid combination of values, as (dotted key, message). Reads no files.
    pub fn problem(&self) -> Option<(String, String)> {
        let problem = |key: &str, message: String| Some((format!("accuracy.{key}"), message));
        let task = self.task.as_str();
        let is_arithmetic = self.task == TaskName::SyntheticArithmetic;
        let is_tools = self.task == TaskName::ToolCalls;
        if let Some(found) = self.tools_problem(is_tools) {
            return problem(found.0, found.1);
        }
        if let Some((key, message)) = self.external_problem() {
            return problem(&key, message);
        }
        if self.task == TaskName::External {
            if let Some((key, message)) =
                self.threshold.as_ref().and_then(AccuracyThreshold::problem)
            {
                return problem(&format!("threshold.{key}"), message);
            }
            return None;
        }
        if let Some((key, message)) = self.loglikelihood_problem() {
            return problem(key, message);
        }
        match (&self.dataset, is_arithmetic) {
            (None, false) if !is_tools => {
                return problem("dataset", format!("task `{task}` needs a dataset"));
            }
            (Some(_), true) => {
                return problem(
                    "dataset",
                    format!("task `{task}` is built in: remove `dataset`"),
                );
            }
            (Some(d), false) if d.trim().is_empty() => {
                return problem("dataset", "must not be empty".into());
            }
            _ => {}
        }
        if !is_arithmetic {
            if self.arithmetic.is_some() {
                return problem(
                    "arithmetic",
                    format!("only for `synthetic_arithmetic`, not `{task}`"),
                );
            }
            if self.seed.is_some() && !is_tools {
                return problem(
                    "seed",
                    format!(
                        "only for `synthetic_arithmetic`, not `{task}` (did you mean `subset_seed` or `fewshot_seed`?)"
                    ),
                );
            }
        }
        if self.limit == Some(0) {
            return problem("limit", "must be at least 1".into());
        }
        if self.subset_seed.is_some() {
            if is_arithmetic {
                return problem(
                    "subset_seed",
                    format!("not for `{task}`: its questions come from `seed`"),
                );
            }
            if is_tools {
                return problem(
                    "subset_seed",
                    format!("not for `{task}`: it scores the first `limit` questions"),
                );
            }
            if self.limit.is_none() {
                return problem(
                    "subset_seed",
                    "needs `limit` (the size of the subset)".into(),
                );
            }
        }
        if self.concurrency == 0 {
            return problem("concurrency", "must be at least 1".into());
        }
        if self.max_tokens == Some(0) {
            return problem("max_tokens", "must be at least 1".into());
        }
        if self.judged_filter().is_none() {
            return problem(
                "filter",
                format!(
                    "task `{task}` has the filters {}",
                    self.task.filters().join(", ")
                ),
            );
        }
        if let Some((key, message)) = self.arithmetic.as_ref().and_then(ArithmeticSpec::problem) {
            return problem(&format!("arithmetic.{key}"), message);
        }
        if let Some((key, message)) = self.threshold.as_ref().and_then(AccuracyThreshold::problem) {
            return problem(&format!("threshold.{key}"), message);
        }
        None
    }
}

impl AccuracySpec {
    /// `mmlu` (loglikelihood): the keys of generation that it cannot honour, as (key within
    /// `accuracy`, message).
    fn loglikelihood_problem(&self) -> Option<(&'static str, String)> {
        if self.task != TaskName::Mmlu {
            return None;
        }
        if self.num_fewshot.is_some_and(|n| n > 0) {
            return Some((
                "num_fewshot",
                "`mmlu` asks zero-shot: lm-eval draws its shots from the dev split \
                 (`first_n`), which one JSON Lines file does not have"
                    .into(),
            ));
        }
        if self.max_tokens.is_some() {
            return Some((
                "max_tokens",
                "not for `mmlu`: each choice is asked with `max_tokens: 1` and `echo`, as \
                 lm-eval's local-completions asks it"
                    .into(),
            ));
        }
        if self.fewshot_as_multiturn {
            return Some((
                "fewshot_as_multiturn",
                "not for `mmlu`: it asks the completions API, not chat".into(),
            ));
        }
        None
    }

    /// The first problem with the `external` keys, as (key within `accuracy`, message).
    fn external_problem(&self) -> Option<(String, String)> {
        let task = self.task.as_str();
        if self.task != TaskName::External {
            let given = [
                ("command", self.command.is_some()),
                ("timeout_s", self.timeout_s.is_some()),
                ("score", self.score.is_some()),
                ("name", self.name.is_some()),
            ];
            return given.iter().find(|(_, set)| *set).map(|(key, _)| {
                (
                    key.to_string(),
                    format!("only for `external`, not `{task}`"),
                )
            });
        }
        let foreign = [
            ("dataset", self.dataset.is_some()),
            ("limit", self.limit.is_some()),
            ("subset_seed", self.subset_seed.is_some()),
            ("num_fewshot", self.num_fewshot.is_some()),
            ("max_tokens", self.max_tokens.is_some()),
            ("seed", self.seed.is_some()),
            ("arithmetic", self.arithmetic.is_some()),
        ];
        if let Some((key, _)) = foreign.iter().find(|(_, set)| *set) {
            return Some((
                key.to_string(),
                "not for `external`: the command chooses its own data and settings".into(),
            ));
        }
        match &self.command {
            None => return Some(("command".into(), "`external` needs a `command`".into())),
            Some(argv) if argv.first().is_none_or(|p| p.trim().is_empty()) => {
                return Some((
                    "command".into(),
                    "list the program and its arguments, such as [lm_eval, --model, …]".into(),
                ));
            }
            _ => {}
        }
        if self.timeout_s == Some(0) {
            return Some(("timeout_s".into(), "must be at least 1".into()));
        }
        if let Some(name) = &self.name
            && (name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        {
            return Some((
                "name".into(),
                "letters, digits, `_` and `-` only (it is part of the trial's name)".into(),
            ));
        }
        if self.judged_filter().is_none() {
            return Some((
                "filter".into(),
                "task `external` has the filter score".into(),
            ));
        }
        let Some(score) = &self.score else {
            return Some((
                "score".into(),
                "`external` needs a `score`: {json, pointer} or {regex}".into(),
            ));
        };
        if let Some((key, message)) = score.problem() {
            return Some((format!("score.{key}"), message));
        }
        if let Some(threshold) = &self.threshold
            && threshold.kind == ThresholdKind::HypothesisTest
            && threshold.n.is_none()
        {
            return Some((
                "threshold.n".into(),
                "`hypothesis_test` on an external score needs `n`, the questions it scored".into(),
            ));
        }
        None
    }

    /// The first problem with the tool keys, as (key within `accuracy`, message).
    fn tools_problem(&self, is_tools: bool) -> Option<(&'static str, String)> {
        let task = self.task.as_str();
        let given = [
            ("tools", self.tools.is_some()),
            ("tools_file", self.tools_file.is_some()),
            ("tool_choice", self.tool_choice.is_some()),
        ];
        if !is_tools {
            return given
                .iter()
                .find(|(_, set)| *set)
                .map(|(key, _)| (*key, format!("only for `tool_calls`, not `{task}`")));
        }
        match (&self.tools, &self.tools_file, &self.dataset) {
            (Some(_), Some(_), _) => {
                return Some((
                    "tools_file",
                    "give `tools` or `tools_file`, not both".into(),
                ));
            }
            (Some(_), None, None) | (None, Some(_), None) => {
                return Some((
                    "tools",
                    "the built-in questions bring their own tools: add a `dataset` question \
                     file or remove the tools"
                        .into(),
                ));
            }
            (None, None, Some(_)) => {
                return Some((
                    "tools",
                    "a question file needs `tools` or `tools_file`".into(),
                ));
            }
            (Some(tools), None, Some(_)) if tools.is_empty() => {
                return Some(("tools", "list at least one tool".into()));
            }
            _ => {}
        }
        if let Some(choice) = &self.tool_choice
            && let Some(message) = tool_choice_problem(choice)
        {
            return Some(("tool_choice", message));
        }
        None
    }
}

/// Why a `tool_choice` value is not one OpenAI accepts, if it is not.
pub fn tool_choice_problem(choice: &serde_json::Value) -> Option<String> {
    match choice {
        serde_json::Value::String(s) if ["auto", "none", "required"].contains(&s.as_str()) => None,
        serde_json::Value::Object(o)
            if o.get("type").and_then(|t| t.as_str()) == Some("function")
                && o.get("function")
                    .and_then(|f| f.get("name"))
                    .is_some_and(|n| n.is_string()) =>
        {
            None
        }
        _ => Some(
            "one of `auto`, `none`, `required` or `{type: function, function: {name: …}}`".into(),
        ),
    }
}

/// An operator of the synthetic arithmetic questions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum Operator {
    /// Addition.
    #[serde(rename = "+")]
    Add,
    /// Subtraction.
    #[serde(rename = "-")]
    Sub,
    /// Multiplication (binds tighter than `+` and `-`).
    #[serde(rename = "*")]
    Mul,
}

impl Operator {
    /// The operator as written in questions.
    pub fn symbol(self) -> char {
        match self {
            Operator::Add => '+',
            Operator::Sub => '-',
            Operator::Mul => '*',
        }
    }
}

/// The shape of the synthetic arithmetic questions.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArithmeticSpec {
    /// Numbers per question, 2 to 6.
    pub operands: u32,
    /// Digits per number, 1 to 6 (1-digit numbers include 0).
    pub digits: u32,
    /// Operators drawn between the numbers, uniformly.
    pub operators: Vec<Operator>,
}

impl Default for ArithmeticSpec {
    fn default() -> Self {
        Self {
            operands: 2,
            digits: 2,
            operators: vec![Operator::Add, Operator::Sub, Operator::Mul],
        }
    }
}

impl ArithmeticSpec {
    /// The first invalid value, as (key within `arithmetic`, message).
    fn problem(&self) -> Option<(String, String)> {
        if !(2..=6).contains(&self.operands) {
            return Some(("operands".into(), "must be 2 to 6".into()));
        }
        if !(1..=6).contains(&self.digits) {
            return Some(("digits".into(), "must be 1 to 6".into()));
        }
        if self.operators.is_empty() {
            return Some(("operators".into(), "list at least one of +, -, *".into()));
        }
        // Every result is below 10^(digits·operands) in magnitude; with `*` that must stay below
        // 10^18 so that it fits in 64 bits.
        if self.operators.contains(&Operator::Mul) && self.digits * self.operands > 18 {
            return Some((
                "digits".into(),
                format!(
                    "with `*`, digits × operands must be at most 18 so results fit in 64 bits \
                     (here {} × {})",
                    self.digits, self.operands
                ),
            ));
        }
        None
    }
}

/// How an accuracy score is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdKind {
    /// Pass unless the score moved the wrong way by more than `tolerance` points.
    Absolute,
    /// Pass when the score is within `tolerance` (a ratio) of `expected_value`, either way.
    Relative,
    /// Pass unless a one-sided test at level α says the score is worse than `expected_value`.
    HypothesisTest,
}

impl ThresholdKind {
    /// The name used in case files.
    pub fn as_str(self) -> &'static str {
        match self {
            ThresholdKind::Absolute => "absolute",
            ThresholdKind::Relative => "relative",
            ThresholdKind::HypothesisTest => "hypothesis_test",
        }
    }
}

/// Accuracy threshold (judged by `AccuracyThreshold::judge` in `crate::accuracy`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AccuracyThreshold {
    /// How the score is judged.
    pub kind: ThresholdKind,
    /// The reference score.
    pub expected_value: Score,
    /// `absolute`: points the score may drop. `relative`: the allowed ratio, read as
    /// `points / 100` (`0.05`, `5` and `"5%"` all mean 5 %). Required there; not for
    /// `hypothesis_test`.
    #[serde(default)]
    pub tolerance: Option<Score>,
    /// `hypothesis_test`: level of the test, in (0, 0.5]; default 0.05.
    #[serde(default)]
    pub alpha: Option<f64>,
    /// `hypothesis_test`: type II error rate for the reported minimum detectable effect, in
    /// (0, 0.5]; default 0.2.
    #[serde(default)]
    pub beta: Option<f64>,
    /// `hypothesis_test`: standard deviation of one sample's score; default 50 points (the
    /// largest a pass/fail sample can have).
    #[serde(default)]
    pub sigma: Option<Score>,
    /// `hypothesis_test`: sample count of the test; default the number of samples scored.
    #[serde(default)]
    pub n: Option<u32>,
    /// Whether a higher score is better (default true).
    #[serde(default = "default_higher_is_better")]
    pub higher_is_better: bool,
}

fn default_higher_is_better() -> bool {
    true
}

impl AccuracyThreshold {
    /// Level of the hypothesis test (default 0.05).
    pub fn alpha(&self) -> f64 {
        self.alpha.unwrap_or(0.05)
    }

    /// Type II error rate for the minimum detectable effect (default 0.2).
    pub fn beta(&self) -> f64 {
        self.beta.unwrap_or(0.2)
    }

    /// Standard deviation of one sample's score, points (default 50).
    pub fn sigma(&self) -> f64 {
        self.sigma.map_or(50.0, Score::points)
    }

    /// The first invalid value, as (key within `threshold`, message).
    fn problem(&self) -> Option<(String, String)> {
        let kind = self.kind.as_str();
        let only_for_test = |key: &str| {
            Some((
                key.to_string(),
                format!("only for `hypothesis_test`, not `{kind}`"),
            ))
        };
        if self.kind == ThresholdKind::HypothesisTest {
            if self.tolerance.is_some() {
                return Some((
                    "tolerance".into(),
                    "not for `hypothesis_test` (it derives its margin from alpha, sigma and n)"
                        .into(),
                ));
            }
        } else {
            if self.tolerance.is_none() {
                return Some(("tolerance".into(), format!("`{kind}` needs a tolerance")));
            }
            if self.alpha.is_some() {
                return only_for_test("alpha");
            }
            if self.beta.is_some() {
                return only_for_test("beta");
            }
            if self.sigma.is_some() {
                return only_for_test("sigma");
            }
            if self.n.is_some() {
                return only_for_test("n");
            }
        }
        for (key, value) in [("alpha", self.alpha), ("beta", self.beta)] {
            if let Some(v) = value
                && !(v > 0.0 && v <= 0.5)
            {
                return Some((key.into(), "must be in (0, 0.5]".into()));
            }
        }
        if self.sigma.is_some_and(|s| s.points() == 0.0) {
            return Some(("sigma".into(), "must be more than 0".into()));
        }
        if self.n == Some(0) {
            return Some(("n".into(), "must be at least 1".into()));
        }
        None
    }
}

/// A score in points on the 0–100 scale.
///
/// Read from a number or a percentage string, by one rule: a string `"85%"` is 85 points; a
/// number up to 1 is a fraction (`0.85` is 85 points, `0.05` is 5 points, `1` is 100 points); a
/// larger number is points (`85` is 85 points). The rule exists so that a fraction and a
/// percentage cannot be mixed up silently: `expected_value: 0.85, sigma: 0.05` becomes 85 and 5
/// points, not 0.85 points compared against a 0–100 score. Negative, non-finite and over-100
/// values are rejected. Written back as a percentage string, which reads back the same.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Score(f64);

impl Score {
    /// Zero points.
    pub const ZERO: Score = Score(0.0);

    /// The score in points (0–100).
    pub fn points(self) -> f64 {
        self.0
    }

    fn from_points(points: f64) -> Result<Score, String> {
        if !points.is_finite() || points < 0.0 {
            return Err(format!(
                "a score must be a number from 0 to 100, not {points}"
            ));
        }
        if points > 100.0 {
            return Err(format!(
                "a score is at most 100 points (100%), not {points}"
            ));
        }
        Ok(Score(points))
    }

    fn from_number(value: f64) -> Result<Score, String> {
        if value.is_finite() && (0.0..=1.0).contains(&value) {
            Score::from_points(value * 100.0)
        } else {
            Score::from_points(value)
        }
    }

    fn from_text(text: &str) -> Result<Score, String> {
        let number = text
            .trim()
            .strip_suffix('%')
            .and_then(|n| n.trim().parse::<f64>().ok())
            .ok_or_else(|| {
                format!("expected a number or a percentage such as \"85%\", not {text:?}")
            })?;
        Score::from_points(number)
    }
}

impl fmt::Display for Score {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0)
    }
}

impl Serialize for Score {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Score {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScoreVisitor)
    }
}

struct ScoreVisitor;

impl Visitor<'_> for ScoreVisitor {
    type Value = Score;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "a score: a fraction up to 1, points up to 100, or a percentage such as \"85%\"",
        )
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Score, E> {
        Score::from_number(v).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Score, E> {
        // Exact for any valid score; larger values are rejected anyway.
        Score::from_number(v as f64).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Score, E> {
        Score::from_number(v as f64).map_err(E::custom)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Score, E> {
        Score::from_text(v).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use rstest::rstest;

    use super::*;
    use crate::case::load::parse_yaml;

    fn spec(yaml: &str) -> AccuracySpec {
        parse_yaml(Path::new("c.yaml"), yaml).expect("parses")
    }

    fn parse_error(yaml: &str) -> String {
        parse_yaml::<AccuracySpec>(Path::new("c.yaml"), yaml)
            .expect_err("should not parse")
            .to_string()
    }

    #[test]
    fn defaults_follow_the_task() {
        let gsm = spec("task: gsm8k\ndataset: data/gsm8k\n");
        assert_eq!(
            (
                gsm.num_fewshot(),
                gsm.max_tokens(),
                gsm.concurrency,
                gsm.fewshot_seed
            ),
            (5, 256, 1, 1234)
        );
        assert_eq!(gsm.judged_filter(), Some("strict-match"));
        assert!(!gsm.fewshot_as_multiturn);
        let mmlu = spec("task: mmlu_generative\ndataset: m.jsonl\n");
        assert_eq!((mmlu.num_fewshot(), mmlu.max_tokens()), (0, 8));
        assert_eq!(mmlu.judged_filter(), Some("letter"));
        let arith = spec("task: synthetic_arithmetic\narithmetic: {}\n");
        assert_eq!((arith.num_fewshot(), arith.max_tokens()), (3, 16));
        assert_eq!(arith.arithmetic, Some(ArithmeticSpec::default()));
        assert_eq!(arith.judged_filter(), Some("first-number"));
        assert_eq!(gsm.problem(), None);
        assert_eq!(mmlu.problem(), None);
        assert_eq!(arith.problem(), None);
    }

    #[test]
    fn a_full_section_parses() {
        let s = spec(
            "task: gsm8k\ndataset: data/gsm8k/test.jsonl\nlimit: 50\nsubset_seed: 7\n\
             num_fewshot: 3\nfewshot_seed: 42\nfewshot_as_multiturn: true\nmax_tokens: 128\n\
             concurrency: 4\nfilter: flexible-extract\n\
             threshold: {kind: hypothesis_test, expected_value: 85%, alpha: 0.1, beta: 0.1, \
             sigma: 40, n: 1319, higher_is_better: true}\n",
        );
        assert_eq!(s.problem(), None);
        assert_eq!(s.judged_filter(), Some("flexible-extract"));
        assert_eq!(
            (s.limit, s.subset_seed, s.num_fewshot()),
            (Some(50), Some(7), 3)
        );
        let t = s.threshold.expect("threshold");
        assert_eq!(t.expected_value.points(), 85.0);
        assert_eq!(
            (t.alpha(), t.beta(), t.sigma(), t.n),
            (0.1, 0.1, 40.0, Some(1319))
        );
    }

    #[rstest]
    #[case::percent_string("\"85%\"", 85.0)]
    #[case::plain_percent("85%", 85.0)]
    #[case::fraction("0.85", 85.0)]
    #[case::points("85", 85.0)]
    #[case::points_float("85.5", 85.5)]
    #[case::one_is_everything("1", 100.0)]
    #[case::zero("0", 0.0)]
    #[case::small_fraction("0.05", 5.0)]
    #[case::small_percent("0.5%", 0.5)]
    #[case::hundred("100", 100.0)]
    fn scores_are_points(#[case] value: &str, #[case] points: f64) {
        let s = spec(&format!(
            "task: gsm8k\ndataset: d\nthreshold: {{kind: hypothesis_test, expected_value: {value}}}\n"
        ));
        let score = s.threshold.expect("threshold").expected_value;
        assert!((score.points() - points).abs() < 1e-9, "{value}: {score:?}");
    }

    #[rstest]
    #[case::negative("-0.5", "from 0 to 100")]
    #[case::over_100("101", "at most 100")]
    #[case::over_100_percent("\"150%\"", "at most 100")]
    #[case::nan(".nan", "non-finite")]
    #[case::no_percent_sign("\"85\"", "percentage such as")]
    #[case::words("high", "percentage such as")]
    fn bad_scores_are_rejected(#[case] value: &str, #[case] message: &str) {
        let error = parse_error(&format!(
            "task: gsm8k\ndataset: d\nthreshold: {{kind: absolute, expected_value: {value}, tolerance: 2}}\n"
        ));
        assert!(error.contains("threshold.expected_value"), "{error}");
        assert!(error.contains(message), "{error}");
    }

    #[test]
    fn non_finite_numbers_are_not_scores() {
        for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(Score::from_number(value).is_err(), "{value}");
        }
    }

    #[test]
    fn a_score_reads_back_what_it_writes() {
        for text in ["\"0.5%\"", "0.85", "85", "\"12.25%\""] {
            let score: Score = serde_json::from_str(text).expect("parses");
            let written = serde_json::to_string(&score).expect("writes");
            let again: Score = serde_json::from_str(&written).expect("reads back");
            assert_eq!(score, again, "{text} → {written}");
        }
    }

    #[rstest]
    #[case::unknown_task("task: gsm9k\ndataset: d\n", "unknown variant `gsm9k`")]
    #[case::unknown_key("task: gsm8k\ndataset: d\nlimt: 3\n", "unknown field `limt`")]
    #[case::unknown_threshold_kind(
        "task: gsm8k\ndataset: d\nthreshold: {kind: fuzzy, expected_value: 1}\n",
        "unknown variant `fuzzy`"
    )]
    #[case::unknown_threshold_key(
        "task: gsm8k\ndataset: d\nthreshold: {kind: absolute, expected_value: 1, tol: 2}\n",
        "unknown field `tol`"
    )]
    #[case::division(
        "task: synthetic_arithmetic\narithmetic: {operators: [\"/\"]}\n",
        "unknown variant `/`"
    )]
    #[case::unknown_arithmetic_key(
        "task: synthetic_arithmetic\narithmetic: {operand: 3}\n",
        "unknown field `operand`"
    )]
    fn schema_errors(#[case] yaml: &str, #[case] message: &str) {
        let error = parse_error(yaml);
        assert!(error.contains(message), "{error}");
    }

    #[rstest]
    #[case::gsm8k_without_dataset("task: gsm8k\n", "accuracy.dataset", "needs a dataset")]
    #[case::mmlu_without_dataset("task: mmlu_generative\n", "accuracy.dataset", "needs a dataset")]
    #[case::empty_dataset("task: gsm8k\ndataset: ' '\n", "accuracy.dataset", "empty")]
    #[case::arithmetic_with_dataset(
        "task: synthetic_arithmetic\ndataset: d\n",
        "accuracy.dataset",
        "built in"
    )]
    #[case::arithmetic_section_elsewhere(
        "task: gsm8k\ndataset: d\narithmetic: {}\n",
        "accuracy.arithmetic",
        "only for `synthetic_arithmetic`"
    )]
    #[case::seed_elsewhere("task: gsm8k\ndataset: d\nseed: 3\n", "accuracy.seed", "subset_seed")]
    #[case::limit_zero("task: gsm8k\ndataset: d\nlimit: 0\n", "accuracy.limit", "at least 1")]
    #[case::subset_without_limit(
        "task: gsm8k\ndataset: d\nsubset_seed: 1\n",
        "accuracy.subset_seed",
        "needs `limit`"
    )]
    #[case::subset_of_arithmetic(
        "task: synthetic_arithmetic\nlimit: 5\nsubset_seed: 1\n",
        "accuracy.subset_seed",
        "`seed`"
    )]
    #[case::concurrency_zero(
        "task: gsm8k\ndataset: d\nconcurrency: 0\n",
        "accuracy.concurrency",
        "at least 1"
    )]
    #[case::max_tokens_zero(
        "task: gsm8k\ndataset: d\nmax_tokens: 0\n",
        "accuracy.max_tokens",
        "at least 1"
    )]
    #[case::bad_filter(
        "task: gsm8k\ndataset: d\nfilter: letter\n",
        "accuracy.filter",
        "strict-match, flexible-extract"
    )]
    #[case::too_few_operands(
        "task: synthetic_arithmetic\narithmetic: {operands: 1}\n",
        "accuracy.arithmetic.operands",
        "2 to 6"
    )]
    #[case::too_many_digits(
        "task: synthetic_arithmetic\narithmetic: {digits: 7}\n",
        "accuracy.arithmetic.digits",
        "1 to 6"
    )]
    #[case::no_operators(
        "task: synthetic_arithmetic\narithmetic: {operators: []}\n",
        "accuracy.arithmetic.operators",
        "at least one"
    )]
    #[case::products_overflow(
        "task: synthetic_arithmetic\narithmetic: {operands: 4, digits: 5}\n",
        "accuracy.arithmetic.digits",
        "at most 18"
    )]
    #[case::no_tolerance(
        "task: gsm8k\ndataset: d\nthreshold: {kind: absolute, expected_value: 85}\n",
        "accuracy.threshold.tolerance",
        "needs a tolerance"
    )]
    #[case::tolerance_for_test(
        "task: gsm8k\ndataset: d\nthreshold: {kind: hypothesis_test, expected_value: 85, tolerance: 2}\n",
        "accuracy.threshold.tolerance",
        "not for `hypothesis_test`"
    )]
    #[case::sigma_for_relative(
        "task: gsm8k\ndataset: d\nthreshold: {kind: relative, expected_value: 85, tolerance: 2, sigma: 50}\n",
        "accuracy.threshold.sigma",
        "only for `hypothesis_test`"
    )]
    #[case::alpha_for_absolute(
        "task: gsm8k\ndataset: d\nthreshold: {kind: absolute, expected_value: 85, tolerance: 2, alpha: 0.1}\n",
        "accuracy.threshold.alpha",
        "only for `hypothesis_test`"
    )]
    #[case::n_for_absolute(
        "task: gsm8k\ndataset: d\nthreshold: {kind: absolute, expected_value: 85, tolerance: 2, n: 9}\n",
        "accuracy.threshold.n",
        "only for `hypothesis_test`"
    )]
    #[case::beta_for_absolute(
        "task: gsm8k\ndataset: d\nthreshold: {kind: absolute, expected_value: 85, tolerance: 2, beta: 0.1}\n",
        "accuracy.threshold.beta",
        "only for `hypothesis_test`"
    )]
    #[case::alpha_too_big(
        "task: gsm8k\ndataset: d\nthreshold: {kind: hypothesis_test, expected_value: 85, alpha: 0.6}\n",
        "accuracy.threshold.alpha",
        "(0, 0.5]"
    )]
    #[case::beta_zero(
        "task: gsm8k\ndataset: d\nthreshold: {kind: hypothesis_test, expected_value: 85, beta: 0}\n",
        "accuracy.threshold.beta",
        "(0, 0.5]"
    )]
    #[case::sigma_zero(
        "task: gsm8k\ndataset: d\nthreshold: {kind: hypothesis_test, expected_value: 85, sigma: 0}\n",
        "accuracy.threshold.sigma",
        "more than 0"
    )]
    #[case::n_zero(
        "task: gsm8k\ndataset: d\nthreshold: {kind: hypothesis_test, expected_value: 85, n: 0}\n",
        "accuracy.threshold.n",
        "at least 1"
    )]
    #[case::tools_for_another_task(
        "task: gsm8k\ndataset: d\ntools: []\n",
        "accuracy.tools",
        "only for `tool_calls`"
    )]
    #[case::tools_and_tools_file(
        "task: tool_calls\ndataset: q.jsonl\ntools: [{}]\ntools_file: t.json\n",
        "accuracy.tools_file",
        "not both"
    )]
    #[case::question_file_without_tools(
        "task: tool_calls\ndataset: q.jsonl\n",
        "accuracy.tools",
        "needs `tools` or `tools_file`"
    )]
    #[case::tools_without_question_file(
        "task: tool_calls\ntools_file: t.json\n",
        "accuracy.tools",
        "bring their own tools"
    )]
    #[case::empty_tools(
        "task: tool_calls\ndataset: q.jsonl\ntools: []\n",
        "accuracy.tools",
        "at least one tool"
    )]
    #[case::bad_tool_choice(
        "task: tool_calls\ntool_choice: always\n",
        "accuracy.tool_choice",
        "one of `auto`"
    )]
    #[case::subset_of_tool_questions(
        "task: tool_calls\nlimit: 5\nsubset_seed: 1\n",
        "accuracy.subset_seed",
        "not for `tool_calls`"
    )]
    #[case::mmlu_few_shot(
        "task: mmlu\ndataset: d\nnum_fewshot: 5\n",
        "accuracy.num_fewshot",
        "`mmlu` asks zero-shot"
    )]
    #[case::mmlu_max_tokens(
        "task: mmlu\ndataset: d\nmax_tokens: 4\n",
        "accuracy.max_tokens",
        "`max_tokens: 1` and `echo`"
    )]
    #[case::mmlu_multiturn(
        "task: mmlu\ndataset: d\nfewshot_as_multiturn: true\n",
        "accuracy.fewshot_as_multiturn",
        "not chat"
    )]
    #[case::mmlu_without_data("task: mmlu\n", "accuracy.dataset", "needs a dataset")]
    #[case::mmlu_unknown_filter(
        "task: mmlu\ndataset: d\nfilter: letter\n",
        "accuracy.filter",
        "acc, acc_norm"
    )]
    fn problems_name_the_key(#[case] yaml: &str, #[case] key: &str, #[case] message: &str) {
        let (found_key, found_message) = spec(yaml).problem().expect("a problem");
        assert_eq!(found_key, key, "{found_message}");
        assert!(found_message.contains(message), "{found_message}");
    }

    #[rstest]
    #[case("task: tool_calls\n")]
    #[case("task: tool_calls\nseed: 4\nlimit: 10\ntool_choice: required\n")]
    #[case("task: tool_calls\ndataset: q.jsonl\ntools_file: t.json\n")]
    #[case(
        "task: tool_calls\ndataset: q.jsonl\ntools: [{type: function, function: {name: f}}]\ntool_choice: {type: function, function: {name: f}}\n"
    )]
    fn tool_call_specs_that_are_fine(#[case] yaml: &str) {
        assert_eq!(spec(yaml).problem(), None);
    }

    fn tasks(yaml: &str) -> AccuracyTasks {
        parse_yaml(Path::new("c.yaml"), yaml).expect("parses")
    }

    #[test]
    fn one_mapping_is_one_task_and_writes_back_as_a_mapping() {
        let one = tasks("task: gsm8k\ndataset: d\nlimit: 50\n");
        assert_eq!(one.tasks().len(), 1);
        assert_eq!(one.key(0), "accuracy");
        assert_eq!(
            one.first().map(AccuracySpec::slug),
            Some("gsm8k_n50".into())
        );
        let written = serde_json::to_value(&one).expect("writes");
        assert!(written.is_object(), "{written}");
        assert_eq!(one.problem(), None);
    }

    #[test]
    fn a_list_is_several_tasks_and_writes_back_as_a_list() {
        let list = tasks(
            "- {task: gsm8k, dataset: d, limit: 5}\n- {task: mmlu_generative, dataset: m.jsonl}\n",
        );
        let slugs: Vec<String> = list.tasks().iter().map(AccuracySpec::slug).collect();
        assert_eq!(slugs, ["gsm8k_n5", "mmlu_generative"]);
        assert_eq!(
            (list.key(0), list.key(1)),
            ("accuracy[0]".into(), "accuracy[1]".into())
        );
        assert!(serde_json::to_value(&list).expect("writes").is_array());
        assert_eq!(list.problem(), None);
        // A list of one stays a list.
        let single = tasks("- {task: synthetic_arithmetic}\n");
        assert!(serde_json::to_value(&single).expect("writes").is_array());
    }

    #[rstest]
    #[case::empty_list("[]\n", "accuracy", "at least one task")]
    #[case::second_task_invalid(
        "- {task: synthetic_arithmetic}\n- {task: gsm8k, dataset: d, threshold: {kind: absolute, expected_value: 85}}\n",
        "accuracy[1].threshold.tolerance",
        "needs a tolerance"
    )]
    #[case::same_trial_twice(
        "- {task: synthetic_arithmetic, limit: 5}\n- {task: synthetic_arithmetic, limit: 5, seed: 2}\n",
        "accuracy[1].task",
        "already that of accuracy[0]"
    )]
    #[case::single_task_keeps_its_key(
        "task: gsm8k\ndataset: d\nlimit: 0\n",
        "accuracy.limit",
        "at least 1"
    )]
    fn list_problems_name_the_task(#[case] yaml: &str, #[case] key: &str, #[case] message: &str) {
        let (found_key, found_message) = tasks(yaml).problem().expect("a problem");
        assert_eq!(found_key, key, "{found_message}");
        assert!(found_message.contains(message), "{found_message}");
    }

    #[rstest]
    #[case::key_in_second_task(
        "accuracy:\n  - task: synthetic_arithmetic\n  - task: gsm8k\n    dataset: d\n    threshold: {kind: absolute, expected_value: 85, tol: 1}\n",
        "c.yaml:5:",
        "key `accuracy[1].threshold.tol`"
    )]
    #[case::unknown_task_in_list(
        "accuracy:\n  - task: synthetic_arithmetic\n  - task: gsm9k\n",
        "c.yaml:3:",
        "key `accuracy[1].task`"
    )]
    #[case::scalar("accuracy: gsm8k\n", "c.yaml:1:", "a list of them")]
    fn yaml_errors_in_a_list_name_line_column_and_key(
        #[case] yaml: &str,
        #[case] place: &str,
        #[case] key: &str,
    ) {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Case {
            accuracy: AccuracyTasks,
        }
        let error = parse_yaml::<Case>(Path::new("c.yaml"), yaml)
            .expect_err("should not parse")
            .to_string();
        assert!(error.starts_with(place), "{error}");
        assert!(error.contains(key), "{error}");
    }

    const EXTERNAL: &str = "task: external\ncommand: [sh, -c, 'echo acc=1']\n";

    #[rstest]
    #[case::no_command(
        "task: external\nscore: {regex: '(x)'}\n",
        "accuracy.command",
        "needs a `command`"
    )]
    #[case::empty_command(
        "task: external\ncommand: []\nscore: {regex: '(x)'}\n",
        "accuracy.command",
        "program and its arguments"
    )]
    #[case::no_score(EXTERNAL, "accuracy.score", "needs a `score`")]
    #[case::pointer_and_regex(
        "score: {json: stdout, pointer: /a, regex: '(x)'}",
        "accuracy.score.regex",
        "not both"
    )]
    #[case::neither("score: {json: stdout}", "accuracy.score.pointer", "or `regex`")]
    #[case::pointer_without_json("score: {pointer: /a}", "accuracy.score.json", "needs `json`")]
    #[case::bad_pointer(
        "score: {json: stdout, pointer: a/b}",
        "accuracy.score.pointer",
        "`/a/b`"
    )]
    #[case::two_groups(
        "score: {regex: '(a)(b)'}",
        "accuracy.score.regex",
        "exactly one capture group"
    )]
    #[case::bad_regex("score: {regex: '(a'}", "accuracy.score.regex", "unclosed")]
    #[case::dataset(
        "score: {regex: '(a)'}\ndataset: d",
        "accuracy.dataset",
        "not for `external`"
    )]
    #[case::limit(
        "score: {regex: '(a)'}\nlimit: 5",
        "accuracy.limit",
        "not for `external`"
    )]
    #[case::timeout_zero(
        "score: {regex: '(a)'}\ntimeout_s: 0",
        "accuracy.timeout_s",
        "at least 1"
    )]
    #[case::bad_name(
        "score: {regex: '(a)'}\nname: a b",
        "accuracy.name",
        "part of the trial's name"
    )]
    #[case::test_without_n(
        "score: {regex: '(a)'}\nthreshold: {kind: hypothesis_test, expected_value: 80%}",
        "accuracy.threshold.n",
        "needs `n`"
    )]
    fn external_problems_name_the_key(
        #[case] rest: &str,
        #[case] key: &str,
        #[case] message: &str,
    ) {
        let yaml = if rest.starts_with("task:") {
            rest.to_string()
        } else {
            format!("{EXTERNAL}{rest}\n")
        };
        let (found_key, found_message) = spec(&yaml).problem().expect("a problem");
        assert_eq!(found_key, key, "{found_message}");
        assert!(found_message.contains(message), "{found_message}");
    }

    #[rstest]
    #[case::command_elsewhere("task: gsm8k\ndataset: d\ncommand: [x]\n", "accuracy.command")]
    #[case::score_elsewhere(
        "task: synthetic_arithmetic\nscore: {regex: '(a)'}\n",
        "accuracy.score"
    )]
    fn external_keys_elsewhere_are_refused(#[case] yaml: &str, #[case] key: &str) {
        let (found_key, message) = spec(yaml).problem().expect("a problem");
        assert_eq!(found_key, key);
        assert!(message.contains("only for `external`"), "{message}");
    }

    #[test]
    fn external_tasks_are_named_by_name() {
        let fine = spec(&format!(
            "{EXTERNAL}score: {{json: '{{out_dir}}/r.json', pointer: '/results/gsm8k/exact_match,strict-match'}}\n\
             threshold: {{kind: hypothesis_test, expected_value: 80%, n: 1319}}\n"
        ));
        assert_eq!(fine.problem(), None);
        assert_eq!(fine.slug(), "external");
        assert_eq!(fine.timeout_s(), DEFAULT_EXTERNAL_TIMEOUT_S);
        assert_eq!(fine.judged_filter(), Some("score"));
        let named = spec(&format!(
            "{EXTERNAL}score: {{regex: '(a)'}}\nname: lm-eval_gsm8k\n"
        ));
        assert_eq!(
            (named.problem(), named.slug()),
            (None, "lm-eval_gsm8k".into())
        );
        let twice = tasks(
            "- {task: external, command: [a], score: {regex: '(a)'}}\n\
             - {task: external, command: [b], score: {regex: '(b)'}}\n",
        );
        let (key, message) = twice.problem().expect("same name");
        assert_eq!(key, "accuracy[1].task");
        assert!(message.contains("another `name`"), "{message}");
    }

    #[test]
    fn multiplying_short_numbers_is_fine() {
        let s = spec("task: synthetic_arithmetic\narithmetic: {operands: 6, digits: 3}\n");
        assert_eq!(s.problem(), None);
        let s = spec(
            "task: synthetic_arithmetic\narithmetic: {operands: 6, digits: 6, operators: [\"+\", \"-\"]}\n",
        );
        assert_eq!(s.problem(), None);
    }

    #[test]
    fn operators_have_symbols() {
        let symbols: String = ArithmeticSpec::default()
            .operators
            .iter()
            .map(|o| o.symbol())
            .collect();
        assert_eq!(symbols, "+-*");
    }
}
