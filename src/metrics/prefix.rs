//! Shared prefixes (`prompts.prefix_tokens`, `prompts.prefix_groups`): which requests were the
//! first of their group to be sent (cold: the prefix was not cached yet) and which shared a
//! prefix already sent, and the TTFT of each kind: a server that caches prefixes answers the
//! shared ones sooner.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::distribution::{Distribution, DistributionBuilder};
use super::record::RequestRecord;

/// Marks, in each prefix group, the first request sent (by send time, then id) as cold.
pub fn mark_cold(records: &mut [RequestRecord]) {
    let mut first: BTreeMap<u32, usize> = BTreeMap::new();
    for (i, record) in records.iter().enumerate() {
        let Some(group) = record.prefix_group else {
            continue;
        };
        let earlier = |j: usize| {
            let other = &records[j];
            (record.send_ms, record.id) < (other.send_ms, other.id)
        };
        match first.get(&group) {
            Some(&j) if !earlier(j) => {}
            _ => {
                first.insert(group, i);
            }
        }
    }
    for record in records.iter_mut() {
        record.prefix_cold = false;
    }
    for i in first.into_values() {
        records[i].prefix_cold = true;
    }
}

/// TTFT of the requests whose prefix was cold against those whose prefix was shared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrefixSummary {
    /// Prefix groups the requests used.
    pub groups: u32,
    /// Requests that were the first of their group (failed ones included).
    pub requests_cold: u64,
    /// Requests that shared a prefix already sent (failed ones included).
    pub requests_shared: u64,
    /// TTFT of the successful cold requests.
    pub cold_ttft_ms: Option<Distribution>,
    /// TTFT of the successful shared requests.
    pub shared_ttft_ms: Option<Distribution>,
    /// Mean shared TTFT ÷ mean cold TTFT: below 1 when the server reuses cached prefixes.
    pub shared_over_cold: Option<f64>,
    /// Prompt tokens the server says it took from its cache (llama-server's `timings.cache_n`,
    /// summed over the successful requests that report it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_cached_tokens: Option<u64>,
}

/// The shared-prefix fields an SLO may name as `prefix.FIELD` (`prefix.shared_over_cold < 0.8`).
pub const PREFIX_FIELDS: [&str; 5] = [
    "groups",
    "requests_cold",
    "requests_shared",
    "shared_over_cold",
    "server_cached_tokens",
];

impl PrefixSummary {
    /// A field by its name in [`PREFIX_FIELDS`]; `None` when it was not measured
    /// (`shared_over_cold` without successful cold and shared requests,
    /// `server_cached_tokens` from a server that reports no cache use).
    pub fn field(&self, name: &str) -> Option<f64> {
        Some(match name {
            "groups" => f64::from(self.groups),
            "requests_cold" => self.requests_cold as f64,
            "requests_shared" => self.requests_shared as f64,
            "shared_over_cold" => return self.shared_over_cold,
            "server_cached_tokens" => return self.server_cached_tokens.map(|n| n as f64),
            _ => return None,
        })
    }

    /// Summarises the records (their `prefix_cold` marks set, see [`mark_cold`]); `None` when
    /// none has a prefix group. A fold over a [`PrefixBuilder`].
    pub fn of(records: &[RequestRecord]) -> Option<PrefixSummary> {
        let mut builder = PrefixBuilder::default();
        for record in records {
            builder.add(record);
        }
        builder.build()
    }
}

/// The shared-prefix summary built one record at a time: the set of groups (as many as the
/// case's `prefix_groups`), two counts, two distributions and a sum.
#[derive(Debug, Clone, Default)]
pub struct PrefixBuilder {
    groups: BTreeSet<u32>,
    requests: u64,
    requests_cold: u64,
    cold_ttft_ms: DistributionBuilder,
    shared_ttft_ms: DistributionBuilder,
    cached: Option<u64>,
}

impl PrefixBuilder {
    /// Adds one record, its `prefix_cold` mark already set; one with no prefix group counts
    /// for nothing.
    pub fn add(&mut self, record: &RequestRecord) {
        let Some(group) = record.prefix_group else {
            return;
        };
        self.groups.insert(group);
        self.requests += 1;
        self.requests_cold += u64::from(record.prefix_cold);
        if !record.is_ok() {
            return;
        }
        if let Some(ttft) = record.ttft_ms {
            if record.prefix_cold {
                self.cold_ttft_ms.add_ms(ttft);
            } else {
                self.shared_ttft_ms.add_ms(ttft);
            }
        }
        if let Some(n) = record.server_timing.and_then(|t| t.cache_n) {
            *self.cached.get_or_insert(0) += n;
        }
    }

    /// The summary so far; `None` when no record had a prefix group.
    pub fn build(&self) -> Option<PrefixSummary> {
        if self.requests == 0 {
            return None;
        }
        let (cold_ttft_ms, shared_ttft_ms) =
            (self.cold_ttft_ms.build(), self.shared_ttft_ms.build());
        let shared_over_cold = match (&cold_ttft_ms, &shared_ttft_ms) {
            (Some(cold), Some(shared)) if cold.mean > 0.0 => Some(shared.mean / cold.mean),
            _ => None,
        };
        Some(PrefixSummary {
            groups: self.groups.len() as u32,
            requests_cold: self.requests_cold,
            requests_shared: self.requests - self.requests_cold,
            cold_ttft_ms,
            shared_ttft_ms,
            shared_over_cold,
            server_cached_tokens: self.cached,
        })
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::metrics::ServerTiming;

    fn record(id: u64, send_ms: f64, group: u32, ttft: f64) -> RequestRecord {
        RequestRecord {
            id,
            send_ms,
            prefix_group: Some(group),
            ttft_ms: Some(ttft),
            ..Default::default()
        }
    }

    #[rstest]
    #[case::in_id_order(&[(0, 0.0, 0), (1, 0.0, 1), (2, 5.0, 0), (3, 5.0, 1)], &[0, 1])]
    #[case::by_send_time(&[(0, 9.0, 0), (1, 1.0, 0), (2, 2.0, 1)], &[1, 2])]
    #[case::one_group(&[(0, 0.0, 0), (1, 1.0, 0), (2, 2.0, 0)], &[0])]
    fn the_first_sent_of_each_group_is_cold(
        #[case] sends: &[(u64, f64, u32)],
        #[case] cold: &[u64],
    ) {
        let mut records: Vec<RequestRecord> = sends
            .iter()
            .map(|&(id, at, group)| record(id, at, group, 10.0))
            .collect();
        mark_cold(&mut records);
        let marked: Vec<u64> = records
            .iter()
            .filter(|r| r.prefix_cold)
            .map(|r| r.id)
            .collect();
        assert_eq!(marked, cold);
    }

    #[test]
    fn shared_and_cold_ttft_are_compared() {
        let mut records = vec![
            record(0, 0.0, 0, 100.0),
            record(1, 0.0, 1, 120.0),
            record(2, 200.0, 0, 20.0),
            record(3, 200.0, 1, 30.0),
            record(4, 400.0, 0, 25.0),
            record(5, 400.0, 1, 35.0),
        ];
        records[5].server_timing = Some(ServerTiming {
            cache_n: Some(64),
            ..Default::default()
        });
        mark_cold(&mut records);
        let s = PrefixSummary::of(&records).expect("grouped");
        assert_eq!((s.groups, s.requests_cold, s.requests_shared), (2, 2, 4));
        assert_eq!(s.cold_ttft_ms.map(|d| d.mean), Some(110.0));
        assert_eq!(s.shared_ttft_ms.map(|d| d.mean), Some(27.5));
        assert_eq!(s.shared_over_cold, Some(0.25));
        assert_eq!(s.server_cached_tokens, Some(64));
        assert!(PrefixSummary::of(&[RequestRecord::default()]).is_none());
    }
}
