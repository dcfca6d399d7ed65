//! One trial over many client processes: four workers (`--worker i/4`, here threads of one
//! process, each with a session of its own) write shards, and `llm-stress merge` turns them
//! into one trial whose summary is the single computation over the union of their records.

use std::path::{Path, PathBuf};
use std::time::Duration;

use llm_stress::accuracy::summary::ScoredSample;
use llm_stress::judge::Check;
use llm_stress::load::Share;
use llm_stress::metrics::distribution::DistributionBuilder;
use llm_stress::metrics::{RequestRecord, Summary};
use llm_stress::plan::TrialPlan;
use llm_stress::report::TrialReport;
use llm_stress::report::analysis::Thresholds;
use llm_stress::session::TrialOutcome;
use llm_stress::session::shard::{self, ShardFile, Worker};
use llm_stress::session::sinks::Publisher;

use crate::support::{CaseDir, context, session};

const RUN: &str = "workers-run";

/// A closed loop of 512 streams and 1,024 requests on the embedded server.
const CASE: &str = "name: c\nmodel: m\nkinds: [perf]\n\
server:\n  embedded: { ttft_ms: 2, tpot_ms: 1, slots: 512 }\n\
matrix:\n  mode: custom\n  isl: [16]\n  osl: [4]\n  concurrency: [512]\n  prompts: { fixed: 1024 }\n\
load:\n  warmup: 0\n";

fn read_lines(path: &Path) -> Vec<RequestRecord> {
    read_json_lines(path)
}

/// One JSON value per line of `path`.
fn read_json_lines<T: serde::de::DeserializeOwned>(path: &Path) -> Vec<T> {
    std::fs::read_to_string(path)
        .expect("a JSON Lines file")
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

/// The ids of the questions in an `accuracy.jsonl`, in its order.
fn question_ids(path: &Path) -> Vec<String> {
    read_json_lines::<ScoredSample>(path)
        .into_iter()
        .map(|sample| sample.id)
        .collect()
}

/// The merge's `shard histograms` check in a merged trial's report.
fn shard_histograms_check(report: &TrialReport) -> &Check {
    report
        .verdict
        .checks
        .iter()
        .find(|c| c.name == "shard histograms")
        .expect("the merge checks the histograms")
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> T {
    serde_json::from_str(&std::fs::read_to_string(path).expect("file")).expect("json")
}

/// Runs `plan` as workers 0..n of run [`RUN`] under `out`, each on a thread with a session of
/// its own (as `llm-stress run --worker i/n` would in a process of its own).
fn run_workers(plan: &TrialPlan, out: &Path, n: u32) -> Vec<TrialOutcome> {
    run_workers_streaming_from(plan, out, n, llm_stress::load::spool::STREAM_FROM)
}

/// [`run_workers`], each worker's session streaming the records of loads planned to run at
/// least `stream_from` to a spool.
fn run_workers_streaming_from(
    plan: &TrialPlan,
    out: &Path,
    n: u32,
    stream_from: Duration,
) -> Vec<TrialOutcome> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                scope.spawn(move || {
                    let share = Share::new(i, n).expect("a share");
                    let mut worker = Worker::new(share, out, RUN);
                    worker.margin = Duration::from_millis(200);
                    worker.timeout = Duration::from_secs(120);
                    let worker_out = shard::worker_out(out, RUN, i);
                    session(context(RUN, worker_out, None))
                        .stream_records_from(stream_from)
                        .as_worker(worker)
                        .run_trial(plan)
                        .expect("the shard is written")
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a worker"))
            .collect()
    })
}

/// The one merged trial folder of case `c`.
fn merged_trial(out: &Path, kind: &str) -> PathBuf {
    std::fs::read_dir(out.join(RUN).join(kind).join("c"))
        .expect("the merged trial's folder")
        .flatten()
        .map(|e| e.path())
        .next()
        .expect("one trial folder")
}

#[test]
fn four_workers_of_128_streams_merge_into_one_512_stream_trial() {
    let dir = CaseDir::named("workers-512");
    let plan = dir
        .model("m", "name: m\nmax_context: 256\nmax_concurrency: 512\n")
        .case("c", CASE)
        .plan();
    let out = dir.out();
    let shards = run_workers(&plan, &out, 4);
    let mut union = Vec::new();
    let mut shard_histograms = Vec::new();
    for (i, outcome) in shards.iter().enumerate() {
        assert!(outcome.passed, "worker {i}: {:?}", outcome.report.verdict);
        assert!(
            outcome
                .dir
                .starts_with(out.join(RUN).join("shards").join(i.to_string()))
        );
        let file: ShardFile = read_json(&outcome.dir.join(shard::SHARD_FILE));
        assert_eq!((file.index, file.count), (i as u32, 4));
        assert_eq!(file.barrier.len(), 1, "one load, one barrier");
        assert_eq!(
            file.histograms.keys().collect::<Vec<_>>(),
            ["e2el_ms", "itl_ms", "tpot_ms", "ttft_ms"],
            "worker {i}'s latency histograms, V2-serialised"
        );
        shard_histograms.push(file.histograms);
        let records = read_lines(&outcome.dir.join("records.jsonl"));
        assert_eq!(
            records.len(),
            256,
            "worker {i}: its share of 1,024 requests"
        );
        assert!(
            records.iter().all(|r| r.id % 4 == i as u64),
            "global ids j·4+{i}"
        );
        union.extend(records);
    }
    let publisher = Publisher::new(Thresholds::default(), None, None);
    let tally = llm_stress::cli::merge::merge(&out.join(RUN), dir.discover(), None, &[], |s| {
        s.with_sink(publisher)
    })
    .expect("merged");
    assert_eq!((tally.trials, tally.failed.len()), (1, 0), "{tally:?}");

    let trial = merged_trial(&out, "perf");
    let report: TrialReport = read_json(&trial.join("summary.json"));
    let merged = report.summary().expect("a load trial").clone();
    let records = read_lines(&trial.join("records.jsonl"));
    assert_eq!(records.len(), 1024);
    let ids: Vec<u64> = records.iter().map(|r| r.id).collect();
    assert_eq!(
        ids,
        (0..1024).collect::<Vec<_>>(),
        "every request once, by global id"
    );
    assert_eq!(merged.requests_ok, 1024);
    // The merged summary is the single computation over the union of the records.
    assert_eq!(merged, Summary::from_records(&records, merged.duration_s));
    // The workers' histograms, added, give the same percentiles (the merge checks it too).
    for metric in ["ttft_ms", "tpot_ms", "itl_ms", "e2el_ms"] {
        let mut union = DistributionBuilder::new();
        for histograms in &shard_histograms {
            union.merge(&DistributionBuilder::decode(&histograms[metric]).expect("decodes"));
        }
        let (h, r) = (
            union.build().expect("samples"),
            *merged.distribution(metric).expect("measured"),
        );
        assert_eq!(
            (h.count, h.min, h.max, h.p5, h.p50, h.p90, h.p99, h.p999),
            (r.count, r.min, r.max, r.p5, r.p50, r.p90, r.p99, r.p999),
            "{metric}"
        );
    }
    let check = shard_histograms_check(&report);
    assert_eq!(check.status, llm_stress::judge::Status::Pass, "{check:?}");
    // … and the union is the shards' records, shifted onto the earliest window start.
    union.sort_by_key(|r| r.id);
    for (mine, theirs) in union.iter().zip(&records) {
        assert_eq!(mine.e2el_ms, theirs.e2el_ms);
        assert_eq!(mine.ttft_ms, theirs.ttft_ms);
    }
    assert!(
        out.join("results.csv").is_file(),
        "the run's results.csv row"
    );
    assert!(out.join(RUN).join("summary.md").is_file());
    assert!(out.join(RUN).join("report.html").is_file());
}

#[test]
fn an_open_loop_over_four_workers_sends_the_single_process_schedule() {
    let dir = CaseDir::named("workers-open");
    let plan = dir
        .model("m", "name: m\nmax_context: 256\nmax_concurrency: 256\n")
        .case(
            "c",
            "name: c\nmodel: m\nkinds: [perf]\n\
             server:\n  embedded: { ttft_ms: 1, tpot_ms: 1, slots: 256 }\n\
             matrix:\n  mode: custom\n  isl: [16]\n  osl: [2]\n  concurrency: [1]\n\
             load:\n  mode: open\n  rate: [1000]\n  arrival: poisson\n  requests: 1000\n  warmup: 0\n  seed: 7\n",
        )
        .plan();
    let out = dir.out();
    let shards = run_workers(&plan, &out, 4);
    let files: Vec<ShardFile> = shards
        .iter()
        .map(|o| read_json(&o.dir.join(shard::SHARD_FILE)))
        .collect();
    llm_stress::cli::merge::merge(&out.join(RUN), dir.discover(), None, &[], |s| s)
        .expect("merged");
    let records = read_lines(&merged_trial(&out, "perf").join("records.jsonl"));
    let ids: Vec<u64> = records.iter().map(|r| r.id).collect();
    assert_eq!(ids, (0..1000).collect::<Vec<_>>(), "every arrival once");
    // The single process's schedule of 1,000 arrivals at 1,000 req/s.
    let schedule =
        llm_stress::load::intended_offsets(&plan.case().spec.load, 1000.0, 1000, Share::WHOLE);
    let earliest = files
        .iter()
        .map(|f| f.window_start_unix_ms)
        .fold(f64::INFINITY, f64::min);
    for record in &records {
        let worker = (record.id % 4) as usize;
        // Arrival j·4+I went out from worker I at its schedule offset, from its own window
        // start: merged onto the earliest start, it is the offset plus that worker's shift.
        let shift_ms = files[worker].window_start_unix_ms - earliest;
        let expected = schedule[record.id as usize].as_secs_f64() * 1000.0 + shift_ms;
        let intended = record.intended_ms.expect("an open-loop record");
        assert!(
            (intended - expected).abs() < 1e-6,
            "arrival {}: intended {intended} ms, schedule {expected} ms",
            record.id
        );
    }
}

#[test]
fn workers_ask_the_accuracy_questions_by_index_and_the_merge_judges_them_and_the_server_metrics() {
    let dir = CaseDir::named("workers-accuracy");
    let plan = dir
        .model("m", "name: m\nmax_context: 4096\nmax_concurrency: 8\n")
        .case(
            "c",
            "name: c\nmodel: m\nkinds: [stress]\n\
             server:\n  embedded: { ttft_ms: 1, tpot_ms: 0, slots: 8 }\n\
             matrix:\n  mode: custom\n  isl: [16]\n  osl: [4]\n  concurrency: [3]\n\
             load: { warmup: 0, duration: 1s, timeout_s: 30 }\n\
             accuracy: { task: synthetic_arithmetic, limit: 10 }\n\
             slo:\n  - server.\"vllm:request_success_total\".increase > 0\n",
        )
        .plan();
    let out = dir.out();
    let shards = run_workers(&plan, &out, 3);
    let mut asked = Vec::new();
    for (i, outcome) in shards.iter().enumerate() {
        assert!(outcome.passed, "worker {i}: {:?}", outcome.report.verdict);
        asked.push(question_ids(&outcome.dir.join("accuracy.jsonl")));
    }
    assert_eq!(
        asked.iter().map(Vec::len).collect::<Vec<_>>(),
        [4, 3, 3],
        "questions I, I + 3, … of 10"
    );
    llm_stress::cli::merge::merge(&out.join(RUN), dir.discover(), None, &[], |s| s)
        .expect("merged");
    let trial = merged_trial(&out, "stress");
    let report: TrialReport = read_json(&trial.join("summary.json"));
    assert!(report.passed(), "{:?}", report.verdict);
    // The servers' metrics come with the merged trial (worker 0's scrape), so an SLO on one
    // is judged rather than finding nothing.
    let slo = report
        .verdict
        .checks
        .iter()
        .find(|c| c.name.contains("vllm:request_success_total"))
        .expect("the server-metric SLO");
    assert_eq!(slo.status, llm_stress::judge::Status::Pass, "{slo:?}");
    let accuracy = report.accuracy().expect("the merged trial judged accuracy");
    assert_eq!(accuracy.n, 10, "every worker's questions");
    let merged = question_ids(&trial.join("accuracy.jsonl"));
    // Back in evaluation order: question q came from worker q mod 3.
    let interleaved: Vec<String> = (0..10).map(|q| asked[q % 3][q / 3].clone()).collect();
    assert_eq!(merged, interleaved);
    let mut unique = merged.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 10, "no question asked twice");
}

#[test]
fn workers_whose_records_stream_to_a_spool_merge_exactly() {
    let dir = CaseDir::named("workers-spool");
    let plan = dir
        .model("m", "name: m\nmax_context: 256\nmax_concurrency: 64\n")
        .case(
            "c",
            "name: c\nmodel: m\nkinds: [perf]\n\
             server:\n  embedded: { ttft_ms: 2, tpot_ms: 1, slots: 64 }\n\
             matrix:\n  mode: custom\n  isl: [16]\n  osl: [4]\n  concurrency: [8]\n\
             load: { warmup: 0, duration: 1s }\n",
        )
        .plan();
    let out = dir.out();
    let shards = run_workers_streaming_from(&plan, &out, 2, Duration::ZERO);
    let mut streamed = 0;
    for (i, outcome) in shards.iter().enumerate() {
        assert!(outcome.passed, "worker {i}: {:?}", outcome.report.verdict);
        let spooled = outcome
            .spooled
            .as_ref()
            .expect("the worker's records streamed");
        assert!(spooled.records > 0, "worker {i} sent requests");
        streamed += spooled.records;
        let file: ShardFile = read_json(&outcome.dir.join(shard::SHARD_FILE));
        assert!(
            file.histograms.contains_key("ttft_ms"),
            "worker {i}'s histograms come from its spool's accumulator"
        );
        let records = read_lines(&outcome.dir.join("records.jsonl"));
        assert_eq!(records.len() as u64, spooled.records);
    }
    llm_stress::cli::merge::merge(&out.join(RUN), dir.discover(), None, &[], |s| s)
        .expect("merged");
    let trial = merged_trial(&out, "perf");
    let report: TrialReport = read_json(&trial.join("summary.json"));
    let merged = report.summary().expect("a load trial").clone();
    let records = read_lines(&trial.join("records.jsonl"));
    assert_eq!(records.len() as u64, streamed, "every worker's records");
    assert_eq!(merged, Summary::from_records(&records, merged.duration_s));
    let check = shard_histograms_check(&report);
    assert_eq!(check.status, llm_stress::judge::Status::Pass, "{check:?}");
}
