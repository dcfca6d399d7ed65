//! Charts from the per-request records (`records.jsonl`): latency CDFs and the request
//! timeline. Large trials are downsampled: a CDF keeps at most [`CDF_POINTS`] points and the
//! timeline at most [`TIMELINE_REQUESTS`] requests, evenly spread over the send order.

use super::chart::{ALERT, Chart, Layer, PALETTE, Stroke};
use super::markup::id;
use crate::report::run::RequestTimes;

/// Most points per CDF line.
pub const CDF_POINTS: usize = 160;

/// Most requests drawn in a timeline.
pub const TIMELINE_REQUESTS: usize = 300;

/// The empirical CDF of `values` as (value, fraction ≤ value) points, at most `max_points`
/// of them (evenly spaced ranks, always the first and the last).
pub fn cdf(mut values: Vec<f64>, max_points: usize) -> Vec<(f64, f64)> {
    values.retain(|v| v.is_finite());
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 || max_points == 0 {
        return Vec::new();
    }
    let ranks: Vec<usize> = if n <= max_points || max_points == 1 {
        (0..n).collect()
    } else {
        (0..max_points)
            .map(|i| i * (n - 1) / (max_points - 1))
            .collect()
    };
    ranks
        .into_iter()
        .map(|i| (values[i], (i + 1) as f64 / n as f64))
        .collect()
}

/// Indices of at most `max` items out of `n`, evenly spread, the first always included.
pub fn spread(n: usize, max: usize) -> Vec<usize> {
    if n <= max {
        return (0..n).collect();
    }
    let stride = n.div_ceil(max.max(1));
    (0..n).step_by(stride).collect()
}

/// The CDFs of TTFT, TPOT and E2EL of one trial's successful requests.
pub fn latency_cdf(name: &str, times: &[RequestTimes]) -> Chart {
    let ok = || times.iter().filter(|t| t.error.is_none());
    let metrics: [(&str, Vec<f64>); 3] = [
        ("TTFT", ok().filter_map(|t| t.ttft_ms).collect()),
        ("TPOT", ok().filter_map(RequestTimes::tpot_ms).collect()),
        ("E2EL", ok().filter_map(|t| t.e2el_ms).collect()),
    ];
    let layers = metrics
        .into_iter()
        .enumerate()
        .filter(|(_, (_, values))| !values.is_empty())
        .map(|(i, (label, values))| Layer::Line {
            label: format!("{label} ({} requests)", values.len()),
            points: cdf(values, CDF_POINTS),
            color: i,
            stroke: Stroke::Solid,
        })
        .collect();
    Chart {
        id: id(&format!("{name}-cdf")),
        title: "Latency CDF".into(),
        x_label: "latency (ms)".into(),
        y_label: "fraction of requests".into(),
        layers,
        y_from_zero: true,
        x_integer: false,
        y_integer: false,
    }
}

/// One latency's CDF for several trials of a case (one line per trial).
pub fn case_cdf(case: &str, metric: &str, trials: &[(String, Vec<f64>)]) -> Chart {
    let layers = trials
        .iter()
        .enumerate()
        .filter(|(_, (_, values))| !values.is_empty())
        .map(|(i, (label, values))| Layer::Line {
            label: label.clone(),
            points: cdf(values.clone(), CDF_POINTS),
            color: i,
            stroke: Stroke::Solid,
        })
        .collect();
    Chart {
        id: id(&format!("{case}-{}-cdf", metric.to_lowercase())),
        title: format!("{case}: {metric} CDF of each trial"),
        x_label: format!("{metric} (ms)"),
        y_label: "fraction of requests".into(),
        layers,
        y_from_zero: true,
        x_integer: false,
        y_integer: false,
    }
}

/// `2nd`, `3rd`, `4th`, `11th`, `21st`.
fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// Each request as a line from its send to its end, its first token as a dot, failures as
/// red dots; requests numbered in send order. Returns the chart and how many requests it
/// shows.
pub fn timeline(name: &str, times: &[RequestTimes]) -> (Chart, usize) {
    let mut ordered: Vec<&RequestTimes> = times.iter().collect();
    ordered.sort_by(|a, b| a.send_ms.total_cmp(&b.send_ms));
    let shown = spread(ordered.len(), TIMELINE_REQUESTS);
    let mut segments = Vec::new();
    let mut first_tokens = Vec::new();
    let mut failed = Vec::new();
    for &i in &shown {
        let t = ordered[i];
        let (y, send) = (i as f64, t.send_ms / 1000.0);
        let end = t.e2el_ms.map(|e| send + e / 1000.0);
        if t.error.is_some() {
            failed.push((end.unwrap_or(send), y));
            continue;
        }
        if let Some(end) = end {
            segments.push(((send, y), (end, y)));
        }
        if let Some(ttft) = t.ttft_ms {
            first_tokens.push((send + ttft / 1000.0, y));
        }
    }
    let mut layers = vec![
        Layer::Segments {
            label: "request: send → last token".into(),
            segments,
            color: 0,
        },
        Layer::Points {
            label: "first token".into(),
            points: first_tokens,
            color: PALETTE[1],
        },
    ];
    if !failed.is_empty() {
        layers.push(Layer::Points {
            label: "failed (when it ended)".into(),
            points: failed,
            color: ALERT,
        });
    }
    let chart = Chart {
        id: id(&format!("{name}-timeline")),
        title: if shown.len() < ordered.len() {
            format!(
                "Request timeline: {} of {} requests (every {} by send time)",
                shown.len(),
                ordered.len(),
                ordinal(ordered.len().div_ceil(TIMELINE_REQUESTS))
            )
        } else {
            format!("Request timeline: {} requests", ordered.len())
        },
        x_label: "time since the load started (s)".into(),
        y_label: "request (in send order)".into(),
        layers,
        // Requests sit on whole numbers from 0: pad below the first.
        y_from_zero: false,
        x_integer: false,
        y_integer: true,
    };
    (chart, shown.len())
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::metrics::ErrorClass;

    #[rstest]
    #[case(1, "1st")]
    #[case(2, "2nd")]
    #[case(3, "3rd")]
    #[case(4, "4th")]
    #[case(11, "11th")]
    #[case(12, "12th")]
    #[case(22, "22nd")]
    #[case(101, "101st")]
    fn ordinals_read_as_words(#[case] n: usize, #[case] text: &str) {
        assert_eq!(ordinal(n), text);
    }

    #[test]
    fn a_small_cdf_has_every_point() {
        assert_eq!(
            cdf(vec![3.0, 1.0, f64::NAN, 2.0], 10),
            [(1.0, 1.0 / 3.0), (2.0, 2.0 / 3.0), (3.0, 1.0)]
        );
    }

    #[test]
    fn a_large_cdf_is_downsampled_and_keeps_both_ends() {
        let points = cdf((1..=10_000).map(f64::from).collect(), 100);
        assert_eq!(points.len(), 100);
        assert_eq!(points[0], (1.0, 0.0001));
        assert_eq!(points[99], (10_000.0, 1.0));
        assert!(
            points
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1)
        );
    }

    #[rstest]
    #[case(5, 10, 5)]
    #[case(300, 300, 300)]
    #[case(301, 300, 151)]
    #[case(12_000, 300, 300)]
    #[case(0, 300, 0)]
    fn spreading_never_exceeds_the_limit(
        #[case] n: usize,
        #[case] max: usize,
        #[case] count: usize,
    ) {
        let picked = spread(n, max);
        assert_eq!(picked.len(), count);
        assert!(picked.len() <= max);
        assert!(picked.first().is_none_or(|i| *i == 0));
    }

    fn request(send_ms: f64, error: Option<ErrorClass>) -> RequestTimes {
        RequestTimes {
            send_ms,
            ttft_ms: Some(10.0),
            e2el_ms: Some(100.0),
            output_tokens: Some(10),
            error,
        }
    }

    #[test]
    fn the_timeline_draws_requests_first_tokens_and_failures() {
        let times = [
            request(500.0, None),
            request(0.0, None),
            request(250.0, Some(ErrorClass::Http503)),
        ];
        let (chart, shown) = timeline("t", &times);
        assert_eq!(shown, 3);
        assert_eq!(
            chart.layers[0],
            Layer::Segments {
                label: "request: send → last token".into(),
                segments: vec![((0.0, 0.0), (0.1, 0.0)), ((0.5, 2.0), (0.6, 2.0))],
                color: 0,
            }
        );
        assert!(
            matches!(&chart.layers[2], Layer::Points { points, .. } if points == &[(0.35, 1.0)])
        );
        assert_eq!(chart.title, "Request timeline: 3 requests");
    }

    #[test]
    fn a_large_timeline_says_how_it_was_sampled() {
        let times: Vec<RequestTimes> = (0..1000).map(|i| request(f64::from(i), None)).collect();
        let (chart, shown) = timeline("t", &times);
        assert_eq!(shown, 250);
        assert_eq!(
            chart.title,
            "Request timeline: 250 of 1000 requests (every 4th by send time)"
        );
    }
}
