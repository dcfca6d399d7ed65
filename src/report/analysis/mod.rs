//! Automatic analysis: each load trial, and the run as a whole, judged PASS / WARNING /
//! CRITICAL on five quantities: error rate, E2EL p90, TTFT p50, drift and a stability score.
//! These are advice for the reader, beside the trial's verdict (which only targets, SLOs and
//! accuracy thresholds decide).
//!
//! A quantity is WARNING when it reaches its warning threshold (≥ for quantities where higher
//! is worse, ≤ for stability) and CRITICAL when it goes past its critical threshold (> or <).

pub mod contention;
pub mod prefill;
pub mod thresholds;

use std::fmt;

pub use thresholds::{Band, Direction, Thresholds};

use super::TrialReport;
use super::run::RunTrial;
use crate::metrics::Summary;

/// How a quantity fares against its thresholds, from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Not measured (no request succeeded, too few for drift, no streaming for TTFT).
    NotApplicable,
    /// Within the warning threshold.
    Pass,
    /// At or past the warning threshold.
    Warning,
    /// Past the critical threshold.
    Critical,
}

impl Level {
    /// `N/A`, `PASS`, `WARNING` or `CRITICAL`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::NotApplicable => "N/A",
            Level::Pass => "PASS",
            Level::Warning => "WARNING",
            Level::Critical => "CRITICAL",
        }
    }

    /// The level of `value` against `band`.
    pub fn judge(value: f64, band: Band, direction: Direction) -> Level {
        let (reaches_warning, past_critical) = match direction {
            Direction::HigherIsWorse => (value >= band.warning, value > band.critical),
            Direction::LowerIsWorse => (value <= band.warning, value < band.critical),
        };
        if past_critical {
            Level::Critical
        } else if reaches_warning {
            Level::Warning
        } else {
            Level::Pass
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A quantity the analysis judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantity {
    /// Failed requests ÷ requests sent.
    ErrorRate,
    /// 90th percentile of end-to-end latency.
    E2elP90,
    /// Median time to first token.
    TtftP50,
    /// The larger first-half vs second-half change of mean TTFT and of mean decode rate.
    Drift,
    /// max(0, 1 − (1.5 × error rate + 0.5 × E2EL coefficient of variation)).
    Stability,
}

impl Quantity {
    /// Every quantity, in report order.
    pub const ALL: [Quantity; 5] = [
        Quantity::ErrorRate,
        Quantity::E2elP90,
        Quantity::TtftP50,
        Quantity::Drift,
        Quantity::Stability,
    ];

    /// Its name in reports.
    pub fn label(self) -> &'static str {
        match self {
            Quantity::ErrorRate => "error rate",
            Quantity::E2elP90 => "E2EL p90",
            Quantity::TtftP50 => "TTFT p50",
            Quantity::Drift => "drift",
            Quantity::Stability => "stability",
        }
    }

    /// Its thresholds.
    pub fn band(self, thresholds: &Thresholds) -> (Band, Direction) {
        let (band, direction) = match self {
            Quantity::ErrorRate => (thresholds.error_rate, Direction::HigherIsWorse),
            Quantity::E2elP90 => (thresholds.e2el_p90_s, Direction::HigherIsWorse),
            Quantity::TtftP50 => (thresholds.ttft_p50_s, Direction::HigherIsWorse),
            Quantity::Drift => (thresholds.drift, Direction::HigherIsWorse),
            Quantity::Stability => (thresholds.stability, Direction::LowerIsWorse),
        };
        (band, direction)
    }

    /// Its value in a summary (seconds for latencies, fractions for rates), when measured.
    pub fn value(self, summary: &Summary) -> Option<f64> {
        match self {
            Quantity::ErrorRate => Some(summary.error_rate),
            Quantity::E2elP90 => summary.e2el_ms.map(|d| d.p90 / 1000.0),
            Quantity::TtftP50 => summary.ttft_ms.map(|d| d.p50 / 1000.0),
            Quantity::Drift => summary
                .drift
                .map(|d| d.ttft_change.abs().max(d.decode_change.abs())),
            Quantity::Stability => Some(stability(summary)),
        }
    }

    /// A value as reports print it: `2.50 %`, `812 ms`, `5.20 s`, `0.83`.
    pub fn format(self, value: f64) -> String {
        match self {
            Quantity::ErrorRate | Quantity::Drift => format!("{:.2} %", value * 100.0),
            Quantity::E2elP90 | Quantity::TtftP50 => seconds(value),
            Quantity::Stability => format!("{value:.2}"),
        }
    }

    /// The thresholds in words: `WARNING from 1.00 %, CRITICAL above 10.00 %`.
    pub fn rule(self, thresholds: &Thresholds) -> String {
        let (band, direction) = self.band(thresholds);
        let (warning, critical) = (self.format(band.warning), self.format(band.critical));
        match direction {
            Direction::HigherIsWorse => {
                format!("WARNING from {warning}, CRITICAL above {critical}")
            }
            Direction::LowerIsWorse => {
                format!("WARNING at {warning} or below, CRITICAL below {critical}")
            }
        }
    }
}

/// A duration in seconds as `812 ms` below a second, else `5.20 s`.
fn seconds(value: f64) -> String {
    if value < 1.0 {
        format!("{:.0} ms", value * 1000.0)
    } else {
        format!("{value:.2} s")
    }
}

/// The stability score of a summary: max(0, 1 − (1.5 × error rate + 0.5 × E2EL CV)), where
/// the CV (std / mean of end-to-end latency) is 0 when no request succeeded.
pub fn stability(summary: &Summary) -> f64 {
    let cv = summary.e2el_ms.map_or(0.0, |d| d.cv());
    (1.0 - (1.5 * summary.error_rate + 0.5 * cv)).max(0.0)
}

/// One quantity of one trial, judged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Finding {
    /// What was judged.
    pub quantity: Quantity,
    /// Its value, when measured.
    pub value: Option<f64>,
    /// How it fares.
    pub level: Level,
}

impl Finding {
    /// Judges one quantity of a summary.
    pub fn of(quantity: Quantity, summary: &Summary, thresholds: &Thresholds) -> Finding {
        let value = quantity.value(summary).filter(|v| v.is_finite());
        let (band, direction) = quantity.band(thresholds);
        Finding {
            quantity,
            value,
            level: value.map_or(Level::NotApplicable, |v| Level::judge(v, band, direction)),
        }
    }

    /// The value as reports print it, `-` when not measured.
    pub fn value_text(&self) -> String {
        self.value
            .map_or_else(|| "-".to_string(), |v| self.quantity.format(v))
    }
}

/// The analysis of one trial.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialAnalysis {
    /// One finding per quantity, in [`Quantity::ALL`] order.
    pub findings: Vec<Finding>,
}

impl TrialAnalysis {
    /// The most severe level of its findings.
    pub fn level(&self) -> Level {
        self.findings
            .iter()
            .map(|f| f.level)
            .max()
            .unwrap_or(Level::NotApplicable)
    }

    /// The finding of a quantity.
    pub fn finding(&self, quantity: Quantity) -> Option<&Finding> {
        self.findings.iter().find(|f| f.quantity == quantity)
    }
}

/// Analyses a trial's load. `None` for trials that sent no load (accuracy trials) or in which
/// no load request was sent (a server that could not be had).
pub fn analyse(report: &TrialReport, thresholds: &Thresholds) -> Option<TrialAnalysis> {
    let s = report
        .summary()
        .filter(|_| report.meta.kind.drives_load())?;
    if s.requests_ok + s.requests_failed == 0 {
        return None;
    }
    Some(TrialAnalysis {
        findings: Quantity::ALL
            .iter()
            .map(|q| Finding::of(*q, s, thresholds))
            .collect(),
    })
}

/// One quantity across the run: the worst trial, and how many trials reached each level.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFinding {
    /// What was judged.
    pub quantity: Quantity,
    /// The most severe level of any trial.
    pub level: Level,
    /// The trial with the worst value (`[kind] case::combination`) and that value.
    pub worst: Option<(String, f64)>,
    /// Trials at WARNING.
    pub warnings: usize,
    /// Trials at CRITICAL.
    pub criticals: usize,
    /// Trials in which it was measured.
    pub measured: usize,
}

/// The analysis of a whole run: each quantity's worst trial.
#[derive(Debug, Clone, PartialEq)]
pub struct RunAnalysis {
    /// One per quantity, in [`Quantity::ALL`] order.
    pub findings: Vec<RunFinding>,
    /// Trials analysed (those that sent load).
    pub trials: usize,
}

impl RunAnalysis {
    /// The most severe level of any quantity.
    pub fn level(&self) -> Level {
        self.findings
            .iter()
            .map(|f| f.level)
            .max()
            .unwrap_or(Level::NotApplicable)
    }
}

/// Analyses every load trial of a run and keeps, per quantity, the worst.
pub fn analyse_run(trials: &[RunTrial], thresholds: &Thresholds) -> RunAnalysis {
    let analysed: Vec<(String, TrialAnalysis)> = trials
        .iter()
        .filter_map(|t| analyse(&t.report, thresholds).map(|a| (t.name(), a)))
        .collect();
    let findings = Quantity::ALL
        .iter()
        .map(|&quantity| {
            let (_, direction) = quantity.band(thresholds);
            let mut finding = RunFinding {
                quantity,
                level: Level::NotApplicable,
                worst: None,
                warnings: 0,
                criticals: 0,
                measured: 0,
            };
            for (name, analysis) in &analysed {
                let Some(f) = analysis.finding(quantity) else {
                    continue;
                };
                let Some(value) = f.value else {
                    continue;
                };
                finding.measured += 1;
                finding.level = finding.level.max(f.level);
                match f.level {
                    Level::Warning => finding.warnings += 1,
                    Level::Critical => finding.criticals += 1,
                    _ => {}
                }
                let worse = finding.worst.as_ref().is_none_or(|(_, w)| match direction {
                    Direction::HigherIsWorse => value > *w,
                    Direction::LowerIsWorse => value < *w,
                });
                if worse {
                    finding.worst = Some((name.clone(), value));
                }
            }
            finding
        })
        .collect();
    RunAnalysis {
        findings,
        trials: analysed.len(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use rstest::rstest;

    use super::*;
    use crate::metrics::{Distribution, Drift};
    use crate::report::sample::{ReportBuilder, sample_report};

    fn judged(quantity: Quantity, value: f64) -> Level {
        let (band, direction) = quantity.band(&Thresholds::default());
        Level::judge(value, band, direction)
    }

    #[rstest]
    #[case(0.0, Level::Pass)]
    #[case(0.0099, Level::Pass)]
    #[case(0.01, Level::Warning)]
    #[case(0.10, Level::Warning)]
    #[case(0.1001, Level::Critical)]
    #[case(1.0, Level::Critical)]
    fn error_rate_passes_below_1_percent_and_is_critical_above_10(
        #[case] value: f64,
        #[case] level: Level,
    ) {
        assert_eq!(judged(Quantity::ErrorRate, value), level);
    }

    #[rstest]
    #[case(4.999, Level::Pass)]
    #[case(5.0, Level::Warning)]
    #[case(30.0, Level::Warning)]
    #[case(30.001, Level::Critical)]
    fn e2el_p90_warns_from_5_s_and_is_critical_above_30(#[case] value: f64, #[case] level: Level) {
        assert_eq!(judged(Quantity::E2elP90, value), level);
    }

    #[rstest]
    #[case(0.499, Level::Pass)]
    #[case(0.5, Level::Warning)]
    #[case(2.0, Level::Warning)]
    #[case(2.001, Level::Critical)]
    fn ttft_p50_passes_below_half_a_second_and_is_critical_above_2(
        #[case] value: f64,
        #[case] level: Level,
    ) {
        assert_eq!(judged(Quantity::TtftP50, value), level);
    }

    #[rstest]
    #[case(0.0999, Level::Pass)]
    #[case(0.10, Level::Warning)]
    #[case(0.30, Level::Warning)]
    #[case(0.3001, Level::Critical)]
    fn drift_warns_from_10_percent(#[case] value: f64, #[case] level: Level) {
        assert_eq!(judged(Quantity::Drift, value), level);
    }

    #[rstest]
    #[case(1.0, Level::Pass)]
    #[case(0.7001, Level::Pass)]
    #[case(0.7, Level::Warning)]
    #[case(0.4, Level::Warning)]
    #[case(0.3999, Level::Critical)]
    #[case(0.0, Level::Critical)]
    fn stability_warns_at_0_7_and_is_critical_below_0_4(#[case] value: f64, #[case] level: Level) {
        assert_eq!(judged(Quantity::Stability, value), level);
    }

    fn summary(error_rate: f64, e2el_mean: f64, e2el_std: f64) -> Summary {
        Summary {
            requests_ok: 10,
            requests_failed: 1,
            error_rate,
            e2el_ms: Some(Distribution {
                count: 10,
                mean: e2el_mean,
                std: e2el_std,
                ..Distribution::default()
            }),
            ..Summary::default()
        }
    }

    #[rstest]
    #[case::perfect(0.0, 100.0, 0.0, 1.0)]
    #[case::errors_only(0.2, 100.0, 0.0, 0.7)]
    #[case::spread_only(0.0, 100.0, 60.0, 0.7)]
    #[case::both(0.1, 100.0, 40.0, 0.65)]
    #[case::floored_at_zero(0.5, 100.0, 100.0, 0.0)]
    fn stability_weighs_errors_and_latency_spread(
        #[case] error_rate: f64,
        #[case] mean: f64,
        #[case] std: f64,
        #[case] expected: f64,
    ) {
        let score = stability(&summary(error_rate, mean, std));
        assert!((score - expected).abs() < 1e-12, "{score}");
    }

    #[test]
    fn all_failed_requests_are_critical_stability_with_no_latency() {
        let s = Summary {
            requests_failed: 4,
            error_rate: 1.0,
            ..Summary::default()
        };
        assert_eq!(stability(&s), 0.0);
        let f = Finding::of(Quantity::E2elP90, &s, &Thresholds::default());
        assert_eq!(
            (f.level, f.value_text()),
            (Level::NotApplicable, "-".into())
        );
    }

    #[test]
    fn drift_is_the_larger_change_either_way() {
        let mut s = summary(0.0, 100.0, 1.0);
        s.drift = Some(Drift {
            ttft_first_ms: 10.0,
            ttft_second_ms: 11.0,
            ttft_change: 0.1,
            decode_first_tok_s: 100.0,
            decode_second_tok_s: 60.0,
            decode_change: -0.4,
            flagged: true,
        });
        let f = Finding::of(Quantity::Drift, &s, &Thresholds::default());
        assert_eq!(f.value, Some(0.4));
        assert_eq!(f.level, Level::Critical);
        assert_eq!(f.value_text(), "40.00 %");
    }

    #[test]
    fn the_sample_trial_is_critical_on_errors() {
        let analysis = analyse(&sample_report(), &Thresholds::default()).expect("load trial");
        let levels: Vec<(Quantity, Level)> = analysis
            .findings
            .iter()
            .map(|f| (f.quantity, f.level))
            .collect();
        assert_eq!(
            levels,
            [
                (Quantity::ErrorRate, Level::Critical),
                (Quantity::E2elP90, Level::Pass),
                (Quantity::TtftP50, Level::Pass),
                (Quantity::Drift, Level::NotApplicable),
                (Quantity::Stability, Level::Warning),
            ]
        );
        assert_eq!(analysis.level(), Level::Critical);
    }

    #[test]
    fn accuracy_trials_and_trials_that_sent_nothing_are_not_analysed() {
        let accuracy = ReportBuilder::accuracy("demo-chat", "gsm8k_n40", None).build();
        assert_eq!(analyse(&accuracy, &Thresholds::default()), None);
        let mut nothing = sample_report();
        nothing.load_mut().expect("a load trial").summary = Summary::default();
        assert_eq!(analyse(&nothing, &Thresholds::default()), None);
    }

    #[test]
    fn the_run_keeps_each_quantitys_worst_trial() {
        let trial = |name: &str, error_rate: f64, p90_ms: f64| {
            let mut report = sample_report();
            report.meta.trial = name.into();
            let load = report.load_mut().expect("a load trial");
            load.summary.error_rate = error_rate;
            if let Some(e2el) = load.summary.e2el_ms.as_mut() {
                e2el.p90 = p90_ms;
            }
            RunTrial {
                report,
                dir: PathBuf::new(),
            }
        };
        let run = analyse_run(
            &[
                trial("a", 0.0, 6000.0),
                trial("b", 0.05, 100.0),
                trial("c", 0.0, 200.0),
            ],
            &Thresholds::default(),
        );
        assert_eq!(run.trials, 3);
        let errors = &run.findings[0];
        assert_eq!(errors.level, Level::Warning);
        assert_eq!(errors.worst, Some(("[perf] b".to_string(), 0.05)));
        assert_eq!(
            (errors.warnings, errors.criticals, errors.measured),
            (1, 0, 3)
        );
        let p90 = &run.findings[1];
        assert_eq!(p90.worst, Some(("[perf] a".to_string(), 6.0)));
        assert_eq!(p90.level, Level::Warning);
        assert_eq!(run.level(), Level::Warning);
    }

    #[test]
    fn rules_read_as_thresholds() {
        let t = Thresholds::default();
        assert_eq!(
            Quantity::ErrorRate.rule(&t),
            "WARNING from 1.00 %, CRITICAL above 10.00 %"
        );
        assert_eq!(
            Quantity::TtftP50.rule(&t),
            "WARNING from 500 ms, CRITICAL above 2.00 s"
        );
        assert_eq!(
            Quantity::Stability.rule(&t),
            "WARNING at 0.70 or below, CRITICAL below 0.40"
        );
    }
}
