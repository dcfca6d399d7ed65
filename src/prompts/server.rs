//! Counting tokens with the server's own `/tokenize` endpoint, in the vLLM/SGLang form or the
//! llama.cpp form, whichever the server understands.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::OnceCell;

use super::PromptError;
use super::pool::WordPool;

/// How long one `/tokenize` request may take.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Characters of an unexpected body quoted in errors.
const EXCERPT: usize = 200;

/// The request shapes of `/tokenize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// `{"model","prompt","add_special_tokens":false}` → `{"count","tokens"}` (vLLM, SGLang).
    Vllm = 1,
    /// `{"content","add_special":false}` → `{"tokens"}` (llama.cpp).
    Llama = 2,
}

/// What one form of request got back.
enum Answer {
    /// The token count.
    Count(u32),
    /// The server did not understand this form; why, for the error if no form works.
    NotUnderstood(String),
}

/// A `/tokenize` endpoint, remembering which request form it understands.
#[derive(Clone, Debug)]
pub struct ServerTokenizer {
    http: reqwest::Client,
    url: String,
    model: String,
    /// 0 until a form worked, then that [`Form`].
    form: Arc<AtomicU8>,
    pool: Arc<OnceCell<Arc<WordPool>>>,
}

impl ServerTokenizer {
    pub(crate) fn new(http: reqwest::Client, base_url: &str, model: &str) -> ServerTokenizer {
        ServerTokenizer {
            http,
            url: format!("{}/tokenize", base_url.trim_end_matches('/')),
            model: model.to_string(),
            form: Arc::default(),
            pool: Arc::default(),
        }
    }

    pub(crate) fn pool_cell(&self) -> &OnceCell<Arc<WordPool>> {
        &self.pool
    }

    pub(crate) async fn count(&self, text: &str) -> Result<u32, PromptError> {
        let known = match self.form.load(Ordering::Relaxed) {
            1 => Some(Form::Vllm),
            2 => Some(Form::Llama),
            _ => None,
        };
        if let Some(form) = known {
            return match self.ask(form, text).await? {
                Answer::Count(n) => Ok(n),
                Answer::NotUnderstood(why) => Err(self.error(why)),
            };
        }
        let vllm = match self.ask(Form::Vllm, text).await? {
            Answer::Count(n) => return Ok(self.remember(Form::Vllm, n)),
            Answer::NotUnderstood(why) => why,
        };
        match self.ask(Form::Llama, text).await? {
            Answer::Count(n) => Ok(self.remember(Form::Llama, n)),
            Answer::NotUnderstood(llama) => Err(self.error(format!(
                "neither request form was understood (vLLM form: {vllm}; llama.cpp form: {llama})"
            ))),
        }
    }

    fn remember(&self, form: Form, n: u32) -> u32 {
        self.form.store(form as u8, Ordering::Relaxed);
        n
    }

    fn error(&self, message: String) -> PromptError {
        PromptError::Server {
            url: self.url.clone(),
            message,
        }
    }

    async fn ask(&self, form: Form, text: &str) -> Result<Answer, PromptError> {
        let body = match form {
            Form::Vllm => json!({"model": self.model, "prompt": text, "add_special_tokens": false}),
            Form::Llama => json!({"content": text, "add_special": false}),
        };
        let response = self
            .http
            .post(&self.url)
            .timeout(TIMEOUT)
            .json(&body)
            .send()
            .await
            .map_err(|e| self.error(format!("request failed: {e}")))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.error(format!("reading the answer failed: {e}")))?;
        let excerpt = || excerpt(&bytes);
        if status.is_client_error() {
            return Ok(Answer::NotUnderstood(format!(
                "HTTP {status}: {}",
                excerpt()
            )));
        }
        if !status.is_success() {
            return Err(self.error(format!("HTTP {status}: {}", excerpt())));
        }
        let Ok(value) = serde_json::from_slice::<Value>(&bytes) else {
            return Ok(Answer::NotUnderstood(format!(
                "answer is not JSON: {}",
                excerpt()
            )));
        };
        Ok(read_count(form, &value, text).map_or_else(
            || Answer::NotUnderstood(format!("answer has no token count: {}", excerpt())),
            Answer::Count,
        ))
    }
}

/// The count in an answer: `count`, else the length of `tokens`. llama.cpp answers a request
/// without `content` with an empty `tokens` list, so in the vLLM form an empty list for a
/// non-empty text is no answer.
fn read_count(form: Form, value: &Value, text: &str) -> Option<u32> {
    if let Some(n) = value.get("count").and_then(Value::as_u64) {
        return Some(u32::try_from(n).unwrap_or(u32::MAX));
    }
    let tokens = value.get("tokens").and_then(Value::as_array)?;
    if form == Form::Vllm && tokens.is_empty() && !text.trim().is_empty() {
        return None;
    }
    Some(u32::try_from(tokens.len()).unwrap_or(u32::MAX))
}

fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut cut: String = text.chars().take(EXCERPT).collect();
    if text.chars().nth(EXCERPT).is_some() {
        cut.push('…');
    }
    cut
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case(
        Form::Vllm,
        r#"{"count":3,"tokens":[1,2,3],"max_model_len":8}"#,
        "a b c",
        Some(3)
    )]
    #[case(Form::Vllm, r#"{"tokens":[1,2]}"#, "a b", Some(2))]
    #[case(Form::Vllm, r#"{"tokens":[]}"#, "a b", None)]
    #[case(Form::Vllm, r#"{"tokens":[]}"#, "", Some(0))]
    #[case(Form::Llama, r#"{"tokens":[]}"#, "", Some(0))]
    #[case(Form::Llama, r#"{"tokens":[{"id":1,"piece":"a"}]}"#, "a", Some(1))]
    #[case(Form::Llama, r#"{"tokens":"1 2"}"#, "a", None)]
    #[case(Form::Llama, r#"[1,2]"#, "a", None)]
    #[case(Form::Vllm, r#"{"count":-1}"#, "a", None)]
    fn answers_are_read(
        #[case] form: Form,
        #[case] body: &str,
        #[case] text: &str,
        #[case] count: Option<u32>,
    ) {
        let value: Value = serde_json::from_str(body).expect("json");
        assert_eq!(read_count(form, &value, text), count);
    }

    #[test]
    fn excerpts_are_cut() {
        assert_eq!(excerpt(b"short"), "short");
        assert_eq!(excerpt(&[b'x'; 300]).chars().count(), EXCERPT + 1);
        assert_eq!(excerpt(&[0xff, b'a']), "\u{fffd}a");
    }
}
