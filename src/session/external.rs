//! The `external` task: its command run against the trial's server, with a time limit, its
//! output kept for the trial's folder and its score read ([`crate::accuracy::external`]).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::accuracy::external::{Source, Substitutions, newest_json, read_score};
use crate::case::AccuracySpec;
use crate::client::Client;

/// Environment variable holding the trial's server URL for an external command.
pub const BASE_URL_ENV: &str = "LLM_STRESS_BASE_URL";

/// The command's standard output, in the trial's folder.
pub const STDOUT_FILE: &str = "external.stdout";

/// The command's standard error, in the trial's folder.
pub const STDERR_FILE: &str = "external.stderr";

/// Most bytes of stderr quoted in a failed check.
const STDERR_TAIL_BYTES: usize = 1500;

/// What an external command produced.
pub(super) struct ExternalRun {
    /// The score in points, or why there is none (the evidence of the failure).
    pub score: Result<f64, String>,
    /// Files for the trial's folder: its stdout and stderr.
    pub files: Vec<(&'static str, Vec<u8>)>,
}

/// Runs the task's command against `client`'s server from the case's folder, with `out_dir`
/// (created) as `{out_dir}`, and reads its score.
pub(super) async fn run(
    spec: &AccuracySpec,
    client: &Client,
    case_dir: &Path,
    out_dir: PathBuf,
) -> ExternalRun {
    let subs = Substitutions {
        base_url: client.base_url().to_string(),
        model: client.model().to_string(),
        out_dir,
    };
    let failed = |reason: String| ExternalRun {
        score: Err(reason),
        files: Vec::new(),
    };
    let (Some(argv), Some(score)) = (&spec.command, &spec.score) else {
        return failed("the task has no `command` or no `score`".into());
    };
    let argv: Vec<String> = argv.iter().map(|a| subs.apply(a)).collect();
    let Some((program, args)) = argv.split_first() else {
        return failed("the command is empty".into());
    };
    if let Err(e) = std::fs::create_dir_all(&subs.out_dir) {
        return failed(format!("{}: cannot create: {e}", subs.out_dir.display()));
    }
    let child = tokio::process::Command::new(program)
        .args(args)
        .current_dir(case_dir)
        .env(BASE_URL_ENV, &subs.base_url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(child) => child,
        Err(e) => return failed(format!("`{program}` did not start: {e}")),
    };
    let limit = Duration::from_secs(spec.timeout_s());
    // On a timeout the future is dropped, which kills the command (`kill_on_drop`).
    let output = match tokio::time::timeout(limit, child.wait_with_output()).await {
        Err(_) => {
            return failed(format!(
                "`{program}` ran past its timeout_s of {} s and was killed",
                limit.as_secs()
            ));
        }
        Ok(Err(e)) => return failed(format!("`{program}`: {e}")),
        Ok(Ok(output)) => output,
    };
    let redact = |bytes: &[u8]| -> Vec<u8> {
        client
            .secrets()
            .redact(&String::from_utf8_lossy(bytes))
            .into_owned()
            .into_bytes()
    };
    let files = vec![
        (STDOUT_FILE, redact(&output.stdout)),
        (STDERR_FILE, redact(&output.stderr)),
    ];
    let score = if output.status.success() {
        let stdout = String::from_utf8_lossy(&output.stdout);
        read_output(score, &subs, case_dir, &stdout)
    } else {
        let stderr = String::from_utf8_lossy(&files[1].1);
        let start = stderr.len().saturating_sub(STDERR_TAIL_BYTES);
        let start = (start..=stderr.len())
            .find(|&i| stderr.is_char_boundary(i))
            .unwrap_or(stderr.len());
        Err(format!(
            "`{program}` {}; the end of its stderr ({STDERR_FILE}): {}",
            match output.status.code() {
                Some(code) => format!("exited with status {code}"),
                None => "was killed by a signal".to_string(),
            },
            stderr[start..].trim()
        ))
    };
    ExternalRun { score, files }
}

/// The score from stdout or the file the score spec names.
fn read_output(
    score: &crate::case::ExternalScore,
    subs: &Substitutions,
    case_dir: &Path,
    stdout: &str,
) -> Result<f64, String> {
    let (text, place) = match Source::of(score, subs, case_dir) {
        Source::Stdout => (stdout.to_string(), "stdout".to_string()),
        Source::File(path) => {
            let file = if path.is_dir() {
                newest_json(&path)
                    .ok_or_else(|| format!("{}: no .json file in the folder", path.display()))?
            } else {
                path
            };
            let text = std::fs::read_to_string(&file)
                .map_err(|e| format!("{}: cannot read: {e}", file.display()))?;
            (text, file.display().to_string())
        }
    };
    read_score(score, &text).map_err(|e| format!("no score in {place}: {e}"))
}
