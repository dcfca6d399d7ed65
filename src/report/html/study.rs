//! The simulator study's page, `study.html` beside its CSVs: request scaling per scheduler,
//! replica scaling with its knee marked, and the K-bins sensitivity with the best K marked,
//! self-contained like the run report.

use std::path::{Path, PathBuf};

use super::chart::{Chart, Layer, Stroke};
use super::markup::escape;
use super::{Section, extra_section, page};
use crate::report::ReportError;
use crate::sim::study::StudyRow;
use crate::sim::study::analysis::{Analysis, goodput};

/// The study page's file name.
pub const STUDY_HTML: &str = "study.html";

fn line(label: String, points: Vec<(f64, f64)>, color: usize) -> Layer {
    Layer::Line {
        label,
        points,
        color,
        stroke: Stroke::SolidWithPoints,
    }
}

fn chart(id: &str, title: &str, x_label: &str, y_label: &str, layers: Vec<Layer>) -> Chart {
    Chart {
        id: id.to_string(),
        title: title.to_string(),
        x_label: x_label.to_string(),
        y_label: y_label.to_string(),
        layers,
        y_from_zero: true,
        x_integer: true,
        y_integer: false,
    }
}

fn rows_of<'a>(rows: &'a [StudyRow], step: &str) -> Vec<&'a StudyRow> {
    rows.iter().filter(|r| r.step == step).collect()
}

/// Output tok/s against log10(requests), one line per scheduler and replica count.
fn request_scaling(rows: &[StudyRow]) -> Section {
    let rows = rows_of(rows, "request-scaling");
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for row in rows {
        let label = format!("{} × {}", row.scheduler.as_str(), row.replicas);
        let point = ((row.requests as f64).log10(), row.summary.output_tok_s);
        match series.iter_mut().find(|(l, _)| *l == label) {
            Some((_, points)) => points.push(point),
            None => series.push((label, vec![point])),
        }
    }
    let layers = series
        .into_iter()
        .enumerate()
        .map(|(i, (label, points))| line(label, points, i))
        .collect();
    Section {
        title: "Request scaling".into(),
        text: "Output throughput as the number of requests grows, per scheduler × replicas.".into(),
        charts: vec![chart(
            "study-request-scaling",
            "output tok/s against requests",
            "log10(requests)",
            "output tok/s",
            layers,
        )],
    }
}

/// Throughput and p99 E2E latency against replicas, the knee marked.
fn replica_scaling(rows: &[StudyRow], analysis: &Analysis) -> Section {
    let rows = rows_of(rows, "replica-scaling");
    let throughput: Vec<(f64, f64)> = rows
        .iter()
        .map(|r| (r.replicas as f64, r.summary.output_tok_s))
        .collect();
    let p99_s: Vec<(f64, f64)> = rows
        .iter()
        .map(|r| (r.replicas as f64, r.summary.e2e_ms.p99 / 1000.0))
        .collect();
    let mut layers = vec![line("output tok/s".into(), throughput, 0)];
    if let Some(knee) = analysis.knee_replicas {
        layers.push(Layer::Mark {
            label: format!("knee: {knee} replicas"),
            at: (knee as f64, analysis.knee_output_tok_s),
        });
    }
    Section {
        title: "Replica scaling".into(),
        text: "Output throughput and p99 end-to-end latency against replicas; the knee is the \
               fewest replicas within reach of the best throughput."
            .into(),
        charts: vec![
            chart(
                "study-replica-throughput",
                "output tok/s against replicas",
                "replicas",
                "output tok/s",
                layers,
            ),
            chart(
                "study-replica-latency",
                "p99 E2E latency against replicas",
                "replicas",
                "p99 E2E (s)",
                vec![line("p99 E2E (s)".into(), p99_s, 1)],
            ),
        ],
    }
}

/// Goodput (requests meeting the SLA per second) against K, the best K marked.
fn bins(rows: &[StudyRow], analysis: &Analysis) -> Section {
    let rows = rows_of(rows, "bins");
    let goodput: Vec<(f64, f64)> = rows.iter().map(|r| (r.bins as f64, goodput(r))).collect();
    let mut layers = vec![line("goodput (req/s)".into(), goodput, 2)];
    if let Some(best) = analysis.best_bins {
        layers.push(Layer::Mark {
            label: format!("best K = {best}"),
            at: (best as f64, analysis.best_bins_goodput),
        });
    }
    let replicas = analysis
        .bins_replicas
        .map_or(String::new(), |r| format!(" on {r} replicas"));
    Section {
        title: "K-bins sensitivity".into(),
        text: format!(
            "Multi-bin batching{replicas}: requests meeting the SLA per second against the \
             number of bins K."
        ),
        charts: vec![chart(
            "study-bins",
            "goodput against K",
            "bins (K)",
            "goodput (req/s)",
            layers,
        )],
    }
}

/// The study's page.
pub fn render(rows: &[StudyRow], analysis: &Analysis) -> Result<String, ReportError> {
    let mut body = String::from("<header><h1>llm-stress simulator study</h1><ul>");
    for finding in &analysis.findings {
        body.push_str(&format!("<li>{}</li>", escape(finding)));
    }
    body.push_str("</ul></header>\n");
    for section in [
        request_scaling(rows),
        replica_scaling(rows, analysis),
        bins(rows, analysis),
    ] {
        body.push_str(&extra_section(&section)?);
    }
    Ok(page("llm-stress simulator study", &body))
}

/// Writes `study.html` into `dir` and returns its path.
pub fn write(dir: &Path, rows: &[StudyRow], analysis: &Analysis) -> Result<PathBuf, ReportError> {
    let path = dir.join(STUDY_HTML);
    let html = render(rows, analysis)?;
    std::fs::write(&path, html).map_err(|e| ReportError::io(&path, "write", e))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::study::analysis::analyse;
    use crate::sim::study::{StudyConfig, StudyStep, run_step};

    #[test]
    fn the_study_page_draws_every_step_and_marks_the_knee_and_best_k() {
        let config = StudyConfig::small();
        let mut rows = run_step(&config, StudyStep::RequestScaling).expect("request scaling");
        rows.extend(run_step(&config, StudyStep::ReplicaScaling).expect("replica scaling"));
        let replicas = crate::sim::study::analysis::knee(&rows).unwrap_or(1);
        rows.extend(run_step(&config, StudyStep::Bins { replicas }).expect("bins"));
        let analysis = analyse(&rows);
        let html = render(&rows, &analysis).expect("renders");
        for plot in [
            "study-request-scaling",
            "study-replica-throughput",
            "study-replica-latency",
            "study-bins",
        ] {
            assert!(html.contains(&format!("data-plot=\"{plot}\"")), "{plot}");
        }
        assert_eq!(html.matches("<svg").count(), 4);
        let knee = analysis.knee_replicas.expect("a knee");
        assert!(html.contains(&format!("knee: {knee} replicas")));
        let best = analysis.best_bins.expect("a best K");
        assert!(html.contains(&format!("best K = {best}")));
        // Self-contained: nothing to fetch (an SVG namespace URI is not a fetch).
        for fetch in ["src=\"http", "href=\"http", "url(http"] {
            assert!(!html.contains(fetch), "{fetch}");
        }
    }
}
