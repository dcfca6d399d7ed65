//! The `sim` section of a case: which scaling study its `sim` trials run (see
//! [`crate::sim::study`]), as a preset with optional overrides of its step lists.

use serde::{Deserialize, Serialize};

use crate::sim::study::StudyConfig;

/// The study a case's `sim` trials run: one trial per study step (request scaling, replica
/// scaling, K-bins sensitivity).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SimStudySpec {
    /// The study to start from.
    #[serde(default)]
    pub preset: StudyPreset,
    /// Request counts of the request-scaling step (each run with every scheduler variant).
    #[serde(default)]
    pub request_counts: Option<Vec<usize>>,
    /// Replica counts of the replica-scaling step.
    #[serde(default)]
    pub replica_counts: Option<Vec<usize>>,
    /// Bin counts (K) of the K-bins step.
    #[serde(default)]
    pub bin_counts: Option<Vec<usize>>,
    /// Requests of every replica-scaling and K-bins run.
    #[serde(default)]
    pub scaled_requests: Option<usize>,
    /// KV cache capacity of each replica in tokens, instead of what the hardware and model
    /// profiles leave (a smaller cache preempts, and rejects requests that can never fit).
    #[serde(default)]
    pub kv_tokens: Option<u64>,
}

/// The study a [`SimStudySpec`] starts from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StudyPreset {
    /// [`StudyConfig::small`]: 20 requests/s, up to 5,000 requests; seconds in a debug build.
    #[default]
    Small,
    /// [`StudyConfig::full`]: the study of `llm-stress sim study` (1M-request runs).
    Full,
}

impl StudyPreset {
    /// The name used in case files and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            StudyPreset::Small => "small",
            StudyPreset::Full => "full",
        }
    }
}

impl SimStudySpec {
    /// The study to run: the preset with this section's overrides.
    pub fn study_config(&self) -> StudyConfig {
        let mut config = match self.preset {
            StudyPreset::Small => StudyConfig::small(),
            StudyPreset::Full => StudyConfig::full(),
        };
        if let Some(counts) = &self.request_counts {
            config.request_counts.clone_from(counts);
        }
        if let Some(counts) = &self.replica_counts {
            config.replica_counts.clone_from(counts);
        }
        if let Some(counts) = &self.bin_counts {
            config.bin_counts.clone_from(counts);
        }
        if let Some(requests) = self.scaled_requests {
            config.scaled_requests = requests;
        }
        if let Some(tokens) = self.kv_tokens {
            config.base.kv.capacity_tokens = Some(tokens);
        }
        config
    }

    /// What is wrong with this section, as (key under `sim`, message), if anything.
    pub fn problem(&self) -> Option<(String, String)> {
        let lists = [
            ("request_counts", &self.request_counts),
            ("replica_counts", &self.replica_counts),
            ("bin_counts", &self.bin_counts),
        ];
        for (key, list) in lists {
            if let Some(problem) = list.as_deref().and_then(list_problem) {
                let (at, message) = problem;
                let key = at.map_or(format!("sim.{key}"), |i| format!("sim.{key}[{i}]"));
                return Some((key, message));
            }
        }
        if self.scaled_requests == Some(0) {
            return Some(("sim.scaled_requests".into(), "must be at least 1".into()));
        }
        if self.kv_tokens.is_some()
            && let Err(e) = self.study_config().base.kv_geometry()
        {
            return Some(("sim.kv_tokens".into(), e.to_string()));
        }
        None
    }
}

/// What is wrong with a list of counts: empty, a zero, or not increasing; with the index of
/// the offending entry when there is one.
fn list_problem(counts: &[usize]) -> Option<(Option<usize>, String)> {
    if counts.is_empty() {
        return Some((None, "list at least one count".into()));
    }
    if let Some(i) = counts.iter().position(|&n| n == 0) {
        return Some((Some(i), "must be at least 1".into()));
    }
    counts.windows(2).position(|w| w[1] <= w[0]).map(|i| {
        (
            Some(i + 1),
            format!(
                "{} is not greater than the count before it ({}): list counts in increasing order",
                counts[i + 1],
                counts[i]
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use rstest::rstest;

    use super::*;
    use crate::case::load::parse_yaml;

    fn spec(text: &str) -> SimStudySpec {
        parse_yaml(Path::new("s.yaml"), text).expect("parses")
    }

    #[test]
    fn an_empty_section_is_the_small_study() {
        let spec = spec("{}");
        assert_eq!(spec.preset, StudyPreset::Small);
        assert_eq!(spec.study_config(), StudyConfig::small());
        assert_eq!(spec.problem(), None);
    }

    #[test]
    fn overrides_replace_the_presets_lists() {
        let spec = spec(
            "preset: full\nrequest_counts: [100]\nreplica_counts: [1, 3]\nbin_counts: [2]\n\
             scaled_requests: 50\nkv_tokens: 4096\n",
        );
        let config = spec.study_config();
        let full = StudyConfig::full();
        assert_eq!(config.request_counts, [100]);
        assert_eq!(config.replica_counts, [1, 3]);
        assert_eq!(config.bin_counts, [2]);
        assert_eq!(config.scaled_requests, 50);
        assert_eq!(config.base.kv.capacity_tokens, Some(4096));
        assert_eq!(config.request_variants, full.request_variants);
        assert_eq!(config.base.workload.arrival, full.base.workload.arrival);
        assert_eq!(spec.problem(), None);
    }

    #[rstest]
    #[case::empty_list("replica_counts: []", "sim.replica_counts", "list at least one")]
    #[case::zero("bin_counts: [1, 0]", "sim.bin_counts[1]", "at least 1")]
    #[case::not_increasing(
        "request_counts: [10, 20, 20]",
        "sim.request_counts[2]",
        "20 is not greater than the count before it (20)"
    )]
    #[case::no_requests("scaled_requests: 0", "sim.scaled_requests", "at least 1")]
    #[case::cache_below_a_block("kv_tokens: 8", "sim.kv_tokens", "less than one block")]
    fn bad_values_name_their_key(#[case] text: &str, #[case] key: &str, #[case] message: &str) {
        let (at, problem) = spec(text).problem().expect("a problem");
        assert_eq!(at, key);
        assert!(problem.contains(message), "{problem}");
    }
}
