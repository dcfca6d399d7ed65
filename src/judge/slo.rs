//! The case's SLOs ([`crate::case::Slo`]) judged against a summary.

use super::{Check, CheckSource, Status};
use crate::case::Slo;
use crate::metrics::Summary;

/// Judges the summary against one SLO.
pub fn check(slo: &Slo, summary: &Summary) -> Check {
    let actual = summary.metric(&slo.metric);
    let (status, reason) = match actual {
        None => (
            Status::Fail,
            "not measured (no successful request)".to_string(),
        ),
        Some(a) if slo.op.holds(a, slo.value) => (Status::Pass, format!("{a:.3} {slo}")),
        Some(a) => (
            Status::Fail,
            format!("{a:.3} does not satisfy {} {}", slo.op.as_str(), slo.value),
        ),
    };
    Check::new(
        status,
        CheckSource::Slo,
        slo.to_string(),
        slo.to_string(),
        reason,
    )
    .measured(actual)
    .against(Some(slo.value))
}
