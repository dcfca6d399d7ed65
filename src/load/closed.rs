//! Closed-loop load: C workers, each sending its next request when the previous one is done,
//! until N requests have been sent or a duration has passed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::source::{Phase, RequestSource};
use crate::metrics::RequestRecord;

/// When a closed loop stops sending.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stop {
    /// Most requests sent.
    pub requests: u64,
    /// No request is sent after this long (in-flight ones finish).
    pub after: Option<Duration>,
}

/// Runs `concurrency` workers over `source` until `stop`; returns the records (unsorted; none
/// that went to the source's spool) and the window start every `send_ms` is relative to.
pub async fn drive(
    source: &Arc<RequestSource>,
    phase: Phase,
    concurrency: u32,
    stop: Stop,
) -> (Vec<RequestRecord>, Instant) {
    let next = Arc::new(AtomicU64::new(0));
    let window_start = Instant::now();
    let deadline = stop.after.map(|d| window_start + d);
    let workers = u64::from(concurrency.max(1)).min(stop.requests.max(1));
    let mut tasks = JoinSet::new();
    for _ in 0..workers {
        let next = Arc::clone(&next);
        let source = Arc::clone(source);
        tasks.spawn(async move {
            let mut mine = Vec::new();
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) || source.expired() {
                    break;
                }
                let id = next.fetch_add(1, Ordering::Relaxed);
                if id >= stop.requests {
                    break;
                }
                let record = source.send(phase, id, window_start, None).await;
                mine.extend(source.keep(phase, record).await);
            }
            mine
        });
    }
    (super::join_all(tasks).await, window_start)
}
