//! A case's charts from its trials' summaries: throughput against load with the knee marked,
//! TTFT and TPOT percentiles against load (per sweep, see [`crate::report::sweep`]), TTFT
//! against ISL, and accuracy against load.

use std::collections::BTreeMap;

use super::chart::{Chart, Layer, Stroke};
use super::markup::id;
use super::{Extras, Overlay};
use crate::case::Kind;
use crate::report::analysis::prefill;
use crate::report::run::RunTrial;
use crate::report::sweep::{Axis, Sweep, isl_series, load_of, sweeps};
use crate::report::{ReportError, TrialReport};

/// Every chart of a case, as HTML figures.
pub fn case_figures<'a>(
    case: &str,
    trials: &[RunTrial],
    extras: &'a Extras,
) -> Result<String, ReportError> {
    let sweeps = sweeps(trials);
    let mut charts = Vec::new();
    for axis in [Axis::Concurrency, Axis::Rate] {
        let on_axis: Vec<&Sweep> = sweeps.iter().filter(|s| s.axis == axis).collect();
        let of_case = |all: &'a [Overlay]| -> Vec<&'a Overlay> {
            all.iter()
                .filter(|o| o.case == case && axis == Axis::Concurrency)
                .collect()
        };
        let overlays = of_case(&extras.throughput_overlays);
        if on_axis.is_empty() && overlays.is_empty() {
            continue;
        }
        charts.push(throughput(case, axis, &on_axis, &overlays));
        if !on_axis.is_empty() {
            charts.push(percentiles(
                case,
                axis,
                &on_axis,
                "TTFT",
                |r| r.summary().and_then(|s| s.ttft_ms),
                &of_case(&extras.ttft_overlays),
            ));
            charts.push(percentiles(
                case,
                axis,
                &on_axis,
                "TPOT",
                |r| r.summary().and_then(|s| s.tpot_ms),
                &of_case(&extras.tpot_overlays),
            ));
        }
    }
    charts.extend(ttft_by_isl(case, trials));
    charts.extend(accuracy_by_load(case, trials));
    let mut html = String::new();
    for chart in charts.iter().filter(|c| !c.is_empty()) {
        html.push_str(&chart.figure()?);
    }
    Ok(html)
}

/// Output tok/s against load, one line per sweep, its knee ringed, and any overlays (such as
/// a simulator's prediction) dashed.
fn throughput(case: &str, axis: Axis, sweeps: &[&Sweep], overlays: &[&Overlay]) -> Chart {
    let mut layers = Vec::new();
    let mut marks = Vec::new();
    for (i, sweep) in sweeps.iter().enumerate() {
        layers.push(Layer::Line {
            label: sweep.label.clone(),
            points: sweep.points(|r| r.summary().map(|s| s.output_tok_s)),
            color: i,
            stroke: Stroke::SolidWithPoints,
        });
        if let Some(k) = sweep.knee() {
            marks.push(Layer::Mark {
                label: format!("knee: {} ({})", axis.describe(k.load), sweep.label),
                at: (k.load, k.output_tok_s),
            });
        }
    }
    for (i, overlay) in overlays.iter().enumerate() {
        layers.push(Layer::Line {
            label: overlay.label.clone(),
            points: overlay.points.clone(),
            color: sweeps.len() + i,
            stroke: Stroke::Dashed,
        });
    }
    layers.extend(marks);
    Chart {
        id: id(&format!("{case}-throughput-{}", axis.name())),
        title: format!("{case}: output throughput against {}", axis.name()),
        x_label: axis.label().into(),
        y_label: "output tok/s".into(),
        layers,
        y_from_zero: true,
        x_integer: axis == Axis::Concurrency,
        y_integer: false,
    }
}

/// A latency's p50, p90 and p99 against load (p50 alone when more than three sweeps share
/// the chart), and any overlays (a prediction's p50, say) dashed.
fn percentiles(
    case: &str,
    axis: Axis,
    sweeps: &[&Sweep],
    metric: &str,
    distribution: fn(&TrialReport) -> Option<crate::metrics::Distribution>,
    overlays: &[&Overlay],
) -> Chart {
    let stats: &[(&str, Stroke)] = if sweeps.len() > 3 {
        &[("p50", Stroke::SolidWithPoints)]
    } else {
        &[
            ("p50", Stroke::SolidWithPoints),
            ("p90", Stroke::Dashed),
            ("p99", Stroke::Dotted),
        ]
    };
    let mut layers = Vec::new();
    for (i, sweep) in sweeps.iter().enumerate() {
        for (stat, stroke) in stats {
            layers.push(Layer::Line {
                label: format!("{} {stat}", sweep.label),
                points: sweep.points(|r| distribution(r).and_then(|d| d.stat(stat))),
                color: i,
                stroke: *stroke,
            });
        }
    }
    for (i, overlay) in overlays.iter().enumerate() {
        layers.push(Layer::Line {
            label: overlay.label.clone(),
            points: overlay.points.clone(),
            color: sweeps.len() + i,
            stroke: Stroke::Dashed,
        });
    }
    Chart {
        id: id(&format!("{case}-{}-{}", metric.to_lowercase(), axis.name())),
        title: format!("{case}: {metric} percentiles against {}", axis.name()),
        x_label: axis.label().into(),
        y_label: format!("{metric} (ms)"),
        layers,
        y_from_zero: true,
        x_integer: axis == Axis::Concurrency,
        y_integer: false,
    }
}

/// Median TTFT against ISL, one line per (kind, mode, OSL, load) with two ISLs or more, and
/// the fitted prefill curve (TTFT = a + b·ISLᵏ) dashed over each with three or more.
fn ttft_by_isl(case: &str, trials: &[RunTrial]) -> Option<Chart> {
    let mut layers = Vec::new();
    for (i, series) in isl_series(trials).into_iter().enumerate() {
        if let Some(fit) = prefill::fit(&series.points) {
            let (first, last) = (series.points[0].0, series.points[series.points.len() - 1].0);
            let curve = (0..=40)
                .map(|step| {
                    let isl = first + (last - first) * f64::from(step) / 40.0;
                    (isl, fit.at(isl))
                })
                .collect();
            layers.push(Layer::Line {
                label: format!("fit: k = {:.2} ({})", fit.k, fit.class.as_str()),
                points: curve,
                color: i,
                stroke: Stroke::Dashed,
            });
        }
        layers.push(Layer::Line {
            label: series.label,
            points: series.points,
            color: i,
            stroke: Stroke::SolidWithPoints,
        });
    }
    (!layers.is_empty()).then(|| Chart {
        id: id(&format!("{case}-ttft-isl")),
        title: format!("{case}: median TTFT against input length"),
        x_label: "ISL (tokens)".into(),
        y_label: "TTFT p50 (ms)".into(),
        layers,
        y_from_zero: true,
        x_integer: true,
        y_integer: false,
    })
}

/// The accuracy of stress trials against their load, with the accuracy trial's score (no
/// load) and the threshold as horizontal lines.
fn accuracy_by_load(case: &str, trials: &[RunTrial]) -> Option<Chart> {
    let mut under_load: BTreeMap<Axis, Vec<(f64, f64)>> = BTreeMap::new();
    let mut threshold = None;
    let mut alone = None;
    // A case with several tasks has several accuracy trials: the stress trials' own baseline
    // (their first task's) says which one is theirs.
    let mut any_accuracy_trial = None;
    for trial in trials {
        let r = &trial.report;
        match (r.meta.kind, r.accuracy_score(), load_of(r)) {
            (Kind::Stress, Some(score), Some((axis, load))) => {
                under_load.entry(axis).or_default().push((load, score));
                threshold = threshold.or(r.accuracy_threshold());
                alone = alone.or(r.accuracy().and_then(|d| d.baseline));
            }
            (Kind::Accuracy, Some(score), _) => any_accuracy_trial = Some(score),
            _ => {}
        }
    }
    let alone = alone.or(any_accuracy_trial);
    if under_load.is_empty() {
        return None;
    }
    let axis = if under_load.contains_key(&Axis::Concurrency) {
        Axis::Concurrency
    } else {
        Axis::Rate
    };
    let mut points = under_load.remove(&axis).unwrap_or_default();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut layers = vec![Layer::Line {
        label: "stress trials (under load)".into(),
        points,
        color: 0,
        stroke: Stroke::SolidWithPoints,
    }];
    if let Some(score) = alone {
        layers.push(Layer::Rule {
            label: "accuracy trial (no load)".into(),
            y: score,
            color: 4,
        });
    }
    if let Some(value) = threshold {
        layers.push(Layer::Rule {
            label: "threshold".into(),
            y: value,
            color: 2,
        });
    }
    Some(Chart {
        id: id(&format!("{case}-accuracy-{}", axis.name())),
        title: format!("{case}: accuracy against {}", axis.name()),
        x_label: axis.label().into(),
        y_label: "score (0–100)".into(),
        layers,
        y_from_zero: false,
        x_integer: axis == Axis::Concurrency,
        y_integer: false,
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::accuracy::summary::ThresholdSummary;
    use crate::report::LoadShape;
    use crate::report::sample::{ReportBuilder, accuracy_summary, sample_report};

    fn at(concurrency: u32, output_tok_s: f64, ttft_p50: f64) -> RunTrial {
        let mut report = sample_report();
        report.meta.trial = format!("demo-chat::c{concurrency}");
        let load = report.load_mut().expect("a load trial");
        load.shape = LoadShape::Closed { concurrency };
        load.summary.output_tok_s = output_tok_s;
        if let Some(ttft) = load.summary.ttft_ms.as_mut() {
            ttft.p50 = ttft_p50;
        }
        RunTrial {
            report,
            dir: PathBuf::new(),
        }
    }

    #[test]
    fn a_sweep_gets_throughput_and_percentile_charts_with_its_knee() {
        let trials = [at(1, 59.0, 470.0), at(2, 64.0, 900.0), at(4, 65.0, 2050.0)];
        let html = case_figures("demo-chat", &trials, &Extras::default()).expect("draws");
        for plot in [
            "data-plot=\"demo-chat-throughput-concurrency\"",
            "data-plot=\"demo-chat-ttft-concurrency\"",
            "data-plot=\"demo-chat-tpot-concurrency\"",
        ] {
            assert!(html.contains(plot), "{plot}");
        }
        assert!(
            html.contains("knee: concurrency 2 (perf closed ISL 128 OSL 16)"),
            "{html}"
        );
    }

    #[test]
    fn one_load_level_is_no_sweep() {
        let html =
            case_figures("demo-chat", &[at(4, 65.0, 20.0)], &Extras::default()).expect("draws");
        assert!(html.is_empty(), "{html}");
    }

    #[test]
    fn ttft_by_isl_needs_two_lengths_at_one_load() {
        let mut long = at(1, 60.0, 90.0);
        long.report.load_mut().expect("a load trial").isl = 1024;
        let trials = [at(1, 59.0, 40.0), long];
        let chart = ttft_by_isl("c", &trials).expect("two lengths");
        assert_eq!(
            chart.layers,
            [Layer::Line {
                label: "perf closed OSL 16, concurrency 1".into(),
                points: vec![(128.0, 40.0), (1024.0, 90.0)],
                color: 0,
                stroke: Stroke::SolidWithPoints,
            }]
        );
    }

    #[test]
    fn three_lengths_or_more_draw_the_fitted_prefill_curve() {
        let chart =
            ttft_by_isl("c", &crate::report::sample::isl_series_run(1.5)).expect("six lengths");
        let [
            Layer::Line {
                label,
                stroke,
                points,
                ..
            },
            Layer::Line { .. },
        ] = chart.layers.as_slice()
        else {
            panic!("a fit and its points: {:?}", chart.layers);
        };
        assert_eq!(*stroke, Stroke::Dashed);
        assert_eq!(label, "fit: k = 1.50 (super-linear)");
        let last = points.last().expect("a curve");
        assert!(
            (last.0 - 4096.0).abs() < 1e-9 && (last.1 - 420.0).abs() < 1.0,
            "{last:?}"
        );
    }

    #[test]
    fn accuracy_is_drawn_against_load_with_the_unloaded_score_and_threshold() {
        let mut stress = at(8, 60.0, 50.0);
        stress.report.meta.kind = Kind::Stress;
        let mut under_load = accuracy_summary(40, 87.5);
        under_load.threshold = Some(ThresholdSummary {
            kind: crate::case::ThresholdKind::Absolute,
            value: 81.6,
            theta: None,
            passed: true,
        });
        stress.report.load_mut().expect("a load trial").accuracy = Some(under_load);
        let alone = RunTrial {
            report: ReportBuilder::accuracy(
                "demo-chat",
                "gsm8k_n40",
                Some(accuracy_summary(40, 95.0)),
            )
            .build(),
            dir: PathBuf::new(),
        };
        let chart = accuracy_by_load("c", &[alone, stress]).expect("a stress trial");
        assert_eq!(chart.layers.len(), 3);
        assert!(matches!(&chart.layers[0], Layer::Line { points, .. } if points == &[(8.0, 87.5)]));
        assert!(matches!(chart.layers[1], Layer::Rule { y, .. } if y == 95.0));
        assert!(matches!(chart.layers[2], Layer::Rule { y, .. } if y == 81.6));
    }

    #[test]
    fn overlays_are_drawn_dashed_over_their_case() {
        let extras = Extras {
            throughput_overlays: vec![Overlay {
                case: "demo-chat".into(),
                label: "simulator".into(),
                points: vec![(1.0, 50.0), (8.0, 70.0)],
            }],
            ..Extras::default()
        };
        let trials = [at(1, 59.0, 470.0), at(2, 64.0, 900.0)];
        let html = case_figures("demo-chat", &trials, &extras).expect("draws");
        assert!(
            html.contains("swatch dashed\" style=\"--c:#F28E2B\"></span>simulator"),
            "{html}"
        );
        let other = case_figures("other", &trials, &extras).expect("draws");
        assert!(!other.contains("simulator"), "{other}");
    }

    #[test]
    fn a_prediction_is_dashed_over_the_throughput_ttft_and_tpot_charts() {
        let measured = [at(1, 59.0, 470.0), at(2, 64.0, 900.0), at(4, 65.0, 2050.0)];
        let predicted = [at(1, 60.0, 450.0), at(2, 66.0, 880.0), at(4, 66.0, 2000.0)];
        let extras = Extras::predicted(&predicted);
        assert_eq!(extras.throughput_overlays.len(), 1);
        assert_eq!(
            extras.ttft_overlays[0].points,
            vec![(1.0, 450.0), (2.0, 880.0), (4.0, 2000.0)]
        );
        assert_eq!(extras.tpot_overlays[0].points.len(), 3);
        let case = &measured[0].report.meta.case;
        assert_eq!(&extras.ttft_overlays[0].case, case);
        let html = case_figures(case, &measured, &extras).expect("draws");
        for plot in ["throughput", "ttft", "tpot"] {
            let start = html
                .find(&format!("data-plot=\"{}-{plot}-concurrency\"", id(case)))
                .unwrap_or_else(|| panic!("no {plot} chart"));
            let figure = &html[start..start + html[start..].find("</figure>").expect("end")];
            assert!(
                figure.contains("swatch dashed") && figure.contains("predicted: "),
                "{plot}: {figure}"
            );
        }
    }
}
