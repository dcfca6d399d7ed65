//! A session that is one worker of a trial spread over many client processes: where its
//! shards go (`OUT/RUN/shards/I/`, a normal output folder), the barrier its loads start at
//! (`OUT/RUN/shards/.barrier/`), and the shard file each of its trial folders holds beside
//! the usual files (`shard.json`: I/N, the share, the window's start on the wall clock, what
//! it saw at the barrier). `llm-stress merge` reads them back ([`super::merge`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::load::barrier::{self, FileBarrier, Observed};
use crate::load::{LoadOutcome, Share};
use crate::metrics::Accumulator;
use crate::metrics::distribution::{DistributionBuilder, EncodedBuilder};
use crate::report::trial_dir::safe_name;

/// The shard file in each of a worker's trial folders.
pub const SHARD_FILE: &str = "shard.json";

/// The folder under a run folder that holds the workers' shards.
pub const SHARDS_DIR: &str = "shards";

/// The folder under [`SHARDS_DIR`] that holds the barriers' ready files.
pub const BARRIER_DIR: &str = ".barrier";

/// The run folder `out/RUN` of run `run_id`.
pub fn run_dir(out: &Path, run_id: &str) -> PathBuf {
    out.join(safe_name(run_id))
}

/// Worker `index`'s output folder: `out/RUN/shards/I` (its trial folders are
/// `out/RUN/shards/I/RUN/{kind}/{case}/{combination}`, its `results.csv` beside them).
pub fn worker_out(out: &Path, run_id: &str, index: u32) -> PathBuf {
    run_dir(out, run_id)
        .join(SHARDS_DIR)
        .join(index.to_string())
}

/// What makes a session a worker.
#[derive(Debug, Clone)]
pub struct Worker {
    /// Which worker of how many.
    pub share: Share,
    /// The shared folder the barriers are made in (`out/RUN/shards/.barrier`).
    pub barrier_dir: PathBuf,
    /// How long a worker waits at a barrier for the others.
    pub timeout: Duration,
    /// How long after the last worker is ready the load starts.
    pub margin: Duration,
    /// The first load's start, when given (`--start-at`); later ones meet at the barrier.
    pub start_at: Option<SystemTime>,
}

impl Worker {
    /// Worker `share` of run `run_id` under the output folder `out`, with the default barrier
    /// timeout and margin.
    pub fn new(share: Share, out: &Path, run_id: &str) -> Worker {
        Worker {
            share,
            barrier_dir: run_dir(out, run_id).join(SHARDS_DIR).join(BARRIER_DIR),
            timeout: barrier::DEFAULT_TIMEOUT,
            margin: barrier::DEFAULT_MARGIN,
            start_at: None,
        }
    }

    /// The barrier of the trial named `full_name` (a trial's loads meet there).
    pub(super) fn barrier(&self, full_name: &str) -> FileBarrier {
        FileBarrier::new(
            self.barrier_dir.join(safe_name(full_name)),
            self.share,
            self.timeout,
            self.start_at,
        )
        .with_margin(self.margin)
    }
}

/// `shard.json`: what a worker's trial folder is a share of.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ShardFile {
    /// I (0-based).
    pub index: u32,
    /// N.
    pub count: u32,
    /// The share of this trial's load it sent (`I/N`; a closed loop of C < N streams is
    /// shared by C workers, the others `idle`).
    pub share: String,
    /// The start of its measured window (every record's `send_ms` is from it), milliseconds
    /// since the Unix epoch on its clock.
    pub window_start_unix_ms: f64,
    /// Its measured window, seconds.
    pub duration_s: f64,
    /// Its open-loop arrivals that were never sent.
    pub dropped: u64,
    /// What it saw at each barrier (one per run of the load).
    pub barrier: Vec<Observed>,
    /// Why it could not start with the others, if it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub barrier_error: Option<String>,
    /// Its latency distributions (`ttft_ms`, …), each an HDR histogram in the V2
    /// serialisation with its exact sums: the merge adds them into the union's and checks
    /// they give the percentiles the union's records give.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub histograms: BTreeMap<String, EncodedBuilder>,
}

impl ShardFile {
    /// The shard file of `outcome`, sent as `share` of `worker`, with what `barrier` saw.
    pub(super) fn new(
        worker: &Worker,
        share: Share,
        outcome: &LoadOutcome,
        barrier: &FileBarrier,
    ) -> ShardFile {
        let window_start = barrier.wall_clock_of(outcome.window_start);
        let mut accumulator = Accumulator::new();
        for record in &outcome.records {
            accumulator.add(record);
        }
        let histograms = encoded(accumulator.distributions());
        let (seen, errors): (Vec<_>, Vec<_>) =
            barrier.observed().into_iter().partition(Result::is_ok);
        ShardFile {
            index: worker.share.index(),
            count: worker.share.count(),
            share: share.to_string(),
            window_start_unix_ms: barrier::unix_ms(window_start),
            duration_s: outcome.duration_s,
            dropped: outcome.dropped,
            barrier: seen.into_iter().flatten().collect(),
            barrier_error: errors
                .into_iter()
                .filter_map(Result::err)
                .map(|e| e.to_string())
                .next(),
            histograms,
        }
    }

    /// Takes the histograms of a load whose records streamed to a spool (its outcome held
    /// none): the spool's accumulator saw every record.
    pub(super) fn with_distributions<'a>(
        mut self,
        distributions: impl IntoIterator<Item = (&'static str, &'a DistributionBuilder)>,
    ) -> ShardFile {
        self.histograms = encoded(distributions);
        self
    }
}

/// Each distribution with samples, HDR V2-encoded, by name.
fn encoded<'a>(
    distributions: impl IntoIterator<Item = (&'static str, &'a DistributionBuilder)>,
) -> BTreeMap<String, EncodedBuilder> {
    distributions
        .into_iter()
        .filter_map(|(name, builder)| Some((name.to_string(), builder.encode()?)))
        .collect()
}
