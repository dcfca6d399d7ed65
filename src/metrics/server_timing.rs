//! What the server says it spent on a request (llama.cpp's `timings`), kept beside what the
//! client measured so the two can be compared.

use serde::{Deserialize, Serialize};

use super::distribution::{Distribution, DistributionBuilder};
use super::record::RequestRecord;

/// A server's own account of one request: llama-server's `timings` object, sent on the last
/// chunk of `/completion` and of its OpenAI endpoints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerTiming {
    /// Prompt tokens the server processed (cached ones excluded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_n: Option<u64>,
    /// Time spent processing the prompt, from the moment a slot took the request to the first
    /// token, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_ms: Option<f64>,
    /// Tokens generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_n: Option<u64>,
    /// Time from the first generated token to the last, in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_ms: Option<f64>,
    /// Prompt tokens taken from the server's prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_n: Option<u64>,
}

impl ServerTiming {
    /// The server's time per output token after the first: `predicted_ms / (predicted_n − 1)`,
    /// the same definition as the client's TPOT (llama-server's own `predicted_per_token_ms`
    /// divides by `predicted_n` although the first token's time is in `prompt_ms`).
    pub fn tpot_ms(&self) -> Option<f64> {
        let (ms, n) = (self.predicted_ms?, self.predicted_n?);
        (n > 1).then(|| ms / (n - 1) as f64)
    }
}

/// The server's timings over a trial's successful requests, beside the client's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerTimingSummary {
    /// Successful requests whose response carried timings.
    pub requests: u64,
    /// Server prompt processing time (`prompt_ms`).
    pub prompt_ms: Option<Distribution>,
    /// Server time per output token after the first (see [`ServerTiming::tpot_ms`]).
    pub tpot_ms: Option<Distribution>,
    /// Client TTFT minus the server's prompt time: what the request spent before the server
    /// began its prompt (waiting for a free slot) plus transport both ways.
    pub wait_ms: Option<Distribution>,
}

impl ServerTimingSummary {
    /// Summarises the timings of `ok` (successful) records; `None` when none has any. A fold
    /// over a [`ServerTimingBuilder`].
    pub fn of<'a>(ok: impl IntoIterator<Item = &'a RequestRecord>) -> Option<ServerTimingSummary> {
        let mut builder = ServerTimingBuilder::default();
        for record in ok {
            builder.add(record);
        }
        builder.build()
    }

    /// One of the distributions by its metric name (`server_prompt_ms`, `server_tpot_ms`,
    /// `server_wait_ms`).
    pub fn distribution(&self, metric: &str) -> Option<&Distribution> {
        match metric {
            "server_prompt_ms" => self.prompt_ms.as_ref(),
            "server_tpot_ms" => self.tpot_ms.as_ref(),
            "server_wait_ms" => self.wait_ms.as_ref(),
            _ => None,
        }
    }
}

/// The server's timings summarised one successful record at a time, in constant memory.
#[derive(Debug, Clone, Default)]
pub struct ServerTimingBuilder {
    requests: u64,
    prompt_ms: DistributionBuilder,
    tpot_ms: DistributionBuilder,
    wait_ms: DistributionBuilder,
}

impl ServerTimingBuilder {
    /// Adds a successful record (one without timings counts for nothing).
    pub fn add(&mut self, record: &RequestRecord) {
        let Some(timing) = record.server_timing else {
            return;
        };
        self.requests += 1;
        if let Some(ms) = timing.prompt_ms {
            self.prompt_ms.add_ms(ms);
        }
        if let Some(ms) = timing.tpot_ms() {
            self.tpot_ms.add_ms(ms);
        }
        if let (Some(ttft), Some(prompt)) = (record.ttft_ms, timing.prompt_ms) {
            self.wait_ms.add_ms(ttft - prompt);
        }
    }

    /// The summary so far; `None` when no record had timings.
    pub fn build(&self) -> Option<ServerTimingSummary> {
        (self.requests > 0).then(|| ServerTimingSummary {
            requests: self.requests,
            prompt_ms: self.prompt_ms.build(),
            tpot_ms: self.tpot_ms.build(),
            wait_ms: self.wait_ms.build(),
        })
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case(Some(90.0), Some(10), Some(10.0))]
    #[case(Some(0.0), Some(1), None)]
    #[case(None, Some(10), None)]
    fn server_tpot_divides_by_the_tokens_after_the_first(
        #[case] predicted_ms: Option<f64>,
        #[case] predicted_n: Option<u64>,
        #[case] tpot: Option<f64>,
    ) {
        let timing = ServerTiming {
            predicted_ms,
            predicted_n,
            ..Default::default()
        };
        assert_eq!(timing.tpot_ms(), tpot);
    }

    #[test]
    fn llama_server_timings_parse_and_summarise_beside_the_client() {
        let timing: ServerTiming = serde_json::from_str(
            r#"{"cache_n":0,"prompt_n":31,"prompt_ms":114.7,"prompt_per_token_ms":3.7,
                "predicted_n":5,"predicted_ms":42.8,"predicted_per_token_ms":8.56}"#,
        )
        .expect("llama-server timings");
        assert_eq!(timing.prompt_n, Some(31));
        let record = |ttft: f64| RequestRecord {
            ttft_ms: Some(ttft),
            server_timing: Some(timing),
            ..Default::default()
        };
        let untimed = RequestRecord::default();
        let records = [record(120.0), record(130.0), untimed];
        let summary = ServerTimingSummary::of(&records).expect("timings");
        assert_eq!(summary.requests, 2);
        let wait = summary.wait_ms.expect("wait");
        assert!((wait.min - 5.3).abs() < 0.01 && (wait.max - 15.3).abs() < 0.01);
        assert!((summary.tpot_ms.expect("tpot").mean - 10.7).abs() < 0.01);
        assert!(ServerTimingSummary::of(&[RequestRecord::default()]).is_none());
    }
}
