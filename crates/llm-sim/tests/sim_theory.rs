//! The serving simulator against queueing and batching theory, and against hand calculations.

use llm_sim::config::{CostSpec, SimConfig};
use llm_sim::cost::fit::{self, Measurement};
use llm_sim::cost::{CostModel, FittedCost, Roofline, StepShape};
use llm_sim::engine::{EngineConfig, simulate};
use llm_sim::kv::KvGeometry;
use llm_sim::metrics::{SimSummary, Sla};
use llm_sim::profile::{HardwareProfile, ModelProfile};
use llm_sim::router::Router;
use llm_sim::scheduler::{
    BinBoundaries, ContinuousConfig, DynamicBatchConfig, MultiBinConfig, SchedulerConfig,
    SchedulerKind, StaticConfig,
};
use llm_sim::workload::{Arrival, Lengths, WorkloadSpec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Every step takes `seconds`, whatever the batch.
fn constant_steps(seconds: f64) -> CostModel {
    CostModel::Fitted(FittedCost {
        alpha: seconds,
        beta: 0.0,
        gamma: 0.0,
        prefill_per_token: 0.0,
    })
}

fn engine(scheduler: SchedulerConfig, cost: CostModel) -> EngineConfig {
    EngineConfig {
        replicas: 1,
        router: Router::RoundRobin,
        scheduler,
        cost,
        kv: KvGeometry::from_tokens(100_000_000, 16).unwrap(),
    }
}

fn workload(requests: usize, arrival: Arrival, output: Lengths) -> WorkloadSpec {
    WorkloadSpec {
        requests,
        arrival,
        prompt: Lengths::Uniform { min: 16, max: 256 },
        output,
        prediction_sigma: 0.0,
        seed: 42,
    }
}

#[test]
fn static_batching_throughput_is_set_by_the_longest_request_of_each_batch() {
    let batch = 16;
    let requests = workload(
        4_000,
        Arrival::AtOnce,
        Lengths::Exponential {
            mean: 200.0,
            max: None,
        },
    )
    .generate()
    .unwrap();
    let scheduler = SchedulerConfig::Static(StaticConfig {
        batch_size: batch,
        max_wait_s: 0.0,
    });
    let step = 0.01;
    let run = simulate(&engine(scheduler, constant_steps(step)), &requests).unwrap();
    // Batches are consecutive groups of 16 in arrival order; each takes one step per token of
    // its longest request (the prefill step makes the first token).
    let expected: f64 = requests
        .chunks(batch as usize)
        .map(|b| f64::from(b.iter().map(|r| r.output_tokens).max().unwrap()) * step)
        .sum();
    let summary = SimSummary::from_run(&run, &Sla::default());
    assert!((summary.makespan_s - expected).abs() < 1e-6 * expected);
    let tokens: u64 = requests.iter().map(|r| u64::from(r.output_tokens)).sum();
    assert!((summary.output_tok_s - tokens as f64 / expected).abs() < 1e-6 * summary.output_tok_s);
    // Continuous batching with the same batch size does strictly better here.
    let continuous = SchedulerConfig::Continuous(ContinuousConfig {
        max_batch: batch,
        token_budget: 1 << 20,
        chunked_prefill: false,
        dynamic: None,
    });
    let run = simulate(&engine(continuous, constant_steps(step)), &requests).unwrap();
    assert!(SimSummary::from_run(&run, &Sla::default()).makespan_s < 0.8 * expected);
}

/// Expected longest output of a batch of `n` from K equal-mass bins of outputs uniform on
/// `[lo, hi]` (continuous approximation): the bins are uniform on width `w = (hi − lo) / K`, the
/// maximum of `n` uniforms on a bin sits `w · n / (n + 1)` above its start, and the bins' starts
/// average `lo + w (K − 1) / 2`.
fn expected_batch_max(lo: f64, hi: f64, n: f64, k: f64) -> f64 {
    let w = (hi - lo) / k;
    lo + w * (k - 1.0) / 2.0 + w * n / (n + 1.0)
}

#[test]
fn multi_bin_gain_over_static_rises_with_k_towards_its_bound() {
    let (lo, hi, batch) = (1u32, 2_000u32, 16u32);
    let spec = workload(
        200_000,
        Arrival::AtOnce,
        Lengths::Uniform { min: lo, max: hi },
    );
    let requests = spec.generate().unwrap();
    let predicted: Vec<u32> = requests.iter().map(|r| r.predicted_output_tokens).collect();
    let makespan = |scheduler: SchedulerConfig| {
        let run = simulate(&engine(scheduler, constant_steps(0.01)), &requests).unwrap();
        SimSummary::from_run(&run, &Sla::default()).makespan_s
    };
    let static_makespan = makespan(SchedulerConfig::Static(StaticConfig {
        batch_size: batch,
        max_wait_s: 0.0,
    }));
    let (lo, hi, n) = (f64::from(lo), f64::from(hi), f64::from(batch));
    // The bound: batches as long as their mean request, E[max of n] / E[length].
    let bound = expected_batch_max(lo, hi, n, 1.0) / ((lo + hi) / 2.0);
    let mut previous = 1.0;
    for k in [1usize, 2, 4, 8, 16, 32] {
        let scheduler = SchedulerConfig::MultiBin(MultiBinConfig {
            batch_size: batch,
            boundaries: BinBoundaries::equal_mass(k, &predicted).unwrap(),
            max_wait_s: 1e9,
            dynamic: None,
        });
        let gain = static_makespan / makespan(scheduler);
        let theory = expected_batch_max(lo, hi, n, 1.0) / expected_batch_max(lo, hi, n, k as f64);
        assert!(
            (gain / theory - 1.0).abs() < 0.005,
            "K {k}: gain {gain:.4}, theory {theory:.4}"
        );
        assert!(
            gain >= previous - 1e-9 && gain < bound,
            "K {k}: gain {gain}, bound {bound}"
        );
        previous = gain;
    }
    // With 32 bins the gain is within 5 % of the bound (1.88 here).
    assert!(previous > 0.95 * bound, "{previous} vs {bound}");
}

#[test]
fn one_at_a_time_service_queues_like_m_m_1() {
    // Batch size 1, every step 1 ms, outputs exponential of mean 100 tokens: service times
    // close to exponential of mean 1/μ = 0.1 s. Poisson arrivals at λ = 6/s: ρ = 0.6.
    let step = 0.001;
    let mean_tokens = 100.0;
    let lambda = 6.0;
    let spec = workload(
        300_000,
        Arrival::Poisson { rate: lambda },
        Lengths::Exponential {
            mean: mean_tokens,
            max: None,
        },
    );
    let requests = spec.generate().unwrap();
    let scheduler = SchedulerConfig::Continuous(ContinuousConfig {
        max_batch: 1,
        token_budget: 1 << 20,
        chunked_prefill: false,
        dynamic: None,
    });
    let run = simulate(&engine(scheduler, constant_steps(step)), &requests).unwrap();
    // The mean service time of the (rounded, at least one token) lengths actually drawn.
    let mean_service = requests
        .iter()
        .map(|r| f64::from(r.output_tokens) * step)
        .sum::<f64>()
        / requests.len() as f64;
    let mu = 1.0 / mean_service;
    let rho = lambda / mu;
    let theory = rho / (mu - lambda);
    let waits: Vec<f64> = run
        .outcomes
        .iter()
        .map(|o| o.admitted_s.unwrap() - o.request.arrival_s)
        .collect();
    let mean_wait = waits.iter().sum::<f64>() / waits.len() as f64;
    assert!(
        (mean_wait / theory - 1.0).abs() < 0.06,
        "mean wait {mean_wait:.4} s, M/M/1 {theory:.4} s (ρ {rho:.3})"
    );
    // Pollaczek–Khinchine with the second moment of the service times drawn (whole tokens, so
    // not exactly exponential): W = λ E[S²] / (2 (1 − ρ)).
    let second_moment = requests
        .iter()
        .map(|r| (f64::from(r.output_tokens) * step).powi(2))
        .sum::<f64>()
        / requests.len() as f64;
    let pollaczek_khinchine = lambda * second_moment / (2.0 * (1.0 - rho));
    assert!(
        (mean_wait / pollaczek_khinchine - 1.0).abs() < 0.04,
        "mean wait {mean_wait:.4} s, M/G/1 {pollaczek_khinchine:.4} s"
    );
    // And the share of requests that did not wait at all is 1 − ρ.
    let no_wait = waits.iter().filter(|&&w| w == 0.0).count() as f64 / waits.len() as f64;
    assert!(
        (no_wait - (1.0 - rho)).abs() < 0.01,
        "{no_wait} vs {}",
        1.0 - rho
    );
}

#[test]
fn roofline_for_llama_8b_on_h100_matches_a_hand_calculation() {
    let hw = HardwareProfile::by_name("h100-sxm").unwrap();
    let model = ModelProfile::by_name("llama-3.1-8b").unwrap();
    let roofline = Roofline::new(&hw, &model, 1);
    // Effective rates: 0.6 × 989.4 TFLOP/s = 593.6 TFLOP/s; 0.8 × 3.35 TB/s = 2.68 TB/s.
    // KV per token: 2 × 32 layers × 8 heads × 128 × 2 bytes = 131,072 B. Weights 16.06 GB.
    //
    // Decode, batch 1, 1,024 tokens cached:
    //   bytes  = 16.06e9 + 131,072 × 1,025        = 16.194e9 B → 16.194e9 / 2.68e12 = 6.043 ms
    //   FLOPs  = 2 × 8.03e9 + 4 × 32 × 4,096 × 1,025 = 16.60e9  → 0.028 ms (memory-bound)
    //   step   = 6.043 + 0.4 overhead                                           = 6.443 ms
    let decode_1 = roofline.step_time(&StepShape::decode(1, 1024, 1024));
    assert!((decode_1 / 6.443e-3 - 1.0).abs() < 0.01, "{decode_1}");
    // Decode, batch 256, 1,000 tokens cached each:
    //   bytes  = 16.06e9 + 131,072 × 256 × 1,001   = 49.65e9 B → 18.53 ms
    //   FLOPs  = 2 × 8.03e9 × 256 + 4 × 32 × 4,096 × 256 × 1,001 = 4.245e12 → 7.15 ms
    //   step   = 18.53 + 0.4                                                    = 18.93 ms
    let decode_256 = roofline.step_time(&StepShape::decode(256, 256 * 1000, 1000));
    assert!((decode_256 / 18.93e-3 - 1.0).abs() < 0.01, "{decode_256}");
    // Prefill of one 2,048-token prompt:
    //   FLOPs  = 2 × 8.03e9 × 2,048 + 4 × 32 × 4,096 × 2,048 × 1,024.5 = 33.99e12 → 57.26 ms
    //   bytes  = 16.06e9 + 131,072 × 2,048 = 16.33e9 B → 6.09 ms (compute-bound)
    //   step   = 57.26 + 0.4                                                    = 57.66 ms
    let mut prefill = StepShape::default();
    prefill.add(0, 2048);
    let prefill = roofline.step_time(&prefill);
    assert!((prefill / 57.66e-3 - 1.0).abs() < 0.01, "{prefill}");
}

#[test]
fn a_small_kv_cache_preempts_and_every_request_still_finishes() {
    let mut config = SimConfig::default();
    config.kv.capacity_tokens = Some(16_384);
    config.workload = workload(
        2_000,
        Arrival::Poisson { rate: 50.0 },
        Lengths::Exponential {
            mean: 300.0,
            max: Some(4_000),
        },
    );
    let result = config.run().unwrap();
    assert!(result.summary.preemptions > 0);
    assert_eq!(result.summary.completed, 2_000);
    assert!(result.run.outcomes.iter().all(|o| o.finished_s.is_some()));
    // With the profile's 427k-token cache nothing is preempted.
    config.kv.capacity_tokens = None;
    assert_eq!(config.run().unwrap().summary.preemptions, 0);
}

#[test]
fn the_same_seed_gives_identical_results_and_another_seed_does_not() {
    for kind in [
        SchedulerKind::Static,
        SchedulerKind::Continuous,
        SchedulerKind::MultiBin,
    ] {
        let mut config = SimConfig::default();
        config.scheduler.kind = kind;
        config.replicas = 3;
        config.router = Router::LeastOutstanding;
        config.workload.requests = 3_000;
        config.workload.prediction_sigma = 0.4;
        config.workload.arrival = Arrival::Gamma {
            rate: 30.0,
            cv: 2.0,
        };
        let (a, b) = (config.run().unwrap(), config.run().unwrap());
        assert_eq!(a.run.outcomes, b.run.outcomes, "{kind:?}");
        assert_eq!(a.summary, b.summary, "{kind:?}");
        config.workload.seed += 1;
        assert_ne!(config.run().unwrap().summary, a.summary, "{kind:?}");
    }
}

#[test]
fn the_fitted_model_recovers_alpha_beta_gamma_from_synthetic_measurements() {
    let truth = FittedCost {
        alpha: 0.0042,
        beta: 1.7e-6,
        gamma: 3.1,
        prefill_per_token: 0.0,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut csv = String::from("batch_size,max_seq_len,latency_ms\n");
    let mut points = Vec::new();
    for _ in 0..400 {
        let batch = rng.random_range(1..=256u64);
        let length = rng.random_range(16..=8192u64);
        let shape = StepShape {
            sequences: batch,
            max_seq_len: length,
            ..StepShape::default()
        };
        // 1 % multiplicative noise.
        let latency = truth.step_time(&shape) * (1.0 + 0.01 * rng.random_range(-1.0..1.0));
        csv.push_str(&format!("{batch},{length},{}\n", latency * 1e3));
        points.push(Measurement {
            batch_size: batch,
            max_seq_len: length,
            latency_s: latency,
        });
    }
    let dir = std::env::temp_dir().join(format!("llm-stress-sim-theory-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("steps.csv");
    std::fs::write(&path, csv).unwrap();
    let fitted = fit::fit_csv(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let m = fitted.model;
    assert!((m.alpha / truth.alpha - 1.0).abs() < 0.05, "{m:?}");
    assert!((m.beta / truth.beta - 1.0).abs() < 0.02, "{m:?}");
    assert!((m.gamma / truth.gamma - 1.0).abs() < 0.03, "{m:?}");
    assert_eq!(fit::fit(&points).unwrap().points, 400);
    // A configuration can use the fitted parameters directly.
    let mut config = SimConfig {
        cost: CostSpec::Fitted(m),
        ..SimConfig::default()
    };
    config.workload.requests = 100;
    assert_eq!(config.run().unwrap().summary.completed, 100);
}

#[test]
fn dynamic_batch_size_holds_the_decode_step_near_its_deadline() {
    // Heavy load on one H100: with up to 512 sequences a decode step takes far more than
    // 15 ms; the SLA controller shrinks the batch until the step time sits near 15 ms.
    let deadline = 0.015;
    let mut config = SimConfig::default();
    config.scheduler.batch_size = 512;
    config.workload = workload(
        6_000,
        Arrival::Poisson { rate: 60.0 },
        Lengths::Exponential {
            mean: 500.0,
            max: Some(4_000),
        },
    );
    config.sla = Sla {
        tpot_s: deadline * 1.2,
        e2e_s: 1e9,
    };
    let fixed = config.run().unwrap().summary;
    config.scheduler.dynamic = Some(DynamicBatchConfig {
        min_batch: 1,
        tbt_deadline_s: deadline,
        margin_s: 0.001,
    });
    let dynamic = config.run().unwrap().summary;
    assert!(
        fixed.tpot_ms.p50 > 1.5 * deadline * 1e3,
        "{:?}",
        fixed.tpot_ms
    );
    assert!(
        (dynamic.tpot_ms.p50 / (deadline * 1e3) - 1.0).abs() < 0.1,
        "{:?}",
        dynamic.tpot_ms
    );
    assert!(dynamic.tpot_violation_rate < fixed.tpot_violation_rate);
    assert!(dynamic.mean_batch < fixed.mean_batch);
}

#[test]
fn dynamic_memory_bound_avoids_preemption_in_a_small_cache() {
    let mut config = SimConfig::default();
    config.kv.capacity_tokens = Some(40_000);
    config.scheduler.batch_size = 256;
    config.workload = workload(
        3_000,
        Arrival::AtOnce,
        Lengths::Exponential {
            mean: 400.0,
            max: Some(4_000),
        },
    );
    let fixed = config.run().unwrap().summary;
    config.scheduler.dynamic = Some(DynamicBatchConfig {
        min_batch: 1,
        tbt_deadline_s: 10.0,
        margin_s: 0.0,
    });
    let dynamic = config.run().unwrap().summary;
    assert!(fixed.preemptions > 0);
    assert!(
        dynamic.preemptions * 2 < fixed.preemptions,
        "{} vs {}",
        dynamic.preemptions,
        fixed.preemptions
    );
    assert_eq!(dynamic.completed, 3_000);
}
