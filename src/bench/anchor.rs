//! The anchor: vLLM's own benchmark client (`async_request_openai_completions` from
//! `vllm/benchmarks/lib/endpoint_request_func.py`) driving the same `bench-server` with the
//! same plan, right after this harness's client, so both rows come from one run on one machine.
//!
//! `scripts/vllm-anchor.py` does the Python side: it downloads vLLM's wheel at a pinned version
//! from PyPI at run time (never copied into this repository), loads that one file with
//! importlib in a virtual environment of its own (aiohttp, regex, tqdm), runs the closed loop
//! and prints one JSON line: its rows' figures, or why it skipped.

use std::path::PathBuf;
use std::process::Stdio;

use serde::Deserialize;
use tokio::process::Command;

use super::{BenchConfig, BenchError, BenchRow, Measured, Plan, spawn_server};
use crate::metrics::Distribution;

/// Where the anchor's script and interpreter are.
#[derive(Debug, Clone, PartialEq)]
pub struct AnchorConfig {
    /// `scripts/vllm-anchor.py`.
    pub script: PathBuf,
    /// The Python interpreter that starts it (it makes its own virtual environment).
    pub python: PathBuf,
}

impl AnchorConfig {
    /// The script in this checkout (`scripts/vllm-anchor.py` under the current folder, else
    /// under the folder this executable was built from) run by `python3`.
    pub fn default_script() -> AnchorConfig {
        let local = PathBuf::from("scripts/vllm-anchor.py");
        let script = if local.exists() {
            local
        } else {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/scripts/vllm-anchor.py"
            ))
        };
        AnchorConfig {
            script,
            python: PathBuf::from("python3"),
        }
    }
}

/// Why the anchor gave no row: each is a reason to skip it, not to fail the benchmark.
#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    /// The script is not there.
    #[error("no anchor script at {0}")]
    NoScript(String),
    /// Python could not be started.
    #[error("cannot start {python}: {reason}")]
    NoPython {
        /// The interpreter asked for.
        python: String,
        /// The OS's answer.
        reason: String,
    },
    /// The script skipped itself (no network, no wheel, no aiohttp, …) and said why.
    #[error("{0}")]
    Skipped(String),
    /// The script failed or printed something else than its JSON line.
    #[error("the anchor script failed: {0}")]
    Failed(String),
    /// The server for the anchor's run did not start.
    #[error(transparent)]
    Server(#[from] BenchError),
}

/// The script's last line of output.
#[derive(Debug, Deserialize)]
struct Report {
    /// Why it did not run.
    skipped: Option<String>,
    #[serde(default)]
    version: String,
    #[serde(default)]
    requests: u64,
    #[serde(default)]
    chunks: u64,
    #[serde(default)]
    failed: u64,
    #[serde(default)]
    wall_s: f64,
    #[serde(default)]
    user_s: f64,
    #[serde(default)]
    sys_s: f64,
    /// Every chunk's stamp minus the server's write instant, ms (logged plans only).
    #[serde(default)]
    stamp_errors_ms: Vec<f64>,
}

/// Runs `plan` with vLLM's client against a fresh server started as for this harness's run.
pub async fn run(
    config: &BenchConfig,
    anchor: &AnchorConfig,
    plan: &Plan,
) -> Result<BenchRow, AnchorError> {
    if !anchor.script.exists() {
        return Err(AnchorError::NoScript(anchor.script.display().to_string()));
    }
    let server = spawn_server(&config.server_exe, &plan.server_args).await?;
    let mut command = Command::new(&anchor.python);
    command
        .arg(&anchor.script)
        .args(["--url", &server.url])
        .args(["--streams", &plan.streams.to_string()])
        .args(["--requests", &plan.requests.to_string()])
        .args(["--tokens", &plan.tokens.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    if plan.logged {
        command.arg("--log");
    }
    let output = command.output().await.map_err(|e| AnchorError::NoPython {
        python: anchor.python.display().to_string(),
        reason: e.to_string(),
    })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty());
    let report: Report = match last.map(serde_json::from_str) {
        Some(Ok(report)) => report,
        _ => {
            return Err(AnchorError::Failed(format!(
                "exit {}, last line `{}`",
                output.status,
                last.unwrap_or_default()
            )));
        }
    };
    if let Some(reason) = report.skipped {
        return Err(AnchorError::Skipped(reason));
    }
    Ok(BenchRow {
        client: Measured::Vllm(report.version),
        mode: config.mode,
        streams: plan.streams,
        requests: report.requests,
        chunks: report.chunks,
        failed: report.failed,
        wall_s: report.wall_s,
        user_s: report.user_s,
        sys_s: report.sys_s,
        reads: None,
        stamp_error: Distribution::from_ms(report.stamp_errors_ms),
    })
}
