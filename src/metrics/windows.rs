//! The load over time: the measured window cut into fixed windows, each with the requests that
//! ended in it, their failures, their latency medians and 95th percentiles, and the output
//! tokens that arrived in it per second. `windows.csv` in the trial folder, and the "over time"
//! chart of `report.html`, are this.
//!
//! A request belongs to the window it ended in (its last chunk, or its failure). Its output
//! tokens belong to the windows their chunks arrived in: each chunk carries its share of the
//! request's output count (the server's usage when it gave one), so the windows' tokens add up
//! to the summary's `output_tokens` and a long stream's tokens are spread over the windows it
//! spans, as they arrived.

use serde::{Deserialize, Serialize};

use super::RequestRecord;
use crate::metrics::Distribution;

/// The file in a load trial's folder.
pub const FILE: &str = "windows.csv";

/// The window length unless the run is short: 10 s.
pub const DEFAULT_WINDOW_S: f64 = 10.0;

/// Fewest windows a run is cut into: a run shorter than ten default windows gets windows of a
/// tenth of its length (at least [`SHORTEST_WINDOW_S`]).
const FEWEST_WINDOWS: f64 = 10.0;

/// The shortest window.
const SHORTEST_WINDOW_S: f64 = 0.1;

/// One window of the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// Its start, seconds from the start of the measured window.
    pub start_s: f64,
    /// Its end, seconds.
    pub end_s: f64,
    /// Requests that ended in it (failed ones included).
    pub requests: u64,
    /// Of those, the ones that failed.
    pub errors: u64,
    /// Median TTFT of the successful requests that ended in it.
    pub ttft_p50_ms: Option<f64>,
    /// Their 95th percentile TTFT.
    pub ttft_p95_ms: Option<f64>,
    /// Their median TPOT.
    pub tpot_p50_ms: Option<f64>,
    /// Their 95th percentile TPOT.
    pub tpot_p95_ms: Option<f64>,
    /// Their median end-to-end latency.
    pub e2el_p50_ms: Option<f64>,
    /// Their 95th percentile end-to-end latency.
    pub e2el_p95_ms: Option<f64>,
    /// Output tokens that arrived in it, per second.
    pub output_tok_s: f64,
}

/// The window length for a measured window of `duration_s`: [`DEFAULT_WINDOW_S`], or a tenth
/// of the run when that is shorter (at least 100 ms).
pub fn window_length(duration_s: f64) -> f64 {
    (duration_s / FEWEST_WINDOWS).clamp(SHORTEST_WINDOW_S, DEFAULT_WINDOW_S)
}

/// The windows of `records` over a measured window of `duration_s`, each `width_s` long (the
/// last one may be shorter; a request that ended after the window's end counts in the last).
pub fn windows(records: &[RequestRecord], duration_s: f64, width_s: f64) -> Vec<Window> {
    if !(duration_s > 0.0 && width_s > 0.0) || records.is_empty() {
        return Vec::new();
    }
    let count = ((duration_s / width_s).ceil() as usize).max(1);
    let index = |at_ms: f64| ((at_ms / 1000.0 / width_s).floor().max(0.0) as usize).min(count - 1);
    let mut ended: Vec<Vec<&RequestRecord>> = vec![Vec::new(); count];
    let mut tokens = vec![0.0; count];
    for r in records {
        let end_ms = r.send_ms + r.e2el_ms.unwrap_or(0.0);
        ended[index(end_ms)].push(r);
        if !r.is_ok() {
            continue;
        }
        let chunk_total: u64 = r.chunk_tokens.iter().map(|&t| u64::from(t)).sum();
        let output = r.output_tokens.unwrap_or(chunk_total) as f64;
        if chunk_total == 0 {
            tokens[index(end_ms)] += output;
            continue;
        }
        for (&at, &carried) in r.chunk_ms.iter().zip(&r.chunk_tokens) {
            tokens[index(r.send_ms + at)] += output * f64::from(carried) / chunk_total as f64;
        }
    }
    ended
        .into_iter()
        .zip(tokens)
        .enumerate()
        .map(|(i, (mine, tokens))| {
            let start_s = i as f64 * width_s;
            let end_s = ((i + 1) as f64 * width_s).min(duration_s.max(start_s));
            let ok: Vec<&&RequestRecord> = mine.iter().filter(|r| r.is_ok()).collect();
            let stat = |values: Vec<f64>, q: fn(&Distribution) -> f64| {
                Distribution::from_ms(values).as_ref().map(q)
            };
            let ttft = || ok.iter().filter_map(|r| r.ttft_ms).collect::<Vec<_>>();
            let tpot = || ok.iter().filter_map(|r| r.tpot_ms()).collect::<Vec<_>>();
            let e2el = || ok.iter().filter_map(|r| r.e2el_ms).collect::<Vec<_>>();
            let span = end_s - start_s;
            Window {
                start_s,
                end_s,
                requests: mine.len() as u64,
                errors: (mine.len() - ok.len()) as u64,
                ttft_p50_ms: stat(ttft(), |d| d.p50),
                ttft_p95_ms: stat(ttft(), |d| d.p95),
                tpot_p50_ms: stat(tpot(), |d| d.p50),
                tpot_p95_ms: stat(tpot(), |d| d.p95),
                e2el_p50_ms: stat(e2el(), |d| d.p50),
                e2el_p95_ms: stat(e2el(), |d| d.p95),
                output_tok_s: if span > 0.0 { tokens / span } else { 0.0 },
            }
        })
        .collect()
}

/// `windows.csv`: a header and one row per window (empty cells for latencies no request had).
pub fn to_csv(windows: &[Window]) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    if windows.is_empty() {
        writer.write_record(COLUMNS)?;
    }
    for window in windows {
        writer.serialize(window)?;
    }
    writer
        .into_inner()
        .map_err(|e| csv::Error::from(std::io::Error::other(e.to_string())))
}

/// The windows read back from `windows.csv`.
pub fn from_csv(text: &[u8]) -> Result<Vec<Window>, csv::Error> {
    csv::Reader::from_reader(text).deserialize().collect()
}

/// `windows.csv`'s columns, in order.
pub const COLUMNS: [&str; 11] = [
    "start_s",
    "end_s",
    "requests",
    "errors",
    "ttft_p50_ms",
    "ttft_p95_ms",
    "tpot_p50_ms",
    "tpot_p95_ms",
    "e2el_p50_ms",
    "e2el_p95_ms",
    "output_tok_s",
];

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::metrics::ErrorClass;

    /// A request sent at `send_ms` with chunks of one token every 100 ms from 100 ms.
    fn request(send_ms: f64, chunks: usize) -> RequestRecord {
        let chunk_ms: Vec<f64> = (1..=chunks).map(|i| i as f64 * 100.0).collect();
        RequestRecord {
            send_ms,
            ttft_ms: chunk_ms.first().copied(),
            e2el_ms: chunk_ms.last().copied(),
            output_tokens: Some(chunks as u64),
            chunk_tokens: vec![1; chunks],
            chunk_ms,
            ..RequestRecord::default()
        }
    }

    #[rstest]
    #[case(3.0, 0.3)]
    #[case(60.0, 6.0)]
    #[case(3600.0, 10.0)]
    #[case(0.2, 0.1)]
    fn short_runs_get_ten_windows(#[case] duration_s: f64, #[case] width_s: f64) {
        assert!((window_length(duration_s) - width_s).abs() < 1e-12);
    }

    #[test]
    fn tokens_fall_in_the_windows_they_arrived_in() {
        // 20 chunks over 2 s, in 1 s windows: 10 tokens in each.
        let records = vec![request(0.0, 20)];
        let w = windows(&records, 2.0, 1.0);
        assert_eq!(w.len(), 2);
        // Chunks at 100..=900 ms and 1000 ms: 9 in the first window, 11 in the second (the
        // one at 1000 ms starts it).
        assert!((w[0].output_tok_s - 9.0).abs() < 1e-9, "{w:?}");
        assert!((w[1].output_tok_s - 11.0).abs() < 1e-9, "{w:?}");
        let total: f64 = w
            .iter()
            .map(|w| w.output_tok_s * (w.end_s - w.start_s))
            .sum();
        assert!((total - 20.0).abs() < 1e-9);
        assert_eq!((w[0].requests, w[1].requests), (0, 1));
    }

    #[test]
    fn the_server_count_is_spread_over_the_chunks() {
        // The server said 40 tokens over 4 chunks: each chunk carries 10.
        let mut r = request(0.0, 4);
        r.output_tokens = Some(40);
        let w = windows(&[r], 0.4, 0.2);
        assert_eq!(w.len(), 2);
        let total: f64 = w
            .iter()
            .map(|w| w.output_tok_s * (w.end_s - w.start_s))
            .sum();
        assert!((total - 40.0).abs() < 1e-9, "{w:?}");
    }

    #[test]
    fn failures_count_where_they_ended_and_latencies_skip_them() {
        let mut failed = request(500.0, 1);
        failed.error = Some(ErrorClass::Timeout);
        let records = vec![request(0.0, 2), failed];
        let w = windows(&records, 1.0, 1.0);
        assert_eq!((w[0].requests, w[0].errors), (2, 1));
        assert_eq!(w[0].ttft_p50_ms, Some(100.0));
    }

    #[test]
    fn the_csv_reads_back() {
        let w = windows(&[request(0.0, 5), request(300.0, 5)], 1.0, 0.5);
        let csv = to_csv(&w).expect("csv");
        let text = String::from_utf8(csv.clone()).expect("utf-8");
        assert_eq!(text.lines().next(), Some(COLUMNS.join(",").as_str()));
        assert_eq!(from_csv(&csv).expect("reads back"), w);
        let empty = String::from_utf8(to_csv(&[]).expect("csv")).expect("utf-8");
        assert_eq!(empty.trim_end(), COLUMNS.join(","));
    }
}
