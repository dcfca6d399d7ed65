//! Spawned servers shared by a run's trial processes (as under nextest, one process per
//! trial): the first starts the server under a supervisor (`llm-stress supervise`), the others
//! attach; the supervisor stops it after its idle timeout with no holder, when the process
//! that started the trial processes ends, or on `llm-stress down`; a server that died is
//! started again for the next trial, which says so. Each trial process here is this test
//! binary running [`one_trial_process`] on its own, with a shared `LLM_STRESS_RUN_ID`; the
//! server is `llm-stress serve`, and each start appends a line to `starts.txt`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use llm_stress::server::shared::{EXE_ENV, Lease};
use llm_stress::session::Session;
use llm_stress::session::sinks::TrialFiles;

use crate::support::CaseDir;

const CASES_ENV: &str = "LLM_STRESS_TEST_SHARED_CASES";
const OUT_ENV: &str = "LLM_STRESS_TEST_SHARED_OUT";
const RUN: &str = "shared-run";

/// A cases folder with one single-trial case whose server logs each start; `prompts` requests
/// of about 0.1 s each (64 tokens at 1 ms).
fn case(tag: &str, idle_timeout_s: u32, prompts: u32) -> CaseDir {
    let dir = CaseDir::named(&format!("shared-{tag}"));
    let yaml = format!(
        "name: c\nmodel: m\nkinds: [perf]\nserver:\n  spawn:\n    command: 'echo $$ >> starts.txt; exec {{exe}} serve --port {{port}} --ttft-ms 2 --tpot-ms 1'\n    vars: {{ exe: {exe} }}\n    startup_timeout_s: 20\n    idle_timeout_s: {idle_timeout_s}\n\
         matrix: {{ mode: custom, isl: [16], osl: [64], concurrency: [1], prompts: {{ fixed: {prompts} }} }}\nload: {{ warmup: 0 }}\n",
        exe = env!("CARGO_BIN_EXE_llm-stress"),
    );
    dir.model("m", "name: m\nmax_context: 256\nmax_concurrency: 4\n")
        .case("c", &yaml);
    dir
}

/// One trial process of the run: this binary running only [`one_trial_process`].
fn trial_process(dir: &CaseDir) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("this test binary"));
    cmd.args([
        "--exact",
        "spawn_shared::one_trial_process",
        "--ignored",
        "--nocapture",
        "--test-threads",
        "1",
    ])
    .env(CASES_ENV, dir.cases())
    .env(OUT_ENV, dir.out())
    .env("LLM_STRESS_RUN_ID", RUN)
    .env(EXE_ENV, env!("CARGO_BIN_EXE_llm-stress"))
    .env_remove("LLM_STRESS_URL")
    .stdin(Stdio::null());
    cmd
}

fn run_trial_process(dir: &CaseDir) -> Output {
    let out = trial_process(dir).output().expect("the trial process runs");
    assert!(
        out.status.success(),
        "the trial failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A trial process of the tests below (it does nothing unless they started it).
#[test]
#[ignore = "a trial process of the shared-server tests, started by them"]
fn one_trial_process() {
    let (Some(cases), Some(out)) = (std::env::var_os(CASES_ENV), std::env::var_os(OUT_ENV)) else {
        panic!("run by the shared-server tests only ({CASES_ENV} and {OUT_ENV} unset)");
    };
    let context = llm_stress::session::RunContext {
        run_id: RUN.into(),
        out_dir: PathBuf::from(&out),
        url_override: None,
    };
    let session = Session::new(context)
        .sharing_spawned_servers()
        .with_sink(TrialFiles::new(PathBuf::from(out)));
    let plans = llm_stress::plan::discovery::discover(Path::new(&cases), None);
    for found in plans {
        let llm_stress::plan::discovery::Discovered::Plan(plan) = found else {
            panic!("a broken case");
        };
        let outcome = session.run_trial(&plan).expect("reports");
        for check in &outcome.report.verdict.checks {
            println!("CHECK {}: {}", check.name, check.reason);
        }
        assert!(outcome.passed, "{:#?}", outcome.report.verdict);
    }
    session.finish().expect("the run finishes");
}

fn servers_dir(dir: &CaseDir) -> PathBuf {
    dir.out().join(RUN).join("servers")
}

fn lease(dir: &CaseDir) -> Option<Lease> {
    let entries = std::fs::read_dir(servers_dir(dir)).ok()?;
    entries
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "lease"))
        .and_then(|p| serde_json::from_slice(&std::fs::read(p).ok()?).ok())
}

fn starts(dir: &CaseDir) -> Vec<i32> {
    std::fs::read_to_string(dir.cases().join("starts.txt"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Whether the process exists and is not a zombie.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .next()?
                .to_string();
            Some(state != "Z")
        })
        .unwrap_or(false)
}

/// Waits up to `limit` for every process in `pids` to be gone; whether they are.
fn all_gone_within(pids: &[i32], limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if pids.iter().all(|p| !alive(*p)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    pids.iter().all(|p| !alive(*p))
}

fn pids_of(lease: &Lease) -> Vec<i32> {
    let mut pids = vec![lease.supervisor_pid as i32];
    pids.extend(lease.server_pid.map(|p| p as i32));
    pids
}

fn down(dir: &CaseDir) {
    let status = Command::new(env!("CARGO_BIN_EXE_llm-stress"))
        .arg("down")
        .arg(dir.out().join(RUN))
        .status()
        .expect("llm-stress down runs");
    assert!(status.success());
}

#[test]
fn five_trial_processes_start_the_server_once_and_leave_no_process() {
    // An idle timeout of 5 s: far longer than the gap between two trial processes.
    let dir = case("five", 5, 3);
    let mut supervisors = Vec::new();
    for _ in 0..5 {
        run_trial_process(&dir);
        supervisors.push(lease(&dir).expect("a lease").supervisor_pid);
    }
    let started = starts(&dir);
    assert_eq!(
        started.len(),
        1,
        "one server start for five trials: {started:?}"
    );
    supervisors.dedup();
    assert_eq!(supervisors.len(), 1, "one supervisor");
    let lease = lease(&dir).expect("a lease");
    assert_eq!(lease.server_pid, Some(started[0] as u32));
    // No trial holds the server now: the supervisor stops it after its 5 s idle timeout.
    assert!(
        all_gone_within(&pids_of(&lease), Duration::from_secs(15)),
        "the server and its supervisor are gone after the idle timeout"
    );
    assert!(self::lease(&dir).is_none(), "and the lease with them");
}

#[test]
fn a_sigkilled_trial_process_leaves_the_server_to_the_idle_timeout() {
    // 50 requests keep the trial busy for about 5 s.
    let dir = case("sigkill", 2, 50);
    let mut trial: Child = trial_process(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the trial process starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    let lease = loop {
        if let Some(lease) = lease(&dir) {
            break lease;
        }
        assert!(Instant::now() < deadline, "no lease");
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(500));
    trial.kill().expect("SIGKILL the trial process");
    trial.wait().expect("reaped");
    let killed = Instant::now();
    assert!(
        pids_of(&lease).iter().all(|p| alive(*p)),
        "the server outlives the trial process, for the next trial"
    );
    assert!(
        all_gone_within(&pids_of(&lease), Duration::from_secs(10)),
        "the supervisor stops the server once no process holds it"
    );
    assert!(
        killed.elapsed() >= Duration::from_millis(1500),
        "not before the idle timeout: {:?}",
        killed.elapsed()
    );
}

#[test]
fn the_supervisor_stops_the_server_when_the_process_that_started_the_run_ends() {
    // The trial process's parent (as nextest is) is a shell that ends after it; the idle
    // timeout is far away.
    let dir = case("owner", 600, 3);
    let inner = trial_process(&dir);
    let mut shell = Command::new("sh");
    shell
        .arg("-c")
        .arg(r#""$@"; true"#)
        .arg("sh")
        .arg(inner.get_program());
    shell.args(inner.get_args());
    for (key, value) in inner.get_envs() {
        match value {
            Some(value) => shell.env(key, value),
            None => shell.env_remove(key),
        };
    }
    let status = shell.status().expect("the shell runs");
    assert!(status.success());
    let lease = lease(&dir).expect("a lease");
    assert!(
        all_gone_within(&pids_of(&lease), Duration::from_secs(5)),
        "the run ended: the server is gone"
    );
}

#[test]
fn a_dead_server_is_started_again_for_the_next_trial_which_says_so_and_down_stops_it() {
    let dir = case("restart", 600, 3);
    run_trial_process(&dir);
    let first = lease(&dir).expect("a lease");
    let server = first.server_pid.expect("a server pid") as i32;
    // SAFETY: SIGKILL to the server this test's trial started.
    unsafe {
        libc::kill(server, libc::SIGKILL);
    }
    assert!(all_gone_within(
        &[server, first.supervisor_pid as i32],
        Duration::from_secs(5)
    ));
    let out = run_trial_process(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("CHECK server restarted") && stdout.contains("signal 9"),
        "{stdout}"
    );
    assert_eq!(starts(&dir).len(), 2);
    let second = lease(&dir).expect("a lease");
    assert!(
        pids_of(&second).iter().all(|p| alive(*p)),
        "idle timeout 600 s: still up"
    );
    down(&dir);
    assert!(
        all_gone_within(&pids_of(&second), Duration::from_secs(2)),
        "llm-stress down stopped it"
    );
}
