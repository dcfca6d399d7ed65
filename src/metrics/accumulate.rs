//! The summary built one record at a time: an [`Accumulator`] takes each record as its
//! request completes and holds running counts, sums and HDR histograms instead of the records,
//! so a long load's memory does not grow with its requests' chunk arrays.
//! [`Summary::from_records`] is a fold over it: one code path, whether the records are in
//! memory or streamed.
//!
//! What it keeps that grows with the run: two numbers per conversation for TTFT by turn.
//! Everything else is fixed: a few distributions, one per turn position and prefix kind,
//! counts, and drift's send-time buckets (at most 4,096; see [`DriftBuilder`]).

use std::collections::BTreeMap;

use super::distribution::DistributionBuilder;
use super::drift::DriftBuilder;
use super::goodput::RequestSlo;
use super::prefix::PrefixBuilder;
use super::record::{ErrorClass, RequestRecord};
use super::server_timing::ServerTimingBuilder;
use super::summary::Summary;
use super::turns::TurnsBuilder;

/// A trial's summary, built one record at a time.
#[derive(Debug, Clone)]
pub struct Accumulator {
    requests: u64,
    requests_ok: u64,
    errors: BTreeMap<ErrorClass, u64>,
    input_tokens: u64,
    output_tokens: u64,
    estimated_token_counts: u64,
    token_count_mismatches: u64,
    first_send: f64,
    last_send: f64,
    ttft_ms: DistributionBuilder,
    tpot_ms: DistributionBuilder,
    itl_ms: DistributionBuilder,
    e2el_ms: DistributionBuilder,
    ttft_intended_ms: DistributionBuilder,
    e2el_intended_ms: DistributionBuilder,
    lateness_ms: DistributionBuilder,
    drift: DriftBuilder,
    server_timing: ServerTimingBuilder,
    prefix: PrefixBuilder,
    turns: TurnsBuilder,
    /// The case's per-request SLOs and the requests that met them all.
    goodput: Option<(RequestSlo, u64)>,
}

impl Default for Accumulator {
    fn default() -> Accumulator {
        Accumulator::new()
    }
}

impl Accumulator {
    /// An empty accumulator that measures no goodput.
    pub fn new() -> Accumulator {
        Accumulator {
            requests: 0,
            requests_ok: 0,
            errors: BTreeMap::new(),
            input_tokens: 0,
            output_tokens: 0,
            estimated_token_counts: 0,
            token_count_mismatches: 0,
            first_send: f64::INFINITY,
            last_send: f64::NEG_INFINITY,
            ttft_ms: DistributionBuilder::new(),
            tpot_ms: DistributionBuilder::new(),
            itl_ms: DistributionBuilder::new(),
            e2el_ms: DistributionBuilder::new(),
            ttft_intended_ms: DistributionBuilder::new(),
            e2el_intended_ms: DistributionBuilder::new(),
            lateness_ms: DistributionBuilder::new(),
            drift: DriftBuilder::default(),
            server_timing: ServerTimingBuilder::default(),
            prefix: PrefixBuilder::default(),
            turns: TurnsBuilder::default(),
            goodput: None,
        }
    }

    /// The same, also counting the requests that met every bound of `slo` (goodput); as
    /// [`Accumulator::new`] when `slo` is `None`.
    pub fn with_goodput(slo: Option<&RequestSlo>) -> Accumulator {
        Accumulator {
            goodput: slo.map(|s| (*s, 0)),
            ..Accumulator::new()
        }
    }

    /// Records added so far.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Adds one completed request. Records with a shared prefix must carry their
    /// `prefix_cold` mark already.
    pub fn add(&mut self, r: &RequestRecord) {
        self.requests += 1;
        self.first_send = self.first_send.min(r.send_ms);
        self.last_send = self.last_send.max(r.send_ms);
        if let Some(late) = r.lateness_ms() {
            self.lateness_ms.add_ms(late);
        }
        if let Some((slo, good)) = &mut self.goodput {
            *good += u64::from(slo.met_by(r));
        }
        self.drift.add(r);
        self.prefix.add(r);
        self.turns.add(r);
        let Some(ok) = r.is_ok().then_some(r) else {
            if let Some(class) = r.error {
                *self.errors.entry(class).or_insert(0) += 1;
            }
            return;
        };
        self.requests_ok += 1;
        self.input_tokens += ok.prompt_tokens.unwrap_or(0);
        self.output_tokens += ok.output_tokens.unwrap_or(0);
        self.estimated_token_counts += u64::from(ok.tokens_estimated);
        self.token_count_mismatches += u64::from(ok.token_counts_disagree());
        if let Some(ttft) = ok.ttft_ms {
            self.ttft_ms.add_ms(ttft);
        }
        if let Some(tpot) = ok.tpot_ms() {
            self.tpot_ms.add_ms(tpot);
        }
        self.itl_ms.extend(ok.itl_ms());
        if let Some(e2el) = ok.e2el_ms {
            self.e2el_ms.add_ms(e2el);
        }
        if let Some(ttft) = ok.ttft_from_intended_ms() {
            self.ttft_intended_ms.add_ms(ttft);
        }
        if let Some(e2el) = ok.e2el_from_intended_ms() {
            self.e2el_intended_ms.add_ms(e2el);
        }
        self.server_timing.add(ok);
    }

    /// The builders of the summary's latency distributions, by their SLO names (`ttft_ms`,
    /// …, as in [`super::summary::DISTRIBUTION_METRICS`]), those with samples only: what a
    /// worker's shard carries so the merge can add its histograms to the other workers'.
    pub fn distributions(&self) -> Vec<(&'static str, &DistributionBuilder)> {
        [
            ("ttft_ms", &self.ttft_ms),
            ("tpot_ms", &self.tpot_ms),
            ("itl_ms", &self.itl_ms),
            ("e2el_ms", &self.e2el_ms),
            ("ttft_intended_ms", &self.ttft_intended_ms),
            ("e2el_intended_ms", &self.e2el_intended_ms),
            ("lateness_ms", &self.lateness_ms),
        ]
        .into_iter()
        .filter(|(_, builder)| builder.count() > 0)
        .collect()
    }

    /// The summary of the records so far over a measured window of `duration_s` seconds.
    pub fn summary(&self, duration_s: f64) -> Summary {
        let (requests, requests_ok) = (self.requests, self.requests_ok);
        let requests_failed = requests - requests_ok;
        let send_rate = if requests > 1 && self.last_send > self.first_send {
            (requests - 1) as f64 * 1000.0 / (self.last_send - self.first_send)
        } else {
            0.0
        };
        let per_second = |n: u64| {
            if duration_s > 0.0 {
                n as f64 / duration_s
            } else {
                0.0
            }
        };
        let tpot_ms = self.tpot_ms.build();
        let goodput = self
            .goodput
            .filter(|_| requests > 0)
            .map(|(_, good)| (good as f64 / requests as f64, per_second(good)));
        Summary {
            requests_ok,
            requests_failed,
            error_rate: if requests == 0 {
                0.0
            } else {
                requests_failed as f64 / requests as f64
            },
            errors: self.errors.clone(),
            dropped: 0,
            drop_rate: 0.0,
            requested_rate: None,
            send_rate,
            duration_s,
            ttft_ms: self.ttft_ms.build(),
            itl_ms: self.itl_ms.build(),
            e2el_ms: self.e2el_ms.build(),
            ttft_intended_ms: self.ttft_intended_ms.build(),
            e2el_intended_ms: self.e2el_intended_ms.build(),
            lateness_ms: self.lateness_ms.build(),
            drift: self.drift.build(),
            tput_user: tpot_ms
                .filter(|d| d.mean > 0.0)
                .map_or(0.0, |d| 1000.0 / d.mean),
            tpot_ms,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            estimated_token_counts: self.estimated_token_counts,
            token_count_mismatches: self.token_count_mismatches,
            input_tok_s: per_second(self.input_tokens),
            output_tok_s: per_second(self.output_tokens),
            req_s: per_second(requests_ok),
            server_timing: self.server_timing.build(),
            goodput: goodput.map(|(fraction, _)| fraction),
            goodput_req_s: goodput.map(|(_, per_s)| per_s),
            consistency: None,
            prefix: self.prefix.build(),
            turns: self.turns.build(),
        }
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::metrics::ServerTiming;

    /// A varied record: the `i`th of a run, failing, late, timed, grouped and turned by turns.
    fn record(i: u64) -> RequestRecord {
        let x = i as f64;
        let tokens = 1 + i % 7;
        let ttft = 20.0 + (x * 7.3) % 41.0;
        let chunk_ms: Vec<f64> = (0..tokens)
            .map(|k| ttft + k as f64 * (3.1 + x % 5.0))
            .collect();
        let error = match i % 11 {
            3 => Some(ErrorClass::Timeout),
            7 => Some(ErrorClass::Http503),
            _ => None,
        };
        RequestRecord {
            id: i,
            send_ms: x * 13.7 + (x * 3.3) % 5.0,
            intended_ms: i.is_multiple_of(3).then_some(x * 13.7),
            endpoint: (i % 2) as u32,
            ttft_ms: Some(ttft),
            e2el_ms: chunk_ms.last().copied(),
            chunk_tokens: (0..tokens).map(|k| 1 + (k % 2) as u32).collect(),
            chunk_ms,
            prompt_tokens: Some(100 + i % 13),
            output_tokens: Some(tokens),
            tokens_estimated: i.is_multiple_of(5),
            tokenizer_tokens: i.is_multiple_of(4).then_some(tokens + i % 3),
            status: error.map(|_| 503),
            error,
            server_timing: (i % 6 == 1).then_some(ServerTiming {
                prompt_ms: Some(ttft / 2.0),
                predicted_n: Some(tokens),
                predicted_ms: Some(x % 17.0),
                cache_n: Some(i % 9),
                ..Default::default()
            }),
            prefix_group: (i % 4 != 2).then_some((i % 3) as u32),
            prefix_cold: i < 3,
            cached_tokens: (i % 5 == 1).then_some(i % 40),
            conversation: (!i.is_multiple_of(8)).then_some(i / 3),
            turn: (!i.is_multiple_of(8)).then_some(1 + (i % 3) as u32),
            ..RequestRecord::default()
        }
    }

    #[rstest]
    #[case::none(0, 1.0)]
    #[case::one(1, 0.5)]
    #[case::few(5, 2.0)]
    #[case::many(400, 6.0)]
    #[case::zero_window(40, 0.0)]
    fn streaming_equals_the_summary_of_the_records(#[case] n: u64, #[case] duration_s: f64) {
        let records: Vec<RequestRecord> = (0..n).map(record).collect();
        let slo = RequestSlo {
            ttft_ms: Some(40.0),
            tpot_ms: Some(6.0),
            e2el_ms: None,
        };
        let mut streamed = Accumulator::with_goodput(Some(&slo));
        for r in &records {
            streamed.add(r);
        }
        assert_eq!(streamed.requests(), n);
        let expected =
            Summary::from_records(&records, duration_s).with_goodput(&records, Some(&slo));
        assert_eq!(streamed.summary(duration_s), expected);
        if n > 100 {
            // The records exercise every part of the summary.
            let s = &expected;
            assert!(s.drift.is_some() && s.server_timing.is_some(), "{s:?}");
            assert!(s.prefix.is_some() && s.turns.is_some(), "{s:?}");
            assert!(s.lateness_ms.is_some() && s.requests_failed > 0, "{s:?}");
            assert!(s.token_count_mismatches > 0 && s.goodput.is_some(), "{s:?}");
        }
    }

    #[test]
    fn goodput_needs_slos_and_requests() {
        let records = [record(1)];
        let mut plain = Accumulator::new();
        plain.add(&records[0]);
        assert_eq!(plain.summary(1.0).goodput, None);
        let slo = RequestSlo {
            ttft_ms: Some(1.0),
            ..RequestSlo::default()
        };
        let empty = Accumulator::with_goodput(Some(&slo));
        assert_eq!(empty.summary(1.0).goodput, None);
    }
}
