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
