//! Servers the harness starts itself: a command on a free loopback port, its output captured
//! to a log file, readiness by health check, and teardown of its whole process group.
//!
//! Started servers are kept by the session's [`SpawnedServers`], so trials that need the same
//! server share one ([`SpawnedServers::acquire`]); one that died between trials is started
//! again and the death is reported. Dropping the list stops them (the session ends); an
//! interrupt (SIGINT, SIGTERM, SIGHUP) stops them too before the process ends.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};
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

    /// The running server for `spec`, started (and health-checked) if there is none or the
    /// one there was has exited. Its output goes to a log file under `log_dir`.
    pub async fn acquire(
        &self,
        spec: &SpawnSpec,
        case_dir: &Path,
        log_dir: &Path,
    ) -> Result<Acquired, ServerError> {
        if let Some(missing) = spec.requirement_problem() {
            return Err(ServerError::Spawn(missing));
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
        let mut spawned = start(spec, case_dir, log_dir)?;
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
        let mut servers = self.servers.lock().ok()?;
        let (_, server) = servers.iter_mut().find(|(_, s)| s.base_url == base_url)?;
        let status = server.child.try_wait().ok()??;
        Some(format!(
            "the server at {base_url} exited during the trial ({}); its log ends:\n{}",
            describe(status),
            log_tail(&server.log)
        ))
    }

    /// Stops every server this session started.
    pub fn stop_all(&self) {
        let servers: Vec<(SpawnKey, Spawned)> = match self.servers.lock() {
            Ok(mut servers) => servers.drain(..).collect(),
            Err(_) => return,
        };
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

/// Starts the command in a process group of its own, on a free port.
fn start(spec: &SpawnSpec, case_dir: &Path, log_dir: &Path) -> Result<Spawned, ServerError> {
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
    let child = Command::new("sh")
        .arg("-c")
        .arg(&command)
        .current_dir(&cwd)
        .envs(&spec.env)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| ServerError::Spawn(format!("cannot run `{command}`: {e}")))?;
    remember_group(child.id());
    Ok(Spawned {
        child,
        base_url: format!("http://127.0.0.1:{port}"),
        log,
        listed_model: None,
    })
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

/// Process groups of running servers, for the signal handler (which may not lock, so the
/// session's [`SpawnedServers`] cannot serve it): the one piece of mutable process-global state
/// the crate keeps.
static GROUPS: [AtomicI32; 16] = [const { AtomicI32::new(0) }; 16];

/// Notes a server's group for the signal handler (beyond 16 servers, only the session's
/// [`SpawnedServers`] knows it), installing the handler the first time.
fn remember_group(pid: u32) {
    static HANDLERS: std::sync::Once = std::sync::Once::new();
    HANDLERS.call_once(install_signal_handlers);
    if let Ok(pid) = i32::try_from(pid) {
        let _ = GROUPS.iter().any(|g| {
            g.compare_exchange(0, pid, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        });
    }
}

fn forget_group(pid: i32) {
    for slot in &GROUPS {
        let _ = slot.compare_exchange(pid, 0, Ordering::AcqRel, Ordering::Acquire);
    }
}

/// Sends `signal` to every remembered server group. Async-signal-safe.
fn signal_groups(signal: libc::c_int) {
    for slot in &GROUPS {
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
    GROUPS.iter().any(|slot| {
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
