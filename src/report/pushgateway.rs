//! Pushing a run's metrics to a Prometheus Pushgateway, in the text exposition format
//! (version 0.0.4), so dashboards and alerts can follow runs.
//!
//! Every push is a `PUT /metrics/job/{job}/instance/{instance}` of every trial so far: the
//! gateway replaces the whole group, so trials of an earlier push stay in it. Each sample
//! carries the labels `run_id`, `kind`, `case` and `trial`.

use std::fmt::Write as _;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::ReportError;
use super::TrialReport;
use super::analysis::{Level, Thresholds, analyse, stability};
use crate::judge::Status;

/// Where and under which grouping key metrics are pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway {
    /// The gateway's base URL, such as `http://127.0.0.1:9091`.
    pub url: String,
    /// The `job` grouping label.
    pub job: String,
    /// The `instance` grouping label.
    pub instance: String,
}

/// The default `job` label.
pub const DEFAULT_JOB: &str = "llm-stress";

impl Gateway {
    /// The URL metrics are pushed to: `{url}/metrics/job/{job}/instance/{instance}`, each
    /// label value as is when it is made of `[A-Za-z0-9._-]`, else base64url-encoded
    /// (`job@base64/…`), as the Pushgateway expects for values with `/` or other characters.
    pub fn endpoint(&self) -> String {
        format!(
            "{}/metrics/{}/{}",
            self.url.trim_end_matches('/'),
            path_label("job", &self.job),
            path_label("instance", &self.instance)
        )
    }

    /// Pushes `body` (exposition text), replacing the group's metrics.
    pub async fn push(&self, client: &reqwest::Client, body: String) -> Result<(), ReportError> {
        let url = self.endpoint();
        let failed = |message: String| ReportError::Push {
            url: url.clone(),
            message,
        };
        let response = client
            .put(&url)
            .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
            .body(body)
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        Err(failed(format!(
            "HTTP {status}: {}",
            crate::metrics::record::excerpt(text.trim(), 300)
        )))
    }

    /// Pushes once from synchronous code (a runtime of its own for the call).
    pub fn push_blocking(&self, body: String) -> Result<(), ReportError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ReportError::Push {
                url: self.endpoint(),
                message: format!("cannot start the async runtime: {e}"),
            })?;
        let client = reqwest::Client::new();
        runtime.block_on(self.push(&client, body))
    }
}

/// `name/value`, or `name@base64/…` for values that cannot stand in a URL path as they are.
fn path_label(name: &str, value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && value != "."
        && value != "..";
    if plain {
        format!("{name}/{value}")
    } else {
        format!("{name}@base64/{}", base64url(value.as_bytes()))
    }
}

/// RFC 4648 base64url with padding (an empty value is `=`, as the Pushgateway asks).
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    if bytes.is_empty() {
        return "=".into();
    }
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A label value escaped for the exposition format.
fn label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A sample value: `NaN`, `+Inf`, `-Inf` or the number.
fn sample_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        value.to_string()
    }
}

/// One metric family being written: HELP and TYPE once, then its samples.
struct Family {
    name: &'static str,
    help: &'static str,
    samples: Vec<(String, f64)>,
}

/// The quantiles pushed for each latency.
const QUANTILES: [(&str, &str); 4] = [
    ("0.5", "p50"),
    ("0.9", "p90"),
    ("0.95", "p95"),
    ("0.99", "p99"),
];

/// The run's metrics in the text exposition format: per trial its latency quantiles and
/// means, throughputs, request counts, error rate, accuracy, verdict, stability and analysis
/// levels.
pub fn exposition(trials: &[&TrialReport], thresholds: &Thresholds) -> String {
    let mut families: Vec<Family> = Vec::new();
    let mut add =
        |name: &'static str, help: &'static str, labels: String, value: f64| match families
            .iter_mut()
            .find(|f| f.name == name)
        {
            Some(family) => family.samples.push((labels, value)),
            None => families.push(Family {
                name,
                help,
                samples: vec![(labels, value)],
            }),
        };
    for r in trials {
        let base = format!(
            "run_id=\"{}\",kind=\"{}\",case=\"{}\",trial=\"{}\"",
            label_value(&r.meta.run_id),
            r.meta.kind.as_str(),
            label_value(&r.meta.case),
            label_value(&r.meta.trial)
        );
        let with = |extra: &str| format!("{base},{extra}");
        if let Some(s) = r.summary().filter(|_| r.meta.kind.drives_load()) {
            let latencies: [(&'static str, &'static str, &'static str, &'static str, _); 4] = [
                (
                    "llm_stress_ttft_ms",
                    "llm_stress_ttft_ms_mean",
                    "Time to first token, ms.",
                    "Mean time to first token, ms.",
                    s.ttft_ms,
                ),
                (
                    "llm_stress_tpot_ms",
                    "llm_stress_tpot_ms_mean",
                    "Time per output token after the first, ms.",
                    "Mean time per output token, ms.",
                    s.tpot_ms,
                ),
                (
                    "llm_stress_itl_ms",
                    "llm_stress_itl_ms_mean",
                    "Inter-token latency, ms.",
                    "Mean inter-token latency, ms.",
                    s.itl_ms,
                ),
                (
                    "llm_stress_e2el_ms",
                    "llm_stress_e2el_ms_mean",
                    "End-to-end latency, ms.",
                    "Mean end-to-end latency, ms.",
                    s.e2el_ms,
                ),
            ];
            for (name, mean_name, help, mean_help, distribution) in latencies {
                let Some(d) = distribution else { continue };
                for (quantile, stat) in QUANTILES {
                    if let Some(v) = d.stat(stat) {
                        add(name, help, with(&format!("quantile=\"{quantile}\"")), v);
                    }
                }
                add(mean_name, mean_help, base.clone(), d.mean);
            }
            add(
                "llm_stress_output_tokens_per_second",
                "Output tokens per second over the measured window.",
                base.clone(),
                s.output_tok_s,
            );
            add(
                "llm_stress_input_tokens_per_second",
                "Prompt tokens per second over the measured window.",
                base.clone(),
                s.input_tok_s,
            );
            add(
                "llm_stress_requests_per_second",
                "Successful requests per second over the measured window.",
                base.clone(),
                s.req_s,
            );
            add(
                "llm_stress_tput_user_tokens_per_second",
                "Tokens per second seen by one user: 1000 / mean TPOT.",
                base.clone(),
                s.tput_user,
            );
            add(
                "llm_stress_requests",
                "Measured requests by outcome.",
                with("outcome=\"ok\""),
                s.requests_ok as f64,
            );
            add(
                "llm_stress_requests",
                "Measured requests by outcome.",
                with("outcome=\"failed\""),
                s.requests_failed as f64,
            );
            add(
                "llm_stress_error_rate",
                "Failed requests / requests sent.",
                base.clone(),
                s.error_rate,
            );
            add(
                "llm_stress_stability",
                "max(0, 1 - (1.5 x error rate + 0.5 x E2EL CV)).",
                base.clone(),
                stability(s),
            );
        }
        if let Some(accuracy) = r.accuracy_score() {
            add(
                "llm_stress_accuracy",
                "Accuracy score, 0-100.",
                base.clone(),
                accuracy,
            );
        }
        if let Some(threshold) = r.accuracy_threshold() {
            add(
                "llm_stress_accuracy_threshold",
                "The accuracy threshold, 0-100.",
                base.clone(),
                threshold,
            );
        }
        for status in [Status::Pass, Status::Fail, Status::NotApplicable] {
            add(
                "llm_stress_verdict",
                "1 for the trial's verdict, 0 for the others.",
                with(&format!("status=\"{}\"", status.as_str())),
                f64::from(u8::from(r.verdict.status == status)),
            );
        }
        add(
            "llm_stress_trial_failed",
            "1 when the trial failed as a test (its verdict is not what the case expects).",
            base.clone(),
            f64::from(u8::from(!r.passed())),
        );
        if let Some(analysis) = analyse(r, thresholds) {
            for f in analysis
                .findings
                .iter()
                .filter(|f| f.level != Level::NotApplicable)
            {
                let level = match f.level {
                    Level::Critical => 2.0,
                    Level::Warning => 1.0,
                    _ => 0.0,
                };
                add(
                    "llm_stress_analysis_level",
                    "Automatic analysis: 0 PASS, 1 WARNING, 2 CRITICAL.",
                    with(&format!(
                        "check=\"{}\"",
                        f.quantity.label().replace(' ', "_").to_lowercase()
                    )),
                    level,
                );
            }
        }
    }
    let mut out = String::new();
    for family in families {
        let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
        let _ = writeln!(out, "# TYPE {} gauge", family.name);
        for (labels, value) in family.samples {
            let _ = writeln!(out, "{}{{{labels}}} {}", family.name, sample_value(value));
        }
    }
    out
}

/// Pushes the latest metrics every interval from a thread of its own while a run goes on,
/// and once more when it is finished.
#[derive(Debug)]
pub struct PeriodicPush {
    updates: mpsc::Sender<Option<String>>,
    thread: JoinHandle<Result<(), ReportError>>,
}

impl PeriodicPush {
    /// Starts pushing to `gateway` every `every` (nothing is pushed before the first
    /// [`PeriodicPush::update`]). A failed periodic push is reported on stderr and retried
    /// at the next interval.
    pub fn start(gateway: Gateway, every: Duration) -> PeriodicPush {
        let (updates, received) = mpsc::channel::<Option<String>>();
        let thread = std::thread::spawn(move || -> Result<(), ReportError> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| ReportError::Push {
                    url: gateway.endpoint(),
                    message: format!("cannot start the async runtime: {e}"),
                })?;
            let client = reqwest::Client::new();
            let mut latest: Option<String> = None;
            let mut next = Instant::now() + every;
            loop {
                match received.recv_timeout(next.saturating_duration_since(Instant::now())) {
                    Ok(Some(body)) => latest = Some(body),
                    Ok(None) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        if let Some(body) = &latest
                            && let Err(e) = runtime.block_on(gateway.push(&client, body.clone()))
                        {
                            eprintln!("warning: {e}");
                        }
                        next = Instant::now() + every;
                    }
                }
            }
            match latest {
                Some(body) => runtime.block_on(gateway.push(&client, body)),
                None => Ok(()),
            }
        });
        PeriodicPush { updates, thread }
    }

    /// Replaces the metrics pushed from now on.
    pub fn update(&self, body: String) {
        // A thread that ended early has already returned its error; `finish` reports it.
        let _ = self.updates.send(Some(body));
    }

    /// Pushes `body` a last time and stops.
    pub fn finish(self, body: String) -> Result<(), ReportError> {
        self.update(body);
        let _ = self.updates.send(None);
        self.thread.join().unwrap_or_else(|_| {
            Err(ReportError::Push {
                url: String::new(),
                message: "the push thread panicked".into(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::report::sample::sample_report;

    #[rstest]
    #[case("llm-stress", "job/llm-stress")]
    #[case("a/b", "job@base64/YS9i")]
    #[case("", "job@base64/=")]
    #[case("é", "job@base64/w6k=")]
    #[case("host:9", "job@base64/aG9zdDo5")]
    fn grouping_labels_are_plain_or_base64url(#[case] value: &str, #[case] segment: &str) {
        assert_eq!(path_label("job", value), segment);
    }

    #[test]
    fn the_endpoint_names_job_and_instance() {
        let gateway = Gateway {
            url: "http://127.0.0.1:9091/".into(),
            job: "llm-stress".into(),
            instance: "ci-1".into(),
        };
        assert_eq!(
            gateway.endpoint(),
            "http://127.0.0.1:9091/metrics/job/llm-stress/instance/ci-1"
        );
    }

    #[rstest]
    #[case(f64::NAN, "NaN")]
    #[case(f64::INFINITY, "+Inf")]
    #[case(f64::NEG_INFINITY, "-Inf")]
    #[case(12.5, "12.5")]
    #[case(0.0, "0")]
    fn values_follow_the_exposition_format(#[case] value: f64, #[case] text: &str) {
        assert_eq!(sample_value(value), text);
    }

    #[test]
    fn every_family_is_declared_once_with_its_samples() {
        let mut second = sample_report();
        second.meta.trial = "demo-chat::\"quoted\"\nname".into();
        let first = sample_report();
        let text = exposition(&[&first, &second], &Thresholds::default());
        assert_eq!(text.matches("# TYPE llm_stress_ttft_ms gauge").count(), 1);
        let base = "run_id=\"run-1\",kind=\"perf\",case=\"demo-chat\",\
                    trial=\"demo-chat::isl128_osl16_c2_n5\"";
        for line in [
            format!("llm_stress_ttft_ms{{{base},quantile=\"0.5\"}} 50.125"),
            format!("llm_stress_ttft_ms{{{base},quantile=\"0.99\"}} 80"),
            format!("llm_stress_ttft_ms_mean{{{base}}} 50.125"),
            format!("llm_stress_output_tokens_per_second{{{base}}} 25.6"),
            format!("llm_stress_requests{{{base},outcome=\"failed\"}} 1"),
            format!("llm_stress_error_rate{{{base}}} 0.2"),
            format!("llm_stress_verdict{{{base},status=\"FAIL\"}} 1"),
            format!("llm_stress_verdict{{{base},status=\"PASS\"}} 0"),
            format!("llm_stress_trial_failed{{{base}}} 1"),
            format!("llm_stress_analysis_level{{{base},check=\"error_rate\"}} 2"),
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert!(
            text.contains("trial=\"demo-chat::\\\"quoted\\\"\\nname\""),
            "{text}"
        );
        // No sample for what was not measured (the sample has no inter-token latency).
        assert!(!text.contains("llm_stress_itl_ms{"), "{text}");
    }
}
