//! One replica: the requests it runs, in aggregates that let a run of decode steps be
//! accounted for in closed form, and the run of steps in progress.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use super::tracked::Tracked;
use crate::cost::StepSeries;
use crate::kv::GrowingBlocks;
use crate::scheduler::DynamicBatch;

/// How the steps of a segment are timed.
#[derive(Debug, Clone, Copy)]
pub(super) enum Timing {
    /// A run of decode steps of unchanged batch.
    Decode(StepSeries),
    /// One step with prefill work, of this many seconds.
    Single(f64),
}

/// A prompt chunk prefilled in a step.
#[derive(Debug, Clone, Copy)]
pub(super) struct Chunk {
    pub id: usize,
    pub tokens: u32,
}

/// A run of steps with a fixed batch: it ends when a request finishes, the KV cache would
/// overflow, or (continuous batching) a waiting request can join.
#[derive(Debug, Clone)]
pub(super) struct Segment {
    pub start_s: f64,
    pub start_counter: u64,
    pub steps: u64,
    pub end_s: f64,
    pub timing: Timing,
    /// Sequences in every step.
    pub batch: u64,
    /// Prompt chunks of a [`Timing::Single`] step.
    pub chunks: Vec<Chunk>,
    /// Decoding requests of the segment, kept only when the engine reports tokens.
    pub members: Vec<usize>,
    /// Steps whose tokens were reported.
    pub reported: u64,
}

impl Segment {
    /// Seconds from the segment's start to the end of its step `j` (1-based).
    pub fn elapsed(&self, j: u64) -> f64 {
        match self.timing {
            Timing::Decode(series) => series.total(j),
            Timing::Single(t) => {
                if j == 0 {
                    0.0
                } else {
                    t
                }
            }
        }
    }

    /// Steps that end strictly before `t`.
    pub fn steps_before(&self, t: f64) -> u64 {
        let k = match self.timing {
            Timing::Decode(series) => series.steps_by(self.start_s, t, self.steps),
            Timing::Single(_) => u64::from(self.end_s <= t),
        };
        if k > 0 && self.start_s + self.elapsed(k) >= t {
            k - 1
        } else {
            k
        }
    }
}

/// Work done by one replica.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ReplicaStats {
    /// Virtual seconds spent running steps.
    pub busy_s: f64,
    /// Steps run.
    pub steps: u64,
    /// Σ sequences over steps (`sequence_steps / steps` is the mean batch size).
    pub sequence_steps: u64,
    /// Runs of steps (segments) planned.
    pub segments: u64,
    /// Requests preempted.
    pub preemptions: u64,
}

/// A replica's state.
#[derive(Debug)]
pub(super) struct Replica {
    /// The pool it takes work from.
    pub pool: usize,
    /// Steps run so far; a decoding request grows one token per step.
    pub counter: u64,
    /// Blocks of the decoding requests.
    pub decoding: GrowingBlocks,
    /// Σ offsets of the decoding requests (their KV tokens sum to `offset_sum + n·counter`).
    pub offset_sum: i64,
    /// Multiset of offsets (the longest sequence is the largest offset + counter).
    pub offsets: BTreeMap<i64, u32>,
    /// Decoding requests by the counter at which they finish: (counter, id, epoch).
    pub finishing: BinaryHeap<Reverse<(u64, usize, u32)>>,
    /// Requests part-way through their prefill (chunked prefill), in admission order.
    pub prefilling: Vec<usize>,
    /// Blocks held by `prefilling`.
    pub prefill_blocks: u64,
    /// Running requests in admission order (id, epoch), with stale entries of requests gone:
    /// preemption takes the most recently admitted.
    pub admitted: Vec<(usize, u32)>,
    /// Requests admitted and not finished or preempted.
    pub running: usize,
    pub segment: Option<Segment>,
    /// Bumped whenever the segment's end changes, so stale end events are ignored.
    pub generation: u64,
    /// A wake-up is queued.
    pub wake_pending: bool,
    pub dynamic: Option<DynamicBatch>,
    pub stats: ReplicaStats,
}

impl Replica {
    pub fn new(pool: usize, block_size: u32, dynamic: Option<DynamicBatch>) -> Replica {
        Replica {
            pool,
            counter: 0,
            decoding: GrowingBlocks::new(block_size),
            offset_sum: 0,
            offsets: BTreeMap::new(),
            finishing: BinaryHeap::new(),
            prefilling: Vec::new(),
            prefill_blocks: 0,
            admitted: Vec::new(),
            running: 0,
            segment: None,
            generation: 0,
            wake_pending: false,
            dynamic,
            stats: ReplicaStats::default(),
        }
    }

    /// Decoding requests.
    pub fn decode_count(&self) -> u64 {
        self.decoding.len()
    }

    /// KV tokens of the decoding requests at the current counter.
    pub fn context_tokens(&self) -> u64 {
        (self.offset_sum + self.decode_count() as i64 * self.counter as i64).max(0) as u64
    }

    /// The longest decoding sequence at the current counter.
    pub fn max_context(&self) -> u64 {
        self.offsets
            .last_key_value()
            .map_or(0, |(&o, _)| (o + self.counter as i64).max(0) as u64)
    }

    /// Blocks in use once every decoding request has grown to counter `counter`.
    pub fn blocks_at(&self, counter: u64) -> u64 {
        self.decoding.blocks_at(counter) + self.prefill_blocks
    }

    /// Adds a request that starts decoding at the current counter.
    pub fn join_decode(&mut self, id: usize, t: &mut Tracked) {
        t.join_counter = self.counter;
        let offset = t.offset();
        self.decoding.insert(offset);
        self.offset_sum += offset;
        *self.offsets.entry(offset).or_insert(0) += 1;
        self.finishing
            .push(Reverse((t.finish_counter(), id, t.epoch)));
    }

    /// Removes a decoding request (finished or preempted); its heap entry goes stale.
    pub fn leave_decode(&mut self, t: &Tracked) {
        let offset = t.offset();
        self.decoding.remove(offset);
        self.offset_sum -= offset;
        if let Some(n) = self.offsets.get_mut(&offset) {
            *n -= 1;
            if *n == 0 {
                self.offsets.remove(&offset);
            }
        }
    }

    /// Records an admission, compacting the admission stack when stale entries dominate it.
    pub fn push_admitted(&mut self, id: usize, epoch: u32, live: impl Fn(usize, u32) -> bool) {
        if self.admitted.len() > 64 && self.admitted.len() > 2 * self.running {
            self.admitted.retain(|&(i, e)| live(i, e));
        }
        self.admitted.push((id, epoch));
    }
}
