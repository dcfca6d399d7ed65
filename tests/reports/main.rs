//! One test binary for the run's reports: the gathered summary (`summary.md`) and
//! `report.html` (its browser tests are ignored unless asked for: `.ci/run` runs them).

#[path = "../support/mod.rs"]
mod support;

mod html_report;
mod report_summary;
