//! The serving metrics this harness knows by name, across servers: vLLM, SGLang, llama.cpp's
//! llama-server (started with `--metrics`), TGI, and the embedded server (vLLM's names).
//! Scraped and summarised by `server_metrics`; defined here, with what a measurement is, so
//! that a case's SLOs can check a server metric's name when the case is loaded.

use serde::{Deserialize, Serialize};

/// How a metric behaves over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    /// A level that goes up and down (requests running, KV cache usage): summarised by its
    /// mean and maximum over the scrapes.
    Gauge,
    /// A running total (tokens generated): summarised by its increase over the trial.
    Counter,
}

/// How the values of one metric's label sets (engines, models) combine into one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combine {
    /// Added up (counts and totals).
    Sum,
    /// The largest (a usage fraction per engine).
    Max,
}

/// A metric the summary shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownMetric {
    /// Its name in the exposition.
    pub name: &'static str,
    /// What it measures, the same words for every server (`requests waiting`).
    pub label: &'static str,
    /// Gauge or counter.
    pub kind: MetricKind,
    /// How its label sets combine.
    pub combine: Combine,
}

const fn gauge(name: &'static str, label: &'static str, combine: Combine) -> KnownMetric {
    KnownMetric {
        name,
        label,
        kind: MetricKind::Gauge,
        combine,
    }
}

const fn counter(name: &'static str, label: &'static str) -> KnownMetric {
    KnownMetric {
        name,
        label,
        kind: MetricKind::Counter,
        combine: Combine::Sum,
    }
}

/// Label of the requests being served.
pub const RUNNING: &str = "requests running";
/// Label of the requests queued for a place.
pub const WAITING: &str = "requests waiting";
/// Label of the KV cache's used fraction.
pub const KV_USAGE: &str = "kv cache usage";
/// Label of the prompt tokens processed.
pub const PROMPT_TOKENS: &str = "prompt tokens";
/// Label of the tokens generated.
pub const GENERATED_TOKENS: &str = "generated tokens";
/// Label of the prompt tokens looked up in the prefix cache.
pub const PREFIX_QUERIES: &str = "prefix cache queries (tokens)";
/// Label of the prompt tokens found in the prefix cache.
pub const PREFIX_HITS: &str = "prefix cache hits (tokens)";
/// Label of the preemptions.
pub const PREEMPTIONS: &str = "preemptions";

/// Every metric the summary shows, in display order within each server's family.
pub const KNOWN: &[KnownMetric] = &[
    // vLLM (v0 and v1 names) and the embedded server.
    gauge("vllm:num_requests_running", RUNNING, Combine::Sum),
    gauge("vllm:num_requests_waiting", WAITING, Combine::Sum),
    gauge("vllm:kv_cache_usage_perc", KV_USAGE, Combine::Max),
    gauge("vllm:gpu_cache_usage_perc", KV_USAGE, Combine::Max),
    counter("vllm:prompt_tokens_total", PROMPT_TOKENS),
    counter("vllm:generation_tokens_total", GENERATED_TOKENS),
    counter("vllm:num_preemptions_total", PREEMPTIONS),
    counter("vllm:request_success_total", "requests finished"),
    counter("vllm:prefix_cache_queries_total", PREFIX_QUERIES),
    counter("vllm:prefix_cache_hits_total", PREFIX_HITS),
    // SGLang.
    gauge("sglang:num_running_reqs", RUNNING, Combine::Sum),
    gauge("sglang:num_queue_reqs", WAITING, Combine::Sum),
    gauge("sglang:token_usage", KV_USAGE, Combine::Max),
    counter("sglang:prompt_tokens_total", PROMPT_TOKENS),
    counter("sglang:generation_tokens_total", GENERATED_TOKENS),
    gauge(
        "sglang:cache_hit_rate",
        "prefix cache hit rate",
        Combine::Max,
    ),
    // llama.cpp's llama-server.
    gauge("llamacpp:requests_processing", RUNNING, Combine::Sum),
    gauge("llamacpp:requests_deferred", WAITING, Combine::Sum),
    gauge("llamacpp:kv_cache_usage_ratio", KV_USAGE, Combine::Max),
    counter("llamacpp:prompt_tokens_total", PROMPT_TOKENS),
    counter("llamacpp:tokens_predicted_total", GENERATED_TOKENS),
    counter("llamacpp:prompt_seconds_total", "prompt seconds"),
    counter(
        "llamacpp:tokens_predicted_seconds_total",
        "generation seconds",
    ),
    counter("llamacpp:n_decode_total", "decode calls"),
    // Hugging Face TGI.
    gauge("tgi_batch_current_size", RUNNING, Combine::Sum),
    gauge("tgi_queue_size", WAITING, Combine::Sum),
];

/// The index in [`KNOWN`] of a metric name.
pub fn index_of(name: &str) -> Option<usize> {
    KNOWN.iter().position(|m| m.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_counters_end_in_total() {
        for (i, metric) in KNOWN.iter().enumerate() {
            assert_eq!(index_of(metric.name), Some(i), "{} twice", metric.name);
            if metric.kind == MetricKind::Counter {
                assert!(metric.name.ends_with("_total"), "{}", metric.name);
            }
        }
    }
}
