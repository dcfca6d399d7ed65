//! The thresholds the automatic analysis judges with: defaults, a YAML file, and
//! `NAME.LEVEL=VALUE` overrides from the command line.

use std::path::Path;

use serde::Deserialize;

use crate::report::ReportError;

/// A warning and a critical threshold of one quantity.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Band {
    /// WARNING from here on (see [`Direction`] for which side is worse).
    pub warning: f64,
    /// CRITICAL beyond here.
    pub critical: f64,
}

/// Which way a quantity gets worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Larger values are worse (error rate, latency, drift).
    HigherIsWorse,
    /// Smaller values are worse (stability).
    LowerIsWorse,
}

/// Every threshold of the analysis. Defaults: error rate WARNING from 1 % and CRITICAL above
/// 10 %; E2EL p90 WARNING from 5 s, CRITICAL above 30 s; TTFT p50 WARNING from 0.5 s,
/// CRITICAL above 2 s; drift WARNING from 10 %, CRITICAL above 30 %; stability WARNING at
/// 0.7 or below, CRITICAL below 0.4.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    /// Failed requests ÷ requests sent (a fraction).
    pub error_rate: Band,
    /// 90th percentile of end-to-end latency, seconds.
    pub e2el_p90_s: Band,
    /// Median time to first token, seconds.
    pub ttft_p50_s: Band,
    /// Largest first-half vs second-half change of mean TTFT or decode rate (a fraction).
    pub drift: Band,
    /// Stability score, 0–1: max(0, 1 − (1.5 × error rate + 0.5 × E2EL CV)).
    pub stability: Band,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            error_rate: Band {
                warning: 0.01,
                critical: 0.10,
            },
            e2el_p90_s: Band {
                warning: 5.0,
                critical: 30.0,
            },
            ttft_p50_s: Band {
                warning: 0.5,
                critical: 2.0,
            },
            drift: Band {
                warning: 0.10,
                critical: 0.30,
            },
            stability: Band {
                warning: 0.7,
                critical: 0.4,
            },
        }
    }
}

/// The names of the bands, as the YAML file and overrides spell them.
pub const BAND_NAMES: [&str; 5] = [
    "error_rate",
    "e2el_p90_s",
    "ttft_p50_s",
    "drift",
    "stability",
];

impl Thresholds {
    /// Reads thresholds from a YAML file; keys left out keep their defaults.
    pub fn from_file(path: &Path) -> Result<Thresholds, ReportError> {
        let text = std::fs::read_to_string(path).map_err(|e| ReportError::io(path, "read", e))?;
        let thresholds: Thresholds = crate::case::load::parse_yaml(path, &text)
            .map_err(|e| ReportError::Thresholds(e.to_string()))?;
        thresholds.validate()?;
        Ok(thresholds)
    }

    /// Applies `NAME.LEVEL=VALUE` overrides, such as `e2el_p90_s.warning=2`.
    pub fn with_overrides<S: AsRef<str>>(
        mut self,
        overrides: &[S],
    ) -> Result<Thresholds, ReportError> {
        for text in overrides {
            let text = text.as_ref();
            let bad = |why: &str| {
                ReportError::Thresholds(format!(
                    "`{text}`: {why} (expected NAME.LEVEL=VALUE, NAME one of {}, LEVEL \
                     warning or critical)",
                    BAND_NAMES.join(", ")
                ))
            };
            let (key, value) = text.split_once('=').ok_or_else(|| bad("no `=`"))?;
            let (name, level) = key.trim().split_once('.').ok_or_else(|| bad("no `.`"))?;
            let value: f64 = value
                .trim()
                .parse()
                .map_err(|_| bad("the value is not a number"))?;
            let band = self.band_mut(name).ok_or_else(|| bad("unknown name"))?;
            match level {
                "warning" => band.warning = value,
                "critical" => band.critical = value,
                _ => return Err(bad("unknown level")),
            }
        }
        self.validate()?;
        Ok(self)
    }

    fn band_mut(&mut self, name: &str) -> Option<&mut Band> {
        Some(match name {
            "error_rate" => &mut self.error_rate,
            "e2el_p90_s" => &mut self.e2el_p90_s,
            "ttft_p50_s" => &mut self.ttft_p50_s,
            "drift" => &mut self.drift,
            "stability" => &mut self.stability,
            _ => return None,
        })
    }

    /// Every band with its name and direction.
    pub fn bands(&self) -> [(&'static str, Band, Direction); 5] {
        use Direction::{HigherIsWorse, LowerIsWorse};
        [
            ("error_rate", self.error_rate, HigherIsWorse),
            ("e2el_p90_s", self.e2el_p90_s, HigherIsWorse),
            ("ttft_p50_s", self.ttft_p50_s, HigherIsWorse),
            ("drift", self.drift, HigherIsWorse),
            ("stability", self.stability, LowerIsWorse),
        ]
    }

    /// Thresholds must be finite, not negative, and the critical one must be as bad as the
    /// warning one or worse.
    fn validate(&self) -> Result<(), ReportError> {
        for (name, band, direction) in self.bands() {
            let bad = |why: &str| {
                ReportError::Thresholds(format!(
                    "{name}: {why} (warning {}, critical {})",
                    band.warning, band.critical
                ))
            };
            if !(band.warning.is_finite() && band.critical.is_finite()) {
                return Err(bad("thresholds must be numbers"));
            }
            if band.warning < 0.0 || band.critical < 0.0 {
                return Err(bad("thresholds must not be negative"));
            }
            let ordered = match direction {
                Direction::HigherIsWorse => band.warning <= band.critical,
                Direction::LowerIsWorse => band.warning >= band.critical,
            };
            if !ordered {
                return Err(bad(
                    "the critical threshold is less severe than the warning one",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let t = Thresholds::default();
        assert_eq!((t.error_rate.warning, t.error_rate.critical), (0.01, 0.10));
        assert_eq!((t.e2el_p90_s.warning, t.e2el_p90_s.critical), (5.0, 30.0));
        assert_eq!((t.ttft_p50_s.warning, t.ttft_p50_s.critical), (0.5, 2.0));
        assert_eq!((t.stability.warning, t.stability.critical), (0.7, 0.4));
    }

    #[test]
    fn a_file_overrides_only_what_it_names() {
        let temp = tempfile::tempdir().expect("a temporary folder");
        let dir = temp.path().to_path_buf();
        let path = dir.join("t.yaml");
        std::fs::write(&path, "ttft_p50_s: { warning: 0.2, critical: 1 }\n").expect("write");
        let t = Thresholds::from_file(&path).expect("parses");
        assert_eq!(
            t.ttft_p50_s,
            Band {
                warning: 0.2,
                critical: 1.0
            }
        );
        assert_eq!(t.error_rate, Thresholds::default().error_rate);

        std::fs::write(&path, "ttft_p50: { warning: 0.2, critical: 1 }\n").expect("write");
        let error = Thresholds::from_file(&path).expect_err("typo").to_string();
        assert!(error.contains("t.yaml:1:1"), "{error}");
        assert!(error.contains("ttft_p50_s"), "{error}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[rstest]
    #[case("e2el_p90_s.warning=2", Ok((2.0, 30.0)))]
    #[case("e2el_p90_s.critical = 60", Ok((5.0, 60.0)))]
    #[case("e2el_p90_s.warning=40", Err("less severe"))]
    #[case("e2el_p90.warning=2", Err("unknown name"))]
    #[case("e2el_p90_s.warn=2", Err("unknown level"))]
    #[case("e2el_p90_s.warning=fast", Err("not a number"))]
    #[case("e2el_p90_s.warning=-1", Err("negative"))]
    #[case("e2el_p90_s.warning=inf", Err("must be numbers"))]
    #[case("e2el_p90_s", Err("no `=`"))]
    fn overrides_set_one_threshold_or_say_why_not(
        #[case] text: &str,
        #[case] expected: Result<(f64, f64), &str>,
    ) {
        let result = Thresholds::default().with_overrides(&[text]);
        match (result, expected) {
            (Ok(t), Ok((warning, critical))) => {
                assert_eq!(t.e2el_p90_s, Band { warning, critical })
            }
            (Err(e), Err(why)) => assert!(e.to_string().contains(why), "{e}"),
            (result, expected) => panic!("{text}: {result:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn stability_thresholds_run_the_other_way() {
        let error = Thresholds::default()
            .with_overrides(&["stability.critical=0.8"])
            .expect_err("critical above warning");
        assert!(error.to_string().contains("stability"), "{error}");
    }
}
