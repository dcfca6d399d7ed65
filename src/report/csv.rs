//! `results.csv`: one row per trial, appended by every process of a run.
//!
//! Many processes append to the same file at once (nextest runs one process per test), so
//! [`append`] takes an exclusive lock on the file, writes the header only when the file is
//! still empty, and writes the whole row with a single `write_all` while holding the lock.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

use ::csv::{ReaderBuilder, StringRecord, Terminator, WriterBuilder};

use super::wire::TrialRecord;
use super::{ReportError, TrialReport};
use crate::case::Kind;
use crate::judge::Baseline;
use crate::metrics::Distribution;
use crate::server_metrics::Reading;
use crate::server_metrics::known;

/// The columns of `results.csv`, in order.
pub const COLUMNS: &[&str] = &[
    "run_id",
    "timestamp",
    "trial",
    "kind",
    "case",
    "model",
    "server",
    "api",
    "mode",
    "isl",
    "osl",
    "concurrency",
    "rate",
    "num_prompts",
    "adjusted",
    "requests_ok",
    "requests_failed",
    "error_rate",
    "duration_s",
    "dropped",
    "drop_rate",
    "send_rate",
    "ttft_ms_mean",
    "ttft_ms_std",
    "ttft_ms_p5",
    "ttft_ms_p25",
    "ttft_ms_p50",
    "ttft_ms_p90",
    "ttft_ms_p95",
    "ttft_ms_p99",
    "ttft_ms_cv",
    "tpot_ms_mean",
    "tpot_ms_std",
    "tpot_ms_p5",
    "tpot_ms_p25",
    "tpot_ms_p50",
    "tpot_ms_p90",
    "tpot_ms_p95",
    "tpot_ms_p99",
    "tpot_ms_cv",
    "itl_ms_mean",
    "itl_ms_std",
    "itl_ms_p5",
    "itl_ms_p25",
    "itl_ms_p50",
    "itl_ms_p90",
    "itl_ms_p95",
    "itl_ms_p99",
    "itl_ms_cv",
    "e2el_ms_mean",
    "e2el_ms_std",
    "e2el_ms_p5",
    "e2el_ms_p25",
    "e2el_ms_p50",
    "e2el_ms_p90",
    "e2el_ms_p95",
    "e2el_ms_p99",
    "e2el_ms_cv",
    "ttft_intended_ms_p50",
    "ttft_intended_ms_p99",
    "e2el_intended_ms_p50",
    "e2el_intended_ms_p99",
    "lateness_ms_p50",
    "lateness_ms_p99",
    "lateness_ms_max",
    "server_prompt_ms_mean",
    "server_prompt_ms_p50",
    "server_tpot_ms_mean",
    "server_tpot_ms_p50",
    "server_wait_ms_mean",
    "server_wait_ms_p50",
    "server_wait_ms_p99",
    "server_running_max",
    "server_waiting_max",
    "server_kv_usage_max",
    "server_prompt_tokens",
    "server_generated_tokens",
    "server_preemptions",
    "input_tok_s",
    "output_tok_s",
    "req_s",
    "tput_user",
    "goodput",
    "goodput_req_s",
    "estimated_token_counts",
    "token_count_mismatches",
    "ttft_drift",
    "decode_drift",
    "drift_flagged",
    "accuracy",
    "accuracy_threshold",
    "verdict",
    "reasons",
];

/// The distribution statistics written per latency metric, in column order.
const ROW_STATS: [&str; 9] = ["mean", "std", "p5", "p25", "p50", "p90", "p95", "p99", "cv"];

/// The open-loop metrics and the server's own timings written, with the statistics of each,
/// in column order.
const SELECTED_FIELDS: [(&str, &str); 14] = [
    ("ttft_intended_ms", "p50"),
    ("ttft_intended_ms", "p99"),
    ("e2el_intended_ms", "p50"),
    ("e2el_intended_ms", "p99"),
    ("lateness_ms", "p50"),
    ("lateness_ms", "p99"),
    ("lateness_ms", "max"),
    ("server_prompt_ms", "mean"),
    ("server_prompt_ms", "p50"),
    ("server_tpot_ms", "mean"),
    ("server_tpot_ms", "p50"),
    ("server_wait_ms", "mean"),
    ("server_wait_ms", "p50"),
    ("server_wait_ms", "p99"),
];

/// The servers' own metrics written, by label, in column order: gauges by their largest value
/// over the servers, counters by their increase added up over the servers.
const SERVER_METRIC_FIELDS: [&str; 6] = [
    known::RUNNING,
    known::WAITING,
    known::KV_USAGE,
    known::PROMPT_TOKENS,
    known::GENERATED_TOKENS,
    known::PREEMPTIONS,
];

/// One server metric's field: empty when no scraped server exposes it.
fn server_metric_field(report: &TrialRecord, label: &str) -> String {
    let readings = report
        .server_metrics
        .iter()
        .filter_map(|m| m.reading(label));
    let combined = readings.fold(None, |acc: Option<f64>, reading| {
        Some(match reading {
            Reading::Gauge { max, .. } => acc.map_or(max, |a| a.max(max)),
            Reading::Counter { increase, .. } => acc.unwrap_or(0.0) + increase,
        })
    });
    combined.map(f3).unwrap_or_default()
}

/// Separator between the failure reasons in the `reasons` column.
pub const REASON_SEPARATOR: &str = "; ";

/// A float with three decimals (milliseconds, rates, seconds).
fn f3(value: f64) -> String {
    format!("{value:.3}")
}

/// The statistics of a distribution in [`ROW_STATS`] order; empty fields when absent.
fn distribution_fields(distribution: Option<&Distribution>) -> impl Iterator<Item = String> {
    ROW_STATS.iter().map(move |stat| {
        distribution
            .and_then(|d| d.stat(stat))
            .map(f3)
            .unwrap_or_default()
    })
}

/// The fields of one trial's row, in [`COLUMNS`] order. Absent values (a distribution with no
/// samples, no accuracy phase, no adjustment) are empty fields.
pub fn row(report: &TrialReport) -> Vec<String> {
    let report = TrialRecord::from(report.clone());
    let s = &report.summary;
    let mut fields = vec![
        report.run_id.clone(),
        report.timestamp.clone(),
        report.trial.clone(),
        report.kind.as_str().to_string(),
        report.case.clone(),
        report.model.clone(),
        report.server.as_str().to_string(),
        report.api.clone(),
        report.mode.clone(),
        report.isl.to_string(),
        report.osl.to_string(),
        report.concurrency.to_string(),
        report.rate.map(|r| r.to_string()).unwrap_or_default(),
        report.num_prompts.to_string(),
        report.adjusted.clone().unwrap_or_default(),
        s.requests_ok.to_string(),
        s.requests_failed.to_string(),
        format!("{:.4}", s.error_rate),
        f3(s.duration_s),
        s.dropped.to_string(),
        format!("{:.4}", s.drop_rate),
        f3(s.send_rate),
    ];
    for distribution in [&s.ttft_ms, &s.tpot_ms, &s.itl_ms, &s.e2el_ms] {
        fields.extend(distribution_fields(distribution.as_ref()));
    }
    fields.extend(SELECTED_FIELDS.iter().map(|(metric, stat)| {
        s.distribution(metric)
            .and_then(|d| d.stat(stat))
            .map(f3)
            .unwrap_or_default()
    }));
    fields.extend(
        SERVER_METRIC_FIELDS
            .iter()
            .map(|label| server_metric_field(&report, label)),
    );
    let drift = |value: fn(&crate::metrics::Drift) -> String| {
        s.drift.as_ref().map(value).unwrap_or_default()
    };
    fields.extend([
        f3(s.input_tok_s),
        f3(s.output_tok_s),
        f3(s.req_s),
        f3(s.tput_user),
        s.goodput.map(|g| format!("{g:.4}")).unwrap_or_default(),
        s.goodput_req_s.map(f3).unwrap_or_default(),
        s.estimated_token_counts.to_string(),
        s.token_count_mismatches.to_string(),
        drift(|d| format!("{:.4}", d.ttft_change)),
        drift(|d| format!("{:.4}", d.decode_change)),
        drift(|d| d.flagged.to_string()),
        report.accuracy.map(f3).unwrap_or_default(),
        report.accuracy_threshold.map(f3).unwrap_or_default(),
        report.verdict.status.as_str().to_string(),
        report.verdict.failure_reasons().join(REASON_SEPARATOR),
    ]);
    debug_assert_eq!(fields.len(), COLUMNS.len());
    fields
}

/// The header line as [`append`] writes it, without the line end.
fn header_line() -> String {
    COLUMNS.join(",")
}

/// Serialises records into one buffer, quoting fields as needed, `\n`-terminated.
fn serialise<'a>(
    path: &Path,
    records: impl IntoIterator<Item = &'a [String]>,
) -> Result<Vec<u8>, ReportError> {
    let mut writer = WriterBuilder::new()
        .terminator(Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    for record in records {
        writer
            .write_record(record)
            .map_err(|e| ReportError::csv(path, e))?;
    }
    writer
        .into_inner()
        .map_err(|e| ReportError::io(path, "serialise a row", e.into_error()))
}

/// Appends the trial's row to the CSV at `path`, creating the file (with its header) and its
/// folders as needed. Safe to call from many processes and threads at once: the row is
/// written whole under an exclusive lock, and exactly one header is written.
///
/// An existing file whose header differs from [`COLUMNS`] is left alone and reported as
/// [`ReportError::HeaderMismatch`]. A file whose last line lacks its end (a writer killed
/// mid-row) gets one before the new row, so the new row is not glued to the broken one.
pub fn append(path: &Path, report: &TrialReport) -> Result<(), ReportError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|e| ReportError::io(parent, "create the folder", e))?;
    }
    let row = row(report);
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| ReportError::io(path, "open", e))?;
    file.lock().map_err(|e| ReportError::io(path, "lock", e))?;
    // Only now, under the lock, is the length meaningful: another process may have written
    // the header between our open and our lock.
    let len = file
        .metadata()
        .map_err(|e| ReportError::io(path, "read the metadata of", e))?
        .len();
    let mut buffer = Vec::new();
    if len == 0 {
        let header: Vec<String> = COLUMNS.iter().map(|c| c.to_string()).collect();
        buffer = serialise(path, [header.as_slice()])?;
    } else {
        check_header(&file, path)?;
        if !ends_with_newline(&file, len).map_err(|e| ReportError::io(path, "read", e))? {
            buffer.push(b'\n');
        }
    }
    buffer.extend(serialise(path, [row.as_slice()])?);
    // One write of the whole buffer; the file is in append mode, so it lands at the end.
    file.write_all(&buffer)
        .map_err(|e| ReportError::io(path, "write", e))?;
    file.flush()
        .map_err(|e| ReportError::io(path, "flush", e))?;
    file.unlock()
        .map_err(|e| ReportError::io(path, "unlock", e))
}

/// Checks, before anything is measured, that an existing CSV at `path` has the header this
/// version writes (a missing or empty file is fine: [`append`] writes the header): a trial
/// whose row could not be written would otherwise be measured for nothing.
pub fn check_existing(path: &Path) -> Result<(), ReportError> {
    match File::open(path) {
        Ok(file) => {
            let len = file
                .metadata()
                .map_err(|e| ReportError::io(path, "read the metadata of", e))?
                .len();
            if len == 0 {
                Ok(())
            } else {
                check_header(&file, path)
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ReportError::io(path, "open", e)),
    }
}

/// Checks that the file's first line is the header this version writes.
fn check_header(mut file: &File, path: &Path) -> Result<(), ReportError> {
    file.seek(SeekFrom::Start(0))
        .map_err(|e| ReportError::io(path, "read", e))?;
    let mut first = Vec::new();
    // The header is well under this; a longer first line is not our header anyway.
    BufReader::new(file.take(64 * 1024))
        .read_until(b'\n', &mut first)
        .map_err(|e| ReportError::io(path, "read", e))?;
    let found = String::from_utf8_lossy(&first);
    let found = found.trim_end_matches(['\n', '\r']);
    if found == header_line() {
        Ok(())
    } else {
        Err(ReportError::HeaderMismatch {
            path: path.to_path_buf(),
            found: found.chars().take(200).collect(),
        })
    }
}

/// Whether the last byte of a file of `len` bytes is a line end.
fn ends_with_newline(mut file: &File, len: u64) -> std::io::Result<bool> {
    if len == 0 {
        return Ok(true);
    }
    file.seek(SeekFrom::Start(len - 1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

/// The data rows of a results CSV (the header is checked against [`COLUMNS`] and left out).
/// Rows are returned as they are, whatever their number of fields, so a caller can see a
/// damaged row instead of an error.
pub fn read_rows(path: &Path) -> Result<Vec<StringRecord>, ReportError> {
    let mut reader = ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_path(path)
        .map_err(|e| ReportError::csv(path, e))?;
    let header = reader
        .headers()
        .map_err(|e| ReportError::csv(path, e))?
        .clone();
    if header.iter().ne(COLUMNS.iter().copied()) {
        return Err(ReportError::HeaderMismatch {
            path: path.to_path_buf(),
            found: header.iter().collect::<Vec<_>>().join(","),
        });
    }
    reader
        .records()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ReportError::csv(path, e))
}

/// The accuracy-trial scores of one run as its `results.csv` holds them: the [`Baseline`]
/// of stress trials that run in another process than their accuracy trial (nextest runs one
/// process per trial). It reads the file each time it is asked.
#[derive(Debug, Clone)]
pub struct RunCsvBaseline {
    /// The run's `results.csv`.
    pub path: std::path::PathBuf,
    /// The run whose rows count.
    pub run_id: String,
}

impl Baseline for RunCsvBaseline {
    /// The score of the last `accuracy` row of the trial named `trial` in the run; `None`
    /// when there is none or the file is unreadable.
    fn accuracy_score(&self, trial: &str) -> Option<f64> {
        let column = |name: &str| COLUMNS.iter().position(|c| *c == name);
        let (run, kind, trial_at, accuracy) = (
            column("run_id")?,
            column("kind")?,
            column("trial")?,
            column("accuracy")?,
        );
        read_rows(&self.path)
            .ok()?
            .iter()
            .rev()
            .find(|row| {
                row.get(run) == Some(self.run_id.as_str())
                    && row.get(kind) == Some(Kind::Accuracy.as_str())
                    && row.get(trial_at) == Some(trial)
            })
            .and_then(|row| row.get(accuracy)?.parse().ok())
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::judge::{Check, CheckSource, Status, Verdict};
    use crate::report::sample::{ReportBuilder, accuracy_summary, sample_report};

    fn column(name: &str) -> usize {
        COLUMNS
            .iter()
            .position(|c| *c == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    }

    fn failing_check(reason: &str) -> Check {
        Check {
            name: "ttft_ms.p95 < 10".to_string(),
            source: CheckSource::Slo,
            actual: Some(12.0),
            target: Some(10.0),
            ratio: None,
            rule: "ttft_ms.p95 < 10".to_string(),
            status: Status::Fail,
            reason: reason.to_string(),
        }
    }

    /// A CSV path in a folder that does not exist yet, inside a temporary folder removed on
    /// drop.
    fn temp_csv() -> (tempfile::TempDir, std::path::PathBuf) {
        let tmp = tempfile::tempdir().expect("temporary folder");
        let path = tmp.path().join("nested").join("results.csv");
        (tmp, path)
    }

    #[test]
    fn columns_follow_the_documented_pattern() {
        let mut expected: Vec<String> = [
            "run_id",
            "timestamp",
            "trial",
            "kind",
            "case",
            "model",
            "server",
            "api",
            "mode",
            "isl",
            "osl",
            "concurrency",
            "rate",
            "num_prompts",
            "adjusted",
            "requests_ok",
            "requests_failed",
            "error_rate",
            "duration_s",
            "dropped",
            "drop_rate",
            "send_rate",
        ]
        .map(String::from)
        .to_vec();
        for metric in ["ttft", "tpot", "itl", "e2el"] {
            for stat in ROW_STATS {
                expected.push(format!("{metric}_ms_{stat}"));
            }
        }
        for (metric, stat) in SELECTED_FIELDS {
            expected.push(format!("{metric}_{stat}"));
        }
        expected.extend(
            [
                "server_running_max",
                "server_waiting_max",
                "server_kv_usage_max",
                "server_prompt_tokens",
                "server_generated_tokens",
                "server_preemptions",
            ]
            .map(String::from),
        );
        expected.extend(
            [
                "input_tok_s",
                "output_tok_s",
                "req_s",
                "tput_user",
                "goodput",
                "goodput_req_s",
                "estimated_token_counts",
                "token_count_mismatches",
                "ttft_drift",
                "decode_drift",
                "drift_flagged",
                "accuracy",
                "accuracy_threshold",
                "verdict",
                "reasons",
            ]
            .map(String::from),
        );
        assert_eq!(
            COLUMNS,
            expected.iter().map(String::as_str).collect::<Vec<_>>()
        );
    }

    #[rstest]
    #[case::full(sample_report())]
    #[case::empty_summary(ReportBuilder::load("demo-chat", "x").build())]
    #[case::accuracy(ReportBuilder::accuracy("demo-chat", "gsm8k_n40", None).build())]
    fn a_row_has_one_field_per_column(#[case] report: TrialReport) {
        assert_eq!(row(&report).len(), COLUMNS.len());
    }

    #[rstest]
    #[case("ttft_ms_mean", "50.125")]
    #[case("ttft_ms_p99", "80.000")]
    #[case("itl_ms_mean", "")]
    #[case("itl_ms_p50", "")]
    #[case("error_rate", "0.2000")]
    #[case("duration_s", "2.500")]
    #[case("output_tok_s", "25.600")]
    #[case("adjusted", "")]
    #[case("accuracy", "")]
    #[case("accuracy_threshold", "")]
    #[case("verdict", "FAIL")]
    #[case("kind", "perf")]
    #[case("requests_failed", "1")]
    fn fields_are_formatted_with_fixed_decimals_and_absent_values_are_empty(
        #[case] name: &str,
        #[case] expected: &str,
    ) {
        let fields = row(&sample_report());
        assert_eq!(fields[column(name)], expected, "{name}");
    }

    #[rstest]
    #[case(Some(crate::matrix::Adjustment { isl: 8192, osl: 128, policy: crate::case::FitPolicy::Neutral }), Some(87.5), "8192/128 neutral", "87.500")]
    #[case(None, None, "", "")]
    fn optional_parameters_are_written_when_present(
        #[case] adjusted: Option<crate::matrix::Adjustment>,
        #[case] accuracy: Option<f64>,
        #[case] adjusted_field: &str,
        #[case] accuracy_field: &str,
    ) {
        let mut report = sample_report();
        if let Some(load) = report.load_mut() {
            load.adjusted = adjusted;
            load.accuracy = accuracy.map(|score| accuracy_summary(40, score));
        }
        let fields = row(&report);
        assert_eq!(fields[column("adjusted")], adjusted_field);
        assert_eq!(fields[column("accuracy")], accuracy_field);
    }

    #[test]
    fn reasons_are_the_failed_checks_joined() {
        let report = TrialReport {
            verdict: Verdict::from_checks(vec![failing_check("one"), failing_check("two")]),
            ..sample_report()
        };
        assert_eq!(
            row(&report)[column("reasons")],
            "ttft_ms.p95 < 10: one; ttft_ms.p95 < 10: two"
        );
    }

    #[test]
    fn a_reason_with_a_comma_quote_and_newline_is_quoted_and_reads_back_whole() {
        let reason = "slow, very \"slow\"\nsecond line";
        let report = TrialReport {
            verdict: Verdict::from_checks(vec![failing_check(reason)]),
            ..sample_report()
        };
        let (_tmp, path) = temp_csv();
        append(&path, &report).expect("append");
        append(&path, &report).expect("append");
        let text = fs::read_to_string(&path).expect("read");
        assert!(
            text.contains("\"ttft_ms.p95 < 10: slow, very \"\"slow\"\"\nsecond line\""),
            "{text}"
        );
        assert_eq!(text.matches("run_id,").count(), 1, "{text}");
        let rows = read_rows(&path).expect("read rows");
        assert_eq!(rows.len(), 2);
        for record in &rows {
            assert_eq!(record.len(), COLUMNS.len());
            assert_eq!(
                &record[column("reasons")],
                format!("ttft_ms.p95 < 10: {reason}")
            );
            assert_eq!(
                record.iter().collect::<Vec<_>>(),
                row(&report).iter().map(String::as_str).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn a_file_with_another_header_is_not_appended_to() {
        let (_tmp, path) = temp_csv();
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(&path, "run_id,something_else\n").expect("write");
        let err = append(&path, &sample_report()).expect_err("mismatch");
        assert!(matches!(err, ReportError::HeaderMismatch { .. }), "{err}");
        assert!(err.to_string().contains("results.csv"), "{err}");
        assert_eq!(
            fs::read_to_string(&path).expect("read"),
            "run_id,something_else\n"
        );
    }

    #[test]
    fn a_row_cut_short_by_a_killed_writer_does_not_swallow_the_next_row() {
        let (_tmp, path) = temp_csv();
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(&path, format!("{}\nrun,cut-sh", header_line())).expect("write");
        append(&path, &sample_report()).expect("append");
        let rows = read_rows(&path).expect("read rows");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].len(), 2);
        assert_eq!(rows[1].len(), COLUMNS.len());
    }

    #[test]
    fn the_accuracy_trial_of_the_same_run_and_case_is_found() {
        let (tmp, path) = temp_csv();
        let accuracy_trial = |run: &str, case: &str, score: f64| {
            ReportBuilder::accuracy(case, "gsm8k_n40", Some(accuracy_summary(40, score)))
                .run_id(run)
                .build()
        };
        let baseline = |run: &str| RunCsvBaseline {
            path: path.clone(),
            run_id: run.into(),
        };
        append(&path, &accuracy_trial("run-1", "other", 10.0)).expect("append");
        append(&path, &accuracy_trial("run-0", "demo-chat", 20.0)).expect("append");
        append(&path, &accuracy_trial("run-1", "demo-chat", 87.5)).expect("append");
        append(&path, &sample_report()).expect("append");
        assert_eq!(
            baseline("run-1").accuracy_score("demo-chat::gsm8k_n40"),
            Some(87.5)
        );
        assert_eq!(baseline("run-1").accuracy_score("demo-chat"), None);
        assert_eq!(
            baseline("run-2").accuracy_score("demo-chat::gsm8k_n40"),
            None
        );
        drop(tmp);
        assert_eq!(
            baseline("run-1").accuracy_score("demo-chat::gsm8k_n40"),
            None
        );
    }
}
