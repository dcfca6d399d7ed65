//! `llm-stress supervise` (hidden: started by the first trial process that needs a shared
//! spawned server) and `llm-stress down` (stops a run's shared servers).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use crate::report::trial_dir;
use crate::server::shared;

/// Supervise the server an order file describes.
#[derive(clap::Args)]
pub struct SuperviseArgs {
    /// The order file (`OUT/RUN/servers/HASH.order.json`).
    order: PathBuf,
}

/// Stop the shared spawned servers of a run.
#[derive(clap::Args)]
pub struct DownArgs {
    /// The run folder (`OUT/RUN`); default: every run under the output folder.
    run: Option<PathBuf>,
    /// Output folder (when no run folder is given).
    #[arg(long, env = "LLM_STRESS_OUT")]
    out: Option<PathBuf>,
}

/// Runs the supervisor until its server is no longer needed.
pub fn exec_supervise(args: SuperviseArgs) -> Result<ExitCode> {
    Ok(shared::supervise(&args.order))
}

/// Stops the servers and says how many.
pub fn exec_down(args: DownArgs) -> Result<ExitCode> {
    let runs: Vec<PathBuf> = match args.run {
        Some(run) => vec![run],
        None => std::fs::read_dir(trial_dir::out_dir(args.out.as_deref()))
            .map(|entries| entries.flatten().map(|e| e.path()).collect())
            .unwrap_or_default(),
    };
    let stopped: usize = runs.iter().map(|run| shared::down(run)).sum();
    eprintln!("stopped {stopped} shared server(s)");
    Ok(ExitCode::SUCCESS)
}
