//! Closed-loop load: C requests in flight until N have been sent, after a warmup that is
//! never measured.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::task::JoinSet;

use crate::client::{Client, Generation};
use crate::metrics::RequestRecord;
use crate::prompts::synthetic_prompt;

/// A closed-loop load shape.
#[derive(Debug, Clone)]
pub struct ClosedLoop {
    /// Requests in flight.
    pub concurrency: u32,
    /// Measured requests.
    pub num_prompts: u32,
    /// Unmeasured requests sent first.
    pub warmup: u32,
    /// Prompt length in words.
    pub isl: u32,
    /// `max_tokens` of every request.
    pub osl: u32,
    /// Prompt seed.
    pub seed: u64,
}

/// What a load run measured.
#[derive(Debug, Clone)]
pub struct LoadOutcome {
    /// One record per measured request, in send order.
    pub records: Vec<RequestRecord>,
    /// Measured window: first measured send to last completion, seconds.
    pub duration_s: f64,
}

impl ClosedLoop {
    /// Runs the warmup, then the measured requests, with at most `concurrency` in flight.
    pub async fn run(&self, client: &Client) -> LoadOutcome {
        let concurrency = self.concurrency.max(1);
        if self.warmup > 0 {
            // Warmup prompts come from a different seed stream so they prime nothing measured.
            self.drive(
                client,
                self.warmup,
                concurrency.min(self.warmup),
                u64::MAX / 2,
            )
            .await;
        }
        let start = Instant::now();
        let mut records = self.drive(client, self.num_prompts, concurrency, 0).await;
        let duration_s = start.elapsed().as_secs_f64();
        records.sort_by_key(|r| r.id);
        LoadOutcome {
            records,
            duration_s,
        }
    }

    async fn drive(
        &self,
        client: &Client,
        total: u32,
        workers: u32,
        index_base: u64,
    ) -> Vec<RequestRecord> {
        let next = Arc::new(AtomicU64::new(0));
        let window_start = Instant::now();
        let mut tasks = JoinSet::new();
        for _ in 0..workers {
            let next = Arc::clone(&next);
            let client = client.clone();
            let (isl, osl, seed) = (self.isl, self.osl, self.seed);
            tasks.spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let id = next.fetch_add(1, Ordering::Relaxed);
                    if id >= u64::from(total) {
                        break;
                    }
                    let request = Generation {
                        prompt: synthetic_prompt(isl, seed, index_base.wrapping_add(id)),
                        max_tokens: osl,
                    };
                    mine.push(client.generate(id, window_start, &request).await);
                }
                mine
            });
        }
        let mut records = Vec::with_capacity(total as usize);
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(mine) => records.extend(mine),
                // A bug, never server input: fail loudly rather than lose requests.
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => {}
            }
        }
        records
    }
}
