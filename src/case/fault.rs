//! Faults the embedded server injects, for testing what the harness reports when a server
//! misbehaves.

use serde::{Deserialize, Serialize};

/// Faults of the embedded server. Each generation request draws one fault (or none) from the
/// rates, by its sequence number and `seed`, so a run is repeatable.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultSpec {
    /// Share of requests answered with `error_status` and no generation.
    pub error_rate: f64,
    /// Status of those answers (default 500).
    pub error_status: Option<u16>,
    /// Share of streams cut halfway, without a final event.
    pub disconnect_rate: f64,
    /// Share of streams that pause for `stall_ms` halfway (later tokens shift by as much).
    pub stall_rate: f64,
    /// Length of a stall, in milliseconds.
    #[serde(deserialize_with = "super::limits::delay_ms")]
    pub stall_ms: f64,
    /// Share of streams that send one malformed (not JSON) event halfway.
    pub malformed_rate: f64,
    /// Delay before every response's first byte (headers), in milliseconds.
    #[serde(deserialize_with = "super::limits::delay_ms")]
    pub slow_first_byte_ms: f64,
    /// Requests allowed to wait for a place; one more is refused at once with
    /// `queue_full_status` (no limit when unset).
    #[serde(deserialize_with = "super::limits::opt_places")]
    pub max_queue: Option<usize>,
    /// Status of a refusal for a full queue: 429 (default) or 503.
    pub queue_full_status: Option<u16>,
    /// Seeds which requests get which fault.
    pub seed: u64,
}

impl FaultSpec {
    /// Why the faults are unusable, if they are: a rate outside [0, 1], rates adding up to
    /// more than 1, a negative time, or a status that is not an error.
    pub fn problem(&self) -> Option<String> {
        let rates = [
            ("error_rate", self.error_rate),
            ("disconnect_rate", self.disconnect_rate),
            ("stall_rate", self.stall_rate),
            ("malformed_rate", self.malformed_rate),
        ];
        if let Some((name, rate)) = rates.iter().find(|(_, r)| !(0.0..=1.0).contains(r)) {
            return Some(format!("{name} is {rate}; a rate is between 0 and 1"));
        }
        let total: f64 = rates.iter().map(|(_, r)| r).sum();
        if total > 1.0 + 1e-9 {
            return Some(format!("the fault rates add up to {total}, more than 1"));
        }
        if let Some((name, ms)) = [
            ("stall_ms", self.stall_ms),
            ("slow_first_byte_ms", self.slow_first_byte_ms),
        ]
        .iter()
        .find(|(_, ms)| !ms.is_finite() || *ms < 0.0)
        {
            return Some(format!("{name} is {ms}; it must be 0 or more"));
        }
        for (name, status) in [
            ("error_status", self.error_status),
            ("queue_full_status", self.queue_full_status),
        ] {
            if let Some(status) = status.filter(|s| !(400..=599).contains(s)) {
                return Some(format!("{name} is {status}; it must be 400 to 599"));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case(FaultSpec { error_rate: 1.5, ..Default::default() }, Some("error_rate is 1.5"))]
    #[case(FaultSpec { error_rate: 0.6, stall_rate: 0.6, ..Default::default() }, Some("add up to"))]
    #[case(FaultSpec { stall_ms: -1.0, ..Default::default() }, Some("stall_ms is -1"))]
    #[case(FaultSpec { error_status: Some(200), ..Default::default() }, Some("error_status is 200"))]
    #[case(FaultSpec { error_rate: 0.5, malformed_rate: 0.5, ..Default::default() }, None)]
    fn unusable_faults_are_named(#[case] spec: FaultSpec, #[case] problem: Option<&str>) {
        match (spec.problem(), problem) {
            (Some(got), Some(want)) => assert!(got.contains(want), "{got}"),
            (got, want) => assert_eq!(got.as_deref(), want),
        }
    }
}
