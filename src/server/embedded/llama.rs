//! llama.cpp-native shapes of the embedded server: `/completion` requests and answers, and
//! `/tokenize` (which also takes vLLM's form). Prompts are counted as on the OpenAI routes:
//! one token per whitespace-separated word.

use std::time::Duration;

use serde_json::{Value, json};

use super::answers::{Ask, Output};
use super::engine::Admission;
use super::protocol::DEFAULT_MAX_TOKENS;

/// A parsed `/completion` request.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// Prompt length: whitespace-separated words.
    pub prompt_tokens: u64,
    /// Tokens to generate: `n_predict` (or its alias `max_tokens`); absent or negative means
    /// the default, 16.
    pub n_predict: u32,
    /// Stream the answer as server-sent events.
    pub stream: bool,
    /// The question, `ignore_eos` and stop sequences, for answer mode.
    pub ask: Ask,
}

/// Reads a `/completion` body; the error is the message of a 400 answer. Fields other than
/// `prompt`, `n_predict`, `max_tokens` and `stream` are ignored.
pub fn parse_completion(body: &[u8]) -> Result<Completion, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not valid JSON: {e}"))?;
    let prompt = match &value["prompt"] {
        Value::String(s) => s.as_str(),
        Value::Array(items) => match items.first() {
            Some(Value::String(s)) => s.as_str(),
            _ => return Err("`prompt` must be a string or an array of strings".into()),
        },
        _ => return Err("`prompt` is required".into()),
    };
    let n_predict = ["n_predict", "max_tokens"]
        .iter()
        .find_map(|k| value[*k].as_i64())
        .and_then(|n| u64::try_from(n).ok())
        .map_or(DEFAULT_MAX_TOKENS, |n| u32::try_from(n).unwrap_or(u32::MAX));
    Ok(Completion {
        prompt_tokens: words(prompt),
        n_predict,
        stream: value["stream"].as_bool().unwrap_or(false),
        ask: Ask::from_body(&value, prompt.to_string()),
    })
}

/// Reads a `/tokenize` body (vLLM `{"prompt"}` or llama.cpp `{"content"}`) and answers
/// `{"count", "tokens"}` with one deterministic id per whitespace-separated word; the error
/// is the message of a 400 answer.
pub fn tokenize(body: &[u8]) -> Result<Value, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not valid JSON: {e}"))?;
    let text = ["prompt", "content"]
        .iter()
        .find_map(|k| value[*k].as_str())
        .ok_or("`prompt` (vLLM form) or `content` (llama.cpp form) must be a string")?;
    let tokens: Vec<u32> = text.split_whitespace().map(word_id).collect();
    Ok(json!({"count": tokens.len(), "tokens": tokens}))
}

/// A streamed chunk of generated text.
pub fn chunk(content: &str) -> Value {
    json!({"content": content, "stop": false})
}

/// The last event of a stream (empty `content`) or the whole non-streaming answer.
pub fn last(
    model: &str,
    content: &str,
    request: &Completion,
    output: &Output,
    admission: &Admission,
) -> Value {
    let stop_type = match output.finish_reason() {
        "stop" => "eos",
        _ => "limit",
    };
    json!({
        "content": content,
        "stop": true,
        "stop_type": stop_type,
        "model": model,
        "tokens_predicted": output.tokens(),
        "tokens_evaluated": request.prompt_tokens,
        "timings": timings(request.prompt_tokens, output.tokens(), admission),
    })
}

/// llama-server's `timings`, from the engine's schedule: prompt processing until the first
/// token is due, generation from the first to the last token, divided by the tokens made.
fn timings(prompt_tokens: u64, tokens: u32, admission: &Admission) -> Value {
    let n = tokens as usize;
    let due = |i: usize| admission.known_offset(i).unwrap_or_default();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (prompt_ms, predicted_ms) = match n {
        0 => (0.0, 0.0),
        _ => (ms(due(0)), ms(due(n - 1).saturating_sub(due(0)))),
    };
    let per_token = if n == 0 { 0.0 } else { predicted_ms / n as f64 };
    json!({
        "prompt_n": prompt_tokens,
        "prompt_ms": prompt_ms,
        "predicted_n": n,
        "predicted_ms": predicted_ms,
        "predicted_per_token_ms": per_token,
    })
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// A stable id for a word (FNV-1a, folded into a 32,000-entry vocabulary).
fn word_id(word: &str) -> u32 {
    let hash = word.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    hash % 32_000
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case(r#"{"prompt":"a b c","n_predict":5,"stream":true}"#, 3, 5, true)]
    #[case(
        r#"{"prompt":"a b","n_predict":-1,"temperature":0}"#,
        2,
        DEFAULT_MAX_TOKENS,
        false
    )]
    #[case(r#"{"prompt":["a"]}"#, 1, DEFAULT_MAX_TOKENS, false)]
    #[case(r#"{"prompt":"a","max_tokens":0}"#, 1, 0, false)]
    #[case(r#"{"prompt":"a","n_predict":"7"}"#, 1, DEFAULT_MAX_TOKENS, false)]
    fn completions_parse(
        #[case] body: &str,
        #[case] prompt_tokens: u64,
        #[case] n_predict: u32,
        #[case] stream: bool,
    ) {
        let parsed = parse_completion(body.as_bytes()).expect("valid");
        assert_eq!(
            (parsed.prompt_tokens, parsed.n_predict, parsed.stream),
            (prompt_tokens, n_predict, stream)
        );
    }

    #[rstest]
    #[case("[", "not valid JSON")]
    #[case("{}", "`prompt` is required")]
    #[case(r#"{"prompt":[1]}"#, "`prompt` must be")]
    fn bad_completions_say_why(#[case] body: &str, #[case] message: &str) {
        let error = parse_completion(body.as_bytes()).expect_err("invalid");
        assert!(error.contains(message), "{error}");
    }

    #[rstest]
    #[case(r#"{"model":"m","prompt":"a b  a"}"#)]
    #[case(r#"{"content":"a b a","add_special":false}"#)]
    fn both_tokenize_forms_count_words(#[case] body: &str) {
        let answer = tokenize(body.as_bytes()).expect("valid");
        assert_eq!(answer["count"], 3);
        assert_eq!(answer["tokens"][0], answer["tokens"][2]);
        assert_ne!(answer["tokens"][0], answer["tokens"][1]);
    }

    #[test]
    fn tokenize_needs_text() {
        let error = tokenize(br#"{"content":5}"#).expect_err("no text");
        assert!(error.contains("`content`"), "{error}");
    }
}
