//! The cells the run summary and the HTML report share: one trial per row, the load it ran
//! and what it measured.

use super::TrialReport;
use super::table::{MS, NUM, Numbers};
use crate::case::Kind;
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

/// The load level as one cell: `4` (closed), `4 users`, `20 req/s`, `20 req/s (cap 4)`.
pub fn load_level(report: &TrialReport) -> String {
    match (report.mode.as_str(), report.rate) {
        ("open", Some(rate)) if report.concurrency > 0 => {
            format!("{rate} req/s (cap {})", report.concurrency)
        }
        ("open", Some(rate)) => format!("{rate} req/s"),
        ("users", _) => format!("{} users", report.concurrency),
        _ => report.concurrency.to_string(),
    }
}

/// The trial's load parameters: ISL, OSL, load level, prompts (accuracy trials have no
/// lengths; their prompts are the questions; sim trials have none of them).
pub fn parameters(report: &TrialReport) -> [String; 4] {
    if report.kind == Kind::Sim {
        return std::array::from_fn(|_| NONE.to_string());
    }
    let length = |n: u32| {
        if report.kind == Kind::Accuracy {
            NONE.to_string()
        } else {
            n.to_string()
        }
    };
    [
        length(report.isl),
        length(report.osl),
        load_level(report),
        report.num_prompts.to_string(),
    ]
}

/// The combination part of the trial name: `isl128_osl64_c4_n8` of `case::isl128_osl64_c4_n8`.
pub fn combination(report: &TrialReport) -> &str {
    super::trial_dir::slug(report)
}

/// The verdict as shown: `PASS`, `FAIL`, `NA`, or `FAIL (expected)` when the case expects it.
pub fn verdict(report: &TrialReport) -> String {
    let status = report.verdict.status.as_str();
    if report.expect_fail {
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
        .filter(|c| c.status == crate::verdict::Status::Fail)
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
    #[case("closed", None, 4, "4")]
    #[case("users", None, 8, "8 users")]
    #[case("open", Some(20.0), 0, "20 req/s")]
    #[case("open", Some(2.5), 4, "2.5 req/s (cap 4)")]
    fn the_load_level_names_its_mode(
        #[case] mode: &str,
        #[case] rate: Option<f64>,
        #[case] concurrency: u32,
        #[case] text: &str,
    ) {
        let mut report = sample_report();
        report.mode = mode.into();
        report.rate = rate;
        report.concurrency = concurrency;
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
