//! Drift: did the server get slower (or faster) during the run? The successful requests are
//! split by send order into a first and a second half, and the mean TTFT and mean decode rate
//! of the halves are compared.

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

/// Drift built one record at a time. The halves are split by send order and the request
/// count, neither known until the end, so it keeps three numbers per successful request
/// (its send time, TTFT and decode rate: 40 bytes, against a record's kilobytes of chunk
/// times) and sorts them when built.
#[derive(Debug, Clone, Default)]
pub struct DriftBuilder {
    ok: Vec<(f64, Option<f64>, Option<f64>)>,
}

impl DriftBuilder {
    /// Adds one record (a failed one is not measured).
    pub fn add(&mut self, record: &RequestRecord) {
        if record.is_ok() {
            let decode = record.tpot_ms().filter(|t| *t > 0.0).map(|t| 1000.0 / t);
            self.ok.push((record.send_ms, record.ttft_ms, decode));
        }
    }

    /// The drift of the records so far; `None` with fewer than two measurable requests per
    /// half.
    pub fn build(&self) -> Option<Drift> {
        let mut ok: Vec<&(f64, Option<f64>, Option<f64>)> = self.ok.iter().collect();
        ok.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (first, second) = ok.split_at(ok.len() / 2);
        type Entry<'a> = &'a (f64, Option<f64>, Option<f64>);
        let mean = |half: &[Entry<'_>], value: fn(Entry<'_>) -> Option<f64>| {
            let values: Vec<f64> = half.iter().filter_map(|r| value(r)).collect();
            (values.len() >= 2).then(|| values.iter().sum::<f64>() / values.len() as f64)
        };
        let ttft = |r: Entry<'_>| r.1;
        let decode = |r: Entry<'_>| r.2;
        let (ttft_first_ms, ttft_second_ms) = (mean(first, ttft)?, mean(second, ttft)?);
        let (decode_first, decode_second) = (mean(first, decode), mean(second, decode));
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
    fn too_few_requests_give_no_drift() {
        assert_eq!(
            Drift::of(&[record(0.0, 1.0, 1.0), record(1.0, 1.0, 1.0)]),
            None
        );
    }
}
