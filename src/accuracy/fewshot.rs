//! Python's `random.Random` as far as lm-evaluation-harness uses it to choose few-shot examples:
//! seeding from an integer, `getrandbits`, `_randbelow` and `sample`, draw for draw.
//!
//! lm-eval's default `ContextSampler` keeps one `random.Random(fewshot_seed)` per task and calls
//! `rnd.sample(fewshot_docs, k)` for each evaluated doc in turn; [`PyRandom::sample`] returns the
//! same indices in the same order as CPython (3.11 logic, unchanged since 3.2 for these calls).

use rand_mt::Mt;

/// CPython's Mersenne Twister `random.Random`, seeded from a non-negative integer.
#[derive(Debug, Clone)]
pub struct PyRandom {
    mt: Mt,
}

impl PyRandom {
    /// `random.Random(seed)`: `init_by_array` with the seed's 32-bit words, least significant
    /// first (`[0]` for zero).
    pub fn new(seed: u64) -> PyRandom {
        let low = (seed & 0xFFFF_FFFF) as u32;
        let high = (seed >> 32) as u32;
        let key: Vec<u32> = if high == 0 {
            vec![low]
        } else {
            vec![low, high]
        };
        PyRandom {
            mt: Mt::new_with_key(key),
        }
    }

    /// `getrandbits(k)` for `k` ≤ 64: 32-bit words filled least significant first, the last one
    /// keeping its top `k mod 32` bits.
    pub fn getrandbits(&mut self, k: u32) -> u64 {
        let k = k.min(64);
        let mut result = 0u64;
        let mut filled = 0;
        while filled < k {
            let left = k - filled;
            let mut word = u64::from(self.mt.next_u32());
            if left < 32 {
                word >>= 32 - left;
            }
            result |= word << filled;
            filled += 32;
        }
        result
    }

    /// `_randbelow(n)` (the `getrandbits` variant): draws `n.bit_length()` bits until the value is
    /// below `n`. Returns 0 for `n` = 0 without drawing.
    pub fn randbelow(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let k = u64::BITS - n.leading_zeros();
        loop {
            let r = self.getrandbits(k);
            if r < n {
                return r;
            }
        }
    }

    /// `sample(range(n), k)`: `k` distinct indices below `n` in draw order, or `None` when `k` >
    /// `n` (Python raises `ValueError`).
    ///
    /// CPython keeps a pool (a list it swaps from) when `n` is at most the size a set of `k`
    /// would take, and otherwise re-draws indices already chosen; the two give different
    /// sequences, so both are reproduced.
    pub fn sample(&mut self, n: usize, k: usize) -> Option<Vec<usize>> {
        if k > n {
            return None;
        }
        let mut setsize = 21usize;
        if k > 5 {
            // 4 ** ceil(log(k * 3, 4)), with Python's float logarithm.
            let exponent = ((k as f64 * 3.0).ln() / 4f64.ln()).ceil();
            setsize = setsize.saturating_add(4f64.powf(exponent) as usize);
        }
        let mut result = Vec::with_capacity(k);
        if n <= setsize {
            let mut pool: Vec<usize> = (0..n).collect();
            for i in 0..k {
                let j = self.randbelow((n - i) as u64) as usize;
                result.push(pool[j]);
                pool[j] = pool[n - i - 1];
            }
        } else {
            let mut selected = std::collections::HashSet::with_capacity(k);
            for _ in 0..k {
                let mut j = self.randbelow(n as u64) as usize;
                while selected.contains(&j) {
                    j = self.randbelow(n as u64) as usize;
                }
                selected.insert(j);
                result.push(j);
            }
        }
        Some(result)
    }
}

/// lm-eval's default `ContextSampler`: one [`PyRandom`] for the whole task, drawn from for each
/// evaluated doc in evaluation order. With no shots it draws nothing (lm-eval does not call the
/// sampler then).
#[derive(Debug, Clone)]
pub struct ContextSampler {
    rnd: PyRandom,
    num_fewshot: usize,
}

impl ContextSampler {
    /// A sampler seeded as `random.Random(fewshot_seed)`.
    pub fn new(fewshot_seed: u64, num_fewshot: usize) -> ContextSampler {
        ContextSampler {
            rnd: PyRandom::new(fewshot_seed),
            num_fewshot,
        }
    }

    /// Shots from a separate few-shot split of `population` docs (`rnd.sample(docs, k)`);
    /// `None` when it has fewer than `k`.
    pub fn shots(&mut self, population: usize) -> Option<Vec<usize>> {
        if self.num_fewshot == 0 {
            return Some(Vec::new());
        }
        self.rnd.sample(population, self.num_fewshot)
    }

    /// Shots when the few-shot split is the evaluated split: draws `k + 1` docs, drops those
    /// `is_doc` says equal the evaluated doc (lm-eval compares docs by value), keeps the first
    /// `k`. `None` when the split has fewer than `k + 1` docs.
    pub fn shots_excluding(
        &mut self,
        population: usize,
        is_doc: impl Fn(usize) -> bool,
    ) -> Option<Vec<usize>> {
        if self.num_fewshot == 0 {
            return Some(Vec::new());
        }
        let mut drawn = self.rnd.sample(population, self.num_fewshot + 1)?;
        drawn.retain(|&i| !is_doc(i));
        drawn.truncate(self.num_fewshot);
        Some(drawn)
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    /// `random()` from two draws, as CPython builds it.
    fn random(r: &mut PyRandom) -> f64 {
        let a = r.getrandbits(27) as f64;
        let b = r.getrandbits(26) as f64;
        (a * 67_108_864.0 + b) * (1.0 / 9_007_199_254_740_992.0)
    }

    #[rstest]
    #[case(1234, 0.966_453_535_692_138_8)]
    #[case(42, 0.639_426_798_457_883_7)]
    #[case(0, 0.844_421_851_525_048_1)]
    fn random_matches_python(#[case] seed: u64, #[case] expected: f64) {
        assert_eq!(random(&mut PyRandom::new(seed)), expected);
    }

    #[test]
    fn getrandbits_matches_python() {
        let mut r = PyRandom::new(5);
        assert_eq!(
            [
                r.getrandbits(40),
                r.getrandbits(64),
                r.getrandbits(1),
                r.getrandbits(33)
            ],
            [281_848_216_645, 6_613_812_840_851_947_673, 1, 7_260_413_918]
        );
        assert_eq!(PyRandom::new((1 << 40) + 3).getrandbits(32), 943_978_446);
        assert_eq!(PyRandom::new(0).getrandbits(32), 3_626_764_237);
    }

    #[test]
    fn set_branch_matches_python_for_gsm8k_train() {
        let mut r = PyRandom::new(1234);
        assert_eq!(r.sample(7473, 5), Some(vec![6374, 3610, 957, 61, 742]));
        assert_eq!(r.sample(7473, 5), Some(vec![7462, 6610, 4769, 286, 5501]));
    }

    #[test]
    fn pool_branch_matches_python_for_small_populations() {
        let mut r = PyRandom::new(1234);
        let draws: Vec<_> = (0..3).map(|_| r.sample(20, 2)).collect();
        assert_eq!(
            draws,
            [Some(vec![14, 3]), Some(vec![0, 2]), Some(vec![18, 1])]
        );
        assert_eq!(
            PyRandom::new(1234).sample(10, 10),
            Some(vec![7, 1, 0, 9, 4, 6, 5, 3, 8, 2])
        );
    }

    #[test]
    fn branch_boundaries_match_python() {
        // n = 21, k = 5: pool; n = 22: set; k = 6: the set size grows to 85.
        let mut r = PyRandom::new(7);
        assert_eq!(r.sample(21, 5), Some(vec![10, 4, 12, 1, 2]));
        assert_eq!(r.sample(22, 5), Some(vec![17, 3, 11, 18, 1]));
        assert_eq!(r.sample(85, 6), Some(vec![64, 27, 4, 11, 55, 53]));
        assert_eq!(r.sample(86, 6), Some(vec![8, 30, 11, 70, 54, 7]));
    }

    #[test]
    fn the_sampler_draws_per_doc_from_one_generator() {
        let mut sampler = ContextSampler::new(1234, 5);
        assert_eq!(sampler.shots(7473), Some(vec![6374, 3610, 957, 61, 742]));
        assert_eq!(sampler.shots(7473), Some(vec![7462, 6610, 4769, 286, 5501]));
        assert_eq!(sampler.shots(4), None);
        assert_eq!(ContextSampler::new(1234, 0).shots(0), Some(vec![]));
    }

    #[test]
    fn same_split_shots_drop_the_doc_itself() {
        // Python: random.Random(1234).sample(range(20), 2) == [14, 3], then [0, 2], [18, 1].
        let mut sampler = ContextSampler::new(1234, 1);
        assert_eq!(sampler.shots_excluding(20, |i| i == 14), Some(vec![3]));
        assert_eq!(sampler.shots_excluding(20, |i| i == 5), Some(vec![0]));
        assert_eq!(
            sampler.shots_excluding(20, |i| i == 18 || i == 1),
            Some(vec![])
        );
        assert_eq!(sampler.shots_excluding(1, |_| false), None);
        let mut none = ContextSampler::new(1234, 0);
        assert_eq!(none.shots_excluding(0, |_| true), Some(vec![]));
    }

    #[test]
    fn edge_sizes() {
        let mut r = PyRandom::new(1);
        assert_eq!(r.sample(1, 1), Some(vec![0]));
        assert_eq!(r.sample(3, 0), Some(vec![]));
        assert_eq!(r.sample(3, 4), None);
        assert_eq!(r.randbelow(0), 0);
    }
}
