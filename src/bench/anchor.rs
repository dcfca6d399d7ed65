//! The anchor: vLLM's own benchmark client (`async_request_openai_completions` from
//! `vllm/benchmarks/lib/endpoint_request_func.py`) driving the same `bench-server` with the
//! same plan, right after this harness's client, so both rows come from one run on one machine.
//!
//! `scripts/vllm-anchor.py` does the Python side: it downloads vLLM's wheel at a pinned version
//! from PyPI at run time (never copied into this repository), loads that one file with
//! importlib in a virtual environment of its own (aiohttp, regex, tqdm), runs the closed loop
//! and prints one JSON line: its rows' figures, or why it skipped. With `--sync` it also says
//! when its measured requests start and end and waits for a line on its standard input at
//! each: in between, its user time is sampled from here as this harness's own is
//! ([`super::UserSampling`]).

use std::path::PathBuf;
use std::process::Stdio;

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStdin, Command};

use super::{BenchConfig, BenchError, BenchRow, Measured, Plan, UserSampling, spawn_server};
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

/// Where the script is: `{"sync": "start", "pid": N}` before its measured requests, `{"sync":
/// "end"}` after them. It waits for a line on its standard input after each.
#[derive(Debug, Deserialize, PartialEq)]
struct SyncLine {
    sync: SyncPoint,
    /// The process to sample (the script's own, after it re-ran itself in its environment).
    #[serde(default)]
    pid: u32,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum SyncPoint {
    Start,
    End,
}

/// Lets the script go on.
async fn resume(stdin: &mut Option<ChildStdin>) {
    if let Some(pipe) = stdin
        && pipe.write_all(b"\n").await.is_err()
    {
        // The script is gone: its exit status and output say why.
        *stdin = None;
    }
}

/// The script's report from its output: its last non-blank line, which must be the JSON
/// object; a `skipped` report is an error carrying the reason.
fn parse_report(stdout: &str, status: &dyn std::fmt::Display) -> Result<Report, AnchorError> {
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty());
    let report: Report = match last.map(serde_json::from_str) {
        Some(Ok(report)) => report,
        _ => {
            return Err(AnchorError::Failed(format!(
                "exit {status}, last line `{}`",
                last.unwrap_or_default()
            )));
        }
    };
    match report.skipped {
        Some(reason) => Err(AnchorError::Skipped(reason)),
        None => Ok(report),
    }
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
        .arg("--sync")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    if plan.logged {
        command.arg("--log");
    }
    let cannot = |e: std::io::Error| AnchorError::NoPython {
        python: anchor.python.display().to_string(),
        reason: e.to_string(),
    };
    let mut child = command.spawn().map_err(cannot)?;
    let mut stdin = child.stdin.take();
    let stdout = child.stdout.take().ok_or_else(|| {
        AnchorError::Failed("the script's standard output was not captured".into())
    })?;
    let mut lines = BufReader::new(stdout).lines();
    let (mut output, mut sampling) = (String::new(), None);
    let mut sampled_user_s = Err("the anchor script did not say when it measured".to_string());
    while let Some(line) = lines
        .next_line()
        .await
        .map_err(|e| AnchorError::Failed(e.to_string()))?
    {
        match serde_json::from_str::<SyncLine>(&line) {
            Ok(SyncLine {
                sync: SyncPoint::Start,
                pid,
            }) => sampling = Some(UserSampling::start(pid)),
            Ok(SyncLine {
                sync: SyncPoint::End,
                ..
            }) => {
                if let Some(running) = sampling.take() {
                    sampled_user_s = running.finish();
                }
            }
            Err(_) => {
                output.push_str(&line);
                output.push('\n');
                continue;
            }
        }
        resume(&mut stdin).await;
    }
    drop(stdin);
    let status = child.wait().await.map_err(cannot)?;
    let report = parse_report(&output, &status)?;
    Ok(BenchRow {
        client: Measured::Vllm(report.version),
        round: 1,
        mode: config.mode,
        streams: plan.streams,
        requests: report.requests,
        chunks: report.chunks,
        failed: report.failed,
        wall_s: report.wall_s,
        user_s: report.user_s,
        sys_s: report.sys_s,
        sampled_user_s,
        reads: None,
        stamp_error: Distribution::from_ms(report.stamp_errors_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::{AnchorError, SyncLine, SyncPoint, parse_report};

    #[test]
    fn the_last_line_is_the_report() {
        let out = "progress\n{\"version\":\"0.33.0\",\"requests\":2,\"chunks\":8,\"failed\":0,\"wall_s\":1.5,\"user_s\":0.25,\"sys_s\":0.125,\"stamp_errors_ms\":[0.5,1.0]}\n\n";
        let report = parse_report(out, &0).expect("a report");
        assert_eq!((report.version.as_str(), report.chunks), ("0.33.0", 8));
        assert_eq!((report.user_s, report.sys_s), (0.25, 0.125));
        assert_eq!(report.stamp_errors_ms, [0.5, 1.0]);
    }

    #[test]
    fn sync_lines_are_told_from_the_report() {
        let start: SyncLine = serde_json::from_str(r#"{"sync":"start","pid":42}"#).expect("start");
        assert_eq!(
            start,
            SyncLine {
                sync: SyncPoint::Start,
                pid: 42
            }
        );
        let end: SyncLine = serde_json::from_str(r#"{"sync":"end"}"#).expect("end");
        assert_eq!(end.sync, SyncPoint::End);
        let report = r#"{"version":"0.33.0","requests":2,"chunks":8,"failed":0,"wall_s":1.5,"user_s":0.25,"sys_s":0.125}"#;
        assert!(serde_json::from_str::<SyncLine>(report).is_err());
    }

    #[test]
    fn a_skip_carries_its_reason_and_other_output_is_a_failure() {
        let skipped = parse_report("{\"skipped\":\"no network\"}\n", &0);
        assert!(matches!(skipped, Err(AnchorError::Skipped(r)) if r == "no network"));
        let failed = parse_report("Traceback …\nValueError: x\n", &1);
        assert!(
            matches!(&failed, Err(AnchorError::Failed(d)) if d.contains("ValueError")),
            "{failed:?}"
        );
        assert!(matches!(parse_report("", &1), Err(AnchorError::Failed(_))));
    }
}
