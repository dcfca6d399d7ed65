//! A process's user CPU time, measured by sampling every one of its threads.
//!
//! getrusage's total (user + system) is exact: the kernel scales it to the scheduler's own
//! runtime of each thread. Its *split* between user and system is not, on kernels built with
//! tick-based CPU accounting (`CONFIG_TICK_CPU_ACCOUNTING`, the usual build): at each
//! scheduler tick (100–1000 Hz) the running thread's whole tick goes to user or system time by
//! where the tick found it. A client woken on a server's 1 ms timer grid is found by a 250 Hz
//! tick at the same offset into its work every time, for the whole run, so the split says
//! what the client was doing at that one offset. The same build measured 1.7–3.6 µs of user
//! time per chunk from run to run that way (512 paced streams, see the book's client
//! performance page).
//!
//! Here each thread gets a software task-clock event (`perf_event_open`) that fires every
//! [`SAMPLE_PERIOD_NS`] of that thread's running time (about 10 kHz, not a divisor of a
//! millisecond, so it drifts across any timer grid) and writes a sample only when it
//! interrupted user code (`exclude_kernel`, which an unprivileged user may ask for at the
//! default `perf_event_paranoid` of 2). User time is samples × period, within about
//! 1/√samples; the system time is the exact total less it. Sampling costs the measured
//! process one timer interrupt per period of its running time (about a microsecond of system
//! time each, 1 % of its CPU).
//!
//! Events are per thread and not inherited (the kernel maps no ring buffer of an inherited
//! per-thread event), so the threads are those alive at [`UserCpuSampling::start`]; a thread
//! found at [`UserCpuSampling::finish`] that was not sampled makes the measurement an error
//! instead of an undercount. A drain thread empties the ring buffers every
//! [`DRAIN_EVERY`]; its own CPU counts in its process's total, not as sampled user time.

use std::io;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Nanoseconds of a thread's running time between two samples (≈10.3 kHz): prime, so that
/// sample instants drift across any millisecond grid the measured process's work falls on.
pub const SAMPLE_PERIOD_NS: u64 = 97_003;

/// How often the drain thread empties the ring buffers.
pub const DRAIN_EVERY: Duration = Duration::from_millis(100);

/// Ring buffer pages per thread (64 KiB: 8,192 samples, 0.8 s of user time at the sample
/// rate, eight drains' worth). Small, so that an unprivileged user stays under the kernel's
/// `perf_event_mlock_kb` (516 KiB per user by default) with several threads.
const PAGES: usize = 16;

/// `PERF_RECORD_SAMPLE`, the record type of a sample (the perf_event_open ABI).
const RECORD_SAMPLE: u32 = 9;

/// Why a process's user time could not be sampled.
#[derive(Debug, thiserror::Error)]
pub enum SamplingError {
    /// `/proc/PID/task` could not be read.
    #[error("cannot list the threads of process {pid}: {source}")]
    Threads {
        /// The process.
        pid: u32,
        /// The OS's answer.
        source: io::Error,
    },
    /// The kernel refused an event or its ring buffer (permissions, `perf_event_paranoid`,
    /// a seccomp filter, the mlock limit).
    #[error("perf_event_open for thread {tid}: {source}")]
    Open {
        /// The thread.
        tid: i32,
        /// The OS's answer.
        source: io::Error,
    },
    /// The ring buffer overflowed: some samples were not counted.
    #[error("{0} samples were lost (the drain thread fell behind)")]
    Lost(u64),
    /// The kernel lowered the sample rate (`kernel.perf_event_max_sample_rate`).
    #[error("the kernel throttled the sampling (kernel.perf_event_max_sample_rate)")]
    Throttled,
    /// A thread ran that had no event.
    #[error("thread {0} started after the sampling did and was not sampled")]
    Unsampled(i32),
    /// The drain thread could not be started or stopped on its own.
    #[error("the sampling's drain thread: {0}")]
    Drain(String),
}

/// A process's sampled user time over one measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampledUser {
    /// Samples that found a thread running user code.
    pub samples: u64,
}

impl SampledUser {
    /// User CPU time, seconds: samples × period.
    pub fn seconds(self) -> f64 {
        self.samples as f64 * SAMPLE_PERIOD_NS as f64 / 1e9
    }
}

/// Counts drained from the ring buffers.
#[derive(Debug, Default)]
struct Tally {
    samples: u64,
    lost: u64,
    throttled: bool,
}

/// User-time sampling of one process, running until [`finish`](Self::finish).
#[derive(Debug)]
pub struct UserCpuSampling {
    pid: u32,
    sampled: Vec<i32>,
    drain_tid: i32,
    stop: mpsc::Sender<()>,
    drain: JoinHandle<Result<Tally, SamplingError>>,
}

impl UserCpuSampling {
    /// Starts sampling every thread of process `pid` (this process's own id included).
    pub fn start(pid: u32) -> Result<UserCpuSampling, SamplingError> {
        let tids = threads(pid)?;
        let mut samplers = Vec::with_capacity(tids.len());
        for &tid in &tids {
            match open(tid) {
                Ok(sampler) => samplers.push(sampler),
                // The thread ended between the listing and the opening: nothing to sample.
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                Err(source) => return Err(SamplingError::Open { tid, source }),
            }
        }
        for (sampler, &tid) in samplers.iter_mut().zip(&tids) {
            sampler
                .enable()
                .map_err(|source| SamplingError::Open { tid, source })?;
        }
        let (stop, stopped) = mpsc::channel();
        let (tid_tx, tid_rx) = mpsc::channel();
        let drain = std::thread::Builder::new()
            .name("user-cpu-drain".into())
            .spawn(move || {
                let _ = tid_tx.send(current_tid());
                drain_until_stopped(samplers, &stopped)
            })
            .map_err(|e| SamplingError::Drain(e.to_string()))?;
        let drain_tid = tid_rx
            .recv()
            .map_err(|_| SamplingError::Drain("ended before it started".into()))?;
        Ok(UserCpuSampling {
            pid,
            sampled: tids,
            drain_tid,
            stop,
            drain,
        })
    }

    /// Stops sampling and counts: an error if samples were lost or throttled, or if a thread
    /// of the process (still alive) was never sampled.
    pub fn finish(self) -> Result<SampledUser, SamplingError> {
        // Read before the events stop: a thread that started meanwhile ran unsampled. A
        // process that has ended has no thread left to check.
        let alive = match threads(self.pid) {
            Err(SamplingError::Threads { source, .. })
                if source.kind() == io::ErrorKind::NotFound =>
            {
                Ok(Vec::new())
            }
            listed => listed,
        };
        let _ = self.stop.send(());
        let tally = self
            .drain
            .join()
            .map_err(|_| SamplingError::Drain("panicked".into()))??;
        if let Some(tid) = unsampled(&alive?, &self.sampled, self.drain_tid) {
            return Err(SamplingError::Unsampled(tid));
        }
        if tally.lost > 0 {
            return Err(SamplingError::Lost(tally.lost));
        }
        if tally.throttled {
            return Err(SamplingError::Throttled);
        }
        Ok(SampledUser {
            samples: tally.samples,
        })
    }
}

/// A thread of `alive` that is neither one of `sampled` nor the drain thread.
fn unsampled(alive: &[i32], sampled: &[i32], drain_tid: i32) -> Option<i32> {
    alive
        .iter()
        .copied()
        .find(|t| *t != drain_tid && !sampled.contains(t))
}

/// The thread ids of process `pid`.
fn threads(pid: u32) -> Result<Vec<i32>, SamplingError> {
    let failed = |source| SamplingError::Threads { pid, source };
    let mut tids = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).map_err(failed)? {
        let name = entry.map_err(failed)?.file_name();
        if let Some(tid) = name.to_str().and_then(|n| n.parse().ok()) {
            tids.push(tid);
        }
    }
    tids.sort_unstable();
    Ok(tids)
}

/// This thread's id.
fn current_tid() -> i32 {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { libc::gettid() }
}

/// A disabled user-time sampler on thread `tid`, any CPU.
fn open(tid: i32) -> io::Result<perf_event::Sampler> {
    perf_event::Builder::new(perf_event::events::Software::TASK_CLOCK)
        .observe_pid(tid)
        .sample_period(SAMPLE_PERIOD_NS)
        .exclude_kernel(true)
        .exclude_hv(true)
        .inherit(false)
        .build()?
        .sampled(PAGES * page_size())
}

fn page_size() -> usize {
    // SAFETY: sysconf reads a constant of the system.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

/// The drain thread: empties the buffers every [`DRAIN_EVERY`] until told to stop (or its
/// owner is gone), then stops the events and empties them once more.
fn drain_until_stopped(
    mut samplers: Vec<perf_event::Sampler>,
    stopped: &mpsc::Receiver<()>,
) -> Result<Tally, SamplingError> {
    let mut tally = Tally::default();
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(DRAIN_EVERY) {
        samplers.iter_mut().for_each(|s| drain(s, &mut tally));
    }
    for sampler in &mut samplers {
        sampler.disable().map_err(|source| SamplingError::Open {
            tid: current_tid(),
            source,
        })?;
        drain(sampler, &mut tally);
    }
    Ok(tally)
}

/// Counts the records in `sampler`'s ring buffer and frees their space.
fn drain(sampler: &mut perf_event::Sampler, tally: &mut Tally) {
    use perf_event::data::Record;
    while let Some(record) = sampler.next_record() {
        if record.ty() == RECORD_SAMPLE {
            tally.samples += 1;
            continue;
        }
        match record.parse_record() {
            Ok(Record::Lost(lost)) => tally.lost += lost.lost,
            Ok(Record::LostSamples(lost)) => tally.lost += lost.lost,
            Ok(Record::Throttle(_)) => tally.throttled = true,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use std::io::Write;
    use std::process::{Command, Stdio};

    /// Runs `script` in `sh` (which waits for a line first, so that its thread is sampled from
    /// its start) and returns the sampled user time with the child's own getrusage (user,
    /// system) seconds.
    #[expect(
        clippy::zombie_processes,
        reason = "reaped with wait4, which gives its own rusage"
    )]
    fn sampled_child(script: &str) -> (f64, f64, f64) {
        let mut child = Command::new("sh")
            .args(["-c", &format!("read go; {script}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sh");
        let sampling = UserCpuSampling::start(child.id()).expect(
            "perf_event_open is refused here (perf_event_paranoid, seccomp): the benchmark \
             falls back to getrusage's split, but this test needs the sampling",
        );
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"go\n").expect("go");
        drop(stdin);
        // wait4 instead of Child::wait: the child's own rusage, not every child's.
        let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
        // SAFETY: waits for our own child; writes only the status and rusage given.
        let waited = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
        assert_eq!(waited, child.id() as i32, "wait4");
        let sampled = sampling.finish().expect("sampled");
        let times = super::super::CpuTimes::of(&usage);
        let (user, system) = (times.user_s, times.sys_s);
        eprintln!(
            "sampled user {:.3} s ({} samples); getrusage user {user:.3} s, system {system:.3} s",
            sampled.seconds(),
            sampled.samples
        );
        (sampled.seconds(), user, system)
    }

    #[test]
    #[ignore = "needs perf_event_open, which containers often refuse: run with \
                cargo nextest run --run-ignored only -E 'test(/user_cpu|anchor_sampling/)'"]
    fn user_code_is_sampled_as_user_time() {
        // Shell arithmetic: user code, hardly a system call.
        let (sampled, user, system) =
            sampled_child("i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done");
        let busy = user + system;
        assert!(busy > 0.1, "the shell ran {busy:.3} s");
        // Busy in user code all the time, so ticks see it right too.
        assert!(
            (sampled - user).abs() <= 0.15 * busy,
            "sampled {sampled:.3} s; ticks: user {user:.3} s, system {system:.3} s"
        );
    }

    #[test]
    #[ignore = "needs perf_event_open, which containers often refuse: run with \
                cargo nextest run --run-ignored only -E 'test(/user_cpu|anchor_sampling/)'"]
    fn system_calls_are_not_sampled_as_user_time() {
        // One-byte copies: nearly all the time is in read and write.
        let (sampled, user, system) =
            sampled_child("exec dd if=/dev/zero of=/dev/null bs=1 count=400000");
        let busy = user + system;
        assert!(busy > 0.1, "dd ran {busy:.3} s");
        assert!(
            sampled < 0.5 * busy && sampled > 0.0,
            "sampled {sampled:.3} s of {busy:.3} s (ticks: user {user:.3}, system {system:.3})"
        );
    }

    #[rstest]
    #[case::all_sampled(&[10, 11, 12], &[10, 11, 12], 99, None)]
    #[case::one_ended(&[10, 12], &[10, 11, 12], 99, None)]
    #[case::the_drain_thread_is_not_counted(&[10, 11, 99], &[10, 11], 99, None)]
    #[case::a_new_thread(&[10, 11, 13], &[10, 11, 12], 99, Some(13))]
    fn a_thread_that_was_not_sampled_is_found(
        #[case] alive: &[i32],
        #[case] sampled: &[i32],
        #[case] drain: i32,
        #[case] expected: Option<i32>,
    ) {
        assert_eq!(unsampled(alive, sampled, drain), expected);
    }

    #[test]
    fn a_process_that_is_not_there_is_a_clear_error() {
        let error = UserCpuSampling::start(u32::MAX).expect_err("no such process");
        assert!(
            error.to_string().contains("threads of process 4294967295"),
            "{error}"
        );
    }
}
