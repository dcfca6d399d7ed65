//! The case's SLOs ([`crate::case::Slo`]) judged against what a trial measured: the load's
//! summary and its endpoints' summaries, the scraped server metrics, and the accuracy phase.
//!
//! A quantity that could not be measured fails its SLO with the reason (a gate must not pass
//! what it could not check): no successful request, too few requests for drift, a server
//! metric that was not scraped. Only `accuracy` in a trial with no accuracy phase (a `perf`
//! trial) is not applicable; in an accuracy trial, which has no load, only `accuracy` is judged.

use super::{Check, CheckSource, Status};
use crate::accuracy::summary::AccuracySummary;
use crate::case::{ServerStat, Slo, SloMetric};
use crate::metrics::Summary;
use crate::server_metrics::{Reading, ServerMetrics};

/// What a trial's load measured, for its SLOs.
#[derive(Debug, Clone, Copy)]
pub struct LoadMeasured<'a> {
    /// The whole load, summarised.
    pub summary: &'a Summary,
    /// Each endpoint's summary by name (a single server's is the whole summary, `default`).
    pub endpoints: &'a [(&'a str, &'a Summary)],
    /// Each scraped server's metrics (none when scraping was off).
    pub server_metrics: &'a [ServerMetrics],
}

/// What a trial measured, for its SLOs.
#[derive(Debug, Clone, Copy, Default)]
pub struct SloInputs<'a> {
    /// The load phase, when the trial drove one (perf and stress trials).
    pub load: Option<LoadMeasured<'a>>,
    /// The accuracy phase, when the trial ran one (accuracy and stress trials).
    pub accuracy: Option<&'a AccuracySummary>,
}

/// The checks of the SLOs that apply to the trial, in the case's order: every SLO when it
/// drove load, only `accuracy` when it did not.
pub fn checks(slos: &[Slo], inputs: &SloInputs) -> Vec<Check> {
    slos.iter()
        .filter(|s| inputs.load.is_some() || s.metric == SloMetric::Accuracy)
        .map(|s| check_measured(s, inputs))
        .collect()
}

/// Judges one SLO against a load's summary alone: an endpoint's or a server's SLO fails
/// there (nothing was measured for it), `accuracy` is not applicable.
pub fn check(slo: &Slo, summary: &Summary) -> Check {
    let endpoints = [("default", summary)];
    let inputs = SloInputs {
        load: Some(LoadMeasured {
            summary,
            endpoints: &endpoints,
            server_metrics: &[],
        }),
        accuracy: None,
    };
    check_measured(slo, &inputs)
}

/// A measured value, or why there is none.
type Measured = Result<f64, String>;

/// Judges one SLO against everything the trial measured.
pub fn check_measured(slo: &Slo, inputs: &SloInputs) -> Check {
    let text = slo.to_string();
    let measured = match (&slo.metric, inputs.load) {
        (SloMetric::Accuracy, _) => match inputs.accuracy {
            None => {
                return Check::not_applicable(
                    CheckSource::Slo,
                    &text,
                    &text,
                    "this trial runs no accuracy phase (accuracy and stress trials judge it)",
                )
                .against(Some(slo.value));
            }
            Some(accuracy) => accuracy
                .score()
                .map(|score| score / 100.0)
                .ok_or_else(|| format!("no score for filter `{}`", accuracy.judged_filter)),
        },
        (_, None) => Err("this trial drove no load".to_string()),
        (SloMetric::Summary(metric), Some(load)) => {
            return with_few_samples(
                judged(slo, &text, summary_metric(load.summary, metric)),
                load.summary,
                metric,
            );
        }
        (SloMetric::Endpoint { endpoint, metric }, Some(load)) => {
            match load.endpoints.iter().find(|(name, _)| name == endpoint) {
                Some((_, summary)) => {
                    return with_few_samples(
                        judged(slo, &text, summary_metric(summary, metric)),
                        summary,
                        metric,
                    );
                }
                None => {
                    let names: Vec<&str> = load.endpoints.iter().map(|(n, _)| *n).collect();
                    Err(format!(
                        "no endpoint `{endpoint}` in this trial (its endpoints: {})",
                        names.join(", ")
                    ))
                }
            }
        }
        (SloMetric::Server { name, stat }, Some(load)) => {
            return server_check(slo, &text, name, *stat, load.server_metrics);
        }
    };
    judged(slo, &text, measured)
}

/// The check of a value against the SLO's bound, or its failure for want of one.
fn judged(slo: &Slo, text: &str, measured: Measured) -> Check {
    let (status, reason, actual) = match measured {
        Err(why) => (Status::Fail, format!("not measured: {why}"), None),
        Ok(a) if slo.op.holds(a, slo.value) => (Status::Pass, format!("{a:.3} {slo}"), Some(a)),
        Ok(a) => (
            Status::Fail,
            format!("{a:.3} does not satisfy {} {}", slo.op.as_str(), slo.value),
            Some(a),
        ),
    };
    Check::new(status, CheckSource::Slo, text, text, reason)
        .measured(actual)
        .against(Some(slo.value))
}

/// Values below which a percentile rests on a few of the largest (or smallest) values: about
/// ten beyond it (a p99 from fewer than 100 values is its largest value).
fn few_samples(stat: &str) -> Option<u64> {
    Some(match stat {
        "p90" => 30,
        "p95" => 50,
        "p99" => 100,
        "p999" => 1000,
        _ => return None,
    })
}

/// `check` of a tail percentile (`ttft_ms.p99`) measured from fewer values than it needs,
/// with a reason that says so: whether it passed or failed, the verdict rests on a few values.
fn with_few_samples(mut check: Check, summary: &Summary, metric: &str) -> Check {
    let Some((name, stat)) = metric.split_once('.') else {
        return check;
    };
    let (Some(needed), Some(distribution)) = (few_samples(stat), summary.distribution(name)) else {
        return check;
    };
    if distribution.count < needed {
        check.reason.push_str(&format!(
            "; few samples: a {stat} from {} values (about {needed} are needed) rests on the \
             few largest",
            distribution.count
        ));
    }
    check
}

/// A summary metric, or why it has no value.
fn summary_metric(summary: &Summary, metric: &str) -> Measured {
    summary.metric(metric).ok_or_else(|| {
        if metric.starts_with("drift.") {
            "drift needs at least two measured requests in each half of the run".into()
        } else if metric.starts_with("turns.") {
            "no multi-turn conversation was measured, or the server reported no cache use".into()
        } else if metric.starts_with("prefix.") {
            "no shared-prefix request was measured, or the server reported no cache use".into()
        } else if metric.starts_with("goodput") {
            "no measured request to count goodput over".into()
        } else {
            "no successful request".into()
        }
    })
}

/// A scraped server metric's statistic on one server, or why there is none.
fn server_value(metrics: &ServerMetrics, name: &str, stat: ServerStat) -> Measured {
    if let Some(why) = &metrics.unavailable {
        return Err(format!(
            "endpoint `{}`'s metrics could not be scraped ({why})",
            metrics.endpoint
        ));
    }
    let reading = metrics
        .metrics
        .iter()
        .find(|m| m.name == name)
        .map(|m| m.reading)
        .ok_or_else(|| {
            format!(
                "`{name}` was not scraped from endpoint `{}` (its server does not expose it)",
                metrics.endpoint
            )
        })?;
    match (reading, stat) {
        (Reading::Counter { increase, .. }, ServerStat::Increase) => Ok(increase),
        (Reading::Counter { per_s, .. }, ServerStat::PerS) => Ok(per_s),
        (Reading::Gauge { mean, .. }, ServerStat::Mean) => Ok(mean),
        (Reading::Gauge { max, .. }, ServerStat::Max) => Ok(max),
        (Reading::Gauge { last, .. }, ServerStat::Last) => Ok(last),
        // The case checked the statistic against the known kind; a server that exposes the
        // name as the other kind cannot have happened, but is said rather than assumed.
        _ => Err(format!(
            "`{name}` on endpoint `{}` has no `{}`",
            metrics.endpoint,
            stat.as_str()
        )),
    }
}

/// A server metric's SLO holds when it holds on every scraped server. The measured value shown
/// is the first server's that fails, else the first server's.
fn server_check(
    slo: &Slo,
    text: &str,
    name: &str,
    stat: ServerStat,
    servers: &[ServerMetrics],
) -> Check {
    if servers.is_empty() {
        return judged(slo, text, Err("no server's metrics were scraped".into()));
    }
    let values: Vec<(&str, Measured)> = servers
        .iter()
        .map(|m| (m.endpoint.as_str(), server_value(m, name, stat)))
        .collect();
    if let [(_, only)] = values.as_slice() {
        return judged(slo, text, only.clone());
    }
    let holds = |v: &Measured| v.as_ref().is_ok_and(|&a| slo.op.holds(a, slo.value));
    let failing = values.iter().find(|(_, v)| !holds(v));
    let shown = failing.unwrap_or(&values[0]);
    let each: Vec<String> = values
        .iter()
        .map(|(endpoint, v)| match v {
            Ok(a) => format!("{endpoint}: {a:.3}"),
            Err(why) => format!("{endpoint}: not measured: {why}"),
        })
        .collect();
    let (status, reason) = match failing {
        None => (
            Status::Pass,
            format!("{slo} on every server ({})", each.join("; ")),
        ),
        Some((endpoint, _)) => (
            Status::Fail,
            format!(
                "endpoint `{endpoint}` does not satisfy {} {} ({})",
                slo.op.as_str(),
                slo.value,
                each.join("; ")
            ),
        ),
    };
    Check::new(status, CheckSource::Slo, text, text, reason)
        .measured(shown.1.as_ref().ok().copied())
        .against(Some(slo.value))
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::accuracy::summary::FilterScore;
    use crate::metrics::{ErrorClass, RequestRecord, RequestSlo};
    use crate::server_metrics::MetricSummary;

    /// Ten requests, TTFT 10..100 ms by send order, TPOT 5 ms; the last one timed out.
    fn records() -> Vec<RequestRecord> {
        (0..10)
            .map(|i| {
                let ttft = f64::from(i + 1) * 10.0;
                RequestRecord {
                    send_ms: f64::from(i),
                    ttft_ms: Some(ttft),
                    e2el_ms: Some(ttft + 5.0 * 9.0),
                    output_tokens: Some(10),
                    error: (i == 9).then_some(ErrorClass::Timeout),
                    ..Default::default()
                }
            })
            .collect()
    }

    fn summary() -> Summary {
        let records = records();
        let goodput = RequestSlo {
            ttft_ms: Some(50.0),
            ..Default::default()
        };
        Summary::from_records(&records, 2.0).with_goodput(&records, Some(&goodput))
    }

    fn server(endpoint: &str, preemptions: f64, waiting_max: f64) -> ServerMetrics {
        ServerMetrics {
            endpoint: endpoint.into(),
            scrapes: 3,
            window_s: 2.0,
            metrics: vec![
                MetricSummary {
                    name: "vllm:num_preemptions_total".into(),
                    label: "preemptions".into(),
                    reading: Reading::Counter {
                        increase: preemptions,
                        per_s: preemptions / 2.0,
                    },
                },
                MetricSummary {
                    name: "vllm:num_requests_waiting".into(),
                    label: "requests waiting".into(),
                    reading: Reading::Gauge {
                        mean: waiting_max / 2.0,
                        max: waiting_max,
                        last: 0.0,
                    },
                },
            ],
            ..Default::default()
        }
    }

    fn accuracy(score: f64) -> AccuracySummary {
        AccuracySummary {
            task: "arithmetic".into(),
            dataset: "built-in".into(),
            n: 10,
            errors: 0,
            filters: vec![FilterScore {
                filter: "strict-match".into(),
                score,
            }],
            judged_filter: "strict-match".into(),
            threshold: None,
            under_load: None,
            baseline: None,
        }
    }

    /// Judges `text` against the made-up trial: `s` (with endpoints `small` and `large`, the
    /// latter slower), `servers` and `acc`.
    fn judge(text: &str, servers: &[ServerMetrics], acc: Option<&AccuracySummary>) -> Check {
        let s = summary();
        let slow = Summary::from_records(
            &[RequestRecord {
                ttft_ms: Some(400.0),
                e2el_ms: Some(500.0),
                output_tokens: Some(10),
                ..Default::default()
            }],
            1.0,
        );
        let endpoints = [("small", &s), ("large", &slow)];
        let slo: Slo = text.parse().expect("valid");
        let inputs = SloInputs {
            load: Some(LoadMeasured {
                summary: &s,
                endpoints: &endpoints,
                server_metrics: servers,
            }),
            accuracy: acc,
        };
        check_measured(&slo, &inputs)
    }

    #[rstest]
    #[case::summary("ttft_ms.p95 < 500", Status::Pass, "few samples: a p95 from 9 values")]
    #[case::summary_fails("ttft_ms.max < 50", Status::Fail, "90.000 does not satisfy < 50")]
    #[case::drift("drift.ttft_change < 0.1", Status::Fail, "does not satisfy")]
    #[case::drift_passes("drift.ttft_change > 1", Status::Pass, "")]
    #[case::drift_flagged("drift.flagged == 1", Status::Pass, "")]
    #[case::errors("errors.timeout == 0", Status::Fail, "1.000 does not satisfy == 0")]
    #[case::errors_other("errors.http_429 == 0", Status::Pass, "")]
    #[case::goodput("goodput >= 0.5", Status::Pass, "0.500 goodput >= 0.5")]
    #[case::goodput_fails("goodput >= 0.9", Status::Fail, "0.500 does not satisfy")]
    #[case::goodput_rate("goodput_req_s == 2.5", Status::Pass, "")]
    #[case::few_samples(
        "ttft_ms.p99 < 500",
        Status::Pass,
        "; few samples: a p99 from 9 values (about 100 are needed)"
    )]
    #[case::few_samples_failing(
        "endpoint.large.ttft_ms.p95 < 300",
        Status::Fail,
        "does not satisfy < 300; few samples: a p95 from 1 values"
    )]
    #[case::median_needs_no_warning("ttft_ms.p50 < 500", Status::Pass, "ttft_ms.p50 < 500")]
    #[case::endpoint("endpoint.small.ttft_ms.p95 < 300", Status::Pass, "few samples")]
    #[case::endpoint_fails(
        "endpoint.large.ttft_ms.p95 < 300",
        Status::Fail,
        "400.000 does not satisfy < 300; few samples"
    )]
    #[case::endpoint_unknown(
        "endpoint.medium.ttft_ms.p95 < 300",
        Status::Fail,
        "no endpoint `medium` in this trial (its endpoints: small, large)"
    )]
    #[case::endpoint_drift(
        "endpoint.large.drift.ttft_change < 1",
        Status::Fail,
        "drift needs at least two measured requests"
    )]
    #[case::endpoint_goodput("endpoint.large.goodput > 0", Status::Fail, "no measured request")]
    #[case::no_conversation(
        "turns.server_cached_tokens > 0",
        Status::Fail,
        "no multi-turn conversation was measured"
    )]
    #[case::no_prefix_groups(
        "prefix.shared_over_cold < 0.8",
        Status::Fail,
        "no shared-prefix request was measured"
    )]
    #[case::not_measured_accuracy(
        "accuracy >= 0.9",
        Status::NotApplicable,
        "runs no accuracy phase"
    )]
    fn summary_slos_are_judged(#[case] text: &str, #[case] status: Status, #[case] reason: &str) {
        let check = judge(text, &[], None);
        assert_eq!(check.status, status, "{check:?}");
        assert!(check.reason.contains(reason), "{}", check.reason);
        // Only a tail percentile from too few values is flagged.
        assert_eq!(
            check.reason.contains("few samples"),
            reason.contains("few samples"),
            "{}",
            check.reason
        );
        assert_eq!(
            (check.source, check.name.as_str()),
            (CheckSource::Slo, text)
        );
    }

    #[rstest]
    #[case::counter(
        "server.\"vllm:num_preemptions_total\".increase == 0",
        0.0,
        Status::Pass,
        ""
    )]
    #[case::counter_fails(
        "server.\"vllm:num_preemptions_total\".increase == 0",
        3.0,
        Status::Fail,
        "3.000 does not satisfy == 0"
    )]
    #[case::per_s(
        "server.\"vllm:num_preemptions_total\".per_s < 1",
        3.0,
        Status::Fail,
        "1.500"
    )]
    #[case::gauge_max(
        "server.\"vllm:num_requests_waiting\".max <= 4",
        0.0,
        Status::Pass,
        "4.000"
    )]
    #[case::gauge_mean(
        "server.\"vllm:num_requests_waiting\".mean < 1",
        0.0,
        Status::Fail,
        "2.000"
    )]
    #[case::gauge_last(
        "server.\"vllm:num_requests_waiting\".last == 0",
        0.0,
        Status::Pass,
        ""
    )]
    #[case::not_exposed(
        "server.\"vllm:kv_cache_usage_perc\".max < 0.9",
        0.0,
        Status::Fail,
        "`vllm:kv_cache_usage_perc` was not scraped from endpoint `default` (its server does not expose it)"
    )]
    fn server_metric_slos_are_judged(
        #[case] text: &str,
        #[case] preemptions: f64,
        #[case] status: Status,
        #[case] reason: &str,
    ) {
        let check = judge(text, &[server("default", preemptions, 4.0)], None);
        assert_eq!(check.status, status, "{check:?}");
        assert!(check.reason.contains(reason), "{}", check.reason);
    }

    #[test]
    fn a_server_metric_that_was_not_scraped_fails() {
        let text = "server.\"vllm:num_preemptions_total\".increase == 0";
        let none = judge(text, &[], None);
        assert_eq!(none.status, Status::Fail);
        assert!(
            none.reason.contains("no server's metrics were scraped"),
            "{}",
            none.reason
        );
        let unavailable = ServerMetrics {
            endpoint: "default".into(),
            unavailable: Some("HTTP 404".into()),
            ..Default::default()
        };
        let check = judge(text, &[unavailable], None);
        assert_eq!(check.status, Status::Fail);
        assert!(
            check.reason.contains("could not be scraped (HTTP 404)"),
            "{}",
            check.reason
        );
        assert_eq!(check.actual, None);
    }

    #[test]
    fn a_server_metric_must_hold_on_every_server() {
        let text = "server.\"vllm:num_preemptions_total\".increase == 0";
        let both = [server("a", 0.0, 1.0), server("b", 2.0, 1.0)];
        let check = judge(text, &both, None);
        assert_eq!(check.status, Status::Fail);
        assert!(
            check
                .reason
                .contains("endpoint `b` does not satisfy == 0 (a: 0.000; b: 2.000)"),
            "{}",
            check.reason
        );
        assert_eq!(check.actual, Some(2.0));
        let fine = [server("a", 0.0, 1.0), server("b", 0.0, 1.0)];
        let check = judge(text, &fine, None);
        assert_eq!(check.status, Status::Pass, "{}", check.reason);
    }

    #[rstest]
    #[case(92.0, ">= 0.9", Status::Pass)]
    #[case(85.0, ">= 0.9", Status::Fail)]
    #[case(90.0, "== 0.9", Status::Pass)]
    fn accuracy_is_the_judged_filter_score_as_a_fraction(
        #[case] score: f64,
        #[case] bound: &str,
        #[case] status: Status,
    ) {
        let acc = accuracy(score);
        let check = judge(&format!("accuracy {bound}"), &[], Some(&acc));
        assert_eq!(check.status, status, "{check:?}");
        assert_eq!(check.actual, Some(score / 100.0));
    }

    #[test]
    fn an_accuracy_trial_judges_only_the_accuracy_slo() {
        let slos: Vec<Slo> = ["ttft_ms.p95 < 1", "accuracy >= 0.5"]
            .iter()
            .map(|s| s.parse().expect("valid"))
            .collect();
        let acc = accuracy(60.0);
        let only_accuracy = SloInputs {
            load: None,
            accuracy: Some(&acc),
        };
        let checks = checks(&slos, &only_accuracy);
        assert_eq!(checks.len(), 1);
        assert_eq!(
            (checks[0].name.as_str(), checks[0].status),
            ("accuracy >= 0.5", Status::Pass)
        );
    }
}
