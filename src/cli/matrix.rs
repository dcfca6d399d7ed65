//! `llm-stress matrix CASE`: the parameter combinations a case generates.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crate::{case, matrix};

/// Print the parameter combinations a case generates.
#[derive(clap::Args)]
pub struct Args {
    /// The case file.
    case: PathBuf,
}

/// Prints the case's combinations as a table.
pub fn exec(args: Args) -> Result<ExitCode> {
    let case = args.case;
    let loaded = case::load_case(&case)?;
    let (Some(spec), Some(model)) = (&loaded.spec.matrix, &loaded.model) else {
        bail!(
            "{}: the case needs a `matrix` and a `model` to generate combinations (a case of only `sim` trials has none)",
            case.display()
        );
    };
    let combinations = matrix::generate(spec, model)
        .with_context(|| format!("{}: key `matrix`", case.display()))?;
    println!(
        "{}: {} combinations (max_context {}, max_concurrency {})",
        loaded.spec.name,
        combinations.len(),
        spec.max_context.unwrap_or(model.max_context),
        model.max_concurrency
    );
    print!("{}", matrix::render_table(&combinations));
    Ok(ExitCode::SUCCESS)
}
