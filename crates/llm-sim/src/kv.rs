//! KV-cache capacity in blocks, and the block count of a set of sequences that all grow by one
//! token per step, in closed form.

use super::error::SimError;

/// A replica's KV cache: `capacity_blocks` blocks of `block_size` tokens (block size 1 counts
/// tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvGeometry {
    /// Tokens per block.
    pub block_size: u32,
    /// Blocks in the cache.
    pub capacity_blocks: u64,
}

impl KvGeometry {
    /// A cache of `capacity_tokens` tokens cut into whole blocks of `block_size`.
    pub fn from_tokens(capacity_tokens: u64, block_size: u32) -> Result<KvGeometry, SimError> {
        if block_size == 0 {
            return Err(SimError::invalid("kv.block_size", "must be at least 1"));
        }
        let capacity_blocks = capacity_tokens / u64::from(block_size);
        if capacity_blocks == 0 {
            return Err(SimError::invalid(
                "kv.capacity_tokens",
                format!("{capacity_tokens} tokens is less than one block of {block_size}"),
            ));
        }
        Ok(KvGeometry {
            block_size,
            capacity_blocks,
        })
    }

    /// Blocks that `tokens` tokens of one sequence take: `⌈tokens / block_size⌉`.
    pub fn blocks(&self, tokens: u64) -> u64 {
        tokens.div_ceil(u64::from(self.block_size))
    }

    /// Capacity in tokens.
    pub fn capacity_tokens(&self) -> u64 {
        self.capacity_blocks * u64::from(self.block_size)
    }
}

/// The blocks held by a set of decoding sequences that each grow by one token per step.
///
/// A sequence joining at step counter `c₀` with `l` tokens holds `l + (c − c₀)` tokens at
/// counter `c`, i.e. `offset + c` with `offset = l − c₀`. Writing
/// `offset + B − 1 = B·q + r` (`0 ≤ r < B`), its blocks at counter `c = B·m + s` are
/// `⌊(offset + c + B − 1) / B⌋ = q + m + [r + s ≥ B]`, so the whole set holds
/// `Σq + n·m + #{r ≥ B − s}` blocks: kept as the sum of the `q` and a count per residue `r`,
/// the block count at any counter costs O(B), and so does finding the first counter at which
/// it exceeds a capacity.
#[derive(Debug, Clone)]
pub struct GrowingBlocks {
    block: i64,
    members: u64,
    quotient_sum: i64,
    residues: Vec<u64>,
}

impl GrowingBlocks {
    /// An empty set for blocks of `block_size` tokens.
    pub fn new(block_size: u32) -> GrowingBlocks {
        GrowingBlocks {
            block: i64::from(block_size.max(1)),
            members: 0,
            quotient_sum: 0,
            residues: vec![0; block_size.max(1) as usize],
        }
    }

    fn split(&self, offset: i64) -> (i64, usize) {
        let v = offset + self.block - 1;
        (v.div_euclid(self.block), v.rem_euclid(self.block) as usize)
    }

    /// Adds a sequence holding `offset + c` tokens at counter `c`.
    pub fn insert(&mut self, offset: i64) {
        let (q, r) = self.split(offset);
        self.members += 1;
        self.quotient_sum += q;
        self.residues[r] += 1;
    }

    /// Removes a sequence added with `offset`.
    pub fn remove(&mut self, offset: i64) {
        let (q, r) = self.split(offset);
        self.members -= 1;
        self.quotient_sum -= q;
        self.residues[r] -= 1;
    }

    /// Sequences in the set.
    pub fn len(&self) -> u64 {
        self.members
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.members == 0
    }

    /// Blocks held at step counter `counter`.
    pub fn blocks_at(&self, counter: u64) -> u64 {
        let c = counter as i64;
        let (m, s) = (c.div_euclid(self.block), c.rem_euclid(self.block));
        let crossing: u64 = self.residues[(self.block - s) as usize..].iter().sum();
        let total = self.quotient_sum + self.members as i64 * m + crossing as i64;
        total.max(0) as u64
    }

    /// The first counter `c ≥ from` at which the set holds more than `available` blocks, or
    /// `None` when it is empty (it never grows).
    pub fn first_overflow(&self, from: u64, available: u64) -> Option<u64> {
        if self.members == 0 {
            return None;
        }
        if self.blocks_at(from) > available {
            return Some(from);
        }
        // At s = 0 the count is Σq + n·m; m₁ is the first m where that alone overflows.
        let n = self.members as i64;
        let room = available as i64 - self.quotient_sum;
        let m1 = room.div_euclid(n) + 1;
        let base = self.quotient_sum + n * (m1 - 1);
        // Within block m₁ − 1, the residues r ≥ B − s add one block each as s grows.
        let mut crossing = 0i64;
        for s in 1..self.block {
            crossing += self.residues[(self.block - s) as usize] as i64;
            if base + crossing > available as i64 {
                return Some(((m1 - 1) * self.block + s).max(from as i64) as u64);
            }
        }
        Some((m1 * self.block).max(from as i64) as u64)
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn brute(offsets: &[i64], block: u64, counter: u64) -> u64 {
        offsets
            .iter()
            .map(|&o| ((o + counter as i64) as u64).div_ceil(block))
            .sum()
    }

    #[rstest]
    #[case::tokens(1)]
    #[case::blocks_of_16(16)]
    #[case::blocks_of_7(7)]
    fn block_counts_match_a_direct_count(#[case] block: u32) {
        let offsets = [5i64, 17, 33, -3, 100, 1, 16];
        let mut set = GrowingBlocks::new(block);
        for &o in &offsets {
            set.insert(o);
        }
        for counter in 3..200 {
            assert_eq!(
                set.blocks_at(counter),
                brute(&offsets, u64::from(block), counter),
                "counter {counter}"
            );
        }
        for available in [40, 41, 55, 100, 333] {
            let expected = (3..10_000).find(|&c| brute(&offsets, u64::from(block), c) > available);
            assert_eq!(
                set.first_overflow(3, available),
                expected,
                "available {available}"
            );
        }
        set.remove(-3);
        set.remove(100);
        let rest = [5i64, 17, 33, 1, 16];
        assert_eq!(set.blocks_at(50), brute(&rest, u64::from(block), 50));
    }

    #[test]
    fn empty_set_never_overflows() {
        assert_eq!(GrowingBlocks::new(16).first_overflow(0, 0), None);
    }

    #[test]
    fn geometry_refuses_a_cache_smaller_than_a_block() {
        assert!(KvGeometry::from_tokens(15, 16).is_err());
        assert!(KvGeometry::from_tokens(15, 0).is_err());
        let g = KvGeometry::from_tokens(100, 16).unwrap();
        assert_eq!((g.capacity_blocks, g.blocks(17)), (6, 2));
    }
}
