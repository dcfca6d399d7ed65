//! The knee of a load sweep: where adding load stops buying throughput and only buys waiting.
//!
//! Over the trials of one sweep (same case, kind, mode, ISL and OSL; concurrency, users or
//! rate varying), ordered by load, the knee is the first load level whose output tok/s is
//! less than [`MIN_GAIN`] (10 %) above the previous level's while its median TTFT is higher
//! than the previous level's. Beyond it the server is saturated: requests queue.

/// The smallest relative gain in output tok/s from one load level to the next that still
/// counts as the load paying off.
pub const MIN_GAIN: f64 = 0.10;

/// One trial of a sweep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadPoint {
    /// Concurrency, users or requested rate.
    pub load: f64,
    /// Output tokens per second.
    pub output_tok_s: f64,
    /// Median TTFT, ms, when measured.
    pub ttft_p50_ms: Option<f64>,
}

/// The knee of `points` (in any order), if the sweep reaches one.
pub fn knee(points: &[LoadPoint]) -> Option<LoadPoint> {
    let mut sorted: Vec<LoadPoint> = points
        .iter()
        .copied()
        .filter(|p| p.load.is_finite() && p.output_tok_s.is_finite())
        .collect();
    sorted.sort_by(|a, b| a.load.total_cmp(&b.load));
    sorted.windows(2).find_map(|pair| {
        let (before, at) = (pair[0], pair[1]);
        let gain_is_small = before.output_tok_s > 0.0
            && (at.output_tok_s - before.output_tok_s) / before.output_tok_s < MIN_GAIN;
        let ttft_rises = matches!(
            (before.ttft_p50_ms, at.ttft_p50_ms),
            (Some(b), Some(a)) if a > b
        );
        (at.load > before.load && gain_is_small && ttft_rises).then_some(at)
    })
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn sweep(points: &[(f64, f64, f64)]) -> Vec<LoadPoint> {
        points
            .iter()
            .map(|&(load, output_tok_s, ttft)| LoadPoint {
                load,
                output_tok_s,
                ttft_p50_ms: Some(ttft),
            })
            .collect()
    }

    #[rstest]
    // The README's llama-server on 2 cores: 59 → 64 tok/s (+8.5 %) while TTFT doubles.
    #[case::smollm2(&[(1.0, 59.0, 470.0), (2.0, 64.0, 900.0), (4.0, 65.0, 2050.0)], Some(2.0))]
    #[case::still_scaling(&[(1.0, 100.0, 10.0), (2.0, 190.0, 11.0), (4.0, 350.0, 12.0)], None)]
    #[case::flat_but_ttft_steady(&[(1.0, 100.0, 10.0), (2.0, 101.0, 10.0)], None)]
    #[case::exactly_ten_percent(&[(1.0, 100.0, 10.0), (2.0, 110.0, 20.0)], None)]
    #[case::just_under(&[(1.0, 100.0, 10.0), (2.0, 109.9, 20.0)], Some(2.0))]
    #[case::throughput_drops(&[(1.0, 100.0, 10.0), (2.0, 180.0, 12.0), (4.0, 150.0, 40.0)], Some(4.0))]
    #[case::unordered(&[(4.0, 65.0, 2050.0), (1.0, 59.0, 470.0), (2.0, 64.0, 900.0)], Some(2.0))]
    #[case::one_point(&[(1.0, 100.0, 10.0)], None)]
    #[case::nothing_before(&[(1.0, 0.0, 10.0), (2.0, 0.0, 20.0)], None)]
    fn the_knee_is_the_first_level_where_throughput_stalls_and_ttft_rises(
        #[case] points: &[(f64, f64, f64)],
        #[case] expected: Option<f64>,
    ) {
        assert_eq!(knee(&sweep(points)).map(|p| p.load), expected);
    }

    #[test]
    fn no_ttft_means_no_knee() {
        let mut points = sweep(&[(1.0, 100.0, 10.0), (2.0, 100.0, 20.0)]);
        points[1].ttft_p50_ms = None;
        assert_eq!(knee(&points), None);
    }
}
