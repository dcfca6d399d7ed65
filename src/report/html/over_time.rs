//! Charts of the load over time, from the trial's `windows.csv` ([`crate::metrics::windows`]):
//! output tokens per second, and latency medians and 95th percentiles, per window, with the
//! middle of the run marked (drift compares its two halves).

use super::chart::{Chart, Layer, Stroke};
use super::markup::id;
use crate::metrics::windows::Window;

/// A window's midpoint, seconds.
fn middle(w: &Window) -> f64 {
    (w.start_s + w.end_s) / 2.0
}

/// The vertical line at the middle of the run, from 0 to `top`.
fn halves(windows: &[Window], top: f64) -> Option<Layer> {
    let end = windows.last()?.end_s;
    Some(Layer::Segments {
        label: "middle of the run (drift compares the halves)".into(),
        segments: vec![((end / 2.0, 0.0), (end / 2.0, top))],
        color: 7,
    })
}

/// Output tokens per second, per window; none with fewer than two windows.
pub fn throughput(name: &str, windows: &[Window]) -> Option<Chart> {
    if windows.len() < 2 {
        return None;
    }
    let points: Vec<(f64, f64)> = windows
        .iter()
        .map(|w| (middle(w), w.output_tok_s))
        .collect();
    let top = points.iter().map(|p| p.1).fold(0.0, f64::max);
    let mut layers = vec![Layer::Line {
        label: "output tok/s".into(),
        points,
        color: 0,
        stroke: Stroke::Solid,
    }];
    layers.extend(halves(windows, top));
    Some(Chart {
        id: id(&format!("{name}-throughput-over-time")),
        title: format!(
            "Throughput over time ({} windows of {:.1} s)",
            windows.len(),
            windows[0].end_s - windows[0].start_s
        ),
        x_label: "time since the load started (s)".into(),
        y_label: "output tokens per second".into(),
        layers,
        y_from_zero: true,
        x_integer: false,
        y_integer: false,
    })
}

/// A latency series: its label, how to read it off a window, and its stroke.
type Series = (&'static str, fn(&Window) -> Option<f64>, Stroke);

/// TTFT and E2EL medians and 95th percentiles of the requests that ended in each window;
/// none with fewer than two windows.
pub fn latency(name: &str, windows: &[Window]) -> Option<Chart> {
    if windows.len() < 2 {
        return None;
    }
    let series: [Series; 4] = [
        ("TTFT p50", |w| w.ttft_p50_ms, Stroke::Solid),
        ("TTFT p95", |w| w.ttft_p95_ms, Stroke::Dashed),
        ("E2EL p50", |w| w.e2el_p50_ms, Stroke::Solid),
        ("E2EL p95", |w| w.e2el_p95_ms, Stroke::Dashed),
    ];
    let mut top: f64 = 0.0;
    let mut layers: Vec<Layer> = series
        .iter()
        .enumerate()
        .filter_map(|(i, (label, value, stroke))| {
            let points: Vec<(f64, f64)> = windows
                .iter()
                .filter_map(|w| Some((middle(w), value(w)?)))
                .collect();
            top = points.iter().map(|p| p.1).fold(top, f64::max);
            (!points.is_empty()).then(|| Layer::Line {
                label: (*label).into(),
                points,
                color: i / 2,
                stroke: *stroke,
            })
        })
        .collect();
    if layers.is_empty() {
        return None;
    }
    layers.extend(halves(windows, top));
    Some(Chart {
        id: id(&format!("{name}-latency-over-time")),
        title: "Latency over time (requests by the window they ended in)".into(),
        x_label: "time since the load started (s)".into(),
        y_label: "latency (ms)".into(),
        layers,
        y_from_zero: true,
        x_integer: false,
        y_integer: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::RequestRecord;
    use crate::metrics::windows::windows;

    fn run() -> Vec<Window> {
        let records: Vec<RequestRecord> = (0..20)
            .map(|i| RequestRecord {
                send_ms: i as f64 * 100.0,
                ttft_ms: Some(10.0),
                e2el_ms: Some(50.0),
                output_tokens: Some(5),
                chunk_ms: vec![10.0, 50.0],
                chunk_tokens: vec![1, 4],
                ..RequestRecord::default()
            })
            .collect();
        windows(&records, 2.0, 0.5)
    }

    #[test]
    fn both_charts_draw_every_window_and_the_middle() {
        let windows = run();
        let throughput = throughput("t", &windows).expect("a chart");
        let Layer::Line { points, .. } = &throughput.layers[0] else {
            panic!("a line first");
        };
        assert_eq!(points.len(), 4);
        assert!(matches!(
            throughput.layers.last(),
            Some(Layer::Segments { segments, .. }) if segments[0].0.0 == 1.0
        ));
        let latency = latency("t", &windows).expect("a chart");
        assert_eq!(latency.layers.len(), 5, "four series and the middle");
    }

    #[test]
    fn one_window_draws_nothing() {
        let one = &run()[..1];
        assert!(throughput("t", one).is_none());
        assert!(latency("t", one).is_none());
    }
}
