//! Service-level objectives a case sets on summary metrics: `ttft_ms.p95 < 500`,
//! `error_rate < 0.01`. Parsed and validated here; judged by [`crate::judge`].

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

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
}

impl Op {
    /// Whether `actual op bound` holds.
    pub fn holds(self, actual: f64, bound: f64) -> bool {
        match self {
            Op::Lt => actual < bound,
            Op::Le => actual <= bound,
            Op::Gt => actual > bound,
            Op::Ge => actual >= bound,
        }
    }

    /// The operator as written: `<`, `<=`, `>`, `>=`.
    pub fn as_str(self) -> &'static str {
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
    /// Metric name as [`crate::metrics::Summary::metric`] knows it.
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

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

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
}
