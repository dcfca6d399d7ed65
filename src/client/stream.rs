//! Reading a response. Each read of a streamed body is stamped with its arrival time before
//! anything is parsed; every event completed by that read carries that time.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use super::protocol::Chunk;
use super::sse::SseParser;
use super::tool_calls::ToolCallAssembler;
use super::{CountTokens, failed, ms_between};
use crate::metrics::{ErrorClass, RequestRecord};

/// How one response is read.
pub struct Reading<'a> {
    /// When the request was sent.
    pub sent: Instant,
    /// When reading gives up.
    pub deadline: tokio::time::Instant,
    /// Local token counter of the output, if any.
    pub counter: Option<&'a dyn CountTokens>,
    /// Keep the generated text in the record.
    pub keep_text: bool,
    /// Most content chunks one response may have (a server sending more is a `protocol`
    /// error): bounds the chunk times kept per request.
    pub max_chunks: usize,
    /// Most bytes of one SSE line or event.
    pub max_event_bytes: usize,
    /// Where the stream's body reads are counted, if anywhere.
    pub reads: Option<&'a ReadCounter>,
}

/// Most bytes of generated text kept per request (1 MiB); beyond it the text is cut, and its
/// length still counted.
pub const MAX_TEXT_BYTES: usize = 1 << 20;

/// Most bytes of a non-streamed response body (16 MiB).
pub const MAX_BODY_BYTES: usize = 16 << 20;

/// Completion tokens a server's usage may claim beyond four per byte of text, per content
/// chunk: a chunk of tool calls or reasoning may carry tokens without text, but no chunk
/// carries billions. A usage over `4 × bytes + 4096 × chunks` is a `protocol` error.
pub const TOKEN_SLACK_PER_CHUNK: u64 = 4096;

/// The most completion tokens `chunks` content chunks with `bytes` bytes of text can hold.
pub fn plausible_tokens(bytes: usize, chunks: usize) -> u64 {
    (bytes as u64)
        .saturating_mul(4)
        .saturating_add((chunks as u64).saturating_mul(TOKEN_SLACK_PER_CHUNK))
}

/// Counts the body reads of the streams of the clients it is given to (`ClientConfig::reads`),
/// and how many of them had to wait for the socket; the client benchmark (`bench-client`)
/// reads it around a run. Each stream adds its counts once, when it ends, so nothing is
/// shared per chunk.
#[derive(Debug, Default)]
pub struct ReadCounter {
    reads: AtomicU64,
    waited: AtomicU64,
}

impl ReadCounter {
    /// The counts so far.
    pub fn counts(&self) -> ReadCounts {
        ReadCounts {
            reads: self.reads.load(Ordering::Relaxed),
            waited: self.waited.load(Ordering::Relaxed),
        }
    }

    /// Adds one stream's reads.
    fn add(&self, counts: ReadCounts) {
        self.reads.fetch_add(counts.reads, Ordering::Relaxed);
        self.waited.fetch_add(counts.waited, Ordering::Relaxed);
    }
}

/// Body reads counted by a [`ReadCounter`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadCounts {
    /// Reads of a streamed body that returned bytes (one HTTP chunk each with hyper).
    pub reads: u64,
    /// Reads that found nothing ready and parked the stream until the socket delivered: each
    /// is one wake-up of the reading task.
    pub waited: u64,
}

impl ReadCounts {
    /// The counts since `earlier`.
    pub fn since(self, earlier: ReadCounts) -> ReadCounts {
        ReadCounts {
            reads: self.reads.saturating_sub(earlier.reads),
            waited: self.waited.saturating_sub(earlier.waited),
        }
    }
}

/// A streamed body, read by the task that measures it.
pub trait StreamBody {
    /// Polls for the body's next bytes (setting `waited` when nothing is ready), which
    /// [`bytes`](Self::bytes) then holds: when they arrived, taken before anything of them was
    /// parsed (the kernel's receive time on the direct path, the read's return through
    /// reqwest); `None` at the body's end; the error's evidence when the body broke.
    fn poll_next_read(
        &mut self,
        cx: &mut Context<'_>,
        waited: &mut bool,
    ) -> Poll<Result<Option<Instant>, String>>;

    /// The bytes of the last read that returned an instant.
    fn bytes(&self) -> &[u8];

    /// The answer said it was done before the body's end: what is left of the body may be
    /// read in the background (the direct path does, to reuse the connection).
    fn release(self);
}

/// A body streamed through reqwest, with its last read's bytes.
#[derive(Debug)]
pub struct ReqwestBody {
    body: reqwest::Body,
    last: bytes::Bytes,
}

impl From<reqwest::Response> for ReqwestBody {
    fn from(response: reqwest::Response) -> ReqwestBody {
        ReqwestBody {
            body: response.into(),
            last: bytes::Bytes::new(),
        }
    }
}

impl StreamBody for ReqwestBody {
    fn poll_next_read(
        &mut self,
        cx: &mut Context<'_>,
        waited: &mut bool,
    ) -> Poll<Result<Option<Instant>, String>> {
        use http_body::Body as _;
        // As `reqwest::Response::chunk`: frames that are not data (trailers) are skipped.
        loop {
            let Poll::Ready(frame) = std::pin::Pin::new(&mut self.body).poll_frame(cx) else {
                *waited = true;
                return Poll::Pending;
            };
            return Poll::Ready(match frame {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(bytes) => {
                        let at = Instant::now();
                        self.last = bytes;
                        Ok(Some(at))
                    }
                    Err(_) => continue,
                },
                Some(Err(e)) => Err(super::error_chain(&e)),
                None => Ok(None),
            });
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.last
    }

    fn release(self) {}
}

impl StreamBody for super::h1::Body {
    fn poll_next_read(
        &mut self,
        cx: &mut Context<'_>,
        waited: &mut bool,
    ) -> Poll<Result<Option<Instant>, String>> {
        self.poll_read(cx, waited)
            .map_err(|e| super::error_chain(&e))
    }

    fn bytes(&self) -> &[u8] {
        super::h1::Body::bytes(self)
    }

    fn release(self) {
        super::h1::Body::release(self);
    }
}

/// Reads the body of a successful streaming response into `record`: content-chunk arrival
/// times, usage, and the failure class if the stream breaks, is malformed, times out or
/// carries no output.
///
/// One poll takes every read the socket has ready. The loop is a poll of its own, not a
/// chain of futures (a `select!` over a read future over a socket future): each layer's state
/// would be another cache line to fetch per chunk, and with hundreds of streams taking turns
/// each is cold by the stream's next chunk.
pub async fn read_stream(
    mut body: impl StreamBody,
    record: RequestRecord,
    reading: &Reading<'_>,
    expected_chunks: usize,
) -> RequestRecord {
    let (sent, deadline, counter) = (reading.sent, reading.deadline, reading.counter);
    let mut parser = SseParser::with_limit(reading.max_event_bytes);
    let keep_text = reading.keep_text || counter.is_some();
    let mut state = StreamState::new(record, keep_text, expected_chunks);
    state.limit_chunks(reading.max_chunks);
    // One timer for the whole stream: a timeout per read would register and cancel a timer
    // for every chunk.
    let timeout = tokio::time::sleep_until(deadline);
    tokio::pin!(timeout);
    let mut counts = ReadCounts::default();
    // The read in progress has found the socket empty at least once.
    let mut waited = false;
    let end = std::future::poll_fn(|cx| {
        loop {
            if state.done() {
                return Poll::Ready(StreamEnd::Ended);
            }
            let read = match body.poll_next_read(cx, &mut waited) {
                Poll::Pending => {
                    // The read comes first (`biased`): a timeout only when nothing is ready.
                    if timeout.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(StreamEnd::TimedOut(ms_between(sent, Instant::now())));
                    }
                    return Poll::Pending;
                }
                Poll::Ready(read) => read,
            };
            counts.waited += u64::from(std::mem::take(&mut waited));
            let at = match read {
                Err(e) => {
                    let detail = format!("stream broke: {e}");
                    return Poll::Ready(StreamEnd::Failed(ErrorClass::BrokenStream, detail));
                }
                Ok(None) => return Poll::Ready(StreamEnd::Ended),
                Ok(Some(at)) => at,
            };
            // The read's arrival time: every event it completes carries it.
            counts.reads += 1;
            if let Err((class, detail)) =
                state.take_read(&mut parser, body.bytes(), ms_between(sent, at))
            {
                return Poll::Ready(StreamEnd::Failed(class, detail));
            }
        }
    })
    .await;
    let record = match end {
        StreamEnd::Ended => {
            if state.done() {
                body.release();
            }
            state.finish(counter, reading.keep_text)
        }
        StreamEnd::TimedOut(at) => state.timed_out(at, "stream still open at the timeout"),
        StreamEnd::Failed(class, detail) => failed(state.into_record(), class, &detail),
    };
    if let Some(counter) = reading.reads {
        counter.add(counts);
    }
    record
}

/// How reading a stream stopped.
enum StreamEnd {
    /// The answer said it was done (`[DONE]`), or the body ended.
    Ended,
    /// The deadline passed first, this many ms after the send.
    TimedOut(f64),
    /// The body broke, or the stream was malformed.
    Failed(ErrorClass, String),
}

/// What a stream has shown so far.
///
/// What every content chunk touches is one small struct, [`HotState`], apart from the record
/// (376 bytes), which only the stream's end and the rare fields (usage, server timings) touch:
/// with hundreds of streams taking turns, each chunk finds its stream's state out of the CPU's
/// caches, and every cache line it touches is a trip to memory (the book's client-performance
/// page).
pub(crate) struct StreamState {
    hot: HotState,
    record: RequestRecord,
    /// The answer's tool calls, reassembled when the text is kept.
    tool_calls: Option<ToolCallAssembler>,
}

/// The part of a [`StreamState`] every content chunk reads or writes.
struct HotState {
    /// `[DONE]` arrived: nothing more is read.
    done: bool,
    /// A finish reason (or `[DONE]`) arrived.
    finished: bool,
    /// A usage came with content chunks (continuous usage stats).
    per_chunk_usage: bool,
    /// Tool calls are reassembled ([`StreamState::tool_calls`] is there).
    tool_calls: bool,
    last_usage_tokens: Option<u64>,
    /// The arrival of the last event, ms after the send.
    last_event_ms: Option<f64>,
    /// The arrival of the first content chunk, ms after the send.
    first_content_ms: Option<f64>,
    /// One entry per content chunk, in one list (one cache line written per four chunks,
    /// not one per list and chunk); the record's per-chunk lists are made from it at the end.
    chunks: Vec<ChunkSample>,
    /// Most content chunks accepted.
    max_chunks: usize,
    /// The generated text, kept only when a local tokenizer will count it or the caller
    /// wants it (up to [`MAX_TEXT_BYTES`]).
    text: Option<String>,
}

/// One content chunk as it arrived.
#[derive(Debug, Clone, Copy)]
struct ChunkSample {
    /// Arrival, ms after the send.
    at_ms: f64,
    /// Completion tokens it holds (1 unless a usage delta said otherwise).
    tokens: u32,
    /// Bytes of text it holds.
    text_bytes: u32,
}

impl StreamState {
    /// `expected_chunks` sizes the per-chunk list up front, so it does not grow (and move)
    /// while chunks arrive.
    pub(crate) fn new(
        record: RequestRecord,
        keep_text: bool,
        expected_chunks: usize,
    ) -> StreamState {
        StreamState {
            hot: HotState {
                done: false,
                finished: false,
                per_chunk_usage: false,
                tool_calls: keep_text,
                last_usage_tokens: None,
                last_event_ms: None,
                first_content_ms: None,
                chunks: Vec::with_capacity(expected_chunks),
                max_chunks: usize::MAX,
                text: keep_text.then(String::new),
            },
            record,
            tool_calls: keep_text.then(ToolCallAssembler::default),
        }
    }

    /// Accepts at most `max` content chunks (more is a `protocol` error).
    pub(crate) fn limit_chunks(&mut self, max: usize) {
        self.hot.max_chunks = max;
    }

    /// The record so far, with the chunks that arrived: what a stream that failed keeps.
    pub(crate) fn into_record(self) -> RequestRecord {
        self.split().0
    }

    /// The record with its per-chunk lists and times filled in, the bytes of text of each
    /// content chunk, and the rest of the state.
    fn split(
        self,
    ) -> (
        RequestRecord,
        Vec<usize>,
        HotState,
        Option<ToolCallAssembler>,
    ) {
        let StreamState {
            mut hot,
            mut record,
            tool_calls,
        } = self;
        let chunks = std::mem::take(&mut hot.chunks);
        record.chunk_ms = chunks.iter().map(|c| c.at_ms).collect();
        record.chunk_tokens = chunks.iter().map(|c| c.tokens).collect();
        let text_bytes = chunks.iter().map(|c| c.text_bytes as usize).collect();
        if hot.last_event_ms.is_some() {
            record.e2el_ms = hot.last_event_ms;
        }
        if hot.first_content_ms.is_some() {
            record.ttft_ms = hot.first_content_ms;
        }
        (record, text_bytes, hot, tool_calls)
    }

    /// The stream, still open `at` ms after the send, timed out: the record so far, failed.
    pub(crate) fn timed_out(mut self, at: f64, detail: &str) -> RequestRecord {
        self.hot.last_event_ms = Some(at);
        failed(self.into_record(), ErrorClass::Timeout, detail)
    }

    /// Takes one read of the body that arrived `at` ms after the send: every event it
    /// completes. The error makes the stream unusable: a malformed event, or a line or event
    /// longer than the parser's limit before the stream was done.
    pub(crate) fn take_read(
        &mut self,
        parser: &mut SseParser,
        read: &[u8],
        at: f64,
    ) -> Result<(), (ErrorClass, String)> {
        parser.feed(read, |data| self.on_event(data, at))?;
        // After `[DONE]` nothing more is read, so what follows it in the same read must not
        // fail the stream either.
        if parser.overflowed() && !self.hot.done {
            return Err((
                ErrorClass::Protocol,
                format!(
                    "an SSE line or event longer than {} bytes (client.max_event_bytes)",
                    parser.limit()
                ),
            ));
        }
        Ok(())
    }

    /// Whether `[DONE]` arrived (nothing more is read).
    pub(crate) fn done(&self) -> bool {
        self.hot.done
    }

    /// Takes one event that arrived `at` ms after the send.
    fn on_event(&mut self, data: &[u8], at: f64) -> Result<(), (ErrorClass, String)> {
        let hot = &mut self.hot;
        if hot.done {
            return Ok(());
        }
        hot.last_event_ms = Some(at);
        let data = data.trim_ascii();
        if data == b"[DONE]" {
            hot.finished = true;
            hot.done = true;
            return Ok(());
        }
        if data.is_empty() {
            return Ok(());
        }
        let chunk: Chunk<'_> = serde_json::from_slice(data).map_err(|e| {
            let text = String::from_utf8_lossy(data);
            (
                ErrorClass::Protocol,
                format!("chunk is not valid JSON ({e}): {text}"),
            )
        })?;
        if let Some(error) = &chunk.error {
            return Err((ErrorClass::Protocol, format!("error event: {error}")));
        }
        let usage = chunk.usage();
        if chunk.has_content() {
            // With continuous usage stats the usage delta says how many tokens this chunk holds.
            let delta = match (
                usage.and_then(|u| u.completion_tokens),
                hot.last_usage_tokens,
            ) {
                (Some(now), Some(before)) if now > before => Some(now - before),
                (Some(now), None) if now > 0 => Some(now),
                _ => None,
            };
            if let Some(delta) = delta
                && delta > plausible_tokens(chunk.text_len(), 1)
            {
                return Err((
                    ErrorClass::Protocol,
                    format!(
                        "usage grew by {delta} completion tokens in one chunk of {} bytes",
                        chunk.text_len()
                    ),
                ));
            }
            if hot.chunks.len() >= hot.max_chunks {
                return Err((
                    ErrorClass::Protocol,
                    format!(
                        "more than {} content chunks in one response",
                        hot.max_chunks
                    ),
                ));
            }
            let tokens = delta.map(|d| u32::try_from(d).unwrap_or(u32::MAX));
            hot.per_chunk_usage |= tokens.is_some();
            if hot.first_content_ms.is_none() {
                hot.first_content_ms = Some(at);
            }
            hot.chunks.push(ChunkSample {
                at_ms: at,
                tokens: tokens.unwrap_or(1),
                text_bytes: u32::try_from(chunk.text_len()).unwrap_or(u32::MAX),
            });
            if let Some(text) = hot.text.as_mut().filter(|t| t.len() < MAX_TEXT_BYTES) {
                chunk.push_text(text);
                cut_text(text);
            }
        }
        if hot.tool_calls
            && let Some(assembler) = self.tool_calls.as_mut()
        {
            take_tool_calls(assembler, &chunk);
        }
        if chunk.is_final() {
            hot.finished = true;
        }
        if let Some(timings) = &chunk.timings {
            self.record.server_timing = Some(**timings);
        }
        if let Some(usage) = usage {
            if usage.prompt_tokens.is_some() {
                self.record.prompt_tokens = usage.prompt_tokens;
            }
            if usage.completion_tokens.is_some() {
                self.record.output_tokens = usage.completion_tokens;
                self.hot.last_usage_tokens = usage.completion_tokens;
            }
            if let Some(cached) = usage.prompt_tokens_details.and_then(|d| d.cached_tokens) {
                self.record.cached_tokens = Some(cached);
            }
        }
        if let Some(cached) = chunk.timings.as_ref().and_then(|t| t.cache_n) {
            self.record.cached_tokens = Some(cached);
        }
        Ok(())
    }

    /// Judges the ended stream and settles the token counts; the text goes into the record
    /// when `keep_text`.
    pub(crate) fn finish(
        self,
        counter: Option<&dyn CountTokens>,
        keep_text: bool,
    ) -> RequestRecord {
        let (mut record, text_bytes, hot, tool_calls) = self.split();
        record.tool_calls = tool_calls
            .filter(|_| keep_text)
            .and_then(ToolCallAssembler::finish);
        let text = hot.text.filter(|_| keep_text || counter.is_some());
        if !hot.finished {
            record.text = text.filter(|_| keep_text);
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
        let chars: usize = text_bytes.iter().sum();
        if let Some(total) = record.output_tokens
            && total > plausible_tokens(chars, record.chunk_ms.len())
        {
            let detail = format!(
                "usage says {total} completion tokens for {} content chunks of {chars} bytes",
                record.chunk_ms.len()
            );
            return failed(record, ErrorClass::Protocol, &detail);
        }
        count_output(&mut record, text.as_deref(), chars, counter);
        record.text = text.filter(|_| keep_text);
        if let Some(total) = record.output_tokens
            && !hot.per_chunk_usage
            && total != record.chunk_ms.len() as u64
        {
            // Usage came only at the end and chunks held several tokens each: share the total
            // among chunks by their text length.
            record.chunk_tokens = apportion(total, &text_bytes);
        }
        record
    }
}

/// Cuts `text` to [`MAX_TEXT_BYTES`] at a character boundary.
fn cut_text(text: &mut String) {
    if text.len() > MAX_TEXT_BYTES {
        let mut end = MAX_TEXT_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
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
    mut record: RequestRecord,
    reading: &Reading<'_>,
) -> RequestRecord {
    let (sent, deadline, counter) = (reading.sent, reading.deadline, reading.counter);
    let body = match tokio::time::timeout_at(deadline, read_capped(response, MAX_BODY_BYTES)).await
    {
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
        Ok(Ok((_, true))) => {
            return failed(
                record,
                ErrorClass::Protocol,
                &format!("response body longer than {MAX_BODY_BYTES} bytes"),
            );
        }
        Ok(Ok((body, false))) => body,
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
    record.server_timing = answer.timings.as_deref().copied();
    let mut text = String::new();
    answer.push_text(&mut text);
    if let Some(total) = record.output_tokens
        && total > plausible_tokens(text.len(), 1)
    {
        let detail = format!(
            "usage says {total} completion tokens for {} bytes of text",
            text.len()
        );
        return failed(record, ErrorClass::Protocol, &detail);
    }
    let bytes = text.len();
    cut_text(&mut text);
    count_output(&mut record, Some(&text), bytes, counter);
    if reading.keep_text {
        record.text = Some(text);
        let mut assembler = ToolCallAssembler::default();
        take_tool_calls(&mut assembler, &answer);
        record.tool_calls = assembler.finish();
    }
    record
}

/// Feeds the tool-call deltas of a chunk's choices to `assembler`.
fn take_tool_calls(assembler: &mut ToolCallAssembler, chunk: &Chunk<'_>) {
    let deltas = chunk.choices.iter().filter_map(|c| c.delta.as_ref());
    for calls in deltas.filter_map(|d| d.tool_calls.as_deref()) {
        assembler.take(calls);
    }
}

/// Up to `cap` bytes of a response body, and whether there was more (the rest is not read).
pub async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut body = Vec::new();
    while let Some(read) = response.chunk().await? {
        let room = cap - body.len();
        if read.len() > room {
            body.extend_from_slice(&read[..room]);
            return Ok((body, true));
        }
        body.extend_from_slice(&read);
    }
    Ok((body, false))
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
    // Saturating throughout: a total near u64::MAX must neither overflow nor loop. Each floor
    // loses less than 1, so at most `n` parts get one more.
    let assigned = parts.iter().fold(0u64, |a, &p| a.saturating_add(p));
    let left = usize::try_from(total.saturating_sub(assigned)).unwrap_or(usize::MAX);
    for &i in order.iter().take(left.min(n)) {
        parts[i] = parts[i].saturating_add(1);
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

    #[test]
    fn a_total_near_the_top_of_u64_neither_overflows_nor_loops() {
        let parts = apportion(u64::MAX, &[1, 2]);
        assert_eq!(parts, [u32::MAX, u32::MAX]);
        assert_eq!(apportion(u64::MAX, &[0, 0, 0]).len(), 3);
    }

    #[test]
    fn read_counts_since_an_earlier_reading_never_go_below_zero() {
        use super::ReadCounts;
        let earlier = ReadCounts {
            reads: 10,
            waited: 4,
        };
        let now = ReadCounts {
            reads: 25,
            waited: 9,
        };
        assert_eq!(
            now.since(earlier),
            ReadCounts {
                reads: 15,
                waited: 5
            }
        );
        assert_eq!(earlier.since(now), ReadCounts::default());
    }

    #[test]
    fn usage_far_beyond_the_text_is_implausible() {
        use super::plausible_tokens;
        assert!(plausible_tokens(10, 2) >= 8000);
        assert_eq!(plausible_tokens(usize::MAX, 1), u64::MAX);
    }

    /// Property (3,000 seeded cases): whatever usage a stream claims — zero, a little, up to
    /// `u64::MAX`, growing, shrinking — reading it never panics or loops, and a stream that
    /// passes has per-chunk token counts whose sum its text can hold (so the ITL samples
    /// derived from them are bounded).
    #[test]
    fn random_usage_claims_never_panic_and_passing_counts_are_plausible() {
        use rand::{Rng, SeedableRng};

        use super::{StreamState, plausible_tokens};
        use crate::metrics::RequestRecord;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(19);
        let claims = [0, 1, 2, 7, 100, u64::from(u32::MAX), u64::MAX - 1, u64::MAX];
        for _ in 0..3_000 {
            let mut state = StreamState::new(RequestRecord::default(), false, 4);
            state.limit_chunks(64);
            let chunks = rng.random_range(0..8);
            let mut result = Ok(());
            for i in 0..chunks {
                let usage = match rng.random_range(0..3) {
                    0 => String::new(),
                    1 => format!(
                        ",\"usage\":{{\"completion_tokens\":{}}}",
                        claims[rng.random_range(0..claims.len())]
                    ),
                    _ => format!(",\"usage\":{{\"completion_tokens\":{}}}", i + 1),
                };
                let finish = if i + 1 == chunks { "\"stop\"" } else { "null" };
                let event = format!(
                    "{{\"choices\":[{{\"text\":\" w{i}\",\"finish_reason\":{finish}}}]{usage}}}"
                );
                result = state.on_event(event.as_bytes(), f64::from(i) + 1.0);
                if result.is_err() {
                    break;
                }
            }
            if result.is_err() {
                continue;
            }
            let record = state.finish(None, false);
            if record.is_ok() {
                let total: u64 = record.chunk_tokens.iter().map(|&t| u64::from(t)).sum();
                assert!(
                    total <= plausible_tokens(4 * record.chunk_ms.len(), record.chunk_ms.len()),
                    "{record:?}"
                );
                assert!(record.itl_ms().count() as u64 <= total);
            }
        }
    }
}
