//! `llm-stress sim …`: the discrete-event serving simulator's commands.

use std::process::ExitCode;

use anyhow::Result;

/// The simulator's subcommands.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: crate::sim::cli::SimCommand,
}

/// Runs the simulator command, printing to stdout.
pub fn exec(args: Args) -> Result<ExitCode> {
    crate::sim::cli::execute(args.command, &mut std::io::stdout().lock())?;
    Ok(ExitCode::SUCCESS)
}
