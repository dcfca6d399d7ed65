//! `llm-stress report`: a run's `summary.md` and `report.html`, the summary printed, and
//! optionally its metrics pushed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use super::{AnalysisArgs, PushArgs};
use crate::report::html::Extras;
use crate::report::summary_md::{self, Detail};
use crate::report::table::Numbers;
use crate::report::{publish, pushgateway, trial_dir};

/// Gather a run's trials into `summary.md` and `report.html`.
#[derive(clap::Args)]
pub struct Args {
    /// Output folder (default: `LLM_STRESS_OUT`, else target/llm-stress).
    out: Option<PathBuf>,
    /// The run id (default: the newest run in the folder).
    #[arg(long)]
    run: Option<String>,
    /// Print the detailed summary (every latency's distribution) too.
    #[arg(long)]
    detailed: bool,
    /// A predicted run (`sim predict`'s run folder, or an output folder holding it) whose
    /// throughput, TTFT and TPOT curves are drawn dashed over the measured ones.
    #[arg(long)]
    predicted: Option<PathBuf>,
    #[command(flatten)]
    analysis: AnalysisArgs,
    #[command(flatten)]
    push: PushArgs,
}

/// Writes the run's reports and prints its summary.
pub fn exec(args: Args) -> Result<ExitCode> {
    let thresholds = args.analysis.thresholds()?;
    let out = trial_dir::out_dir(args.out.as_deref());
    let extras = match &args.predicted {
        Some(path) => Extras::predicted(&crate::compare::runs::read_run(path, None)?.trials),
        None => Extras::default(),
    };
    let written = publish::write_run(&out, args.run.as_deref(), &thresholds, &extras)?;
    // The run's report is written: the spawned servers its trial processes shared are done.
    crate::server::shared::down(&out.join(trial_dir::safe_name(&written.run.run_id)));
    let detail = if args.detailed {
        Detail::Full
    } else {
        Detail::Compact
    };
    print!(
        "{}",
        summary_md::render(&written.run, &thresholds, Numbers::Measured, detail)
    );
    println!("\nsummary: {}", written.summary.display());
    println!("report:  {}", written.html.display());
    if let Some(gateway) = args.push.gateway() {
        let reports: Vec<_> = written.run.trials.iter().map(|t| &t.report).collect();
        gateway.push_blocking(pushgateway::exposition(&reports, &thresholds))?;
        println!("pushed:  {}", gateway.endpoint());
    }
    Ok(ExitCode::SUCCESS)
}
