//! Drift: did the server get slower (or faster) during the run? The successful requests are
//! split by send order into a first and a second half, and the mean TTFT and mean decode rate
//! of the halves are compared.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::record::RequestRecord;

/// A relative change beyond this is flagged.
pub const DRIFT_LIMIT: f64 = 0.10;

/// First-half vs second-half comparison of one run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    /// Mean TTFT of the first half, ms.
    pub ttft_first_ms: f64,
    /// Mean TTFT of the second half, ms.
    pub ttft_second_ms: f64,
    /// (second − first) / first for TTFT.
    pub ttft_change: f64,
    /// Mean decode rate of the first half, tokens/s per request (1000 / TPOT).
    pub decode_first_tok_s: f64,
    /// Mean decode rate of the second half.
    pub decode_second_tok_s: f64,
    /// (second − first) / first for the decode rate.
    pub decode_change: f64,
    /// True when either change is beyond ±10 %.
    pub flagged: bool,
}

/// The fields of [`Drift`] an SLO may name (`drift.ttft_change`), in declaration order.
pub const DRIFT_FIELDS: [&str; 7] = [
    "ttft_first_ms",
    "ttft_second_ms",
    "ttft_change",
    "decode_first_tok_s",
    "decode_second_tok_s",
    "decode_change",
    "flagged",
];

impl Drift {
    /// A field by its name in [`DRIFT_FIELDS`]; `flagged` is 1 when flagged, else 0.
    pub fn field(&self, name: &str) -> Option<f64> {
        Some(match name {
            "ttft_first_ms" => self.ttft_first_ms,
            "ttft_second_ms" => self.ttft_second_ms,
            "ttft_change" => self.ttft_change,
            "decode_first_tok_s" => self.decode_first_tok_s,
            "decode_second_tok_s" => self.decode_second_tok_s,
            "decode_change" => self.decode_change,
            "flagged" => f64::from(u8::from(self.flagged)),
            _ => return None,
        })
    }

    /// Compares the halves of `records` (successful ones, in send order). `None` with fewer
    /// than two measurable requests per half. A fold over a [`DriftBuilder`].
    pub fn of(records: &[RequestRecord]) -> Option<Drift> {
        let mut builder = DriftBuilder::default();
        for record in records {
            builder.add(record);
        }
        builder.build()
    }
}

/// The finest send-time resolution drift tells apart, ms (1 µs).
const FINEST_MS: f64 = 0.001;

/// The most send-time buckets a [`DriftBuilder`] keeps; past it, neighbours merge and the
/// bucket width doubles. 4,096 buckets of 40 bytes: a fixed ~200 KB for any run length.
pub const MAX_DRIFT_BUCKETS: usize = 4096;

/// Drift built one record at a time, in fixed memory. The halves are split by send order and
/// the request count, neither known until the end, so the successful requests are grouped by
/// send time into at most [`MAX_DRIFT_BUCKETS`] buckets, each holding its count and the sums
/// of its TTFTs and decode rates. Buckets start 1 µs wide and double when there would be too
/// many (a 30-minute run ends with ~0.5 s buckets, a 24-hour run with ~21 s ones). The bucket
/// the middle falls in goes whole to the half that holds most of it, so the split is exact
/// whenever no bucket straddles the middle (always, in runs short enough for 1 µs buckets,
/// except for requests sent within the same microsecond).
#[derive(Debug, Clone, Default)]
pub struct DriftBuilder {
    /// Bucket width = `FINEST_MS × 2^level`.
    level: u32,
    /// By bucket index (send time ÷ width, floored).
    buckets: BTreeMap<i64, DriftBucket>,
}

/// The successful requests sent within one bucket of time.
#[derive(Debug, Clone, Copy, Default)]
struct DriftBucket {
    requests: u64,
    ttft_sum_ms: f64,
    ttft_count: u64,
    decode_sum_tok_s: f64,
    decode_count: u64,
}

impl DriftBucket {
    fn merge(&mut self, other: &DriftBucket) {
        self.requests += other.requests;
        self.ttft_sum_ms += other.ttft_sum_ms;
        self.ttft_count += other.ttft_count;
        self.decode_sum_tok_s += other.decode_sum_tok_s;
        self.decode_count += other.decode_count;
    }
}

impl DriftBuilder {
    /// Adds one record (a failed one is not measured).
    pub fn add(&mut self, record: &RequestRecord) {
        if !record.is_ok() {
            return;
        }
        // Index at the finest width, then shifted: `>>` floors, so a request lands in the
        // same bucket whatever order the records come in.
        let index = ((record.send_ms / FINEST_MS).floor() as i64) >> self.level;
        let bucket = self.buckets.entry(index).or_default();
        bucket.requests += 1;
        if let Some(ttft) = record.ttft_ms {
            bucket.ttft_sum_ms += ttft;
            bucket.ttft_count += 1;
        }
        if let Some(decode) = record.tpot_ms().filter(|t| *t > 0.0).map(|t| 1000.0 / t) {
            bucket.decode_sum_tok_s += decode;
            bucket.decode_count += 1;
        }
        while self.buckets.len() > MAX_DRIFT_BUCKETS {
            self.coarsen();
        }
    }

    /// Doubles the bucket width, merging each pair of neighbours.
    fn coarsen(&mut self) {
        self.level += 1;
        let mut wider: BTreeMap<i64, DriftBucket> = BTreeMap::new();
        for (index, bucket) in std::mem::take(&mut self.buckets) {
            wider.entry(index >> 1).or_default().merge(&bucket);
        }
        self.buckets = wider;
    }

    /// The bucket width now, ms.
    pub fn bucket_width_ms(&self) -> f64 {
        FINEST_MS * 2f64.powi(self.level as i32)
    }

    /// The drift of the records so far; `None` with fewer than two measurable requests per
    /// half.
    pub fn build(&self) -> Option<Drift> {
        let total: u64 = self.buckets.values().map(|b| b.requests).sum();
        let middle = total / 2;
        let (mut first, mut second) = (DriftBucket::default(), DriftBucket::default());
        let mut before = 0;
        for bucket in self.buckets.values() {
            // Whole buckets before the middle; the straddling one to its larger part.
            let in_first = before + bucket.requests <= middle
                || (before < middle && 2 * (middle - before) >= bucket.requests);
            if in_first {
                first.merge(bucket);
            } else {
                second.merge(bucket);
            }
            before += bucket.requests;
        }
        let mean = |sum: f64, count: u64| (count >= 2).then(|| sum / count as f64);
        let ttft_first_ms = mean(first.ttft_sum_ms, first.ttft_count)?;
        let ttft_second_ms = mean(second.ttft_sum_ms, second.ttft_count)?;
        let decode_first = mean(first.decode_sum_tok_s, first.decode_count);
        let decode_second = mean(second.decode_sum_tok_s, second.decode_count);
        let change = |a: f64, b: f64| if a > 0.0 { (b - a) / a } else { 0.0 };
        let ttft_change = change(ttft_first_ms, ttft_second_ms);
        let decode_change = match (decode_first, decode_second) {
            (Some(a), Some(b)) => change(a, b),
            _ => 0.0,
        };
        Some(Drift {
            ttft_first_ms,
            ttft_second_ms,
            ttft_change,
            decode_first_tok_s: decode_first.unwrap_or(0.0),
            decode_second_tok_s: decode_second.unwrap_or(0.0),
            decode_change,
            flagged: ttft_change.abs() > DRIFT_LIMIT || decode_change.abs() > DRIFT_LIMIT,
        })
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn record(send_ms: f64, ttft: f64, tpot: f64) -> RequestRecord {
        RequestRecord {
            send_ms,
            ttft_ms: Some(ttft),
            e2el_ms: Some(ttft + tpot * 9.0),
            output_tokens: Some(10),
            ..Default::default()
        }
    }

    #[rstest]
    #[case(&[10.0, 10.0, 10.5, 10.5], &[5.0; 4], false, 0.05, 0.0)]
    #[case(&[10.0, 10.0, 12.0, 12.0], &[5.0; 4], true, 0.2, 0.0)]
    #[case(&[10.0; 4], &[5.0, 5.0, 10.0, 10.0], true, 0.0, -0.5)]
    fn halves_are_compared_in_send_order(
        #[case] ttfts: &[f64],
        #[case] tpots: &[f64],
        #[case] flagged: bool,
        #[case] ttft_change: f64,
        #[case] decode_change: f64,
    ) {
        // Given out of order: drift follows send time, not record order.
        let mut records: Vec<RequestRecord> = ttfts
            .iter()
            .zip(tpots)
            .enumerate()
            .map(|(i, (&ttft, &tpot))| record(i as f64, ttft, tpot))
            .collect();
        records.reverse();
        let drift = Drift::of(&records).expect("enough records");
        assert_eq!(drift.flagged, flagged);
        assert!((drift.ttft_change - ttft_change).abs() < 1e-9, "{drift:?}");
        assert!(
            (drift.decode_change - decode_change).abs() < 1e-9,
            "{drift:?}"
        );
    }

    #[test]
    fn every_field_is_named() {
        let drift = Drift::of(&[
            record(0.0, 10.0, 5.0),
            record(1.0, 10.0, 5.0),
            record(2.0, 12.0, 5.0),
            record(3.0, 12.0, 5.0),
        ])
        .expect("enough records");
        for name in DRIFT_FIELDS {
            assert!(drift.field(name).is_some(), "{name}");
        }
        assert_eq!(drift.field("flagged"), Some(1.0));
        assert_eq!(drift.field("ttft_second_ms"), Some(12.0));
        assert_eq!(drift.field("nonsense"), None);
    }

    #[test]
    fn a_day_of_requests_is_held_in_fixed_memory_and_split_at_the_middle() {
        // 24 h at 10 req/s; TTFT grows with send time: 100 ms in the first half, 130 ms in
        // the second, so the exact change is +30 %.
        let day_ms = 86_400_000.0;
        let count: u32 = 864_000;
        let mut builder = DriftBuilder::default();
        for i in 0..count {
            let send_ms = day_ms * f64::from(i) / f64::from(count);
            let ttft = if i < count / 2 { 100.0 } else { 130.0 };
            builder.add(&record(send_ms, ttft, 5.0));
        }
        assert!(builder.buckets.len() <= MAX_DRIFT_BUCKETS);
        assert!(
            (20_000.0..=45_000.0).contains(&builder.bucket_width_ms()),
            "{}",
            builder.bucket_width_ms()
        );
        let drift = builder.build().expect("enough records");
        // The middle falls inside a bucket, which goes whole to one half: the halves' means
        // are off by at most one bucket's requests (width × 10 req/s) of the 30 ms step.
        let bucket_requests = builder.bucket_width_ms() / 100.0;
        let bound = 30.0 * bucket_requests / f64::from(count / 2);
        assert!((drift.ttft_first_ms - 100.0).abs() <= bound, "{drift:?}");
        assert!((drift.ttft_second_ms - 130.0).abs() <= bound, "{drift:?}");
        assert!(bound < 0.05, "{bound}");
        assert!(drift.flagged);
    }

    #[test]
    fn the_order_records_come_in_does_not_move_the_halves() {
        let records: Vec<RequestRecord> = (0..20_000)
            .map(|i| record(f64::from(i) * 7.3, 50.0 + f64::from(i % 97), 4.0))
            .collect();
        let forward = Drift::of(&records).expect("enough records");
        let mut shuffled = records.clone();
        shuffled.reverse();
        shuffled.rotate_left(7_777);
        let other = Drift::of(&shuffled).expect("enough records");
        assert!((forward.ttft_first_ms - other.ttft_first_ms).abs() < 1e-9);
        assert!((forward.ttft_second_ms - other.ttft_second_ms).abs() < 1e-9);
        assert_eq!(forward.flagged, other.flagged);
    }

    #[rstest]
    // Three of five sent in the same microsecond: the middle (2) falls inside that bucket,
    // which goes whole to the half holding most of it.
    #[case(&[0.0, 0.0001, 0.0002, 5.0, 6.0], 3, 2)]
    #[case(&[0.0, 1.0, 5.0, 5.0001, 5.0002], 2, 3)]
    fn a_bucket_across_the_middle_goes_to_its_larger_side(
        #[case] sends: &[f64],
        #[case] first: usize,
        #[case] second: usize,
    ) {
        // TTFT equals the request's position, so each half's mean says which requests it has.
        let records: Vec<RequestRecord> = sends
            .iter()
            .enumerate()
            .map(|(i, &send)| record(send, i as f64 + 1.0, 5.0))
            .collect();
        let drift = Drift::of(&records).expect("enough records");
        let mean = |range: std::ops::Range<usize>| {
            range.clone().map(|i| i as f64 + 1.0).sum::<f64>() / range.len() as f64
        };
        assert_eq!(drift.ttft_first_ms, mean(0..first));
        assert_eq!(drift.ttft_second_ms, mean(first..first + second));
    }

    #[test]
    fn too_few_requests_give_no_drift() {
        assert_eq!(
            Drift::of(&[record(0.0, 1.0, 1.0), record(1.0, 1.0, 1.0)]),
            None
        );
    }
}
