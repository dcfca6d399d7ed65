//! The harness reports what the server really did. Against a scripted server that logs the
//! instant of every chunk it writes, measured TTFT, ITL and E2EL match that truth at
//! concurrency 1, 64 and 512; open-loop schedules are kept; a stalled server shows in the
//! intended-time percentiles; and against the embedded server, measured latencies match its
//! configuration.

use std::path::Path;
use std::time::Duration;

use std::sync::Arc;

use llm_stress::bench::clock::ClockPair;
use llm_stress::bench::server::{Script, ScriptServer};
use llm_stress::bench::{fetch_log, spawn_server};
use llm_stress::case::{Api, Arrival, EmbeddedSpec, LoadMode, LoadSpec, Rates, WhenFull};
use llm_stress::client::{Client, ClientConfig, Generation};
use llm_stress::load::{self, Endpoint, RequestSource};
use llm_stress::metrics::Distribution;
use llm_stress::metrics::Summary;
use llm_stress::plan::Shape;
use llm_stress::server::embedded::EmbeddedServer;
use rstest::rstest;

/// A source of `requests` prompts `req-0`, `req-1`, … (the truth server keys its log by them).
fn numbered_source(url: &str, api: Api, requests: u32, max_tokens: u32) -> Arc<RequestSource> {
    let config = ClientConfig::new(url, api, "m", Duration::from_secs(30));
    let endpoint = Endpoint {
        name: "default".into(),
        weight: 1.0,
        client: Client::new(config).expect("client builds"),
    };
    let prompts = (0..requests)
        .map(|i| Generation::exact(format!("req-{i}"), max_tokens))
        .collect();
    let warmup = vec![Generation::exact("warm-up".into(), max_tokens)];
    Arc::new(RequestSource::new(vec![endpoint], prompts, warmup, 1).expect("source"))
}

/// Within 2 % or `floor_ms` of the truth, whichever is looser.
fn assert_within(what: &str, measured: f64, truth: f64, floor_ms: f64) {
    let allowed = (truth.abs() * 0.02).max(floor_ms);
    assert!(
        (measured - truth).abs() <= allowed,
        "{what}: measured {measured:.3} ms, truth {truth:.3} ms (allowed ±{allowed:.3} ms)"
    );
}

/// The most requests that were in flight at one time (send to last chunk).
fn most_in_flight(records: &[llm_stress::metrics::RequestRecord]) -> usize {
    let mut events: Vec<(f64, i32)> = records
        .iter()
        .flat_map(|r| [(r.send_ms, 1), (r.send_ms + r.e2el_ms.unwrap_or(0.0), -1)])
        .collect();
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut now = 0i32;
    let mut most = 0i32;
    for (_, change) in events {
        now += change;
        most = most.max(now);
    }
    most as usize
}

fn ms(from_ns: u64, to_ns: u64) -> f64 {
    (to_ns as f64 - from_ns as f64) / 1e6
}

/// How the fidelity run loads the server.
#[derive(Clone, Copy, Debug)]
enum Drive {
    /// C in flight, all starting together (every stream's chunks are written in the same
    /// instant: the worst burst).
    Closed(u32),
    /// Arrivals at this rate: with 340 ms per request, 1,500 req/s keeps about 510 in flight,
    /// started as users arrive rather than all at once.
    Open(f64),
}

#[rstest]
// Tails (p90, p99) get `tail_ms`: on this 2-core machine, shared by the server process and
// the client, a client thread descheduled for a time slice stamps a burst of chunks late,
// more often the more streams there are (measured: up to 2–5 ms at 512 streams in some runs).
#[case::c1(Drive::Closed(1), 16, 1, 3.0)]
#[case::c64(Drive::Closed(64), 64, 64, 3.0)]
#[case::c512(Drive::Open(1500.0), 1024, 480, 6.0)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttft_itl_and_e2el_match_the_servers_own_log(
    #[case] drive: Drive,
    #[case] requests: u32,
    #[case] least_in_flight: usize,
    #[case] tail_ms: f64,
) {
    llm_stress::os::raise_open_file_limit();
    let tokens = 16u32;
    // The scripted server runs in its own process, as a real server does: 40 ms to the first
    // chunk, then one every 20 ms, logging CLOCK_MONOTONIC before each write.
    let server = spawn_server(
        Path::new(env!("CARGO_BIN_EXE_llm-stress")),
        &[
            "--tokens".into(),
            tokens.to_string(),
            "--ttft-us".into(),
            "40000".into(),
            "--itl-us".into(),
            "20000".into(),
            "--log".into(),
        ],
    )
    .await
    .expect("bench server starts");
    let source = numbered_source(&server.url, Api::Completions, requests, tokens);
    let (shape, concurrency) = match drive {
        Drive::Closed(concurrency) => (
            Shape::Closed {
                concurrency,
                requests,
                duration: None,
            },
            concurrency,
        ),
        Drive::Open(rate) => (Shape::Open { rate, requests }, 512),
    };
    // One unmeasured request per stream first, so every stream's connection is open (its
    // prompt is not numbered, so the log keeps the measured requests).
    let load = LoadSpec {
        warmup: llm_stress::case::Warmup::Requests(concurrency),
        mode: match drive {
            Drive::Closed(_) => LoadMode::Closed,
            Drive::Open(_) => LoadMode::Open,
        },
        arrival: Arrival::Constant,
        ..LoadSpec::default()
    };
    let clocks = ClockPair::now();
    let outcome = load::run(&load, &shape, &source).await;
    let log = fetch_log(&server.url).await.expect("write log");
    assert_eq!(outcome.records.len(), requests as usize);
    assert_eq!(outcome.dropped, 0);
    let in_flight = most_in_flight(&outcome.records);
    assert!(
        in_flight >= least_in_flight,
        "only {in_flight} requests were in flight at once"
    );
    let (mut truth_ttft, mut truth_itl, mut truth_e2el) = (Vec::new(), Vec::new(), Vec::new());
    let mut stamp_errors = Vec::new();
    let start = clocks.ns_of(outcome.window_start);
    for record in &outcome.records {
        assert!(record.is_ok(), "{record:?}");
        assert_eq!(record.output_tokens, Some(u64::from(tokens)));
        let writes = log.get(&record.id).expect("the server logged the request");
        let sent = start + (record.send_ms * 1e6) as u64;
        truth_ttft.push(ms(sent, writes[0]));
        truth_e2el.push(ms(sent, *writes.last().expect("writes")));
        truth_itl.extend(writes.windows(2).map(|w| ms(w[0], w[1])));
        // Chunks read together share one stamp, so compare per chunk against its own write.
        for (&write, stamp) in writes.iter().zip(&record.chunk_ms) {
            stamp_errors.push(record.send_ms + stamp - ms(start, write));
        }
    }
    let summary = Summary::from_records(&outcome.records, outcome.duration_s);
    for (name, measured, truth) in [
        ("ttft", summary.ttft_ms, truth_ttft),
        ("itl", summary.itl_ms, truth_itl),
        ("e2el", summary.e2el_ms, truth_e2el),
    ] {
        let measured = measured.expect("measured");
        let truth = Distribution::from_ms(truth).expect("truth");
        assert_eq!(measured.count, truth.count, "{name} count");
        for stat in ["mean", "p50"] {
            let m = measured.stat(stat).expect("stat");
            let t = truth.stat(stat).expect("stat");
            assert_within(&format!("{drive:?} {name} {stat}"), m, t, 1.0);
        }
        for stat in ["p90", "p99"] {
            let m = measured.stat(stat).expect("stat");
            let t = truth.stat(stat).expect("stat");
            assert_within(&format!("{drive:?} {name} {stat}"), m, t, tail_ms);
        }
    }
    let errors = Distribution::from_ms(stamp_errors).expect("errors");
    eprintln!(
        "{drive:?}, {in_flight} in flight: chunk stamp error vs server write: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        errors.p50, errors.p99, errors.max
    );
    assert!(
        errors.min >= -0.01,
        "a chunk was stamped before it was written: {errors:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_loop_at_500_per_second_keeps_its_rate_and_count() {
    let server = EmbeddedServer::start(
        EmbeddedSpec {
            ttft_ms: 2.0,
            tpot_ms: 1.0,
            slots: 512,
            ..Default::default()
        },
        "sim".into(),
        0,
    )
    .await
    .expect("embedded server starts");
    let source = numbered_source(&server.base_url(), Api::Completions, 1000, 4);
    let load = LoadSpec {
        mode: LoadMode::Open,
        rate: Rates(vec![500.0]),
        arrival: Arrival::Constant,
        warmup: llm_stress::case::Warmup::Requests(0),
        ..LoadSpec::default()
    };
    let shape = Shape::Open {
        rate: 500.0,
        requests: 1000,
    };
    let outcome = load::run(&load, &shape, &source).await;
    server.shutdown().await;
    let summary = Summary::from_records(&outcome.records, outcome.duration_s)
        .with_arrivals(Some(500.0), outcome.dropped);
    assert_eq!(outcome.dropped, 0);
    assert_eq!(outcome.records.len(), 1000, "every arrival was sent");
    assert_eq!(summary.requests_ok, 1000);
    assert!(
        (summary.send_rate - 500.0).abs() <= 5.0,
        "send rate {:.2} req/s, asked 500",
        summary.send_rate
    );
    let lateness = summary.lateness_ms.expect("lateness");
    eprintln!(
        "open loop 500/s: send rate {:.2}, lateness p50 {:.3} ms p99 {:.3} ms max {:.3} ms",
        summary.send_rate, lateness.p50, lateness.p99, lateness.max
    );
    // The schedule is absolute: lateness does not accumulate over the run.
    let last = outcome.records.last().expect("records");
    assert!(
        last.lateness_ms().expect("intended") < 20.0,
        "the last send was {:.3} ms late",
        last.lateness_ms().unwrap_or_default()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_second_stall_shows_in_intended_time_percentiles() {
    let script = Script {
        ttft: Duration::from_millis(5),
        itl: Duration::from_millis(1),
        tokens: 4,
        stall_first: Duration::from_secs(2),
        ..Script::default()
    };
    let server = ScriptServer::start(script, 0, false)
        .await
        .expect("server starts");
    let source = numbered_source(&server.url, Api::Completions, 150, script.tokens);
    // 50 req/s for 3 s with one request in flight: while the first answer stalls, the next
    // arrivals wait for the slot. Counted from their actual send they look fast; counted
    // from when they were due they took up to 2 s.
    let load = LoadSpec {
        mode: LoadMode::Open,
        rate: Rates(vec![50.0]),
        arrival: Arrival::Constant,
        max_in_flight: Some(1),
        when_full: WhenFull::Wait,
        warmup: llm_stress::case::Warmup::Requests(0),
        ..LoadSpec::default()
    };
    let shape = Shape::Open {
        rate: 50.0,
        requests: 150,
    };
    let outcome = load::run(&load, &shape, &source).await;
    let summary = Summary::from_records(&outcome.records, outcome.duration_s)
        .with_arrivals(Some(50.0), outcome.dropped);
    assert_eq!(summary.requests_ok, 150);
    let actual = summary.ttft_ms.expect("ttft");
    let intended = summary.ttft_intended_ms.expect("intended");
    eprintln!(
        "stall: ttft p50 {:.1} p90 {:.1} ms; from intended p50 {:.1} p90 {:.1} max {:.1} ms",
        actual.p50, actual.p90, intended.p50, intended.p90, intended.max
    );
    assert!(
        actual.p90 < 50.0,
        "actual-send TTFT hides the stall: {actual:?}"
    );
    assert!(
        intended.max > 1900.0,
        "intended-time TTFT shows it: {intended:?}"
    );
    assert!(
        intended.p50 > 200.0,
        "about half the arrivals were held: {intended:?}"
    );
}

struct Closed {
    concurrency: u32,
    requests: u32,
    osl: u32,
}

async fn measure(spec: EmbeddedSpec, api: Api, closed: Closed) -> Summary {
    let server = EmbeddedServer::start(spec, "sim".into(), 0)
        .await
        .expect("embedded server starts");
    let source = numbered_source(&server.base_url(), api, closed.requests, closed.osl);
    let shape = Shape::Closed {
        concurrency: closed.concurrency,
        requests: closed.requests,
        duration: None,
    };
    let outcome = load::run(&LoadSpec::default(), &shape, &source).await;
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

/// A one-thread scripted server in a thread of its own: every stream's chunks fall on one
/// shared grid (synchronized rounds), and it logs when it first saw each request and when it
/// wrote each chunk. Dropping it stops the server.
struct RoundServer {
    server: Arc<ScriptServer>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RoundServer {
    fn start(script: Script) -> RoundServer {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("server runtime");
            runtime.block_on(async move {
                let server = Arc::new(
                    ScriptServer::start(script, 0, true)
                        .await
                        .expect("server starts"),
                );
                ready_tx.send(Arc::clone(&server)).expect("test waits");
                let _ = stopped.await;
            });
        });
        let server = ready_rx.recv().expect("server started");
        RoundServer {
            server,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for RoundServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Synchronized rounds, as a batch scheduler produces them: a closed loop of `streams`
/// streams against a one-thread server whose chunks fall on a shared 20 ms grid, so every
/// stream of a round gets its first chunk in the same instant, and the client must stamp all
/// of those reads at once. Each TTFT stamp is compared with the server's own log of that
/// first write: its p99 must stay within `bound_ms`, issue 20's goal of 3 ms at 512 streams.
/// It was 19 ms when reqwest's reads were stamped after parsing, and 2.5–5.8 ms on this 2-core
/// machine when they were stamped as they returned; the kernel's receive stamps
/// (`client::arrival`) no longer depend on how many sockets the client reads before this one.
#[rstest]
#[case::c64(64, 3.0)]
#[case::c512(512, 3.0)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synchronized_rounds_keep_ttft_stamps_within_a_bound(
    #[case] streams: u32,
    #[case] bound_ms: f64,
) {
    synchronized_rounds(streams, bound_ms).await;
}

/// One synchronized-rounds measurement at `streams`, its p99 checked against `bound_ms`.
async fn synchronized_rounds(streams: u32, bound_ms: f64) {
    llm_stress::os::raise_open_file_limit();
    let tokens = 8u32;
    let step = Duration::from_millis(20);
    let server = RoundServer::start(Script {
        ttft: step,
        itl: step,
        tokens,
        one_per_write: true,
        aligned: true,
        ..Script::default()
    });
    let rounds = 4u32;
    let requests = streams * rounds;
    let source = numbered_source(&server.server.url, Api::Completions, requests, tokens);
    let shape = Shape::Closed {
        concurrency: streams,
        requests,
        duration: None,
    };
    // One unmeasured request per stream first, so every connection is open.
    let load = LoadSpec {
        warmup: llm_stress::case::Warmup::Requests(streams),
        ..LoadSpec::default()
    };
    let clocks = ClockPair::now();
    let outcome = load::run(&load, &shape, &source).await;
    assert_eq!(outcome.records.len(), requests as usize);
    let start = clocks.ns_of(outcome.window_start);
    let (mut errors, mut queued) = (Vec::new(), Vec::new());
    let mut ticks = std::collections::HashMap::<u64, u32>::new();
    for record in &outcome.records {
        assert!(record.is_ok(), "{record:?}");
        let writes = server.server.writes(record.id).expect("logged writes");
        let arrived = server.server.arrival(record.id).expect("logged arrival");
        let sent = start + (record.send_ms * 1e6) as u64;
        let ttft = record.ttft_ms.expect("ttft");
        errors.push(ttft - ms(sent, writes[0]));
        queued.push(ms(sent, arrived));
        *ticks.entry(writes[0] / step.as_nanos() as u64).or_default() += 1;
    }
    // The rounds really were synchronized: some grid instant carried the first chunk of at
    // least half the streams.
    let widest = ticks.values().copied().max().unwrap_or_default();
    assert!(
        widest >= streams / 2,
        "at most {widest} of {streams} first chunks shared a grid instant"
    );
    let errors = Distribution::from_ms(errors).expect("errors");
    let queued = Distribution::from_ms(queued).expect("arrivals");
    eprintln!(
        "synchronized rounds, {streams} streams ({widest} first chunks in one instant): TTFT stamp − first write p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms; send → server saw it p50 {:.3} ms, p99 {:.3} ms",
        errors.p50, errors.p99, errors.max, queued.p50, queued.p99
    );
    assert!(
        errors.min >= -0.01,
        "a first chunk was stamped before it was written: {errors:?}"
    );
    assert!(
        errors.p99 <= bound_ms,
        "TTFT stamp error p99 {:.3} ms over {bound_ms} ms at {streams} streams: {errors:?}",
        errors.p99
    );
}
