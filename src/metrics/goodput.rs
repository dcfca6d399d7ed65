//! Goodput: the measured requests that met every per-request SLO a case declares
//! (`goodput: { ttft_ms: 200, tpot_ms: 50 }`), as DistServe counts "SLO attainment" and vLLM's
//! `bench serve --goodput` counts "request goodput".
//!
//! A request is good when it succeeded and each bound holds for it (`≤`, inclusive, as vLLM
//! compares). TTFT and E2EL count from the request's arrival: its intended send time in an open
//! loop (free of coordinated omission), its send otherwise. A request with one output token
//! has no TPOT and so meets a TPOT bound. Failed requests are measured requests that were not
//! good: they stay in the denominator.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::record::RequestRecord;

/// The per-request SLOs of goodput: each bound in milliseconds, `None` when not set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSlo {
    /// Time to first token, from arrival.
    #[serde(default)]
    pub ttft_ms: Option<f64>,
    /// Time per output token after the first.
    #[serde(default)]
    pub tpot_ms: Option<f64>,
    /// End-to-end latency, from arrival.
    #[serde(default)]
    pub e2el_ms: Option<f64>,
}

impl RequestSlo {
    /// The bounds that are set, by name.
    fn bounds(&self) -> impl Iterator<Item = (&'static str, f64)> {
        [
            ("ttft_ms", self.ttft_ms),
            ("tpot_ms", self.tpot_ms),
            ("e2el_ms", self.e2el_ms),
        ]
        .into_iter()
        .filter_map(|(name, bound)| bound.map(|b| (name, b)))
    }

    /// Why these bounds cannot be used, if so: none set, or one not a positive number.
    pub fn problem(&self) -> Option<String> {
        if self.bounds().next().is_none() {
            return Some("set at least one of ttft_ms, tpot_ms, e2el_ms".into());
        }
        self.bounds()
            .find(|(_, b)| !(b.is_finite() && *b > 0.0))
            .map(|(name, _)| format!("`{name}` must be a positive number of milliseconds"))
    }

    /// Whether the request succeeded and met every bound.
    pub fn met_by(&self, record: &RequestRecord) -> bool {
        if !record.is_ok() {
            return false;
        }
        let from_arrival = |latency: Option<f64>, intended: Option<f64>| {
            if record.intended_ms.is_some() {
                intended
            } else {
                latency
            }
        };
        let within = |bound: Option<f64>, value: Option<f64>, missing_meets: bool| match bound {
            None => true,
            Some(b) => value.map_or(missing_meets, |v| v <= b),
        };
        within(
            self.ttft_ms,
            from_arrival(record.ttft_ms, record.ttft_from_intended_ms()),
            false,
        ) && within(self.tpot_ms, record.tpot_ms(), true)
            && within(
                self.e2el_ms,
                from_arrival(record.e2el_ms, record.e2el_from_intended_ms()),
                false,
            )
    }

    /// The fraction of `records` that met every bound and those good requests per second
    /// over `duration_s`; `None` with no records.
    pub fn goodput(&self, records: &[RequestRecord], duration_s: f64) -> Option<(f64, f64)> {
        if records.is_empty() {
            return None;
        }
        let good = records.iter().filter(|r| self.met_by(r)).count() as f64;
        let per_s = if duration_s > 0.0 {
            good / duration_s
        } else {
            0.0
        };
        Some((good / records.len() as f64, per_s))
    }
}

impl fmt::Display for RequestSlo {
    /// `ttft_ms <= 200, tpot_ms <= 50`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .bounds()
            .map(|(name, b)| format!("{name} <= {b}"))
            .collect();
        f.write_str(&parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::metrics::ErrorClass;

    /// A request with this TTFT and E2EL and 11 output tokens (TPOT = (e2el − ttft) / 10).
    fn record(ttft: f64, e2el: f64) -> RequestRecord {
        RequestRecord {
            ttft_ms: Some(ttft),
            e2el_ms: Some(e2el),
            output_tokens: Some(11),
            ..Default::default()
        }
    }

    const TTFT_TPOT: RequestSlo = RequestSlo {
        ttft_ms: Some(100.0),
        tpot_ms: Some(10.0),
        e2el_ms: None,
    };

    #[rstest]
    #[case::both_met(record(100.0, 200.0), true)]
    #[case::ttft_missed(record(101.0, 150.0), false)]
    #[case::tpot_missed(record(50.0, 151.0), false)]
    #[case::one_token_has_no_tpot(RequestRecord { output_tokens: Some(1), ..record(50.0, 900.0) }, true)]
    #[case::failed(RequestRecord { error: Some(ErrorClass::Timeout), ..record(1.0, 2.0) }, false)]
    #[case::late_send_counts(RequestRecord { send_ms: 60.0, intended_ms: Some(0.0), ..record(50.0, 60.0) }, false)]
    fn a_request_is_good_when_it_succeeded_within_every_bound(
        #[case] r: RequestRecord,
        #[case] good: bool,
    ) {
        assert_eq!(TTFT_TPOT.met_by(&r), good);
    }

    #[test]
    fn goodput_counts_failures_in_the_denominator() {
        let records = vec![
            record(50.0, 100.0),
            record(50.0, 100.0),
            record(500.0, 600.0),
            RequestRecord {
                error: Some(ErrorClass::Http503),
                ..Default::default()
            },
        ];
        assert_eq!(TTFT_TPOT.goodput(&records, 4.0), Some((0.5, 0.5)));
        assert_eq!(TTFT_TPOT.goodput(&[], 4.0), None);
    }

    #[rstest]
    #[case(RequestSlo::default(), Some("at least one"))]
    #[case(RequestSlo { e2el_ms: Some(0.0), ..Default::default() }, Some("`e2el_ms` must be"))]
    #[case(TTFT_TPOT, None)]
    fn bounds_are_checked(#[case] slo: RequestSlo, #[case] problem: Option<&str>) {
        let found = slo.problem();
        match problem {
            None => assert_eq!(found, None),
            Some(text) => assert!(found.as_deref().unwrap_or("").contains(text), "{found:?}"),
        }
        assert_eq!(TTFT_TPOT.to_string(), "ttft_ms <= 100, tpot_ms <= 10");
    }
}
