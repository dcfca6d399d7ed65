//! Plain-text (markdown-style) tables of simulation results.

use std::fmt::Write;

use llm_stress_base::distribution::Distribution;

use super::config::{CostSpec, SimConfig};
use super::metrics::SimSummary;
use super::scheduler::SchedulerKind;
use super::workload::{Arrival, Lengths};

/// How the columns after the first are aligned (the first is always left-aligned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// Appends an aligned table.
pub fn push_table(out: &mut String, header: &[&str], rows: &[Vec<String>], align: Align) {
    let right = |i: usize| i > 0 && align == Align::Right;
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .filter_map(|row| row.get(i))
                .map(|c| c.chars().count())
                .chain([header[i].chars().count(), 3])
                .max()
                .unwrap_or(3)
        })
        .collect();
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
        out.push('|');
        for (i, width) in widths.iter().enumerate() {
            let text = cells.next().unwrap_or("");
            if right(i) {
                let _ = write!(out, " {text:>width$} |");
            } else {
                let _ = write!(out, " {text:<width$} |");
            }
        }
        out.push('\n');
    };
    line(out, &mut header.iter().copied());
    out.push('|');
    for (i, width) in widths.iter().enumerate() {
        out.push_str(&"-".repeat(width + 1));
        out.push(if right(i) { ':' } else { '-' });
        out.push('|');
    }
    out.push('\n');
    for row in rows {
        line(out, &mut row.iter().map(String::as_str));
    }
}

/// How a length distribution is written.
pub fn lengths_label(lengths: &Lengths) -> String {
    match *lengths {
        Lengths::Fixed(n) => format!("fixed {n}"),
        Lengths::Uniform { min, max } => format!("uniform [{min}, {max}]"),
        Lengths::Exponential { mean, .. } => format!("exponential, mean {mean}"),
        Lengths::Lognormal { mean, sigma, .. } => format!("lognormal, mean {mean}, σ {sigma}"),
    }
}

/// How an arrival process is written.
pub fn arrival_label(arrival: &Arrival) -> String {
    match *arrival {
        Arrival::AtOnce => "all at t = 0".to_string(),
        Arrival::Poisson { rate } => format!("Poisson, {rate} req/s"),
        Arrival::Gamma { rate, cv } => format!("gamma, {rate} req/s, cv {cv}"),
    }
}

fn scheduler_label(config: &SimConfig) -> String {
    let s = &config.scheduler;
    let mut label = match s.kind {
        SchedulerKind::Static => format!(
            "static, batch {}, max wait {} s",
            s.batch_size,
            s.max_wait_s.unwrap_or(0.0)
        ),
        SchedulerKind::Continuous => format!(
            "continuous, max batch {}, {} tokens per step{}",
            s.batch_size,
            s.token_budget,
            if s.chunked_prefill {
                ", chunked prefill"
            } else {
                ""
            }
        ),
        SchedulerKind::MultiBin => format!(
            "multi-bin, {} bins, batch {}, max wait {} s",
            s.bins,
            s.batch_size,
            s.max_wait_s.unwrap_or(1.0)
        ),
    };
    if let Some(d) = &s.dynamic {
        let _ = write!(
            label,
            ", dynamic batch (min {}, TBT deadline {} ms ± {} ms)",
            d.min_batch,
            d.tbt_deadline_s * 1e3,
            d.margin_s * 1e3
        );
    }
    label
}

fn cost_label(config: &SimConfig) -> String {
    match &config.cost {
        CostSpec::Roofline => format!(
            "roofline: {} on {} × {}",
            config.model, config.tensor_parallel, config.hardware
        ),
        CostSpec::Fitted(f) => format!(
            "fitted: α {} s, β {} s/token, γ {}",
            f.alpha, f.beta, f.gamma
        ),
        CostSpec::FittedCsv(path) => format!("fitted to {}", path.display()),
    }
}

fn latency_row(name: &str, d: &Distribution) -> Vec<String> {
    let mut row = vec![name.to_string()];
    row.extend(
        [d.mean, d.p50, d.p90, d.p95, d.p99, d.max]
            .iter()
            .map(|v| format!("{v:.1}")),
    );
    row
}

/// The summary of `sim run`: settings, results and latencies.
pub fn render(config: &SimConfig, summary: &SimSummary, kv_tokens: u64) -> String {
    let mut out = String::new();
    let router = if config.scheduler.kind == SchedulerKind::MultiBin {
        "shared bins".to_string()
    } else {
        config.router.as_str().to_string()
    };
    let w = &config.workload;
    let settings = [
        ("scheduler", scheduler_label(config)),
        ("replicas", format!("{} ({router})", config.replicas)),
        ("cost model", cost_label(config)),
        (
            "KV cache",
            format!(
                "{kv_tokens} tokens per replica, blocks of {}",
                config.kv.block_size
            ),
        ),
        (
            "workload",
            format!(
                "{} requests, {}, seed {}",
                w.requests,
                arrival_label(&w.arrival),
                w.seed
            ),
        ),
        ("prompt", lengths_label(&w.prompt)),
        (
            "output",
            format!(
                "{} (prediction σ {})",
                lengths_label(&w.output),
                w.prediction_sigma
            ),
        ),
        (
            "SLA",
            format!(
                "TPOT ≤ {} ms, E2E ≤ {} s",
                config.sla.tpot_s * 1e3,
                config.sla.e2e_s
            ),
        ),
    ];
    let rows: Vec<Vec<String>> = settings
        .into_iter()
        .map(|(k, v)| vec![k.to_string(), v])
        .collect();
    push_table(&mut out, &["setting", "value"], &rows, Align::Left);
    out.push('\n');
    let s = summary;
    let results = [
        (
            "completed",
            format!(
                "{} of {} ({} rejected)",
                s.completed, s.requests, s.rejected
            ),
        ),
        ("makespan s", format!("{:.3}", s.makespan_s)),
        ("throughput req/s", format!("{:.3}", s.qps)),
        ("output tok/s", format!("{:.1}", s.output_tok_s)),
        ("input tok/s", format!("{:.1}", s.input_tok_s)),
        (
            "SLA violations",
            format!(
                "{:.2} % (TPOT {:.2} %, E2E {:.2} %)",
                s.sla_violation_rate * 100.0,
                s.tpot_violation_rate * 100.0,
                s.e2e_violation_rate * 100.0
            ),
        ),
        ("mean batch", format!("{:.2}", s.mean_batch)),
        ("utilisation", format!("{:.1} %", s.utilisation * 100.0)),
        ("preemptions", s.preemptions.to_string()),
        (
            "engine work",
            format!(
                "{} events, {} segments, {} steps",
                s.events, s.segments, s.steps
            ),
        ),
    ];
    let rows: Vec<Vec<String>> = results
        .into_iter()
        .map(|(k, v)| vec![k.to_string(), v])
        .collect();
    push_table(&mut out, &["result", "value"], &rows, Align::Left);
    out.push('\n');
    push_table(
        &mut out,
        &["latency ms", "mean", "p50", "p90", "p95", "p99", "max"],
        &[
            latency_row("TTFT", &s.ttft_ms),
            latency_row("TPOT", &s.tpot_ms),
            latency_row("E2E", &s.e2e_ms),
        ],
        Align::Right,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_aligned() {
        let mut out = String::new();
        push_table(
            &mut out,
            &["name", "n"],
            &[
                vec!["a".to_string(), "1".to_string()],
                vec!["long name".to_string(), "12345".to_string()],
            ],
            Align::Right,
        );
        assert_eq!(
            out,
            "| name      |     n |\n|-----------|------:|\n| a         |     1 |\n| long name | 12345 |\n"
        );
    }
}
