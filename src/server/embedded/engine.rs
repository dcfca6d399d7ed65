//! The serving engine behind the embedded server: it decides when a request is admitted and
//! when each of its tokens is released. [`LatencyModel`] is the simple fixed-latency engine.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::case::EmbeddedSpec;

/// What the engine needs to know about a request.
#[derive(Debug, Clone, Copy)]
pub struct EngineRequest {
    /// Prompt length in tokens.
    pub prompt_tokens: u64,
    /// Tokens to generate.
    pub output_tokens: u32,
}

/// A request that entered service, with its token schedule.
pub struct Admission {
    /// When the request entered service.
    pub admitted_at: Instant,
    /// Release time of each output token, measured from `admitted_at`.
    pub token_offsets: Vec<Duration>,
    /// Holds the request's place in the engine; dropping it (the response ended or the client
    /// went away) frees the place.
    pub guard: Box<dyn Send + Sync>,
}

impl Admission {
    /// The instant token `index` (0-based) is due.
    pub fn token_due(&self, index: usize) -> Instant {
        self.admitted_at + self.token_offsets.get(index).copied().unwrap_or_default()
    }
}

/// A serving engine: admits requests (possibly after queueing) and schedules their tokens.
pub trait Engine: Send + Sync {
    /// Waits until the request is admitted and returns its schedule.
    fn admit(&self, request: EngineRequest) -> BoxFuture<'_, Admission>;
}

/// Fixed latencies: `slots` requests in service at once (FIFO queue for the rest); the first
/// token `ttft_ms + prefill_us_per_token × prompt_tokens / 1000` after admission, then one token
/// every `tpot_ms`.
pub struct LatencyModel {
    spec: EmbeddedSpec,
    slots: Arc<Semaphore>,
}

impl LatencyModel {
    /// An engine with this latency model.
    pub fn new(spec: EmbeddedSpec) -> LatencyModel {
        let slots = Arc::new(Semaphore::new(spec.slots.clamp(1, Semaphore::MAX_PERMITS)));
        LatencyModel { spec, slots }
    }

    fn schedule(&self, request: EngineRequest) -> Vec<Duration> {
        let first_ms = self.spec.ttft_ms
            + self.spec.prefill_us_per_token * request.prompt_tokens as f64 / 1000.0;
        (0..request.output_tokens)
            .map(|i| {
                Duration::from_secs_f64((first_ms + f64::from(i) * self.spec.tpot_ms) / 1000.0)
            })
            .collect()
    }
}

impl Engine for LatencyModel {
    fn admit(&self, request: EngineRequest) -> BoxFuture<'_, Admission> {
        Box::pin(async move {
            // The semaphore is fair (FIFO) and never closed, so acquiring only waits.
            let permit: Option<OwnedSemaphorePermit> =
                Arc::clone(&self.slots).acquire_owned().await.ok();
            Admission {
                admitted_at: Instant::now(),
                token_offsets: self.schedule(request),
                guard: Box::new(permit),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_absolute_from_admission() {
        let engine = LatencyModel::new(EmbeddedSpec {
            ttft_ms: 50.0,
            tpot_ms: 10.0,
            prefill_us_per_token: 100.0,
            ..Default::default()
        });
        let offsets = engine.schedule(EngineRequest {
            prompt_tokens: 100,
            output_tokens: 3,
        });
        let ms: Vec<f64> = offsets.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        assert_eq!(ms.len(), 3);
        for (got, want) in ms.iter().zip([60.0, 70.0, 80.0]) {
            assert!((got - want).abs() < 1e-9, "{ms:?}");
        }
    }
}
