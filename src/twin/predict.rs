//! Predicting a case's load trials with a calibrated profile, written as the harness writes
//! measured ones.
//!
//! Each closed-loop trial of the case (its ISL, OSL, concurrency and request count, from the
//! same plans `llm-stress run` makes) runs through the simulator in virtual time: the first
//! `concurrency` requests arrive at 0, each finished request is followed at once by the next,
//! as the harness's closed loop does. Every simulated request becomes a [`RequestRecord`]
//! (send, one chunk per token at the instant the engine made it, prompt and output tokens), and
//! the records go through the harness's own summary, trial folder and `results.csv` writers,
//! so `llm-stress compare PREDICTED MEASURED` and the report read a prediction as a run.
//!
//! Not predicted (listed as skipped, with why): open-loop and virtual-user loads, loads bound
//! by a duration rather than a request count, and accuracy and sim trials. Per-request length
//! distributions are not drawn: every request has the combination's ISL and OSL.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::TwinError;
use crate::case::ServerKind;
use crate::judge::Verdict;
use crate::metrics::{RequestRecord, Summary};
use crate::plan::TrialPlan;
use crate::plan::shape::Shape;
use crate::report::{LoadBody, LoadShape, TrialBody, TrialMeta, TrialReport, csv, trial_dir};
use crate::sim::config::SimConfig;
use crate::sim::{Engine, EngineEvent, RequestId, SimRequest};

/// What the records show beyond the step model: the client's overhead and send gaps, and how
/// the server gathers an opening burst (the calibration's `overhead_s`, `send_gap_s` and
/// `admission_window_s`; zero when unknown).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Client {
    /// TTFT beyond the step model of a request that ran alone, seconds.
    pub overhead_s: f64,
    /// Gap between a closed loop's opening sends, seconds.
    pub send_gap_s: f64,
    /// How long an idle server takes to start a step once a request reaches it, seconds: the
    /// requests that reach it meanwhile are prefilled together.
    pub admission_window_s: f64,
}

/// One predicted trial.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictedTrial {
    /// Its report, as written.
    pub report: TrialReport,
    /// Its folder.
    pub dir: PathBuf,
}

/// What a prediction wrote.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prediction {
    /// The trials predicted.
    pub trials: Vec<PredictedTrial>,
    /// Trials not predicted: `(name, why)`.
    pub skipped: Vec<(String, String)>,
}

/// A closed loop to simulate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClosedLoop {
    /// Requests in flight.
    pub concurrency: u32,
    /// Requests in all.
    pub requests: u32,
    /// Prompt tokens of each.
    pub isl: u32,
    /// Output tokens of each.
    pub osl: u32,
    /// TTFT beyond the step model of a request that ran alone, seconds (the calibration's
    /// `overhead_s`): the admission window, then the delay between the engine making a token
    /// and the client reading it. The next request of the loop is sent when the client has
    /// read the last token.
    pub overhead_s: f64,
    /// Gap between the loop's opening sends, seconds (the calibration's `send_gap_s`): the
    /// first `concurrency` requests are sent this far apart, as a client's are.
    pub send_gap_s: f64,
    /// How long the idle server takes to start a step once a request reaches it, seconds (the
    /// calibration's `admission_window_s`, [`Engine::with_wake_delay`]).
    pub admission_window_s: f64,
}

/// The closed loop simulated with `profile`'s engine: one record per request.
pub fn closed_loop(profile: &SimConfig, lp: ClosedLoop) -> Result<Vec<RequestRecord>, TwinError> {
    let ClosedLoop {
        concurrency,
        requests,
        isl,
        osl,
        overhead_s,
        send_gap_s,
        admission_window_s,
    } = lp;
    let mut engine = Engine::new(profile.engine_config()?)?.with_wake_delay(admission_window_s);
    // The overhead holds the window: what is left is the reading delay.
    let overhead_s = (overhead_s - engine.wake_delay_s()).max(0.0);
    let mut sent: Vec<f64> = Vec::new();
    let mut tokens: Vec<Vec<f64>> = Vec::new();
    let push = |engine: &mut Engine,
                sent: &mut Vec<f64>,
                tokens: &mut Vec<Vec<f64>>,
                at: f64|
     -> Result<(), TwinError> {
        let RequestId(id) = engine.push(SimRequest::new(at, isl.max(1), osl.max(1)))?;
        debug_assert_eq!(id, sent.len());
        sent.push(at);
        tokens.push(Vec::new());
        Ok(())
    };
    for i in 0..concurrency.min(requests) {
        let at = f64::from(i) * send_gap_s.max(0.0);
        push(&mut engine, &mut sent, &mut tokens, at)?;
    }
    if requests <= concurrency {
        engine.close();
    }
    loop {
        let next = [engine.next_event_s(), engine.next_token_s()]
            .into_iter()
            .flatten()
            .min_by(f64::total_cmp);
        let Some(next) = next else { break };
        // Events strictly before the horizon are processed: step just past the next one.
        let horizon = next.max(engine.now_s()) + 1e-9;
        for event in engine.advance_to(horizon) {
            match event {
                EngineEvent::Token { id, at_s, .. } => tokens[id.0].push(at_s),
                EngineEvent::Finished { .. } if (sent.len() as u32) < requests => {
                    let at = engine.now_s() + overhead_s;
                    push(&mut engine, &mut sent, &mut tokens, at)?;
                    if sent.len() as u32 == requests {
                        engine.close();
                    }
                }
                _ => {}
            }
        }
    }
    Ok(sent
        .iter()
        .zip(&tokens)
        .enumerate()
        .map(|(id, (&send_s, times))| {
            let chunk_ms: Vec<f64> = times
                .iter()
                .map(|t| (t + overhead_s - send_s) * 1e3)
                .collect();
            RequestRecord {
                id: id as u64,
                send_ms: send_s * 1e3,
                ttft_ms: chunk_ms.first().copied(),
                e2el_ms: chunk_ms.last().copied(),
                chunk_tokens: vec![1; chunk_ms.len()],
                prompt_tokens: Some(u64::from(isl)),
                output_tokens: Some(chunk_ms.len() as u64),
                status: Some(200),
                chunk_ms,
                ..RequestRecord::default()
            }
        })
        .collect())
}

/// Predicts every load trial of `plans` with `profile`, writing run `run_id` under `out` (the
/// output folder: trial folders under `out/run_id`, rows in `out/results.csv`).
pub fn predict(
    profile: &SimConfig,
    client: Client,
    plans: &[TrialPlan],
    out: &Path,
    run_id: &str,
) -> Result<Prediction, TwinError> {
    let mut prediction = Prediction::default();
    for plan in plans {
        let TrialPlan::Load(load) = plan else {
            prediction
                .skipped
                .push((plan.name(), "not a load trial".to_string()));
            continue;
        };
        let (concurrency, requests) = match load.point.shape {
            Shape::Closed {
                concurrency,
                requests,
                duration: None,
            } => (concurrency, requests),
            Shape::Closed { .. } => {
                prediction.skipped.push((
                    plan.name(),
                    "a closed loop bound by a duration is not predicted".to_string(),
                ));
                continue;
            }
            _ => {
                prediction.skipped.push((
                    plan.name(),
                    "only closed-loop loads are predicted".to_string(),
                ));
                continue;
            }
        };
        let c = &load.point.combination;
        let records = closed_loop(
            profile,
            ClosedLoop {
                concurrency,
                requests,
                isl: c.isl,
                osl: c.osl,
                overhead_s: client.overhead_s,
                send_gap_s: client.send_gap_s,
                admission_window_s: client.admission_window_s,
            },
        )?;
        let duration_s = records
            .iter()
            .filter_map(|r| r.e2el_ms.map(|e| r.send_ms + e))
            .fold(0.0, f64::max)
            / 1e3;
        let spec = &load.case.spec;
        let report = TrialReport {
            meta: TrialMeta {
                run_id: run_id.to_string(),
                timestamp: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
                trial: plan.name(),
                kind: plan.kind(),
                case: spec.name.clone(),
                model: load
                    .case
                    .model
                    .as_ref()
                    .map(|m| m.name.clone())
                    .unwrap_or_default(),
                server: ServerKind::Simulator,
                api: Some(spec.api),
                expect: spec.expect,
            },
            body: TrialBody::Load(Box::new(LoadBody {
                isl: c.isl,
                osl: c.osl,
                shape: LoadShape::Closed { concurrency },
                num_prompts: requests,
                adjusted: c.adjusted,
                summary: Summary::from_records(&records, duration_s),
                endpoints: Vec::new(),
                server_metrics: Vec::new(),
                accuracy: None,
                attempts: Vec::new(),
            })),
            verdict: Verdict::from_checks(Vec::new()),
        };
        csv::append(&out.join(crate::report::run::RESULTS_FILE), &report)?;
        let dir = trial_dir::write(out, &report, &records, &[], false)?;
        prediction.trials.push(PredictedTrial { report, dir });
    }
    Ok(prediction)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::config::CostSpec;
    use crate::sim::cost::FittedCost;
    use crate::sim::scheduler::SchedulerKind;

    fn profile(batch: u32) -> SimConfig {
        let mut p = SimConfig {
            cost: CostSpec::Fitted(FittedCost {
                alpha: 0.004,
                beta: 0.0,
                gamma: 0.0,
                prefill_per_token: 0.0,
            }),
            ..SimConfig::default()
        };
        p.scheduler.kind = SchedulerKind::Continuous;
        p.scheduler.batch_size = batch;
        p
    }

    #[test]
    fn a_closed_loop_keeps_its_concurrency_and_sends_each_request_as_one_finishes() {
        // Steps of 4 ms, one sequence at a time: each request is 1 prefill + 2 decode steps.
        let lp = ClosedLoop {
            concurrency: 2,
            requests: 4,
            isl: 16,
            osl: 3,
            overhead_s: 0.0,
            send_gap_s: 0.0,
            admission_window_s: 0.0,
        };
        let records = closed_loop(&profile(1), lp).unwrap();
        assert_eq!(records.len(), 4);
        let sends: Vec<f64> = records.iter().map(|r| r.send_ms).collect();
        let ttfts: Vec<f64> = records.iter().map(|r| r.ttft_ms.unwrap()).collect();
        assert!(sends[0] == 0.0 && sends[1] == 0.0, "{sends:?}");
        // The second waits for the first (12 ms); the third is sent when the first ends.
        assert!(
            (ttfts[0] - 4.0).abs() < 1e-6 && (ttfts[1] - 16.0).abs() < 1e-6,
            "{ttfts:?}"
        );
        assert!((sends[2] - 12.0).abs() < 1e-3, "{sends:?}");
        assert!(records.iter().all(|r| r.output_tokens == Some(3)));
    }

    /// Steps of 4 ms, two requests sent 0.1 ms apart, 1 ms of overhead. Without an admission
    /// window the second waits for the first's prefill step; with 0.5 ms both are prefilled in
    /// one step, and the first's TTFT is still the step plus the overhead (the window is part
    /// of it).
    #[rstest::rstest]
    #[case::none(0.0, [5.0, 8.9])]
    #[case::half_a_millisecond(0.5e-3, [5.0, 4.9])]
    fn an_admission_window_gathers_the_opening_sends(
        #[case] window_s: f64,
        #[case] ttft_ms: [f64; 2],
    ) {
        let lp = ClosedLoop {
            concurrency: 2,
            requests: 2,
            isl: 16,
            osl: 3,
            overhead_s: 1e-3,
            send_gap_s: 0.1e-3,
            admission_window_s: window_s,
        };
        let records = closed_loop(&profile(4), lp).unwrap();
        let got: Vec<f64> = records.iter().map(|r| r.ttft_ms.unwrap()).collect();
        assert!(
            got.iter().zip(ttft_ms).all(|(g, w)| (g - w).abs() < 1e-6),
            "{got:?}"
        );
    }
}
