//! A live view of the measured load, for a progress display: counters that every measured
//! request updates with a few relaxed atomic operations (no lock, no allocation), and a
//! ring of the most recent end-to-end latencies for a cheap p90.
//!
//! Nothing is counted unless the session was given counters to count into (the CLI's
//! progress display does; the test harness only when asked): without them the load pays one
//! branch per request. One load runs at a time per session; two at once would share them.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::metrics::RequestRecord;

/// How many recent end-to-end latencies the window keeps.
pub const WINDOW: usize = 1024;

/// Counters of the load running now.
#[derive(Debug)]
pub struct LoadProgress {
    generation: AtomicU64,
    running: AtomicBool,
    expected: AtomicU64,
    sent: AtomicU64,
    done: AtomicU64,
    failed: AtomicU64,
    output_tokens: AtomicU64,
    recent_e2el_us: Box<[AtomicU32]>,
    recorded: AtomicU64,
}

/// The counters at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// Counts the loads started so far; changes when a new load starts.
    pub generation: u64,
    /// Whether a load is running.
    pub running: bool,
    /// Requests the load will send, when known up front.
    pub expected: Option<u64>,
    /// Measured requests sent.
    pub sent: u64,
    /// Measured requests finished (successfully or not).
    pub done: u64,
    /// Measured requests that failed.
    pub failed: u64,
    /// Output tokens of the successful ones.
    pub output_tokens: u64,
}

impl Snapshot {
    /// Requests sent and not finished.
    pub fn in_flight(&self) -> u64 {
        self.sent.saturating_sub(self.done)
    }
}

impl Default for LoadProgress {
    fn default() -> LoadProgress {
        LoadProgress::new()
    }
}

impl LoadProgress {
    /// Counters at zero, no load running.
    pub fn new() -> LoadProgress {
        LoadProgress {
            generation: AtomicU64::new(0),
            running: AtomicBool::new(false),
            expected: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            done: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            output_tokens: AtomicU64::new(0),
            recent_e2el_us: (0..WINDOW).map(|_| AtomicU32::new(0)).collect(),
            recorded: AtomicU64::new(0),
        }
    }

    /// The counters now.
    pub fn snapshot(&self) -> Snapshot {
        let expected = self.expected.load(Ordering::Relaxed);
        Snapshot {
            generation: self.generation.load(Ordering::Acquire),
            running: self.running.load(Ordering::Acquire),
            expected: (expected > 0).then_some(expected),
            sent: self.sent.load(Ordering::Relaxed),
            done: self.done.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            output_tokens: self.output_tokens.load(Ordering::Relaxed),
        }
    }

    /// The 90th percentile of the end-to-end latencies of the last [`WINDOW`] successful
    /// requests, ms; `None` before the first.
    pub fn recent_p90_e2el_ms(&self) -> Option<f64> {
        let n = (self.recorded.load(Ordering::Acquire) as usize).min(WINDOW);
        let mut window: Vec<u32> = self.recent_e2el_us[..n]
            .iter()
            .map(|v| v.load(Ordering::Relaxed))
            .collect();
        if window.is_empty() {
            return None;
        }
        let rank = (window.len() * 9).div_ceil(10) - 1;
        let (_, p90, _) = window.select_nth_unstable(rank);
        Some(f64::from(*p90) / 1000.0)
    }

    /// A measured load starts: the counters restart from zero.
    pub(crate) fn load_started(&self, expected: Option<u64>) {
        for counter in [
            &self.sent,
            &self.done,
            &self.failed,
            &self.output_tokens,
            &self.recorded,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
        self.expected
            .store(expected.unwrap_or(0), Ordering::Relaxed);
        self.running.store(true, Ordering::Release);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The measured load is over.
    pub(crate) fn load_finished(&self) {
        self.running.store(false, Ordering::Release);
    }

    /// A measured request is being sent.
    pub(crate) fn request_sent(&self) {
        self.sent.fetch_add(1, Ordering::Relaxed);
    }

    /// A measured request finished.
    pub(crate) fn request_finished(&self, record: &RequestRecord) {
        if !record.is_ok() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        } else {
            self.output_tokens
                .fetch_add(record.output_tokens.unwrap_or(0), Ordering::Relaxed);
            if let Some(e2el) = record.e2el_ms {
                let us = (e2el * 1000.0).clamp(0.0, f64::from(u32::MAX)) as u32;
                let slot = self.recorded.fetch_add(1, Ordering::AcqRel) as usize % WINDOW;
                self.recent_e2el_us[slot].store(us, Ordering::Relaxed);
            }
        }
        self.done.fetch_add(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::ErrorClass;

    fn finished(progress: &LoadProgress, e2el_ms: f64, error: Option<ErrorClass>) {
        progress.request_sent();
        progress.request_finished(&RequestRecord {
            e2el_ms: Some(e2el_ms),
            output_tokens: Some(10),
            error,
            ..Default::default()
        });
    }

    #[test]
    fn counters_follow_the_requests_and_restart_with_each_load() {
        let progress = LoadProgress::new();
        progress.load_started(Some(3));
        finished(&progress, 100.0, None);
        finished(&progress, 200.0, Some(ErrorClass::Timeout));
        progress.request_sent();
        let s = progress.snapshot();
        assert_eq!(
            s,
            Snapshot {
                generation: 1,
                running: true,
                expected: Some(3),
                sent: 3,
                done: 2,
                failed: 1,
                output_tokens: 10,
            }
        );
        assert_eq!(s.in_flight(), 1);
        progress.load_finished();
        assert!(!progress.snapshot().running);
        progress.load_started(None);
        let s = progress.snapshot();
        assert_eq!((s.generation, s.sent, s.expected), (2, 0, None));
        assert_eq!(progress.recent_p90_e2el_ms(), None);
    }

    #[test]
    fn the_p90_covers_the_most_recent_window() {
        let progress = LoadProgress::new();
        progress.load_started(None);
        for ms in 1..=100 {
            finished(&progress, f64::from(ms), None);
        }
        assert_eq!(progress.recent_p90_e2el_ms(), Some(90.0));
        // A whole window of slow requests replaces the fast ones.
        for _ in 0..WINDOW {
            finished(&progress, 5000.0, None);
        }
        assert_eq!(progress.recent_p90_e2el_ms(), Some(5000.0));
    }
}
