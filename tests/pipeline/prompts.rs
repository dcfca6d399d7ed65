//! Prompts of exact token length (local tokenizer, words, server `/tokenize` in both forms),
//! datasets, and their errors. The tokenizer is the project's own fixture, trained here.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Json;
use axum::routing::post;
use llm_stress::case::{EmbeddedSpec, PromptSource, PromptSpec};
use llm_stress::prompts::{self, PromptError, TokenCounter, Wanted, exact_prompt, load_dataset};
use llm_stress::server::embedded::EmbeddedServer;
use rstest::rstest;
use serde_json::{Value, json};

use crate::support::Temp;

const ISLS: [u32; 7] = [1, 2, 7, 64, 128, 1000, 4096];

/// The fixture tokenizer, trained once per test process. Each process writes its own file and
/// renames it into place, so concurrent test processes never read a half-written file.
fn fixture_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).join("prompts-fixture");
        let path = folder.join("tokenizer.json");
        let mine = folder.join(format!("tokenizer.{}.json", std::process::id()));
        prompts::train_fixture_tokenizer(&mine).expect("fixture tokenizer trains");
        std::fs::rename(&mine, &path).expect("fixture tokenizer moves into place");
        path
    })
}

/// A counter over the fixture tokenizer, shared so its word pool is learnt once.
fn fixture_counter() -> &'static TokenCounter {
    static COUNTER: OnceLock<TokenCounter> = OnceLock::new();
    COUNTER.get_or_init(|| TokenCounter::from_file(fixture_path()).expect("fixture loads"))
}

/// Token ids of `text` per a freshly loaded fixture tokenizer.
fn fresh_ids(text: &str) -> Vec<u32> {
    let tokenizer = tokenizers::Tokenizer::from_file(fixture_path()).expect("fixture loads");
    tokenizer
        .encode(text, false)
        .expect("encodes")
        .get_ids()
        .to_vec()
}

fn temp_dir(name: &str) -> Temp {
    Temp::new(&format!("prompts-{name}"))
}

fn synthetic() -> PromptSpec {
    PromptSpec::default()
}

#[test]
fn fixture_training_is_deterministic() {
    let dir = temp_dir("determinism");
    let again = dir.join("tokenizer.json");
    prompts::train_fixture_tokenizer(&again).expect("trains");
    let a = std::fs::read(fixture_path()).expect("fixture");
    let b = std::fs::read(&again).expect("retrained");
    assert!(a == b, "two trainings differ");
    let vocab = tokenizers::Tokenizer::from_file(&again)
        .expect("loads")
        .get_vocab_size(true);
    assert!((1900..=2000).contains(&vocab), "vocabulary of {vocab}");
}

#[rstest]
#[tokio::test]
async fn tokenizer_prompts_have_exactly_isl_tokens(
    #[values(1, 2, 7, 64, 128, 1000, 4096)] isl: u32,
) {
    let text = exact_prompt(fixture_counter(), isl, 42, 7)
        .await
        .expect("exact prompt");
    assert_eq!(fresh_ids(&text).len(), isl as usize, "{text:?}");
}

#[rstest]
#[tokio::test]
async fn words_prompts_have_exactly_isl_words(#[values(1, 2, 7, 64, 128, 1000, 4096)] isl: u32) {
    let text = exact_prompt(&TokenCounter::words(), isl, 42, 7)
        .await
        .expect("exact prompt");
    assert_eq!(text.split_whitespace().count(), isl as usize);
}

#[tokio::test]
async fn prompts_are_reproducible_and_differ_from_the_first_token() {
    let counter = fixture_counter();
    let a = exact_prompt(counter, 64, 3, 0).await.expect("exact");
    assert_eq!(a, exact_prompt(counter, 64, 3, 0).await.expect("exact"));
    let mut firsts = HashSet::new();
    for index in 0..64 {
        let text = exact_prompt(counter, 64, 3, index).await.expect("exact");
        assert!(
            firsts.insert(fresh_ids(&text)[0]),
            "index {index} repeats a first token"
        );
    }
    let other_seed = exact_prompt(counter, 64, 4, 0).await.expect("exact");
    assert_ne!(a, other_seed);
}

#[tokio::test]
async fn five_hundred_prompts_are_distinct_and_exact() {
    let items = prompts::build(
        &synthetic(),
        Path::new("."),
        fixture_counter(),
        &Wanted {
            isl: 256,
            osl: 9,
            seed: 1,
            count: 500,
            index_base: 0,
        },
    )
    .await
    .expect("builds");
    assert_eq!(items.len(), 500);
    let distinct: HashSet<&str> = items.iter().map(|p| p.text.as_str()).collect();
    assert_eq!(distinct.len(), 500);
    for (index, item) in items.iter().enumerate().step_by(50) {
        assert_eq!(fresh_ids(&item.text).len(), 256);
        assert_eq!((item.isl, item.osl), (256, 9));
        let one = exact_prompt(fixture_counter(), 256, 1, index as u64).await;
        assert_eq!(
            item.text,
            one.expect("exact"),
            "build and exact_prompt agree"
        );
    }
    let warmup = prompts::build(
        &synthetic(),
        Path::new("."),
        fixture_counter(),
        &Wanted {
            isl: 256,
            osl: 9,
            seed: 1,
            count: 5,
            index_base: u64::MAX / 2,
        },
    )
    .await
    .expect("builds");
    assert!(warmup.iter().all(|w| !distinct.contains(w.text.as_str())));
}

/// Building many long prompts is fast with a local tokenizer. Run in release for the figure:
/// `cargo test --release --test prompts -- --ignored --nocapture build_speed`.
#[tokio::test]
#[ignore = "timing; run in release"]
async fn build_speed() {
    let counter = fixture_counter();
    exact_prompt(counter, 8, 0, 0).await.expect("pool learnt");
    let start = Instant::now();
    let items = prompts::build(
        &synthetic(),
        Path::new("."),
        counter,
        &Wanted {
            isl: 1024,
            osl: 1,
            seed: 1,
            count: 2000,
            index_base: 0,
        },
    )
    .await
    .expect("builds");
    let elapsed = start.elapsed();
    assert_eq!(items.len(), 2000);
    println!("2000 prompts of 1024 tokens: {elapsed:?}");
}

#[tokio::test]
async fn server_counter_uses_the_embedded_tokenize() {
    let server = EmbeddedServer::start(EmbeddedSpec::default(), "m".into(), 0)
        .await
        .expect("starts");
    let counter = TokenCounter::server(reqwest::Client::new(), &server.base_url(), "m");
    for isl in ISLS {
        let text = exact_prompt(&counter, isl, 5, 11).await.expect("exact");
        assert_eq!(text.split_whitespace().count(), isl as usize);
    }
    server.shutdown().await;
}

/// A llama.cpp-like `/tokenize` backed by the fixture tokenizer: the vLLM form gets the empty
/// list llama-server answers a body without `content` with.
struct LlamaLike {
    tokenizer: tokenizers::Tokenizer,
    vllm_form_requests: AtomicUsize,
}

async fn llama_tokenize(State(state): State<Arc<LlamaLike>>, body: Bytes) -> Json<Value> {
    let value: Value = serde_json::from_slice(&body).expect("json body");
    let Some(content) = value["content"].as_str() else {
        state.vllm_form_requests.fetch_add(1, Ordering::Relaxed);
        return Json(json!({"tokens": []}));
    };
    let ids = state
        .tokenizer
        .encode(content, false)
        .expect("encodes")
        .get_ids()
        .to_vec();
    Json(json!({"tokens": ids}))
}

#[tokio::test]
async fn server_counter_falls_back_to_the_llama_cpp_form() {
    let state = Arc::new(LlamaLike {
        tokenizer: tokenizers::Tokenizer::from_file(fixture_path()).expect("loads"),
        vllm_form_requests: AtomicUsize::new(0),
    });
    let app = Router::new()
        .route("/tokenize", post(llama_tokenize))
        .with_state(Arc::clone(&state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
    let serving = tokio::spawn(async move { axum::serve(listener, app).await });
    let counter = TokenCounter::server(reqwest::Client::new(), &url, "m");
    for isl in [1, 7, 128, 1000] {
        let text = exact_prompt(&counter, isl, 5, 11).await.expect("exact");
        assert_eq!(fresh_ids(&text).len(), isl as usize);
    }
    assert_eq!(state.vllm_form_requests.load(Ordering::Relaxed), 1);
    serving.abort();
}

#[tokio::test]
async fn an_unreachable_server_is_a_named_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    let counter = TokenCounter::server(reqwest::Client::new(), &url, "m");
    let error = counter.count("a b").await.expect_err("nobody listens");
    assert!(
        error.to_string().contains(&format!("{url}/tokenize")),
        "{error}"
    );
    let error = exact_prompt(&counter, 8, 0, 0).await.expect_err("no pool");
    assert!(matches!(error, PromptError::Server { .. }), "{error}");
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("writes");
    path
}

const JSONL: &str = r#"{"prompt": "one two three", "output_tokens": 5}

{"prompt": "four five", "id": 2}
{"prompt": "six seven eight nine", "output_tokens": 3}
"#;

fn sharegpt() -> String {
    let turn = |from: &str, value: &str| json!({"from": from, "value": value});
    json!([
        {"id": "a", "conversations": [turn("human", "why is the sky blue"), turn("gpt", "light scatters"), turn("human", "more"), turn("gpt", "no")]},
        {"id": "b", "conversations": [turn("gpt", "orphan reply")]},
        {"id": "c", "conversations": [turn("system", "be brief"), turn("human", "hi"), turn("gpt", "hello there friend")]},
        {"id": "d"},
        {"id": "e", "conversations": [turn("human", "last one"), turn("gpt", "ok")]},
    ])
    .to_string()
}

#[tokio::test]
async fn jsonl_gives_isl_and_osl_from_the_data() {
    let dir = temp_dir("jsonl");
    let path = write(&dir, "d.jsonl", JSONL.as_bytes());
    let words = TokenCounter::words();
    let entries = load_dataset(PromptSource::Jsonl, &path, &words, 64, 10)
        .await
        .expect("loads");
    let got: Vec<(u32, u32)> = entries.iter().map(|e| (e.isl, e.osl)).collect();
    assert_eq!(got, [(3, 5), (2, 64), (4, 3)]);
    assert_eq!(entries[1].prompt, "four five");
    let two = load_dataset(PromptSource::Jsonl, &path, &words, 64, 2)
        .await
        .expect("loads");
    assert_eq!(two.len(), 2);
    let tokenized = load_dataset(PromptSource::Jsonl, &path, fixture_counter(), 64, 10)
        .await
        .expect("loads");
    for entry in tokenized {
        assert_eq!(entry.isl as usize, fresh_ids(&entry.prompt).len());
    }
}

#[tokio::test]
async fn sharegpt_takes_the_first_human_turn_and_counts_the_reply() {
    let dir = temp_dir("sharegpt");
    let path = write(&dir, "s.json", sharegpt().as_bytes());
    let words = TokenCounter::words();
    let entries = load_dataset(PromptSource::Sharegpt, &path, &words, 64, 10)
        .await
        .expect("loads");
    let got: Vec<(&str, u32, u32)> = entries
        .iter()
        .map(|e| (e.prompt.as_str(), e.isl, e.osl))
        .collect();
    assert_eq!(
        got,
        [
            ("why is the sky blue", 5, 2),
            ("hi", 1, 3),
            ("last one", 2, 1)
        ]
    );
    let limited = load_dataset(PromptSource::Sharegpt, &path, &words, 64, 2)
        .await
        .expect("loads");
    assert_eq!(limited.len(), 2);
}

#[rstest]
#[case(PromptSource::Jsonl)]
#[case(PromptSource::Sharegpt)]
#[tokio::test]
async fn cycled_dataset_prompts_stay_unique(#[case] source: PromptSource) {
    let dir = temp_dir(&format!("cycle-{}", source.as_str()));
    let content = match source {
        PromptSource::Jsonl => JSONL.to_string(),
        _ => sharegpt(),
    };
    write(&dir, "data", content.as_bytes());
    let spec = PromptSpec {
        source,
        path: Some("data".into()),
        use_server_tokenizer: false,
        ..PromptSpec::default()
    };
    for counter in [TokenCounter::words(), fixture_counter().clone()] {
        let items = prompts::build(
            &spec,
            &dir,
            &counter,
            &Wanted {
                isl: 999,
                osl: 64,
                seed: 1,
                count: 10,
                index_base: 0,
            },
        )
        .await
        .expect("builds");
        assert_eq!(items.len(), 10);
        let distinct: HashSet<&str> = items.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(distinct.len(), 10);
        for item in &items {
            assert_eq!(Some(u64::from(item.isl)), counter.count_local(&item.text));
        }
        let warmup = prompts::build(
            &spec,
            &dir,
            &counter,
            &Wanted {
                isl: 999,
                osl: 64,
                seed: 1,
                count: 3,
                index_base: u64::MAX / 2,
            },
        )
        .await
        .expect("builds");
        assert!(warmup.iter().all(|w| !distinct.contains(w.text.as_str())));
        assert!(items[3].text.ends_with(&items[0].text));
        assert_eq!(items[3].osl, items[0].osl);
    }
}

#[tokio::test]
async fn a_bad_jsonl_line_is_named_with_file_and_line() {
    let dir = temp_dir("bad-line");
    let path = write(
        &dir,
        "bad.jsonl",
        b"{\"prompt\": \"fine\"}\n\n{\"prompt\": [\"not a string\"]}\n",
    );
    let error = load_dataset(PromptSource::Jsonl, &path, &TokenCounter::words(), 8, 10)
        .await
        .expect_err("line 3 is bad");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("{}:3: ", path.display())),
        "{message}"
    );
    assert!(message.contains("`prompt` must be a string"), "{message}");
}

#[rstest]
#[case(PromptSource::Jsonl)]
#[case(PromptSource::Sharegpt)]
#[tokio::test]
async fn a_missing_file_is_named(#[case] source: PromptSource) {
    let dir = temp_dir("missing");
    let path = dir.join("nope.json");
    let error = load_dataset(source, &path, &TokenCounter::words(), 8, 10)
        .await
        .expect_err("no file");
    assert!(matches!(error, PromptError::Io { .. }), "{error}");
    assert!(error.to_string().contains("nope.json"), "{error}");
}

#[rstest]
#[case::empty_jsonl(PromptSource::Jsonl, b"" as &[u8], "no usable entry")]
#[case::blank_jsonl(PromptSource::Jsonl, b"\n \n", "no usable entry")]
#[case::not_json(PromptSource::Jsonl, b"prompt: hi\n", ":1: not valid JSON")]
#[case::not_an_object(PromptSource::Jsonl, b"\"hi\"\n", "found a string")]
#[case::number_prompt(PromptSource::Jsonl, b"{\"prompt\": 3}\n", "found a number")]
#[case::bad_osl(
    PromptSource::Jsonl,
    b"{\"prompt\": \"a\", \"output_tokens\": -2}\n",
    "`output_tokens`"
)]
#[case::non_utf8_jsonl(PromptSource::Jsonl, b"{\"prompt\": \"\xff\xfe\"}\n", ":1: not UTF-8")]
#[case::empty_sharegpt(PromptSource::Sharegpt, b"", "not a ShareGPT JSON array")]
#[case::object_sharegpt(
    PromptSource::Sharegpt,
    b"{\"conversations\": []}",
    "not a ShareGPT JSON array"
)]
#[case::no_pairs(
    PromptSource::Sharegpt,
    b"[1, \"x\", {\"conversations\": 5}]",
    "no usable entry"
)]
#[case::non_utf8_sharegpt(
    PromptSource::Sharegpt,
    b"[{\"conversations\": [{\"from\": \"human\", \"value\": \"\xff\"}]}]",
    "not a ShareGPT JSON array"
)]
#[case::truncated(
    PromptSource::Sharegpt,
    b"[{\"conversations\": [",
    "not a ShareGPT JSON array"
)]
#[tokio::test]
async fn malformed_datasets_are_errors_not_panics(
    #[case] source: PromptSource,
    #[case] bytes: &[u8],
    #[case] expected: &str,
) {
    let dir = temp_dir("malformed");
    let path = write(
        &dir,
        &format!("{}-{}", source.as_str(), expected.len()),
        bytes,
    );
    let error = load_dataset(source, &path, &TokenCounter::words(), 8, 10)
        .await
        .expect_err("malformed");
    let message = error.to_string();
    assert!(message.contains(expected), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
}

#[tokio::test]
async fn a_dataset_source_needs_a_path() {
    let spec = PromptSpec {
        source: PromptSource::Jsonl,
        path: None,
        use_server_tokenizer: false,
        ..PromptSpec::default()
    };
    let error = prompts::build(
        &spec,
        Path::new("."),
        &TokenCounter::words(),
        &Wanted {
            isl: 8,
            osl: 8,
            seed: 0,
            count: 1,
            index_base: 0,
        },
    )
    .await
    .expect_err("no path");
    assert!(error.to_string().contains("prompts.path"), "{error}");
}
