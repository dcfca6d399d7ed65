//! The end of a run of steps: tokens, finished prefills, completions, and the token reports of
//! the incremental API.

use std::cmp::Reverse;

use super::replica::Timing;
use super::tracked::Phase;
use super::{Engine, EngineEvent, RequestId};

impl Engine {
    /// Replica `r`'s segment ended now: account for its steps and apply what they did.
    pub(super) fn complete_segment(&mut self, r: usize) {
        let Some(segment) = self.replicas[r].segment.take() else {
            return;
        };
        if self.reported.is_some() {
            self.report_steps(&segment, segment.steps);
        }
        let end = segment.end_s;
        let kv = self.config.kv;
        let replica = &mut self.replicas[r];
        let elapsed = end - segment.start_s;
        replica.stats.busy_s += elapsed;
        replica.stats.steps += segment.steps;
        replica.stats.sequence_steps += segment.batch * segment.steps;
        if let Some(d) = replica.dynamic.as_mut() {
            d.observe_steps(segment.steps, segment.batch, elapsed / segment.steps as f64);
        }
        replica.counter += segment.steps;
        let mut prefills_done = false;
        for chunk in &segment.chunks {
            let (index, last) = {
                let replica = &mut self.replicas[r];
                let t = &mut self.requests[chunk.id];
                let before = u64::from(t.prefilled);
                t.prefilled += chunk.tokens;
                if t.prefilled < t.prefill_len() {
                    replica.prefill_blocks += kv.blocks(u64::from(t.prefilled)) - kv.blocks(before);
                    continue;
                }
                // The prefill is done and produced the next token.
                replica.prefill_blocks -= kv.blocks(before);
                t.generated += 1;
                if t.first_token_s.is_nan() {
                    t.first_token_s = end;
                }
                let last = t.generated == t.request.output_tokens;
                if !last {
                    t.phase = Phase::Decoding;
                    replica.join_decode(chunk.id, t);
                }
                (t.generated - 1, last)
            };
            prefills_done = true;
            self.emit(EngineEvent::Token {
                id: RequestId(chunk.id),
                index,
                at_s: end,
            });
            if last {
                self.finish(r, chunk.id);
            }
        }
        if prefills_done {
            let requests = &self.requests;
            self.replicas[r]
                .prefilling
                .retain(|&id| requests[id].phase == Phase::Prefilling);
        }
        self.finish_due(r);
    }

    /// Finishes every decoding request of replica `r` whose last token is at or before the
    /// current counter.
    fn finish_due(&mut self, r: usize) {
        loop {
            let replica = &mut self.replicas[r];
            let Some(&Reverse((at_counter, id, epoch))) = replica.finishing.peek() else {
                return;
            };
            if at_counter > replica.counter {
                return;
            }
            replica.finishing.pop();
            let t = &self.requests[id];
            if t.epoch != epoch || t.phase != Phase::Decoding {
                continue;
            }
            self.replicas[r].leave_decode(t);
            self.finish(r, id);
        }
    }

    /// Request `id` on replica `r` generated its last token now.
    fn finish(&mut self, r: usize, id: usize) {
        let t = &mut self.requests[id];
        t.phase = Phase::Finished;
        t.generated = t.request.output_tokens;
        t.finished_s = self.now;
        let tokens = t.total_tokens();
        let replica = &mut self.replicas[r];
        replica.running -= 1;
        if let Some(d) = replica.dynamic.as_mut() {
            d.observe_finished(tokens);
        }
        self.finished += 1;
        self.emit(EngineEvent::Finished {
            id: RequestId(id),
            at_s: self.now,
        });
    }

    /// Reports the tokens of replica `r`'s steps that ended before `t` and were not reported.
    pub(super) fn report_progress(&mut self, r: usize, t: f64) {
        if self.reported.is_none() {
            return;
        }
        let Some(segment) = self.replicas[r].segment.take() else {
            return;
        };
        let upto = segment.steps_before(t);
        let mut segment = segment;
        if matches!(segment.timing, Timing::Decode(_)) && upto > segment.reported {
            self.report_steps(&segment, upto);
            segment.reported = upto;
        }
        self.replicas[r].segment = Some(segment);
    }

    /// Emits the decoding members' tokens of steps `segment.reported + 1 ..= upto`.
    fn report_steps(&mut self, segment: &super::replica::Segment, upto: u64) {
        for j in segment.reported + 1..=upto {
            let at_s = segment.start_s + segment.elapsed(j);
            for &id in &segment.members {
                let index = self.requests[id].generated_at(segment.start_counter + j) - 1;
                self.emit(EngineEvent::Token {
                    id: RequestId(id),
                    index,
                    at_s,
                });
            }
        }
    }
}
