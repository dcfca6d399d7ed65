//! OpenAI-compatible request bodies and streamed chunk shapes (`/v1/completions`,
//! `/v1/chat/completions`).

use serde::Deserialize;
use serde_json::{Value, json};

use super::Generation;
use crate::case::Api;

/// The path and JSON body of a streaming request that asks for usage and exactly
/// `max_tokens` tokens (`ignore_eos`), greedy.
pub fn request_body(api: Api, model: &str, request: &Generation) -> (&'static str, Value) {
    let common = json!({
        "model": model,
        "max_tokens": request.max_tokens,
        "stream": true,
        "stream_options": {"include_usage": true},
        "ignore_eos": true,
        "temperature": 0.0,
    });
    let (path, extra) = match api {
        Api::Chat => (
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": request.prompt}]}),
        ),
        Api::Completions => ("/v1/completions", json!({"prompt": request.prompt})),
    };
    let mut body = common;
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    (path, body)
}

/// One streamed chunk of either endpoint.
#[derive(Debug, Default, Deserialize)]
pub struct Chunk {
    /// Choices; empty on the final usage chunk.
    #[serde(default)]
    pub choices: Vec<Choice>,
    /// Token usage, on the final chunk when `include_usage` was asked for (and on every chunk
    /// for servers with continuous usage stats).
    #[serde(default)]
    pub usage: Option<Usage>,
    /// An error reported inside the stream.
    #[serde(default)]
    pub error: Option<Value>,
}

/// One choice of a chunk.
#[derive(Debug, Default, Deserialize)]
pub struct Choice {
    /// Completions: generated text.
    #[serde(default)]
    pub text: Option<String>,
    /// Chat: the delta.
    #[serde(default)]
    pub delta: Option<Delta>,
    /// Set on the last chunk of a choice.
    #[serde(default)]
    pub finish_reason: Option<String>,
}

/// A chat delta.
#[derive(Debug, Default, Deserialize)]
pub struct Delta {
    /// Generated text.
    #[serde(default)]
    pub content: Option<String>,
    /// Reasoning text (vLLM, SGLang).
    #[serde(default)]
    pub reasoning_content: Option<String>,
    /// Reasoning text (other servers).
    #[serde(default)]
    pub reasoning: Option<String>,
    /// Tool-call deltas.
    #[serde(default)]
    pub tool_calls: Option<Vec<Value>>,
}

/// Token usage.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    #[serde(default)]
    pub prompt_tokens: Option<u64>,
    /// Generated tokens.
    #[serde(default)]
    pub completion_tokens: Option<u64>,
}

impl Choice {
    /// Whether this choice carries generated content: text, reasoning or a tool call. A
    /// role-only delta is not a token.
    pub fn has_content(&self) -> bool {
        let non_empty = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.is_empty());
        non_empty(&self.text)
            || self.delta.as_ref().is_some_and(|d| {
                non_empty(&d.content)
                    || non_empty(&d.reasoning_content)
                    || non_empty(&d.reasoning)
                    || d.tool_calls.as_ref().is_some_and(|t| !t.is_empty())
            })
    }

    /// The generated text of this choice, if any.
    pub fn text(&self) -> &str {
        self.text
            .as_deref()
            .or_else(|| self.delta.as_ref().and_then(|d| d.content.as_deref()))
            .unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case(r#"{"choices":[{"delta":{"role":"assistant"}}]}"#, false)]
    #[case(r#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#, false)]
    #[case(r#"{"choices":[{"delta":{"content":"hi"}}]}"#, true)]
    #[case(r#"{"choices":[{"delta":{"reasoning_content":"hm"}}]}"#, true)]
    #[case(r#"{"choices":[{"delta":{"tool_calls":[{"index":0}]}}]}"#, true)]
    #[case(r#"{"choices":[{"text":" a","finish_reason":null}]}"#, true)]
    #[case(r#"{"choices":[],"usage":{"completion_tokens":3}}"#, false)]
    fn content_chunks_are_told_from_role_and_usage_chunks(
        #[case] json: &str,
        #[case] content: bool,
    ) {
        let chunk: Chunk = serde_json::from_str(json).expect("valid chunk");
        assert_eq!(chunk.choices.iter().any(Choice::has_content), content);
    }

    #[test]
    fn request_asks_for_usage_and_exact_length() {
        let (path, body) = request_body(
            Api::Chat,
            "m",
            &Generation {
                prompt: "p".into(),
                max_tokens: 7,
            },
        );
        assert_eq!(path, "/v1/chat/completions");
        assert_eq!(body["max_tokens"], 7);
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["ignore_eos"], true);
        assert_eq!(body["messages"][0]["content"], "p");
    }
}
