//! One trial over many client processes: four workers (`--worker i/4`, here threads of one
//! process, each with a session of its own) write shards, and `llm-stress merge` turns them
//! into one trial whose summary is the single computation over the union of their records.

use std::path::Path;
use std::time::Duration;

use llm_stress::load::Share;
use llm_stress::metrics::{RequestRecord, Summary};
use llm_stress::report::TrialReport;
use llm_stress::report::analysis::Thresholds;
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
    std::fs::read_to_string(path)
        .expect("records")
        .lines()
        .map(|line| serde_json::from_str(line).expect("a record"))
        .collect()
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> T {
    serde_json::from_str(&std::fs::read_to_string(path).expect("file")).expect("json")
}

#[test]
fn four_workers_of_128_streams_merge_into_one_512_stream_trial() {
    let dir = CaseDir::named("workers-512");
    let plan = dir
        .model("m", "name: m\nmax_context: 256\nmax_concurrency: 512\n")
        .case("c", CASE)
        .plan();
    let out = dir.out();
    let shards: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let (plan, out) = (&plan, &out);
                scope.spawn(move || {
                    let share = Share::new(i, 4).expect("a share");
                    let mut worker = Worker::new(share, out, RUN);
                    worker.margin = Duration::from_millis(200);
                    worker.timeout = Duration::from_secs(120);
                    let worker_out = shard::worker_out(out, RUN, i);
                    session(context(RUN, worker_out, None))
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
    });
    let mut union = Vec::new();
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

    let merged_dir = out.join(RUN).join("perf").join("c");
    let trial = std::fs::read_dir(&merged_dir)
        .expect("the merged trial's folder")
        .flatten()
        .map(|e| e.path())
        .next()
        .expect("one trial folder");
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
