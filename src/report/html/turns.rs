//! The TTFT-by-turn chart of a trial of multi-turn conversations (`prompts.sessions`,
//! `load.mode: sessions`): median and 95th-percentile TTFT at each turn position, from the
//! summary's `turns.by_turn`. Prefill cost climbing with the context shows as a rising line;
//! a prefix cache that serves the history flattens it.

use super::chart::{Chart, Layer, Stroke};
use super::markup::id;
use crate::metrics::TurnSummary;

/// The chart; none when fewer than two positions have a TTFT.
pub fn ttft_by_turn(name: &str, turns: &TurnSummary) -> Option<Chart> {
    let series = |read: fn(&crate::metrics::Distribution) -> f64| -> Vec<(f64, f64)> {
        turns
            .by_turn
            .iter()
            .filter_map(|p| p.ttft_ms.as_ref().map(|d| (f64::from(p.turn), read(d))))
            .collect()
    };
    let (p50, p95) = (series(|d| d.p50), series(|d| d.p95));
    if p50.len() < 2 {
        return None;
    }
    Some(Chart {
        id: id(&format!("{name}-ttft-by-turn")),
        title: "TTFT by turn position".into(),
        x_label: "turn".into(),
        y_label: "TTFT (ms)".into(),
        layers: vec![
            Layer::Line {
                label: "p50".into(),
                points: p50,
                color: 0,
                stroke: Stroke::SolidWithPoints,
            },
            Layer::Line {
                label: "p95".into(),
                points: p95,
                color: 1,
                stroke: Stroke::Dashed,
            },
        ],
        y_from_zero: true,
        x_integer: true,
        y_integer: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::RequestRecord;

    fn summary(positions: u32) -> TurnSummary {
        let records: Vec<RequestRecord> = (1..=positions)
            .map(|turn| RequestRecord {
                id: u64::from(turn),
                conversation: Some(0),
                turn: Some(turn),
                ttft_ms: Some(10.0 * f64::from(turn)),
                ..RequestRecord::default()
            })
            .collect();
        TurnSummary::of(&records).expect("a summary")
    }

    #[test]
    fn the_chart_has_a_point_per_turn_position() {
        let chart = ttft_by_turn("t", &summary(4)).expect("a chart");
        let Layer::Line { points, .. } = &chart.layers[0] else {
            panic!("a line first");
        };
        assert_eq!(
            points,
            &[(1.0, 10.0), (2.0, 20.0), (3.0, 30.0), (4.0, 40.0)]
        );
        assert!(chart.x_integer);
    }

    #[test]
    fn one_position_is_no_chart() {
        assert!(ttft_by_turn("t", &summary(1)).is_none());
    }
}
