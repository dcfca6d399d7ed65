//! What each request looks like and where it goes: the `client`, `prompts` and `endpoints`
//! sections of a case.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::lengths::LengthDist;
use super::schema::ServerSpec;
use super::traffic::Span;

/// How requests are sent.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientSpec {
    /// Stream the response (SSE). Without streaming only E2EL is measured.
    pub stream: bool,
    /// Extra HTTP headers sent with every request.
    pub headers: BTreeMap<String, String>,
    /// Name of an environment variable holding an API key, sent as `Authorization: Bearer`.
    /// The key itself is never written to any output.
    pub api_key_env: Option<String>,
    /// Reuse connections between requests. Turn it off for servers that close a connection
    /// after a streamed response without saying so (llama.cpp's llama-server does): a request
    /// sent on such a connection fails with "connection closed before message completed".
    pub keep_alive: bool,
    /// Scraping the server's Prometheus metrics while the load runs.
    pub metrics: MetricsSpec,
    /// Fields merged into every request body (`tools`, `response_format`, `logprobs`). Not a
    /// YAML key: an attributed trial's request customiser sets it (`Run::run_with`).
    #[serde(skip)]
    pub extra_body: serde_json::Map<String, serde_json::Value>,
    /// Most bytes of one SSE line or event; a longer one is a `protocol` error (the client's
    /// memory stays bounded whatever the server sends). 1 KiB to 64 MiB, default 1 MiB.
    #[serde(deserialize_with = "super::limits::event_bytes")]
    pub max_event_bytes: usize,
    /// How streamed requests reach the server.
    pub transport: Transport,
}

/// How a streamed request reaches the server and its answer is read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// reqwest (hyper): the body comes over a channel from a connection task, one HTTP chunk
    /// per wake-up, each stamped when the reader gets it.
    Reqwest,
    /// The harness's own HTTP/1.1 reader (the default): the task that measures a stream reads
    /// its socket itself, and each read is stamped with the kernel's receive time of its bytes
    /// (Linux; elsewhere, as the read returns). It costs the client less CPU per chunk than
    /// reqwest, and its stamps do not grow with the client's own backlog when hundreds of
    /// streams get a chunk at once (see the client-performance page). A URL that is not plain
    /// `http://` goes through reqwest.
    #[default]
    Direct,
}

impl Default for ClientSpec {
    fn default() -> Self {
        Self {
            stream: true,
            headers: BTreeMap::new(),
            api_key_env: None,
            keep_alive: true,
            metrics: MetricsSpec::default(),
            extra_body: serde_json::Map::new(),
            max_event_bytes: super::limits::DEFAULT_EVENT_BYTES,
            transport: Transport::default(),
        }
    }
}

/// Scraping the server's Prometheus metrics (`/metrics`) while a trial's load runs.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSpec {
    /// Scrape at all. A server with no metrics there is noted, not failed.
    pub scrape: bool,
    /// Path of the exposition on the server.
    pub path: String,
    /// Time between scrapes, in milliseconds (at least 10).
    pub interval_ms: u64,
}

impl Default for MetricsSpec {
    fn default() -> Self {
        Self {
            scrape: true,
            path: "/metrics".to_string(),
            interval_ms: 500,
        }
    }
}

/// Where prompts come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptSource {
    /// Generated text of exactly ISL tokens, unique per request.
    #[default]
    Synthetic,
    /// A JSON Lines file: one `{"prompt": …, "output_tokens"?: …}` object per line.
    Jsonl,
    /// A ShareGPT JSON file: `[{"conversations": [{"from": "human", "value": …}, …]}, …]`.
    Sharegpt,
}

impl PromptSource {
    /// The name used in case files and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            PromptSource::Synthetic => "synthetic",
            PromptSource::Jsonl => "jsonl",
            PromptSource::Sharegpt => "sharegpt",
        }
    }
}

/// The `prompts` section of a case.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PromptSpec {
    /// Where prompts come from.
    pub source: PromptSource,
    /// Dataset file, relative to the case file (jsonl and sharegpt).
    pub path: Option<String>,
    /// Count tokens with the server's `/tokenize` endpoint instead of a local tokenizer.
    pub use_server_tokenizer: bool,
    /// Synthetic prompts: each begins with one of `prefix_groups` shared prefixes of exactly
    /// this many tokens, followed by a suffix unique to the request (the rest of its ISL).
    #[serde(deserialize_with = "super::limits::opt_tokens")]
    pub prefix_tokens: Option<u32>,
    /// How many different shared prefixes there are (request `i` takes prefix `i mod
    /// prefix_groups`); needs `prefix_tokens`.
    #[serde(deserialize_with = "super::limits::opt_requests")]
    pub prefix_groups: Option<u32>,
    /// Synthetic prompts: each request's ISL drawn from this distribution (seeded by the
    /// trial) instead of the matrix's ISL, which stays the nominal length and must be at
    /// least the distribution's `max`.
    pub isl_dist: Option<LengthDist>,
    /// Synthetic prompts: each request's OSL (`max_tokens`) drawn from this distribution; the
    /// matrix's OSL stays the nominal length and must be at least the distribution's `max`.
    pub osl_dist: Option<LengthDist>,
    /// Multi-turn conversations: each closed-loop worker holds a conversation of several
    /// turns, each turn's request carrying the whole conversation so far.
    pub sessions: Option<SessionSpec>,
}

/// Most turns a conversation may have.
pub const MAX_TURNS: u32 = 256;

/// Multi-turn conversations (`prompts.sessions`): turn 1 sends a prompt of the trial's ISL;
/// turn k sends the conversation so far (every earlier user message and the model's actual
/// answer to it) followed by a new user message of `user_tokens` tokens (the ISL unless
/// given).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSpec {
    /// Turns (requests) per conversation, 1 to [`MAX_TURNS`].
    /// A fixed count, or (`load.mode: sessions`) a distribution each session draws from.
    #[serde(default)]
    pub turns: Option<TurnsSpec>,
    /// Tokens of each later turn's new user message (turns 2…); the trial's ISL unless given.
    #[serde(default, deserialize_with = "super::limits::opt_tokens")]
    pub user_tokens: Option<u32>,
    /// Pause between an answer and the conversation's next turn (the user reading and
    /// typing); not part of any request's latency.
    /// A fixed span, or (`load.mode: sessions`) a log-normal distribution.
    #[serde(default)]
    pub think_time: Option<ThinkSpec>,
}

/// Turns per session: a fixed count, or a log-normal distribution (`{dist: lognormal, mu,
/// sigma, min?, max?}`: the count is `round(exp(N(mu, sigma)))` clipped to `[min, max]`,
/// 1 and [`MAX_TURNS`] unless given).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum TurnsSpec {
    /// Every session has this many turns.
    Fixed(u32),
    /// Each session draws its count.
    LogNormal(TurnsDist),
}

/// The only distribution family of turns and think times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogNormalName {
    /// `dist: lognormal`.
    Lognormal,
}

/// A log-normal turn count: `round(exp(N(mu, sigma)))`, clipped to `[min, max]`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TurnsDist {
    /// `lognormal`.
    pub dist: LogNormalName,
    /// Mean of the count's logarithm (the median count is `exp(mu)`).
    pub mu: f64,
    /// Standard deviation of the count's logarithm.
    pub sigma: f64,
    /// Fewest turns (1 unless given).
    #[serde(default)]
    pub min: Option<u32>,
    /// Most turns ([`MAX_TURNS`] unless given).
    #[serde(default)]
    pub max: Option<u32>,
}

/// Think time between an answer and the session's next turn: a fixed span, or a log-normal
/// one (`{dist: lognormal, median: 2s, sigma: 0.5, max?: 30s}`, clipped to `max`, ten times
/// the median unless given).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum ThinkSpec {
    /// The same pause every time.
    Fixed(Span),
    /// A pause drawn for each turn.
    LogNormal(ThinkDist),
}

/// A log-normal think time.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ThinkDist {
    /// `lognormal`.
    pub dist: LogNormalName,
    /// The median pause.
    pub median: Span,
    /// Standard deviation of the pause's logarithm.
    pub sigma: f64,
    /// Longest pause (ten times the median unless given).
    #[serde(default)]
    pub max: Option<Span>,
}

impl TurnsSpec {
    /// The most turns a session may have.
    pub fn max(&self) -> u32 {
        match *self {
            TurnsSpec::Fixed(n) => n,
            TurnsSpec::LogNormal(d) => d.max.unwrap_or(MAX_TURNS),
        }
    }

    /// The trial-name part: `3`, or `ln1.5s0.4` for a log-normal count.
    fn slug(&self) -> String {
        match *self {
            TurnsSpec::Fixed(n) => n.to_string(),
            TurnsSpec::LogNormal(d) => format!("ln{}s{}", d.mu, d.sigma),
        }
    }

    /// What is wrong with it, if anything.
    fn problem(&self) -> Option<String> {
        let (min, max) = match *self {
            TurnsSpec::Fixed(n) => (n, n),
            TurnsSpec::LogNormal(d) => {
                if !(d.mu.is_finite() && d.sigma.is_finite() && d.sigma >= 0.0) {
                    return Some("`mu` must be a number and `sigma` a number ≥ 0".into());
                }
                (d.min.unwrap_or(1), d.max.unwrap_or(MAX_TURNS))
            }
        };
        if !(1..=MAX_TURNS).contains(&min) || !(1..=MAX_TURNS).contains(&max) {
            return Some(format!("must be between 1 and {MAX_TURNS}"));
        }
        (min > max).then(|| format!("`min` ({min}) is more than `max` ({max})"))
    }
}

impl ThinkSpec {
    /// What is wrong with it, if anything.
    fn problem(&self) -> Option<String> {
        match *self {
            ThinkSpec::Fixed(_) => None,
            ThinkSpec::LogNormal(d) => {
                if !(d.sigma.is_finite() && d.sigma >= 0.0) {
                    return Some("`sigma` must be a number ≥ 0".into());
                }
                d.max
                    .is_some_and(|max| max.0 < d.median.0)
                    .then(|| "`max` is shorter than `median`".into())
            }
        }
    }

    /// Whether it is a distribution (sessions mode only).
    pub fn is_dist(&self) -> bool {
        matches!(self, ThinkSpec::LogNormal(_))
    }
}

impl SessionSpec {
    /// Turns per conversation: the most a session may have (1 unless given).
    pub fn turns(&self) -> u32 {
        self.turns.map_or(1, |t| t.max())
    }

    /// The trial-name suffix: `_turns3`, or `_turns3u32` with `user_tokens` (empty when the
    /// turns come from `load.profile` and no `user_tokens` is given).
    pub fn slug(&self) -> String {
        let user = self.user_tokens.map(|u| format!("u{u}"));
        match self.turns {
            Some(turns) => format!("_turns{}{}", turns.slug(), user.unwrap_or_default()),
            None => user.map(|u| format!("_{u}")).unwrap_or_default(),
        }
    }
}

/// Most shared prefixes a case may ask for.
pub const MAX_PREFIX_GROUPS: u32 = 4096;

impl PromptSpec {
    /// The shared prefix asked for: (tokens, groups), groups 1 unless given.
    pub fn shared_prefix(&self) -> Option<(u32, u32)> {
        self.prefix_tokens
            .map(|tokens| (tokens, self.prefix_groups.unwrap_or(1)))
    }

    /// The trial-name suffix of the length distributions: empty without one,
    /// `_isl64-512u`, `_osl16-128n64s16`, or both (see [`LengthDist::slug`]).
    pub fn length_suffix(&self) -> String {
        let isl = self.isl_dist.as_ref().map(|d| format!("_isl{}", d.slug()));
        let osl = self.osl_dist.as_ref().map(|d| format!("_osl{}", d.slug()));
        format!("{}{}", isl.unwrap_or_default(), osl.unwrap_or_default())
    }

    /// The trial-name suffix of multi-turn conversations: empty without them, else
    /// [`SessionSpec::slug`].
    pub fn sessions_suffix(&self) -> String {
        self.sessions.map(|s| s.slug()).unwrap_or_default()
    }

    /// What is wrong with the shared-prefix, length-distribution and sessions keys, as (key,
    /// message), if anything.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if let Some(problem) = self.sessions.and_then(|s| self.sessions_problem(s)) {
            return Some(problem);
        }
        for (key, dist) in [
            ("prompts.isl_dist", &self.isl_dist),
            ("prompts.osl_dist", &self.osl_dist),
        ] {
            let Some(dist) = dist else { continue };
            if let Some(problem) = dist.problem() {
                return Some((key, problem));
            }
            if self.source != PromptSource::Synthetic {
                return Some((
                    key,
                    "length distributions are for synthetic prompts (`source: synthetic`); a \
                     dataset's lengths are its own"
                        .into(),
                ));
            }
        }
        if self.isl_dist.is_some() && self.prefix_tokens.is_some() {
            return Some((
                "prompts.isl_dist",
                "cannot be combined with `prefix_tokens` (shared prefixes take one ISL)".into(),
            ));
        }
        if self.prefix_groups.is_some() && self.prefix_tokens.is_none() {
            return Some((
                "prompts.prefix_groups",
                "needs `prefix_tokens` (the length of each shared prefix)".into(),
            ));
        }
        if self.prefix_tokens == Some(0) {
            return Some(("prompts.prefix_tokens", "must be at least 1".into()));
        }
        if let Some(groups) = self.prefix_groups
            && !(1..=MAX_PREFIX_GROUPS).contains(&groups)
        {
            return Some((
                "prompts.prefix_groups",
                format!("must be between 1 and {MAX_PREFIX_GROUPS}"),
            ));
        }
        if self.prefix_tokens.is_some() && self.source != PromptSource::Synthetic {
            return Some((
                "prompts.prefix_tokens",
                "shared prefixes are for synthetic prompts (`source: synthetic`)".into(),
            ));
        }
        None
    }
}

impl PromptSpec {
    fn sessions_problem(&self, sessions: SessionSpec) -> Option<(&'static str, String)> {
        // Whether `turns` must be given depends on the load mode (`load.profile` may give
        // them): see `case::load::validate`.
        if let Some(problem) = sessions.turns.and_then(|t| t.problem()) {
            return Some(("prompts.sessions.turns", problem));
        }
        if let Some(problem) = sessions.think_time.and_then(|t| t.problem()) {
            return Some(("prompts.sessions.think_time", problem));
        }
        if sessions.user_tokens == Some(0) {
            return Some(("prompts.sessions.user_tokens", "must be at least 1".into()));
        }
        if sessions.user_tokens.is_some() && self.isl_dist.is_some() {
            return Some((
                "prompts.sessions.user_tokens",
                "cannot be combined with `isl_dist` (later turns' messages take one length)".into(),
            ));
        }
        if self.source == PromptSource::Jsonl {
            return Some((
                "prompts.sessions",
                "conversations are built from synthetic prompts (`source: synthetic`) or \
                 replayed from ShareGPT conversations (`source: sharegpt`)"
                    .into(),
            ));
        }
        if self.source == PromptSource::Sharegpt && sessions.user_tokens.is_some() {
            return Some((
                "prompts.sessions.user_tokens",
                "a replayed ShareGPT conversation's messages are the dataset's own".into(),
            ));
        }
        if self.prefix_tokens.is_some() {
            return Some((
                "prompts.sessions",
                "cannot be combined with `prefix_tokens` (a conversation's history is its own \
                 shared prefix)"
                    .into(),
            ));
        }
        None
    }
}

/// One of several servers a case spreads its requests over.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    /// Name used in per-endpoint summaries.
    pub name: String,
    /// Share of requests sent here (weights need not add up to 1).
    pub weight: f64,
    /// The server.
    pub server: ServerSpec,
    /// Model name sent to this endpoint (defaults to the model spec's).
    #[serde(default)]
    pub served_model: Option<String>,
}
