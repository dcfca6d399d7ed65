//! Reassembly of an answer's tool calls from OpenAI's chat deltas: each delta of
//! `choices[0].delta.tool_calls` names the call it extends by `index`; the call's `id` and
//! `function.name` come once, `function.arguments` in fragments that are concatenated byte for
//! byte (a fragment may end inside a JSON escape of the arguments; nothing is parsed here). A
//! whole (non-streamed) message's `tool_calls` is the same with one fragment per call.

use serde_json::Value;

use super::stream::MAX_TEXT_BYTES;
use crate::metrics::record::ToolCall;

/// The calls of one answer, as their deltas arrive.
#[derive(Debug, Default)]
pub struct ToolCallAssembler {
    /// (index, call) in order of first appearance.
    calls: Vec<(u64, ToolCall)>,
    /// Bytes of names and arguments held, bounded by [`MAX_TEXT_BYTES`].
    bytes: usize,
}

impl ToolCallAssembler {
    /// Takes one chunk's tool-call deltas. A delta without `index` extends the call at its own
    /// position in the list (non-streamed messages carry none). Fragments past
    /// [`MAX_TEXT_BYTES`] in all are dropped.
    pub fn take(&mut self, deltas: &[Value]) {
        for (position, delta) in deltas.iter().enumerate() {
            let index = delta["index"].as_u64().unwrap_or(position as u64);
            let slot = match self.calls.iter().position(|(i, _)| *i == index) {
                Some(slot) => slot,
                None => {
                    self.calls.push((index, ToolCall::default()));
                    self.calls.len() - 1
                }
            };
            let call = &mut self.calls[slot].1;
            if let Some(id) = delta["id"].as_str().filter(|id| !id.is_empty()) {
                call.id = Some(id.to_string());
            }
            let function = &delta["function"];
            for (text, out) in [
                (function["name"].as_str(), &mut call.name),
                (function["arguments"].as_str(), &mut call.arguments),
            ] {
                let Some(text) = text else { continue };
                if self.bytes + text.len() > MAX_TEXT_BYTES {
                    continue;
                }
                self.bytes += text.len();
                out.push_str(text);
            }
        }
    }

    /// The calls by index, or `None` when there were none.
    pub fn finish(mut self) -> Option<Vec<ToolCall>> {
        self.calls.sort_by_key(|(index, _)| *index);
        let calls: Vec<ToolCall> = self.calls.into_iter().map(|(_, call)| call).collect();
        (!calls.is_empty()).then_some(calls)
    }
}

/// The first call as the `tool_calls` task scores it: `NAME ARGUMENTS`.
pub fn scored_text(calls: &[ToolCall]) -> Option<String> {
    calls
        .first()
        .map(|call| format!("{} {}", call.name, call.arguments))
}

#[cfg(test)]
mod tests {
    use rstest::rstest;
    use serde_json::json;

    use super::*;
    use crate::client::sse::SseParser;
    use crate::client::stream::StreamState;
    use crate::metrics::RequestRecord;

    /// An SSE event of a chat chunk whose delta holds `tool_calls`.
    fn event(tool_calls: Value, finish: Option<&str>) -> String {
        let chunk = json!({"choices": [{"index": 0, "delta": {"tool_calls": tool_calls},
                                          "finish_reason": finish}]});
        format!("data: {chunk}\n\n")
    }

    /// Two calls interleaved by index; arguments split inside `\u00e3` and `\"` escapes of the
    /// arguments text and inside a raw multi-byte character's JSON string.
    fn script() -> (String, Vec<ToolCall>) {
        let weather = r#"{"city": "S\u00e3o Paulo", "note": "say \"hi\" — ok"}"#;
        let timer = r#"{"minutes": 5, "label": "thé"}"#;
        let events = [
            event(
                json!([{"index": 0, "id": "call_a", "type": "function",
                        "function": {"name": "get_weather", "arguments": ""}}]),
                None,
            ),
            event(
                json!([{"index": 0, "function": {"arguments": &weather[..14]}}]),
                None,
            ),
            event(
                json!([{"index": 1, "id": "call_b", "type": "function",
                        "function": {"name": "set_timer", "arguments": &timer[..3]}}]),
                None,
            ),
            event(
                json!([{"index": 0, "function": {"arguments": &weather[14..17]}}]),
                None,
            ),
            event(
                json!([{"index": 1, "function": {"arguments": &timer[3..]}}]),
                None,
            ),
            event(
                json!([{"index": 0, "function": {"arguments": &weather[17..41]}}]),
                None,
            ),
            event(
                json!([{"index": 0, "function": {"arguments": &weather[41..]}}]),
                Some("tool_calls"),
            ),
            "data: [DONE]\n\n".to_string(),
        ];
        let want = vec![
            ToolCall {
                id: Some("call_a".into()),
                name: "get_weather".into(),
                arguments: weather.into(),
            },
            ToolCall {
                id: Some("call_b".into()),
                name: "set_timer".into(),
                arguments: timer.into(),
            },
        ];
        (events.concat(), want)
    }

    /// The record of `body` read in pieces of `read` bytes (cutting UTF-8 characters too).
    fn streamed(body: &str, read: usize) -> RequestRecord {
        let mut parser = SseParser::with_limit(1 << 16);
        let mut state = StreamState::new(RequestRecord::default(), true, 8);
        for piece in body.as_bytes().chunks(read) {
            state
                .take_read(&mut parser, piece, 1.0)
                .expect("the stream reads");
        }
        state.finish(None, true)
    }

    #[rstest]
    #[case::whole_events(1 << 16)]
    #[case::every_byte(1)]
    #[case::odd_cuts(7)]
    fn streamed_deltas_reassemble_byte_exactly(#[case] read: usize) {
        let (body, want) = script();
        let record = streamed(&body, read);
        assert_eq!(record.error, None, "{:?}", record.error_detail);
        assert_eq!(record.tool_calls.as_ref(), Some(&want));
        let arguments: Value =
            serde_json::from_str(&want[0].arguments).expect("the reassembled text is JSON");
        assert_eq!(arguments["city"], "São Paulo");
        assert_eq!(
            scored_text(&want).as_deref(),
            Some(format!("get_weather {}", want[0].arguments).as_str())
        );
    }

    #[test]
    fn a_whole_message_carries_its_calls_without_indexes() {
        let mut assembler = ToolCallAssembler::default();
        assembler.take(&[
            json!({"id": "a", "function": {"name": "f", "arguments": "{\"x\":1}"}}),
            json!({"id": "b", "function": {"name": "g", "arguments": "{}"}}),
        ]);
        let calls = assembler.finish().expect("calls");
        assert_eq!(
            calls
                .iter()
                .map(|c| (c.name.as_str(), c.arguments.as_str()))
                .collect::<Vec<_>>(),
            [("f", "{\"x\":1}"), ("g", "{}")]
        );
        assert_eq!(ToolCallAssembler::default().finish(), None);
    }

    #[test]
    fn a_plain_answer_has_no_tool_calls_and_keeps_its_json_unchanged() {
        let body = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
        let record = streamed(body, 5);
        assert_eq!(record.tool_calls, None);
        let json = serde_json::to_string(&record).expect("serializes");
        assert!(!json.contains("tool_calls"), "{json}");
    }
}
