//! Multi-turn conversations (`prompts.sessions`): TTFT by turn position. Turn 1 sends a fresh
//! prompt; turn k sends the conversation so far, so its prefill grows with the history unless
//! the server reuses the history it has cached. The first turn against the later ones says
//! which.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::distribution::{Distribution, DistributionBuilder};
use super::record::{RequestRecord, SessionEnd};

/// One turn position's requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnPosition {
    /// The position, from 1.
    pub turn: u32,
    /// Requests sent at this position (failed ones included).
    pub requests: u64,
    /// TTFT of the successful ones.
    pub ttft_ms: Option<Distribution>,
    /// Mean prompt tokens of the successful ones (the server's count): the history grows.
    pub prompt_tokens_mean: Option<f64>,
    /// Prompt tokens the server says it took from its cache, summed over the successful ones
    /// that report it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u64>,
}

/// TTFT by turn position over a trial's conversations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnSummary {
    /// Conversations started.
    pub conversations: u64,
    /// Conversations whose every turn was answered: each had all the turns it was to have
    /// (records that say how their conversation ended), or (older records) reached the trial's
    /// last turn position.
    pub conversations_completed: u64,
    /// Conversations that ended cleanly because their next turn would not have fitted the
    /// model's context (`max_context`); not failures.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub conversations_context_full: u64,
    /// TTFT of the successful first turns.
    pub first_ttft_ms: Option<Distribution>,
    /// TTFT of the successful later turns (2 and after), all positions together.
    pub later_ttft_ms: Option<Distribution>,
    /// Later turns' p50 TTFT ÷ first turns' p50: above 1 when prefill grows with the history,
    /// below 1 when the server serves the history from its cache.
    pub later_over_first_p50: Option<f64>,
    /// One entry per turn position, in order.
    pub by_turn: Vec<TurnPosition>,
    /// Prompt tokens the server says it took from its cache, over every successful turn that
    /// reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_cached_tokens: Option<u64>,
}

/// The conversation fields an SLO may name as `turns.FIELD` (`turns.server_cached_tokens > 0`).
pub const TURN_FIELDS: [&str; 5] = [
    "conversations",
    "conversations_completed",
    "conversations_context_full",
    "later_over_first_p50",
    "server_cached_tokens",
];

impl TurnSummary {
    /// A field by its name in [`TURN_FIELDS`]; `None` when it was not measured
    /// (`later_over_first_p50` without successful first and later turns,
    /// `server_cached_tokens` from a server that reports no cache use).
    pub fn field(&self, name: &str) -> Option<f64> {
        Some(match name {
            "conversations" => self.conversations as f64,
            "conversations_completed" => self.conversations_completed as f64,
            "conversations_context_full" => self.conversations_context_full as f64,
            "later_over_first_p50" => return self.later_over_first_p50,
            "server_cached_tokens" => return self.server_cached_tokens.map(|n| n as f64),
            _ => return None,
        })
    }

    /// Summarises the records of multi-turn conversations; `None` when none has a turn. A
    /// fold over a [`TurnsBuilder`].
    pub fn of(records: &[RequestRecord]) -> Option<TurnSummary> {
        let mut builder = TurnsBuilder::default();
        for record in records {
            builder.add(record);
        }
        builder.build()
    }
}

/// TTFT by turn built one record at a time: a few numbers and a distribution per turn
/// position, and per conversation the last turn reached and whether all of its turns
/// succeeded (two numbers a conversation, not its records).
#[derive(Debug, Clone, Default)]
pub struct TurnsBuilder {
    positions: BTreeMap<u32, PositionBuilder>,
    first_ttft_ms: DistributionBuilder,
    later_ttft_ms: DistributionBuilder,
    conversations: BTreeMap<u64, (u32, bool)>,
    cached: Option<u64>,
    /// Conversations that ended completed, at the context, and otherwise (failed or cut), as
    /// their last records say.
    ends: (u64, u64, u64),
}

/// One turn position's running figures.
#[derive(Debug, Clone, Default)]
struct PositionBuilder {
    requests: u64,
    ttft_ms: DistributionBuilder,
    prompt_tokens: (u64, u64),
    cached: Option<u64>,
}

impl TurnsBuilder {
    /// Adds one record; one without a turn counts for nothing.
    pub fn add(&mut self, record: &RequestRecord) {
        let Some(turn) = record.turn else {
            return;
        };
        match record.session_end {
            Some(SessionEnd::Completed) => self.ends.0 += 1,
            Some(SessionEnd::ContextFull) => self.ends.1 += 1,
            Some(SessionEnd::Failed | SessionEnd::Cut) => self.ends.2 += 1,
            None => {}
        }
        let position = self.positions.entry(turn).or_default();
        position.requests += 1;
        if let Some(id) = record.conversation {
            let entry = self.conversations.entry(id).or_insert((0, true));
            entry.0 = entry.0.max(turn);
            entry.1 &= record.is_ok();
        }
        if !record.is_ok() {
            return;
        }
        if let Some(ttft) = record.ttft_ms {
            position.ttft_ms.add_ms(ttft);
            if turn > 1 {
                self.later_ttft_ms.add_ms(ttft);
            } else {
                self.first_ttft_ms.add_ms(ttft);
            }
        }
        if let Some(tokens) = record.prompt_tokens {
            position.prompt_tokens.0 += tokens;
            position.prompt_tokens.1 += 1;
        }
        if let Some(cached) = record.cached_tokens {
            *position.cached.get_or_insert(0) += cached;
            *self.cached.get_or_insert(0) += cached;
        }
    }

    /// The summary so far; `None` when no record had a turn.
    pub fn build(&self) -> Option<TurnSummary> {
        if self.positions.is_empty() {
            return None;
        }
        let by_turn: Vec<TurnPosition> = self
            .positions
            .iter()
            .map(|(&turn, p)| {
                let (sum, n) = p.prompt_tokens;
                TurnPosition {
                    turn,
                    requests: p.requests,
                    ttft_ms: p.ttft_ms.build(),
                    prompt_tokens_mean: (n > 0).then(|| sum as f64 / n as f64),
                    cached_tokens: p.cached,
                }
            })
            .collect();
        let (first_ttft_ms, later_ttft_ms) =
            (self.first_ttft_ms.build(), self.later_ttft_ms.build());
        let later_over_first_p50 = match (&first_ttft_ms, &later_ttft_ms) {
            (Some(first), Some(later)) if first.p50 > 0.0 => Some(later.p50 / first.p50),
            _ => None,
        };
        let last = self.positions.keys().next_back().copied().unwrap_or(1);
        let completed = if self.ends == (0, 0, 0) {
            // Records that do not say how their conversation ended (older runs).
            self.conversations
                .values()
                .filter(|(reached, ok)| *ok && *reached == last)
                .count() as u64
        } else {
            self.ends.0
        };
        Some(TurnSummary {
            conversations: self.conversations.len() as u64,
            conversations_completed: completed,
            conversations_context_full: self.ends.1,
            first_ttft_ms,
            later_ttft_ms,
            later_over_first_p50,
            by_turn,
            server_cached_tokens: self.cached,
        })
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::metrics::ErrorClass;

    fn record(conversation: u64, turn: u32, ttft: f64, ok: bool) -> RequestRecord {
        RequestRecord {
            id: conversation * 10 + u64::from(turn),
            conversation: Some(conversation),
            turn: Some(turn),
            ttft_ms: Some(ttft),
            prompt_tokens: Some(100 * u64::from(turn)),
            cached_tokens: (turn > 1).then_some(90),
            error: (!ok).then_some(ErrorClass::Http5xx),
            ..RequestRecord::default()
        }
    }

    #[test]
    fn records_without_turns_have_no_summary() {
        assert_eq!(TurnSummary::of(&[RequestRecord::default()]), None);
    }

    #[test]
    fn summary_json_has_a_turns_key_only_with_conversations() {
        use crate::metrics::Summary;
        let plain = serde_json::to_value(Summary::from_records(&[RequestRecord::default()], 1.0))
            .expect("json");
        assert!(plain.get("turns").is_none(), "{plain}");
        let records = [record(0, 1, 100.0, true), record(0, 2, 50.0, true)];
        let turned = serde_json::to_value(Summary::from_records(&records, 1.0)).expect("json");
        assert_eq!(turned["turns"]["conversations"], 1);
        assert_eq!(turned["turns"]["by_turn"][1]["turn"], 2);
        assert_eq!(turned["turns"]["by_turn"][1]["cached_tokens"], 90);
        assert!(turned["turns"]["later_ttft_ms"]["p95"].is_number());
    }

    #[test]
    fn turns_are_summarised_by_position() {
        let records = [
            record(0, 1, 100.0, true),
            record(0, 2, 40.0, true),
            record(0, 3, 50.0, true),
            record(1, 1, 120.0, true),
            record(1, 2, 60.0, false),
            record(2, 1, 110.0, true),
        ];
        let summary = TurnSummary::of(&records).expect("a summary");
        assert_eq!(summary.conversations, 3);
        assert_eq!(summary.conversations_completed, 1, "only conversation 0");
        let positions: Vec<(u32, u64)> = summary
            .by_turn
            .iter()
            .map(|p| (p.turn, p.requests))
            .collect();
        assert_eq!(positions, [(1, 3), (2, 2), (3, 1)]);
        assert_eq!(summary.first_ttft_ms.as_ref().map(|d| d.count), Some(3));
        assert_eq!(summary.later_ttft_ms.as_ref().map(|d| d.count), Some(2));
        assert_eq!(summary.by_turn[1].prompt_tokens_mean, Some(200.0));
        assert_eq!(
            summary.by_turn[1].cached_tokens,
            Some(90),
            "the failed one left out"
        );
        assert_eq!(summary.server_cached_tokens, Some(180));
        let ratio = summary.later_over_first_p50.expect("a ratio");
        assert!((0.3..0.6).contains(&ratio), "{ratio}");
    }

    #[rstest]
    #[case::all_completed(&[SessionEnd::Completed, SessionEnd::Completed], 2, 0)]
    #[case::one_at_the_context(&[SessionEnd::Completed, SessionEnd::ContextFull], 1, 1)]
    #[case::cut_and_failed(&[SessionEnd::Cut, SessionEnd::Failed], 0, 0)]
    fn recorded_ends_count_completed_and_context_full_sessions(
        #[case] ends: &[SessionEnd],
        #[case] completed: u64,
        #[case] context_full: u64,
    ) {
        // Session c has c + 1 turns: the trial's last position says nothing of the others.
        let records: Vec<RequestRecord> = ends
            .iter()
            .enumerate()
            .flat_map(|(c, end)| {
                let turns = c as u32 + 1;
                (1..=turns).map(move |turn| RequestRecord {
                    session_end: (turn == turns).then_some(*end),
                    ..record(
                        c as u64,
                        turn,
                        10.0,
                        *end != SessionEnd::Failed || turn < turns,
                    )
                })
            })
            .collect();
        let summary = TurnSummary::of(&records).expect("a summary");
        assert_eq!(summary.conversations, ends.len() as u64);
        assert_eq!(summary.conversations_completed, completed);
        assert_eq!(summary.conversations_context_full, context_full);
        let json = serde_json::to_value(&summary).expect("json");
        assert_eq!(
            json.get("conversations_context_full").is_some(),
            context_full > 0,
            "{json}"
        );
    }

    #[rstest]
    #[case(&[(1, 100.0), (2, 200.0)], true)]
    #[case(&[(1, 100.0), (2, 20.0)], false)]
    fn the_ratio_says_whether_later_turns_are_slower(
        #[case] ttfts: &[(u32, f64)],
        #[case] slower: bool,
    ) {
        let records: Vec<RequestRecord> = ttfts
            .iter()
            .map(|&(turn, ttft)| record(0, turn, ttft, true))
            .collect();
        let ratio = TurnSummary::of(&records)
            .and_then(|s| s.later_over_first_p50)
            .expect("a ratio");
        assert_eq!(ratio > 1.0, slower, "{ratio}");
    }
}
