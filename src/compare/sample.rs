//! What a comparison reads of one trial (its per-request records, its measured window, its
//! scored answers) and the bootstrap samples it draws from them.

use std::collections::BTreeMap;

use super::stats::{self, Sample};
use crate::accuracy::summary::ScoredSample;
use crate::case::gate::{Latency, Throughput};
use crate::metrics::RequestRecord;

/// One trial's evidence, as a comparison needs it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrialData {
    /// Its measured requests (`records.jsonl`), sorted by send time.
    pub records: Vec<RequestRecord>,
    /// The measured window, seconds (the summary's `duration_s`).
    pub duration_s: f64,
    /// Its scored answers, when it asked questions.
    pub answers: Option<Answers>,
}

/// Which questions a trial answered right, by question id, for the judged filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answers {
    /// The filter whose extraction is judged (`strict-match`, …).
    pub filter: String,
    /// Question id → answered right (a failed request counts as wrong).
    pub correct: BTreeMap<String, bool>,
}

impl Answers {
    /// The answers of `samples` under `filter`.
    pub fn from_samples(filter: &str, samples: &[ScoredSample]) -> Answers {
        Answers {
            filter: filter.to_string(),
            correct: samples
                .iter()
                .map(|s| {
                    (
                        s.id.clone(),
                        s.correct.get(filter).copied().unwrap_or(false),
                    )
                })
                .collect(),
        }
    }
}

/// Windows the measured window is cut into for throughput samples: about two per second,
/// between 5 and 60.
const WINDOWS_PER_SECOND: f64 = 2.0;
const MIN_WINDOWS: usize = 5;
const MAX_WINDOWS: usize = 60;

impl TrialData {
    /// Evidence of `records` over a window of `duration_s`, sorted by send time.
    pub fn new(mut records: Vec<RequestRecord>, duration_s: f64) -> TrialData {
        records.sort_by(|a, b| a.send_ms.total_cmp(&b.send_ms));
        TrialData {
            records,
            duration_s,
            answers: None,
        }
    }

    /// Requests in flight on average over the measured window (Little's law: the sum of
    /// end-to-end latencies over the window), at least 1.
    pub fn mean_in_flight(&self) -> f64 {
        let busy_ms: f64 = self.records.iter().filter_map(|r| r.e2el_ms).sum();
        if self.duration_s > 0.0 {
            (busy_ms / (self.duration_s * 1000.0)).max(1.0)
        } else {
            1.0
        }
    }

    /// Requests (failed ones included) and how many of them failed.
    pub fn failures(&self) -> (u64, u64) {
        let failed = self.records.iter().filter(|r| !r.is_ok()).count() as u64;
        (failed, self.records.len() as u64)
    }

    /// The latency of each successful request (each inter-token gap, for ITL), in send
    /// order, in blocks of twice the requests in flight (a request shares the server with
    /// those in flight before it and after it), or twice the values' own coupling when that
    /// is longer.
    pub fn latency(&self, latency: Latency) -> Sample {
        let ok = self.records.iter().filter(|r| r.is_ok());
        let values: Vec<f64> = match latency {
            Latency::Ttft => ok.filter_map(|r| r.ttft_ms).collect(),
            Latency::Tpot => ok.filter_map(RequestRecord::tpot_ms).collect(),
            Latency::E2el => ok.filter_map(|r| r.e2el_ms).collect(),
            Latency::Itl => ok.flat_map(RequestRecord::itl_ms).collect(),
        };
        let requests = self.records.iter().filter(|r| r.is_ok()).count().max(1);
        let per_request = values.len() as f64 / requests as f64;
        let in_flight = 2.0 * self.mean_in_flight() * per_request.max(1.0);
        let block = in_flight.max(2.0 * stats::coupling(&values)).ceil() as usize;
        Sample::new(values, block)
    }

    /// Throughput in each of equal windows over the measured window, blocked by the windows
    /// one request spans. Output tokens are spread evenly over each request's decode (first
    /// to last chunk), and each request over its life (send to last chunk), so the mean over
    /// the windows is the summary's figure (tokens or requests over the measured window)
    /// while a closed loop's completions, which come in waves, do not make neighbouring
    /// windows swing between waves.
    pub fn windows(&self, throughput: Throughput) -> Sample {
        let duration_ms = self.duration_s * 1000.0;
        let Some(origin) = self.records.iter().map(|r| r.send_ms).reduce(f64::min) else {
            return Sample::independent(Vec::new());
        };
        if duration_ms <= 0.0 {
            return Sample::independent(Vec::new());
        }
        let count = ((self.duration_s * WINDOWS_PER_SECOND).round() as usize)
            .clamp(MIN_WINDOWS, MAX_WINDOWS);
        let width = duration_ms / count as f64;
        let mut totals = vec![0.0; count];
        let mut spans = 0.0;
        let mut ok = 0usize;
        for r in self.records.iter().filter(|r| r.is_ok()) {
            let (Some(ttft), Some(e2el)) = (r.ttft_ms, r.e2el_ms) else {
                continue;
            };
            ok += 1;
            let (start, end) = (r.send_ms + ttft, r.send_ms + e2el);
            spans += e2el / width;
            let (amount, from) = match throughput {
                Throughput::ReqS => (1.0, r.send_ms),
                Throughput::OutputTokS | Throughput::TputUser => {
                    (r.output_tokens.unwrap_or(0) as f64, start)
                }
            };
            spread(&mut totals, amount, from, end, |t| (t - origin) / width);
        }
        let seconds = width / 1000.0;
        let values: Vec<f64> = totals.into_iter().map(|v| v / seconds).collect();
        let spanned = if ok > 0 { spans / ok as f64 + 1.0 } else { 1.0 };
        let block = spanned.max(2.0 * stats::coupling(&values)).ceil() as usize;
        Sample::new(values, block)
    }
}

/// Adds `amount` to `totals`, spread evenly over `[start, end]` (in the units `position`
/// maps to window indices); all of it at `start` when the span is empty.
fn spread(totals: &mut [f64], amount: f64, start: f64, end: f64, position: impl Fn(f64) -> f64) {
    let last = totals.len() - 1;
    let clamp = |x: f64| x.clamp(0.0, totals.len() as f64);
    let (a, b) = (clamp(position(start)), clamp(position(end)));
    if b - a <= f64::EPSILON {
        totals[(a.floor() as usize).min(last)] += amount;
        return;
    }
    let mut i = (a.floor() as usize).min(last);
    while i <= last && (i as f64) < b {
        let overlap = (b.min(i as f64 + 1.0) - a.max(i as f64)).max(0.0);
        totals[i] += amount * overlap / (b - a);
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(send_ms: f64, ttft_ms: f64, e2el_ms: f64, tokens: u64) -> RequestRecord {
        RequestRecord {
            send_ms,
            ttft_ms: Some(ttft_ms),
            e2el_ms: Some(e2el_ms),
            output_tokens: Some(tokens),
            chunk_ms: vec![ttft_ms, e2el_ms],
            chunk_tokens: vec![1, tokens.saturating_sub(1) as u32],
            ..Default::default()
        }
    }

    #[test]
    fn window_throughput_averages_to_the_summary_figure() {
        // 10 requests of 100 tokens, one every 500 ms, each decoding for 400 ms: 1,000
        // tokens over a 5 s window.
        let records = (0..10)
            .map(|i| record(i as f64 * 500.0, 50.0, 450.0, 100))
            .collect();
        let data = TrialData::new(records, 5.0);
        let tokens = data.windows(Throughput::OutputTokS);
        assert_eq!(tokens.values.len(), 10);
        let mean = tokens.values.iter().sum::<f64>() / tokens.values.len() as f64;
        assert!((mean - 200.0).abs() < 1e-9, "{mean}");
        let requests = data.windows(Throughput::ReqS);
        let mean = requests.values.iter().sum::<f64>() / requests.values.len() as f64;
        assert!((mean - 2.0).abs() < 1e-9, "{mean}");
    }

    #[test]
    fn spread_keeps_the_whole_amount() {
        let mut totals = vec![0.0; 4];
        spread(&mut totals, 10.0, 0.5, 2.5, |t| t);
        assert_eq!(totals, vec![2.5, 5.0, 2.5, 0.0]);
        let mut totals = vec![0.0; 2];
        spread(&mut totals, 3.0, 1.2, 1.2, |t| t);
        assert_eq!(totals, vec![0.0, 3.0]);
    }

    #[test]
    fn latency_blocks_cover_the_requests_in_flight() {
        // 8 requests always in flight: each lasts 800 ms, one starts every 100 ms.
        let records: Vec<_> = (0..200)
            .map(|i| record(i as f64 * 100.0, 10.0, 800.0, 10))
            .collect();
        let data = TrialData::new(records, 20.0);
        assert!((data.mean_in_flight() - 8.0).abs() < 1e-9);
        // A request overlaps the 8 before it and the 8 after it.
        assert_eq!(data.latency(Latency::Ttft).block, 16);
        assert_eq!(data.latency(Latency::Ttft).values.len(), 200);
    }

    #[test]
    fn failures_count_every_class() {
        let mut failed = record(0.0, 1.0, 2.0, 3);
        failed.error = Some(crate::metrics::ErrorClass::Timeout);
        let data = TrialData::new(vec![record(1.0, 1.0, 2.0, 3), failed], 1.0);
        assert_eq!(data.failures(), (1, 2));
    }
}
