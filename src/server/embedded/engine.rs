//! The serving engine behind the embedded server: it decides when a request is admitted and
//! when each of its tokens is released. [`LatencyModel`] is the simple fixed-latency engine;
//! [`super::simulated::SimulatedEngine`] runs the discrete-event simulator against the wall
//! clock.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
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

/// When a request's tokens are released.
enum Release {
    /// Known at admission: each token's offset from admission.
    Fixed(Vec<Duration>),
    /// Told as the engine decides: each token's due instant arrives on the channel, in order;
    /// `known` holds those received so far.
    Live {
        due: mpsc::UnboundedReceiver<Instant>,
        known: Vec<Instant>,
    },
}

/// A request that entered service, with its token schedule.
pub struct Admission {
    /// When the request entered service.
    pub admitted_at: Instant,
    release: Release,
    /// Holds the request's place in the engine; dropping it (the response ended or the client
    /// went away) frees the place.
    _guard: Box<dyn Send + Sync>,
}

impl Admission {
    /// A request whose whole schedule is known: token `i` is due `offsets[i]` after
    /// `admitted_at`.
    pub fn fixed(
        admitted_at: Instant,
        offsets: Vec<Duration>,
        guard: Box<dyn Send + Sync>,
    ) -> Admission {
        Admission {
            admitted_at,
            release: Release::Fixed(offsets),
            _guard: guard,
        }
    }

    /// A request whose tokens' due instants come on `due` as the engine decides them; a
    /// channel closed early means the engine will release no more.
    pub fn live(
        admitted_at: Instant,
        due: mpsc::UnboundedReceiver<Instant>,
        guard: Box<dyn Send + Sync>,
    ) -> Admission {
        Admission {
            admitted_at,
            release: Release::Live {
                due,
                known: Vec::new(),
            },
            _guard: guard,
        }
    }

    /// Waits until the engine has decided when token `index` (0-based) is due, and returns
    /// that instant (possibly in the future: the caller sleeps until it). `None`: the engine
    /// will never release it.
    pub async fn token_due(&mut self, index: usize) -> Option<Instant> {
        match &mut self.release {
            Release::Fixed(offsets) => offsets.get(index).map(|d| self.admitted_at + *d),
            Release::Live { due, known } => {
                while known.len() <= index {
                    known.push(due.recv().await?);
                }
                known.get(index).copied()
            }
        }
    }

    /// Offset from admission of token `index`, if it is known by now.
    pub fn known_offset(&self, index: usize) -> Option<Duration> {
        match &self.release {
            Release::Fixed(offsets) => offsets.get(index).copied(),
            Release::Live { known, .. } => known
                .get(index)
                .map(|at| at.saturating_duration_since(self.admitted_at)),
        }
    }
}

/// What a serving engine reports about itself for `/metrics`, beyond what the server counts.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EngineGauges {
    /// Requests in a batch.
    pub running: usize,
    /// Requests queued for a batch.
    pub waiting: usize,
    /// Used fraction of the KV cache (0 to 1).
    pub kv_usage: f64,
    /// Preemptions so far.
    pub preemptions: u64,
}

/// A serving engine: admits requests (possibly after queueing) and schedules their tokens.
pub trait Engine: Send + Sync {
    /// Why the engine would refuse the request outright (it can never fit), if it would.
    fn refusal(&self, _request: EngineRequest) -> Option<String> {
        None
    }

    /// Waits until the request is admitted and returns its schedule.
    fn admit(&self, request: EngineRequest) -> BoxFuture<'_, Admission>;

    /// The engine's own view of its load, when it has one (else the server's counts are
    /// reported).
    fn gauges(&self) -> Option<EngineGauges> {
        None
    }
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
            Admission::fixed(Instant::now(), self.schedule(request), Box::new(permit))
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
