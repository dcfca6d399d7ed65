//! Request bodies and streamed chunk shapes of the OpenAI endpoints (`/v1/completions`,
//! `/v1/chat/completions`) and llama.cpp's native `/completion`.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use smallvec::SmallVec;

use super::{Ending, Generation};
use crate::case::Api;
use crate::metrics::ServerTiming;

/// The path and JSON body of a request: greedy, asking for usage when streaming, and either
/// for exactly `max_tokens` tokens (`ignore_eos`) or ending at the request's stop sequences.
pub fn request_body(
    api: Api,
    model: &str,
    request: &Generation,
    stream: bool,
) -> (&'static str, Value) {
    let (path, mut body) = match api {
        Api::LlamaCpp => (
            "/completion",
            json!({
                "prompt": request.prompt,
                "n_predict": request.max_tokens,
                "stream": stream,
                "temperature": 0.0,
                "cache_prompt": false,
            }),
        ),
        Api::Chat => {
            let messages: Vec<Value> = if request.turns.is_empty() {
                vec![json!({"role": "user", "content": request.prompt})]
            } else {
                request
                    .turns
                    .iter()
                    .map(|t| json!({"role": t.role.as_str(), "content": t.content}))
                    .collect()
            };
            let mut body = json!({"messages": messages});
            if let Some(tools) = &request.tools {
                body["tools"] = tools.tools.clone();
                body["tool_choice"] = tools.tool_choice.clone();
            }
            ("/v1/chat/completions", body)
        }
        Api::Completions => ("/v1/completions", json!({"prompt": request.prompt})),
    };
    match &request.ending {
        Ending::Exact => body["ignore_eos"] = json!(true),
        Ending::Natural { stop } if !stop.is_empty() => body["stop"] = json!(stop),
        Ending::Natural { .. } => {}
    }
    if api == Api::LlamaCpp {
        return (path, body);
    }
    body["model"] = json!(model);
    body["max_tokens"] = json!(request.max_tokens);
    body["stream"] = json!(stream);
    body["temperature"] = json!(0.0);
    if stream {
        body["stream_options"] = json!({"include_usage": true});
    }
    (path, body)
}

/// One streamed chunk (or a whole non-streamed response) of any of the three endpoints.
///
/// Text fields borrow from the event's bytes when they hold no escapes, and the usual one
/// choice is held inline, so parsing a chunk allocates nothing.
#[derive(Debug, Default, Deserialize)]
pub struct Chunk<'a> {
    /// llama.cpp: generated text of this chunk.
    #[serde(default, borrow, deserialize_with = "borrowed_text")]
    pub content: Option<Cow<'a, str>>,
    /// llama.cpp: true on the last chunk.
    #[serde(default)]
    pub stop: Option<bool>,
    /// llama.cpp: output tokens, on the last chunk.
    #[serde(default)]
    pub tokens_predicted: Option<u64>,
    /// llama.cpp: prompt tokens evaluated, on the last chunk.
    #[serde(default)]
    pub tokens_evaluated: Option<u64>,
    /// Choices; empty on the final usage chunk.
    #[serde(default, borrow)]
    pub choices: SmallVec<[Choice<'a>; 1]>,
    /// Token usage, on the final chunk when `include_usage` was asked for (and on every chunk
    /// for servers with continuous usage stats).
    #[serde(default)]
    pub usage: Option<Usage>,
    /// An error reported inside the stream (boxed, as the timings: fields that are rarely
    /// there keep every chunk small to move).
    #[serde(default)]
    pub error: Option<Box<Value>>,
    /// llama-server: its own timings of the request, on the last chunk (all endpoints).
    #[serde(default, deserialize_with = "lenient_timings")]
    pub timings: Option<Box<ServerTiming>>,
}

/// Timings in llama-server's shape, else `None`: another server's field of the same name must
/// not make the chunk unreadable.
fn lenient_timings<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Box<ServerTiming>>, D::Error> {
    let value = Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).ok().map(Box::new))
}

impl Chunk<'_> {
    /// Whether this chunk carries generated content.
    pub fn has_content(&self) -> bool {
        self.content.as_deref().is_some_and(|c| !c.is_empty())
            || self.choices.iter().any(Choice::has_content)
    }

    /// Bytes of generated text in this chunk.
    pub fn text_len(&self) -> usize {
        self.content.as_deref().map_or(0, str::len)
            + self.choices.iter().map(|c| c.text().len()).sum::<usize>()
    }

    /// Appends this chunk's generated text to `out`.
    pub fn push_text(&self, out: &mut String) {
        if let Some(content) = &self.content {
            out.push_str(content);
        }
        for choice in &self.choices {
            out.push_str(choice.text());
        }
    }

    /// Whether this chunk ends the generation (a finish reason, or llama.cpp's `stop`).
    pub fn is_final(&self) -> bool {
        self.stop == Some(true) || self.choices.iter().any(|c| c.finish_reason.is_some())
    }

    /// Token usage, from OpenAI's `usage` or llama.cpp's counters.
    pub fn usage(&self) -> Option<Usage> {
        self.usage.or_else(|| {
            (self.tokens_predicted.is_some() || self.tokens_evaluated.is_some()).then_some(Usage {
                prompt_tokens: self.tokens_evaluated,
                completion_tokens: self.tokens_predicted,
                prompt_tokens_details: None,
            })
        })
    }
}

/// One choice of a chunk.
#[derive(Debug, Default, Deserialize)]
pub struct Choice<'a> {
    /// Completions: generated text.
    #[serde(default, borrow, deserialize_with = "borrowed_text")]
    pub text: Option<Cow<'a, str>>,
    /// Chat: the delta (streamed) or the whole message (not streamed).
    #[serde(default, borrow, alias = "message")]
    pub delta: Option<Delta<'a>>,
    /// Set on the last chunk of a choice (whatever the reason: only its presence is kept).
    #[serde(default)]
    pub finish_reason: Option<IgnoredAny>,
}

/// A chat delta.
#[derive(Debug, Default, Deserialize)]
pub struct Delta<'a> {
    /// Generated text.
    #[serde(default, borrow, deserialize_with = "borrowed_text")]
    pub content: Option<Cow<'a, str>>,
    /// Reasoning text (vLLM, SGLang): whether there was any (it is not kept).
    #[serde(default)]
    pub reasoning_content: Option<NonEmpty>,
    /// Reasoning text (other servers): whether there was any.
    #[serde(default)]
    pub reasoning: Option<NonEmpty>,
    /// Tool-call deltas.
    #[serde(default)]
    pub tool_calls: Option<Vec<Value>>,
}

/// Whether a string was non-empty, read without keeping it: a field the client only asks
/// that of stays one byte in a chunk that is moved several times while it is parsed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NonEmpty(pub bool);

impl<'de> Deserialize<'de> for NonEmpty {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<NonEmpty, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = NonEmpty;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<NonEmpty, E> {
                Ok(NonEmpty(!text.is_empty()))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// A text field, borrowed from the event's bytes when it holds no escapes. serde's own
/// `Option<Cow<str>>` never borrows (it always allocates a `String`): one allocation and copy
/// per streamed chunk.
fn borrowed_text<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Cow<'de, str>>, D::Error> {
    struct Text;
    impl<'de> serde::de::Visitor<'de> for Text {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string or null")
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, inner: D) -> Result<Self::Value, D::Error> {
            inner.deserialize_str(self)
        }
        fn visit_borrowed_str<E: serde::de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Borrowed(text)))
        }
        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(text.to_owned())))
        }
        fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(text)))
        }
    }
    deserializer.deserialize_option(Text)
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
    /// Details of the prompt tokens (OpenAI; vLLM, SGLang and llama-server fill
    /// `cached_tokens`).
    #[serde(default)]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
}

/// `usage.prompt_tokens_details`.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
pub struct PromptTokensDetails {
    /// Prompt tokens the server took from its prefix cache.
    #[serde(default)]
    pub cached_tokens: Option<u64>,
}

impl Choice<'_> {
    /// Whether this choice carries generated content: text, reasoning or a tool call. A
    /// role-only delta is not a token.
    pub fn has_content(&self) -> bool {
        let non_empty = |s: &Option<Cow<'_, str>>| s.as_deref().is_some_and(|s| !s.is_empty());
        let said = |s: &Option<NonEmpty>| s.is_some_and(|s| s.0);
        non_empty(&self.text)
            || self.delta.iter().any(|d| {
                non_empty(&d.content)
                    || said(&d.reasoning_content)
                    || said(&d.reasoning)
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
    use crate::client::{Role, Turn};

    #[rstest]
    #[case(r#"{"choices":[{"delta":{"role":"assistant"}}]}"#, false)]
    #[case(r#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#, false)]
    #[case(r#"{"choices":[{"delta":{"content":"hi"}}]}"#, true)]
    #[case(r#"{"choices":[{"delta":{"reasoning_content":"hm"}}]}"#, true)]
    #[case(r#"{"choices":[{"delta":{"reasoning":"h\u00e9"}}]}"#, true)]
    #[case(
        r#"{"choices":[{"delta":{"reasoning_content":"","reasoning":null}}]}"#,
        false
    )]
    #[case(r#"{"choices":[{"delta":{"tool_calls":[{"index":0}]}}]}"#, true)]
    #[case(r#"{"choices":[{"text":" a","finish_reason":null}]}"#, true)]
    #[case(r#"{"choices":[],"usage":{"completion_tokens":3}}"#, false)]
    #[case(r#"{"content":" x","stop":false}"#, true)]
    #[case(r#"{"content":"","stop":true,"tokens_predicted":4}"#, false)]
    #[case(
        r#"{"choices":[{"message":{"role":"assistant","content":"4"}}]}"#,
        true
    )]
    fn content_chunks_are_told_from_role_and_usage_chunks(
        #[case] json: &str,
        #[case] content: bool,
    ) {
        let chunk: Chunk = serde_json::from_str(json).expect("valid chunk");
        assert_eq!(chunk.has_content(), content);
    }

    #[rstest]
    #[case::completions(r#"{"choices":[{"text":" tok"}]}"#, " tok", true)]
    #[case::chat(r#"{"choices":[{"delta":{"content":" tok"}}]}"#, " tok", true)]
    #[case::llama_cpp(r#"{"content":" tok"}"#, " tok", true)]
    #[case::escaped(r#"{"choices":[{"text":"a\nb"}]}"#, "a\nb", false)]
    #[case::unicode_escape(r#"{"content":"\u00e9"}"#, "\u{e9}", false)]
    fn text_is_borrowed_from_the_event_unless_it_holds_escapes(
        #[case] event: &str,
        #[case] text: &str,
        #[case] borrowed: bool,
    ) {
        let chunk: Chunk<'_> = serde_json::from_str(event).unwrap();
        let field = chunk.content.as_ref().or_else(|| {
            let choice = chunk.choices.first()?;
            let delta = || choice.delta.as_ref()?.content.as_ref();
            choice.text.as_ref().or_else(delta)
        });
        let field = field.expect("a text field");
        assert_eq!(field.as_ref(), text);
        assert_eq!(matches!(field, Cow::Borrowed(_)), borrowed, "{event}");
    }

    #[rstest]
    #[case::null(r#"{"choices":[{"text":null,"delta":{"content":null}}],"content":null}"#)]
    #[case::absent(r#"{"choices":[{}]}"#)]
    fn absent_or_null_text_is_none(#[case] event: &str) {
        let chunk: Chunk<'_> = serde_json::from_str(event).unwrap();
        assert!(chunk.content.is_none());
        let choice = &chunk.choices[0];
        assert!(choice.text.is_none());
        assert!(choice.delta.as_ref().is_none_or(|d| d.content.is_none()));
        assert!(!chunk.has_content());
    }

    #[test]
    fn request_asks_for_usage_and_exact_length() {
        let (path, body) = request_body(Api::Chat, "m", &Generation::exact("p".into(), 7), true);
        assert_eq!(path, "/v1/chat/completions");
        assert_eq!(body["max_tokens"], 7);
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["ignore_eos"], true);
        assert_eq!(body["messages"][0]["content"], "p");
    }

    #[rstest]
    #[case(Api::Chat)]
    #[case(Api::Completions)]
    #[case(Api::LlamaCpp)]
    fn answers_stop_where_the_model_stops(#[case] api: Api) {
        let request = Generation {
            prompt: "Question: 1+1?\nAnswer:".into(),
            turns: vec![
                Turn {
                    role: Role::User,
                    content: "Question: 2+2?\nAnswer:".into(),
                },
                Turn {
                    role: Role::Assistant,
                    content: "4".into(),
                },
            ],
            max_tokens: 256,
            ending: Ending::Natural {
                stop: vec!["Question:".into()],
            },
            keep_text: true,
            tools: None,
        };
        let (_, body) = request_body(api, "m", &request, false);
        assert!(body.get("ignore_eos").is_none(), "{body}");
        assert_eq!(body["stop"], json!(["Question:"]));
        assert_eq!(body["temperature"], 0.0);
        match api {
            Api::Chat => {
                assert_eq!(body["messages"][1]["role"], "assistant");
                assert_eq!(body["messages"].as_array().map(Vec::len), Some(2));
            }
            Api::Completions | Api::LlamaCpp => {
                assert_eq!(body["prompt"], "Question: 1+1?\nAnswer:");
            }
        }
    }

    #[rstest]
    #[case(r#"{"prompt_n":3,"prompt_ms":1.5}"#, Some(1.5))]
    #[case(r#"{"prompt_n":"three"}"#, None)]
    #[case(r#""fast""#, None)]
    fn timings_of_another_shape_are_dropped_not_fatal(
        #[case] timings: &str,
        #[case] prompt_ms: Option<f64>,
    ) {
        let json = format!(r#"{{"content":" x","stop":true,"timings":{timings}}}"#);
        let chunk: Chunk = serde_json::from_str(&json).expect("the chunk still parses");
        assert!(chunk.has_content());
        assert_eq!(chunk.timings.and_then(|t| t.prompt_ms), prompt_ms);
    }

    #[test]
    fn chat_requests_carry_their_tools() {
        let mut request = Generation::exact("p".into(), 5);
        request.tools = Some(std::sync::Arc::new(super::super::ToolRequest {
            tools: json!([{"type": "function", "function": {"name": "f"}}]),
            tool_choice: json!("required"),
        }));
        let (_, body) = request_body(Api::Chat, "m", &request, true);
        assert_eq!(body["tools"][0]["function"]["name"], "f");
        assert_eq!(body["tool_choice"], "required");
        let (_, body) = request_body(Api::Completions, "m", &request, true);
        assert!(body.get("tools").is_none(), "{body}");
    }

    #[test]
    fn llama_cpp_native_body_and_final_chunk() {
        let request = Generation::exact("p".into(), 5);
        let (path, body) = request_body(Api::LlamaCpp, "m", &request, true);
        assert_eq!(path, "/completion");
        assert_eq!(body["n_predict"], 5);
        assert_eq!(body["ignore_eos"], true);
        assert_eq!(body["stream"], true);
        let last: Chunk = serde_json::from_str(
            r#"{"content":"","stop":true,"tokens_predicted":5,"tokens_evaluated":9,"timings":{}}"#,
        )
        .expect("valid chunk");
        assert!(last.is_final());
        let usage = last.usage().expect("usage");
        assert_eq!(
            (usage.prompt_tokens, usage.completion_tokens),
            (Some(9), Some(5))
        );
    }
}
