//! Server-sent-event framing (the WHATWG `text/event-stream` rules) over the reads of a
//! response body, without copying a read that holds whole lines and without allocating per
//! event.
//!
//! Why not `eventsource-stream`: it copies its whole remaining buffer after every line it
//! takes (quadratic in the events per read) and allocates three strings per event; at a
//! zero-latency server that was a quarter of the client's CPU time (see the book's client
//! benchmark). The rules implemented here are the same: lines end at `\n`, `\r\n` or `\r`; a
//! blank line dispatches the event; `data` fields are joined with `\n`; comments (`:`) and the
//! other fields are read and ignored; a leading byte-order mark is skipped.

/// Most bytes of one line or one event's data a parser holds by default (1 MiB): a server
/// that sends a longer one, or a `data:` line that never ends, makes the stream a `protocol`
/// error instead of growing the client's memory without bound.
pub const MAX_EVENT_BYTES: usize = crate::case::limits::DEFAULT_EVENT_BYTES;

/// Incremental SSE parser: feed it each read; it calls back with each complete event's data.
#[derive(Debug)]
pub struct SseParser {
    /// An incomplete last line carried over from the previous read.
    partial: Vec<u8>,
    /// The data of the event being assembled (`data` lines joined by `\n`).
    data: Vec<u8>,
    /// Whether the event being assembled has a `data` field.
    has_data: bool,
    /// The previous read ended in `\r`: a `\n` starting the next read belongs to it.
    skip_lf: bool,
    /// Whether the first byte of the stream has been seen (for the byte-order mark).
    started: bool,
    /// Most bytes of a carried-over line or of one event's data.
    limit: usize,
    /// A line or an event grew past `limit`: the stream is unusable, later reads are ignored.
    overflowed: bool,
}

impl Default for SseParser {
    fn default() -> Self {
        SseParser::with_limit(MAX_EVENT_BYTES)
    }
}

const BOM: &[u8] = "\u{feff}".as_bytes();

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> SseParser {
        SseParser::default()
    }

    /// A parser that holds at most `limit` bytes of one line or one event's data.
    pub fn with_limit(limit: usize) -> SseParser {
        SseParser {
            partial: Vec::new(),
            data: Vec::new(),
            has_data: false,
            skip_lf: false,
            started: false,
            limit,
            overflowed: false,
        }
    }

    /// Whether a line or an event was longer than the limit (nothing more is parsed).
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Most bytes of one line or one event's data this parser holds.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes held now: the carried-over line and the event's data (each at most the limit).
    #[cfg(test)]
    pub(crate) fn held(&self) -> (usize, usize) {
        (self.partial.len(), self.data.len())
    }

    /// Gives up on the stream, freeing what it held, when `held` bytes are over the limit.
    fn check(&mut self, held: usize) {
        if held > self.limit {
            self.overflowed = true;
            self.partial = Vec::new();
            self.data = Vec::new();
        }
    }

    /// Parses one read; calls `on_event` with the data of every event it completes, in order.
    /// Stops early, returning the callback's error, when the callback fails.
    pub fn feed<E>(
        &mut self,
        mut read: &[u8],
        mut on_event: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        // An empty read changes nothing (and must not use up a pending `\r\n` half).
        if self.overflowed || read.is_empty() {
            return Ok(());
        }
        if !self.started {
            // The byte-order mark may arrive split across reads: its first bytes are held
            // (in `partial`) until the rest shows whether it is one.
            let held = self.partial.len();
            let wanted = &BOM[held..];
            let n = wanted.len().min(read.len());
            if read[..n] == wanted[..n] {
                if n < wanted.len() {
                    self.partial.extend_from_slice(read);
                    return Ok(());
                }
                self.partial.clear();
                read = &read[n..];
            }
            self.started = true;
            if read.is_empty() {
                return Ok(());
            }
        }
        if self.skip_lf {
            self.skip_lf = false;
            read = read.strip_prefix(b"\n").unwrap_or(read);
        }
        if !self.partial.is_empty() {
            // Finish the carried-over line with this read's first line.
            match memchr::memchr2(b'\n', b'\r', read) {
                None => {
                    self.partial.extend_from_slice(read);
                    self.check(self.partial.len());
                    return Ok(());
                }
                Some(end) => {
                    let mut line = std::mem::take(&mut self.partial);
                    line.extend_from_slice(&read[..end]);
                    read = self.after_terminator(read, end);
                    let result = self.line(&line, &mut on_event);
                    line.clear();
                    self.partial = line;
                    result?;
                }
            }
        }
        // The common event is one `data` line: it is handed over straight from the read,
        // and copied only when a second data line follows or the read ends first.
        let mut single: Option<&[u8]> = None;
        while let Some(end) = memchr::memchr2(b'\n', b'\r', read) {
            let line = &read[..end];
            read = self.after_terminator(read, end);
            match (single, data_value(line)) {
                (None, Some(value)) if !self.has_data => {
                    // Held or not, an event's data obeys the limit: the same stream must not
                    // pass or fail by how its bytes fell into reads.
                    self.check(value.len() + 1);
                    if self.overflowed {
                        return Ok(());
                    }
                    single = Some(value);
                }
                (Some(data), _) if line.is_empty() => {
                    single = None;
                    on_event(data)?;
                }
                (Some(data), _) => {
                    single = None;
                    self.start_data(data);
                    self.line(line, &mut on_event)?;
                }
                (None, _) => self.line(line, &mut on_event)?,
            }
        }
        if let Some(data) = single {
            self.start_data(data);
        }
        if !self.overflowed {
            self.partial.extend_from_slice(read);
            self.check(self.partial.len());
        }
        Ok(())
    }

    /// Begins the event's data with `value`, as a `data` line would.
    fn start_data(&mut self, value: &[u8]) {
        if self.overflowed {
            return;
        }
        self.has_data = true;
        self.data.extend_from_slice(value);
        self.data.push(b'\n');
        self.check(self.data.len());
    }

    /// The rest of `read` after the line terminator at `end` (`\r\n` counts as one).
    fn after_terminator<'a>(&mut self, read: &'a [u8], end: usize) -> &'a [u8] {
        if read[end] == b'\r' {
            match read.get(end + 1) {
                Some(b'\n') => return &read[end + 2..],
                None => self.skip_lf = true,
                Some(_) => {}
            }
        }
        &read[end + 1..]
    }

    fn line<E>(
        &mut self,
        line: &[u8],
        on_event: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        if line.is_empty() {
            if !self.has_data || self.overflowed {
                return Ok(());
            }
            self.has_data = false;
            // The data buffer ends with the `\n` of its last line, which is not part of it.
            let data = self.data.strip_suffix(b"\n").unwrap_or(&self.data);
            let result = on_event(data);
            self.data.clear();
            return result;
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(0) => return Ok(()), // a comment
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        if field == b"data" {
            self.start_data(value);
        }
        Ok(())
    }
}

/// The value of a `data` line (`data: v`, `data:v` or `data`), or `None` for any other line.
fn data_value(line: &[u8]) -> Option<&[u8]> {
    let rest = line.strip_prefix(b"data")?;
    match rest.first() {
        None => Some(rest),
        Some(b':') => Some(rest[1..].strip_prefix(b" ").unwrap_or(&rest[1..])),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn events(reads: &[&[u8]]) -> Vec<String> {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        for read in reads {
            parser
                .feed(read, |data| {
                    out.push(String::from_utf8_lossy(data).into_owned());
                    Ok::<(), ()>(())
                })
                .expect("no callback error");
        }
        out
    }

    #[rstest]
    #[case::one_read(&["data: a\n\ndata: b\n\n"], &["a", "b"])]
    #[case::crlf(&["data: a\r\n\r\ndata: b\r\n\r\n"], &["a", "b"])]
    #[case::cr_only(&["data: a\r\rdata: b\r\r"], &["a", "b"])]
    #[case::split_mid_field(&["da", "ta: hel", "lo\n", "\n"], &["hello"])]
    #[case::split_inside_crlf(&["data: a\r", "\n\r", "\n"], &["a"])]
    #[case::multi_line_data(&["data: a\ndata: b\n\n"], &["a\nb"])]
    #[case::no_space_after_colon(&["data:x\n\n"], &["x"])]
    #[case::comments_and_other_fields(&[": ping\nevent: message\nid: 7\nretry: 5\ndata: x\n\n"], &["x"])]
    #[case::no_data_no_event(&["event: ping\n\n\n\n"], &[])]
    #[case::empty_data_is_an_event(&["data\n\n"], &[""])]
    #[case::bom(&["\u{feff}data: a\n\n"], &["a"])]
    #[case::unterminated_event_is_not_dispatched(&["data: a\n"], &[])]
    #[case::empty_read_between_cr_and_lf(&["data: a\r", "", "\ndata: b\n\n"], &["a\nb"])]
    #[case::done(&["data: {\"x\":1}\n\ndata: [DONE]\n\n"], &["{\"x\":1}", "[DONE]"])]
    fn events_follow_the_event_stream_rules(#[case] reads: &[&str], #[case] expected: &[&str]) {
        let reads: Vec<&[u8]> = reads.iter().map(|r| r.as_bytes()).collect();
        assert_eq!(events(&reads), expected);
    }

    #[test]
    fn every_split_of_a_stream_gives_the_same_events() {
        let stream = b"data: one\r\n\r\n: c\ndata: two\ndata: 2\n\ndata:three\r\rdata: four\n\n";
        let whole = events(&[stream]);
        assert_eq!(whole, ["one", "two\n2", "three", "four"]);
        for cut in 0..stream.len() {
            for cut2 in cut..stream.len() {
                let reads: [&[u8]; 3] = [&stream[..cut], &stream[cut..cut2], &stream[cut2..]];
                assert_eq!(events(&reads), whole, "cuts at {cut} and {cut2}");
            }
        }
    }

    #[test]
    fn a_byte_order_mark_split_across_reads_is_still_skipped() {
        let bom = "\u{feff}".as_bytes();
        let reads: [&[u8]; 3] = [&bom[..1], &bom[1..], b"data: a\n\n"];
        assert_eq!(events(&reads), ["a"]);
        // Bytes that only start like one are kept as text.
        let reads: [&[u8]; 2] = [&bom[..2], b"data: a\n\n"];
        assert_eq!(events(&reads), Vec::<String>::new());
    }

    #[test]
    fn a_callback_error_stops_parsing() {
        let mut parser = SseParser::new();
        let mut seen = 0;
        let result = parser.feed(b"data: a\n\ndata: b\n\n", |_| {
            seen += 1;
            Err("stop")
        });
        assert_eq!((result, seen), (Err("stop"), 1));
    }

    #[rstest]
    #[case::a_line_that_never_ends(&[b"data: " as &[u8], &[b'x'; 600], &[b'x'; 600]])]
    #[case::many_data_lines_in_one_event(&[b"data: 0123456789\n" as &[u8]; 100])]
    fn a_line_or_event_over_the_limit_overflows_and_frees_its_memory(#[case] reads: &[&[u8]]) {
        let mut parser = SseParser::with_limit(1000);
        let mut seen = 0;
        for read in reads {
            parser
                .feed(read, |_| {
                    seen += 1;
                    Ok::<(), ()>(())
                })
                .expect("no callback error");
        }
        assert!(parser.overflowed());
        assert_eq!(seen, 0);
        assert!(parser.partial.capacity() == 0 && parser.data.capacity() == 0);
        // Nothing after the overflow is parsed.
        parser
            .feed(b"\n\ndata: a\n\n", |_| {
                seen += 1;
                Ok::<(), ()>(())
            })
            .expect("ignored");
        assert_eq!(seen, 0);
    }

    /// A random stream over the bytes that matter to the framing.
    fn random_stream(rng: &mut impl rand::Rng) -> Vec<u8> {
        const PIECES: [&[u8]; 10] = [
            b"data: ",
            b"data:",
            b"\n",
            b"\r",
            b"\r\n",
            b": c",
            b"x",
            b"{\"a\":1}",
            b"event: e",
            "\u{feff}".as_bytes(),
        ];
        let n = rng.random_range(0..60);
        (0..n)
            .flat_map(|_| PIECES[rng.random_range(0..PIECES.len())].iter().copied())
            .collect()
    }

    /// Property (5,000 seeded cases): however a random stream is split into reads, the
    /// parser gives the events of the whole stream, never panics, and with a small limit
    /// holds no more than the limit.
    #[test]
    fn random_streams_split_anywhere_give_the_same_events_within_the_limit() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(19);
        for _ in 0..5_000 {
            let stream = random_stream(&mut rng);
            let whole = events(&[&stream]);
            let mut reads = Vec::new();
            let mut rest = &stream[..];
            while !rest.is_empty() {
                let cut = rng.random_range(0..=rest.len());
                reads.push(&rest[..cut]);
                rest = &rest[cut..];
            }
            assert_eq!(
                events(&reads),
                whole,
                "{:?}",
                String::from_utf8_lossy(&stream)
            );
            let mut small = SseParser::with_limit(16);
            for read in &reads {
                small
                    .feed(read, |_| Ok::<(), ()>(()))
                    .expect("no callback error");
                assert!(small.partial.len() <= 16 && small.data.len() <= 16);
            }
        }
    }
}
