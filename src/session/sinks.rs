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
use crate::report::{TrialReport, csv, trial_dir};
use crate::sim::study::{self, StudyStep};

/// A sim trial's table (as `llm-stress run` prints it), in its folder.
pub const TABLE_FILE: &str = "table.md";

/// Writes each finished trial's folder (`summary.json`, `records.jsonl`, `accuracy.jsonl`;
/// a sim trial's study CSVs and table) and appends its row to the run's `results.csv` (not
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
        let Some(study_files) = &outcome.study else {
            csv::append(&self.out_dir.join(crate::report::run::RESULTS_FILE), report)?;
            trial_dir::write(
                &self.out_dir,
                report,
                &outcome.records,
                &outcome.samples,
                failed,
            )?;
            return Ok(());
        };
        let dir = trial_dir::write_summary(&self.out_dir, report, failed)?;
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
