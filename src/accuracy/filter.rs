//! lm-evaluation-harness's `RegexFilter` followed by `take_first`: the answer a filter extracts
//! from one response.

use regex::Regex;

/// What a filter returns when its pattern does not match (lm-eval's default fallback).
pub const INVALID: &str = "[invalid]";

/// Python's `str.strip()`: removes what `str.isspace` calls white space, which is Rust's
/// `char::is_whitespace` plus the separators U+001C to U+001F.
pub fn py_strip(text: &str) -> &str {
    text.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

/// lm-eval's `regex` filter: Python `re.findall`, one match chosen by `group_select`, stripped.
#[derive(Debug, Clone)]
pub struct RegexFilter {
    regex: Regex,
    group_select: isize,
}

impl RegexFilter {
    /// A filter with lm-eval's `regex_pattern` and `group_select` (0 = first match, −1 = last).
    /// The pattern must mean the same to Rust's `regex` as to Python's `re` (true of lm-eval's
    /// gsm8k patterns: character classes, alternation and greedy repetition only).
    pub fn new(pattern: &str, group_select: isize) -> Result<RegexFilter, regex::Error> {
        Ok(RegexFilter {
            regex: Regex::new(pattern)?,
            group_select,
        })
    }

    /// The extracted answer, or [`INVALID`].
    ///
    /// As Python's `findall`: each match gives the whole match when the pattern has no groups,
    /// its one group's text when it has one (empty when the group did not take part), and
    /// otherwise the first non-empty group (lm-eval's handling of the tuple findall returns).
    /// A `group_select` outside the matches also gives [`INVALID`] (Python would raise
    /// `IndexError`).
    pub fn apply(&self, response: &str) -> String {
        let matches: Vec<regex::Captures<'_>> = self.regex.captures_iter(response).collect();
        let index = if self.group_select < 0 {
            matches.len().checked_sub(self.group_select.unsigned_abs())
        } else {
            Some(self.group_select.unsigned_abs())
        };
        let Some(captures) = index.and_then(|i| matches.get(i)) else {
            return INVALID.to_string();
        };
        let groups = captures.len() - 1;
        let text = match groups {
            0 => captures.get(0).map(|m| m.as_str()),
            1 => Some(captures.get(1).map_or("", |m| m.as_str())),
            _ => captures
                .iter()
                .skip(1)
                .flatten()
                .map(|m| m.as_str())
                .find(|s| !s.is_empty()),
        };
        match text {
            Some(text) => py_strip(text).to_string(),
            None => INVALID.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case::whole_match(r"\d+", 0, "a 12 b 34", "12")]
    #[case::whole_match_last(r"\d+", -1, "a 12 b 34", "34")]
    #[case::second(r"\d+", 1, "a 12 b 34", "34")]
    #[case::out_of_range(r"\d+", 2, "a 12 b 34", INVALID)]
    #[case::out_of_range_from_end(r"\d+", -3, "a 12 b 34", INVALID)]
    #[case::one_group(r"x(\d+)", 0, "x5 x6", "5")]
    #[case::one_optional_group_absent(r"x(\d+)?", 0, "x", "")]
    #[case::first_non_empty_group(r"(a\d)|(b\d)", -1, "a1 b2", "b2")]
    #[case::stripped(r"=([^;]*);", 0, "= 7 ;", "7")]
    #[case::no_match(r"\d", 0, "none", INVALID)]
    fn findall_semantics(
        #[case] pattern: &str,
        #[case] group_select: isize,
        #[case] response: &str,
        #[case] expected: &str,
    ) {
        let filter = RegexFilter::new(pattern, group_select).expect("pattern");
        assert_eq!(filter.apply(response), expected);
    }

    #[rstest]
    #[case(" a b \n", "a b")]
    #[case("\u{1f}\u{a0}x\u{3000}", "x")]
    #[case("\t", "")]
    fn strip_as_python(#[case] text: &str, #[case] expected: &str) {
        assert_eq!(py_strip(text), expected);
    }

    #[test]
    fn bad_patterns_are_errors() {
        assert!(RegexFilter::new("(", 0).is_err());
    }
}
