//! `results.csv` stays whole when many processes (nextest runs one per test) and threads
//! append to it at once: exactly one header, every row complete, none torn or interleaved.
//!
//! The processes are this test binary itself: run with [`CHILD_ENV`] set, the
//! [`child_appends_rows`] test appends its rows and returns; without it, it does nothing.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use llm_stress::judge::{Check, CheckSource};
use llm_stress::report::TrialReport;
use llm_stress::report::csv::{self, COLUMNS};
use llm_stress::report::sample::ReportBuilder;

use crate::support::Temp;

/// Names the CSV a child process appends to.
const CHILD_ENV: &str = "LLM_STRESS_CSV_CHILD";
/// The child's number, which goes into its rows.
const CHILD_INDEX_ENV: &str = "LLM_STRESS_CSV_CHILD_INDEX";
/// When the child starts appending, in milliseconds since the Unix epoch, so that all
/// children contend at once instead of in the order they were started.
const CHILD_START_ENV: &str = "LLM_STRESS_CSV_CHILD_START_MS";

/// The child's test, by its name in this binary.
const CHILD_TEST: &str = "csv_concurrency::child_appends_rows";

/// Writers (processes or threads).
const WRITERS: usize = 8;
/// Rows each writer appends.
const ROWS: usize = 25;
/// Approximate length of each row's reasons field: far beyond a pipe buffer's atomic write
/// and a typical stdio buffer, so a torn or interleaved write would show.
const REASON_LEN: usize = 4096;

fn column(name: &str) -> usize {
    COLUMNS
        .iter()
        .position(|c| *c == name)
        .unwrap_or_else(|| panic!("no column {name}"))
}

/// The failure reason of one row: unique to (writer, row), with commas, quotes and line
/// breaks that must be quoted, and long.
fn reason(writer: usize, row: usize) -> String {
    let mut text = format!("writer {writer} row {row}:");
    let mut i = 0;
    while text.len() < REASON_LEN {
        text.push_str(&format!(" {writer}/{row}/{i}, \"q\"\n"));
        i += 1;
    }
    text
}

fn report(writer: usize, row: usize) -> TrialReport {
    let check = Check::fail(
        CheckSource::Slo,
        "ttft_ms.p95 < 1",
        "ttft_ms.p95 < 1",
        reason(writer, row),
    )
    .measured(Some(2.0))
    .against(Some(1.0));
    ReportBuilder::load(&format!("writer{writer}"), &format!("row{row}"))
        .run_id("concurrency")
        .lengths(1, 1)
        .checks(vec![check])
        .build()
}

fn append_rows(path: &Path, writer: usize) {
    for row in 0..ROWS {
        csv::append(path, &report(writer, row)).expect("append");
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn scratch(name: &str) -> Temp {
    Temp::new(&format!("csv-concurrency-{name}"))
}

/// Asserts that the file holds one header and exactly `WRITERS × ROWS` whole rows.
fn assert_whole(path: &Path) {
    let text = std::fs::read_to_string(path).expect("read the CSV");
    let header = COLUMNS.join(",");
    assert!(text.starts_with(&format!("{header}\n")), "no header first");
    assert_eq!(text.matches(&header).count(), 1, "header count");

    let rows = csv::read_rows(path).expect("parse the CSV");
    assert_eq!(rows.len(), WRITERS * ROWS, "row count");
    let (trial, reasons, verdict) = (column("trial"), column("reasons"), column("verdict"));
    let mut seen = BTreeSet::new();
    for (n, record) in rows.iter().enumerate() {
        assert_eq!(record.len(), COLUMNS.len(), "fields of row {n}");
        let name = &record[trial];
        let (writer, row) = name
            .strip_prefix("writer")
            .and_then(|rest| rest.split_once("::row"))
            .and_then(|(w, r)| Some((w.parse::<usize>().ok()?, r.parse::<usize>().ok()?)))
            .unwrap_or_else(|| panic!("row {n}: trial `{name}`"));
        assert!(seen.insert((writer, row)), "row {n}: {name} twice");
        assert_eq!(&record[verdict], "FAIL", "row {n}");
        assert_eq!(
            &record[reasons],
            format!("ttft_ms.p95 < 1: {}", reason(writer, row)),
            "row {n}: reasons of {name}"
        );
        let expected = csv::row(&report(writer, row));
        assert!(
            record.iter().eq(expected.iter().map(String::as_str)),
            "row {n}: {name} differs"
        );
    }
    assert_eq!(seen.len(), WRITERS * ROWS);
}

/// The child process's work; a no-op unless [`CHILD_ENV`] is set.
#[test]
fn child_appends_rows() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let writer: usize = std::env::var(CHILD_INDEX_ENV)
        .expect("child index")
        .parse()
        .expect("child index is a number");
    if let Some(start) = std::env::var(CHILD_START_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        std::thread::sleep(Duration::from_millis(start.saturating_sub(now_ms())));
    }
    append_rows(Path::new(&path), writer);
}

#[test]
fn processes_appending_at_once_never_tear_rows() {
    let dir = scratch("processes");
    // The file does not exist yet: the children race to create it and write the header.
    let path = dir.join("out").join("results.csv");
    let exe = std::env::current_exe().expect("test binary");
    let start = now_ms() + 750;
    let children: Vec<_> = (0..WRITERS)
        .map(|writer| {
            Command::new(&exe)
                .args(["--exact", CHILD_TEST, "--nocapture"])
                .args(["--test-threads", "1"])
                .env(CHILD_ENV, &path)
                .env(CHILD_INDEX_ENV, writer.to_string())
                .env(CHILD_START_ENV, start.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn a child")
        })
        .collect();
    for (writer, child) in children.into_iter().enumerate() {
        let output = child.wait_with_output().expect("wait for a child");
        assert!(
            output.status.success(),
            "child {writer}: {}\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        // The child must really have run its test, not filtered it out.
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.contains("1 passed"),
            "child {writer} ran no test:\n{stdout}"
        );
    }
    assert_whole(&path);
}

#[test]
fn threads_appending_at_once_never_tear_rows() {
    let dir = scratch("threads");
    let path = dir.join("results.csv");
    let barrier = std::sync::Barrier::new(WRITERS);
    std::thread::scope(|scope| {
        for writer in 0..WRITERS {
            let (path, barrier) = (&path, &barrier);
            scope.spawn(move || {
                barrier.wait();
                append_rows(path, writer);
            });
        }
    });
    assert_whole(&path);
}
