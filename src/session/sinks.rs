//! The sinks the adapters use: the trial-folder and `results.csv` writer, the table printer,
//! and the run's publisher (summary, HTML report, Pushgateway). The progress display is one
//! too, see [`crate::progress`].

use std::path::PathBuf;

use super::{Event, RunContext, Sink, SinkError, TrialOutcome};
use crate::report::analysis::Thresholds;
use crate::report::html::Extras;
use crate::report::publish;
use crate::report::pushgateway::{self, Gateway, PeriodicPush};
use crate::report::table::{self, Numbers};
use crate::report::{TrialReport, csv, rerun, trial_dir};
use crate::sim::study::{self, StudyStep};

/// A sim trial's table (as `llm-stress run` prints it), in its folder.
pub const TABLE_FILE: &str = "table.md";

/// Writes each finished trial's folder (`summary.json`, `records.jsonl`, `accuracy.jsonl`,
/// `case.yaml`, `rerun.json` and `windows.csv`; a sim trial's study CSVs and table) and appends its row to the run's `results.csv` (not
/// for sim trials: those columns measure load).
#[derive(Debug, Clone)]
pub struct TrialFiles {
    out_dir: PathBuf,
}

impl TrialFiles {
    /// Writes under `out_dir`.
    pub fn new(out_dir: PathBuf) -> TrialFiles {
        TrialFiles { out_dir }
    }

    fn write(&self, outcome: &TrialOutcome) -> Result<(), SinkError> {
        let report = &outcome.report;
        let failed = !outcome.passed;
        let mut rerun_files = rerun::files(&outcome.case_yaml, &outcome.rerun)
            .map_err(|e| crate::report::ReportError::json(&self.out_dir, e))?;
        if let Some(shard) = &outcome.shard {
            let json = serde_json::to_vec_pretty(shard)
                .map_err(|e| crate::report::ReportError::json(&self.out_dir, e))?;
            rerun_files.push((super::shard::SHARD_FILE, json));
        }
        rerun_files.extend(outcome.attachments.iter().cloned());
        let Some(study_files) = &outcome.study else {
            csv::append(&self.out_dir.join(crate::report::run::RESULTS_FILE), report)?;
            if let Some(spooled) = &outcome.spooled {
                trial_dir::write_spooled(
                    &self.out_dir,
                    report,
                    &spooled.path,
                    spooled.windows.as_deref(),
                    &outcome.samples,
                    &rerun_files,
                    failed,
                )?;
                // The run's spool folder goes once no other trial's spool is in it.
                if let Some(folder) = spooled.path.parent() {
                    let _ = std::fs::remove_dir(folder);
                }
                return Ok(());
            }
            trial_dir::write_with(
                &self.out_dir,
                report,
                &outcome.records,
                &outcome.samples,
                &rerun_files,
                failed,
            )?;
            return Ok(());
        };
        let dir = trial_dir::write_summary(&self.out_dir, report, &rerun_files, failed)?;
        if !study_files.knee_runs.is_empty() {
            let name = StudyStep::ReplicaScaling.name();
            study::write_csv(&dir.join(format!("{name}.csv")), &study_files.knee_runs)?;
        }
        study::write_csv(
            &dir.join(format!("{}.csv", study_files.step.name())),
            &study_files.rows,
        )?;
        let path = dir.join(TABLE_FILE);
        std::fs::write(&path, table::render(report, Numbers::Measured))
            .map_err(|e| crate::report::ReportError::io(&path, "write", e))?;
        Ok(())
    }
}

impl Sink for TrialFiles {
    fn event(&mut self, event: &Event<'_>) -> Result<(), SinkError> {
        match event {
            Event::TrialStarted { plan } if !matches!(plan, crate::plan::TrialPlan::Sim(_)) => Ok(
                csv::check_existing(&self.out_dir.join(crate::report::run::RESULTS_FILE))?,
            ),
            Event::TrialFinished { outcome } => self.write(outcome),
            _ => Ok(()),
        }
    }
}

/// Prints what the CLI's `run` prints: `running …` on stderr before each trial, and each
/// finished trial's table on stdout.
#[derive(Debug, Clone, Copy, Default)]
pub struct TablePrinter;

impl Sink for TablePrinter {
    fn event(&mut self, event: &Event<'_>) -> Result<(), SinkError> {
        match event {
            Event::TrialStarted { plan } => eprintln!("running {}", plan.full_name()),
            Event::TrialFinished { outcome } => {
                println!("{}", table::render(&outcome.report, Numbers::Measured));
            }
            Event::RunFinished { .. } => {}
        }
        Ok(())
    }
}

/// Warns on stderr when a finished trial's latency distribution holds fewer than `min`
/// samples (`run --min-samples N`): a p95 or p99 from a handful of requests is about the
/// largest of them, and a gate on it decides little.
#[derive(Debug, Clone, Copy)]
pub struct SampleWarnings {
    /// The fewest samples a distribution should have.
    pub min: u64,
}

impl SampleWarnings {
    /// The warnings for one report: `(metric, samples)` of each distribution under `min`.
    pub fn short(&self, report: &TrialReport) -> Vec<(&'static str, u64)> {
        let Some(summary) = report.summary() else {
            return Vec::new();
        };
        ["ttft_ms", "tpot_ms", "itl_ms", "e2el_ms"]
            .into_iter()
            .filter_map(|metric| {
                let count = summary.distribution(metric)?.count;
                (count < self.min).then_some((metric, count))
            })
            .collect()
    }
}

impl Sink for SampleWarnings {
    fn event(&mut self, event: &Event<'_>) -> Result<(), SinkError> {
        if let Event::TrialFinished { outcome } = event {
            for (metric, count) in self.short(&outcome.report) {
                eprintln!(
                    "warning: {}: {metric} has {count} samples, fewer than --min-samples {} \
                     (more requests: matrix.rounds, load.requests or load.duration)",
                    outcome.report.full_name(),
                    self.min
                );
            }
        }
        Ok(())
    }
}

/// Publishes the run when it finishes, as the CLI's `run` does: the tally on stdout, then
/// `summary.md` and `report.html` from the run's folder, and the run's metrics pushed to a
/// Pushgateway when one is named — every so often while the run goes too, when `every` is
/// set.
pub struct Publisher {
    thresholds: Thresholds,
    gateway: Option<Gateway>,
    live: Option<PeriodicPush>,
    reports: Vec<TrialReport>,
}

impl Publisher {
    /// Publishes with the analysis judged by `thresholds`, pushing to `gateway` at the end
    /// (and every `every` while the run goes).
    pub fn new(
        thresholds: Thresholds,
        gateway: Option<Gateway>,
        every: Option<std::time::Duration>,
    ) -> Publisher {
        let live = gateway
            .clone()
            .zip(every)
            .map(|(gateway, every)| PeriodicPush::start(gateway, every));
        Publisher {
            thresholds,
            gateway,
            live,
            reports: Vec::new(),
        }
    }

    fn finish(
        &mut self,
        context: &RunContext,
        trials: usize,
        failed: &[String],
    ) -> Result<(), SinkError> {
        println!(
            "{} trials, {} failed; reports in {}",
            trials,
            failed.len(),
            context.out_dir.display()
        );
        for name in failed {
            println!("FAILED {name}");
        }
        if trials == 0 {
            return Ok(());
        }
        let written = publish::write_run(
            &context.out_dir,
            Some(&context.run_id),
            &self.thresholds,
            &Extras::default(),
        )?;
        println!("summary: {}", written.summary.display());
        println!("report:  {}", written.html.display());
        let all: Vec<_> = written.run.trials.iter().map(|t| &t.report).collect();
        let body = pushgateway::exposition(&all, &self.thresholds);
        // The trials decide the exit code; a gateway that cannot be reached is reported.
        let pushed = match (self.live.take(), &self.gateway) {
            (Some(live), Some(gateway)) => Some((live.finish(body), gateway)),
            (None, Some(gateway)) => Some((gateway.push_blocking(body), gateway)),
            _ => None,
        };
        match pushed {
            Some((Ok(()), gateway)) => println!("pushed:  {}", gateway.endpoint()),
            Some((Err(e), _)) => eprintln!("warning: {e}"),
            None => {}
        }
        Ok(())
    }
}

impl Sink for Publisher {
    fn event(&mut self, event: &Event<'_>) -> Result<(), SinkError> {
        match event {
            Event::TrialStarted { .. } => Ok(()),
            Event::TrialFinished { outcome } => {
                if let Some(live) = &self.live {
                    self.reports.push(outcome.report.clone());
                    let all: Vec<&TrialReport> = self.reports.iter().collect();
                    live.update(pushgateway::exposition(&all, &self.thresholds));
                }
                Ok(())
            }
            Event::RunFinished {
                context,
                trials,
                failed,
            } => self.finish(context, *trials, failed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample::sample_report;

    #[test]
    fn distributions_under_the_minimum_are_named() {
        let report = sample_report();
        let counts: Vec<u64> = ["ttft_ms", "tpot_ms", "itl_ms", "e2el_ms"]
            .iter()
            .filter_map(|m| Some(report.summary()?.distribution(m)?.count))
            .collect();
        let most = counts.iter().copied().max().expect("distributions");
        assert!(SampleWarnings { min: 1 }.short(&report).is_empty());
        let short = SampleWarnings { min: most + 1 }.short(&report);
        assert_eq!(short.len(), counts.len(), "{short:?}");
    }
}
