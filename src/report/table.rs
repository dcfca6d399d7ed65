//! The trial's summary table as markdown-style plain text: parameters, metrics, checks and the
//! verdict. Printed by the CLI, used as a failed test's message and, redacted, stored as an
//! insta snapshot.
//!
//! In [`Numbers::Redacted`] mode every measured number is a fixed placeholder ([`MS`],
//! [`NUM`], [`ERRORS`]) and each check shows its `rule` (which holds no measured number)
//! instead of its `reason`. Parameters, targets, check names, statuses and the verdict are
//! printed as they are, so the redacted table is the same on every run of an unchanged case
//! and changes when the matrix, a target or an outcome does. The run id and timestamp are not
//! printed, nor are the runs that a gate's `retries` added (how many there are depends on what
//! was measured). A sim trial's numbers come from virtual time and are printed exactly in both
//! modes, except its wall time.

use super::attempts::{Attempt, AttemptCause, FIGURES, MedianRange};
use super::markdown::{Align, Table, cell};
use super::sim::SimStepReport;
use super::wire::adjusted_text;
use super::{LoadBody, LoadShape, TrialBody, TrialReport};
use crate::accuracy::summary::AccuracySummary;
use crate::metrics::consistency::{Consistency, Spread};
use crate::metrics::{Distribution, PrefixSummary, TurnSummary};
use crate::server_metrics::Reading;
use crate::server_metrics::ServerMetrics;

/// Whether measured numbers are printed or replaced by placeholders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Numbers {
    /// Print what was measured.
    Measured,
    /// Print placeholders instead of anything measured.
    Redacted,
}

/// Placeholder of a measured latency in milliseconds.
pub const MS: &str = "<ms>";
/// Placeholder of any other measured number.
pub const NUM: &str = "<num>";
/// Placeholder of the measured failures by class.
pub const ERRORS: &str = "<errors>";
/// Shown, in measured mode, for a stress trial whose run has no score of its case's accuracy
/// trial (it did not run, or has not finished).
pub const NO_BASELINE: &str = "none: no accuracy trial of the case in this run";

/// The latency metrics, as labelled in the table, with their summary names.
const LATENCIES: [(&str, &str); 4] = [
    ("ttft", "ttft_ms"),
    ("tpot", "tpot_ms"),
    ("itl", "itl_ms"),
    ("e2el", "e2el_ms"),
];

/// Open-loop latencies: from the intended send time, and the client's lateness.
const OPEN_LOOP_LATENCIES: [(&str, &str); 3] = [
    ("ttft (intended)", "ttft_intended_ms"),
    ("e2el (intended)", "e2el_intended_ms"),
    ("send lateness", "lateness_ms"),
];

/// The server's own timings (llama-server's `timings`), shown when the server reports them.
const SERVER_LATENCIES: [(&str, &str); 3] = [
    ("server prompt", "server_prompt_ms"),
    ("server tpot", "server_tpot_ms"),
    ("ttft - server prompt", "server_wait_ms"),
];

/// The statistics shown per latency metric.
const STATS: [&str; 9] = ["mean", "std", "p5", "p25", "p50", "p90", "p95", "p99", "cv"];

/// Shown for a value that does not exist.
const NONE: &str = "-";

/// A measured number, or its placeholder.
fn measured(numbers: Numbers, placeholder: &str, text: impl FnOnce() -> String) -> String {
    match numbers {
        Numbers::Measured => text(),
        Numbers::Redacted => placeholder.to_string(),
    }
}

/// A measured number that may be absent: `-` when absent, else the number or its placeholder.
fn measured_opt(
    numbers: Numbers,
    placeholder: &str,
    value: Option<f64>,
    format: impl FnOnce(f64) -> String,
) -> String {
    match value {
        None => NONE.to_string(),
        Some(v) => measured(numbers, placeholder, || format(v)),
    }
}

/// A value in its shortest form with at most four decimals: `500`, `0.01`, `1.2346`.
fn plain(value: f64) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    let text = format!("{value:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_string()
    } else {
        text.to_string()
    }
}

fn f3(value: f64) -> String {
    format!("{value:.3}")
}

/// Appends an aligned table. Column widths come from the cells, so in redacted mode (where
/// every measured cell is a placeholder) they do not depend on what was measured.
fn push_table(out: &mut String, header: &[&str], align: &[Align], rows: &[Vec<String>]) {
    let columns: Vec<(&str, Align)> = header.iter().copied().zip(align.iter().copied()).collect();
    let mut table = Table::new(&columns);
    for row in rows {
        table.row(row.clone());
    }
    out.push_str(&table.render());
}

fn name_value_table(out: &mut String, header: [&str; 2], rows: Vec<(&str, String)>) {
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|(name, value)| vec![name.to_string(), value])
        .collect();
    push_table(out, &header, &[Align::Left, Align::Right], &rows);
}

fn parameters(out: &mut String, report: &TrialReport) {
    out.push_str("### Parameters\n\n");
    let mut rows = identity(report);
    match &report.body {
        TrialBody::Accuracy(body) => {
            if let Some(accuracy) = &body.accuracy {
                rows.extend([
                    ("task", accuracy.task.clone()),
                    ("dataset", accuracy.dataset.clone()),
                    ("questions", accuracy.n.to_string()),
                ]);
            }
            rows.push(("concurrency", body.concurrency.to_string()));
        }
        TrialBody::Load(load) => rows.extend(load_parameters(load)),
        TrialBody::Sim(_) => {}
    }
    push_parameters(out, rows);
}

/// A two-column table of named parameters.
fn push_parameters(out: &mut String, rows: Vec<(&'static str, String)>) {
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|(name, value)| vec![name.to_string(), value])
        .collect();
    push_table(
        out,
        &["parameter", "value"],
        &[Align::Left, Align::Left],
        &rows,
    );
}

/// The rows every trial's parameters start with: what ran, against what.
fn identity(report: &TrialReport) -> Vec<(&'static str, String)> {
    vec![
        ("trial", report.meta.trial.clone()),
        ("kind", report.meta.kind.as_str().to_string()),
        ("case", report.meta.case.clone()),
        ("model", report.meta.model.clone()),
        ("server", report.meta.server.as_str().to_string()),
        (
            "api",
            report.meta.api.map_or(NONE, |a| a.as_str()).to_string(),
        ),
    ]
}

/// The load's parameters: mode, lengths, concurrency or users, rate, prompts, adjustment.
fn load_parameters(load: &LoadBody) -> Vec<(&'static str, String)> {
    vec![
        ("mode", load.shape.mode().as_str().to_string()),
        ("ISL", load.isl.to_string()),
        ("OSL", load.osl.to_string()),
        match load.shape {
            LoadShape::Open {
                max_in_flight: None,
                ..
            } => ("max in flight", "unbounded".to_string()),
            LoadShape::Open {
                max_in_flight: Some(cap),
                ..
            } => ("max in flight", cap.to_string()),
            LoadShape::Users { users } => ("users", users.to_string()),
            LoadShape::Closed { concurrency } => ("concurrency", concurrency.to_string()),
            LoadShape::Consistency => ("concurrency", "1".to_string()),
            LoadShape::Sessions { .. } => ("max in flight", "unbounded".to_string()),
        },
        (
            "rate",
            match load.shape {
                LoadShape::Sessions { rate } => format!("{rate} sessions/s"),
                shape => shape
                    .rate()
                    .map_or_else(|| NONE.to_string(), |r| format!("{r} req/s")),
            },
        ),
        ("prompts", load.num_prompts.to_string()),
        (
            "adjusted",
            load.adjusted
                .as_ref()
                .map_or_else(|| NONE.to_string(), adjusted_text),
        ),
    ]
}

/// The accuracy phase: each filter's score (the threshold and θ on the judged one), then the
/// failed requests and, for stress trials, how many answers came back under load and the
/// accuracy trial's score.
fn accuracy(out: &mut String, accuracy: &AccuracySummary, numbers: Numbers) {
    out.push_str("### Accuracy\n\n");
    let header = ["dataset", "filter", "n", "score", "threshold", "θ"];
    let align = [
        Align::Left,
        Align::Left,
        Align::Right,
        Align::Right,
        Align::Right,
        Align::Right,
    ];
    let rows: Vec<Vec<String>> = accuracy
        .filters
        .iter()
        .map(|f| {
            let judged = f.filter == accuracy.judged_filter;
            let threshold = accuracy.threshold.as_ref().filter(|_| judged);
            vec![
                cell(&accuracy.dataset),
                if judged {
                    format!("{} (judged)", f.filter)
                } else {
                    f.filter.clone()
                },
                accuracy.n.to_string(),
                measured(numbers, NUM, || format!("{:.2}", f.score)),
                threshold.map_or_else(
                    || NONE.to_string(),
                    |t| format!("{:.2} ({})", t.value, t.kind.as_str()),
                ),
                threshold
                    .and_then(|t| t.theta)
                    .map_or_else(|| NONE.to_string(), |theta| format!("{theta:.2}")),
            ]
        })
        .collect();
    push_table(out, &header, &align, &rows);
    out.push('\n');
    let mut rows = vec![(
        "failed requests (scored wrong)",
        measured(numbers, NUM, || accuracy.errors.to_string()),
    )];
    if let Some(under_load) = accuracy.under_load {
        rows.push((
            "answers back while the load ran",
            measured(numbers, NUM, || format!("{under_load} of {}", accuracy.n)),
        ));
        // Whether the accuracy trial's score is known depends on which trials ran in the
        // run (and in which process), so a redacted table does not say.
        let change = accuracy.baseline.zip(accuracy.score()).map(|(b, s)| s - b);
        rows.push((
            "accuracy trial's score (this run)",
            measured(numbers, NUM, || {
                accuracy
                    .baseline
                    .map_or_else(|| NO_BASELINE.to_string(), |b| format!("{b:.2}"))
            }),
        ));
        rows.push((
            "change under load (points)",
            measured(numbers, NUM, || {
                change.map_or_else(|| NONE.to_string(), |c| format!("{c:+.2}"))
            }),
        ));
    }
    name_value_table(out, ["accuracy", "value"], rows);
}

fn latency_cell(numbers: Numbers, distribution: Option<&Distribution>, stat: &str) -> String {
    match numbers {
        // Whether a distribution exists can depend on timing (chunks read together leave no
        // inter-token gap), so a redacted table does not say.
        Numbers::Redacted => MS.to_string(),
        Numbers::Measured => distribution
            .and_then(|d| d.stat(stat))
            .map_or_else(|| NONE.to_string(), f3),
    }
}

fn metrics(out: &mut String, load: &LoadBody, numbers: Numbers) {
    let s = &load.summary;
    out.push_str("### Metrics\n\n");
    let mut header = vec!["latency (ms)"];
    header.extend(STATS);
    let mut align = vec![Align::Left];
    align.extend([Align::Right; STATS.len()]);
    let open_loop = load.shape.mode() == crate::case::LoadMode::Open;
    // Whether the server reports timings depends on the server, not on the measurement.
    let server_timed = s.server_timing.is_some();
    let rows: Vec<Vec<String>> = LATENCIES
        .iter()
        .chain(OPEN_LOOP_LATENCIES.iter().filter(|_| open_loop))
        .chain(SERVER_LATENCIES.iter().filter(|_| server_timed))
        .map(|(label, metric)| {
            let distribution = s.distribution(metric);
            let mut row = vec![label.to_string()];
            row.extend(
                STATS
                    .iter()
                    .map(|stat| latency_cell(numbers, distribution, stat)),
            );
            row
        })
        .collect();
    push_table(out, &header, &align, &rows);
    out.push('\n');

    let num = |value: f64, format: fn(f64) -> String| measured(numbers, NUM, || format(value));
    let count = |value: u64| measured(numbers, NUM, || value.to_string());
    name_value_table(
        out,
        ["throughput", "value"],
        vec![
            ("input tok/s", num(s.input_tok_s, f3)),
            ("output tok/s", num(s.output_tok_s, f3)),
            ("req/s", num(s.req_s, f3)),
            ("tput_user", num(s.tput_user, f3)),
        ],
    );
    out.push('\n');

    let errors = measured(numbers, ERRORS, || {
        if s.errors.is_empty() {
            "none".to_string()
        } else {
            s.errors
                .iter()
                .map(|(class, n)| format!("{} {n}", class.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        }
    });
    let mut rows = vec![
        ("requests ok", count(s.requests_ok)),
        ("requests failed", count(s.requests_failed)),
        ("error rate", num(s.error_rate, |v| format!("{v:.4}"))),
        ("errors by class", errors),
        ("input tokens", count(s.input_tokens)),
        ("output tokens", count(s.output_tokens)),
        ("duration s", num(s.duration_s, f3)),
        ("estimated token counts", count(s.estimated_token_counts)),
        ("token count mismatches", count(s.token_count_mismatches)),
    ];
    if open_loop {
        rows.push((
            "requested rate",
            s.requested_rate.map_or_else(|| NONE.to_string(), f3),
        ));
        rows.push(("send rate", num(s.send_rate, f3)));
        rows.push(("dropped arrivals", count(s.dropped)));
    }
    // Whether drift could be computed depends on how many requests succeeded: a redacted
    // table does not say.
    let drift = |value: fn(&crate::metrics::Drift) -> String| {
        measured(numbers, NUM, || {
            s.drift.as_ref().map_or_else(|| NONE.to_string(), value)
        })
    };
    rows.push((
        "ttft drift (2nd vs 1st half)",
        drift(|d| format!("{:+.1} %", d.ttft_change * 100.0)),
    ));
    rows.push((
        "decode drift (2nd vs 1st half)",
        drift(|d| format!("{:+.1} %", d.decode_change * 100.0)),
    ));
    rows.push((
        "drift beyond 10 %",
        drift(|d| if d.flagged { "yes" } else { "no" }.to_string()),
    ));
    name_value_table(out, ["requests", "value"], rows);
    if !load.endpoints.is_empty() {
        out.push('\n');
        endpoints(out, load, numbers);
    }
}

/// Shared prefixes: TTFT of the cold requests (the first of each group) against the shared
/// ones, and the tokens the server says it took from its cache.
fn shared_prefix(out: &mut String, prefix: &PrefixSummary, numbers: Numbers) {
    out.push_str("### Shared prefix\n\n");
    let header = ["ttft (ms)", "requests", "mean", "p50", "p90", "p99"];
    let mut align = vec![Align::Left];
    align.extend([Align::Right; 5]);
    let row = |label: &str, requests: u64, d: Option<&Distribution>| {
        let mut row = vec![
            label.to_string(),
            measured(numbers, NUM, || requests.to_string()),
        ];
        row.extend(["mean", "p50", "p90", "p99"].map(|stat| latency_cell(numbers, d, stat)));
        row
    };
    let rows = vec![
        row(
            "cold (first of its group)",
            prefix.requests_cold,
            prefix.cold_ttft_ms.as_ref(),
        ),
        row(
            "shared (prefix sent before)",
            prefix.requests_shared,
            prefix.shared_ttft_ms.as_ref(),
        ),
    ];
    push_table(out, &header, &align, &rows);
    out.push('\n');
    name_value_table(
        out,
        ["prefix", "value"],
        vec![
            ("groups", prefix.groups.to_string()),
            (
                "shared ÷ cold mean TTFT",
                measured_opt(numbers, NUM, prefix.shared_over_cold, f3),
            ),
            (
                "server cached tokens",
                measured_opt(
                    numbers,
                    NUM,
                    prefix.server_cached_tokens.map(|n| n as f64),
                    |n| format!("{n:.0}"),
                ),
            ),
        ],
    );
}

/// Multi-turn conversations: TTFT of the first turns against the later ones (which carry the
/// history), then by turn position, and the tokens the server says it took from its cache.
/// Every measured cell is redacted, absent or not (whether a turn succeeded depends on the
/// run).
fn conversations(out: &mut String, turns: &TurnSummary, numbers: Numbers) {
    out.push_str("### Conversations (TTFT by turn)\n\n");
    let header = [
        "ttft (ms)",
        "requests",
        "p50",
        "p95",
        "prompt tokens (mean)",
        "cached tokens",
    ];
    let mut align = vec![Align::Left];
    align.extend([Align::Right; 5]);
    let optional = |value: Option<f64>, format: fn(f64) -> String| {
        measured(numbers, NUM, || {
            value.map_or_else(|| NONE.to_string(), format)
        })
    };
    let whole = |n: f64| format!("{n:.0}");
    let count = |n: u64| measured(numbers, NUM, || n.to_string());
    let row = |label: String,
               requests: u64,
               d: Option<&Distribution>,
               prompt: Option<f64>,
               cached: Option<u64>| {
        vec![
            label,
            count(requests),
            latency_cell(numbers, d, "p50"),
            latency_cell(numbers, d, "p95"),
            optional(prompt, whole),
            optional(cached.map(|n| n as f64), whole),
        ]
    };
    let first = turns.by_turn.iter().find(|p| p.turn == 1);
    let later: Vec<_> = turns.by_turn.iter().filter(|p| p.turn > 1).collect();
    let sum_cached = |ps: &[&crate::metrics::turns::TurnPosition]| {
        let found: Vec<u64> = ps.iter().filter_map(|p| p.cached_tokens).collect();
        (!found.is_empty()).then(|| found.iter().sum())
    };
    let mut rows = vec![
        row(
            "turn 1".into(),
            first.map_or(0, |p| p.requests),
            turns.first_ttft_ms.as_ref(),
            first.and_then(|p| p.prompt_tokens_mean),
            first.and_then(|p| p.cached_tokens),
        ),
        row(
            "turns ≥ 2".into(),
            later.iter().map(|p| p.requests).sum(),
            turns.later_ttft_ms.as_ref(),
            None,
            sum_cached(&later),
        ),
    ];
    rows.extend(turns.by_turn.iter().filter(|p| p.turn > 1).map(|p| {
        row(
            format!("turn {}", p.turn),
            p.requests,
            p.ttft_ms.as_ref(),
            p.prompt_tokens_mean,
            p.cached_tokens,
        )
    }));
    push_table(out, &header, &align, &rows);
    out.push('\n');
    let mut summary = vec![
        ("started", count(turns.conversations)),
        ("completed", count(turns.conversations_completed)),
    ];
    // Only a run whose conversations reached the model's context has the row.
    if turns.conversations_context_full > 0 {
        summary.push((
            "ended at max_context (not failures)",
            count(turns.conversations_context_full),
        ));
    }
    summary.extend([
        (
            "turns ≥ 2 ÷ turn 1 p50 TTFT",
            optional(turns.later_over_first_p50, f3),
        ),
        (
            "server cached tokens",
            optional(turns.server_cached_tokens.map(|n| n as f64), whole),
        ),
    ]);
    name_value_table(out, ["conversations", "value"], summary);
}

/// A consistency run: mean ± std and CV of TTFT and decode rate, the halves' drift and the
/// reading. Shown for every consistency trial (a redacted table does not say whether enough
/// requests succeeded to measure it).
fn consistency(out: &mut String, load: &LoadBody, numbers: Numbers) {
    out.push_str("### Consistency (the same prompt, one request at a time)\n\n");
    let c = load.summary.consistency.as_ref();
    let spread = |pick: fn(&Consistency) -> Option<Spread>| {
        measured(numbers, NUM, || {
            c.and_then(pick)
                .map_or_else(|| NONE.to_string(), |s| s.describe())
        })
    };
    let change = |pick: fn(&crate::metrics::Drift) -> f64| {
        measured(numbers, NUM, || {
            c.and_then(|c| c.drift.as_ref()).map_or_else(
                || NONE.to_string(),
                |d| format!("{:+.1} %", pick(d) * 100.0),
            )
        })
    };
    let reading = measured(numbers, NUM, || {
        c.map_or_else(|| NONE.to_string(), |c| c.reading.describe().to_string())
    });
    name_value_table(
        out,
        ["quantity", "value"],
        vec![
            ("TTFT ms (mean ± std)", spread(|c| Some(c.ttft_ms))),
            ("decode tok/s (mean ± std)", spread(|c| c.decode_tok_s)),
            ("TTFT 2nd vs 1st half", change(|d| d.ttft_change)),
            ("decode 2nd vs 1st half", change(|d| d.decode_change)),
            ("reading", reading),
        ],
    );
}

fn endpoints(out: &mut String, load: &LoadBody, numbers: Numbers) {
    let header = [
        "endpoint",
        "ok",
        "failed",
        "ttft p50",
        "ttft p99",
        "e2el p50",
        "e2el p99",
        "output tok/s",
    ];
    let mut align = vec![Align::Left];
    align.extend([Align::Right; 7]);
    let rows: Vec<Vec<String>> = load
        .endpoints
        .iter()
        .map(|e| {
            let s = &e.summary;
            vec![
                e.name.clone(),
                measured(numbers, NUM, || s.requests_ok.to_string()),
                measured(numbers, NUM, || s.requests_failed.to_string()),
                latency_cell(numbers, s.ttft_ms.as_ref(), "p50"),
                latency_cell(numbers, s.ttft_ms.as_ref(), "p99"),
                latency_cell(numbers, s.e2el_ms.as_ref(), "p50"),
                latency_cell(numbers, s.e2el_ms.as_ref(), "p99"),
                measured(numbers, NUM, || f3(s.output_tok_s)),
            ]
        })
        .collect();
    push_table(out, &header, &align, &rows);
}

/// A load that ran more than once: each run's headline figures, then their median and
/// range (the metrics above pool every run).
fn runs(out: &mut String, attempts: &[Attempt], numbers: Numbers) {
    out.push_str("### Runs\n\n");
    let mut header = vec!["run", "why", "ok", "failed"];
    header.extend(FIGURES.iter().map(|(name, _)| *name));
    let mut align = vec![Align::Left, Align::Left];
    align.extend(vec![Align::Right; header.len() - 2]);
    let mut rows: Vec<Vec<String>> = attempts
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let mut row = vec![
                (i + 1).to_string(),
                a.cause.as_str().to_string(),
                measured(numbers, NUM, || a.requests_ok.to_string()),
                measured(numbers, NUM, || a.requests_failed.to_string()),
            ];
            row.extend(
                FIGURES
                    .iter()
                    .map(|(_, figure)| measured_opt(numbers, NUM, figure(a), f3)),
            );
            row
        })
        .collect();
    let spreads: Vec<Option<MedianRange>> = FIGURES
        .iter()
        .map(|(_, figure)| MedianRange::of(attempts.iter().filter_map(figure)))
        .collect();
    let mut median = vec![
        "median".to_string(),
        String::new(),
        String::new(),
        String::new(),
    ];
    median.extend(
        spreads
            .iter()
            .map(|s| measured_opt(numbers, NUM, s.map(|s| s.median), f3)),
    );
    let mut range = vec![
        "range".to_string(),
        String::new(),
        String::new(),
        String::new(),
    ];
    range.extend(spreads.iter().map(|s| match s {
        None => NONE.to_string(),
        Some(s) => measured(numbers, NUM, || format!("{}–{}", f3(s.min), f3(s.max))),
    }));
    rows.push(median);
    rows.push(range);
    push_table(out, &header, &align, &rows);
}

/// The servers' own metrics: gauges by mean and maximum, counters by their increase.
fn server_metrics(out: &mut String, metrics: &[ServerMetrics], numbers: Numbers) {
    out.push_str("### Server metrics\n\n");
    let several = metrics.len() > 1;
    let mut rows = Vec::new();
    for server in metrics {
        let prefix = if several {
            format!("{}: ", server.endpoint)
        } else {
            String::new()
        };
        if let Some(reason) = &server.unavailable {
            let why = match numbers {
                Numbers::Measured => reason.clone(),
                Numbers::Redacted => "not available".to_string(),
            };
            rows.push(vec![
                format!("{prefix}(none)"),
                why,
                NONE.into(),
                NONE.into(),
                NONE.into(),
                NONE.into(),
            ]);
            continue;
        }
        for metric in &server.metrics {
            let num = |value: f64| measured(numbers, NUM, || f3(value));
            let (mean, max, increase, per_s) = match metric.reading {
                Reading::Gauge { mean, max, .. } => {
                    (num(mean), num(max), NONE.to_string(), NONE.to_string())
                }
                Reading::Counter { increase, per_s } => (
                    NONE.to_string(),
                    NONE.to_string(),
                    num(increase),
                    num(per_s),
                ),
            };
            rows.push(vec![
                format!("{prefix}{}", metric.label),
                cell(&metric.name),
                mean,
                max,
                increase,
                per_s,
            ]);
        }
    }
    let header = ["server metric", "name", "mean", "max", "increase", "per s"];
    let align = [
        Align::Left,
        Align::Left,
        Align::Right,
        Align::Right,
        Align::Right,
        Align::Right,
    ];
    push_table(out, &header, &align, &rows);
}

fn checks(out: &mut String, report: &TrialReport, numbers: Numbers) {
    out.push_str("### Checks\n\n");
    if report.verdict.checks.is_empty() {
        out.push_str("no checks\n");
        return;
    }
    let why = match numbers {
        Numbers::Measured => "reason",
        Numbers::Redacted => "rule",
    };
    let header = [
        "check", "source", "actual", "target", "ratio", "status", why,
    ];
    let align = [
        Align::Left,
        Align::Left,
        Align::Right,
        Align::Right,
        Align::Right,
        Align::Left,
        Align::Left,
    ];
    let rows: Vec<Vec<String>> = report
        .verdict
        .checks
        .iter()
        .map(|check| {
            vec![
                check.name.clone(),
                check.source.as_str().to_string(),
                measured_opt(numbers, NUM, check.actual, plain),
                check.target.map_or_else(|| NONE.to_string(), plain),
                measured_opt(numbers, NUM, check.ratio, f3),
                check.status.as_str().to_string(),
                match numbers {
                    Numbers::Measured => check.reason.clone(),
                    Numbers::Redacted => check.rule.clone(),
                },
            ]
        })
        .collect();
    push_table(out, &header, &align, &rows);
}

/// A sim trial's parameters, its study table and findings. Virtual time makes every number
/// exact except the wall time, which is the only one redacted.
fn sim(out: &mut String, report: &TrialReport, sim: &SimStepReport, numbers: Numbers) {
    out.push_str("### Parameters\n\n");
    let mut rows = vec![
        ("trial", report.meta.trial.clone()),
        ("kind", report.meta.kind.as_str().to_string()),
        ("case", report.meta.case.clone()),
        ("model", report.meta.model.clone()),
        ("hardware", sim.hardware.clone()),
        ("preset", sim.preset.clone()),
        ("step", sim.step.clone()),
        ("simulations", sim.runs.to_string()),
        (
            "requests",
            format!(
                "{} ({} completed, {} rejected)",
                sim.requests, sim.completed, sim.rejected
            ),
        ),
    ];
    if let Some(knee) = sim.knee_replicas {
        rows.push(("knee (replicas)", knee.to_string()));
    }
    if let Some(bins) = sim.best_bins {
        rows.push(("best K (bins)", bins.to_string()));
    }
    rows.push(("wall s", measured(numbers, NUM, || f3(sim.wall_s))));
    push_parameters(out, rows);
    out.push_str("\n### Study\n\n");
    out.push_str(&sim.table);
    if !sim.findings.is_empty() {
        out.push_str("\n### Findings\n\n");
        for finding in &sim.findings {
            out.push_str(&format!("- {finding}\n"));
        }
    }
}

/// Renders the trial's table. See the module documentation for what [`Numbers::Redacted`]
/// leaves out.
pub fn render(report: &TrialReport, numbers: Numbers) -> String {
    let mut out = format!(
        "## [{}] {}\n\n",
        report.meta.kind.as_str(),
        cell(&report.meta.trial)
    );
    if let TrialBody::Sim(study) = &report.body {
        sim(&mut out, report, study, numbers);
        out.push('\n');
        checks(&mut out, report, Numbers::Measured);
    } else {
        parameters(&mut out, report);
        out.push('\n');
        if let Some(load) = report.load() {
            metrics(&mut out, load, numbers);
            out.push('\n');
            // Retries depend on what was measured, so a redacted table leaves them out.
            let shown: Vec<Attempt> = load
                .attempts
                .iter()
                .filter(|a| numbers == Numbers::Measured || a.cause == AttemptCause::Repeat)
                .cloned()
                .collect();
            if shown.len() > 1 {
                runs(&mut out, &shown, numbers);
                out.push('\n');
            }
            if let Some(prefix) = &load.summary.prefix {
                shared_prefix(&mut out, prefix, numbers);
                out.push('\n');
            }
            if let Some(turns) = &load.summary.turns {
                conversations(&mut out, turns, numbers);
                out.push('\n');
            }
            if load.shape == LoadShape::Consistency {
                consistency(&mut out, load, numbers);
                out.push('\n');
            }
            if !load.server_metrics.is_empty() {
                server_metrics(&mut out, &load.server_metrics, numbers);
                out.push('\n');
            }
        }
        if let Some(detail) = report.accuracy() {
            accuracy(&mut out, detail, numbers);
            out.push('\n');
        }
        checks(&mut out, report, numbers);
    }
    out.push('\n');
    out.push_str("verdict: ");
    out.push_str(report.verdict.status.as_str());
    if report.expects_failure() {
        out.push_str(" (expected FAIL)");
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::case::{Expect, Kind};
    use crate::judge::Status;
    use crate::matrix::Adjustment;
    use crate::metrics::ErrorClass;
    use crate::report::sample::{ReportBuilder, sample_report};

    /// The sample with every measured number changed, and the measured reasons reworded.
    fn remeasured() -> TrialReport {
        let mut r = sample_report();
        let s = &mut r.load_mut().expect("a load trial").summary;
        s.requests_ok = 123_456;
        s.requests_failed = 98_765;
        s.error_rate = 0.987_654;
        s.errors = [(ErrorClass::Timeout, 4_321), (ErrorClass::Connect, 7)]
            .into_iter()
            .collect();
        s.duration_s = 12_345.678;
        for d in [&mut s.ttft_ms, &mut s.tpot_ms, &mut s.e2el_ms] {
            let d = d.as_mut().expect("sample distribution");
            d.mean *= 1234.5;
            d.std += 99.0;
            d.p5 += 0.5;
            d.p99 *= 1000.0;
        }
        // A distribution that appears only on some runs.
        s.itl_ms = s.tpot_ms;
        s.input_tokens = 9_999_999;
        s.output_tokens = 1;
        s.input_tok_s = 0.001;
        s.output_tok_s = 987_654.321;
        s.req_s = 42.0;
        s.tput_user = 3.5;
        for check in &mut r.verdict.checks {
            check.actual = check.actual.map(|a| a * 77.7 + 0.123);
            check.ratio = check.ratio.map(|q| q * 1.9);
            check.reason = format!("measured 31415.9 and {}", check.reason.len());
        }
        r.meta.run_id = "another-run-4242".into();
        r.meta.timestamp = "2030-01-02T03:04:05Z".into();
        r
    }

    #[test]
    fn a_redacted_table_does_not_change_with_measurements() {
        let (a, b) = (sample_report(), remeasured());
        assert_eq!(render(&a, Numbers::Redacted), render(&b, Numbers::Redacted));
        assert_ne!(render(&a, Numbers::Measured), render(&b, Numbers::Measured));
    }

    #[rstest]
    #[case::measured_number("12345.678")]
    #[case::latency("80.000")]
    #[case::reason("31415.9")]
    #[case::run_id("another-run-4242")]
    #[case::timestamp("2030-01-02")]
    #[case::error_class("timeout")]
    fn a_redacted_table_shows_nothing_measured(#[case] text: &str) {
        let redacted = render(&remeasured(), Numbers::Redacted);
        assert!(!redacted.contains(text), "{text} in\n{redacted}");
        let redacted = render(&sample_report(), Numbers::Redacted);
        assert!(!redacted.contains("50.125"), "{redacted}");
        assert!(!redacted.contains("http_503"), "{redacted}");
    }

    fn changed_target(r: &mut TrialReport) {
        r.verdict.checks[1].target = Some(120.0);
    }
    fn changed_rule(r: &mut TrialReport) {
        r.verdict.checks[1].rule = "actual/target < 1.20 (functional tier)".into();
    }
    fn changed_status(r: &mut TrialReport) {
        r.verdict.checks[3].status = Status::Pass;
        r.verdict.status = Status::Pass;
    }
    fn changed_matrix(r: &mut TrialReport) {
        r.load_mut().expect("a load trial").shape = LoadShape::Closed { concurrency: 4 };
    }
    fn changed_adjustment(r: &mut TrialReport) {
        r.load_mut().expect("a load trial").adjusted = Some(Adjustment {
            isl: 8192,
            osl: 128,
            policy: crate::case::FitPolicy::Neutral,
        });
    }
    fn expected_to_fail(r: &mut TrialReport) {
        r.meta.expect = Expect::Fail;
    }
    fn no_longer_measured(r: &mut TrialReport) {
        r.verdict.checks[3].actual = None;
    }

    #[rstest]
    #[case::target(changed_target)]
    #[case::rule(changed_rule)]
    #[case::status(changed_status)]
    #[case::matrix(changed_matrix)]
    #[case::adjustment(changed_adjustment)]
    #[case::expectation(expected_to_fail)]
    #[case::measured_or_not(no_longer_measured)]
    fn a_redacted_table_changes_with_what_is_not_measured(#[case] change: fn(&mut TrialReport)) {
        let mut changed = sample_report();
        change(&mut changed);
        assert_ne!(
            render(&sample_report(), Numbers::Redacted),
            render(&changed, Numbers::Redacted)
        );
    }

    #[test]
    fn redacted_column_widths_do_not_depend_on_measurements() {
        let lines = |r: &TrialReport| -> Vec<usize> {
            render(r, Numbers::Redacted)
                .lines()
                .map(|l| l.chars().count())
                .collect()
        };
        assert_eq!(lines(&sample_report()), lines(&remeasured()));
    }

    #[test]
    fn a_measured_table_shows_values_reasons_and_errors() {
        let table = render(&sample_report(), Numbers::Measured);
        for text in [
            "50.125",
            "80.000",
            "57.644 does not satisfy < 50",
            "http_503 1",
            "0.2000",
            "0.501",
            "25.600",
        ] {
            assert!(table.contains(text), "{text} in\n{table}");
        }
        // The sample measured no inter-token latency.
        assert!(
            table
                .lines()
                .any(|l| l.starts_with("| itl ") && l.contains(" - |")),
            "{table}"
        );
        assert!(table.ends_with("verdict: FAIL\n"), "{table}");
    }

    #[test]
    fn a_consistency_table_shows_spreads_halves_and_the_reading() {
        use crate::metrics::Drift;
        use crate::metrics::consistency::Reading;
        let mut report = sample_report();
        let load = report.load_mut().expect("a load trial");
        load.shape = LoadShape::Consistency;
        let spread = |mean: f64, cv: f64| Spread {
            count: 40,
            mean,
            std: mean * cv,
            cv,
        };
        load.summary.consistency = Some(Consistency {
            requests: 40,
            ttft_ms: spread(40.0, 0.2),
            decode_tok_s: Some(spread(200.0, 0.01)),
            drift: Some(Drift {
                ttft_first_ms: 40.0,
                ttft_second_ms: 42.0,
                ttft_change: 0.05,
                decode_first_tok_s: 200.0,
                decode_second_tok_s: 200.0,
                decode_change: 0.0,
                flagged: false,
            }),
            reading: Reading::BeforeTheGpu,
        });
        let table = render(&report, Numbers::Measured);
        for text in [
            "| mode ",
            "consistency",
            "40.0 ± 8.0 (CV 20.0 %)",
            "200.0 ± 2.0 (CV 1.0 %)",
            "+5.0 %",
            "points at the network or the scheduler, not the GPU",
        ] {
            assert!(table.contains(text), "{text} in\n{table}");
        }
        let redacted = render(&report, Numbers::Redacted);
        assert!(redacted.contains("### Consistency"), "{redacted}");
        assert!(!redacted.contains("the scheduler"), "{redacted}");
        assert!(!render(&sample_report(), Numbers::Measured).contains("### Consistency"));
    }

    #[test]
    fn an_expected_failure_says_so_and_reasons_stay_on_one_line() {
        let mut report = sample_report();
        report.meta.expect = Expect::Fail;
        report.verdict.checks[3].reason = "line one\nline | two".into();
        let table = render(&report, Numbers::Measured);
        assert!(
            table.ends_with("verdict: FAIL (expected FAIL)\n"),
            "{table}"
        );
        assert!(table.contains("line one line \\| two"), "{table}");
    }

    fn stress_accuracy() -> AccuracySummary {
        use crate::accuracy::summary::{FilterScore, ThresholdSummary};
        AccuracySummary {
            task: "gsm8k".into(),
            dataset: "gsm8k/test.jsonl".into(),
            n: 40,
            errors: 1,
            filters: vec![
                FilterScore {
                    filter: "strict-match".into(),
                    score: 87.5,
                },
                FilterScore {
                    filter: "flexible-extract".into(),
                    score: 90.0,
                },
            ],
            judged_filter: "strict-match".into(),
            threshold: Some(ThresholdSummary {
                kind: crate::case::ThresholdKind::HypothesisTest,
                value: 81.61,
                theta: Some(27.22),
                passed: true,
            }),
            under_load: Some(38),
            baseline: Some(95.0),
        }
    }

    #[test]
    fn the_accuracy_section_shows_scores_threshold_and_the_change_under_load() {
        let mut report = sample_report();
        report.meta.kind = Kind::Stress;
        report.load_mut().expect("a load trial").accuracy = Some(stress_accuracy());
        let measured = render(&report, Numbers::Measured);
        for expected in [
            "87.50",
            "81.61 (hypothesis_test)",
            "27.22",
            "38 of 40",
            "95.00",
            "-7.50",
            "strict-match (judged)",
        ] {
            assert!(measured.contains(expected), "{expected}: {measured}");
        }
        assert!(measured.contains("### Metrics"), "{measured}");
        let redacted = render(&report, Numbers::Redacted);
        for hidden in ["87.50", "38 of 40", "95.00", "-7.50"] {
            assert!(!redacted.contains(hidden), "{hidden}: {redacted}");
        }
        assert!(redacted.contains("81.61 (hypothesis_test)"), "{redacted}");
    }

    #[test]
    fn without_an_accuracy_trial_in_the_run_a_table_says_so_and_redacts_alike() {
        let mut with = sample_report();
        with.meta.kind = Kind::Stress;
        with.load_mut().expect("a load trial").accuracy = Some(stress_accuracy());
        let mut without = with.clone();
        if let Some(accuracy) = without.load_mut().and_then(|l| l.accuracy.as_mut()) {
            accuracy.baseline = None;
        }
        let measured = render(&without, Numbers::Measured);
        assert!(measured.contains(NO_BASELINE), "{measured}");
        assert_eq!(
            render(&with, Numbers::Redacted),
            render(&without, Numbers::Redacted)
        );
    }

    #[test]
    fn an_accuracy_trial_shows_its_task_and_no_load_metrics() {
        let mut accuracy = stress_accuracy();
        accuracy.under_load = None;
        accuracy.baseline = None;
        let report = ReportBuilder::accuracy("demo-chat", "gsm8k_n40", Some(accuracy)).build();
        let table = render(&report, Numbers::Measured);
        assert!(!table.contains("### Metrics"), "{table}");
        assert!(!table.contains("under load"), "{table}");
        assert!(
            table
                .lines()
                .any(|l| l.contains("questions") && l.contains("40")),
            "{table}"
        );
    }

    #[rstest]
    #[case(500.0, "500")]
    #[case(0.01, "0.01")]
    #[case(1.234_56, "1.2346")]
    #[case(10_000.000_000_000_002, "10000")]
    #[case(-0.000_01, "0")]
    fn targets_print_in_their_shortest_form(#[case] value: f64, #[case] text: &str) {
        assert_eq!(plain(value), text);
    }

    #[test]
    fn a_sim_table_shows_its_study_exactly_and_redacts_only_the_wall_time() {
        let mut report = sample_report();
        report.meta.kind = Kind::Sim;
        report.meta.trial = "study::bins".into();
        report.body = TrialBody::Sim(SimStepReport {
            preset: "small".into(),
            step: "bins".into(),
            hardware: "h100-sxm".into(),
            runs: 2,
            requests: 20,
            completed: 18,
            rejected: 2,
            knee_replicas: Some(4),
            best_bins: Some(2),
            findings: vec!["K = 2 gives the most goodput.".into()],
            table: "| step | bins |\n|------|-----:|\n| bins |    2 |\n".into(),
            wall_s: 0.125,
        });
        let measured = render(&report, Numbers::Measured);
        let redacted = render(&report, Numbers::Redacted);
        let differ: Vec<(&str, &str)> = measured
            .lines()
            .zip(redacted.lines())
            .filter(|(m, r)| m != r)
            .collect();
        assert_eq!(differ.len(), 1, "{differ:?}");
        assert!(differ[0].0.contains("| wall s ") && differ[0].0.contains("0.125"));
        assert!(differ[0].1.contains(NUM));
        for wanted in [
            "| requests        | 20 (18 completed, 2 rejected) |",
            "| knee (replicas) | 4 ",
            "| best K (bins)   | 2 ",
            "### Study\n\n| step | bins |\n",
            "### Findings\n\n- K = 2 gives the most goodput.\n",
            // Checks are exact too: their reasons, not their rules.
            "57.644 does not satisfy < 50",
        ] {
            assert!(redacted.contains(wanted), "{wanted:?} in\n{redacted}");
        }
        assert!(!measured.contains("### Metrics"), "{measured}");
    }

    #[test]
    fn redacted_table_snapshot() {
        insta::assert_snapshot!(render(&sample_report(), Numbers::Redacted));
    }
}
