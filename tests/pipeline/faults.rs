//! The embedded server's injected faults, measured by the harness: every injected error,
//! refusal, cut stream and malformed event is counted in its class, and stalls and a slow
//! first byte show in the latencies.

use llm_stress::case::FaultSpec;
use llm_stress::metrics::{ErrorClass, RequestRecord};
use llm_stress::server::embedded::faults::{Fault, Faults};
use llm_stress::session::{RunContext, TrialOutcome};

use crate::support::CaseDir;

/// Runs the one trial of a case whose embedded server is `server` and whose load is
/// `requests` requests `concurrency` at a time, with no warmup.
fn run(tag: &str, server: &str, concurrency: u32, requests: u32) -> (CaseDir, TrialOutcome) {
    let dir = CaseDir::named(&format!("faults-{tag}"));
    let case = format!(
        "name: c\nmodel: m\nkinds: [perf]\nserver:\n  embedded: {server}\n\
         load: {{ warmup: 0 }}\n\
         matrix:\n  mode: custom\n  isl: [16]\n  osl: [8]\n  concurrency: [{concurrency}]\n  prompts: {{ fixed: {requests} }}\n"
    );
    let plan = dir
        .model("m", "name: m\nmax_context: 256\nmax_concurrency: 8\n")
        .case("c", &case)
        .plan();
    let context = RunContext {
        run_id: "faults".into(),
        out_dir: dir.out(),
        url_override: None,
    };
    let outcome = crate::support::session(context.clone())
        .run_trial(&plan)
        .expect("reports written");
    (dir, outcome)
}

/// The trial's request records, from its `records.jsonl`.
fn records(outcome: &TrialOutcome) -> Vec<RequestRecord> {
    let text = std::fs::read_to_string(outcome.dir.join("records.jsonl")).expect("records");
    text.lines()
        .map(|line| serde_json::from_str(line).expect("a record"))
        .collect()
}

#[test]
fn every_injected_fault_is_counted_in_its_class() {
    let spec = FaultSpec {
        error_rate: 0.1,
        error_status: Some(503),
        disconnect_rate: 0.1,
        stall_rate: 0.1,
        stall_ms: 150.0,
        malformed_rate: 0.1,
        seed: 3,
        ..Default::default()
    };
    let requests = 60;
    // The server numbers requests in arrival order from 0; with no warmup these are exactly
    // the measured ones, so the faults it injected are known here.
    let faults = Faults::new(spec.clone());
    let injected = |wanted: fn(&Fault) -> bool| {
        (0..u64::from(requests))
            .filter(|&id| faults.of(id).as_ref().is_some_and(wanted))
            .count() as u64
    };
    let errors = injected(|f| matches!(f, Fault::Error(_)));
    let cut = injected(|f| matches!(f, Fault::Disconnect));
    let stalled = injected(|f| matches!(f, Fault::Stall(_)));
    let malformed = injected(|f| matches!(f, Fault::Malformed));
    assert!(
        errors > 0 && cut > 0 && stalled > 0 && malformed > 0,
        "seed draws every fault"
    );

    let server = "{ ttft_ms: 10, tpot_ms: 2, slots: 8, faults: { error_rate: 0.1, error_status: 503, \
                  disconnect_rate: 0.1, stall_rate: 0.1, stall_ms: 150, malformed_rate: 0.1, seed: 3 } }";
    let (_dir, outcome) = run("classes", server, 4, requests);
    let s = outcome.report.summary().expect("a load trial");
    let class = |c: ErrorClass| s.errors.get(&c).copied().unwrap_or(0);
    assert_eq!(class(ErrorClass::Http503), errors, "{:?}", s.errors);
    assert_eq!(class(ErrorClass::BrokenStream), cut, "{:?}", s.errors);
    assert_eq!(class(ErrorClass::Protocol), malformed, "{:?}", s.errors);
    assert_eq!(
        s.requests_failed,
        errors + cut + malformed,
        "{:?}",
        s.errors
    );
    assert_eq!(s.requests_ok, u64::from(requests) - s.requests_failed);
    // A stalled stream has one gap of the stall: the slowest inter-token gap shows it, and
    // exactly the stalled requests took that much longer end to end.
    let itl = s.itl_ms.expect("itl");
    assert!(itl.max >= 150.0, "{itl:?}");
    let slow = records(&outcome)
        .iter()
        .filter(|r| r.is_ok() && r.e2el_ms.is_some_and(|e| e >= 150.0))
        .count() as u64;
    assert_eq!(slow, stalled);
}

#[test]
fn a_full_queue_refuses_with_429_and_a_slow_first_byte_delays_ttft() {
    // One slot and one place in the queue, four users: whoever finds two requests ahead is
    // refused at once.
    let server =
        "{ ttft_ms: 10, tpot_ms: 5, slots: 1, faults: { max_queue: 1, slow_first_byte_ms: 40 } }";
    let (_dir, outcome) = run("queue", server, 4, 16);
    let s = outcome.report.summary().expect("a load trial");
    let refused = s.errors.get(&ErrorClass::Http429).copied().unwrap_or(0);
    assert!(refused > 0, "{:?}", s.errors);
    assert_eq!(s.errors.len(), 1, "only refusals: {:?}", s.errors);
    assert_eq!(s.requests_ok + refused, 16);
    // First byte 40 ms late, then 10 ms to the first token.
    let ttft = s.ttft_ms.expect("ttft");
    assert!(ttft.min >= 50.0, "{ttft:?}");
    let all = records(&outcome);
    let failure = all
        .iter()
        .find(|r| r.error == Some(ErrorClass::Http429))
        .expect("a refusal");
    assert!(
        failure
            .error_detail
            .as_deref()
            .is_some_and(|d| d.contains("queue is full")),
        "{failure:?}"
    );
}
