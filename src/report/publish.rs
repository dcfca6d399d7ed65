//! Writing a run's reports: `summary.md` and `report.html` in the run's folder, gathered from
//! its trial folders.

use std::path::{Path, PathBuf};

use super::ReportError;
use super::analysis::Thresholds;
use super::html::{self, Extras};
use super::run::{self, Run};
use super::summary_md::{self, Detail, SUMMARY_MD};
use super::table::Numbers;

/// What [`write_run`] wrote.
#[derive(Debug, Clone)]
pub struct Written {
    /// The run the reports are of.
    pub run: Run,
    /// `summary.md`.
    pub summary: PathBuf,
    /// `report.html`.
    pub html: PathBuf,
}

/// Gathers the run `run_id` (default: the newest under `out`) and writes its `summary.md`
/// (the detailed variant) and `report.html`.
pub fn write_run(
    out: &Path,
    run_id: Option<&str>,
    thresholds: &Thresholds,
    extras: &Extras,
) -> Result<Written, ReportError> {
    let run = run::load(out, run_id)?;
    let summary = run.dir.join(SUMMARY_MD);
    let text = summary_md::render(&run, thresholds, Numbers::Measured, Detail::Full);
    std::fs::write(&summary, text).map_err(|e| ReportError::io(&summary, "write", e))?;
    let html = html::write(&run, thresholds, extras)?;
    Ok(Written { run, summary, html })
}
