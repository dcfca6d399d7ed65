//! The streamed generation path's own HTTP/1.1 client.
//!
//! reqwest (hyper) reads a response on a connection task and hands the body to the reader
//! over a channel, one HTTP chunk and one task wake-up at a time, even when the socket holds
//! many chunks (measured with `bench-client`: one read per chunk in every mode). Here the task
//! that measures a stream reads its socket itself: one read takes every byte that is ready,
//! is stamped once with the kernel's receive time of its bytes ([`super::arrival`]), and its
//! chunked framing is decoded in place, in the buffer the kernel wrote (no copy to another
//! buffer per stream, which at hundreds of streams would be a cold one). It speaks plain `http://` only, as the harness does;
//! requests that are not streamed and the calls beside generation (`/tokenize`, `/health`,
//! `/metrics`) go through reqwest.
//!
//! What it implements of HTTP/1.1: one `POST` with a `Content-Length` body per connection at
//! a time; responses framed by `Transfer-Encoding: chunked` (extensions and trailers
//! skipped), by `Content-Length`, or by the connection's end; informational (1xx) heads
//! skipped; keep-alive with a pool of idle connections, a connection being reused only after
//! its response ended cleanly, and a request on a reused connection that the server had
//! closed being sent once more on a new one.

use std::io;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Bytes asked of the socket per read.
const READ_BYTES: usize = 16 * 1024;

/// Most bytes of a response head.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Most header lines of a response head.
const MAX_HEADERS: usize = 100;

/// Most hexadecimal digits of a chunk size (16 fill a `u64`).
const MAX_SIZE_DIGITS: u8 = 16;

/// Why a request or its response failed on this path.
#[derive(Debug, thiserror::Error)]
pub enum H1Error {
    /// The base URL is not a plain `http://` URL with a host.
    #[error("`{0}` is not an http:// URL with a host")]
    Url(String),
    /// No connection could be made.
    #[error("cannot connect to {addr}")]
    Connect {
        /// `host:port`.
        addr: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Writing the request failed.
    #[error("sending the request failed")]
    Send(#[source] io::Error),
    /// Reading the socket failed.
    #[error("reading the response failed")]
    Read(#[source] io::Error),
    /// The server closed the connection before a whole response head.
    #[error("connection closed before the response head")]
    ClosedBeforeHead,
    /// The response head is not HTTP/1.x.
    #[error("malformed response head: {0}")]
    Head(String),
    /// The response head is longer than [`MAX_HEAD_BYTES`].
    #[error("response head longer than {MAX_HEAD_BYTES} bytes")]
    HeadTooLong,
    /// The chunked framing of the body is broken.
    #[error("malformed chunked body: {0}")]
    Chunked(&'static str),
    /// The server closed the connection before the body's framing ended.
    #[error("connection closed before the body ended")]
    ClosedInBody,
}

/// Where a client's streamed requests go, the fixed part of their heads, and its idle
/// connections.
#[derive(Debug)]
pub struct H1Client {
    /// `host:port`, for connecting and for errors.
    addr: String,
    /// The base URL's path without a trailing `/`, put before every request path.
    path_prefix: String,
    /// The head's lines after the request line, up to (not including) `Content-Length`.
    fixed_lines: Vec<u8>,
    keep_alive: bool,
    idle: Arc<Mutex<Vec<TcpStream>>>,
}

impl H1Client {
    /// A client for `base_url` (`http://host[:port][/prefix]`) sending `headers` (name,
    /// value; already checked) with every request; `keep_alive` false sends
    /// `Connection: close` and keeps no connection.
    pub fn new(
        base_url: &str,
        headers: &[(String, String)],
        keep_alive: bool,
    ) -> Result<H1Client, H1Error> {
        let url = reqwest::Url::parse(base_url).map_err(|_| H1Error::Url(base_url.into()))?;
        // An IPv6 address comes bracketed, as a URL and a Host header write it.
        let Some(host) = url.host_str().map(str::to_string) else {
            return Err(H1Error::Url(base_url.into()));
        };
        if url.scheme() != "http" {
            return Err(H1Error::Url(base_url.into()));
        }
        let port = url.port_or_known_default().unwrap_or(80);
        let host_header = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.clone(),
        };
        let mut fixed_lines = format!("Host: {host_header}\r\naccept: */*\r\n").into_bytes();
        for (name, value) in headers {
            fixed_lines.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        if !keep_alive {
            fixed_lines.extend_from_slice(b"Connection: close\r\n");
        }
        fixed_lines.extend_from_slice(b"Content-Type: application/json\r\n");
        Ok(H1Client {
            addr: format!("{host}:{port}"),
            path_prefix: url.path().trim_end_matches('/').to_string(),
            fixed_lines,
            keep_alive,
            idle: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// Sends `POST {prefix}{path}` with the JSON `body` and reads the response head. A
    /// request on a reused connection that the server closed while it idled (nothing of a
    /// head came back) is sent once more on a new connection.
    pub async fn post(&self, path: &str, body: &[u8]) -> Result<H1Response, H1Error> {
        let mut request = Vec::with_capacity(self.fixed_lines.len() + body.len() + 128);
        request.extend_from_slice(b"POST ");
        request.extend_from_slice(self.path_prefix.as_bytes());
        request.extend_from_slice(path.as_bytes());
        request.extend_from_slice(b" HTTP/1.1\r\n");
        request.extend_from_slice(&self.fixed_lines);
        request.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        request.extend_from_slice(body);
        if let Some(stream) = self.take_idle() {
            match self.exchange(stream, &request).await {
                Err(H1Error::Send(_) | H1Error::ClosedBeforeHead) => {}
                Err(H1Error::Read(e)) if e.kind() == io::ErrorKind::ConnectionReset => {}
                done => return done,
            }
        }
        let stream = TcpStream::connect(&self.addr)
            .await
            .map_err(|source| H1Error::Connect {
                addr: self.addr.clone(),
                source,
            })?;
        // Chunks are small and latency-bound: no Nagle delay on the request.
        let _ = stream.set_nodelay(true);
        super::arrival::enable(&stream);
        self.exchange(stream, &request).await
    }

    fn take_idle(&self) -> Option<TcpStream> {
        if !self.keep_alive {
            return None;
        }
        self.idle.lock().ok()?.pop()
    }

    async fn exchange(&self, mut stream: TcpStream, request: &[u8]) -> Result<H1Response, H1Error> {
        // No byte of the answer arrives before the request is sent.
        let mut at = Instant::now();
        stream.write_all(request).await.map_err(H1Error::Send)?;
        let mut raw = Vec::with_capacity(READ_BYTES);
        loop {
            match parse_head(&raw)? {
                // An informational head: the real one follows.
                Some(head) if (100..200).contains(&head.status) => {
                    raw.drain(..head.len);
                    continue;
                }
                Some(head) => return Ok(self.response(stream, raw, head, at)),
                None if raw.len() > MAX_HEAD_BYTES => return Err(H1Error::HeadTooLong),
                None => {}
            }
            raw.reserve(READ_BYTES);
            let n;
            (n, at) = super::arrival::read(&stream, &mut raw, at, &mut false)
                .await
                .map_err(H1Error::Read)?;
            if n == 0 {
                return Err(H1Error::ClosedBeforeHead);
            }
        }
    }

    fn response(&self, stream: TcpStream, mut raw: Vec<u8>, head: Head, at: Instant) -> H1Response {
        raw.drain(..head.len);
        let framing = if head.status == 204 || head.status == 304 {
            Framing::Length(0)
        } else if head.chunked {
            Framing::Chunked(ChunkedDecoder::default())
        } else if let Some(length) = head.content_length {
            Framing::Length(length)
        } else {
            Framing::Close
        };
        let reusable = self.keep_alive && head.keep_alive && !matches!(framing, Framing::Close);
        H1Response {
            status: head.status,
            location: head.location,
            body: Body {
                stream: Some(stream),
                raw,
                start: 0,
                decoded: 0..0,
                pending_at: Some(at),
                last_at: at,
                framing,
                ended: false,
                reusable,
                pool: self.idle.clone(),
            },
        }
    }
}

/// A response's status and its body, not yet read.
#[derive(Debug)]
pub struct H1Response {
    /// The status code.
    pub status: u16,
    /// A redirect's `Location` (redirects are not followed).
    pub location: Option<String>,
    /// The body.
    pub body: Body,
}

/// What a response head says of the body and the connection.
#[derive(Debug, Clone, PartialEq)]
struct Head {
    /// Bytes of the head, its blank line included.
    len: usize,
    status: u16,
    chunked: bool,
    content_length: Option<u64>,
    /// HTTP/1.1 without `Connection: close`.
    keep_alive: bool,
    /// Where a redirect points.
    location: Option<String>,
}

/// Parses a response head at the start of `raw`; `None` while it is incomplete.
fn parse_head(raw: &[u8]) -> Result<Option<Head>, H1Error> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(raw) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(H1Error::Head(e.to_string())),
    };
    let status = response.code.unwrap_or_default();
    let mut head = Head {
        len,
        status,
        chunked: false,
        content_length: None,
        keep_alive: response.version == Some(1),
        location: None,
    };
    for header in response.headers.iter() {
        let value = String::from_utf8_lossy(header.value);
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked framing when it is the last coding.
            head.chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|coding| coding.trim().eq_ignore_ascii_case("chunked"));
        } else if header.name.eq_ignore_ascii_case("content-length") {
            let length = value
                .trim()
                .parse()
                .map_err(|_| H1Error::Head(format!("Content-Length `{value}`")))?;
            head.content_length = Some(length);
        } else if header.name.eq_ignore_ascii_case("location") {
            head.location = Some(value.into_owned());
        } else if header.name.eq_ignore_ascii_case("connection") {
            let tokens = || value.split(',').map(str::trim);
            if tokens().any(|t| t.eq_ignore_ascii_case("close")) {
                head.keep_alive = false;
            } else if tokens().any(|t| t.eq_ignore_ascii_case("keep-alive")) {
                head.keep_alive = true;
            }
        }
    }
    Ok(Some(head))
}

/// How the body's end is known.
#[derive(Debug)]
enum Framing {
    Chunked(ChunkedDecoder),
    /// Bytes still to come.
    Length(u64),
    /// The body ends with the connection.
    Close,
}

/// A response body read straight from its socket.
#[derive(Debug)]
pub struct Body {
    stream: Option<TcpStream>,
    /// Bytes read: `raw[decoded]` holds the body bytes of the last read (decoded in place),
    /// `raw[start..]` the bytes not yet decoded.
    raw: Vec<u8>,
    start: usize,
    decoded: Range<usize>,
    /// The arrival of bytes already read (with the head) and not yet handed out.
    pending_at: Option<Instant>,
    /// The arrival of the last bytes read: no later bytes arrived before it.
    last_at: Instant,
    framing: Framing,
    ended: bool,
    reusable: bool,
    pool: Arc<Mutex<Vec<TcpStream>>>,
}

impl Body {
    /// Reads what the socket has ready (waiting for it when nothing is) until it holds body
    /// bytes, then [`bytes`](Self::bytes) are those: when they arrived
    /// ([`super::arrival::read`]); `None` at the body's end. `waited` is set when the socket
    /// had nothing ready.
    pub async fn read(&mut self, waited: &mut bool) -> Result<Option<Instant>, H1Error> {
        std::future::poll_fn(|cx| self.poll_read(cx, waited)).await
    }

    /// [`read`](Self::read) as a poll, for a caller that keeps its own state instead of a
    /// future's (the stream reader: a future per layer is a cache line per layer and chunk).
    pub fn poll_read(
        &mut self,
        cx: &mut std::task::Context<'_>,
        waited: &mut bool,
    ) -> std::task::Poll<Result<Option<Instant>, H1Error>> {
        use std::task::Poll;
        loop {
            self.decoded = 0..0;
            if self.ended {
                return Poll::Ready(Ok(None));
            }
            if let Some(at) = self.pending_at.take() {
                self.decode()?;
                if !self.decoded.is_empty() {
                    return Poll::Ready(Ok(Some(at)));
                }
                if self.ended {
                    return Poll::Ready(Ok(None));
                }
            }
            let Some(stream) = self.stream.as_mut() else {
                return Poll::Ready(Ok(None));
            };
            // Every byte read before was decoded: the buffer starts again (a no-op when the
            // last poll found nothing).
            self.raw.clear();
            self.start = 0;
            self.raw.reserve(READ_BYTES);
            let (n, at) = std::task::ready!(super::arrival::poll_read(
                stream,
                &mut self.raw,
                self.last_at,
                waited,
                cx
            ))
            .map_err(H1Error::Read)?;
            self.last_at = at;
            if n == 0 {
                if matches!(self.framing, Framing::Close) {
                    self.ended = true;
                    self.stream = None;
                    return Poll::Ready(Ok(None));
                }
                return Poll::Ready(Err(H1Error::ClosedInBody));
            }
            self.pending_at = Some(at);
        }
    }

    /// The body bytes of the last [`read`](Self::read) that returned an instant.
    pub fn bytes(&self) -> &[u8] {
        &self.raw[self.decoded.clone()]
    }

    /// Decodes the undecoded bytes in place (they become `raw[decoded]`); ends the body (and
    /// gives its connection back to the pool when it can be reused) when its framing ends.
    fn decode(&mut self) -> Result<(), H1Error> {
        let from = self.start;
        let input = &mut self.raw[from..];
        let (used, written) = match &mut self.framing {
            Framing::Chunked(decoder) => {
                decoder.decode_in_place(input).map_err(H1Error::Chunked)?
            }
            Framing::Length(left) => {
                let take = input
                    .len()
                    .min(usize::try_from(*left).unwrap_or(usize::MAX));
                *left -= take as u64;
                (take, take)
            }
            Framing::Close => (input.len(), input.len()),
        };
        self.decoded = from..from + written;
        self.start = from + used;
        let framing_ended = match &self.framing {
            Framing::Chunked(decoder) => decoder.ended(),
            Framing::Length(left) => *left == 0,
            Framing::Close => false,
        };
        if framing_ended {
            self.ended = true;
            // Bytes after the end would be a second response nobody asked for.
            let clean = self.start == self.raw.len();
            if let Some(stream) = self.stream.take()
                && self.reusable
                && clean
                && let Ok(mut idle) = self.pool.lock()
            {
                idle.push(stream);
            }
        }
        Ok(())
    }

    /// Ends reading early (the answer said it was done). The rest of the body is usually
    /// only its framing's end, written right after the last event: what the socket already
    /// holds is decoded at once, without waiting, so that the connection goes back to the pool
    /// before the next request looks for one. When the end has not arrived yet, a task waits
    /// for it in the background, for a short while; a connection whose body does not end
    /// cleanly is closed.
    pub fn release(mut self) {
        if !self.reusable {
            return;
        }
        let mut rest = 0;
        loop {
            if self.ended || self.decode().is_err() {
                return;
            }
            rest += self.decoded.len();
            if rest > READ_BYTES {
                return;
            }
            let Some(stream) = self.stream.as_ref() else {
                return;
            };
            self.raw.clear();
            self.start = 0;
            self.raw.reserve(READ_BYTES);
            match stream.try_read_buf(&mut self.raw) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => return,
            }
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        self.pending_at = None;
        runtime.spawn(async move {
            let mut waited = false;
            let drain = async {
                while let Ok(Some(_)) = self.read(&mut waited).await {
                    rest += self.bytes().len();
                    if rest > READ_BYTES {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), drain).await;
        });
    }
}

/// Decodes `input`, the next bytes of a chunked body, into `out` with `decoder`: the bytes
/// used (all of them unless the body ended) and whether the body ended. The tests' and the
/// fuzz target's way into the in-place decoder that [`Body`] uses.
#[cfg(test)]
pub(crate) fn decode_chunked(
    decoder: &mut ChunkedDecoder,
    input: &[u8],
    out: &mut Vec<u8>,
) -> Result<(usize, bool), &'static str> {
    let used = decoder.decode(input, out)?;
    Ok((used, decoder.ended()))
}

/// Decoder of `Transfer-Encoding: chunked`.
#[derive(Debug, Default)]
pub(crate) struct ChunkedDecoder {
    state: ChunkState,
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum ChunkState {
    /// Reading a chunk's size.
    #[default]
    SizeStart,
    Size {
        value: u64,
        digits: u8,
    },
    /// Skipping a chunk extension (or whitespace) up to the line's end.
    Extension {
        value: u64,
    },
    /// The size line's CR came; its LF must follow.
    SizeLf {
        value: u64,
    },
    /// Bytes of the chunk still to come.
    Data(u64),
    /// The CR after a chunk's data.
    DataCr,
    /// The LF after a chunk's data.
    DataLf,
    /// In the trailer section (after the last chunk); `line_empty` while the current line
    /// has no character yet.
    Trailer {
        line_empty: bool,
    },
    End,
}

impl ChunkedDecoder {
    fn ended(&self) -> bool {
        self.state == ChunkState::End
    }

    /// Decodes `input` into `out`: the bytes used (all of them unless the body ended).
    #[cfg(test)]
    fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, &'static str> {
        let base = out.len();
        out.extend_from_slice(input);
        let (used, written) = self.decode_in_place(&mut out[base..])?;
        out.truncate(base + written);
        Ok(used)
    }

    /// Decodes `buf`, the next bytes of the body, in place: its data bytes are moved to its
    /// start (a byte only ever moves towards the start, so nothing is overwritten before it
    /// is read). The bytes used (all of them unless the body ended) and the data bytes.
    fn decode_in_place(&mut self, buf: &mut [u8]) -> Result<(usize, usize), &'static str> {
        use ChunkState::*;
        let (mut at, mut written) = (0, 0);
        while at < buf.len() {
            let byte = buf[at];
            self.state = match self.state {
                End => break,
                Data(left) => {
                    let take = (buf.len() - at).min(usize::try_from(left).unwrap_or(usize::MAX));
                    buf.copy_within(at..at + take, written);
                    written += take;
                    at += take;
                    let left = left - take as u64;
                    self.state = if left == 0 { DataCr } else { Data(left) };
                    continue;
                }
                SizeStart => match hex(byte) {
                    Some(digit) => Size {
                        value: u64::from(digit),
                        digits: 1,
                    },
                    None => return Err("a chunk size is not hexadecimal"),
                },
                Size { value, digits } => match (hex(byte), byte) {
                    (Some(_), _) if digits >= MAX_SIZE_DIGITS => {
                        return Err("a chunk size has too many digits");
                    }
                    (Some(digit), _) => Size {
                        value: value << 4 | u64::from(digit),
                        digits: digits + 1,
                    },
                    (None, b'\r') => SizeLf { value },
                    (None, b'\n') => after_size(value),
                    (None, b';' | b' ' | b'\t') => Extension { value },
                    (None, _) => return Err("a chunk size is not hexadecimal"),
                },
                Extension { value } => match byte {
                    b'\n' => after_size(value),
                    _ => Extension { value },
                },
                SizeLf { value } => match byte {
                    b'\n' => after_size(value),
                    _ => return Err("a chunk size line does not end in CRLF"),
                },
                DataCr => match byte {
                    b'\r' => DataLf,
                    b'\n' => SizeStart,
                    _ => return Err("a chunk's data is longer than its size"),
                },
                DataLf => match byte {
                    b'\n' => SizeStart,
                    _ => return Err("a chunk's data does not end in CRLF"),
                },
                Trailer { line_empty } => match byte {
                    b'\r' => Trailer { line_empty },
                    b'\n' if line_empty => End,
                    b'\n' => Trailer { line_empty: true },
                    _ => Trailer { line_empty: false },
                },
            };
            at += 1;
            if self.state == End {
                break;
            }
        }
        Ok((at, written))
    }
}

/// The state after a size line: the chunk's data, or the trailers after the last chunk.
fn after_size(size: u64) -> ChunkState {
    if size == 0 {
        ChunkState::Trailer { line_empty: true }
    } else {
        ChunkState::Data(size)
    }
}

fn hex(byte: u8) -> Option<u8> {
    (byte as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    /// Decodes `wire` fed in pieces of `step` bytes.
    fn decode_in_steps(wire: &[u8], step: usize) -> Result<(Vec<u8>, bool, usize), &'static str> {
        let mut decoder = ChunkedDecoder::default();
        let mut out = Vec::new();
        let mut used = 0;
        for piece in wire.chunks(step) {
            used += decoder.decode(piece, &mut out)?;
            if decoder.ended() {
                break;
            }
        }
        Ok((out, decoder.ended(), used))
    }

    #[rstest]
    #[case::plain(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n".as_slice(), b"hello world".as_slice())]
    #[case::upper_hex(b"A\r\n0123456789\r\n0\r\n\r\n".as_slice(), b"0123456789".as_slice())]
    #[case::extension(b"5;name=value\r\nhello\r\n0\r\n\r\n".as_slice(), b"hello".as_slice())]
    #[case::trailers(b"2\r\nok\r\n0\r\nX-Trailer: 1\r\n\r\n".as_slice(), b"ok".as_slice())]
    #[case::bare_lf(b"2\nok\n0\n\n".as_slice(), b"ok".as_slice())]
    #[case::sse(b"f\r\ndata: {\"a\":1}\n\n\r\n0\r\n\r\n".as_slice(), b"data: {\"a\":1}\n\n".as_slice())]
    fn chunked_bodies_decode_whole_in_any_pieces(#[case] wire: &[u8], #[case] body: &[u8]) {
        for step in [1, 2, 3, 7, wire.len()] {
            let (out, ended, used) = decode_in_steps(wire, step).unwrap();
            assert_eq!(out, body, "step {step}");
            assert!(ended, "step {step}");
            assert_eq!(used, wire.len(), "step {step}");
        }
    }

    #[rstest]
    #[case::not_hex(b"zz\r\n".as_slice())]
    #[case::too_long(b"2\r\nabc\r\n".as_slice())]
    #[case::no_lf(b"2\rx".as_slice())]
    #[case::too_many_digits(b"11111111111111111\r\n".as_slice())]
    fn broken_chunked_framing_is_an_error(#[case] wire: &[u8]) {
        assert!(decode_in_steps(wire, 1).is_err());
        assert!(decode_in_steps(wire, wire.len()).is_err());
    }

    #[test]
    fn bytes_after_the_last_chunk_are_left_unused() {
        let (out, ended, used) = decode_in_steps(b"1\r\na\r\n0\r\n\r\nHTTP/1.1", 64).unwrap();
        assert_eq!((out.as_slice(), ended, used), (b"a".as_slice(), true, 11));
    }

    #[rstest]
    #[case::chunked(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        200,
        true,
        None,
        true
    )]
    #[case::length_close(
        "HTTP/1.1 500 Oops\r\ncontent-length: 12\r\nConnection: close\r\n\r\n",
        500,
        false,
        Some(12),
        false
    )]
    #[case::http10("HTTP/1.0 200 OK\r\n\r\n", 200, false, None, false)]
    #[case::http10_keep_alive(
        "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
        200,
        false,
        Some(0),
        true
    )]
    #[case::gzip_then_chunked(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        200,
        true,
        None,
        true
    )]
    fn heads_say_how_the_body_is_framed(
        #[case] head: &str,
        #[case] status: u16,
        #[case] chunked: bool,
        #[case] content_length: Option<u64>,
        #[case] keep_alive: bool,
    ) {
        let parsed = parse_head(head.as_bytes()).unwrap().unwrap();
        assert_eq!(
            parsed,
            Head {
                len: head.len(),
                status,
                chunked,
                content_length,
                keep_alive,
                location: None,
            }
        );
        assert_eq!(
            parse_head(&head.as_bytes()[..head.len() - 1]).unwrap(),
            None
        );
    }

    #[test]
    fn a_bad_content_length_is_a_head_error() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: lots\r\n\r\n";
        assert!(matches!(parse_head(head), Err(H1Error::Head(_))));
    }

    #[rstest]
    #[case(
        "http://127.0.0.1:8000",
        "127.0.0.1:8000",
        "",
        "Host: 127.0.0.1:8000\r\n"
    )]
    #[case("http://localhost/v1/", "localhost:80", "/v1", "Host: localhost\r\n")]
    #[case("http://[::1]:9/", "[::1]:9", "", "Host: [::1]:9\r\n")]
    fn urls_give_the_address_prefix_and_host(
        #[case] url: &str,
        #[case] addr: &str,
        #[case] prefix: &str,
        #[case] host_line: &str,
    ) {
        let client = H1Client::new(url, &[], true).unwrap();
        assert_eq!(client.addr, addr);
        assert_eq!(client.path_prefix, prefix);
        assert!(client.fixed_lines.starts_with(host_line.as_bytes()));
    }

    #[rstest]
    #[case("https://example.com")]
    #[case("not a url")]
    fn only_plain_http_urls_are_taken(#[case] url: &str) {
        assert!(matches!(
            H1Client::new(url, &[], true),
            Err(H1Error::Url(_))
        ));
    }

    /// A one-connection server: answers each request read on it with `answer`, then closes
    /// when `close_after` requests were answered.
    async fn serve(answers: Vec<&'static [u8]>) -> (String, tokio::task::JoinHandle<usize>) {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let mut connections = 0;
            for answer in answers {
                let (mut socket, _) = listener.accept().await.unwrap();
                connections += 1;
                let mut request = vec![0u8; 4096];
                let _ = socket.read(&mut request).await.unwrap();
                socket.write_all(answer).await.unwrap();
            }
            connections
        });
        (url, task)
    }

    async fn read_all(body: &mut Body) -> Result<Vec<u8>, H1Error> {
        let mut out = Vec::new();
        let mut waited = false;
        while body.read(&mut waited).await?.is_some() {
            out.extend_from_slice(body.bytes());
        }
        Ok(out)
    }

    #[tokio::test]
    async fn a_chunked_answer_is_read_and_its_connection_kept() {
        let (url, server) = serve(vec![
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        ])
        .await;
        let client = H1Client::new(&url, &[("x-k".into(), "v".into())], true).unwrap();
        let mut response = client.post("/v1/completions", b"{}").await.unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(read_all(&mut response.body).await.unwrap(), b"abc");
        assert_eq!(client.idle.lock().unwrap().len(), 1);
        assert_eq!(server.await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_body_released_before_its_end_goes_back_to_the_pool_once_it_ends() {
        let (url, _server) = serve(vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        ])
        .await;
        let client = H1Client::new(&url, &[], true).unwrap();
        let mut response = client.post("/", b"{}").await.unwrap();
        let mut waited = false;
        // Only the head and the first chunk's framing may have been decoded so far.
        let _ = response.body.read(&mut waited).await.unwrap();
        response.body.release();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(client.idle.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_body_cut_short_is_an_error_and_a_close_framed_one_is_not() {
        let (url, _server) = serve(vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab",
            b"HTTP/1.1 200 OK\r\n\r\nall of it",
        ])
        .await;
        let client = H1Client::new(&url, &[], false).unwrap();
        let mut cut = client.post("/", b"{}").await.unwrap();
        assert!(matches!(
            read_all(&mut cut.body).await,
            Err(H1Error::ClosedInBody)
        ));
        let mut whole = client.post("/", b"{}").await.unwrap();
        assert_eq!(read_all(&mut whole.body).await.unwrap(), b"all of it");
        assert!(client.idle.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_reused_connection_the_server_closed_is_replaced() {
        // The first answer says keep-alive, but the server then closes that connection: the
        // second request goes out again on a new one.
        let (url, server) = serve(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nnew",
        ])
        .await;
        let client = H1Client::new(&url, &[], true).unwrap();
        let mut first = client.post("/", b"{}").await.unwrap();
        assert_eq!(read_all(&mut first.body).await.unwrap(), b"ok");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let mut second = client.post("/", b"{}").await.unwrap();
        assert_eq!(read_all(&mut second.body).await.unwrap(), b"new");
        assert_eq!(server.await.unwrap(), 2);
    }

    #[tokio::test]
    async fn nothing_listening_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let client = H1Client::new(&url, &[], true).unwrap();
        assert!(matches!(
            client.post("/", b"{}").await,
            Err(H1Error::Connect { .. })
        ));
    }
}
