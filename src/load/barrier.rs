//! One start for the workers of a trial: each writes a ready file holding its wall clock into
//! a folder they share (`OUT/RUN/shards/.barrier/<trial>/<run>/I`), waits until all N are
//! there, and starts its measured window at one wall-clock instant computed from the files
//! (the latest ready time plus a margin), or at the `--start-at` instant given for the first
//! run. Each keeps what it observed (every worker's ready time, the start, how late it
//! started) for its shard.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

use super::share::Share;

/// How long a worker waits for the others unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// The start is this long after the last worker was ready, so every worker sees every file
/// before it (polling, a shared file system's attribute cache) and can sleep to it.
pub const DEFAULT_MARGIN: Duration = Duration::from_millis(1500);

/// How often the folder is looked at while waiting.
const POLL: Duration = Duration::from_millis(20);

/// Why the workers could not start together.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BarrierError {
    /// Not every worker wrote its ready file in time.
    #[error(
        "waited {waited_s:.0} s in {dir} for all {count} workers to be ready; only {ready} were \
         (are the other workers running, with the same --out, run id and worker count?)"
    )]
    Timeout {
        /// The barrier's folder.
        dir: PathBuf,
        /// Seconds waited.
        waited_s: f64,
        /// Ready files found.
        ready: u32,
        /// Workers expected.
        count: u32,
    },
    /// The folder or a file could not be written or read.
    #[error("{path}: {message}")]
    Io {
        /// The path.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// What a worker saw at the barrier, in milliseconds since the Unix epoch on its own clock.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Observed {
    /// Each worker's ready time, by index, as it wrote it (its own clock).
    pub ready_unix_ms: Vec<f64>,
    /// The agreed start of the measured window.
    pub start_unix_ms: f64,
    /// Latest minus earliest ready time: the spread of arrivals at the barrier plus the
    /// workers' clock offsets (an upper bound on the offset between two clocks when the
    /// workers arrived together).
    pub ready_spread_ms: f64,
    /// How late this worker woke for the start (its own clock; negative never).
    pub late_ms: f64,
}

/// A file barrier over a shared folder. See the module documentation.
#[derive(Debug)]
pub struct FileBarrier {
    dir: PathBuf,
    share: Share,
    timeout: Duration,
    margin: Duration,
    start_at: Option<SystemTime>,
    runs: AtomicU32,
    observed: Mutex<Vec<Result<Observed, BarrierError>>>,
    anchor: Mutex<Option<(SystemTime, Instant)>>,
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms(at: SystemTime) -> f64 {
    match at.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64() * 1000.0,
        Err(e) => -e.duration().as_secs_f64() * 1000.0,
    }
}

fn from_unix_ms(ms: f64) -> SystemTime {
    if ms >= 0.0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs_f64(ms / 1000.0)
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_secs_f64(-ms / 1000.0)
    }
}

impl FileBarrier {
    /// A barrier in `dir` for `share`'s worker (index I of N), waiting at most `timeout`;
    /// the first run starts at `start_at` when given.
    pub fn new(
        dir: PathBuf,
        share: Share,
        timeout: Duration,
        start_at: Option<SystemTime>,
    ) -> FileBarrier {
        FileBarrier {
            dir,
            share,
            timeout,
            margin: DEFAULT_MARGIN,
            start_at,
            runs: AtomicU32::new(0),
            observed: Mutex::new(Vec::new()),
            anchor: Mutex::new(None),
        }
    }

    /// The wall-clock time of `at` on this machine, read through the pairing of the two clocks
    /// made at the first barrier (so a clock slewed during a long load does not move it); the
    /// pairing made now when no barrier was passed.
    pub fn wall_clock_of(&self, at: Instant) -> SystemTime {
        let anchor = *self
            .anchor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (wall, mono) = anchor.unwrap_or_else(|| (SystemTime::now(), Instant::now()));
        match mono.checked_duration_since(at) {
            Some(before) => wall - before,
            None => wall + at.saturating_duration_since(mono),
        }
    }

    /// The same, starting `margin` after the last worker is ready.
    pub fn with_margin(mut self, margin: Duration) -> FileBarrier {
        self.margin = margin;
        self
    }

    /// What each run's wait saw, in order (a load that ran more than once waits each time).
    pub fn observed(&self) -> Vec<Result<Observed, BarrierError>> {
        self.observed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Writes this worker's ready file, waits for every worker's, and sleeps to the agreed
    /// start. Returns the start instant on this machine's monotonic clock.
    pub async fn wait(&self) -> Result<Instant, BarrierError> {
        let run = self.runs.fetch_add(1, Ordering::Relaxed);
        let result = self.wait_run(run).await;
        self.observed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(result.clone().map(|(_, observed)| observed));
        result.map(|(at, _)| at)
    }

    async fn wait_run(&self, run: u32) -> Result<(Instant, Observed), BarrierError> {
        let dir = self.dir.join(run.to_string());
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let ready = SystemTime::now();
        let mine = dir.join(self.share.index().to_string());
        let temporary = dir.join(format!(".{}.tmp", self.share.index()));
        std::fs::write(&temporary, format!("{}\n", unix_ms(ready)))
            .map_err(|e| io(&temporary, e))?;
        std::fs::rename(&temporary, &mine).map_err(|e| io(&mine, e))?;
        let give_up = Instant::now() + self.timeout;
        let all = loop {
            let found = read_all(&dir, self.share.count())?;
            let present = found.iter().filter(|t| t.is_some()).count() as u32;
            if present == self.share.count() {
                break found.into_iter().flatten().collect::<Vec<f64>>();
            }
            if Instant::now() >= give_up {
                return Err(BarrierError::Timeout {
                    dir,
                    waited_s: self.timeout.as_secs_f64(),
                    ready: present,
                    count: self.share.count(),
                });
            }
            tokio::time::sleep(POLL).await;
        };
        let latest = all.iter().copied().fold(f64::MIN, f64::max);
        let earliest = all.iter().copied().fold(f64::MAX, f64::min);
        let start = match self.start_at.filter(|_| run == 0) {
            Some(at) => at,
            None => from_unix_ms(latest) + self.margin,
        };
        let (now_wall, now) = (SystemTime::now(), Instant::now());
        self.anchor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_or_insert((now_wall, now));
        let at = match start.duration_since(now_wall) {
            Ok(ahead) => now + ahead,
            Err(_) => now,
        };
        tokio::time::sleep_until(at.into()).await;
        // The runtime's timer is coarse: the last stretch on the OS clock.
        let left = at.saturating_duration_since(Instant::now());
        if !left.is_zero() {
            std::thread::sleep(left);
        }
        let late = Instant::now().saturating_duration_since(at);
        let behind = now_wall.duration_since(start).unwrap_or_default();
        Ok((
            at,
            Observed {
                ready_unix_ms: all,
                start_unix_ms: unix_ms(start),
                ready_spread_ms: latest - earliest,
                late_ms: (late + behind).as_secs_f64() * 1000.0,
            },
        ))
    }
}

fn io(path: &Path, e: std::io::Error) -> BarrierError {
    BarrierError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Each worker's ready time, when its file is there and readable.
fn read_all(dir: &Path, count: u32) -> Result<Vec<Option<f64>>, BarrierError> {
    (0..count)
        .map(|i| {
            let path = dir.join(i.to_string());
            match std::fs::read_to_string(&path) {
                Ok(text) => Ok(text.trim().parse().ok()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io(&path, e)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A barrier folder that does not exist yet, inside a temporary folder removed on drop.
    fn folder() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().expect("temporary folder");
        let dir = tmp.path().join("barrier");
        (tmp, dir)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn workers_start_at_one_instant_after_the_last_is_ready() {
        let (_tmp, dir) = folder();
        let barriers: Vec<_> = (0..3)
            .map(|i| {
                FileBarrier::new(
                    dir.clone(),
                    Share::new(i, 3).unwrap(),
                    Duration::from_secs(10),
                    None,
                )
                .with_margin(Duration::from_millis(50))
            })
            .collect();
        let (a, b, c) = tokio::join!(barriers[0].wait(), barriers[1].wait(), barriers[2].wait());
        let starts = [a, b, c];
        let observed: Vec<Observed> = barriers
            .iter()
            .map(|b| b.observed().pop().unwrap().unwrap())
            .collect();
        assert!(starts.iter().all(Result::is_ok));
        assert!(
            observed
                .windows(2)
                .all(|w| w[0].start_unix_ms == w[1].start_unix_ms)
        );
        let latest = observed[0]
            .ready_unix_ms
            .iter()
            .copied()
            .fold(f64::MIN, f64::max);
        assert_eq!(
            observed[0].start_unix_ms,
            unix_ms(from_unix_ms(latest) + Duration::from_millis(50))
        );
    }

    #[tokio::test]
    async fn a_missing_worker_times_out_with_a_clear_error() {
        let (_tmp, dir) = folder();
        let barrier = FileBarrier::new(
            dir.clone(),
            Share::new(1, 2).unwrap(),
            Duration::from_millis(60),
            None,
        );
        let error = barrier.wait().await.expect_err("worker 0 never comes");
        assert!(
            matches!(
                error,
                BarrierError::Timeout {
                    ready: 1,
                    count: 2,
                    ..
                }
            ),
            "{error}"
        );
        assert!(error.to_string().contains("only 1 were"), "{error}");
    }
}
