//! Multi-turn conversations (`prompts.sessions`): a closed loop whose workers each hold a
//! conversation at a time. Turn 1 sends a prompt of the trial's ISL; turn k sends the whole
//! conversation so far — every earlier user message and the model's actual answer to it —
//! then a new user message. Chat endpoints get it as messages; completions endpoints as the
//! texts joined by newlines. A think time between an answer and the next turn is nobody's
//! latency: each request is timed from its own send.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::closed::Stop;
use super::source::{Phase, RequestSource};
use crate::client::{Generation, Role, Turn};
use crate::metrics::RequestRecord;

/// What the conversations of a load run are.
#[derive(Debug, Clone, Default)]
pub struct Conversations {
    /// Turns (requests) per conversation, at least 1.
    pub turns: u32,
    /// Pause between an answer and the conversation's next turn.
    pub think_time: Duration,
    /// The new user messages of turns 2 and after (`prompts.sessions.user_tokens` long);
    /// empty: they come from the measured pool.
    pub follow_ups: Vec<Generation>,
}

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
                converse(
                    &source,
                    conversation,
                    window_start,
                    deadline,
                    stop,
                    &mut mine,
                )
                .await;
            }
            mine
        });
    }
    (super::join_all(tasks).await, window_start)
}

/// Runs one conversation, pushing one record per turn sent.
async fn converse(
    source: &RequestSource,
    conversation: u64,
    window_start: Instant,
    deadline: Option<Instant>,
    stop: Stop,
    out: &mut Vec<RequestRecord>,
) {
    let Some(plan) = source.conversations() else {
        return;
    };
    let turns = plan.turns.max(1);
    let mut history: Vec<Turn> = Vec::new();
    for turn in 1..=turns {
        let id = request_id(conversation, turns, turn);
        let past_duration = turn > 1 && deadline.is_some_and(|d| Instant::now() >= d);
        if id >= stop.requests || past_duration || source.expired() {
            break;
        }
        let user = source.user_message(id, turn);
        let request = next_turn(&history, user);
        let mut record = source
            .send_request(Phase::Measured, id, window_start, None, &request)
            .await;
        record.conversation = Some(conversation);
        record.turn = Some(turn);
        let answer = record.text.take().filter(|_| record.is_ok());
        out.push(record);
        let Some(answer) = answer else {
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
        if turn < turns && !plan.think_time.is_zero() {
            let until = Instant::now() + plan.think_time;
            let until = source.cut_off().map_or(until, |cut| until.min(cut));
            tokio::time::sleep_until(until.into()).await;
        }
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
}
