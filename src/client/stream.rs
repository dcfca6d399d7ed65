//! Reading a server-sent-event response. Each read is stamped with its arrival time before
//! anything is parsed; every event completed by that read carries that time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use eventsource_stream::{EventStreamError, Eventsource};
use futures_util::StreamExt;

use super::protocol::Chunk;
use super::{CountTokens, failed, ms_between};
use crate::metrics::{ErrorClass, RequestRecord};

/// Reads the body of a successful streaming response into `record`: content-chunk arrival
/// times, usage, and the failure class if the stream breaks, is malformed, times out or
/// carries no output.
pub async fn read_stream(
    response: reqwest::Response,
    sent: Instant,
    deadline: tokio::time::Instant,
    mut record: RequestRecord,
    counter: Option<&dyn CountTokens>,
) -> RequestRecord {
    // Nanoseconds from send to the most recent read, stored as the bytes arrive.
    let last_read_ns = Arc::new(AtomicU64::new(0));
    let stamp = Arc::clone(&last_read_ns);
    let bytes = response.bytes_stream().map(move |item| {
        stamp.store(
            Instant::now().saturating_duration_since(sent).as_nanos() as u64,
            Ordering::Relaxed,
        );
        item
    });
    let mut events = bytes.eventsource();
    let arrival_ms = || last_read_ns.load(Ordering::Relaxed) as f64 / 1e6;
    let mut finished = false;
    let mut chunk_chars: Vec<usize> = Vec::new();
    let mut per_chunk_usage = false;
    let mut last_usage_tokens: Option<u64> = None;
    // The generated text is kept only when a local tokenizer will count it.
    let mut text = counter.map(|_| String::new());
    loop {
        let next = match tokio::time::timeout_at(deadline, events.next()).await {
            Err(_) => {
                record.e2el_ms = Some(ms_between(sent, Instant::now()));
                return failed(
                    record,
                    ErrorClass::Timeout,
                    "stream still open at the timeout",
                );
            }
            Ok(next) => next,
        };
        let event = match next {
            None => break,
            Some(Ok(event)) => event,
            Some(Err(EventStreamError::Transport(e))) => {
                record.e2el_ms = Some(arrival_ms());
                return failed(
                    record,
                    ErrorClass::BrokenStream,
                    &format!("stream broke: {e}"),
                );
            }
            Some(Err(e)) => {
                return failed(record, ErrorClass::Protocol, &format!("malformed SSE: {e}"));
            }
        };
        let at = arrival_ms();
        record.e2el_ms = Some(at);
        let data = event.data.trim();
        if data == "[DONE]" {
            finished = true;
            break;
        }
        if data.is_empty() {
            continue;
        }
        let chunk: Chunk = match serde_json::from_str(data) {
            Ok(chunk) => chunk,
            Err(e) => {
                return failed(
                    record,
                    ErrorClass::Protocol,
                    &format!("chunk is not valid JSON ({e}): {data}"),
                );
            }
        };
        if let Some(error) = chunk.error {
            return failed(
                record,
                ErrorClass::Protocol,
                &format!("error event: {error}"),
            );
        }
        let usage = chunk.usage();
        if chunk.has_content() {
            // With continuous usage stats the usage delta says how many tokens this chunk holds.
            let tokens = match (usage.and_then(|u| u.completion_tokens), last_usage_tokens) {
                (Some(now), Some(before)) if now > before => Some((now - before) as u32),
                (Some(now), None) if now > 0 => Some(now as u32),
                _ => None,
            };
            per_chunk_usage |= tokens.is_some();
            if record.ttft_ms.is_none() {
                record.ttft_ms = Some(at);
            }
            record.chunk_ms.push(at);
            record.chunk_tokens.push(tokens.unwrap_or(1));
            chunk_chars.push(chunk.text_len());
            if let Some(text) = text.as_mut() {
                chunk.push_text(text);
            }
        }
        if chunk.is_final() {
            finished = true;
        }
        if let Some(usage) = usage {
            if usage.prompt_tokens.is_some() {
                record.prompt_tokens = usage.prompt_tokens;
            }
            if usage.completion_tokens.is_some() {
                record.output_tokens = usage.completion_tokens;
                last_usage_tokens = usage.completion_tokens;
            }
        }
    }
    if !finished {
        return failed(
            record,
            ErrorClass::BrokenStream,
            "stream ended before [DONE] or a finish_reason",
        );
    }
    if record.chunk_ms.is_empty() {
        return failed(
            record,
            ErrorClass::EmptyOutput,
            "no content chunk in the stream",
        );
    }
    let chars: usize = chunk_chars.iter().sum();
    count_output(&mut record, text.as_deref(), chars, counter);
    match record.output_tokens {
        Some(total)
            if !per_chunk_usage
                && (record.tokens_estimated || total != record.chunk_ms.len() as u64) =>
        {
            // Usage came only at the end and chunks held several tokens each: share the total
            // among chunks by their text length.
            record.chunk_tokens = apportion(total, &chunk_chars);
        }
        _ => {}
    }
    record
}

/// Fills in the local tokenizer's count of the output and, when the server gave no usage,
/// takes it (or, with no tokenizer, about four characters per token) as the output count,
/// marking the record estimated.
fn count_output(
    record: &mut RequestRecord,
    text: Option<&str>,
    chars: usize,
    counter: Option<&dyn CountTokens>,
) {
    record.tokenizer_tokens = text
        .zip(counter)
        .and_then(|(text, counter)| counter.count_tokens(text));
    if record.output_tokens.is_none() {
        record.output_tokens = Some(
            record
                .tokenizer_tokens
                .unwrap_or_else(|| chars.div_ceil(4) as u64)
                .max(1),
        );
        record.tokens_estimated = true;
    }
}

/// Reads a non-streamed response: one JSON body. Only E2EL is measured (there is no first
/// token to time); usage gives the token counts.
pub async fn read_whole(
    response: reqwest::Response,
    sent: Instant,
    deadline: tokio::time::Instant,
    mut record: RequestRecord,
    counter: Option<&dyn CountTokens>,
) -> RequestRecord {
    let body = match tokio::time::timeout_at(deadline, response.bytes()).await {
        Err(_) => {
            record.e2el_ms = Some(ms_between(sent, Instant::now()));
            return failed(
                record,
                ErrorClass::Timeout,
                "body still arriving at the timeout",
            );
        }
        Ok(Err(e)) => {
            return failed(
                record,
                ErrorClass::BrokenStream,
                &format!("body broke: {e}"),
            );
        }
        Ok(Ok(body)) => body,
    };
    record.e2el_ms = Some(ms_between(sent, Instant::now()));
    let answer: Chunk = match serde_json::from_slice(&body) {
        Ok(answer) => answer,
        Err(e) => {
            let text = String::from_utf8_lossy(&body);
            return failed(
                record,
                ErrorClass::Protocol,
                &format!("response is not valid JSON ({e}): {text}"),
            );
        }
    };
    if let Some(error) = &answer.error {
        return failed(
            record,
            ErrorClass::Protocol,
            &format!("error body: {error}"),
        );
    }
    if !answer.has_content() {
        return failed(
            record,
            ErrorClass::EmptyOutput,
            "no generated text in the response",
        );
    }
    if let Some(usage) = answer.usage() {
        record.prompt_tokens = usage.prompt_tokens;
        record.output_tokens = usage.completion_tokens;
    }
    let mut text = String::new();
    answer.push_text(&mut text);
    count_output(&mut record, Some(&text), text.len(), counter);
    record
}

/// Splits `total` into integer parts proportional to `weights` (largest remainder first, ties
/// to the earlier part); every part is at least 1 when `total` allows it.
pub fn apportion(total: u64, weights: &[usize]) -> Vec<u32> {
    let n = weights.len();
    if n == 0 {
        return Vec::new();
    }
    let sum: usize = weights.iter().sum();
    let shares: Vec<f64> = if sum == 0 {
        vec![total as f64 / n as f64; n]
    } else {
        weights
            .iter()
            .map(|&w| total as f64 * w as f64 / sum as f64)
            .collect()
    };
    let mut parts: Vec<u64> = shares.iter().map(|s| s.floor() as u64).collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| {
        (shares[b] - shares[b].floor()).total_cmp(&(shares[a] - shares[a].floor()))
    });
    let assigned: u64 = parts.iter().sum();
    for &i in order
        .iter()
        .cycle()
        .take(total.saturating_sub(assigned) as usize)
    {
        parts[i] += 1;
    }
    parts
        .into_iter()
        .map(|p| u32::try_from(p.max(1)).unwrap_or(u32::MAX))
        .collect()
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::apportion;

    #[rstest]
    #[case(20, &[20, 20, 22, 24, 24], &[4, 4, 4, 4, 4])]
    #[case(10, &[1, 1, 1], &[4, 3, 3])]
    #[case(6, &[0, 0], &[3, 3])]
    #[case(3, &[10, 20], &[1, 2])]
    fn totals_are_shared_by_length(
        #[case] total: u64,
        #[case] weights: &[usize],
        #[case] parts: &[u32],
    ) {
        assert_eq!(apportion(total, weights), parts);
    }
}
