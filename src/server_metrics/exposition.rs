//! Reading Prometheus's text exposition format (version 0.0.4), leniently: every sample line
//! `name{labels} value [timestamp]` gives its name and value, and anything else (comments,
//! `# TYPE`, `# EOF`, lines this reader does not understand) is skipped.
//!
//! Written here because `prometheus-parse` (the crate commonly used for this) reads a metric
//! name as `\w+`, so the colons of `vllm:num_requests_running` and `llamacpp:…` names, which
//! the format allows, make it drop those samples.

/// One sample line: the metric name and its value. Labels are not kept: the summary adds up
/// a metric's label sets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleLine<'a> {
    /// Metric name, `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    pub name: &'a str,
    /// The sample's value (`NaN`, `+Inf` and `-Inf` included).
    pub value: f64,
}

/// The sample lines of an exposition text, in order.
pub fn samples(text: &str) -> impl Iterator<Item = SampleLine<'_>> {
    text.lines().filter_map(sample_line)
}

fn is_name_char(c: char, first: bool) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':' || (!first && c.is_ascii_digit())
}

/// Parses one line; `None` for comments, blank lines and anything malformed.
fn sample_line(line: &str) -> Option<SampleLine<'_>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line
        .char_indices()
        .find(|&(i, c)| !is_name_char(c, i == 0))
        .map_or(line.len(), |(i, _)| i);
    if name_end == 0 {
        return None;
    }
    let (name, rest) = line.split_at(name_end);
    let rest = match rest.strip_prefix('{') {
        Some(labels) => &labels[label_set_end(labels)?..],
        None => rest,
    };
    // A value must be separated from the name or labels by blanks.
    if !rest.starts_with([' ', '\t']) {
        return None;
    }
    let value = rest.split_ascii_whitespace().next()?;
    Some(SampleLine {
        name,
        value: parse_value(value)?,
    })
}

/// The index just past the `}` that closes a label set (quoted values may hold `}` and
/// escaped quotes).
fn label_set_end(labels: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in labels.char_indices() {
        match (quoted, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (_, false, '"') => quoted = !quoted,
            (false, _, '}') => return Some(i + 1),
            _ => {}
        }
    }
    None
}

fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case("llamacpp:requests_processing 3", Some(("llamacpp:requests_processing", 3.0)))]
    #[case(
        "vllm:num_requests_running{engine=\"0\",model_name=\"m\"} 7.0",
        Some(("vllm:num_requests_running", 7.0))
    )]
    #[case("x{a=\"}\\\"{\"} 1e3 1700000000000", Some(("x", 1000.0)))]
    #[case("tgi_queue_size\t2", Some(("tgi_queue_size", 2.0)))]
    #[case("up +Inf", Some(("up", f64::INFINITY)))]
    #[case("# TYPE vllm:num_requests_running gauge", None)]
    #[case("# EOF", None)]
    #[case("", None)]
    #[case("9lives 1", None)]
    #[case("name{unclosed 1", None)]
    #[case("name1", None)]
    #[case("name notanumber", None)]
    fn sample_lines_are_read_with_colons_labels_and_timestamps(
        #[case] line: &str,
        #[case] expected: Option<(&str, f64)>,
    ) {
        let got = sample_line(line).map(|s| (s.name, s.value));
        assert_eq!(got, expected);
    }

    #[test]
    fn a_whole_llama_server_exposition_gives_every_sample() {
        let text = "# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed\n\
                    # TYPE llamacpp:prompt_tokens_total counter\n\
                    llamacpp:prompt_tokens_total 33\n\
                    # TYPE llamacpp:requests_deferred gauge\n\
                    llamacpp:requests_deferred 0\n";
        let names: Vec<&str> = samples(text).map(|s| s.name).collect();
        assert_eq!(
            names,
            ["llamacpp:prompt_tokens_total", "llamacpp:requests_deferred"]
        );
    }
}
