//! One run's trials, gathered from disk: nextest runs each trial in a process of its own, so
//! a run's results are the trial folders `{out}/{run}/{kind}/{case}/{combination}` that its
//! processes wrote. [`load`] reads their `summary.json` files, keeps one report per trial
//! (the newest, when a trial ran more than once under the same run id) and says what it
//! left out.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Deserialize;

use super::trial_dir::{ERROR_SUFFIX, RECORDS_FILE, SUMMARY_FILE, safe_name};
use super::{ReportError, TrialReport};
use crate::case::Kind;
use crate::metrics::ErrorClass;

/// The kinds whose folders a run folder holds (anything else in it, such as `servers/`, is
/// not a trial).
const KINDS: [Kind; 4] = [Kind::Perf, Kind::Accuracy, Kind::Stress, Kind::Sim];

/// The shared results file in the output folder.
pub const RESULTS_FILE: &str = "results.csv";

/// One trial of a run, as read from its folder.
#[derive(Debug, Clone)]
pub struct RunTrial {
    /// The trial's report (`summary.json`).
    pub report: TrialReport,
    /// Its folder.
    pub dir: PathBuf,
}

impl RunTrial {
    /// `[kind] case::combination`, the trial's full name.
    pub fn name(&self) -> String {
        format!(
            "[{}] {}",
            self.report.meta.kind.as_str(),
            self.report.meta.trial
        )
    }

    /// The timing of each measured request, from `records.jsonl`, in the file's order.
    pub fn request_times(&self) -> Result<Vec<RequestTimes>, ReportError> {
        read_request_times(&self.dir.join(RECORDS_FILE))
    }

    /// The trial's load over time (`windows.csv`); none for a folder without one (a sim or
    /// accuracy trial, or one written by an older version).
    pub fn windows(&self) -> Result<Vec<crate::metrics::windows::Window>, ReportError> {
        let path = self.dir.join(crate::metrics::windows::FILE);
        match fs::read(&path) {
            Ok(bytes) => {
                crate::metrics::windows::from_csv(&bytes).map_err(|e| ReportError::csv(&path, e))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(ReportError::io(&path, "read", e)),
        }
    }
}

/// What the report needs of one request record (a line of `records.jsonl`; other fields are
/// not read).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RequestTimes {
    /// Send time from the start of the measured window, ms.
    pub send_ms: f64,
    /// Time to first token from the send, ms.
    #[serde(default)]
    pub ttft_ms: Option<f64>,
    /// End-to-end latency from the send, ms.
    #[serde(default)]
    pub e2el_ms: Option<f64>,
    /// Output tokens.
    #[serde(default)]
    pub output_tokens: Option<u64>,
    /// Why it failed, when it did.
    #[serde(default)]
    pub error: Option<ErrorClass>,
}

impl RequestTimes {
    /// Time per output token after the first, as the summary computes it.
    pub fn tpot_ms(&self) -> Option<f64> {
        let (ttft, e2el, tokens) = (self.ttft_ms?, self.e2el_ms?, self.output_tokens?);
        (tokens > 1).then(|| (e2el - ttft) / (tokens - 1) as f64)
    }
}

/// Reads `records.jsonl`: one JSON record per line; a missing file or a bad line is an error
/// naming the file (and line).
pub fn read_request_times(path: &Path) -> Result<Vec<RequestTimes>, ReportError> {
    let file = fs::File::open(path).map_err(|e| ReportError::corrupt(path, None, e.to_string()))?;
    let mut times = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| ReportError::corrupt(path, Some(i + 1), e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        let record: RequestTimes = serde_json::from_str(&line)
            .map_err(|e| ReportError::corrupt(path, Some(i + 1), e.to_string()))?;
        times.push(record);
    }
    Ok(times)
}

/// One run's trials.
#[derive(Debug, Clone)]
pub struct Run {
    /// The run id (as the trials recorded it).
    pub run_id: String,
    /// The run's folder, where its summary and HTML report are written.
    pub dir: PathBuf,
    /// Every trial once, ordered by case, kind, then load parameters.
    pub trials: Vec<RunTrial>,
    /// What the report should say about how the trials were gathered (re-runs, an unreadable
    /// `results.csv`).
    pub notes: Vec<String>,
}

/// A run folder in the output folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFolder {
    /// The folder's name (the run id, made safe as a path component).
    pub name: String,
    /// When its newest `summary.json` was written.
    pub newest: SystemTime,
}

/// The run folders under `out`, newest first (by their newest trial). Only [`load`] checks
/// a run's folders: an incomplete trial folder in one run does not hide the others.
pub fn runs(out: &Path) -> Result<Vec<RunFolder>, ReportError> {
    let entries = fs::read_dir(out).map_err(|e| ReportError::io(out, "read the folder", e))?;
    let mut runs = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let newest = trial_folders(&path)
            .unwrap_or_default()
            .iter()
            .filter_map(|dir| {
                fs::metadata(dir.join(SUMMARY_FILE))
                    .and_then(|m| m.modified())
                    .ok()
            })
            .max();
        if let Some(newest) = newest {
            runs.push(RunFolder {
                name: entry.file_name().to_string_lossy().into_owned(),
                newest,
            });
        }
    }
    runs.sort_by(|a, b| b.newest.cmp(&a.newest).then_with(|| b.name.cmp(&a.name)));
    Ok(runs)
}

/// The trial folders `{kind}/{case}/{combination}` of a run folder.
fn trial_folders(run_dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let mut folders = Vec::new();
    for kind in KINDS {
        for case_dir in subfolders(&run_dir.join(kind.as_str()))? {
            folders.extend(subfolders(&case_dir)?);
        }
    }
    Ok(folders)
}

/// The `summary.json` files of a run folder, one per trial folder; a trial folder without
/// one is an error naming the missing file.
fn summary_files(run_dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    trial_folders(run_dir)?
        .into_iter()
        .map(|dir| {
            let summary = dir.join(SUMMARY_FILE);
            if summary.is_file() {
                Ok(summary)
            } else {
                Err(ReportError::corrupt(
                    &summary,
                    None,
                    "missing: every trial folder holds its summary (the trial may still be \
                     running, or was interrupted)",
                ))
            }
        })
        .collect()
}

/// The folders inside `dir`, sorted; none when `dir` does not exist.
fn subfolders(dir: &Path) -> Result<Vec<PathBuf>, ReportError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(ReportError::io(dir, "read the folder", e)),
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// Reads the run `run_id` (default: the newest) under `out`.
pub fn load(out: &Path, run_id: Option<&str>) -> Result<Run, ReportError> {
    if !out.is_dir() {
        return Err(ReportError::NoFolder {
            path: out.to_path_buf(),
        });
    }
    let folder = match run_id {
        Some(id) => {
            let name = safe_name(id);
            if !out.join(&name).is_dir() {
                let available = runs(out)?
                    .iter()
                    .map(|r| r.name.clone())
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(ReportError::UnknownRun {
                    path: out.to_path_buf(),
                    run_id: id.to_string(),
                    available: if available.is_empty() {
                        "none".into()
                    } else {
                        available
                    },
                });
            }
            name
        }
        None => {
            runs(out)?
                .into_iter()
                .next()
                .ok_or_else(|| ReportError::NoRun {
                    path: out.to_path_buf(),
                })?
                .name
        }
    };
    let dir = out.join(&folder);
    let mut found = Vec::new();
    for path in summary_files(&dir)? {
        found.push(read_trial(&path)?);
    }
    if found.is_empty() {
        return Err(ReportError::NoRun {
            path: out.to_path_buf(),
        });
    }
    let run_id = found
        .iter()
        .map(|t| t.trial.report.meta.run_id.clone())
        .max()
        .unwrap_or(folder);
    let rows = rows_in_results(&out.join(RESULTS_FILE), &run_id);
    let (trials, mut notes) = keep_newest(found, rows.as_ref().ok());
    if let Err(message) = rows {
        notes.push(message);
    }
    Ok(Run {
        run_id,
        dir,
        trials,
        notes,
    })
}

/// A trial read from its folder, with when its summary was written.
#[derive(Debug, Clone)]
struct Found {
    trial: RunTrial,
    written: SystemTime,
}

fn read_trial(path: &Path) -> Result<Found, ReportError> {
    let text = fs::read_to_string(path).map_err(|e| ReportError::io(path, "read", e))?;
    let report: TrialReport = serde_json::from_str(&text)
        .map_err(|e| ReportError::corrupt(path, Some(e.line()), e.to_string()))?;
    let written = fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    Ok(Found {
        trial: RunTrial { report, dir },
        written,
    })
}

/// How many rows `results.csv` holds for each `[kind] trial` of the run; an error message
/// when the file exists but cannot be read. A missing file counts nothing.
fn rows_in_results(path: &Path, run_id: &str) -> Result<BTreeMap<String, usize>, String> {
    let unreadable = |e: &dyn std::fmt::Display| {
        format!(
            "{}: cannot be read ({e}); re-runs are counted from the trial folders only",
            path.display()
        )
    };
    let mut reader = match ::csv::Reader::from_path(path) {
        Ok(reader) => reader,
        Err(e) => {
            return match e.kind() {
                ::csv::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::NotFound => {
                    Ok(BTreeMap::new())
                }
                _ => Err(unreadable(&e)),
            };
        }
    };
    let headers = reader.headers().map_err(|e| unreadable(&e))?.clone();
    let column = |name: &str| headers.iter().position(|h| h == name);
    let (Some(run), Some(kind), Some(trial)) = (column("run_id"), column("kind"), column("trial"))
    else {
        return Err(unreadable(&"no run_id, kind and trial columns"));
    };
    let mut counts = BTreeMap::new();
    for row in reader.records() {
        let row = row.map_err(|e| unreadable(&e))?;
        if row.get(run) == Some(run_id) {
            let name = format!(
                "[{}] {}",
                row.get(kind).unwrap_or_default(),
                row.get(trial).unwrap_or_default()
            );
            *counts.entry(name).or_insert(0) += 1;
        }
    }
    Ok(counts)
}

/// Keeps the newest report of each `[kind] trial` and orders them; notes every trial that
/// ran more than once (more than one folder, or more rows in `results.csv`).
fn keep_newest(
    found: Vec<Found>,
    rows: Option<&BTreeMap<String, usize>>,
) -> (Vec<RunTrial>, Vec<String>) {
    let mut by_name: BTreeMap<String, Vec<Found>> = BTreeMap::new();
    for f in found {
        by_name.entry(f.trial.name()).or_default().push(f);
    }
    let mut trials = Vec::new();
    let mut notes = Vec::new();
    for (name, mut versions) in by_name {
        versions.sort_by(|a, b| {
            (&a.trial.report.meta.timestamp, a.written)
                .cmp(&(&b.trial.report.meta.timestamp, b.written))
        });
        let folders = versions.len();
        let runs = rows
            .and_then(|r| r.get(&name).copied())
            .unwrap_or(0)
            .max(folders);
        let Some(newest) = versions.pop() else {
            continue;
        };
        if runs > 1 {
            let outcome = if newest.trial.dir.to_string_lossy().ends_with(ERROR_SUFFIX) {
                "failed"
            } else {
                "passed"
            };
            notes.push(format!(
                "{name} ran {runs} times in this run; the newest ({}, {outcome}) is shown",
                newest.trial.report.meta.timestamp
            ));
        }
        trials.push(newest.trial);
    }
    trials.sort_by(|a, b| order_key(&a.report).cmp(&order_key(&b.report)));
    (trials, notes)
}

/// Case, kind, load mode, lengths, load level, prompts, name: the order trials are listed in.
fn order_key(r: &TrialReport) -> impl Ord + '_ {
    let l = r.listing();
    (
        r.meta.case.as_str(),
        r.meta.kind,
        l.mode,
        l.isl,
        l.osl,
        l.concurrency,
        l.rate.map(|rate| (rate * 1000.0).round() as i64),
        l.num_prompts,
        r.meta.trial.as_str(),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::metrics::RequestRecord;
    use crate::report::sample::sample_report;

    fn found(report: TrialReport, dir: &str, written_s: u64) -> Found {
        Found {
            trial: RunTrial {
                report,
                dir: PathBuf::from(dir),
            },
            written: SystemTime::UNIX_EPOCH + Duration::from_secs(written_s),
        }
    }

    #[test]
    fn a_trial_written_twice_keeps_the_newest_and_says_so() {
        let mut old = sample_report();
        old.meta.timestamp = "2026-11-24T19:00:00Z".into();
        let mut new = sample_report();
        new.meta.timestamp = "2026-11-24T19:05:00Z".into();
        let found = vec![
            found(new, "run/perf/demo-chat/x", 5),
            found(old, "run/perf/demo-chat/x_ERROR", 9),
        ];
        let (trials, notes) = keep_newest(found, None);
        assert_eq!(trials.len(), 1);
        assert_eq!(trials[0].report.meta.timestamp, "2026-11-24T19:05:00Z");
        assert_eq!(
            notes,
            [
                "[perf] demo-chat::isl128_osl16_c2_n5 ran 2 times in this run; the newest \
              (2026-11-24T19:05:00Z, passed) is shown"
            ]
        );
    }

    #[test]
    fn results_rows_reveal_a_rerun_that_overwrote_its_folder() {
        let rows: BTreeMap<String, usize> =
            [("[perf] demo-chat::isl128_osl16_c2_n5".to_string(), 3)].into();
        let (trials, notes) = keep_newest(
            vec![found(sample_report(), "run/perf/demo-chat/x_ERROR", 1)],
            Some(&rows),
        );
        assert_eq!(trials.len(), 1);
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("ran 3 times"), "{notes:?}");
        assert!(notes[0].contains("failed"), "{notes:?}");
    }

    #[test]
    fn trials_are_ordered_by_case_kind_and_load() {
        let at = |case: &str, kind: Kind, concurrency: u32| {
            let mut r = sample_report();
            r.meta.case = case.into();
            r.meta.kind = kind;
            r.load_mut().expect("a load trial").shape =
                crate::report::LoadShape::Closed { concurrency };
            r.meta.trial = format!("{case}::c{concurrency}");
            found(r, "d", 0)
        };
        let (trials, _) = keep_newest(
            vec![
                at("b", Kind::Perf, 1),
                at("a", Kind::Stress, 1),
                at("a", Kind::Perf, 8),
                at("a", Kind::Perf, 2),
            ],
            None,
        );
        let names: Vec<String> = trials.iter().map(RunTrial::name).collect();
        assert_eq!(
            names,
            [
                "[perf] a::c2",
                "[perf] a::c8",
                "[stress] a::c1",
                "[perf] b::c1"
            ]
        );
    }

    #[test]
    fn request_times_read_what_the_trial_wrote() {
        let temp = tempfile::tempdir().expect("a temporary folder");
        let dir = temp.path().to_path_buf();
        let path = dir.join(RECORDS_FILE);
        let record = RequestRecord {
            id: 3,
            send_ms: 12.5,
            ttft_ms: Some(40.0),
            e2el_ms: Some(130.0),
            output_tokens: Some(10),
            chunk_ms: vec![40.0, 130.0],
            ..Default::default()
        };
        let failed = RequestRecord {
            send_ms: 13.0,
            error: Some(ErrorClass::Timeout),
            ..Default::default()
        };
        let text = [&record, &failed]
            .iter()
            .map(|r| serde_json::to_string(r).expect("json"))
            .collect::<Vec<_>>()
            .join("\n");
        fs::write(&path, text + "\n").expect("write");
        let times = read_request_times(&path).expect("read");
        assert_eq!(times.len(), 2);
        assert_eq!(times[0].send_ms, 12.5);
        assert_eq!(times[0].tpot_ms(), record.tpot_ms());
        assert_eq!(times[1].error, Some(ErrorClass::Timeout));

        fs::write(&path, "{\"send_ms\": 1}\nnot json\n").expect("write");
        let error = read_request_times(&path).expect_err("corrupt").to_string();
        assert!(error.contains("records.jsonl:2:"), "{error}");
    }
}
