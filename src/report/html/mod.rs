//! `report.html`: one self-contained page per run. Inline CSS, inline SVG plots drawn by
//! plotters, one small inline script (a render self-check, see `check.js`); nothing is
//! fetched, so the file can be mailed, attached to a CI run or opened offline.
//!
//! The page: verdicts with their reasons (failed trials first), the run's automatic analysis,
//! then per case its table, analysis, endpoint split and charts (throughput against load with
//! the knee, TTFT/TPOT percentiles against load, TTFT against ISL, accuracy against load,
//! latency CDFs), and per trial its checks, distributions, CDF and request timeline.
//!
//! Others can add to it through [`Extras`]: curves drawn over a case's throughput, TTFT and
//! TPOT charts (a simulator's prediction, say: [`Extras::predicted`]) and whole sections of
//! charts.

pub mod chart;
mod figures;
pub mod markup;
mod over_time;
mod requests;
pub mod study;
mod turns;

use chart::Chart;
use markup::{escape, id, level_badge, table, verdict_badge};

use super::analysis::{Thresholds, analyse, analyse_run};
use super::columns::{LATENCIES, NONE, failure_reasons};
use super::knee::MIN_GAIN;
use super::markdown::{Align, Table};
use super::run::{Run, RunTrial};
use super::summary_md::{
    KNEE_INTRO, PREFILL_INTRO, by_case, case_table, counts, distributions, endpoints,
    in_verdict_order, knees, prefill_scaling, run_analysis_table, trial_analysis,
};
use super::table::Numbers;
use super::{ReportError, TrialReport};

/// The file name of the HTML report, in the run's folder.
pub const REPORT_HTML: &str = "report.html";

/// The most trials of a case drawn together in one CDF; cases with more show each trial's
/// CDF in its own section only.
const CASE_CDF_TRIALS: usize = 8;

/// What other parts of the project add to the report (for instance the simulator's study
/// curves), without the report depending on them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extras {
    /// Curves drawn, dashed, over a case's throughput-against-concurrency chart.
    pub throughput_overlays: Vec<Overlay>,
    /// Curves drawn, dashed, over a case's TTFT-percentiles-against-concurrency chart:
    /// (concurrency, ms).
    pub ttft_overlays: Vec<Overlay>,
    /// Curves drawn, dashed, over a case's TPOT-percentiles-against-concurrency chart:
    /// (concurrency, ms).
    pub tpot_overlays: Vec<Overlay>,
    /// Sections appended after the cases.
    pub sections: Vec<Section>,
}

impl Extras {
    /// A prediction of a run drawn over it: for every closed-loop sweep of `predicted` (trials
    /// in the harness's format, such as `sim predict` writes), its output tok/s, TTFT p50 and
    /// TPOT p50 against concurrency, dashed over the measured case of the same name.
    pub fn predicted(predicted: &[RunTrial]) -> Extras {
        let mut extras = Extras::default();
        for (case, trials) in by_case(predicted) {
            for sweep in super::sweep::sweeps(trials)
                .iter()
                .filter(|s| s.axis == super::sweep::Axis::Concurrency)
            {
                let overlay = |label: String, points: Vec<(f64, f64)>| Overlay {
                    case: case.to_string(),
                    label,
                    points,
                };
                let label = format!("predicted: {}", sweep.label);
                extras.throughput_overlays.push(overlay(
                    label.clone(),
                    sweep.points(|r| r.summary().map(|s| s.output_tok_s)),
                ));
                extras.ttft_overlays.push(overlay(
                    format!("{label} p50"),
                    sweep.points(|r| r.summary().and_then(|s| s.ttft_ms).map(|d| d.p50)),
                ));
                extras.tpot_overlays.push(overlay(
                    format!("{label} p50"),
                    sweep.points(|r| r.summary().and_then(|s| s.tpot_ms).map(|d| d.p50)),
                ));
            }
        }
        extras
    }
}

/// A curve over one of a case's charts: (concurrency, value) points.
#[derive(Debug, Clone, PartialEq)]
pub struct Overlay {
    /// The case whose chart it goes on.
    pub case: String,
    /// Legend text, such as `simulator: predicted`.
    pub label: String,
    /// (concurrency, output tok/s).
    pub points: Vec<(f64, f64)>,
}

/// A section of charts with a short text.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// Heading.
    pub title: String,
    /// A paragraph of plain text (escaped).
    pub text: String,
    /// Its charts.
    pub charts: Vec<Chart>,
}

/// Renders the run's page.
pub fn render(run: &Run, thresholds: &Thresholds, extras: &Extras) -> Result<String, ReportError> {
    let title = format!("llm-stress run {}", run.run_id);
    let mut body = String::new();
    body.push_str(&format!(
        "<header><h1>llm-stress run <code>{}</code></h1><p>{}</p><p class=\"muted\">From \
         <code>{}</code>.</p>",
        escape(&run.run_id),
        escape(&counts(run)),
        escape(&run.dir.display().to_string())
    ));
    if !run.notes.is_empty() {
        body.push_str("<ul class=\"notes\">");
        for note in &run.notes {
            body.push_str(&format!("<li>{}</li>", escape(note)));
        }
        body.push_str("</ul>");
    }
    body.push_str("</header>\n<nav>Cases: ");
    for (case, _) in by_case(&run.trials) {
        body.push_str(&format!(
            "<a href=\"#case-{}\">{}</a>",
            id(case),
            escape(case)
        ));
    }
    for section in &extras.sections {
        body.push_str(&format!(
            "<a href=\"#extra-{}\">{}</a>",
            id(&section.title),
            escape(&section.title)
        ));
    }
    body.push_str("</nav>\n");
    body.push_str(&verdicts(run));
    body.push_str(&analysis(run, thresholds));
    for (case, trials) in by_case(&run.trials) {
        body.push_str(&case_section(case, trials, thresholds, extras)?);
    }
    for section in &extras.sections {
        body.push_str(&extra_section(section)?);
    }
    body.push_str(&footer(thresholds));
    Ok(page(&title, &body))
}

/// A whole self-contained page: inline style, `body`, and the script that checks every plot
/// rendered.
fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <link rel=\"icon\" href=\"data:,\">\n<title>{}</title>\n<style>\n{}</style>\n</head>\n\
         <body data-render=\"pending\">\n{body}<script>\n{}</script>\n</body>\n</html>\n",
        escape(title),
        include_str!("style.css"),
        include_str!("check.js"),
    )
}

/// Writes the page into the run's folder and returns its path.
pub fn write(
    run: &Run,
    thresholds: &Thresholds,
    extras: &Extras,
) -> Result<std::path::PathBuf, ReportError> {
    let path = run.dir.join(REPORT_HTML);
    let html = render(run, thresholds, extras)?;
    std::fs::write(&path, html).map_err(|e| ReportError::io(&path, "write", e))?;
    Ok(path)
}

fn trial_anchor(trial: &RunTrial) -> String {
    format!("trial-{}", id(&trial.name()))
}

/// Every trial's verdict with the reasons of its failed checks, failed trials first.
fn verdicts(run: &Run) -> String {
    let rows: Vec<Vec<String>> = in_verdict_order(&run.trials)
        .into_iter()
        .map(|t| {
            vec![
                verdict_badge(&t.report),
                format!("<a href=\"#{}\">{}</a>", trial_anchor(t), escape(&t.name())),
                escape(&failure_reasons(&t.report, Numbers::Measured)),
            ]
        })
        .collect();
    format!(
        "<section id=\"verdicts\"><h2>Verdicts</h2>{}</section>\n",
        table(&["verdict", "trial", "reasons"], &[], &rows)
    )
}

fn analysis(run: &Run, thresholds: &Thresholds) -> String {
    let analysis = analyse_run(&run.trials, thresholds);
    format!(
        "<section id=\"analysis\"><h2>Analysis</h2><p>Run: {} ({} load trials analysed; \
         advice beside the verdicts, which only targets, SLOs and accuracy thresholds \
         decide)</p>{}</section>\n",
        level_badge(analysis.level()),
        analysis.trials,
        html_table(&run_analysis_table(
            &analysis,
            thresholds,
            Numbers::Measured
        ))
    )
}

/// The CSS class of a cell that starts with a verdict or an analysis level.
fn status_class(text: &str) -> Option<&'static str> {
    let word = text.split_whitespace().next()?;
    Some(match word {
        "PASS" => "pass",
        "FAIL" if text.contains("(expected FAIL)") => "expected",
        "FAIL" | "CRITICAL" => "critical",
        "WARNING" => "warning",
        "NA" | "N/A" => "na",
        _ => return None,
    })
}

/// A summary table as HTML; cells that start with a verdict or level get a coloured badge
/// (the word) and keep the rest as text.
fn html_table(source: &Table) -> String {
    let header: Vec<&str> = source.header().iter().map(String::as_str).collect();
    let numeric: Vec<usize> = source
        .align()
        .iter()
        .enumerate()
        .filter(|(_, a)| **a == Align::Right)
        .map(|(i, _)| i)
        .collect();
    let rows: Vec<Vec<String>> = source
        .rows()
        .iter()
        .map(|row| {
            row.iter()
                .map(|cell| match status_class(cell) {
                    Some(class) => {
                        let (word, rest) = cell.split_once(' ').unwrap_or((cell, ""));
                        let (word, rest) = if class == "expected" {
                            (cell.as_str(), "")
                        } else {
                            (word, rest)
                        };
                        format!(
                            "<span class=\"badge {class}\">{}</span> {}",
                            escape(word),
                            escape(rest)
                        )
                    }
                    None => escape(cell),
                })
                .collect()
        })
        .collect();
    table(&header, &numeric, &rows)
}

fn case_section(
    case: &str,
    trials: &[RunTrial],
    thresholds: &Thresholds,
    extras: &Extras,
) -> Result<String, ReportError> {
    let mut out = format!(
        "<section class=\"case\" id=\"case-{}\"><h2>{}</h2>",
        id(case),
        escape(case)
    );
    out.push_str(&html_table(&case_table(trials, Numbers::Measured)));
    let analysis = trial_analysis(trials, thresholds, Numbers::Measured);
    if !analysis.is_empty() {
        out.push_str("<h3>Analysis</h3>");
        out.push_str(&html_table(&analysis));
    }
    let split = endpoints(trials, Numbers::Measured);
    if !split.is_empty() {
        out.push_str("<h3>Endpoints</h3>");
        out.push_str(&html_table(&split));
    }
    let knees = knees(trials, Numbers::Measured);
    if !knees.is_empty() {
        out.push_str(&format!("<p>{}</p><ul>", escape(KNEE_INTRO)));
        for knee in knees {
            out.push_str(&format!("<li>{}</li>", escape(&knee)));
        }
        out.push_str("</ul>");
    }
    let prefill = prefill_scaling(trials, Numbers::Measured);
    if !prefill.is_empty() {
        out.push_str(&format!("<p>{}</p><ul>", escape(PREFILL_INTRO)));
        for line in prefill {
            out.push_str(&format!("<li>{}</li>", escape(&line)));
        }
        out.push_str("</ul>");
    }
    let mut figures = figures::case_figures(case, trials, extras)?;
    figures.push_str(&case_cdfs(case, trials)?);
    if !figures.is_empty() {
        out.push_str("<h3>Charts</h3><div class=\"figures\">");
        out.push_str(&figures);
        out.push_str("</div>");
    }
    out.push_str("<h3>Latency distributions (ms)</h3>");
    for (label, metric) in LATENCIES {
        let table = distributions(trials, metric, Numbers::Measured);
        if !table.is_empty() {
            out.push_str(&format!("<p>{label}</p>"));
            out.push_str(&html_table(&table));
        }
    }
    out.push_str("<h3>Trials</h3>");
    for trial in trials {
        out.push_str(&trial_section(trial, thresholds)?);
    }
    out.push_str("</section>\n");
    Ok(out)
}

/// TTFT and E2EL CDFs of the case's load trials together, when there are 2 to
/// [`CASE_CDF_TRIALS`] of them.
fn case_cdfs(case: &str, trials: &[RunTrial]) -> Result<String, ReportError> {
    let load: Vec<&RunTrial> = trials
        .iter()
        .filter(|t| t.report.meta.kind.drives_load())
        .collect();
    if load.len() < 2 || load.len() > CASE_CDF_TRIALS {
        return Ok(String::new());
    }
    let mut ttft = Vec::new();
    let mut e2el = Vec::new();
    for trial in load {
        let times = trial.request_times()?;
        let ok = || times.iter().filter(|t| t.error.is_none());
        let label = format!(
            "[{}] {}",
            trial.report.meta.kind.as_str(),
            super::columns::combination(&trial.report)
        );
        ttft.push((label.clone(), ok().filter_map(|t| t.ttft_ms).collect()));
        e2el.push((label, ok().filter_map(|t| t.e2el_ms).collect()));
    }
    let mut out = String::new();
    for chart in [
        requests::case_cdf(case, "TTFT", &ttft),
        requests::case_cdf(case, "E2EL", &e2el),
    ] {
        if !chart.is_empty() {
            out.push_str(&chart.figure()?);
        }
    }
    Ok(out)
}

/// One trial, collapsed: verdict and name; open, its checks, analysis and request charts.
fn trial_section(trial: &RunTrial, thresholds: &Thresholds) -> Result<String, ReportError> {
    let r = &trial.report;
    let mut out = format!(
        "<details class=\"trial\" id=\"{}\"><summary>{} {}</summary>",
        trial_anchor(trial),
        verdict_badge(r),
        escape(&trial.name())
    );
    out.push_str(&format!(
        "<p class=\"muted\">{} · folder <code>{}</code></p>",
        escape(&trial_facts(r)),
        escape(&trial.dir.display().to_string())
    ));
    out.push_str(&checks(r));
    if let Some(analysis) = analyse(r, thresholds) {
        let rows: Vec<Vec<String>> = analysis
            .findings
            .iter()
            .map(|f| {
                vec![
                    escape(f.quantity.label()),
                    level_badge(f.level),
                    escape(&f.value_text()),
                    escape(&f.quantity.rule(thresholds)),
                ]
            })
            .collect();
        out.push_str(&table(
            &["analysis", "level", "value", "thresholds"],
            &[2],
            &rows,
        ));
    }
    if r.meta.kind.drives_load() {
        let times = trial.request_times()?;
        let name = trial.name();
        let cdf = requests::latency_cdf(&name, &times);
        let (timeline, _) = requests::timeline(&name, &times);
        let windows = trial.windows()?;
        let over_time = [
            over_time::throughput(&name, &windows),
            over_time::latency(&name, &windows),
            r.summary()
                .and_then(|s| s.turns.as_ref())
                .and_then(|t| turns::ttft_by_turn(&name, t)),
        ];
        out.push_str("<div class=\"figures\">");
        for chart in [Some(cdf), Some(timeline)]
            .into_iter()
            .chain(over_time)
            .flatten()
        {
            if !chart.is_empty() {
                out.push_str(&chart.figure()?);
            }
        }
        out.push_str("</div>");
    }
    out.push_str("</details>\n");
    Ok(out)
}

/// Model, server, API, mode and when it finished.
fn trial_facts(r: &TrialReport) -> String {
    let mut facts = format!(
        "model {}, server {}, api {}, mode {}, finished {}",
        r.meta.model,
        r.meta.server.as_str(),
        r.meta.api.map_or("-", |a| a.as_str()),
        r.listing().mode,
        r.meta.timestamp
    );
    if let Some(adjusted) = r.load().and_then(|l| l.adjusted.as_ref()) {
        facts.push_str(&format!(
            ", fitted from {}",
            super::wire::adjusted_text(adjusted)
        ));
    }
    facts
}

/// Every check of the trial with its status and reason.
fn checks(r: &TrialReport) -> String {
    if r.verdict.checks.is_empty() {
        return "<p>No checks.</p>".into();
    }
    let number = |v: Option<f64>| v.map_or_else(|| NONE.to_string(), |v| format!("{v:.3}"));
    let rows: Vec<Vec<String>> = r
        .verdict
        .checks
        .iter()
        .map(|c| {
            vec![
                escape(&c.name),
                escape(c.source.as_str()),
                number(c.actual),
                number(c.target),
                format!(
                    "<span class=\"badge {}\">{}</span>",
                    status_class(c.status.as_str()).unwrap_or("na"),
                    c.status.as_str()
                ),
                escape(&c.reason),
            ]
        })
        .collect();
    table(
        &["check", "source", "actual", "target", "status", "reason"],
        &[2, 3],
        &rows,
    )
}

fn extra_section(section: &Section) -> Result<String, ReportError> {
    let mut out = format!(
        "<section class=\"extra\" id=\"extra-{}\"><h2>{}</h2><p>{}</p><div class=\"figures\">",
        id(&section.title),
        escape(&section.title),
        escape(&section.text)
    );
    for chart in section.charts.iter().filter(|c| !c.is_empty()) {
        out.push_str(&chart.figure()?);
    }
    out.push_str("</div></section>\n");
    Ok(out)
}

fn footer(thresholds: &Thresholds) -> String {
    let rules: Vec<String> = super::analysis::Quantity::ALL
        .iter()
        .map(|q| format!("{}: {}", q.label(), q.rule(thresholds)))
        .collect();
    format!(
        "<footer><p>Knee: over a sweep (one kind, mode, ISL and OSL at several loads), the \
         first load whose output tok/s is less than {:.0} % above the previous load's while \
         its median TTFT is higher. Analysis thresholds: {}. Stability = max(0, 1 − (1.5 × \
         error rate + 0.5 × E2EL CV)); drift = the larger of the first-half vs second-half \
         changes of mean TTFT and mean decode rate.</p><p>Made by llm-stress {}. This page \
         fetches nothing; a script at its end checks that every plot rendered and records \
         the result as <code>data-render</code> on the page body.</p></footer>\n",
        MIN_GAIN * 100.0,
        escape(&rules.join("; ")),
        env!("CARGO_PKG_VERSION")
    )
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::report::sample::sample_run;

    #[rstest]
    #[case("PASS", Some("pass"))]
    #[case("FAIL", Some("critical"))]
    #[case("FAIL (expected FAIL)", Some("expected"))]
    #[case("CRITICAL 20.00 %", Some("critical"))]
    #[case("WARNING 0.65", Some("warning"))]
    #[case("N/A", Some("na"))]
    #[case("12.5", None)]
    #[case("", None)]
    fn cells_starting_with_a_status_get_its_colour(
        #[case] text: &str,
        #[case] class: Option<&str>,
    ) {
        assert_eq!(status_class(text), class);
    }

    /// The sample run's trial folders do not exist: only the sections that need no records
    /// can be drawn, so the sample's load trials are turned into accuracy-only ones.
    fn run_without_records() -> Run {
        let mut run = sample_run();
        for trial in &mut run.trials {
            trial.report.meta.kind = crate::case::Kind::Accuracy;
        }
        run
    }

    #[test]
    fn the_page_is_self_contained_with_verdicts_first() {
        let mut run = sample_run();
        run.trials.truncate(1);
        let html = render(&run, &Thresholds::default(), &Extras::default()).expect("renders");
        assert!(html.starts_with("<!DOCTYPE html>"));
        for forbidden in ["src=", "href=\"http", "@import", "url("] {
            assert!(!html.contains(forbidden), "{forbidden}");
        }
        let verdicts = html.find("id=\"verdicts\"").expect("verdicts");
        let case = html.find("class=\"case\"").expect("case");
        assert!(verdicts < case);
        assert!(html.contains("data-render=\"pending\""));
    }

    #[test]
    fn a_missing_records_file_is_an_error_naming_it() {
        let error = render(&sample_run(), &Thresholds::default(), &Extras::default())
            .expect_err("no records")
            .to_string();
        assert!(error.contains("records.jsonl"), "{error}");
    }

    #[test]
    fn extra_sections_are_appended_and_linked() {
        let extras = Extras {
            sections: vec![Section {
                title: "Simulator study".into(),
                text: "Predicted <throughput>".into(),
                charts: vec![Chart {
                    id: "sim-study".into(),
                    title: "predicted".into(),
                    x_label: "concurrency".into(),
                    y_label: "tok/s".into(),
                    layers: vec![chart::Layer::Line {
                        label: "sim".into(),
                        points: vec![(1.0, 10.0), (2.0, 18.0)],
                        color: 0,
                        stroke: chart::Stroke::Dashed,
                    }],
                    y_from_zero: true,
                    x_integer: true,
                    y_integer: false,
                }],
            }],
            ..Extras::default()
        };
        let html =
            render(&run_without_records(), &Thresholds::default(), &extras).expect("renders");
        assert!(
            html.contains("<a href=\"#extra-Simulator-study\">"),
            "{html}"
        );
        assert!(html.contains("Predicted &lt;throughput&gt;"), "{html}");
        assert!(html.contains("data-plot=\"sim-study\""), "{html}");
    }
}
