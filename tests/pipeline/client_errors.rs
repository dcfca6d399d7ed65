//! Whatever a server sends, the client records a classified result with its evidence and never
//! panics. Each test runs a scripted server on loopback that answers one request with fixed bytes.

use std::time::{Duration, Instant};

use llm_stress::case::{Api, Transport};
use llm_stress::client::{Client, ClientConfig, Generation};
use llm_stress::metrics::{ErrorClass, RequestRecord};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves one connection: reads the request, writes `response`, then (unless `hang`) closes.
async fn scripted(response: Vec<u8>, hang: bool) -> String {
    answering(move |_| response, hang).await
}

/// Serves one connection: reads the request, writes what `respond` makes of its bytes, then
/// (unless `hang`) closes.
async fn answering(respond: impl FnOnce(&[u8]) -> Vec<u8> + Send + 'static, hang: bool) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let Ok((mut socket, _)) = listener.accept().await else {
            return;
        };
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        // Read until the end of the headers and the announced body.
        loop {
            let Ok(n) = socket.read(&mut buf).await else {
                return;
            };
            if n == 0 {
                return;
            }
            request.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&request);
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    })
                    .unwrap_or(0);
                if request.len() >= end + 4 + length {
                    break;
                }
            }
        }
        if hang {
            tokio::time::sleep(Duration::from_secs(5)).await;
            return;
        }
        socket.write_all(&respond(&request)).await.ok();
        socket.shutdown().await.ok();
    });
    url
}

use crate::support::hostile::{http_response as http, sse_response as sse};

async fn request(url: &str, timeout_ms: u64) -> RequestRecord {
    let client = Client::new(ClientConfig::new(
        url,
        Api::Completions,
        "m",
        Duration::from_millis(timeout_ms),
    ))
    .expect("client");
    let request = Generation::exact("hello".into(), 4);
    client.generate(0, Instant::now(), &request).await
}

const TEXT: &[u8] = b"data: {\"choices\":[{\"text\":\" hi\",\"finish_reason\":null}]}\n\n";

#[tokio::test]
async fn http_statuses_are_classified_with_the_body_kept() {
    for (status, class) in [
        ("503 Service Unavailable", ErrorClass::Http503),
        ("429 Too Many Requests", ErrorClass::Http429),
        ("400 Bad Request", ErrorClass::Http4xx),
        ("500 Internal Server Error", ErrorClass::Http5xx),
    ] {
        let url = scripted(
            http(status, "application/json", b"{\"error\":\"busy\"}"),
            false,
        )
        .await;
        let record = request(&url, 2000).await;
        assert_eq!(record.error, Some(class), "{status}: {record:?}");
        assert_eq!(
            record.status.map(|s| s.to_string()),
            Some(status[..3].to_string())
        );
        let detail = record.error_detail.unwrap_or_default();
        assert!(detail.contains("busy"), "{detail}");
    }
}

#[tokio::test]
async fn a_stream_cut_before_done_is_broken_and_keeps_its_ttft() {
    let url = scripted(sse(TEXT), false).await;
    let record = request(&url, 2000).await;
    assert_eq!(record.error, Some(ErrorClass::BrokenStream), "{record:?}");
    assert!(record.ttft_ms.is_some());
}

#[tokio::test]
async fn malformed_json_and_bytes_are_protocol_errors() {
    for body in [&b"data: {not json\n\n"[..], &b"data: \xff\xfe\n\n"[..]] {
        let url = scripted(sse(body), false).await;
        let record = request(&url, 2000).await;
        assert_eq!(record.error, Some(ErrorClass::Protocol), "{record:?}");
    }
}

#[tokio::test]
async fn a_finished_stream_without_content_is_empty_output() {
    let url = scripted(
        sse(
            b"data: {\"choices\":[{\"text\":\"\",\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n",
        ),
        false,
    )
    .await;
    let record = request(&url, 2000).await;
    assert_eq!(record.error, Some(ErrorClass::EmptyOutput), "{record:?}");
}

#[tokio::test]
async fn without_usage_the_token_count_is_marked_estimated() {
    let mut body = TEXT.repeat(3);
    body.extend_from_slice(b"data: [DONE]\n\n");
    let url = scripted(sse(&body), false).await;
    let record = request(&url, 2000).await;
    assert!(record.is_ok(), "{record:?}");
    assert!(record.tokens_estimated);
    assert_eq!(record.chunk_ms.len(), 3);
}

#[tokio::test]
async fn refused_connections_and_silent_servers_are_connect_and_timeout() {
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        format!("http://{}", listener.local_addr().expect("addr"))
    };
    let record = request(&closed, 2000).await;
    assert_eq!(record.error, Some(ErrorClass::Connect), "{record:?}");
    let url = scripted(Vec::new(), true).await;
    let started = Instant::now();
    let record = request(&url, 200).await;
    assert_eq!(record.error, Some(ErrorClass::Timeout), "{record:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// A server that answers 401 quoting the request's headers back, as some gateways do.
async fn echoing_headers() -> String {
    let respond = |request: &[u8]| {
        let text = String::from_utf8_lossy(request);
        let head = &text[..text.find("\r\n\r\n").unwrap_or(text.len())];
        let quoted: Vec<&str> = head
            .lines()
            .filter(|l| {
                let l = l.to_ascii_lowercase();
                l.starts_with("authorization:") || l.starts_with("x-tenant:")
            })
            .collect();
        let body = format!("{{\"error\":\"rejected: {}\"}}", quoted.join(" | "));
        http("401 Unauthorized", "application/json", body.as_bytes())
    };
    answering(respond, false).await
}

#[tokio::test]
async fn the_api_key_is_sent_but_never_recorded() {
    let url = echoing_headers().await;
    let mut config = ClientConfig::new(&url, Api::Chat, "m", Duration::from_secs(2));
    config.api_key = Some("sk-test-0123456789".into());
    config.headers = vec![("X-Tenant".into(), "bench".into())];
    let client = Client::new(config).expect("client");
    let request = Generation::exact("hello".into(), 4);
    let record = client.generate(0, Instant::now(), &request).await;
    assert_eq!(record.error, Some(ErrorClass::Http4xx), "{record:?}");
    let detail = record.error_detail.clone().unwrap_or_default();
    // The server saw the key and the extra header; the record keeps neither the key...
    assert!(detail.contains("Bearer [REDACTED]"), "{detail}");
    assert!(detail.contains("bench"), "{detail}");
    // ...nor does anything serialised from it.
    let json = serde_json::to_string(&record).expect("json");
    assert!(!json.contains("sk-test-0123456789"), "{json}");
}

const KEY: &str = "sk-Hw4Lp9Qx2Zr7Kd5Tn8Vb3Mj6Fs1Gy0Ce";
const TENANT: &str = "Rk5-Wp8z-Qm3x-Jt7v";

/// Every run of 8 characters of `secret` that `text` contains.
fn leaks(text: &str, secret: &str) -> Vec<String> {
    (0..=secret.len().saturating_sub(8))
        .map(|i| &secret[i..i + 8])
        .filter(|piece| text.contains(piece))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn secrets_echoed_across_the_excerpt_cut_are_redacted_whole() {
    // The key and a header value at every offset around the 512-byte cut of the excerpt.
    let cut = llm_stress::client::BODY_EXCERPT_BYTES;
    for offset in (cut - 60)..(cut + 8) {
        let respond = move |_: &[u8]| {
            let body = format!(
                "{}Bearer {KEY} X-Tenant: {TENANT} {KEY}",
                "x".repeat(offset)
            );
            http("401 Unauthorized", "text/plain", body.as_bytes())
        };
        let url = answering(respond, false).await;
        let mut config = ClientConfig::new(&url, Api::Chat, "m", Duration::from_secs(2));
        config.api_key = Some(KEY.into());
        config.headers = vec![("X-Tenant".into(), TENANT.into())];
        let client = Client::new(config).expect("client");
        let record = client
            .generate(0, Instant::now(), &Generation::exact("hi".into(), 4))
            .await;
        let json = serde_json::to_string(&record).expect("json");
        assert!(leaks(&json, KEY).is_empty(), "offset {offset}: {json}");
        assert!(leaks(&json, TENANT).is_empty(), "offset {offset}: {json}");
    }
}

#[tokio::test]
async fn a_key_in_the_generated_text_is_not_kept() {
    let chunk = format!(
        "data: {{\"choices\":[{{\"text\":\"the key is {KEY}\",\"finish_reason\":\"stop\"}}]}}\n\ndata: [DONE]\n\n"
    );
    let url = scripted(sse(chunk.as_bytes()), false).await;
    let mut config = ClientConfig::new(&url, Api::Completions, "m", Duration::from_secs(2));
    config.api_key = Some(KEY.into());
    let client = Client::new(config).expect("client");
    let request = Generation {
        prompt: "what is the key?".into(),
        turns: Vec::new(),
        max_tokens: 16,
        ending: llm_stress::client::Ending::Natural { stop: Vec::new() },
        keep_text: true,
        tools: None,
    };
    let record = client.generate(0, Instant::now(), &request).await;
    assert!(record.is_ok(), "{record:?}");
    let text = record.text.clone().unwrap_or_default();
    assert_eq!(text, "the key is [REDACTED]");
}

#[tokio::test]
async fn a_data_line_that_never_ends_is_a_protocol_error_not_unbounded_memory() {
    let mut body = b"data: ".to_vec();
    body.extend(std::iter::repeat_n(b'x', 3 << 20));
    let url = scripted(sse(&body), false).await;
    let record = request(&url, 5000).await;
    assert_eq!(record.error, Some(ErrorClass::Protocol), "{record:?}");
    let detail = record.error_detail.unwrap_or_default();
    assert!(detail.contains("longer than 1048576 bytes"), "{detail}");
}

#[tokio::test]
async fn an_impossible_usage_count_is_a_protocol_error_at_once() {
    // Two chunks, then a usage of 2^64 − 1 completion tokens: sharing it among the chunks
    // once looped for ever.
    let body = format!(
        "{}{}data: {{\"choices\":[{{\"text\":\"\",\"finish_reason\":\"length\"}}],\"usage\":{{\"prompt_tokens\":3,\"completion_tokens\":{}}}}}\n\ndata: [DONE]\n\n",
        std::str::from_utf8(TEXT).expect("utf8"),
        std::str::from_utf8(TEXT).expect("utf8"),
        u64::MAX
    );
    let url = scripted(sse(body.as_bytes()), false).await;
    let started = Instant::now();
    let record = request(&url, 5000).await;
    assert_eq!(record.error, Some(ErrorClass::Protocol), "{record:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    let detail = record.error_detail.unwrap_or_default();
    assert!(
        detail.contains("completion tokens for 2 content chunks"),
        "{detail}"
    );
}

#[tokio::test]
async fn a_per_chunk_usage_jump_is_a_protocol_error() {
    let body = format!(
        "data: {{\"choices\":[{{\"text\":\" hi\",\"finish_reason\":null}}],\"usage\":{{\"completion_tokens\":{}}}}}\n\n",
        u32::MAX
    );
    let url = scripted(sse(body.as_bytes()), false).await;
    let record = request(&url, 2000).await;
    assert_eq!(record.error, Some(ErrorClass::Protocol), "{record:?}");
}

#[tokio::test]
async fn a_huge_error_body_is_not_read_whole() {
    let body = vec![b'e'; 64 << 20];
    let url = scripted(
        http("500 Internal Server Error", "text/plain", &body),
        false,
    )
    .await;
    let record = request(&url, 10_000).await;
    assert_eq!(record.error, Some(ErrorClass::Http5xx), "{record:?}");
    let detail = record.error_detail.unwrap_or_default();
    assert!(
        detail.len() <= llm_stress::client::BODY_EXCERPT_BYTES + 4,
        "{}",
        detail.len()
    );
}

#[test]
fn running_out_of_descriptors_or_ports_is_the_clients_fault() {
    use llm_stress::client::client_resource;
    for code in [libc::EMFILE, libc::ENFILE, libc::EADDRNOTAVAIL] {
        let error = std::io::Error::from_raw_os_error(code);
        assert!(client_resource(&error).is_some(), "{code}");
    }
    let refused = std::io::Error::from_raw_os_error(libc::ECONNREFUSED);
    assert!(client_resource(&refused).is_none());
    // Found below the error it caused, too.
    let wrapped = std::io::Error::other(std::io::Error::from_raw_os_error(libc::EMFILE));
    assert!(client_resource(&wrapped).is_some());
}

#[tokio::test]
async fn far_more_chunks_than_tokens_asked_for_is_a_protocol_error() {
    // Four tokens asked for; an endless stream of valid chunks is cut off at 1,024 chunks
    // instead of keeping a time for every one.
    let mut body = TEXT.repeat(5_000);
    body.extend_from_slice(b"data: [DONE]\n\n");
    let url = scripted(sse(&body), false).await;
    let record = request(&url, 5000).await;
    assert_eq!(
        record.error,
        Some(ErrorClass::Protocol),
        "{:?}",
        record.error_detail
    );
    assert!(record.chunk_ms.len() <= 1024, "{}", record.chunk_ms.len());
    let detail = record.error_detail.unwrap_or_default();
    assert!(detail.contains("more than 1024 content chunks"), "{detail}");
}

#[tokio::test]
async fn the_event_size_limit_is_the_clients_to_set() {
    let mut body = b"data: ".to_vec();
    body.extend(std::iter::repeat_n(b'x', 10_000));
    body.extend_from_slice(b"\n\n");
    let url = scripted(sse(&body), false).await;
    let mut config = ClientConfig::new(&url, Api::Completions, "m", Duration::from_secs(2));
    config.max_event_bytes = 4096;
    let client = Client::new(config).expect("client");
    let record = client
        .generate(0, Instant::now(), &Generation::exact("hi".into(), 4))
        .await;
    assert_eq!(record.error, Some(ErrorClass::Protocol), "{record:?}");
    let detail = record.error_detail.unwrap_or_default();
    assert!(detail.contains("longer than 4096 bytes"), "{detail}");
}

/// The direct HTTP/1.1 reader (`client.transport: direct`, the default) records every
/// scripted answer as reqwest does: the same class, status, content chunks and token count.
#[tokio::test]
async fn the_direct_reader_records_every_answer_as_reqwest_does() {
    let done = b"data: [DONE]\n\n".as_slice();
    let answers: Vec<(&str, Vec<u8>)> = vec![
        ("whole", sse(&[TEXT, TEXT, TEXT, done].concat())),
        ("no [DONE]", sse(&[TEXT, TEXT].concat())),
        (
            "500",
            http("500 Internal Server Error", "text/plain", b"boom"),
        ),
        (
            "429",
            http("429 Too Many Requests", "text/plain", b"slow down"),
        ),
        ("not JSON", sse(b"data: {not json\n\n")),
        ("empty", sse(done)),
    ];
    for (what, answer) in answers {
        let mut seen = Vec::new();
        for transport in [Transport::Reqwest, Transport::Direct] {
            let url = scripted(answer.clone(), false).await;
            let mut config = ClientConfig::new(&url, Api::Completions, "m", Duration::from_secs(2));
            config.transport = transport;
            let record = Client::new(config)
                .expect("client")
                .generate(0, Instant::now(), &Generation::exact("hello".into(), 4))
                .await;
            seen.push((
                record.error,
                record.status,
                record.chunk_ms.len(),
                record.output_tokens,
            ));
        }
        assert_eq!(seen[0], seen[1], "{what}: reqwest, then direct");
    }
}
