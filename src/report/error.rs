//! Why a report could not be written or read. Every variant names the file.

use std::path::{Path, PathBuf};

/// Why a report could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file or folder operation failed.
    #[error("{}: cannot {action}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What was being done (`create the folder`, `lock`, `write`, …).
        action: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A CSV record could not be written or read.
    #[error("{}: CSV: {source}", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: csv::Error,
    },
    /// JSON could not be written.
    #[error("{}: JSON: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// A file of a trial folder is missing or is not what this version writes.
    #[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The 1-based line, for files of one JSON value per line.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// The output folder does not exist.
    #[error(
        "{}: no such folder (the output folder of a run: `run --out`, LLM_STRESS_OUT, or \
         target/llm-stress)",
        path.display()
    )]
    NoFolder {
        /// The folder.
        path: PathBuf,
    },
    /// The output folder holds no run.
    #[error(
        "{}: no run found (a run folder holds KIND/CASE/COMBINATION/summary.json)",
        path.display()
    )]
    NoRun {
        /// The output folder.
        path: PathBuf,
    },
    /// The run asked for is not in the output folder.
    #[error("{}: no run `{run_id}`; runs here, newest first: {available}", path.display())]
    UnknownRun {
        /// The output folder.
        path: PathBuf,
        /// The run asked for.
        run_id: String,
        /// The runs that are there.
        available: String,
    },
    /// A plot could not be drawn.
    #[error("plot `{plot}`: {message}")]
    Plot {
        /// Which plot.
        plot: String,
        /// What went wrong.
        message: String,
    },
    /// The analysis thresholds are unusable.
    #[error("analysis thresholds: {0}")]
    Thresholds(String),
    /// The Prometheus Pushgateway refused or could not be reached.
    #[error("pushgateway {url}: {message}")]
    Push {
        /// Where the metrics were pushed.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// An existing results file has other columns than this version writes.
    #[error(
        "{}: the existing header has other columns than this version writes \
         (found `{found}`); move the file away or choose another output folder",
        path.display()
    )]
    HeaderMismatch {
        /// The file.
        path: PathBuf,
        /// The header line found in the file.
        found: String,
    },
}

impl ReportError {
    /// An I/O error on `path` while doing `action`.
    pub fn io(path: &Path, action: &'static str, source: std::io::Error) -> ReportError {
        ReportError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    }

    /// A missing or malformed file of a trial folder.
    pub fn corrupt(path: &Path, line: Option<usize>, message: impl Into<String>) -> ReportError {
        ReportError::Corrupt {
            path: path.to_path_buf(),
            line,
            message: message.into(),
        }
    }

    /// A CSV error on `path`.
    pub fn csv(path: &Path, source: csv::Error) -> ReportError {
        ReportError::Csv {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A JSON error on `path`.
    pub fn json(path: &Path, source: serde_json::Error) -> ReportError {
        ReportError::Json {
            path: path.to_path_buf(),
            source,
        }
    }
}
