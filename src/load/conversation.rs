//! Multi-turn conversations: a closed loop whose workers each hold a conversation at a time
//! (`prompts.sessions`, [`drive`]), or sessions arriving on an open-loop schedule
//! (`load.mode: sessions`, [`arrive`]). Turn 1 sends a prompt of the trial's ISL; turn k sends
//! the whole conversation so far — every earlier user message and the model's actual answer to
//! it — then a new user message. Chat endpoints get it as messages; completions endpoints as
//! the texts joined by newlines. A think time between an answer and the next turn is nobody's
//! latency: each request is timed from its own send.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal};
use tokio::task::JoinSet;

use super::closed::Stop;
use super::source::{Phase, RequestSource};
use crate::case::request::MAX_TURNS;
use crate::case::{LoadMode, LoadSpec, PromptSpec, ThinkSpec, TurnsSpec};
use crate::client::{Generation, Role, Turn};
use crate::metrics::{RequestRecord, SessionEnd};

/// What the conversations of a load run are.
#[derive(Debug, Clone, Default)]
pub struct Conversations {
    /// The most turns (requests) a conversation may have, at least 1: conversation `c`'s
    /// requests are ids `c × turns` onwards ([`request_id`]).
    pub turns: u32,
    /// How many turns each conversation has (fixed, or drawn per conversation).
    pub count: TurnCount,
    /// Pause between an answer and the conversation's next turn.
    pub think_time: ThinkTime,
    /// The new user messages of turns 2 and after (`prompts.sessions.user_tokens` long);
    /// empty: they come from the measured pool.
    pub follow_ups: Vec<Generation>,
    /// Tokens of a later turn's new user message (to foresee a turn's context).
    pub user_tokens: u32,
    /// The model's context: a conversation whose next turn (its prompt and the output asked
    /// for) would not fit ends cleanly ([`SessionEnd::ContextFull`]). None: no check.
    pub max_context: Option<u32>,
    /// Seed of the turn counts and think times drawn.
    pub seed: u64,
    /// Conversations replayed from a dataset (ShareGPT), each as its turns in order:
    /// conversation `c` replays `replay[c % len]`. Empty: synthetic conversations.
    pub replay: Vec<Vec<ScriptedTurn>>,
}

/// One turn of a conversation replayed from a dataset.
#[derive(Debug, Clone)]
pub struct ScriptedTurn {
    /// The user's message as the dataset has it; its `max_tokens` is the length of the reply
    /// the dataset recorded for it (as vLLM's benchmark takes a ShareGPT reply's length).
    pub message: Generation,
    /// The message's length in tokens.
    pub tokens: u32,
}

/// Turns of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum TurnCount {
    /// Every conversation has `turns` ([`Conversations::turns`]).
    #[default]
    Fixed,
    /// As many as the replayed conversation has, up to `turns`
    /// ([`Conversations::replay`]).
    Replayed,
    /// Uniform in `[min, max]`, both included (a `load.profile`).
    Uniform {
        /// Fewest.
        min: u32,
        /// Most.
        max: u32,
    },
    /// `round(exp(N(mu, sigma)))`, clipped to `[min, max]`.
    LogNormal {
        /// Mean of the logarithm.
        mu: f64,
        /// Standard deviation of the logarithm.
        sigma: f64,
        /// Fewest.
        min: u32,
        /// Most.
        max: u32,
    },
}

/// Think time between an answer and the next turn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ThinkTime {
    /// The same pause every time.
    Fixed(Duration),
    /// Log-normal around `median` (σ of the logarithm `sigma`), clipped to `max`.
    LogNormal {
        /// Median pause.
        median: Duration,
        /// Standard deviation of the logarithm.
        sigma: f64,
        /// Longest pause.
        max: Duration,
    },
}

impl Default for ThinkTime {
    fn default() -> Self {
        ThinkTime::Fixed(Duration::ZERO)
    }
}

/// A generator of its own for each (conversation, turn, purpose): draws do not depend on
/// timing or on the order conversations run in.
fn rng(seed: u64, conversation: u64, turn: u32, purpose: u64) -> ChaCha8Rng {
    let mix = seed
        ^ conversation.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ u64::from(turn).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ purpose.wrapping_mul(0x1656_67B1_9E37_79F9);
    ChaCha8Rng::seed_from_u64(mix)
}

impl Conversations {
    /// The turns conversation `conversation` has: 1 to [`Conversations::turns`].
    pub fn turns_of(&self, conversation: u64) -> u32 {
        let top = self.turns.max(1);
        let drawn = match self.count {
            TurnCount::Fixed => top,
            TurnCount::Replayed => self
                .script(conversation)
                .map_or(1, |turns| u32::try_from(turns.len()).unwrap_or(u32::MAX)),
            TurnCount::Uniform { min, max } => {
                rng(self.seed, conversation, 0, 1).random_range(min.min(max)..=max)
            }
            TurnCount::LogNormal {
                mu,
                sigma,
                min,
                max,
            } => {
                let value = LogNormal::new(mu, sigma)
                    .map(|d| d.sample(&mut rng(self.seed, conversation, 0, 1)))
                    .unwrap_or(mu.exp());
                (value.round().clamp(1.0, f64::from(MAX_DRAWN)) as u32).clamp(min, max)
            }
        };
        drawn.clamp(1, top)
    }

    /// The pause after turn `turn`'s answer of conversation `conversation`.
    pub fn think_after(&self, conversation: u64, turn: u32) -> Duration {
        match self.think_time {
            ThinkTime::Fixed(pause) => pause,
            ThinkTime::LogNormal { median, sigma, max } => {
                let median_s = median.as_secs_f64();
                if median_s <= 0.0 {
                    return Duration::ZERO;
                }
                let drawn = LogNormal::new(median_s.ln(), sigma)
                    .map(|d| d.sample(&mut rng(self.seed, conversation, turn, 2)))
                    .unwrap_or(median_s);
                Duration::try_from_secs_f64(drawn).unwrap_or(max).min(max)
            }
        }
    }

    /// The turns conversation `conversation` replays, when the conversations are replayed.
    pub fn script(&self, conversation: u64) -> Option<&[ScriptedTurn]> {
        let n = self.replay.len() as u64;
        (n > 0).then(|| self.replay[(conversation % n) as usize].as_slice())
    }

    /// The replayed turn `turn` (from 1) of conversation `conversation`, if replayed.
    pub fn scripted(&self, conversation: u64, turn: u32) -> Option<&ScriptedTurn> {
        self.script(conversation)?
            .get(turn.checked_sub(1)? as usize)
    }

    /// Whether the turn after one whose prompt took `prompt_tokens` and whose answer
    /// `output_tokens` would not fit the context with a new message of `user_tokens` and
    /// `max_tokens` more to generate.
    pub fn next_turn_overflows(
        &self,
        prompt_tokens: u64,
        output_tokens: u64,
        user_tokens: u32,
        max_tokens: u32,
    ) -> bool {
        self.max_context.is_some_and(|context| {
            prompt_tokens + output_tokens + u64::from(user_tokens) + u64::from(max_tokens)
                > u64::from(context)
        })
    }

    /// Replays `replay`, conversations from a dataset, instead of synthetic ones (unchanged
    /// when it is empty): each conversation has the turns of its script, at most the fixed
    /// `prompts.sessions.turns` when the case gives one ([`MAX_TURNS`] otherwise).
    pub fn replaying(mut self, replay: Vec<Vec<ScriptedTurn>>, cap: Option<u32>) -> Conversations {
        if replay.is_empty() {
            return self;
        }
        let longest = replay.iter().map(Vec::len).max().unwrap_or(1);
        let longest = u32::try_from(longest).unwrap_or(u32::MAX);
        self.turns = longest.min(cap.unwrap_or(MAX_TURNS)).clamp(1, MAX_TURNS);
        self.count = TurnCount::Replayed;
        self.replay = replay;
        self
    }
}

impl Conversations {
    /// The conversations of a load run of `load` with `prompts` (`prompts.sessions`, and in
    /// sessions mode `load.profile`); `None` when the run has none. `isl` is the trial's
    /// (a later turn's user message is that long unless `user_tokens` is given); `follow_ups`
    /// the later turns' messages built for it.
    pub fn of_case(
        load: &LoadSpec,
        prompts: &PromptSpec,
        isl: u32,
        max_context: Option<u32>,
        follow_ups: Vec<Generation>,
    ) -> Option<Conversations> {
        let sessions = prompts.sessions;
        if sessions.is_none() && load.mode != LoadMode::Sessions {
            return None;
        }
        let turns = sessions.and_then(|s| s.turns);
        let (top, count) = match (turns, load.profile) {
            (Some(TurnsSpec::Fixed(n)), _) => (n, TurnCount::Fixed),
            (Some(TurnsSpec::LogNormal(d)), _) => {
                let (min, max) = (d.min.unwrap_or(1), d.max.unwrap_or(MAX_TURNS));
                let count = TurnCount::LogNormal {
                    mu: d.mu,
                    sigma: d.sigma,
                    min,
                    max,
                };
                (max, count)
            }
            (None, Some(profile)) => {
                let (min, max) = profile.turns();
                (max, TurnCount::Uniform { min, max })
            }
            (None, None) => (1, TurnCount::Fixed),
        };
        let think_time = match sessions.and_then(|s| s.think_time) {
            None => ThinkTime::default(),
            Some(ThinkSpec::Fixed(span)) => ThinkTime::Fixed(span.0),
            Some(ThinkSpec::LogNormal(d)) => ThinkTime::LogNormal {
                median: d.median.0,
                sigma: d.sigma,
                max: d.max.map_or(d.median.0.saturating_mul(10), |m| m.0),
            },
        };
        Some(Conversations {
            turns: top.max(1),
            count,
            think_time,
            follow_ups,
            user_tokens: sessions.and_then(|s| s.user_tokens).unwrap_or(isl),
            max_context,
            seed: load.seed,
            replay: Vec::new(),
        })
    }
}

/// A bound on a drawn count before clipping (a log-normal's tail is long).
const MAX_DRAWN: u32 = 1 << 20;

/// The request of a conversation's next turn: the history (alternating user messages and
/// answers) followed by the new user message `user`, which also gives the output length and
/// ending. The answer's text is kept, for the turn after.
pub fn next_turn(history: &[Turn], user: &Generation) -> Generation {
    let mut turns = history.to_vec();
    turns.push(Turn {
        role: Role::User,
        content: user.prompt.clone(),
    });
    let prompt = turns
        .iter()
        .map(|t| t.content.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    Generation {
        prompt,
        // One user message is the plain prompt: turn 1 is sent as every other request is.
        turns: if history.is_empty() {
            Vec::new()
        } else {
            turns
        },
        max_tokens: user.max_tokens,
        ending: user.ending.clone(),
        keep_text: true,
        tools: user.tools.clone(),
    }
}

/// Request id of turn `turn` (from 1) of conversation `conversation`: conversations number
/// their requests in blocks of `turns`, so a request's prompt does not depend on timing.
pub fn request_id(conversation: u64, turns: u32, turn: u32) -> u64 {
    conversation
        .saturating_mul(u64::from(turns))
        .saturating_add(u64::from(turn.saturating_sub(1)))
}

/// Runs `concurrency` workers, each holding one conversation at a time, until `stop`: at most
/// `stop.requests` requests (whole conversations of the source's turns while they fit) and
/// no turn sent after `stop.after` (a conversation under way then ends early). A failed turn
/// ends its conversation (there is no answer to carry on with). Returns the records
/// (unsorted) and the window start.
pub async fn drive(
    source: &Arc<RequestSource>,
    concurrency: u32,
    stop: Stop,
) -> (Vec<RequestRecord>, Instant) {
    let window_start = Instant::now();
    let Some(turns) = source.conversations().map(|c| c.turns.max(1)) else {
        return (Vec::new(), window_start);
    };
    let deadline = stop.after.map(|d| window_start + d);
    // This process's share of the run's conversations (all of them unless it is one worker
    // of many): local conversation `c` is the run's conversation `share.global(c)`.
    let share = source.share();
    let conversations = share.portion(stop.requests.div_ceil(u64::from(turns)));
    if conversations == 0 || concurrency == 0 {
        return (Vec::new(), window_start);
    }
    let next = Arc::new(AtomicU64::new(0));
    let workers = u64::from(concurrency.max(1)).min(conversations);
    let mut tasks = JoinSet::new();
    for _ in 0..workers {
        let next = Arc::clone(&next);
        let source = Arc::clone(source);
        tasks.spawn(async move {
            let mut mine = Vec::new();
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) || source.expired() {
                    break;
                }
                let local = next.fetch_add(1, Ordering::Relaxed);
                if local >= conversations {
                    break;
                }
                let conversation = share.global(local);
                let bounds = Bounds {
                    window_start,
                    deadline,
                    requests: stop.requests,
                };
                let opening = request_id(conversation, turns, 1);
                let mut turns_sent = Vec::new();
                converse(
                    &source,
                    conversation,
                    opening,
                    None,
                    bounds,
                    &mut turns_sent,
                )
                .await;
                for record in turns_sent {
                    mine.extend(source.keep(Phase::Measured, record).await);
                }
            }
            mine
        });
    }
    (super::join_all(tasks).await, window_start)
}

/// How far ahead of the first arrival the schedule starts, so setting up does not make the
/// first sessions late.
const LEAD: Duration = Duration::from_millis(5);

/// Sessions arriving on a schedule (`load.mode: sessions`): session `j` of `offsets` (this
/// process's share of the run's arrivals, local `j` being the run's session
/// `share.global(j)`) starts at its offset, whatever the server does, and runs its turns one
/// after the other. No session starts and no turn is sent after `duration` (a session under
/// way then ends, [`SessionEnd::Cut`]) nor after the cut-off. Arrivals are kept by the async
/// runtime's timer (millisecond resolution: sessions arrive seconds apart). Returns the
/// records (unsorted) and the window start.
pub async fn arrive(
    source: &Arc<RequestSource>,
    offsets: &[Duration],
    duration: Duration,
) -> (Vec<RequestRecord>, Instant) {
    let window_start = Instant::now() + LEAD;
    if source.conversations().is_none() {
        return (Vec::new(), window_start);
    }
    let deadline = window_start + duration;
    let share = source.share();
    let mut tasks = JoinSet::new();
    let mut records = Vec::new();
    for (local, offset) in offsets.iter().enumerate() {
        // Finished sessions are gathered as the next ones arrive, so a long run holds only
        // the sessions under way.
        while let Some(done) = tasks.try_join_next() {
            super::gather(done, &mut records);
        }
        let intended = window_start + *offset;
        if intended >= deadline {
            break;
        }
        let wake = source.cut_off().map_or(intended, |cut| intended.min(cut));
        tokio::time::sleep_until(wake.into()).await;
        if source.expired() {
            break;
        }
        let conversation = share.global(local as u64);
        let source = Arc::clone(source);
        let bounds = Bounds {
            window_start,
            deadline: Some(deadline),
            requests: u64::MAX,
        };
        tasks.spawn(async move {
            let mut turns_sent = Vec::new();
            // Each session opens with a prompt of its own: the measured pool holds one per
            // scheduled session.
            converse(
                &source,
                conversation,
                conversation,
                Some(intended),
                bounds,
                &mut turns_sent,
            )
            .await;
            let mut mine = Vec::new();
            for record in turns_sent {
                mine.extend(source.keep(Phase::Measured, record).await);
            }
            mine
        });
    }
    records.extend(super::join_all(tasks).await);
    (records, window_start)
}

/// What bounds a conversation's turns.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    /// The instant every record's `send_ms` counts from.
    window_start: Instant,
    /// No turn after it.
    deadline: Option<Instant>,
    /// No request id at or above it.
    requests: u64,
}

/// Runs one conversation, pushing one record per turn sent; the last one says how the
/// conversation ended. Turn 1 sends the measured pool's prompt `opening` (by index, cycled)
/// and counts its latency from `intended` when given (a scheduled arrival).
async fn converse(
    source: &RequestSource,
    conversation: u64,
    opening: u64,
    intended: Option<Instant>,
    bounds: Bounds,
    out: &mut Vec<RequestRecord>,
) {
    let Some(plan) = source.conversations() else {
        return;
    };
    let block = plan.turns.max(1);
    let turns = plan.turns_of(conversation);
    let mut history: Vec<Turn> = Vec::new();
    let mut end = SessionEnd::Completed;
    let first_record = out.len();
    for turn in 1..=turns {
        let id = request_id(conversation, block, turn);
        let past_duration = turn > 1 && bounds.deadline.is_some_and(|d| Instant::now() >= d);
        if id >= bounds.requests || past_duration || source.expired() {
            end = SessionEnd::Cut;
            break;
        }
        let scripted = plan.scripted(conversation, turn);
        let (user, user_tokens) = match scripted {
            Some(scripted) => (&scripted.message, scripted.tokens),
            None if turn == 1 => (source.user_message(opening, 1), plan.user_tokens),
            None => (source.user_message(id, turn), plan.user_tokens),
        };
        if turn > 1
            && let Some(last) = out.last()
        {
            let prompt = last.prompt_tokens.unwrap_or(0);
            let output = last.output_tokens.unwrap_or(0);
            if plan.next_turn_overflows(prompt, output, user_tokens, user.max_tokens) {
                end = SessionEnd::ContextFull;
                break;
            }
        }
        let request = next_turn(&history, user);
        let mut record = source
            .send_request(
                Phase::Measured,
                id,
                bounds.window_start,
                if turn == 1 { intended } else { None },
                &request,
            )
            .await;
        record.conversation = Some(conversation);
        record.turn = Some(turn);
        let answer = record.text.take().filter(|_| record.is_ok());
        out.push(record);
        let Some(answer) = answer else {
            end = SessionEnd::Failed;
            break;
        };
        history.push(Turn {
            role: Role::User,
            content: user.prompt.clone(),
        });
        history.push(Turn {
            role: Role::Assistant,
            content: answer,
        });
        let think = plan.think_after(conversation, turn);
        if turn < turns && !think.is_zero() {
            let mut until = Instant::now() + think;
            until = source.cut_off().map_or(until, |cut| until.min(cut));
            until = bounds.deadline.map_or(until, |d| until.min(d));
            tokio::time::sleep_until(until.into()).await;
        }
    }
    if out.len() > first_record
        && let Some(last) = out.last_mut()
    {
        last.session_end = Some(end);
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::case::Api;
    use crate::client::protocol::request_body;

    fn user(text: &str) -> Generation {
        Generation::exact(text.to_string(), 8)
    }

    fn history() -> Vec<Turn> {
        vec![
            Turn {
                role: Role::User,
                content: "first question".into(),
            },
            Turn {
                role: Role::Assistant,
                content: " first answer".into(),
            },
        ]
    }

    #[test]
    fn the_first_turn_is_a_plain_prompt() {
        let request = next_turn(&[], &user("hello there"));
        assert_eq!(request.prompt, "hello there");
        assert!(request.turns.is_empty());
        assert!(request.keep_text);
        assert_eq!(request.max_tokens, 8);
    }

    #[test]
    fn a_later_turn_carries_the_whole_conversation() {
        let request = next_turn(&history(), &user("second question"));
        let roles: Vec<Role> = request.turns.iter().map(|t| t.role).collect();
        assert_eq!(roles, [Role::User, Role::Assistant, Role::User]);
        assert_eq!(request.turns[1].content, " first answer");
        assert_eq!(request.turns[2].content, "second question");
        assert_eq!(
            request.prompt,
            "first question\n first answer\nsecond question"
        );
    }

    #[rstest]
    #[case(Api::Chat)]
    #[case(Api::Completions)]
    #[case(Api::LlamaCpp)]
    fn every_protocol_sends_the_history(#[case] api: Api) {
        let request = next_turn(&history(), &user("second question"));
        let (_, body) = request_body(api, "m", &request, true);
        let sent = match api {
            Api::Chat => body["messages"]
                .as_array()
                .expect("messages")
                .iter()
                .map(|m| format!("{}:{}", m["role"].as_str().unwrap_or(""), m["content"]))
                .collect::<Vec<_>>()
                .join("|"),
            Api::Completions | Api::LlamaCpp => body["prompt"].to_string(),
        };
        for part in ["first question", " first answer", "second question"] {
            assert!(sent.contains(part), "{api:?}: {sent}");
        }
        if api == Api::Chat {
            assert!(
                sent.starts_with("user:") && sent.contains("|assistant:"),
                "{sent}"
            );
        }
    }

    #[rstest]
    #[case(0, 3, 1, 0)]
    #[case(0, 3, 3, 2)]
    #[case(2, 3, 1, 6)]
    #[case(5, 1, 1, 5)]
    fn request_ids_come_in_blocks_of_turns(
        #[case] conversation: u64,
        #[case] turns: u32,
        #[case] turn: u32,
        #[case] id: u64,
    ) {
        assert_eq!(request_id(conversation, turns, turn), id);
    }

    fn plan(count: TurnCount, turns: u32) -> Conversations {
        Conversations {
            turns,
            count,
            seed: 7,
            ..Conversations::default()
        }
    }

    #[rstest]
    #[case::one_shot(crate::case::SessionProfile::OneShot, 1, 1)]
    #[case::short(crate::case::SessionProfile::Short, 3, 5)]
    #[case::long(crate::case::SessionProfile::Long, 8, 15)]
    fn a_profile_draws_every_count_of_its_range_and_no_other(
        #[case] profile: crate::case::SessionProfile,
        #[case] min: u32,
        #[case] max: u32,
    ) {
        let load = LoadSpec {
            mode: LoadMode::Sessions,
            profile: Some(profile),
            seed: 7,
            ..LoadSpec::default()
        };
        let conversations =
            Conversations::of_case(&load, &PromptSpec::default(), 64, None, Vec::new())
                .expect("sessions mode has conversations");
        assert_eq!(
            conversations.turns, max,
            "ids come in blocks of the most turns"
        );
        let drawn: std::collections::BTreeSet<u32> =
            (0..2_000).map(|c| conversations.turns_of(c)).collect();
        assert_eq!(drawn, (min..=max).collect(), "{profile:?}");
        assert_eq!(
            conversations.turns_of(42),
            conversations.turns_of(42),
            "a conversation's count is its own, whenever it runs"
        );
    }

    #[test]
    fn a_log_normal_count_has_its_median_and_stays_within_its_bounds() {
        let count = TurnCount::LogNormal {
            mu: 6f64.ln(),
            sigma: 0.8,
            min: 2,
            max: 20,
        };
        let conversations = plan(count, 20);
        let mut drawn: Vec<u32> = (0..4_001).map(|c| conversations.turns_of(c)).collect();
        assert!(drawn.iter().all(|t| (2..=20).contains(t)));
        drawn.sort_unstable();
        assert_eq!(drawn[2_000], 6, "the median is exp(mu)");
        assert!(
            drawn.contains(&2) && drawn.contains(&20),
            "both clips are reached"
        );
    }

    #[rstest]
    #[case::as_long_as_the_longest(None, 4, [2, 4, 2])]
    #[case::capped(Some(3), 3, [2, 3, 2])]
    fn replayed_conversations_have_their_own_turns(
        #[case] cap: Option<u32>,
        #[case] block: u32,
        #[case] turns: [u32; 3],
    ) {
        let script = |lengths: &[u32]| -> Vec<ScriptedTurn> {
            lengths
                .iter()
                .map(|&tokens| ScriptedTurn {
                    message: user(&"w ".repeat(tokens as usize)),
                    tokens,
                })
                .collect()
        };
        let conversations =
            plan(TurnCount::Fixed, 1).replaying(vec![script(&[1, 2]), script(&[3, 4, 5, 6])], cap);
        assert_eq!(
            conversations.turns, block,
            "requests a conversation may take"
        );
        assert_eq!(
            (0..3)
                .map(|c| conversations.turns_of(c))
                .collect::<Vec<_>>(),
            turns
        );
        assert_eq!(conversations.scripted(1, 2).map(|t| t.tokens), Some(4));
        assert_eq!(
            conversations.scripted(2, 1).map(|t| t.tokens),
            Some(1),
            "cycled"
        );
        assert!(conversations.scripted(0, 3).is_none());
        assert!(conversations.scripted(0, 0).is_none());
        let synthetic = plan(TurnCount::Fixed, 5).replaying(Vec::new(), None);
        assert_eq!((synthetic.turns, synthetic.count), (5, TurnCount::Fixed));
        assert!(synthetic.scripted(0, 1).is_none());
    }

    #[test]
    fn a_log_normal_think_time_has_its_median_and_is_clipped() {
        let conversations = Conversations {
            think_time: ThinkTime::LogNormal {
                median: Duration::from_millis(100),
                sigma: 1.0,
                max: Duration::from_millis(400),
            },
            ..plan(TurnCount::Fixed, 3)
        };
        let mut drawn: Vec<Duration> = (0..4_001)
            .map(|c| conversations.think_after(c, 1))
            .collect();
        assert!(drawn.iter().all(|d| *d <= Duration::from_millis(400)));
        assert!(drawn.contains(&Duration::from_millis(400)));
        drawn.sort_unstable();
        let median = drawn[2_000].as_secs_f64();
        assert!((0.09..0.11).contains(&median), "{median}");
        assert_ne!(
            conversations.think_after(1, 1),
            conversations.think_after(1, 2),
            "each turn draws its own"
        );
    }

    #[rstest]
    #[case(None, 1_000, false)]
    #[case(Some(160), 140, false)]
    #[case(Some(160), 145, true)]
    fn a_turn_that_would_not_fit_the_context_is_foreseen(
        #[case] max_context: Option<u32>,
        #[case] prompt_tokens: u64,
        #[case] overflows: bool,
    ) {
        // The next prompt adds the answer (4) and an 8-token message, and asks for 4 more.
        let conversations = Conversations {
            user_tokens: 8,
            max_context,
            ..plan(TurnCount::Fixed, 8)
        };
        assert_eq!(
            conversations.next_turn_overflows(prompt_tokens, 4, conversations.user_tokens, 4),
            overflows
        );
    }

    #[test]
    fn only_runs_with_conversations_have_them() {
        let closed = LoadSpec::default();
        assert!(
            Conversations::of_case(&closed, &PromptSpec::default(), 64, None, Vec::new()).is_none()
        );
        let prompts: PromptSpec = crate::case::load::parse_yaml(
            std::path::Path::new("p.yaml"),
            "sessions: { turns: { dist: lognormal, mu: 1.5, sigma: 0.4, max: 12 }, think_time: { dist: lognormal, median: 2s, sigma: 0.5 } }\n",
        )
        .expect("parses");
        let load = LoadSpec {
            mode: LoadMode::Sessions,
            ..LoadSpec::default()
        };
        let conversations =
            Conversations::of_case(&load, &prompts, 64, Some(4096), Vec::new()).expect("some");
        assert_eq!(conversations.turns, 12);
        assert_eq!(conversations.user_tokens, 64, "the ISL without user_tokens");
        assert_eq!(
            conversations.think_time,
            ThinkTime::LogNormal {
                median: Duration::from_secs(2),
                sigma: 0.5,
                max: Duration::from_secs(20),
            }
        );
        assert_eq!(prompts.sessions_suffix(), "_turnsln1.5s0.4");
    }
}
