//! The `external` task without processes: the command's arguments with the trial's values
//! substituted, and the score read from what it wrote (a JSON pointer or a regex). The session
//! runs the command ([`crate::case::AccuracySpec::command`]) and judges the score.

use std::path::{Path, PathBuf};

use crate::case::ExternalScore;

/// The values substituted into an external command's arguments (and its environment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Substitutions {
    /// The trial's server, such as `http://127.0.0.1:8080` (`{base_url}`; append `/v1/…`).
    pub base_url: String,
    /// The model name requests carry (`{model}`).
    pub model: String,
    /// A folder for the command's files, created before it runs (`{out_dir}`).
    pub out_dir: PathBuf,
}

impl Substitutions {
    /// `text` with `{base_url}`, `{model}` and `{out_dir}` replaced.
    pub fn apply(&self, text: &str) -> String {
        text.replace("{base_url}", &self.base_url)
            .replace("{model}", &self.model)
            .replace("{out_dir}", &self.out_dir.to_string_lossy())
    }
}

/// Where the score is read: the command's stdout, or a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The command's standard output.
    Stdout,
    /// A file (after substitution, relative to the case's folder); a folder means its newest
    /// `*.json` file, searched recursively.
    File(PathBuf),
}

impl Source {
    /// The source the score spec names.
    pub fn of(score: &ExternalScore, subs: &Substitutions, case_dir: &Path) -> Source {
        match score.json.as_deref().or(score.file.as_deref()) {
            None => Source::Stdout,
            Some(s) if s.trim() == "stdout" => Source::Stdout,
            Some(path) => Source::File(case_dir.join(subs.apply(path))),
        }
    }
}

/// The newest `*.json` file under `dir` (recursively), if any.
pub fn newest_json(dir: &Path) -> Option<PathBuf> {
    let mut newest: Option<(std::time::SystemTime, PathBuf)> = None;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
                if newest
                    .as_ref()
                    .is_none_or(|(t, p)| (modified, &path) > (*t, p))
                {
                    newest = Some((modified, path));
                }
            }
        }
    }
    newest.map(|(_, path)| path)
}

/// The score (0–100 points) `score` reads from `text`, or why there is none.
pub fn read_score(score: &ExternalScore, text: &str) -> Result<f64, String> {
    if let Some(pointer) = &score.pointer {
        let json: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let value = json
            .pointer(pointer)
            .ok_or_else(|| format!("no value at the JSON pointer `{pointer}`"))?;
        return match value {
            serde_json::Value::Number(n) => n
                .as_f64()
                .ok_or_else(|| format!("`{pointer}` is not a finite number"))
                .and_then(points),
            serde_json::Value::String(s) => parse_points(s),
            other => Err(format!("`{pointer}` is {other}, not a number")),
        };
    }
    if let Some(pattern) = &score.regex {
        let regex = regex::Regex::new(pattern).map_err(|e| e.to_string())?;
        let captured = regex
            .captures(text)
            .and_then(|c| c.get(1))
            .ok_or_else(|| format!("the regex `{pattern}` matches nothing"))?;
        return parse_points(captured.as_str());
    }
    Err("the score names neither a JSON pointer nor a regex".into())
}

/// A number as a score: up to 1 a fraction, above it points (at most 100).
fn points(value: f64) -> Result<f64, String> {
    let points = if (0.0..=1.0).contains(&value) {
        value * 100.0
    } else {
        value
    };
    if points.is_finite() && (0.0..=100.0).contains(&points) {
        Ok(points)
    } else {
        Err(format!(
            "{value} is not a score (a fraction up to 1 or points up to 100)"
        ))
    }
}

/// Text as a score: a number (as [`points`]) or a percentage such as `85%`.
fn parse_points(text: &str) -> Result<f64, String> {
    let text = text.trim();
    if let Some(percent) = text.strip_suffix('%') {
        let value: f64 = percent
            .trim()
            .parse()
            .map_err(|_| format!("`{text}` is not a number"))?;
        return if (0.0..=100.0).contains(&value) {
            Ok(value)
        } else {
            Err(format!("{text} is not a score"))
        };
    }
    text.parse::<f64>()
        .map_err(|_| format!("`{text}` is not a number"))
        .and_then(points)
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn json(pointer: &str) -> ExternalScore {
        ExternalScore {
            json: Some("stdout".into()),
            pointer: Some(pointer.into()),
            regex: None,
            file: None,
        }
    }

    fn regex(pattern: &str) -> ExternalScore {
        ExternalScore {
            json: None,
            pointer: None,
            regex: Some(pattern.into()),
            file: None,
        }
    }

    const LM_EVAL: &str = r#"{"results": {"gsm8k": {"alias": "gsm8k", "exact_match,strict-match": 0.8125, "exact_match_stderr,strict-match": 0.01}}}"#;

    #[rstest]
    #[case::lm_eval_fraction(json("/results/gsm8k/exact_match,strict-match"), LM_EVAL, Ok(81.25))]
    #[case::points(json("/score"), r#"{"score": 42.5}"#, Ok(42.5))]
    #[case::percent_text(json("/score"), r#"{"score": "85%"}"#, Ok(85.0))]
    #[case::escaped_pointer(json("/a~1b"), r#"{"a/b": 0.5}"#, Ok(50.0))]
    #[case::missing(json("/results/mmlu"), LM_EVAL, Err("no value at the JSON pointer"))]
    #[case::not_a_number(json("/results/gsm8k/alias"), LM_EVAL, Err("not a number"))]
    #[case::over_100(json("/score"), r#"{"score": 250}"#, Err("not a score"))]
    #[case::not_json(json("/score"), "score: 1", Err("not JSON"))]
    #[case::regex(regex(r"accuracy: ([0-9.]+)"), "n=5\naccuracy: 0.6\n", Ok(60.0))]
    #[case::regex_percent(regex(r"acc=(\S+)"), "acc=72.5%", Ok(72.5))]
    #[case::regex_no_match(regex(r"acc=(\S+)"), "nothing", Err("matches nothing"))]
    fn scores_are_read(
        #[case] score: ExternalScore,
        #[case] text: &str,
        #[case] wanted: Result<f64, &str>,
    ) {
        match (read_score(&score, text), wanted) {
            (Ok(got), Ok(want)) => assert!((got - want).abs() < 1e-9, "{got} vs {want}"),
            (Err(got), Err(want)) => assert!(got.contains(want), "{got}"),
            (got, want) => panic!("{got:?} vs {want:?}"),
        }
    }

    #[test]
    fn arguments_get_the_trials_values() {
        let subs = Substitutions {
            base_url: "http://127.0.0.1:9".into(),
            model: "m".into(),
            out_dir: PathBuf::from("/tmp/x"),
        };
        assert_eq!(
            subs.apply("base_url={base_url}/v1/completions,model={model} --output_path {out_dir}"),
            "base_url=http://127.0.0.1:9/v1/completions,model=m --output_path /tmp/x"
        );
        let file = ExternalScore {
            file: Some("{out_dir}/r.txt".into()),
            ..regex("(x)")
        };
        assert_eq!(
            Source::of(&file, &subs, Path::new("/cases")),
            Source::File(PathBuf::from("/tmp/x/r.txt"))
        );
        assert_eq!(
            Source::of(&regex("(x)"), &subs, Path::new("/c")),
            Source::Stdout
        );
    }

    #[test]
    fn a_folder_means_its_newest_json_file() {
        let temp = tempfile::tempdir().expect("a temporary folder");
        let dir = temp.path();
        let nested = dir.join("model");
        std::fs::create_dir_all(&nested).expect("dirs");
        std::fs::write(dir.join("notes.txt"), "x").expect("write");
        std::fs::write(nested.join("results_1.json"), "{}").expect("write");
        assert_eq!(newest_json(dir), Some(nested.join("results_1.json")));
        assert_eq!(newest_json(&dir.join("none")), None);
    }
}
