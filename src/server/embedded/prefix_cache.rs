//! The embedded server's prefix cache (`server.embedded.prefix_cache: true`), modelled as
//! vLLM's automatic prefix caching is: a prompt is cut into blocks of [`BLOCK_TOKENS`] tokens
//! (words, as the embedded server counts them), each block named by a hash chained over every
//! block before it, and a prompt's cached tokens are its leading full blocks already seen. The
//! engine skips their prefill (`prefill_us_per_token`). A prefix counts as cached from the
//! moment a request carrying it arrives (not when its prefill ends), and nothing is evicted
//! until [`MAX_BLOCKS`] blocks are held, when the cache starts again empty.

use std::collections::HashSet;
use std::fmt::Write;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Tokens per cached block (vLLM's default block size).
pub const BLOCK_TOKENS: usize = 16;
/// Blocks held before the cache is emptied, so its memory stays bounded.
pub const MAX_BLOCKS: usize = 1 << 20;

/// Cached blocks and the counters `/metrics` reports (vLLM's names).
#[derive(Debug, Default)]
pub struct PrefixCache {
    blocks: Mutex<HashSet<u64>>,
    queries: AtomicU64,
    hits: AtomicU64,
}

impl PrefixCache {
    /// Looks `prompt` up: returns how many of its leading tokens were cached, and caches all
    /// of its full blocks.
    pub fn admit(&self, prompt: &str) -> u64 {
        let words: Vec<&str> = prompt.split_whitespace().collect();
        let mut chain = DefaultHasher::new();
        let hashes: Vec<u64> = words
            .chunks_exact(BLOCK_TOKENS)
            .map(|block| {
                block.hash(&mut chain);
                chain.finish()
            })
            .collect();
        // A poisoned lock only means another request panicked mid-update; the set is usable.
        let mut blocks = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
        let cached = hashes.iter().take_while(|h| blocks.contains(h)).count() * BLOCK_TOKENS;
        if blocks.len() + hashes.len() > MAX_BLOCKS {
            blocks.clear();
        }
        blocks.extend(hashes);
        drop(blocks);
        self.queries
            .fetch_add(words.len() as u64, Ordering::Relaxed);
        self.hits.fetch_add(cached as u64, Ordering::Relaxed);
        cached as u64
    }

    /// vLLM's prefix-cache counters in the exposition format.
    pub fn render(&self, model: &str, text: &mut String) {
        for (name, help, value) in [
            (
                "vllm:prefix_cache_queries_total",
                "Prompt tokens looked up in the prefix cache.",
                &self.queries,
            ),
            (
                "vllm:prefix_cache_hits_total",
                "Prompt tokens found in the prefix cache.",
                &self.hits,
            ),
        ] {
            // Writing to a String cannot fail.
            let _ = write!(
                text,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name}{{model_name=\"{model}\"}} {}\n",
                value.load(Ordering::Relaxed)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn words(prefix: &str, n: usize) -> String {
        (0..n)
            .map(|i| format!("{prefix}{i}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[rstest]
    #[case::a_new_prompt(&[], 40, 0)]
    #[case::the_same_prompt_again(&["a"], 40, 32)]
    #[case::a_partial_block_is_not_cached(&["a"], 15, 0)]
    #[case::only_leading_blocks_count(&["b"], 40, 0)]
    fn leading_full_blocks_already_seen_are_cached(
        #[case] seen: &[&str],
        #[case] length: usize,
        #[case] cached: u64,
    ) {
        let cache = PrefixCache::default();
        for prefix in seen {
            let other = format!("{} {}", words("x", 1), words(prefix, 40));
            let other = if *prefix == "a" {
                words("a", 40)
            } else {
                other
            };
            cache.admit(&other);
        }
        assert_eq!(cache.admit(&words("a", length)), cached);
    }

    #[test]
    fn a_shared_prefix_is_cached_up_to_where_the_prompts_part() {
        let cache = PrefixCache::default();
        let prefix = words("p", 64);
        assert_eq!(cache.admit(&format!("{prefix} {}", words("s", 20))), 0);
        assert_eq!(cache.admit(&format!("{prefix} {}", words("t", 20))), 64);
        let mut text = String::new();
        cache.render("m", &mut text);
        assert!(
            text.contains("vllm:prefix_cache_hits_total{model_name=\"m\"} 64"),
            "{text}"
        );
        assert!(
            text.contains("vllm:prefix_cache_queries_total{model_name=\"m\"} 168"),
            "{text}"
        );
    }
}
