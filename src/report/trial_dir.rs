//! The per-trial folder `{out}/{run_id}/{kind}/{case}/{combination}` with `summary.json` (the
//! whole [`TrialReport`]), `records.jsonl` (one [`RequestRecord`] per line) and, for a load
//! trial, `windows.csv` (the load over time, [`crate::metrics::windows`]). A failed
//! trial's folder ends in [`ERROR_SUFFIX`].

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{ReportError, TrialReport};
use crate::accuracy::summary::ScoredSample;
use crate::metrics::{RequestRecord, windows};

/// Environment variable naming the output folder.
pub const OUT_ENV: &str = "LLM_STRESS_OUT";

/// The output folder when neither `--out` nor [`OUT_ENV`] names one, relative to the current
/// folder.
pub const DEFAULT_OUT: &str = "target/llm-stress";

/// Appended to the folder name of a failed trial.
pub const ERROR_SUFFIX: &str = "_ERROR";

/// The trial's summary file.
pub const SUMMARY_FILE: &str = "summary.json";

/// The trial's per-request records file.
pub const RECORDS_FILE: &str = "records.jsonl";

/// The trial's scored questions, when it ran an accuracy phase.
pub const ACCURACY_FILE: &str = "accuracy.jsonl";

/// The output folder: `cli` (`--out`), else [`OUT_ENV`] when set and not empty, else
/// [`DEFAULT_OUT`].
pub fn out_dir(cli: Option<&Path>) -> PathBuf {
    resolve_out_dir(cli, std::env::var_os(OUT_ENV).as_deref())
}

fn resolve_out_dir(cli: Option<&Path>, env: Option<&std::ffi::OsStr>) -> PathBuf {
    cli.map(Path::to_path_buf)
        .or_else(|| env.filter(|v| !v.is_empty()).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_OUT))
}

/// A name made safe as one path component: anything but `[A-Za-z0-9._-]` becomes `_`, and a
/// name that is empty or only dots (`.`, `..`) becomes underscores so it cannot leave its
/// folder.
pub fn safe_name(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe.chars().all(|c| c == '.') {
        "_".repeat(safe.len().max(1))
    } else {
        safe
    }
}

/// The combination part of the trial's name (`isl128_osl64_c4_n4` of
/// `demo-chat::isl128_osl64_c4_n4`); the whole name when it has no `::`.
pub fn slug(report: &TrialReport) -> &str {
    report
        .meta
        .trial
        .strip_prefix(report.meta.case.as_str())
        .and_then(|rest| rest.strip_prefix("::"))
        .or_else(|| report.meta.trial.rsplit_once("::").map(|(_, slug)| slug))
        .unwrap_or(&report.meta.trial)
}

/// The trial's folder: `{out}/{run_id}/{kind}/{case}/{slug}`, with [`ERROR_SUFFIX`] on the
/// last part when `failed`. Every part is made safe with [`safe_name`].
pub fn trial_dir(out: &Path, report: &TrialReport, failed: bool) -> PathBuf {
    let mut leaf = safe_name(slug(report));
    if failed {
        leaf.push_str(ERROR_SUFFIX);
    }
    out.join(safe_name(&report.meta.run_id))
        .join(safe_name(report.meta.kind.as_str()))
        .join(safe_name(&report.meta.case))
        .join(leaf)
}

/// Writes [`SUMMARY_FILE`] (the report, pretty JSON), [`RECORDS_FILE`] (one load record per
/// line) and, when there are any, [`ACCURACY_FILE`] (one scored question per line) into the
/// trial's folder, creating it, and returns the folder.
pub fn write(
    out: &Path,
    report: &TrialReport,
    records: &[RequestRecord],
    samples: &[ScoredSample],
    failed: bool,
) -> Result<PathBuf, ReportError> {
    write_with(out, report, records, samples, &[], failed)
}

/// [`write`], with `extra` files (name, contents) written under the same lock, such as the
/// rerun record ([`super::rerun::files`]).
pub fn write_with(
    out: &Path,
    report: &TrialReport,
    records: &[RequestRecord],
    samples: &[ScoredSample],
    extra: &[(&str, Vec<u8>)],
    failed: bool,
) -> Result<PathBuf, ReportError> {
    let (dir, _writing) = begin(out, report, extra, failed)?;
    write_lines(&dir.join(RECORDS_FILE), records)?;
    if let Some(summary) = report.summary() {
        // The load over time, from the same records.
        let duration_s = summary.duration_s;
        let over_time = windows::windows(records, duration_s, windows::window_length(duration_s));
        write_windows(&dir, &over_time)?;
    }
    write_samples(&dir, samples)?;
    Ok(dir)
}

/// [`write_with`] for a load whose records streamed to the file `spool` as it ran (one record
/// per line, in completion order): the file is moved into the folder as [`RECORDS_FILE`]
/// (copied, then removed, across file systems). `windows.csv` holds `over_time` when given,
/// else the windows folded from the file one record at a time.
#[allow(clippy::too_many_arguments)]
pub fn write_spooled(
    out: &Path,
    report: &TrialReport,
    spool: &Path,
    over_time: Option<&[windows::Window]>,
    samples: &[ScoredSample],
    extra: &[(&str, Vec<u8>)],
    failed: bool,
) -> Result<PathBuf, ReportError> {
    let (dir, _writing) = begin(out, report, extra, failed)?;
    let records = dir.join(RECORDS_FILE);
    if fs::rename(spool, &records).is_err() {
        fs::copy(spool, &records).map_err(|e| ReportError::io(spool, "copy", e))?;
        fs::remove_file(spool).map_err(|e| ReportError::io(spool, "remove", e))?;
    }
    if let Some(summary) = report.summary() {
        let duration_s = summary.duration_s;
        match over_time {
            Some(over_time) => write_windows(&dir, over_time)?,
            None => {
                let mut builder = windows::WindowsBuilder::new(windows::window_length(duration_s))
                    .within(duration_s);
                each_record(&records, |r| builder.add(&r))?;
                write_windows(&dir, &builder.build(duration_s))?;
            }
        }
    }
    write_samples(&dir, samples)?;
    Ok(dir)
}

/// Calls `each` with every record of a `records.jsonl`, one line at a time.
fn each_record(path: &Path, mut each: impl FnMut(RequestRecord)) -> Result<(), ReportError> {
    use std::io::BufRead;
    let file = File::open(path).map_err(|e| ReportError::io(path, "open", e))?;
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| ReportError::io(path, "read", e))?;
        if line.trim().is_empty() {
            continue;
        }
        let record = serde_json::from_str(&line)
            .map_err(|e| ReportError::corrupt(path, Some(i + 1), e.to_string()))?;
        each(record);
    }
    Ok(())
}

/// Writes `windows.csv`.
fn write_windows(dir: &Path, over_time: &[windows::Window]) -> Result<(), ReportError> {
    let path = dir.join(windows::FILE);
    let csv = windows::to_csv(over_time).map_err(|e| ReportError::csv(&path, e))?;
    write_extra(dir, &[(windows::FILE, csv)])
}

/// Writes [`ACCURACY_FILE`], or removes one an earlier writer left when there is nothing to
/// write.
fn write_samples(dir: &Path, samples: &[ScoredSample]) -> Result<(), ReportError> {
    let accuracy = dir.join(ACCURACY_FILE);
    if samples.is_empty() {
        // An earlier writer's answers must not stay beside this writer's records.
        match fs::remove_file(&accuracy) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(ReportError::io(&accuracy, "remove", e));
            }
            _ => {}
        }
    } else {
        write_lines(&accuracy, samples)?;
    }
    Ok(())
}

/// An exclusive lock on a trial folder (on its [`LOCK_FILE`]), held while its files are
/// written: two processes given one run id write the same folder one after the other, so
/// its files all come from one of them.
struct FolderLock(File);

impl FolderLock {
    fn take(dir: &Path) -> Result<FolderLock, ReportError> {
        let path = dir.join(LOCK_FILE);
        let file = File::create(&path).map_err(|e| ReportError::io(&path, "create", e))?;
        file.lock().map_err(|e| ReportError::io(&path, "lock", e))?;
        Ok(FolderLock(file))
    }
}

impl Drop for FolderLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// The file a trial folder's writer locks (empty, hidden; readers look only for the other
/// files).
pub const LOCK_FILE: &str = ".writing.lock";

/// Writes only [`SUMMARY_FILE`] (the report, pretty JSON) into the trial's folder, creating
/// it, and returns the folder (a `sim` trial adds its own files, and has no records).
pub fn write_summary(
    out: &Path,
    report: &TrialReport,
    extra: &[(&str, Vec<u8>)],
    failed: bool,
) -> Result<PathBuf, ReportError> {
    let (dir, _writing) = begin(out, report, extra, failed)?;
    Ok(dir)
}

/// Creates the trial's folder, takes its lock and writes [`SUMMARY_FILE`] and `extra`; the
/// caller writes the rest while it holds the returned lock.
fn begin(
    out: &Path,
    report: &TrialReport,
    extra: &[(&str, Vec<u8>)],
    failed: bool,
) -> Result<(PathBuf, FolderLock), ReportError> {
    let dir = trial_dir(out, report, failed);
    fs::create_dir_all(&dir).map_err(|e| ReportError::io(&dir, "create the folder", e))?;
    let writing = FolderLock::take(&dir)?;
    write_summary_file(&dir, report)?;
    write_extra(&dir, extra)?;
    Ok((dir, writing))
}

/// Writes each (name, contents) into the folder, whole.
fn write_extra(dir: &Path, extra: &[(&str, Vec<u8>)]) -> Result<(), ReportError> {
    for (name, contents) in extra {
        let path = dir.join(name);
        replace_whole(&path, |file| {
            file.write_all(contents)
                .map_err(|e| ReportError::io(&path, "write", e))
        })?;
    }
    Ok(())
}

/// Writes the report as pretty JSON to the folder's [`SUMMARY_FILE`].
fn write_summary_file(dir: &Path, report: &TrialReport) -> Result<(), ReportError> {
    let summary_path = dir.join(SUMMARY_FILE);
    let mut json =
        serde_json::to_vec_pretty(report).map_err(|e| ReportError::json(&summary_path, e))?;
    json.push(b'\n');
    replace_whole(&summary_path, |file| {
        file.write_all(&json)
            .map_err(|e| ReportError::io(&summary_path, "write", e))
    })
}

/// Writes one JSON value per line and syncs the file.
fn write_lines<T: Serialize>(path: &Path, items: &[T]) -> Result<(), ReportError> {
    replace_whole(path, |file| {
        let mut writer = BufWriter::new(file);
        for item in items {
            serde_json::to_writer(&mut writer, item).map_err(|e| ReportError::json(path, e))?;
            writer
                .write_all(b"\n")
                .map_err(|e| ReportError::io(path, "write", e))?;
        }
        writer
            .flush()
            .map_err(|e| ReportError::io(path, "write", e))
    })
}

/// Writes `path` through a temporary file of this process beside it, synced and then renamed
/// over `path`: two processes writing the same trial folder (one run id given to both) each
/// leave a whole file, never one torn between them.
fn replace_whole(
    path: &Path,
    write: impl FnOnce(&mut File) -> Result<(), ReportError>,
) -> Result<(), ReportError> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".{}-{n}.tmp", std::process::id()));
    let temporary = PathBuf::from(temporary);
    let result = File::create(&temporary)
        .map_err(|e| ReportError::io(&temporary, "create", e))
        .and_then(|mut file| {
            write(&mut file)?;
            file.sync_all()
                .map_err(|e| ReportError::io(&temporary, "sync", e))
        })
        .and_then(|()| {
            fs::rename(&temporary, path).map_err(|e| ReportError::io(path, "rename onto", e))
        });
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use rstest::rstest;

    use super::*;
    use crate::report::sample::sample_report;

    #[rstest]
    #[case("isl128_osl64_c4_n4", "isl128_osl64_c4_n4")]
    #[case("a/b c:d", "a_b_c_d")]
    #[case("ünï", "_n_")]
    #[case("v1.2-rc_3", "v1.2-rc_3")]
    #[case("..", "__")]
    #[case(".", "_")]
    #[case("", "_")]
    #[case("../etc", ".._etc")]
    fn names_are_made_safe(#[case] name: &str, #[case] expected: &str) {
        assert_eq!(safe_name(name), expected);
    }

    #[rstest]
    #[case(false, "out/run-1/perf/demo-chat/isl128_osl16_c2_n5")]
    #[case(true, "out/run-1/perf/demo-chat/isl128_osl16_c2_n5_ERROR")]
    fn folders_nest_run_kind_case_and_combination(#[case] failed: bool, #[case] expected: &str) {
        assert_eq!(
            trial_dir(Path::new("out"), &sample_report(), failed),
            Path::new(expected)
        );
    }

    #[test]
    fn unsafe_run_ids_and_case_names_stay_inside_the_output_folder() {
        let mut report = sample_report();
        report.meta.run_id = "../up".into();
        report.meta.case = "a::b".into();
        report.meta.trial = "a::b::isl1_osl1_c1_n1".into();
        assert_eq!(
            trial_dir(Path::new("out"), &report, false),
            Path::new("out/.._up/perf/a__b/isl1_osl1_c1_n1")
        );
    }

    #[rstest]
    #[case(Some("cli"), Some("env"), "cli")]
    #[case(None, Some("env"), "env")]
    #[case(None, Some(""), DEFAULT_OUT)]
    #[case(None, None, DEFAULT_OUT)]
    fn the_output_folder_is_cli_then_env_then_default(
        #[case] cli: Option<&str>,
        #[case] env: Option<&str>,
        #[case] expected: &str,
    ) {
        assert_eq!(
            resolve_out_dir(cli.map(Path::new), env.map(OsStr::new)),
            Path::new(expected)
        );
    }

    #[test]
    fn summary_and_records_round_trip() {
        let tmp = tempfile::tempdir().expect("temporary folder");
        let out = tmp.path().join("out");
        let report = sample_report();
        let records = vec![
            RequestRecord {
                id: 0,
                ttft_ms: Some(1.5),
                chunk_ms: vec![1.5, 2.5],
                chunk_tokens: vec![1, 1],
                ..Default::default()
            },
            RequestRecord {
                id: 1,
                error: Some(crate::metrics::ErrorClass::Http503),
                error_detail: Some("busy\nline two".into()),
                ..Default::default()
            },
        ];
        let samples = vec![ScoredSample {
            id: "test/3".into(),
            prompt_excerpt: "Question: 2 + 2?\nAnswer:".into(),
            response: "#### 4".into(),
            extracted: [("strict-match".to_string(), "4".to_string())].into(),
            target: "4".into(),
            correct: [("strict-match".to_string(), true)].into(),
            error: None,
            e2el_ms: Some(3.0),
            under_load: Some(true),
            loglikelihoods: None,
        }];
        let dir = write(&out, &report, &records, &samples, true).expect("write");
        assert!(
            dir.ends_with("isl128_osl16_c2_n5_ERROR"),
            "{}",
            dir.display()
        );
        let text = fs::read_to_string(dir.join(SUMMARY_FILE)).expect("summary");
        let back: TrialReport = serde_json::from_str(&text).expect("json");
        assert_eq!(back, report);
        let lines = fs::read_to_string(dir.join(RECORDS_FILE)).expect("records");
        let back: Vec<RequestRecord> = lines
            .lines()
            .map(|l| serde_json::from_str(l).expect("record"))
            .collect();
        assert_eq!(back, records);
        let lines = fs::read_to_string(dir.join(ACCURACY_FILE)).expect("samples");
        let back: Vec<ScoredSample> = lines
            .lines()
            .map(|l| serde_json::from_str(l).expect("sample"))
            .collect();
        assert_eq!(back, samples);
    }

    #[test]
    fn writers_of_one_file_each_leave_it_whole() {
        let temp = tempfile::tempdir().expect("a temporary folder");
        let dir = temp.path().to_path_buf();
        let path = dir.join("records.jsonl");
        std::thread::scope(|scope| {
            for writer in 0..4u32 {
                let path = &path;
                scope.spawn(move || {
                    for _ in 0..5 {
                        let lines = vec![writer; 20_000];
                        write_lines(path, &lines).expect("written");
                    }
                });
            }
        });
        let text = fs::read_to_string(&path).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 20_000);
        assert!(
            lines.iter().all(|l| *l == lines[0]),
            "one writer's file, whole"
        );
        let left: Vec<_> = fs::read_dir(&dir).expect("dir").collect();
        assert_eq!(left.len(), 1, "no temporary file left behind");
    }

    #[test]
    fn writers_of_one_trial_folder_leave_all_its_files_from_one_of_them() {
        let tmp = tempfile::tempdir().expect("temporary folder");
        let out = tmp.path().join("out");
        std::thread::scope(|scope| {
            for writer in 0..4u64 {
                let out = &out;
                scope.spawn(move || {
                    let mut report = sample_report();
                    report.meta.timestamp = format!("writer-{writer}");
                    let records: Vec<RequestRecord> = (0..2_000)
                        .map(|_| RequestRecord {
                            id: writer,
                            ..Default::default()
                        })
                        .collect();
                    for _ in 0..5 {
                        write(out, &report, &records, &[], false).expect("written");
                    }
                });
            }
        });
        let dir = trial_dir(&out, &sample_report(), false);
        let summary: TrialReport =
            serde_json::from_str(&fs::read_to_string(dir.join(SUMMARY_FILE)).expect("summary"))
                .expect("json");
        let records = fs::read_to_string(dir.join(RECORDS_FILE)).expect("records");
        let ids: std::collections::BTreeSet<u64> = records
            .lines()
            .map(|l| serde_json::from_str::<RequestRecord>(l).expect("record").id)
            .collect();
        assert_eq!(ids.len(), 1, "records from one writer");
        let writer = ids.into_iter().next().expect("an id");
        assert_eq!(
            summary.meta.timestamp,
            format!("writer-{writer}"),
            "the same writer"
        );
    }
}
