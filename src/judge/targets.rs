//! The model spec's reference targets at the case's tier and tolerance.

use super::{Check, CheckSource, Status};
use crate::case::{TargetSpec, Theoretical};
use crate::metrics::Summary;

/// Checks against a reference entry's theoretical targets at the case's tier and tolerance.
/// TTFT target = theoretical / tier (lower is better, PASS when ratio < 1 + tolerance);
/// throughput targets = theoretical × tier (PASS when ratio > 1 − tolerance).
pub fn target_checks(
    targets: Option<&Theoretical>,
    spec: &TargetSpec,
    summary: &Summary,
) -> Vec<Check> {
    let p = spec.tier.fraction();
    let ttft = summary.ttft_ms.map(|d| d.mean);
    let rows: [(&str, Option<f64>, Option<f64>, bool); 3] = [
        (
            "ttft_ms.mean",
            ttft,
            targets.and_then(|t| t.ttft_ms).map(|t| t / p),
            false,
        ),
        (
            "tput_user",
            summary.tpot_ms.map(|_| summary.tput_user),
            targets.and_then(|t| t.tput_user).map(|t| t * p),
            true,
        ),
        (
            "output_tok_s",
            (summary.requests_ok > 0).then_some(summary.output_tok_s),
            targets.and_then(|t| t.tput).map(|t| t * p),
            true,
        ),
    ];
    rows.into_iter()
        .map(|(name, actual, target, higher_is_better)| {
            target_check(name, actual, target, higher_is_better, spec)
        })
        .collect()
}

fn target_check(
    name: &str,
    actual: Option<f64>,
    target: Option<f64>,
    higher_is_better: bool,
    spec: &TargetSpec,
) -> Check {
    let tol = spec.tolerance;
    let tier = spec.tier.as_str();
    let rule = if higher_is_better {
        format!("actual/target > {:.2} ({tier} tier)", 1.0 - tol)
    } else {
        format!("actual/target < {:.2} ({tier} tier)", 1.0 + tol)
    };
    let (ratio, status, reason) = match (actual, target) {
        (_, None) => (
            None,
            Status::NotApplicable,
            "no reference target for this combination".to_string(),
        ),
        (None, Some(_)) => (None, Status::Fail, "not measured".to_string()),
        (Some(a), Some(t)) if t > 0.0 => {
            let ratio = a / t;
            let ok = if higher_is_better {
                ratio > 1.0 - tol
            } else {
                ratio < 1.0 + tol
            };
            (
                Some(ratio),
                Status::of(ok),
                format!("{a:.3} vs target {t:.3}: ratio {ratio:.3}, needs {rule}"),
            )
        }
        (Some(_), Some(t)) => (
            None,
            Status::NotApplicable,
            format!("target {t} is not positive"),
        ),
    };
    let rule = if target.is_some() {
        rule
    } else {
        "no target".to_string()
    };
    Check::new(
        status,
        CheckSource::Target,
        format!("{name} (target)"),
        rule,
        reason,
    )
    .measured(actual)
    .against(target)
    .with_ratio(ratio)
}

#[cfg(test)]
pub(super) mod tests {
    use rstest::rstest;

    use super::*;
    use crate::case::Tier;
    use crate::metrics::Distribution;

    pub(crate) fn summary(ttft_mean: f64, tput_user: f64, output_tok_s: f64) -> Summary {
        Summary {
            requests_ok: 4,
            ttft_ms: Some(Distribution {
                count: 4,
                mean: ttft_mean,
                p95: ttft_mean * 1.5,
                ..Default::default()
            }),
            tpot_ms: Some(Distribution {
                count: 4,
                mean: 1000.0 / tput_user,
                ..Default::default()
            }),
            tput_user,
            output_tok_s,
            ..Default::default()
        }
    }

    #[rstest]
    // theoretical TTFT 100 ms at the functional tier (0.10) → target 1000 ms.
    #[case(Tier::Functional, 0.10, 1050.0, Status::Pass)]
    #[case(Tier::Functional, 0.10, 1100.0, Status::Fail)]
    #[case(Tier::Target, 0.10, 109.0, Status::Pass)]
    #[case(Tier::Target, 0.10, 110.0, Status::Fail)]
    #[case(Tier::Complete, 0.0, 199.0, Status::Pass)]
    fn ttft_target_scales_by_tier(
        #[case] tier: Tier,
        #[case] tolerance: f64,
        #[case] measured: f64,
        #[case] expected: Status,
    ) {
        let theoretical = Theoretical {
            ttft_ms: Some(100.0),
            tput_user: None,
            tput: None,
        };
        let spec = TargetSpec { tier, tolerance };
        let checks = target_checks(Some(&theoretical), &spec, &summary(measured, 50.0, 50.0));
        assert_eq!(checks[0].status, expected, "{:?}", checks[0]);
        assert_eq!(checks[1].status, Status::NotApplicable);
    }

    #[rstest]
    // theoretical 200 tok/s at the complete tier (0.5) → target 100 tok/s, tolerance 10 %.
    #[case(91.0, Status::Pass)]
    #[case(90.0, Status::Fail)]
    fn throughput_targets_scale_by_tier(#[case] measured: f64, #[case] expected: Status) {
        let theoretical = Theoretical {
            ttft_ms: None,
            tput_user: Some(200.0),
            tput: Some(200.0),
        };
        let spec = TargetSpec {
            tier: Tier::Complete,
            tolerance: 0.10,
        };
        let checks = target_checks(
            Some(&theoretical),
            &spec,
            &summary(10.0, measured, measured),
        );
        assert_eq!(checks[1].status, expected);
        assert_eq!(checks[2].status, expected);
    }
}
