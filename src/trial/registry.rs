//! Registrations of attributed trial functions and their expansion into plans: one per
//! combination of the case's matrix after the attribute's overrides, named
//! `[kind] FUNCTION::isl…_osl…_c…_n…` (`[kind] FUNCTION::LABEL::…` for a named `cases`
//! entry), through the same discovery code as YAML cases.

use std::path::Path;

use super::TrialFn;
use super::case_builder::Case;
use crate::case::{Expect, Kind, LoadMode, LoadedCase, MatrixMode, MatrixSpec, Overrides, Rates};
use crate::plan::discovery::{Discovered, plans_of_case};

/// The kind an attribute names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrKind {
    /// `#[llm_stress::perf]`.
    Perf,
    /// `#[llm_stress::stress]`.
    Stress,
    /// `#[llm_stress::accuracy]`.
    Accuracy,
}

impl From<AttrKind> for Kind {
    fn from(kind: AttrKind) -> Kind {
        match kind {
            AttrKind::Perf => Kind::Perf,
            AttrKind::Stress => Kind::Stress,
            AttrKind::Accuracy => Kind::Accuracy,
        }
    }
}

/// One attributed trial function, as the attribute macro registers it (see the macro's
/// documentation for the arguments).
#[derive(Debug)]
pub struct Registration {
    /// The function's name: the first part of its trials' names.
    pub function: &'static str,
    /// The attribute.
    pub kind: AttrKind,
    /// `case = "…"`, relative to `manifest_dir`.
    pub case: Option<&'static str>,
    /// The registering crate's root.
    pub manifest_dir: &'static str,
    /// `isl = […]` (overrides the case's).
    pub isl: &'static [u32],
    /// `osl = […]`.
    pub osl: &'static [u32],
    /// `concurrency = […]`.
    pub concurrency: &'static [u32],
    /// `rate = […]`: open loop at each rate.
    pub rate: &'static [f64],
    /// `users = […]`: virtual users.
    pub users: &'static [u32],
    /// `cases = [("label", isl, osl), …]`: named pairs instead of a cross product.
    pub cases: &'static [(&'static str, u32, u32)],
    /// `ignore = "reason"`.
    pub ignore: Option<&'static str>,
    /// `expect = "fail"`.
    pub expect_fail: bool,
    /// `tags = […]`.
    pub tags: &'static [&'static str],
    /// Where the function is (`file!()`).
    pub file: &'static str,
    /// Its line.
    pub line: u32,
    /// The function.
    pub body: TrialFn,
}

/// One trial of a registration, or why it has none.
#[derive(Debug)]
pub struct Expanded {
    /// The plan (or the broken trial in its place).
    pub discovered: Discovered,
    /// The registration it comes from.
    pub registration: &'static Registration,
}

impl Registration {
    /// Where the function is, for messages: `tests/stress.rs:12 (function)`.
    pub fn location(&self) -> String {
        format!("{}:{} ({})", self.file, self.line, self.function)
    }

    /// The base case: the named YAML file with `overrides` applied as to every YAML case (the
    /// attribute's own lists then win), or the defaults of [`Case::builder`].
    fn base_case(&self, overrides: &Overrides) -> Result<LoadedCase, String> {
        match self.case {
            Some(relative) => {
                let path = Path::new(self.manifest_dir).join(relative);
                crate::case::load::load_case_with(&path, overrides)
                    .map_err(|e| format!("{}: {e}", self.location()))
            }
            None => {
                let folder = Path::new(self.manifest_dir).join("stress-cases");
                Case::builder()
                    .folder(folder)
                    .build()
                    .map(Case::into_loaded)
                    .map_err(|e| format!("{}: {e}", self.location()))
            }
        }
    }

    /// The case with the attribute applied: named after the function (and the label), of the
    /// attribute's kind, with its matrix overrides and `expect`.
    fn case_for(&self, base: &LoadedCase, label: Option<(&str, u32, u32)>) -> LoadedCase {
        let mut case = base.clone();
        let spec = &mut case.spec;
        spec.name = match label {
            Some((label, _, _)) => format!("{}::{label}", self.function),
            None => self.function.to_string(),
        };
        spec.kinds = vec![self.kind.into()];
        // The attribute's tags join the case's: `LLM_STRESS_TAG` selects attributed trials too.
        for tag in self.tags {
            if !spec.tags.iter().any(|t| t == tag) {
                spec.tags.push((*tag).to_string());
            }
        }
        if self.expect_fail {
            spec.expect = Expect::Fail;
        }
        let (isl, osl): (Vec<u32>, Vec<u32>) = match label {
            Some((_, isl, osl)) => (vec![isl], vec![osl]),
            None => (self.isl.to_vec(), self.osl.to_vec()),
        };
        let concurrency = if self.users.is_empty() {
            self.concurrency.to_vec()
        } else {
            spec.load.mode = LoadMode::Users;
            self.users.to_vec()
        };
        if !self.rate.is_empty() {
            spec.load.mode = LoadMode::Open;
            spec.load.rate = Rates(self.rate.to_vec());
        }
        if !(isl.is_empty() && osl.is_empty() && concurrency.is_empty()) {
            let matrix = spec.matrix.get_or_insert_with(MatrixSpec::default);
            if matrix.mode != MatrixMode::Custom {
                // Overriding a generated sweep: the lists not given take the defaults of a
                // Rust case.
                *matrix = MatrixSpec {
                    mode: MatrixMode::Custom,
                    isl: Some(vec![128]),
                    osl: Some(vec![64]),
                    concurrency: Some(vec![1]),
                    ..matrix.clone()
                };
            }
            for (list, given) in [
                (&mut matrix.isl, isl),
                (&mut matrix.osl, osl),
                (&mut matrix.concurrency, concurrency),
            ] {
                if !given.is_empty() {
                    *list = Some(given);
                }
            }
        }
        case
    }

    /// Every trial of this registration, with the overrides of `LLM_STRESS_SET` applied to its
    /// YAML case.
    pub fn expand(&'static self) -> Vec<Expanded> {
        let overrides = Overrides::from_env().map_err(|e| {
            format!(
                "{}: {}: {e}",
                self.location(),
                crate::case::overrides::SET_ENV
            )
        });
        self.expand_with(overrides)
    }

    /// [`Registration::expand`] with these overrides (or why they could not be read).
    pub fn expand_with(&'static self, overrides: Result<Overrides, String>) -> Vec<Expanded> {
        let base = match overrides.and_then(|o| self.base_case(&o)) {
            Ok(base) => base,
            Err(message) => {
                return vec![Expanded {
                    discovered: Discovered::Broken {
                        name: format!("{}::case", self.function),
                        kind: Kind::from(self.kind).as_str().to_string(),
                        message,
                    },
                    registration: self,
                }];
            }
        };
        let labels: Vec<Option<(&str, u32, u32)>> = if self.cases.is_empty() {
            vec![None]
        } else {
            self.cases.iter().map(|&c| Some(c)).collect()
        };
        labels
            .into_iter()
            .flat_map(|label| plans_of_case(self.case_for(&base, label)))
            .map(|discovered| Expanded {
                discovered,
                registration: self,
            })
            .collect()
    }
}
