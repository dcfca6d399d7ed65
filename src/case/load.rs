//! Reading case files and model specs, with errors that name file, line, column and key.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::overrides::Overrides;
use super::schema::{CaseSpec, ModelSpec};
pub use crate::yaml::{Position, YamlError};

/// A case file that was read and validated, with its model spec.
#[derive(Debug, Clone)]
pub struct LoadedCase {
    /// The case.
    pub spec: CaseSpec,
    /// Where it was read from.
    pub path: PathBuf,
    /// Its model spec, when the case names one (every kind but `sim` needs one).
    pub model: Option<ModelSpec>,
    /// Where the model spec was read from (set together with `model`).
    pub model_path: Option<PathBuf>,
    /// The case as it runs, as YAML: the file's text, or the document after the overrides.
    pub resolved: String,
    /// The overrides applied, as given (`matrix.concurrency=[1,8]`).
    pub overrides: Vec<String>,
}

/// Why a case or model spec could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The YAML is malformed or does not fit the schema.
    #[error(transparent)]
    Yaml(#[from] Box<YamlError>),
    /// The values parse but make no sense together.
    #[error("{}: key `{key}`: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The offending key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// Parses YAML text into `T`, turning any failure into a [`CaseError::Yaml`] for `path`.
pub fn parse_yaml<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, CaseError> {
    Ok(crate::yaml::parse_yaml(path, text)?)
}

fn read(path: &Path) -> Result<String, CaseError> {
    super::files::read_regular_text(path, super::files::MAX_CASE_FILE_BYTES).map_err(|source| {
        CaseError::Read {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Reads a model spec.
pub fn load_model(path: &Path) -> Result<ModelSpec, CaseError> {
    let model: ModelSpec = parse_yaml(path, &read(path)?)?;
    let invalid = |key: &str, message: String| CaseError::Invalid {
        path: path.to_path_buf(),
        key: key.to_string(),
        message,
    };
    if model.max_context < 2 {
        return Err(invalid("max_context", "must be at least 2".into()));
    }
    if model.max_concurrency < 1 {
        return Err(invalid("max_concurrency", "must be at least 1".into()));
    }
    for (i, entry) in model.reference.iter().enumerate() {
        if entry.isl == 0 || entry.osl == 0 || entry.concurrency == 0 || entry.prompts == 0 {
            return Err(invalid(
                &format!("reference[{i}]"),
                "isl, osl, concurrency and prompts must be at least 1".into(),
            ));
        }
    }
    Ok(model)
}

/// Reads a case file and the model spec it names (`models/<model>.yaml` beside it).
pub fn load_case(path: &Path) -> Result<LoadedCase, CaseError> {
    load_case_with(path, &Overrides::default())
}

/// [`load_case`] with `overrides` applied before validation (the file's own mistakes are
/// still reported with line and column).
pub fn load_case_with(path: &Path, overrides: &Overrides) -> Result<LoadedCase, CaseError> {
    let text = read(path)?;
    let mut spec: CaseSpec = parse_yaml(path, &text)?;
    let mut resolved = text;
    if !overrides.is_empty() {
        (spec, resolved) = overrides.apply(path, &resolved)?;
    }
    let case_dir = path.parent().unwrap_or(Path::new("."));
    for (key, dist) in [
        ("prompts.isl_dist", &mut spec.prompts.isl_dist),
        ("prompts.osl_dist", &mut spec.prompts.osl_dist),
    ] {
        if let Some(dist) = dist {
            dist.load_file(case_dir).map_err(|e| CaseError::Invalid {
                path: path.to_path_buf(),
                key: key.into(),
                message: e.to_string(),
            })?;
        }
    }
    validate(path, &spec)?;
    let (model, model_path) = match &spec.model {
        Some(name) => {
            let model_path = path
                .parent()
                .unwrap_or(Path::new("."))
                .join("models")
                .join(format!("{name}.yaml"));
            if !model_path.is_file() {
                return Err(CaseError::Invalid {
                    path: path.to_path_buf(),
                    key: "model".into(),
                    message: format!(
                        "model spec `{name}` not found (looked for {})",
                        model_path.display()
                    ),
                });
            }
            (Some(load_model(&model_path)?), Some(model_path))
        }
        None => (None, None),
    };
    if let Some(message) = model
        .as_ref()
        .and_then(|model| prompt_memory_problem(&spec, model))
    {
        return Err(CaseError::Invalid {
            path: path.to_path_buf(),
            key: "matrix".into(),
            message,
        });
    }
    Ok(LoadedCase {
        spec,
        path: path.to_path_buf(),
        model,
        model_path,
        resolved,
        overrides: overrides.texts(),
    })
}

fn validate(path: &Path, spec: &CaseSpec) -> Result<(), CaseError> {
    let invalid = |key: &str, message: &str| {
        Err(CaseError::Invalid {
            path: path.to_path_buf(),
            key: key.to_string(),
            message: message.to_string(),
        })
    };
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    };
    if !name_ok(&spec.name) {
        return invalid(
            "name",
            "must be non-empty and use only letters, digits, `-`, `_` and `.`",
        );
    }
    if spec.model.as_deref().is_some_and(|m| !name_ok(m)) {
        return invalid(
            "model",
            "must be a model spec file stem (letters, digits, `-`, `_`, `.`)",
        );
    }
    if spec.kinds.is_empty() {
        return invalid("kinds", "list at least one of perf, accuracy, stress, sim");
    }
    if let Some((key, message)) = kinds_problem(spec) {
        return invalid(key, &message);
    }
    if let Some((key, message)) = spec.load.problem() {
        return invalid(key, &message);
    }
    if let Some((key, message)) = endpoints_problem(spec) {
        return invalid(&key, &message);
    }
    if spec.prompts.source != super::PromptSource::Synthetic && spec.prompts.path.is_none() {
        return invalid(
            "prompts.path",
            "a dataset source needs the path of its file",
        );
    }
    if let Some((key, message)) = spec.prompts.problem() {
        return invalid(key, &message);
    }
    if let Some((key, message)) = sessions_problem(spec) {
        return invalid(key, &message);
    }
    if !(0.0..1.0).contains(&spec.targets.tolerance) {
        return invalid("targets.tolerance", "must be in [0, 1), e.g. 0.10 for 10 %");
    }
    for target in spec.destinations() {
        if let super::ServerSpec::Spawn(s) = &target.server
            && !(s.startup_timeout_s.is_finite() && s.startup_timeout_s > 0.0)
        {
            return invalid(
                "server.spawn.startup_timeout_s",
                "must be a positive number of seconds",
            );
        }
        let super::ServerSpec::Embedded(e) = &target.server else {
            continue;
        };
        let finite_non_negative = |v: f64| v.is_finite() && v >= 0.0;
        if !finite_non_negative(e.ttft_ms)
            || !finite_non_negative(e.tpot_ms)
            || !finite_non_negative(e.prefill_us_per_token)
        {
            return invalid(
                "server.embedded",
                "ttft_ms, tpot_ms and prefill_us_per_token must be finite and ≥ 0",
            );
        }
        if ![e.ttft_jitter, e.tpot_jitter]
            .iter()
            .all(|j| (0.0..=1.0).contains(j))
        {
            return invalid(
                "server.embedded",
                "ttft_jitter and tpot_jitter are coefficients of variation in [0, 1]",
            );
        }
        if e.slots == 0 || e.tokens_per_chunk == 0 {
            return invalid(
                "server.embedded",
                "slots and tokens_per_chunk must be at least 1",
            );
        }
        if let Some(problem) = e.answers.correct.problem() {
            return invalid("server.embedded.answers.correct", &problem);
        }
        if let Some(problem) = e.faults.problem() {
            return invalid("server.embedded.faults", &problem);
        }
        if let Some(Err(problem)) = e.sim.as_ref().map(|sim| sim.engine_config()) {
            return invalid("server.embedded.sim", &problem.to_string());
        }
    }
    for kind in [super::Kind::Accuracy, super::Kind::Stress] {
        if spec.kinds.contains(&kind) && spec.accuracy.is_none() {
            return invalid(
                "accuracy",
                &format!(
                    "kind `{}` needs an `accuracy` section (the task it scores)",
                    kind.as_str()
                ),
            );
        }
    }
    if let Some((key, message)) = spec.accuracy.as_ref().and_then(|a| a.problem()) {
        return invalid(&key, &message);
    }
    if spec.kinds.contains(&super::Kind::Stress)
        && let Some(accuracy) = &spec.accuracy
        && accuracy
            .first()
            .is_some_and(|a| a.task == super::TaskName::External)
    {
        return invalid(
            &format!("{}.task", accuracy.key(0)),
            "stress trials ask the first task's questions under load, and an `external` task \
             has none here: put another task first",
        );
    }
    if let Some(accuracy) = &spec.accuracy
        && let Some(index) = accuracy
            .tasks()
            .iter()
            .position(|a| a.task == super::TaskName::ToolCalls)
        && spec.api != super::Api::Chat
    {
        return invalid(
            &format!("{}.task", accuracy.key(index)),
            "`tool_calls` needs `api: chat`",
        );
    }
    if let Some((key, message)) = spec.sim.as_ref().and_then(|s| s.problem()) {
        return invalid(&key, &message);
    }
    if let Some((key, message)) = super::slo::problem(spec) {
        return invalid(&key, &message);
    }
    Ok(())
}

/// Conversations and the load mode: `prompts.sessions` runs in closed-loop mode (fixed turns
/// and think time) or in sessions mode (turns and think time may be distributions, or the turns
/// a `load.profile`); sessions mode builds synthetic conversations or replays ShareGPT ones.
fn sessions_problem(spec: &CaseSpec) -> Option<(&'static str, String)> {
    use super::LoadMode;
    let sessions = spec.prompts.sessions;
    let turns = sessions.and_then(|s| s.turns);
    match spec.load.mode {
        LoadMode::Closed => {
            let sessions = sessions?;
            let Some(turns) = turns else {
                if spec.replays_conversations() {
                    // Each replayed conversation has as many turns as the dataset's.
                    return None;
                }
                return Some((
                    "prompts.sessions",
                    "needs `turns`, the requests per conversation, such as `turns: 3`".into(),
                ));
            };
            if matches!(turns, super::TurnsSpec::LogNormal(_)) {
                return Some((
                    "prompts.sessions.turns",
                    "a distribution of turns needs `load.mode: sessions`; the closed loop takes \
                     a fixed count"
                        .into(),
                ));
            }
            if sessions.think_time.is_some_and(|t| t.is_dist()) {
                return Some((
                    "prompts.sessions.think_time",
                    "a distribution of think times needs `load.mode: sessions`; the closed loop \
                     takes a fixed span"
                        .into(),
                ));
            }
            None
        }
        LoadMode::Sessions => {
            let replay = spec.replays_conversations();
            match (spec.load.profile, turns) {
                (Some(_), _) if replay => {
                    return Some((
                        "load.profile",
                        "replayed ShareGPT conversations have their own turns: drop `load.profile` \
                         (`prompts.sessions.turns: N` caps them)"
                            .into(),
                    ));
                }
                (None, None) if replay => {}
                (Some(_), Some(_)) => {
                    return Some((
                        "load.profile",
                        "give either `load.profile` or `prompts.sessions.turns`, not both".into(),
                    ));
                }
                (None, None) => {
                    return Some((
                        "load.profile",
                        "sessions mode needs the turns per session: `load.profile` (one_shot, \
                         short, long) or `prompts.sessions.turns`"
                            .into(),
                    ));
                }
                _ => {}
            }
            if spec.prompts.source == super::PromptSource::Jsonl {
                return Some((
                    "prompts.source",
                    "sessions are built from synthetic prompts (`source: synthetic`) or replayed \
                     from ShareGPT conversations (`source: sharegpt`)"
                        .into(),
                ));
            }
            if spec.prompts.prefix_tokens.is_some() {
                return Some((
                    "prompts.prefix_tokens",
                    "cannot be combined with sessions (a session's history is its own shared \
                     prefix)"
                        .into(),
                ));
            }
            None
        }
        mode => sessions.map(|_| {
            (
                "prompts.sessions",
                format!(
                    "conversations run in closed-loop mode (`load.mode: closed`) or sessions \
                     mode (`load.mode: sessions`), not {}",
                    mode.as_str()
                ),
            )
        }),
    }
}

/// Whether the largest ISL times the largest prompt pool a trial of this case may hold is over
/// [`super::limits::MAX_PROMPT_TOKENS`]: an upper estimate (the largest ISL and the largest
/// pool may belong to different combinations), made before any prompt is built.
fn prompt_memory_problem(spec: &CaseSpec, model: &ModelSpec) -> Option<String> {
    let matrix = spec.matrix.as_ref()?;
    let context = matrix.max_context.unwrap_or(model.max_context);
    // The matrix fits every ISL into the context, so neither exceeds it.
    let isl = matrix
        .isl
        .iter()
        .flatten()
        .copied()
        .max()
        .map_or(context, |i| i.min(context));
    let widest = || {
        let references = model.reference.iter().map(|r| r.prompts.max(r.concurrency));
        matrix
            .concurrency
            .iter()
            .flatten()
            .copied()
            .chain(references)
            .chain([model.max_concurrency])
            .max()
            .unwrap_or(1)
    };
    let pool: u64 = match (spec.load.requests, matrix.prompts) {
        (Some(requests), _) => requests.into(),
        (None, super::PromptsSpec::Fixed(n)) => n.into(),
        (None, super::PromptsSpec::MatchConcurrency) => {
            u64::from(matrix.rounds.unwrap_or(1)) * u64::from(widest())
        }
    };
    let requests = super::limits::MAX_REQUESTS;
    if pool > u64::from(requests) {
        return Some(format!(
            "`rounds` × concurrency is up to {pool} prompts, more than the cap of {requests} requests"
        ));
    }
    let tokens = u64::from(isl) * pool;
    let cap = super::limits::MAX_PROMPT_TOKENS;
    (tokens > cap).then(|| {
        format!(
            "prompts of up to {isl} tokens for a pool of up to {pool} prompts is {tokens} prompt \
             tokens, more than the cap of {cap}: lower `max_context`, the ISLs or the number of \
             prompts"
        )
    })
}

/// A kind without the section it needs: `perf`, `accuracy` and `stress` run the `matrix`
/// against a server for the `model`; `sim` runs the `sim` study.
fn kinds_problem(spec: &CaseSpec) -> Option<(&'static str, String)> {
    if let Some(kind) = spec.kinds.iter().find(|k| k.uses_server()) {
        let needs = |what: &str| format!("kind `{}` needs {what}", kind.as_str());
        if spec.model.is_none() {
            return Some(("model", needs("a `model` (a model spec in `models/`)")));
        }
        if spec.matrix.is_none() {
            return Some(("matrix", needs("a `matrix` (the combinations it runs)")));
        }
    }
    if spec.kinds.contains(&super::Kind::Sim) && spec.sim.is_none() {
        return Some((
            "sim",
            "kind `sim` needs a `sim` section (the study it runs, such as `sim: { preset: small }`)"
                .into(),
        ));
    }
    None
}

fn endpoints_problem(spec: &CaseSpec) -> Option<(String, String)> {
    if spec.server.is_some() && !spec.endpoints.is_empty() {
        return Some((
            "endpoints".into(),
            "give either `server` or `endpoints`, not both".into(),
        ));
    }
    let mut names = std::collections::BTreeSet::new();
    for (i, endpoint) in spec.endpoints.iter().enumerate() {
        let key = format!("endpoints[{i}]");
        if !(endpoint.weight.is_finite() && endpoint.weight > 0.0) {
            return Some((format!("{key}.weight"), "must be a positive number".into()));
        }
        if !names.insert(endpoint.name.as_str()) || endpoint.name.is_empty() {
            return Some((
                format!("{key}.name"),
                "names must be non-empty and unique".into(),
            ));
        }
    }
    if spec.contention && spec.endpoints.len() < 2 {
        return Some((
            "contention".into(),
            "needs at least two `endpoints` (each is also measured alone, then compared with \
             the trial that spreads the load over all of them)"
                .into(),
        ));
    }
    None
}

/// A case file and what loading it gave.
pub type CaseFile = (PathBuf, Result<LoadedCase, CaseError>);

/// Every `*.yaml` case directly in `dir` (not `models/`), sorted by path, each loaded
/// independently so one broken case does not hide the others. An entry named like a case
/// that is not a readable regular file (a directory, a FIFO, a symbolic-link loop) is not
/// skipped silently: it is listed with the error saying what it is.
pub fn discover(dir: &Path) -> Result<Vec<CaseFile>, CaseError> {
    discover_with(dir, &Overrides::default())
}

/// [`discover`] with `overrides` applied to every case.
pub fn discover_with(dir: &Path, overrides: &Overrides) -> Result<Vec<CaseFile>, CaseError> {
    let entries = std::fs::read_dir(dir).map_err(|source| CaseError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    paths.sort();
    Ok(paths
        .into_iter()
        .map(|p| {
            let loaded = load_case_with(&p, overrides);
            (p, loaded)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn err(text: &str) -> String {
        parse_yaml::<CaseSpec>(Path::new("cases/x.yaml"), text)
            .expect_err("should fail")
            .to_string()
    }

    const GOOD: &str = "name: x\nmodel: m\nkinds: [perf]\nmatrix:\n  mode: single\n";

    #[test]
    fn a_good_case_parses() {
        let spec: CaseSpec = parse_yaml(Path::new("x.yaml"), GOOD).expect("parses");
        assert_eq!(spec.name, "x");
    }

    #[rstest]
    #[case::unknown_key(
        "name: x\nmodel: m\nkinds: [perf]\nmatrix:\n  mode: custom\n  concurrncy: [1]\n",
        "cases/x.yaml:6:3: key `matrix.concurrncy`: unknown field `concurrncy`",
        "did you mean `concurrency`?"
    )]
    #[case::bad_variant(
        "name: x\nmodel: m\nkinds: [perf]\nmatrix:\n  mode: multple\n",
        "cases/x.yaml:5:9: key `matrix.mode`: unknown variant `multple`",
        "did you mean `multiple`?"
    )]
    #[case::bad_number(
        "name: x\nmodel: m\nkinds: [perf]\nmatrix:\n  mode: custom\n  isl: [1, two]\n",
        "cases/x.yaml:6:12: key `matrix.isl[1]`",
        "invalid u64"
    )]
    #[case::bad_slo(
        "name: x\nmodel: m\nkinds: [perf]\nmatrix: {mode: single}\nslo:\n  - ttft_ms.p59 < 3\n",
        "cases/x.yaml:6:5: key `slo[0]`: unknown metric `ttft_ms.p59`",
        "did you mean `ttft_ms.p95`?"
    )]
    #[case::top_level_typo(
        "name: x\nmodel: m\nkinds: [perf]\nmatrix: {mode: single}\ntarget: {tier: target}\n",
        "cases/x.yaml:5:1: key `target`: unknown field `target`",
        "did you mean `targets`?"
    )]
    #[case::missing_field(
        "name: x\nmodel: m\nmatrix: {mode: single}\n",
        "cases/x.yaml:3:1: key `kinds`: missing field `kinds`",
        "^ missing field"
    )]
    #[case::prefix_typo(
        "name: x\nmodel: m\nkinds: [perf]\nmatrix: {mode: single}\nprompts:\n  prefix_token: 8\n",
        "cases/x.yaml:6:3: key `prompts.prefix_token`: unknown field `prefix_token`",
        "did you mean `prefix_tokens`?"
    )]
    #[case::dist_typo(
        "name: x\nmodel: m\nkinds: [perf]\nmatrix: {mode: single}\nprompts:\n  isl_dist: { dist: unifrom, min: 1, max: 8 }\n",
        "cases/x.yaml:6:",
        "unknown variant `unifrom`"
    )]
    #[case::dist_huge(
        "name: x\nmodel: m\nkinds: [perf]\nmatrix: {mode: single}\nprompts:\n  osl_dist: { dist: uniform, min: 1, max: 99999999999 }\n",
        "cases/x.yaml:6:",
        "more than the cap of 16777216 tokens"
    )]
    #[case::sessions_typo(
        "name: x\nmodel: m\nkinds: [perf]\nmatrix: {mode: single}\nprompts:\n  sessions: { turns: 3, think: 1s }\n",
        "cases/x.yaml:6:",
        "unknown field `think`"
    )]
    #[case::sessions_bad_think_time(
        "name: x\nmodel: m\nkinds: [perf]\nmatrix: {mode: single}\nprompts:\n  sessions: { turns: 3, think_time: soon }\n",
        "cases/x.yaml:6:",
        "think_time"
    )]
    #[case::dist_unknown_key(
        "name: x\nmodel: m\nkinds: [perf]\nmatrix: {mode: single}\nprompts:\n  isl_dist: { dist: normal, mean: 8, sd: 1, min: 1, max: 8 }\n",
        "cases/x.yaml:6:",
        "unknown field `sd`"
    )]
    #[case::sim_typo(
        "name: x\nkinds: [sim]\nsim:\n  presett: full\n",
        "cases/x.yaml:4:3: key `sim.presett`: unknown field `presett`",
        "did you mean `preset`?"
    )]
    #[case::sim_bad_preset(
        "name: x\nkinds: [sim]\nsim: { preset: smal }\n",
        "cases/x.yaml:3:16: key `sim.preset`: unknown variant `smal`",
        "did you mean `small`?"
    )]
    #[case::sim_bad_count(
        "name: x\nkinds: [sim]\nsim:\n  replica_counts: [1, -2]\n",
        "cases/x.yaml:4:23: key `sim.replica_counts[1]`: invalid u64",
        "^ invalid u64"
    )]
    #[case::syntax("name: [x\n", "cases/x.yaml:", "x.yaml")]
    fn yaml_errors_name_file_line_column_and_key(
        #[case] text: &str,
        #[case] head: &str,
        #[case] tail: &str,
    ) {
        let message = err(text);
        assert!(message.starts_with(head), "{message}");
        assert!(message.contains(tail), "{message}");
    }

    #[test]
    fn semantic_errors_name_the_key() {
        let tmp = case_dir();
        let case = tmp.path().join("c.yaml");
        std::fs::write(
            &case,
            "name: c\nmodel: nope\nkinds: [perf]\nmatrix: {mode: single}\n",
        )
        .expect("write");
        let message = load_case(&case).expect_err("missing model").to_string();
        assert!(
            message.contains("key `model`: model spec `nope` not found"),
            "{message}"
        );
        std::fs::write(
            &case,
            "name: c\nmodel: m\nkinds: []\nmatrix: {mode: single}\n",
        )
        .expect("write");
        let message = load_case(&case).expect_err("no kinds").to_string();
        assert!(message.contains("key `kinds`"), "{message}");
    }

    /// A folder of its own (with an empty `models/`) for each case of a table: they run in
    /// parallel.
    fn case_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temporary folder");
        std::fs::create_dir_all(dir.path().join("models")).expect("dir");
        dir
    }

    #[rstest]
    #[case::sim_without_a_study(
        "kinds: [sim]\n",
        "c.yaml: key `sim`: kind `sim` needs a `sim` section"
    )]
    #[case::perf_without_a_matrix(
        "kinds: [sim, perf]\nmodel: m\nsim: {}\n",
        "c.yaml: key `matrix`: kind `perf` needs a `matrix`"
    )]
    #[case::load_kind_without_a_model(
        "kinds: [stress]\nmatrix: {mode: single}\n",
        "c.yaml: key `model`: kind `stress` needs a `model`"
    )]
    #[case::sim_counts_out_of_order(
        "kinds: [sim]\nsim: { replica_counts: [4, 2] }\n",
        "c.yaml: key `sim.replica_counts[1]`: 2 is not greater than the count before it (4)"
    )]
    fn a_kind_without_its_section_names_the_key(#[case] rest: &str, #[case] wanted: &str) {
        let tmp = case_dir();
        let dir = tmp.path();
        std::fs::write(dir.join("models/m.yaml"), "name: m\n").expect("model");
        let case = dir.join("c.yaml");
        std::fs::write(&case, format!("name: c\n{rest}")).expect("write");
        let message = load_case(&case).expect_err("invalid").to_string();
        assert!(message.contains(wanted), "{message}");
    }

    #[test]
    fn a_sim_case_needs_no_model_or_matrix() {
        let temp = tempfile::tempdir().expect("a temporary folder");
        let dir = temp.path().to_path_buf();
        let case = dir.join("c.yaml");
        std::fs::write(&case, "name: c\nkinds: [sim]\nsim: { preset: small }\n").expect("write");
        let loaded = load_case(&case).expect("loads");
        assert!(loaded.model.is_none() && loaded.spec.matrix.is_none());
        assert_eq!(
            loaded.spec.sim.map(|s| s.preset),
            Some(super::super::StudyPreset::Small)
        );
    }

    #[rstest]
    #[case::load_kind_without_a_task(
        "kinds: [stress]\n",
        "key `accuracy`: kind `stress` needs an `accuracy` section"
    )]
    #[case::tolerance_in_a_hypothesis_test(
        "kinds: [accuracy]\naccuracy:\n  task: synthetic_arithmetic\n  threshold: { kind: hypothesis_test, expected_value: 90%, tolerance: 2% }\n",
        "key `accuracy.threshold.tolerance`"
    )]
    #[case::an_unknown_simulator_profile(
        "kinds: [perf]\nserver:\n  embedded: { sim: { hardware: tpu } }\n",
        "key `server.embedded.sim`: unknown hardware profile `tpu`; known: h100-sxm"
    )]
    #[case::a_jitter_above_one(
        "kinds: [perf]\nserver:\n  embedded: { ttft_jitter: 1.5 }\n",
        "key `server.embedded`: ttft_jitter and tpot_jitter are coefficients of variation"
    )]
    #[case::groups_without_a_prefix(
        "kinds: [perf]\nprompts: { prefix_groups: 4 }\n",
        "key `prompts.prefix_groups`: needs `prefix_tokens`"
    )]
    #[case::no_prefix_groups(
        "kinds: [perf]\nprompts: { prefix_tokens: 8, prefix_groups: 0 }\n",
        "key `prompts.prefix_groups`: must be between 1 and 4096"
    )]
    #[case::a_prefix_on_a_dataset(
        "kinds: [perf]\nprompts: { source: jsonl, path: p.jsonl, prefix_tokens: 8 }\n",
        "key `prompts.prefix_tokens`: shared prefixes are for synthetic prompts"
    )]
    #[case::a_dist_with_min_above_max(
        "kinds: [perf]\nprompts: { isl_dist: { dist: uniform, min: 9, max: 8 } }\n",
        "key `prompts.isl_dist`: `min` (9) is more than `max` (8)"
    )]
    #[case::a_dist_mean_outside_its_bounds(
        "kinds: [perf]\nprompts: { osl_dist: { dist: lognormal, mean: 900, std: 9, min: 1, max: 8 } }\n",
        "key `prompts.osl_dist`: `mean` must be a number within [min, max]"
    )]
    #[case::a_dist_on_a_dataset(
        "kinds: [perf]\nprompts: { source: jsonl, path: p.jsonl, osl_dist: { dist: uniform, min: 1, max: 8 } }\n",
        "key `prompts.osl_dist`: length distributions are for synthetic prompts"
    )]
    #[case::a_dist_with_a_prefix(
        "kinds: [perf]\nprompts: { prefix_tokens: 8, isl_dist: { dist: uniform, min: 10, max: 20 } }\n",
        "key `prompts.isl_dist`: cannot be combined with `prefix_tokens`"
    )]
    #[case::sessions_without_turns(
        "kinds: [perf]\nprompts: { sessions: { think_time: 1s } }\n",
        "key `prompts.sessions`: needs `turns`"
    )]
    #[case::sessions_with_no_turns(
        "kinds: [perf]\nprompts: { sessions: { turns: 0 } }\n",
        "key `prompts.sessions.turns`: must be between 1 and 256"
    )]
    #[case::sessions_with_too_many_turns(
        "kinds: [perf]\nprompts: { sessions: { turns: 257 } }\n",
        "key `prompts.sessions.turns`: must be between 1 and 256"
    )]
    #[case::sessions_with_empty_messages(
        "kinds: [perf]\nprompts: { sessions: { turns: 2, user_tokens: 0 } }\n",
        "key `prompts.sessions.user_tokens`: must be at least 1"
    )]
    #[case::sessions_on_a_dataset(
        "kinds: [perf]\nprompts: { source: jsonl, path: p.jsonl, sessions: { turns: 2 } }\n",
        "key `prompts.sessions`: conversations are built from synthetic prompts (`source: synthetic`) or replayed"
    )]
    #[case::replay_with_user_tokens(
        "kinds: [perf]\nprompts: { source: sharegpt, path: p.json, sessions: { user_tokens: 8 } }\n",
        "key `prompts.sessions.user_tokens`: a replayed ShareGPT conversation's messages are the dataset's own"
    )]
    #[case::replay_with_a_profile(
        "kinds: [perf]\nprompts: { source: sharegpt, path: p.json }\nload: { mode: sessions, rate: 2, duration: 5s, profile: short }\n",
        "key `load.profile`: replayed ShareGPT conversations have their own turns"
    )]
    #[case::sessions_with_a_prefix(
        "kinds: [perf]\nprompts: { prefix_tokens: 8, sessions: { turns: 2 } }\n",
        "key `prompts.sessions`: cannot be combined with `prefix_tokens`"
    )]
    #[case::sessions_with_an_isl_dist(
        "kinds: [perf]\nprompts: { isl_dist: { dist: uniform, min: 1, max: 8 }, sessions: { turns: 2, user_tokens: 4 } }\n",
        "key `prompts.sessions.user_tokens`: cannot be combined with `isl_dist`"
    )]
    #[case::contention_without_endpoints(
        "kinds: [perf]\ncontention: true\n",
        "key `contention`: needs at least two `endpoints`"
    )]
    #[case::sessions_in_open_loop(
        "kinds: [perf]\nprompts: { sessions: { turns: 2 } }\nload: { mode: open, rate: [1] }\n",
        "key `prompts.sessions`: conversations run in closed-loop mode (`load.mode: closed`) or sessions mode"
    )]
    #[case::sessions_without_turns_or_profile(
        "kinds: [perf]\nload: { mode: sessions, rate: 2, duration: 5s }\n",
        "key `load.profile`: sessions mode needs the turns per session"
    )]
    #[case::sessions_with_turns_and_profile(
        "kinds: [perf]\nprompts: { sessions: { turns: 3 } }\nload: { mode: sessions, rate: 2, duration: 5s, profile: long }\n",
        "key `load.profile`: give either"
    )]
    #[case::sessions_with_a_dataset(
        "kinds: [perf]\nprompts: { source: jsonl, path: p.jsonl }\nload: { mode: sessions, rate: 2, duration: 5s, profile: short }\n",
        "key `prompts.source`: sessions are built from synthetic prompts"
    )]
    #[case::a_turn_distribution_in_the_closed_loop(
        "kinds: [perf]\nprompts: { sessions: { turns: { dist: lognormal, mu: 1, sigma: 0.5 } } }\n",
        "key `prompts.sessions.turns`: a distribution of turns needs `load.mode: sessions`"
    )]
    #[case::a_think_distribution_in_the_closed_loop(
        "kinds: [perf]\nprompts: { sessions: { turns: 2, think_time: { dist: lognormal, median: 1s, sigma: 0.5 } } }\n",
        "key `prompts.sessions.think_time`: a distribution of think times needs"
    )]
    #[case::turn_bounds_upside_down(
        "kinds: [perf]\nprompts: { sessions: { turns: { dist: lognormal, mu: 1, sigma: 0.5, min: 9, max: 3 } } }\nload: { mode: sessions, rate: 2, duration: 5s }\n",
        "key `prompts.sessions.turns`: `min` (9) is more than `max` (3)"
    )]
    #[case::a_chance_above_one(
        "kinds: [perf]\nserver:\n  embedded: { answers: { correct: { 4: 1.5 } } }\n",
        "key `server.embedded.answers.correct`: 1.5 is not a chance"
    )]
    #[case::tool_calls_on_completions(
        "kinds: [accuracy]\napi: completions\naccuracy: { task: tool_calls }\n",
        "key `accuracy.task`: `tool_calls` needs `api: chat`"
    )]
    #[case::tool_calls_with_a_bad_choice(
        "kinds: [accuracy]\napi: chat\naccuracy: { task: tool_calls, tool_choice: sometimes }\n",
        "key `accuracy.tool_choice`: one of `auto`"
    )]
    fn server_and_accuracy_mistakes_name_the_key(#[case] rest: &str, #[case] wanted: &str) {
        let tmp = case_dir();
        let dir = tmp.path();
        std::fs::write(dir.join("models/m.yaml"), "name: m\n").expect("model");
        let case = dir.join("c.yaml");
        std::fs::write(
            &case,
            format!("name: c\nmodel: m\nmatrix: {{mode: single}}\n{rest}"),
        )
        .expect("write");
        let message = load_case(&case).expect_err("invalid").to_string();
        assert!(message.contains(wanted), "{message}");
    }

    /// Property (2,000 seeded cases): a good case with values swapped for hostile ones
    /// (non-finite, negative, huge, of the wrong type) or bytes cut out loads or fails with
    /// an error naming the file; it never panics.
    #[test]
    fn hostile_values_anywhere_fail_with_an_error_never_a_panic() {
        use rand::{Rng, SeedableRng};
        const GOOD: &str = "name: c\nmodel: m\nkinds: [perf, stress]\nserver:\n  embedded: { ttft_ms: 5, tpot_ms: 1, slots: 2, faults: { stall_rate: 0.1, stall_ms: 10, max_queue: 4 } }\nmatrix: { mode: custom, isl: [16], osl: [8], concurrency: [1, 2], prompts: { fixed: 4 } }\nload: { mode: closed, timeout_s: 30, requests: 8, warmup: 2, duration: 5s, error_budget: 1% }\naccuracy: { task: synthetic_arithmetic, concurrency: 2 }\n";
        const HOSTILE: [&str; 14] = [
            ".inf",
            "-.inf",
            ".nan",
            "-1",
            "1e300",
            "4294967295",
            "18446744073709551616",
            "400000000000y",
            "0",
            "~",
            "[]",
            "{}",
            "\"x\"",
            "99999999999999999999999h",
        ];
        let tmp = case_dir();
        let dir = tmp.path();
        std::fs::write(dir.join("models/m.yaml"), "name: m\nmax_context: 256\n").expect("model");
        let case = dir.join("c.yaml");
        let numbers: Vec<(usize, usize)> = {
            let bytes = GOOD.as_bytes();
            let mut spans = Vec::new();
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric()) {
                    let start = i;
                    while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.')
                    {
                        i += 1;
                    }
                    spans.push((start, i));
                } else {
                    i += 1;
                }
            }
            spans
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(19);
        let mut failed = 0;
        for _ in 0..2_000 {
            let mut text = GOOD.to_string();
            let (start, end) = numbers[rng.random_range(0..numbers.len())];
            text.replace_range(start..end, HOSTILE[rng.random_range(0..HOSTILE.len())]);
            if rng.random_bool(0.2) {
                let at = rng.random_range(0..text.len());
                if text.is_char_boundary(at) && text.is_char_boundary(at + 1) {
                    text.remove(at);
                }
            }
            std::fs::write(&case, &text).expect("write");
            if let Err(e) = load_case(&case) {
                failed += 1;
                assert!(e.to_string().contains("c.yaml"), "{e}");
            }
        }
        assert!(failed > 1_000, "most hostile values are refused ({failed})");
    }
}
