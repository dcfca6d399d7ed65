//! The event queue: a binary heap in virtual time, ties broken by event class, then by the
//! order events were scheduled in.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// What happens at a scheduled time. (Arrivals are not queued here: they come in time order
/// from the engine's request list, and sort before every queued event of the same time.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Event {
    /// An idle replica looks for work.
    Wake(usize),
    /// A pool's oldest waiting request reaches its maximum wait.
    Timer(usize),
    /// A replica's run of steps ends (ignored if `generation` is stale).
    SegmentEnd { replica: usize, generation: u64 },
}

impl Event {
    /// Order among events at the same time: wake-ups and timers (so that every arrival of an
    /// instant is queued before an idle replica plans) before the end of a run of steps.
    fn class(&self) -> u8 {
        match self {
            Event::Wake(_) | Event::Timer(_) => 1,
            Event::SegmentEnd { .. } => 2,
        }
    }
}

#[derive(Debug)]
struct Scheduled {
    time: f64,
    class: u8,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    /// Reversed, so the max-heap pops the earliest.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .time
            .total_cmp(&self.time)
            .then(other.class.cmp(&self.class))
            .then(other.seq.cmp(&self.seq))
    }
}

/// Pending events in virtual time.
#[derive(Debug, Default)]
pub(super) struct EventQueue {
    heap: BinaryHeap<Scheduled>,
    seq: u64,
}

impl EventQueue {
    pub fn push(&mut self, time: f64, event: Event) {
        self.seq += 1;
        self.heap.push(Scheduled {
            time,
            class: event.class(),
            seq: self.seq,
            event,
        });
    }

    /// Time of the earliest event.
    pub fn peek_time(&self) -> Option<f64> {
        self.heap.peek().map(|s| s.time)
    }

    pub fn pop(&mut self) -> Option<(f64, Event)> {
        self.heap.pop().map(|s| (s.time, s.event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_by_time_then_class_then_order_of_scheduling() {
        let mut q = EventQueue::default();
        q.push(2.0, Event::Wake(0));
        q.push(
            1.0,
            Event::SegmentEnd {
                replica: 1,
                generation: 0,
            },
        );
        q.push(1.0, Event::Timer(3));
        q.push(1.0, Event::Wake(2));
        let order: Vec<Event> = std::iter::from_fn(|| q.pop().map(|(_, e)| e)).collect();
        assert_eq!(
            order,
            [
                Event::Timer(3),
                Event::Wake(2),
                Event::SegmentEnd {
                    replica: 1,
                    generation: 0
                },
                Event::Wake(0)
            ]
        );
    }
}
