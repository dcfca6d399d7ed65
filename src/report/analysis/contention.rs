//! Contention between endpoints (`contention: true`): each endpoint measured alone, at the
//! share of the load it gets when the load is spread (its `…_solo-NAME` trial), against the
//! same endpoint in the spread trial. Endpoints that share nothing deliver together what they
//! deliver alone; endpoints that share a GPU (two models on one card, a chat and an embedding
//! endpoint of one server) deliver less together, and answer later: the combined throughput
//! falls below the sum of the throughputs alone (llama.cpp's load tool draws the same line).

use crate::case::SOLO_TAG;
use crate::report::run::RunTrial;

/// Combined throughput below this share of the sum alone says the endpoints contend: within
/// it, the difference is what two runs of one load differ by.
pub const CONTENDED_BELOW: f64 = 0.95;

/// One endpoint alone and together.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointContention {
    /// The endpoint's name.
    pub endpoint: String,
    /// Its output tokens per second alone (its solo trial).
    pub alone_tok_s: f64,
    /// Its output tokens per second in the spread trial.
    pub together_tok_s: f64,
    /// Its TTFT p50 alone, when it streamed.
    pub alone_ttft_p50_ms: Option<f64>,
    /// Its TTFT p50 together.
    pub together_ttft_p50_ms: Option<f64>,
}

/// A spread trial against its endpoints alone.
#[derive(Debug, Clone, PartialEq)]
pub struct Contention {
    /// The spread trial's full name.
    pub trial: String,
    /// Each endpoint, in the spread trial's order.
    pub endpoints: Vec<EndpointContention>,
    /// The spread trial's output tokens per second, every endpoint together.
    pub combined_tok_s: f64,
    /// The sum of the endpoints' output tokens per second alone.
    pub sum_alone_tok_s: f64,
}

impl Contention {
    /// Combined ÷ the sum alone; `None` when nothing was delivered alone.
    pub fn ratio(&self) -> Option<f64> {
        (self.sum_alone_tok_s > 0.0).then(|| self.combined_tok_s / self.sum_alone_tok_s)
    }

    /// Whether the endpoints deliver less together than alone.
    pub fn contended(&self) -> bool {
        self.ratio().is_some_and(|r| r < CONTENDED_BELOW)
    }

    /// One line: each endpoint alone and together, then the combined against the sum.
    pub fn describe(&self) -> String {
        let each: Vec<String> = self
            .endpoints
            .iter()
            .map(|e| {
                let ttft = match (e.alone_ttft_p50_ms, e.together_ttft_p50_ms) {
                    (Some(alone), Some(together)) => {
                        format!(", TTFT p50 {alone:.1} → {together:.1} ms")
                    }
                    _ => String::new(),
                };
                format!(
                    "{} {:.1} tok/s alone, {:.1} together{ttft}",
                    e.endpoint, e.alone_tok_s, e.together_tok_s
                )
            })
            .collect();
        let verdict = match self.ratio() {
            None => "nothing was delivered alone".to_string(),
            Some(ratio) if self.contended() => format!(
                "combined {:.1} tok/s < {:.1}, the sum alone ({:.0} %): the endpoints contend \
                 for the same capacity",
                self.combined_tok_s,
                self.sum_alone_tok_s,
                100.0 * ratio
            ),
            Some(ratio) => format!(
                "combined {:.1} tok/s ≈ {:.1}, the sum alone ({:.0} %): no contention",
                self.combined_tok_s,
                self.sum_alone_tok_s,
                100.0 * ratio
            ),
        };
        format!("{}; {verdict}", each.join("; "))
    }
}

/// Every spread trial of `trials` whose endpoints were each measured alone (a trial of the
/// same kind named like it plus `_solo-NAME` for each of its endpoints); a spread trial
/// missing a solo trial is left out.
pub fn contention(trials: &[RunTrial]) -> Vec<Contention> {
    // A perf and a stress trial share a name: the solo trial is the one of the same kind.
    let solo_of = |spread: &RunTrial, name: &str| {
        trials
            .iter()
            .find(|t| t.report.meta.trial == name && t.report.meta.kind == spread.report.meta.kind)
    };
    trials
        .iter()
        .filter(|t| !t.report.meta.trial.contains(SOLO_TAG))
        .filter_map(|t| {
            let load = t.report.load()?;
            if load.endpoints.len() < 2 {
                return None;
            }
            let endpoints = load
                .endpoints
                .iter()
                .map(|e| {
                    let solo = solo_of(t, &format!("{}{SOLO_TAG}{}", t.report.meta.trial, e.name))?;
                    let alone = solo.report.summary()?;
                    Some(EndpointContention {
                        endpoint: e.name.clone(),
                        alone_tok_s: alone.output_tok_s,
                        together_tok_s: e.summary.output_tok_s,
                        alone_ttft_p50_ms: alone.ttft_ms.as_ref().map(|d| d.p50),
                        together_ttft_p50_ms: e.summary.ttft_ms.as_ref().map(|d| d.p50),
                    })
                })
                .collect::<Option<Vec<_>>>()?;
            Some(Contention {
                trial: t.name(),
                combined_tok_s: load.summary.output_tok_s,
                sum_alone_tok_s: endpoints.iter().map(|e| e.alone_tok_s).sum(),
                endpoints,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn contention(combined: f64, alone: [f64; 2]) -> Contention {
        Contention {
            trial: "[perf] c::isl64_osl16_c4_n40".into(),
            endpoints: ["large", "small"]
                .iter()
                .zip(alone)
                .map(|(name, alone)| EndpointContention {
                    endpoint: name.to_string(),
                    alone_tok_s: alone,
                    together_tok_s: combined / 2.0,
                    alone_ttft_p50_ms: Some(10.0),
                    together_ttft_p50_ms: Some(25.0),
                })
                .collect(),
            combined_tok_s: combined,
            sum_alone_tok_s: alone.iter().sum(),
        }
    }

    #[rstest]
    #[case::shared_nothing(200.0, [100.0, 100.0], false, "no contention")]
    #[case::within_noise(192.0, [100.0, 100.0], false, "no contention")]
    #[case::shared_gpu(120.0, [100.0, 100.0], true, "(60 %): the endpoints contend")]
    #[case::nothing_alone(120.0, [0.0, 0.0], false, "nothing was delivered alone")]
    fn combined_below_the_sum_alone_is_contention(
        #[case] combined: f64,
        #[case] alone: [f64; 2],
        #[case] contended: bool,
        #[case] says: &str,
    ) {
        let c = contention(combined, alone);
        assert_eq!(c.contended(), contended);
        let line = c.describe();
        assert!(line.contains(says), "{line}");
        assert!(
            line.contains("large 100.0 tok/s alone") || alone[0] == 0.0,
            "{line}"
        );
        assert!(line.contains("TTFT p50 10.0 → 25.0 ms"), "{line}");
    }
}
