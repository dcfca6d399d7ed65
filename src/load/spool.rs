//! Records of a long load on their way to disk, so memory stays flat however long it runs.
//!
//! A streamed load ([`RequestSource::with_spool`](super::RequestSource::with_spool)) hands each
//! finished measured record to [`Spool::take`]: the record feeds the streaming summary (one
//! [`Accumulator`] for the whole load and one per endpoint), a live [`WindowsBuilder`] and the
//! few facts the run's checks need ([`Evidence`]), then goes through a bounded channel
//! ([`CHANNEL_RECORDS`]) to one writer thread that appends it to the spool file as one JSON
//! line. The writer is the only one writing the file, so no line is torn; it flushes at least
//! every [`FLUSH_EVERY`] while records come and at the end. A sender waits when the channel is
//! full: a disk slower than the load slows the drivers down rather than growing memory.
//!
//! The spool file is `records.jsonl` in the making: the trial-folder writer moves it into the
//! trial's folder. Its lines are in completion order, not request-id order.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::metrics::distribution::DistributionBuilder;
use crate::metrics::windows::{Window, WindowsBuilder, window_length};
use crate::metrics::{Accumulator, ErrorClass, RequestRecord, RequestSlo, Summary};

/// The shortest planned load whose records stream to a spool by default: a shorter one holds
/// few records (20 s at 500 requests/s is 10,000), and keeps them in its outcome for whoever
/// reads them there.
pub const STREAM_FROM: Duration = Duration::from_secs(20);

/// Most records waiting in the channel for the writer: enough for several seconds of a fast
/// load (a few megabytes of records), so a disk that stalls for a moment (another process
/// writing back gigabytes) does not hold the drivers up; one slower than the load for longer
/// does.
pub const CHANNEL_RECORDS: usize = 8192;

/// The writer flushes at least this often while records come.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Why the spool could not keep every record.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The spool file could not be created, written or read.
    #[error("cannot {action} the record spool {path}: {source}")]
    Io {
        /// The spool file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A line of the spool is not a record.
    #[error("line {line} of the record spool {path} is not a record: {message}")]
    Corrupt {
        /// The spool file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What was wrong.
        message: String,
    },
    /// The writer thread stopped without saying why (it panicked).
    #[error("the record spool's writer stopped: {0}")]
    Writer(String),
    /// Records were handed over after the writer had stopped.
    #[error("{0} records could not be handed to the record spool's writer")]
    Lost(u64),
}

fn io<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(std::io::Error) -> SpoolError + 'a {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}

/// What the run's checks need of a load's records, gathered one record at a time: the first
/// `client` error, the answered requests with the earliest answer, and the `connect` failures
/// sent after it (what [`crate::load`]'s callers judge as a server that stopped answering).
/// Exact for any completion order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidence {
    /// The detail of the `client` error of the lowest request id, with that id.
    pub first_client_error: Option<(u64, String)>,
    /// Requests the server answered (with any status).
    pub answered: u64,
    /// The earliest instant an answer ended (or, without an end, began), ms into the window.
    pub first_answer_ms: Option<f64>,
    /// `connect` failures sent after the first answer.
    pub refused: u64,
    /// Of those, the earliest sent: its send time (ms) and detail.
    pub first_refused: Option<(f64, Option<String>)>,
    /// `connect` failures sent no later than the first answer so far (they count as refused
    /// if an earlier answer turns up later): a few at the start of a healthy run.
    pending: Vec<(f64, Option<String>)>,
    /// Requests cut off at the trial's time limit (their detail begins with
    /// [`super::CUT_OFF_NOTE`]).
    pub cut_off: u64,
}

impl Evidence {
    /// Adds one record.
    pub fn add(&mut self, r: &RequestRecord) {
        if r.error_detail
            .as_deref()
            .is_some_and(|d| d.starts_with(super::CUT_OFF_NOTE))
        {
            self.cut_off += 1;
        }
        if r.error == Some(ErrorClass::Client)
            && self
                .first_client_error
                .as_ref()
                .is_none_or(|(id, _)| r.id < *id)
        {
            self.first_client_error = Some((r.id, r.error_detail.clone().unwrap_or_default()));
        }
        if r.status.is_some() {
            self.answered += 1;
            let at = r.send_ms + r.e2el_ms.or(r.ttft_ms).unwrap_or(0.0);
            if self.first_answer_ms.is_none_or(|first| at < first) {
                self.first_answer_ms = Some(at);
                let pending = std::mem::take(&mut self.pending);
                for (send_ms, detail) in pending {
                    self.connect_failure(send_ms, detail);
                }
            }
        }
        if r.error == Some(ErrorClass::Connect) {
            self.connect_failure(r.send_ms, r.error_detail.clone());
        }
    }

    fn connect_failure(&mut self, send_ms: f64, detail: Option<String>) {
        match self.first_answer_ms {
            Some(first) if send_ms > first => {
                self.refused += 1;
                if self
                    .first_refused
                    .as_ref()
                    .is_none_or(|(earliest, _)| send_ms < *earliest)
                {
                    self.first_refused = Some((send_ms, detail));
                }
            }
            _ => self.pending.push((send_ms, detail)),
        }
    }
}

/// The running figures of a streamed load.
#[derive(Debug)]
struct Tally {
    all: Accumulator,
    endpoints: Vec<Accumulator>,
    windows: WindowsBuilder,
    evidence: Evidence,
}

/// The records of one streamed load: see the module documentation.
#[derive(Debug)]
pub struct Spool {
    path: PathBuf,
    width_s: f64,
    sender: Mutex<Option<mpsc::Sender<RequestRecord>>>,
    writer: Mutex<Option<JoinHandle<Result<u64, SpoolError>>>>,
    tally: Mutex<Tally>,
    lost: std::sync::atomic::AtomicU64,
}

/// A lock that a panicking holder did not spoil: every update leaves the figures whole.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A finished spool: the file with every record, and the figures streamed from them.
#[derive(Debug)]
pub struct Finished {
    /// The file, for the trial's folder.
    pub spooled: Spooled,
    /// The summary of every record over the measured window.
    pub summary: Summary,
    /// One summary per endpoint, in endpoint order.
    pub endpoints: Vec<Summary>,
    /// What the run's checks need.
    pub evidence: Evidence,
}

/// A spool file holding every record of a streamed load, one JSON line each in completion
/// order, and the load over time when the live windows could give it exactly.
#[derive(Debug, Clone, PartialEq)]
pub struct Spooled {
    /// The spool file (moved into the trial's folder as `records.jsonl` when it is written).
    pub path: PathBuf,
    /// Records in it.
    pub records: u64,
    /// The windows of `windows.csv`, when the live builder's width is the one the measured
    /// window calls for and no latency came late; `None`: fold the file.
    pub windows: Option<Vec<Window>>,
}

impl Spooled {
    /// Reads every record back, sorted by request id (as an unstreamed load keeps them).
    pub fn read_back(&self) -> Result<Vec<RequestRecord>, SpoolError> {
        let mut records = Vec::new();
        for_each_record(&self.path, |r| records.push(r))?;
        records.sort_by_key(|r| r.id);
        Ok(records)
    }
}

/// Calls `each` with every record of a JSONL file, one line at a time.
pub fn for_each_record(path: &Path, mut each: impl FnMut(RequestRecord)) -> Result<(), SpoolError> {
    let file = File::open(path).map_err(io(path, "open"))?;
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io(path, "read"))?;
        if line.trim().is_empty() {
            continue;
        }
        let record = serde_json::from_str(&line).map_err(|e| SpoolError::Corrupt {
            path: path.to_path_buf(),
            line: i + 1,
            message: e.to_string(),
        })?;
        each(record);
    }
    Ok(())
}

impl Spool {
    /// Creates the spool file at `path` (its folder too) and starts its writer on the current
    /// Tokio runtime. `endpoints` summaries are kept besides the whole load's, goodput counted
    /// against `goodput`, and the live windows are as wide as a measured window of
    /// `planned_s` calls for ([`window_length`]).
    pub fn create(
        path: PathBuf,
        endpoints: usize,
        goodput: Option<&RequestSlo>,
        planned_s: f64,
    ) -> Result<Spool, SpoolError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir, "create the folder of"))?;
        }
        let file = File::create(&path).map_err(io(&path, "create"))?;
        let (sender, receiver) = mpsc::channel(CHANNEL_RECORDS);
        let writer_path = path.clone();
        let writer = tokio::task::spawn_blocking(move || write(&writer_path, file, receiver));
        let width_s = window_length(planned_s);
        Ok(Spool {
            path,
            width_s,
            sender: Mutex::new(Some(sender)),
            writer: Mutex::new(Some(writer)),
            tally: Mutex::new(Tally {
                all: Accumulator::with_goodput(goodput),
                endpoints: (0..endpoints)
                    .map(|_| Accumulator::with_goodput(goodput))
                    .collect(),
                windows: WindowsBuilder::new(width_s),
                evidence: Evidence::default(),
            }),
            lost: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The spool file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes one finished measured record: counts it and hands it to the writer, waiting while
    /// the channel is full.
    pub async fn take(&self, record: RequestRecord) {
        {
            let mut tally = lock(&self.tally);
            tally.all.add(&record);
            if let Some(endpoint) = tally.endpoints.get_mut(record.endpoint as usize) {
                endpoint.add(&record);
            }
            tally.windows.add(&record);
            tally.evidence.add(&record);
        }
        let sender = lock(&self.sender).clone();
        let sent = match sender {
            Some(sender) => sender.send(record).await.is_ok(),
            None => false,
        };
        if !sent {
            self.lost.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Records taken so far.
    pub fn records(&self) -> u64 {
        lock(&self.tally).all.requests()
    }

    /// The latency distributions of every record taken so far (`ttft_ms`, …; the ones with
    /// samples), as the whole load's accumulator holds them.
    pub fn distributions(&self) -> Vec<(&'static str, DistributionBuilder)> {
        lock(&self.tally)
            .all
            .distributions()
            .into_iter()
            .map(|(name, builder)| (name, builder.clone()))
            .collect()
    }

    /// Latency samples the live windows hold (a few windows' worth).
    pub fn held(&self) -> usize {
        lock(&self.tally).windows.held()
    }

    /// Closes the channel, waits for the writer to write and flush every record, and returns
    /// the file with the figures over a measured window of `duration_s`.
    pub async fn finish(&self, duration_s: f64) -> Result<Finished, SpoolError> {
        drop(lock(&self.sender).take());
        let writer = lock(&self.writer).take();
        let written = match writer {
            Some(writer) => writer
                .await
                .map_err(|e| SpoolError::Writer(e.to_string()))??,
            None => return Err(SpoolError::Writer("already finished".into())),
        };
        let lost = self.lost.load(std::sync::atomic::Ordering::Relaxed);
        if lost > 0 {
            return Err(SpoolError::Lost(lost));
        }
        let tally = lock(&self.tally);
        let exact_windows = tally.windows.late() == 0 && window_length(duration_s) == self.width_s;
        Ok(Finished {
            spooled: Spooled {
                path: self.path.clone(),
                records: written,
                windows: exact_windows.then(|| tally.windows.build(duration_s)),
            },
            summary: tally.all.summary(duration_s),
            endpoints: tally
                .endpoints
                .iter()
                .map(|a| a.summary(duration_s))
                .collect(),
            evidence: tally.evidence.clone(),
        })
    }
}

/// The writer: one JSON line per record, flushed at least every [`FLUSH_EVERY`] and at the
/// end. Returns the records written.
fn write(
    path: &Path,
    file: File,
    mut receiver: mpsc::Receiver<RequestRecord>,
) -> Result<u64, SpoolError> {
    let mut out = BufWriter::new(file);
    let mut line = Vec::new();
    let mut written = 0u64;
    let mut flushed = Instant::now();
    while let Some(record) = receiver.blocking_recv() {
        line.clear();
        serde_json::to_writer(&mut line, &record).map_err(|e| SpoolError::Io {
            path: path.to_path_buf(),
            action: "serialise a record for",
            source: e.into(),
        })?;
        line.push(b'\n');
        out.write_all(&line).map_err(io(path, "write"))?;
        written += 1;
        if flushed.elapsed() >= FLUSH_EVERY {
            out.flush().map_err(io(path, "flush"))?;
            flushed = Instant::now();
        }
    }
    out.flush().map_err(io(path, "flush"))?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: u64, send_ms: f64, error: Option<ErrorClass>) -> RequestRecord {
        RequestRecord {
            id,
            send_ms,
            status: error.is_none().then_some(200),
            e2el_ms: error.is_none().then_some(50.0),
            ttft_ms: error.is_none().then_some(10.0),
            output_tokens: error.is_none().then_some(4),
            error,
            error_detail: error.map(|c| format!("detail {id} {}", c.as_str())),
            ..RequestRecord::default()
        }
    }

    /// The facts the checks read, from every record at once (as the judge computes them).
    fn facts_of(records: &[RequestRecord]) -> (Option<String>, u64, u64, Option<f64>) {
        let mut sorted = records.to_vec();
        sorted.sort_by_key(|r| r.id);
        let client = sorted
            .iter()
            .find(|r| r.error == Some(ErrorClass::Client))
            .and_then(|r| r.error_detail.clone());
        let answered = sorted.iter().filter(|r| r.status.is_some()).count() as u64;
        let first = sorted
            .iter()
            .filter(|r| r.status.is_some())
            .map(|r| r.send_ms + r.e2el_ms.unwrap_or(0.0))
            .min_by(f64::total_cmp);
        let refused: Vec<&RequestRecord> = sorted
            .iter()
            .filter(|r| r.error == Some(ErrorClass::Connect))
            .filter(|r| first.is_some_and(|f| r.send_ms > f))
            .collect();
        let first_refused = refused.iter().map(|r| r.send_ms).min_by(f64::total_cmp);
        (client, answered, refused.len() as u64, first_refused)
    }

    #[rstest::rstest]
    #[case::in_order(false)]
    #[case::reversed(true)]
    fn evidence_in_any_order_equals_the_facts_of_all_records(#[case] reversed: bool) {
        let mut records = vec![
            record(0, 0.0, Some(ErrorClass::Connect)),
            record(1, 100.0, None),
            record(2, 120.0, Some(ErrorClass::Connect)),
            record(3, 130.0, Some(ErrorClass::Client)),
            record(4, 500.0, Some(ErrorClass::Connect)),
            // Before the first answer known when it comes in order, after the first answer.
            record(8, 95.0, Some(ErrorClass::Connect)),
            record(5, 40.0, None),
            record(6, 600.0, Some(ErrorClass::Client)),
            record(7, 80.0, Some(ErrorClass::Connect)),
        ];
        if reversed {
            records.reverse();
        }
        let mut evidence = Evidence::default();
        for r in &records {
            evidence.add(r);
        }
        let (client, answered, refused, first) = facts_of(&records);
        assert_eq!(evidence.first_client_error.map(|(_, d)| d), client);
        assert_eq!(evidence.answered, answered);
        assert_eq!(evidence.first_answer_ms, Some(90.0));
        assert_eq!(
            (evidence.refused, refused),
            (3, 3),
            "ids 2, 4 and 7 but not 0"
        );
        assert_eq!(evidence.first_refused.map(|(s, _)| s), first);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_record_reaches_the_file_and_the_summary() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = dir.path().join("spool").join("t.jsonl.part");
        let spool = Spool::create(path.clone(), 2, None, 20.0).expect("created");
        let records: Vec<RequestRecord> = (0..3000u64)
            .map(|id| RequestRecord {
                endpoint: (id % 2) as u32,
                chunk_ms: vec![10.0, 20.0, 30.0],
                chunk_tokens: vec![1, 1, 2],
                ..record(id, id as f64 * 5.0, None)
            })
            .collect();
        // Handed over in another order than the ids, from two tasks at once.
        let spool = std::sync::Arc::new(spool);
        let (odd, even): (Vec<_>, Vec<_>) =
            records.iter().cloned().rev().partition(|r| r.id % 2 == 1);
        let tasks: Vec<_> = [odd, even]
            .into_iter()
            .map(|part| {
                let spool = std::sync::Arc::clone(&spool);
                tokio::spawn(async move {
                    for r in part {
                        spool.take(r).await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("joined");
        }
        let finished = spool.finish(15.0).await.expect("finished");
        assert_eq!(finished.spooled.records, 3000);
        let back = finished.spooled.read_back().expect("read back");
        assert_eq!(back, records, "every record, by id");
        assert_eq!(finished.summary.requests_ok, 3000);
        assert_eq!(finished.endpoints.len(), 2);
        assert_eq!(finished.endpoints[0].requests_ok, 1500);
        let whole = Summary::from_records(&records, 15.0);
        assert_eq!(finished.summary.ttft_ms, whole.ttft_ms);
    }
}
