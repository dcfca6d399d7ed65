//! Planning a replica's next run of steps: admissions, preemptions, and the segment itself.

use super::pool::Readiness;
use super::replica::{Chunk, Segment, Timing};
use super::tracked::Phase;
use super::{Engine, EngineEvent, Event, RequestId};
use crate::cost::StepShape;
use crate::scheduler::{ContinuousConfig, SchedulerConfig};

impl Engine {
    /// Replica `r` is between steps: start its next segment, or leave it idle.
    pub(super) fn plan(&mut self, r: usize) {
        debug_assert!(self.replicas[r].segment.is_none());
        let p = self.replicas[r].pool;
        let segment = match &self.config.scheduler {
            SchedulerConfig::Continuous(c) => {
                let c = *c;
                self.plan_continuous(r, &c)
            }
            SchedulerConfig::Static(s) => {
                let (batch, wait) = (s.batch_size, s.max_wait_s);
                self.plan_binned(r, batch, wait)
            }
            SchedulerConfig::MultiBin(m) => {
                let (batch, wait) = (m.batch_size, m.max_wait_s);
                self.plan_binned(r, batch, wait)
            }
        };
        match segment {
            Some(mut segment) => {
                if self.reported.is_some() {
                    segment.members = self.decoding_members(r);
                }
                let replica = &mut self.replicas[r];
                replica.generation += 1;
                replica.stats.segments += 1;
                let event = Event::SegmentEnd {
                    replica: r,
                    generation: replica.generation,
                };
                self.queue.push(segment.end_s, event);
                replica.segment = Some(segment);
                self.pools[p].idle.remove(&r);
                // In a shared pool, another idle replica may find work too.
                if self.config.shared_pool()
                    && self.pools[p].len() > 0
                    && let Some(&other) = self.pools[p].idle.first()
                {
                    self.wake(other);
                }
            }
            None => {
                self.pools[p].idle.insert(r);
            }
        }
    }

    /// The batch size replica `r` uses now, at most `max`.
    fn batch_limit(&self, r: usize, max: u32) -> usize {
        let dynamic = self.replicas[r].dynamic.as_ref().map_or(max, |d| d.limit());
        dynamic.min(max) as usize
    }

    /// Continuous batching: decoding requests keep running; prefill work (chunks of admitted
    /// prompts, then new admissions from the queue head) fills the step's token budget, within
    /// the batch size and the KV cache. A step with prefill work is a segment of its own;
    /// without, the decoding requests run until the first finishes or the cache fills.
    fn plan_continuous(&mut self, r: usize, c: &ContinuousConfig) -> Option<Segment> {
        let limit = self.batch_limit(r, c.max_batch);
        let kv = self.config.kv;
        loop {
            self.make_room_for_decode_step(r);
            let replica = &self.replicas[r];
            let next = replica.counter + 1;
            let mut kv_used = replica.blocks_at(next);
            let mut budget = u64::from(c.token_budget).saturating_sub(replica.decode_count());
            let mut chunks: Vec<Chunk> = Vec::new();
            // Prompts part-way through their prefill go first, in admission order.
            for &id in &replica.prefilling {
                let t = &self.requests[id];
                let left = u64::from(t.prefill_len() - t.prefilled);
                let tokens = left.min(budget);
                if tokens == 0 {
                    break;
                }
                let after = u64::from(t.prefilled) + tokens + u64::from(tokens == left);
                let extra = kv.blocks(after) - kv.blocks(u64::from(t.prefilled));
                if kv_used + extra > kv.capacity_blocks {
                    break;
                }
                kv_used += extra;
                budget -= tokens;
                chunks.push(Chunk {
                    id,
                    tokens: tokens as u32,
                });
            }
            // Then admissions from the head of the queue.
            let p = replica.pool;
            while self.replicas[r].running < limit {
                let Some(id) = self.pools[p].front(0) else {
                    break;
                };
                let len = u64::from(self.requests[id].prefill_len());
                let tokens = if c.chunked_prefill {
                    len.min(budget)
                } else if len <= budget || chunks.is_empty() {
                    len
                } else {
                    break;
                };
                if tokens == 0 {
                    break;
                }
                let need = kv.blocks(tokens + u64::from(tokens == len));
                if kv_used + need > kv.capacity_blocks {
                    break;
                }
                self.pools[p].pop_front(0);
                self.admit(r, id);
                kv_used += need;
                budget = budget.saturating_sub(tokens);
                chunks.push(Chunk {
                    id,
                    tokens: tokens as u32,
                });
            }
            if !chunks.is_empty() {
                return Some(self.single_step(r, chunks));
            }
            if self.replicas[r].decode_count() > 0 {
                return Some(self.decode_segment(r));
            }
            // Only part-prefilled prompts remain and none can go on: free the cache by
            // preempting the latest admitted, which lets the earlier ones proceed.
            if self.replicas[r].running == 0 || !self.preempt_latest(r) {
                return None;
            }
        }
    }

    /// Static batches (and multi-bin, whose batches come from bins): a running batch decodes
    /// until its last request finishes; an idle replica takes a new batch from the first
    /// ready bin and prefills it in one step.
    fn plan_binned(&mut self, r: usize, max_batch: u32, max_wait: f64) -> Option<Segment> {
        if self.replicas[r].running > 0 {
            self.make_room_for_decode_step(r);
            return Some(self.decode_segment(r));
        }
        let limit = self.batch_limit(r, max_batch);
        let p = self.replicas[r].pool;
        let requests = &self.requests;
        let readiness = self.pools[p].readiness(limit, self.now, max_wait, self.draining, |id| {
            requests[id].request.arrival_s
        });
        let Readiness::Bin(bin) = readiness else {
            self.arm_timer(p, readiness);
            return None;
        };
        self.pools[p].served(bin);
        let kv = self.config.kv;
        let mut kv_used = 0;
        let mut chunks = Vec::new();
        while chunks.len() < limit {
            let Some(id) = self.pools[p].front(bin) else {
                break;
            };
            let len = self.requests[id].prefill_len();
            let need = kv.blocks(u64::from(len) + 1);
            if kv_used + need > kv.capacity_blocks {
                break;
            }
            self.pools[p].pop_front(bin);
            self.admit(r, id);
            kv_used += need;
            chunks.push(Chunk { id, tokens: len });
        }
        Some(self.single_step(r, chunks))
    }

    /// Request `id` joins replica `r` and starts its prefill.
    fn admit(&mut self, r: usize, id: usize) {
        let now = self.now;
        let t = &mut self.requests[id];
        t.phase = Phase::Prefilling;
        t.prefilled = 0;
        t.replica = r as u32;
        if t.admitted_s.is_nan() {
            t.admitted_s = now;
        }
        let (epoch, expected) = (
            t.epoch,
            t.request.prompt_tokens + t.request.predicted_output_tokens,
        );
        let replica = &mut self.replicas[r];
        replica.running += 1;
        replica.prefilling.push(id);
        if let Some(d) = replica.dynamic.as_mut() {
            d.seed_length(u64::from(expected));
        }
        let requests = &self.requests;
        replica.push_admitted(id, epoch, |i, e| {
            let t = &requests[i];
            t.epoch == e && matches!(t.phase, Phase::Prefilling | Phase::Decoding)
        });
        self.emit(EngineEvent::Admitted {
            id: RequestId(id),
            replica: r,
            at_s: now,
        });
    }

    /// A one-step segment: the decoding requests' next token plus these prompt chunks.
    fn single_step(&mut self, r: usize, chunks: Vec<Chunk>) -> Segment {
        let replica = &self.replicas[r];
        let d = replica.decode_count();
        let mut shape = if d > 0 {
            StepShape::decode(d, replica.context_tokens(), replica.max_context())
        } else {
            StepShape::default()
        };
        for chunk in &chunks {
            let done = u64::from(self.requests[chunk.id].prefilled);
            shape.add(done, u64::from(chunk.tokens));
        }
        let time = self.config.cost.step_time(&shape);
        Segment {
            start_s: self.now,
            start_counter: replica.counter,
            steps: 1,
            end_s: self.now + time,
            timing: Timing::Single(time),
            batch: shape.sequences,
            chunks,
            members: Vec::new(),
            reported: 0,
        }
    }

    /// Decode steps of the current batch until the first request finishes or the next step
    /// would overflow the KV cache. Needs at least one decoding request with room for a step.
    fn decode_segment(&mut self, r: usize) -> Segment {
        let replica = &mut self.replicas[r];
        let counter = replica.counter;
        let requests = &self.requests;
        // Drop heap entries of preempted requests.
        while let Some(&std::cmp::Reverse((_, id, epoch))) = replica.finishing.peek() {
            let t = &requests[id];
            if t.epoch == epoch && t.phase == Phase::Decoding {
                break;
            }
            replica.finishing.pop();
        }
        let to_finish = replica
            .finishing
            .peek()
            .map_or(u64::MAX, |e| e.0.0 - counter);
        let available = self.config.kv.capacity_blocks - replica.prefill_blocks;
        let to_overflow = replica
            .decoding
            .first_overflow(counter + 1, available)
            .map_or(u64::MAX, |c| c - 1 - counter);
        let steps = to_finish.min(to_overflow).max(1);
        let d = replica.decode_count();
        let series =
            self.config
                .cost
                .decode_series(d, replica.context_tokens(), replica.max_context());
        Segment {
            start_s: self.now,
            start_counter: counter,
            steps,
            end_s: self.now + series.total(steps),
            timing: Timing::Decode(series),
            batch: d,
            chunks: Vec::new(),
            members: Vec::new(),
            reported: 0,
        }
    }

    /// Preempts the most recently admitted requests until the decoding ones can all take
    /// their next token (the oldest always can: it fits in the cache alone).
    fn make_room_for_decode_step(&mut self, r: usize) {
        let capacity = self.config.kv.capacity_blocks;
        loop {
            let replica = &self.replicas[r];
            if replica.decode_count() == 0 || replica.blocks_at(replica.counter + 1) <= capacity {
                return;
            }
            if !self.preempt_latest(r) {
                return;
            }
        }
    }

    /// Preemption by recompute of replica `r`'s most recently admitted running request: it
    /// loses its KV cache and goes back to the head of its queue. False if nothing runs.
    fn preempt_latest(&mut self, r: usize) -> bool {
        let id = loop {
            let Some((id, epoch)) = self.replicas[r].admitted.pop() else {
                return false;
            };
            let t = &self.requests[id];
            if t.epoch == epoch && matches!(t.phase, Phase::Prefilling | Phase::Decoding) {
                break id;
            }
        };
        let kv = self.config.kv;
        let replica = &mut self.replicas[r];
        let t = &mut self.requests[id];
        match t.phase {
            Phase::Decoding => {
                replica.leave_decode(t);
                t.generated = t.generated_at(replica.counter);
            }
            _ => {
                replica.prefill_blocks -= kv.blocks(u64::from(t.prefilled));
                replica.prefilling.retain(|&i| i != id);
            }
        }
        t.phase = Phase::Queued;
        t.prefilled = 0;
        t.epoch += 1;
        t.preemptions += 1;
        replica.running -= 1;
        replica.stats.preemptions += 1;
        let bin = match &self.config.scheduler {
            SchedulerConfig::MultiBin(m) => m.boundaries.bin_of(t.request.predicted_output_tokens),
            _ => 0,
        };
        let p = replica.pool;
        self.pools[p].push_front(bin, id);
        self.emit(EngineEvent::Preempted {
            id: RequestId(id),
            at_s: self.now,
        });
        true
    }

    /// Replica `r`'s decoding requests (for token reports).
    fn decoding_members(&self, r: usize) -> Vec<usize> {
        self.replicas[r]
            .admitted
            .iter()
            .filter(|&&(id, epoch)| {
                let t = &self.requests[id];
                t.epoch == epoch && t.phase == Phase::Decoding && t.replica as usize == r
            })
            .map(|&(id, _)| id)
            .collect()
    }
}
