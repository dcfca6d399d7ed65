//! Verdicts: a trial's measurements against the model spec's targets and the case's SLOs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::case::{TargetSpec, Theoretical};
use crate::metrics::Summary;
use crate::metrics::summary::metric_names;
use crate::yaml::closest;

/// Outcome of one check, or of a whole trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// The check passed.
    #[serde(rename = "PASS")]
    Pass,
    /// The check failed.
    #[serde(rename = "FAIL")]
    Fail,
    /// No target applies.
    #[serde(rename = "NA")]
    NotApplicable,
}

impl Status {
    /// `PASS`, `FAIL` or `NA`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::NotApplicable => "NA",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One judged quantity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// What was checked, such as `ttft_ms.mean (target)` or `ttft_ms.p95 < 500`.
    pub name: String,
    /// Where the check comes from: `target` (model spec), `slo` (case) or `run`.
    pub source: String,
    /// The measured value, when there is one.
    pub actual: Option<f64>,
    /// The value it is judged against, when there is one.
    pub target: Option<f64>,
    /// actual / target for target checks.
    pub ratio: Option<f64>,
    /// What passing means, with no measured number in it (stable across runs).
    pub rule: String,
    /// Outcome.
    pub status: Status,
    /// Why, in words, with the measured values.
    pub reason: String,
}

/// All checks of a trial and the overall status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// FAIL if any check failed, PASS if any passed, NA otherwise.
    pub status: Status,
    /// Every check, in order: run, targets, SLOs.
    pub checks: Vec<Check>,
}

impl Verdict {
    /// Combines checks into a verdict.
    pub fn from_checks(checks: Vec<Check>) -> Verdict {
        let status = if checks.iter().any(|c| c.status == Status::Fail) {
            Status::Fail
        } else if checks.iter().any(|c| c.status == Status::Pass) {
            Status::Pass
        } else {
            Status::NotApplicable
        };
        Verdict { status, checks }
    }

    /// The reasons of the failed checks, one per entry.
    pub fn failure_reasons(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .map(|c| format!("{}: {}", c.name, c.reason))
            .collect()
    }
}

/// A comparison operator of an SLO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Op {
    fn holds(self, actual: f64, bound: f64) -> bool {
        match self {
            Op::Lt => actual < bound,
            Op::Le => actual <= bound,
            Op::Gt => actual > bound,
            Op::Ge => actual >= bound,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

/// A case's threshold on a summary metric: `ttft_ms.p95 < 500`, `error_rate < 0.01`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "String")]
pub struct Slo {
    /// Metric name as [`Summary::metric`] knows it.
    pub metric: String,
    /// Comparison.
    pub op: Op,
    /// Bound.
    pub value: f64,
}

/// Why an SLO expression could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SloError {
    /// Not of the form `metric op number`.
    #[error("`{0}` is not `metric op number` (op one of <, <=, >, >=), e.g. `ttft_ms.p95 < 500`")]
    Shape(String),
    /// The metric name is not known.
    #[error("unknown metric `{name}`{}", suggestion.as_ref().map(|s| format!(", did you mean `{s}`?")).unwrap_or_default())]
    UnknownMetric {
        /// The name given.
        name: String,
        /// The closest known name.
        suggestion: Option<String>,
    },
    /// The bound is not a number.
    #[error("`{0}` is not a number")]
    Number(String),
}

impl FromStr for Slo {
    type Err = SloError;

    fn from_str(text: &str) -> Result<Slo, SloError> {
        // Two-character operators first so `<=` is not read as `<`.
        let (metric, op, value) = [("<=", Op::Le), (">=", Op::Ge), ("<", Op::Lt), (">", Op::Gt)]
            .into_iter()
            .find_map(|(token, op)| {
                text.split_once(token)
                    .map(|(metric, value)| (metric.trim(), op, value.trim()))
            })
            .ok_or_else(|| SloError::Shape(text.to_string()))?;
        if metric.is_empty() || value.is_empty() {
            return Err(SloError::Shape(text.to_string()));
        }
        let names = metric_names();
        if !names.iter().any(|n| n == metric) {
            return Err(SloError::UnknownMetric {
                name: metric.to_string(),
                suggestion: closest(metric, &names),
            });
        }
        let value: f64 = value
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| SloError::Number(value.to_string()))?;
        Ok(Slo {
            metric: metric.to_string(),
            op,
            value,
        })
    }
}

impl TryFrom<String> for Slo {
    type Error = SloError;

    fn try_from(text: String) -> Result<Slo, SloError> {
        text.parse()
    }
}

impl fmt::Display for Slo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.metric, self.op.as_str(), self.value)
    }
}

impl Slo {
    /// Judges the summary against this SLO.
    pub fn check(&self, summary: &Summary) -> Check {
        let actual = summary.metric(&self.metric);
        let (status, reason) = match actual {
            None => (
                Status::Fail,
                "not measured (no successful request)".to_string(),
            ),
            Some(a) if self.op.holds(a, self.value) => (Status::Pass, format!("{a:.3} {self}")),
            Some(a) => (
                Status::Fail,
                format!(
                    "{a:.3} does not satisfy {} {}",
                    self.op.as_str(),
                    self.value
                ),
            ),
        };
        Check {
            name: self.to_string(),
            source: "slo".to_string(),
            actual,
            target: Some(self.value),
            ratio: None,
            rule: self.to_string(),
            status,
            reason,
        }
    }
}

/// Checks against a reference entry's theoretical targets at the case's tier and tolerance.
/// TTFT target = theoretical / tier (lower is better, PASS when ratio < 1 + tolerance);
/// throughput targets = theoretical × tier (PASS when ratio > 1 − tolerance).
pub fn target_checks(
    targets: Option<&Theoretical>,
    spec: &TargetSpec,
    summary: &Summary,
) -> Vec<Check> {
    let p = spec.tier.fraction();
    let ttft = summary.ttft_ms.map(|d| d.mean);
    let rows: [(&str, Option<f64>, Option<f64>, bool); 3] = [
        (
            "ttft_ms.mean",
            ttft,
            targets.and_then(|t| t.ttft_ms).map(|t| t / p),
            false,
        ),
        (
            "tput_user",
            summary.tpot_ms.map(|_| summary.tput_user),
            targets.and_then(|t| t.tput_user).map(|t| t * p),
            true,
        ),
        (
            "output_tok_s",
            (summary.requests_ok > 0).then_some(summary.output_tok_s),
            targets.and_then(|t| t.tput).map(|t| t * p),
            true,
        ),
    ];
    rows.into_iter()
        .map(|(name, actual, target, higher_is_better)| {
            target_check(name, actual, target, higher_is_better, spec)
        })
        .collect()
}

fn target_check(
    name: &str,
    actual: Option<f64>,
    target: Option<f64>,
    higher_is_better: bool,
    spec: &TargetSpec,
) -> Check {
    let tol = spec.tolerance;
    let tier = spec.tier.as_str();
    let rule = if higher_is_better {
        format!("actual/target > {:.2} ({tier} tier)", 1.0 - tol)
    } else {
        format!("actual/target < {:.2} ({tier} tier)", 1.0 + tol)
    };
    let (ratio, status, reason) = match (actual, target) {
        (_, None) => (
            None,
            Status::NotApplicable,
            "no reference target for this combination".to_string(),
        ),
        (None, Some(_)) => (None, Status::Fail, "not measured".to_string()),
        (Some(a), Some(t)) if t > 0.0 => {
            let ratio = a / t;
            let ok = if higher_is_better {
                ratio > 1.0 - tol
            } else {
                ratio < 1.0 + tol
            };
            let status = if ok { Status::Pass } else { Status::Fail };
            (
                Some(ratio),
                status,
                format!("{a:.3} vs target {t:.3}: ratio {ratio:.3}, needs {rule}"),
            )
        }
        (Some(_), Some(t)) => (
            None,
            Status::NotApplicable,
            format!("target {t} is not positive"),
        ),
    };
    Check {
        name: format!("{name} (target)"),
        source: "target".to_string(),
        actual,
        target,
        ratio,
        rule: if target.is_some() {
            rule
        } else {
            "no target".to_string()
        },
        status,
        reason,
    }
}

/// The run's own sanity check: a load phase in which no request succeeded fails.
pub fn run_check(summary: &Summary) -> Check {
    let total = summary.requests_ok + summary.requests_failed;
    let (status, reason) = if summary.requests_ok > 0 {
        (
            Status::Pass,
            format!("{} of {total} requests succeeded", summary.requests_ok),
        )
    } else {
        let classes: Vec<String> = summary
            .errors
            .iter()
            .map(|(class, n)| format!("{} {n}", class.as_str()))
            .collect();
        (
            Status::Fail,
            format!(
                "no request succeeded out of {total} ({})",
                classes.join(", ")
            ),
        )
    };
    Check {
        name: "requests".to_string(),
        source: "run".to_string(),
        actual: Some(summary.requests_ok as f64),
        target: None,
        ratio: None,
        rule: "at least one request succeeds".to_string(),
        status,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::case::Tier;
    use crate::metrics::{Distribution, ErrorClass};

    fn summary(ttft_mean: f64, tput_user: f64, output_tok_s: f64) -> Summary {
        Summary {
            requests_ok: 4,
            ttft_ms: Some(Distribution {
                count: 4,
                mean: ttft_mean,
                p95: ttft_mean * 1.5,
                ..Default::default()
            }),
            tpot_ms: Some(Distribution {
                count: 4,
                mean: 1000.0 / tput_user,
                ..Default::default()
            }),
            tput_user,
            output_tok_s,
            ..Default::default()
        }
    }

    #[rstest]
    #[case("ttft_ms.p95 < 500", "ttft_ms.p95", Op::Lt, 500.0)]
    #[case("error_rate<=0.01", "error_rate", Op::Le, 0.01)]
    #[case(" output_tok_s > 100 ", "output_tok_s", Op::Gt, 100.0)]
    #[case("tput_user >= 1e2", "tput_user", Op::Ge, 100.0)]
    fn slo_expressions_parse(
        #[case] text: &str,
        #[case] metric: &str,
        #[case] op: Op,
        #[case] value: f64,
    ) {
        let slo: Slo = text.parse().expect("valid");
        assert_eq!(
            (slo.metric.as_str(), slo.op, slo.value),
            (metric, op, value)
        );
    }

    #[rstest]
    #[case("ttft_ms.p95", "is not `metric op number`")]
    #[case("ttft_ms.p59 < 3", "did you mean `ttft_ms.p95`?")]
    #[case("eror_rate < 3", "did you mean `error_rate`?")]
    #[case("ttft_ms.p95 < fast", "`fast` is not a number")]
    #[case("< 3", "is not `metric op number`")]
    fn bad_slo_expressions_say_why(#[case] text: &str, #[case] message: &str) {
        let err = text.parse::<Slo>().expect_err("invalid");
        assert!(err.to_string().contains(message), "{err}");
    }

    #[rstest]
    // theoretical TTFT 100 ms at the functional tier (0.10) → target 1000 ms.
    #[case(Tier::Functional, 0.10, 1050.0, Status::Pass)]
    #[case(Tier::Functional, 0.10, 1100.0, Status::Fail)]
    #[case(Tier::Target, 0.10, 109.0, Status::Pass)]
    #[case(Tier::Target, 0.10, 110.0, Status::Fail)]
    #[case(Tier::Complete, 0.0, 199.0, Status::Pass)]
    fn ttft_target_scales_by_tier(
        #[case] tier: Tier,
        #[case] tolerance: f64,
        #[case] measured: f64,
        #[case] expected: Status,
    ) {
        let theoretical = Theoretical {
            ttft_ms: Some(100.0),
            tput_user: None,
            tput: None,
        };
        let spec = TargetSpec { tier, tolerance };
        let checks = target_checks(Some(&theoretical), &spec, &summary(measured, 50.0, 50.0));
        assert_eq!(checks[0].status, expected, "{:?}", checks[0]);
        assert_eq!(checks[1].status, Status::NotApplicable);
    }

    #[rstest]
    // theoretical 200 tok/s at the complete tier (0.5) → target 100 tok/s, tolerance 10 %.
    #[case(91.0, Status::Pass)]
    #[case(90.0, Status::Fail)]
    fn throughput_targets_scale_by_tier(#[case] measured: f64, #[case] expected: Status) {
        let theoretical = Theoretical {
            ttft_ms: None,
            tput_user: Some(200.0),
            tput: Some(200.0),
        };
        let spec = TargetSpec {
            tier: Tier::Complete,
            tolerance: 0.10,
        };
        let checks = target_checks(
            Some(&theoretical),
            &spec,
            &summary(10.0, measured, measured),
        );
        assert_eq!(checks[1].status, expected);
        assert_eq!(checks[2].status, expected);
    }

    #[test]
    fn no_targets_is_not_applicable_and_any_failure_fails_the_verdict() {
        let s = summary(10.0, 50.0, 50.0);
        let mut checks = target_checks(None, &TargetSpec::default(), &s);
        assert!(checks.iter().all(|c| c.status == Status::NotApplicable));
        assert_eq!(
            Verdict::from_checks(checks.clone()).status,
            Status::NotApplicable
        );
        checks.push(run_check(&s));
        assert_eq!(Verdict::from_checks(checks.clone()).status, Status::Pass);
        let slo: Slo = "ttft_ms.p95 < 10".parse().expect("valid");
        checks.push(slo.check(&s));
        let verdict = Verdict::from_checks(checks);
        assert_eq!(verdict.status, Status::Fail);
        assert_eq!(verdict.failure_reasons().len(), 1);
    }

    #[test]
    fn a_run_with_no_success_fails_and_names_the_error_classes() {
        let mut s = Summary {
            requests_failed: 3,
            ..Default::default()
        };
        s.errors.insert(ErrorClass::Connect, 3);
        let check = run_check(&s);
        assert_eq!(check.status, Status::Fail);
        assert!(check.reason.contains("connect 3"), "{}", check.reason);
        let slo: Slo = "ttft_ms.p95 < 10".parse().expect("valid");
        assert_eq!(slo.check(&s).status, Status::Fail);
    }
}
