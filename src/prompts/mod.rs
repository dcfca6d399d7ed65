//! Prompts for load runs: seeded, reproducible, unique per request.
//!
//! Lengths are approximate here: a prompt of ISL words, each a common English word that most
//! tokenizers encode as one token (the embedded server counts words, so it sees exactly ISL).

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const WORDS: &[&str] = &[
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by",
    "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an",
    "had", "they", "you", "were", "their", "one", "all", "we", "can", "her", "has", "there",
    "been", "if", "more", "when", "will", "would", "who", "so", "no", "time", "people", "year",
    "way", "day", "man", "thing", "woman", "life", "child", "world", "school", "state", "family",
    "student", "group", "country", "problem", "hand", "part", "place", "case", "week", "company",
    "system", "program", "question", "work", "number", "night", "point", "home", "water", "room",
    "mother", "area", "money", "story", "fact", "month", "lot", "right", "study", "book", "eye",
    "job", "word", "business", "issue", "side", "kind", "head", "house", "service", "friend",
    "father", "power", "hour", "game", "line", "end", "member", "law", "car", "city", "name",
];

/// A prompt of `isl` words for request `index` of a run seeded with `seed`. The first word
/// differs per request, so a prefix cache cannot serve one request from another.
pub fn synthetic_prompt(isl: u32, seed: u64, index: u64) -> String {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut words: Vec<&str> = Vec::with_capacity(isl as usize);
    let marker = format!("r{index}x{}", rng.random::<u32>());
    for _ in 1..isl {
        words.push(WORDS.choose(&mut rng).copied().unwrap_or("the"));
    }
    if isl == 0 {
        return String::new();
    }
    let mut prompt = marker;
    for word in words {
        prompt.push(' ');
        prompt.push_str(word);
    }
    prompt
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_have_isl_words_are_reproducible_and_unique() {
        let a = synthetic_prompt(128, 7, 0);
        assert_eq!(a.split_whitespace().count(), 128);
        assert_eq!(a, synthetic_prompt(128, 7, 0));
        assert_ne!(a, synthetic_prompt(128, 7, 1));
        assert_ne!(a, synthetic_prompt(128, 8, 0));
        assert_eq!(synthetic_prompt(1, 0, 0).split_whitespace().count(), 1);
        assert_eq!(synthetic_prompt(0, 0, 0), "");
    }
}
