//! `llm-stress`: run stress cases against a server, report on a run, serve the embedded
//! simulated server, run the simulator, or print a case's parameter matrix. The commands live
//! in [`llm_stress::cli`].

use std::process::ExitCode;

use clap::Parser;

use llm_stress::cli::Cli;

fn main() -> ExitCode {
    match Cli::parse().exec() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
