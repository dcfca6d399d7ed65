//! The harness reports what the server really did: against the embedded server, whose
//! latencies are configured, measured TTFT, TPOT, ITL and E2EL match the configuration.

use std::time::Duration;

use std::sync::Arc;

use llm_stress::case::{Api, EmbeddedSpec, LoadSpec};
use llm_stress::client::{Client, ClientConfig, Generation};
use llm_stress::load::{self, Endpoint, RequestSource, Shape};
use llm_stress::metrics::Summary;
use llm_stress::prompts::synthetic_prompt;
use llm_stress::server::embedded::EmbeddedServer;

struct Closed {
    concurrency: u32,
    requests: u32,
    osl: u32,
}

async fn measure(spec: EmbeddedSpec, api: Api, closed: Closed) -> Summary {
    let server = EmbeddedServer::start(spec, "sim".into(), 0)
        .await
        .expect("embedded server starts");
    let config = ClientConfig::new(&server.base_url(), api, "sim", Duration::from_secs(10));
    let client = Client::new(config).expect("client builds");
    let prompts = (0..u64::from(closed.requests))
        .map(|i| Generation {
            prompt: synthetic_prompt(32, 1, i),
            max_tokens: closed.osl,
        })
        .collect();
    let endpoint = Endpoint {
        name: "default".into(),
        weight: 1.0,
        client,
    };
    let source = RequestSource::new(vec![endpoint], prompts, Vec::new(), 1).expect("source");
    let shape = Shape::Closed {
        concurrency: closed.concurrency,
        requests: closed.requests,
        duration: None,
    };
    let outcome = load::run(&LoadSpec::default(), &shape, &Arc::new(source)).await;
    server.shutdown().await;
    assert_eq!(outcome.records.len(), closed.requests as usize);
    Summary::from_records(&outcome.records, outcome.duration_s)
}

fn load(concurrency: u32, requests: u32, osl: u32) -> Closed {
    Closed {
        concurrency,
        requests,
        osl,
    }
}

fn assert_close(what: &str, measured: f64, truth: f64, slack_ms: f64) {
    assert!(
        measured >= truth - 0.5 && measured <= truth + slack_ms,
        "{what}: measured {measured:.3} ms, configured {truth:.3} ms (allowed +{slack_ms} ms)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_ttft_and_token_time_are_what_is_reported() {
    let spec = EmbeddedSpec {
        ttft_ms: 50.0,
        tpot_ms: 10.0,
        slots: 8,
        ..Default::default()
    };
    let s = measure(spec, Api::Chat, load(4, 12, 20)).await;
    assert_eq!((s.requests_ok, s.requests_failed), (12, 0));
    assert_eq!(s.output_tokens, 12 * 20);
    let ttft = s.ttft_ms.expect("ttft");
    let tpot = s.tpot_ms.expect("tpot");
    let itl = s.itl_ms.expect("itl");
    let e2el = s.e2el_ms.expect("e2el");
    assert_close("TTFT mean", ttft.mean, 50.0, 5.0);
    assert_close("TTFT p99", ttft.p99, 50.0, 10.0);
    assert_close("TPOT mean", tpot.mean, 10.0, 0.5);
    assert_close("ITL p50", itl.p50, 10.0, 1.0);
    assert_close("E2EL mean", e2el.mean, 50.0 + 19.0 * 10.0, 6.0);
    // 1000 / TPOT: 100 tok/s per user, within the TPOT tolerance.
    assert!(
        (s.tput_user - 100.0).abs() < 5.0,
        "tput_user {}",
        s.tput_user
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_slots_queue_and_their_ttft_shows_it() {
    let spec = EmbeddedSpec {
        ttft_ms: 30.0,
        tpot_ms: 5.0,
        slots: 1,
        ..Default::default()
    };
    // Two users, one slot: one request waits for the other (30 + 9 × 5 = 75 ms) every time.
    let s = measure(spec, Api::Completions, load(2, 6, 10)).await;
    assert_eq!(s.requests_ok, 6);
    let ttft = s.ttft_ms.expect("ttft");
    assert_close("TTFT min", ttft.min, 30.0, 5.0);
    assert_close("TTFT max", ttft.max, 30.0 + 75.0, 10.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_token_chunks_split_their_gap_among_their_tokens() {
    let spec = EmbeddedSpec {
        ttft_ms: 20.0,
        tpot_ms: 4.0,
        slots: 4,
        tokens_per_chunk: 4,
        ..Default::default()
    };
    let s = measure(spec, Api::Chat, load(1, 3, 17)).await;
    assert_eq!(s.output_tokens, 3 * 17);
    // Chunks of 4 tokens arrive every 16 ms; each token's share of the gap is 4 ms.
    let itl = s.itl_ms.expect("itl");
    // Chunks carry 4, 4, 4, 4 and 1 tokens; every chunk after the first adds one gap per token.
    assert_eq!(itl.count, 3 * 13);
    assert_close("ITL p50", itl.p50, 4.0, 1.0);
    // The first chunk is sent when its fourth token is due: 20 + 3 × 4 ms.
    assert_close("TTFT mean", s.ttft_ms.expect("ttft").mean, 32.0, 5.0);
}
