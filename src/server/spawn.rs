//! Servers the harness starts itself: a command on a free loopback port, its output captured
//! to a log file, readiness by health check, and teardown of its whole process group.
//!
//! Started servers are kept by the session's [`SpawnedServers`], so trials that need the same
//! server share one ([`SpawnedServers::acquire`]); one that died between trials is started
//! again and the death is reported. Dropping the list stops them (the session ends); an
//! interrupt (SIGINT, SIGTERM, SIGHUP) stops them too before the process ends.
//!
//! When the run's trials are processes of their own (nextest), a session made with
//! [`SpawnedServers::across_processes`] shares each server with the run's other processes
//! through a supervisor instead (see [`super::shared`]).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, AtomicPtr, Ordering};
use std::time::{Duration, Instant};

use super::{ServerError, attach};
use crate::case::SpawnSpec;

/// Bytes of the end of a server log quoted in errors.
const LOG_TAIL_BYTES: usize = 2048;

/// Time a server gets to exit after SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_secs(5);

/// A started server.
struct Spawned {
    child: Child,
    base_url: String,
    log: PathBuf,
    listed_model: Option<String>,
}

/// What identifies a spawned server: its spec and the case folder it runs from.
#[derive(Debug, Clone, PartialEq)]
struct SpawnKey {
    spec: SpawnSpec,
    case_dir: PathBuf,
}

/// The servers a session started, by spec and case folder, so that trials that need the same
/// server share one. Dropping it (or [`SpawnedServers::stop_all`]) stops them all; an
/// interrupt stops them too (the signal handler installed with the first spawned server).
#[derive(Default)]
pub struct SpawnedServers {
    servers: Mutex<Vec<(SpawnKey, Spawned)>>,
    /// Set when servers are shared with the run's other processes: the ones held.
    across: Option<super::shared::Holds>,
}

impl std::fmt::Debug for SpawnedServers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let urls: Vec<String> = self
            .servers
            .lock()
            .map(|s| {
                s.iter()
                    .map(|(_, server)| server.base_url.clone())
                    .collect()
            })
            .unwrap_or_default();
        f.debug_struct("SpawnedServers")
            .field("running", &urls)
            .finish()
    }
}

/// What [`SpawnedServers::acquire`] gives: where the server is, and what happened to an
/// earlier one.
#[derive(Debug, Clone)]
pub struct Acquired {
    /// Base URL, such as `http://127.0.0.1:40123`.
    pub base_url: String,
    /// The first model `/v1/models` lists, if it lists any.
    pub listed_model: Option<String>,
    /// The server's log file.
    pub log: PathBuf,
    /// Set when the server this session started earlier had died and was started again.
    pub restarted: Option<String>,
}

impl SpawnedServers {
    /// No servers yet.
    pub fn new() -> SpawnedServers {
        SpawnedServers::default()
    }

    /// No servers yet; the ones it needs are shared with the other processes of the run
    /// (started under a supervisor by the first, attached by the others).
    pub fn across_processes() -> SpawnedServers {
        SpawnedServers {
            servers: Mutex::default(),
            across: Some(super::shared::Holds::default()),
        }
    }

    /// The running server for `spec`, started (and health-checked) if there is none or the
    /// one there was has exited. Its output goes to a log file under `log_dir`.
    /// `hidden_env` names variables of this process the server must not inherit (an API key)
    /// unless `spec.env` sets them itself.
    pub async fn acquire(
        &self,
        spec: &SpawnSpec,
        case_dir: &Path,
        log_dir: &Path,
        hidden_env: &[String],
    ) -> Result<Acquired, ServerError> {
        if let Some(missing) = spec.requirement_problem() {
            return Err(ServerError::Spawn(missing));
        }
        if let Some(holds) = &self.across {
            return holds.acquire(spec, case_dir, log_dir, hidden_env).await;
        }
        let key = SpawnKey {
            spec: spec.clone(),
            case_dir: case_dir.to_path_buf(),
        };
        let mut restarted = None;
        {
            let mut servers = self.servers.lock().map_err(|_| poisoned())?;
            if let Some(at) = servers.iter().position(|(k, _)| *k == key) {
                let server = &mut servers[at].1;
                match server.child.try_wait() {
                    Ok(None) => {
                        return Ok(Acquired {
                            base_url: server.base_url.clone(),
                            listed_model: server.listed_model.clone(),
                            log: server.log.clone(),
                            restarted: None,
                        });
                    }
                    Ok(Some(status)) => {
                        if let Ok(pid) = i32::try_from(server.child.id()) {
                            forget_group(pid);
                        }
                        restarted = Some(format!(
                            "the server started earlier had exited ({}); started it again. Its \
                             log ends:\n{}",
                            describe(status),
                            log_tail(&server.log)
                        ));
                        servers.remove(at);
                    }
                    Err(e) => {
                        return Err(ServerError::Spawn(format!("cannot check the server: {e}")));
                    }
                }
            }
        }
        let mut spawned = start(spec, case_dir, log_dir, hidden_env)?;
        match wait_ready(&mut spawned, spec).await {
            Ok(listed) => spawned.listed_model = listed,
            Err(e) => {
                stop(&mut spawned.child);
                return Err(e);
            }
        }
        let acquired = Acquired {
            base_url: spawned.base_url.clone(),
            listed_model: spawned.listed_model.clone(),
            log: spawned.log.clone(),
            restarted,
        };
        self.servers
            .lock()
            .map_err(|_| poisoned())?
            .push((key, spawned));
        Ok(acquired)
    }

    /// If the spawned server at `base_url` has exited: how, and the end of its log.
    pub fn death_of(&self, base_url: &str) -> Option<String> {
        if let Some(holds) = &self.across {
            return holds.death_of(base_url);
        }
        let (how, log) = self.exit_of(base_url)?;
        Some(format!(
            "the server at {base_url} exited during the trial ({how}); its log ends:\n{}",
            log_tail(&log)
        ))
    }

    /// If the server this session started at `base_url` has exited: how, and its log file.
    pub(super) fn exit_of(&self, base_url: &str) -> Option<(String, PathBuf)> {
        let mut servers = self.servers.lock().ok()?;
        let (_, server) = servers.iter_mut().find(|(_, s)| s.base_url == base_url)?;
        let status = server.child.try_wait().ok()??;
        Some((describe(status), server.log.clone()))
    }

    /// The process id of the server this session started at `base_url`.
    pub(super) fn pid_of(&self, base_url: &str) -> Option<u32> {
        let servers = self.servers.lock().ok()?;
        servers
            .iter()
            .find(|(_, s)| s.base_url == base_url)
            .map(|(_, s)| s.child.id())
    }

    /// Stops every server this session started, and lets go of the shared ones (their
    /// supervisors stop them once no process of the run holds them).
    pub fn stop_all(&self) {
        if let Some(holds) = &self.across {
            holds.release();
        }
        // A panic while the list was held poisons it; the servers in it must stop all the same.
        let servers: Vec<(SpawnKey, Spawned)> = self
            .servers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .drain(..)
            .collect();
        for (_, mut server) in servers {
            stop(&mut server.child);
        }
    }
}

impl Drop for SpawnedServers {
    fn drop(&mut self) {
        self.stop_all();
    }
}

fn poisoned() -> ServerError {
    ServerError::Spawn("the spawned-server list is unusable after a panic".into())
}

/// Starts the command in a process group of its own, on a free port, without the hidden
/// variables, and with a parent-death signal: if this process dies, even by SIGKILL, the
/// kernel sends the command SIGKILL (a command that `exec`s its server passes that on to the
/// server itself; `sh -c` execs a lone command).
fn start(
    spec: &SpawnSpec,
    case_dir: &Path,
    log_dir: &Path,
    hidden_env: &[String],
) -> Result<Spawned, ServerError> {
    let port = free_port().map_err(|e| ServerError::Spawn(format!("no free port: {e}")))?;
    let command = render(&spec.command, port, &spec.vars);
    std::fs::create_dir_all(log_dir)
        .map_err(|e| ServerError::Spawn(format!("cannot create {}: {e}", log_dir.display())))?;
    let log = log_dir.join(format!("server-{port}.log"));
    let out = File::create(&log)
        .map_err(|e| ServerError::Spawn(format!("cannot create {}: {e}", log.display())))?;
    let err = out
        .try_clone()
        .map_err(|e| ServerError::Spawn(format!("cannot share {}: {e}", log.display())))?;
    let cwd = spec
        .cwd
        .as_deref()
        .map_or_else(|| case_dir.to_path_buf(), |c| case_dir.join(c));
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(&command).current_dir(&cwd);
    for name in hidden_env.iter().filter(|n| !spec.env.contains_key(*n)) {
        cmd.env_remove(name);
    }
    cmd.envs(&spec.env)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    let parent = std::process::id();
    // SAFETY: the closure runs in the child between fork and exec and calls only
    // async-signal-safe functions (prctl, getppid, _exit).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before the signal was asked for.
            if libc::getppid() as u32 != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let child = spawn_from_lasting_thread(cmd)
        .map_err(|e| ServerError::Spawn(format!("cannot run `{command}`: {e}")))?;
    remember_group(child.id());
    Ok(Spawned {
        child,
        base_url: format!("http://127.0.0.1:{port}"),
        log,
        listed_model: None,
    })
}

/// Spawns `cmd` from a thread that lives as long as the process. The parent-death signal
/// fires when the *thread* that forked the child ends, not the process: a server started from
/// a trial's runtime or test thread would be killed when that thread ends, though the session
/// still shares it with later trials. The one spawner thread (process-global: it must outlive
/// every session) ends only with the process.
fn spawn_from_lasting_thread(cmd: Command) -> std::io::Result<Child> {
    type Job = (Command, std::sync::mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: std::sync::OnceLock<std::io::Result<Mutex<std::sync::mpsc::Sender<Job>>>> =
        std::sync::OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (jobs, inbox) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("llm-stress-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in inbox {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .map(|_| Mutex::new(jobs))
    });
    let jobs = spawner
        .as_ref()
        .map_err(|e| std::io::Error::new(e.kind(), format!("no spawner thread: {e}")))?;
    let (reply, answer) = std::sync::mpsc::channel();
    jobs.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .send((cmd, reply))
        .map_err(|_| std::io::Error::other("the spawner thread is gone"))?;
    answer
        .recv()
        .map_err(|_| std::io::Error::other("the spawner thread is gone"))?
}

/// Polls the health check with backoff until it answers, the server exits, or the startup
/// timeout passes.
async fn wait_ready(
    spawned: &mut Spawned,
    spec: &SpawnSpec,
) -> Result<Option<String>, ServerError> {
    let deadline = Instant::now() + Duration::from_secs_f64(spec.startup_timeout_s.max(0.1));
    let mut pause = Duration::from_millis(50);
    loop {
        if let Ok(Some(status)) = spawned.child.try_wait() {
            return Err(ServerError::Spawn(format!(
                "the server exited before it was ready ({}); its log ends:\n{}",
                describe(status),
                log_tail(&spawned.log)
            )));
        }
        let last = match attach::check(&spawned.base_url, Duration::from_secs(2)).await {
            Ok(listed) => return Ok(listed),
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(ServerError::Spawn(format!(
                "not healthy after {} s ({last}); its log ends:\n{}",
                spec.startup_timeout_s,
                log_tail(&spawned.log)
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// `{port}`, `{host}` and every `{name}` of `vars` substituted.
fn render(command: &str, port: u16, vars: &std::collections::BTreeMap<String, String>) -> String {
    let mut text = command
        .replace("{port}", &port.to_string())
        .replace("{host}", "127.0.0.1");
    for (name, value) in vars {
        text = text.replace(&format!("{{{name}}}"), value);
    }
    text
}

fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => status.to_string(),
    }
}

/// The last lines of a log file.
pub fn log_tail(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(path) {
        let len = file.metadata().map_or(0, |m| m.len());
        let start = len.saturating_sub(LOG_TAIL_BYTES as u64);
        if file.seek(SeekFrom::Start(start)).is_ok() {
            let mut bytes = Vec::new();
            if file.read_to_end(&mut bytes).is_ok() {
                text = String::from_utf8_lossy(&bytes).into_owned();
            }
        }
    }
    if text.trim().is_empty() {
        "(the log is empty)".to_string()
    } else {
        text
    }
}

/// SIGTERM to the server's process group, SIGKILL after the grace period; waits for it.
fn stop(child: &mut Child) {
    let Ok(pid) = i32::try_from(child.id()) else {
        return;
    };
    // SAFETY: killpg only sends a signal; the group is the child's own (process_group(0)).
    unsafe {
        libc::killpg(pid, libc::SIGTERM);
    }
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // The group may hold processes the command started, still running after the leader left.
    // SAFETY: as above.
    unsafe {
        libc::killpg(pid, libc::SIGKILL);
    }
    let _ = child.wait();
    forget_group(pid);
}

/// Slots per block of [`GROUPS`].
const BLOCK: usize = 16;

/// A block of group slots (0 = free) and the block after it.
struct GroupBlock {
    slots: [AtomicI32; BLOCK],
    next: AtomicPtr<GroupBlock>,
}

/// Process groups of running servers, for the signal handler (which may not lock or allocate,
/// so the session's [`SpawnedServers`] cannot serve it): the one piece of mutable
/// process-global state the crate keeps besides the spawner thread.
///
/// A list of blocks that only grows: a new block is allocated (outside any signal handler)
/// when every slot is taken, and linked in with one compare-and-swap; blocks are never freed
/// (their number is the most servers ever running at once ÷ 16). The handler walks the list
/// with atomic loads only — no lock, no allocation — so it is async-signal-safe, and there is
/// no limit on the servers it stops.
static GROUPS: AtomicPtr<GroupBlock> = AtomicPtr::new(std::ptr::null_mut());

/// Every block of [`GROUPS`], oldest last. Async-signal-safe.
fn group_blocks() -> impl Iterator<Item = &'static GroupBlock> {
    let mut at = GROUPS.load(Ordering::Acquire);
    std::iter::from_fn(move || {
        // SAFETY: blocks are leaked boxes, never freed, fully built before they were linked
        // in (Release on link, Acquire here).
        let block = unsafe { at.as_ref() }?;
        at = block.next.load(Ordering::Acquire);
        Some(block)
    })
}

/// Every slot of [`GROUPS`]. Async-signal-safe.
fn group_slots() -> impl Iterator<Item = &'static AtomicI32> {
    group_blocks().flat_map(|b| b.slots.iter())
}

/// Notes a server's group for the signal handler, installing the handler the first time.
fn remember_group(pid: u32) {
    static HANDLERS: std::sync::Once = std::sync::Once::new();
    HANDLERS.call_once(install_signal_handlers);
    let Ok(pid) = i32::try_from(pid) else {
        return;
    };
    loop {
        if group_slots().any(|g| {
            g.compare_exchange(0, pid, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        }) {
            return;
        }
        let block = Box::into_raw(Box::new(GroupBlock {
            slots: [const { AtomicI32::new(0) }; BLOCK],
            next: AtomicPtr::new(std::ptr::null_mut()),
        }));
        let mut head = GROUPS.load(Ordering::Acquire);
        loop {
            // SAFETY: `block` is ours until it is linked in.
            unsafe { (*block).next.store(head, Ordering::Relaxed) };
            match GROUPS.compare_exchange(head, block, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(now) => head = now,
            }
        }
    }
}

fn forget_group(pid: i32) {
    for slot in group_slots() {
        let _ = slot.compare_exchange(pid, 0, Ordering::AcqRel, Ordering::Acquire);
    }
}

/// Sends `signal` to every remembered server group. Async-signal-safe.
fn signal_groups(signal: libc::c_int) {
    for slot in group_slots() {
        let pid = slot.load(Ordering::Acquire);
        if pid > 0 {
            // SAFETY: killpg is async-signal-safe.
            unsafe {
                libc::killpg(pid, signal);
            }
        }
    }
}

/// Whether any remembered server group still has a process. A leader that exited is reaped
/// first (it is this process's child), so its zombie does not count. Async-signal-safe.
fn any_group_alive() -> bool {
    group_slots().any(|slot| {
        let pid = slot.load(Ordering::Acquire);
        // SAFETY: waitpid with WNOHANG and killpg with signal 0 are async-signal-safe and only
        // touch the server's own process and group.
        pid > 0
            && unsafe {
                libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG);
                libc::killpg(pid, 0) == 0
            }
    })
}

/// On SIGINT, SIGTERM or SIGHUP: SIGTERM to every server group, SIGKILL to what is left after
/// the grace period, then the signal's default action (the process ends as it would have).
fn install_signal_handlers() {
    extern "C" fn on_signal(signal: libc::c_int) {
        signal_groups(libc::SIGTERM);
        let step = libc::timespec {
            tv_sec: 0,
            tv_nsec: 50_000_000,
        };
        for _ in 0..GRACE.as_millis() / 50 {
            if !any_group_alive() {
                break;
            }
            // SAFETY: nanosleep is async-signal-safe.
            unsafe {
                libc::nanosleep(&step, std::ptr::null_mut());
            }
        }
        signal_groups(libc::SIGKILL);
        // SAFETY: signal and raise are async-signal-safe; the default action ends the process.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
            libc::raise(signal);
        }
    }
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only calls async-signal-safe functions and reads atomics.
        unsafe {
            libc::signal(signal, on_signal as *const () as libc::sighandler_t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signal_table_holds_more_groups_than_a_block() {
        // Made-up group ids far above any real pid, so no signal can reach a process.
        let ids: Vec<i32> = (0..3 * BLOCK as i32 + 5)
            .map(|i| 2_000_000_000 + i)
            .collect();
        for &id in &ids {
            remember_group(id as u32);
        }
        let held = |id: i32| group_slots().any(|s| s.load(Ordering::Acquire) == id);
        assert!(ids.iter().all(|&id| held(id)), "every group is remembered");
        for &id in &ids {
            forget_group(id);
        }
        assert!(!ids.iter().any(|&id| held(id)), "and forgotten");
    }

    #[test]
    fn commands_get_the_port_host_and_vars() {
        let vars = [("model".to_string(), "/m/smol.gguf".to_string())]
            .into_iter()
            .collect();
        assert_eq!(
            render("srv -m {model} --host {host} --port {port}", 4000, &vars),
            "srv -m /m/smol.gguf --host 127.0.0.1 --port 4000"
        );
    }
}
