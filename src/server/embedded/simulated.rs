//! The serving simulator as the embedded server's engine, against the wall clock.
//!
//! One driver thread owns a [`sim::Engine`]. Each HTTP request becomes a simulated request
//! arriving at the moment the driver hears of it; the driver sleeps until the engine's next
//! event or step end (or the next arrival), advances the engine to the wall clock's time, and
//! hands each request its events: the instant it was admitted and, in order, the instant each
//! of its tokens was generated. The server releases a token when the engine says it was made,
//! so batching, queueing, KV-cache pressure and preemption shape what the client measures
//! exactly as they shape the simulation, and later arrivals change earlier requests' timing as
//! they would on a real engine.
//!
//! The driver is a thread of its own, not a task, because it must wake on time: a blocking
//! wait with a timeout wakes within tens of microseconds of the step's end, where tokio's
//! timer rounds up to the next millisecond.
//!
//! Limit: the simulated request runs to its end even when the client goes away (the simulator
//! has no cancellation).

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::EmbeddedError;
use super::engine::{Admission, Engine, EngineGauges, EngineRequest};
use crate::sim::config::SimConfig;
use crate::sim::engine::RequestOutcome;
use crate::sim::kv::KvGeometry;
use crate::sim::workload::LengthPredictor;
use crate::sim::{self, EngineEvent, RequestId, SimRequest};

/// What a request hands the driver.
struct Submission {
    prompt_tokens: u32,
    output_tokens: u32,
    admitted: oneshot::Sender<Instant>,
    tokens: mpsc::UnboundedSender<Instant>,
}

/// Where a simulated request's events go.
struct Sink {
    admitted: Option<oneshot::Sender<Instant>>,
    tokens: mpsc::UnboundedSender<Instant>,
    released: u32,
}

/// What the driver shares with the server: its gauges and the finished requests' outcomes.
#[derive(Default)]
struct Shared {
    gauges: Mutex<EngineGauges>,
    finished: Mutex<Vec<RequestOutcome>>,
}

/// The discrete-event simulator serving HTTP requests in real time (see the module
/// documentation). Dropping it stops the driver; requests it had not finished end early.
pub struct SimulatedEngine {
    submissions: Sender<Submission>,
    shared: Arc<Shared>,
    kv: KvGeometry,
}

impl SimulatedEngine {
    /// Builds the engine of `config` (its replicas, router, scheduler, cost model and KV cache;
    /// its workload only places multi-bin boundaries and sets the length predictor's noise)
    /// and starts its driver thread.
    pub fn start(config: &SimConfig) -> Result<SimulatedEngine, EmbeddedError> {
        let engine_config = config.engine_config()?;
        let kv = engine_config.kv;
        let engine = sim::Engine::new(engine_config)?;
        let predictor = config.workload.predictor();
        let (submissions, received) = channel();
        let shared = Arc::new(Shared::default());
        let driver = Driver {
            engine,
            predictor,
            epoch: std::time::Instant::now(),
            sinks: Vec::new(),
            last_arrival_s: 0.0,
            preemptions: 0,
            shared: Arc::clone(&shared),
        };
        std::thread::Builder::new()
            .name("sim-engine".into())
            .spawn(move || driver.run(&received))
            .map_err(EmbeddedError::Thread)?;
        Ok(SimulatedEngine {
            submissions,
            shared,
            kv,
        })
    }

    /// The engine's own account of every request it finished so far, in virtual seconds since
    /// the engine started: what the client should measure.
    pub fn finished(&self) -> Vec<RequestOutcome> {
        self.shared
            .finished
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Engine for SimulatedEngine {
    fn refusal(&self, request: EngineRequest) -> Option<String> {
        let tokens = request.prompt_tokens.max(1) + u64::from(request.output_tokens);
        (self.kv.blocks(tokens) > self.kv.capacity_blocks).then(|| {
            format!(
                "prompt and output ({tokens} tokens) exceed the KV cache of a replica ({} tokens)",
                self.kv.capacity_blocks * u64::from(self.kv.block_size)
            )
        })
    }

    fn admit(&self, request: EngineRequest) -> BoxFuture<'_, Admission> {
        Box::pin(async move {
            let (tokens, due) = mpsc::unbounded_channel();
            if request.output_tokens == 0 {
                return Admission::live(Instant::now(), due, Box::new(()));
            }
            let (admitted, admission) = oneshot::channel();
            let submission = Submission {
                prompt_tokens: u32::try_from(request.prompt_tokens)
                    .unwrap_or(u32::MAX)
                    .max(1),
                output_tokens: request.output_tokens,
                admitted,
                tokens,
            };
            // A driver that is gone (or refused the request) never admits it: the request
            // then has no tokens to release, and the server ends its answer early.
            let at = match self.submissions.send(submission) {
                Ok(()) => admission.await.unwrap_or_else(|_| Instant::now()),
                Err(_) => Instant::now(),
            };
            Admission::live(at, due, Box::new(()))
        })
    }

    fn gauges(&self) -> Option<EngineGauges> {
        Some(
            *self
                .shared
                .gauges
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }
}

/// The thread that runs the simulator against the wall clock.
struct Driver {
    engine: sim::Engine,
    predictor: LengthPredictor,
    /// Virtual time 0.
    epoch: std::time::Instant,
    /// Indexed by the engine's request id; `None` once finished or refused.
    sinks: Vec<Option<Sink>>,
    last_arrival_s: f64,
    preemptions: u64,
    shared: Arc<Shared>,
}

impl Driver {
    /// Serves until the engine's handle is dropped (the server is gone).
    fn run(mut self, submissions: &Receiver<Submission>) {
        loop {
            let wake = [self.engine.next_event_s(), self.engine.next_token_s()]
                .into_iter()
                .flatten()
                .min_by(f64::total_cmp)
                .map(|s| self.epoch + Duration::from_secs_f64(s.max(0.0)));
            let received = match wake {
                Some(wake) => {
                    match submissions
                        .recv_timeout(wake.saturating_duration_since(std::time::Instant::now()))
                    {
                        Ok(submission) => Some(submission),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
                None => match submissions.recv() {
                    Ok(submission) => Some(submission),
                    Err(_) => return,
                },
            };
            if let Some(first) = received {
                self.arrive(first);
                while let Ok(more) = submissions.try_recv() {
                    self.arrive(more);
                }
            }
            let events = self.engine.advance_to(self.now_s());
            self.dispatch(&events);
            self.publish_gauges();
        }
    }

    fn now_s(&self) -> f64 {
        self.epoch.elapsed().as_secs_f64()
    }

    /// Pushes a request arriving now.
    fn arrive(&mut self, submission: Submission) {
        let arrival_s = self
            .now_s()
            .max(self.engine.now_s())
            .max(self.last_arrival_s);
        let request = SimRequest {
            arrival_s,
            prompt_tokens: submission.prompt_tokens,
            output_tokens: submission.output_tokens,
            predicted_output_tokens: self.predictor.predict(submission.output_tokens),
        };
        // Arrival times never go back and the server checked the lengths, so a push fails
        // only for lengths past the simulator's limit: dropping the submission's senders ends
        // that request's answer early.
        let Ok(RequestId(id)) = self.engine.push(request) else {
            return;
        };
        self.last_arrival_s = arrival_s;
        if self.sinks.len() <= id {
            self.sinks.resize_with(id + 1, || None);
        }
        self.sinks[id] = Some(Sink {
            admitted: Some(submission.admitted),
            tokens: submission.tokens,
            released: 0,
        });
    }

    fn instant(&self, at_s: f64) -> Instant {
        Instant::from_std(self.epoch + Duration::from_secs_f64(at_s.max(0.0)))
    }

    fn dispatch(&mut self, events: &[EngineEvent]) {
        for event in events {
            match *event {
                EngineEvent::Admitted { id, at_s, .. } => {
                    let at = self.instant(at_s);
                    if let Some(admitted) = self.sink(id).and_then(|s| s.admitted.take()) {
                        // A client that went away no longer listens.
                        let _ = admitted.send(at);
                    }
                }
                EngineEvent::Token { id, index, at_s } => {
                    let at = self.instant(at_s);
                    if let Some(sink) = self.sink(id)
                        && index == sink.released
                    {
                        sink.released += 1;
                        let _ = sink.tokens.send(at);
                    }
                }
                EngineEvent::Finished { id, .. } => {
                    self.close(id);
                    if let Some(outcome) = self.engine.outcome(id) {
                        self.shared
                            .finished
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(outcome);
                    }
                }
                EngineEvent::Rejected { id, .. } => self.close(id),
                EngineEvent::Preempted { .. } => self.preemptions += 1,
            }
        }
    }

    fn sink(&mut self, id: RequestId) -> Option<&mut Sink> {
        self.sinks.get_mut(id.0)?.as_mut()
    }

    /// Drops a request's senders: its answer has every token it will get.
    fn close(&mut self, id: RequestId) {
        if let Some(slot) = self.sinks.get_mut(id.0) {
            *slot = None;
        }
    }

    fn publish_gauges(&self) {
        let snapshot = self.engine.snapshot();
        let kv_usage = if snapshot.kv_capacity_blocks == 0 {
            0.0
        } else {
            snapshot.kv_used_blocks as f64 / snapshot.kv_capacity_blocks as f64
        };
        *self
            .shared
            .gauges
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = EngineGauges {
            running: snapshot.running,
            waiting: snapshot.queued + snapshot.pending,
            kv_usage,
            preemptions: self.preemptions,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::config::{CostSpec, KvSpec};
    use crate::sim::cost::FittedCost;

    /// Steps of exactly 10 ms whatever the batch, up to `batch` requests at once, a KV cache
    /// of `kv_tokens` tokens.
    fn config(batch: u32, kv_tokens: u64) -> SimConfig {
        let mut config = SimConfig {
            cost: CostSpec::Fitted(FittedCost {
                alpha: 0.010,
                beta: 0.0,
                gamma: 0.0,
                prefill_per_token: 0.0,
            }),
            kv: KvSpec {
                block_size: 1,
                capacity_tokens: Some(kv_tokens),
                ..KvSpec::default()
            },
            ..SimConfig::default()
        };
        config.scheduler.batch_size = batch;
        config
    }

    fn request(prompt_tokens: u64, output_tokens: u32) -> EngineRequest {
        EngineRequest {
            prompt_tokens,
            cached_tokens: 0,
            output_tokens,
        }
    }

    /// Every token's due instant, measured from admission, in milliseconds.
    async fn token_ms(admission: &mut Admission, tokens: u32) -> Vec<f64> {
        let from = admission.admitted_at;
        let mut ms = Vec::new();
        for i in 0..tokens as usize {
            let due = admission
                .token_due(i)
                .await
                .expect("every token is released");
            ms.push((due - from).as_secs_f64() * 1e3);
        }
        ms
    }

    #[tokio::test]
    async fn tokens_come_when_the_engine_steps_and_batches_share_steps() {
        let engine = SimulatedEngine::start(&config(2, 10_000)).unwrap();
        let start = Instant::now();
        // Two requests at once share every step: each step is 10 ms, the first makes both
        // first tokens (prefill), each later one a token of each.
        let (mut a, mut b) = tokio::join!(engine.admit(request(8, 4)), engine.admit(request(8, 4)));
        let (a_ms, b_ms) = tokio::join!(token_ms(&mut a, 4), token_ms(&mut b, 4));
        for ms in [&a_ms, &b_ms] {
            for (got, want) in ms.iter().zip([10.0, 20.0, 30.0, 40.0]) {
                assert!((got - want).abs() < 0.01, "{ms:?}");
            }
        }
        // A third request, batch full, waits until the first two finish (40 ms).
        let mut c = engine.admit(request(8, 2)).await;
        assert!(c.admitted_at - start >= Duration::from_millis(40));
        let c_ms = token_ms(&mut c, 2).await;
        assert!((c_ms[1] - 20.0).abs() < 0.01, "{c_ms:?}");
        // The wall clock followed: the last token was released no earlier than it was due.
        assert!(Instant::now() >= c.admitted_at + Duration::from_millis(20));

        // The engine's own account agrees, in virtual time.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let finished = engine.finished();
        assert_eq!(finished.len(), 3);
        for outcome in &finished[..2] {
            let first = outcome.first_token_s.unwrap() - outcome.admitted_s.unwrap();
            assert!((first - 0.010).abs() < 1e-9, "{outcome:?}");
        }
        assert_eq!(engine.gauges().unwrap().running, 0);
    }

    #[tokio::test]
    async fn a_request_that_can_never_fit_is_refused_and_gauges_follow_the_engine() {
        let engine = Arc::new(SimulatedEngine::start(&config(1, 100)).unwrap());
        let refusal = engine.refusal(request(90, 20)).expect("110 tokens > 100");
        assert!(
            refusal.contains("110 tokens") && refusal.contains("100 tokens"),
            "{refusal}"
        );
        assert_eq!(engine.refusal(request(80, 20)), None);

        // One request in service, one waiting for the only place in the batch.
        let mut first = engine.admit(request(40, 50)).await;
        let second = {
            let engine = Arc::clone(&engine);
            tokio::spawn(async move { engine.admit(request(40, 5)).await.admitted_at })
        };
        first.token_due(2).await.unwrap();
        let gauges = engine.gauges().unwrap();
        assert_eq!((gauges.running, gauges.waiting), (1, 1), "{gauges:?}");
        // 40 prompt tokens and 3 generated of a 100-token cache.
        assert!((0.4..0.5).contains(&gauges.kv_usage), "{gauges:?}");
        let last = first.token_due(49).await.unwrap();
        let admitted_at = second.await.unwrap();
        assert!(
            admitted_at >= last,
            "the second waited for the first to finish"
        );
    }

    #[tokio::test]
    async fn no_output_needs_no_engine() {
        let engine = SimulatedEngine::start(&config(1, 100)).unwrap();
        let mut admission = engine.admit(request(10, 0)).await;
        assert_eq!(admission.token_due(0).await, None);
    }
}
