//! Bins on predicted output length with equal-mass boundaries.

use crate::error::SimError;

/// `K − 1` increasing thresholds cutting predicted output lengths into `K` bins: bin `j` holds
/// lengths in `[t_{j−1}, t_j)` (with `t_{−1} = 0`, `t_{K−1} = ∞`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BinBoundaries {
    thresholds: Vec<u32>,
}

impl BinBoundaries {
    /// One bin holding every length.
    pub fn single() -> BinBoundaries {
        BinBoundaries::default()
    }

    /// Bins from explicit thresholds, which must increase strictly.
    pub fn from_thresholds(thresholds: Vec<u32>) -> Result<BinBoundaries, SimError> {
        if thresholds.windows(2).any(|w| w[0] >= w[1]) {
            return Err(SimError::invalid(
                "bins",
                format!("thresholds must increase strictly: {thresholds:?}"),
            ));
        }
        Ok(BinBoundaries { thresholds })
    }

    /// `k` bins of equal mass under the distribution `sample` comes from: the thresholds are
    /// the sample's `j/k` quantiles (`j = 1 … k − 1`, the element at index `⌊j·n/k⌋` of the
    /// sorted sample). Repeated quantiles (a discrete distribution) merge, so there may be
    /// fewer than `k` bins.
    pub fn equal_mass(k: usize, sample: &[u32]) -> Result<BinBoundaries, SimError> {
        if k == 0 {
            return Err(SimError::invalid("bins", "must be at least 1"));
        }
        if k > 1 && sample.is_empty() {
            return Err(SimError::invalid(
                "bins",
                "equal-mass boundaries need a sample of predicted lengths",
            ));
        }
        let mut sorted = sample.to_vec();
        sorted.sort_unstable();
        let mut thresholds: Vec<u32> = (1..k).map(|j| sorted[j * sorted.len() / k]).collect();
        thresholds.dedup();
        Ok(BinBoundaries { thresholds })
    }

    /// Number of bins.
    pub fn count(&self) -> usize {
        self.thresholds.len() + 1
    }

    /// The thresholds.
    pub fn thresholds(&self) -> &[u32] {
        &self.thresholds
    }

    /// The bin of a predicted output length.
    pub fn bin_of(&self, predicted: u32) -> usize {
        self.thresholds.partition_point(|&t| t <= predicted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_mass_quartiles_of_a_uniform_sample() {
        let sample: Vec<u32> = (1..=100).collect();
        let bins = BinBoundaries::equal_mass(4, &sample).unwrap();
        assert_eq!(bins.thresholds(), [26, 51, 76]);
        let counts = sample.iter().fold([0; 4], |mut c, &l| {
            c[bins.bin_of(l)] += 1;
            c
        });
        assert_eq!(counts, [25, 25, 25, 25]);
    }

    #[test]
    fn repeated_quantiles_merge_and_one_bin_takes_everything() {
        let bins = BinBoundaries::equal_mass(8, &[5; 100]).unwrap();
        assert_eq!(bins.count(), 2);
        assert_eq!(BinBoundaries::single().bin_of(123_456), 0);
        assert!(BinBoundaries::equal_mass(0, &[1]).is_err());
        assert!(BinBoundaries::from_thresholds(vec![3, 3]).is_err());
    }
}
