//! The cells the run summary and the HTML report share: one trial per row, the load it ran
//! and what it measured.

use super::table::{MS, NUM, Numbers};
use super::{LoadShape, TrialBody, TrialReport};
use crate::metrics::Distribution;

/// Shown for a value that does not exist.
pub const NONE: &str = "-";

/// The latency metrics of the detailed tables: label and summary name.
pub const LATENCIES: [(&str, &str); 4] = [
    ("TTFT", "ttft_ms"),
    ("TPOT", "tpot_ms"),
    ("ITL", "itl_ms"),
    ("E2EL", "e2el_ms"),
];

/// The statistics of the detailed tables.
pub const DETAIL_STATS: [&str; 6] = ["mean", "p5", "p25", "p50", "p95", "p99"];

/// A measured number, or its placeholder.
pub fn measured(numbers: Numbers, placeholder: &str, text: impl FnOnce() -> String) -> String {
    match numbers {
        Numbers::Measured => text(),
        Numbers::Redacted => placeholder.to_string(),
    }
}

/// A number with three decimals, or its placeholder.
pub fn number(numbers: Numbers, value: f64) -> String {
    measured(numbers, NUM, || format!("{value:.3}"))
}

/// A latency statistic in ms, `-` when not measured, or its placeholder. Whether a latency
/// was measured can depend on timing, so a redacted cell never says.
pub fn latency(numbers: Numbers, distribution: Option<&Distribution>, stat: &str) -> String {
    match numbers {
        Numbers::Redacted => MS.to_string(),
        Numbers::Measured => distribution
            .and_then(|d| d.stat(stat))
            .map_or_else(|| NONE.to_string(), |v| format!("{v:.3}")),
    }
}

/// The load level as one cell: `4` (closed), `4 users`, `20 req/s`, `20 req/s (cap 4)`; an
/// accuracy trial's questions in flight; `-` for a sim trial.
pub fn load_level(report: &TrialReport) -> String {
    match &report.body {
        TrialBody::Load(load) => shape_level(load.shape),
        TrialBody::Accuracy(accuracy) => accuracy.concurrency.to_string(),
        TrialBody::Sim(_) => NONE.to_string(),
    }
}

/// A load shape's level: `4` (closed), `4 users`, `20 req/s`, `20 req/s (cap 4)`, `same
/// prompt` (consistency).
pub fn shape_level(shape: LoadShape) -> String {
    match shape {
        LoadShape::Closed { concurrency } => concurrency.to_string(),
        LoadShape::Users { users } => format!("{users} users"),
        LoadShape::Consistency => "same prompt".to_string(),
        LoadShape::Sessions { rate } => format!("{rate} sessions/s"),
        LoadShape::Open {
            rate,
            max_in_flight: Some(cap),
        } => format!("{rate} req/s (cap {cap})"),
        LoadShape::Open {
            rate,
            max_in_flight: None,
        } => format!("{rate} req/s"),
    }
}

/// The trial's load parameters: ISL, OSL, load level, prompts (accuracy trials have no
/// lengths; their prompts are the questions; sim trials have none of them).
pub fn parameters(report: &TrialReport) -> [String; 4] {
    match &report.body {
        TrialBody::Sim(_) => std::array::from_fn(|_| NONE.to_string()),
        TrialBody::Accuracy(_) => [
            NONE.to_string(),
            NONE.to_string(),
            load_level(report),
            report.listing().num_prompts.to_string(),
        ],
        TrialBody::Load(load) => [
            load.isl.to_string(),
            load.osl.to_string(),
            load_level(report),
            load.num_prompts.to_string(),
        ],
    }
}

/// The combination part of the trial name: `isl128_osl64_c4_n8` of `case::isl128_osl64_c4_n8`.
pub fn combination(report: &TrialReport) -> &str {
    super::trial_dir::slug(report)
}

/// The verdict as shown: `PASS`, `FAIL`, `NA`, or `FAIL (expected)` when the case expects it.
pub fn verdict(report: &TrialReport) -> String {
    let status = report.verdict.status.as_str();
    if report.expects_failure() {
        format!("{status} (expected FAIL)")
    } else {
        status.to_string()
    }
}

/// Why the trial failed: its failed checks' reasons, or in redacted mode their rules (which
/// hold no measured number); `-` when none failed.
pub fn failure_reasons(report: &TrialReport, numbers: Numbers) -> String {
    let reasons: Vec<String> = report
        .verdict
        .checks
        .iter()
        .filter(|c| c.status == crate::judge::Status::Fail)
        .map(|c| match numbers {
            Numbers::Measured => format!("{}: {}", c.name, c.reason),
            Numbers::Redacted => format!("{}: {}", c.name, c.rule),
        })
        .collect();
    if reasons.is_empty() {
        NONE.to_string()
    } else {
        reasons.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::report::sample::sample_report;

    #[rstest]
    #[case(LoadShape::Closed { concurrency: 4 }, "4")]
    #[case(LoadShape::Users { users: 8 }, "8 users")]
    #[case(LoadShape::Open { rate: 20.0, max_in_flight: None }, "20 req/s")]
    #[case(LoadShape::Open { rate: 2.5, max_in_flight: Some(4) }, "2.5 req/s (cap 4)")]
    fn the_load_level_names_its_mode(#[case] shape: LoadShape, #[case] text: &str) {
        let mut report = sample_report();
        if let Some(load) = report.load_mut() {
            load.shape = shape;
        }
        assert_eq!(load_level(&report), text);
    }

    #[test]
    fn failure_reasons_are_measured_or_rules() {
        let report = sample_report();
        assert_eq!(
            failure_reasons(&report, Numbers::Measured),
            "ttft_ms.p95 < 50: 57.644 does not satisfy < 50"
        );
        assert_eq!(
            failure_reasons(&report, Numbers::Redacted),
            "ttft_ms.p95 < 50: ttft_ms.p95 < 50"
        );
    }
}
