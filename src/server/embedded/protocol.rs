//! OpenAI request parsing and response shapes of the embedded server.

use serde_json::{Value, json};

use super::answers::{Ask, Output};

/// Which endpoint a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v1/completions`
    Completions,
    /// `/v1/chat/completions`
    Chat,
}

/// A parsed generation request.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// Prompt length: whitespace-separated words (plus 4 per chat message).
    pub prompt_tokens: u64,
    /// Tokens to generate (`max_tokens`, default 16).
    pub max_tokens: u32,
    /// Stream the answer as server-sent events.
    pub stream: bool,
    /// Send a final usage chunk when streaming.
    pub include_usage: bool,
    /// The question, `ignore_eos` and stop sequences, for answer mode.
    pub ask: Ask,
    /// The whole prompt as the prefix cache sees it: the prompt, or every message's content
    /// of a chat in order (a conversation's history is its cached prefix).
    pub prompt_text: String,
    /// Completions: `echo` with a number of `logprobs` (lm-eval's loglikelihood request).
    pub echo_logprobs: bool,
}

/// Tokens generated when the request does not say.
pub const DEFAULT_MAX_TOKENS: u32 = 16;

/// Reads a request body; the error is the message of a 400 answer.
pub fn parse(endpoint: Endpoint, body: &[u8]) -> Result<Parsed, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not valid JSON: {e}"))?;
    let words = |text: &str| text.split_whitespace().count() as u64;
    let (prompt_tokens, query, prompt_text) = match endpoint {
        Endpoint::Completions => match &value["prompt"] {
            Value::String(s) => (words(s), s.clone(), s.clone()),
            Value::Array(items) => match items.first() {
                Some(Value::String(s)) => (words(s), s.clone(), s.clone()),
                _ => return Err("`prompt` must be a string or an array of strings".into()),
            },
            _ => return Err("`prompt` is required".into()),
        },
        Endpoint::Chat => {
            let messages = value["messages"]
                .as_array()
                .filter(|m| !m.is_empty())
                .ok_or("`messages` must be a non-empty array")?;
            let tokens = messages
                .iter()
                .map(|m| m["content"].as_str().map_or(0, words) + 4)
                .sum();
            let last_user = messages
                .iter()
                .rev()
                .find(|m| m["role"] == "user")
                .and_then(|m| m["content"].as_str())
                .unwrap_or_default();
            let whole = messages
                .iter()
                .filter_map(|m| m["content"].as_str())
                .collect::<Vec<_>>()
                .join(" ");
            (tokens, last_user.to_string(), whole)
        }
    };
    let max_tokens = ["max_tokens", "max_completion_tokens"]
        .iter()
        .find_map(|k| value[*k].as_u64())
        .map_or(DEFAULT_MAX_TOKENS, |n| u32::try_from(n).unwrap_or(u32::MAX));
    Ok(Parsed {
        prompt_tokens,
        max_tokens,
        stream: value["stream"].as_bool().unwrap_or(false),
        include_usage: value["stream_options"]["include_usage"]
            .as_bool()
            .unwrap_or(false),
        ask: Ask::from_body(&value, query),
        prompt_text,
        echo_logprobs: endpoint == Endpoint::Completions
            && value["echo"].as_bool() == Some(true)
            && value["logprobs"].is_u64(),
    })
}

/// The text of tokens `from..to`: one word per token.
pub fn token_text(from: usize, to: usize) -> String {
    (from..to).map(|i| format!(" tok{i}")).collect()
}

/// An OpenAI-style error body.
pub fn error_body(message: &str) -> Value {
    json!({"error": {"message": message, "type": "invalid_request_error"}})
}

/// Builds the JSON of responses for one request.
#[derive(Debug, Clone)]
pub struct Responder {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// Response id.
    pub id: String,
    /// Model name.
    pub model: String,
    /// Unix seconds.
    pub created: u64,
}

impl Responder {
    fn object(&self, streaming: bool) -> &'static str {
        match (self.endpoint, streaming) {
            (Endpoint::Completions, _) => "text_completion",
            (Endpoint::Chat, true) => "chat.completion.chunk",
            (Endpoint::Chat, false) => "chat.completion",
        }
    }

    fn envelope(&self, streaming: bool, choices: Value) -> Value {
        json!({
            "id": self.id,
            "object": self.object(streaming),
            "created": self.created,
            "model": self.model,
            "choices": choices,
        })
    }

    /// The role-only first chunk of a chat stream (carries no token).
    pub fn role_chunk(&self) -> Value {
        self.envelope(
            true,
            json!([{"index": 0, "delta": {"role": "assistant"}, "finish_reason": null}]),
        )
    }

    /// A content chunk; the last one carries the finish reason.
    pub fn content_chunk(&self, text: &str, finish: Option<&str>) -> Value {
        let choice = match self.endpoint {
            Endpoint::Completions => {
                json!({"index": 0, "text": text, "logprobs": null, "finish_reason": finish})
            }
            Endpoint::Chat => {
                json!({"index": 0, "delta": {"content": text}, "finish_reason": finish})
            }
        };
        self.envelope(true, json!([choice]))
    }

    /// A chat chunk of a tool call: the call's id, type and name in the first, argument
    /// fragments after (see [`Output::tool_part`]); the last one carries the finish reason,
    /// `tool_calls` for a whole call.
    pub fn tool_chunk(&self, output: &Output, from: usize, to: usize, last: bool) -> Value {
        let (name, arguments) = output.tool_part(from, to).unwrap_or_default();
        let mut call = json!({"index": 0, "function": {"arguments": arguments}});
        if let Some(name) = name {
            call["id"] = json!(format!("call-{}", self.id));
            call["type"] = json!("function");
            call["function"]["name"] = json!(name);
        }
        let finish = last.then(|| tool_finish(output));
        self.envelope(
            true,
            json!([{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": finish}]),
        )
    }

    /// A complete non-streaming chat answer whose reply is one tool call.
    pub fn full_tool_call(&self, prompt_tokens: u64, output: &Output) -> Value {
        let tokens = output.tokens();
        let (name, arguments) = output.tool_part(0, tokens as usize).unwrap_or_default();
        let call = json!({"id": format!("call-{}", self.id), "type": "function",
                          "function": {"name": name.unwrap_or_default(), "arguments": arguments}});
        let choice = json!({
            "index": 0,
            "message": {"role": "assistant", "content": null, "tool_calls": [call]},
            "finish_reason": tool_finish(output),
        });
        let mut body = self.envelope(false, json!([choice]));
        body["usage"] = usage(prompt_tokens, tokens);
        body
    }

    /// The final usage chunk of a stream.
    pub fn usage_chunk(&self, prompt_tokens: u64, completion_tokens: u32) -> Value {
        let mut chunk = self.envelope(true, json!([]));
        chunk["usage"] = usage(prompt_tokens, completion_tokens);
        chunk
    }

    /// A complete non-streaming completions response that echoes the prompt before the
    /// generated text, with `logprobs` (see the `logprobs` module).
    pub fn full_echo(
        &self,
        prompt: &str,
        prompt_tokens: u64,
        output: &Output,
        logprobs: Value,
    ) -> Value {
        let completion_tokens = output.tokens();
        let text = format!("{prompt}{}", output.text(0, completion_tokens as usize));
        let choice = json!({"index": 0, "text": text, "logprobs": logprobs,
                            "finish_reason": output.finish_reason()});
        let mut body = self.envelope(false, json!([choice]));
        body["usage"] = usage(prompt_tokens, completion_tokens);
        body
    }

    /// A complete non-streaming response.
    pub fn full(&self, prompt_tokens: u64, output: &Output) -> Value {
        let completion_tokens = output.tokens();
        let text = output.text(0, completion_tokens as usize);
        let finish = output.finish_reason();
        let choice = match self.endpoint {
            Endpoint::Completions => {
                json!({"index": 0, "text": text, "logprobs": null, "finish_reason": finish})
            }
            Endpoint::Chat => json!({
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish,
            }),
        };
        let mut body = self.envelope(false, json!([choice]));
        body["usage"] = usage(prompt_tokens, completion_tokens);
        body
    }
}

/// `tool_calls` for a whole call, `length` for one cut at `max_tokens`.
fn tool_finish(output: &Output) -> &'static str {
    match output.finish_reason() {
        "stop" => "tool_calls",
        other => other,
    }
}

fn usage(prompt_tokens: u64, completion_tokens: u32) -> Value {
    json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + u64::from(completion_tokens),
    })
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case(
        Endpoint::Completions,
        r#"{"prompt":"a b c","max_tokens":5,"stream":true}"#,
        3,
        5,
        true
    )]
    #[case(
        Endpoint::Completions,
        r#"{"prompt":["a b"]}"#,
        2,
        DEFAULT_MAX_TOKENS,
        false
    )]
    #[case(
        Endpoint::Chat,
        r#"{"messages":[{"role":"user","content":"a b"}],"max_completion_tokens":7}"#,
        6,
        7,
        false
    )]
    fn requests_parse(
        #[case] endpoint: Endpoint,
        #[case] body: &str,
        #[case] prompt_tokens: u64,
        #[case] max_tokens: u32,
        #[case] stream: bool,
    ) {
        let parsed = parse(endpoint, body.as_bytes()).expect("valid");
        assert_eq!(
            (parsed.prompt_tokens, parsed.max_tokens, parsed.stream),
            (prompt_tokens, max_tokens, stream)
        );
    }

    #[rstest]
    #[case(Endpoint::Completions, "{", "not valid JSON")]
    #[case(Endpoint::Completions, "{}", "`prompt` is required")]
    #[case(Endpoint::Chat, r#"{"messages":[]}"#, "`messages`")]
    #[case(Endpoint::Completions, r#"{"prompt":[1]}"#, "`prompt` must be")]
    fn bad_requests_say_why(#[case] endpoint: Endpoint, #[case] body: &str, #[case] message: &str) {
        let error = parse(endpoint, body.as_bytes()).expect_err("invalid");
        assert!(error.contains(message), "{error}");
    }

    #[rstest]
    #[case::lm_eval(r#"{"prompt":"a","echo":true,"logprobs":1,"max_tokens":1}"#, true)]
    #[case::no_echo(r#"{"prompt":"a","logprobs":1}"#, false)]
    #[case::no_logprobs(r#"{"prompt":"a","echo":true}"#, false)]
    #[case::chat_logprobs(r#"{"prompt":"a","echo":true,"logprobs":true}"#, false)]
    fn echo_with_logprobs_is_read(#[case] body: &str, #[case] echo_logprobs: bool) {
        let parsed = parse(Endpoint::Completions, body.as_bytes()).expect("valid");
        assert_eq!(parsed.echo_logprobs, echo_logprobs);
    }

    #[test]
    fn each_token_is_one_word() {
        assert_eq!(token_text(2, 5), " tok2 tok3 tok4");
    }
}
