//! No secret reaches an output file: a server that echoes the API key and a configured
//! header at every offset around the 512-byte excerpt cut, in error bodies, fails a whole
//! trial, and every file the run writes is searched for any piece of either.

use std::io::Write;

use crate::support::CaseDir;

const KEY: &str = "sk-Qz7pX4kLm2vRt9wYb3nHc8dJf5gKs1aE";
const TENANT: &str = "Tn7-Vq2w-Zx9c-Bm4k";

/// Answers the health check, then every generation request with a 401 whose body quotes the
/// request's `Authorization` and `X-Tenant` headers after `pad(n)` bytes (n counts requests).
fn echoing_server() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        let cut = llm_stress::client::BODY_EXCERPT_BYTES;
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { return };
            let Some(request) = crate::support::hostile::read_request(&mut stream) else {
                continue;
            };
            let text = String::from_utf8_lossy(&request).into_owned();
            let (status, body) = if text.starts_with("GET") {
                ("200 OK", r#"{"data":[{"id":"m"}]}"#.to_string())
            } else {
                let quoted: Vec<&str> = text
                    .lines()
                    .filter(|l| {
                        let l = l.to_ascii_lowercase();
                        l.starts_with("authorization:") || l.starts_with("x-tenant:")
                    })
                    .collect();
                let pad = "x".repeat(cut - 60 + n % 70);
                ("401 Unauthorized", format!("{pad}{}", quoted.join(" ")))
            };
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(response.as_bytes()).ok();
        }
    });
    url
}

/// Every file under `dir`, recursively.
fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn a_server_echoing_the_key_and_headers_leaves_no_piece_of_them_in_any_output_file() {
    let var = "LLM_STRESS_TEST_ECHO_KEY";
    // SAFETY: set before the trial reads it; the name is this test's own.
    unsafe {
        std::env::set_var(var, KEY);
    }
    let dir = CaseDir::named("secrets");
    let plan = dir
        .model("m", "name: m\nmax_context: 256\nmax_concurrency: 2\n")
        .case(
            "c",
            &format!(
                "name: c\nmodel: m\nkinds: [perf]\nclient: {{ api_key_env: {var}, headers: {{ X-Tenant: {TENANT} }} }}\n\
                 load: {{ warmup: 0 }}\nmatrix: {{ mode: custom, isl: [16], osl: [8], concurrency: [1], prompts: {{ fixed: 70 }} }}\n"
            ),
        )
        .plan();
    let context = crate::support::context("secrets", dir.out(), Some(echoing_server()));
    let session =
        crate::support::session(context).with_sink(llm_stress::session::sinks::Publisher::new(
            llm_stress::report::analysis::Thresholds::default(),
            None,
            None,
        ));
    let outcome = session.run_trial(&plan).expect("reports written");
    session.finish().expect("the run finishes");
    let summary = outcome.report.summary().expect("a load trial");
    assert_eq!(summary.requests_failed, 70, "{:?}", summary.errors);
    let written = files(&dir.out());
    assert!(written.len() >= 4, "{written:?}");
    let mut found = Vec::new();
    for path in &written {
        let text = String::from_utf8_lossy(&std::fs::read(path).expect("read")).into_owned();
        for secret in [KEY, TENANT] {
            // Any 8 characters in a row of either is a leak.
            for i in 0..=secret.len() - 8 {
                if text.contains(&secret[i..i + 8]) {
                    found.push(format!("{}: {}", path.display(), &secret[i..i + 8]));
                }
            }
        }
    }
    assert!(found.is_empty(), "{found:#?}");
    // The evidence is still there, redacted.
    let records = std::fs::read_to_string(outcome.dir.join("records.jsonl")).expect("records");
    assert!(records.contains("[REDACTED]"), "{records}");
}
