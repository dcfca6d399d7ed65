//! The run's own checks: requests succeeded, the server stayed usable; and the checks of one
//! load phase put together.

use super::{Check, CheckSource, slo, targets};
use crate::case::{Slo, TargetSpec, Theoretical};
use crate::metrics::Summary;

/// The checks of one load phase, in report order: the run's own, the model spec's targets
/// (none when `targets` is `None`, e.g. an open loop that has no concurrency to match), then
/// the case's SLOs.
pub fn load_checks(
    summary: &Summary,
    targets: Option<&Theoretical>,
    target_spec: &TargetSpec,
    slos: &[Slo],
) -> Vec<Check> {
    let mut checks = vec![requests_check(summary)];
    checks.extend(targets::target_checks(targets, target_spec, summary));
    checks.extend(slos.iter().map(|s| slo::check(s, summary)));
    checks
}

/// A load phase in which no request succeeded fails.
pub fn requests_check(summary: &Summary) -> Check {
    let total = summary.requests_ok + summary.requests_failed;
    let rule = "at least one request succeeds";
    let check = if summary.requests_ok > 0 {
        Check::pass(
            CheckSource::Run,
            "requests",
            rule,
            format!("{} of {total} requests succeeded", summary.requests_ok),
        )
    } else {
        let classes: Vec<String> = summary
            .errors
            .iter()
            .map(|(class, n)| format!("{} {n}", class.as_str()))
            .collect();
        Check::fail(
            CheckSource::Run,
            "requests",
            rule,
            format!(
                "no request succeeded out of {total} ({})",
                classes.join(", ")
            ),
        )
    };
    check.measured(Some(summary.requests_ok as f64))
}

/// The server could not be had or used (it did not start, died, or refused the setup).
pub fn server_unusable(reason: impl Into<String>) -> Check {
    Check::fail(CheckSource::Run, "server", "the server is usable", reason)
}

/// Something that happened to the server that the report must say without failing the trial
/// (a spawned server that had died and was started again).
pub fn server_restarted(reason: impl Into<String>) -> Check {
    Check::not_applicable(
        CheckSource::Run,
        "server restarted",
        "a server that died between trials is started again",
        reason,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::targets::tests::summary;
    use crate::judge::{Status, Verdict};
    use crate::metrics::ErrorClass;

    #[test]
    fn no_targets_is_not_applicable_and_any_failure_fails_the_verdict() {
        let s = summary(10.0, 50.0, 50.0);
        let mut checks = targets::target_checks(None, &TargetSpec::default(), &s);
        assert!(checks.iter().all(|c| c.status == Status::NotApplicable));
        assert_eq!(
            Verdict::from_checks(checks.clone()).status,
            Status::NotApplicable
        );
        checks.push(requests_check(&s));
        assert_eq!(Verdict::from_checks(checks.clone()).status, Status::Pass);
        let slo: Slo = "ttft_ms.p95 < 10".parse().expect("valid");
        checks.push(slo::check(&slo, &s));
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
        let check = requests_check(&s);
        assert_eq!(check.status, Status::Fail);
        assert!(check.reason.contains("connect 3"), "{}", check.reason);
        let slo: Slo = "ttft_ms.p95 < 10".parse().expect("valid");
        assert_eq!(slo::check(&slo, &s).status, Status::Fail);
    }

    #[test]
    fn load_checks_come_in_report_order() {
        let s = summary(10.0, 50.0, 50.0);
        let slos: Vec<Slo> = vec!["error_rate < 0.01".parse().expect("valid")];
        let checks = load_checks(&s, None, &TargetSpec::default(), &slos);
        let sources: Vec<_> = checks.iter().map(|c| c.source).collect();
        assert_eq!(
            sources,
            [
                CheckSource::Run,
                CheckSource::Target,
                CheckSource::Target,
                CheckSource::Target,
                CheckSource::Slo
            ]
        );
    }
}
