//! Judging an accuracy score against the case's threshold.

use statrs::distribution::{ContinuousCDF, Normal};

use crate::case::{AccuracyThreshold, ThresholdKind};

/// The outcome of judging a score: the threshold it was held to and why it passed or failed.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    /// The score the actual score had to reach (or stay under when lower is better), points.
    pub threshold: f64,
    /// `hypothesis_test` only: the minimum detectable effect −(z_α + z_β)·√(2σ²/n), points.
    pub theta: Option<f64>,
    /// Whether the score passed.
    pub passed: bool,
    /// The rule, without the measured score, such as
    /// `score ≥ 91.34 (hypothesis test: ref 94.54, α 0.05, σ 50, n 1319)`.
    pub rule: String,
    /// The outcome with the measured score.
    pub reason: String,
}

/// Φ⁻¹, the standard normal quantile.
fn z(p: f64) -> f64 {
    Normal::standard().inverse_cdf(p)
}

impl AccuracyThreshold {
    /// Judges a score of `actual_points` (0–100) measured on `n_scored` samples.
    ///
    /// - `absolute`: passes when the score dropped (or, lower being better, rose) by at most
    ///   `tolerance` points from `expected_value`.
    /// - `relative`: passes when |actual − expected| / |expected| ≤ `tolerance` (a ratio), either
    ///   way; the reported threshold is the bound on the side that matters.
    /// - `hypothesis_test`: threshold = ref + Φ⁻¹(α)·√(2σ²/n) (ref − … when lower is better),
    ///   with n the `n` override or `n_scored`.
    ///
    /// Nothing scored always fails.
    pub fn judge(&self, actual_points: f64, n_scored: usize) -> Judgement {
        let expected = self.expected_value.points();
        let higher = self.higher_is_better;
        let bound_word = if higher { "≥" } else { "≤" };
        let mut judgement = match self.kind {
            ThresholdKind::Absolute => {
                let tolerance = self.tolerance.map_or(0.0, |t| t.points());
                let (threshold, passed) = if higher {
                    (expected - tolerance, expected - actual_points <= tolerance)
                } else {
                    (expected + tolerance, actual_points - expected <= tolerance)
                };
                let rule = format!(
                    "score {bound_word} {threshold:.2} (absolute: ref {expected:.2}, tolerance {tolerance:.2} points)"
                );
                verdict(threshold, None, passed, rule, actual_points)
            }
            ThresholdKind::Relative => {
                let ratio = self.tolerance.map_or(0.0, |t| t.points() / 100.0);
                let (low, high) = (expected * (1.0 - ratio), expected * (1.0 + ratio));
                let threshold = if higher { low } else { high };
                let rule = format!(
                    "score within {:.2} % of ref {expected:.2} ({low:.2} to {high:.2})",
                    ratio * 100.0
                );
                let (passed, reason) = if expected == 0.0 {
                    let passed = actual_points == 0.0;
                    let reason = if passed {
                        "score 0.00 equals the reference 0.00".to_string()
                    } else {
                        format!(
                            "score {actual_points:.2} differs from a reference of 0, which no relative tolerance allows"
                        )
                    };
                    (passed, reason)
                } else {
                    let distance = (actual_points - expected).abs() / expected.abs();
                    let passed = distance <= ratio;
                    let reason = format!(
                        "score {actual_points:.2} is {} {:.2} % from ref {expected:.2} (allowed {:.2} %)",
                        if passed { "within" } else { "more than" },
                        distance * 100.0,
                        ratio * 100.0
                    );
                    (passed, reason)
                };
                Judgement {
                    threshold,
                    theta: None,
                    passed,
                    rule,
                    reason,
                }
            }
            ThresholdKind::HypothesisTest => {
                let n = self.n.map_or(n_scored, |n| n as usize);
                let (alpha, beta, sigma) = (self.alpha(), self.beta(), self.sigma());
                let described =
                    format!("hypothesis test: ref {expected:.2}, α {alpha}, σ {sigma}, n {n}");
                if n == 0 {
                    let rule = format!("score {bound_word} ref {expected:.2} ({described})");
                    verdict(expected, None, false, rule, actual_points)
                } else {
                    let spread = (2.0 * sigma * sigma / n as f64).sqrt();
                    let margin = z(alpha) * spread;
                    let theta = -(z(alpha) + z(beta)) * spread;
                    let (threshold, passed) = if higher {
                        let t = expected + margin;
                        (t, actual_points >= t)
                    } else {
                        let t = expected - margin;
                        (t, actual_points <= t)
                    };
                    let rule = format!("score {bound_word} {threshold:.2} ({described})");
                    let mut judgement =
                        verdict(threshold, Some(theta), passed, rule, actual_points);
                    judgement.reason.push_str(&format!(
                        "; a drop of {theta:.2} points would be detected with probability {}",
                        1.0 - beta
                    ));
                    judgement
                }
            }
        };
        if n_scored == 0 {
            judgement.passed = false;
            judgement.reason = "no samples scored".to_string();
        }
        judgement
    }
}

/// A judgement against a one-sided bound, with a reason such as `score 92.10 ≥ 91.34`.
fn verdict(
    threshold: f64,
    theta: Option<f64>,
    passed: bool,
    rule: String,
    actual: f64,
) -> Judgement {
    let relation = if actual >= threshold { "≥" } else { "<" };
    let reason = format!(
        "score {actual:.2} {relation} {threshold:.2}: {}",
        if passed { "pass" } else { "fail" }
    );
    Judgement {
        threshold,
        theta,
        passed,
        rule,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use rstest::rstest;

    use super::*;
    use crate::case::load::parse_yaml;

    fn threshold(yaml: &str) -> AccuracyThreshold {
        parse_yaml(Path::new("t.yaml"), yaml).expect("threshold parses")
    }

    #[test]
    fn hypothesis_test_reference_numbers() {
        let t = threshold("kind: hypothesis_test\nexpected_value: 94.54\n");
        let j = t.judge(92.0, 1319);
        assert_eq!(format!("{:.2}", j.threshold), "91.34");
        let theta = j.theta.expect("theta");
        assert!((theta - 4.84).abs() < 0.01, "{theta}");
        assert!(j.passed);
        assert_eq!(
            j.rule,
            "score ≥ 91.34 (hypothesis test: ref 94.54, α 0.05, σ 50, n 1319)"
        );
        assert!(
            j.reason.starts_with("score 92.00 ≥ 91.34: pass"),
            "{}",
            j.reason
        );
        assert!(!t.judge(91.3, 1319).passed);
    }

    #[rstest]
    // absolute, higher is better: threshold 83.
    #[case::absolute_pass(
        "kind: absolute\nexpected_value: 85\ntolerance: 2\n",
        83.0,
        100,
        true,
        83.0
    )]
    #[case::absolute_fail(
        "kind: absolute\nexpected_value: 85\ntolerance: 2\n",
        82.9,
        100,
        false,
        83.0
    )]
    #[case::absolute_higher_is_fine(
        "kind: absolute\nexpected_value: 85\ntolerance: 2\n",
        99.0,
        100,
        true,
        83.0
    )]
    // absolute, lower is better: threshold 87.
    #[case::absolute_lower_pass(
        "kind: absolute\nexpected_value: 85\ntolerance: 2\nhigher_is_better: false\n",
        87.0,
        100,
        true,
        87.0
    )]
    #[case::absolute_lower_fail(
        "kind: absolute\nexpected_value: 85\ntolerance: 2\nhigher_is_better: false\n",
        87.5,
        100,
        false,
        87.0
    )]
    #[case::absolute_lower_less_is_fine(
        "kind: absolute\nexpected_value: 85\ntolerance: 2\nhigher_is_better: false\n",
        10.0,
        100,
        true,
        87.0
    )]
    // relative: within 10 % either way (80 ± 8).
    #[case::relative_pass(
        "kind: relative\nexpected_value: 80\ntolerance: 10%\n",
        72.0,
        100,
        true,
        72.0
    )]
    #[case::relative_fail_low(
        "kind: relative\nexpected_value: 80\ntolerance: 0.1\n",
        71.9,
        100,
        false,
        72.0
    )]
    #[case::relative_fail_high(
        "kind: relative\nexpected_value: 80\ntolerance: 10\n",
        88.1,
        100,
        false,
        72.0
    )]
    #[case::relative_lower_bound_reported(
        "kind: relative\nexpected_value: 80\ntolerance: 10%\nhigher_is_better: false\n",
        88.0,
        100,
        true,
        88.0
    )]
    #[case::relative_zero_reference(
        "kind: relative\nexpected_value: 0\ntolerance: 10%\n",
        0.5,
        100,
        false,
        0.0
    )]
    #[case::relative_zero_reference_zero_score(
        "kind: relative\nexpected_value: 0\ntolerance: 10%\n",
        0.0,
        100,
        true,
        0.0
    )]
    // hypothesis test, lower is better: mirrored.
    #[case::test_lower_pass(
        "kind: hypothesis_test\nexpected_value: 94.54\nhigher_is_better: false\n",
        97.0,
        1319,
        true,
        97.74
    )]
    #[case::test_lower_fail(
        "kind: hypothesis_test\nexpected_value: 94.54\nhigher_is_better: false\n",
        97.8,
        1319,
        false,
        97.74
    )]
    // the n override replaces the count scored.
    #[case::test_n_override(
        "kind: hypothesis_test\nexpected_value: 94.54\nn: 1319\n",
        92.0,
        50,
        true,
        91.34
    )]
    // fractions are fractions: 0.85 and 0.05 are 85 and 5 points, so 80 is a fail.
    #[case::units_fraction(
        "kind: hypothesis_test\nexpected_value: 0.85\nsigma: 0.05\n",
        80.0,
        100,
        false,
        83.84
    )]
    #[case::units_percent(
        "kind: hypothesis_test\nexpected_value: 85%\nsigma: 5%\n",
        84.0,
        100,
        true,
        83.84
    )]
    #[case::units_absolute_fraction(
        "kind: absolute\nexpected_value: 0.85\ntolerance: 0.02\n",
        82.0,
        100,
        false,
        83.0
    )]
    fn judgements(
        #[case] yaml: &str,
        #[case] actual: f64,
        #[case] n_scored: usize,
        #[case] passed: bool,
        #[case] threshold_points: f64,
    ) {
        let j = threshold(yaml).judge(actual, n_scored);
        assert_eq!(j.passed, passed, "{j:?}");
        assert!(
            (j.threshold - threshold_points).abs() < 0.005,
            "threshold {} vs {threshold_points}",
            j.threshold
        );
        assert!(j.reason.contains(&format!("{actual:.2}")), "{}", j.reason);
    }

    #[rstest]
    #[case::absolute("kind: absolute\nexpected_value: 85\ntolerance: 2\n")]
    #[case::relative("kind: relative\nexpected_value: 85\ntolerance: 2%\n")]
    #[case::hypothesis_test("kind: hypothesis_test\nexpected_value: 85\n")]
    #[case::hypothesis_test_with_n("kind: hypothesis_test\nexpected_value: 85\nn: 100\n")]
    fn nothing_scored_fails(#[case] yaml: &str) {
        let j = threshold(yaml).judge(100.0, 0);
        assert!(!j.passed);
        assert_eq!(j.reason, "no samples scored");
        assert!(j.threshold.is_finite());
    }

    #[test]
    fn theta_only_for_the_hypothesis_test() {
        let j = threshold("kind: absolute\nexpected_value: 85\ntolerance: 2\n").judge(84.0, 10);
        assert_eq!(j.theta, None);
        assert_eq!(
            j.rule,
            "score ≥ 83.00 (absolute: ref 85.00, tolerance 2.00 points)"
        );
        let j = threshold("kind: relative\nexpected_value: 80\ntolerance: 5%\n").judge(81.0, 10);
        assert_eq!(j.rule, "score within 5.00 % of ref 80.00 (76.00 to 84.00)");
        assert_eq!(
            j.reason,
            "score 81.00 is within 1.25 % from ref 80.00 (allowed 5.00 %)"
        );
    }
}
