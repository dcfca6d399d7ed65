//! `bench-client --anchor vllm` samples the anchor's process between the two sync lines of its
//! script, and only there: a stand-in script that spins in Python before, between and after
//! them must be charged with the middle spin alone. Ignored unless asked for, as the sampling
//! tests of `bench::user_cpu` are: a machine whose kernel refuses `perf_event_open` reports
//! them ignored instead of failing the plain run; asked for, a refusal fails them.

use llm_stress::bench::anchor::{self, AnchorConfig};
use llm_stress::bench::{BenchConfig, Mode, Plan};
use llm_stress::case::Transport;
use std::path::PathBuf;
use std::time::Duration;

use crate::support::Temp;

/// Spins in Python code (user time: `perf_counter` is read without a system call) for 0.3 s
/// before the first sync line, 0.4 s between them and 0.3 s after the second.
const STAND_IN: &str = r#"
import json, os, resource, sys, time

def spin(seconds):
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        pass

def sync(point):
    print(json.dumps({"sync": point, "pid": os.getpid()}), flush=True)
    sys.stdin.readline()

spin(0.3)
sync("start")
before = resource.getrusage(resource.RUSAGE_SELF)
spin(0.4)
after = resource.getrusage(resource.RUSAGE_SELF)
sync("end")
spin(0.3)
print(json.dumps({"version": "stand-in", "requests": 1, "chunks": 1000, "failed": 0,
                  "wall_s": 0.4, "user_s": after.ru_utime - before.ru_utime,
                  "sys_s": after.ru_stime - before.ru_stime}))
"#;

#[tokio::test]
#[ignore = "needs perf_event_open, which containers often refuse: run with \
            cargo nextest run --run-ignored only -E 'test(/user_cpu|anchor_sampling/)'"]
async fn the_anchor_is_sampled_between_its_sync_lines_only() {
    let temp = Temp::new("anchor");
    let script = temp.join("stand-in.py");
    std::fs::write(&script, STAND_IN).expect("script written");
    let config = BenchConfig {
        server_exe: PathBuf::from(env!("CARGO_BIN_EXE_llm-stress")),
        streams: vec![1],
        mode: Mode::Paced,
        step: Duration::from_millis(10),
        aligned: false,
        seconds: 1.0,
        tokens: 16,
        chunks: 1000,
        paced_itl: Duration::from_millis(20),
        paced_tokens: 16,
        anchor: None,
        rounds: 1,
        transport: Transport::Direct,
    };
    let settings = AnchorConfig {
        script,
        python: PathBuf::from("python3"),
    };
    let row = anchor::run(&config, &settings, &Plan::paced(&config, 1))
        .await
        .expect("the stand-in's row (python3 is needed)");
    let sampled = row.sampled_user_s.clone().expect("sampled");
    // Busy in user code between the lines, so getrusage's split is right there too; the
    // 0.6 s of spinning outside them must not count.
    let between = row.user_s + row.sys_s;
    eprintln!(
        "sampled {sampled:.3} s; getrusage between the lines: user {:.3} s, system {:.3} s",
        row.user_s, row.sys_s
    );
    assert!(
        between > 0.2,
        "the stand-in ran {between:.3} s between the lines"
    );
    assert!(
        (sampled - row.user_s).abs() < 0.15 * between,
        "sampled {sampled:.3} s of user time between the sync lines; getrusage there: user \
         {:.3} s, system {:.3} s",
        row.user_s,
        row.sys_s
    );
    assert_eq!(row.user_split(), "sampled");
}
