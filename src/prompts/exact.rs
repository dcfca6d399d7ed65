//! Prompts of an exact token length, unique per request from their first token on.
//!
//! A prompt is a run of single-token words of the counter's pool: a start word and index
//! words naming the request, then seeded random filler words. Its length is verified by
//! counting the final text; where a tokenizer does not count a text as the sum of its words,
//! trailing fillers are dropped or added and the text is counted again.

use std::num::NonZeroUsize;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::pool::{WordPool, mix};
use super::tokens::Offline;
use super::{PromptError, TokenCounter};

/// Count-and-adjust rounds before giving up.
const ROUNDS: usize = 24;
/// Rounds that adjust by the whole difference; later ones move one word at a time.
const BIG_STEPS: usize = 4;
/// Prompts per thread below which building in parallel is not worth a thread.
const PER_THREAD: usize = 32;

/// A prompt of exactly `isl` tokens per `counter` (verified by counting the final text), the
/// same text for the same inputs and counter.
///
/// Guarantees, for one counter and seed: the first token differs between any two indices less
/// than the counter's start-word pool apart (up to 256 words: all of them for the words
/// counter, those that are one token at the start of a text for a tokenizer); two different
/// indices give different texts once `isl` leaves room for the index words (1 + ⌈log(index /
/// starts)⌉ words, so 1–3 in practice) and one filler word. Different seeds give different
/// texts with overwhelming probability, not by construction. `isl` 0 gives the empty text.
pub async fn exact_prompt(
    counter: &TokenCounter,
    isl: u32,
    seed: u64,
    index: u64,
) -> Result<String, PromptError> {
    if isl == 0 {
        return Ok(String::new());
    }
    let pool = counter.pool().await?;
    let mut fit = Fit::new(&pool, isl, seed, index);
    loop {
        let text = fit.text();
        let got = counter.count(&text).await?;
        if got == isl {
            return Ok(text);
        }
        fit.adjust(got)
            .map_err(|got| not_exact(counter.label(), isl, got))?;
    }
}

/// [`exact_prompt`] for many indices with a local counter (`None` for the server counter),
/// spread over the machine's cores; results in index order.
pub(crate) async fn exact_prompts_local(
    counter: &TokenCounter,
    isl: u32,
    seed: u64,
    indices: Vec<u64>,
) -> Option<Result<Vec<String>, PromptError>> {
    let items = indices.into_iter().map(|index| (index, isl)).collect();
    exact_prompts_local_each(counter, seed, items).await
}

/// [`exact_prompts_local`] with a length of its own per index: `(index, isl)` pairs.
pub(crate) async fn exact_prompts_local_each(
    counter: &TokenCounter,
    seed: u64,
    items: Vec<(u64, u32)>,
) -> Option<Result<Vec<String>, PromptError>> {
    let indices = items;
    let offline = counter.offline()?;
    let pool = match counter.pool().await {
        Ok(pool) => pool,
        Err(error) => return Some(Err(error)),
    };
    let label = counter.label();
    let work = tokio::task::spawn_blocking(move || {
        let threads = std::thread::available_parallelism()
            .map_or(1, NonZeroUsize::get)
            .min(indices.len() / PER_THREAD)
            .max(1);
        let share = indices.len().div_ceil(threads).max(1);
        let build = |part: &[(u64, u32)]| {
            part.iter()
                .map(|&(index, isl)| exact_local(&offline, &pool, label, isl, seed, index))
                .collect::<Result<Vec<_>, _>>()
        };
        std::thread::scope(|scope| {
            let parts: Vec<_> = indices
                .chunks(share)
                .map(|part| scope.spawn(move || build(part)))
                .collect();
            let mut texts = Vec::with_capacity(indices.len());
            for part in parts {
                match part.join() {
                    Ok(part) => texts.extend(part?),
                    // A bug, never input: fail loudly.
                    Err(panic) => std::panic::resume_unwind(panic),
                }
            }
            Ok(texts)
        })
    });
    Some(match work.await {
        Ok(texts) => texts,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(PromptError::Cancelled),
    })
}

fn exact_local(
    offline: &Offline,
    pool: &WordPool,
    label: &'static str,
    isl: u32,
    seed: u64,
    index: u64,
) -> Result<String, PromptError> {
    if isl == 0 {
        return Ok(String::new());
    }
    let mut fit = Fit::new(pool, isl, seed, index);
    loop {
        let text = fit.text();
        let got = offline.count(&text)?;
        if got == isl {
            return Ok(text);
        }
        fit.adjust(got).map_err(|got| not_exact(label, isl, got))?;
    }
}

/// Salt of the shared prefixes' seed, so that a prefix is not the measured prompt of the same
/// index.
const PREFIX_SALT: u64 = 0x5052_4546_4958;

/// Prompts of exactly `isl` tokens that begin with one of `groups` shared prefixes of exactly
/// `prefix_tokens` tokens (prompt `i` of the `count`, index `index_base + i`, takes prefix `i
/// mod groups`), each followed by a suffix unique to its index: the index words of
/// [`exact_prompt`], then fillers. The prefixes are exact prompts themselves (seeded by the
/// trial's seed, a salt and `index_base`, so warmup prompts share prefixes of their own, not
/// the measured ones'); the whole text is counted again and the suffix adjusted until it is
/// exact.
pub async fn shared_prefix_prompts(
    counter: &TokenCounter,
    prefix_tokens: u32,
    groups: u32,
    isl: u32,
    seed: u64,
    index_base: u64,
    count: usize,
) -> Result<Vec<String>, PromptError> {
    if isl <= prefix_tokens {
        return Err(PromptError::PrefixTooLong {
            prefix: prefix_tokens,
            isl,
        });
    }
    let groups = u64::from(groups.max(1));
    let prefix_seed = mix(seed ^ PREFIX_SALT) ^ mix(index_base);
    let mut prefixes = Vec::new();
    for group in 0..groups.min(count as u64) {
        prefixes.push(exact_prompt(counter, prefix_tokens, prefix_seed, group).await?);
    }
    let pool = counter.pool().await?;
    let mut texts = Vec::with_capacity(count);
    for i in 0..count as u64 {
        let prefix = &prefixes[(i % groups) as usize];
        let mut fit = Fit::new(&pool, isl - prefix_tokens, seed, index_base.wrapping_add(i));
        let text = loop {
            let text = format!("{prefix} {}", fit.text());
            let got = counter.count(&text).await?;
            if got == isl {
                break text;
            }
            fit.adjust(got.saturating_sub(prefix_tokens))
                .map_err(|_| not_exact(counter.label(), isl, got))?;
        };
        texts.push(text);
    }
    Ok(texts)
}

fn not_exact(counter: &'static str, isl: u32, got: u32) -> PromptError {
    PromptError::NotExact { isl, got, counter }
}

/// The words of one prompt being fitted to its length.
struct Fit<'p> {
    pool: &'p WordPool,
    rng: ChaCha8Rng,
    words: Vec<&'static str>,
    isl: u32,
    round: usize,
}

impl<'p> Fit<'p> {
    /// Index words, then fillers up to `isl` words (index words cut if `isl` is smaller).
    fn new(pool: &'p WordPool, isl: u32, seed: u64, index: u64) -> Fit<'p> {
        let mut rng = ChaCha8Rng::seed_from_u64(mix(seed) ^ mix(index.rotate_left(32)));
        let target = isl as usize;
        let mut words = pool.id_words(seed, index);
        words.truncate(target);
        while words.len() < target {
            words.push(pool.filler(&mut rng));
        }
        Fit {
            pool,
            rng,
            words,
            isl,
            round: 0,
        }
    }

    fn text(&self) -> String {
        self.words.join(" ")
    }

    /// Moves towards `isl` after the current text counted `got` tokens; `Err(got)` when it
    /// cannot (too many rounds, or too long with only the first word left).
    fn adjust(&mut self, got: u32) -> Result<(), u32> {
        if self.round == ROUNDS {
            return Err(got);
        }
        let step = if self.round < BIG_STEPS {
            got.abs_diff(self.isl) as usize
        } else {
            1
        };
        self.round += 1;
        if got > self.isl {
            let removable = self.words.len() - 1;
            if removable == 0 {
                return Err(got);
            }
            self.words.truncate(self.words.len() - step.min(removable));
        } else {
            for _ in 0..step {
                let filler = self.pool.filler(&mut self.rng);
                self.words.push(filler);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case(1)]
    #[case(2)]
    #[case(7)]
    #[case(300)]
    #[tokio::test]
    async fn words_prompts_have_isl_words(#[case] isl: u32) {
        let counter = TokenCounter::words();
        let text = exact_prompt(&counter, isl, 3, 9).await.expect("exact");
        assert_eq!(text.split_whitespace().count(), isl as usize);
    }

    #[rstest]
    #[case(8, 1, 20, 3)]
    #[case(16, 4, 40, 9)]
    #[case(1, 2, 2, 5)]
    #[tokio::test]
    async fn shared_prefixes_are_exact_and_followed_by_unique_suffixes(
        #[case] prefix: u32,
        #[case] groups: u32,
        #[case] isl: u32,
        #[case] count: usize,
    ) {
        let counter = TokenCounter::words();
        let texts = shared_prefix_prompts(&counter, prefix, groups, isl, 3, 0, count)
            .await
            .expect("exact");
        let words = |t: &str| t.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        for (i, text) in texts.iter().enumerate() {
            assert_eq!(words(text).len(), isl as usize, "{text}");
            let head = &words(text)[..prefix as usize];
            let other = &texts[i % groups as usize];
            assert_eq!(
                head,
                &words(other)[..prefix as usize],
                "same group, same prefix"
            );
        }
        let unique: std::collections::BTreeSet<&String> = texts.iter().collect();
        assert_eq!(unique.len(), count, "every prompt is unique");
        if groups > 1 {
            assert_ne!(
                words(&texts[0])[..prefix as usize],
                words(&texts[1])[..prefix as usize],
                "groups differ"
            );
        }
        let again = shared_prefix_prompts(&counter, prefix, groups, isl, 3, 0, count)
            .await
            .expect("exact");
        assert_eq!(again, texts, "deterministic");
    }

    #[tokio::test]
    async fn a_prefix_as_long_as_the_prompt_is_refused() {
        let error = shared_prefix_prompts(&TokenCounter::words(), 16, 1, 16, 0, 0, 2)
            .await
            .expect_err("no room");
        assert!(
            error
                .to_string()
                .contains("prefix_tokens is 16 but the ISL is 16"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn zero_tokens_is_the_empty_text() {
        let text = exact_prompt(&TokenCounter::words(), 0, 0, 0).await;
        assert_eq!(text.expect("exact"), "");
    }

    #[tokio::test]
    async fn the_parallel_path_gives_the_same_texts() {
        let counter = TokenCounter::words();
        let indices: Vec<u64> = (0..100).collect();
        let many = exact_prompts_local(&counter, 20, 4, indices.clone())
            .await
            .expect("local counter")
            .expect("exact");
        for (index, text) in indices.into_iter().zip(many) {
            assert_eq!(
                text,
                exact_prompt(&counter, 20, 4, index).await.expect("exact")
            );
        }
    }

    #[tokio::test]
    async fn the_parallel_path_is_for_local_counters_only() {
        let counter = TokenCounter::server(reqwest::Client::new(), "http://127.0.0.1:9", "m");
        assert!(
            exact_prompts_local(&counter, 20, 4, vec![1])
                .await
                .is_none()
        );
    }
}
