//! The embedded server's `/tokenize` (vLLM and llama.cpp forms), llama.cpp-native
//! `/completion` (streaming and not), and its routes on the simulator, against a real
//! listener.

use std::time::{Duration, Instant};

use llm_stress::case::EmbeddedSpec;
use llm_stress::server::embedded::EmbeddedServer;
use llm_stress::sim::config::{KvSpec, SimConfig};
use rstest::rstest;
use serde_json::{Value, json};

async fn server(spec: EmbeddedSpec) -> EmbeddedServer {
    EmbeddedServer::start(spec, "m".into(), 0)
        .await
        .expect("embedded server starts")
}

async fn post(server: &EmbeddedServer, path: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}{path}", server.base_url()))
        .json(body)
        .send()
        .await
        .expect("request answered")
}

/// The `data:` payloads of an SSE body, in order.
fn events(body: &str) -> Vec<&str> {
    body.split("\n\n")
        .filter_map(|event| event.trim().strip_prefix("data: "))
        .collect()
}

#[rstest]
#[case::vllm(json!({"model": "m", "prompt": "the cat  sat\non it", "add_special_tokens": false}))]
#[case::llama_cpp(json!({"content": "the cat  sat\non it", "add_special": false}))]
#[tokio::test]
async fn tokenize_counts_words_in_both_forms(#[case] body: Value) {
    let server = server(EmbeddedSpec::default()).await;
    let answer: Value = post(&server, "/tokenize", &body)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(answer["count"], 5);
    let tokens = answer["tokens"].as_array().expect("tokens");
    assert_eq!(tokens.len(), 5);
    assert!(tokens.iter().all(Value::is_u64));
    server.shutdown().await;
}

#[tokio::test]
async fn tokenize_agrees_with_the_prompt_tokens_of_completions() {
    let server = server(EmbeddedSpec::default()).await;
    let prompt = "one two three four five six seven";
    let tokenized: Value = post(&server, "/tokenize", &json!({"prompt": prompt}))
        .await
        .json()
        .await
        .expect("json");
    let completion: Value = post(
        &server,
        "/v1/completions",
        &json!({"model": "m", "prompt": prompt, "max_tokens": 1}),
    )
    .await
    .json()
    .await
    .expect("json");
    assert_eq!(tokenized["count"], completion["usage"]["prompt_tokens"]);
    let same: Value = post(&server, "/tokenize", &json!({"content": prompt}))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(same["tokens"], tokenized["tokens"]);
    server.shutdown().await;
}

#[rstest]
#[case::tokenize("/tokenize", "{\"content\": 3}", "`content`")]
#[case::tokenize_not_json("/tokenize", "{", "not valid JSON")]
#[case::completion("/completion", "{\"n_predict\": 3}", "`prompt` is required")]
#[case::completion_not_json("/completion", "\u{0}", "not valid JSON")]
#[tokio::test]
async fn bad_bodies_get_400_with_a_reason(
    #[case] path: &str,
    #[case] body: &'static str,
    #[case] reason: &str,
) {
    let server = server(EmbeddedSpec::default()).await;
    let response = reqwest::Client::new()
        .post(format!("{}{path}", server.base_url()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 400);
    let answer: Value = response.json().await.expect("json");
    let message = answer["error"]["message"].as_str().expect("message");
    assert!(message.contains(reason), "{message}");
    server.shutdown().await;
}

#[tokio::test]
async fn completion_without_streaming_answers_once_with_timings() {
    let spec = EmbeddedSpec {
        ttft_ms: 30.0,
        tpot_ms: 10.0,
        ..Default::default()
    };
    let server = server(spec).await;
    let start = Instant::now();
    let answer: Value = post(
        &server,
        "/completion",
        &json!({"prompt": "a b c d", "n_predict": 5, "temperature": 0, "cache_prompt": false}),
    )
    .await
    .json()
    .await
    .expect("json");
    assert!(start.elapsed() >= Duration::from_millis(70));
    assert_eq!(answer["content"], " tok0 tok1 tok2 tok3 tok4");
    assert_eq!(answer["stop"], true);
    assert_eq!(answer["tokens_predicted"], 5);
    assert_eq!(answer["tokens_evaluated"], 4);
    let timings = &answer["timings"];
    let ms = |key: &str| timings[key].as_f64().expect(key);
    assert!((ms("prompt_ms") - 30.0).abs() < 1e-6, "{timings}");
    assert!((ms("predicted_ms") - 40.0).abs() < 1e-6, "{timings}");
    assert!(
        (ms("predicted_per_token_ms") - 8.0).abs() < 1e-6,
        "{timings}"
    );
    server.shutdown().await;
}

#[rstest]
#[case::absent(json!({"prompt": "a"}), 16)]
#[case::minus_one(json!({"prompt": "a", "n_predict": -1}), 16)]
#[case::zero(json!({"prompt": "a", "n_predict": 0}), 0)]
#[case::alias(json!({"prompt": "a", "max_tokens": 3}), 3)]
#[tokio::test]
async fn n_predict_defaults_to_16(#[case] body: Value, #[case] predicted: u64) {
    let server = server(EmbeddedSpec {
        ttft_ms: 0.0,
        tpot_ms: 0.0,
        ..Default::default()
    })
    .await;
    let answer: Value = post(&server, "/completion", &body)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(answer["tokens_predicted"], predicted);
    let content = answer["content"].as_str().expect("content");
    assert_eq!(content.split_whitespace().count() as u64, predicted);
    server.shutdown().await;
}

#[tokio::test]
async fn completion_streams_chunks_then_a_stop_event_and_no_done() {
    let spec = EmbeddedSpec {
        ttft_ms: 30.0,
        tpot_ms: 10.0,
        tokens_per_chunk: 2,
        ..Default::default()
    };
    let server = server(spec).await;
    let start = Instant::now();
    let response = post(
        &server,
        "/completion",
        &json!({"prompt": "a b c", "n_predict": 5, "stream": true}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().expect("ascii"),
        "text/event-stream"
    );
    let body = response.text().await.expect("body");
    assert!(start.elapsed() >= Duration::from_millis(70));
    assert!(!body.contains("[DONE]"), "{body}");
    let events: Vec<Value> = events(&body)
        .into_iter()
        .map(|e| serde_json::from_str(e).expect("event is JSON"))
        .collect();
    let contents: Vec<&str> = events
        .iter()
        .filter_map(|e| e["content"].as_str())
        .collect();
    assert_eq!(contents, [" tok0 tok1", " tok2 tok3", " tok4", ""]);
    let (last, chunks) = events.split_last().expect("events");
    assert!(chunks.iter().all(|c| c["stop"] == false));
    assert_eq!(last["stop"], true);
    assert_eq!(last["tokens_predicted"], 5);
    assert_eq!(last["tokens_evaluated"], 3);
    assert!(last["timings"]["predicted_per_token_ms"].as_f64().is_some());
    server.shutdown().await;
}

#[tokio::test]
async fn on_the_simulator_a_request_too_long_for_the_kv_cache_gets_400_and_metrics_come_from_the_engine()
 {
    let sim = SimConfig {
        hardware: "cpu-2core".into(),
        model: "smollm2-135m".into(),
        kv: KvSpec {
            capacity_tokens: Some(256),
            ..KvSpec::default()
        },
        ..SimConfig::default()
    };
    let server = server(EmbeddedSpec {
        sim: Some(Box::new(sim)),
        ..EmbeddedSpec::default()
    })
    .await;
    let prompt = |words: usize| vec!["word"; words].join(" ");

    // 200 prompt + 100 output tokens can never fit 256 tokens of KV cache.
    let body = json!({"model": "m", "prompt": prompt(200), "max_tokens": 100, "stream": true});
    let response = post(&server, "/v1/completions", &body).await;
    assert_eq!(response.status(), 400);
    let answer: Value = response.json().await.expect("json");
    let message = answer["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("300 tokens") && message.contains("KV cache"),
        "{message}"
    );

    // One that fits streams all its tokens, paced by the engine (a prefill, then steps).
    let body = json!({"model": "m", "prompt": prompt(100), "max_tokens": 8, "stream": true});
    let started = Instant::now();
    let text = post(&server, "/v1/completions", &body)
        .await
        .text()
        .await
        .expect("body");
    let chunks = events(&text).iter().filter(|e| e.contains("tok")).count();
    assert_eq!(chunks, 8, "{text}");
    assert!(
        started.elapsed() > Duration::from_millis(40),
        "{:?}",
        started.elapsed()
    );

    let metrics = reqwest::get(format!("{}/metrics", server.base_url()))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for line in [
        "vllm:num_requests_running{model_name=\"m\"} 0",
        "vllm:generation_tokens_total{model_name=\"m\"} 8",
        "vllm:kv_cache_usage_perc{model_name=\"m\"} 0",
        "vllm:num_preemptions_total{model_name=\"m\"} 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
    server.shutdown().await;
}
