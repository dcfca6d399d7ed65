//! Reading YAML into typed values, with errors that name file, line, column and key, and
//! suggest the closest valid name for a typo.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// A position in a YAML file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// 1-based line.
    pub line: u64,
    /// 1-based column.
    pub column: u64,
}

/// A YAML syntax or schema error with its place in the file.
#[derive(Debug)]
pub struct YamlError {
    /// The file.
    pub path: PathBuf,
    /// Where in the file, when known.
    pub position: Option<Position>,
    /// Dotted path of the offending key, such as `matrix.concurrency[2]`.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
    /// The closest valid key or value, for typos.
    pub suggestion: Option<String>,
    /// The offending lines with a caret, when available.
    pub snippet: String,
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(Position { line, column }) = &self.position {
            write!(f, ":{line}:{column}")?;
        }
        write!(f, ": ")?;
        if let Some(key) = &self.key {
            write!(f, "key `{key}`: ")?;
        }
        write!(f, "{}", self.message)?;
        if let Some(suggestion) = &self.suggestion {
            write!(f, " (did you mean `{suggestion}`?)")?;
        }
        if !self.snippet.is_empty() {
            write!(f, "\n{}", self.snippet)?;
        }
        Ok(())
    }
}

impl std::error::Error for YamlError {}

/// Parses YAML text into `T`, turning any failure into a [`YamlError`] for `path` (boxed: it
/// is large, and the success path should not pay for it).
pub fn parse_yaml<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, Box<YamlError>> {
    let mut key_path: Option<String> = None;
    let result = serde_saphyr::with_deserializer_from_str(text, |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            if path != "." && !path.is_empty() {
                key_path = Some(path);
            }
            e.into_inner()
        })
    });
    result.map_err(|e| yaml_error(path, key_path, &e))
}

fn yaml_error(path: &Path, key: Option<String>, error: &serde_saphyr::Error) -> Box<YamlError> {
    let position = error.location().filter(|l| l.line() > 0).map(|l| Position {
        line: l.line(),
        column: l.column(),
    });
    let bare = error.without_snippet().to_string();
    let message = strip_location_prefix(&bare).to_string();
    let key = key_of_missing_field(&message, key);
    let rendered = error.to_string();
    let file = path.display().to_string();
    let snippet: Vec<String> = rendered
        .lines()
        .skip(1)
        .map(|line| line.replace("<input>", &file))
        .collect();
    Box::new(YamlError {
        path: path.to_path_buf(),
        position,
        suggestion: suggestion_for(&message),
        key,
        message,
        snippet: snippet.join("\n"),
    })
}

/// serde's "missing field `f`" names no key path of its own: the key is the missing field
/// under the mapping being read.
fn key_of_missing_field(message: &str, key: Option<String>) -> Option<String> {
    let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    else {
        return key;
    };
    Some(match key {
        Some(parent) => format!("{parent}.{field}"),
        None => field.to_string(),
    })
}

/// serde-saphyr prefixes messages with `error: line L column C: `; the position is reported
/// separately, so drop it.
fn strip_location_prefix(message: &str) -> &str {
    let message = message.lines().next().unwrap_or(message);
    let message = message.strip_prefix("error: ").unwrap_or(message);
    let message = match message.split_once(": ") {
        Some((head, rest)) if head.starts_with("line ") && head.contains(" column ") => rest,
        _ => message,
    };
    match message.rsplit_once(" at line ") {
        Some((head, tail)) if tail.contains(", column ") => head,
        _ => message,
    }
}

/// For serde's "unknown field `x`, expected one of `a`, `b`" (and the same for variants), the
/// expected name closest to the one given.
fn suggestion_for(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field ")
        .or_else(|| message.strip_prefix("unknown variant "))?;
    let (given, expected) = rest.split_once(", expected ")?;
    let given = given.trim_matches('`');
    let expected = expected.strip_prefix("one of ").unwrap_or(expected);
    let candidates: Vec<String> = expected
        .split(", ")
        .map(|s| s.trim().trim_matches('`').to_string())
        .filter(|s| !s.is_empty())
        .collect();
    closest(given, &candidates)
}

/// The known name closest to `name`, if any is close enough to be a likely typo.
pub fn closest<'a>(name: &str, known: impl IntoIterator<Item = &'a String>) -> Option<String> {
    known
        .into_iter()
        .map(|k| (strsim::jaro_winkler(name, k), k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k.clone())
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Settings {
        name: String,
        inner: Inner,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        concurrency: Vec<u32>,
    }

    fn err(text: &str) -> String {
        parse_yaml::<Settings>(Path::new("s.yaml"), text)
            .expect_err("should fail")
            .to_string()
    }

    #[test]
    fn good_yaml_parses() {
        let s: Settings = parse_yaml(
            Path::new("s.yaml"),
            "name: x\ninner:\n  concurrency: [1, 2]\n",
        )
        .unwrap();
        assert_eq!((s.name.as_str(), s.inner.concurrency.len()), ("x", 2));
    }

    #[test]
    fn errors_name_file_line_column_key_and_suggest() {
        for (text, head, tail) in [
            (
                "name: x\ninner:\n  concurrncy: [1]\n",
                "s.yaml:3:3: key `inner.concurrncy`: unknown field `concurrncy`",
                "(did you mean `concurrency`?)",
            ),
            (
                "name: x\ninner:\n  concurrency: [1, two]\n",
                "s.yaml:3:20: key `inner.concurrency[1]`: invalid u32",
                "u32",
            ),
            (
                "name: x\n",
                "s.yaml:1:1: key `inner`: missing field `inner`",
                "^ missing field",
            ),
            ("name: [x\n", "s.yaml:", "s.yaml"),
        ] {
            let message = err(text);
            assert!(message.starts_with(head), "{message}");
            assert!(message.contains(tail), "{message}");
        }
    }

    #[test]
    fn closest_finds_likely_typos_only() {
        let known = ["ttft_ms".to_string(), "tpot_ms".to_string()];
        assert_eq!(closest("ttft_sm", &known).as_deref(), Some("ttft_ms"));
        assert_eq!(closest("zzz", &known), None);
    }
}
