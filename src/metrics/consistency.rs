//! Consistency: the same prompt sent N times, one at a time (`load.mode: consistency`). How
//! much do TTFT and the decode rate vary from one identical request to the next, did they
//! drift between the first and the second half, and what does the pattern point at?
//!
//! The reading follows the chat tester's: a decode rate that hardly varies while TTFT does
//! points at what happens before the GPU generates (the network, the scheduler's queueing, a
//! prefix cache hit or miss), not at the GPU; a decode rate that varies points at the GPU
//! itself (clocks, thermal throttling, another tenant).

use serde::{Deserialize, Serialize};

use super::drift::Drift;
use super::record::RequestRecord;

/// A coefficient of variation below this is "low".
pub const LOW_CV: f64 = 0.05;
/// A coefficient of variation from this on is "high".
pub const HIGH_CV: f64 = 0.10;

/// Mean, standard deviation and coefficient of variation of one quantity.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Values measured.
    pub count: u64,
    /// Their mean.
    pub mean: f64,
    /// Their standard deviation (the sample's, n − 1).
    pub std: f64,
    /// std / mean (0 when the mean is 0).
    pub cv: f64,
}

impl Spread {
    /// The spread of `values`; `None` with fewer than two.
    pub fn of(values: &[f64]) -> Option<Spread> {
        let values: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        if values.len() < 2 {
            return None;
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let std = variance.sqrt();
        Some(Spread {
            count: values.len() as u64,
            mean,
            std,
            cv: if mean > 0.0 { std / mean } else { 0.0 },
        })
    }

    /// `41.2 ± 4.1 (CV 10.0 %)`.
    pub fn describe(&self) -> String {
        format!(
            "{:.1} ± {:.1} (CV {:.1} %)",
            self.mean,
            self.std,
            self.cv * 100.0
        )
    }
}

/// What the variation of TTFT and of the decode rate point at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reading {
    /// Both vary little.
    Steady,
    /// TTFT varies, the decode rate hardly: the network or the scheduler, not the GPU.
    BeforeTheGpu,
    /// The decode rate varies: the GPU itself (clocks, throttling, another tenant).
    TheGpu,
    /// Neither low nor high enough to say (or no decode rate measured).
    Unclear,
}

impl Reading {
    /// Reads a TTFT CV beside a decode-rate CV (see [`LOW_CV`], [`HIGH_CV`]).
    pub fn of(ttft_cv: f64, decode_cv: Option<f64>) -> Reading {
        match decode_cv {
            Some(d) if d < LOW_CV && ttft_cv >= HIGH_CV => Reading::BeforeTheGpu,
            Some(d) if d < LOW_CV && ttft_cv < LOW_CV => Reading::Steady,
            Some(d) if d >= HIGH_CV => Reading::TheGpu,
            None if ttft_cv < LOW_CV => Reading::Steady,
            _ => Reading::Unclear,
        }
    }

    /// The analysis line.
    pub fn describe(self) -> &'static str {
        match self {
            Reading::Steady => "TTFT and decode rate are steady across identical requests",
            Reading::BeforeTheGpu => {
                "low decode variance with high TTFT variance points at the network or the \
                 scheduler, not the GPU"
            }
            Reading::TheGpu => {
                "the decode rate varies across identical requests: the GPU itself (clocks, \
                 thermal throttling, another tenant)"
            }
            Reading::Unclear => "the variation does not point clearly at one cause",
        }
    }
}

/// What a consistency run measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Consistency {
    /// Requests sent (all the same prompt).
    pub requests: u64,
    /// TTFT of the successful requests, ms.
    pub ttft_ms: Spread,
    /// Decode rate of each successful request, tokens/s (1000 / its TPOT); none when no
    /// request generated two tokens.
    pub decode_tok_s: Option<Spread>,
    /// First half vs second half, in send order.
    pub drift: Option<Drift>,
    /// What the variation points at.
    pub reading: Reading,
}

impl Consistency {
    /// Summarises the records of a consistency run; `None` with fewer than two successful
    /// requests with a TTFT.
    pub fn of(records: &[RequestRecord]) -> Option<Consistency> {
        let ok: Vec<&RequestRecord> = records.iter().filter(|r| r.is_ok()).collect();
        let ttfts: Vec<f64> = ok.iter().filter_map(|r| r.ttft_ms).collect();
        let ttft_ms = Spread::of(&ttfts)?;
        let decodes: Vec<f64> = ok
            .iter()
            .filter_map(|r| r.tpot_ms())
            .filter(|t| *t > 0.0)
            .map(|t| 1000.0 / t)
            .collect();
        let decode_tok_s = Spread::of(&decodes);
        Some(Consistency {
            requests: records.len() as u64,
            ttft_ms,
            decode_tok_s,
            drift: Drift::of(records),
            reading: Reading::of(ttft_ms.cv, decode_tok_s.map(|d| d.cv)),
        })
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case(0.20, Some(0.01), Reading::BeforeTheGpu)]
    #[case(0.01, Some(0.01), Reading::Steady)]
    #[case(0.01, None, Reading::Steady)]
    #[case(0.01, Some(0.30), Reading::TheGpu)]
    #[case(0.30, Some(0.30), Reading::TheGpu)]
    #[case(0.07, Some(0.01), Reading::Unclear)]
    #[case(0.20, Some(0.07), Reading::Unclear)]
    fn the_reading_follows_the_two_variations(
        #[case] ttft_cv: f64,
        #[case] decode_cv: Option<f64>,
        #[case] reading: Reading,
    ) {
        assert_eq!(Reading::of(ttft_cv, decode_cv), reading);
    }

    #[rstest]
    #[case(&[10.0, 10.0], 10.0, 0.0)]
    #[case(&[9.0, 11.0], 10.0, 0.141_421_356)]
    #[case(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0], 5.0, 0.427_617_987)]
    fn spread_uses_the_sample_standard_deviation(
        #[case] values: &[f64],
        #[case] mean: f64,
        #[case] cv: f64,
    ) {
        let spread = Spread::of(values).expect("two or more");
        assert!((spread.mean - mean).abs() < 1e-9, "{spread:?}");
        assert!((spread.cv - cv).abs() < 1e-6, "{spread:?}");
    }

    #[test]
    fn a_run_of_identical_requests_is_summarised_with_its_halves() {
        let record = |ttft: f64, tpot: f64| RequestRecord {
            ttft_ms: Some(ttft),
            e2el_ms: Some(ttft + 9.0 * tpot),
            output_tokens: Some(10),
            ..Default::default()
        };
        let records: Vec<RequestRecord> = [(40.0, 5.0), (60.0, 5.0), (40.0, 5.0), (60.0, 5.0)]
            .iter()
            .enumerate()
            .map(|(i, &(ttft, tpot))| RequestRecord {
                id: i as u64,
                send_ms: i as f64 * 100.0,
                ..record(ttft, tpot)
            })
            .collect();
        let c = Consistency::of(&records).expect("measured");
        assert_eq!(c.requests, 4);
        assert!((c.ttft_ms.mean - 50.0).abs() < 1e-9);
        assert_eq!(c.decode_tok_s.map(|d| d.cv), Some(0.0));
        assert_eq!(c.reading, Reading::BeforeTheGpu);
        assert_eq!(c.drift.map(|d| d.ttft_change), Some(0.0));
        assert!(Consistency::of(&records[..1]).is_none());
    }
}
