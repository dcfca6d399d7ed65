//! Built-in synthetic arithmetic: seeded questions such as `Question: What is 37 + 58 * 2?\nAnswer:`
//! with the integer result as the target, and [`solve`] to answer them from a prompt.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::filter::INVALID;
use super::{AccuracyError, Loaded, Sample, Shot};
use crate::case::{AccuracySpec, ArithmeticSpec, Operator};

/// Stop sequences: the answer is one line.
pub(crate) const STOP: [&str; 3] = ["\n", "</s>", "<|im_end|>"];

/// Questions scored when the case gives no `limit`.
const DEFAULT_LIMIT: u32 = 100;

/// ChaCha stream of the scored questions; the shots come from [`SHOT_STREAM`] of the same seed.
const QUESTION_STREAM: u64 = 0;
/// ChaCha stream of the few-shot examples.
const SHOT_STREAM: u64 = 1;

/// Evaluates the last `What is <expr>?` in `text`: non-negative integers joined by `+`, `-` and
/// `*` (which binds tighter), with optional spaces. `None` when there is no such question, it
/// does not parse, or a value overflows 64 bits.
pub fn solve(question_text: &str) -> Option<i64> {
    let start = question_text.rfind("What is ")? + "What is ".len();
    let rest = &question_text[start..];
    let end = rest.find('?')?;
    evaluate(&rest[..end])
}

/// Evaluates `a op b op c …` with `*` before `+` and `-`, checked. Spaces may surround the
/// numbers and operators.
fn evaluate(expression: &str) -> Option<i64> {
    let mut chars = expression.chars().peekable();
    let skip_spaces = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
    };
    // Sum of the finished terms, and the product being built with its sign.
    let (mut sum, mut term, mut sign) = (0i64, 1i64, 1i64);
    loop {
        skip_spaces(&mut chars);
        let mut value: Option<i64> = None;
        while let Some(digit) = chars.peek().and_then(|c| c.to_digit(10)) {
            value = Some(
                value
                    .unwrap_or(0)
                    .checked_mul(10)?
                    .checked_add(i64::from(digit))?,
            );
            chars.next();
        }
        term = term.checked_mul(value?)?;
        skip_spaces(&mut chars);
        match chars.next() {
            Some('*') => {}
            Some(c @ ('+' | '-')) => {
                sum = sum.checked_add(sign.checked_mul(term)?)?;
                term = 1;
                sign = if c == '+' { 1 } else { -1 };
            }
            None => return sum.checked_add(sign.checked_mul(term)?),
            Some(_) => return None,
        }
    }
}

/// One random question of the given shape: its expression and value.
fn question(rng: &mut ChaCha8Rng, shape: &ArithmeticSpec) -> Result<(String, i64), AccuracyError> {
    let digits = shape.digits.clamp(1, 18);
    let high = 10i64.pow(digits) - 1;
    let low = if digits == 1 {
        0
    } else {
        10i64.pow(digits - 1)
    };
    let mut expression = rng.random_range(low..=high).to_string();
    for _ in 1..shape.operands {
        let operator = shape
            .operators
            .get(rng.random_range(0..shape.operators.len().max(1)))
            .copied()
            .unwrap_or(Operator::Add);
        let operand = rng.random_range(low..=high);
        expression.push_str(&format!(" {} {operand}", operator.symbol()));
    }
    let value = evaluate(&expression).ok_or_else(|| AccuracyError::Overflow {
        question: expression.clone(),
    })?;
    Ok((expression, value))
}

fn text(expression: &str) -> String {
    format!("Question: What is {expression}?\nAnswer:")
}

/// Generates the samples: `limit` questions (100 by default) from the question stream of
/// `seed`, each with `num_fewshot` shots from the shot stream.
pub(crate) fn load(spec: &AccuracySpec) -> Result<Loaded, AccuracyError> {
    let shape = spec.arithmetic.clone().unwrap_or_default();
    let seed = spec.seed.unwrap_or(0);
    let mut questions = ChaCha8Rng::seed_from_u64(seed);
    questions.set_stream(QUESTION_STREAM);
    let mut shot_rng = ChaCha8Rng::seed_from_u64(seed);
    shot_rng.set_stream(SHOT_STREAM);
    let count = spec.limit.unwrap_or(DEFAULT_LIMIT) as usize;
    let mut samples = Vec::with_capacity(count);
    for index in 0..count {
        let mut shots = Vec::new();
        for _ in 0..spec.num_fewshot() {
            let (expression, value) = question(&mut shot_rng, &shape)?;
            shots.push(Shot {
                question: text(&expression),
                answer: value.to_string(),
            });
        }
        let (expression, value) = question(&mut questions, &shape)?;
        let wrong = value.checked_add(1).unwrap_or(value - 1);
        samples.push(Sample {
            id: format!("arithmetic/{index}"),
            doc_index: index,
            shots,
            question: text(&expression),
            target: value.to_string(),
            right_reply: value.to_string(),
            wrong_reply: wrong.to_string(),
            choices: 0,
        });
    }
    Ok(Loaded {
        samples,
        label: "built-in".into(),
    })
}

/// The `first-number` filter: the first run of ASCII digits (with a `-` right before it, and
/// commas between digits, which are dropped), or `[invalid]`.
fn first_number(response: &str) -> String {
    let bytes = response.as_bytes();
    let Some(start) = bytes.iter().position(u8::is_ascii_digit) else {
        return INVALID.to_string();
    };
    let mut number = String::new();
    if start > 0 && bytes[start - 1] == b'-' {
        number.push('-');
    }
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b if b.is_ascii_digit() => number.push(char::from(b)),
            b',' if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {}
            _ => break,
        }
        i += 1;
    }
    number
}

/// (extracted, correct) for the `first-number` filter: correct when it is the target's value.
pub(crate) fn score(target: &str, response: &str) -> (String, bool) {
    let extracted = first_number(response);
    let correct = match (extracted.parse::<i64>(), target.parse::<i64>()) {
        (Ok(got), Ok(want)) => got == want,
        _ => false,
    };
    (extracted, correct)
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::accuracy::Task;
    use crate::accuracy::tests::spec;

    #[rstest]
    #[case::precedence("Question: What is 37 + 58 * 2?\nAnswer:", Some(153))]
    #[case::subtraction_left_to_right("What is 10 - 3 - 2?", Some(5))]
    #[case::negative_result("What is 2 - 3 * 4?", Some(-10))]
    #[case::mixed("What is 2 * 3 + 4 * 5 - 6?", Some(20))]
    #[case::no_spaces("What is 6*7?", Some(42))]
    #[case::spaces_inside_a_number("What is 1 2 + 3?", None)]
    #[case::last_question_counts(
        "What is 1 + 1?\nAnswer: 2\n\nQuestion: What is 3 * 3?\nAnswer:",
        Some(9)
    )]
    #[case::overflow("What is 9999999999 * 9999999999?", None)]
    #[case::overflow_in_literal("What is 99999999999999999999 + 1?", None)]
    #[case::no_question("Hello", None)]
    #[case::unterminated("What is 1 + 2", None)]
    #[case::division("What is 6 / 2?", None)]
    #[case::dangling_operator("What is 6 +?", None)]
    #[case::empty("What is ?", None)]
    fn solving(#[case] text: &str, #[case] expected: Option<i64>) {
        assert_eq!(solve(text), expected);
    }

    #[rstest]
    #[case::plain("42", "42")]
    #[case::negative("-7 apples", "-7")]
    #[case::commas("1,234,567.", "1234567")]
    #[case::trailing_comma("5, then 6", "5")]
    #[case::first_of_several("3 or 4", "3")]
    #[case::in_words("The answer is 12.", "12")]
    #[case::decimal("2.5", "2")]
    #[case::hyphen_not_adjacent("- 7", "7")]
    #[case::none("none", INVALID)]
    #[case::empty("", INVALID)]
    #[case::unicode_before("→ 9", "9")]
    fn first_numbers(#[case] response: &str, #[case] expected: &str) {
        assert_eq!(first_number(response), expected);
    }

    #[rstest]
    #[case("153", "153", true)]
    #[case("153", " 153\n", true)]
    #[case("153", "0153", true)]
    #[case("153", "154", false)]
    #[case("-4", "-4", true)]
    #[case("-4", "4", false)]
    #[case("153", "", false)]
    fn scoring(#[case] target: &str, #[case] response: &str, #[case] correct: bool) {
        assert_eq!(score(target, response).1, correct);
    }

    #[test]
    fn generated_questions_have_the_asked_shape_and_solve() {
        let task = Task::from_spec(
            &spec("task: synthetic_arithmetic\nlimit: 500\nseed: 9\narithmetic: {operands: 3, digits: 2, operators: [\"+\", \"*\"]}\n"),
            std::path::Path::new("."),
        )
        .expect("task");
        assert_eq!(task.samples().len(), 500);
        for sample in task.samples() {
            assert_eq!(sample.shots.len(), 3);
            let expression = sample
                .question
                .strip_prefix("Question: What is ")
                .and_then(|q| q.strip_suffix("?\nAnswer:"))
                .expect("question form");
            let parts: Vec<&str> = expression.split(' ').collect();
            assert_eq!(parts.len(), 5, "{expression}");
            for (i, part) in parts.iter().enumerate() {
                if i % 2 == 0 {
                    assert_eq!(part.len(), 2, "{expression}");
                } else {
                    assert!(["+", "*"].contains(part), "{expression}");
                }
            }
            assert_eq!(
                solve(&sample.prompt()).map(|v| v.to_string()),
                Some(sample.target.clone())
            );
            for shot in &sample.shots {
                assert_eq!(
                    solve(&shot.question).map(|v| v.to_string()),
                    Some(shot.answer.clone())
                );
            }
        }
    }

    #[rstest]
    #[case::defaults("task: synthetic_arithmetic\n")]
    #[case::one_digit(
        "task: synthetic_arithmetic\nlimit: 300\narithmetic: {operands: 6, digits: 1}\n"
    )]
    #[case::largest_products(
        "task: synthetic_arithmetic\nlimit: 300\narithmetic: {operands: 3, digits: 6, operators: [\"*\"]}\n"
    )]
    #[case::long_sums(
        "task: synthetic_arithmetic\nlimit: 300\narithmetic: {operands: 6, digits: 6, operators: [\"+\", \"-\"]}\n"
    )]
    fn every_generated_question_solves(#[case] yaml: &str) {
        let task = Task::from_spec(&spec(yaml), std::path::Path::new(".")).expect("task");
        for sample in task.samples() {
            assert_eq!(
                solve(&sample.question).map(|v| v.to_string()),
                Some(sample.target.clone()),
                "{}",
                sample.question
            );
        }
    }

    #[test]
    fn seeds_and_streams() {
        let build =
            |yaml: &str| Task::from_spec(&spec(yaml), std::path::Path::new(".")).expect("task");
        let a = build("task: synthetic_arithmetic\nlimit: 20\n");
        let b = build("task: synthetic_arithmetic\nlimit: 20\nseed: 0\n");
        let c = build("task: synthetic_arithmetic\nlimit: 20\nseed: 1\n");
        assert_eq!(a.samples(), b.samples());
        assert_ne!(a.samples(), c.samples());
        // Shots come from another stream than the scored questions.
        let scored: Vec<&str> = a.samples().iter().map(|s| s.question.as_str()).collect();
        let shots: Vec<&str> = a
            .samples()
            .iter()
            .flat_map(|s| s.shots.iter().map(|s| s.question.as_str()))
            .collect();
        assert_ne!(&shots[..20], &scored[..]);
        // Without shots the scored questions stay the same.
        let no_shots = build("task: synthetic_arithmetic\nlimit: 20\nnum_fewshot: 0\n");
        let unshot: Vec<&str> = no_shots
            .samples()
            .iter()
            .map(|s| s.question.as_str())
            .collect();
        assert_eq!(unshot, scored);
    }
}
