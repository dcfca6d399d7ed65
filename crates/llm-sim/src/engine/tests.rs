//! Engine behaviour on small cases with hand-checked times, and the closed-form engine against
//! a step-by-step reference.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::cost::{FittedCost, Roofline, StepShape};
use crate::profile::{HardwareProfile, ModelProfile};
use crate::scheduler::{BinBoundaries, ContinuousConfig, MultiBinConfig, StaticConfig};

/// Every step takes exactly one second.
fn unit_steps() -> CostModel {
    CostModel::Fitted(FittedCost {
        alpha: 1.0,
        beta: 0.0,
        gamma: 0.0,
        prefill_per_token: 0.0,
    })
}

fn continuous(max_batch: u32) -> SchedulerConfig {
    SchedulerConfig::Continuous(ContinuousConfig {
        max_batch,
        token_budget: 1 << 20,
        chunked_prefill: false,
        dynamic: None,
    })
}

fn config(scheduler: SchedulerConfig, cost: CostModel, kv_tokens: u64) -> EngineConfig {
    EngineConfig {
        replicas: 1,
        router: Router::RoundRobin,
        scheduler,
        cost,
        kv: KvGeometry::from_tokens(kv_tokens, 1).unwrap(),
    }
}

fn finish_times(run: &SimRun) -> Vec<f64> {
    run.outcomes.iter().map(|o| o.finished_s.unwrap()).collect()
}

#[test]
fn one_request_prefills_in_a_step_then_decodes_one_token_per_step() {
    let cfg = config(continuous(8), unit_steps(), 1000);
    let run = simulate(&cfg, &[SimRequest::new(0.0, 10, 5)]).unwrap();
    let o = run.outcomes[0];
    assert_eq!((o.first_token_s, o.finished_s), (Some(1.0), Some(5.0)));
    assert_eq!(run.stats.steps(), 5);
    // One prefill step, then one segment of four decode steps.
    assert_eq!(run.stats.segments(), 2);
}

#[test]
fn continuous_batching_lets_a_late_request_join_at_the_next_step() {
    let cfg = config(continuous(8), unit_steps(), 1000);
    let requests = [SimRequest::new(0.0, 10, 10), SimRequest::new(2.5, 10, 3)];
    let run = simulate(&cfg, &requests).unwrap();
    // The second arrives during step [2, 3], joins the step [3, 4] that prefills it.
    let late = run.outcomes[1];
    assert_eq!(late.admitted_s, Some(3.0));
    assert_eq!(late.first_token_s, Some(4.0));
    assert_eq!(late.finished_s, Some(6.0));
    assert_eq!(run.outcomes[0].finished_s, Some(10.0));
}

#[test]
fn static_batches_run_until_their_longest_request_ends() {
    let scheduler = SchedulerConfig::Static(StaticConfig {
        batch_size: 2,
        max_wait_s: 0.0,
    });
    let cfg = config(scheduler, unit_steps(), 1000);
    let requests: Vec<SimRequest> = [2, 6, 3, 3]
        .iter()
        .map(|&out| SimRequest::new(0.0, 4, out))
        .collect();
    let run = simulate(&cfg, &requests).unwrap();
    assert_eq!(finish_times(&run), [2.0, 6.0, 9.0, 9.0]);
    assert_eq!(run.outcomes[2].admitted_s, Some(6.0));
}

#[test]
fn multi_bin_waits_for_a_full_bin_until_the_max_wait() {
    let scheduler = SchedulerConfig::MultiBin(MultiBinConfig {
        batch_size: 2,
        boundaries: BinBoundaries::from_thresholds(vec![10]).unwrap(),
        max_wait_s: 5.0,
        dynamic: None,
    });
    let cfg = config(scheduler, unit_steps(), 1000);
    // A short request alone in its bin at t = 0; two long ones fill theirs at t = 1.
    let requests = [
        SimRequest::new(0.0, 4, 2),
        SimRequest::new(1.0, 4, 20),
        SimRequest::new(1.0, 4, 20),
    ];
    let mut engine = Engine::new(cfg).unwrap();
    for r in requests {
        engine.push(r).unwrap();
    }
    let events = engine.advance_to(100.0);
    let admitted: Vec<(usize, f64)> = events
        .iter()
        .filter_map(|e| match *e {
            EngineEvent::Admitted { id, at_s, .. } => Some((id.0, at_s)),
            _ => None,
        })
        .collect();
    // The long bin is full at t = 1 and runs first (20 steps, to t = 21); the short request's
    // max wait expired at t = 5, so it runs as soon as the replica is free.
    assert_eq!(admitted, [(1, 1.0), (2, 1.0), (0, 21.0)]);
    assert_eq!(engine.outcome(RequestId(0)).unwrap().finished_s, Some(23.0));
}

/// Two requests 0.1 s apart: with no wake delay the first is prefilled alone and the second
/// joins at the next step; with a 0.5 s delay both are prefilled in the first step.
#[rstest::rstest]
#[case::at_once(0.0, [1.0, 2.0])]
#[case::after_a_delay(0.5, [1.5, 1.5])]
fn a_wake_delay_gathers_near_simultaneous_arrivals(#[case] delay_s: f64, #[case] first: [f64; 2]) {
    let mut engine = Engine::new(config(continuous(8), unit_steps(), 1000))
        .unwrap()
        .with_wake_delay(delay_s);
    engine.push(SimRequest::new(0.0, 4, 3)).unwrap();
    engine.push(SimRequest::new(0.1, 4, 3)).unwrap();
    engine.close();
    engine.advance_to(100.0);
    let first_token = |id| {
        engine
            .outcome(RequestId(id))
            .unwrap()
            .first_token_s
            .unwrap()
    };
    assert_eq!([first_token(0), first_token(1)], first);
}

#[test]
fn too_small_a_kv_cache_preempts_and_every_request_still_finishes() {
    // 64 tokens of cache; four requests of 8 + 24 tokens need 128 at their longest.
    let cfg = config(continuous(8), unit_steps(), 64);
    let requests: Vec<SimRequest> = (0..4).map(|_| SimRequest::new(0.0, 8, 24)).collect();
    let run = simulate(&cfg, &requests).unwrap();
    let preemptions: u32 = run.outcomes.iter().map(|o| o.preemptions).sum();
    assert!(preemptions > 0);
    assert!(run.outcomes.iter().all(|o| o.finished_s.is_some()));
}

#[test]
fn a_request_that_never_fits_is_rejected_not_looped_on() {
    let cfg = config(continuous(8), unit_steps(), 64);
    let run = simulate(
        &cfg,
        &[SimRequest::new(0.0, 60, 10), SimRequest::new(0.0, 4, 4)],
    )
    .unwrap();
    assert!(run.outcomes[0].rejected && run.outcomes[0].finished_s.is_none());
    assert_eq!(run.outcomes[1].finished_s, Some(4.0));
}

#[test]
fn chunked_prefill_spreads_a_long_prompt_over_steps() {
    let scheduler = SchedulerConfig::Continuous(ContinuousConfig {
        max_batch: 8,
        token_budget: 8,
        chunked_prefill: true,
        dynamic: None,
    });
    let run = simulate(
        &config(scheduler, unit_steps(), 1000),
        &[SimRequest::new(0.0, 20, 2)],
    )
    .unwrap();
    // 8 + 8 + 4 prompt tokens in three steps, the first token at the end of the third.
    assert_eq!(run.outcomes[0].first_token_s, Some(3.0));
    assert_eq!(run.outcomes[0].finished_s, Some(4.0));
}

#[test]
fn pushing_into_the_past_or_empty_requests_are_errors() {
    let mut engine = Engine::new(config(continuous(8), unit_steps(), 1000)).unwrap();
    engine.push(SimRequest::new(5.0, 1, 1)).unwrap();
    assert!(matches!(
        engine.push(SimRequest::new(4.0, 1, 1)),
        Err(SimError::PastArrival { .. })
    ));
    engine.advance_to(10.0);
    assert!(engine.push(SimRequest::new(9.0, 1, 1)).is_err());
    assert!(engine.push(SimRequest::new(10.0, 0, 1)).is_err());
    assert!(engine.push(SimRequest::new(f64::NAN, 1, 1)).is_err());
    assert!(engine.push(SimRequest::new(10.0, u32::MAX, 1)).is_err());
    let mut too_many = config(continuous(8), unit_steps(), 1000);
    too_many.replicas = usize::MAX;
    assert!(Engine::new(too_many).is_err());
}

#[test]
fn least_outstanding_sends_work_to_the_emptier_replica() {
    // Replica 0 takes a long request, replica 1 a short one that is done by t = 3. At t = 5
    // two requests arrive: least-outstanding gives the first to the empty replica 1 and the
    // second (both now hold one) to replica 0; round-robin just alternates.
    let requests = [
        SimRequest::new(0.0, 4, 100),
        SimRequest::new(0.1, 4, 2),
        SimRequest::new(5.0, 4, 100),
        SimRequest::new(5.0, 4, 100),
    ];
    let replicas_by = |router: Router| {
        let mut cfg = config(continuous(8), unit_steps(), 1000);
        cfg.replicas = 2;
        cfg.router = router;
        let run = simulate(&cfg, &requests).unwrap();
        run.outcomes
            .iter()
            .map(|o| o.replica.unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(replicas_by(Router::LeastOutstanding), [0, 1, 1, 0]);
    assert_eq!(replicas_by(Router::RoundRobin), [0, 1, 0, 1]);
}

fn roofline() -> CostModel {
    let hw = HardwareProfile::by_name("h100-sxm").unwrap();
    let model = ModelProfile::by_name("llama-3.1-8b").unwrap();
    CostModel::Roofline(Roofline::new(&hw, &model, 1))
}

fn random_requests(n: usize, rate: f64, seed: u64) -> Vec<SimRequest> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut t = 0.0;
    (0..n)
        .map(|_| {
            t += -rng.random::<f64>().ln() / rate;
            let mut r = SimRequest::new(t, rng.random_range(1..400), rng.random_range(1..300));
            r.predicted_output_tokens = r.output_tokens;
            r
        })
        .collect()
}

/// Continuous batching simulated one step at a time: at each step boundary every arrived
/// request is admitted (up to `max_batch`), the step is timed from its shape, every running
/// request gets a token.
fn reference_continuous(cost: &CostModel, max_batch: usize, requests: &[SimRequest]) -> Vec<f64> {
    struct Running {
        id: usize,
        generated: u64,
    }
    let mut finished = vec![f64::NAN; requests.len()];
    let (mut now, mut next) = (0.0f64, 0usize);
    let mut queue = std::collections::VecDeque::new();
    let mut running: Vec<Running> = Vec::new();
    while next < requests.len() || !queue.is_empty() || !running.is_empty() {
        if running.is_empty() && queue.is_empty() {
            now = now.max(requests[next].arrival_s);
        }
        while next < requests.len() && requests[next].arrival_s <= now {
            queue.push_back(next);
            next += 1;
        }
        let mut shape = StepShape::default();
        let mut context = 0;
        let mut longest = 0;
        for r in &running {
            let c = u64::from(requests[r.id].prompt_tokens) + r.generated;
            context += c;
            longest = longest.max(c);
        }
        if !running.is_empty() {
            shape = StepShape::decode(running.len() as u64, context, longest);
        }
        while running.len() < max_batch {
            let Some(id) = queue.pop_front() else { break };
            shape.add(0, u64::from(requests[id].prompt_tokens));
            running.push(Running { id, generated: 0 });
        }
        now += cost.step_time(&shape);
        for r in &mut running {
            r.generated += 1;
            if r.generated == u64::from(requests[r.id].output_tokens) {
                finished[r.id] = now;
            }
        }
        running.retain(|r| r.generated < u64::from(requests[r.id].output_tokens));
    }
    finished
}

#[test]
fn closed_form_engine_matches_a_step_by_step_reference() {
    for (max_batch, rate) in [(64, 20.0), (4, 20.0), (16, 200.0)] {
        let requests = random_requests(300, rate, 11);
        let cfg = config(continuous(max_batch), roofline(), 10_000_000);
        let run = simulate(&cfg, &requests).unwrap();
        let expected = reference_continuous(&cfg.cost, max_batch as usize, &requests);
        for (i, (got, want)) in finish_times(&run).iter().zip(&expected).enumerate() {
            assert!(
                (got - want).abs() <= 1e-9 * want,
                "batch {max_batch} rate {rate}: request {i} finished at {got}, reference {want}"
            );
        }
        // Work in proportion to events: at most an arrival cut, a prefill step and a finish
        // per request, however many decode steps there were.
        assert!(
            run.stats.segments() <= 3 * requests.len() as u64,
            "{:?}",
            run.stats
        );
    }
}

fn schedulers() -> Vec<SchedulerConfig> {
    vec![
        continuous(32),
        SchedulerConfig::Continuous(ContinuousConfig {
            max_batch: 32,
            token_budget: 256,
            chunked_prefill: true,
            dynamic: None,
        }),
        SchedulerConfig::Static(StaticConfig {
            batch_size: 16,
            max_wait_s: 0.0,
        }),
        SchedulerConfig::MultiBin(MultiBinConfig {
            batch_size: 16,
            boundaries: BinBoundaries::from_thresholds(vec![50, 150]).unwrap(),
            max_wait_s: 0.5,
            dynamic: None,
        }),
    ]
}

#[test]
fn incremental_and_offline_runs_agree_on_every_request() {
    let requests = random_requests(400, 40.0, 5);
    for scheduler in schedulers() {
        // A cache small enough to preempt.
        let cfg = config(scheduler, roofline(), 3_000);
        let offline = simulate(&cfg, &requests).unwrap();
        assert!(
            offline.outcomes.iter().any(|o| o.preemptions > 0),
            "{cfg:?}"
        );
        let mut engine = Engine::new(cfg.clone()).unwrap();
        let mut events = Vec::new();
        for (i, &r) in requests.iter().enumerate() {
            events.extend(engine.advance_to(r.arrival_s));
            assert_eq!(engine.push(r).unwrap(), RequestId(i));
            if let Some(next) = requests.get(i + 1).filter(|_| i % 7 == 0) {
                // Advance to times between arrivals too.
                events.extend(engine.advance_to((r.arrival_s + next.arrival_s) / 2.0));
            }
        }
        engine.close();
        events.extend(engine.advance_to(f64::INFINITY));
        let incremental: Vec<RequestOutcome> = engine.outcomes().collect();
        assert_eq!(incremental, offline.outcomes, "{cfg:?}");
        check_event_stream(&events, &requests, &incremental);
    }
}

/// Tokens 0 … n−1 of every request in order and in time order, each once; the last at the
/// finish; `Finished` once.
fn check_event_stream(
    events: &[EngineEvent],
    requests: &[SimRequest],
    outcomes: &[RequestOutcome],
) {
    assert!(events.windows(2).all(|w| w[0].at_s() <= w[1].at_s()));
    let mut next_token = vec![0u32; requests.len()];
    let mut last_token_at = vec![f64::NAN; requests.len()];
    let mut finished = vec![0; requests.len()];
    for e in events {
        match *e {
            EngineEvent::Token { id, index, at_s } => {
                assert_eq!(index, next_token[id.0], "request {}", id.0);
                next_token[id.0] += 1;
                last_token_at[id.0] = at_s;
            }
            EngineEvent::Finished { id, at_s } => {
                finished[id.0] += 1;
                assert_eq!(Some(at_s), outcomes[id.0].finished_s);
                assert_eq!(at_s, last_token_at[id.0]);
            }
            _ => {}
        }
    }
    for (i, r) in requests.iter().enumerate() {
        assert_eq!(next_token[i], r.output_tokens, "request {i}");
        assert_eq!(finished[i], 1);
    }
}

#[test]
fn snapshot_counts_queued_running_and_kv() {
    let mut engine = Engine::new(config(continuous(2), unit_steps(), 1000)).unwrap();
    for _ in 0..3 {
        engine.push(SimRequest::new(0.0, 10, 10)).unwrap();
    }
    let events = engine.advance_to(2.5);
    let s = engine.snapshot();
    assert_eq!((s.queued, s.running, s.finished), (1, 2, 0));
    // Two requests of 10 prompt tokens with 2 tokens each generated by t = 2.5.
    assert_eq!(s.kv_used_blocks, 24);
    assert_eq!(s.kv_capacity_blocks, 1000);
    let tokens = events
        .iter()
        .filter(|e| matches!(e, EngineEvent::Token { .. }))
        .count();
    assert_eq!(tokens, 4);
    assert_eq!(engine.next_token_s(), Some(3.0));
}

#[test]
fn same_seed_same_results() {
    let requests = random_requests(500, 30.0, 9);
    for scheduler in schedulers() {
        let cfg = config(scheduler, roofline(), 20_000);
        let (a, b) = (
            simulate(&cfg, &requests).unwrap(),
            simulate(&cfg, &requests).unwrap(),
        );
        assert_eq!(a.outcomes, b.outcomes);
        assert_eq!(a.stats, b.stats);
    }
}
