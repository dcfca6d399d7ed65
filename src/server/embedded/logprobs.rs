//! `echo` with `logprobs` on `/v1/completions`, as vLLM answers lm-eval's loglikelihood
//! requests: every prompt token echoed with its logprob, its top alternatives and its offset,
//! then the generated tokens.
//!
//! The prompt is tokenized as answer mode generates (each word with the white space before it).
//! Its first token has no logprob (`null`, as vLLM's). When the prompt is a known question
//! followed by a continuation, the server prefers the reply it would generate for the question
//! (the right one with the answer mode's chance, else the wrong one): a continuation that is
//! that reply gets greedy tokens of logprob −0.01 to −0.11, any other continuation tokens of
//! −3 to −5 with a likelier alternative. Every other token gets −0.5 to −2.5 and is greedy.
//! The values are fixed by the answer mode's seed and the token's text, so the same prompt
//! always gets the same answer.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::answers::{Answerer, Output, pieces, unit_hash};

/// The alternative offered beside a continuation token the server does not prefer.
const ALTERNATIVE: &str = " the";
/// Its logprob (likelier than any token it stands beside).
const ALTERNATIVE_LOGPROB: f64 = -0.5;
/// The logprob of each generated token.
const GENERATED_LOGPROB: f64 = -1.0;

/// The `logprobs` object of a completions choice that echoes `prompt` and then `generated`.
pub fn echo(answerer: &Answerer, prompt: &str, generated: &Output, in_flight: usize) -> Value {
    let seed = answerer.seed();
    let preferred = answerer.preferred_continuation(prompt, in_flight);
    let mut tokens = Vec::new();
    let mut token_logprobs = Vec::new();
    let mut top_logprobs = Vec::new();
    let mut text_offset = Vec::new();
    let mut offset = 0usize;
    let mut byte = 0usize;
    let mut push = |token: String, logprob: Option<f64>, alternative: bool| {
        let top = logprob.map(|logprob| {
            let mut top = BTreeMap::from([(token.clone(), logprob)]);
            if alternative && token != ALTERNATIVE {
                top.insert(ALTERNATIVE.to_string(), ALTERNATIVE_LOGPROB);
            }
            top
        });
        text_offset.push(offset);
        offset += token.chars().count();
        tokens.push(token);
        token_logprobs.push(logprob);
        top_logprobs.push(top);
    };
    for (i, piece) in pieces(prompt).into_iter().enumerate() {
        let hash = spread(unit_hash(seed, piece.as_bytes()));
        let in_continuation = preferred.as_ref().filter(|(end, _)| byte >= *end);
        byte += piece.len();
        let (logprob, alternative) = match in_continuation {
            _ if i == 0 => (None, false),
            Some((_, true)) => (Some(-(0.01 + 0.1 * hash)), false),
            Some((_, false)) => (Some(-(3.0 + 2.0 * hash)), true),
            None => (Some(-(0.5 + 2.0 * hash)), false),
        };
        push(piece, logprob, alternative);
    }
    let generated_tokens = generated.tokens() as usize;
    for j in 0..generated_tokens {
        push(generated.text(j, j + 1), Some(GENERATED_LOGPROB), false);
    }
    json!({
        "tokens": tokens,
        "token_logprobs": token_logprobs,
        "top_logprobs": top_logprobs,
        "text_offset": text_offset,
    })
}

/// A number in [0, 1) from another, its bits mixed (SplitMix64's finalizer): tokens that
/// differ in one letter get unrelated logprobs.
fn spread(unit: f64) -> f64 {
    let mut z = (unit * (1u64 << 53) as f64) as u64;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::accuracy::loglik;
    use crate::case::{AnswerSpec, CorrectRate};
    use crate::server::embedded::answers::AnswerKey;

    fn answerer(correct: f64) -> Answerer {
        let key = AnswerKey::new([(
            "Q: capital of France?\nA. Rome\nB. Paris\nAnswer:".to_string(),
            "B".to_string(),
            "A".to_string(),
        )]);
        Answerer::new(
            Arc::new(key),
            AnswerSpec {
                correct: CorrectRate::Fixed(correct),
                ..AnswerSpec::default()
            },
        )
    }

    fn ask(answerer: &Answerer, continuation: &str) -> loglik::Loglikelihood {
        let prompt = format!("Q: capital of France?\nA. Rome\nB. Paris\nAnswer:{continuation}");
        let response = json!({"choices": [{"index": 0, "logprobs":
            echo(answerer, &prompt, &Output::Filler { tokens: 1 }, 1)}]});
        loglik::loglikelihood(&response, continuation).expect("echoed")
    }

    #[test]
    fn the_reply_it_would_give_is_the_likeliest_continuation() {
        let right = answerer(1.0);
        let (a, b) = (ask(&right, " A"), ask(&right, " B"));
        assert!(b.logprob > a.logprob, "{a:?} {b:?}");
        assert!(b.is_greedy && !a.is_greedy);
        assert!((-0.11..=-0.01).contains(&b.logprob), "{b:?}");
        assert!((-5.0..=-3.0).contains(&a.logprob), "{a:?}");
        // Never right: the wrong reply is preferred.
        let wrong = answerer(0.0);
        assert!(ask(&wrong, " A").logprob > ask(&wrong, " B").logprob);
    }

    #[test]
    fn echoed_tokens_join_back_into_the_prompt_and_the_generated_text() {
        let value = echo(
            &answerer(1.0),
            "Q: x\nAnswer: B",
            &Output::Filler { tokens: 2 },
            1,
        );
        let tokens: Vec<&str> = value["tokens"]
            .as_array()
            .expect("tokens")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(tokens.concat(), "Q: x\nAnswer: B tok0 tok1");
        assert_eq!(value["text_offset"], json!([0, 2, 4, 12, 14, 19]));
        assert_eq!(value["token_logprobs"][0], Value::Null);
        assert_eq!(value["top_logprobs"][0], Value::Null);
        // The same prompt always gets the same answer.
        assert_eq!(
            value,
            echo(
                &answerer(1.0),
                "Q: x\nAnswer: B",
                &Output::Filler { tokens: 2 },
                1
            )
        );
    }
}
