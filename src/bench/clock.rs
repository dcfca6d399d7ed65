//! CLOCK_MONOTONIC in nanoseconds: one clock for every process on the machine, so a server in
//! another process can log instants the client's stamps are compared with.

use std::time::{Duration, Instant};

/// Nanoseconds of CLOCK_MONOTONIC (the clock `std::time::Instant` reads on Linux).
pub fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes only the timespec it is given.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now);
    }
    (now.tv_sec as u64).saturating_mul(1_000_000_000) + now.tv_nsec as u64
}

/// Sleeps until CLOCK_MONOTONIC reaches `ns`.
pub async fn sleep_until_ns(ns: u64) {
    let wait = ns.saturating_sub(monotonic_ns());
    tokio::time::sleep(Duration::from_nanos(wait)).await;
}

/// Maps `Instant`s to CLOCK_MONOTONIC nanoseconds: both are read once, together.
#[derive(Debug, Clone, Copy)]
pub struct ClockPair {
    instant: Instant,
    ns: u64,
}

impl ClockPair {
    /// Reads both clocks now.
    pub fn now() -> ClockPair {
        ClockPair {
            instant: Instant::now(),
            ns: monotonic_ns(),
        }
    }

    /// `at` in CLOCK_MONOTONIC nanoseconds.
    pub fn ns_of(&self, at: Instant) -> u64 {
        if at >= self.instant {
            self.ns + (at - self.instant).as_nanos() as u64
        } else {
            self.ns
                .saturating_sub((self.instant - at).as_nanos() as u64)
        }
    }
}
