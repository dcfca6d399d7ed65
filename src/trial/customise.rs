//! The request customiser of [`super::Trial::run_with`]: extra body fields and headers sent
//! with every request of the trial.

use serde_json::{Map, Value};

use crate::case::ClientSpec;

/// Extra body fields and headers for every request of a trial. Built by the closure given to
/// [`super::Trial::run_with`]: `|req| req.tools(tools).header("x-team", "serving")`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestCustomiser {
    body: Map<String, Value>,
    headers: Vec<(String, String)>,
}

impl RequestCustomiser {
    /// Sets a body field (replacing what the protocol adapter would send under that key).
    pub fn body(mut self, key: impl Into<String>, value: Value) -> RequestCustomiser {
        self.body.insert(key.into(), value);
        self
    }

    /// The `tools` field (OpenAI function calling).
    pub fn tools(self, tools: Value) -> RequestCustomiser {
        self.body("tools", tools)
    }

    /// The `tool_choice` field.
    pub fn tool_choice(self, choice: Value) -> RequestCustomiser {
        self.body("tool_choice", choice)
    }

    /// The `response_format` field (JSON mode, JSON schema).
    pub fn response_format(self, format: Value) -> RequestCustomiser {
        self.body("response_format", format)
    }

    /// The `logprobs` field.
    pub fn logprobs(self, on: bool) -> RequestCustomiser {
        self.body("logprobs", Value::Bool(on))
    }

    /// An HTTP header (added to the case's `client.headers`, replacing one of the same name).
    pub fn header(
        mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> RequestCustomiser {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The body fields set.
    pub fn body_fields(&self) -> &Map<String, Value> {
        &self.body
    }

    /// Puts the fields and headers into a case's client section.
    pub(crate) fn apply(self, client: &mut ClientSpec) {
        client.extra_body.extend(self.body);
        client.headers.extend(self.headers);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fields_and_headers_land_in_the_client_section() {
        let mut client = ClientSpec::default();
        RequestCustomiser::default()
            .tools(json!([{"type": "function"}]))
            .response_format(json!({"type": "json_object"}))
            .logprobs(true)
            .header("x-team", "serving")
            .apply(&mut client);
        assert_eq!(client.extra_body["tools"], json!([{"type": "function"}]));
        assert_eq!(client.extra_body["logprobs"], json!(true));
        assert_eq!(client.extra_body.len(), 3);
        assert_eq!(client.headers["x-team"], "serving");
    }
}
