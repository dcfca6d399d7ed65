//! `llm-stress bench --url URL --isl 128 --osl 64 --concurrency 1,4,16`: an ad hoc benchmark
//! of a running server with no YAML to write, for users of vLLM's `bench serve` (its flag
//! names are accepted where the meaning is the same). The flags become a case file and a model
//! spec, written into the output folder (`OUT/bench-cases/`, so the run can be repeated with
//! `llm-stress run OUT/bench-cases`), and run through the same pipeline as any case: the same
//! trial folders, `results.csv`, tables, `summary.md` and `report.html`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use super::run;
use crate::progress::{self, ProgressSetting};

/// Benchmark a running server from flags alone.
#[derive(clap::Args)]
pub struct Args {
    /// The server's base URL, such as http://127.0.0.1:8000.
    #[arg(long, alias = "base-url")]
    url: String,
    /// Protocol: chat, completions or llama_cpp.
    #[arg(long, default_value = "chat")]
    api: String,
    /// Model name sent in requests (default: the first model the server lists).
    #[arg(long)]
    model: Option<String>,
    /// Input lengths in tokens, comma-separated.
    #[arg(
        long,
        alias = "random-input-len",
        value_delimiter = ',',
        default_value = "128"
    )]
    isl: Vec<u32>,
    /// Output lengths in tokens, comma-separated.
    #[arg(
        long,
        alias = "random-output-len",
        value_delimiter = ',',
        default_value = "64"
    )]
    osl: Vec<u32>,
    /// Closed-loop concurrencies, comma-separated (with --rate: the most requests in flight).
    #[arg(
        long,
        alias = "max-concurrency",
        value_delimiter = ',',
        default_value = "1"
    )]
    concurrency: Vec<u32>,
    /// Open loop: arrival rates in requests per second, comma-separated.
    #[arg(long, alias = "request-rate", value_delimiter = ',')]
    rate: Vec<f64>,
    /// Measured requests per combination (default: rounds × concurrency).
    #[arg(long, alias = "num-prompts")]
    num_prompts: Option<u32>,
    /// Rounds of the concurrency when --num-prompts is not given.
    #[arg(long, default_value_t = 4)]
    rounds: u32,
    /// Run each combination for this long instead of a number of requests (e.g. `30s`).
    #[arg(long)]
    duration: Option<String>,
    /// Requests (or a duration) sent before measuring.
    #[arg(long, default_value = "2")]
    warmup: String,
    /// The model's context window, tokens (ISL + OSL are fitted into it).
    #[arg(long, default_value_t = 8192)]
    max_context: u32,
    /// Per-request timeout, seconds.
    #[arg(long, default_value_t = 120)]
    timeout_s: u64,
    /// Seed of prompts and arrivals.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder.
    #[arg(long, env = "LLM_STRESS_OUT")]
    out: Option<PathBuf>,
    /// Live progress: auto, bar, lines or off.
    #[arg(long, env = progress::PROGRESS_ENV, default_value = "auto", ignore_case = true)]
    progress: ProgressSetting,
}

/// The case name of an ad hoc benchmark.
pub const CASE_NAME: &str = "bench";

impl Args {
    /// The case file the flags describe.
    fn case_yaml(&self) -> Result<String> {
        if !["chat", "completions", "llama_cpp"].contains(&self.api.as_str()) {
            bail!(
                "--api must be chat, completions or llama_cpp, got `{}`",
                self.api
            );
        }
        let list = |values: &[u32]| {
            values
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut yaml = format!(
            "# Written by `llm-stress bench`: run it again with `llm-stress run` on this folder.\n\
             name: {CASE_NAME}\nmodel: {CASE_NAME}\nkinds: [perf]\napi: {}\n\
             server:\n  attach: {{ url: {}",
            self.api,
            yaml_string(&self.url),
        );
        if let Some(model) = &self.model {
            let _ = write!(yaml, ", served_model: {}", yaml_string(model));
        }
        let _ = write!(
            yaml,
            " }}\nmatrix:\n  mode: custom\n  isl: [{}]\n  osl: [{}]\n  concurrency: [{}]\n",
            list(&self.isl),
            list(&self.osl),
            list(&self.concurrency)
        );
        match self.num_prompts {
            Some(n) => {
                let _ = writeln!(yaml, "  prompts: {{ fixed: {n} }}");
            }
            None => {
                let _ = writeln!(yaml, "  rounds: {}", self.rounds);
            }
        }
        let _ = write!(
            yaml,
            "load:\n  warmup: {}\n  timeout_s: {}\n  seed: {}\n",
            self.warmup, self.timeout_s, self.seed
        );
        if let Some(duration) = &self.duration {
            let _ = writeln!(yaml, "  duration: {duration}");
        }
        if !self.rate.is_empty() {
            let rates: Vec<String> = self.rate.iter().map(f64::to_string).collect();
            let _ = writeln!(yaml, "  mode: open\n  rate: [{}]", rates.join(", "));
        }
        Ok(yaml)
    }

    /// The model spec: the context and the largest concurrency.
    fn model_yaml(&self) -> String {
        let most = self.concurrency.iter().copied().max().unwrap_or(1).max(1);
        format!(
            "name: {CASE_NAME}\nmax_context: {}\nmax_concurrency: {most}\n",
            self.max_context
        )
    }
}

/// `text` as a double-quoted YAML string.
fn yaml_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| format!("{text:?}"))
}

/// Writes the case and model spec into `OUT/bench-cases/` and runs them.
pub fn exec(args: Args) -> Result<ExitCode> {
    let out = crate::report::trial_dir::out_dir(args.out.as_deref());
    let cases = out.join("bench-cases");
    std::fs::create_dir_all(cases.join("models"))
        .with_context(|| format!("creating {}", cases.display()))?;
    let case_path = cases.join(format!("{CASE_NAME}.yaml"));
    std::fs::write(&case_path, args.case_yaml()?)
        .with_context(|| format!("writing {}", case_path.display()))?;
    std::fs::write(
        cases.join("models").join(format!("{CASE_NAME}.yaml")),
        args.model_yaml(),
    )
    .with_context(|| format!("writing the model spec in {}", cases.display()))?;
    eprintln!("case: {}", case_path.display());
    run::exec(run::Args::for_folder(cases, Some(out), args.progress))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::case::CaseSpec;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn case(flags: &[&str]) -> CaseSpec {
        let cli = Cli::try_parse_from(std::iter::once("bench").chain(flags.iter().copied()))
            .expect("flags parse");
        let yaml = cli.args.case_yaml().expect("yaml");
        crate::case::load::parse_yaml(std::path::Path::new("bench.yaml"), &yaml)
            .unwrap_or_else(|e| panic!("{e}\n{yaml}"))
    }

    #[test]
    fn vllm_flag_names_make_the_same_case() {
        let ours = case(&[
            "--url",
            "http://h:1",
            "--isl",
            "256",
            "--osl",
            "32",
            "--concurrency",
            "1,4",
        ]);
        let theirs = case(&[
            "--base-url",
            "http://h:1",
            "--random-input-len",
            "256",
            "--random-output-len",
            "32",
            "--max-concurrency",
            "1,4",
        ]);
        assert_eq!(format!("{ours:?}"), format!("{theirs:?}"));
        let matrix = ours.matrix.expect("matrix");
        assert_eq!((matrix.isl, matrix.osl), (Some(vec![256]), Some(vec![32])));
        assert_eq!(matrix.concurrency, Some(vec![1, 4]));
        assert_eq!(matrix.rounds, Some(4));
    }

    #[test]
    fn a_rate_makes_an_open_loop_and_num_prompts_a_fixed_count() {
        let spec = case(&[
            "--url",
            "http://h:1",
            "--request-rate",
            "2.5",
            "--num-prompts",
            "40",
        ]);
        assert_eq!(spec.load.mode, crate::case::traffic::LoadMode::Open);
        assert_eq!(
            spec.matrix.expect("matrix").prompts,
            crate::case::PromptsSpec::Fixed(40)
        );
    }

    #[test]
    fn an_unknown_api_is_an_error() {
        let cli = Cli::try_parse_from(["bench", "--url", "http://h:1", "--api", "grpc"])
            .expect("flags parse");
        assert!(cli.args.case_yaml().is_err());
    }
}
