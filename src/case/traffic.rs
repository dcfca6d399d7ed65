//! The `load` section of a case: which load mode drives the server, and its shape.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::accuracy::Score;

/// How requests are sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadMode {
    /// C requests in flight (the combination's concurrency) until N are sent or the duration
    /// has passed.
    #[default]
    Closed,
    /// Arrivals at `rate` requests per second on a schedule fixed up front, whatever the
    /// server does (open loop).
    Open,
    /// U closed-loop virtual users (the combination's concurrency) started over `ramp_up` and
    /// running for `duration`, with optional think time.
    Users,
    /// The same prompt `requests` times, one at a time: how much identical requests vary.
    Consistency,
    /// Multi-turn sessions arriving at `rate` sessions per second on a schedule fixed up
    /// front (open loop); each session's later turns follow its answers after a think time.
    Sessions,
}

/// Turns per session of `load.mode: sessions`, as a preset: `one_shot` 1, `short` 3 to 5,
/// `long` 8 to 15 (each session draws its count uniformly, seeded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionProfile {
    /// One turn: single requests arriving as sessions.
    OneShot,
    /// 3 to 5 turns.
    Short,
    /// 8 to 15 turns.
    Long,
}

impl SessionProfile {
    /// The name used in case files and trial names.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionProfile::OneShot => "one_shot",
            SessionProfile::Short => "short",
            SessionProfile::Long => "long",
        }
    }

    /// The fewest and most turns of a session, both included.
    pub fn turns(self) -> (u32, u32) {
        match self {
            SessionProfile::OneShot => (1, 1),
            SessionProfile::Short => (3, 5),
            SessionProfile::Long => (8, 15),
        }
    }
}

impl LoadMode {
    /// The name used in case files and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            LoadMode::Closed => "closed",
            LoadMode::Open => "open",
            LoadMode::Users => "users",
            LoadMode::Consistency => "consistency",
            LoadMode::Sessions => "sessions",
        }
    }
}

/// Inter-arrival process of an open-loop run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Arrival {
    /// Evenly spaced: one request every 1/rate seconds.
    Constant,
    /// Exponential gaps with mean 1/rate.
    #[default]
    Poisson,
    /// Gamma gaps with shape `burstiness` and mean 1/rate (vLLM's definition: burstiness 1
    /// is Poisson, below 1 is burstier, above 1 is more regular).
    Gamma,
}

impl Arrival {
    /// The name used in case files and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Arrival::Constant => "constant",
            Arrival::Poisson => "poisson",
            Arrival::Gamma => "gamma",
        }
    }
}

/// What an open-loop arrival does when `max_in_flight` requests are already in flight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// The arrival is not sent and is counted as dropped (k6's arrival-rate executors).
    #[default]
    Drop,
    /// The arrival waits for a free slot (vLLM's `--max-concurrency`); latency from its
    /// intended send time shows the wait. One that waits past the timeout is dropped.
    Wait,
}

/// A duration written as humantime text (`500ms`, `30s`, `2m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct Span(pub Duration);

impl From<Span> for String {
    fn from(span: Span) -> String {
        humantime::format_duration(span.0).to_string()
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Span, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_span(&text).map_err(de::Error::custom)
    }
}

fn parse_span(text: &str) -> Result<Span, String> {
    let span = humantime::parse_duration(text.trim())
        .map_err(|e| format!("`{text}` is not a duration like `500ms`, `30s` or `2m` ({e})"))?;
    super::limits::check_span(span).map(Span)
}

/// Warmup before the measured window: a number of requests or a duration. Never measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Warmup {
    /// This many requests, at the trial's concurrency.
    Requests(u32),
    /// Requests at the trial's concurrency for this long.
    Duration(Span),
}

impl Default for Warmup {
    fn default() -> Self {
        Warmup::Requests(1)
    }
}

impl<'de> Deserialize<'de> for Warmup {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Warmup, D::Error> {
        struct WarmupVisitor;
        impl Visitor<'_> for WarmupVisitor {
            type Value = Warmup;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of requests (`4`) or a duration (`10s`)")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Warmup, E> {
                super::limits::check_count(v, super::limits::MAX_REQUESTS, "warmup requests")
                    .map(Warmup::Requests)
                    .map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Warmup, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom("warmup cannot be negative"))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Warmup, E> {
                parse_span(v).map(Warmup::Duration).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(WarmupVisitor)
    }
}

/// Request rates of an open-loop run: one number or a list, each its own trial.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Rates(pub Vec<f64>);

impl<'de> Deserialize<'de> for Rates {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Rates, D::Error> {
        struct RatesVisitor;
        impl<'de> Visitor<'de> for RatesVisitor {
            type Value = Rates;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a rate in requests per second, or a list of rates")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Rates, E> {
                Ok(Rates(vec![v]))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Rates, E> {
                Ok(Rates(vec![v as f64]))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Rates, E> {
                Ok(Rates(vec![v as f64]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Rates, A::Error> {
                let mut rates = Vec::new();
                while let Some(rate) = seq.next_element::<f64>()? {
                    rates.push(rate);
                }
                Ok(Rates(rates))
            }
        }
        deserializer.deserialize_any(RatesVisitor)
    }
}

/// Load section of a case.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoadSpec {
    /// Load mode.
    pub mode: LoadMode,
    /// Requests (`4`) or a duration (`10s`) sent before measuring, never counted.
    pub warmup: Warmup,
    /// Per-request timeout in seconds.
    #[serde(deserialize_with = "super::limits::timeout_seconds")]
    pub timeout_s: f64,
    /// Seed for prompts, arrivals, endpoint choice and any other randomness.
    pub seed: u64,
    /// Measured requests, overriding the combination's prompt count (open: the number of
    /// arrivals; closed with a duration and users: the size of the prompt pool, cycled).
    #[serde(deserialize_with = "super::limits::opt_requests")]
    pub requests: Option<u32>,
    /// closed: stop sending after this long (instead of after N requests); open: arrivals
    /// for this long at `rate` (when `requests` is not given); users: run length.
    pub duration: Option<Span>,
    /// open: requests per second; sessions: session arrivals per second; a list makes one
    /// trial per rate.
    pub rate: Rates,
    /// open and sessions: inter-arrival process.
    pub arrival: Arrival,
    /// open and sessions: gamma shape (1 = Poisson, < 1 burstier).
    pub burstiness: f64,
    /// open: most requests in flight.
    #[serde(deserialize_with = "super::limits::opt_concurrency")]
    pub max_in_flight: Option<u32>,
    /// open: what an arrival does when `max_in_flight` is reached.
    pub when_full: WhenFull,
    /// users: users start evenly spread over this span.
    pub ramp_up: Option<Span>,
    /// users: pause between a user's response and its next request.
    pub think_time: Option<Span>,
    /// users: a progress line this often (on stderr).
    pub progress_interval: Option<Span>,
    /// Most failed requests allowed, as a share of the measured requests (`2%`, `0.02`):
    /// more fail the trial. 0 by default: any failed request fails the trial.
    pub error_budget: Score,
    /// A perf trial runs its load this many times (warmup included each time) and pools the
    /// requests; the report gives each run's figures and their median and spread.
    pub repeat: u32,
    /// The longest the trial's load may run, warmup, repeats and retries included; the
    /// harness ends it then and fails the trial. By default a bound computed from the load
    /// (its duration or requests, the warmup and the request timeout).
    pub trial_timeout: Option<Span>,
    /// sessions: turns per session as a preset (`one_shot`, `short`, `long`), instead of
    /// `prompts.sessions.turns`.
    pub profile: Option<SessionProfile>,
}

impl Default for LoadSpec {
    fn default() -> Self {
        Self {
            mode: LoadMode::Closed,
            warmup: Warmup::default(),
            timeout_s: 120.0,
            seed: 0,
            requests: None,
            duration: None,
            rate: Rates::default(),
            arrival: Arrival::default(),
            burstiness: 1.0,
            max_in_flight: None,
            when_full: WhenFull::Drop,
            ramp_up: None,
            think_time: None,
            progress_interval: None,
            error_budget: Score::ZERO,
            repeat: 1,
            trial_timeout: None,
            profile: None,
        }
    }
}

impl LoadSpec {
    /// What is wrong with this load section, as (key, message), if anything.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if self.timeout_s.is_nan() || self.timeout_s <= 0.0 {
            return Some((
                "load.timeout_s",
                "must be a positive number of seconds".into(),
            ));
        }
        if self.requests == Some(0) {
            return Some(("load.requests", "must be at least 1".into()));
        }
        let max_repeat = super::limits::MAX_REPEAT;
        if !(1..=max_repeat).contains(&self.repeat) {
            return Some((
                "load.repeat",
                format!("{} is not between 1 and {max_repeat}", self.repeat),
            ));
        }
        if self.duration.is_some_and(|d| d.0.is_zero()) {
            return Some(("load.duration", "must be longer than zero".into()));
        }
        if self.trial_timeout.is_some_and(|d| d.0.is_zero()) {
            return Some(("load.trial_timeout", "must be longer than zero".into()));
        }
        if self.mode == LoadMode::Sessions && self.duration.is_none() {
            return Some((
                "load.duration",
                "sessions mode needs a duration, such as `20s` (sessions arrive during it; no \
                 turn is sent after it)"
                    .into(),
            ));
        }
        match self.mode {
            LoadMode::Open | LoadMode::Sessions => {
                if self.rate.0.is_empty() {
                    return Some((
                        "load.rate",
                        format!(
                            "{} mode needs a rate ({} per second)",
                            self.mode.as_str(),
                            if self.mode == LoadMode::Open {
                                "requests"
                            } else {
                                "session arrivals"
                            }
                        ),
                    ));
                }
                let max = super::limits::MAX_RATE;
                if let Some(bad) = self
                    .rate
                    .0
                    .iter()
                    .find(|r| !(r.is_finite() && **r > 0.0 && **r <= max))
                {
                    return Some((
                        "load.rate",
                        format!("{bad} is not a positive rate of at most {max} requests/s"),
                    ));
                }
                if let (None, Some(duration)) = (self.requests, self.duration) {
                    let top = self.rate.0.iter().copied().fold(0.0, f64::max);
                    let arrivals = top * duration.0.as_secs_f64();
                    let cap = super::limits::MAX_REQUESTS;
                    if arrivals > f64::from(cap) {
                        return Some((
                            "load.duration",
                            format!(
                                "{top} requests/s for {} is {arrivals:.0} arrivals, more than the \
                                 cap of {cap} requests",
                                humantime::format_duration(duration.0)
                            ),
                        ));
                    }
                }
                if !(self.burstiness.is_finite() && self.burstiness > 0.0) {
                    return Some(("load.burstiness", "must be a positive number".into()));
                }
                if self.max_in_flight == Some(0) {
                    return Some(("load.max_in_flight", "must be at least 1".into()));
                }
            }
            LoadMode::Users if self.duration.is_none() => {
                return Some((
                    "load.duration",
                    "users mode needs a duration, such as `60s`".into(),
                ));
            }
            _ => {}
        }
        let misplaced: &[(&'static str, bool)] = match self.mode {
            LoadMode::Open => &[
                ("load.ramp_up", self.ramp_up.is_some()),
                ("load.think_time", self.think_time.is_some()),
            ],
            LoadMode::Closed | LoadMode::Users => &[
                ("load.rate", !self.rate.0.is_empty()),
                ("load.max_in_flight", self.max_in_flight.is_some()),
            ],
            LoadMode::Sessions => &[
                ("load.ramp_up", self.ramp_up.is_some()),
                ("load.think_time", self.think_time.is_some()),
                ("load.max_in_flight", self.max_in_flight.is_some()),
            ],
            LoadMode::Consistency => &[
                ("load.rate", !self.rate.0.is_empty()),
                ("load.max_in_flight", self.max_in_flight.is_some()),
                ("load.duration", self.duration.is_some()),
                ("load.ramp_up", self.ramp_up.is_some()),
                ("load.think_time", self.think_time.is_some()),
            ],
        };
        if self.mode != LoadMode::Sessions && self.profile.is_some() {
            return Some((
                "load.profile",
                format!("does not apply to {} mode", self.mode.as_str()),
            ));
        }
        if let Some((key, _)) = misplaced.iter().find(|(_, set)| *set) {
            return Some((
                key,
                format!("does not apply to {} mode", self.mode.as_str()),
            ));
        }
        if self.mode == LoadMode::Closed && (self.ramp_up.is_some() || self.think_time.is_some()) {
            return Some((
                "load.mode",
                "ramp_up and think_time need `mode: users`".into(),
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use rstest::rstest;

    use super::*;
    use crate::case::load::parse_yaml;

    fn parse(text: &str) -> Result<LoadSpec, String> {
        parse_yaml::<LoadSpec>(Path::new("l.yaml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn shapes_parse_with_durations_rates_and_warmups() {
        let open =
            parse("mode: open\nrate: [5, 12.5]\narrival: gamma\nburstiness: 0.5\nwarmup: 2s\n")
                .expect("parses");
        assert_eq!(open.rate.0, vec![5.0, 12.5]);
        assert_eq!(open.warmup, Warmup::Duration(Span(Duration::from_secs(2))));
        assert_eq!(open.problem(), None);
        let users =
            parse("mode: users\nduration: 1m\nramp_up: 10s\nthink_time: 250ms\nwarmup: 3\n")
                .expect("parses");
        assert_eq!(users.duration, Some(Span(Duration::from_secs(60))));
        assert_eq!(users.think_time, Some(Span(Duration::from_millis(250))));
        assert_eq!(users.warmup, Warmup::Requests(3));
        assert_eq!(
            parse("rate: 7\nmode: open\n").expect("parses").rate.0,
            vec![7.0]
        );
    }

    #[rstest]
    #[case(
        "duration: soon\n",
        "l.yaml:1:11: key `duration`: `soon` is not a duration"
    )]
    #[case("warmup: -1\n", "warmup cannot be negative")]
    #[case("arrival: poison\n", "did you mean `poisson`?")]
    fn bad_values_are_located(#[case] text: &str, #[case] expected: &str) {
        let message = parse(text).expect_err("fails");
        assert!(message.contains(expected), "{message}");
    }

    #[rstest]
    #[case("mode: open\n", "load.rate")]
    #[case("mode: open\nrate: [0]\n", "load.rate")]
    #[case("mode: open\nrate: 1\nburstiness: 0\n", "load.burstiness")]
    #[case("mode: open\nrate: 1\nthink_time: 1s\n", "load.think_time")]
    #[case("mode: users\n", "load.duration")]
    #[case("rate: 3\n", "load.rate")]
    #[case("ramp_up: 3s\n", "load.mode")]
    #[case("duration: 0s\n", "load.duration")]
    #[case("trial_timeout: 0s\n", "load.trial_timeout")]
    #[case("mode: consistency\nduration: 10s\n", "load.duration")]
    #[case("mode: consistency\nrate: 2\n", "load.rate")]
    #[case("mode: consistency\nthink_time: 1s\n", "load.think_time")]
    #[case("mode: sessions\nrate: 2\n", "load.duration")]
    #[case("mode: sessions\nduration: 5s\n", "load.rate")]
    #[case(
        "mode: sessions\nrate: 2\nduration: 5s\nthink_time: 1s\n",
        "load.think_time"
    )]
    #[case(
        "mode: sessions\nrate: 2\nduration: 5s\nmax_in_flight: 4\n",
        "load.max_in_flight"
    )]
    #[case("mode: open\nrate: 2\nprofile: long\n", "load.profile")]
    fn inconsistent_shapes_name_the_key(#[case] text: &str, #[case] key: &str) {
        let spec = parse(text).expect("parses");
        assert_eq!(spec.problem().map(|p| p.0), Some(key), "{text}");
    }
}
