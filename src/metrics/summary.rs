//! The summary of one trial's records: the one result model every report is a view of.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::accumulate::Accumulator;
use super::consistency::Consistency;
use super::distribution::{Distribution, STAT_NAMES};
use super::drift::{DRIFT_FIELDS, Drift};
use super::goodput::RequestSlo;
use super::prefix::{PREFIX_FIELDS, PrefixSummary};
use super::record::{ErrorClass, RequestRecord};
use super::server_timing::ServerTimingSummary;
use super::turns::{TURN_FIELDS, TurnSummary};

/// Latency metrics that have a distribution, as named in SLOs (`ttft_ms.p95`). The
/// `*_intended_ms` ones count from the open-loop schedule's intended send time,
/// `lateness_ms` is how late the client sent (open loop only), and the `server_*` ones come
/// from the server's own timings (see [`ServerTimingSummary`]).
pub const DISTRIBUTION_METRICS: [&str; 10] = [
    "ttft_ms",
    "tpot_ms",
    "itl_ms",
    "e2el_ms",
    "ttft_intended_ms",
    "e2el_intended_ms",
    "lateness_ms",
    "server_prompt_ms",
    "server_tpot_ms",
    "server_wait_ms",
];

/// Metrics that are one number, as named in SLOs (`error_rate < 0.01`). `goodput` and
/// `goodput_req_s` are measured only when the case declares its per-request SLOs.
pub const SCALAR_METRICS: [&str; 15] = [
    "requests_ok",
    "requests_failed",
    "error_rate",
    "dropped",
    "drop_rate",
    "send_rate",
    "duration_s",
    "input_tokens",
    "output_tokens",
    "input_tok_s",
    "output_tok_s",
    "req_s",
    "tput_user",
    "goodput",
    "goodput_req_s",
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
    /// Open loop: arrivals that were never sent (the in-flight cap was reached).
    pub dropped: u64,
    /// dropped / all arrivals.
    pub drop_rate: f64,
    /// Open loop: the rate asked for, requests/s.
    pub requested_rate: Option<f64>,
    /// Rate at which requests were actually sent: (sent − 1) / (last send − first send).
    pub send_rate: f64,
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
    /// Open loop: TTFT from the intended send time.
    pub ttft_intended_ms: Option<Distribution>,
    /// Open loop: E2EL from the intended send time.
    pub e2el_intended_ms: Option<Distribution>,
    /// Open loop: actual − intended send time.
    pub lateness_ms: Option<Distribution>,
    /// First-half vs second-half drift of TTFT and decode rate.
    pub drift: Option<Drift>,
    /// Prompt tokens of successful requests (server usage).
    pub input_tokens: u64,
    /// Output tokens of successful requests (server usage).
    pub output_tokens: u64,
    /// Successful requests whose output count was estimated, not reported by the server.
    pub estimated_token_counts: u64,
    /// Successful requests where the server's output count and the local tokenizer's differ.
    pub token_count_mismatches: u64,
    /// input_tokens / duration_s.
    pub input_tok_s: f64,
    /// output_tokens / duration_s.
    pub output_tok_s: f64,
    /// requests_ok / duration_s.
    pub req_s: f64,
    /// Tokens per second per user: 1000 / mean TPOT.
    pub tput_user: f64,
    /// The server's own timings beside the client's, when the server reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_timing: Option<ServerTimingSummary>,
    /// Fraction (0–1) of the measured requests, failed ones included, that met every
    /// per-request SLO of the case's `goodput` (see [`RequestSlo`]); `None` when the case
    /// declares none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goodput: Option<f64>,
    /// Those good requests per second over the measured window (vLLM's "request goodput").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goodput_req_s: Option<f64>,
    /// A consistency run's spread of TTFT and decode rate over identical requests
    /// (`load.mode: consistency` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<Consistency>,
    /// Shared prefixes (`prompts.prefix_tokens`): TTFT of the requests whose prefix was cold
    /// against those that shared one already sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<PrefixSummary>,
    /// Multi-turn conversations (`prompts.sessions`): TTFT by turn position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turns: Option<TurnSummary>,
}

impl Summary {
    /// Summarises records over a measured window of `duration_s` seconds: a fold over an
    /// [`Accumulator`], the one code path of a summary whether its records are in memory or
    /// were streamed as the load ran.
    pub fn from_records(records: &[RequestRecord], duration_s: f64) -> Summary {
        let mut accumulator = Accumulator::new();
        for record in records {
            accumulator.add(record);
        }
        accumulator.summary(duration_s)
    }

    /// Adds the consistency summary of `records` (the ones this summary was made from): for
    /// a run that sent the same prompt each time.
    pub fn with_consistency(mut self, records: &[RequestRecord]) -> Summary {
        self.consistency = Consistency::of(records);
        self
    }

    /// Adds goodput: the share of `records` (the ones this summary was made from) that met
    /// every bound of `slo`, and those per second. Unchanged when `slo` is `None`.
    pub fn with_goodput(mut self, records: &[RequestRecord], slo: Option<&RequestSlo>) -> Summary {
        if let Some((fraction, per_s)) = slo.and_then(|s| s.goodput(records, self.duration_s)) {
            self.goodput = Some(fraction);
            self.goodput_req_s = Some(per_s);
        }
        self
    }

    /// Adds what an open-loop schedule knows: the rate asked for and the arrivals that were
    /// never sent.
    pub fn with_arrivals(mut self, requested_rate: Option<f64>, dropped: u64) -> Summary {
        let arrivals = self.requests_ok + self.requests_failed + dropped;
        self.requested_rate = requested_rate;
        self.dropped = dropped;
        self.drop_rate = if arrivals == 0 {
            0.0
        } else {
            dropped as f64 / arrivals as f64
        };
        self
    }

    /// The distribution of a latency metric by name (`ttft_ms`, …).
    pub fn distribution(&self, metric: &str) -> Option<&Distribution> {
        match metric {
            "ttft_ms" => self.ttft_ms.as_ref(),
            "tpot_ms" => self.tpot_ms.as_ref(),
            "itl_ms" => self.itl_ms.as_ref(),
            "e2el_ms" => self.e2el_ms.as_ref(),
            "ttft_intended_ms" => self.ttft_intended_ms.as_ref(),
            "e2el_intended_ms" => self.e2el_intended_ms.as_ref(),
            "lateness_ms" => self.lateness_ms.as_ref(),
            _ => self.server_timing.as_ref()?.distribution(metric),
        }
    }

    /// A metric by its SLO name: a scalar (`error_rate`), `metric.stat` (`ttft_ms.p95`), a
    /// drift field (`drift.ttft_change`), a conversation field (`turns.server_cached_tokens`),
    /// a shared-prefix field (`prefix.shared_over_cold`) or the count of an error class
    /// (`errors.timeout`).
    /// `None` when the name is unknown or nothing was measured for it.
    pub fn metric(&self, name: &str) -> Option<f64> {
        if let Some(field) = name.strip_prefix("drift.") {
            return self.drift.as_ref()?.field(field);
        }
        if let Some(field) = name.strip_prefix("turns.") {
            return self.turns.as_ref()?.field(field);
        }
        if let Some(field) = name.strip_prefix("prefix.") {
            return self.prefix.as_ref()?.field(field);
        }
        if let Some(class) = name.strip_prefix("errors.") {
            let class = ErrorClass::ALL.into_iter().find(|c| c.as_str() == class)?;
            return Some(self.errors.get(&class).copied().unwrap_or(0) as f64);
        }
        if let Some((metric, stat)) = name.split_once('.') {
            return self.distribution(metric)?.stat(stat);
        }
        Some(match name {
            "requests_ok" => self.requests_ok as f64,
            "requests_failed" => self.requests_failed as f64,
            "error_rate" => self.error_rate,
            "dropped" => self.dropped as f64,
            "drop_rate" => self.drop_rate,
            "send_rate" => self.send_rate,
            "duration_s" => self.duration_s,
            "input_tokens" => self.input_tokens as f64,
            "output_tokens" => self.output_tokens as f64,
            "input_tok_s" => self.input_tok_s,
            "output_tok_s" => self.output_tok_s,
            "req_s" => self.req_s,
            "tput_user" => self.tput_user,
            "goodput" => return self.goodput,
            "goodput_req_s" => return self.goodput_req_s,
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
    names.extend(DRIFT_FIELDS.iter().map(|f| format!("drift.{f}")));
    names.extend(TURN_FIELDS.iter().map(|f| format!("turns.{f}")));
    names.extend(PREFIX_FIELDS.iter().map(|f| format!("prefix.{f}")));
    names.extend(
        ErrorClass::ALL
            .iter()
            .map(|c| format!("errors.{}", c.as_str())),
    );
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
        assert_eq!(s.metric("errors.http_503"), Some(1.0));
        assert_eq!(s.metric("errors.timeout"), Some(0.0));
        assert_eq!(s.metric("errors.nonsense"), None);
        // Too few requests for drift, and no per-request SLOs for goodput.
        assert_eq!(s.metric("drift.ttft_change"), None);
        assert_eq!(s.metric("goodput"), None);
        let goodput = RequestSlo {
            ttft_ms: Some(50.0),
            ..Default::default()
        };
        let s = s.with_goodput(&records, Some(&goodput));
        assert!((s.metric("goodput").expect("goodput") - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(s.metric("goodput_req_s"), Some(1.0));
    }

    #[test]
    fn old_summaries_without_goodput_still_read() {
        let mut json = serde_json::to_value(Summary::default()).expect("json");
        assert!(json.get("goodput").is_none(), "{json}");
        json.as_object_mut()
            .expect("object")
            .remove("goodput_req_s");
        let back: Summary = serde_json::from_value(json).expect("reads");
        assert_eq!(back.goodput, None);
    }

    #[test]
    fn open_loop_latency_counts_from_the_intended_send_and_drops_are_counted() {
        let mut late = ok_record(50.0, 140.0, 10);
        late.send_ms = 2030.0;
        late.intended_ms = Some(30.0);
        let mut on_time = ok_record(50.0, 140.0, 10);
        on_time.send_ms = 10.5;
        on_time.intended_ms = Some(10.0);
        let s = Summary::from_records(&[on_time, late], 3.0).with_arrivals(Some(2.0), 2);
        assert_eq!(s.metric("ttft_ms.max"), Some(50.0));
        assert_eq!(s.metric("ttft_intended_ms.max"), Some(2050.0));
        assert_eq!(s.metric("e2el_intended_ms.min"), Some(140.5));
        assert_eq!(s.metric("lateness_ms.max"), Some(2000.0));
        assert_eq!((s.dropped, s.drop_rate), (2, 0.5));
        assert_eq!(s.requested_rate, Some(2.0));
        assert!(
            (s.send_rate - 1000.0 / 2019.5).abs() < 1e-9,
            "{}",
            s.send_rate
        );
    }

    #[test]
    fn every_listed_metric_name_resolves_on_a_full_summary() {
        let mut open = ok_record(5.0, 95.0, 10);
        open.intended_ms = Some(0.0);
        open.server_timing = Some(crate::metrics::ServerTiming {
            prompt_ms: Some(4.0),
            predicted_n: Some(10),
            predicted_ms: Some(88.0),
            cache_n: Some(8),
            ..Default::default()
        });
        let records: Vec<RequestRecord> = (0..4)
            .map(|i| RequestRecord {
                send_ms: f64::from(i),
                conversation: Some(u64::from(i / 2)),
                turn: Some(i % 2 + 1),
                prefix_group: Some(0),
                prefix_cold: i == 0,
                cached_tokens: Some(8),
                ..open.clone()
            })
            .collect();
        let goodput = RequestSlo {
            ttft_ms: Some(100.0),
            ..Default::default()
        };
        let s = Summary::from_records(&records, 1.0).with_goodput(&records, Some(&goodput));
        for name in metric_names() {
            assert!(s.metric(&name).is_some(), "{name}");
        }
        assert_eq!(s.metric("turns.conversations"), Some(2.0));
        assert_eq!(s.metric("turns.conversations_completed"), Some(2.0));
        assert_eq!(s.metric("turns.server_cached_tokens"), Some(32.0));
        assert_eq!(s.metric("prefix.requests_cold"), Some(1.0));
        assert_eq!(s.metric("prefix.requests_shared"), Some(3.0));
        assert_eq!(s.metric("turns.unknown"), None);
    }
}
