//! Virtual users: U closed-loop users started evenly over a ramp-up, each sending a request,
//! waiting for the answer, thinking, and sending the next, until the duration is over.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::task::JoinSet;

use super::source::{Phase, RequestSource};
use crate::metrics::RequestRecord;

/// A users run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Users {
    /// Number of users.
    pub users: u32,
    /// Users start at i × ramp_up / users.
    pub ramp_up: Duration,
    /// No request is sent after this long from the start (in-flight ones finish).
    pub duration: Duration,
    /// Pause after each answer.
    pub think_time: Duration,
    /// A progress line this often, if set.
    pub progress_interval: Option<Duration>,
    /// Hard bound on requests, whatever the duration.
    pub max_requests: u64,
}

/// Counters shared by the users and the progress reporter.
#[derive(Debug)]
struct Live {
    active: AtomicU64,
    done: AtomicU64,
    failed: AtomicU64,
    tokens: AtomicU64,
    /// E2EL of requests finished since the last progress line, in microseconds.
    recent_e2el_us: Mutex<Histogram<u64>>,
}

impl Live {
    fn new() -> Option<Live> {
        Some(Live {
            active: AtomicU64::new(0),
            done: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            tokens: AtomicU64::new(0),
            recent_e2el_us: Mutex::new(Histogram::new(3).ok()?),
        })
    }

    fn finished(&self, record: &RequestRecord) {
        self.done.fetch_add(1, Ordering::Relaxed);
        if !record.is_ok() {
            self.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.tokens
            .fetch_add(record.output_tokens.unwrap_or(0), Ordering::Relaxed);
        if let (Some(e2el), Ok(mut histogram)) = (record.e2el_ms, self.recent_e2el_us.lock()) {
            let us = (e2el * 1000.0).max(0.0) as u64;
            // `record` grows the histogram as needed; saturating only if it cannot.
            if histogram.record(us).is_err() {
                histogram.saturating_record(us);
            }
        }
    }
}

impl Users {
    /// Runs the users; returns the records (unsorted) and the window start.
    pub async fn drive(&self, source: &Arc<RequestSource>) -> (Vec<RequestRecord>, Instant) {
        let window_start = Instant::now();
        let deadline = window_start + self.duration;
        let live = Live::new().map(Arc::new);
        let next = Arc::new(AtomicU64::new(0));
        let users = self.users.max(1);
        let mut tasks = JoinSet::new();
        // A worker runs its users of the whole run, each at its single-process start offset.
        for user in source.share().users(users) {
            let start = window_start + self.ramp_up.mul_f64(f64::from(user) / f64::from(users));
            let (source, next, live) = (Arc::clone(source), Arc::clone(&next), live.clone());
            let (think, max_requests) = (self.think_time, self.max_requests);
            tasks.spawn(async move {
                let mut mine = Vec::new();
                let start = source.cut_off().map_or(start, |cut| start.min(cut));
                tokio::time::sleep_until(start.into()).await;
                if let Some(live) = &live {
                    live.active.fetch_add(1, Ordering::Relaxed);
                }
                while Instant::now() < deadline && !source.expired() {
                    let id = next.fetch_add(1, Ordering::Relaxed);
                    if id >= max_requests {
                        break;
                    }
                    let record = source.send(Phase::Measured, id, window_start, None).await;
                    if let Some(live) = &live {
                        live.finished(&record);
                    }
                    mine.extend(source.keep(Phase::Measured, record).await);
                    if !think.is_zero() {
                        let until = Instant::now() + think;
                        let until = source.cut_off().map_or(until, |cut| until.min(cut));
                        tokio::time::sleep_until(until.into()).await;
                    }
                }
                if let Some(live) = &live {
                    live.active.fetch_sub(1, Ordering::Relaxed);
                }
                mine
            });
        }
        let reporter =
            match (self.progress_interval, &live) {
                (Some(every), Some(live)) if !every.is_zero() => Some(tokio::spawn(
                    report_progress(Arc::clone(live), every, users, deadline),
                )),
                _ => None,
            };
        let records = super::join_all(tasks).await;
        if let Some(reporter) = reporter {
            reporter.abort();
        }
        (records, window_start)
    }
}

/// Prints a progress line every `every` until aborted.
async fn report_progress(live: Arc<Live>, every: Duration, users: u32, deadline: Instant) {
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    let (mut last_done, mut last_tokens, mut last_at) = (0u64, 0u64, Instant::now());
    loop {
        ticker.tick().await;
        let now = Instant::now();
        let done = live.done.load(Ordering::Relaxed);
        let tokens = live.tokens.load(Ordering::Relaxed);
        let failed = live.failed.load(Ordering::Relaxed);
        let p90 = live.recent_e2el_us.lock().ok().map(|mut h| {
            let p90 = h.value_at_quantile(0.9) as f64 / 1000.0;
            h.reset();
            p90
        });
        eprintln!(
            "{}",
            progress_line(&Progress {
                active: live.active.load(Ordering::Relaxed),
                users,
                requests: done,
                req_s: per_second(done - last_done, now - last_at),
                tok_s: per_second(tokens - last_tokens, now - last_at),
                p90_e2el_ms: p90,
                error_pct: if done == 0 {
                    0.0
                } else {
                    100.0 * failed as f64 / done as f64
                },
                left: deadline.saturating_duration_since(now),
            })
        );
        (last_done, last_tokens, last_at) = (done, tokens, now);
    }
}

fn per_second(count: u64, over: Duration) -> f64 {
    let s = over.as_secs_f64();
    if s > 0.0 { count as f64 / s } else { 0.0 }
}

/// One progress line's values.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Users running now.
    pub active: u64,
    /// All users.
    pub users: u32,
    /// Requests finished so far.
    pub requests: u64,
    /// Requests per second since the last line.
    pub req_s: f64,
    /// Output tokens per second since the last line.
    pub tok_s: f64,
    /// p90 E2EL of requests finished since the last line.
    pub p90_e2el_ms: Option<f64>,
    /// Failed requests so far, percent.
    pub error_pct: f64,
    /// Time left in the run.
    pub left: Duration,
}

/// Renders a progress line.
pub fn progress_line(p: &Progress) -> String {
    let p90 = p
        .p90_e2el_ms
        .filter(|v| *v > 0.0)
        .map_or_else(|| "-".to_string(), |v| format!("{v:.0} ms"));
    format!(
        "users {}/{} active | {} requests | {:.1} req/s | {:.0} tok/s | p90 e2el {} | errors {:.1}% | {:.0}s left",
        p.active,
        p.users,
        p.requests,
        p.req_s,
        p.tok_s,
        p90,
        p.error_pct,
        p.left.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_line_shows_every_figure() {
        let line = progress_line(&Progress {
            active: 3,
            users: 8,
            requests: 120,
            req_s: 10.04,
            tok_s: 640.2,
            p90_e2el_ms: Some(812.4),
            error_pct: 0.5,
            left: Duration::from_secs(48),
        });
        assert_eq!(
            line,
            "users 3/8 active | 120 requests | 10.0 req/s | 640 tok/s | p90 e2el 812 ms | errors 0.5% | 48s left"
        );
    }
}
