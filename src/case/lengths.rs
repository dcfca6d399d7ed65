//! Per-request length spreads (`prompts.isl_dist`, `prompts.osl_dist`): each request of a
//! trial draws its own ISL or OSL from a distribution instead of taking the matrix's one
//! value. The matrix's value stays the trial's nominal length (context fitting, the name's
//! `isl…`/`osl…` part); every draw must fit under it (a draw is never longer than the
//! distribution's `max`, and `max` must be at most the nominal length).

use serde::{Deserialize, Serialize};

/// A distribution of lengths in tokens. Draws are rounded to whole tokens and clipped to
/// `[min, max]` (clipping, not resampling: the excess piles up at the bounds).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(tag = "dist", rename_all = "snake_case", deny_unknown_fields)]
pub enum LengthDist {
    /// Every length in `[min, max]` equally likely.
    Uniform {
        /// Shortest length.
        #[serde(deserialize_with = "super::limits::tokens")]
        min: u32,
        /// Longest length.
        #[serde(deserialize_with = "super::limits::tokens")]
        max: u32,
    },
    /// Normal with this mean and standard deviation, clipped to `[min, max]`.
    Normal {
        /// Mean length before clipping.
        mean: f64,
        /// Standard deviation before clipping.
        std: f64,
        /// Shortest length.
        #[serde(deserialize_with = "super::limits::tokens")]
        min: u32,
        /// Longest length.
        #[serde(deserialize_with = "super::limits::tokens")]
        max: u32,
    },
    /// Log-normal whose *length* has this mean and standard deviation (not those of its
    /// logarithm), clipped to `[min, max]`: a long right tail, as real prompt lengths have.
    Lognormal {
        /// Mean length before clipping.
        mean: f64,
        /// Standard deviation before clipping.
        std: f64,
        /// Shortest length.
        #[serde(deserialize_with = "super::limits::tokens")]
        min: u32,
        /// Longest length.
        #[serde(deserialize_with = "super::limits::tokens")]
        max: u32,
    },
}

impl LengthDist {
    /// The shortest length a draw can take.
    pub fn min(&self) -> u32 {
        match *self {
            LengthDist::Uniform { min, .. }
            | LengthDist::Normal { min, .. }
            | LengthDist::Lognormal { min, .. } => min,
        }
    }

    /// The longest length a draw can take.
    pub fn max(&self) -> u32 {
        match *self {
            LengthDist::Uniform { max, .. }
            | LengthDist::Normal { max, .. }
            | LengthDist::Lognormal { max, .. } => max,
        }
    }

    /// The name's part after `isl`/`osl`: `64-512u` (uniform), `64-512n256s64` (normal, mean
    /// 256, std 64), `64-512l256s64` (log-normal). Only digits, `-`, `.` and letters.
    pub fn slug(&self) -> String {
        match *self {
            LengthDist::Uniform { min, max } => format!("{min}-{max}u"),
            LengthDist::Normal {
                mean,
                std,
                min,
                max,
            } => format!("{min}-{max}n{mean}s{std}"),
            LengthDist::Lognormal {
                mean,
                std,
                min,
                max,
            } => format!("{min}-{max}l{mean}s{std}"),
        }
    }

    /// What is wrong with the distribution, if anything (the caller names the key).
    pub fn problem(&self) -> Option<String> {
        let (min, max) = (self.min(), self.max());
        if min == 0 {
            return Some("`min` must be at least 1".into());
        }
        if min > max {
            return Some(format!("`min` ({min}) is more than `max` ({max})"));
        }
        match *self {
            LengthDist::Uniform { .. } => None,
            LengthDist::Normal { mean, std, .. } | LengthDist::Lognormal { mean, std, .. } => {
                let finite = mean.is_finite() && std.is_finite();
                if !finite || std < 0.0 || !(f64::from(min)..=f64::from(max)).contains(&mean) {
                    Some(format!(
                        "`mean` must be a number within [min, max] = [{min}, {max}] and `std` \
                         a finite number ≥ 0 (got mean {mean}, std {std})"
                    ))
                } else {
                    None
                }
            }
        }
    }
}

/// Whether a trial's name (`case::slug`) carries a length-distribution suffix
/// (`…_isl64-512u`, `…_osl16-64n32s8`): its requests' lengths are spread, so its ISL is a
/// nominal value, not the length every request had. A multi-turn trial's (`…_turns3`) too.
pub fn name_has_spread(trial: &str) -> bool {
    let slug = trial.rsplit("::").next().unwrap_or(trial);
    // Multi-turn conversations (`_turns3`): later turns carry the history, so their prompts
    // are longer than the ISL too.
    let turns = slug.match_indices("_turns").any(|(at, _)| {
        slug[at + "_turns".len()..]
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_digit())
    });
    turns
        || ["_isl", "_osl"].iter().any(|tag| {
            slug.match_indices(tag).any(|(at, _)| {
                let rest = &slug[at + tag.len()..];
                let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
                digits > 0 && rest[digits..].starts_with('-')
            })
        })
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn parse(text: &str) -> LengthDist {
        crate::case::load::parse_yaml(std::path::Path::new("d.yaml"), text).expect("parses")
    }

    #[rstest]
    #[case("{dist: uniform, min: 64, max: 512}", "64-512u")]
    #[case(
        "{dist: normal, mean: 256, std: 64, min: 64, max: 512}",
        "64-512n256s64"
    )]
    #[case(
        "{dist: normal, mean: 256.5, std: 0, min: 1, max: 512}",
        "1-512n256.5s0"
    )]
    #[case(
        "{dist: lognormal, mean: 300, std: 150, min: 16, max: 4096}",
        "16-4096l300s150"
    )]
    fn slugs_say_the_shape(#[case] text: &str, #[case] slug: &str) {
        let dist = parse(text);
        assert_eq!(dist.problem(), None);
        assert_eq!(dist.slug(), slug);
    }

    #[rstest]
    #[case("c::isl128_osl64_c4_n8", false)]
    #[case("my-case-2::isl128_osl64_r2.5_n8", false)]
    #[case("c::isl512_osl64_c4_n8_isl64-512u", true)]
    #[case("c::isl512_osl64_same_n8_osl16-64n32s8", true)]
    #[case("c::isl128_osl16_c2_n12_turns3u32", true)]
    #[case("c::isl128_osl16_c2_n12_turnsx", false)]
    fn names_say_whether_lengths_are_spread(#[case] name: &str, #[case] spread: bool) {
        assert_eq!(name_has_spread(name), spread);
    }

    #[rstest]
    #[case("{dist: uniform, min: 0, max: 8}", "`min` must be at least 1")]
    #[case("{dist: uniform, min: 9, max: 8}", "`min` (9) is more than `max` (8)")]
    #[case(
        "{dist: normal, mean: 600, std: 8, min: 1, max: 512}",
        "`mean` must be"
    )]
    #[case(
        "{dist: normal, mean: 60, std: -1, min: 1, max: 512}",
        "`std` a finite"
    )]
    #[case(
        "{dist: lognormal, mean: 0.5, std: 1, min: 1, max: 512}",
        "`mean` must be"
    )]
    fn bad_distributions_say_why(#[case] text: &str, #[case] message: &str) {
        let problem = parse(text).problem().expect("a problem");
        assert!(problem.contains(message), "{problem}");
    }
}
