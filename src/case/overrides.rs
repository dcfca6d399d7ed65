//! Overrides of case keys from the command line (`run --set KEY=VALUE`) or the environment
//! (`LLM_STRESS_SET`), applied to every case before it is validated: `matrix.concurrency=[1,8]`,
//! `load.duration=30s`.

use std::path::Path;

use serde_json::Value;

use super::load::CaseError;
use super::schema::CaseSpec;

/// Environment variable holding overrides, separated by `;` (or new lines).
pub const SET_ENV: &str = "LLM_STRESS_SET";

/// One `KEY=VALUE`: a dotted key path and a YAML value.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// The keys from the top of the case, such as `["matrix", "concurrency"]`.
    pub key: Vec<String>,
    /// The value, read as YAML (`[1, 8]`, `30s`, `0.5`, `{ fixed: 8 }`).
    pub value: Value,
    /// As given, for messages.
    pub text: String,
}

/// Overrides in the order given (a later one wins on the same key).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides(pub Vec<Override>);

/// An override that cannot be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("override `{text}`: {message}")]
pub struct OverrideError {
    /// As given.
    pub text: String,
    /// What is wrong.
    pub message: String,
}

impl Overrides {
    /// Reads `KEY=VALUE` settings.
    pub fn parse<S: AsRef<str>>(settings: &[S]) -> Result<Overrides, OverrideError> {
        settings
            .iter()
            .map(|s| s.as_ref().trim())
            .filter(|s| !s.is_empty())
            .map(parse_one)
            .collect::<Result<_, _>>()
            .map(Overrides)
    }

    /// The overrides in [`SET_ENV`], none when it is unset.
    pub fn from_env() -> Result<Overrides, OverrideError> {
        let text = std::env::var(SET_ENV).unwrap_or_default();
        Overrides::parse(&text.split([';', '\n']).collect::<Vec<_>>())
    }

    /// Both: the environment's first, then these (which win).
    pub fn after_env(self) -> Result<Overrides, OverrideError> {
        let mut all = Overrides::from_env()?;
        all.0.extend(self.0);
        Ok(all)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The case in `text` (the file at `path`, already read once without overrides, so its
    /// own mistakes were reported with line and column) with every override applied, and the
    /// resolved document as YAML.
    pub fn apply(&self, path: &Path, text: &str) -> Result<(CaseSpec, String), CaseError> {
        let invalid = |key: String, message: String| CaseError::Invalid {
            path: path.to_path_buf(),
            key,
            message,
        };
        let mut document: Value = serde_saphyr::from_str(text)
            .map_err(|e| invalid("(document)".into(), e.to_string()))?;
        for o in &self.0 {
            set(&mut document, &o.key, o.value.clone()).map_err(|message| {
                invalid(o.key.join("."), format!("--set {}: {message}", o.text))
            })?;
        }
        let resolved = serde_saphyr::to_string(&document)
            .map_err(|e| invalid("(document)".into(), e.to_string()))?;
        let spec = serde_path_to_error::deserialize(document).map_err(|e| {
            let key = e.path().to_string();
            let given: Vec<&str> = self.0.iter().map(|o| o.text.as_str()).collect();
            invalid(
                key,
                format!(
                    "{} (after --set {})",
                    e.into_inner(),
                    given.join(", --set ")
                ),
            )
        })?;
        Ok((spec, resolved))
    }

    /// The overrides as given.
    pub fn texts(&self) -> Vec<String> {
        self.0.iter().map(|o| o.text.clone()).collect()
    }
}

fn parse_one(text: &str) -> Result<Override, OverrideError> {
    let error = |message: &str| OverrideError {
        text: text.to_string(),
        message: message.to_string(),
    };
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| error("not KEY=VALUE, such as matrix.concurrency=[1,8]"))?;
    let key: Vec<String> = key
        .trim()
        .split('.')
        .map(|k| k.trim().to_string())
        .collect();
    if key.iter().any(String::is_empty) {
        return Err(error("the key has an empty part"));
    }
    let value: Value = serde_saphyr::from_str(value.trim())
        .map_err(|e| error(&format!("the value is not YAML: {e}")))?;
    Ok(Override {
        key,
        value,
        text: text.to_string(),
    })
}

/// Sets `value` at `key` inside `document`, creating maps on the way.
fn set(document: &mut Value, key: &[String], value: Value) -> Result<(), String> {
    let mut here = document;
    for (i, part) in key.iter().enumerate() {
        if here.is_null() {
            *here = Value::Object(serde_json::Map::new());
        }
        let Value::Object(map) = here else {
            return Err(format!("`{}` is not a section", key[..i].join(".")));
        };
        if i + 1 == key.len() {
            map.insert(part.clone(), value);
            return Ok(());
        }
        here = map.entry(part.clone()).or_insert(Value::Null);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    const CASE: &str = "name: c\nmodel: m\nkinds: [perf]\nmatrix:\n  mode: custom\n  isl: [16]\n  osl: [8]\n  concurrency: [2]\n";

    fn apply(settings: &[&str]) -> Result<CaseSpec, String> {
        Overrides::parse(settings)
            .map_err(|e| e.to_string())?
            .apply(Path::new("cases/c.yaml"), CASE)
            .map(|(spec, _)| spec)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn overrides_replace_lists_and_add_sections() {
        let spec = apply(&[
            "matrix.concurrency=[1, 8]",
            "load.duration=30s",
            "load.seed=7",
        ])
        .expect("a case");
        let matrix = spec.matrix.expect("matrix");
        assert_eq!(matrix.concurrency, Some(vec![1, 8]));
        assert_eq!(spec.load.seed, 7);
        assert!(spec.load.duration.is_some());
    }

    #[test]
    fn the_resolved_document_reads_back_as_the_overridden_case() {
        let overrides = Overrides::parse(&["matrix.concurrency=[1, 8]"]).expect("overrides");
        let (spec, resolved) = overrides
            .apply(Path::new("cases/c.yaml"), CASE)
            .expect("a case");
        let again: CaseSpec =
            crate::case::load::parse_yaml(Path::new("case.yaml"), &resolved).expect("resolved");
        assert_eq!(format!("{again:?}"), format!("{spec:?}"));
        assert!(resolved.contains("concurrency"), "{resolved}");
    }

    #[test]
    fn the_last_override_of_a_key_wins() {
        let spec = apply(&["matrix.isl=[32]", "matrix.isl=[64]"]).expect("a case");
        assert_eq!(spec.matrix.expect("matrix").isl, Some(vec![64]));
    }

    #[rstest]
    #[case(&["matrix.concurrency"], "not KEY=VALUE")]
    #[case(&["matrix..isl=[1]"], "empty part")]
    #[case(&["matrix.concurency=[1]"], "concurency")]
    #[case(&["matrix.isl=[x]"], "matrix.isl")]
    #[case(&["name.first=x"], "`name` is not a section")]
    fn a_bad_override_is_an_error_naming_it(#[case] settings: &[&str], #[case] needle: &str) {
        let error = apply(settings).expect_err("an error");
        assert!(error.contains(needle), "{error}");
    }
}
