//! What a load run sends and where: prepared prompts, and the endpoints requests are spread
//! over by weight.

use std::sync::Arc;
use std::time::Instant;

use rand::SeedableRng;
use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use rand_chacha::ChaCha8Rng;

use super::barrier::FileBarrier;
use super::conversation::Conversations;
use super::progress::LoadProgress;
use super::share::Share;
use super::spool::Spool;
use crate::client::{Client, Generation, ms_between};
use crate::metrics::{ErrorClass, RequestRecord};

/// How the evidence of a request cut off by the trial's time limit begins.
pub const CUT_OFF_NOTE: &str = "cut off at the trial's time limit (load.trial_timeout)";

/// One server requests may go to.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Name in per-endpoint summaries.
    pub name: String,
    /// Relative share of requests.
    pub weight: f64,
    /// The client speaking to it.
    pub client: Client,
}

/// Which prompts a request takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Warmup: never measured.
    Warmup,
    /// The measured window.
    Measured,
}

/// Everything a load driver needs to send request `id`: its prompt (pools are cycled when a
/// run sends more requests than it has prompts) and its endpoint (chosen by weight from the
/// seed and the id, so the choice does not depend on timing).
#[derive(Debug)]
pub struct RequestSource {
    endpoints: Vec<Endpoint>,
    picker: Option<WeightedIndex<f64>>,
    measured: Vec<Generation>,
    warmup: Vec<Generation>,
    seed: u64,
    progress: Option<Arc<LoadProgress>>,
    prefix_groups: Option<u32>,
    cut_off: Option<Instant>,
    conversations: Option<Conversations>,
    share: Share,
    barrier: Option<Arc<FileBarrier>>,
    spool: Option<Arc<Spool>>,
}

/// Why a request source cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// No endpoint, or weights that are not positive numbers.
    #[error("endpoint weights must be positive numbers: {0}")]
    Weights(String),
    /// No measured prompt.
    #[error("a load run needs at least one prompt")]
    NoPrompts,
}

impl RequestSource {
    /// A source over `endpoints` with measured and warmup prompt pools.
    pub fn new(
        endpoints: Vec<Endpoint>,
        measured: Vec<Generation>,
        warmup: Vec<Generation>,
        seed: u64,
    ) -> Result<RequestSource, SourceError> {
        if measured.is_empty() {
            return Err(SourceError::NoPrompts);
        }
        let picker = match endpoints.len() {
            0 => return Err(SourceError::Weights("no endpoint".into())),
            1 => None,
            _ => Some(
                WeightedIndex::new(endpoints.iter().map(|e| e.weight))
                    .map_err(|e| SourceError::Weights(e.to_string()))?,
            ),
        };
        Ok(RequestSource {
            endpoints,
            picker,
            measured,
            warmup,
            seed,
            progress: None,
            prefix_groups: None,
            cut_off: None,
            conversations: None,
            share: Share::WHOLE,
            barrier: None,
            spool: None,
        })
    }

    /// Counts the measured requests into `progress` as they are sent and finish, for a live
    /// display (a few relaxed atomic operations per request).
    pub fn with_progress(mut self, progress: Option<Arc<LoadProgress>>) -> RequestSource {
        self.progress = progress;
        self
    }

    /// Marks each measured record with the shared prefix its prompt began with: the prompts
    /// were built with `groups` shared prefixes, pool prompt `i` taking prefix `i mod groups`
    /// (see [`crate::prompts::exact::shared_prefix_prompts`]).
    pub fn with_prefix_groups(mut self, groups: Option<u32>) -> RequestSource {
        self.prefix_groups = groups.map(|g| g.max(1));
        self
    }

    /// Ends the load at `at` (the trial's time limit, `load.trial_timeout`): no request is sent
    /// after it, and a request still running then ends as a timeout whose evidence says so.
    pub fn with_cut_off(mut self, at: Instant) -> RequestSource {
        self.cut_off = Some(at);
        self
    }

    /// Sends this worker's share of the load ([`Share`]): the drivers run the share's streams,
    /// users or arrivals, and [`RequestSource::send`] maps each local request id j to the
    /// global id j·N+I, so every request's prompt and endpoint are the single process's.
    pub fn with_share(mut self, share: Share) -> RequestSource {
        self.share = share;
        self
    }

    /// The share of the load this source sends ([`Share::WHOLE`] unless set).
    pub fn share(&self) -> Share {
        self.share
    }

    /// Starts each measured load (after its warmup) together with the other workers, at the
    /// barrier's agreed instant.
    pub fn with_barrier(mut self, barrier: Arc<FileBarrier>) -> RequestSource {
        self.barrier = Some(barrier);
        self
    }

    /// Streams the measured records to `spool` as they finish ([`RequestSource::keep`])
    /// rather than collecting them: the load's outcome then holds none of them.
    pub fn with_spool(mut self, spool: Arc<Spool>) -> RequestSource {
        self.spool = Some(spool);
        self
    }

    /// The spool the measured records stream to, if any.
    pub fn spool(&self) -> Option<&Arc<Spool>> {
        self.spool.as_ref()
    }

    /// The one place a driver hands a finished record of `phase` to: a measured record of a
    /// streamed load goes to the spool (and `None` comes back); any other comes back for the
    /// driver to collect.
    pub async fn keep(&self, phase: Phase, record: RequestRecord) -> Option<RequestRecord> {
        match (&self.spool, phase) {
            (Some(spool), Phase::Measured) => {
                spool.take(record).await;
                None
            }
            _ => Some(record),
        }
    }

    /// The barrier the measured load waits at, if any.
    pub fn barrier(&self) -> Option<&FileBarrier> {
        self.barrier.as_deref()
    }

    /// The instant the load is cut off at, if any.
    pub fn cut_off(&self) -> Option<Instant> {
        self.cut_off
    }

    /// Whether the cut-off has passed: drivers send nothing more.
    pub fn expired(&self) -> bool {
        self.cut_off.is_some_and(|at| Instant::now() >= at)
    }

    /// Runs the measured load as multi-turn conversations (`prompts.sessions`): see
    /// [`Conversations`].
    pub fn with_conversations(mut self, conversations: Option<Conversations>) -> RequestSource {
        self.conversations = conversations;
        self
    }

    /// The conversations the measured load runs, if any.
    pub fn conversations(&self) -> Option<&Conversations> {
        self.conversations.as_ref()
    }

    /// The new user message of turn `turn` (from 1) of the conversation whose request it is:
    /// turn 1 takes the measured pool's prompt, later turns the follow-up pool's (the measured
    /// one when there is none), both by request id.
    pub fn user_message(&self, id: u64, turn: u32) -> &Generation {
        let pool = match &self.conversations {
            Some(c) if turn > 1 && !c.follow_ups.is_empty() => &c.follow_ups,
            _ => &self.measured,
        };
        &pool[(id % pool.len() as u64) as usize]
    }

    /// Whether measured records carry their prefix group.
    pub fn has_prefix_groups(&self) -> bool {
        self.prefix_groups.is_some()
    }

    /// The counters measured requests are counted into, if any.
    pub fn progress(&self) -> Option<&LoadProgress> {
        self.progress.as_deref()
    }

    /// The endpoints, in case order.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// Size of the measured prompt pool.
    pub fn pool_size(&self) -> usize {
        self.measured.len()
    }

    /// The endpoint request `id` of `phase` goes to.
    pub fn endpoint_of(&self, phase: Phase, id: u64) -> usize {
        let Some(picker) = &self.picker else {
            return 0;
        };
        let salt = match phase {
            Phase::Warmup => 0x5741_524D,
            Phase::Measured => 0,
        };
        let mut rng =
            ChaCha8Rng::seed_from_u64(self.seed ^ salt ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        picker.sample(&mut rng)
    }

    /// Sends request `id` and measures it. `intended` is its open-loop schedule time. `id` is
    /// the driver's own (local) number; the record carries the global id of the source's
    /// share ([`Share::global`]).
    pub async fn send(
        &self,
        phase: Phase,
        id: u64,
        window_start: Instant,
        intended: Option<Instant>,
    ) -> RequestRecord {
        let id = self.share.global(id);
        let pool = match phase {
            Phase::Measured => &self.measured,
            Phase::Warmup if self.warmup.is_empty() => &self.measured,
            Phase::Warmup => &self.warmup,
        };
        let slot = id % pool.len() as u64;
        let request = &pool[slot as usize];
        let mut record = self
            .send_request(phase, id, window_start, intended, request)
            .await;
        if phase == Phase::Measured {
            record.prefix_group = self
                .prefix_groups
                .map(|groups| (slot % u64::from(groups)) as u32);
        }
        record
    }

    /// Sends `request` as request `id` and measures it (a conversation's turn is built by the
    /// caller).
    pub async fn send_request(
        &self,
        phase: Phase,
        id: u64,
        window_start: Instant,
        intended: Option<Instant>,
        request: &Generation,
    ) -> RequestRecord {
        let endpoint = self.endpoint_of(phase, id);
        let observer = self.progress().filter(|_| phase == Phase::Measured);
        if let Some(progress) = observer {
            progress.request_sent();
        }
        let mut record = self.endpoints[endpoint]
            .client
            .generate_until(id, window_start, request, self.cut_off)
            .await;
        if record.error == Some(ErrorClass::Timeout) && self.expired() {
            let detail = record.error_detail.take().unwrap_or_default();
            record.error_detail = Some(format!("{CUT_OFF_NOTE}: {detail}"));
        }
        record.endpoint = endpoint as u32;
        record.intended_ms = intended.map(|at| ms_between(window_start, at));
        if let Some(progress) = observer {
            progress.request_finished(&record);
        }
        record
    }
}
