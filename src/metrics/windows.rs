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
/// A fold over a [`WindowsBuilder`] that knows the measured window from the start.
pub fn windows(records: &[RequestRecord], duration_s: f64, width_s: f64) -> Vec<Window> {
    let mut builder = WindowsBuilder::new(width_s).within(duration_s);
    for record in records {
        builder.add(record);
    }
    builder.build(duration_s)
}

/// Most windows a builder keeps (past it a request counts in the last one): over 100 days of
/// default windows, so a wild timestamp cannot make it allocate without bound.
const MOST_WINDOWS: usize = 1 << 20;

/// The windows built one record at a time, as a load runs. Each window keeps its counts and
/// its output tokens (a few numbers); the latencies of the successful requests that ended in
/// it are kept only while it is open. A live builder ([`WindowsBuilder::new`] without
/// [`WindowsBuilder::within`]) settles a window (computes its percentiles and drops the
/// samples) once a request has ended [`SETTLE_AFTER_S`] (at least two windows) past its end:
/// records arrive as their requests end, so what it keeps is a few windows' samples however
/// long the run. A successful request that ends in a window already settled (a record that
/// arrived that late) still counts in its requests and tokens; its latencies are left out of
/// the window's percentiles and counted by [`WindowsBuilder::late`].
#[derive(Debug, Clone)]
pub struct WindowsBuilder {
    width_s: f64,
    /// The window count, when the measured window is known up front (a fold over records).
    count: Option<usize>,
    slots: Vec<Slot>,
    /// Windows below this index are settled.
    settled: usize,
    records: u64,
    late: u64,
}

/// How long after a window's end its percentiles are settled, in seconds (at least two
/// windows).
pub const SETTLE_AFTER_S: f64 = 30.0;

/// One window's running figures.
#[derive(Debug, Clone, Default)]
struct Slot {
    requests: u64,
    errors: u64,
    tokens: f64,
    latencies: Latencies,
}

/// A window's latencies: the samples while it is open, the percentiles once settled.
#[derive(Debug, Clone)]
enum Latencies {
    Open {
        ttft: Vec<f64>,
        tpot: Vec<f64>,
        e2el: Vec<f64>,
    },
    Settled([Option<f64>; 6]),
}

impl Default for Latencies {
    fn default() -> Latencies {
        Latencies::Open {
            ttft: Vec::new(),
            tpot: Vec::new(),
            e2el: Vec::new(),
        }
    }
}

impl Latencies {
    /// p50 and p95 of TTFT, TPOT and E2EL.
    fn percentiles(&self) -> [Option<f64>; 6] {
        match self {
            Latencies::Settled(p) => *p,
            Latencies::Open { ttft, tpot, e2el } => {
                let pair = |values: &[f64]| {
                    Distribution::from_ms(values.iter().copied())
                        .map_or((None, None), |d| (Some(d.p50), Some(d.p95)))
                };
                let (t50, t95) = pair(ttft);
                let (p50, p95) = pair(tpot);
                let (e50, e95) = pair(e2el);
                [t50, t95, p50, p95, e50, e95]
            }
        }
    }

    fn settle(&mut self) {
        *self = Latencies::Settled(self.percentiles());
    }
}

impl WindowsBuilder {
    /// A live builder of windows `width_s` long; the measured window's length is known when it
    /// is built.
    pub fn new(width_s: f64) -> WindowsBuilder {
        WindowsBuilder {
            width_s,
            count: None,
            slots: Vec::new(),
            settled: 0,
            records: 0,
            late: 0,
        }
    }

    /// The same, over a measured window of `duration_s` known up front: nothing is settled
    /// before it is built, and a request that ends past the window counts in the last one as
    /// it is added.
    pub fn within(mut self, duration_s: f64) -> WindowsBuilder {
        self.count = Some(window_count(duration_s, self.width_s));
        self
    }

    /// Successful requests whose latencies came too late for their window's percentiles.
    pub fn late(&self) -> u64 {
        self.late
    }

    /// Windows kept so far (settled ones included).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Latency samples held by the windows not yet settled: what a live builder's memory
    /// grows with, bounded by the requests of a few windows.
    pub fn held(&self) -> usize {
        self.slots[self.settled.min(self.slots.len())..]
            .iter()
            .map(|slot| match &slot.latencies {
                Latencies::Open { ttft, tpot, e2el } => ttft.len() + tpot.len() + e2el.len(),
                Latencies::Settled(_) => 0,
            })
            .sum()
    }

    /// Whether no window is kept yet.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The index of the window an instant (ms from the start of the measured window) falls in.
    fn index(&self, at_ms: f64) -> usize {
        let last = self.count.map_or(MOST_WINDOWS, |c| c.max(1)) - 1;
        ((at_ms / 1000.0 / self.width_s).floor().max(0.0) as usize).min(last)
    }

    fn slot(&mut self, index: usize) -> &mut Slot {
        if self.slots.len() <= index {
            self.slots.resize_with(index + 1, Slot::default);
        }
        &mut self.slots[index]
    }

    /// Adds one record: the request to the window it ended in, its output tokens to the
    /// windows their chunks arrived in.
    pub fn add(&mut self, r: &RequestRecord) {
        self.records += 1;
        let measurable = self.width_s > 0.0 && self.count != Some(0);
        if !measurable {
            return;
        }
        let end_ms = r.send_ms + r.e2el_ms.unwrap_or(0.0);
        let ended = self.index(end_ms);
        let mut late = false;
        let slot = self.slot(ended);
        slot.requests += 1;
        if !r.is_ok() {
            slot.errors += 1;
        } else {
            match &mut slot.latencies {
                Latencies::Open { ttft, tpot, e2el } => {
                    ttft.extend(r.ttft_ms);
                    tpot.extend(r.tpot_ms());
                    e2el.extend(r.e2el_ms);
                }
                Latencies::Settled(_) => late = true,
            }
            self.late += u64::from(late);
            let chunk_total: u64 = r.chunk_tokens.iter().map(|&t| u64::from(t)).sum();
            let output = r.output_tokens.unwrap_or(chunk_total) as f64;
            if chunk_total == 0 {
                self.slots[ended].tokens += output;
            } else {
                for (&at, &carried) in r.chunk_ms.iter().zip(&r.chunk_tokens) {
                    let i = self.index(r.send_ms + at);
                    self.slot(i).tokens += output * f64::from(carried) / chunk_total as f64;
                }
            }
        }
        if self.count.is_none() {
            let lag = ((SETTLE_AFTER_S / self.width_s).ceil() as usize).max(2);
            let below = ended.saturating_sub(lag);
            while self.settled < below {
                self.slots[self.settled].latencies.settle();
                self.settled += 1;
            }
        }
    }

    /// The windows of a measured window of `duration_s` (the last one may be shorter; the
    /// requests of a live builder that ended past it count in the last).
    pub fn build(&self, duration_s: f64) -> Vec<Window> {
        let width_s = self.width_s;
        if !(duration_s > 0.0 && width_s > 0.0) || self.records == 0 {
            return Vec::new();
        }
        let count = window_count(duration_s, width_s);
        let mut slots: Vec<Slot> = self.slots.iter().take(count).cloned().collect();
        slots.resize_with(count, Slot::default);
        if let Some((last, beyond)) = slots.last_mut().zip(self.slots.get(count..)) {
            for extra in beyond {
                last.requests += extra.requests;
                last.errors += extra.errors;
                last.tokens += extra.tokens;
                if let (
                    Latencies::Open { ttft, tpot, e2el },
                    Latencies::Open {
                        ttft: t,
                        tpot: p,
                        e2el: e,
                    },
                ) = (&mut last.latencies, &extra.latencies)
                {
                    ttft.extend(t);
                    tpot.extend(p);
                    e2el.extend(e);
                }
            }
        }
        slots
            .into_iter()
            .enumerate()
            .map(|(i, slot)| {
                let start_s = i as f64 * width_s;
                let end_s = ((i + 1) as f64 * width_s).min(duration_s.max(start_s));
                let [t50, t95, p50, p95, e50, e95] = slot.latencies.percentiles();
                let span = end_s - start_s;
                Window {
                    start_s,
                    end_s,
                    requests: slot.requests,
                    errors: slot.errors,
                    ttft_p50_ms: t50,
                    ttft_p95_ms: t95,
                    tpot_p50_ms: p50,
                    tpot_p95_ms: p95,
                    e2el_p50_ms: e50,
                    e2el_p95_ms: e95,
                    output_tok_s: if span > 0.0 { slot.tokens / span } else { 0.0 },
                }
            })
            .collect()
    }
}

/// How many windows of `width_s` cut a measured window of `duration_s` (at least one; none
/// when either is not positive).
fn window_count(duration_s: f64, width_s: f64) -> usize {
    if !(duration_s > 0.0 && width_s > 0.0) {
        return 0;
    }
    ((duration_s / width_s).ceil() as usize).clamp(1, MOST_WINDOWS)
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

    #[test]
    fn a_live_builder_settles_old_windows_and_builds_the_same_windows() {
        // Ten requests a second for 120 s, each 1.5 s long, fed as they end.
        let mut records: Vec<RequestRecord> = (0..1200)
            .map(|i| request(f64::from(i) * 100.0, 15))
            .collect();
        records[7].error = Some(ErrorClass::Http503);
        records.sort_by(|a, b| {
            let end = |r: &RequestRecord| r.send_ms + r.e2el_ms.unwrap_or(0.0);
            end(a).total_cmp(&end(b))
        });
        let duration_s = 121.5;
        let mut live = WindowsBuilder::new(1.0);
        let mut most_held = 0;
        for r in &records {
            live.add(r);
            most_held = most_held.max(live.held());
        }
        assert_eq!(live.build(duration_s), windows(&records, duration_s, 1.0));
        assert_eq!(live.late(), 0);
        // 30 s of settling lag and the open window: 31 windows of ten requests, three
        // latencies each, never the whole run's 3,600.
        assert!(most_held <= 32 * 10 * 3, "{most_held}");
        assert!(live.len() >= 120);
    }

    #[test]
    fn a_late_request_counts_but_leaves_settled_percentiles_alone() {
        let mut live = WindowsBuilder::new(1.0);
        live.add(&request(0.0, 1));
        live.add(&request(60_000.0, 1));
        live.add(&request(0.0, 3));
        let w = live.build(61.0);
        assert_eq!(live.late(), 1);
        assert_eq!(w[0].requests, 2);
        assert_eq!(w[0].ttft_p50_ms, Some(100.0));
        assert!((w[0].output_tok_s - 4.0).abs() < 1e-9, "{:?}", w[0]);
    }
}
