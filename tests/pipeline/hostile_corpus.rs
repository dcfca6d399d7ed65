//! The hostile corpus run as a user would: each entry is `llm-stress run` (a child process) on
//! a cases folder holding the hostile entry and, after it, a good case. Entries:
//!
//! - `tests/hostile/*.yaml` (+ `models/`) and what git cannot hold (a directory, a FIFO and a
//!   symbolic-link loop named like cases, a FIFO as a prompts dataset): hostile case files;
//! - `tests/hostile/servers/*.yaml`: a case attached to a scripted hostile server
//!   (`# behaviour:`, from `support::hostile`), `{url}` standing for its address;
//! - `tests/hostile/signals/*.yaml`: a case whose endpoints are spawned `llm-stress serve`
//!   processes (`{exe}`), sent `# signal:` once `# servers:` of them are up.
//!
//! For each: the exit code (1: the hostile trial failed; by the signal for signal entries), the
//! named error (`# expect:`) in the run's output, no panic (printed or caught in a trial), no
//! abort, no hang, no process left behind (every process the run started carries a marker in
//! its environment; /proc is searched for it), no planted API key in any output, the peak RSS
//! of the run (under 500 MB), and the next case still running and passing (for a signal entry:
//! a fresh run of the good case). One test runs them all and prints the tally.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::Temp;
use crate::support::hostile::{
    Behaviour, HostileServer, MARK_VAR, Measured, files_holding, orphans, run_measured, secret_hits,
};

fn hostile_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile")
}

/// The variable that carries the planted API key.
const KEY_VAR: &str = "LLM_STRESS_HOSTILE_KEY";

/// The random part of the planted key (what must never appear in an output).
fn planted_secret(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ u64::from(nanos) ^ u64::from(std::process::id());
    for b in tag.bytes() {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}{:08x}", nanos)
}

/// What kind of entry, and what it needs.
#[derive(Debug, Clone)]
enum Kind {
    /// A hostile case file (or a special entry made at run time).
    Yaml,
    /// A case attached to a hostile server.
    Server(Behaviour),
    /// A signal sent to the run once `servers` spawned servers are up.
    Signal { signal: i32, servers: usize },
}

/// One corpus entry.
#[derive(Debug, Clone)]
struct Entry {
    /// Its name in the table.
    name: String,
    kind: Kind,
    /// The file's text (`None` for the special entries).
    text: Option<String>,
    /// The file name it is written under in the cases folder.
    file: String,
    /// The error text the run's output must hold.
    expect: Option<String>,
}

/// `# key: value` from a file's leading comment lines.
fn header<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .take_while(|l| l.starts_with('#'))
        .find_map(|l| l.strip_prefix(&format!("# {key}: ")))
        .map(str::trim)
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn entries_in(sub: &str) -> Vec<Entry> {
    files_in(&hostile_dir().join(sub))
        .into_iter()
        .filter_map(|path| {
            let text = std::fs::read_to_string(&path).expect("an entry");
            let stem = path.file_stem()?.to_string_lossy().into_owned();
            let kind = match sub {
                "servers" => Kind::Server(
                    header(&text, "behaviour")
                        .expect("# behaviour:")
                        .parse()
                        .unwrap_or_else(|e| panic!("{stem}: {e}")),
                ),
                "signals" => Kind::Signal {
                    signal: match header(&text, "signal").expect("# signal:") {
                        "INT" => libc::SIGINT,
                        "TERM" => libc::SIGTERM,
                        "KILL" => libc::SIGKILL,
                        other => panic!("{stem}: unknown signal {other}"),
                    },
                    servers: header(&text, "servers")
                        .and_then(|n| n.parse().ok())
                        .expect("# servers: N"),
                },
                _ => {
                    // The good case is every entry's next case, not an entry.
                    header(&text, "expect")?;
                    Kind::Yaml
                }
            };
            Some(Entry {
                name: format!(
                    "{}{stem}",
                    if sub.is_empty() {
                        String::new()
                    } else {
                        format!("{sub}/")
                    }
                ),
                kind,
                expect: header(&text, "expect").map(str::to_string),
                file: format!("{stem}.yaml"),
                text: Some(text),
            })
        })
        .collect()
}

/// The entries git cannot hold, made at run time.
fn special_entries() -> Vec<Entry> {
    [
        ("a-directory", "is a directory"),
        ("a-fifo", "not a regular file"),
        ("loop-a", "symbolic links"),
        ("fifo-dataset", "not a regular file"),
    ]
    .into_iter()
    .map(|(name, expect)| Entry {
        name: format!("special/{name}"),
        kind: Kind::Yaml,
        text: None,
        file: format!("{name}.yaml"),
        expect: Some(expect.to_string()),
    })
    .collect()
}

fn mkfifo(path: &Path) {
    let name = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("c path");
    // SAFETY: mkfifo only creates a file system node from a valid C string.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// One entry's measured outcome.
#[derive(Debug)]
struct Row {
    name: String,
    measured: Measured,
    /// The run's exit was the one expected.
    exit_ok: bool,
    /// The expected error text was in the output.
    named: bool,
    orphans: Vec<i32>,
    secret_hits: Vec<String>,
    /// The good case after the entry ran and passed.
    next_ran: bool,
    signal: Option<i32>,
}

impl Row {
    fn ok(&self) -> bool {
        self.exit_ok
            && self.named
            && !self.measured.panicked()
            && !self.measured.aborted(self.signal)
            && !self.measured.hung
            && self.orphans.is_empty()
            && self.secret_hits.is_empty()
            && self.next_ran
    }
}

/// A cases folder with the models of `tests/hostile/models/` and the good case (`zz-good`,
/// sorted after every entry).
fn cases_folder(temp: &Path) -> PathBuf {
    let cases = temp.join("cases");
    std::fs::create_dir_all(cases.join("models")).expect("models");
    std::fs::create_dir_all(cases.join("pids")).expect("pids");
    for entry in std::fs::read_dir(hostile_dir().join("models")).expect("models") {
        let path = entry.expect("a model").path();
        std::fs::copy(
            &path,
            cases.join("models").join(path.file_name().expect("name")),
        )
        .expect("copy a model");
    }
    let good = std::fs::read_to_string(hostile_dir().join("good.yaml")).expect("good.yaml");
    std::fs::write(
        cases.join("zz-good.yaml"),
        good.replace("name: good", "name: zz-good"),
    )
    .expect("the good case");
    cases
}

fn llm_stress(cases: &Path, out: &Path, mark: &str, key: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_llm-stress"));
    command
        .arg("run")
        .arg(cases)
        .arg("--out")
        .arg(out)
        .arg("--progress")
        .arg("off")
        .env_remove("LLM_STRESS_URL")
        .env_remove("LLM_STRESS_SET")
        .env(MARK_VAR, mark)
        .env(KEY_VAR, format!("sk-hostile-{key}"));
    command
}

/// Whether `results.csv` under `out` has a passing row of the good case.
fn good_case_passed(out: &Path) -> bool {
    std::fs::read_to_string(out.join("results.csv"))
        .map(|csv| {
            csv.lines()
                .any(|l| l.contains("zz-good") && l.contains(",PASS,"))
        })
        .unwrap_or(false)
}

/// Counts the pid files under `pids` that hold a pid.
fn servers_up(pids: &Path) -> usize {
    std::fs::read_dir(pids)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| {
                    std::fs::read_to_string(e.path()).is_ok_and(|t| t.trim().parse::<i32>().is_ok())
                })
                .count()
        })
        .unwrap_or(0)
}

/// Runs one entry and measures it.
fn run_entry(entry: &Entry) -> Row {
    let temp = Temp::new("hostile-corpus");
    let cases = cases_folder(&temp);
    let out = temp.join("out");
    let mark = planted_secret(&entry.name);
    let key = planted_secret(&format!("{}-key", entry.name));
    let _server = match &entry.kind {
        Kind::Server(behaviour) => Some(HostileServer::start(*behaviour)),
        _ => None,
    };
    match (&entry.text, &_server) {
        (Some(text), Some(server)) => {
            std::fs::write(cases.join(&entry.file), text.replace("{url}", server.url()))
                .expect("entry");
        }
        (Some(text), None) => {
            let exe = env!("CARGO_BIN_EXE_llm-stress");
            std::fs::write(cases.join(&entry.file), text.replace("{exe}", exe)).expect("entry");
        }
        (None, _) => match entry.file.as_str() {
            "a-directory.yaml" => std::fs::create_dir(cases.join("a-directory.yaml")).expect("dir"),
            "a-fifo.yaml" => mkfifo(&cases.join("a-fifo.yaml")),
            "loop-a.yaml" => {
                std::os::unix::fs::symlink("loop-b.yaml", cases.join("loop-a.yaml")).expect("link");
                std::os::unix::fs::symlink("loop-a.yaml", cases.join("loop-b.yaml")).expect("link");
            }
            "fifo-dataset.yaml" => {
                mkfifo(&cases.join("prompts.fifo"));
                std::fs::write(
                    cases.join("fifo-dataset.yaml"),
                    "name: fifo-dataset\nmodel: m\nkinds: [perf]\nserver:\n  embedded: { ttft_ms: 1, tpot_ms: 1 }\n\
                     prompts: { source: jsonl, path: prompts.fifo }\n\
                     matrix: { mode: custom, isl: [16], osl: [8], concurrency: [1] }\n",
                )
                .expect("entry");
            }
            other => panic!("unknown special entry {other}"),
        },
    }
    let signal = match entry.kind {
        Kind::Signal { signal, .. } => Some(signal),
        _ => None,
    };
    let command = llm_stress(&cases, &out, &mark, &key);
    let measured = run_measured(command, &temp, Duration::from_secs(90), |pid| {
        if let Kind::Signal { signal, servers } = entry.kind {
            let deadline = Instant::now() + Duration::from_secs(60);
            while servers_up(&cases.join("pids")) < servers && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            // Let the load start on every endpoint.
            std::thread::sleep(Duration::from_millis(1000));
            // SAFETY: a signal to the run this test started.
            unsafe {
                libc::kill(pid, signal);
            }
        }
    });
    // A stopped server's process group may take a moment to go.
    let mut left = Vec::new();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(300));
        left = orphans(&mark);
        if left.is_empty() {
            break;
        }
    }
    let output = format!("{}\n{}", measured.stdout, measured.stderr);
    let hits = secret_hits(&out, &[&measured.stdout, &measured.stderr], &key);
    let (exit_ok, next_ran) = match signal {
        Some(signal) => {
            let up = servers_up(&cases.join("pids"));
            let wanted = match entry.kind {
                Kind::Signal { servers, .. } => servers,
                _ => 0,
            };
            // The next case: a fresh run of the good case alone.
            let next = Temp::new("hostile-next");
            let next_cases = cases_folder(&next);
            let next_out = next.join("out");
            let again = run_measured(
                llm_stress(&next_cases, &next_out, &mark, &key),
                &next,
                Duration::from_secs(60),
                |_| {},
            );
            (
                measured.signal == Some(signal) && up == wanted,
                again.code == Some(0) && good_case_passed(&next_out),
            )
        }
        None => (measured.code == Some(1), good_case_passed(&out)),
    };
    // The named error: in what the run printed (the trial's reasons), or in a request's
    // evidence in `records.jsonl`.
    let named = entry.expect.as_deref().is_none_or(|expect| {
        output.contains(expect) || !files_holding(&out, "records.jsonl", expect).is_empty()
    });
    Row {
        name: entry.name.clone(),
        measured,
        exit_ok,
        named,
        orphans: left,
        secret_hits: hits,
        next_ran,
        signal,
    }
}

/// The table of rows and the totals, as the book shows it.
fn table(rows: &[Row]) -> String {
    let count = |f: &dyn Fn(&Row) -> bool| rows.iter().filter(|r| f(r)).count();
    let max_rss = rows
        .iter()
        .map(|r| r.measured.max_rss_kib)
        .max()
        .unwrap_or(0);
    let mut text = String::new();
    for row in rows {
        writeln!(
            text,
            "{:<40} exit {:<8} {:>6.1} s {:>7} KiB {}",
            row.name,
            row.measured
                .code
                .map(|c| c.to_string())
                .or(row.measured.signal.map(|s| format!("sig {s}")))
                .unwrap_or_default(),
            row.measured.elapsed.as_secs_f64(),
            row.measured.max_rss_kib,
            if row.ok() { "ok" } else { "FAILED" }
        )
        .ok();
    }
    writeln!(text, "\n| inputs | panics | aborts | hangs | orphans | secret hits | max RSS | next case ran | named error and exit |").ok();
    writeln!(text, "|---|---|---|---|---|---|---|---|---|").ok();
    writeln!(
        text,
        "| {} | {} | {} | {} | {} | {} | {:.0} MB | {} of {} | {} of {} |",
        rows.len(),
        count(&|r| r.measured.panicked()),
        count(&|r| r.measured.aborted(r.signal)),
        count(&|r| r.measured.hung),
        rows.iter().map(|r| r.orphans.len()).sum::<usize>(),
        rows.iter().map(|r| r.secret_hits.len()).sum::<usize>(),
        max_rss as f64 / 1024.0,
        count(&|r| r.next_ran),
        rows.len(),
        count(&|r| r.exit_ok && r.named),
        rows.len(),
    )
    .ok();
    text
}

/// Runs `entries`, prints the table, and fails naming every entry that went wrong.
fn run_all(entries: &[Entry]) -> Vec<Row> {
    // `LLM_STRESS_HOSTILE_ONLY=name` runs only the entries whose name holds `name` (to debug one).
    let only = std::env::var("LLM_STRESS_HOSTILE_ONLY").unwrap_or_default();
    let rows: Vec<Row> = entries
        .iter()
        .filter(|e| e.name.contains(&only))
        .map(run_entry)
        .collect();
    println!("{}", table(&rows));
    let wrong: Vec<String> = rows
        .iter()
        .filter(|r| !r.ok())
        .map(|r| {
            format!(
                "{}: exit {:?}/{:?} (ok {}), named {}, panicked {}, hung {}, orphans {:?}, secrets {:?}, next ran {}\n{}\nstdout: {}\nstderr: {}",
                r.name,
                r.measured.code,
                r.measured.signal,
                r.exit_ok,
                r.named,
                r.measured.panicked(),
                r.measured.hung,
                r.orphans,
                r.secret_hits,
                r.next_ran,
                r.measured
                    .stdout
                    .lines()
                    .find(|l| l.contains("errors by class"))
                    .unwrap_or("no errors-by-class row"),
                head(&r.measured.stdout),
                head(&r.measured.stderr)
            )
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    let max_rss = rows
        .iter()
        .map(|r| r.measured.max_rss_kib)
        .max()
        .unwrap_or(0);
    assert!(max_rss < 500 * 1024, "max RSS {max_rss} KiB");
    rows
}

/// The start of a run's output (the hostile trial's report comes first).
fn head(text: &str) -> &str {
    let end = (0..=text.len().min(4000))
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    &text[..end]
}

/// The tally: every entry of the corpus (case files, special files, servers, signals), one
/// `llm-stress run` each (about 45 s on 2 cores). `LLM_STRESS_HOSTILE_ONLY=name` runs only the
/// entries whose name holds `name`.
#[test]
fn every_hostile_input_fails_by_name_without_panic_hang_orphan_or_leak() {
    let mut entries = entries_in("");
    entries.extend(special_entries());
    let servers = entries_in("servers");
    assert!(servers.len() >= 20, "{} server entries", servers.len());
    entries.extend(servers);
    let signals = entries_in("signals");
    assert!(
        signals
            .iter()
            .any(|e| matches!(e.kind, Kind::Signal { servers, .. } if servers > 16)),
        "a signal entry with more than 16 spawned servers"
    );
    entries.extend(signals);
    assert!(entries.len() >= 60, "{} entries", entries.len());
    let rows = run_all(&entries);
    if std::env::var("LLM_STRESS_HOSTILE_ONLY").is_err() {
        assert_eq!(rows.len(), entries.len());
    }
}
