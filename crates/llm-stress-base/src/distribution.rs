//! Distribution statistics of one latency metric.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Statistics of one metric. Percentiles come from an HDR histogram at nanosecond resolution
/// with three significant digits (relative error ≤ 0.1 %); mean, std, min and max are exact.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    /// Number of samples.
    pub count: u64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Population standard deviation.
    pub std: f64,
    /// Smallest sample.
    pub min: f64,
    /// 5th percentile.
    pub p5: f64,
    /// 25th percentile.
    pub p25: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest sample.
    pub max: f64,
}

/// Names of the statistics, as used in SLO expressions (`ttft_ms.p95`) and CSV columns.
pub const STAT_NAMES: [&str; 13] = [
    "count", "mean", "std", "cv", "min", "p5", "p25", "p50", "p90", "p95", "p99", "p999", "max",
];

impl Distribution {
    /// Computes the statistics of millisecond samples; `None` when there are none.
    pub fn from_ms(samples: impl IntoIterator<Item = f64>) -> Option<Distribution> {
        let mut histogram = Histogram::<u64>::new(3).ok()?;
        let (mut count, mut sum, mut sum_sq) = (0u64, 0.0f64, 0.0f64);
        let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
        for ms in samples.into_iter().filter(|v| v.is_finite()) {
            let ms = ms.max(0.0);
            // The histogram resizes itself; a value beyond u64 nanoseconds saturates.
            let ns = (ms * 1e6).round() as u64;
            if histogram.record(ns).is_err() {
                histogram.saturating_record(ns);
            }
            count += 1;
            sum += ms;
            sum_sq += ms * ms;
            min = min.min(ms);
            max = max.max(ms);
        }
        if count == 0 {
            return None;
        }
        let mean = sum / count as f64;
        let variance = (sum_sq / count as f64 - mean * mean).max(0.0);
        let at = |q: f64| {
            let ns = histogram.value_at_quantile(q) as f64 / 1e6;
            ns.clamp(min, max)
        };
        Some(Distribution {
            count,
            mean,
            std: variance.sqrt(),
            min,
            p5: at(0.05),
            p25: at(0.25),
            p50: at(0.50),
            p90: at(0.90),
            p95: at(0.95),
            p99: at(0.99),
            p999: at(0.999),
            max,
        })
    }

    /// Coefficient of variation: std / mean (0 when the mean is 0).
    pub fn cv(&self) -> f64 {
        if self.mean > 0.0 {
            self.std / self.mean
        } else {
            0.0
        }
    }

    /// The statistic with this name (see [`STAT_NAMES`]).
    pub fn stat(&self, name: &str) -> Option<f64> {
        Some(match name {
            "count" => self.count as f64,
            "mean" => self.mean,
            "std" => self.std,
            "cv" => self.cv(),
            "min" => self.min,
            "p5" => self.p5,
            "p25" => self.p25,
            "p50" => self.p50,
            "p90" => self.p90,
            "p95" => self.p95,
            "p99" => self.p99,
            "p999" => self.p999,
            "max" => self.max,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_samples_give_known_percentiles() {
        let d = Distribution::from_ms((1..=1000).map(f64::from)).expect("samples");
        assert_eq!(d.count, 1000);
        assert!((d.mean - 500.5).abs() < 1e-9);
        assert!((d.p50 - 500.0).abs() <= 0.5, "{}", d.p50);
        assert!((d.p99 - 990.0).abs() <= 1.0, "{}", d.p99);
        assert!((d.std - 288.675).abs() < 0.01, "{}", d.std);
        assert_eq!((d.min, d.max), (1.0, 1000.0));
        assert!((d.cv() - 288.675 / 500.5).abs() < 1e-4, "{}", d.cv());
    }

    #[test]
    fn no_samples_is_none() {
        assert!(Distribution::from_ms(Vec::new()).is_none());
    }

    #[test]
    fn sub_millisecond_values_keep_their_precision() {
        let d = Distribution::from_ms([0.0123, 0.0123]).expect("samples");
        assert!((d.p50 - 0.0123).abs() < 0.0001, "{}", d.p50);
    }
}
