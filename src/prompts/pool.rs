//! The words exact-length prompts are made of: those of the built-in list that a counter
//! encodes as exactly one token, learnt once per counter.

use futures_util::{StreamExt, TryStreamExt, stream};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{PromptError, TokenCounter, words};

/// Text every candidate group follows, so candidates are counted with a leading space as
/// they appear inside prompts.
const ANCHOR: &str = "the";
/// Candidates counted together in one request; a group that does not come out at one token
/// per word is split in halves.
const GROUP: usize = 64;
/// Candidates tried as the first word of a text (one request each).
const START_CANDIDATES: usize = 256;
/// Start-word counts in flight at once (matters for the server counter only).
const IN_FLIGHT: usize = 8;

/// Single-token words of one counter.
#[derive(Debug)]
pub(crate) struct WordPool {
    /// Words that are one token at the start of a text: the first word of each prompt.
    start: Vec<&'static str>,
    /// Words that name a prompt's index after its first word.
    digits: Vec<&'static str>,
    /// Words that fill the rest, disjoint from `digits` (when there are two or more single-token
    /// words), so the index words end where the first filler starts.
    fillers: Vec<&'static str>,
}

impl WordPool {
    /// Finds the single-token words of the built-in list with `counter`: a few requests for
    /// words inside a text (groups of [`GROUP`]), one per start candidate.
    pub(crate) async fn learn(counter: &TokenCounter) -> Result<WordPool, PromptError> {
        let anchor = counter.count(ANCHOR).await?;
        let mut single = Vec::new();
        let mut groups: Vec<&[&'static str]> = words::COMMON.chunks(GROUP).rev().collect();
        while let Some(group) = groups.pop() {
            let n = counter
                .count(&format!("{ANCHOR} {}", group.join(" ")))
                .await?;
            // Every word is at least one token, so one per word means each is exactly one.
            if n.checked_sub(anchor) == Some(group.len() as u32) {
                single.extend_from_slice(group);
            } else if group.len() > 1 {
                let (head, tail) = group.split_at(group.len() / 2);
                groups.push(tail);
                groups.push(head);
            }
        }
        if single.is_empty() {
            return Err(PromptError::NoSingleTokenWords {
                counter: counter.label(),
            });
        }
        let counts: Vec<(&'static str, u32)> = stream::iter(single.iter().take(START_CANDIDATES))
            .map(|&word| async move { counter.count(word).await.map(|n| (word, n)) })
            .buffered(IN_FLIGHT)
            .try_collect()
            .await?;
        let mut start: Vec<&'static str> = counts
            .into_iter()
            .filter_map(|(word, n)| (n == 1).then_some(word))
            .collect();
        if start.is_empty() {
            // Best effort: the first word takes more than one token; lengths stay exact.
            start.clone_from(&single);
        }
        Ok(WordPool::from_words(start, single))
    }

    /// Fillers are the shorter half of the single-token words (less text to count and send),
    /// index words the longer half.
    fn from_words(start: Vec<&'static str>, single: Vec<&'static str>) -> WordPool {
        let (digits, fillers) = if single.len() >= 2 {
            let mut by_length = single;
            by_length.sort_by_key(|word| word.len());
            let (short, long) = by_length.split_at(by_length.len() / 2);
            (long.to_vec(), short.to_vec())
        } else {
            (single.clone(), single)
        };
        WordPool {
            start,
            digits,
            fillers,
        }
    }

    /// The words naming prompt `index` of a run seeded with `seed`: a start word, different for
    /// any two indices less than `start.len()` apart (rotated by the seed), then the digits of
    /// `index / start.len()` in base `digits.len()`, least significant first (none for 0).
    pub(crate) fn id_words(&self, seed: u64, index: u64) -> Vec<&'static str> {
        let starts = self.start.len() as u64;
        let rotation = mix(seed) % starts;
        let first = ((index % starts) + rotation) % starts;
        let mut ids = vec![self.start[first as usize]];
        let base = self.digits.len() as u64;
        let mut rest = index / starts;
        while rest > 0 {
            ids.push(self.digits[(rest % base) as usize]);
            rest /= base;
        }
        ids
    }

    /// A random filler word.
    pub(crate) fn filler(&self, rng: &mut ChaCha8Rng) -> &'static str {
        self.fillers[rng.random_range(0..self.fillers.len())]
    }
}

/// A well-spread 64-bit hash (SplitMix64's finaliser).
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn pool() -> WordPool {
        WordPool::from_words(vec!["a", "b", "c"], vec!["d", "e", "f", "g"])
    }

    #[test]
    fn index_words_differ_first_within_a_window_and_are_unique() {
        let pool = pool();
        let firsts: HashSet<_> = (10..13).map(|i| pool.id_words(5, i)[0]).collect();
        assert_eq!(firsts.len(), 3);
        let all: HashSet<_> = (0..200).map(|i| pool.id_words(5, i)).collect();
        assert_eq!(all.len(), 200);
        assert_eq!(pool.id_words(5, 7), pool.id_words(5, 7));
    }

    #[test]
    fn digits_and_fillers_are_disjoint() {
        let pool = pool();
        assert!(pool.digits.iter().all(|d| !pool.fillers.contains(d)));
        assert_eq!(pool.digits.len() + pool.fillers.len(), 4);
    }

    #[tokio::test]
    async fn every_listed_word_is_one_word() {
        let pool = WordPool::learn(&TokenCounter::words())
            .await
            .expect("learns");
        assert_eq!(pool.digits.len() + pool.fillers.len(), words::COMMON.len());
        assert_eq!(pool.start.len(), START_CANDIDATES);
    }
}
