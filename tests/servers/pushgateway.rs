//! Pushing to a Prometheus Pushgateway, against a fake gateway on loopback: the method, the
//! grouping-key path, the content type and the exposition text it receives.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use llm_stress::report::analysis::Thresholds;
use llm_stress::report::pushgateway::{Gateway, PeriodicPush, exposition};

use crate::support::runs::{Spec, records, report};

/// One request the fake gateway received.
#[derive(Debug, Clone)]
struct Received {
    method: Method,
    path: String,
    content_type: String,
    body: String,
}

type Log = Arc<Mutex<Vec<Received>>>;

/// A gateway on 127.0.0.1 answering every request with `status` and `answer`, on a thread
/// and runtime of its own.
fn fake_gateway(status: StatusCode, answer: &'static str) -> (String, Log) {
    let log: Log = Arc::default();
    let (url_tx, url_rx) = std::sync::mpsc::channel();
    let state = Arc::clone(&log);
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let address = listener.local_addr().expect("address");
            url_tx.send(format!("http://{address}")).expect("send url");
            let app = Router::new()
                .fallback(
                    move |State(log): State<Log>,
                          method: Method,
                          uri: Uri,
                          headers: HeaderMap,
                          body: Bytes| async move {
                        let content_type = headers
                            .get("content-type")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string();
                        log.lock().expect("log").push(Received {
                            method,
                            path: uri.path().to_string(),
                            content_type,
                            body: String::from_utf8_lossy(&body).into_owned(),
                        });
                        (status, answer)
                    },
                )
                .with_state(state);
            axum::serve(listener, app).await.expect("serve");
        });
    });
    let url = url_rx.recv_timeout(Duration::from_secs(10)).expect("url");
    (url, log)
}

fn metrics() -> String {
    let specs = [
        Spec::perf("knee", 2),
        Spec {
            fail_every: 4,
            verdict: "FAIL",
            ..Spec::perf("flaky", 4)
        },
    ];
    let reports: Vec<_> = specs.iter().map(|s| report(s, &records(s))).collect();
    let refs: Vec<_> = reports.iter().collect();
    exposition(&refs, &Thresholds::default())
}

#[test]
fn a_push_puts_the_exposition_under_the_job_and_instance() {
    let (url, log) = fake_gateway(StatusCode::OK, "");
    let gateway = Gateway {
        url,
        job: "llm-stress".into(),
        instance: "ci/runner 1".into(),
    };
    let body = metrics();
    gateway.push_blocking(body.clone()).expect("pushed");
    let received = log.lock().expect("log").clone();
    assert_eq!(received.len(), 1);
    let push = &received[0];
    assert_eq!(push.method, Method::PUT);
    assert_eq!(
        push.path,
        "/metrics/job/llm-stress/instance@base64/Y2kvcnVubmVyIDE="
    );
    assert!(
        push.content_type.starts_with("text/plain; version=0.0.4"),
        "{}",
        push.content_type
    );
    assert_eq!(push.body, body);
    let base = "run_id=\"run-new\",kind=\"perf\",case=\"flaky\",\
                trial=\"flaky::isl128_osl64_c4_n40\"";
    for line in [
        format!("llm_stress_error_rate{{{base}}} 0.25"),
        format!("llm_stress_requests{{{base},outcome=\"failed\"}} 10"),
        format!("llm_stress_verdict{{{base},status=\"FAIL\"}} 1"),
        format!("llm_stress_analysis_level{{{base},check=\"error_rate\"}} 2"),
    ] {
        assert!(
            push.body.lines().any(|l| l == line),
            "{line} in\n{}",
            push.body
        );
    }
}

#[test]
fn the_exposition_is_well_formed() {
    let text = metrics();
    let sample = regex::Regex::new(
        r#"^([a-zA-Z_:][a-zA-Z0-9_:]*)\{([a-zA-Z_]\w*="(?:[^"\\]|\\.)*")(,[a-zA-Z_]\w*="(?:[^"\\]|\\.)*")*\} (NaN|[+-]Inf|-?[0-9.e+-]+)$"#,
    )
    .expect("regex");
    let mut declared = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("type line");
            assert_eq!(kind, "gauge");
            assert!(
                !declared.contains(&name.to_string()),
                "{name} declared twice"
            );
            declared.push(name.to_string());
        } else if !line.starts_with("# HELP ") {
            let captures = sample
                .captures(line)
                .unwrap_or_else(|| panic!("bad line {line}"));
            assert_eq!(
                declared.last().map(String::as_str),
                Some(&captures[1]),
                "{line} outside its family"
            );
        }
    }
    assert!(declared.len() >= 10, "{declared:?}");
}

#[test]
fn a_refusing_gateway_is_an_error_with_its_answer() {
    let (url, _log) = fake_gateway(
        StatusCode::BAD_REQUEST,
        "text format parsing error in line 3",
    );
    let gateway = Gateway {
        url: url.clone(),
        job: "j".into(),
        instance: "i".into(),
    };
    let error = gateway
        .push_blocking(metrics())
        .expect_err("refused")
        .to_string();
    assert!(
        error.contains(&format!("{url}/metrics/job/j/instance/i")),
        "{error}"
    );
    assert!(error.contains("400"), "{error}");
    assert!(error.contains("parsing error in line 3"), "{error}");
}

#[test]
fn an_unreachable_gateway_is_an_error_naming_it() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    drop(listener);
    let gateway = Gateway {
        url: url.clone(),
        job: "j".into(),
        instance: "i".into(),
    };
    let error = gateway
        .push_blocking(metrics())
        .expect_err("closed")
        .to_string();
    assert!(
        error.starts_with(&format!("pushgateway {url}/metrics/")),
        "{error}"
    );
}

#[test]
fn periodic_pushes_repeat_the_latest_metrics_and_end_with_the_last() {
    let (url, log) = fake_gateway(StatusCode::OK, "");
    let gateway = Gateway {
        url,
        job: "j".into(),
        instance: "i".into(),
    };
    let pusher = PeriodicPush::start(gateway, Duration::from_millis(50));
    pusher.update("first 1\n".into());
    std::thread::sleep(Duration::from_millis(400));
    pusher.finish("last 2\n".into()).expect("final push");
    let bodies: Vec<String> = log
        .lock()
        .expect("log")
        .iter()
        .map(|r| r.body.clone())
        .collect();
    assert!(bodies.len() >= 3, "{bodies:?}");
    assert_eq!(bodies.last().map(String::as_str), Some("last 2\n"));
    assert!(
        bodies[..bodies.len() - 1].iter().all(|b| b == "first 1\n"),
        "{bodies:?}"
    );
}
