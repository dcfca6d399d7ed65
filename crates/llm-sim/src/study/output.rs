//! The study's CSV files and its table.

use std::path::Path;

use super::StudyRow;
use crate::error::SimError;
use crate::table::{Align, push_table};

/// The columns of every study CSV, in order.
pub const COLUMNS: [&str; 24] = [
    "step",
    "scheduler",
    "replicas",
    "bins",
    "requests",
    "completed",
    "rejected",
    "makespan_s",
    "qps",
    "output_tok_s",
    "ttft_p50_ms",
    "ttft_p99_ms",
    "tpot_p50_ms",
    "tpot_p99_ms",
    "e2e_p50_ms",
    "e2e_p99_ms",
    "sla_violation_rate",
    "mean_batch",
    "utilisation",
    "preemptions",
    "events",
    "segments",
    "steps",
    "wall_s",
];

/// A row's fields in [`COLUMNS`] order, the wall time last.
fn fields(row: &StudyRow) -> Vec<String> {
    let s = &row.summary;
    let f3 = |v: f64| format!("{v:.3}");
    vec![
        row.step.to_string(),
        row.scheduler.as_str().to_string(),
        row.replicas.to_string(),
        row.bins.to_string(),
        row.requests.to_string(),
        s.completed.to_string(),
        s.rejected.to_string(),
        f3(s.makespan_s),
        f3(s.qps),
        f3(s.output_tok_s),
        f3(s.ttft_ms.p50),
        f3(s.ttft_ms.p99),
        f3(s.tpot_ms.p50),
        f3(s.tpot_ms.p99),
        f3(s.e2e_ms.p50),
        f3(s.e2e_ms.p99),
        format!("{:.4}", s.sla_violation_rate),
        f3(s.mean_batch),
        format!("{:.4}", s.utilisation),
        s.preemptions.to_string(),
        s.events.to_string(),
        s.segments.to_string(),
        s.steps.to_string(),
        f3(row.wall_s),
    ]
}

/// Writes rows as CSV with a header.
pub fn write_csv(path: &Path, rows: &[StudyRow]) -> Result<(), SimError> {
    let io = |e: csv::Error| SimError::Csv {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut writer = csv::Writer::from_path(path).map_err(io)?;
    writer.write_record(COLUMNS).map_err(io)?;
    for row in rows {
        writer.write_record(fields(row)).map_err(io)?;
    }
    writer.flush().map_err(|source| SimError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The rows as a table, without the wall time (so the table is the same on every run).
pub fn render(rows: &[StudyRow]) -> String {
    let header = &COLUMNS[..COLUMNS.len() - 1];
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            let mut f = fields(row);
            f.pop();
            f
        })
        .collect();
    let mut out = String::new();
    push_table(&mut out, header, &body, Align::Right);
    out
}
