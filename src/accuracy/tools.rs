//! The `tool_calls` task: questions a model answers by calling one of the offered tools, scored
//! on the call's parts — arguments that are valid JSON, the right function, arguments matching
//! the function's JSON schema (the `jsonschema` crate) and, when the question gives them, the
//! exact argument values. A sample is `correct` when every part is.
//!
//! The built-in set ([`synthetic_tools`]) is four functions with seeded questions; a question
//! file (JSON Lines, see [`QuestionLine`]) brings its own, with the tools from the case.
//!
//! The scored response is the first tool call as `NAME ARGUMENTS` (the name, one space, the
//! arguments exactly as the server sent them); a response without a call scores nothing.

use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AccuracyError, Loaded, Sample};
use crate::case::{AccuracySpec, tool_choice_problem};

/// Questions generated when the case gives no `limit`.
const DEFAULT_LIMIT: u32 = 100;

/// What one question expects.
#[derive(Debug, Clone)]
pub(crate) struct Expected {
    /// The function to call.
    function: String,
    /// The arguments' schema, compiled.
    schema: std::sync::Arc<jsonschema::Validator>,
    /// Exact argument values, when the question gives them.
    values: Option<Value>,
    /// The `tool_choice` of this question, when it has its own.
    tool_choice: Option<Value>,
}

/// The tools and what each question expects.
#[derive(Debug, Clone)]
pub(crate) struct Tools {
    /// The tools offered (OpenAI function schemas).
    pub(crate) tools: Value,
    /// The case's `tool_choice` (default `auto`).
    pub(crate) tool_choice: Value,
    /// By sample index.
    expected: Vec<Expected>,
}

impl Tools {
    /// The `tool_choice` sent with sample `index`.
    pub(crate) fn tool_choice(&self, index: usize) -> &Value {
        self.expected
            .get(index)
            .and_then(|e| e.tool_choice.as_ref())
            .unwrap_or(&self.tool_choice)
    }

    /// One result per filter (`correct`, `valid-json`, `function`, `schema`, `values`), as
    /// (extracted, correct).
    pub(crate) fn score(&self, index: usize, response: &str) -> Vec<(String, bool)> {
        let Some(expected) = self.expected.get(index) else {
            return vec![(super::filter::INVALID.to_string(), false); 5];
        };
        let (name, arguments) = response.split_once(' ').unwrap_or((response, ""));
        let parsed: Option<Value> = serde_json::from_str(arguments).ok();
        let valid_json = parsed.as_ref().is_some_and(Value::is_object);
        let function = name == expected.function;
        let schema = parsed
            .as_ref()
            .is_some_and(|p| valid_json && expected.schema.is_valid(p));
        let values = match &expected.values {
            Some(want) => parsed.as_ref() == Some(want),
            None => schema,
        };
        let correct = valid_json && function && schema && values;
        let shown = |ok: bool, text: &str| (text.to_string(), ok);
        vec![
            shown(correct, response),
            shown(valid_json, arguments),
            shown(function, name),
            shown(schema, arguments),
            shown(values, arguments),
        ]
    }
}

/// One line of a question file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuestionLine {
    /// The user's message.
    pub question: String,
    /// The function the model should call.
    pub function: String,
    /// JSON schema the arguments must match (default: the function's `parameters`).
    #[serde(default)]
    pub arguments_schema: Option<Value>,
    /// Exact argument values, compared as JSON values (key order and spacing aside).
    #[serde(default)]
    pub arguments: Option<Value>,
    /// This question's `tool_choice`, sent instead of the case's.
    #[serde(default)]
    pub tool_choice: Option<Value>,
}

/// The built-in tools: four functions of the kinds assistants call.
pub fn synthetic_tools() -> Value {
    let function = |name: &str, description: &str, parameters: Value| {
        json!({"type": "function", "function": {
            "name": name, "description": description, "parameters": parameters}})
    };
    json!([
        function(
            "get_weather",
            "Current weather in a city.",
            json!({
                "type": "object",
                "properties": {
                    "city": {"type": "string", "minLength": 1},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}
                },
                "required": ["city", "unit"],
                "additionalProperties": false
            })
        ),
        function(
            "convert_currency",
            "Convert an amount between currencies.",
            json!({
                "type": "object",
                "properties": {
                    "amount": {"type": "number", "exclusiveMinimum": 0},
                    "from": {"type": "string", "pattern": "^[A-Z]{3}$"},
                    "to": {"type": "string", "pattern": "^[A-Z]{3}$"}
                },
                "required": ["amount", "from", "to"],
                "additionalProperties": false
            })
        ),
        function(
            "set_timer",
            "Start a countdown timer.",
            json!({
                "type": "object",
                "properties": {
                    "minutes": {"type": "integer", "minimum": 1, "maximum": 600},
                    "label": {"type": "string"}
                },
                "required": ["minutes"],
                "additionalProperties": false
            })
        ),
        function(
            "search_flights",
            "Find flights between two airports on a date.",
            json!({
                "type": "object",
                "properties": {
                    "origin": {"type": "string", "pattern": "^[A-Z]{3}$"},
                    "destination": {"type": "string", "pattern": "^[A-Z]{3}$"},
                    "date": {"type": "string", "pattern": "^\\d{4}-\\d{2}-\\d{2}$"}
                },
                "required": ["origin", "destination", "date"],
                "additionalProperties": false
            })
        ),
    ])
}

const CITIES: [&str; 6] = ["Paris", "Tokyo", "Nairobi", "Lima", "Oslo", "São Paulo"];
const CURRENCIES: [&str; 5] = ["USD", "EUR", "JPY", "GBP", "BRL"];
const AIRPORTS: [&str; 5] = ["CDG", "JFK", "NRT", "GRU", "LHR"];
const LABELS: [&str; 3] = ["tea", "pasta", "laundry"];

/// One seeded question: its text, function and exact arguments.
fn synthetic_question(rng: &mut ChaCha8Rng) -> (String, &'static str, Value) {
    let pick = |rng: &mut ChaCha8Rng, list: &[&'static str]| list[rng.random_range(0..list.len())];
    match rng.random_range(0..4) {
        0 => {
            let city = pick(rng, &CITIES);
            let unit = pick(rng, &["celsius", "fahrenheit"]);
            (
                format!("What is the weather in {city} right now, in {unit}?"),
                "get_weather",
                json!({"city": city, "unit": unit}),
            )
        }
        1 => {
            let amount = rng.random_range(1..10_000);
            let from = pick(rng, &CURRENCIES);
            let to = pick(rng, &CURRENCIES);
            (
                format!("How much is {amount} {from} in {to}?"),
                "convert_currency",
                json!({"amount": amount, "from": from, "to": to}),
            )
        }
        2 => {
            let minutes = rng.random_range(1..=90);
            let label = pick(rng, &LABELS);
            (
                format!("Set a timer for {minutes} minutes for the {label}."),
                "set_timer",
                json!({"minutes": minutes, "label": label}),
            )
        }
        _ => {
            let origin = pick(rng, &AIRPORTS);
            let destination = pick(rng, &AIRPORTS);
            let day = rng.random_range(1..=28);
            let date = format!("2027-03-{day:02}");
            (
                format!("Find me flights from {origin} to {destination} on {date}."),
                "search_flights",
                json!({"origin": origin, "destination": destination, "date": date}),
            )
        }
    }
}

/// The reply of a model that gets the call right, as it is scored: `NAME ARGUMENTS`.
fn right_reply(function: &str, arguments: &Value) -> String {
    format!("{function} {arguments}")
}

/// A reply whose arguments are malformed JSON (cut before the closing brace).
fn wrong_reply(function: &str, arguments: &Value) -> String {
    let mut text = right_reply(function, arguments);
    text.pop();
    text
}

/// The `parameters` schema of each function of `tools`, by name.
fn parameters(tools: &Value, key: &str) -> Result<Vec<(String, Value)>, AccuracyError> {
    let bad = |message: String| AccuracyError::Spec {
        key: key.into(),
        message,
    };
    let list = tools
        .as_array()
        .filter(|l| !l.is_empty())
        .ok_or_else(|| bad("must be a non-empty list of tools".into()))?;
    list.iter()
        .enumerate()
        .map(|(i, tool)| {
            let function = &tool["function"];
            let name = function["name"]
                .as_str()
                .filter(|n| !n.is_empty())
                .ok_or_else(|| bad(format!("tool {i}: `function.name` must be a string")))?;
            if tool["type"] != "function" {
                return Err(bad(format!("tool {i}: `type` must be `function`")));
            }
            let schema = function
                .get("parameters")
                .cloned()
                .unwrap_or_else(|| json!({"type": "object"}));
            jsonschema::validator_for(&schema)
                .map_err(|e| bad(format!("tool `{name}`: `parameters` is not a schema: {e}")))?;
            Ok((name.to_string(), schema))
        })
        .collect()
}

fn compile(schema: &Value) -> Result<jsonschema::Validator, String> {
    jsonschema::validator_for(schema).map_err(|e| e.to_string())
}

/// Builds the samples and their expectations: the built-in questions (seeded by `seed`), or
/// the question file `dataset` with the case's tools, relative to `case_dir`.
pub(crate) fn load(spec: &AccuracySpec, case_dir: &Path) -> Result<(Loaded, Tools), AccuracyError> {
    let tool_choice = spec.tool_choice.clone().unwrap_or_else(|| json!("auto"));
    match &spec.dataset {
        None => load_synthetic(spec, tool_choice),
        Some(dataset) => load_file(spec, case_dir, &case_dir.join(dataset), tool_choice),
    }
}

fn load_synthetic(
    spec: &AccuracySpec,
    tool_choice: Value,
) -> Result<(Loaded, Tools), AccuracyError> {
    let tools = synthetic_tools();
    let schemas = parameters(&tools, "accuracy.tools")?;
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed.unwrap_or(0));
    let count = spec.limit.unwrap_or(DEFAULT_LIMIT) as usize;
    let (mut samples, mut expected) = (Vec::with_capacity(count), Vec::with_capacity(count));
    for index in 0..count {
        let (question, function, arguments) = synthetic_question(&mut rng);
        let schema = schemas
            .iter()
            .find(|(name, _)| name == function)
            .map(|(_, schema)| schema)
            .ok_or_else(|| AccuracyError::Spec {
                key: "accuracy.tools".into(),
                message: format!("built-in tool `{function}` missing"),
            })?;
        let schema = compile(schema).map_err(|message| AccuracyError::Spec {
            key: "accuracy.tools".into(),
            message,
        })?;
        samples.push(sample(index, "tools", question, function, &arguments));
        expected.push(Expected {
            function: function.to_string(),
            schema: std::sync::Arc::new(schema),
            values: Some(arguments),
            tool_choice: None,
        });
    }
    Ok((
        Loaded {
            samples,
            label: "built-in".into(),
        },
        Tools {
            tools,
            tool_choice,
            expected,
        },
    ))
}

fn sample(index: usize, stem: &str, question: String, function: &str, arguments: &Value) -> Sample {
    Sample {
        id: format!("{stem}/{index}"),
        doc_index: index,
        shots: Vec::new(),
        target: right_reply(function, arguments),
        right_reply: right_reply(function, arguments),
        wrong_reply: wrong_reply(function, arguments),
        question,
        choices: 0,
    }
}

/// The case's tools: inline `tools`, or the JSON list in `tools_file`.
fn case_tools(spec: &AccuracySpec, case_dir: &Path) -> Result<Value, AccuracyError> {
    if let Some(tools) = &spec.tools {
        return Ok(Value::Array(tools.clone()));
    }
    let Some(file) = &spec.tools_file else {
        return Err(AccuracyError::Spec {
            key: "accuracy.tools".into(),
            message: "a question file needs `tools` or `tools_file`".into(),
        });
    };
    let path = case_dir.join(file);
    let text = std::fs::read_to_string(&path).map_err(|source| AccuracyError::Io {
        path: path.clone(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| AccuracyError::BadLine {
        path,
        line: e.line(),
        key: ".".into(),
        message: e.to_string(),
    })
}

fn load_file(
    spec: &AccuracySpec,
    case_dir: &Path,
    path: &Path,
    tool_choice: Value,
) -> Result<(Loaded, Tools), AccuracyError> {
    let tools = case_tools(spec, case_dir)?;
    let key = if spec.tools_file.is_some() {
        "accuracy.tools_file"
    } else {
        "accuracy.tools"
    };
    let schemas = parameters(&tools, key)?;
    let text = std::fs::read_to_string(path).map_err(|source| AccuracyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let stem = path
        .file_stem()
        .map_or("tools".into(), |s| s.to_string_lossy().into_owned());
    let limit = spec.limit.map_or(usize::MAX, |l| l as usize);
    let (mut samples, mut expected) = (Vec::new(), Vec::new());
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if samples.len() >= limit {
            break;
        }
        let bad = |key: &str, message: String| AccuracyError::BadLine {
            path: path.to_path_buf(),
            line: number + 1,
            key: key.into(),
            message,
        };
        let doc: QuestionLine = serde_json::from_str(line).map_err(|e| bad(".", e.to_string()))?;
        let schema = match (
            &doc.arguments_schema,
            schemas.iter().find(|(n, _)| *n == doc.function),
        ) {
            (Some(schema), _) => schema,
            (None, Some((_, schema))) => schema,
            (None, None) => {
                return Err(bad(
                    "function",
                    format!("`{}` is not one of the tools", doc.function),
                ));
            }
        };
        let schema = compile(schema).map_err(|m| bad("arguments_schema", m))?;
        if let Some(message) = doc.tool_choice.as_ref().and_then(tool_choice_problem) {
            return Err(bad("tool_choice", message));
        }
        let index = samples.len();
        let arguments = doc.arguments.clone().unwrap_or_else(|| json!({}));
        samples.push(sample(
            index,
            &stem,
            doc.question,
            &doc.function,
            &arguments,
        ));
        expected.push(Expected {
            function: doc.function,
            schema: std::sync::Arc::new(schema),
            values: doc.arguments,
            tool_choice: doc.tool_choice,
        });
    }
    if samples.is_empty() {
        return Err(AccuracyError::EmptyDataset {
            path: path.to_path_buf(),
        });
    }
    let label = super::dataset::label(path);
    Ok((
        Loaded { samples, label },
        Tools {
            tools,
            tool_choice,
            expected,
        },
    ))
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::accuracy::tests::spec;

    fn builtin() -> Tools {
        load(
            &spec("task: tool_calls\nlimit: 40\nseed: 3\n"),
            Path::new("."),
        )
        .expect("built-in")
        .1
    }

    #[rstest]
    #[case::right(r#"get_weather {"city": "Paris", "unit": "celsius"}"#, [true, true, true, true, true])]
    #[case::spacing_and_order(r#"get_weather {"unit":"celsius","city":"Paris"}"#, [true, true, true, true, true])]
    #[case::malformed(r#"get_weather {"city": "Paris", "unit": "celsius""#, [false, false, true, false, false])]
    #[case::wrong_function(r#"set_timer {"city": "Paris", "unit": "celsius"}"#, [false, true, false, true, true])]
    #[case::off_schema(r#"get_weather {"city": "Paris", "unit": "kelvin"}"#, [false, true, true, false, false])]
    #[case::right_schema_wrong_values(r#"get_weather {"city": "Oslo", "unit": "celsius"}"#, [false, true, true, true, false])]
    #[case::no_call("It is sunny.", [false, false, false, false, false])]
    #[case::not_an_object(r#"get_weather ["Paris"]"#, [false, false, true, false, false])]
    fn parts_are_scored_apart(#[case] response: &str, #[case] want: [bool; 5]) {
        let tools = Tools {
            tools: synthetic_tools(),
            tool_choice: json!("auto"),
            expected: vec![Expected {
                function: "get_weather".into(),
                schema: std::sync::Arc::new(
                    compile(&synthetic_tools()[0]["function"]["parameters"]).expect("schema"),
                ),
                values: Some(json!({"city": "Paris", "unit": "celsius"})),
                tool_choice: None,
            }],
        };
        let got: Vec<bool> = tools.score(0, response).into_iter().map(|r| r.1).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn built_in_questions_are_seeded_and_cover_every_tool() {
        let (a, b) = (builtin(), builtin());
        assert_eq!(a.expected.len(), 40);
        let names: std::collections::BTreeSet<&str> =
            a.expected.iter().map(|e| e.function.as_str()).collect();
        assert_eq!(names.len(), 4, "{names:?}");
        let values = |t: &Tools| {
            t.expected
                .iter()
                .map(|e| e.values.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(values(&a), values(&b));
        assert_eq!(a.tool_choice(7), &json!("auto"));
    }

    #[test]
    fn question_files_take_the_case_tools_and_say_which_line_is_bad() {
        let temp = tempfile::tempdir().expect("a temporary folder");
        let dir = temp.path().to_path_buf();
        std::fs::write(dir.join("tools.json"), synthetic_tools().to_string()).expect("tools");
        std::fs::write(
            dir.join("q.jsonl"),
            concat!(
                r#"{"question": "Timer 5", "function": "set_timer", "tool_choice": "required"}"#,
                "\n\n",
                r#"{"question": "Rate?", "function": "convert_currency", "arguments": {"amount": 1, "from": "USD", "to": "EUR"}}"#,
                "\n"
            ),
        )
        .expect("questions");
        let yaml = "task: tool_calls\ndataset: q.jsonl\ntools_file: tools.json\n";
        let (loaded, tools) = load(&spec(yaml), &dir).expect("loads");
        assert_eq!(loaded.samples.len(), 2);
        assert_eq!(tools.tool_choice(0), &json!("required"));
        assert_eq!(tools.tool_choice(1), &json!("auto"));
        // No exact values: any arguments matching the schema are right.
        assert!(tools.score(0, r#"set_timer {"minutes": 9}"#)[0].1);
        assert!(
            !tools.score(
                1,
                r#"convert_currency {"amount": 2, "from": "USD", "to": "EUR"}"#
            )[0]
            .1
        );

        std::fs::write(
            dir.join("bad.jsonl"),
            "{\"question\": \"x\", \"function\": \"fly\"}\n",
        )
        .expect("bad");
        let yaml = "task: tool_calls\ndataset: bad.jsonl\ntools_file: tools.json\n";
        let error = load(&spec(yaml), &dir).expect_err("unknown function");
        assert!(
            error
                .to_string()
                .ends_with("bad.jsonl:1: key `function`: `fly` is not one of the tools"),
            "{error}"
        );
    }
}
