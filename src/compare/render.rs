//! Views of a comparison: the terminal table, `compare.md` (fit for `$GITHUB_STEP_SUMMARY`
//! or a PR comment) and `compare.json`.

use std::fmt::Write as _;

use super::Metric;
use super::runs::RunComparison;
use super::{MetricComparison, Outcome, TrialComparison};

/// The columns of a trial's table.
const HEADER: [&str; 6] = ["metric", "base", "new", "change", "interval", "outcome"];

/// A metric's row: the values in their unit, the change, the interval or p-value.
fn row(m: &MetricComparison) -> [String; 6] {
    let value = |v: f64| match m.metric {
        Metric::ErrorRate => format!("{:.2} %", v * 100.0),
        Metric::Accuracy => format!("{v:.1} %"),
        _ if v.abs() >= 100.0 => format!("{v:.1}"),
        _ => format!("{v:.3}"),
    };
    let change = match m.metric {
        Metric::ErrorRate => format!("{:+.2} pts", m.change * 100.0),
        Metric::Accuracy => format!("{:+.1} pts", m.change),
        _ => format!("{:+.1} %", m.change * 100.0),
    };
    let interval = match (m.interval, m.p_value) {
        (Some((low, high)), _) => format!("[{:+.1} %, {:+.1} %]", low * 100.0, high * 100.0),
        (None, Some(p)) => format!("p = {p:.3}"),
        (None, None) => String::new(),
    };
    [
        m.metric.to_string(),
        value(m.base),
        value(m.new),
        change,
        interval,
        m.outcome.as_str().to_string(),
    ]
}

/// A metric's row in one line: `base 100.1 → new 115.3: +15.2 % [+11.0 %, +19.9 %],
/// regressed`.
pub fn summary(m: &MetricComparison) -> String {
    let [_, base, new, change, interval, outcome] = row(m);
    format!("base {base} → new {new}: {change} {interval}, {outcome}")
}

/// Plain columns, padded, for the terminal.
fn plain_table(rows: &[[String; 6]]) -> String {
    let mut widths = HEADER.map(str::len);
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            let pad = w.saturating_sub(cell.chars().count());
            if i == 0 || i == 5 {
                let _ = write!(out, "{cell}{} ", " ".repeat(pad));
            } else {
                let _ = write!(out, "{}{cell} ", " ".repeat(pad));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(&HEADER.map(String::from));
    for r in rows {
        out.push_str(&line(r));
    }
    out
}

/// One trial's table, with its notes and skipped metrics under it.
pub fn trial_table(trial: &TrialComparison) -> String {
    let rows: Vec<_> = trial.metrics.iter().map(row).collect();
    let mut out = format!("{} — {}\n", trial.trial, trial.outcome.as_str());
    out.push_str(&plain_table(&rows));
    for m in &trial.metrics {
        if let Some(note) = &m.note {
            let _ = writeln!(out, "  {}: {note}", m.metric);
        }
    }
    for s in &trial.skipped {
        let _ = writeln!(out, "  not compared: {s}");
    }
    out
}

/// The whole comparison for the terminal.
pub fn text(c: &RunComparison) -> String {
    let mut out = String::new();
    for trial in &c.trials {
        out.push_str(&trial_table(trial));
        out.push('\n');
    }
    out.push_str(&lists(c, "- "));
    out.push_str(&headline(c));
    out.push('\n');
    out
}

/// One line: how many trials came out how.
pub fn headline(c: &RunComparison) -> String {
    let n = c.trials.len();
    format!(
        "{}: {n} trial{} compared — {} regressed, {} inconclusive, {} improved, {} unchanged \
         (allowed change {:.0} %, confidence {:.0} %)",
        c.outcome.as_str().to_uppercase(),
        if n == 1 { "" } else { "s" },
        c.count(Outcome::Regressed),
        c.count(Outcome::Inconclusive),
        c.count(Outcome::Improved),
        c.count(Outcome::Unchanged),
        c.max_regression * 100.0,
        c.confidence * 100.0,
    )
}

fn lists(c: &RunComparison, bullet: &str) -> String {
    let mut out = String::new();
    for (title, names) in [
        ("Only in BASE (not run by NEW)", &c.only_in_base),
        ("Only in NEW (no baseline)", &c.only_in_new),
        ("Not compared", &c.not_compared),
    ] {
        if names.is_empty() {
            continue;
        }
        let _ = writeln!(out, "{title}:");
        for name in names {
            let _ = writeln!(out, "{bullet}{name}");
        }
        out.push('\n');
    }
    out
}

/// `compare.md`: the headline, then a table per trial, regressed and inconclusive first.
pub fn markdown(c: &RunComparison) -> String {
    let mut out = format!(
        "# llm-stress compare: `{}` → `{}`\n\n**{}**\n\n",
        c.base_run,
        c.new_run,
        headline(c)
    );
    let mut trials: Vec<&TrialComparison> = c.trials.iter().collect();
    trials.sort_by_key(|t| std::cmp::Reverse(t.outcome));
    for trial in trials {
        let _ = writeln!(out, "## {} — {}\n", trial.trial, trial.outcome.as_str());
        let _ = writeln!(out, "| {} |", HEADER.join(" | "));
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---|");
        for m in &trial.metrics {
            let mut cells = row(m);
            if m.outcome == Outcome::Regressed {
                cells[5] = format!("**{}**", cells[5]);
            }
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
        for m in &trial.metrics {
            if let Some(note) = &m.note {
                let _ = writeln!(out, "\n- `{}`: {note}", m.metric);
            }
        }
        for s in &trial.skipped {
            let _ = writeln!(out, "\n- not compared: {s}");
        }
        out.push('\n');
    }
    out.push_str(&lists(c, "- "));
    out
}

/// `compare.json`.
pub fn json(c: &RunComparison) -> serde_json::Result<String> {
    serde_json::to_string_pretty(c)
}
