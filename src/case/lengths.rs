//! Per-request length spreads (`prompts.isl_dist`, `prompts.osl_dist`): each request of a
//! trial draws its own ISL or OSL from a distribution instead of taking the matrix's one
//! value. The matrix's value stays the trial's nominal length (context fitting, the name's
//! `isl…`/`osl…` part); every draw must fit under it (a draw is never longer than the
//! distribution's `max`, and `max` must be at most the nominal length).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Most bins of an empirical histogram.
pub const MAX_BINS: usize = 10_000;

/// One bin of an empirical length histogram: lengths `min..=max`, drawn with a probability
/// proportional to `weight` (a count or a share), uniformly within the bin.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Bin {
    /// Shortest length of the bin.
    #[serde(deserialize_with = "super::limits::tokens")]
    pub min: u32,
    /// Longest length of the bin.
    #[serde(deserialize_with = "super::limits::tokens")]
    pub max: u32,
    /// Relative weight: a count of observed requests, or a share.
    pub weight: f64,
}

/// A distribution of lengths in tokens. Draws are rounded to whole tokens and clipped to
/// `[min, max]` (clipping, not resampling: the excess piles up at the bounds).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
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
    /// An empirical histogram, such as the lengths of a production log: `bins` inline, or
    /// `file`, a CSV file (relative to the case) of `min,max,weight` rows, or of
    /// `length,count` rows (one length per bin), read when the case is loaded.
    Histogram {
        /// The bins (filled from `file` when the case is loaded).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        bins: Vec<Bin>,
        /// The CSV file the bins come from.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file: Option<PathBuf>,
    },
}

/// Why a histogram file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum HistogramFileError {
    /// Both `bins` and `file`.
    #[error("give `bins` or `file`, not both")]
    Both,
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A row or the header is not what the format says.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the row.
        message: String,
    },
}

impl LengthDist {
    /// Reads a histogram's `file` (relative to `case_dir`) into its bins; other distributions
    /// and inline histograms are left as they are.
    pub fn load_file(&mut self, case_dir: &Path) -> Result<(), HistogramFileError> {
        let LengthDist::Histogram { bins, file } = self else {
            return Ok(());
        };
        let Some(file) = file else {
            return Ok(());
        };
        if !bins.is_empty() {
            return Err(HistogramFileError::Both);
        }
        let path = case_dir.join(&*file);
        let bytes = super::files::read_regular(&path, super::files::MAX_DATASET_BYTES).map_err(
            |source| HistogramFileError::Read {
                path: path.clone(),
                source,
            },
        )?;
        *bins = parse_bins(&bytes).map_err(|message| HistogramFileError::Format {
            path: path.clone(),
            message,
        })?;
        Ok(())
    }

    /// The shortest length a draw can take.
    pub fn min(&self) -> u32 {
        match self {
            LengthDist::Uniform { min, .. }
            | LengthDist::Normal { min, .. }
            | LengthDist::Lognormal { min, .. } => *min,
            LengthDist::Histogram { bins, .. } => bins.iter().map(|b| b.min).min().unwrap_or(0),
        }
    }

    /// The longest length a draw can take.
    pub fn max(&self) -> u32 {
        match self {
            LengthDist::Uniform { max, .. }
            | LengthDist::Normal { max, .. }
            | LengthDist::Lognormal { max, .. } => *max,
            LengthDist::Histogram { bins, .. } => bins.iter().map(|b| b.max).max().unwrap_or(0),
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
            LengthDist::Histogram { ref bins, .. } => {
                format!("{}-{}h{}", self.min(), self.max(), bins.len())
            }
        }
    }

    /// What is wrong with the distribution, if anything (the caller names the key).
    pub fn problem(&self) -> Option<String> {
        if let LengthDist::Histogram { bins, file } = self {
            return histogram_problem(bins, file.as_deref());
        }
        let (min, max) = (self.min(), self.max());
        if min == 0 {
            return Some("`min` must be at least 1".into());
        }
        if min > max {
            return Some(format!("`min` ({min}) is more than `max` ({max})"));
        }
        match *self {
            LengthDist::Uniform { .. } | LengthDist::Histogram { .. } => None,
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

/// What is wrong with a histogram's bins, if anything.
fn histogram_problem(bins: &[Bin], file: Option<&Path>) -> Option<String> {
    if bins.is_empty() {
        return Some(match file {
            Some(file) => format!("{} holds no bin", file.display()),
            None => "a histogram needs `bins` (a list of {min, max, weight}) or `file`".into(),
        });
    }
    if bins.len() > MAX_BINS {
        return Some(format!(
            "{} bins, more than the cap of {MAX_BINS}",
            bins.len()
        ));
    }
    for (i, bin) in bins.iter().enumerate() {
        if bin.min == 0 || bin.min > bin.max {
            return Some(format!(
                "bin {i} (min {}, max {}): lengths must be at least 1 and `min` at most `max`",
                bin.min, bin.max
            ));
        }
        if !(bin.weight.is_finite() && bin.weight >= 0.0) {
            return Some(format!(
                "bin {i}: `weight` must be a finite number ≥ 0 (got {})",
                bin.weight
            ));
        }
    }
    if bins.iter().map(|b| b.weight).sum::<f64>() <= 0.0 {
        return Some("the bins' weights add up to 0".into());
    }
    None
}

/// The bins of a histogram CSV file: a header `min,max,weight` and one bin per row, or a
/// header `length,count` and one length per row.
fn parse_bins(bytes: &[u8]) -> Result<Vec<Bin>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(bytes);
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| format!("cannot read the header: {e}"))?
        .iter()
        .map(str::to_ascii_lowercase)
        .collect();
    let ranged = match header.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["min", "max", "weight"] => true,
        ["length", "count"] => false,
        _ => {
            return Err(format!(
                "the header is `{}`; expected `min,max,weight` or `length,count`",
                header.join(",")
            ));
        }
    };
    let mut bins = Vec::new();
    for (row, record) in reader.records().enumerate() {
        let line = row + 2;
        let record = record.map_err(|e| format!("line {line}: {e}"))?;
        let number = |i: usize| -> Result<f64, String> {
            let field = record.get(i).unwrap_or_default();
            field
                .parse::<f64>()
                .map_err(|_| format!("line {line}: `{field}` is not a number"))
        };
        let length = |i: usize| -> Result<u32, String> {
            let value = number(i)?;
            if value.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&value) {
                Ok(value as u32)
            } else {
                Err(format!(
                    "line {line}: `{value}` is not a whole number of tokens"
                ))
            }
        };
        let bin = if ranged {
            Bin {
                min: length(0)?,
                max: length(1)?,
                weight: number(2)?,
            }
        } else {
            let at = length(0)?;
            Bin {
                min: at,
                max: at,
                weight: number(1)?,
            }
        };
        bins.push(bin);
        if bins.len() > MAX_BINS {
            return Err(format!("more than {MAX_BINS} bins"));
        }
    }
    Ok(bins)
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
    // Replayed conversations (`_replay`): every request's lengths are the dataset's.
    let replay = slug.split('_').any(|part| part == "replay");
    turns
        || replay
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
    #[case(
        "{dist: histogram, bins: [{min: 10, max: 20, weight: 3}, {min: 100, max: 100, weight: 1}]}",
        "10-100h2"
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
    #[case("c::isl64_osl24_sr1_60s_replay", true)]
    #[case("c::isl128_osl16_c2_n12_turns4_replay", true)]
    #[case("replay-case::isl128_osl16_c2_n12", false)]
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
    #[case("{dist: histogram}", "a histogram needs `bins`")]
    #[case(
        "{dist: histogram, bins: [{min: 0, max: 8, weight: 1}]}",
        "bin 0 (min 0, max 8): lengths must be at least 1"
    )]
    #[case(
        "{dist: histogram, bins: [{min: 1, max: 8, weight: 1}, {min: 9, max: 8, weight: 1}]}",
        "bin 1 (min 9, max 8)"
    )]
    #[case(
        "{dist: histogram, bins: [{min: 1, max: 8, weight: -1}]}",
        "bin 0: `weight` must be a finite number ≥ 0"
    )]
    #[case(
        "{dist: histogram, bins: [{min: 1, max: 8, weight: 0}]}",
        "weights add up to 0"
    )]
    fn bad_distributions_say_why(#[case] text: &str, #[case] message: &str) {
        let problem = parse(text).problem().expect("a problem");
        assert!(problem.contains(message), "{problem}");
    }

    #[rstest]
    #[case("min,max,weight\n10,20,3\n100,100,1\n", &[(10, 20, 3.0), (100, 100, 1.0)])]
    #[case("# from the gateway log\nlength, count\n64, 10\n 128 ,5\n", &[(64, 64, 10.0), (128, 128, 5.0)])]
    #[case("MIN,MAX,WEIGHT\n1,2,0.5\n", &[(1, 2, 0.5)])]
    fn histogram_files_become_bins(#[case] text: &str, #[case] expected: &[(u32, u32, f64)]) {
        let bins = parse_bins(text.as_bytes()).expect("parses");
        let got: Vec<(u32, u32, f64)> = bins.iter().map(|b| (b.min, b.max, b.weight)).collect();
        assert_eq!(got, expected);
    }

    #[rstest]
    #[case("lo,hi,w\n1,2,3\n", "expected `min,max,weight` or `length,count`")]
    #[case("length,count\n64,many\n", "line 2: `many` is not a number")]
    #[case("length,count\n64.5,1\n", "line 2: `64.5` is not a whole number")]
    #[case("min,max,weight\n1,2\n", "line 2")]
    fn bad_histogram_files_name_the_line(#[case] text: &str, #[case] message: &str) {
        let problem = parse_bins(text.as_bytes()).expect_err("fails");
        assert!(problem.contains(message), "{problem}");
    }

    #[test]
    fn a_histogram_file_is_read_relative_to_the_case() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("lengths.csv"), "length,count\n32,1\n48,3\n").expect("csv");
        let mut dist = parse("{dist: histogram, file: lengths.csv}");
        dist.load_file(dir.path()).expect("loads");
        assert_eq!(
            (dist.min(), dist.max(), dist.slug().as_str()),
            (32, 48, "32-48h2")
        );
        assert_eq!(dist.problem(), None);
        let mut missing = parse("{dist: histogram, file: nope.csv}");
        let error = missing
            .load_file(dir.path())
            .expect_err("missing")
            .to_string();
        assert!(error.contains("nope.csv"), "{error}");
        let mut both =
            parse("{dist: histogram, file: lengths.csv, bins: [{min: 1, max: 2, weight: 1}]}");
        let error = both.load_file(dir.path()).expect_err("both").to_string();
        assert_eq!(error, "give `bins` or `file`, not both");
    }
}
