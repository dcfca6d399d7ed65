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
    /// Computes the statistics of millisecond samples; `None` when there are none. The same
    /// as feeding them one by one to a [`DistributionBuilder`] and building it.
    pub fn from_ms(samples: impl IntoIterator<Item = f64>) -> Option<Distribution> {
        let mut builder = DistributionBuilder::new();
        builder.extend(samples);
        builder.build()
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

/// The statistics of one metric, built one sample at a time in constant memory: an HDR
/// histogram (nanoseconds, three significant digits) for the percentiles and exact running
/// sums for the count, mean, std, min and max. Builders of disjoint sample sets merge
/// ([`DistributionBuilder::merge`]); feeding the same samples in the same order always gives
/// the same [`Distribution`] as [`Distribution::from_ms`].
#[derive(Debug, Clone, Default)]
pub struct DistributionBuilder {
    /// Created on the first sample, so an empty builder costs nothing.
    histogram: Option<Histogram<u64>>,
    count: u64,
    sum: f64,
    sum_sq: f64,
    min: f64,
    max: f64,
}

impl DistributionBuilder {
    /// An empty builder.
    pub fn new() -> DistributionBuilder {
        DistributionBuilder::default()
    }

    /// Samples added so far (non-finite ones are skipped and not counted).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Adds one sample in milliseconds; a non-finite one is skipped, a negative one counts as 0.
    pub fn add_ms(&mut self, ms: f64) {
        if !ms.is_finite() {
            return;
        }
        let ms = ms.max(0.0);
        // The histogram resizes itself; a value beyond u64 nanoseconds saturates.
        let ns = (ms * 1e6).round() as u64;
        let histogram = self.histogram.get_or_insert_with(new_histogram);
        if histogram.record(ns).is_err() {
            histogram.saturating_record(ns);
        }
        if self.count == 0 {
            (self.min, self.max) = (f64::INFINITY, f64::NEG_INFINITY);
        }
        self.count += 1;
        self.sum += ms;
        self.sum_sq += ms * ms;
        self.min = self.min.min(ms);
        self.max = self.max.max(ms);
    }

    /// Adds every sample of `samples`, in order.
    pub fn extend(&mut self, samples: impl IntoIterator<Item = f64>) {
        for ms in samples {
            self.add_ms(ms);
        }
    }

    /// Adds `other`'s samples: the histogram counts add (so the percentiles are those of the
    /// union exactly) and so do the running sums (the mean and std of the union, up to the
    /// rounding of the sums' order).
    pub fn merge(&mut self, other: &DistributionBuilder) {
        let Some(theirs) = &other.histogram else {
            return;
        };
        let histogram = self.histogram.get_or_insert_with(new_histogram);
        if histogram.add(theirs).is_err() {
            for value in theirs.iter_recorded() {
                histogram.saturating_record_n(value.value_iterated_to(), value.count_at_value());
            }
        }
        if self.count == 0 {
            (self.min, self.max) = (f64::INFINITY, f64::NEG_INFINITY);
        }
        self.count += other.count;
        self.sum += other.sum;
        self.sum_sq += other.sum_sq;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// The statistics of the samples so far; `None` when there are none.
    pub fn build(&self) -> Option<Distribution> {
        let histogram = self.histogram.as_ref().filter(|_| self.count > 0)?;
        let (count, min, max) = (self.count, self.min, self.max);
        let mean = self.sum / count as f64;
        let variance = (self.sum_sq / count as f64 - mean * mean).max(0.0);
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
}

/// A [`DistributionBuilder`] in a form another process can read and merge: the exact running
/// sums beside the histogram in HdrHistogram's V2 serialisation (base64), the form HdrHistogram
/// libraries in every language read. A worker writes one per metric into its shard; the merge
/// adds them into the union's builder.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EncodedBuilder {
    /// Samples.
    pub count: u64,
    /// Their sum, milliseconds.
    pub sum: f64,
    /// The sum of their squares.
    pub sum_sq: f64,
    /// The smallest, milliseconds.
    pub min: f64,
    /// The largest, milliseconds.
    pub max: f64,
    /// The histogram (nanoseconds, three significant digits), V2-serialised, base64.
    pub hdr_v2: String,
}

/// Why an [`EncodedBuilder`] could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "not an HDR histogram in the V2 serialisation: {}",
            self.0
        )
    }
}

impl std::error::Error for DecodeError {}

impl DistributionBuilder {
    /// This builder's portable form; `None` when it has no sample.
    pub fn encode(&self) -> Option<EncodedBuilder> {
        use base64::Engine;
        use hdrhistogram::serialization::{Serializer, V2Serializer};
        let histogram = self.histogram.as_ref().filter(|_| self.count > 0)?;
        let mut bytes = Vec::new();
        V2Serializer::new().serialize(histogram, &mut bytes).ok()?;
        Some(EncodedBuilder {
            count: self.count,
            sum: self.sum,
            sum_sq: self.sum_sq,
            min: self.min,
            max: self.max,
            hdr_v2: base64::engine::general_purpose::STANDARD.encode(bytes),
        })
    }

    /// The builder `encoded` was made from.
    pub fn decode(encoded: &EncodedBuilder) -> Result<DistributionBuilder, DecodeError> {
        use base64::Engine;
        use hdrhistogram::serialization::Deserializer;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&encoded.hdr_v2)
            .map_err(|e| DecodeError(e.to_string()))?;
        let mut histogram: Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .map_err(|e| DecodeError(format!("{e:?}")))?;
        histogram.auto(true);
        if histogram.len() != encoded.count {
            return Err(DecodeError(format!(
                "it holds {} samples, its count says {}",
                histogram.len(),
                encoded.count
            )));
        }
        Ok(DistributionBuilder {
            histogram: Some(histogram),
            count: encoded.count,
            sum: encoded.sum,
            sum_sq: encoded.sum_sq,
            min: encoded.min,
            max: encoded.max,
        })
    }
}

/// An auto-resizing histogram of three significant digits.
fn new_histogram() -> Histogram<u64> {
    Histogram::new(3).expect("three significant digits is within hdrhistogram's range")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encoded_builder_decodes_to_the_same_builder_and_merges_to_the_union() {
        let mut first = DistributionBuilder::new();
        first.extend((1..=500).map(|i| f64::from(i) * 0.37));
        let mut second = DistributionBuilder::new();
        second.extend((1..=700).map(|i| f64::from(i) * 1.9 + 3.0));
        let encoded = first.encode().expect("samples");
        let json = serde_json::to_string(&encoded).expect("json");
        let back: EncodedBuilder = serde_json::from_str(&json).expect("reads");
        let decoded = DistributionBuilder::decode(&back).expect("decodes");
        assert_eq!(decoded.build(), first.build());
        let mut union = decoded;
        union.merge(&DistributionBuilder::decode(&second.encode().expect("samples")).expect("ok"));
        let mut whole = first.clone();
        whole.merge(&second);
        assert_eq!(union.build(), whole.build());
        assert!(DistributionBuilder::new().encode().is_none());
        let broken = EncodedBuilder {
            hdr_v2: "bm90IGEgaGlzdG9ncmFt".into(),
            ..encoded
        };
        assert!(DistributionBuilder::decode(&broken).is_err());
    }

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
    #[test]
    fn merged_builders_give_the_union() {
        let (mut a, mut b) = (DistributionBuilder::new(), DistributionBuilder::new());
        a.extend((1..=500).map(f64::from));
        b.extend((501..=1000).map(f64::from));
        assert_eq!(b.count(), 500);
        a.merge(&b);
        a.merge(&DistributionBuilder::new());
        let merged = a.build().expect("samples");
        let whole = Distribution::from_ms((1..=1000).map(f64::from)).expect("samples");
        assert_eq!(merged, whole);
        let mut empty = DistributionBuilder::new();
        empty.merge(&a);
        assert_eq!(empty.build(), Some(whole));
        assert_eq!(DistributionBuilder::new().build(), None);
    }
}
