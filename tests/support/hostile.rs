//! The hostile corpus's machinery: scripted hostile servers on loopback ([`HostileServer`],
//! one [`Behaviour`] each), `llm-stress run` as a child process measured from outside
//! ([`run_measured`]: exit, signal, peak RSS, hang), and the checks every entry gets: no
//! process left behind ([`orphans`]) and no planted secret in any output ([`secret_hits`]).
//! Every loop here is bounded in count and time; all traffic stays on 127.0.0.1.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A complete HTTP/1.1 response that closes its connection.
pub fn http_response(status: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut bytes = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// A streamed response whose body ends when the connection closes.
pub fn sse_response(body: &[u8]) -> Vec<u8> {
    let mut bytes =
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n".to_vec();
    bytes.extend_from_slice(body);
    bytes
}

/// One streamed content chunk (completions shape).
pub const CHUNK: &str = "data: {\"choices\":[{\"text\":\" hi\",\"finish_reason\":null}]}\n\n";

/// The longest a hostile server keeps writing to (or holding) one connection.
const CONNECTION_LIMIT: Duration = Duration::from_secs(10);

/// What a hostile server does with each generation request (`GET`s — health, models,
/// metrics — get a plain model list, so that the run gets as far as the load).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Two chunks, then the connection closes.
    CloseMidStream,
    /// An event that is not JSON.
    GarbageSse,
    /// `data: ` and then `x` for ever, never a newline.
    EndlessLine,
    /// Reads the request and never answers.
    Stall,
    /// One chunk, then silence with the connection open.
    StallMidStream,
    /// Two chunks, then a usage of 2^64 − 1 completion tokens.
    UsageDisagrees,
    /// A usage that grows by 2^32 − 1 in one chunk.
    UsageJump,
    /// Every answer a 500.
    Status500,
    /// Every answer a 429 with `Retry-After`.
    Status429,
    /// Every answer a 503.
    Status503,
    /// Answers three requests, then closes its listening socket: connections are refused.
    DiesMidRun,
    /// The status line, then one header byte every 200 ms.
    SlowlorisHeaders,
    /// Invalid UTF-8 inside a chunk's text.
    InvalidUtf8,
    /// A chunk nested 100,000 arrays deep.
    JsonBomb,
    /// A 500 whose body goes on for 64 MiB.
    HugeErrorBody,
    /// Valid chunks for ever.
    EndlessChunks,
    /// Chunks, then the end of the body without `[DONE]` or a finish reason.
    NoDone,
    /// `[DONE]` before any content.
    EmptyStream,
    /// Bytes that are not HTTP at all.
    NotHttp,
    /// A 200 of HTML.
    WrongContentType,
    /// A 401 whose body echoes the request's headers (the API key among them).
    EchoKey,
    /// An error event in the stream.
    ErrorEvent,
    /// A redirect to itself.
    RedirectLoop,
    /// A `content-length` longer than the body sent.
    ShortBody,
    /// A chunked body with an invalid chunk size.
    BadChunking,
    /// Accepts and resets the connection at once.
    Reset,
}

impl FromStr for Behaviour {
    type Err = String;

    fn from_str(name: &str) -> Result<Behaviour, String> {
        Ok(match name {
            "close-mid-stream" => Behaviour::CloseMidStream,
            "garbage-sse" => Behaviour::GarbageSse,
            "endless-line" => Behaviour::EndlessLine,
            "stall" => Behaviour::Stall,
            "stall-mid-stream" => Behaviour::StallMidStream,
            "usage-disagrees" => Behaviour::UsageDisagrees,
            "usage-jump" => Behaviour::UsageJump,
            "status-500" => Behaviour::Status500,
            "status-429" => Behaviour::Status429,
            "status-503" => Behaviour::Status503,
            "dies-mid-run" => Behaviour::DiesMidRun,
            "slowloris-headers" => Behaviour::SlowlorisHeaders,
            "invalid-utf8" => Behaviour::InvalidUtf8,
            "json-bomb" => Behaviour::JsonBomb,
            "huge-error-body" => Behaviour::HugeErrorBody,
            "endless-chunks" => Behaviour::EndlessChunks,
            "no-done" => Behaviour::NoDone,
            "empty-stream" => Behaviour::EmptyStream,
            "not-http" => Behaviour::NotHttp,
            "wrong-content-type" => Behaviour::WrongContentType,
            "echo-key" => Behaviour::EchoKey,
            "error-event" => Behaviour::ErrorEvent,
            "redirect-loop" => Behaviour::RedirectLoop,
            "short-body" => Behaviour::ShortBody,
            "bad-chunking" => Behaviour::BadChunking,
            "reset" => Behaviour::Reset,
            other => return Err(format!("unknown hostile behaviour `{other}`")),
        })
    }
}

/// A scripted hostile server on a free loopback port, stopped on drop.
pub struct HostileServer {
    url: String,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl HostileServer {
    /// Starts serving `behaviour`.
    pub fn start(behaviour: Behaviour) -> HostileServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        listener.set_nonblocking(true).expect("non-blocking");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicUsize::new(0));
        let accept = {
            let stop = stop.clone();
            let url = url.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if behaviour == Behaviour::DiesMidRun && answered.load(Ordering::Relaxed) >= 3 {
                        return; // the listener closes: connections are refused from now on
                    }
                    match listener.accept() {
                        Ok((socket, _)) => {
                            let (answered, url) = (answered.clone(), url.clone());
                            std::thread::spawn(move || {
                                serve(socket, behaviour, &answered, &url);
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        HostileServer {
            url,
            stop,
            accept: Some(accept),
        }
    }

    /// The server's base URL.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(accept) = self.accept.take() {
            accept.join().ok();
        }
    }
}

/// The request's head and body, or `None` when the peer went away first.
pub fn read_request(socket: &mut TcpStream) -> Option<Vec<u8>> {
    socket.set_nonblocking(false).ok()?;
    socket.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut request = Vec::new();
    let mut buf = [0u8; 8192];
    while request.len() < (1 << 20) {
        let n = socket.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        request.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&request);
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if request.len() >= end + 4 + length {
                return Some(request);
            }
        }
    }
    None
}

/// Writes `next()` again and again until the client goes away or the connection's time is up.
fn write_for_ever(socket: &mut TcpStream, mut next: impl FnMut() -> Vec<u8>) {
    let until = Instant::now() + CONNECTION_LIMIT;
    socket.set_write_timeout(Some(Duration::from_secs(2))).ok();
    while Instant::now() < until {
        if socket.write_all(&next()).is_err() {
            return;
        }
    }
}

/// Holds the connection open, silent, until the client goes away or the time is up.
fn hold(socket: &mut TcpStream) {
    let until = Instant::now() + CONNECTION_LIMIT;
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .ok();
    let mut buf = [0u8; 1024];
    while Instant::now() < until {
        match socket.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

fn serve(mut socket: TcpStream, behaviour: Behaviour, answered: &AtomicUsize, url: &str) {
    if behaviour == Behaviour::Reset {
        // SO_LINGER 0: the close sends a reset.
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        use std::os::fd::AsRawFd;
        // SAFETY: setsockopt on this socket's open descriptor with a valid `linger`.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&raw const linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
        return;
    }
    let Some(request) = read_request(&mut socket) else {
        return;
    };
    if request.starts_with(b"GET ") {
        let models = br#"{"object":"list","data":[{"id":"m","object":"model"}]}"#;
        socket
            .write_all(&http_response("200 OK", "application/json", models))
            .ok();
        return;
    }
    answered.fetch_add(1, Ordering::Relaxed);
    let done = "data: [DONE]\n\n";
    let reply: Vec<u8> = match behaviour {
        Behaviour::CloseMidStream => sse_response(format!("{CHUNK}{CHUNK}").as_bytes()),
        Behaviour::GarbageSse => sse_response(b"data: \x00garbage{{{ not json\n\n"),
        Behaviour::EndlessLine => {
            socket
                .write_all(&sse_response(b"data: "))
                .ok();
            let block = vec![b'x'; 64 << 10];
            write_for_ever(&mut socket, || block.clone());
            return;
        }
        Behaviour::Stall => {
            hold(&mut socket);
            return;
        }
        Behaviour::StallMidStream => {
            socket.write_all(&sse_response(CHUNK.as_bytes())).ok();
            hold(&mut socket);
            return;
        }
        Behaviour::UsageDisagrees => sse_response(
            format!(
                "{CHUNK}{CHUNK}data: {{\"choices\":[{{\"text\":\"\",\"finish_reason\":\"length\"}}],\"usage\":{{\"prompt_tokens\":3,\"completion_tokens\":{}}}}}\n\n{done}",
                u64::MAX
            )
            .as_bytes(),
        ),
        Behaviour::UsageJump => sse_response(
            format!(
                "data: {{\"choices\":[{{\"text\":\" hi\",\"finish_reason\":null}}],\"usage\":{{\"completion_tokens\":{}}}}}\n\n{done}",
                u32::MAX
            )
            .as_bytes(),
        ),
        Behaviour::Status500 => http_response(
            "500 Internal Server Error",
            "application/json",
            br#"{"error":{"message":"scripted failure"}}"#,
        ),
        Behaviour::Status429 => {
            let mut bytes = http_response("429 Too Many Requests", "text/plain", b"slow down");
            let at = bytes.windows(2).position(|w| w == b"\r\n").unwrap_or(0) + 2;
            bytes.splice(at..at, b"retry-after: 1\r\n".iter().copied());
            bytes
        }
        Behaviour::Status503 => {
            http_response("503 Service Unavailable", "text/plain", b"overloaded")
        }
        Behaviour::DiesMidRun => sse_response(
            format!(
                "{CHUNK}data: {{\"choices\":[{{\"text\":\" end\",\"finish_reason\":\"stop\"}}]}}\n\n{done}"
            )
            .as_bytes(),
        ),
        Behaviour::SlowlorisHeaders => {
            let until = Instant::now() + CONNECTION_LIMIT;
            if socket.write_all(b"HTTP/1.1 200 OK\r\nx-slow: ").is_err() {
                return;
            }
            while Instant::now() < until {
                std::thread::sleep(Duration::from_millis(200));
                if socket.write_all(b"a").is_err() {
                    return;
                }
            }
            return;
        }
        Behaviour::InvalidUtf8 => sse_response(
            b"data: {\"choices\":[{\"text\":\"\xff\xfe\xfd\",\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n",
        ),
        Behaviour::JsonBomb => {
            let mut body = b"data: ".to_vec();
            body.extend(std::iter::repeat_n(b'[', 100_000));
            body.extend(std::iter::repeat_n(b']', 100_000));
            body.extend_from_slice(b"\n\n");
            sse_response(&body)
        }
        Behaviour::HugeErrorBody => {
            let head = format!(
                "HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                64u64 << 20
            );
            if socket.write_all(head.as_bytes()).is_err() {
                return;
            }
            let block = vec![b'e'; 64 << 10];
            let mut blocks = 0;
            write_for_ever(&mut socket, || {
                blocks += 1;
                if blocks > 1024 { Vec::new() } else { block.clone() }
            });
            return;
        }
        Behaviour::EndlessChunks => {
            socket.write_all(&sse_response(b"")).ok();
            let block = CHUNK.repeat(256).into_bytes();
            write_for_ever(&mut socket, || block.clone());
            return;
        }
        Behaviour::NoDone => sse_response(format!("{CHUNK}{CHUNK}{CHUNK}").as_bytes()),
        Behaviour::EmptyStream => sse_response(done.as_bytes()),
        Behaviour::NotHttp => b"SSH-2.0-OpenSSH_9.6\r\n\x00\x01\x02 not http\r\n".to_vec(),
        Behaviour::WrongContentType => {
            http_response("200 OK", "text/html", b"<html><body>hello</body></html>")
        }
        Behaviour::EchoKey => http_response("401 Unauthorized", "text/plain", &request),
        Behaviour::ErrorEvent => sse_response(
            format!("{CHUNK}data: {{\"error\":{{\"message\":\"scripted error event\"}}}}\n\n").as_bytes(),
        ),
        Behaviour::RedirectLoop => format!(
            "HTTP/1.1 302 Found\r\nlocation: {url}/v1/completions\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )
        .into_bytes(),
        Behaviour::ShortBody => {
            let body = format!("{CHUNK}{CHUNK}");
            let mut bytes = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len() * 4
            )
            .into_bytes();
            bytes.extend_from_slice(body.as_bytes());
            bytes
        }
        Behaviour::BadChunking => format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n{:x}\r\n{CHUNK}\r\nzz-not-hex\r\n",
            CHUNK.len()
        )
        .into_bytes(),
        Behaviour::Reset => unreachable!("handled above"),
    };
    socket.write_all(&reply).ok();
    socket.shutdown(std::net::Shutdown::Write).ok();
    // Let the client read to the end before the socket closes.
    hold(&mut socket);
}

/// How a measured `llm-stress` process ended.
#[derive(Debug)]
pub struct Measured {
    /// Its exit code, when it exited.
    pub code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
    /// Peak resident set size of the process (and the children it waited for), KiB.
    pub max_rss_kib: i64,
    /// It was still running at the deadline (then killed).
    pub hung: bool,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
    /// Wall time.
    pub elapsed: Duration,
}

impl Measured {
    /// A panic the process printed, or a trial that panicked (caught, but a panic all the
    /// same), or the exit code of a panic.
    pub fn panicked(&self) -> bool {
        self.code == Some(101)
            || self.stderr.contains("panicked at")
            || self.stdout.contains("panicked at")
            || self.stdout.contains("the trial panicked")
    }

    /// Ended by a signal the test did not send, or by an abort's exit code.
    pub fn aborted(&self, sent: Option<i32>) -> bool {
        self.code == Some(134) || (self.signal.is_some() && self.signal != sent && !self.hung)
    }
}

/// Runs `command` (standard output and error into files under `scratch`), calls `meanwhile`
/// with its pid once it started, and waits for it at most `deadline` (then kills it: a hang).
pub fn run_measured(
    mut command: Command,
    scratch: &Path,
    deadline: Duration,
    meanwhile: impl FnOnce(i32),
) -> Measured {
    let out_path = scratch.join("stdout.txt");
    let err_path = scratch.join("stderr.txt");
    command
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"));
    let started = Instant::now();
    let child = command.spawn().expect("llm-stress starts");
    let pid = i32::try_from(child.id()).expect("a pid");
    meanwhile(pid);
    let mut status = 0;
    // SAFETY: rusage is plain data, filled in by wait4.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut hung = false;
    loop {
        // SAFETY: waits for this test's own child, with valid pointers.
        let done = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if done == pid {
            break;
        }
        if done < 0 {
            panic!("wait4: {}", std::io::Error::last_os_error());
        }
        if started.elapsed() > deadline && !hung {
            hung = true;
            // SAFETY: SIGKILL to this test's own child, which has not been reaped.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(child);
    let exited = libc::WIFEXITED(status);
    Measured {
        code: exited.then(|| libc::WEXITSTATUS(status)),
        signal: libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status)),
        max_rss_kib: usage.ru_maxrss,
        hung,
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
        elapsed: started.elapsed(),
    }
}

/// The environment variable whose value marks every process a measured run starts.
pub const MARK_VAR: &str = "LLM_STRESS_HOSTILE_MARK";

/// Processes still alive (not zombies) whose environment holds `MARK_VAR=mark`: whatever a
/// finished run left behind. Each one found is killed (it is reported all the same).
pub fn orphans(mark: &str) -> Vec<i32> {
    let needle = format!("{MARK_VAR}={mark}").into_bytes();
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if !environ
            .split(|&b| b == 0)
            .any(|var| var == needle.as_slice())
        {
            continue;
        }
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(true);
        if !zombie {
            found.push(pid);
            // SAFETY: SIGKILL to a process this test's run started and left behind.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
    found
}

/// Files under `dir` (every level) whose bytes `hit` says yes to.
fn files_where(dir: &Path, hit: &dyn Fn(&[u8]) -> bool) -> Vec<String> {
    let mut hits = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if std::fs::read(&path).is_ok_and(|bytes| hit(&bytes)) {
                hits.push(path.display().to_string());
            }
        }
    }
    hits
}

fn holds(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Files under `dir` named `name` holding `text`.
pub fn files_holding(dir: &Path, name: &str, text: &str) -> Vec<String> {
    files_where(dir, &|bytes| holds(bytes, text.as_bytes()))
        .into_iter()
        .filter(|path| Path::new(path).file_name().is_some_and(|n| n == name))
        .collect()
}

/// Files under `dir` (and the extra texts) holding any 8 consecutive characters of `secret`.
pub fn secret_hits(dir: &Path, extra: &[&str], secret: &str) -> Vec<String> {
    let windows: Vec<&str> = (0..=secret.len().saturating_sub(8))
        .map(|i| &secret[i..i + 8])
        .collect();
    let leaks = |text: &[u8]| windows.iter().any(|w| holds(text, w.as_bytes()));
    let mut hits = files_where(dir, &leaks);
    for (i, text) in extra.iter().enumerate() {
        if leaks(text.as_bytes()) {
            hits.push(format!("output {i}"));
        }
    }
    hits
}
