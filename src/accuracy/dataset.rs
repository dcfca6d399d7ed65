//! Reading JSON Lines datasets and choosing which docs are scored.

use std::path::Path;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::de::DeserializeOwned;

use super::AccuracyError;

/// A doc with the 1-based line it was read from.
pub(crate) struct Line<T> {
    pub line: usize,
    pub doc: T,
}

/// Reads one `T` per non-blank line; a line that does not parse is an error naming the line and
/// the key. An empty file is an error too.
pub(crate) fn read_jsonl<T: DeserializeOwned>(path: &Path) -> Result<Vec<Line<T>>, AccuracyError> {
    let text = crate::case::files::read_regular_text(path, crate::case::files::MAX_DATASET_BYTES)
        .map_err(|source| AccuracyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut docs = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let mut deserializer = serde_json::Deserializer::from_str(raw);
        let doc = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
            AccuracyError::BadLine {
                path: path.to_path_buf(),
                line: i + 1,
                key: e.path().to_string(),
                message: e.inner().to_string(),
            }
        })?;
        docs.push(Line { line: i + 1, doc });
    }
    if docs.is_empty() {
        return Err(AccuracyError::EmptyDataset {
            path: path.to_path_buf(),
        });
    }
    Ok(docs)
}

/// The indices of the docs scored, ascending: the first `limit` (lm-eval's `--limit`), or with
/// `subset_seed` a seeded random `limit` of them; all when there is no limit or it is larger.
pub(crate) fn select(n_docs: usize, limit: Option<u32>, subset_seed: Option<u64>) -> Vec<usize> {
    let limit = limit.map_or(n_docs, |l| (l as usize).min(n_docs));
    match subset_seed {
        Some(seed) if limit < n_docs => {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut chosen = rand::seq::index::sample(&mut rng, n_docs, limit).into_vec();
            chosen.sort_unstable();
            chosen
        }
        _ => (0..limit).collect(),
    }
}

/// The last two components of a path, `/`-separated: a label that is the same on every machine.
pub(crate) fn label(path: &Path) -> String {
    let parts: Vec<String> = path
        .components()
        .rev()
        .take(2)
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    parts.into_iter().rev().collect::<Vec<_>>().join("/")
}

/// The file's stem, used in sample ids (`test` for `test.jsonl`).
pub(crate) fn stem(path: &Path) -> String {
    path.file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use rstest::rstest;
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Doc {
        question: String,
        n: u32,
    }

    /// `text` in a file named `name` in a new temporary folder (removed when it is dropped).
    fn temp_file(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        (dir, path)
    }

    #[test]
    fn lines_parse_and_blank_lines_are_skipped() {
        let (_dir, path) = temp_file(
            "ok.jsonl",
            "{\"question\": \"a\", \"n\": 1}\n\n{\"question\": \"b\", \"n\": 2, \"extra\": 0}\n",
        );
        let docs = read_jsonl::<Doc>(&path).expect("parses");
        let read: Vec<_> = docs.iter().map(|l| (l.line, l.doc.n)).collect();
        assert_eq!(read, [(1, 1), (3, 2)]);
    }

    #[rstest]
    #[case::bad_type(
        "bad_type.jsonl",
        "{\"question\": \"a\", \"n\": 1}\n{\"question\": \"b\", \"n\": \"x\"}\n",
        ":2: key `n`: invalid type"
    )]
    #[case::missing_key(
        "missing.jsonl",
        "{\"question\": \"a\"}\n",
        ":1: key `.`: missing field `n`"
    )]
    #[case::not_json("not_json.jsonl", "question: a\n", ":1: key `.`: expected value")]
    #[case::empty("empty.jsonl", "\n\n", ": no docs")]
    fn bad_files_name_the_line_and_key(
        #[case] name: &str,
        #[case] text: &str,
        #[case] message: &str,
    ) {
        let (_dir, path) = temp_file(name, text);
        let error = read_jsonl::<Doc>(&path)
            .err()
            .expect("an error")
            .to_string();
        assert!(error.starts_with(&path.display().to_string()), "{error}");
        assert!(error.contains(message), "{error}");
    }

    #[test]
    fn a_missing_file_names_the_path() {
        let error = read_jsonl::<Doc>(Path::new("/nonexistent/x.jsonl"))
            .err()
            .expect("an error")
            .to_string();
        assert!(
            error.starts_with("/nonexistent/x.jsonl: cannot read"),
            "{error}"
        );
    }

    #[rstest]
    #[case::all(5, None, None, vec![0, 1, 2, 3, 4])]
    #[case::first(5, Some(2), None, vec![0, 1])]
    #[case::limit_beyond(3, Some(10), None, vec![0, 1, 2])]
    #[case::subset_of_everything(3, Some(3), Some(9), vec![0, 1, 2])]
    fn selection(
        #[case] n: usize,
        #[case] limit: Option<u32>,
        #[case] seed: Option<u64>,
        #[case] expected: Vec<usize>,
    ) {
        assert_eq!(select(n, limit, seed), expected);
    }

    #[test]
    fn seeded_subsets_are_sorted_distinct_and_repeatable() {
        let a = select(1000, Some(50), Some(7));
        assert_eq!(a.len(), 50);
        assert!(a.windows(2).all(|w| w[0] < w[1]), "{a:?}");
        assert!(a.iter().all(|&i| i < 1000));
        assert_ne!(a, (0..50).collect::<Vec<_>>());
        assert_eq!(a, select(1000, Some(50), Some(7)));
        assert_ne!(a, select(1000, Some(50), Some(8)));
    }

    #[rstest]
    #[case("/a/b/gsm8k/test.jsonl", "gsm8k/test.jsonl", "test")]
    #[case("cases/../data/./mmlu.jsonl", "data/mmlu.jsonl", "mmlu")]
    #[case("mmlu.jsonl", "mmlu.jsonl", "mmlu")]
    fn labels_and_stems(#[case] path: &str, #[case] expected: &str, #[case] expected_stem: &str) {
        assert_eq!(label(Path::new(path)), expected);
        assert_eq!(stem(Path::new(path)), expected_stem);
    }
}
