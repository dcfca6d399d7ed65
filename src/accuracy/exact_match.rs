//! lm-evaluation-harness's `exact_match` metric (`exact_match_hf_evaluate`) for one prediction.

use regex::Regex;

/// Python's `string.punctuation`, removed when punctuation is ignored.
pub const PUNCTUATION: &str = r##"!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~"##;

/// One entry of `regexes_to_ignore`: Python's `re.sub(pattern, "", text)`, as a Rust regex and
/// replacement that do the same.
#[derive(Debug, Clone)]
struct Ignore {
    regex: Regex,
    replacement: &'static str,
}

/// gsm8k's `regexes_to_ignore` as (Python pattern, Rust pattern, replacement). Python's `$`
/// without MULTILINE also matches just before a final `\n`, so `\.$` becomes a pattern that
/// keeps that newline: on `"5.\n"` both give `"5\n"`.
const GSM8K_IGNORE: [(&str, &str, &str); 4] = [
    (",", ",", ""),
    (r"\$", r"\$", ""),
    ("(?s).*#### ", "(?s).*#### ", ""),
    (r"\.$", r"\.(\n?)\z", "${1}"),
];

/// `exact_match` with its options: `regexes_to_ignore` applied in order to both texts, then
/// `ignore_case` (lower-case both), then `ignore_punctuation` (remove `string.punctuation`), then
/// equality.
///
/// Differences from Python that can only show on unusual text: Rust's `to_lowercase` and
/// Python's `str.lower` may follow different Unicode versions. Trailing NUL characters are
/// ignored, as numpy's fixed-width strings drop them.
#[derive(Debug, Clone)]
pub struct ExactMatch {
    ignore: Vec<Ignore>,
    ignore_case: bool,
    ignore_punctuation: bool,
}

impl ExactMatch {
    /// gsm8k's metric: ignore `,`, `$`, everything up to the last `#### ` and a final `.`;
    /// ignore case; keep punctuation.
    pub fn gsm8k() -> Result<ExactMatch, regex::Error> {
        let ignore = GSM8K_IGNORE
            .iter()
            .map(|&(_, pattern, replacement)| {
                Ok(Ignore {
                    regex: Regex::new(pattern)?,
                    replacement,
                })
            })
            .collect::<Result<_, regex::Error>>()?;
        Ok(ExactMatch {
            ignore,
            ignore_case: true,
            ignore_punctuation: false,
        })
    }

    /// Equality after ignoring case and punctuation only (multiple-choice letters).
    pub fn case_and_punctuation() -> ExactMatch {
        ExactMatch {
            ignore: Vec::new(),
            ignore_case: true,
            ignore_punctuation: true,
        }
    }

    /// `text` as it is compared.
    pub fn normalise(&self, text: &str) -> String {
        let mut text = text.to_string();
        for ignore in &self.ignore {
            text = ignore
                .regex
                .replace_all(&text, ignore.replacement)
                .into_owned();
        }
        if self.ignore_case {
            text = text.to_lowercase();
        }
        if self.ignore_punctuation {
            text.retain(|c| !PUNCTUATION.contains(c));
        }
        text.trim_end_matches('\0').to_string()
    }

    /// Whether the prediction counts as the reference.
    pub fn matches(&self, prediction: &str, reference: &str) -> bool {
        self.normalise(prediction) == self.normalise(reference)
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case::plain("18", "18")]
    #[case::negative("-5", "-5")]
    #[case::money_thousands_period("$1,234.", "1234")]
    #[case::final_period_before_newline("5.\n", "5\n")]
    #[case::only_the_last_period("1.5..", "1.5.")]
    #[case::several_dots("1.2.3", "1.2.3")]
    #[case::solution("It is 3 + 4 = 7.\n#### 7", "7")]
    #[case::last_hashes_win("#### 1\n#### 2", "2")]
    #[case::hashes_without_space("####7", "####7")]
    #[case::case_folded("ÉTÉ Ab", "été ab")]
    #[case::invalid("[invalid]", "[invalid]")]
    #[case::empty("", "")]
    #[case::numpy_drops_trailing_nul("7\0", "7")]
    fn gsm8k_normalisation(#[case] text: &str, #[case] expected: &str) {
        let metric = ExactMatch::gsm8k().expect("patterns");
        assert_eq!(metric.normalise(text), expected);
    }

    #[rstest]
    #[case::strict_answer("18", "Janet sells 9 eggs.\n#### 18", true)]
    #[case::thousands("1,000", "So 1000.\n#### 1,000", true)]
    #[case::dollars_and_period("$18.", "#### 18", true)]
    #[case::decimal_zero_is_different("18.0", "#### 18", false)]
    #[case::off_by_one("19", "#### 18", false)]
    #[case::invalid("[invalid]", "#### 18", false)]
    #[case::empty_prediction("", "#### 18", false)]
    #[case::whole_solution_echoed("Steps.\n#### 18", "Other steps.\n#### 18", true)]
    fn gsm8k_matches(#[case] prediction: &str, #[case] reference: &str, #[case] expected: bool) {
        let metric = ExactMatch::gsm8k().expect("patterns");
        assert_eq!(metric.matches(prediction, reference), expected);
    }

    #[rstest]
    #[case("B", "B", true)]
    #[case("b", "B", true)]
    #[case("(B)", "B", true)]
    #[case("B.", "B", true)]
    #[case("C", "B", false)]
    #[case("[invalid]", "B", false)]
    fn letters_ignore_case_and_punctuation(
        #[case] prediction: &str,
        #[case] reference: &str,
        #[case] expected: bool,
    ) {
        let metric = ExactMatch::case_and_punctuation();
        assert_eq!(metric.matches(prediction, reference), expected);
    }
}
