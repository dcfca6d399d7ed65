//! What a trial's per-request records reveal about the server's steps.
//!
//! A server that batches continuously emits one token for every running sequence at the end of
//! each step, so a request's gap between two consecutive one-token chunks is one step, and the
//! requests streaming at that instant are the step's batch. From the records alone (each
//! chunk's arrival, the prompt length) this module rebuilds, per gap:
//!
//! - `b`: the requests whose first chunk came no later and whose last chunk no earlier than the
//!   gap's end (within a tolerance ε, a quarter of the trial's median gap, which absorbs the
//!   spread of one step's deliveries);
//! - `L_max`: the longest of their sequences after the step, `prompt + tokens so far − 1` (the
//!   token a step emits is not yet in the cache);
//! - the step time: the gap.
//!
//! A gap during which another request produced its first token held prefill work, whose cost
//! the decode model does not describe: it is left out. A request that ran alone from its send
//! to its first chunk gives a prefill point (prompt tokens, TTFT).
//!
//! The opening burst (the requests sent before any first token came back) shows whether the
//! server gathers near-simultaneous requests into one first step: those whose first chunk came
//! with the earliest one (within ε) were prefilled together, and the spread of their sends is
//! how far apart requests may reach it and still be.

use crate::metrics::RequestRecord;
use crate::sim::cost::fit::Measurement;

/// One decode step seen by one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepPoint {
    /// Batch size, longest sequence and step time.
    pub step: Measurement,
    /// The request that saw it (its id within the trial), for folds and resampling.
    pub request: u64,
}

/// A request that was alone on the server from its send to its first token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrefillPoint {
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Time to first token, seconds.
    pub ttft_s: f64,
}

/// What one trial's records reveal.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observations {
    /// Decode steps, one per request gap.
    pub steps: Vec<StepPoint>,
    /// Prefills of requests that ran alone.
    pub prefills: Vec<PrefillPoint>,
    /// The largest batch seen.
    pub max_batch: u64,
    /// Requests used (succeeded, with a prompt length and chunks).
    pub requests: usize,
    /// Gaps between consecutive sends of the opening burst (the requests sent before any
    /// first token came back): how far apart the client's first requests reach the server.
    pub send_gaps_s: Vec<f64>,
    /// The opening-burst requests the server prefilled in its first step (their first chunk
    /// came with the earliest one); `None` when the burst held fewer than two requests.
    pub opening_batch: Option<OpeningBatch>,
}

/// The requests of an opening burst that shared the server's first step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpeningBatch {
    /// How many: 1 when the first request was prefilled alone.
    pub requests: usize,
    /// The spread of their sends, seconds.
    pub spread_s: f64,
}

/// One request's stream on the trial's clock, seconds.
struct Stream {
    id: u64,
    prompt: u64,
    send: f64,
    /// Arrival of each chunk.
    times: Vec<f64>,
    /// Tokens carried by each chunk.
    tokens: Vec<u32>,
}

impl Stream {
    fn first(&self) -> f64 {
        self.times[0]
    }

    fn last(&self) -> f64 {
        self.times[self.times.len() - 1]
    }

    /// Tokens received by `at`.
    fn tokens_by(&self, at: f64) -> u64 {
        self.times
            .iter()
            .zip(&self.tokens)
            .take_while(|(t, _)| **t <= at)
            .map(|(_, n)| u64::from(*n))
            .sum()
    }
}

fn streams(records: &[RequestRecord]) -> Vec<Stream> {
    records
        .iter()
        .filter(|r| r.is_ok() && !r.chunk_ms.is_empty())
        .filter_map(|r| {
            let prompt = r.prompt_tokens?;
            let times: Vec<f64> = r.chunk_ms.iter().map(|ms| (r.send_ms + ms) / 1e3).collect();
            let tokens = if r.chunk_tokens.len() == times.len() {
                r.chunk_tokens.clone()
            } else {
                vec![1; times.len()]
            };
            times.iter().all(|t| t.is_finite()).then(|| Stream {
                id: r.id,
                prompt,
                send: r.send_ms / 1e3,
                times,
                tokens,
            })
        })
        .collect()
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

/// The steps and prefills a trial's records reveal (see the module documentation).
pub fn observe(records: &[RequestRecord]) -> Observations {
    let streams = streams(records);
    let gaps = streams.iter().flat_map(|s| {
        s.times
            .windows(2)
            .zip(&s.tokens[1..])
            .filter(|(_, n)| **n == 1)
            .map(|(w, _)| w[1] - w[0])
    });
    let Some(median_gap) = median(gaps.collect()) else {
        return Observations {
            requests: streams.len(),
            ..Observations::default()
        };
    };
    let eps = median_gap / 4.0;
    let first_token = streams
        .iter()
        .map(Stream::first)
        .fold(f64::INFINITY, f64::min);
    let mut burst: Vec<f64> = streams
        .iter()
        .map(|s| s.send)
        .filter(|&send| send < first_token)
        .collect();
    burst.sort_by(f64::total_cmp);
    let opening_batch = (burst.len() >= 2).then(|| {
        let together: Vec<f64> = streams
            .iter()
            .filter(|s| s.send < first_token && s.first() <= first_token + eps)
            .map(|s| s.send)
            .collect();
        let (low, high) = together
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &t| {
                (lo.min(t), hi.max(t))
            });
        OpeningBatch {
            requests: together.len(),
            spread_s: (high - low).max(0.0),
        }
    });
    let mut out = Observations {
        requests: streams.len(),
        send_gaps_s: burst.windows(2).map(|w| w[1] - w[0]).collect(),
        opening_batch,
        ..Observations::default()
    };
    for s in &streams {
        for k in 0..s.times.len() - 1 {
            if s.tokens[k + 1] != 1 {
                continue;
            }
            let (start, end) = (s.times[k], s.times[k + 1]);
            let prefill_inside = streams
                .iter()
                .any(|o| o.first() > start + eps && o.first() <= end + eps);
            if prefill_inside {
                continue;
            }
            let mut batch = 0;
            let mut longest = 0;
            for o in &streams {
                if o.first() <= end + eps && o.last() >= end - eps {
                    batch += 1;
                    longest = longest.max(o.prompt + o.tokens_by(end + eps).saturating_sub(1));
                }
            }
            out.max_batch = out.max_batch.max(batch);
            out.steps.push(StepPoint {
                step: Measurement {
                    batch_size: batch,
                    max_seq_len: longest,
                    latency_s: end - start,
                },
                request: s.id,
            });
        }
        let alone = streams
            .iter()
            .all(|o| o.id == s.id || o.first() > s.first() + eps || o.last() <= s.send);
        if alone {
            out.prefills.push(PrefillPoint {
                prompt_tokens: s.prompt,
                ttft_s: s.first() - s.send,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request sent at `send_ms` whose chunks arrive at `chunks` (ms on the trial's clock).
    fn record(id: u64, prompt: u64, send_ms: f64, chunks: &[f64]) -> RequestRecord {
        RequestRecord {
            id,
            send_ms,
            prompt_tokens: Some(prompt),
            output_tokens: Some(chunks.len() as u64),
            chunk_ms: chunks.iter().map(|c| c - send_ms).collect(),
            chunk_tokens: vec![1; chunks.len()],
            ttft_ms: Some(chunks[0] - send_ms),
            e2el_ms: Some(chunks[chunks.len() - 1] - send_ms),
            ..RequestRecord::default()
        }
    }

    #[test]
    fn two_overlapping_requests_give_batches_of_one_and_two() {
        // A alone for steps at 10, 20; B's prefill ends at 30 (A's gap 20→30 holds it); then
        // both decode at 40, 50; A ends at 50, B goes on alone at 60.
        let a = record(0, 100, 0.0, &[10.0, 20.0, 30.0, 40.0, 50.0]);
        let b = record(1, 200, 25.0, &[30.0, 40.0, 50.0, 60.0]);
        let seen = observe(&[a, b]);
        let steps: Vec<(u64, u64, u64)> = seen
            .steps
            .iter()
            .map(|p| (p.request, p.step.batch_size, p.step.max_seq_len))
            .collect();
        assert_eq!(
            steps,
            vec![
                (0, 1, 101),
                (0, 2, 201),
                (0, 2, 202),
                (1, 2, 201),
                (1, 2, 202),
                (1, 1, 203)
            ]
        );
        assert!(
            seen.steps
                .iter()
                .all(|p| (p.step.latency_s - 0.01).abs() < 1e-12)
        );
        assert_eq!(seen.max_batch, 2);
        assert_eq!(
            seen.prefills,
            vec![PrefillPoint {
                prompt_tokens: 100,
                ttft_s: 0.01
            }]
        );
    }

    /// Three requests sent 0.1 ms apart (steps of 10 ms): a server that gathered all three
    /// into its first step, one that gathered the first two, and one that prefilled the first
    /// alone. A lone request has no opening burst.
    #[rstest::rstest]
    #[case::all_three([50.0, 50.0, 50.0], 3, 0.2)]
    #[case::the_first_two([50.0, 50.0, 90.0], 2, 0.1)]
    #[case::the_first_alone([50.0, 90.0, 90.0], 1, 0.0)]
    fn the_opening_burst_shows_which_requests_shared_the_first_step(
        #[case] first_ms: [f64; 3],
        #[case] requests: usize,
        #[case] spread_ms: f64,
    ) {
        let records: Vec<RequestRecord> = first_ms
            .iter()
            .enumerate()
            .map(|(i, &first)| {
                let send = 0.1 * i as f64;
                record(i as u64, 100, send, &[first, first + 10.0, first + 20.0])
            })
            .collect();
        let batch = observe(&records).opening_batch.expect("a burst of three");
        assert_eq!(batch.requests, requests);
        assert!((batch.spread_s * 1e3 - spread_ms).abs() < 1e-9, "{batch:?}");
        assert_eq!(observe(&records[..1]).opening_batch, None);
    }

    #[test]
    fn records_without_chunks_or_prompt_lengths_give_nothing() {
        let mut r = record(0, 10, 0.0, &[1.0, 2.0]);
        r.prompt_tokens = None;
        assert_eq!(observe(&[r]).steps.len(), 0);
        assert_eq!(observe(&[]), Observations::default());
    }
}
