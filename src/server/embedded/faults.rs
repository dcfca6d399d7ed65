//! Faults the embedded server injects (see [`FaultSpec`]): which request gets which, drawn
//! from the request's sequence number so that a run is repeatable.

use std::time::Duration;

use axum::http::StatusCode;

use super::answers::unit_hash;
use crate::case::FaultSpec;

/// What goes wrong with one generation request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answered with this status and an error body, nothing generated.
    Error(StatusCode),
    /// The stream is cut halfway, without its final event.
    Disconnect,
    /// The stream pauses this long halfway; later tokens come as much later.
    Stall(Duration),
    /// One event halfway is not JSON.
    Malformed,
}

/// The faults of one server.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    spec: FaultSpec,
}

impl Faults {
    /// Faults as the case says (a spec that passed [`FaultSpec::problem`]).
    pub fn new(spec: FaultSpec) -> Faults {
        Faults { spec }
    }

    /// The fault of the request with sequence number `id` (0 for the server's first), if any.
    /// Each fault takes its rate's share of [0, 1), in the order error, disconnect, stall,
    /// malformed; the request's draw picks one.
    pub fn of(&self, id: u64) -> Option<Fault> {
        let s = &self.spec;
        let draw = unit_hash(s.seed, &id.to_le_bytes());
        let status = s
            .error_status
            .and_then(|code| StatusCode::from_u16(code).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let stall = Duration::from_secs_f64(s.stall_ms.max(0.0) / 1000.0);
        let mut edge = 0.0;
        for (rate, fault) in [
            (s.error_rate, Fault::Error(status)),
            (s.disconnect_rate, Fault::Disconnect),
            (s.stall_rate, Fault::Stall(stall)),
            (s.malformed_rate, Fault::Malformed),
        ] {
            edge += rate;
            if draw < edge {
                return Some(fault);
            }
        }
        None
    }

    /// The delay before a response's first byte, if any.
    pub fn first_byte_delay(&self) -> Option<Duration> {
        (self.spec.slow_first_byte_ms > 0.0)
            .then(|| Duration::from_secs_f64(self.spec.slow_first_byte_ms / 1000.0))
    }

    /// The status to refuse a request with when `waiting` requests already wait for a place
    /// and the queue is full.
    pub fn refusal(&self, waiting: usize) -> Option<StatusCode> {
        let limit = self.spec.max_queue?;
        (waiting >= limit).then(|| {
            self.spec
                .queue_full_status
                .and_then(|code| StatusCode::from_u16(code).ok())
                .unwrap_or(StatusCode::TOO_MANY_REQUESTS)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_fault_takes_about_its_share_and_the_draw_repeats() {
        let faults = Faults::new(FaultSpec {
            error_rate: 0.1,
            error_status: Some(503),
            disconnect_rate: 0.2,
            stall_rate: 0.05,
            stall_ms: 100.0,
            malformed_rate: 0.15,
            seed: 7,
            ..Default::default()
        });
        let n = 20_000;
        let mut counts = [0usize; 5];
        for id in 0..n {
            let fault = faults.of(id);
            assert_eq!(fault, faults.of(id), "the same request, the same fault");
            counts[match fault {
                Some(Fault::Error(status)) => {
                    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
                    0
                }
                Some(Fault::Disconnect) => 1,
                Some(Fault::Stall(d)) => {
                    assert_eq!(d, Duration::from_millis(100));
                    2
                }
                Some(Fault::Malformed) => 3,
                None => 4,
            }] += 1;
        }
        for (count, share) in counts.iter().zip([0.1, 0.2, 0.05, 0.15, 0.5]) {
            let got = *count as f64 / n as f64;
            // Binomial standard error at n = 20,000 is at most 0.0036: allow about 4 of them.
            assert!((got - share).abs() < 0.015, "{counts:?}");
        }
    }

    #[test]
    fn a_full_queue_refuses_and_no_faults_means_none() {
        let faults = Faults::new(FaultSpec {
            max_queue: Some(2),
            ..Default::default()
        });
        assert_eq!(faults.refusal(1), None);
        assert_eq!(faults.refusal(2), Some(StatusCode::TOO_MANY_REQUESTS));
        assert!((0..1000).all(|id| faults.of(id).is_none()));
        assert_eq!(faults.first_byte_delay(), None);
    }
}
