//! Merging the workers' shards of a run (`OUT/RUN/shards/I/`) into what one process would have
//! measured: per trial, the union of the shards' records, each shard's times shifted by its
//! window start's wall-clock difference from the earliest, over the union window (earliest
//! start to latest end). The merged load is then replayed through the session
//! ([`super::Session::replaying`]), so the summary, the judge and every sink are the ones a
//! single process runs: the merged summary is `Summary::from_records` over the union.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::shard::{SHARD_FILE, SHARDS_DIR, ShardFile};
use crate::accuracy::summary::ScoredSample;
use crate::metrics::RequestRecord;
use crate::metrics::distribution::DistributionBuilder;
use crate::report::trial_dir::{ACCURACY_FILE, RECORDS_FILE};
use crate::server_metrics::ServerMetrics;

/// A trial's merged load, replayed in place of driving a server.
#[derive(Debug, Clone, Default)]
pub struct Replay {
    /// The union of the shards' records, by global id, times from the union window's start.
    pub records: Vec<RequestRecord>,
    /// The union window: earliest shard start to latest shard end, seconds.
    pub duration_s: f64,
    /// Open-loop arrivals never sent, summed over the shards.
    pub dropped: u64,
    /// The accuracy questions, in evaluation order (worker I of N asked questions I, I + N, …).
    pub samples: Vec<ScoredSample>,
    /// Why a worker could not start with the others, for each that could not.
    pub barrier_errors: Vec<String>,
    /// Each shard's file, by worker index.
    pub shards: Vec<ShardFile>,
    /// The servers' scraped metrics as worker 0 saw them: every worker scrapes the same
    /// servers over the same window (they start together), so one worker's scrape is the
    /// servers' own account of the whole load.
    pub server_metrics: Vec<ServerMetrics>,
    /// The workers' latency histograms (`ttft_ms`, …) added together: the union's, from the
    /// histograms alone (shards that carry none add nothing).
    pub histograms: BTreeMap<String, DistributionBuilder>,
}

/// Every trial of a run's shards, merged.
#[derive(Debug, Clone, Default)]
pub struct MergedRun {
    /// The run id the workers wrote under.
    pub run_id: String,
    /// Each trial's merged load, by its full name (`[kind] case::combination`).
    pub trials: BTreeMap<String, Replay>,
}

/// Why the shards cannot be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// No `shards/I` folder.
    #[error("{0}: no worker shards (shards/0, shards/1, …) in this run folder")]
    NoShards(PathBuf),
    /// A shard's run could not be read.
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
    /// A file could not be read or parsed.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A shard's histogram could not be read.
    #[error("{trial}: worker {worker}'s `{metric}` histogram: {message}")]
    Histogram {
        /// The trial's full name.
        trial: String,
        /// The worker's index.
        worker: u32,
        /// The metric (`ttft_ms`, …).
        metric: String,
        /// What is wrong with it.
        message: String,
    },
    /// A trial lacks some workers' shards, or they disagree on N.
    #[error("{trial}: shards from workers {have:?} of {count}; every worker's shard is needed")]
    Incomplete {
        /// The trial's full name.
        trial: String,
        /// The worker indices found.
        have: Vec<u32>,
        /// N, as the shards say.
        count: u32,
    },
}

fn file_error(path: &Path, message: impl std::fmt::Display) -> MergeError {
    MergeError::File {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// One shard of one trial.
#[derive(Clone)]
struct Piece {
    shard: ShardFile,
    server_metrics: Vec<ServerMetrics>,
    records: Vec<RequestRecord>,
    samples: Vec<ScoredSample>,
}

/// Reads and merges every trial of the run folder `run_dir` (`OUT/RUN`).
pub fn read_run(run_dir: &Path) -> Result<MergedRun, MergeError> {
    let shards_dir = run_dir.join(SHARDS_DIR);
    let run_name = run_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut workers: Vec<(u32, PathBuf)> = std::fs::read_dir(&shards_dir)
        .map_err(|_| MergeError::NoShards(run_dir.to_path_buf()))?
        .flatten()
        .filter_map(|e| {
            let index = e.file_name().to_str()?.parse().ok()?;
            e.path().is_dir().then(|| (index, e.path()))
        })
        .collect();
    workers.sort();
    if workers.is_empty() {
        return Err(MergeError::NoShards(run_dir.to_path_buf()));
    }
    let mut run_id = run_name.clone();
    let mut pieces: BTreeMap<String, Vec<Piece>> = BTreeMap::new();
    for (_, out) in &workers {
        let run = crate::report::run::load(out, Some(&run_name))?;
        run_id = run.run_id.clone();
        for trial in run.trials {
            let crate::report::TrialBody::Load(body) = &trial.report.body else {
                continue;
            };
            let server_metrics = body.server_metrics.clone();
            let shard_path = trial.dir.join(SHARD_FILE);
            let text =
                std::fs::read_to_string(&shard_path).map_err(|e| file_error(&shard_path, e))?;
            let shard: ShardFile =
                serde_json::from_str(&text).map_err(|e| file_error(&shard_path, e))?;
            let records = read_lines(&trial.dir.join(RECORDS_FILE))?;
            let accuracy = trial.dir.join(ACCURACY_FILE);
            let samples = if accuracy.is_file() {
                read_lines(&accuracy)?
            } else {
                Vec::new()
            };
            pieces
                .entry(trial.report.full_name())
                .or_default()
                .push(Piece {
                    shard,
                    server_metrics,
                    records,
                    samples,
                });
        }
    }
    let mut trials = BTreeMap::new();
    for (name, pieces) in pieces {
        let replay = merge(&name, pieces)?;
        trials.insert(name, replay);
    }
    Ok(MergedRun { run_id, trials })
}

/// One JSON value per line.
fn read_lines<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>, MergeError> {
    let text = std::fs::read_to_string(path).map_err(|e| file_error(path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| file_error(path, format!("line {}: {e}", i + 1)))
        })
        .collect()
}

/// The shards of one trial as one load. See the module documentation.
fn merge(trial: &str, mut pieces: Vec<Piece>) -> Result<Replay, MergeError> {
    pieces.sort_by_key(|p| p.shard.index);
    let count = pieces.first().map_or(0, |p| p.shard.count);
    let have: Vec<u32> = pieces.iter().map(|p| p.shard.index).collect();
    let whole = (0..count).collect::<Vec<u32>>();
    if have != whole || pieces.iter().any(|p| p.shard.count != count) {
        return Err(MergeError::Incomplete {
            trial: trial.to_string(),
            have,
            count,
        });
    }
    let earliest = pieces
        .iter()
        .map(|p| p.shard.window_start_unix_ms)
        .fold(f64::INFINITY, f64::min);
    let mut replay = Replay::default();
    let mut end_ms = 0.0f64;
    let mut samples = Vec::with_capacity(pieces.len());
    for piece in pieces {
        let shift_ms = piece.shard.window_start_unix_ms - earliest;
        end_ms = end_ms.max(shift_ms + piece.shard.duration_s * 1000.0);
        replay
            .records
            .extend(piece.records.into_iter().map(|mut r| {
                r.send_ms += shift_ms;
                r.intended_ms = r.intended_ms.map(|t| t + shift_ms);
                r
            }));
        for (metric, encoded) in &piece.shard.histograms {
            let builder =
                DistributionBuilder::decode(encoded).map_err(|e| MergeError::Histogram {
                    trial: trial.to_string(),
                    worker: piece.shard.index,
                    metric: metric.clone(),
                    message: e.to_string(),
                })?;
            replay
                .histograms
                .entry(metric.clone())
                .or_default()
                .merge(&builder);
        }
        replay.dropped += piece.shard.dropped;
        samples.push(piece.samples);
        if piece.shard.index == 0 {
            replay.server_metrics = piece.server_metrics;
        }
        replay
            .barrier_errors
            .extend(piece.shard.barrier_error.clone());
        replay.shards.push(piece.shard);
    }
    replay.samples = interleave(samples);
    replay.records.sort_by_key(|r| r.id);
    if replay.records.iter().any(|r| r.prefix_group.is_some()) {
        // Which request was the first of its prefix is a question about the union.
        for record in &mut replay.records {
            record.prefix_cold = false;
        }
        crate::metrics::prefix::mark_cold(&mut replay.records);
    }
    replay.duration_s = end_ms / 1000.0;
    Ok(replay)
}

/// The workers' accuracy samples (worker I asked questions I, I + N, …), in question order:
/// one from each worker in turn.
fn interleave(shares: Vec<Vec<ScoredSample>>) -> Vec<ScoredSample> {
    let total = shares.iter().map(Vec::len).sum();
    let mut iters: Vec<_> = shares.into_iter().map(Vec::into_iter).collect();
    let mut merged = Vec::with_capacity(total);
    while merged.len() < total {
        for share in &mut iters {
            merged.extend(share.next());
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(index: u32, start_ms: f64, duration_s: f64, ids: &[u64]) -> Piece {
        Piece {
            shard: ShardFile {
                index,
                count: 2,
                share: format!("{index}/2"),
                window_start_unix_ms: start_ms,
                duration_s,
                dropped: u64::from(index),
                barrier: Vec::new(),
                barrier_error: None,
                histograms: BTreeMap::new(),
            },
            server_metrics: vec![ServerMetrics {
                endpoint: format!("seen by worker {index}"),
                ..ServerMetrics::default()
            }],
            records: ids
                .iter()
                .map(|&id| RequestRecord {
                    id,
                    send_ms: 1.0,
                    intended_ms: Some(0.5),
                    ..RequestRecord::default()
                })
                .collect(),
            samples: Vec::new(),
        }
    }

    #[test]
    fn the_workers_histograms_add_up_and_a_broken_one_is_an_error() {
        let encoded = |values: &[f64]| {
            let mut builder = DistributionBuilder::new();
            builder.extend(values.iter().copied());
            builder.encode().expect("samples")
        };
        let mut first = piece(0, 0.0, 1.0, &[0]);
        first
            .shard
            .histograms
            .insert("ttft_ms".into(), encoded(&[1.0, 2.0]));
        let mut second = piece(1, 0.0, 1.0, &[1]);
        second
            .shard
            .histograms
            .insert("ttft_ms".into(), encoded(&[3.0]));
        let replay = merge("t", vec![first.clone(), second.clone()]).expect("merges");
        let union = replay.histograms["ttft_ms"].build().expect("samples");
        assert_eq!((union.count, union.min, union.max), (3, 1.0, 3.0));
        second
            .shard
            .histograms
            .get_mut("ttft_ms")
            .expect("there")
            .hdr_v2 = "AAAA".into();
        let error = merge("t", vec![first, second]).expect_err("worker 1's is broken");
        assert!(
            error
                .to_string()
                .contains("t: worker 1's `ttft_ms` histogram"),
            "{error}"
        );
    }

    #[test]
    fn shards_shift_onto_the_earliest_start_and_span_the_union_window() {
        let merged = merge(
            "t",
            vec![
                piece(1, 1_000_010.0, 2.0, &[1, 3]),
                piece(0, 1_000_000.0, 1.0, &[0, 2]),
            ],
        )
        .expect("complete");
        let ids: Vec<u64> = merged.records.iter().map(|r| r.id).collect();
        assert_eq!(ids, [0, 1, 2, 3]);
        assert_eq!(merged.records[1].send_ms, 11.0);
        assert_eq!(merged.records[1].intended_ms, Some(10.5));
        assert_eq!(merged.records[0].send_ms, 1.0);
        assert_eq!(
            merged.server_metrics[0].endpoint, "seen by worker 0",
            "the servers' metrics as worker 0 scraped them"
        );
        assert!(
            (merged.duration_s - 2.01).abs() < 1e-9,
            "{}",
            merged.duration_s
        );
        assert_eq!(merged.dropped, 1);
    }

    #[test]
    fn a_missing_worker_is_an_error() {
        let error = merge("t", vec![piece(1, 0.0, 1.0, &[1])]).expect_err("worker 0 is missing");
        assert!(error.to_string().contains("workers [1] of 2"), "{error}");
    }
}
