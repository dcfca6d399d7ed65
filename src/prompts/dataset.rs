//! Prompts from dataset files: JSON Lines (`{"prompt", "output_tokens"?}` per line) and
//! ShareGPT conversations (their first exchange, or every exchange to replay them turn by
//! turn).

use std::fmt;
use std::path::Path;

use futures_util::{StreamExt, TryStreamExt, stream};
use serde::de::{DeserializeSeed, IgnoredAny, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::{PromptError, TokenCounter};
use crate::case::PromptSource;

/// Counts in flight at once (matters for the server counter only).
const IN_FLIGHT: usize = 8;

/// One prompt of a dataset with its lengths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetEntry {
    /// The prompt text.
    pub prompt: String,
    /// Its length in tokens, per the counter.
    pub isl: u32,
    /// Tokens to generate for it.
    pub osl: u32,
}

/// What a file gives for an entry's output length, before counting.
#[derive(Debug)]
enum Output {
    /// `output_tokens` of a JSON Lines entry, if any.
    Given(Option<u32>),
    /// The reply of a ShareGPT conversation, to be counted.
    Reply(String),
}

/// Loads up to `limit` entries in file order. JSONL: one object per line, `{"prompt": str,
/// "output_tokens"?: int}` (blank lines skipped, other keys ignored), OSL = `output_tokens`,
/// else `default_osl`. ShareGPT: a JSON array of `{"conversations": [{"from": "human", "value":
/// …}, {"from": "gpt", "value": …}, …]}`; the prompt is the first human turn and the OSL the
/// token count of the gpt turn after it (as vLLM's benchmark does); entries without such a
/// pair are skipped. ISL = `counter.count(prompt)`. Errors name the file and, for JSONL, the
/// line and what is wrong; a file without any usable entry is an error.
pub async fn load_dataset(
    source: PromptSource,
    path: &Path,
    counter: &TokenCounter,
    default_osl: u32,
    limit: usize,
) -> Result<Vec<DatasetEntry>, PromptError> {
    let error = |line, message: String| PromptError::Dataset {
        path: path.to_path_buf(),
        line,
        message,
    };
    if limit == 0 {
        return Ok(Vec::new());
    }
    let bytes = read(path).await?;
    let raw = match source {
        PromptSource::Jsonl => jsonl(&bytes, limit).map_err(|(line, m)| error(Some(line), m))?,
        PromptSource::Sharegpt => sharegpt(&bytes, limit).map_err(|m| error(None, m))?,
        PromptSource::Synthetic => {
            return Err(error(None, "synthetic prompts have no dataset file".into()));
        }
    };
    if raw.is_empty() {
        let expected = match source {
            PromptSource::Sharegpt => "a conversation with a human turn followed by a gpt turn",
            _ => r#"a line like {"prompt": "…"}"#,
        };
        return Err(error(
            None,
            format!("no usable entry (expected {expected})"),
        ));
    }
    stream::iter(raw)
        .map(|(prompt, output)| async move {
            let isl = counter.count(&prompt).await?;
            let osl = match output {
                Output::Given(osl) => osl.unwrap_or(default_osl),
                Output::Reply(reply) => counter.count(&reply).await?.max(1),
            };
            Ok(DatasetEntry { prompt, isl, osl })
        })
        .buffered(IN_FLIGHT)
        .try_collect()
        .await
}

/// Entries of a JSON Lines file; the error is (1-based line, message).
fn jsonl(bytes: &[u8], limit: usize) -> Result<Vec<(String, Output)>, (usize, String)> {
    let mut entries = Vec::new();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if entries.len() == limit {
            break;
        }
        let number = i + 1;
        let line = std::str::from_utf8(line).map_err(|e| (number, format!("not UTF-8: {e}")))?;
        let line = line.strip_prefix('\u{feff}').unwrap_or(line).trim();
        if line.is_empty() {
            continue;
        }
        let value: Value =
            serde_json::from_str(line).map_err(|e| (number, format!("not valid JSON: {e}")))?;
        let object = value.as_object().ok_or_else(|| {
            (
                number,
                format!(
                    r#"expected an object like {{"prompt": "…"}}, found {}"#,
                    kind(&value)
                ),
            )
        })?;
        entries.push(jsonl_entry(object).map_err(|m| (number, m))?);
    }
    Ok(entries)
}

fn jsonl_entry(object: &Map<String, Value>) -> Result<(String, Output), String> {
    let prompt = match object.get("prompt") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::String(_)) => return Err("`prompt` is empty".into()),
        Some(other) => return Err(format!("`prompt` must be a string, found {}", kind(other))),
        None => return Err("missing `prompt`".into()),
    };
    let osl = match object.get("output_tokens") {
        None | Some(Value::Null) => None,
        Some(value) => match value.as_u64().filter(|&n| n >= 1).map(u32::try_from) {
            Some(Ok(n)) => Some(n),
            _ => {
                return Err(format!(
                    "`output_tokens` must be a whole number from 1 to {}, found {value}",
                    u32::MAX
                ));
            }
        },
    };
    Ok((prompt, Output::Given(osl)))
}

/// (prompt, reply) pairs of a ShareGPT file, reading no more of it than needed to check it is
/// one JSON array.
fn sharegpt(bytes: &[u8], limit: usize) -> Result<Vec<(String, Output)>, String> {
    let pairs = conversations(bytes, limit, Turns::First)?;
    Ok(pairs
        .into_iter()
        .flatten()
        .map(|(prompt, reply)| (prompt, Output::Reply(reply)))
        .collect())
}

/// Up to `limit` conversations of a ShareGPT file, each as its (human, gpt) pairs in order
/// (`turns` of them), reading no more of it than needed to check it is one JSON array.
fn conversations(
    bytes: &[u8],
    limit: usize,
    turns: Turns,
) -> Result<Vec<Vec<(String, String)>>, String> {
    let mut reader = serde_json::Deserializer::from_slice(bytes);
    Pairs { limit, turns }
        .deserialize(&mut reader)
        .and_then(|pairs| reader.end().map(|()| pairs))
        .map_err(|e| format!("not a ShareGPT JSON array: {e}"))
}

/// Which (human, gpt) pairs of a conversation are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turns {
    /// The first one (a single-turn prompt).
    First,
    /// Every one, in order (a conversation replayed turn by turn).
    All,
}

/// Reads a JSON array, keeping the pairs of up to `limit` conversations that have one and
/// skipping the rest without building them.
struct Pairs {
    limit: usize,
    turns: Turns,
}

impl<'de> DeserializeSeed<'de> for Pairs {
    type Value = Vec<Vec<(String, String)>>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Pairs {
    type Value = Vec<Vec<(String, String)>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of {\"conversations\": [...]} objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut kept = Vec::new();
        while kept.len() < self.limit {
            let Some(entry) = seq.next_element::<Value>()? else {
                return Ok(kept);
            };
            let pairs = match self.turns {
                Turns::First => first_pair(&entry).into_iter().collect(),
                Turns::All => all_pairs(&entry),
            };
            if !pairs.is_empty() {
                kept.push(pairs);
            }
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(kept)
    }
}

/// The first human turn of a conversation and the gpt turn right after it, both non-blank.
fn first_pair(entry: &Value) -> Option<(String, String)> {
    let turns = entry.get("conversations")?.as_array()?;
    let human = turns.iter().position(is_human)?;
    pair_at(turns, human)
}

/// Every human turn of a conversation answered by the gpt turn right after it, in order,
/// until the first turn that breaks the alternation (a blank or non-text message, two human
/// turns in a row): what follows it could not be replayed as the user wrote it.
fn all_pairs(entry: &Value) -> Vec<(String, String)> {
    let Some(turns) = entry.get("conversations").and_then(Value::as_array) else {
        return Vec::new();
    };
    let Some(mut at) = turns.iter().position(is_human) else {
        return Vec::new();
    };
    let mut pairs = Vec::new();
    while let Some(pair) = pair_at(turns, at) {
        pairs.push(pair);
        at += 2;
    }
    pairs
}

/// The human turn at `at` and the gpt turn after it, both non-blank text.
fn pair_at(turns: &[Value], at: usize) -> Option<(String, String)> {
    let text = |turn: &Value| {
        turn.get("value")
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(str::to_string)
    };
    let human = turns.get(at).filter(|t| is_human(t))?;
    let reply = turns.get(at + 1)?;
    if !matches!(from(reply), Some("gpt" | "assistant" | "chatgpt")) {
        return None;
    }
    Some((text(human)?, text(reply)?))
}

/// Who wrote a ShareGPT turn (`from`).
fn from(turn: &Value) -> Option<&str> {
    turn.get("from").and_then(Value::as_str)
}

fn is_human(turn: &Value) -> bool {
    matches!(from(turn), Some("human" | "user"))
}

/// Loads up to `limit` ShareGPT conversations to replay turn by turn: each as its (human,
/// gpt) pairs in order (see [`load_dataset`] for the file's form), every human message a
/// [`DatasetEntry`] whose ISL is its own token count and whose OSL is the count of the gpt
/// reply that followed it. Conversations without a pair are skipped; a file without any is
/// an error.
pub async fn load_conversations(
    path: &Path,
    counter: &TokenCounter,
    limit: usize,
) -> Result<Vec<Vec<DatasetEntry>>, PromptError> {
    let error = |message: String| PromptError::Dataset {
        path: path.to_path_buf(),
        line: None,
        message,
    };
    if limit == 0 {
        return Ok(Vec::new());
    }
    let bytes = read(path).await?;
    let raw = conversations(&bytes, limit, Turns::All).map_err(error)?;
    if raw.is_empty() {
        return Err(error(
            "no usable entry (expected a conversation with a human turn followed by a gpt turn)"
                .into(),
        ));
    }
    let mut loaded = Vec::with_capacity(raw.len());
    for pairs in raw {
        let turns = stream::iter(pairs)
            .map(|(prompt, reply)| async move {
                let isl = counter.count(&prompt).await?;
                let osl = counter.count(&reply).await?.max(1);
                Ok::<_, PromptError>(DatasetEntry { prompt, isl, osl })
            })
            .buffered(IN_FLIGHT)
            .try_collect()
            .await?;
        loaded.push(turns);
    }
    Ok(loaded)
}

/// A dataset file's bytes (a regular file, bounded in size), read off the async runtime.
async fn read(path: &Path) -> Result<Vec<u8>, PromptError> {
    let owned = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        crate::case::files::read_regular(&owned, crate::case::files::MAX_DATASET_BYTES)
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    .map_err(|source| PromptError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;
    use serde_json::json;

    use super::*;

    #[rstest]
    #[case(r#"{"prompt":"a b","output_tokens":5}"#, Ok(Some(5)))]
    #[case(r#"{"prompt":"a b","output_tokens":null,"id":3}"#, Ok(None))]
    #[case(r#"{"prompt":""}"#, Err("`prompt` is empty"))]
    #[case(r#"{"prompt":7}"#, Err("`prompt` must be a string, found a number"))]
    #[case(r#"{"text":"a"}"#, Err("missing `prompt`"))]
    #[case(r#"{"prompt":"a","output_tokens":0}"#, Err("`output_tokens` must be"))]
    #[case(
        r#"{"prompt":"a","output_tokens":"5"}"#,
        Err("`output_tokens` must be")
    )]
    #[case(
        r#"{"prompt":"a","output_tokens":1e99}"#,
        Err("`output_tokens` must be")
    )]
    #[case(
        r#"{"prompt":"a","output_tokens":99999999999}"#,
        Err("`output_tokens` must be")
    )]
    fn jsonl_entries_are_checked(#[case] line: &str, #[case] want: Result<Option<u32>, &str>) {
        let value: Value = serde_json::from_str(line).expect("json");
        let got = jsonl_entry(value.as_object().expect("object"));
        match (got, want) {
            (Ok((_, Output::Given(osl))), Ok(want)) => assert_eq!(osl, want),
            (Err(message), Err(want)) => assert!(message.contains(want), "{message}"),
            (Ok(_), want) => panic!("accepted, wanted {want:?}"),
            (Err(message), Ok(_)) => panic!("rejected: {message}"),
        }
    }

    #[rstest]
    #[case(json!({"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}), Some(("q", "a")))]
    #[case(json!({"conversations": [{"from": "system", "value": "s"}, {"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}), Some(("q", "a")))]
    #[case(json!({"conversations": [{"from": "gpt", "value": "a"}, {"from": "human", "value": "q"}]}), None)]
    #[case(json!({"conversations": [{"from": "human", "value": "q"}, {"from": "human", "value": "a"}]}), None)]
    #[case(json!({"conversations": [{"from": "human", "value": " "}, {"from": "gpt", "value": "a"}]}), None)]
    #[case(json!({"conversations": [{"from": "human", "value": 1}, {"from": "gpt", "value": "a"}]}), None)]
    #[case(json!({"conversations": "q"}), None)]
    #[case(json!([1, 2]), None)]
    fn sharegpt_pairs_are_found(#[case] entry: Value, #[case] want: Option<(&str, &str)>) {
        let got = first_pair(&entry);
        assert_eq!(got.as_ref().map(|(p, r)| (p.as_str(), r.as_str())), want);
    }

    #[rstest]
    #[case::two_turns(json!({"conversations": [{"from": "system", "value": "s"}, {"from": "human", "value": "q1"}, {"from": "gpt", "value": "a1"}, {"from": "human", "value": "q2"}, {"from": "gpt", "value": "a2"}]}), &[("q1", "a1"), ("q2", "a2")])]
    #[case::trailing_question(json!({"conversations": [{"from": "human", "value": "q1"}, {"from": "gpt", "value": "a1"}, {"from": "human", "value": "q2"}]}), &[("q1", "a1")])]
    #[case::broken_alternation(json!({"conversations": [{"from": "human", "value": "q1"}, {"from": "gpt", "value": "a1"}, {"from": "human", "value": "q2"}, {"from": "human", "value": "q3"}, {"from": "gpt", "value": "a3"}]}), &[("q1", "a1")])]
    #[case::blank_reply(json!({"conversations": [{"from": "human", "value": "q1"}, {"from": "gpt", "value": "a1"}, {"from": "human", "value": "q2"}, {"from": "gpt", "value": " "}]}), &[("q1", "a1")])]
    #[case::no_pair(json!({"conversations": [{"from": "gpt", "value": "a"}]}), &[])]
    #[case::not_a_conversation(json!({"conversations": 3}), &[])]
    fn every_pair_of_a_conversation_is_found_in_order(
        #[case] entry: Value,
        #[case] want: &[(&str, &str)],
    ) {
        let got = all_pairs(&entry);
        let got: Vec<(&str, &str)> = got.iter().map(|(p, r)| (p.as_str(), r.as_str())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn conversations_skip_those_without_a_pair_and_stop_at_the_limit() {
        let two = json!({"conversations": [{"from": "human", "value": "q1"}, {"from": "gpt", "value": "a1"}, {"from": "human", "value": "q2"}, {"from": "gpt", "value": "a2"}]});
        let none = json!({"conversations": [{"from": "gpt", "value": "a"}]});
        let file = serde_json::to_vec(&json!([none, two, two, two])).expect("json");
        let got = conversations(&file, 2, Turns::All).expect("valid");
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|pairs| pairs.len() == 2));
        let first = conversations(&file, 5, Turns::First).expect("valid");
        assert_eq!(first.len(), 3);
        assert!(first.iter().all(|pairs| pairs.len() == 1));
    }

    #[test]
    fn sharegpt_stops_collecting_at_the_limit_but_checks_the_array() {
        let entry = json!({"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]});
        let file = serde_json::to_vec(&json!([entry, entry, entry])).expect("json");
        assert_eq!(sharegpt(&file, 2).expect("valid").len(), 2);
        let mut broken = file.clone();
        broken.extend_from_slice(b"x");
        assert!(sharegpt(&broken, 2).is_err());
        assert!(sharegpt(b"{}", 2).expect_err("object").contains("ShareGPT"));
    }

    #[test]
    fn jsonl_names_the_line_and_skips_blank_ones() {
        let file = b"\xef\xbb\xbf{\"prompt\":\"a\"}\n\r\n  \n{\"prompt\":\"b\"}\r\n[1]\n";
        assert_eq!(jsonl(file, 2).expect("two entries").len(), 2);
        let (line, message) = jsonl(file, 3).expect_err("line 5 is an array");
        assert_eq!(line, 5);
        assert!(message.contains("found an array"), "{message}");
        let (line, _) = jsonl(b"{\"prompt\":\"a\"}\n\xff\n", 5).expect_err("not UTF-8");
        assert_eq!(line, 2);
    }
}
