//! The embedded server's Prometheus `/metrics`, under vLLM's names: requests running and
//! waiting, prompt and generated tokens, finished requests, and when the engine reports them,
//! KV cache usage and preemptions.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::engine::EngineGauges;

/// The server's counts, updated as requests are admitted and tokens are sent.
#[derive(Debug, Default)]
pub struct ServingCounts {
    running: Arc<AtomicUsize>,
    prompt_tokens: AtomicU64,
    generated_tokens: AtomicU64,
    finished: AtomicU64,
}

/// A request in service, counted as running until dropped.
pub struct Running(Arc<AtomicUsize>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ServingCounts {
    /// Counts a request the engine admitted, with its prompt, as running until the guard is
    /// dropped.
    pub fn admitted(&self, prompt_tokens: u64) -> Running {
        self.running.fetch_add(1, Ordering::Relaxed);
        self.prompt_tokens
            .fetch_add(prompt_tokens, Ordering::Relaxed);
        Running(Arc::clone(&self.running))
    }

    /// Requests in service now.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }

    /// Counts tokens written to a client.
    pub fn sent(&self, tokens: usize) {
        self.generated_tokens
            .fetch_add(tokens as u64, Ordering::Relaxed);
    }

    /// Counts a request whose whole answer was written.
    pub fn finished(&self) {
        self.finished.fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition text, given how many generation requests are in the server (queued,
    /// in service or streaming) and the engine's own gauges if it has them (running and
    /// waiting then come from the engine, with KV cache usage and preemptions).
    pub fn render(&self, model: &str, in_server: usize, engine: Option<EngineGauges>) -> String {
        let (running, waiting) = match engine {
            Some(g) => (g.running, g.waiting),
            None => {
                let running = self.running();
                (running, in_server.saturating_sub(running))
            }
        };
        let mut metrics: Vec<(&str, &str, &str, String)> = vec![
            (
                "vllm:num_requests_running",
                "gauge",
                "Requests in service.",
                running.to_string(),
            ),
            (
                "vllm:num_requests_waiting",
                "gauge",
                "Requests waiting for a place.",
                waiting.to_string(),
            ),
            (
                "vllm:prompt_tokens_total",
                "counter",
                "Prompt tokens of admitted requests.",
                self.prompt_tokens.load(Ordering::Relaxed).to_string(),
            ),
            (
                "vllm:generation_tokens_total",
                "counter",
                "Tokens written to clients.",
                self.generated_tokens.load(Ordering::Relaxed).to_string(),
            ),
            (
                "vllm:request_success_total",
                "counter",
                "Requests answered in full.",
                self.finished.load(Ordering::Relaxed).to_string(),
            ),
        ];
        if let Some(g) = engine {
            metrics.push((
                "vllm:kv_cache_usage_perc",
                "gauge",
                "Used fraction of the KV cache (1 is full).",
                g.kv_usage.to_string(),
            ));
            metrics.push((
                "vllm:num_preemptions_total",
                "counter",
                "Requests preempted (their KV cache freed, to be recomputed).",
                g.preemptions.to_string(),
            ));
        }
        let model = model.replace('\\', "\\\\").replace('"', "\\\"");
        let mut text = String::new();
        for (name, kind, help, value) in metrics {
            // Writing to a String cannot fail.
            let _ = write!(
                text,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{model_name=\"{model}\"}} {value}\n"
            );
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_admissions_tokens_and_finishes() {
        let counts = ServingCounts::default();
        let first = counts.admitted(10);
        let second = counts.admitted(5);
        counts.sent(3);
        counts.finished();
        drop(first);
        let text = counts.render("m\"x", 4, None);
        for line in [
            "vllm:num_requests_running{model_name=\"m\\\"x\"} 1",
            "vllm:num_requests_waiting{model_name=\"m\\\"x\"} 3",
            "vllm:prompt_tokens_total{model_name=\"m\\\"x\"} 15",
            "vllm:generation_tokens_total{model_name=\"m\\\"x\"} 3",
            "vllm:request_success_total{model_name=\"m\\\"x\"} 1",
            "# TYPE vllm:num_requests_running gauge",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        drop(second);
        assert!(
            counts
                .render("m", 0, None)
                .contains("running{model_name=\"m\"} 0")
        );
    }
}
