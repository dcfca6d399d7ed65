//! Targets `usage` and `apportion`: the chunk and usage accounting of a streamed answer.
//! Streams of content chunks whose usage claims anything — none, per chunk, only at the end,
//! growing, shrinking, zero, up to `u64::MAX` — read in one go: no panic, no endless loop, and
//! a passing record has one token count per chunk, a usage, and counts its text can hold.
//! Sharing a total among chunks by text length (`apportion`) gives one part per chunk, each
//! at least 1, adding up to the total (plus at most one per chunk), larger for longer chunks.

use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;

use crate::client::stream::apportion;

/// Completion-token claims, from the ordinary to the impossible.
fn claim() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0u64..64,
        1 => Just(u64::from(u32::MAX)),
        1 => Just(u64::from(u32::MAX) + 1),
        1 => Just(u64::MAX - 1),
        1 => Just(u64::MAX),
        1 => any::<u64>(),
    ]
}

/// A stream of `n` content chunks with usage where the generator puts it, then an end.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec((0usize..6, prop::option::weighted(0.5, claim())), 0..24),
        prop::option::of(claim()),
        prop::sample::select(&["data: [DONE]\n\n", "", "data: {\"choices\":[{\"text\":\"\",\"finish_reason\":\"stop\"}]}\n\n"][..]),
    )
        .prop_map(|(chunks, final_usage, end)| {
            let mut bytes = Vec::new();
            for (words, usage) in chunks {
                let text = " w".repeat(words);
                let usage = usage
                    .map(|n| format!(",\"usage\":{{\"completion_tokens\":{n}}}"))
                    .unwrap_or_default();
                bytes.extend_from_slice(
                    format!("data: {{\"choices\":[{{\"text\":\"{text}\",\"finish_reason\":null}}]{usage}}}\n\n")
                        .as_bytes(),
                );
            }
            if let Some(n) = final_usage {
                bytes.extend_from_slice(
                    format!("data: {{\"choices\":[{{\"text\":\"\",\"finish_reason\":\"length\"}}],\"usage\":{{\"prompt_tokens\":5,\"completion_tokens\":{n}}}}}\n\n")
                        .as_bytes(),
                );
            }
            bytes.extend_from_slice(end.as_bytes());
            bytes
        })
}

fn check_stream(stream: &[u8]) -> TestCaseResult {
    let record = super::sse::record(&[stream], 1 << 20);
    super::sse::check_accounting(&record)?;
    if record.is_ok() && !stream.windows(7).any(|w| w == b"\"usage\"") {
        prop_assert!(
            record.tokens_estimated,
            "no usage: the count is an estimate"
        );
    }
    Ok(())
}

#[test]
fn any_usage_claim_is_accounted_for_or_refused() {
    super::fuzz("usage", stream(), Clone::clone, check_stream, |stream| {
        check_stream(&stream)
    });
}

/// `total weight weight …` on one line: how an `apportion` input is kept.
fn encode(input: &(u64, Vec<usize>)) -> Vec<u8> {
    let mut line = input.0.to_string();
    for w in &input.1 {
        line.push_str(&format!(" {w}"));
    }
    line.push('\n');
    line.into_bytes()
}

fn decode(bytes: &[u8]) -> Result<(u64, Vec<usize>), TestCaseError> {
    let text = std::str::from_utf8(bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut numbers = text.split_whitespace();
    let total = numbers
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| TestCaseError::fail("no total"))?;
    let weights = numbers
        .map(|n| n.parse().map_err(|_| TestCaseError::fail("a weight")))
        .collect::<Result<_, _>>()?;
    Ok((total, weights))
}

fn check_apportion((total, weights): (u64, Vec<usize>)) -> TestCaseResult {
    let parts = apportion(total, &weights);
    prop_assert_eq!(parts.len(), weights.len());
    if weights.is_empty() {
        return Ok(());
    }
    prop_assert!(parts.iter().all(|&p| p >= 1));
    let n = parts.len() as u64;
    let sum: u64 = parts.iter().map(|&p| u64::from(p)).sum();
    if total <= u64::from(u32::MAX) {
        prop_assert!(
            sum >= total && sum <= total + n,
            "{total} shared as {parts:?} (sum {sum})"
        );
        for (i, &wi) in weights.iter().enumerate() {
            for (j, &wj) in weights.iter().enumerate() {
                if wi > wj {
                    prop_assert!(
                        u64::from(parts[i]) + 1 >= u64::from(parts[j]),
                        "weight {wi} got {} < weight {wj}'s {}",
                        parts[i],
                        parts[j]
                    );
                }
            }
        }
    }
    Ok(())
}

#[test]
fn any_total_is_shared_among_chunks_by_length() {
    let weights = prop_oneof![
        4 => prop::collection::vec(0usize..64, 0..48),
        1 => prop::collection::vec(0usize..(1 << 40), 0..8),
    ];
    super::fuzz(
        "apportion",
        (claim(), weights),
        encode,
        |bytes| check_apportion(decode(bytes)?),
        check_apportion,
    );
}
