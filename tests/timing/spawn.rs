//! Spawned servers: this crate's own binary (`llm-stress serve`) started from a command on a
//! free port, shared by the trials of one process, restarted (and the death reported) when it
//! died, failing a trial with its exit status and log when it cannot start, and gone, with its
//! whole process group, when the session ends.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use llm_stress::plan::TrialPlan;
use llm_stress::session::RunContext;

use crate::support::CaseDir;

/// Each test has its own session, but they all start real processes that take the CPU: under
/// `cargo test` (threads, one process) they take turns.
static SERIAL: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A cases folder with one case whose server is `command` (`{exe}` is this crate's binary).
fn case(tag: &str, command: &str, extra: &str) -> (CaseDir, Vec<TrialPlan>) {
    case_with_matrix(
        tag,
        command,
        extra,
        "{ mode: custom, isl: [16], osl: [8], concurrency: [1, 2] }",
    )
}

fn case_with_matrix(
    tag: &str,
    command: &str,
    extra: &str,
    matrix: &str,
) -> (CaseDir, Vec<TrialPlan>) {
    let dir = CaseDir::named(&format!("spawn-{tag}"));
    let yaml = format!(
        "name: c\nmodel: m\nkinds: [perf]\nserver:\n  spawn:\n    command: '{command}'\n    vars: {{ exe: {exe} }}\n    startup_timeout_s: 20\n{extra}\
         matrix: {matrix}\nload: {{ warmup: 0 }}\n",
        exe = env!("CARGO_BIN_EXE_llm-stress"),
    );
    let plans = dir
        .model("m", "name: m\nmax_context: 256\nmax_concurrency: 4\n")
        .case("c", &yaml)
        .plans();
    (dir, plans)
}

fn context(dir: &CaseDir) -> RunContext {
    RunContext {
        run_id: "spawn-run".into(),
        out_dir: dir.out(),
        url_override: None,
    }
}

/// Whether the process exists and is not a zombie (an orphan's zombie waits for whatever
/// adopts it to reap it, but runs no more).
fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let exists = unsafe { libc::kill(pid, 0) == 0 };
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let after_name = stat.rsplit_once(')')?.1;
            after_name
                .split_whitespace()
                .next()
                .map(|state| state == "Z")
        })
        .unwrap_or(false);
    exists && !zombie
}

fn pid_in(path: &Path) -> i32 {
    for _ in 0..100 {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            return pid;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no pid in {}", path.display());
}

#[test]
fn a_spawned_server_is_shared_restarted_after_a_death_and_stopped_at_the_end() {
    let _turn = one_at_a_time();
    let (dir, plans) = case(
        "lifecycle",
        "echo $$ > server.pid; exec {exe} serve --port {port} --ttft-ms 2 --tpot-ms 1",
        "",
    );
    assert_eq!(plans.len(), 2);
    let session = crate::support::session(context(&dir));
    let first = session.run_trial(&plans[0]).expect("reports");
    assert!(first.passed, "{:#?}", first.report.verdict);
    assert_eq!(
        first.report.meta.server,
        llm_stress::case::ServerKind::Spawn
    );
    let pid_file = dir.path().join("cases/server.pid");
    let pid = pid_in(&pid_file);
    assert!(alive(pid));

    // The second trial shares the server.
    let second = session.run_trial(&plans[1]).expect("reports");
    assert!(second.passed, "{:#?}", second.report.verdict);
    assert_eq!(pid_in(&pid_file), pid, "the same server process");

    // Killed between trials: the next trial starts it again, says so, and passes.
    std::fs::remove_file(&pid_file).expect("remove pid file");
    // SAFETY: plain kill of the server this test started.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    std::thread::sleep(Duration::from_millis(100));
    let third = session.run_trial(&plans[0]).expect("reports");
    assert!(third.passed, "{:#?}", third.report.verdict);
    let note = third
        .report
        .verdict
        .checks
        .iter()
        .find(|c| c.name == "server restarted")
        .expect("the restart is reported");
    assert!(note.reason.contains("signal 9"), "{}", note.reason);
    let new_pid = pid_in(&pid_file);
    assert_ne!(new_pid, pid);

    session.finish().expect("the run finishes");
    std::thread::sleep(Duration::from_millis(100));
    assert!(!alive(new_pid), "the ended session leaves no server behind");
}

#[test]
fn a_server_killed_during_a_trial_fails_it_with_evidence_and_the_next_trial_restarts_it() {
    let _turn = one_at_a_time();
    // Each request takes about 20 + 64 × 10 ms, so 6 of them one at a time take about 4 s.
    let (dir, plans) = case_with_matrix(
        "midrun",
        "echo $$ > server.pid; echo serving >&2; exec {exe} serve --port {port} --ttft-ms 20 --tpot-ms 10",
        "",
        "{ mode: custom, isl: [16], osl: [64], concurrency: [1], prompts: { fixed: 6 } }",
    );
    let ctx = context(&dir);
    let pid_file = dir.path().join("cases/server.pid");
    let killer = std::thread::spawn(move || {
        let pid = pid_in(&pid_file);
        std::thread::sleep(Duration::from_millis(1500));
        std::fs::remove_file(&pid_file).expect("remove pid file");
        // SAFETY: plain kill of the server this test started.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    });
    let session = crate::support::session(ctx);
    let killed = session.run_trial(&plans[0]).expect("reports");
    killer.join().expect("killer");
    assert!(!killed.passed);
    let reasons = killed.report.verdict.failure_reasons().join("\n");
    assert!(
        reasons.contains("exited during the trial (killed by signal 9)")
            && reasons.contains("serving"),
        "{reasons}"
    );
    let failed = killed
        .report
        .summary()
        .expect("a load trial")
        .requests_failed;
    assert!(failed > 0, "{reasons}");

    let next = session.run_trial(&plans[0]).expect("reports");
    assert!(next.passed, "{:#?}", next.report.verdict);
    assert!(
        next.report
            .verdict
            .checks
            .iter()
            .any(|c| c.name == "server restarted"),
        "{:#?}",
        next.report.verdict
    );
    drop(session);
}

#[test]
fn a_server_that_cannot_start_fails_its_trial_with_its_exit_and_log() {
    let _turn = one_at_a_time();
    let (dir, plans) = case("dies", "echo model file is missing >&2; exit 3", "");
    let outcome = crate::support::session(context(&dir))
        .run_trial(&plans[0])
        .expect("reports");
    assert!(!outcome.passed);
    let reasons = outcome.report.verdict.failure_reasons().join("\n");
    assert!(
        reasons.contains("exit status 3") && reasons.contains("model file is missing"),
        "{reasons}"
    );
}

#[test]
fn a_missing_binary_makes_the_trials_ignored_or_failed_when_real_servers_are_required() {
    let _turn = one_at_a_time();
    let (dir, plans) = case(
        "missing",
        "{exe} serve --port {port}",
        "    requires_files: [LLM_STRESS_SPAWN_TEST_UNSET]\n    install_hint: 'eval \"$(.ci/install-llama.sh)\"'\n",
    );
    let wanted = |text: &str| {
        text.contains("LLM_STRESS_SPAWN_TEST_UNSET is not set") && text.contains("install-llama")
    };
    if std::env::var(llm_stress::case::requirement::REQUIRE_REAL_ENV).is_ok_and(|v| v == "1") {
        // CI: the trial runs and fails with the same message.
        assert_eq!(plans[0].unsupported_reason(), None);
        let outcome = crate::support::session(context(&dir))
            .run_trial(&plans[0])
            .expect("reports");
        assert!(!outcome.passed);
        let reasons = outcome.report.verdict.failure_reasons().join("\n");
        assert!(wanted(&reasons), "{reasons}");
    } else {
        let reason = plans[0].unsupported_reason().expect("ignored");
        assert!(wanted(&reason), "{reason}");
    }
}

#[test]
fn ctrl_c_during_a_run_stops_the_servers_whole_process_group() {
    let _turn = one_at_a_time();
    // The server's shell ignores SIGTERM, and so does the server it starts in the background
    // (an ignored signal stays ignored across exec): only the SIGKILL after the grace period
    // stops them. 50 requests of about 0.66 s each keep the trial running meanwhile.
    let (dir, _) = case_with_matrix(
        "ctrl-c",
        "trap \"\" TERM; echo $$ > server.pid; {exe} serve --port {port} --ttft-ms 20 --tpot-ms 10 & echo $! > child.pid; wait",
        "",
        "{ mode: custom, isl: [16], osl: [64], concurrency: [1], prompts: { fixed: 50 } }",
    );
    let mut run = std::process::Command::new(env!("CARGO_BIN_EXE_llm-stress"))
        .arg("run")
        .arg(dir.path().join("cases"))
        .arg("--out")
        .arg(dir.path().join("out"))
        .env_remove("LLM_STRESS_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("llm-stress run starts");
    let shell = pid_in(&dir.path().join("cases/server.pid"));
    let server = pid_in(&dir.path().join("cases/child.pid"));
    // Let the server come up and the load start.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(alive(shell) && alive(server));
    assert!(
        run.try_wait().expect("wait").is_none(),
        "the run is still going"
    );
    let run_pid = i32::try_from(run.id()).expect("pid");
    // SAFETY: SIGINT to the run this test started, as Ctrl-C would send.
    unsafe {
        libc::kill(run_pid, libc::SIGINT);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = run.try_wait().expect("wait") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the run did not end after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGINT), "{status:?}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(!alive(shell), "the server's shell is gone");
    assert!(!alive(server), "the server the shell started is gone");
}

#[test]
fn a_sigkilled_run_takes_its_spawned_server_down_with_it() {
    let _turn = one_at_a_time();
    // The shell execs the server, so the parent-death signal reaches the server itself.
    let (dir, _) = case_with_matrix(
        "sigkill",
        "echo $$ > server.pid; exec {exe} serve --port {port} --ttft-ms 20 --tpot-ms 10",
        "",
        "{ mode: custom, isl: [16], osl: [64], concurrency: [1], prompts: { fixed: 50 } }",
    );
    let mut run = std::process::Command::new(env!("CARGO_BIN_EXE_llm-stress"))
        .arg("run")
        .arg(dir.path().join("cases"))
        .arg("--out")
        .arg(dir.path().join("out"))
        .env_remove("LLM_STRESS_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("llm-stress run starts");
    let server = pid_in(&dir.path().join("cases/server.pid"));
    std::thread::sleep(Duration::from_millis(1500));
    assert!(alive(server), "the server is up");
    // No handler runs on SIGKILL: only the kernel's parent-death signal can stop the server.
    run.kill().expect("SIGKILL the run");
    run.wait().expect("reaped");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while alive(server) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!alive(server), "the server died with the run");
}

#[test]
fn a_spawned_server_does_not_inherit_the_api_key_unless_given_it() {
    let _turn = one_at_a_time();
    let var = "LLM_STRESS_TEST_SPAWN_KEY";
    // SAFETY: set before any thread of this test reads the environment; the name is this
    // test's own.
    unsafe {
        std::env::set_var(var, "sk-do-not-leak-0123456789");
    }
    let (dir, plans) = case(
        "scrub",
        &format!(
            "echo \"${{{var}:-unset}}\" > key.txt; exec {{exe}} serve --port {{port}} --ttft-ms 2 --tpot-ms 1"
        ),
        &format!("client: {{ api_key_env: {var} }}\n"),
    );
    let session = crate::support::session(context(&dir));
    let outcome = session.run_trial(&plans[0]).expect("reports");
    assert!(outcome.passed, "{:#?}", outcome.report.verdict);
    session.finish().expect("the run finishes");
    let seen = std::fs::read_to_string(dir.path().join("cases/key.txt")).expect("key.txt");
    assert_eq!(seen.trim(), "unset");
}
