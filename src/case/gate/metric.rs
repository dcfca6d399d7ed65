//! The metrics a baseline comparison gates on, by name (`ttft_ms.p95`, `output_tok_s`, `error_rate`,
//! `accuracy`), and which way is worse for each.

use std::fmt;
use std::str::FromStr;

/// A per-request latency with a distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Latency {
    /// Time to first token.
    Ttft,
    /// Time per output token after the first.
    Tpot,
    /// Inter-token latency.
    Itl,
    /// End-to-end latency.
    E2el,
}

impl Latency {
    /// Every latency, in report order.
    pub const ALL: [Latency; 4] = [Latency::Ttft, Latency::Tpot, Latency::Itl, Latency::E2el];

    /// `ttft_ms`, `tpot_ms`, `itl_ms` or `e2el_ms`.
    pub fn as_str(self) -> &'static str {
        match self {
            Latency::Ttft => "ttft_ms",
            Latency::Tpot => "tpot_ms",
            Latency::Itl => "itl_ms",
            Latency::E2el => "e2el_ms",
        }
    }
}

/// Which statistic of a latency's distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stat {
    /// The mean.
    Mean,
    /// The median.
    P50,
    /// The 90th percentile.
    P90,
    /// The 95th percentile.
    P95,
    /// The 99th percentile.
    P99,
}

impl Stat {
    /// Every statistic, in report order.
    pub const ALL: [Stat; 5] = [Stat::Mean, Stat::P50, Stat::P90, Stat::P95, Stat::P99];

    /// `mean`, `p50`, `p90`, `p95` or `p99`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stat::Mean => "mean",
            Stat::P50 => "p50",
            Stat::P90 => "p90",
            Stat::P95 => "p95",
            Stat::P99 => "p99",
        }
    }

    /// The quantile it is, in (0, 1); none for the mean.
    pub fn quantile(self) -> Option<f64> {
        match self {
            Stat::Mean => None,
            Stat::P50 => Some(0.50),
            Stat::P90 => Some(0.90),
            Stat::P95 => Some(0.95),
            Stat::P99 => Some(0.99),
        }
    }

    /// Samples below which the statistic's estimate rests on few values in its tail (a p99
    /// from fewer than 100 values is about its largest value).
    pub fn few_samples(self) -> usize {
        match self {
            Stat::Mean | Stat::P50 => 10,
            Stat::P90 => 30,
            Stat::P95 => 50,
            Stat::P99 => 100,
        }
    }
}

/// Throughput figures, higher is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Throughput {
    /// Output tokens per second over the measured window.
    OutputTokS,
    /// Successful requests per second over the measured window.
    ReqS,
    /// Tokens per second per user: 1000 / mean TPOT.
    TputUser,
}

impl Throughput {
    /// `output_tok_s`, `req_s` or `tput_user`.
    pub fn as_str(self) -> &'static str {
        match self {
            Throughput::OutputTokS => "output_tok_s",
            Throughput::ReqS => "req_s",
            Throughput::TputUser => "tput_user",
        }
    }
}

/// One gated metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    /// A latency statistic, such as `ttft_ms.p95`.
    Latency(Latency, Stat),
    /// A throughput.
    Throughput(Throughput),
    /// The fraction of measured requests that failed.
    ErrorRate,
    /// The judged filter's accuracy on the questions both runs asked.
    Accuracy,
}

impl Metric {
    /// What a comparison gates on unless told otherwise: the median and p95 of each latency,
    /// every throughput, the error rate and accuracy.
    pub fn defaults() -> Vec<Metric> {
        let mut metrics = Vec::new();
        for latency in Latency::ALL {
            metrics.push(Metric::Latency(latency, Stat::P50));
            metrics.push(Metric::Latency(latency, Stat::P95));
        }
        metrics.extend([
            Metric::Throughput(Throughput::OutputTokS),
            Metric::Throughput(Throughput::ReqS),
            Metric::Throughput(Throughput::TputUser),
            Metric::ErrorRate,
            Metric::Accuracy,
        ]);
        metrics
    }

    /// Every name [`Metric::from_str`] accepts.
    pub fn names() -> Vec<String> {
        let mut names = Vec::new();
        for latency in Latency::ALL {
            for stat in Stat::ALL {
                names.push(format!("{}.{}", latency.as_str(), stat.as_str()));
            }
        }
        for t in [
            Throughput::OutputTokS,
            Throughput::ReqS,
            Throughput::TputUser,
        ] {
            names.push(t.as_str().to_string());
        }
        names.extend(["error_rate".to_string(), "accuracy".to_string()]);
        names
    }

    /// Whether a larger value is worse (latencies, the error rate).
    pub fn higher_is_worse(self) -> bool {
        matches!(self, Metric::Latency(..) | Metric::ErrorRate)
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Metric::Latency(latency, stat) => write!(f, "{}.{}", latency.as_str(), stat.as_str()),
            Metric::Throughput(t) => f.write_str(t.as_str()),
            Metric::ErrorRate => f.write_str("error_rate"),
            Metric::Accuracy => f.write_str("accuracy"),
        }
    }
}

/// A metric name that is not one, with the closest known name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown gate metric `{name}`{}", suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
pub struct UnknownMetric {
    /// The name given.
    pub name: String,
    /// The closest known name, when one is close.
    pub suggestion: Option<String>,
}

impl FromStr for Metric {
    type Err = UnknownMetric;

    fn from_str(name: &str) -> Result<Metric, UnknownMetric> {
        let name = name.trim();
        let simple = match name {
            "output_tok_s" => Some(Metric::Throughput(Throughput::OutputTokS)),
            "req_s" => Some(Metric::Throughput(Throughput::ReqS)),
            "tput_user" => Some(Metric::Throughput(Throughput::TputUser)),
            "error_rate" => Some(Metric::ErrorRate),
            "accuracy" => Some(Metric::Accuracy),
            _ => None,
        };
        if let Some(metric) = simple {
            return Ok(metric);
        }
        let latency = name.split_once('.').and_then(|(l, s)| {
            let latency = Latency::ALL.into_iter().find(|x| x.as_str() == l)?;
            let stat = Stat::ALL.into_iter().find(|x| x.as_str() == s)?;
            Some(Metric::Latency(latency, stat))
        });
        latency.ok_or_else(|| UnknownMetric {
            name: name.to_string(),
            suggestion: crate::yaml::closest(name, &Metric::names()),
        })
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[test]
    fn every_name_parses_back_to_itself() {
        for name in Metric::names() {
            let metric: Metric = name.parse().expect("a metric");
            assert_eq!(metric.to_string(), name);
        }
        for metric in Metric::defaults() {
            assert!(Metric::names().contains(&metric.to_string()));
        }
    }

    #[rstest]
    #[case("ttft.p95", Some("ttft_ms.p95"))]
    #[case("output_tok", Some("output_tok_s"))]
    #[case("zzz", None)]
    fn an_unknown_name_suggests_the_closest(#[case] name: &str, #[case] hint: Option<&str>) {
        let error = name.parse::<Metric>().expect_err("unknown");
        assert_eq!(error.suggestion.as_deref(), hint);
    }
}
