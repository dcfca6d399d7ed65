//! Loglikelihood multiple choice as lm-evaluation-harness 0.4.13 asks and scores it with its
//! `local-completions` model: the request body of one (context, continuation) pair, the
//! continuation's summed logprob and greediness read from the echoed prompt, and `acc` /
//! `acc_norm` over a question's choices (`ConfigurableTask.process_results`).
//!
//! lm-eval sends the prompt as token ids and knows the context's length in tokens from its own
//! tokenizer. A harness that has no tokenizer of the model sends the text (lm-eval's
//! `tokenized_requests=False`) and finds the context's length from the echoed tokens'
//! `text_offset`: the tokens that start before the continuation (see [`context_tokens`]).
//! From there the sum and the greediness are lm-eval's `parse_logprobs` line by line.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::filter::py_strip;

/// The seed lm-eval puts in every request (`TemplateAPI`'s `seed` default).
pub const SEED: u64 = 1234;

/// lm-eval's `_encode_pair` whitespace rule: white space at the end of the context moves to
/// the start of the continuation (so `"Answer: "` + `"A"` is asked as `"Answer:"` + `" A"`).
pub fn split_pair(context: &str, continuation: &str) -> (String, String) {
    let kept = context.trim_end_matches(|c: char| py_strip(&c.to_string()).is_empty());
    let moved = &context[kept.len()..];
    (kept.to_string(), format!("{moved}{continuation}"))
}

/// The body lm-eval's `local-completions` `_create_payload(generate=False)` builds for one
/// pair, with the prompt as text: the context and the continuation joined, echoed back with
/// the logprob of every token and one alternative per token, one token generated.
pub fn request_body(model: &str, context: &str, continuation: &str) -> Value {
    json!({
        "model": model,
        "prompt": format!("{context}{continuation}"),
        "temperature": 0,
        "max_tokens": 1,
        "logprobs": 1,
        "seed": SEED,
        "echo": true,
    })
}

/// Why a response carries no loglikelihood of the continuation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unsupported {
    /// The response is not a completions response with choices.
    #[error("the response has no `choices`")]
    NoChoices,
    /// A field of `choices[0].logprobs` is missing or not a list (or `logprobs` itself).
    #[error(
        "the response has no `{0}`: the server does not answer `echo` with `logprobs` on \
         /v1/completions (lm-eval's loglikelihood needs both, as vLLM and SGLang answer them)"
    )]
    Missing(&'static str),
    /// The lists of `logprobs` differ in length, or hold values of the wrong type.
    #[error("`choices[0].logprobs` is malformed: {0}")]
    Malformed(String),
    /// The echoed tokens do not hold the continuation after a non-empty context.
    #[error(
        "the echoed prompt does not hold the continuation ({tokens} tokens echoed, the \
         continuation is {chars} characters at their end): did the server echo the prompt?"
    )]
    NoContinuation {
        /// Tokens in the response.
        tokens: usize,
        /// Characters of the continuation.
        chars: usize,
    },
    /// A token of the continuation has no logprob, or no alternatives to compare it with.
    #[error("token {0} of the continuation has no logprob or no `top_logprobs`")]
    NullLogprob(usize),
}

/// The `logprobs` object of a completions choice (OpenAI's legacy shape, as vLLM answers it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logprobs {
    /// The tokens' text.
    pub tokens: Vec<String>,
    /// Each token's logprob (`null` for the first echoed token).
    pub token_logprobs: Vec<Option<f64>>,
    /// The most likely tokens at each position with their logprobs (`null` for the first).
    pub top_logprobs: Vec<Option<BTreeMap<String, f64>>>,
    /// Each token's offset in the text, in characters.
    pub text_offset: Vec<u64>,
}

/// The loglikelihood of one continuation: lm-eval's `(logprob, is_greedy)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Loglikelihood {
    /// Summed logprob of the continuation's tokens.
    pub logprob: f64,
    /// Whether each of its tokens was the most likely one.
    pub is_greedy: bool,
    /// Echoed tokens of the context (lm-eval's `ctxlen`).
    pub ctxlen: usize,
}

/// Reads the `logprobs` of the first choice (by `index`) of a completions response.
pub fn logprobs_of(response: &Value) -> Result<Logprobs, Unsupported> {
    let choices = response["choices"]
        .as_array()
        .filter(|c| !c.is_empty())
        .ok_or(Unsupported::NoChoices)?;
    let choice = choices
        .iter()
        .min_by_key(|c| c["index"].as_u64().unwrap_or(0))
        .ok_or(Unsupported::NoChoices)?;
    let logprobs = choice
        .get("logprobs")
        .filter(|l| l.is_object())
        .ok_or(Unsupported::Missing("logprobs"))?;
    for key in ["tokens", "token_logprobs", "top_logprobs", "text_offset"] {
        if !logprobs[key].is_array() {
            return Err(Unsupported::Missing(match key {
                "tokens" => "tokens",
                "token_logprobs" => "token_logprobs",
                "top_logprobs" => "top_logprobs",
                _ => "text_offset",
            }));
        }
    }
    let parsed: Logprobs = serde_json::from_value(logprobs.clone())
        .map_err(|e| Unsupported::Malformed(e.to_string()))?;
    let n = parsed.token_logprobs.len();
    if [
        parsed.tokens.len(),
        parsed.top_logprobs.len(),
        parsed.text_offset.len(),
    ]
    .iter()
    .any(|&len| len != n)
    {
        return Err(Unsupported::Malformed(format!(
            "`tokens`, `token_logprobs`, `top_logprobs` and `text_offset` hold {}, {n}, {} and \
             {} entries",
            parsed.tokens.len(),
            parsed.top_logprobs.len(),
            parsed.text_offset.len()
        )));
    }
    Ok(parsed)
}

/// lm-eval's `ctxlen` from the echoed offsets: the tokens that start before the continuation.
/// The last token is the generated one (lm-eval asks `max_tokens: 1` and drops it), so its
/// offset is the end of the echoed prompt, whatever a BOS token's text shifted it by; the
/// continuation starts its length in characters before that. A token that straddles the
/// boundary counts as context, as it does when the context alone is tokenized.
pub fn context_tokens(logprobs: &Logprobs, continuation: &str) -> Result<usize, Unsupported> {
    let n = logprobs.text_offset.len();
    let chars = continuation.chars().count();
    let no_continuation = Unsupported::NoContinuation { tokens: n, chars };
    let (&end, prompt) = logprobs
        .text_offset
        .split_last()
        .ok_or_else(|| no_continuation.clone())?;
    let start = end
        .checked_sub(chars as u64)
        .ok_or_else(|| no_continuation.clone())?;
    let ctxlen = prompt.iter().take_while(|&&offset| offset < start).count();
    if ctxlen == 0 || ctxlen >= prompt.len() {
        return Err(no_continuation);
    }
    Ok(ctxlen)
}

/// lm-eval's `LocalCompletionsAPI.parse_logprobs` for one choice: the sum of
/// `token_logprobs[ctxlen:-1]` (Python's `sum`, left to right) and whether every one of them
/// equals the largest of its `top_logprobs`.
pub fn parse_logprobs(logprobs: &Logprobs, ctxlen: usize) -> Result<Loglikelihood, Unsupported> {
    let end = logprobs.token_logprobs.len().saturating_sub(1);
    let tokens = logprobs.token_logprobs.get(ctxlen..end).unwrap_or_default();
    let mut logprob = 0.0;
    for (i, token) in tokens.iter().enumerate() {
        logprob += token.ok_or(Unsupported::NullLogprob(i))?;
    }
    let tops = logprobs.top_logprobs.get(ctxlen..end).unwrap_or_default();
    let mut is_greedy = true;
    for (i, (token, top)) in tokens.iter().zip(tops).enumerate() {
        let top = top
            .as_ref()
            .and_then(|top| top.values().copied().reduce(python_max))
            .ok_or(Unsupported::NullLogprob(i))?;
        // lm-eval stops comparing at the first token that is not the greedy one.
        if *token != Some(top) {
            is_greedy = false;
            break;
        }
    }
    Ok(Loglikelihood {
        logprob,
        is_greedy,
        ctxlen,
    })
}

/// Python's `max` of two floats in order: the later one wins only when strictly greater.
fn python_max(a: f64, b: f64) -> f64 {
    if b > a { b } else { a }
}

/// The continuation's loglikelihood in a completions response to [`request_body`].
pub fn loglikelihood(response: &Value, continuation: &str) -> Result<Loglikelihood, Unsupported> {
    let logprobs = logprobs_of(response)?;
    let ctxlen = context_tokens(&logprobs, continuation)?;
    parse_logprobs(&logprobs, ctxlen)
}

/// What `process_results` of a `multiple_choice` task makes of one question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The choice of the largest loglikelihood (the first of equals).
    pub pred: usize,
    /// The choice of the largest loglikelihood per character of the choice.
    pub pred_norm: usize,
    /// `pred` is the gold choice.
    pub acc: bool,
    /// `pred_norm` is the gold choice.
    pub acc_norm: bool,
}

/// lm-eval's `process_results` for `multiple_choice`: `acc` is the argmax of the
/// loglikelihoods, `acc_norm` the argmax of each divided by its choice's length in characters
/// (`len(choice)`, without the target delimiter), both `np.argmax` (the first maximum; a NaN
/// wins). `gold` outside the choices scores 0 on both, as lm-eval's `-100`.
pub fn decide(lls: &[f64], choices: &[String], gold: usize) -> Decision {
    let norm: Vec<f64> = lls
        .iter()
        .zip(choices)
        .map(|(ll, choice)| ll / choice.chars().count() as f64)
        .collect();
    let pred = argmax(lls);
    let pred_norm = argmax(&norm);
    Decision {
        pred,
        pred_norm,
        acc: gold < choices.len() && pred == gold,
        acc_norm: gold < choices.len() && pred_norm == gold,
    }
}

/// `np.argmax`: the index of the first maximum, or of the first NaN.
fn argmax(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, &value) in values.iter().enumerate() {
        if value.is_nan() {
            return i;
        }
        if value > values[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case("Answer:", " A", "Answer:", " A")]
    #[case("Answer: ", "A", "Answer:", " A")]
    #[case("Answer:\n \t", "A", "Answer:", "\n \tA")]
    #[case("x", "", "x", "")]
    fn trailing_white_space_moves_to_the_continuation(
        #[case] context: &str,
        #[case] continuation: &str,
        #[case] kept: &str,
        #[case] moved: &str,
    ) {
        assert_eq!(
            split_pair(context, continuation),
            (kept.to_string(), moved.to_string())
        );
    }

    #[test]
    fn the_body_is_lm_evals_with_a_text_prompt() {
        assert_eq!(
            request_body("m", "Q\nAnswer:", " B"),
            json!({"model": "m", "prompt": "Q\nAnswer: B", "temperature": 0, "max_tokens": 1,
                   "logprobs": 1, "seed": 1234, "echo": true})
        );
    }

    fn response(tokens: &[&str], lps: &[Option<f64>], greedy: &[bool]) -> Value {
        let mut offset = 0;
        let mut offsets = Vec::new();
        for t in tokens {
            offsets.push(offset);
            offset += t.chars().count();
        }
        let top: Vec<Value> = lps
            .iter()
            .zip(greedy)
            .zip(tokens)
            .map(|((lp, &g), t)| match lp {
                None => Value::Null,
                Some(lp) => {
                    let mut top = serde_json::Map::new();
                    top.insert(t.to_string(), json!(lp));
                    if !g {
                        top.insert("other".into(), json!(lp + 1.0));
                    }
                    Value::Object(top)
                }
            })
            .collect();
        json!({"choices": [{"index": 0, "text": tokens.concat(), "logprobs": {
            "tokens": tokens, "token_logprobs": lps, "top_logprobs": top, "text_offset": offsets}}]})
    }

    #[test]
    fn the_continuation_is_summed_without_the_generated_token() {
        let r = response(
            &["Q", ":", " Pa", "ris", " tok0"],
            &[None, Some(-1.0), Some(-0.25), Some(-0.5), Some(-9.0)],
            &[true, true, true, false, false],
        );
        let ll = loglikelihood(&r, " Paris").expect("supported");
        assert_eq!(
            ll,
            Loglikelihood {
                logprob: -0.75,
                is_greedy: false,
                ctxlen: 2
            }
        );
        // A token that straddles the boundary is context.
        let ll = loglikelihood(&r, "ris").expect("supported");
        assert_eq!((ll.ctxlen, ll.logprob, ll.is_greedy), (3, -0.5, false));
    }

    #[test]
    fn a_bos_token_shifts_every_offset_alike() {
        let mut r = response(
            &["<s>", "Q:", " A", " x"],
            &[None, Some(-1.0), Some(-0.5), Some(-2.0)],
            &[true; 4],
        );
        assert_eq!(
            loglikelihood(&r, " A").expect("supported"),
            Loglikelihood {
                logprob: -0.5,
                is_greedy: true,
                ctxlen: 2
            }
        );
        r["choices"][0]["logprobs"]["text_offset"] = json!([0, 0, 2, 4]);
        assert_eq!(loglikelihood(&r, " A").map(|l| l.ctxlen), Ok(2));
    }

    #[rstest]
    #[case::no_choices(json!({"error": "x"}), "no `choices`")]
    #[case::null_logprobs(json!({"choices": [{"index": 0, "text": "x", "logprobs": null}]}), "no `logprobs`")]
    #[case::no_offsets(json!({"choices": [{"index": 0, "logprobs": {"tokens": ["a"], "token_logprobs": [null], "top_logprobs": [null]}}]}), "no `text_offset`")]
    #[case::chat_shape(json!({"choices": [{"index": 0, "logprobs": {"content": []}}]}), "no `tokens`")]
    #[case::ragged(json!({"choices": [{"index": 0, "logprobs": {"tokens": ["a", "b"], "token_logprobs": [null], "top_logprobs": [null], "text_offset": [0]}}]}), "hold 2, 1, 1 and 1 entries")]
    #[case::not_echoed(json!({"choices": [{"index": 0, "logprobs": {"tokens": [" tok0"], "token_logprobs": [-1.0], "top_logprobs": [{" tok0": -1.0}], "text_offset": [0]}}]}), "did the server echo the prompt?")]
    fn unsupported_responses_say_why(#[case] body: Value, #[case] message: &str) {
        let error = loglikelihood(&body, " A").expect_err("unsupported");
        assert!(error.to_string().contains(message), "{error}");
    }

    #[test]
    fn null_logprobs_in_the_continuation_are_refused() {
        let r = response(&["Q:", " A", " x"], &[None, None, Some(-1.0)], &[true; 3]);
        assert_eq!(loglikelihood(&r, " A"), Err(Unsupported::NullLogprob(0)));
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[rstest]
    #[case::clear(&[-3.0, -0.5, -2.0], &["A", "B", "C"], 1, (1, 1, true, true))]
    #[case::tie_takes_the_first(&[-1.0, -1.0], &["A", "B"], 1, (0, 0, false, false))]
    #[case::norm_disagrees(&[-4.0, -3.5], &["Paris", "Rome"], 0, (1, 0, false, true))]
    #[case::gold_out_of_range(&[-1.0, -2.0], &["A", "B"], 2, (0, 0, false, false))]
    #[case::nan_wins(&[-1.0, f64::NAN], &["A", "B"], 1, (1, 1, true, true))]
    #[case::characters_not_bytes(&[-2.0, -2.5], &["é", "ab"], 1, (0, 1, false, true))]
    fn decisions_are_lm_evals(
        #[case] lls: &[f64],
        #[case] choices: &[&str],
        #[case] gold: usize,
        #[case] expected: (usize, usize, bool, bool),
    ) {
        let d = decide(lls, &strings(choices), gold);
        assert_eq!((d.pred, d.pred_norm, d.acc, d.acc_norm), expected);
    }
}
