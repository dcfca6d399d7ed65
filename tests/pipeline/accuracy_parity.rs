//! Parity with lm-evaluation-harness itself: few-shot choice and prompts, filters and
//! exact_match, and the hypothesis-test threshold, against fixtures that real Python, lm-eval
//! 0.4.13 and scipy produced (`scripts/lm_eval_parity.py` writes them to `tests/fixtures/`).

use std::path::{Path, PathBuf};

use llm_stress::accuracy::fewshot::{ContextSampler, PyRandom};
use llm_stress::accuracy::{Sample, Task};
use llm_stress::case::load::parse_yaml;
use llm_stress::case::{AccuracySpec, AccuracyThreshold};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> String {
    let path = root().join("tests/fixtures").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn gsm8k(yaml_tail: &str) -> Task {
    let yaml = format!("task: gsm8k\ndataset: stress-cases/data/gsm8k\n{yaml_tail}");
    let spec: AccuracySpec = parse_yaml(Path::new("parity.yaml"), &yaml).expect("spec");
    Task::from_spec(&spec, &root()).expect("gsm8k task")
}

fn indices(value: &Value) -> Vec<usize> {
    value
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v.as_u64().expect("index") as usize)
        .collect()
}

#[test]
fn fewshot_choice_and_prompts_match_lm_eval() {
    let fixture: Value = serde_json::from_str(&fixture("gsm8k_fewshot.json")).expect("json");
    let seed = fixture["seed"].as_u64().expect("seed");
    let k = fixture["num_fewshot"].as_u64().expect("num_fewshot") as usize;
    let train_size = fixture["train_size"].as_u64().expect("train_size") as usize;
    let docs = fixture["docs"].as_array().expect("docs");
    assert!(!docs.is_empty());

    let task = gsm8k(&format!(
        "limit: {}\nfewshot_seed: {seed}\nnum_fewshot: {k}\n",
        docs.len()
    ));
    assert_eq!(task.samples().len(), docs.len());
    let until: Vec<&str> = fixture["generation_kwargs"]["until"]
        .as_array()
        .expect("until")
        .iter()
        .map(|v| v.as_str().expect("stop"))
        .collect();
    assert_eq!(task.stop(), until);

    let train =
        std::fs::read_to_string(root().join("stress-cases/data/gsm8k/train.jsonl")).expect("train");
    let train: Vec<Value> = train
        .lines()
        .map(|l| serde_json::from_str(l).expect("train line"))
        .collect();
    assert_eq!(train.len(), train_size);

    let mut sampler = ContextSampler::new(seed, k);
    for (doc, sample) in docs.iter().zip(task.samples()) {
        let doc_index = doc["doc_index"].as_u64().expect("doc_index") as usize;
        let chosen = indices(&doc["train_indices"]);
        assert_eq!(sample.doc_index, doc_index);
        assert_eq!(
            sampler.shots(train_size),
            Some(chosen.clone()),
            "doc {doc_index}"
        );
        let answers: Vec<&str> = sample.shots.iter().map(|s| s.answer.as_str()).collect();
        let expected: Vec<&str> = chosen
            .iter()
            .map(|&i| train[i]["answer"].as_str().expect("answer"))
            .collect();
        assert_eq!(answers, expected, "doc {doc_index}");
        assert_eq!(
            sample.prompt(),
            doc["prompt"].as_str().expect("prompt"),
            "doc {doc_index}"
        );
    }
}

#[test]
fn python_random_sample_matches() {
    let fixture: Value = serde_json::from_str(&fixture("gsm8k_fewshot.json")).expect("json");
    let check = &fixture["python_sample_check"];
    let mut rnd = PyRandom::new(1234);
    for expected in check["seed_1234_three_samples_range_7473_k5"]
        .as_array()
        .expect("samples")
    {
        assert_eq!(rnd.sample(7473, 5), Some(indices(expected)));
    }
    assert_eq!(
        PyRandom::new(7).sample(10, 4),
        Some(indices(&check["seed_7_sample_range_10_k4"]))
    );
}

#[test]
fn filters_and_exact_match_match_lm_eval() {
    let task = gsm8k("limit: 1\nnum_fewshot: 0\n");
    let template = task.samples()[0].clone();
    let rows = fixture("lm_eval_parity.jsonl");
    let mut checked = 0;
    for (line, row) in rows.lines().enumerate() {
        let row: Value = serde_json::from_str(row).expect("row");
        let response = row["response"].as_str().expect("response");
        let sample = Sample {
            target: row["target"].as_str().expect("target").to_string(),
            ..template.clone()
        };
        let results = task.score(&sample, response);
        assert_eq!(results.len(), 2);
        for result in results {
            let expected = &row["filters"][result.filter];
            assert_eq!(
                result.extracted,
                expected["extracted"].as_str().expect("extracted"),
                "line {}: {} of {response:?}",
                line + 1,
                result.filter
            );
            assert_eq!(
                u64::from(result.correct),
                expected["exact_match"].as_u64().expect("exact_match"),
                "line {}: {} of {response:?}",
                line + 1,
                result.filter
            );
            checked += 1;
        }
    }
    assert!(checked >= 2 * 80, "{checked}");
}

#[test]
fn hypothesis_threshold_matches_scipy() {
    let fixture: Value = serde_json::from_str(&fixture("hypothesis_threshold.json")).expect("json");
    for case in fixture["cases"].as_array().expect("cases") {
        let number = |key: &str| case[key].as_f64().expect(key);
        let yaml = format!(
            "kind: hypothesis_test\nexpected_value: {}%\nalpha: {}\nbeta: {}\nsigma: {}%\nn: {}\n",
            number("ref"),
            number("alpha"),
            number("beta"),
            number("sigma"),
            number("n"),
        );
        let threshold: AccuracyThreshold =
            parse_yaml(Path::new("threshold.yaml"), &yaml).expect("threshold");
        let judgement = threshold.judge(number("ref"), 1);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(
            close(judgement.threshold, number("threshold")),
            "{yaml}: {} vs {}",
            judgement.threshold,
            number("threshold")
        );
        let theta = judgement.theta.expect("theta");
        assert!(
            close(theta, number("theta")),
            "{yaml}: {theta} vs {}",
            number("theta")
        );
        assert!(judgement.passed);
    }
}
