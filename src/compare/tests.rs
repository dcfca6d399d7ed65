//! Comparisons of synthetic runs whose shift is known.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution as _, LogNormal, Normal};
use rstest::rstest;

use super::*;
use crate::case::gate::{Latency, Stat, Throughput};
use crate::metrics::{ErrorClass, RequestRecord};

/// `n` requests one after another, 100 ms apart: TTFT log-normal around `ttft_ms` (CV about
/// 10 %), 50 tokens at `tpot_ms` each after the first.
fn serial_run(n: usize, ttft_ms: f64, tpot_ms: f64, seed: u64) -> TrialData {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let ttft = LogNormal::new(ttft_ms.ln(), 0.1).expect("lognormal");
    let tpot = Normal::new(tpot_ms, tpot_ms * 0.05).expect("normal");
    let records = (0..n)
        .map(|i| {
            let first = ttft.sample(&mut rng);
            let step: f64 = tpot.sample(&mut rng).max(0.01);
            let e2el = first + 50.0 * step;
            RequestRecord {
                id: i as u64,
                send_ms: i as f64 * 100.0,
                ttft_ms: Some(first),
                e2el_ms: Some(e2el),
                output_tokens: Some(51),
                chunk_ms: vec![first, e2el],
                chunk_tokens: vec![1, 50],
                ..Default::default()
            }
        })
        .collect();
    TrialData::new(records, n as f64 * 0.1)
}

fn gate(metrics: &[Metric]) -> Gate {
    Gate {
        metrics: metrics.to_vec(),
        ..Gate::default()
    }
}

const TTFT_P50: Metric = Metric::Latency(Latency::Ttft, Stat::P50);
const TTFT_P95: Metric = Metric::Latency(Latency::Ttft, Stat::P95);

#[rstest]
#[case::a_15_percent_shift_at_n200(200, 1.15, Outcome::Regressed)]
#[case::a_2_percent_shift_at_n200(200, 1.02, Outcome::Unchanged)]
#[case::identical_settings(200, 1.0, Outcome::Unchanged)]
#[case::a_15_percent_shift_at_n5(5, 1.15, Outcome::Inconclusive)]
#[case::a_20_percent_speedup_at_n200(200, 0.8, Outcome::Improved)]
fn a_known_ttft_shift_comes_out_as_it_should(
    #[case] n: usize,
    #[case] factor: f64,
    #[case] expected: Outcome,
) {
    let base = serial_run(n, 100.0, 5.0, 1);
    let new = serial_run(n, 100.0 * factor, 5.0, 2);
    let c = compare_trial("t", &base, &new, &gate(&[TTFT_P50]), 9);
    assert_eq!(c.metrics[0].outcome, expected, "{:?}", c.metrics[0]);
    assert_eq!(c.outcome, expected);
}

#[test]
fn the_same_records_are_unchanged_on_every_metric() {
    let run = serial_run(200, 100.0, 5.0, 1);
    let c = compare_trial("t", &run, &run, &Gate::default(), 1);
    for m in &c.metrics {
        assert_eq!(m.outcome, Outcome::Unchanged, "{m:?}");
        assert_eq!(m.change, 0.0, "{m:?}");
    }
    assert!(
        c.skipped.iter().any(|s| s.starts_with("accuracy")),
        "{:?}",
        c.skipped
    );
}

#[test]
fn a_slower_decode_regresses_tpot_itl_and_per_user_throughput() {
    let base = serial_run(200, 100.0, 5.0, 1);
    let new = serial_run(200, 100.0, 6.0, 2);
    let c = compare_trial("t", &base, &new, &Gate::default(), 1);
    let outcome = |name: &str| {
        let metric: Metric = name.parse().expect("metric");
        c.metrics
            .iter()
            .find(|m| m.metric == metric)
            .map(|m| m.outcome)
    };
    assert_eq!(outcome("tpot_ms.p50"), Some(Outcome::Regressed));
    assert_eq!(outcome("itl_ms.p50"), Some(Outcome::Regressed));
    assert_eq!(outcome("tput_user"), Some(Outcome::Regressed));
    assert_eq!(outcome("ttft_ms.p50"), Some(Outcome::Unchanged));
    assert_eq!(c.outcome, Outcome::Regressed);
}

#[test]
fn fewer_tokens_per_second_regress_output_throughput() {
    let base = serial_run(200, 100.0, 5.0, 1);
    let mut new = serial_run(200, 100.0, 5.0, 2);
    for r in &mut new.records {
        r.output_tokens = Some(40); // 51 → 40 tokens in the same time: −22 %
    }
    let c = compare_trial(
        "t",
        &base,
        &new,
        &gate(&[Metric::Throughput(Throughput::OutputTokS)]),
        1,
    );
    assert_eq!(
        c.metrics[0].outcome,
        Outcome::Regressed,
        "{:?}",
        c.metrics[0]
    );
    assert!((c.metrics[0].change + 11.0 / 51.0).abs() < 0.01);
}

/// 200 A/A comparisons with no allowed change at all (any confident difference would be
/// "regressed"): a 95 % two-sided interval lies wholly above 1 in about 2.5 % of them.
#[test]
fn a_and_a_comparisons_regress_at_most_as_often_as_the_confidence_allows() {
    let strict = Gate {
        max_regression: 0.0,
        metrics: vec![TTFT_P50, TTFT_P95],
        ..Gate::default()
    };
    let mut regressed = 0;
    let trials = 200;
    for i in 0..trials {
        let base = serial_run(200, 100.0, 5.0, 2 * i);
        let new = serial_run(200, 100.0, 5.0, 2 * i + 1);
        let c = compare_trial("t", &base, &new, &strict, i);
        regressed += c
            .metrics
            .iter()
            .filter(|m| m.outcome == Outcome::Regressed)
            .count();
    }
    // 1 − confidence of 400 metric comparisons is 20; slack for sampling: +10.
    assert!(regressed <= 30, "{regressed} of {} regressed", 2 * trials);
}

/// A run whose latencies move together as a queue's do: the 16 requests in flight at once
/// share a batch, whose slowness (±15 ms) they all feel; each request adds its own ±10 ms.
fn coupled_run(n: usize, seed: u64) -> TrialData {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let batch = Normal::new(0.0, 15.0).expect("normal");
    let own = Normal::new(0.0, 10.0).expect("normal");
    let mut level: f64 = 0.0;
    let records = (0..n)
        .map(|i| {
            if i % 16 == 0 {
                level = batch.sample(&mut rng);
            }
            let ttft = (100.0 + level + own.sample(&mut rng)).max(1.0);
            RequestRecord {
                id: i as u64,
                send_ms: i as f64 * 10.0,
                ttft_ms: Some(ttft),
                e2el_ms: Some(160.0),
                output_tokens: Some(2),
                chunk_ms: vec![ttft, 160.0],
                chunk_tokens: vec![1, 1],
                ..Default::default()
            }
        })
        .collect();
    TrialData::new(records, n as f64 * 0.01)
}

/// The same A/A test on coupled runs, with and without blocks: resampling requests one by one
/// calls far more differences confident than there are; blocks spanning twice the requests
/// in flight, widened for few blocks, keep the rate near what the confidence allows.
#[test]
fn blocks_keep_coupled_a_and_a_runs_from_regressing() {
    let strict = Gate {
        max_regression: 0.0,
        metrics: vec![Metric::Latency(Latency::Ttft, Stat::Mean)],
        ..Gate::default()
    };
    let (mut blocked, mut independent) = (0, 0);
    let mut zs = Vec::new();
    let trials = 100;
    for i in 0..trials {
        let base = coupled_run(400, 2 * i);
        let new = coupled_run(400, 2 * i + 1);
        assert!(base.latency(Latency::Ttft).block >= 16);
        let c = compare_trial("t", &base, &new, &strict, i);
        blocked += usize::from(c.metrics[0].outcome == Outcome::Regressed);
        if let Some((lo, hi)) = c.metrics[0].interval {
            zs.push(c.metrics[0].change / ((hi - lo) / 3.92));
        }
        let b = stats::Sample::independent(base.latency(Latency::Ttft).values);
        let n = stats::Sample::independent(new.latency(Latency::Ttft).values);
        let ci = stats::ratio_interval(&b, &n, Statistic::Mean, 0.95, i).expect("ci");
        independent += usize::from(ci.low > 1.0);
    }
    // Calibration: the observed change over the interval's implied standard deviation has
    // a spread of about 1 when the interval is as wide as the runs really vary.
    let spread = (zs.iter().map(|z| z * z).sum::<f64>() / zs.len() as f64).sqrt();
    eprintln!("coupled A/A: spread of change/sd {spread:.2}");
    assert!((0.8..1.25).contains(&spread), "spread {spread}");
    eprintln!("coupled A/A: {blocked} of {trials} regressed with blocks, {independent} without");
    assert!(
        blocked <= 2 * trials as usize / 40 + 4,
        "blocked: {blocked}"
    );
    assert!(independent > 2 * blocked + 5, "{independent} vs {blocked}");
}

#[test]
fn more_failures_regress_the_error_rate_and_one_more_does_not() {
    let fail = |data: &mut TrialData, k: usize| {
        for r in data.records.iter_mut().take(k) {
            r.error = Some(ErrorClass::Timeout);
        }
    };
    let base = serial_run(200, 100.0, 5.0, 1);
    let mut worse = serial_run(200, 100.0, 5.0, 2);
    fail(&mut worse, 20);
    let c = compare_trial("t", &base, &worse, &gate(&[Metric::ErrorRate]), 1);
    assert_eq!(c.metrics[0].outcome, Outcome::Regressed);
    let mut one = serial_run(200, 100.0, 5.0, 2);
    fail(&mut one, 1);
    let c = compare_trial("t", &base, &one, &gate(&[Metric::ErrorRate]), 1);
    assert_eq!(
        c.metrics[0].outcome,
        Outcome::Unchanged,
        "{:?}",
        c.metrics[0]
    );
}

/// 200 questions; BASE right on 150. NEW loses 14 and gains 4: −5 points.
fn answers(churn: Option<(usize, usize)>) -> Answers {
    let mut correct: std::collections::BTreeMap<String, bool> =
        (0..200).map(|i| (format!("q{i:03}"), i < 150)).collect();
    if let Some((lost, gained)) = churn {
        for i in 0..lost {
            correct.insert(format!("q{i:03}"), false);
        }
        for i in 150..150 + gained {
            correct.insert(format!("q{i:03}"), true);
        }
    }
    Answers {
        filter: "strict-match".into(),
        correct,
    }
}

#[rstest]
#[case::five_points_worse(Some((14, 4)), Outcome::Regressed, -5.0)]
#[case::no_change(None, Outcome::Unchanged, 0.0)]
#[case::churn_without_a_change(Some((6, 6)), Outcome::Unchanged, 0.0)]
fn mcnemar_judges_paired_answers(
    #[case] churn: Option<(usize, usize)>,
    #[case] expected: Outcome,
    #[case] change: f64,
) {
    let with = |answers| TrialData {
        answers: Some(answers),
        ..TrialData::default()
    };
    let (base, new) = (with(answers(None)), with(answers(churn)));
    let c = compare_trial("t", &base, &new, &gate(&[Metric::Accuracy]), 1);
    let m = &c.metrics[0];
    assert_eq!(m.outcome, expected, "{m:?}");
    assert!((m.change - change).abs() < 1e-9, "{m:?}");
    assert_eq!(m.samples, (200, 200));
}

#[test]
fn an_unpaired_question_is_left_out() {
    let base = TrialData {
        answers: Some(answers(None)),
        ..TrialData::default()
    };
    let mut other = answers(None);
    other.correct = [("elsewhere".to_string(), true)].into();
    let new = TrialData {
        answers: Some(other),
        ..TrialData::default()
    };
    let c = compare_trial("t", &base, &new, &gate(&[Metric::Accuracy]), 1);
    assert!(c.metrics.is_empty());
    assert_eq!(c.skipped, ["accuracy: no question asked in both runs"]);
}

#[test]
fn the_seed_makes_a_comparison_reproducible() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let seed: u64 = rng.random();
    let base = serial_run(50, 100.0, 5.0, 1);
    let new = serial_run(50, 105.0, 5.0, 2);
    let a = compare_trial("t", &base, &new, &Gate::default(), seed);
    let b = compare_trial("t", &base, &new, &Gate::default(), seed);
    assert_eq!(a, b);
}
