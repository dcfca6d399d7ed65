//! Spawned servers shared by the trial processes of one run: under nextest every trial is a
//! process of its own, and a real server (vLLM loading weights) must not start once per trial.
//!
//! The first trial that needs a server starts a small detached supervisor (`llm-stress
//! supervise`, in a session of its own) that starts the server, health-checks it, and writes a
//! lease; later trials of the run — other processes — find the lease, check the server's health
//! and attach. Files in the run's `servers/` folder, per spec hash `H` (the spawn spec and case
//! folder):
//!
//! - `H.lock`: an exclusive `flock` held while a trial attaches or starts the server, and while
//!   the supervisor decides to stop it, so the two never cross;
//! - `H.hold`: every trial process that uses the server holds a shared `flock` on it until its
//!   session ends. The kernel releases it when the process ends however it ends (SIGKILL
//!   included), so the supervisor sees "no holder" by failing to take it exclusively;
//! - `H.order.json`: what the supervisor starts; `H.lease`: the [`Lease`] it writes once the
//!   server is healthy (and again with `exited` when the server dies); `H.failed`: why it could
//!   not start it; `H.supervisor.log`: its own output.
//!
//! The supervisor stops the server after `idle_timeout_s` with no holder, when the process
//! that started the run's trials (nextest itself) has ended, on SIGTERM (`llm-stress down`,
//! and `llm-stress report` once the run's report is written). A server that died is recorded
//! in the lease; the next trial starts a new supervisor and says so in its evidence.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::spawn::{Acquired, SpawnedServers, log_tail};
use super::{ServerError, attach};
use crate::case::SpawnSpec;

/// Environment variable naming the order file of a supervisor to run: a test binary started
/// as a supervisor (see [`supervise_from_env`]) reads it instead of its arguments.
pub const SUPERVISE_ENV: &str = "LLM_STRESS_SUPERVISE";

/// Environment variable naming the program to start supervisors with (default: this
/// executable, which is `llm-stress` or a test binary whose harness handles
/// [`SUPERVISE_ENV`]).
pub const EXE_ENV: &str = "LLM_STRESS_EXE";

/// How often the supervisor looks at its server, its holders and the run.
const POLL: Duration = Duration::from_millis(100);

/// Time a supervisor gets to stop its server after SIGTERM (its own grace is 5 s).
const STOP_WAIT: Duration = Duration::from_secs(8);

/// What a supervisor tells the trials about its server (`H.lease`, JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    /// The spec hash `H`.
    pub spec_hash: String,
    /// Base URL, such as `http://127.0.0.1:40123`.
    pub base_url: String,
    /// The server's port.
    pub port: u16,
    /// The supervisor's process id.
    pub supervisor_pid: u32,
    /// The server's process id (the leader of its process group).
    pub server_pid: Option<u32>,
    /// The server's log file.
    pub log: PathBuf,
    /// The first model `/v1/models` listed.
    pub listed_model: Option<String>,
    /// Set when the server died: how, and the end of its log.
    pub exited: Option<String>,
}

/// What a supervisor starts (`H.order.json`).
#[derive(Debug, Serialize, Deserialize)]
struct Order {
    spec_hash: String,
    spec: SpawnSpec,
    case_dir: PathBuf,
    log_dir: PathBuf,
    hidden_env: Vec<String>,
    owner: Option<Owner>,
}

/// The process whose end ends the run (nextest, or whatever started the trial processes),
/// with its start time so that a reused pid is not mistaken for it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Owner {
    pid: i32,
    started: u64,
}

/// The files of one shared server.
struct Paths {
    lock: PathBuf,
    hold: PathBuf,
    order: PathBuf,
    lease: PathBuf,
    failed: PathBuf,
    log: PathBuf,
}

impl Paths {
    fn new(dir: &Path, hash: &str) -> Paths {
        let file = |suffix: &str| dir.join(format!("{hash}.{suffix}"));
        Paths {
            lock: file("lock"),
            hold: file("hold"),
            order: file("order.json"),
            lease: file("lease"),
            failed: file("failed"),
            log: file("supervisor.log"),
        }
    }
}

/// Whether the trials of the run `run_id` run in several processes that share spawned
/// servers: the id came from `LLM_STRESS_RUN_ID` or nextest's `NEXTEST_RUN_ID`, so other
/// processes have it too.
pub fn run_is_shared(run_id: &str) -> bool {
    ["LLM_STRESS_RUN_ID", "NEXTEST_RUN_ID"]
        .iter()
        .any(|k| std::env::var(k).is_ok_and(|v| !v.is_empty() && v == run_id))
}

/// The spec hash: FNV-1a over the spec and case folder as JSON, in hex.
fn spec_hash(spec: &SpawnSpec, case_dir: &Path) -> String {
    let text = serde_json::to_vec(&(spec, case_dir)).unwrap_or_default();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

fn spawn_error(what: &str, path: &Path, e: impl std::fmt::Display) -> ServerError {
    ServerError::Spawn(format!("{what} {}: {e}", path.display()))
}

fn open_lock_file(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
}

/// `flock(op)` on `file`, retried when a signal interrupts it.
fn flock(file: &File, op: libc::c_int) -> std::io::Result<()> {
    loop {
        // SAFETY: flock only takes a lock on an open descriptor this function borrows.
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// The file at `path`, locked with `op` (released when the file is dropped).
fn locked(path: &Path, op: libc::c_int) -> Result<File, ServerError> {
    let file = open_lock_file(path).map_err(|e| spawn_error("cannot open", path, e))?;
    flock(&file, op).map_err(|e| spawn_error("cannot lock", path, e))?;
    Ok(file)
}

/// Whether any process holds a shared lock on the hold file (an error counts as held).
fn anyone_holds(hold: &Path) -> bool {
    let Ok(file) = open_lock_file(hold) else {
        return true;
    };
    flock(&file, libc::LOCK_EX | libc::LOCK_NB).is_err()
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Writes JSON to a temporary file and renames it over `path`, so readers see all or nothing.
fn write_json(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, serde_json::to_vec_pretty(value)?)?;
    std::fs::rename(&tmp, path)
}

/// A running process's start time (clock ticks after boot); `None` when it is gone or a
/// zombie.
fn process_start(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Whether `pid` is a live supervisor of `order` (its command line names the order file, so
/// a reused pid does not count).
fn supervises(pid: u32, order: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let wanted = order.as_os_str().as_encoded_bytes();
    process_start(pid as i32).is_some() && cmdline.split(|b| *b == 0).any(|arg| arg == wanted)
}

/// SIGTERM to the supervisor (which stops its server's group), then waits for it to go;
/// SIGKILL if it does not (its server then gets SIGKILL from its parent-death signal).
fn stop_supervisor(pid: u32, order: &Path) {
    if !supervises(pid, order) {
        return;
    }
    let Ok(id) = i32::try_from(pid) else {
        return;
    };
    // SAFETY: kill only sends a signal, to the supervisor just checked by its command line.
    unsafe {
        libc::kill(id, libc::SIGTERM);
    }
    let deadline = Instant::now() + STOP_WAIT;
    while Instant::now() < deadline && supervises(pid, order) {
        std::thread::sleep(Duration::from_millis(20));
    }
    if supervises(pid, order) {
        // SAFETY: as above.
        unsafe {
            libc::kill(id, libc::SIGKILL);
        }
    }
}

/// One shared server this process holds.
struct Held {
    hash: String,
    dir: PathBuf,
    _hold: File,
}

/// The shared servers a session holds (shared locks on their hold files), released when it
/// ends.
#[derive(Default)]
pub(super) struct Holds(Mutex<Vec<Held>>);

impl Holds {
    fn hold(&self, dir: &Path, hash: &str, paths: &Paths) -> Result<(), ServerError> {
        let mut held = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if held.iter().any(|h| h.hash == hash && h.dir == dir) {
            return Ok(());
        }
        let file = locked(&paths.hold, libc::LOCK_SH)?;
        held.push(Held {
            hash: hash.to_string(),
            dir: dir.to_path_buf(),
            _hold: file,
        });
        Ok(())
    }

    /// Lets go of every shared server (their supervisors stop them when idle).
    pub(super) fn release(&self) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    /// If the shared server at `base_url` has died: how, and the end of its log.
    pub(super) fn death_of(&self, base_url: &str) -> Option<String> {
        let held = self.0.lock().ok()?;
        held.iter().find_map(|h| {
            let paths = Paths::new(&h.dir, &h.hash);
            let lease: Lease = read_json(&paths.lease)?;
            if lease.base_url != base_url {
                return None;
            }
            if let Some(exited) = lease.exited {
                return Some(format!("{exited} (during the trial)"));
            }
            (!supervises(lease.supervisor_pid, &paths.order)).then(|| {
                format!(
                    "the supervisor of the shared server at {base_url} is gone; the server's \
                     log ends:\n{}",
                    log_tail(&lease.log)
                )
            })
        })
    }

    /// The run's server for `spec`: the one its lease names when it is healthy, else one a
    /// new supervisor starts (and the death of the earlier one in `restarted`).
    pub(super) async fn acquire(
        &self,
        spec: &SpawnSpec,
        case_dir: &Path,
        log_dir: &Path,
        hidden_env: &[String],
    ) -> Result<Acquired, ServerError> {
        std::fs::create_dir_all(log_dir).map_err(|e| spawn_error("cannot create", log_dir, e))?;
        // Absolute, so that a supervisor is known by its command line from any folder.
        let dir =
            std::fs::canonicalize(log_dir).map_err(|e| spawn_error("cannot find", log_dir, e))?;
        let hash = spec_hash(spec, case_dir);
        let paths = Paths::new(&dir, &hash);
        let _lock = locked(&paths.lock, libc::LOCK_EX)?;
        self.hold(&dir, &hash, &paths)?;
        let mut restarted = None;
        if let Some(lease) = read_json::<Lease>(&paths.lease) {
            let alive = supervises(lease.supervisor_pid, &paths.order);
            let problem = match (&lease.exited, alive) {
                (Some(exited), _) => Some(exited.clone()),
                (None, false) => Some(format!(
                    "the supervisor of the shared server at {} was gone; its log ends:\n{}",
                    lease.base_url,
                    log_tail(&lease.log)
                )),
                (None, true) => match attach::check(&lease.base_url, Duration::from_secs(10)).await
                {
                    Ok(_) => return Ok(acquired(lease, None)),
                    Err(e) => Some(format!(
                        "the shared server at {} no longer answered ({e}); its log ends:\n{}",
                        lease.base_url,
                        log_tail(&lease.log)
                    )),
                },
            };
            stop_supervisor(lease.supervisor_pid, &paths.order);
            let _ = std::fs::remove_file(&paths.lease);
            restarted = problem.map(|p| format!("{p}\nstarted it again for this trial"));
        }
        let _ = std::fs::remove_file(&paths.failed);
        let order = Order {
            spec_hash: hash,
            spec: spec.clone(),
            case_dir: case_dir.to_path_buf(),
            log_dir: log_dir.to_path_buf(),
            hidden_env: hidden_env.to_vec(),
            owner: owner(),
        };
        write_json(&paths.order, &order)
            .map_err(|e| spawn_error("cannot write", &paths.order, e))?;
        let (pid, ended) = start_supervisor(&paths)?;
        let deadline = Instant::now() + Duration::from_secs_f64(spec.startup_timeout_s + 15.0);
        loop {
            if let Some(lease) = read_json::<Lease>(&paths.lease)
                && lease.supervisor_pid == pid
            {
                return Ok(acquired(lease, restarted));
            }
            if ended.load(Ordering::Acquire) {
                let why = std::fs::read_to_string(&paths.failed).unwrap_or_else(|_| {
                    format!(
                        "the supervisor ended before the server was ready; its log ends:\n{}",
                        log_tail(&paths.log)
                    )
                });
                return Err(ServerError::Spawn(why));
            }
            if Instant::now() >= deadline {
                stop_supervisor(pid, &paths.order);
                return Err(ServerError::Spawn(format!(
                    "the supervisor had no healthy server after {} s; its log ends:\n{}",
                    spec.startup_timeout_s,
                    log_tail(&paths.log)
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

fn acquired(lease: Lease, restarted: Option<String>) -> Acquired {
    Acquired {
        base_url: lease.base_url,
        listed_model: lease.listed_model,
        log: lease.log,
        restarted,
    }
}

/// This process's parent, which started the run's trial processes (nextest).
fn owner() -> Option<Owner> {
    // SAFETY: getppid has no preconditions.
    let pid = unsafe { libc::getppid() };
    (pid > 1).then_some(())?;
    Some(Owner {
        pid,
        started: process_start(pid)?,
    })
}

/// Starts the supervisor of `paths.order` in a session of its own (no terminal's or test
/// group's signal reaches it), and a thread that reaps it and says when it ended.
fn start_supervisor(paths: &Paths) -> Result<(u32, std::sync::Arc<AtomicBool>), ServerError> {
    let exe = match std::env::var_os(EXE_ENV).filter(|v| !v.is_empty()) {
        Some(exe) => PathBuf::from(exe),
        None => std::env::current_exe()
            .map_err(|e| ServerError::Spawn(format!("cannot find this executable: {e}")))?,
    };
    let log = File::create(&paths.log).map_err(|e| spawn_error("cannot create", &paths.log, e))?;
    let err = log
        .try_clone()
        .map_err(|e| spawn_error("cannot share", &paths.log, e))?;
    let mut cmd = Command::new(&exe);
    cmd.arg("supervise")
        .arg(&paths.order)
        .env(SUPERVISE_ENV, &paths.order)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err);
    // SAFETY: setsid is async-signal-safe; it runs in the child between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| ServerError::Spawn(format!("cannot run {} supervise: {e}", exe.display())))?;
    let pid = child.id();
    let ended = std::sync::Arc::new(AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&ended);
    std::thread::Builder::new()
        .name("llm-stress-supervisor-reaper".into())
        .spawn(move || {
            let _ = child.wait();
            flag.store(true, Ordering::Release);
        })
        .map_err(|e| ServerError::Spawn(format!("no reaper thread: {e}")))?;
    Ok((pid, ended))
}

/// When this process was started as a supervisor ([`SUPERVISE_ENV`] is set): runs it and
/// gives its exit code. Test harnesses call this first, so a test binary can be its own
/// supervisor.
pub fn supervise_from_env() -> Option<ExitCode> {
    let order = std::env::var_os(SUPERVISE_ENV).filter(|v| !v.is_empty())?;
    Some(supervise(Path::new(&order)))
}

/// The supervisor (`llm-stress supervise ORDER`): starts the order's server, writes its
/// lease, and stops it when it is idle, the run has ended, or on SIGTERM; records its death.
pub fn supervise(order_path: &Path) -> ExitCode {
    let Some(order) = read_json::<Order>(order_path) else {
        eprintln!("error: cannot read the order {}", order_path.display());
        return ExitCode::from(2);
    };
    let dir = order_path.parent().unwrap_or(Path::new("."));
    let paths = Paths::new(dir, &order.spec_hash);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = std::fs::write(&paths.failed, format!("supervisor: no runtime: {e}"));
            return ExitCode::from(2);
        }
    };
    let servers = SpawnedServers::new();
    let mut hidden = order.hidden_env.clone();
    hidden.push(SUPERVISE_ENV.to_string());
    let up =
        runtime.block_on(servers.acquire(&order.spec, &order.case_dir, &order.log_dir, &hidden));
    let up = match up {
        Ok(up) => up,
        Err(e) => {
            let _ = std::fs::write(&paths.failed, e.to_string());
            return ExitCode::from(1);
        }
    };
    let mut lease = Lease {
        spec_hash: order.spec_hash.clone(),
        port: up
            .base_url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0),
        base_url: up.base_url.clone(),
        supervisor_pid: std::process::id(),
        server_pid: servers.pid_of(&up.base_url),
        log: up.log.clone(),
        listed_model: up.listed_model,
        exited: None,
    };
    if let Err(e) = write_json(&paths.lease, &lease) {
        let _ = std::fs::write(&paths.failed, format!("cannot write the lease: {e}"));
        return ExitCode::from(1);
    }
    eprintln!(
        "supervising {} (server pid {:?}); idle timeout {} s",
        lease.base_url, lease.server_pid, order.spec.idle_timeout_s
    );
    let idle = Duration::from_secs_f64(order.spec.idle_timeout_s.max(0.0));
    let mut idle_since: Option<Instant> = None;
    loop {
        std::thread::sleep(POLL);
        if let Some((how, log)) = servers.exit_of(&lease.base_url) {
            lease.exited = Some(format!(
                "the shared server at {} had exited ({how}); its log ends:\n{}",
                lease.base_url,
                log_tail(&log)
            ));
            let _ = write_json(&paths.lease, &lease);
            eprintln!("the server exited ({how})");
            servers.stop_all();
            return ExitCode::SUCCESS;
        }
        if let Some(owner) = order.owner
            && process_start(owner.pid) != Some(owner.started)
        {
            eprintln!("the run ended (process {} is gone): stopping", owner.pid);
            let _ = std::fs::remove_file(&paths.lease);
            servers.stop_all();
            return ExitCode::SUCCESS;
        }
        if anyone_holds(&paths.hold) {
            idle_since = None;
            continue;
        }
        let since = *idle_since.get_or_insert_with(Instant::now);
        if since.elapsed() < idle {
            continue;
        }
        // No trial may attach while the supervisor decides: with the lock held, a trial that
        // came in meanwhile shows as a holder; one that comes after finds no lease.
        let Ok(_lock) = locked(&paths.lock, libc::LOCK_EX) else {
            continue;
        };
        if anyone_holds(&paths.hold) {
            idle_since = None;
            continue;
        }
        eprintln!(
            "no trial held the server for {} s: stopping",
            idle.as_secs_f64()
        );
        let _ = std::fs::remove_file(&paths.lease);
        servers.stop_all();
        return ExitCode::SUCCESS;
    }
}

/// Stops every shared server of the run folder `run_dir` (`llm-stress down`); the number
/// stopped.
pub fn down(run_dir: &Path) -> usize {
    let Ok(dir) = std::fs::canonicalize(run_dir.join("servers")) else {
        return 0;
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return 0;
    };
    let mut stopped = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "lease") {
            continue;
        }
        let Some(lease) = read_json::<Lease>(&path) else {
            continue;
        };
        let paths = Paths::new(&dir, &lease.spec_hash);
        if supervises(lease.supervisor_pid, &paths.order) {
            stop_supervisor(lease.supervisor_pid, &paths.order);
            stopped += 1;
        }
        let _ = std::fs::remove_file(&path);
    }
    stopped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(command: &str) -> SpawnSpec {
        serde_json::from_value(serde_json::json!({ "command": command })).expect("a spec")
    }

    #[test]
    fn the_spec_hash_is_stable_and_tells_specs_and_folders_apart() {
        let a = spec_hash(&spec("a {port}"), Path::new("/c"));
        assert_eq!(a, spec_hash(&spec("a {port}"), Path::new("/c")));
        assert_eq!(a.len(), 16);
        assert_ne!(a, spec_hash(&spec("b {port}"), Path::new("/c")));
        assert_ne!(a, spec_hash(&spec("a {port}"), Path::new("/d")));
    }

    #[test]
    fn a_shared_lock_shows_as_a_holder_until_it_is_dropped() {
        let temp = tempfile::tempdir().expect("a temporary folder");
        let dir = temp.path().to_path_buf();
        let hold = dir.join("h.hold");
        assert!(!anyone_holds(&hold));
        let held = locked(&hold, libc::LOCK_SH).expect("lock");
        assert!(anyone_holds(&hold));
        drop(held);
        assert!(!anyone_holds(&hold));
    }

    #[test]
    fn this_process_has_a_start_time_and_a_made_up_one_has_none() {
        assert!(process_start(std::process::id() as i32).is_some());
        assert!(process_start(2_000_000_000).is_none());
    }
}
