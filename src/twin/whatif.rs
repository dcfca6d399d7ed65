//! What-if: a calibrated profile (an `llm-sim` [`SimConfig`]) under deployments and loads that
//! were not measured — more replicas and a router, multi-bin batching with K bins, other
//! prompt or output lengths, burstier arrivals — and, for each, where its throughput knees and
//! the highest arrival rate that meets a TTFT/TPOT objective.
//!
//! Each [`Scenario`] changes the profile; every run is an open loop of the profile's request
//! count (Poisson arrivals, or gamma with the scenario's cv) in virtual time:
//!
//! - **saturation**: the same requests all at once; completed requests over the makespan is the
//!   rate it can serve, `μ`.
//! - **knee**: rates `μ·i/10` for `i = 1…15`; the knee is the lowest rate whose output tok/s is
//!   within [`KNEE_SHARE`] of the sweep's peak (the study's knee rule, on rate instead of
//!   replicas).
//! - **max rate under the SLO** (goodput): `llm-sim`'s capacity search
//!   ([`crate::sim::capacity::max_rate`], doubling then bisecting) for the highest rate whose
//!   TTFT p95 and TPOT p95 are within the [`Slo`]. Each probe offers at least 100 TTFT
//!   objectives' worth of arrivals, so an overloaded system cannot drain its queue in time to
//!   pass.
//! - **at the given rate**: TTFT and TPOT p95 at the scenario's offered rate (the profile's
//!   unless `rate=` changes it), and whether they meet the SLO.

use std::fmt::Write as _;
use std::str::FromStr;

use super::TwinError;
use crate::report::html::chart::{Chart, Layer, Stroke};
use crate::sim::capacity::{CapacitySearch, max_rate};
use crate::sim::config::SimConfig;
use crate::sim::metrics::SimSummary;
use crate::sim::router::Router;
use crate::sim::scheduler::SchedulerKind;
use crate::sim::study::analysis::KNEE_SHARE;
use crate::sim::workload::{Arrival, Lengths};

/// Points of the knee sweep: rates `μ·i/10` for `i = 1…KNEE_STEPS`.
const KNEE_STEPS: u32 = 15;

/// The latency objective a rate must meet: 95 % of requests within each bound.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slo {
    /// Largest TTFT p95, ms.
    pub ttft_ms: f64,
    /// Largest TPOT p95, ms.
    pub tpot_ms: f64,
}

impl Slo {
    /// Whether a run's TTFT and TPOT p95 are within the objective.
    pub fn met_by(&self, summary: &SimSummary) -> bool {
        summary.ttft_ms.p95 <= self.ttft_ms && summary.tpot_ms.p95 <= self.tpot_ms
    }
}

/// One change to the profile; unset fields keep the profile's value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scenario {
    /// Replicas.
    pub replicas: Option<usize>,
    /// Router between replicas.
    pub router: Option<Router>,
    /// Multi-bin batching with this many bins (the profile's slot count as batch size).
    pub bins: Option<usize>,
    /// Prompt lengths.
    pub prompt: Option<Lengths>,
    /// Output lengths.
    pub output: Option<Lengths>,
    /// Gamma arrivals with this coefficient of variation (1 is Poisson, above 1 bursty).
    pub cv: Option<f64>,
    /// The offered rate whose latencies the table reports, requests per second.
    pub rate: Option<f64>,
}

impl FromStr for Scenario {
    type Err = String;

    /// Space-separated `key=value`: `replicas=N`, `router=round-robin|least-outstanding`,
    /// `bins=K`, `prompt=LENGTHS`, `output=LENGTHS` (`N`, `uniform:MIN:MAX`, `exp:MEAN`, …),
    /// `cv=X`, `rate=R`; empty or `profile` is the profile as it is.
    fn from_str(text: &str) -> Result<Scenario, String> {
        let mut scenario = Scenario::default();
        for part in text.split_whitespace().filter(|p| *p != "profile") {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}` in scenario `{text}` is not key=value"))?;
            let number = || {
                value
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && *v > 0.0)
                    .ok_or_else(|| format!("{key}: `{value}` is not a positive number"))
            };
            let count = || {
                value
                    .parse::<usize>()
                    .ok()
                    .filter(|v| *v > 0)
                    .ok_or_else(|| format!("{key}: `{value}` is not a positive whole number"))
            };
            match key {
                "replicas" => scenario.replicas = Some(count()?),
                "bins" => scenario.bins = Some(count()?),
                "router" => {
                    scenario.router = Some(match value {
                        "round-robin" | "rr" => Router::RoundRobin,
                        "least-outstanding" | "lo" => Router::LeastOutstanding,
                        _ => {
                            return Err(format!(
                                "router: `{value}` is not round-robin or least-outstanding"
                            ));
                        }
                    });
                }
                "prompt" => scenario.prompt = Some(value.parse()?),
                "output" => scenario.output = Some(value.parse()?),
                "cv" => scenario.cv = Some(number()?),
                "rate" => scenario.rate = Some(number()?),
                _ => {
                    return Err(format!(
                        "`{key}` is not a scenario key (replicas, router, bins, prompt, output, \
                         cv, rate)"
                    ));
                }
            }
        }
        Ok(scenario)
    }
}

impl std::fmt::Display for Scenario {
    /// The scenario as it is written (`profile` when it changes nothing).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(r) = self.replicas {
            parts.push(format!("replicas={r}"));
        }
        if let Some(r) = self.router {
            parts.push(format!("router={}", r.as_str()));
        }
        if let Some(k) = self.bins {
            parts.push(format!("bins={k}"));
        }
        if let Some(p) = &self.prompt {
            parts.push(format!("prompt={}", lengths(p)));
        }
        if let Some(o) = &self.output {
            parts.push(format!("output={}", lengths(o)));
        }
        if let Some(cv) = self.cv {
            parts.push(format!("cv={cv}"));
        }
        if let Some(rate) = self.rate {
            parts.push(format!("rate={rate}"));
        }
        if parts.is_empty() {
            f.write_str("profile")
        } else {
            f.write_str(&parts.join(" "))
        }
    }
}

/// Lengths as the scenario syntax writes them.
fn lengths(l: &Lengths) -> String {
    match l {
        Lengths::Fixed(n) => n.to_string(),
        Lengths::Uniform { min, max } => format!("uniform:{min}:{max}"),
        Lengths::Exponential { mean, .. } => format!("exp:{mean}"),
        Lengths::Lognormal { mean, sigma, .. } => format!("lognormal:{mean}:{sigma}"),
    }
}

/// The arrival rate of an arrival process (none for all at once).
fn rate_of(arrival: &Arrival) -> Option<f64> {
    match arrival {
        Arrival::AtOnce => None,
        Arrival::Poisson { rate } | Arrival::Gamma { rate, .. } => Some(*rate),
    }
}

impl Scenario {
    /// The profile with the scenario's changes, its arrivals at `rate`.
    pub fn apply(&self, profile: &SimConfig, rate: f64) -> SimConfig {
        let mut config = profile.clone();
        if let Some(r) = self.replicas {
            config.replicas = r;
        }
        if let Some(r) = self.router {
            config.router = r;
        }
        if let Some(k) = self.bins {
            config.scheduler.kind = SchedulerKind::MultiBin;
            config.scheduler.bins = k;
        }
        if let Some(p) = &self.prompt {
            config.workload.prompt = *p;
        }
        if let Some(o) = &self.output {
            config.workload.output = *o;
        }
        let cv = self.cv.or(match profile.workload.arrival {
            Arrival::Gamma { cv, .. } => Some(cv),
            _ => None,
        });
        config.workload.arrival = match cv {
            Some(cv) => Arrival::Gamma { rate, cv },
            None => Arrival::Poisson { rate },
        };
        config
    }
}

/// What a scenario does.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The scenario.
    pub scenario: Scenario,
    /// The rate it serves with every request sent at once, requests per second.
    pub saturation_qps: f64,
    /// The knee sweep: (rate, output tok/s).
    pub sweep: Vec<(f64, f64)>,
    /// The knee's rate, requests per second.
    pub knee_qps: f64,
    /// Output tok/s at the knee.
    pub knee_output_tok_s: f64,
    /// The highest rate meeting the SLO, requests per second (0 when none does).
    pub max_qps: f64,
    /// Output tok/s at that rate.
    pub max_output_tok_s: f64,
    /// The offered rate reported.
    pub offered_qps: f64,
    /// TTFT p95 at the offered rate, ms.
    pub offered_ttft_p95_ms: f64,
    /// TPOT p95 at the offered rate, ms.
    pub offered_tpot_p95_ms: f64,
    /// Whether the offered rate meets the SLO.
    pub offered_meets: bool,
}

/// The what-if of every scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct WhatIf {
    /// The objective.
    pub slo: Slo,
    /// One per scenario, in order.
    pub outcomes: Vec<Outcome>,
}

/// Runs every scenario on `profile` (module documentation).
pub fn what_if(profile: &SimConfig, scenarios: &[Scenario], slo: Slo) -> Result<WhatIf, TwinError> {
    let outcomes = scenarios
        .iter()
        .map(|s| scenario(profile, s, slo))
        .collect::<Result<_, _>>()?;
    Ok(WhatIf { slo, outcomes })
}

fn scenario(profile: &SimConfig, s: &Scenario, slo: Slo) -> Result<Outcome, TwinError> {
    let offered_qps = s
        .rate
        .or_else(|| rate_of(&profile.workload.arrival))
        .unwrap_or(1.0);
    let mut at_once = s.apply(profile, offered_qps);
    at_once.workload.arrival = Arrival::AtOnce;
    let batch = at_once.run()?.summary;
    let saturation_qps = if batch.makespan_s > 0.0 {
        batch.completed as f64 / batch.makespan_s
    } else {
        0.0
    };
    if !(saturation_qps.is_finite() && saturation_qps > 0.0) {
        return Err(TwinError::WhatIf(format!(
            "scenario `{s}` completes no request"
        )));
    }
    let mut sweep = Vec::new();
    for i in 1..=KNEE_STEPS {
        let rate = saturation_qps * f64::from(i) / 10.0;
        sweep.push((rate, s.apply(profile, rate).run()?.summary.output_tok_s));
    }
    let peak = sweep.iter().map(|p| p.1).fold(0.0, f64::max);
    let (knee_qps, knee_output_tok_s) = sweep
        .iter()
        .copied()
        .find(|p| p.1 >= KNEE_SHARE * peak)
        .unwrap_or((0.0, 0.0));

    let mut probe = s.apply(profile, saturation_qps);
    probe.sla.e2e_s = 10.0 * slo.ttft_ms / 1e3;
    probe.sla.tpot_s = slo.tpot_ms / 1e3;
    let search = CapacitySearch {
        start_qps: saturation_qps / 8.0,
        bisections: 10,
        ..CapacitySearch::default()
    };
    let capacity = max_rate(&probe, &search, |summary| slo.met_by(summary))?;
    let max_output_tok_s = if capacity.qps > 0.0 {
        s.apply(profile, capacity.qps).run()?.summary.output_tok_s
    } else {
        0.0
    };
    let offered = s.apply(profile, offered_qps).run()?.summary;
    Ok(Outcome {
        scenario: s.clone(),
        saturation_qps,
        sweep,
        knee_qps,
        knee_output_tok_s,
        max_qps: capacity.qps,
        max_output_tok_s,
        offered_qps,
        offered_ttft_p95_ms: offered.ttft_ms.p95,
        offered_tpot_p95_ms: offered.tpot_ms.p95,
        offered_meets: slo.met_by(&offered),
    })
}

impl WhatIf {
    /// The table's header and rows as text cells.
    fn cells(&self) -> (Vec<String>, Vec<Vec<String>>) {
        let header = vec![
            "scenario".to_string(),
            "knee req/s".into(),
            "knee out tok/s".into(),
            "max req/s in SLO".into(),
            "out tok/s there".into(),
            "offered req/s".into(),
            "TTFT p95 ms".into(),
            "TPOT p95 ms".into(),
            "meets SLO".into(),
        ];
        let rows = self
            .outcomes
            .iter()
            .map(|o| {
                vec![
                    o.scenario.to_string(),
                    format!("{:.2}", o.knee_qps),
                    format!("{:.0}", o.knee_output_tok_s),
                    if o.max_qps > 0.0 {
                        format!("{:.2}", o.max_qps)
                    } else {
                        "none".into()
                    },
                    format!("{:.0}", o.max_output_tok_s),
                    format!("{:.2}", o.offered_qps),
                    format!("{:.1}", o.offered_ttft_p95_ms),
                    format!("{:.2}", o.offered_tpot_p95_ms),
                    if o.offered_meets { "yes" } else { "no" }.into(),
                ]
            })
            .collect();
        (header, rows)
    }

    fn caption(&self) -> String {
        format!(
            "SLO: TTFT p95 ≤ {} ms and TPOT p95 ≤ {} ms; knee: the lowest rate within {:.0} % \
             of the peak output throughput.",
            self.slo.ttft_ms,
            self.slo.tpot_ms,
            KNEE_SHARE * 100.0
        )
    }

    /// The table as aligned text.
    pub fn render(&self) -> String {
        let (header, rows) = self.cells();
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
                let pad = w - cell.chars().count();
                if i == 0 {
                    let _ = write!(s, "{cell}{}", " ".repeat(pad));
                } else {
                    let _ = write!(s, "  {}{cell}", " ".repeat(pad));
                }
            }
            s.trim_end().to_string()
        };
        let mut s = format!("{}\n{}\n", self.caption(), line(&header));
        for row in &rows {
            s.push_str(&line(row));
            s.push('\n');
        }
        s
    }

    /// The table as Markdown.
    pub fn markdown(&self) -> String {
        let (header, rows) = self.cells();
        let mut s = format!("# What-if\n\n{}\n\n", self.caption());
        let _ = writeln!(s, "| {} |", header.join(" | "));
        let _ = writeln!(
            s,
            "|{}",
            header
                .iter()
                .enumerate()
                .map(|(i, _)| if i == 0 { "---|" } else { "---:|" })
                .collect::<String>()
        );
        for row in &rows {
            let _ = writeln!(s, "| {} |", row.join(" | "));
        }
        s
    }

    /// Output tok/s against arrival rate, one line per scenario, its knee and its max rate
    /// under the SLO marked.
    pub fn chart(&self) -> Chart {
        let mut layers = Vec::new();
        let mut marks = Vec::new();
        for (i, o) in self.outcomes.iter().enumerate() {
            layers.push(Layer::Line {
                label: o.scenario.to_string(),
                points: o.sweep.clone(),
                color: i,
                stroke: Stroke::SolidWithPoints,
            });
            if o.knee_qps > 0.0 {
                marks.push(Layer::Mark {
                    label: format!("knee: {:.2} req/s ({})", o.knee_qps, o.scenario),
                    at: (o.knee_qps, o.knee_output_tok_s),
                });
            }
            if o.max_qps > 0.0 {
                marks.push(Layer::Mark {
                    label: format!("max in SLO: {:.2} req/s ({})", o.max_qps, o.scenario),
                    at: (o.max_qps, o.max_output_tok_s),
                });
            }
        }
        layers.extend(marks);
        Chart {
            id: "what-if".into(),
            title: "What-if: output throughput against arrival rate".into(),
            x_label: "arrival rate (req/s)".into(),
            y_label: "output tok/s".into(),
            layers,
            y_from_zero: true,
            x_integer: false,
            y_integer: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::sim::config::CostSpec;
    use crate::sim::cost::FittedCost;

    /// A server whose every step takes 10 ms, 4 slots, 16-token prompts and outputs.
    fn simple_profile() -> SimConfig {
        let mut config = SimConfig {
            cost: CostSpec::Fitted(FittedCost {
                alpha: 0.010,
                beta: 0.0,
                gamma: 0.0,
                prefill_per_token: 0.0,
            }),
            ..SimConfig::default()
        };
        config.scheduler.kind = SchedulerKind::Continuous;
        config.scheduler.batch_size = 4;
        config.workload.requests = 400;
        config.workload.prompt = Lengths::Fixed(16);
        config.workload.output = Lengths::Fixed(16);
        config.workload.arrival = Arrival::Poisson { rate: 10.0 };
        config
    }

    const SLO: Slo = Slo {
        ttft_ms: 200.0,
        tpot_ms: 50.0,
    };

    #[rstest]
    #[case("", Scenario::default())]
    #[case("profile", Scenario::default())]
    #[case("replicas=2 router=lo", Scenario {
        replicas: Some(2),
        router: Some(Router::LeastOutstanding),
        ..Scenario::default()
    })]
    #[case("bins=4 prompt=uniform:64:512 cv=2 rate=20", Scenario {
        bins: Some(4),
        prompt: Some(Lengths::Uniform { min: 64, max: 512 }),
        cv: Some(2.0),
        rate: Some(20.0),
        ..Scenario::default()
    })]
    fn scenarios_parse(#[case] text: &str, #[case] expected: Scenario) {
        let parsed: Scenario = text.parse().expect("parses");
        assert_eq!(parsed, expected);
        assert_eq!(parsed.to_string().parse::<Scenario>(), Ok(expected));
    }

    #[rstest]
    #[case("replicas=0")]
    #[case("router=random")]
    #[case("speed=2")]
    #[case("replicas")]
    #[case("rate=-1")]
    fn bad_scenarios_are_refused(#[case] text: &str) {
        assert!(text.parse::<Scenario>().is_err(), "{text}");
    }

    #[test]
    fn two_replicas_about_double_the_knee_and_the_max_rate_of_one() {
        let profile = simple_profile();
        let scenarios: Vec<Scenario> = ["profile", "replicas=2", "replicas=2 router=lo"]
            .iter()
            .map(|s| s.parse().expect("scenario"))
            .collect();
        let w = what_if(&profile, &scenarios, SLO).expect("runs");
        let one = &w.outcomes[0];
        // 4 slots, 16 steps of 10 ms each per request (one prefill, 15 decodes): about 25/s.
        assert!(
            (20.0..=27.0).contains(&one.saturation_qps),
            "{}",
            w.render()
        );
        assert!(one.max_qps > 0.0 && one.max_qps <= one.saturation_qps * 1.1);
        for two in &w.outcomes[1..] {
            let knee = two.knee_qps / one.knee_qps;
            let max = two.max_qps / one.max_qps;
            assert!(
                (1.7..=2.3).contains(&knee),
                "knee ×{knee:.2}\n{}",
                w.render()
            );
            assert!((1.7..=2.3).contains(&max), "max ×{max:.2}\n{}", w.render());
        }
        let md = w.markdown();
        assert_eq!(md.matches("\n| replicas=2").count(), 2, "{md}");
        assert_eq!(w.chart().layers.len(), 3 + 6);
    }

    #[test]
    fn a_tighter_slo_allows_a_lower_rate() {
        let profile = simple_profile();
        let loose = what_if(&profile, &[Scenario::default()], SLO).expect("runs");
        let tight = Slo {
            ttft_ms: 40.0,
            ..SLO
        };
        let tight = what_if(&profile, &[Scenario::default()], tight).expect("runs");
        let (loose, tight) = (loose.outcomes[0].max_qps, tight.outcomes[0].max_qps);
        assert!(tight > 0.0 && tight < loose, "tight {tight}, loose {loose}");
    }

    #[test]
    fn longer_outputs_lower_the_rate_served() {
        let profile = simple_profile();
        let scenarios = [Scenario::default(), "output=64".parse().expect("scenario")];
        let w = what_if(&profile, &scenarios, SLO).expect("runs");
        let (short, long) = (&w.outcomes[0], &w.outcomes[1]);
        // Four times the decode steps: about a quarter of the requests per second.
        let ratio = long.saturation_qps / short.saturation_qps;
        assert!((0.2..=0.35).contains(&ratio), "×{ratio:.2}\n{}", w.render());
        assert!(long.max_qps < short.max_qps);
    }
}
