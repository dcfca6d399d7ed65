//! Arrivals: rejection of requests that can never fit, routing, waking idle replicas, cutting
//! a running segment short so a new request can join, and the max-wait timers of bins.

use super::pool::Readiness;
use super::replica::Timing;
use super::tracked::Phase;
use super::{Engine, EngineEvent, Event, RequestId};
use crate::scheduler::SchedulerConfig;

impl Engine {
    /// Request `id` arrives now.
    pub(super) fn arrive(&mut self, id: usize) {
        self.next_arrival = id + 1;
        let kv = self.config.kv;
        let tracked = &mut self.requests[id];
        if kv.blocks(tracked.total_tokens()) > kv.capacity_blocks {
            tracked.phase = Phase::Rejected;
            self.rejected += 1;
            self.emit(EngineEvent::Rejected {
                id: RequestId(id),
                at_s: self.now,
            });
        } else {
            tracked.phase = Phase::Queued;
            if self.config.shared_pool() {
                self.enqueue_shared(id);
            } else {
                self.enqueue_routed(id);
            }
        }
        self.start_draining_if_done();
    }

    fn enqueue_routed(&mut self, id: usize) {
        let outstanding = self
            .pools
            .iter()
            .zip(&self.replicas)
            .map(|(p, r)| p.len() + r.running);
        let r = self.config.router.pick(self.routed, outstanding);
        self.routed += 1;
        self.requests[id].replica = r as u32;
        self.pools[r].push_back(0, id);
        if self.replicas[r].segment.is_none() {
            self.wake(r);
        } else if self.pools[r].len() == 1 {
            // Nothing was waiting, so nothing blocked admission: the request can join at
            // the next step boundary.
            self.cut_for_joiner(r);
        }
    }

    fn enqueue_shared(&mut self, id: usize) {
        let bin = match &self.config.scheduler {
            SchedulerConfig::MultiBin(m) => m
                .boundaries
                .bin_of(self.requests[id].request.predicted_output_tokens),
            _ => 0,
        };
        self.pools[0].push_back(bin, id);
        if let Some(&r) = self.pools[0].idle.first() {
            self.wake(r);
        }
    }

    /// Queues a wake-up of idle replica `r` after the wake delay (with none: now, after every
    /// arrival of this instant).
    pub(super) fn wake(&mut self, r: usize) {
        if !self.replicas[r].wake_pending {
            self.replicas[r].wake_pending = true;
            self.queue
                .push(self.now + self.wake_delay_s, Event::Wake(r));
        }
    }

    /// Under continuous batching, ends replica `r`'s run of decode steps at the end of the
    /// step in progress, so a waiting request joins the next step.
    fn cut_for_joiner(&mut self, r: usize) {
        let SchedulerConfig::Continuous(c) = &self.config.scheduler else {
            return;
        };
        let replica = &mut self.replicas[r];
        let limit = replica
            .dynamic
            .as_ref()
            .map_or(c.max_batch, |d| d.limit().min(c.max_batch));
        if replica.running >= limit as usize {
            return;
        }
        let Some(segment) = replica.segment.as_mut() else {
            return;
        };
        let Timing::Decode(series) = segment.timing else {
            return;
        };
        let done = series.steps_by(segment.start_s, self.now, segment.steps);
        let steps = if segment.start_s + series.total(done) < self.now {
            done + 1
        } else {
            done.max(1)
        };
        if steps >= segment.steps {
            return;
        }
        segment.steps = steps;
        segment.end_s = segment.start_s + series.total(steps);
        replica.generation += 1;
        let event = Event::SegmentEnd {
            replica: r,
            generation: replica.generation,
        };
        let end = segment.end_s;
        self.queue.push(end, event);
    }

    /// Pool `p`'s max-wait timer fired: its first idle replica looks for a batch.
    pub(super) fn timer(&mut self, p: usize) {
        if self.pools[p].timer_at == Some(self.now) {
            self.pools[p].timer_at = None;
        }
        if let Some(&r) = self.pools[p].idle.first() {
            self.plan(r);
        }
    }

    /// Idle replica `r` found nothing ready in its pool: arm the pool's timer for when the
    /// oldest waiting request reaches its maximum wait.
    pub(super) fn arm_timer(&mut self, p: usize, readiness: Readiness) {
        if let Readiness::DueAt(at) = readiness {
            let pool = &mut self.pools[p];
            if at.is_finite() && pool.timer_at.is_none_or(|t| at < t) {
                pool.timer_at = Some(at);
                self.queue.push(at, Event::Timer(p));
            }
        }
    }

    /// Once closed and every arrival processed, idle replicas with waiting work serve it.
    pub(super) fn start_draining_if_done(&mut self) {
        if self.draining || !self.closed || self.next_arrival < self.requests.len() {
            return;
        }
        self.draining = true;
        for p in 0..self.pools.len() {
            if self.pools[p].len() > 0 {
                let idle: Vec<usize> = self.pools[p].idle.iter().copied().collect();
                for r in idle {
                    self.wake(r);
                }
            }
        }
    }
}
