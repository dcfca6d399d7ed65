//! The serving engine behind the embedded server: it decides when a request is admitted and
//! when each of its tokens is released. [`LatencyModel`] is the simple fixed-latency engine;
//! [`super::simulated::SimulatedEngine`] runs the discrete-event simulator against the wall
//! clock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal};

use futures_util::future::BoxFuture;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;

use crate::case::EmbeddedSpec;

/// What the engine needs to know about a request.
#[derive(Debug, Clone, Copy)]
pub struct EngineRequest {
    /// Prompt length in tokens.
    pub prompt_tokens: u64,
    /// Leading prompt tokens found in the server's prefix cache: their prefill is skipped
    /// (by the fixed-latency engine; the simulator ignores it).
    pub cached_tokens: u64,
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
/// every `tpot_ms` — the prefill term counting only the prompt tokens not in the server's
/// prefix cache, and each scaled per request by a jitter factor when the spec asks for one.
pub struct LatencyModel {
    spec: EmbeddedSpec,
    slots: Arc<Semaphore>,
    jitter: Option<Jitter>,
}

/// Per-request factors of mean 1 (log-normal, so never negative) for the first token's time
/// and the time per token, drawn in admission order from one seeded generator: the server's
/// own, not process-global.
struct Jitter {
    ttft: LogNormal<f64>,
    tpot: LogNormal<f64>,
    rng: Mutex<ChaCha8Rng>,
}

impl Jitter {
    fn new(spec: &EmbeddedSpec) -> Option<Jitter> {
        if spec.ttft_jitter <= 0.0 && spec.tpot_jitter <= 0.0 {
            return None;
        }
        Some(Jitter {
            ttft: mean_one(spec.ttft_jitter)?,
            tpot: mean_one(spec.tpot_jitter)?,
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(spec.jitter_seed)),
        })
    }

    /// (first-token factor, per-token factor) of the next request.
    fn factors(&self) -> (f64, f64) {
        // A poisoned lock only means another request panicked mid-draw; the generator is fine.
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        (self.ttft.sample(&mut *rng), self.tpot.sample(&mut *rng))
    }
}

/// The log-normal of mean 1 and coefficient of variation `cv`: σ² = ln(1 + cv²), μ = −σ²/2.
fn mean_one(cv: f64) -> Option<LogNormal<f64>> {
    let variance = (1.0 + cv.max(0.0).powi(2)).ln();
    LogNormal::new(-variance / 2.0, variance.sqrt()).ok()
}

impl LatencyModel {
    /// An engine with this latency model.
    pub fn new(spec: EmbeddedSpec) -> LatencyModel {
        let slots = Arc::new(Semaphore::new(spec.slots.clamp(1, Semaphore::MAX_PERMITS)));
        let jitter = Jitter::new(&spec);
        LatencyModel {
            spec,
            slots,
            jitter,
        }
    }

    fn schedule(&self, request: EngineRequest) -> Vec<Duration> {
        let (ttft_factor, tpot_factor) = self.jitter.as_ref().map_or((1.0, 1.0), Jitter::factors);
        let prefilled = request.prompt_tokens.saturating_sub(request.cached_tokens);
        let first_ms = (self.spec.ttft_ms
            + self.spec.prefill_us_per_token * prefilled as f64 / 1000.0)
            * ttft_factor;
        let tpot_ms = self.spec.tpot_ms * tpot_factor;
        (0..request.output_tokens)
            .map(|i| Duration::from_secs_f64((first_ms + f64::from(i) * tpot_ms) / 1000.0))
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
    use rstest::rstest;

    use super::*;

    /// The draws have the configured coefficient of variation (and mean 1): checked on the
    /// schedules themselves, no clock involved.
    #[rstest]
    #[case(0.10, 0.0)]
    #[case(0.0, 0.25)]
    #[case(0.05, 0.05)]
    fn jitter_has_the_configured_coefficient_of_variation(#[case] ttft: f64, #[case] tpot: f64) {
        let engine = LatencyModel::new(EmbeddedSpec {
            ttft_ms: 40.0,
            tpot_ms: 5.0,
            ttft_jitter: ttft,
            tpot_jitter: tpot,
            jitter_seed: 7,
            ..Default::default()
        });
        let (mut firsts, mut gaps) = (Vec::new(), Vec::new());
        for _ in 0..20_000 {
            let offsets = engine.schedule(EngineRequest {
                prompt_tokens: 10,
                cached_tokens: 0,
                output_tokens: 2,
            });
            firsts.push(offsets[0].as_secs_f64() * 1000.0);
            gaps.push((offsets[1] - offsets[0]).as_secs_f64() * 1000.0);
        }
        let stats = |v: &[f64]| {
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
            (mean, var.sqrt() / mean)
        };
        let ((first_mean, first_cv), (gap_mean, gap_cv)) = (stats(&firsts), stats(&gaps));
        assert!((first_mean / 40.0 - 1.0).abs() < 0.01, "{first_mean}");
        assert!((gap_mean / 5.0 - 1.0).abs() < 0.01, "{gap_mean}");
        assert!(
            (first_cv - ttft).abs() < 0.005,
            "ttft cv {first_cv} vs {ttft}"
        );
        assert!((gap_cv - tpot).abs() < 0.005, "tpot cv {gap_cv} vs {tpot}");
    }

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
            cached_tokens: 0,
            output_tokens: 3,
        });
        let ms: Vec<f64> = offsets.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        assert_eq!(ms.len(), 3);
        for (got, want) in ms.iter().zip([60.0, 70.0, 80.0]) {
            assert!((got - want).abs() < 1e-9, "{ms:?}");
        }
    }
}
