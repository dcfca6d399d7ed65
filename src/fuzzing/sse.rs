//! Target `sse`: hostile byte streams (events split anywhere, huge events, invalid UTF-8,
//! missing `data:`, `[DONE]` in odd places, bare `\r`, byte-order marks, garbage) fed to the SSE
//! parser and to a streamed answer's reading, in reads cut at arbitrary points. Properties: no
//! panic; the parser never holds more than its limit; the events are those of the whole stream
//! read at once (a prefix of them when a line or event overflowed the limit, which a stream
//! shorter than the limit never does); and the answer's record — error class, tokens per
//! chunk, usage — does not depend on where the reads were cut.

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseResult;

use crate::client::sse::SseParser;
use crate::client::stream::{StreamState, plausible_tokens};
use crate::metrics::{ErrorClass, RequestRecord};

/// Text fragments of generated content (JSON-escaped), some multi-byte or escaped.
const TEXTS: [&str; 8] = [" a", "b", "", "\u{fc}", "\\u00e9", "\\\"", "\\n", " token"];

/// Completion-token claims a server's usage may make.
const CLAIMS: [u64; 9] = [0, 1, 2, 3, 7, 100, u32::MAX as u64, u64::MAX - 1, u64::MAX];

/// A line terminator: `\n`, `\r\n` or a bare `\r`.
fn terminator() -> impl Strategy<Value = &'static str> {
    prop_oneof![4 => Just("\n"), 1 => Just("\r\n"), 1 => Just("\r")]
}

/// The JSON of one streamed chunk (completions or chat shape), with or without usage.
fn chunk_json() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop::sample::select(&TEXTS[..]), 0..4),
        prop_oneof![4 => Just("null"), 1 => Just("\"stop\""), 1 => Just("\"length\"")],
        prop::option::weighted(0.4, prop::sample::select(&CLAIMS[..])),
        any::<bool>(),
    )
        .prop_map(|(texts, finish, usage, chat)| {
            let text = texts.concat();
            let usage = usage
                .map(|n| format!(",\"usage\":{{\"prompt_tokens\":3,\"completion_tokens\":{n}}}"))
                .unwrap_or_default();
            if chat {
                format!(
                    "{{\"choices\":[{{\"delta\":{{\"content\":\"{text}\"}},\"finish_reason\":{finish}}}]{usage}}}"
                )
            } else {
                format!("{{\"choices\":[{{\"text\":\"{text}\",\"finish_reason\":{finish}}}]{usage}}}")
            }
        })
}

/// One piece of a hostile stream.
fn piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => (chunk_json(), terminator()).prop_map(|(json, t)| format!("data: {json}{t}{t}").into_bytes()),
        2 => (prop::sample::select(&["data: [DONE]", "data:[DONE]", "data:  [DONE]  ", "[DONE]", "data: [DONE"][..]), terminator(), any::<bool>())
            .prop_map(|(done, t, blank)| format!("{done}{t}{}", if blank { t } else { "" }).into_bytes()),
        1 => (prop::sample::select(&[": ping", "event: message", "id: 7", "retry: x", "data", "dat: {}", ":"][..]), terminator())
            .prop_map(|(line, t)| format!("{line}{t}").into_bytes()),
        1 => (chunk_json(), terminator()).prop_map(|(json, t)| format!("{json}{t}{t}").into_bytes()),
        1 => (chunk_json(), terminator(), any::<Index>()).prop_map(|(json, t, at)| {
            // One event's JSON over two `data` lines (joined by `\n`, still JSON when cut
            // between tokens; malformed otherwise).
            let cut = at.index(json.len() + 1);
            let cut = (0..=cut).rev().find(|&i| json.is_char_boundary(i)).unwrap_or(0);
            format!("data: {}{t}data: {}{t}{t}", &json[..cut], &json[cut..]).into_bytes()
        }),
        1 => (prop::collection::vec(any::<u8>(), 1..4), terminator()).prop_map(|(bad, t)| {
            let mut bytes = b"data: {\"choices\":[{\"text\":\"".to_vec();
            bytes.extend_from_slice(&bad);
            bytes.extend_from_slice(format!("\",\"finish_reason\":null}}]}}{t}{t}").as_bytes());
            bytes
        }),
        1 => prop::collection::vec(any::<u8>(), 0..48),
        1 => (200usize..3000, prop::option::of(terminator())).prop_map(|(n, t)| {
            let mut bytes = b"data: ".to_vec();
            bytes.extend(std::iter::repeat_n(b'x', n));
            if let Some(t) = t {
                bytes.extend_from_slice(format!("{t}{t}").as_bytes());
            }
            bytes
        }),
        1 => terminator().prop_map(|t| t.as_bytes().to_vec()),
        1 => Just("\u{feff}".as_bytes().to_vec()),
    ]
}

/// A hostile stream: maybe a byte-order mark, then up to 16 pieces.
pub(super) fn stream() -> impl Strategy<Value = Vec<u8>> {
    (any::<bool>(), prop::collection::vec(piece(), 0..16)).prop_map(|(bom, pieces)| {
        let mut bytes = if bom {
            "\u{feff}".as_bytes().to_vec()
        } else {
            Vec::new()
        };
        for piece in pieces {
            bytes.extend_from_slice(&piece);
        }
        bytes
    })
}

/// `stream` cut into reads at `cuts` (positions taken modulo the length).
fn split<'a>(stream: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|&c| c % (stream.len() + 1)).collect();
    at.push(0);
    at.push(stream.len());
    at.sort_unstable();
    at.windows(2).map(|w| &stream[w[0]..w[1]]).collect()
}

/// The events of `reads` under `limit`, and whether the parser overflowed; checks after each
/// read that the parser holds no more than the limit.
fn events(reads: &[&[u8]], limit: usize) -> Result<(Vec<Vec<u8>>, bool), TestCaseError> {
    let mut parser = SseParser::with_limit(limit);
    let mut out = Vec::new();
    for read in reads {
        parser
            .feed(read, |data| {
                out.push(data.to_vec());
                Ok::<(), ()>(())
            })
            .map_err(|()| TestCaseError::fail("the callback never fails"))?;
        let (partial, data) = parser.held();
        prop_assert!(
            partial <= limit && data <= limit,
            "holds {partial} + {data} bytes over a limit of {limit}"
        );
    }
    Ok((out, parser.overflowed()))
}

/// The record of a streamed answer whose body arrives as `reads`, as `read_stream` makes it.
pub(super) fn record(reads: &[&[u8]], limit: usize) -> RequestRecord {
    let mut parser = SseParser::with_limit(limit);
    let mut state = StreamState::new(RequestRecord::default(), true, 4);
    state.limit_chunks(64);
    for read in reads {
        if state.done() {
            break;
        }
        if let Err((class, detail)) = state.take_read(&mut parser, read, 1.0) {
            let mut record = state.finish(None, true);
            record.error = Some(class);
            record.error_detail = Some(detail);
            return record;
        }
    }
    state.finish(None, true)
}

/// The accounting of a record that passed: one token count per content chunk, a usage, and
/// counts that the text can hold; a failed one says why.
pub(super) fn check_accounting(record: &RequestRecord) -> TestCaseResult {
    if let Some(class) = record.error {
        prop_assert!(
            record
                .error_detail
                .as_deref()
                .is_some_and(|d| !d.is_empty()),
            "{class:?} without evidence"
        );
        return Ok(());
    }
    let n = record.chunk_ms.len();
    prop_assert!(n >= 1, "a passing stream has a content chunk: {record:?}");
    prop_assert_eq!(record.chunk_tokens.len(), n);
    prop_assert!(record.output_tokens.is_some());
    let text = record.text.as_deref().unwrap_or_default().len();
    let sum: u64 = record.chunk_tokens.iter().map(|&t| u64::from(t)).sum();
    prop_assert!(
        sum <= plausible_tokens(text, n).saturating_add(n as u64),
        "{sum} tokens in {n} chunks of {text} bytes"
    );
    prop_assert!(record.itl_ms().count() as u64 <= sum);
    Ok(())
}

/// Every property of one stream cut at `cuts`, under the parser limit `limit`.
fn check(stream: &[u8], cuts: &[usize], limit: usize) -> TestCaseResult {
    let reads = split(stream, cuts);
    let (whole, overflowed_whole) = events(&[stream], usize::MAX)?;
    prop_assert!(!overflowed_whole);
    let (got, overflowed) = events(&reads, limit)?;
    prop_assert!(
        whole.starts_with(&got),
        "the events are not a prefix of the whole stream's"
    );
    if !overflowed {
        prop_assert_eq!(&got, &whole);
    }
    if stream.len() <= limit {
        prop_assert!(!overflowed, "a stream shorter than the limit overflowed");
    }
    let at_once = record(&[stream], usize::MAX);
    let cut = record(&reads, usize::MAX);
    prop_assert_eq!(format!("{at_once:?}"), format!("{cut:?}"));
    check_accounting(&cut)?;
    let limited = record(&reads, limit);
    let overflow_error = limited.error == Some(ErrorClass::Protocol)
        && limited
            .error_detail
            .as_deref()
            .is_some_and(|d| d.contains("longer than"));
    if stream.len() <= limit {
        prop_assert_eq!(format!("{limited:?}"), format!("{at_once:?}"));
    }
    prop_assert!(
        overflow_error || format!("{limited:?}") == format!("{at_once:?}"),
        "under a limit of {limit}: {limited:?}"
    );
    Ok(())
}

/// A kept input: the stream, checked whole, byte by byte, cut once at every point (every 7th
/// point past 4 KiB) and under limits of 16 bytes, 1 KiB and 1 MiB.
pub(super) fn replay(stream: &[u8]) -> TestCaseResult {
    let step = if stream.len() > 4096 { 7 } else { 1 };
    for limit in [16, 1024, 1 << 20] {
        check(stream, &[], limit)?;
        let every: Vec<usize> = (0..=stream.len()).collect();
        check(stream, &every, limit)?;
        for cut in (0..=stream.len()).step_by(step) {
            check(stream, &[cut], limit)?;
        }
    }
    Ok(())
}

#[test]
fn hostile_streams_split_anywhere_parse_and_count_the_same() {
    super::fuzz(
        "sse",
        (
            stream(),
            prop::collection::vec(any::<usize>(), 0..12),
            prop::sample::select(&[16usize, 64, 1024, 1 << 20][..]),
        ),
        |(stream, _, _)| stream.clone(),
        replay,
        |(stream, cuts, limit)| check(&stream, &cuts, limit),
    );
}
