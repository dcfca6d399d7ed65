//! The run's own checks: requests succeeded, failures stayed within the error budget, the
//! client did not run out of resources, the server stayed usable; and the checks of one load
//! phase put together.

use super::{Check, CheckSource, slo, targets};
use crate::case::{Score, Slo, TargetSpec, Theoretical};
use crate::metrics::{ErrorClass, RequestRecord, Summary};

/// What one load phase is judged on besides its summary.
#[derive(Debug, Clone, Copy)]
pub struct LoadRules<'a> {
    /// The model spec's reference targets at this point (none for an open loop, which has no
    /// concurrency to match).
    pub targets: Option<&'a Theoretical>,
    /// The tier and tolerance of those targets.
    pub target_spec: &'a TargetSpec,
    /// The case's SLOs.
    pub slos: &'a [Slo],
    /// The share of measured requests allowed to fail.
    pub error_budget: Score,
}

/// The checks of one load phase, in report order: the run's own (requests succeeded, the
/// error budget, then — only when they happened — the client running out of resources and
/// the server that stopped answering), the model spec's targets, then the case's SLOs.
pub fn load_checks(summary: &Summary, records: &[RequestRecord], rules: &LoadRules) -> Vec<Check> {
    load_checks_of(summary, &RecordFacts::of(records), rules)
}

/// [`load_checks`] from the facts of the records rather than the records (a streamed load
/// keeps only these).
pub fn load_checks_of(summary: &Summary, facts: &RecordFacts, rules: &LoadRules) -> Vec<Check> {
    let mut checks = vec![
        requests_check(summary),
        error_budget_check(summary, rules.error_budget),
    ];
    checks.extend(client_check_of(
        summary,
        facts.first_client_error.as_deref(),
    ));
    checks.extend(stopped_answering_of(facts));
    checks.extend(targets::target_checks(
        rules.targets,
        rules.target_spec,
        summary,
    ));
    checks.extend(rules.slos.iter().map(|s| slo::check(s, summary)));
    checks
}

/// What the run's checks read of a load's records besides its summary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordFacts {
    /// The detail of the first (lowest id) request that failed with class `client`.
    pub first_client_error: Option<String>,
    /// Requests the server answered (with any status).
    pub answered: u64,
    /// Whether any was answered.
    pub any_answer: bool,
    /// `connect` failures sent after the first answer ended.
    pub refused: u64,
    /// Of those, the earliest sent: its send time (ms into the window) and detail.
    pub first_refused: Option<(f64, Option<String>)>,
}

impl RecordFacts {
    /// The facts of `records` (in id order).
    pub fn of(records: &[RequestRecord]) -> RecordFacts {
        let first_client_error = records
            .iter()
            .find(|r| r.error == Some(ErrorClass::Client))
            .map(|r| r.error_detail.clone().unwrap_or_default());
        let first_answer = records
            .iter()
            .filter(|r| r.status.is_some())
            .map(|r| r.send_ms + r.e2el_ms.or(r.ttft_ms).unwrap_or(0.0))
            .min_by(f64::total_cmp);
        let refused: Vec<&RequestRecord> = records
            .iter()
            .filter(|r| r.error == Some(ErrorClass::Connect))
            .filter(|r| first_answer.is_some_and(|first| r.send_ms > first))
            .collect();
        let first_refused = refused
            .iter()
            .min_by(|a, b| a.send_ms.total_cmp(&b.send_ms))
            .map(|r| (r.send_ms, r.error_detail.clone()));
        RecordFacts {
            first_client_error,
            answered: records.iter().filter(|r| r.status.is_some()).count() as u64,
            any_answer: first_answer.is_some(),
            refused: refused.len() as u64,
            first_refused,
        }
    }
}

/// Failed requests stay within the case's error budget (`load.error_budget`, 0 % unless the
/// case allows more).
pub fn error_budget_check(summary: &Summary, budget: Score) -> Check {
    let total = summary.requests_ok + summary.requests_failed;
    let failed_pct = if total == 0 {
        0.0
    } else {
        summary.requests_failed as f64 * 100.0 / total as f64
    };
    let rule = format!("failed ≤ {budget} of requests");
    let within = failed_pct <= budget.points() + 1e-9;
    let reason = format!(
        "{} of {total} requests failed ({failed_pct:.2} %), budget {budget}{}",
        summary.requests_failed,
        if summary.errors.is_empty() {
            String::new()
        } else {
            format!(": {}", classes(summary))
        }
    );
    let status = super::Status::of(within);
    Check::new(status, CheckSource::Run, "error budget", rule, reason)
        .measured(Some(failed_pct))
        .against(Some(budget.points()))
}

/// Requests that failed because the client ran out of a resource (class `client`) fail the
/// trial whatever the budget: the numbers measure the client, not the server.
pub fn client_check(summary: &Summary, records: &[RequestRecord]) -> Option<Check> {
    let first = records
        .iter()
        .find(|r| r.error == Some(ErrorClass::Client))
        .map(|r| r.error_detail.clone().unwrap_or_default());
    client_check_of(summary, first.as_deref())
}

/// [`client_check`] given the first `client` error's detail.
pub fn client_check_of(summary: &Summary, first: Option<&str>) -> Option<Check> {
    let n = summary.errors.get(&ErrorClass::Client).copied()?;
    let first = first.unwrap_or_default();
    Some(
        Check::fail(
            CheckSource::Run,
            "client",
            "the client has the resources the load needs",
            format!(
                "the client ran out on {n} requests (not the server's fault: raise `ulimit -n`, \
                 free local ports, or lower the concurrency or rate); first: {first}"
            ),
        )
        .measured(Some(n as f64)),
    )
}

/// A server that answered and then refused connections stopped answering mid-run (it died or
/// was stopped): named with the evidence, whatever the budget says.
pub fn stopped_answering_check(records: &[RequestRecord]) -> Option<Check> {
    stopped_answering_of(&RecordFacts::of(records))
}

/// [`stopped_answering_check`] from the facts of the records.
pub fn stopped_answering_of(facts: &RecordFacts) -> Option<Check> {
    if !facts.any_answer {
        return None;
    }
    let (first_send_ms, detail) = facts.first_refused.as_ref()?;
    Some(
        server_unusable(format!(
            "the server stopped answering: {} requests could not connect after it had answered \
             {}, the first {:.3} s into the measured window ({})",
            facts.refused,
            facts.answered,
            first_send_ms / 1000.0,
            detail.as_deref().unwrap_or("no detail"),
        ))
        .measured(Some(facts.refused as f64)),
    )
}

fn classes(summary: &Summary) -> String {
    let classes: Vec<String> = summary
        .errors
        .iter()
        .map(|(class, n)| format!("{} {n}", class.as_str()))
        .collect();
    classes.join(", ")
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
        Check::fail(
            CheckSource::Run,
            "requests",
            rule,
            format!("no request succeeded out of {total} ({})", classes(summary)),
        )
    };
    check.measured(Some(summary.requests_ok as f64))
}

/// The server could not be had or used (it did not start, died, or refused the setup).
pub fn server_unusable(reason: impl Into<String>) -> Check {
    Check::fail(CheckSource::Run, "server", "the server is usable", reason)
}

/// The load ran into the trial's time limit (`load.trial_timeout`, or the bound computed from
/// the load) and was cut off there: the trial fails, with how many requests were cut.
pub fn trial_cut_off(limit: std::time::Duration, cut_requests: usize) -> Check {
    Check::fail(
        CheckSource::Run,
        "trial_timeout",
        "the load ends within the trial's time limit",
        format!(
            "the load was cut off at the trial's time limit of {} (load.trial_timeout); \
             {cut_requests} requests still running then ended as timeouts, and nothing more \
             was sent",
            humantime::format_duration(limit)
        ),
    )
}

/// The trial panicked (a bug in the harness, or in code a hook ran): it fails with the panic's
/// message, and the run goes on with the next trial.
pub fn panicked(message: &str) -> Check {
    Check::fail(
        CheckSource::Run,
        "panic",
        "the trial runs to its end",
        format!("the trial panicked: {message}"),
    )
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
        let rules = LoadRules {
            targets: None,
            target_spec: &TargetSpec::default(),
            slos: &slos,
            error_budget: Score::ZERO,
        };
        let checks = load_checks(&s, &[], &rules);
        let sources: Vec<_> = checks.iter().map(|c| c.source).collect();
        assert_eq!(
            sources,
            [
                CheckSource::Run,
                CheckSource::Run,
                CheckSource::Target,
                CheckSource::Target,
                CheckSource::Target,
                CheckSource::Slo
            ]
        );
    }

    fn failing(class: ErrorClass, send_ms: f64, detail: &str) -> RequestRecord {
        RequestRecord {
            send_ms,
            error: Some(class),
            error_detail: Some(detail.into()),
            ..Default::default()
        }
    }

    fn answered(send_ms: f64) -> RequestRecord {
        RequestRecord {
            send_ms,
            status: Some(200),
            ttft_ms: Some(5.0),
            e2el_ms: Some(10.0),
            ..Default::default()
        }
    }

    fn budget(text: &str) -> Score {
        crate::case::load::parse_yaml(std::path::Path::new("b.yaml"), text).expect("a score")
    }

    #[rstest::rstest]
    #[case::none_failed(0, "0", Status::Pass)]
    #[case::one_failed_with_no_budget(1, "0", Status::Fail)]
    #[case::within_two_percent(2, "2%", Status::Pass)]
    #[case::over_two_percent(3, "0.02", Status::Fail)]
    fn the_error_budget_is_a_share_of_measured_requests(
        #[case] failed: u64,
        #[case] allowed: &str,
        #[case] status: Status,
    ) {
        let mut s = Summary {
            requests_ok: 100 - failed,
            requests_failed: failed,
            ..Default::default()
        };
        if failed > 0 {
            s.errors.insert(ErrorClass::Http5xx, failed);
        }
        let check = error_budget_check(&s, budget(allowed));
        assert_eq!(check.status, status, "{check:?}");
        assert!(
            check.reason.contains(&format!("{failed} of 100")),
            "{}",
            check.reason
        );
        if failed > 0 {
            assert!(check.reason.contains("http_5xx"), "{}", check.reason);
        }
    }

    #[test]
    fn a_client_that_ran_out_fails_whatever_the_budget_and_says_so() {
        let records = [
            answered(0.0),
            failing(ErrorClass::Client, 1.0, "the client ran out (EMFILE)"),
        ];
        let s = Summary::from_records(&records, 1.0);
        let check = client_check(&s, &records).expect("a client check");
        assert_eq!(check.status, Status::Fail);
        assert!(
            check.reason.contains("not the server's fault"),
            "{}",
            check.reason
        );
        assert!(check.reason.contains("EMFILE"), "{}", check.reason);
        assert!(client_check(&Summary::from_records(&records[..1], 1.0), &records[..1]).is_none());
    }

    #[test]
    fn connections_refused_after_an_answer_name_the_server_that_stopped() {
        let records = [
            answered(0.0),
            failing(ErrorClass::Connect, 2_000.0, "Connection refused"),
            failing(ErrorClass::Connect, 2_500.0, "Connection refused"),
        ];
        let check = stopped_answering_check(&records).expect("stopped");
        assert_eq!(check.status, Status::Fail);
        assert!(
            check.reason.contains("stopped answering: 2 requests")
                && check.reason.contains("2.000 s"),
            "{}",
            check.reason
        );
        // Refused from the start: the server never answered, so it did not stop.
        assert!(stopped_answering_check(&records[1..]).is_none());
    }
}
