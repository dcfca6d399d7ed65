//! The summary of one trial's records: the one result model every report is a view of.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::distribution::{Distribution, STAT_NAMES};
use super::record::{ErrorClass, RequestRecord};

/// Latency metrics that have a distribution, as named in SLOs (`ttft_ms.p95`).
pub const DISTRIBUTION_METRICS: [&str; 4] = ["ttft_ms", "tpot_ms", "itl_ms", "e2el_ms"];

/// Metrics that are one number, as named in SLOs (`error_rate < 0.01`).
pub const SCALAR_METRICS: [&str; 10] = [
    "requests_ok",
    "requests_failed",
    "error_rate",
    "duration_s",
    "input_tokens",
    "output_tokens",
    "input_tok_s",
    "output_tok_s",
    "req_s",
    "tput_user",
];

/// Everything a trial's load phase measured, summarised.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Requests that completed without error.
    pub requests_ok: u64,
    /// Requests that failed, any class.
    pub requests_failed: u64,
    /// requests_failed / all requests.
    pub error_rate: f64,
    /// Failed requests by class.
    pub errors: BTreeMap<ErrorClass, u64>,
    /// Measured window: first send to last completion, in seconds.
    pub duration_s: f64,
    /// Time to first token.
    pub ttft_ms: Option<Distribution>,
    /// Time per output token after the first.
    pub tpot_ms: Option<Distribution>,
    /// Inter-token latency.
    pub itl_ms: Option<Distribution>,
    /// End-to-end latency.
    pub e2el_ms: Option<Distribution>,
    /// Prompt tokens of successful requests (server usage).
    pub input_tokens: u64,
    /// Output tokens of successful requests (server usage).
    pub output_tokens: u64,
    /// Successful requests whose output count was estimated, not reported by the server.
    pub estimated_token_counts: u64,
    /// input_tokens / duration_s.
    pub input_tok_s: f64,
    /// output_tokens / duration_s.
    pub output_tok_s: f64,
    /// requests_ok / duration_s.
    pub req_s: f64,
    /// Tokens per second per user: 1000 / mean TPOT.
    pub tput_user: f64,
}

impl Summary {
    /// Summarises records over a measured window of `duration_s` seconds.
    pub fn from_records(records: &[RequestRecord], duration_s: f64) -> Summary {
        let ok: Vec<&RequestRecord> = records.iter().filter(|r| r.is_ok()).collect();
        let requests_ok = ok.len() as u64;
        let requests_failed = records.len() as u64 - requests_ok;
        let mut errors = BTreeMap::new();
        for class in records.iter().filter_map(|r| r.error) {
            *errors.entry(class).or_insert(0) += 1;
        }
        let input_tokens = ok.iter().filter_map(|r| r.prompt_tokens).sum();
        let output_tokens = ok.iter().filter_map(|r| r.output_tokens).sum();
        let tpot_ms = Distribution::from_ms(ok.iter().filter_map(|r| r.tpot_ms()));
        let per_second = |n: u64| {
            if duration_s > 0.0 {
                n as f64 / duration_s
            } else {
                0.0
            }
        };
        Summary {
            requests_ok,
            requests_failed,
            error_rate: if records.is_empty() {
                0.0
            } else {
                requests_failed as f64 / records.len() as f64
            },
            errors,
            duration_s,
            ttft_ms: Distribution::from_ms(ok.iter().filter_map(|r| r.ttft_ms)),
            itl_ms: Distribution::from_ms(ok.iter().flat_map(|r| r.itl_ms())),
            e2el_ms: Distribution::from_ms(ok.iter().filter_map(|r| r.e2el_ms)),
            tput_user: tpot_ms
                .filter(|d| d.mean > 0.0)
                .map_or(0.0, |d| 1000.0 / d.mean),
            tpot_ms,
            input_tokens,
            output_tokens,
            estimated_token_counts: ok.iter().filter(|r| r.tokens_estimated).count() as u64,
            input_tok_s: per_second(input_tokens),
            output_tok_s: per_second(output_tokens),
            req_s: per_second(requests_ok),
        }
    }

    /// The distribution of a latency metric by name (`ttft_ms`, …).
    pub fn distribution(&self, metric: &str) -> Option<&Distribution> {
        match metric {
            "ttft_ms" => self.ttft_ms.as_ref(),
            "tpot_ms" => self.tpot_ms.as_ref(),
            "itl_ms" => self.itl_ms.as_ref(),
            "e2el_ms" => self.e2el_ms.as_ref(),
            _ => None,
        }
    }

    /// A metric by its SLO name: a scalar (`error_rate`) or `metric.stat` (`ttft_ms.p95`).
    /// `None` when the name is unknown or nothing was measured for it.
    pub fn metric(&self, name: &str) -> Option<f64> {
        if let Some((metric, stat)) = name.split_once('.') {
            return self.distribution(metric)?.stat(stat);
        }
        Some(match name {
            "requests_ok" => self.requests_ok as f64,
            "requests_failed" => self.requests_failed as f64,
            "error_rate" => self.error_rate,
            "duration_s" => self.duration_s,
            "input_tokens" => self.input_tokens as f64,
            "output_tokens" => self.output_tokens as f64,
            "input_tok_s" => self.input_tok_s,
            "output_tok_s" => self.output_tok_s,
            "req_s" => self.req_s,
            "tput_user" => self.tput_user,
            _ => return None,
        })
    }
}

/// Every metric name an SLO may use.
pub fn metric_names() -> Vec<String> {
    let mut names: Vec<String> = SCALAR_METRICS.iter().map(|s| s.to_string()).collect();
    for metric in DISTRIBUTION_METRICS {
        for stat in STAT_NAMES {
            names.push(format!("{metric}.{stat}"));
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok_record(ttft: f64, e2el: f64, tokens: u64) -> RequestRecord {
        RequestRecord {
            ttft_ms: Some(ttft),
            e2el_ms: Some(e2el),
            chunk_ms: (0..tokens).map(|i| ttft + i as f64 * 10.0).collect(),
            chunk_tokens: vec![1; tokens as usize],
            prompt_tokens: Some(100),
            output_tokens: Some(tokens),
            ..Default::default()
        }
    }

    #[test]
    fn summary_counts_throughput_over_the_window_and_errors_by_class() {
        let mut records = vec![ok_record(50.0, 140.0, 10), ok_record(50.0, 140.0, 10)];
        records.push(RequestRecord {
            error: Some(ErrorClass::Http503),
            status: Some(503),
            ..Default::default()
        });
        let s = Summary::from_records(&records, 2.0);
        assert_eq!((s.requests_ok, s.requests_failed), (2, 1));
        assert!((s.error_rate - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(s.errors.get(&ErrorClass::Http503), Some(&1));
        assert_eq!(s.output_tok_s, 10.0);
        assert_eq!(s.input_tok_s, 100.0);
        assert_eq!(s.req_s, 1.0);
        assert_eq!(s.metric("tpot_ms.mean"), Some(10.0));
        assert_eq!(s.tput_user, 100.0);
        assert_eq!(s.metric("itl_ms.p50"), Some(10.0));
        assert_eq!(s.metric("nonsense"), None);
    }

    #[test]
    fn every_listed_metric_name_resolves_on_a_full_summary() {
        let s = Summary::from_records(&[ok_record(5.0, 95.0, 10)], 1.0);
        for name in metric_names() {
            assert!(s.metric(&name).is_some(), "{name}");
        }
    }
}
