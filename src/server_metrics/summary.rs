//! The known metrics' values over a trial's scrapes, and their summary.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::exposition::samples;
use super::known::{Combine, KNOWN, MetricKind, index_of};

/// What one scraped server's metrics did during a trial.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerMetrics {
    /// The endpoint (from the case) whose server was scraped.
    pub endpoint: String,
    /// Scrapes that returned an exposition.
    pub scrapes: u32,
    /// Scrapes that failed after the first had succeeded.
    pub failed_scrapes: u32,
    /// From the first successful scrape to the last, in seconds.
    pub window_s: f64,
    /// Why the server's metrics could not be read at all (the first scrape failed), if so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
    /// One entry per known metric the server exposes, in [`KNOWN`] order.
    pub metrics: Vec<MetricSummary>,
}

/// One metric over the trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSummary {
    /// Its name in the exposition (`llamacpp:requests_deferred`).
    pub name: String,
    /// What it measures, the same words for every server (`requests waiting`).
    pub label: String,
    /// Its values, summarised as its kind says.
    pub reading: Reading,
}

/// A metric's values over the trial.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reading {
    /// A gauge: the mean and maximum of its scraped values, and the last one.
    Gauge {
        /// Mean of the scraped values (scrapes are evenly spaced, so this is its time average).
        mean: f64,
        /// Largest scraped value.
        max: f64,
        /// Value at the last scrape.
        last: f64,
    },
    /// A counter: how much it grew between the first and the last scrape (a drop is read as
    /// a restart from zero, as Prometheus's `increase` does), and that per second.
    Counter {
        /// Growth over the window.
        increase: f64,
        /// `increase / window_s` (0 over an empty window).
        per_s: f64,
    },
}

impl ServerMetrics {
    /// The summary of the first metric with this label (`requests waiting`), if exposed.
    pub fn reading(&self, label: &str) -> Option<Reading> {
        self.metrics
            .iter()
            .find(|m| m.label == label)
            .map(|m| m.reading)
    }
}

/// The known metrics' values, folded scrape after scrape: a few running numbers per metric, so
/// a day-long trial scraped every 500 ms holds no more than a short one.
#[derive(Debug, Default)]
pub struct Series {
    /// Per index in [`KNOWN`]: its values so far.
    folds: BTreeMap<usize, Fold>,
    scrapes: u32,
    failed: u32,
    first_s: Option<f64>,
    last_s: f64,
}

/// One metric's scraped values, folded: what its [`Reading`] needs and nothing more.
#[derive(Debug, Clone, Copy)]
struct Fold {
    /// Values scraped.
    count: u32,
    /// Their sum (a gauge's mean).
    sum: f64,
    /// The largest.
    max: f64,
    /// The latest.
    last: f64,
    /// A counter's growth so far: a drop means it restarted from zero (as Prometheus's
    /// `increase` reads it).
    increase: f64,
}

impl Fold {
    fn new(value: f64) -> Fold {
        Fold {
            count: 1,
            sum: value,
            max: value,
            last: value,
            increase: 0.0,
        }
    }

    fn add(&mut self, value: f64) {
        self.count += 1;
        self.sum += value;
        self.max = self.max.max(value);
        self.increase += if value >= self.last {
            value - self.last
        } else {
            value
        };
        self.last = value;
    }
}

impl Series {
    /// Adds the scrape of `text` taken `at_s` seconds into the trial. Label sets of one
    /// metric are combined as [`KNOWN`] says; unknown metrics are ignored.
    pub fn add(&mut self, at_s: f64, text: &str) {
        let mut now: BTreeMap<usize, f64> = BTreeMap::new();
        for sample in samples(text).filter(|s| s.value.is_finite()) {
            let Some(index) = index_of(sample.name) else {
                continue;
            };
            now.entry(index)
                .and_modify(|v| match KNOWN[index].combine {
                    Combine::Sum => *v += sample.value,
                    Combine::Max => *v = v.max(sample.value),
                })
                .or_insert(sample.value);
        }
        for (index, value) in now {
            self.folds
                .entry(index)
                .and_modify(|fold| fold.add(value))
                .or_insert_with(|| Fold::new(value));
        }
        self.scrapes += 1;
        self.first_s.get_or_insert(at_s);
        self.last_s = at_s;
    }

    /// Counts a scrape that failed.
    pub fn add_failure(&mut self) {
        self.failed += 1;
    }

    /// Whether any scrape succeeded.
    pub fn is_empty(&self) -> bool {
        self.scrapes == 0
    }

    /// The summary of every known metric seen.
    pub fn summarise(&self, endpoint: &str) -> ServerMetrics {
        let window_s = self.first_s.map_or(0.0, |first| self.last_s - first);
        let metrics = self
            .folds
            .iter()
            .map(|(&index, fold)| {
                let known = KNOWN[index];
                let reading = match known.kind {
                    MetricKind::Gauge => Reading::Gauge {
                        mean: fold.sum / f64::from(fold.count),
                        max: fold.max,
                        last: fold.last,
                    },
                    MetricKind::Counter => {
                        let increase = fold.increase;
                        Reading::Counter {
                            increase,
                            per_s: if window_s > 0.0 {
                                increase / window_s
                            } else {
                                0.0
                            },
                        }
                    }
                };
                MetricSummary {
                    name: known.name.to_string(),
                    label: known.label.to_string(),
                    reading,
                }
            })
            .collect();
        ServerMetrics {
            endpoint: endpoint.to_string(),
            scrapes: self.scrapes,
            failed_scrapes: self.failed,
            window_s,
            unavailable: None,
            metrics,
        }
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::server_metrics::known::{GENERATED_TOKENS, RUNNING, WAITING};

    #[rstest]
    #[case(&[10.0, 15.0, 30.0], 20.0)]
    #[case(&[10.0, 15.0, 4.0, 6.0], 11.0)]
    #[case(&[7.0], 0.0)]
    fn counters_grow_across_restarts(#[case] values: &[f64], #[case] expected: f64) {
        let mut fold = Fold::new(values[0]);
        for &value in &values[1..] {
            fold.add(value);
        }
        assert_eq!(fold.increase, expected);
    }

    #[test]
    fn gauges_and_counters_are_summarised_and_label_sets_combined() {
        let mut series = Series::default();
        let scrape = |running: [u32; 2], waiting: u32, tokens: u32| {
            format!(
                "vllm:num_requests_running{{engine=\"0\"}} {}\n\
                 vllm:num_requests_running{{engine=\"1\"}} {}\n\
                 vllm:num_requests_waiting {waiting}\n\
                 vllm:generation_tokens_total {tokens}\n\
                 vllm:unknown_metric 99\n",
                running[0], running[1]
            )
        };
        series.add(0.0, &scrape([0, 0], 0, 100));
        series.add(1.0, &scrape([2, 2], 3, 150));
        series.add(2.0, &scrape([1, 1], 1, 300));
        series.add_failure();
        let summary = series.summarise("default");
        assert_eq!((summary.scrapes, summary.failed_scrapes), (3, 1));
        assert_eq!(summary.window_s, 2.0);
        assert_eq!(summary.metrics.len(), 3);
        assert_eq!(
            summary.reading(RUNNING),
            Some(Reading::Gauge {
                mean: 2.0,
                max: 4.0,
                last: 2.0
            })
        );
        assert!(matches!(
            summary.reading(WAITING),
            Some(Reading::Gauge { max, .. }) if max == 3.0
        ));
        assert_eq!(
            summary.reading(GENERATED_TOKENS),
            Some(Reading::Counter {
                increase: 200.0,
                per_s: 100.0
            })
        );
    }
}
