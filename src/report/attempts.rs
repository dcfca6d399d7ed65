//! A trial whose load ran more than once — `load.repeat: k`, or a gate's `retries` after an
//! inconclusive comparison — keeps one line of headline figures per run, and the report
//! gives their median and spread (lowest to highest). The trial's summary is the pooled one:
//! every run's requests, over the runs' measured windows back to back.

use serde::{Deserialize, Serialize};

use crate::metrics::Summary;

/// Why the load ran this time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttemptCause {
    /// One of the `load.repeat` runs (the first run is one too).
    Repeat,
    /// A rerun because a metric compared with the baseline was inconclusive.
    Retry,
}

impl AttemptCause {
    /// `repeat` or `retry`.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptCause::Repeat => "repeat",
            AttemptCause::Retry => "retry",
        }
    }
}

/// One run's headline figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// Why it ran.
    pub cause: AttemptCause,
    /// Requests that completed.
    pub requests_ok: u64,
    /// Requests that failed.
    pub requests_failed: u64,
    /// Its measured window, seconds.
    pub duration_s: f64,
    /// Output tokens per second over its window.
    pub output_tok_s: f64,
    /// Completed requests per second over its window.
    pub req_s: f64,
    /// Median TTFT.
    pub ttft_p50_ms: Option<f64>,
    /// Mean TPOT.
    pub tpot_mean_ms: Option<f64>,
    /// Median end-to-end latency.
    pub e2el_p50_ms: Option<f64>,
}

impl Attempt {
    /// The figures of one run's summary.
    pub fn of(cause: AttemptCause, summary: &Summary) -> Attempt {
        Attempt {
            cause,
            requests_ok: summary.requests_ok,
            requests_failed: summary.requests_failed,
            duration_s: summary.duration_s,
            output_tok_s: summary.output_tok_s,
            req_s: summary.req_s,
            ttft_p50_ms: summary.ttft_ms.as_ref().map(|d| d.p50),
            tpot_mean_ms: summary.tpot_ms.as_ref().map(|d| d.mean),
            e2el_p50_ms: summary.e2el_ms.as_ref().map(|d| d.p50),
        }
    }
}

/// The median of some runs' values and their range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MedianRange {
    /// The median (the mean of the middle two for an even count).
    pub median: f64,
    /// The lowest.
    pub min: f64,
    /// The highest.
    pub max: f64,
}

impl MedianRange {
    /// The spread of `values`; none when there is none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<MedianRange> {
        let mut values: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let median = if n % 2 == 1 {
            values[n / 2]
        } else {
            (values[n / 2 - 1] + values[n / 2]) / 2.0
        };
        Some(MedianRange {
            median,
            min: values[0],
            max: values[n - 1],
        })
    }
}

/// The figures a spread is given for, in table order: a name and how to read it off a run.
pub type Figure = (&'static str, fn(&Attempt) -> Option<f64>);

/// The figures a spread is given for.
pub const FIGURES: [Figure; 5] = [
    ("output tok/s", |a| Some(a.output_tok_s)),
    ("req/s", |a| Some(a.req_s)),
    ("TTFT p50 ms", |a| a.ttft_p50_ms),
    ("TPOT mean ms", |a| a.tpot_mean_ms),
    ("E2EL p50 ms", |a| a.e2el_p50_ms),
];

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case(&[3.0], 3.0, 3.0, 3.0)]
    #[case(&[5.0, 1.0, 3.0], 3.0, 1.0, 5.0)]
    #[case(&[4.0, 1.0, 3.0, 10.0], 3.5, 1.0, 10.0)]
    #[case(&[2.0, f64::NAN, 4.0], 3.0, 2.0, 4.0)]
    fn the_spread_is_the_median_and_the_range(
        #[case] values: &[f64],
        #[case] median: f64,
        #[case] min: f64,
        #[case] max: f64,
    ) {
        assert_eq!(
            MedianRange::of(values.iter().copied()),
            Some(MedianRange { median, min, max })
        );
    }

    #[test]
    fn no_values_no_spread() {
        assert_eq!(MedianRange::of([]), None);
    }
}
