//! How strict a comparison with a baseline is: the allowed change, the confidence, the
//! metrics, and what an inconclusive metric does to the verdict. A case sets it with `gate:`;
//! `llm-stress compare` and `run --baseline` take the same settings as flags.

pub mod metric;

use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use metric::{Latency, Metric, Stat, Throughput, UnknownMetric};

/// What an `inconclusive` metric does to the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InconclusivePolicy {
    /// Passes, with a warning (the default: a gate should not flap on noise).
    #[default]
    Pass,
    /// Fails like a regression.
    Fail,
}

impl FromStr for InconclusivePolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<InconclusivePolicy, String> {
        match text {
            "pass" => Ok(InconclusivePolicy::Pass),
            "fail" => Ok(InconclusivePolicy::Fail),
            _ => Err(format!("`{text}` is not `pass` or `fail`")),
        }
    }
}

/// The comparison's settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "RawGate")]
pub struct Gate {
    /// The largest change that is not a regression, as a fraction (0.10 = 10 %).
    pub max_regression: f64,
    /// Confidence of intervals and tests (0.95: 95 % intervals, p < 0.05).
    pub confidence: f64,
    /// The metrics compared.
    pub metrics: Vec<Metric>,
    /// The largest rise in error rate (a fraction of requests) that is not a regression even
    /// when significant.
    pub max_error_rate_increase: f64,
    /// What an inconclusive metric does.
    pub inconclusive: InconclusivePolicy,
    /// Under `run --baseline` (or `LLM_STRESS_BASELINE`): how many more times a perf trial
    /// with an inconclusive metric runs its load, each time pooling the new requests with
    /// the earlier ones and comparing again, before the outcome is reported.
    pub retries: u32,
}

/// Most reruns `gate.retries` may ask for.
pub const MAX_RETRIES: u32 = 10;

impl Default for Gate {
    fn default() -> Gate {
        Gate {
            max_regression: 0.10,
            confidence: 0.95,
            metrics: Metric::defaults(),
            max_error_rate_increase: 0.0,
            inconclusive: InconclusivePolicy::Pass,
            retries: 0,
        }
    }
}

/// A gate setting that is out of range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GateError {
    /// `max_regression` not in [0, 1).
    #[error("max_regression {0} is not a fraction in [0, 1) (10 % is 0.10)")]
    MaxRegression(f64),
    /// `confidence` not in (0.5, 1).
    #[error("confidence {0} is not between 0.5 and 1 (0.95 is the usual)")]
    Confidence(f64),
    /// A metric name that is not one.
    #[error(transparent)]
    Metric(#[from] UnknownMetric),
    /// A fraction that is not one.
    #[error("{0}")]
    Fraction(String),
    /// `retries` above [`MAX_RETRIES`].
    #[error("retries {0} is more than the cap of {MAX_RETRIES}")]
    Retries(u32),
}

impl Gate {
    /// Checks the ranges.
    pub fn validated(self) -> Result<Gate, GateError> {
        if !(0.0..1.0).contains(&self.max_regression) {
            return Err(GateError::MaxRegression(self.max_regression));
        }
        if !(self.confidence > 0.5 && self.confidence < 1.0) {
            return Err(GateError::Confidence(self.confidence));
        }
        if self.retries > MAX_RETRIES {
            return Err(GateError::Retries(self.retries));
        }
        Ok(self)
    }

    /// The metrics named in a comma-separated list.
    pub fn parse_metrics(list: &str) -> Result<Vec<Metric>, GateError> {
        list.split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.parse().map_err(GateError::from))
            .collect()
    }
}

/// A fraction as YAML gives it: a number (`0.10`) or text (`10%`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Fraction {
    Number(f64),
    Text(String),
}

impl Fraction {
    fn value(&self) -> Result<f64, GateError> {
        match self {
            Fraction::Number(v) => Ok(*v),
            Fraction::Text(t) => parse_fraction(t).map_err(GateError::Fraction),
        }
    }
}

/// `gate:` as written in a case; every key optional.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGate {
    #[serde(default)]
    max_regression: Option<Fraction>,
    #[serde(default)]
    confidence: Option<f64>,
    #[serde(default)]
    metrics: Option<Vec<String>>,
    #[serde(default)]
    max_error_rate_increase: Option<Fraction>,
    #[serde(default)]
    inconclusive: Option<InconclusivePolicy>,
    #[serde(default)]
    retries: Option<u32>,
}

impl TryFrom<RawGate> for Gate {
    type Error = GateError;

    fn try_from(raw: RawGate) -> Result<Gate, GateError> {
        let defaults = Gate::default();
        Gate {
            max_regression: match raw.max_regression {
                Some(f) => f.value()?,
                None => defaults.max_regression,
            },
            confidence: raw.confidence.unwrap_or(defaults.confidence),
            metrics: match raw.metrics {
                Some(names) => names
                    .iter()
                    .map(|n| n.parse().map_err(GateError::from))
                    .collect::<Result<_, _>>()?,
                None => defaults.metrics,
            },
            max_error_rate_increase: match raw.max_error_rate_increase {
                Some(f) => f.value()?,
                None => defaults.max_error_rate_increase,
            },
            inconclusive: raw.inconclusive.unwrap_or(defaults.inconclusive),
            retries: raw.retries.unwrap_or(defaults.retries),
        }
        .validated()
    }
}

/// Reads `10%` or `0.10` as the fraction 0.10.
pub fn parse_fraction(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let (number, scale) = match text.strip_suffix('%') {
        Some(number) => (number, 100.0),
        None => (text, 1.0),
    };
    number
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .map(|v| v / scale)
        .ok_or_else(|| format!("`{text}` is not a fraction such as 10% or 0.10"))
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case("10%", 0.10)]
    #[case("0.1", 0.1)]
    #[case(" 2.5 % ", 0.025)]
    fn fractions_read_as_percent_or_plain(#[case] text: &str, #[case] value: f64) {
        assert!((parse_fraction(text).expect("fraction") - value).abs() < 1e-12);
    }

    #[rstest]
    #[case("ten")]
    #[case("inf")]
    fn a_non_number_is_an_error(#[case] text: &str) {
        assert!(parse_fraction(text).is_err());
    }

    #[test]
    fn a_case_gate_reads_percentages_names_and_defaults() {
        let gate: Gate = serde_saphyr::from_str(
            "max_regression: 5%\nmetrics: [ttft_ms.p95, accuracy]\ninconclusive: fail\nretries: 2\n",
        )
        .expect("a gate");
        assert_eq!(gate.retries, 2);
        assert_eq!(gate.max_regression, 0.05);
        assert_eq!(gate.confidence, 0.95);
        assert_eq!(gate.metrics.len(), 2);
        assert_eq!(gate.inconclusive, InconclusivePolicy::Fail);
        let error = serde_saphyr::from_str::<Gate>("metrics: [ttft.p95]\n")
            .expect_err("unknown metric")
            .to_string();
        assert!(error.contains("did you mean `ttft_ms.p95`"), "{error}");
        assert!(serde_saphyr::from_str::<Gate>("max_regresion: 5%\n").is_err());
    }

    #[test]
    fn ranges_are_checked() {
        let gate = |max_regression, confidence| Gate {
            max_regression,
            confidence,
            ..Gate::default()
        };
        assert!(gate(0.1, 0.95).validated().is_ok());
        assert!(gate(1.5, 0.95).validated().is_err());
        assert!(gate(0.1, 0.3).validated().is_err());
        let many = Gate {
            retries: MAX_RETRIES + 1,
            ..Gate::default()
        };
        assert!(many.validated().is_err());
        assert!(Gate::parse_metrics("ttft_ms.p95, output_tok_s").is_ok());
        assert!(Gate::parse_metrics("ttft.p95").is_err());
    }
}
