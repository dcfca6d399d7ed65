//! One record per request, written as it completes.

use serde::{Deserialize, Serialize};

use super::server_timing::ServerTiming;

/// How a conversation ended, on the record of its last turn sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionEnd {
    /// Every turn it was to have was answered.
    Completed,
    /// Its next turn would not have fitted the model's context (`max_context`): it ended
    /// cleanly, not a failure.
    ContextFull,
    /// A turn failed (no answer to carry on with).
    Failed,
    /// The load's duration, request count or time limit ended it early.
    Cut,
}

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The connection could not be made.
    Connect,
    /// The request ran past its timeout.
    Timeout,
    /// HTTP 429 Too Many Requests.
    Http429,
    /// Any other 4xx status.
    Http4xx,
    /// HTTP 503 Service Unavailable.
    Http503,
    /// Any other 5xx status.
    Http5xx,
    /// The stream ended before `[DONE]` or a finish reason.
    BrokenStream,
    /// Malformed SSE or JSON.
    Protocol,
    /// The server answered but generated nothing.
    EmptyOutput,
    /// The client, not the server, ran out of a resource (open files, local ports, buffers):
    /// the measurement says nothing about the server, and always fails the trial.
    Client,
}

impl ErrorClass {
    /// Every class, in report order.
    pub const ALL: [ErrorClass; 10] = [
        ErrorClass::Connect,
        ErrorClass::Timeout,
        ErrorClass::Http429,
        ErrorClass::Http4xx,
        ErrorClass::Http503,
        ErrorClass::Http5xx,
        ErrorClass::BrokenStream,
        ErrorClass::Protocol,
        ErrorClass::EmptyOutput,
        ErrorClass::Client,
    ];

    /// The class of a non-success HTTP status.
    pub fn from_status(status: u16) -> ErrorClass {
        match status {
            429 => ErrorClass::Http429,
            503 => ErrorClass::Http503,
            500..=599 => ErrorClass::Http5xx,
            _ => ErrorClass::Http4xx,
        }
    }

    /// Name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Connect => "connect",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Http429 => "http_429",
            ErrorClass::Http4xx => "http_4xx",
            ErrorClass::Http503 => "http_503",
            ErrorClass::Http5xx => "http_5xx",
            ErrorClass::BrokenStream => "broken_stream",
            ErrorClass::Protocol => "protocol",
            ErrorClass::EmptyOutput => "empty_output",
            ErrorClass::Client => "client",
        }
    }
}

/// Everything measured about one request. Times are milliseconds on the monotonic clock:
/// `send_ms` from the start of the measured window, the rest from this request's send.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Sequence number within the trial (warmup requests are not recorded).
    pub id: u64,
    /// When the request was sent, from the start of the measured window.
    pub send_ms: f64,
    /// Open loop: when the schedule said to send it, from the start of the measured window.
    /// `send_ms − intended_ms` is the client's own lateness.
    pub intended_ms: Option<f64>,
    /// Index of the endpoint it went to (0 with a single server).
    pub endpoint: u32,
    /// Arrival of the first chunk carrying generated content (TTFT).
    pub ttft_ms: Option<f64>,
    /// Arrival of the last chunk (E2EL).
    pub e2el_ms: Option<f64>,
    /// Arrival time of each content chunk, from send. Chunks read together share one time.
    pub chunk_ms: Vec<f64>,
    /// Tokens carried by each content chunk (1 unless the server said otherwise).
    pub chunk_tokens: Vec<u32>,
    /// Prompt tokens, from the server's usage.
    pub prompt_tokens: Option<u64>,
    /// Output tokens, from the server's usage (or an estimate, see `tokens_estimated`).
    pub output_tokens: Option<u64>,
    /// True when `output_tokens` is not the server's own count.
    pub tokens_estimated: bool,
    /// Output tokens counted by the local tokenizer, when one is configured (compared with the
    /// server's count).
    pub tokenizer_tokens: Option<u64>,
    /// HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// Why the request failed; `None` when it succeeded.
    pub error: Option<ErrorClass>,
    /// Bounded excerpt of the failure evidence (body or message).
    pub error_detail: Option<String>,
    /// The generated text, kept for requests that are scored (the accuracy phase).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The server's own timings of this request, when it reports them (llama-server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_timing: Option<ServerTiming>,
    /// The shared prefix its prompt began with (`prompts.prefix_tokens`), by group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_group: Option<u32>,
    /// Whether it was the first request of its prefix group to be sent (the prefix was not
    /// yet cached); the others share a prefix already sent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prefix_cold: bool,
    /// Prompt tokens the server says it took from its prefix cache: the OpenAI usage's
    /// `prompt_tokens_details.cached_tokens` (vLLM, SGLang, llama-server) or llama-server's
    /// `timings.cache_n`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
    /// The conversation it belongs to (`prompts.sessions`), numbered from 0 within the trial.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<u64>,
    /// Its turn in the conversation, from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn: Option<u32>,
    /// On a conversation's last turn sent: how the conversation ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_end: Option<SessionEnd>,
    /// The tool calls of the answer, reassembled from the stream, for requests that are scored
    /// (the `tool_calls` task); absent when the answer called no tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
}

/// One tool call of an answer: its function and arguments exactly as the server sent them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call's id, when the server gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The function called.
    pub name: String,
    /// The arguments: the concatenated fragments, byte for byte (not necessarily valid JSON).
    pub arguments: String,
}

impl RequestRecord {
    /// Whether the request completed successfully.
    pub fn is_ok(&self) -> bool {
        self.error.is_none()
    }

    /// Time per output token after the first: (E2EL − TTFT) / (output_tokens − 1).
    pub fn tpot_ms(&self) -> Option<f64> {
        let (ttft, e2el, tokens) = (self.ttft_ms?, self.e2el_ms?, self.output_tokens?);
        (tokens > 1).then(|| (e2el - ttft) / (tokens - 1) as f64)
    }

    /// Lateness of the send against the open-loop schedule.
    pub fn lateness_ms(&self) -> Option<f64> {
        Some(self.send_ms - self.intended_ms?)
    }

    /// TTFT counted from the intended send time (free of coordinated omission).
    pub fn ttft_from_intended_ms(&self) -> Option<f64> {
        Some(self.ttft_ms? + self.lateness_ms()?)
    }

    /// E2EL counted from the intended send time (free of coordinated omission).
    pub fn e2el_from_intended_ms(&self) -> Option<f64> {
        Some(self.e2el_ms? + self.lateness_ms()?)
    }

    /// Whether the server's output count and the local tokenizer's disagree.
    pub fn token_counts_disagree(&self) -> bool {
        !self.tokens_estimated
            && matches!((self.output_tokens, self.tokenizer_tokens), (Some(a), Some(b)) if a != b)
    }

    /// Inter-token latencies: the gap between consecutive content chunks, split into k equal
    /// gaps when the later chunk carries k tokens.
    pub fn itl_ms(&self) -> impl Iterator<Item = f64> + '_ {
        self.chunk_ms
            .windows(2)
            .zip(self.chunk_tokens.iter().skip(1))
            .flat_map(|(pair, &tokens)| {
                let k = tokens.max(1);
                std::iter::repeat_n((pair[1] - pair[0]) / f64::from(k), k as usize)
            })
    }
}

/// Keeps at most `limit` bytes of `text` (cut at a character boundary), marking the cut.
pub fn excerpt(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_string();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tpot_divides_decode_time_by_tokens_after_the_first() {
        let r = RequestRecord {
            ttft_ms: Some(100.0),
            e2el_ms: Some(190.0),
            output_tokens: Some(10),
            ..Default::default()
        };
        assert_eq!(r.tpot_ms(), Some(10.0));
    }

    #[test]
    fn a_chunk_of_k_tokens_gives_k_equal_gaps() {
        let r = RequestRecord {
            chunk_ms: vec![10.0, 20.0, 50.0],
            chunk_tokens: vec![1, 1, 3],
            ..Default::default()
        };
        assert_eq!(r.itl_ms().collect::<Vec<_>>(), vec![10.0, 10.0, 10.0, 10.0]);
    }

    #[test]
    fn excerpt_cuts_at_a_char_boundary() {
        assert_eq!(excerpt("héllo", 2), "h…");
        assert_eq!(excerpt("abc", 5), "abc");
    }
}
