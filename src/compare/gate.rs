//! How strict a comparison is: the allowed change, the confidence, the metrics, and what an
//! inconclusive metric does to the verdict.

use serde::{Deserialize, Serialize};

use super::metric::Metric;

/// What an `inconclusive` metric does to the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum InconclusivePolicy {
    /// Passes, with a warning (the default: a gate should not flap on noise).
    #[default]
    Pass,
    /// Fails like a regression.
    Fail,
}

/// The comparison's settings.
#[derive(Debug, Clone, PartialEq)]
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
}

impl Default for Gate {
    fn default() -> Gate {
        Gate {
            max_regression: 0.10,
            confidence: 0.95,
            metrics: Metric::defaults(),
            max_error_rate_increase: 0.0,
            inconclusive: InconclusivePolicy::Pass,
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
    Metric(#[from] super::metric::UnknownMetric),
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
    fn ranges_are_checked() {
        let gate = |max_regression, confidence| Gate {
            max_regression,
            confidence,
            ..Gate::default()
        };
        assert!(gate(0.1, 0.95).validated().is_ok());
        assert!(gate(1.5, 0.95).validated().is_err());
        assert!(gate(0.1, 0.3).validated().is_err());
        assert!(Gate::parse_metrics("ttft_ms.p95, output_tok_s").is_ok());
        assert!(Gate::parse_metrics("ttft.p95").is_err());
    }
}
