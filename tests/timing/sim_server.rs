//! The embedded server running the simulator against the wall clock: the harness measures
//! what the engine simulated, request by request, and the engine driven in real time computes
//! what the offline simulator computes for the same arrivals; `llm-stress serve --profile`.

use std::sync::Arc;

use llm_stress::case::{AnswerSpec, FaultSpec};
use llm_stress::server::embedded::answers::Answerer;
use llm_stress::server::embedded::faults::Faults;
use llm_stress::server::embedded::simulated::SimulatedEngine;
use llm_stress::server::embedded::thread::ServerThread;
use llm_stress::server::embedded::{Behaviour, EmbeddedServer};
use llm_stress::server_metrics::{Reading, known};
use llm_stress::session::RunContext;
use llm_stress::sim::config::SimConfig;
use llm_stress::sim::engine::RequestOutcome;
use llm_stress::sim::scheduler::SchedulerKind;
use llm_stress::sim::{SimRequest, simulate};
use serde_json::Value;

use crate::support::CaseDir;

/// The server on a thread and runtime of its own (as trials run it), with the engine whose
/// own account the test reads.
fn serve_engine(engine: Arc<SimulatedEngine>) -> (tokio::runtime::Runtime, ServerThread) {
    let behaviour = Behaviour {
        answerer: Answerer::new(Arc::default(), AnswerSpec::default()),
        tokens_per_chunk: 1,
        faults: Faults::new(FaultSpec::default()),
        prefix_cache: false,
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime
        .block_on(ServerThread::start_with(move || {
            EmbeddedServer::start_with_engine(engine, behaviour, "m".into(), 0)
        }))
        .expect("server");
    (runtime, server)
}

/// SmolLM2-135M on the 2-core CPU profile with continuous batches of at most 4.
fn cpu_config() -> SimConfig {
    let mut config = SimConfig {
        hardware: "cpu-2core".into(),
        model: "smollm2-135m".into(),
        ..SimConfig::default()
    };
    config.scheduler.kind = SchedulerKind::Continuous;
    config.scheduler.batch_size = 4;
    config
}

fn sorted(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    values
}

/// Checks two sorted samples agree element by element: the harness's stamps are never more
/// than 0.5 ms before the engine's instants, at most `max_ms` after, and `mean_ms` after on
/// average (HTTP parsing before the request enters the engine, the 1 ms timer tick that
/// releases a token, the client's read).
fn assert_close(what: &str, harness: &[f64], engine: &[f64], mean_ms: f64, max_ms: f64) {
    assert_eq!(harness.len(), engine.len(), "{what}");
    let diffs: Vec<f64> = harness.iter().zip(engine).map(|(h, e)| h - e).collect();
    let mean = diffs.iter().sum::<f64>() / diffs.len() as f64;
    let report = format!("{what}: harness {harness:?}\nengine {engine:?}\ndiffs {diffs:?}");
    assert!(
        diffs.iter().all(|d| (-0.5..=max_ms).contains(d)),
        "{report}"
    );
    assert!(mean <= mean_ms, "mean {mean} ms; {report}");
    eprintln!(
        "{what}: harness − engine mean {mean:.3} ms, max {:.3} ms",
        diffs.iter().copied().fold(f64::MIN, f64::max)
    );
}

#[test]
fn the_harness_measures_what_the_real_time_simulator_computed() {
    let dir = CaseDir::named("sim-server");
    // Eight clients, a batch of four: half of them queue; 24 requests of 64 prompt and 16
    // output tokens, no warmup, so every request the engine saw is one the harness measured.
    let plan = dir
        .model("m", "name: m\nmax_context: 2048\nmax_concurrency: 8\n")
        .case(
            "c",
            "name: c\nmodel: m\nkinds: [perf]\nload: { warmup: 0 }\n\
             client: { metrics: { interval_ms: 20 } }\n\
             matrix:\n  mode: custom\n  isl: [64]\n  osl: [16]\n  concurrency: [8]\n  prompts: { fixed: 24 }\n",
        )
        .plan();
    let config = cpu_config();
    let engine = Arc::new(SimulatedEngine::start(&config).expect("engine"));
    let (runtime, server) = serve_engine(Arc::clone(&engine));
    let context = RunContext {
        run_id: "sim-server".into(),
        out_dir: dir.out(),
        url_override: Some(server.base_url().to_string()),
    };
    let outcome = crate::support::session(context.clone())
        .run_trial(&plan)
        .expect("reports written");
    assert_eq!(
        outcome.report.summary().expect("a load trial").requests_ok,
        24,
        "{:?}",
        outcome.report
    );

    let records: Vec<Value> = std::fs::read_to_string(outcome.dir.join("records.jsonl"))
        .expect("records")
        .lines()
        .map(|line| serde_json::from_str(line).expect("json"))
        .collect();
    let field = |name: &str| sorted(records.iter().map(|r| r[name].as_f64().expect(name)));
    let finished: Vec<RequestOutcome> = engine.finished();
    runtime.block_on(server.shutdown());
    assert_eq!(finished.len(), 24);
    let since_arrival = |at: fn(&RequestOutcome) -> Option<f64>| {
        sorted(
            finished
                .iter()
                .map(|o| (at(o).expect("finished") - o.request.arrival_s) * 1e3),
        )
    };
    let engine_ttft = since_arrival(|o| o.first_token_s);
    let engine_e2el = since_arrival(|o| o.finished_s);
    // The engine's latencies are far above the tolerance: a wrong release would show.
    assert!(
        engine_ttft[0] > 100.0,
        "a 64-token prefill on the CPU profile"
    );
    assert!(
        engine_e2el[23] > engine_e2el[0] + 100.0,
        "queued requests waited"
    );
    assert_close("ttft", &field("ttft_ms"), &engine_ttft, 2.0, 8.0);
    assert_close("e2el", &field("e2el_ms"), &engine_e2el, 2.0, 8.0);

    // The server's /metrics came from the engine: never more than 4 in a batch, a queue.
    let [metrics] = outcome
        .report
        .load()
        .expect("a load trial")
        .server_metrics
        .as_slice()
    else {
        panic!("one scraped server");
    };
    let max = |label| match metrics.reading(label) {
        Some(Reading::Gauge { max, .. }) => max,
        other => panic!("{label}: {other:?}"),
    };
    assert_eq!(max(known::RUNNING), 4.0, "{metrics:?}");
    assert!(max(known::WAITING) >= 1.0, "{metrics:?}");
    assert!(max(known::KV_USAGE) > 0.0, "{metrics:?}");

    // Driven against the wall clock, the engine computed exactly what the offline simulator
    // computes for the same arrivals.
    let mut requests: Vec<SimRequest> = finished.iter().map(|o| o.request).collect();
    requests.sort_by(|a, b| a.arrival_s.total_cmp(&b.arrival_s));
    let offline = simulate(&config.engine_config().expect("config"), &requests).expect("run");
    let key = |o: &RequestOutcome| (o.request.arrival_s.to_bits(), o.first_token_s, o.finished_s);
    let mut live: Vec<_> = finished.iter().map(key).collect();
    let mut replay: Vec<_> = offline.outcomes.iter().map(key).collect();
    live.sort_by_key(|k| k.0);
    replay.sort_by_key(|k| k.0);
    assert_eq!(live, replay);
}

/// Starts `llm-stress serve` with `args`: the process and its first line (`serving on URL`)
/// when it serves, or what it printed on stderr when it exits (with a failure status).
fn serve(args: &[&str]) -> Result<(std::process::Child, String), String> {
    use std::io::{BufRead, BufReader, Read};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_llm-stress"))
        .arg("serve")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("read");
    if !first.is_empty() {
        return Ok((child, first));
    }
    let mut errors = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut errors)
        .expect("read");
    assert!(!child.wait().expect("wait").success(), "{errors}");
    Err(errors)
}

/// One plain HTTP/1.0 GET on loopback: the whole answer.
fn get(base_url: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let addr = base_url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    answer
}

#[test]
fn serve_runs_the_simulator_on_a_profile_and_refuses_its_flags_without_one() {
    for (args, wanted) in [
        (
            &["--port", "0", "--scheduler", "static"][..],
            "simulator flags need --profile or --sim-config",
        ),
        (
            &["--port", "0", "--profile", "tpu"][..],
            // clap refuses it, naming the profiles there are.
            "invalid value 'tpu' for '--profile <NAME>'",
        ),
    ] {
        let errors = serve(args).expect_err("refused");
        assert!(errors.contains(wanted), "{errors}");
    }

    let (mut child, first) = serve(&["--port", "0", "--profile", "cpu-2core"]).expect("serves");
    let metrics = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .map(|url| get(url, "/metrics"));
    child.kill().ok();
    child.wait().ok();
    let metrics = metrics.unwrap_or_else(|| panic!("no address in {first:?}"));
    assert!(metrics.contains("vllm:kv_cache_usage_perc"), "{metrics}");
}
