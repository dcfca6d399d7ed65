//! Trials written in Rust (`llm_stress::trial`) end to end: the checks a trial function adds
//! land in the same verdict, check table, `summary.json` and `results.csv` row as the case's,
//! a failing `require` fails the trial with an `_ERROR` folder, and a request customiser's
//! body fields reach the server.

use std::sync::Arc;

use llm_stress::plan::TrialPlan;
use llm_stress::prelude::*;
use llm_stress::session::{RunContext, TrialOutcome};
use llm_stress::trial::{TrialFn, run_function};

use crate::support::CaseDir;

fn setup(tag: &str) -> (CaseDir, TrialPlan) {
    let dir = CaseDir::named(&format!("attributed-{tag}"));
    let plan = dir
        .model("m", "name: m\nmax_context: 256\nmax_concurrency: 2\n")
        .case(
            "c",
            "name: c\nmodel: m\nkinds: [perf]\nserver:\n  embedded: { ttft_ms: 5, tpot_ms: 1, slots: 2 }\nmatrix:\n  mode: custom\n  isl: [16]\n  osl: [8]\n  concurrency: [2]\nslo:\n  - error_rate < 0.5\n",
        )
        .plan();
    (dir, plan)
}

fn run(tag: &str, body: TrialFn) -> (CaseDir, Result<TrialOutcome, String>) {
    let (dir, plan) = setup(tag);
    let context = RunContext {
        run_id: "test-run".into(),
        out_dir: dir.out(),
        url_override: None,
    };
    let session = Arc::new(crate::support::session(context));
    let outcome = run_function(body, plan, &session);
    (dir, outcome)
}

async fn impossible_ttft(t: Trial) -> TrialResult {
    let run = t.run().await?;
    run.require("error_rate < 0.5")?;
    run.require("ttft_ms.p95 < 0.001")?;
    run.check("never reached", false)?;
    Ok(run.into())
}

#[test]
fn a_failing_require_fails_the_trial_with_its_check_and_an_error_folder() {
    let (dir, outcome) = run("require", |t| Box::pin(impossible_ttft(t)));
    let outcome = outcome.expect("the trial ran");
    assert!(!outcome.passed);
    assert!(
        outcome
            .dir
            .ends_with("test-run/perf/c/isl16_osl8_c2_n2_ERROR"),
        "{}",
        outcome.dir.display()
    );
    let rules: Vec<&str> = outcome
        .report
        .verdict
        .checks
        .iter()
        .map(|c| c.rule.as_str())
        .collect();
    // The case's SLO, then the function's: the first `require` passes, the second fails and
    // stops the function before its `check`.
    assert!(
        rules.ends_with(&["error_rate < 0.5", "ttft_ms.p95 < 0.001"]),
        "{rules:?}"
    );
    let summary = std::fs::read_to_string(outcome.dir.join("summary.json")).expect("written");
    assert!(summary.contains("ttft_ms.p95 < 0.001"), "{summary}");
    assert!(summary.contains("does not satisfy"), "{summary}");
    let csv = std::fs::read_to_string(dir.path().join("out/results.csv")).expect("csv");
    assert!(
        csv.lines().nth(1).is_some_and(|row| row.contains(",FAIL,")),
        "{csv}"
    );
}

async fn own_checks(t: Trial) -> TrialResult {
    let run = t.run().await?;
    run.require("ttft_ms.p95 < 5000")?;
    run.check("two records", run.records().len() == 2)?;
    run.check("the server is named", !run.urls().is_empty())?;
    Ok(run.into())
}

#[test]
fn passing_checks_join_the_check_table() {
    let (_dir, outcome) = run("checks", |t| Box::pin(own_checks(t)));
    let outcome = outcome.expect("the trial ran");
    assert!(outcome.passed, "{:?}", outcome.report.verdict);
    let code: Vec<(&str, &str)> = outcome
        .report
        .verdict
        .checks
        .iter()
        .filter(|c| c.source == llm_stress::judge::CheckSource::Code)
        .map(|c| (c.name.as_str(), c.status.as_str()))
        .collect();
    assert_eq!(
        code,
        [("two records", "PASS"), ("the server is named", "PASS")]
    );
    let summary = std::fs::read_to_string(outcome.dir.join("summary.json")).expect("written");
    assert!(summary.contains(r#""source": "code""#), "{summary}");
}

async fn customised(t: Trial) -> TrialResult {
    let case = Case::builder()
        .embedded(EmbeddedSpec::default())
        .api(Api::Chat)
        .build()?;
    let run = t
        .with_case(case)
        .run_with(|req| {
            req.tools(json!([{"type": "function", "function": {"name": "f"}}]))
                .header("x-team", "serving")
        })
        .await?;
    run.check(
        "every answer is kept",
        run.responses().count() == run.records().len(),
    )?;
    run.check(
        "answers came back",
        run.responses().all(|text| !text.is_empty()),
    )?;
    Ok(run.into())
}

#[test]
fn a_request_customiser_reaches_the_server_and_keeps_the_answers() {
    let (_dir, outcome) = run("customised", |t| Box::pin(customised(t)));
    let outcome = outcome.expect("the trial ran");
    assert!(outcome.passed, "{:?}", outcome.report.verdict);
    assert_eq!(outcome.report.meta.case, "c", "the trial keeps its name");
    assert_eq!(outcome.records.len(), 2);
}

async fn never_runs(_t: Trial) -> TrialResult {
    Err(std::io::Error::other("no server today"))?
}

#[test]
fn a_function_that_fails_before_running_says_why() {
    let (_dir, outcome) = run("early", |t| Box::pin(never_runs(t)));
    assert_eq!(outcome.expect_err("no outcome"), "no server today");
}

/// Serves one request on loopback: sends back what was asked (headers and body, as text) and
/// answers with one streamed chunk.
fn capture_one() -> (String, std::sync::mpsc::Receiver<String>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut socket, _)) = listener.accept() else {
            return;
        };
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let Ok(n) = socket.read(&mut buf) else { return };
            if n == 0 {
                return;
            }
            request.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&request).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .and_then(|v| v.trim().parse::<usize>().ok())
                    })
                    .unwrap_or(0);
                if request.len() >= end + 4 + length {
                    let _ = sender.send(text);
                    break;
                }
            }
        }
        let body = "data: {\"choices\":[{\"text\":\" hi\",\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n{body}"
        );
        let _ = socket.write_all(response.as_bytes());
    });
    (url, receiver)
}

#[tokio::test]
async fn the_customisers_body_fields_and_headers_are_sent_and_the_answer_kept() {
    use llm_stress::client::{Client, ClientConfig, Generation};
    let (url, asked) = capture_one();
    let customiser = RequestCustomiser::default()
        .tools(json!([{"type": "function", "function": {"name": "f"}}]))
        .logprobs(true);
    let config = ClientConfig {
        extra_body: Some(Arc::new(customiser.body_fields().clone())),
        headers: vec![("x-team".into(), "serving".into())],
        ..ClientConfig::new(
            &url,
            Api::Completions,
            "m",
            std::time::Duration::from_secs(5),
        )
    };
    let client = Client::new(config).expect("client");
    let record = client
        .generate(
            0,
            std::time::Instant::now(),
            &Generation::exact("hello".into(), 1),
        )
        .await;
    let request = asked.recv().expect("the request");
    assert!(
        request.contains(r#""tools":[{"function":{"name":"f"},"type":"function"}]"#),
        "{request}"
    );
    assert!(request.contains(r#""logprobs":true"#), "{request}");
    assert!(
        request.contains(r#""prompt":"hello""#),
        "the protocol's fields stay: {request}"
    );
    assert!(
        request.to_ascii_lowercase().contains("x-team: serving"),
        "{request}"
    );
    assert_eq!(record.text.as_deref(), Some(" hi"), "{record:?}");
}

// Two attributed functions of this test binary: the macros register them in
// `llm_stress::trial::TRIALS` (they are not run here, only expanded).
#[llm_stress::perf(rate = [5, 2.5], cases = [("short", 16, 8), ("long", 32, 16)], tags = ["nightly"])]
async fn open_pairs(t: Trial) -> TrialResult {
    Ok(t.run().await?.into())
}

#[llm_stress::accuracy(case = "stress-cases/demo-chat.yaml", ignore = "slow", expect = "fail")]
async fn questions(t: Trial) -> TrialResult {
    Ok(t.run().await?.into())
}

#[test]
fn the_attributes_register_their_arguments_and_expand_into_named_trials() {
    let find = |name: &str| {
        llm_stress::trial::TRIALS
            .iter()
            .find(|r| r.function == name)
            .unwrap_or_else(|| panic!("{name} is registered"))
    };
    let open = find("open_pairs");
    assert_eq!(open.rate, [5.0, 2.5]);
    assert_eq!(open.cases, [("short", 16, 8), ("long", 32, 16)]);
    assert_eq!(open.tags, ["nightly"]);
    assert!(open.file.ends_with("attributed.rs"), "{}", open.file);
    let full_names = |registration: &'static llm_stress::trial::Registration| {
        let mut names: Vec<String> = registration
            .expand()
            .into_iter()
            .map(|e| match e.discovered {
                llm_stress::plan::discovery::Discovered::Plan(plan) => plan.full_name(),
                llm_stress::plan::discovery::Discovered::Broken { message, .. } => message,
            })
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        full_names(open),
        [
            "[perf] open_pairs::long::isl32_osl16_r2.5_n1",
            "[perf] open_pairs::long::isl32_osl16_r5_n1",
            "[perf] open_pairs::short::isl16_osl8_r2.5_n1",
            "[perf] open_pairs::short::isl16_osl8_r5_n1",
        ]
    );
    let questions = find("questions");
    assert_eq!(questions.ignore, Some("slow"));
    assert!(questions.expect_fail);
    assert_eq!(
        full_names(questions),
        ["[accuracy] questions::synthetic_arithmetic_n20"]
    );
}
