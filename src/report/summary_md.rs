//! `summary.md`: one run's trials in one markdown page. Verdicts first (failed trials first),
//! then the automatic analysis of the run, then per case a table of its trials (one row each:
//! lengths, load, prompts, latencies, throughputs, verdict), the analysis of each trial and
//! the per-endpoint split; the detailed variant adds, per case and latency metric, mean, p5,
//! p25, p50, p95 and p99 of every trial.
//!
//! In [`Numbers::Redacted`] mode every measured number, every analysis level (which follows
//! from measured numbers) and the re-run notes (which hold timestamps) are placeholders, as in
//! the trial tables (see [`super::table`]).

use super::analysis::{Level, Quantity, RunAnalysis, Thresholds, analyse, analyse_run};
use super::analysis::{contention, prefill};
use super::columns::{
    DETAIL_STATS, LATENCIES, NONE, combination, failure_reasons, latency, measured, number,
    parameters, verdict,
};
use super::markdown::{Align, Table, cell};
use super::run::{Run, RunTrial};
use super::sweep::{isl_series, sweeps};
use super::table::{NUM, Numbers};
use crate::judge::Status;

/// The file name of the run summary, in the run's folder.
pub const SUMMARY_MD: &str = "summary.md";

/// Placeholder of an analysis level in redacted mode.
pub const LEVEL: &str = "<level>";

/// Placeholder of the trial a measurement picked (the worst one) in redacted mode.
pub const TRIAL: &str = "<trial>";

/// Placeholder of a sweep's knee in redacted mode.
pub const KNEE: &str = "<knee>";

/// What the knee lines mean.
pub const KNEE_INTRO: &str = "Knee (the first load whose output tok/s is < 10 % above the previous load's while its \
     TTFT p50 is higher):";

/// Placeholder of a re-run note in redacted mode.
pub const NOTE: &str = "<note>";

/// Which variant of the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// Verdicts, analysis and one table per case.
    Compact,
    /// The compact summary and, per case, every latency metric's distribution.
    Full,
}

/// Renders the run's summary.
pub fn render(run: &Run, thresholds: &Thresholds, numbers: Numbers, detail: Detail) -> String {
    let mut out = format!("# Run `{}`\n\n", run.run_id);
    out.push_str(&counts(run));
    if !run.notes.is_empty() {
        out.push_str("\nNotes:\n\n");
        for note in &run.notes {
            let note = measured(numbers, NOTE, || cell(note));
            out.push_str(&format!("- {note}\n"));
        }
    }
    out.push_str("\n## Verdicts\n\n");
    out.push_str(&verdicts(run, numbers).render());
    out.push_str("\n## Analysis\n\n");
    out.push_str(&run_analysis(
        &analyse_run(&run.trials, thresholds),
        thresholds,
        numbers,
    ));
    for (case, trials) in by_case(&run.trials) {
        out.push_str(&format!("\n## {}\n\n", cell(case)));
        out.push_str(&case_table(trials, numbers).render());
        let knees = knees(trials, numbers);
        if !knees.is_empty() {
            out.push_str(&format!("\n{KNEE_INTRO}\n\n"));
            for knee in knees {
                out.push_str(&format!("- {knee}\n"));
            }
        }
        let prefill = prefill_scaling(trials, numbers);
        if !prefill.is_empty() {
            out.push_str(&format!("\n{PREFILL_INTRO}\n\n"));
            for line in prefill {
                out.push_str(&format!("- {line}\n"));
            }
        }
        let consistency = consistency_lines(trials, numbers);
        if !consistency.is_empty() {
            out.push_str(&format!("\n{CONSISTENCY_INTRO}\n\n"));
            for line in consistency {
                out.push_str(&format!("- {line}\n"));
            }
        }
        let turns = turn_lines(trials, numbers);
        if !turns.is_empty() {
            out.push_str(&format!("\n{TURNS_INTRO}\n\n"));
            for line in turns {
                out.push_str(&format!("- {line}\n"));
            }
        }
        let contention = contention_lines(trials, numbers);
        if !contention.is_empty() {
            out.push_str(&format!("\n{CONTENTION_INTRO}\n\n"));
            for line in contention {
                out.push_str(&format!("- {line}\n"));
            }
        }
        let analysis = trial_analysis(trials, thresholds, numbers);
        if !analysis.is_empty() {
            out.push_str("\nAnalysis:\n\n");
            out.push_str(&analysis.render());
        }
        let endpoints = endpoints(trials, numbers);
        if !endpoints.is_empty() {
            out.push_str("\nEndpoints:\n\n");
            out.push_str(&endpoints.render());
        }
        if detail == Detail::Full {
            for (label, metric) in LATENCIES {
                let table = distributions(trials, metric, numbers);
                if !table.is_empty() {
                    out.push_str(&format!("\n{label} (ms):\n\n"));
                    out.push_str(&table.render());
                }
            }
        }
    }
    out
}

/// `40 trials: 38 PASS, 1 FAIL, 1 NA; 0 failed as tests (…).`
pub fn counts(run: &Run) -> String {
    let count = |status: Status| {
        run.trials
            .iter()
            .filter(|t| t.report.verdict.status == status)
            .count()
    };
    let failed = run.trials.iter().filter(|t| !t.report.passed()).count();
    format!(
        "{} trials: {} PASS, {} FAIL, {} NA; {failed} failed as tests (a FAIL the case \
         expects is not a test failure).\n",
        run.trials.len(),
        count(Status::Pass),
        count(Status::Fail),
        count(Status::NotApplicable),
    )
}

/// The trials grouped by case, in run order.
pub fn by_case(trials: &[RunTrial]) -> Vec<(&str, &[RunTrial])> {
    let mut groups: Vec<(&str, &[RunTrial])> = Vec::new();
    let mut start = 0;
    for i in 1..=trials.len() {
        if i == trials.len() || trials[i].report.meta.case != trials[start].report.meta.case {
            groups.push((trials[start].report.meta.case.as_str(), &trials[start..i]));
            start = i;
        }
    }
    groups
}

/// The trials in verdict order: test failures, then expected failures, then PASS, then NA.
pub fn in_verdict_order(trials: &[RunTrial]) -> Vec<&RunTrial> {
    let rank = |t: &RunTrial| match (!t.report.passed(), t.report.verdict.status) {
        (true, _) => 0,
        (false, Status::Fail) => 1,
        (false, Status::Pass) => 2,
        (false, Status::NotApplicable) => 3,
    };
    let mut ordered: Vec<&RunTrial> = trials.iter().collect();
    ordered.sort_by_key(|t| rank(t));
    ordered
}

fn verdicts(run: &Run, numbers: Numbers) -> Table {
    let mut table = Table::new(&[
        ("verdict", Align::Left),
        ("trial", Align::Left),
        ("reasons", Align::Left),
    ]);
    for trial in in_verdict_order(&run.trials) {
        let mut shown = verdict(&trial.report);
        if !trial.report.passed() {
            shown = format!("**{shown}**");
        }
        table.row(vec![
            shown,
            trial.name(),
            failure_reasons(&trial.report, numbers),
        ]);
    }
    table
}

fn level(numbers: Numbers, level: Level) -> String {
    measured(numbers, LEVEL, || level.as_str().to_string())
}

fn run_analysis(analysis: &RunAnalysis, thresholds: &Thresholds, numbers: Numbers) -> String {
    format!(
        "Run: {} ({} load trials analysed)\n\n{}",
        level(numbers, analysis.level()),
        analysis.trials,
        run_analysis_table(analysis, thresholds, numbers).render()
    )
}

/// The run's analysis: per quantity its level, the worst trial and value, how many trials
/// reached WARNING and CRITICAL, and the thresholds.
pub fn run_analysis_table(
    analysis: &RunAnalysis,
    thresholds: &Thresholds,
    numbers: Numbers,
) -> Table {
    let mut table = Table::new(&[
        ("check", Align::Left),
        ("level", Align::Left),
        ("worst trial", Align::Left),
        ("worst", Align::Right),
        ("WARNING", Align::Right),
        ("CRITICAL", Align::Right),
        ("thresholds", Align::Left),
    ]);
    for f in &analysis.findings {
        // Whether a quantity was measured at all can depend on timing (drift needs enough
        // successful requests): a redacted summary does not say.
        let (trial, value) = match (&f.worst, numbers) {
            (_, Numbers::Redacted) => (TRIAL.to_string(), NUM.to_string()),
            (None, Numbers::Measured) => (NONE.to_string(), NONE.to_string()),
            (Some((trial, value)), Numbers::Measured) => (trial.clone(), f.quantity.format(*value)),
        };
        table.row(vec![
            f.quantity.label().to_string(),
            level(numbers, f.level),
            trial,
            value,
            measured(numbers, NUM, || f.warnings.to_string()),
            measured(numbers, NUM, || f.criticals.to_string()),
            f.quantity.rule(thresholds),
        ]);
    }
    table
}

/// One row per trial: kind, lengths, load, prompts, mean latencies, throughputs, accuracy
/// (when any trial of the case has one), verdict.
pub fn case_table(trials: &[RunTrial], numbers: Numbers) -> Table {
    let with_accuracy = trials.iter().any(|t| t.report.accuracy_score().is_some());
    let mut columns = vec![
        ("kind", Align::Left),
        ("ISL", Align::Right),
        ("OSL", Align::Right),
        ("concurrency", Align::Right),
        ("prompts", Align::Right),
        ("TTFT ms", Align::Right),
        ("TPOT ms", Align::Right),
        ("tput_user", Align::Right),
        ("output tok/s", Align::Right),
        ("input tok/s", Align::Right),
        ("E2EL ms", Align::Right),
        ("req/s", Align::Right),
    ];
    if with_accuracy {
        columns.push(("accuracy", Align::Right));
    }
    columns.push(("verdict", Align::Left));
    let mut table = Table::new(&columns);
    for trial in trials {
        let r = &trial.report;
        let mut row = vec![r.meta.kind.as_str().to_string()];
        row.extend(parameters(r));
        if let Some(s) = r.summary().filter(|_| r.meta.kind.drives_load()) {
            row.extend([
                latency(numbers, s.ttft_ms.as_ref(), "mean"),
                latency(numbers, s.tpot_ms.as_ref(), "mean"),
                number(numbers, s.tput_user),
                number(numbers, s.output_tok_s),
                number(numbers, s.input_tok_s),
                latency(numbers, s.e2el_ms.as_ref(), "mean"),
                number(numbers, s.req_s),
            ]);
        } else {
            row.extend(std::iter::repeat_n(NONE.to_string(), 7));
        }
        if with_accuracy {
            row.push(r.accuracy_score().map_or_else(
                || NONE.to_string(),
                |a| measured(numbers, NUM, || format!("{a:.2}")),
            ));
        }
        row.push(verdict(r));
        table.row(row);
    }
    table
}

/// The knee of each sweep of the case with two loads or more: `perf closed ISL 128 OSL 64:
/// concurrency 4`, or `none up to concurrency 16`. Which sweeps there are does not depend on
/// what was measured; where (and whether) each has a knee does, and is redacted.
pub fn knees(trials: &[RunTrial], numbers: Numbers) -> Vec<String> {
    sweeps(trials)
        .iter()
        .map(|sweep| {
            let at = measured(numbers, KNEE, || match sweep.knee() {
                Some(k) => sweep.axis.describe(k.load),
                None => {
                    let top = sweep.trials.last().map_or(0.0, |(load, _)| *load);
                    format!("none up to {}", sweep.axis.describe(top))
                }
            });
            format!("{}: {at}", sweep.label)
        })
        .collect()
}

/// How prefill scales along each series of trials that differ only in ISL (three lengths or
/// more): `perf closed OSL 64, concurrency 1: TTFT ≈ … ; k = 1.02 [0.96, 1.08]: linear`, a
/// super-linear class marked WARNING. Which series there are does not depend on what was
/// measured; the fit does, and is redacted.
pub fn prefill_scaling(trials: &[RunTrial], numbers: Numbers) -> Vec<String> {
    isl_series(trials)
        .into_iter()
        .filter_map(|series| {
            let fit = prefill::fit(&series.points)?;
            let text = measured(numbers, PREFILL, || {
                let warning = if fit.class == prefill::PrefillClass::SuperLinear {
                    "WARNING: super-linear (something recomputes per request, or attention's \
                     quadratic cost shows). "
                } else {
                    ""
                };
                format!("{warning}{}", fit.describe())
            });
            Some(format!("{}: {text}", series.label))
        })
        .collect()
}

/// What precedes the prefill-scaling lines.
pub const PREFILL_INTRO: &str = "Prefill scaling (median TTFT = a + b·ISL^k, fitted on a log scale \
     over trials that differ only in ISL; k ≈ 1 is linear):";

/// What precedes the consistency lines.
pub const CONSISTENCY_INTRO: &str = "Consistency (the same prompt, one request at a time; mean ± std \
     and CV, second half against the first, and what the variation points at):";

/// One line per consistency trial: `[perf] c::isl64_osl16_same_n40: TTFT 41.2 ± 4.1 (CV
/// 10.0 %) ms, decode 198.0 ± 19.8 (CV 10.0 %) tok/s, halves TTFT +1.2 % decode −0.3 %; low
/// decode variance with high TTFT variance points at …`. Which trials have a line depends on
/// their mode; the line itself is measured, and redacted.
pub fn consistency_lines(trials: &[RunTrial], numbers: Numbers) -> Vec<String> {
    trials
        .iter()
        .filter(|t| t.report.shape() == Some(super::LoadShape::Consistency))
        .map(|t| {
            let text = measured(numbers, NUM, || {
                let Some(c) = t.report.summary().and_then(|s| s.consistency.as_ref()) else {
                    return "too few successful requests to measure".to_string();
                };
                let decode = c
                    .decode_tok_s
                    .map_or_else(|| NONE.to_string(), |d| d.describe());
                let halves = c.drift.map_or_else(String::new, |d| {
                    format!(
                        ", halves TTFT {:+.1} % decode {:+.1} %",
                        d.ttft_change * 100.0,
                        d.decode_change * 100.0
                    )
                });
                format!(
                    "TTFT {} ms, decode {decode} tok/s{halves}; {}",
                    c.ttft_ms.describe(),
                    c.reading.describe()
                )
            });
            format!("{}: {text}", t.name())
        })
        .collect()
}

/// What precedes the TTFT-by-turn lines.
pub const TURNS_INTRO: &str = "Conversations (p50 TTFT by turn position, and the context it \
     grew from and to):";

/// One line per trial of conversations: `[perf] c::…_sr2_20s_long: TTFT p50 by turn 21.6,
/// 31.6, 41.4 ms (last ÷ first 1.91); context 36 → 76 tokens; 18 sessions, 15 completed, 1
/// ended at max_context`. Which trials have a line depends on their case; the line itself is
/// measured, and redacted.
pub fn turn_lines(trials: &[RunTrial], numbers: Numbers) -> Vec<String> {
    trials
        .iter()
        .filter_map(|t| t.report.summary()?.turns.as_ref().map(|turns| (t, turns)))
        .map(|(t, turns)| {
            let text = measured(numbers, NUM, || {
                let p50: Vec<f64> = turns
                    .by_turn
                    .iter()
                    .filter_map(|p| p.ttft_ms.as_ref().map(|d| d.p50))
                    .collect();
                let ratio = match (p50.first(), p50.last()) {
                    (Some(first), Some(last)) if p50.len() > 1 && *first > 0.0 => {
                        format!(" (last ÷ first {:.2})", last / first)
                    }
                    _ => String::new(),
                };
                let listed: Vec<String> = p50.iter().map(|v| format!("{v:.1}")).collect();
                let context: Vec<f64> = turns
                    .by_turn
                    .iter()
                    .filter_map(|p| p.prompt_tokens_mean)
                    .collect();
                let context = match (context.first(), context.last()) {
                    (Some(first), Some(last)) => {
                        format!("; context {first:.0} → {last:.0} tokens")
                    }
                    _ => String::new(),
                };
                let full = match turns.conversations_context_full {
                    0 => String::new(),
                    n => format!(", {n} ended at max_context"),
                };
                format!(
                    "TTFT p50 by turn {} ms{ratio}{context}; {} sessions, {} completed{full}",
                    listed.join(", "),
                    turns.conversations,
                    turns.conversations_completed
                )
            });
            format!("{}: {text}", t.name())
        })
        .collect()
}

/// What precedes the contention lines.
pub const CONTENTION_INTRO: &str = "Contention (each endpoint alone, at its share of the load, \
     against the same endpoint with the load spread over all of them):";

/// One line per spread trial whose endpoints were each measured alone (`contention: true`).
pub fn contention_lines(trials: &[RunTrial], numbers: Numbers) -> Vec<String> {
    contention::contention(trials)
        .into_iter()
        .map(|c| format!("{}: {}", c.trial, measured(numbers, NUM, || c.describe())))
        .collect()
}

/// Placeholder of a redacted prefill fit.
pub const PREFILL: &str = "<fit>";

/// Each load trial's analysis: the level and value of every quantity.
pub fn trial_analysis(trials: &[RunTrial], thresholds: &Thresholds, numbers: Numbers) -> Table {
    let mut columns = vec![("trial", Align::Left), ("level", Align::Left)];
    columns.extend(Quantity::ALL.iter().map(|q| (q.label(), Align::Left)));
    let mut table = Table::new(&columns);
    for trial in trials {
        let Some(analysis) = analyse(&trial.report, thresholds) else {
            continue;
        };
        let mut row = vec![
            format!(
                "[{}] {}",
                trial.report.meta.kind.as_str(),
                combination(&trial.report)
            ),
            level(numbers, analysis.level()),
        ];
        row.extend(analysis.findings.iter().map(|f| match numbers {
            Numbers::Redacted => LEVEL.to_string(),
            Numbers::Measured if f.value.is_none() => f.level.as_str().to_string(),
            Numbers::Measured => format!("{} {}", f.level.as_str(), f.value_text()),
        }));
        table.row(row);
    }
    table
}

/// The per-endpoint split of the trials that spread their load over several endpoints.
pub fn endpoints(trials: &[RunTrial], numbers: Numbers) -> Table {
    let mut table = Table::new(&[
        ("trial", Align::Left),
        ("endpoint", Align::Left),
        ("share", Align::Right),
        ("ok", Align::Right),
        ("failed", Align::Right),
        ("TTFT p50", Align::Right),
        ("TTFT p99", Align::Right),
        ("E2EL p50", Align::Right),
        ("E2EL p99", Align::Right),
        ("output tok/s", Align::Right),
    ]);
    for trial in trials {
        let r = &trial.report;
        let endpoints = r.load().map_or(&[][..], |l| l.endpoints.as_slice());
        let total: u64 = endpoints
            .iter()
            .map(|e| e.summary.requests_ok + e.summary.requests_failed)
            .sum();
        for e in endpoints {
            let s = &e.summary;
            let sent = s.requests_ok + s.requests_failed;
            table.row(vec![
                format!("[{}] {}", r.meta.kind.as_str(), combination(r)),
                e.name.clone(),
                measured(numbers, NUM, || {
                    if total == 0 {
                        NONE.to_string()
                    } else {
                        format!("{:.1} %", 100.0 * sent as f64 / total as f64)
                    }
                }),
                measured(numbers, NUM, || s.requests_ok.to_string()),
                measured(numbers, NUM, || s.requests_failed.to_string()),
                latency(numbers, s.ttft_ms.as_ref(), "p50"),
                latency(numbers, s.ttft_ms.as_ref(), "p99"),
                latency(numbers, s.e2el_ms.as_ref(), "p50"),
                latency(numbers, s.e2el_ms.as_ref(), "p99"),
                number(numbers, s.output_tok_s),
            ]);
        }
    }
    table
}

/// One latency metric's distribution for every load trial of a case.
pub fn distributions(trials: &[RunTrial], metric: &str, numbers: Numbers) -> Table {
    let mut columns = vec![
        ("kind", Align::Left),
        ("ISL", Align::Right),
        ("OSL", Align::Right),
        ("concurrency", Align::Right),
        ("prompts", Align::Right),
    ];
    columns.extend(DETAIL_STATS.iter().map(|s| (*s, Align::Right)));
    let mut table = Table::new(&columns);
    for trial in trials.iter().filter(|t| t.report.meta.kind.drives_load()) {
        let r = &trial.report;
        let distribution = r.summary().and_then(|s| s.distribution(metric));
        let mut row = vec![r.meta.kind.as_str().to_string()];
        row.extend(parameters(r));
        row.extend(
            DETAIL_STATS
                .iter()
                .map(|stat| latency(numbers, distribution, stat)),
        );
        table.row(row);
    }
    table
}

#[cfg(test)]
mod prefill_tests {
    use super::*;
    use crate::report::sample::isl_series_run as prefill_trials;

    #[test]
    fn a_super_linear_prefill_is_a_warning_and_a_linear_one_is_not() {
        let lines = prefill_scaling(&prefill_trials(1.5), Numbers::Measured);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].starts_with("perf closed OSL 16, concurrency 1: WARNING: super-linear"));
        let lines = prefill_scaling(&prefill_trials(1.0), Numbers::Measured);
        assert!(lines[0].ends_with(": linear"), "{lines:?}");
        assert!(!lines[0].contains("WARNING"), "{lines:?}");
        let redacted = prefill_scaling(&prefill_trials(1.0), Numbers::Redacted);
        assert_eq!(redacted, ["perf closed OSL 16, concurrency 1: <fit>"]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample::sample_run;

    #[test]
    fn failed_trials_come_first_with_their_reasons() {
        let text = render(
            &sample_run(),
            &Thresholds::default(),
            Numbers::Measured,
            Detail::Compact,
        );
        let verdicts: Vec<&str> = text
            .lines()
            .skip_while(|l| *l != "## Verdicts")
            .skip(4)
            .take(4)
            .collect();
        assert!(verdicts[0].contains("**FAIL**"), "{text}");
        assert!(
            verdicts[0].contains("57.644 does not satisfy < 50"),
            "{text}"
        );
        assert!(verdicts[3].contains("NA"), "{text}");
    }

    #[test]
    fn every_trial_is_listed_once_among_the_verdicts_and_once_under_its_case() {
        let run = sample_run();
        let text = render(
            &run,
            &Thresholds::default(),
            Numbers::Measured,
            Detail::Full,
        );
        let (head, cases) = text.split_once("## Analysis").expect("analysis section");
        for trial in &run.trials {
            let name = trial.name();
            assert_eq!(head.matches(&name).count(), 1, "{name} in\n{head}");
        }
        for (case, trials) in by_case(&run.trials) {
            let section = cases
                .split(&format!("\n## {case}\n\n"))
                .nth(1)
                .expect("case section");
            let rows = section.lines().skip(2).take_while(|l| l.starts_with('|'));
            assert_eq!(rows.count(), trials.len(), "{case} in\n{section}");
        }
        assert!(text.contains("| large "), "{text}");
        assert!(text.contains("50.0 %"), "{text}");
        assert!(text.contains("92.50"), "{text}");
        assert!(text.contains("E2EL (ms):"), "{text}");
        assert!(text.contains("CRITICAL 20.00 %"), "{text}");
    }

    #[test]
    fn each_sweep_gets_its_knee_or_says_there_is_none() {
        let mut run = sample_run();
        assert_eq!(
            knees(&run.trials, Numbers::Measured),
            ["perf closed ISL 128 OSL 16: none up to concurrency 4"]
        );
        // At 4 in flight TTFT doubles for no more throughput.
        let load = run.trials[2].report.load_mut().expect("a load trial");
        if let Some(ttft) = load.summary.ttft_ms.as_mut() {
            ttft.p50 *= 2.0;
        }
        assert_eq!(
            knees(&run.trials, Numbers::Measured),
            ["perf closed ISL 128 OSL 16: concurrency 4"]
        );
        assert_eq!(
            knees(&run.trials, Numbers::Redacted),
            ["perf closed ISL 128 OSL 16: <knee>"]
        );
    }

    #[test]
    fn the_compact_variant_leaves_out_the_distributions() {
        let text = render(
            &sample_run(),
            &Thresholds::default(),
            Numbers::Measured,
            Detail::Compact,
        );
        assert!(!text.contains("TTFT (ms):"), "{text}");
    }

    #[test]
    fn thresholds_change_the_analysis() {
        let strict = Thresholds::default()
            .with_overrides(&["ttft_p50_s.warning=0.01", "ttft_p50_s.critical=0.02"])
            .expect("valid");
        let text = render(&sample_run(), &strict, Numbers::Measured, Detail::Compact);
        assert!(text.contains("CRITICAL 50 ms"), "{text}");
    }

    #[test]
    fn a_redacted_summary_does_not_change_with_measurements() {
        let mut other = sample_run();
        for trial in &mut other.trials {
            let Some(load) = trial.report.load_mut() else {
                continue;
            };
            let s = &mut load.summary;
            s.output_tok_s *= 3.7;
            s.error_rate = 0.5;
            if let Some(ttft) = s.ttft_ms.as_mut() {
                ttft.mean *= 11.0;
                ttft.p50 *= 90.0;
            }
        }
        other.notes = vec!["[perf] y ran 3 times; the newest (2030-01-01) is shown".into()];
        let redacted =
            |run: &Run| render(run, &Thresholds::default(), Numbers::Redacted, Detail::Full);
        assert_eq!(redacted(&sample_run()), redacted(&other));
    }

    #[test]
    fn redacted_summary_snapshot() {
        insta::assert_snapshot!(render(
            &sample_run(),
            &Thresholds::default(),
            Numbers::Redacted,
            Detail::Full
        ));
    }
}
