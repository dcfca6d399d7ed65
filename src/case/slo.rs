//! Service-level objectives a case sets: `QUANTITY OP NUMBER`, where the quantity is a metric of
//! the load's summary (`ttft_ms.p95`, `error_rate`, `drift.ttft_change`, `errors.timeout`,
//! `goodput`), the same for one endpoint (`endpoint.large.ttft_ms.p95`), a scraped server
//! metric (`server."vllm:num_preemptions_total".increase`) or the accuracy phase's score
//! (`accuracy`). Parsed and validated here (every name at load time, with a did-you-mean);
//! judged by [`crate::judge`].

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

use super::schema::{CaseSpec, Kind};
use crate::metrics::server_known::{KNOWN, MetricKind};
use crate::metrics::summary::metric_names;
use crate::yaml::closest;

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
    /// `==` (exact: meant for counts, such as `errors.timeout == 0`)
    Eq,
    /// `!=` (exact)
    Ne,
}

impl Op {
    /// Every operator, two-character ones first so that `<=` is not read as `<`.
    const TOKENS: [Op; 6] = [Op::Le, Op::Ge, Op::Eq, Op::Ne, Op::Lt, Op::Gt];

    /// Whether `actual op bound` holds.
    pub fn holds(self, actual: f64, bound: f64) -> bool {
        match self {
            Op::Lt => actual < bound,
            Op::Le => actual <= bound,
            Op::Gt => actual > bound,
            Op::Ge => actual >= bound,
            Op::Eq => actual == bound,
            Op::Ne => actual != bound,
        }
    }

    /// The operator as written: `<`, `<=`, `>`, `>=`, `==`, `!=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }
}

/// A statistic of a scraped server metric over the trial: counters have `increase` and
/// `per_s`, gauges `mean`, `max` and `last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerStat {
    /// Counter: growth from the first scrape to the last.
    Increase,
    /// Counter: `increase` / the scrape window in seconds.
    PerS,
    /// Gauge: mean of the scraped values.
    Mean,
    /// Gauge: largest scraped value.
    Max,
    /// Gauge: value at the last scrape.
    Last,
}

impl ServerStat {
    /// Every statistic.
    pub const ALL: [ServerStat; 5] = [
        ServerStat::Increase,
        ServerStat::PerS,
        ServerStat::Mean,
        ServerStat::Max,
        ServerStat::Last,
    ];

    /// Its name in an SLO: `increase`, `per_s`, `mean`, `max`, `last`.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerStat::Increase => "increase",
            ServerStat::PerS => "per_s",
            ServerStat::Mean => "mean",
            ServerStat::Max => "max",
            ServerStat::Last => "last",
        }
    }

    /// The kind of metric that has this statistic.
    pub fn kind(self) -> MetricKind {
        match self {
            ServerStat::Increase | ServerStat::PerS => MetricKind::Counter,
            ServerStat::Mean | ServerStat::Max | ServerStat::Last => MetricKind::Gauge,
        }
    }

    /// The statistics of a kind of metric, as written, comma-separated.
    fn names_for(kind: MetricKind) -> String {
        let names: Vec<&str> = ServerStat::ALL
            .iter()
            .filter(|s| s.kind() == kind)
            .map(|s| s.as_str())
            .collect();
        names.join(", ")
    }
}

/// What an SLO is judged on.
#[derive(Debug, Clone, PartialEq)]
pub enum SloMetric {
    /// A metric of the whole load's summary, by the name
    /// [`crate::metrics::Summary::metric`] knows: `ttft_ms.p95`, `error_rate`,
    /// `drift.ttft_change`, `errors.timeout`, `goodput`.
    Summary(String),
    /// The same metric of one endpoint's summary: `endpoint.NAME.METRIC`.
    Endpoint {
        /// The endpoint's name (`default` for a case with one server).
        endpoint: String,
        /// The metric, as for [`SloMetric::Summary`].
        metric: String,
    },
    /// A scraped server metric: `server."NAME".STAT`.
    Server {
        /// Its name in the exposition, one of the known metrics.
        name: String,
        /// Which statistic over the trial.
        stat: ServerStat,
    },
    /// The accuracy phase's judged score as a fraction 0–1.
    Accuracy,
}

impl SloMetric {
    /// The summary metric this names, directly or for an endpoint.
    fn summary_metric(&self) -> Option<&str> {
        match self {
            SloMetric::Summary(m) | SloMetric::Endpoint { metric: m, .. } => Some(m),
            SloMetric::Server { .. } | SloMetric::Accuracy => None,
        }
    }
}

impl fmt::Display for SloMetric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SloMetric::Summary(m) => f.write_str(m),
            SloMetric::Endpoint { endpoint, metric } if endpoint.contains('.') => {
                write!(f, "endpoint.\"{endpoint}\".{metric}")
            }
            SloMetric::Endpoint { endpoint, metric } => write!(f, "endpoint.{endpoint}.{metric}"),
            SloMetric::Server { name, stat } => write!(f, "server.\"{name}\".{}", stat.as_str()),
            SloMetric::Accuracy => f.write_str("accuracy"),
        }
    }
}

/// A case's threshold: `ttft_ms.p95 < 500`, `errors.timeout == 0`, `accuracy >= 0.9`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "String")]
pub struct Slo {
    /// What is judged.
    pub metric: SloMetric,
    /// Comparison.
    pub op: Op,
    /// Bound.
    pub value: f64,
}

/// Why an SLO expression could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SloError {
    /// Not of the form `metric op number`.
    #[error(
        "`{0}` is not `metric op number` (op one of <, <=, >, >=, ==, !=), e.g. `ttft_ms.p95 < 500`"
    )]
    Shape(String),
    /// The metric name is not known.
    #[error("unknown metric `{name}`{}", suggest(suggestion))]
    UnknownMetric {
        /// The name given.
        name: String,
        /// The closest known name.
        suggestion: Option<String>,
    },
    /// Not `server."NAME".STAT` or `endpoint.NAME.METRIC`.
    #[error("`{given}` is not `{form}`")]
    Form {
        /// What was written.
        given: String,
        /// The form expected.
        form: &'static str,
    },
    /// The server metric is not one the harness scrapes.
    #[error(
        "unknown server metric `{name}`{} (only the known metrics are scraped: see the metrics reference)",
        suggest(suggestion)
    )]
    UnknownServerMetric {
        /// The name given.
        name: String,
        /// The closest known name.
        suggestion: Option<String>,
    },
    /// The statistic does not exist for that kind of server metric.
    #[error("`{name}` is a {kind}: its statistics are {allowed}, not `{stat}`")]
    ServerStat {
        /// The metric.
        name: String,
        /// `counter` or `gauge`.
        kind: &'static str,
        /// The statistic given.
        stat: String,
        /// The ones it has.
        allowed: String,
    },
    /// The bound is not a number.
    #[error("`{0}` is not a number")]
    Number(String),
}

fn suggest(suggestion: &Option<String>) -> String {
    suggestion
        .as_ref()
        .map(|s| format!(", did you mean `{s}`?"))
        .unwrap_or_default()
}

/// Splits at the first operator outside double quotes.
fn split_op(text: &str) -> Result<(&str, Op, &str), SloError> {
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        if c == '"' {
            quoted = !quoted;
        }
        if quoted || !matches!(c, '<' | '>' | '=' | '!') {
            continue;
        }
        let rest = &text[i..];
        let op = Op::TOKENS
            .into_iter()
            .find(|op| rest.starts_with(op.as_str()))
            .ok_or_else(|| SloError::Shape(text.to_string()))?;
        return Ok((&text[..i], op, &rest[op.as_str().len()..]));
    }
    Err(SloError::Shape(text.to_string()))
}

/// A name, quoted (`"vllm:x"`) or up to the next `.`, and what follows its `.`.
fn name_and_rest(text: &str) -> Option<(&str, &str)> {
    let (name, rest) = match text.strip_prefix('"') {
        Some(quoted) => {
            let (name, rest) = quoted.split_once('"')?;
            (name, rest.strip_prefix('.')?)
        }
        None => text.split_once('.')?,
    };
    (!name.is_empty() && !rest.is_empty()).then_some((name, rest))
}

/// A summary metric's name, checked.
fn summary_metric(name: &str) -> Result<String, SloError> {
    let names = metric_names();
    if names.iter().any(|n| n == name) {
        return Ok(name.to_string());
    }
    let mut candidates = names;
    candidates.push("accuracy".into());
    Err(SloError::UnknownMetric {
        name: name.to_string(),
        suggestion: closest(name, &candidates),
    })
}

fn server_metric(text: &str) -> Result<SloMetric, SloError> {
    let form = || SloError::Form {
        given: format!("server.{text}"),
        form: "server.\"NAME\".STAT",
    };
    let (name, stat) = name_and_rest(text).ok_or_else(form)?;
    let Some(known) = KNOWN.iter().find(|m| m.name == name) else {
        let names: Vec<String> = KNOWN.iter().map(|m| m.name.to_string()).collect();
        return Err(SloError::UnknownServerMetric {
            name: name.to_string(),
            suggestion: closest(name, &names),
        });
    };
    let wrong = || SloError::ServerStat {
        name: name.to_string(),
        kind: match known.kind {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
        },
        stat: stat.to_string(),
        allowed: ServerStat::names_for(known.kind),
    };
    let stat = ServerStat::ALL
        .into_iter()
        .find(|s| s.as_str() == stat && s.kind() == known.kind)
        .ok_or_else(wrong)?;
    Ok(SloMetric::Server {
        name: name.to_string(),
        stat,
    })
}

impl FromStr for SloMetric {
    type Err = SloError;

    fn from_str(text: &str) -> Result<SloMetric, SloError> {
        if text == "accuracy" {
            return Ok(SloMetric::Accuracy);
        }
        if let Some(rest) = text.strip_prefix("server.") {
            return server_metric(rest);
        }
        if let Some(rest) = text.strip_prefix("endpoint.") {
            let (endpoint, metric) = name_and_rest(rest).ok_or_else(|| SloError::Form {
                given: text.to_string(),
                form: "endpoint.NAME.METRIC",
            })?;
            return Ok(SloMetric::Endpoint {
                endpoint: endpoint.to_string(),
                metric: summary_metric(metric)?,
            });
        }
        summary_metric(text).map(SloMetric::Summary)
    }
}

impl FromStr for Slo {
    type Err = SloError;

    fn from_str(text: &str) -> Result<Slo, SloError> {
        let (metric, op, value) = split_op(text)?;
        let (metric, value) = (metric.trim(), value.trim());
        if metric.is_empty() || value.is_empty() {
            return Err(SloError::Shape(text.to_string()));
        }
        let metric: SloMetric = metric.parse()?;
        let value: f64 = value
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| SloError::Number(value.to_string()))?;
        Ok(Slo { metric, op, value })
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

/// What the case's SLOs need from the rest of the case, checked when it is loaded: the
/// endpoints they name exist, `goodput` has its per-request SLOs, server metrics are scraped,
/// and `accuracy` has a trial that measures it. The key and the message, if anything is wrong.
pub(super) fn problem(spec: &CaseSpec) -> Option<(String, String)> {
    if let Some(problem) = spec.goodput.as_ref().and_then(|g| g.problem()) {
        return Some(("goodput".into(), problem));
    }
    let endpoints: Vec<String> = spec.destinations().into_iter().map(|d| d.name).collect();
    for (i, slo) in spec.slo.iter().enumerate() {
        let key = format!("slo[{i}]");
        if slo
            .metric
            .summary_metric()
            .is_some_and(|m| m.starts_with("goodput"))
            && spec.goodput.is_none()
        {
            return Some((
                key,
                format!(
                    "`{}` needs the per-request SLOs it counts: add e.g. `goodput: {{ ttft_ms: 200, tpot_ms: 50 }}` to the case",
                    slo.metric
                ),
            ));
        }
        match &slo.metric {
            SloMetric::Endpoint { endpoint, .. } if !endpoints.contains(endpoint) => {
                return Some((
                    key,
                    format!(
                        "the case has no endpoint `{endpoint}`{} (its endpoints: {})",
                        suggest(&closest(endpoint, &endpoints)),
                        endpoints.join(", ")
                    ),
                ));
            }
            SloMetric::Server { .. } if !spec.client.metrics.scrape => {
                return Some((
                    key,
                    "server metrics are not scraped (`client.metrics.scrape: false`)".into(),
                ));
            }
            SloMetric::Accuracy
                if !spec
                    .kinds
                    .iter()
                    .any(|k| matches!(k, Kind::Accuracy | Kind::Stress)) =>
            {
                return Some((
                    key,
                    "`accuracy` is measured only by `accuracy` and `stress` trials: add one of those kinds"
                        .into(),
                ));
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn summary(name: &str) -> SloMetric {
        SloMetric::Summary(name.into())
    }

    fn server(name: &str, stat: ServerStat) -> SloMetric {
        SloMetric::Server {
            name: name.into(),
            stat,
        }
    }

    fn endpoint(endpoint: &str, metric: &str) -> SloMetric {
        SloMetric::Endpoint {
            endpoint: endpoint.into(),
            metric: metric.into(),
        }
    }

    #[rstest]
    #[case("ttft_ms.p95 < 500", summary("ttft_ms.p95"), Op::Lt, 500.0)]
    #[case("error_rate<=0.01", summary("error_rate"), Op::Le, 0.01)]
    #[case(" output_tok_s > 100 ", summary("output_tok_s"), Op::Gt, 100.0)]
    #[case("tput_user >= 1e2", summary("tput_user"), Op::Ge, 100.0)]
    #[case::drift("drift.ttft_change < 0.10", summary("drift.ttft_change"), Op::Lt, 0.1)]
    #[case::drift_decode("drift.decode_change > -0.1", summary("drift.decode_change"), Op::Gt, -0.1)]
    #[case::drift_flag("drift.flagged == 0", summary("drift.flagged"), Op::Eq, 0.0)]
    #[case::errors("errors.timeout == 0", summary("errors.timeout"), Op::Eq, 0.0)]
    #[case::errors_ne("errors.http_429 != 0", summary("errors.http_429"), Op::Ne, 0.0)]
    #[case::goodput("goodput >= 0.9", summary("goodput"), Op::Ge, 0.9)]
    #[case::goodput_rate("goodput_req_s > 2", summary("goodput_req_s"), Op::Gt, 2.0)]
    #[case::accuracy("accuracy >= 0.9", SloMetric::Accuracy, Op::Ge, 0.9)]
    #[case::endpoint(
        "endpoint.large.ttft_ms.p95 < 300",
        endpoint("large", "ttft_ms.p95"),
        Op::Lt,
        300.0
    )]
    #[case::endpoint_quoted(
        "endpoint.\"a-b\".errors.timeout == 0",
        endpoint("a-b", "errors.timeout"),
        Op::Eq,
        0.0
    )]
    #[case::endpoint_dotted(
        "endpoint.\"v1.2\".goodput > 0.5",
        endpoint("v1.2", "goodput"),
        Op::Gt,
        0.5
    )]
    #[case::server_counter(
        "server.\"vllm:num_preemptions_total\".increase == 0",
        server("vllm:num_preemptions_total", ServerStat::Increase),
        Op::Eq,
        0.0
    )]
    #[case::server_unquoted(
        "server.vllm:generation_tokens_total.per_s>=50",
        server("vllm:generation_tokens_total", ServerStat::PerS),
        Op::Ge,
        50.0
    )]
    #[case::server_gauge_max(
        "server.\"vllm:num_requests_waiting\".max <= 4",
        server("vllm:num_requests_waiting", ServerStat::Max),
        Op::Le,
        4.0
    )]
    #[case::server_gauge_mean(
        "server.\"vllm:kv_cache_usage_perc\".mean < 0.9",
        server("vllm:kv_cache_usage_perc", ServerStat::Mean),
        Op::Lt,
        0.9
    )]
    #[case::server_gauge_last(
        "server.\"sglang:num_queue_reqs\".last == 0",
        server("sglang:num_queue_reqs", ServerStat::Last),
        Op::Eq,
        0.0
    )]
    fn slo_expressions_parse(
        #[case] text: &str,
        #[case] metric: SloMetric,
        #[case] op: Op,
        #[case] value: f64,
    ) {
        let slo: Slo = text.parse().expect("valid");
        assert_eq!((&slo.metric, slo.op, slo.value), (&metric, op, value));
        // Written back, it reads the same.
        let again: Slo = slo.to_string().parse().expect("its own text parses");
        assert_eq!(again, slo);
    }

    #[rstest]
    #[case("ttft_ms.p95", "is not `metric op number`")]
    #[case("ttft_ms.p59 < 3", "did you mean `ttft_ms.p95`?")]
    #[case("eror_rate < 3", "did you mean `error_rate`?")]
    #[case("ttft_ms.p95 < fast", "`fast` is not a number")]
    #[case("< 3", "is not `metric op number`")]
    #[case::single_equals("errors.timeout = 0", "is not `metric op number`")]
    #[case::two_ops("error_rate < 1 < 2", "`1 < 2` is not a number")]
    #[case::drift_field("drift.ttft_chnage < 0.1", "did you mean `drift.ttft_change`?")]
    #[case::error_class("errors.timout == 0", "did you mean `errors.timeout`?")]
    #[case::error_any("errors.any == 0", "unknown metric `errors.any`")]
    #[case::accuracy("acuracy > 0.5", "did you mean `accuracy`?")]
    #[case::goodput("godput > 0.5", "did you mean `goodput`?")]
    #[case::endpoint_form("endpoint.large < 3", "is not `endpoint.NAME.METRIC`")]
    #[case::endpoint_metric("endpoint.large.ttft_ms.p59 < 3", "did you mean `ttft_ms.p95`?")]
    #[case::server_form("server.\"vllm:num_preemptions_total\" == 0", "server.\"NAME\".STAT")]
    #[case::server_unclosed("server.\"vllm:x.increase == 0", "is not `metric op number`")]
    #[case::server_name(
        "server.\"vllm:num_preemption_total\".increase == 0",
        "did you mean `vllm:num_preemptions_total`?"
    )]
    #[case::counter_stat(
        "server.\"vllm:num_preemptions_total\".max == 0",
        "is a counter: its statistics are increase, per_s, not `max`"
    )]
    #[case::gauge_stat(
        "server.\"vllm:num_requests_running\".increase < 3",
        "is a gauge: its statistics are mean, max, last, not `increase`"
    )]
    fn bad_slo_expressions_say_why(#[case] text: &str, #[case] message: &str) {
        let err = text.parse::<Slo>().expect_err("invalid");
        assert!(err.to_string().contains(message), "{err}");
    }

    #[rstest]
    #[case(Op::Eq, 0.0, 0.0, true)]
    #[case(Op::Eq, 1.0, 0.0, false)]
    #[case(Op::Ne, 1.0, 0.0, true)]
    #[case(Op::Ne, 0.0, 0.0, false)]
    #[case(Op::Le, 2.0, 2.0, true)]
    #[case(Op::Lt, 2.0, 2.0, false)]
    fn operators_compare(
        #[case] op: Op,
        #[case] actual: f64,
        #[case] bound: f64,
        #[case] holds: bool,
    ) {
        assert_eq!(op.holds(actual, bound), holds);
    }

    /// A perf case with these extra lines.
    fn case(extra: &str) -> CaseSpec {
        let text = format!("name: x\nmodel: m\nkinds: [perf]\nmatrix: {{mode: single}}\n{extra}");
        super::super::load::parse_yaml(std::path::Path::new("x.yaml"), &text).expect("parses")
    }

    #[rstest]
    #[case::fine(
        "goodput: { ttft_ms: 200 }\nslo:\n  - goodput >= 0.9\n  - endpoint.default.error_rate < 0.1\n  - server.\"vllm:num_preemptions_total\".increase == 0\n",
        None
    )]
    #[case::goodput_undeclared("slo:\n  - goodput >= 0.9\n", Some(("slo[0]", "add e.g. `goodput: {")))]
    #[case::goodput_rate_undeclared(
        "slo:\n  - error_rate < 1\n  - endpoint.default.goodput_req_s > 1\n",
        Some(("slo[1]", "needs the per-request SLOs"))
    )]
    #[case::goodput_empty("goodput: {}\n", Some(("goodput", "at least one")))]
    #[case::goodput_negative("goodput: { tpot_ms: -1 }\n", Some(("goodput", "`tpot_ms` must be")))]
    #[case::endpoint_single("slo:\n  - endpoint.large.error_rate < 1\n", Some(("slo[0]", "no endpoint `large` (its endpoints: default)")))]
    #[case::endpoint_named(
        "endpoints:\n  - { name: small, weight: 1, server: { embedded: {} } }\n  - { name: large, weight: 1, server: { embedded: {} } }\nslo:\n  - endpoint.lrage.error_rate < 1\n",
        Some(("slo[0]", "no endpoint `lrage`, did you mean `large`? (its endpoints: small, large)"))
    )]
    #[case::not_scraped(
        "client: { metrics: { scrape: false } }\nslo:\n  - server.\"vllm:num_requests_waiting\".max < 3\n",
        Some(("slo[0]", "not scraped"))
    )]
    #[case::accuracy_in_perf("slo:\n  - accuracy >= 0.9\n", Some(("slo[0]", "only by `accuracy` and `stress` trials")))]
    fn slos_are_checked_against_the_case(
        #[case] extra: &str,
        #[case] expected: Option<(&str, &str)>,
    ) {
        let found = problem(&case(extra));
        match expected {
            None => assert_eq!(found, None),
            Some((key, message)) => {
                let (found_key, found_message) = found.expect("a problem");
                assert_eq!(found_key, key);
                assert!(found_message.contains(message), "{found_message}");
            }
        }
    }
}
