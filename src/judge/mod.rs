//! The judge: every check a trial is held to, and the verdict they make.
//!
//! One module owns every rule: the run's own checks ([`run`]: requests succeeded, the server
//! stayed usable), the model spec's targets ([`targets`]), the case's SLOs ([`slo`]), the
//! accuracy thresholds and accuracy under load ([`accuracy`], with its [`Baseline`]), the
//! simulator study's checks ([`sim`]), and the `expect: fail` inversion
//! ([`Verdict::meets`]). Each check keeps a stable `rule` (no measured number in it) and a
//! `reason` with the measured values.

pub mod accuracy;
pub mod run;
pub mod sim;
pub mod slo;
pub mod targets;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::case::Expect;
pub use accuracy::{Baseline, NoBaseline};

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

    /// PASS when `ok`, FAIL otherwise.
    pub fn of(ok: bool) -> Status {
        if ok { Status::Pass } else { Status::Fail }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a check comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckSource {
    /// The run itself: requests succeeded, the server stayed up, answers came back in time.
    Run,
    /// The model spec's reference targets.
    Target,
    /// The case's SLOs.
    Slo,
    /// The accuracy task's threshold.
    Accuracy,
    /// The simulator study's checks.
    Sim,
    /// The comparison with a baseline run (`run --baseline`).
    Baseline,
}

impl CheckSource {
    /// `run`, `target`, `slo`, `accuracy`, `sim` or `baseline`.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckSource::Run => "run",
            CheckSource::Target => "target",
            CheckSource::Slo => "slo",
            CheckSource::Accuracy => "accuracy",
            CheckSource::Sim => "sim",
            CheckSource::Baseline => "baseline",
        }
    }
}

impl fmt::Display for CheckSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One judged quantity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// What was checked, such as `ttft_ms.mean (target)` or `ttft_ms.p95 < 500`.
    pub name: String,
    /// Where the check comes from.
    pub source: CheckSource,
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

impl Check {
    /// A check with this outcome and no numbers; add them with [`Check::measured`],
    /// [`Check::against`] and [`Check::with_ratio`].
    pub fn new(
        status: Status,
        source: CheckSource,
        name: impl Into<String>,
        rule: impl Into<String>,
        reason: impl Into<String>,
    ) -> Check {
        Check {
            name: name.into(),
            source,
            actual: None,
            target: None,
            ratio: None,
            rule: rule.into(),
            status,
            reason: reason.into(),
        }
    }

    /// A passed check.
    pub fn pass(
        source: CheckSource,
        name: impl Into<String>,
        rule: impl Into<String>,
        reason: impl Into<String>,
    ) -> Check {
        Check::new(Status::Pass, source, name, rule, reason)
    }

    /// A failed check.
    pub fn fail(
        source: CheckSource,
        name: impl Into<String>,
        rule: impl Into<String>,
        reason: impl Into<String>,
    ) -> Check {
        Check::new(Status::Fail, source, name, rule, reason)
    }

    /// A check that does not apply (reported, never failing).
    pub fn not_applicable(
        source: CheckSource,
        name: impl Into<String>,
        rule: impl Into<String>,
        reason: impl Into<String>,
    ) -> Check {
        Check::new(Status::NotApplicable, source, name, rule, reason)
    }

    /// With the measured value.
    pub fn measured(mut self, actual: Option<f64>) -> Check {
        self.actual = actual;
        self
    }

    /// With the value it is judged against.
    pub fn against(mut self, target: Option<f64>) -> Check {
        self.target = target;
        self
    }

    /// With actual / target.
    pub fn with_ratio(mut self, ratio: Option<f64>) -> Check {
        self.ratio = ratio;
        self
    }
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

    /// Whether the verdict is what the case expects, so that the trial passes as a test:
    /// anything but FAIL normally, FAIL when the case says `expect: fail`.
    pub fn meets(&self, expect: Expect) -> bool {
        (self.status == Status::Fail) == (expect == Expect::Fail)
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case(Status::Pass, Expect::Pass, true)]
    #[case(Status::NotApplicable, Expect::Pass, true)]
    #[case(Status::Fail, Expect::Pass, false)]
    #[case(Status::Fail, Expect::Fail, true)]
    #[case(Status::Pass, Expect::Fail, false)]
    #[case(Status::NotApplicable, Expect::Fail, false)]
    fn a_trial_passes_when_its_verdict_is_what_the_case_expects(
        #[case] status: Status,
        #[case] expect: Expect,
        #[case] passes: bool,
    ) {
        let check = Check::new(status, CheckSource::Run, "c", "r", "why");
        assert_eq!(Verdict::from_checks(vec![check]).meets(expect), passes);
    }

    #[test]
    fn sources_serialise_as_their_names() {
        let check = Check::pass(CheckSource::Slo, "n", "r", "why");
        let json = serde_json::to_string(&check).expect("json");
        assert!(json.contains(r#""source":"slo""#), "{json}");
        let back: Check = serde_json::from_str(&json).expect("back");
        assert_eq!(back, check);
    }
}
