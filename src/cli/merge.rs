//! `llm-stress merge OUT/RUN`: the workers' shards of a run (`OUT/RUN/shards/I/`) merged into
//! the run's normal trial folders, `results.csv` rows, verdicts, `summary.md` and
//! `report.html`. Each load trial is replayed through the session from the union of its
//! shards' records ([`crate::session::merge`]), so the summary and the judge are the single
//! process's.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::{AnalysisArgs, PushArgs};
use crate::plan::discovery::{Discovered, discover_with};
use crate::session::merge::read_run;
use crate::session::sinks::{Publisher, TablePrinter, TrialFiles};
use crate::session::{RunContext, RunTally, Session, SessionError};

/// Merge the workers' shards of a run into its trials and reports.
#[derive(clap::Args)]
pub struct Args {
    /// The run folder the workers wrote to (OUT/RUN, holding shards/0, shards/1, …).
    run: PathBuf,
    /// Folder of the case files the workers ran (the same selection and overrides).
    #[arg(long, default_value = "stress-cases")]
    cases: PathBuf,
    /// The workers' selection and overrides (the same `--filter`, `--tag` and `--set`).
    #[command(flatten)]
    selection: super::SelectionArgs,
    #[command(flatten)]
    analysis: AnalysisArgs,
    #[command(flatten)]
    push: PushArgs,
}

/// Merges the run; the exit code is 1 when a merged trial failed.
pub fn exec(args: Args) -> Result<ExitCode> {
    let overrides = args.selection.overrides()?;
    let publisher = Publisher::new(args.analysis.thresholds()?, args.push.gateway(), None);
    let tally = merge(
        &args.run,
        discover_with(&args.cases, None, &overrides),
        args.selection.filter.as_deref(),
        &args.selection.tags,
        |session| session.with_sink(TablePrinter).with_sink(publisher),
    )?;
    Ok(if tally.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Merges the shards under `run_dir` (OUT/RUN) for the `discovered` trials that `filter` and
/// `tags` select: each is replayed and written to OUT/RUN like a trial of one process, with
/// the sinks `sinks` adds after the trial-folder writer.
pub fn merge(
    run_dir: &Path,
    discovered: Vec<Discovered>,
    filter: Option<&str>,
    tags: &[String],
    sinks: impl FnOnce(Session) -> Session,
) -> Result<RunTally> {
    let merged = read_run(run_dir).with_context(|| format!("merging {}", run_dir.display()))?;
    let out = match run_dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut waiting: BTreeSet<String> = merged.trials.keys().cloned().collect();
    let context = RunContext {
        run_id: merged.run_id.clone(),
        out_dir: out.clone(),
        url_override: None,
    };
    let session = sinks(
        Session::new(context)
            .replaying(merged.trials)
            .with_sink(TrialFiles::new(out)),
    );
    let mut replayed = 0usize;
    let result = (|| -> Result<(), SessionError> {
        for found in discovered {
            match found {
                Discovered::Broken {
                    name,
                    kind,
                    message,
                } => {
                    eprintln!("[{kind}] {name}: {message}\n");
                    session.note_failure(format!("[{kind}] {name}"));
                }
                Discovered::Plan(plan) => {
                    let full = plan.full_name();
                    if filter.is_some_and(|f| !full.contains(f))
                        || !plan.has_any_tag(tags)
                        || !session.replays(&full)
                    {
                        continue;
                    }
                    waiting.remove(&full);
                    replayed += 1;
                    session.run_trial(&plan)?;
                }
            }
        }
        Ok(())
    })();
    for name in &waiting {
        eprintln!(
            "warning: shards of {name} were not merged: no selected trial of the cases has that name"
        );
    }
    if let Err(e) = result {
        session.finish()?;
        return Err(e.into());
    }
    anyhow::ensure!(
        replayed > 0,
        "no trial of the cases matches the shards in {} (same --cases, --set and selection as the workers?)",
        run_dir.display()
    );
    Ok(session.finish()?)
}
