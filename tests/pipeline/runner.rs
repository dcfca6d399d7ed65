//! A trial end to end: it writes its CSV row and folder whether it passes or fails, and a
//! server that cannot be had fails the trial with the evidence instead of stopping the run.

use llm_stress::judge::Status;
use llm_stress::plan::TrialPlan;
use llm_stress::server_metrics::{Reading, known};
use llm_stress::session::RunContext;

use crate::support::CaseDir;

fn setup(tag: &str) -> (CaseDir, TrialPlan) {
    let dir = CaseDir::named(&format!("runner-{tag}"));
    let plan = dir
        .model("m", "name: m\nmax_context: 256\nmax_concurrency: 2\n")
        .case(
            "c",
            "name: c\nmodel: m\nkinds: [perf]\nserver:\n  embedded: { ttft_ms: 5, tpot_ms: 1, slots: 2 }\nmatrix:\n  mode: custom\n  isl: [16]\n  osl: [8]\n  concurrency: [2]\nslo:\n  - ttft_ms.p95 < 1000\n",
        )
        .plan();
    (dir, plan)
}

fn context(dir: &CaseDir, url: Option<String>) -> RunContext {
    RunContext {
        run_id: "test-run".into(),
        out_dir: dir.out(),
        url_override: url,
    }
}

#[test]
fn a_passing_trial_writes_its_row_and_folder() {
    let (dir, plan) = setup("pass");
    let outcome = crate::support::session(context(&dir, None))
        .run_trial(&plan)
        .expect("reports written");
    assert!(outcome.passed, "{:?}", outcome.report.verdict);
    assert_eq!(
        outcome.report.summary().expect("a load trial").requests_ok,
        2
    );
    assert!(outcome.dir.ends_with("test-run/perf/c/isl16_osl8_c2_n2"));
    assert!(outcome.dir.join("summary.json").is_file());
    let records = std::fs::read_to_string(outcome.dir.join("records.jsonl")).expect("records");
    assert_eq!(records.lines().count(), 2);
    let csv = std::fs::read_to_string(dir.path().join("out/results.csv")).expect("csv");
    assert_eq!(csv.lines().count(), 2, "header and one row");
    assert!(csv.lines().nth(1).is_some_and(|row| row.contains(",PASS,")));
}

#[test]
fn an_unreachable_server_fails_the_trial_with_evidence() {
    let (dir, plan) = setup("down");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let outcome = crate::support::session(context(&dir, Some(url.clone())))
        .run_trial(&plan)
        .expect("reports written");
    assert!(!outcome.passed);
    assert_eq!(outcome.report.verdict.status, Status::Fail);
    let reasons = outcome.report.verdict.failure_reasons().join("; ");
    assert!(
        reasons.contains(&url) && reasons.contains("not usable"),
        "{reasons}"
    );
    assert!(outcome.dir.to_string_lossy().ends_with("_ERROR"));
    let csv = std::fs::read_to_string(dir.path().join("out/results.csv")).expect("csv");
    assert!(csv.contains(",FAIL,"), "{csv}");
}

#[test]
fn a_model_tokenizer_sizes_prompts_and_checks_the_servers_output_counts() {
    let (dir, _) = setup("tokenizer");
    llm_stress::prompts::train_fixture_tokenizer(&dir.cases().join("models/tok.json"))
        .expect("fixture tokenizer");
    let plan = dir
        .model(
            "m",
            "name: m\nmax_context: 256\nmax_concurrency: 2\ntokenizer: tok.json\n",
        )
        .plan();
    let outcome = crate::support::session(context(&dir, None))
        .run_trial(&plan)
        .expect("reports written");
    assert!(outcome.passed, "{:?}", outcome.report.verdict);
    let s = outcome.report.summary().expect("a load trial");
    assert_eq!((s.requests_ok, s.estimated_token_counts), (2, 0));
    // The embedded server counts words: its ` tok0 tok1 …` is 8 words but more tokens for
    // the trained tokenizer, and the report says the counts disagree.
    assert_eq!(s.token_count_mismatches, 2);
    assert_eq!(s.output_tokens, 16, "the server's count is the one used");
}

/// Writes a one-trial case (with the model spec of [`setup`]) and returns its plan.
fn plan_of(dir: &CaseDir, case: &str) -> TrialPlan {
    dir.case("c", case).plan()
}

#[test]
fn the_servers_metrics_and_timings_are_reported_beside_the_clients() {
    let (dir, _) = setup("server-side");
    // Two slots, twelve requests six at a time: four requests always queue. llama.cpp's
    // native API, whose last event carries the server's timings.
    let plan = plan_of(
        &dir,
        "name: c\nmodel: m\nkinds: [perf]\napi: llama_cpp\n\
         server:\n  embedded: { ttft_ms: 20, tpot_ms: 5, slots: 2 }\n\
         client: { metrics: { interval_ms: 10 } }\n\
         load: { warmup: 0 }\n\
         matrix:\n  mode: custom\n  isl: [16]\n  osl: [8]\n  concurrency: [6]\n  prompts: { fixed: 12 }\n",
    );
    let outcome = crate::support::session(context(&dir, None))
        .run_trial(&plan)
        .expect("reports written");
    assert!(outcome.passed, "{:?}", outcome.report.verdict);
    let s = outcome.report.summary().expect("a load trial");
    assert_eq!(s.requests_ok, 12);

    // The server's timings are its schedule: 20 ms to the first token, then 5 ms a token.
    let timing = s.server_timing.as_ref().expect("server timings");
    assert_eq!(timing.requests, 12);
    let prompt = timing.prompt_ms.expect("prompt");
    let tpot = timing.tpot_ms.expect("tpot");
    assert!((prompt.min - 20.0).abs() < 0.05 && (prompt.max - 20.0).abs() < 0.05);
    assert!((tpot.min - 5.0).abs() < 0.01 && (tpot.max - 5.0).abs() < 0.01);
    // Queued requests waited for a slot: at least one full service time (20 + 7 × 5 ms).
    let wait = timing.wait_ms.expect("wait");
    assert!(wait.min >= 0.0 && wait.max >= 55.0, "{wait:?}");

    // The scraped counters saw exactly what the client received (no warmup requests).
    let [metrics] = outcome
        .report
        .load()
        .expect("a load trial")
        .server_metrics
        .as_slice()
    else {
        panic!(
            "one scraped server: {:?}",
            outcome.report.load().expect("a load trial").server_metrics
        );
    };
    assert!(metrics.unavailable.is_none(), "{metrics:?}");
    assert!(metrics.scrapes >= 3, "{metrics:?}");
    let increase = |label| match metrics.reading(label) {
        Some(Reading::Counter { increase, .. }) => increase,
        other => panic!("{label}: {other:?}"),
    };
    let max = |label| match metrics.reading(label) {
        Some(Reading::Gauge { max, .. }) => max,
        other => panic!("{label}: {other:?}"),
    };
    assert_eq!(increase(known::GENERATED_TOKENS), s.output_tokens as f64);
    assert_eq!(increase(known::PROMPT_TOKENS), s.input_tokens as f64);
    assert_eq!(increase("requests finished"), 12.0);
    assert!(max(known::RUNNING) <= 2.0, "{metrics:?}");
    assert!(max(known::WAITING) >= 1.0, "{metrics:?}");

    let table = std::fs::read_to_string(outcome.dir.join("summary.json")).expect("summary");
    assert!(table.contains("vllm:num_requests_waiting"), "{table}");
    let csv = std::fs::read_to_string(dir.path().join("out/results.csv")).expect("csv");
    let mut rows = csv::Reader::from_reader(csv.as_bytes());
    let header = rows.headers().expect("header").clone();
    let row = rows.records().next().expect("row").expect("row");
    let field = |name: &str| {
        let at = header.iter().position(|h| h == name).expect(name);
        row[at].to_string()
    };
    assert_eq!(
        field("server_generated_tokens"),
        format!("{}.000", s.output_tokens)
    );
    assert_eq!(
        field("server_prompt_ms_p50")
            .parse::<f64>()
            .ok()
            .map(f64::round),
        Some(20.0)
    );
}

#[test]
fn a_server_without_metrics_is_noted_and_the_trial_still_passes() {
    let (dir, _) = setup("no-metrics");
    let plan = plan_of(
        &dir,
        "name: c\nmodel: m\nkinds: [perf]\n\
         server:\n  embedded: { ttft_ms: 5, tpot_ms: 1, slots: 2 }\n\
         client: { metrics: { path: /nothing-here } }\n\
         matrix:\n  mode: custom\n  isl: [16]\n  osl: [8]\n  concurrency: [2]\n",
    );
    let outcome = crate::support::session(context(&dir, None))
        .run_trial(&plan)
        .expect("reports written");
    assert!(outcome.passed, "{:?}", outcome.report.verdict);
    let [metrics] = outcome
        .report
        .load()
        .expect("a load trial")
        .server_metrics
        .as_slice()
    else {
        panic!("one scraped server");
    };
    let reason = metrics.unavailable.as_deref().expect("unavailable");
    assert!(
        reason.contains("/nothing-here") && reason.contains("404"),
        "{reason}"
    );
    assert!(metrics.metrics.is_empty());
}

#[test]
fn a_panicking_trial_fails_alone_and_the_run_goes_on_to_its_summary() {
    use llm_stress::report::analysis::Thresholds;
    use llm_stress::session::sinks::Publisher;

    let dir = CaseDir::named("runner-panic");
    let plans = dir
        .model("m", "name: m\nmax_context: 256\nmax_concurrency: 2\n")
        .case(
            "c",
            "name: c\nmodel: m\nkinds: [perf]\nserver:\n  embedded: { ttft_ms: 5, tpot_ms: 1, slots: 2 }\nmatrix:\n  mode: custom\n  isl: [16]\n  osl: [8]\n  concurrency: [1, 2]\n",
        )
        .plans();
    assert_eq!(plans.len(), 2);
    let doomed = plans[0].name();
    let session = crate::support::session(context(&dir, None))
        .with_sink(Publisher::new(Thresholds::default(), None, None))
        .with_trial_hook(move |plan| {
            if plan.name() == doomed {
                panic!("deliberate panic in {}", plan.name());
            }
        });
    let first = session
        .run_trial(&plans[0])
        .expect("the panic is a verdict");
    assert!(!first.passed);
    let reasons = first.report.verdict.failure_reasons().join("; ");
    assert!(
        reasons.contains("the trial panicked: deliberate panic in"),
        "{reasons}"
    );
    assert!(first.dir.join("summary.json").is_file(), "{:?}", first.dir);
    let second = session.run_trial(&plans[1]).expect("the next trial runs");
    assert!(second.passed, "{:?}", second.report.verdict);
    let tally = session.finish().expect("the run finishes");
    assert_eq!((tally.trials, tally.failed.len()), (2, 1), "{tally:?}");
    let out = dir.out();
    let summary = std::fs::read_to_string(out.join("test-run").join("summary.md"))
        .or_else(|_| std::fs::read_to_string(out.join("summary.md")))
        .expect("summary.md written");
    assert!(summary.contains("panicked"), "{summary}");
}

#[test]
fn a_results_csv_with_another_header_is_refused_before_anything_is_measured() {
    let (dir, plan) = setup("header");
    std::fs::create_dir_all(dir.out()).expect("out");
    std::fs::write(dir.out().join("results.csv"), "a,b,c\n1,2,3\n").expect("old csv");
    let started = std::time::Instant::now();
    let error = crate::support::session(context(&dir, None))
        .run_trial(&plan)
        .expect_err("refused");
    assert!(error.to_string().contains("a,b,c"), "{error}");
    // Refused at the start: no trial folder, and no time spent on load.
    assert!(!dir.out().join("test-run").exists());
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

/// A server on loopback that answers the health check and `answers` generation requests
/// (eight streamed tokens each, one connection per request), then stops listening: later
/// connections are refused, as from a server that died.
fn server_that_dies_after(answers: usize) -> String {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        let mut served = 0;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let Some(request) = crate::support::hostile::read_request(&mut stream) else {
                continue;
            };
            let response = if request.starts_with(b"GET") {
                let body = r#"{"data":[{"id":"m"}]}"#;
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                served += 1;
                let token =
                    r#"data: {"choices":[{"delta":{"content":" w"},"finish_reason":null}]}"#;
                let last = r#"data: {"choices":[{"delta":{},"finish_reason":"length"}],"usage":{"prompt_tokens":16,"completion_tokens":8}}"#;
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n{}{last}\n\ndata: [DONE]\n\n",
                    format!("{token}\n\n").repeat(8)
                )
            };
            stream.write_all(response.as_bytes()).ok();
            drop(stream);
            if served >= answers {
                return; // the listener goes with the thread
            }
        }
    });
    url
}

#[test]
fn a_server_that_stops_answering_mid_run_fails_the_trial_naming_it() {
    let dir = CaseDir::named("runner-dies");
    let plan = dir
        .model("m", "name: m\nmax_context: 256\nmax_concurrency: 2\n")
        .case(
            "c",
            "name: c\nmodel: m\nkinds: [perf]\nload: { warmup: 0 }\nmatrix:\n  mode: custom\n  isl: [16]\n  osl: [8]\n  concurrency: [1]\n  prompts: { fixed: 10 }\n",
        )
        .plan();
    let url = server_that_dies_after(3);
    let outcome = crate::support::session(context(&dir, Some(url)))
        .run_trial(&plan)
        .expect("reports written");
    let summary = outcome.report.summary().expect("a load trial");
    assert_eq!(summary.requests_ok, 3, "{:?}", summary.errors);
    assert!(!outcome.passed);
    let reasons = outcome.report.verdict.failure_reasons().join("; ");
    assert!(
        reasons.contains(
            "the server stopped answering: 7 requests could not connect after it had answered 3"
        ),
        "{reasons}"
    );
    assert!(
        reasons.contains("error budget: 7 of 10 requests failed"),
        "{reasons}"
    );
}

#[test]
fn a_flood_that_exhausts_the_clients_descriptors_fails_with_class_client() {
    let dir = CaseDir::named("runner-emfile");
    dir.model("m", "name: m\nmax_context: 256\nmax_concurrency: 400\n")
        .case(
            "flood",
            "name: flood\nmodel: m\nkinds: [perf]\nserver:\n  embedded: { ttft_ms: 50, tpot_ms: 5, slots: 400 }\n\
             load: { warmup: 0, timeout_s: 3 }\n\
             matrix: { mode: custom, isl: [16], osl: [8], concurrency: [300], prompts: { fixed: 300 } }\n",
        );
    // 300 connections at once in a process allowed 128 open files.
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 128 && exec \"$0\" run \"$1\" --out \"$2\" --progress off")
        .arg(env!("CARGO_BIN_EXE_llm-stress"))
        .arg(dir.cases())
        .arg(dir.out())
        .env_remove("LLM_STRESS_URL")
        .output()
        .expect("llm-stress run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("| client "), "{stdout}");
    assert!(stdout.contains("the client ran out on"), "{stdout}");
    assert!(stdout.contains("EMFILE"), "{stdout}");
}
