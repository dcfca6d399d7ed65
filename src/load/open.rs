//! Open-loop load: requests are sent on a schedule fixed before the run, whatever the server
//! does, so a slow server cannot slow the arrivals down (no coordinated omission).
//!
//! A dedicated thread keeps the schedule: it sleeps with the OS timer (tens of microseconds
//! of slack, where the async runtime's timer has a millisecond tick) until each absolute send
//! time and hands the request to the runtime. Every record keeps its intended send time, so
//! latency is reported both from the actual and from the intended send.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;

use super::source::{Phase, RequestSource};
use crate::case::WhenFull;
use crate::metrics::RequestRecord;

/// An open-loop schedule.
#[derive(Debug, Clone)]
pub struct OpenLoop {
    /// Absolute send offsets from the start of the window, non-decreasing.
    pub offsets: Vec<Duration>,
    /// Most requests in flight, if capped.
    pub max_in_flight: Option<u32>,
    /// What an arrival does at the cap.
    pub when_full: WhenFull,
    /// How long an arrival may wait for a slot (`WhenFull::Wait`) before it is dropped.
    pub timeout: Duration,
    /// Warmup or measured requests.
    pub phase: Phase,
}

/// What an open-loop run measured.
#[derive(Debug)]
pub struct OpenOutcome {
    /// Records of the requests that were sent.
    pub records: Vec<RequestRecord>,
    /// Start of the schedule (offset zero).
    pub window_start: Instant,
    /// Arrivals that were never sent.
    pub dropped: u64,
}

/// A spawned arrival: `None` when it was dropped at the in-flight cap, else the record unless
/// the source kept it.
type Spawned = JoinHandle<Option<Option<RequestRecord>>>;

/// How far ahead of the first arrival the schedule starts, so setting up does not make the
/// first sends late.
const LEAD: Duration = Duration::from_millis(5);

impl OpenLoop {
    /// Sends every arrival of the schedule and waits for all of them. The dispatch thread
    /// hands each spawned request over as it goes, and they are awaited in arrival order while
    /// the schedule runs, so a long run holds only the requests under way (and, unless the
    /// source streams them to its spool, the records).
    pub async fn drive(&self, source: &Arc<RequestSource>) -> OpenOutcome {
        let runtime = tokio::runtime::Handle::current();
        let window_start = Instant::now() + LEAD;
        let slots = self
            .max_in_flight
            .map(|n| Arc::new(Semaphore::new(n as usize)));
        let plan = self.clone();
        let source_for_thread = Arc::clone(source);
        let (spawned, mut handles) = mpsc::unbounded_channel();
        let dispatch = tokio::task::spawn_blocking(move || {
            plan.dispatch(&runtime, &source_for_thread, slots, window_start, &spawned)
        });
        let mut records = Vec::new();
        let mut dropped = 0u64;
        let mut received = 0u64;
        while let Some(handle) = handles.recv().await {
            received += 1;
            match handle.await {
                Ok(Some(kept)) => records.extend(kept),
                Ok(None) => dropped += 1,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => dropped += 1,
            }
        }
        dropped += match dispatch.await {
            Ok(never_sent) => never_sent,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => (self.offsets.len() as u64).saturating_sub(received),
        };
        OpenOutcome {
            records,
            window_start,
            dropped,
        }
    }

    /// Runs on its own thread: sleeps to each send time, spawns the request and hands its
    /// task to `spawned`. A task ends with `None` when its arrival was dropped, else with the
    /// record unless the source kept it ([`RequestSource::keep`]). Returns the arrivals that
    /// were never sent.
    fn dispatch(
        &self,
        runtime: &tokio::runtime::Handle,
        source: &Arc<RequestSource>,
        slots: Option<Arc<Semaphore>>,
        window_start: Instant,
        spawned: &mpsc::UnboundedSender<Spawned>,
    ) -> u64 {
        let mut dropped = 0u64;
        for (id, offset) in self.offsets.iter().enumerate() {
            let intended = window_start + *offset;
            let wake = source.cut_off().map_or(intended, |cut| intended.min(cut));
            let now = Instant::now();
            if wake > now {
                std::thread::sleep(wake - now);
            }
            if source.expired() {
                // The trial's time limit: this arrival and the rest are never sent.
                dropped += (self.offsets.len() - id) as u64;
                break;
            }
            let source = Arc::clone(source);
            let (id, phase) = (id as u64, self.phase);
            // The in-flight slot is given back when the request ends, before the record is
            // kept.
            let send = {
                let source = Arc::clone(&source);
                async move { source.send(phase, id, window_start, Some(intended)).await }
            };
            let handle = match (&slots, self.when_full) {
                (None, _) => runtime.spawn(async move {
                    let record = send.await;
                    Some(source.keep(phase, record).await)
                }),
                (Some(slots), WhenFull::Drop) => match Arc::clone(slots).try_acquire_owned() {
                    Ok(permit) => runtime.spawn(async move {
                        let record = send.await;
                        drop(permit);
                        Some(source.keep(phase, record).await)
                    }),
                    Err(_) => {
                        dropped += 1;
                        continue;
                    }
                },
                (Some(slots), WhenFull::Wait) => {
                    let slots = Arc::clone(slots);
                    let give_up = tokio::time::Instant::from_std(intended + self.timeout);
                    runtime.spawn(async move {
                        let permit = tokio::time::timeout_at(give_up, slots.acquire_owned())
                            .await
                            .ok()?
                            .ok()?;
                        let record = send.await;
                        drop(permit);
                        Some(source.keep(phase, record).await)
                    })
                }
            };
            // The receiver stops only when the load is abandoned: nothing is left to await.
            let _ = spawned.send(handle);
        }
        dropped
    }
}
