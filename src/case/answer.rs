//! The embedded server's answer mode in a case: how often it answers a known question right.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Answer mode of the embedded server (see the server's `answers` module).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnswerSpec {
    /// The chance that a known question is answered right.
    pub correct: CorrectRate,
    /// Seeds the choice of which questions are answered wrong.
    pub seed: u64,
    /// Answer `echo` with `logprobs` on `/v1/completions` (as vLLM does), preferring the
    /// reply it would generate; `false` plays a server that ignores them (`logprobs: null`).
    pub logprobs: bool,
}

impl Default for AnswerSpec {
    fn default() -> Self {
        AnswerSpec {
            correct: CorrectRate::Fixed(1.0),
            seed: 0,
            logprobs: true,
        }
    }
}

/// The chance of a right answer: one number, or points `in_flight: chance` joined by straight
/// lines (flat before the first point and after the last), so that answers get worse with
/// load: `{4: 0.95, 16: 0.5}`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum CorrectRate {
    /// The same chance at any load.
    Fixed(f64),
    /// Chance by requests in the server (the request itself included).
    ByLoad(BTreeMap<u32, f64>),
}

impl CorrectRate {
    /// The chance with `in_flight` requests in the server.
    pub fn at(&self, in_flight: usize) -> f64 {
        let points = match self {
            CorrectRate::Fixed(p) => return *p,
            CorrectRate::ByLoad(points) => points,
        };
        let x = in_flight as f64;
        let mut before: Option<(f64, f64)> = None;
        for (&n, &p) in points {
            let n = f64::from(n);
            if x <= n {
                return match before {
                    Some((n0, p0)) if n > n0 => p0 + (p - p0) * (x - n0) / (n - n0),
                    _ => p,
                };
            }
            before = Some((n, p));
        }
        before.map_or(1.0, |(_, p)| p)
    }

    /// Why the rate is unusable, if it is.
    pub fn problem(&self) -> Option<String> {
        let chances: Vec<f64> = match self {
            CorrectRate::Fixed(p) => vec![*p],
            CorrectRate::ByLoad(points) if points.is_empty() => {
                return Some("give a chance, or at least one `in_flight: chance` point".into());
            }
            CorrectRate::ByLoad(points) => points.values().copied().collect(),
        };
        chances
            .iter()
            .find(|p| !(0.0..=1.0).contains(*p))
            .map(|p| format!("{p} is not a chance between 0 and 1"))
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case(1, 0.9)]
    #[case(4, 0.9)]
    #[case(10, 0.7)]
    #[case(16, 0.5)]
    #[case(100, 0.5)]
    fn chance_is_interpolated_by_load(#[case] in_flight: usize, #[case] chance: f64) {
        let rate = CorrectRate::ByLoad([(4, 0.9), (16, 0.5)].into_iter().collect());
        assert!((rate.at(in_flight) - chance).abs() < 1e-12);
    }

    #[rstest]
    #[case(CorrectRate::Fixed(1.2), Some("1.2"))]
    #[case(CorrectRate::Fixed(0.5), None)]
    #[case(CorrectRate::ByLoad(BTreeMap::new()), Some("at least one"))]
    #[case(CorrectRate::ByLoad([(2, -0.1)].into_iter().collect()), Some("-0.1"))]
    fn bad_chances_are_named(#[case] rate: CorrectRate, #[case] problem: Option<&str>) {
        match (rate.problem(), problem) {
            (None, None) => {}
            (Some(got), Some(want)) => assert!(got.contains(want), "{got}"),
            (got, want) => panic!("{got:?} vs {want:?}"),
        }
    }
}
