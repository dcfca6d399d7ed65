//! Discovery: case files → trial plans, cheaply (YAML only, no network), sorted and unique.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::shape::Shape;
use super::{AccuracyTrial, LoadKind, LoadTrial, MatrixPoint, SimStep, SimTrial, Solo, TrialPlan};
use crate::case::{self, Kind, LoadedCase, Overrides};
use crate::matrix;

/// Environment variable selecting trials by their case's tags (comma-separated): the CLI's
/// `run --tag`, and under the test harness the trials of other cases are listed as ignored.
pub const TAG_ENV: &str = "LLM_STRESS_TAG";

/// The tags in [`TAG_ENV`], none when it is unset.
pub fn tags_from_env() -> Vec<String> {
    std::env::var(TAG_ENV)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// One trial found by discovery.
#[derive(Debug)]
pub enum Discovered {
    /// A trial to run.
    Plan(TrialPlan),
    /// A case that cannot produce trials: it fails under this name with this message.
    Broken {
        /// Trial name.
        name: String,
        /// Trial kind.
        kind: String,
        /// The error, naming file, line, column and key where known.
        message: String,
    },
}

impl Discovered {
    /// Sorted by case, then the case's accuracy trial before its other trials (so that, run in
    /// order, stress trials can compare with its score), then name and kind.
    pub fn sort_key(&self) -> (String, bool, String, String) {
        let (name, kind) = match self {
            Discovered::Plan(p) => (p.name(), p.kind().as_str().to_string()),
            Discovered::Broken { name, kind, .. } => (name.clone(), kind.clone()),
        };
        let case = name.split("::").next().unwrap_or_default().to_string();
        (case, kind != Kind::Accuracy.as_str(), name, kind)
    }
}

/// Discovers every trial under `cases_dir`, sorted by name then kind. With `exact` (the
/// `--exact` filter nextest passes, `[kind] case::combination` or `case::combination`), only
/// the case file named after the case is read when it exists. A folder that cannot be read or
/// holds no case file is one failing trial, `[error] cases::discovery`, not a run of none.
///
/// Overrides in `LLM_STRESS_SET` apply to every case ([`discover_with`] takes them
/// explicitly); overrides that cannot be read are one failing trial, `[error]
/// cases::overrides`.
pub fn discover(cases_dir: &Path, exact: Option<&str>) -> Vec<Discovered> {
    match Overrides::from_env() {
        Ok(overrides) => discover_with(cases_dir, exact, &overrides),
        Err(e) => vec![Discovered::Broken {
            name: "cases::overrides".to_string(),
            kind: "error".to_string(),
            message: format!("{}: {e}", case::overrides::SET_ENV),
        }],
    }
}

/// [`discover`] with these overrides (and none from the environment).
pub fn discover_with(
    cases_dir: &Path,
    exact: Option<&str>,
    overrides: &Overrides,
) -> Vec<Discovered> {
    let cases = match exact.and_then(|name| exact_case(cases_dir, name, overrides)) {
        Some((path, loaded)) => vec![(path, Ok(loaded))],
        None => match case::discover_with(cases_dir, overrides) {
            Ok(cases) if cases.is_empty() => {
                return vec![Discovered::Broken {
                    name: "cases::discovery".to_string(),
                    kind: "error".to_string(),
                    message: format!(
                        "{}: no case file (*.yaml) in the folder",
                        cases_dir.display()
                    ),
                }];
            }
            Ok(cases) => cases,
            Err(e) => {
                return vec![Discovered::Broken {
                    name: "cases::discovery".to_string(),
                    kind: "error".to_string(),
                    message: e.to_string(),
                }];
            }
        },
    };
    let mut seen_cases = BTreeSet::new();
    let mut found = Vec::new();
    for (path, loaded) in cases {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        match loaded {
            Err(e) => found.push(Discovered::Broken {
                name: format!("{stem}::case"),
                kind: "error".to_string(),
                message: e.to_string(),
            }),
            Ok(loaded) if !seen_cases.insert(loaded.spec.name.clone()) => {
                found.push(Discovered::Broken {
                    name: format!("{stem}::case"),
                    kind: "error".to_string(),
                    message: format!(
                        "{}: key `name`: case name `{}` is used by another case file",
                        path.display(),
                        loaded.spec.name
                    ),
                })
            }
            Ok(loaded) => found.extend(plans(loaded)),
        }
    }
    found.sort_by_key(Discovered::sort_key);
    found
}

/// The trials of one case, unsorted: what discovery makes of each case file, and of the case
/// of an attributed trial function.
pub fn plans_of_case(loaded: LoadedCase) -> Vec<Discovered> {
    plans(loaded)
}

fn plans(loaded: LoadedCase) -> Vec<Discovered> {
    let case = Arc::new(loaded);
    let mut kinds = case.spec.kinds.clone();
    kinds.sort();
    kinds.dedup();
    // One sim trial per study step (each runs whatever earlier step it needs itself).
    let mut found: Vec<Discovered> = if kinds.contains(&Kind::Sim) {
        SimStep::ALL
            .iter()
            .map(|&step| {
                Discovered::Plan(TrialPlan::Sim(SimTrial {
                    case: Arc::clone(&case),
                    step,
                }))
            })
            .collect()
    } else {
        Vec::new()
    };
    kinds.retain(|k| k.uses_server());
    found.extend(matrix_plans(&case, kinds));
    found
}

/// The trials of the kinds that run the case's matrix against its servers.
fn matrix_plans(case: &Arc<LoadedCase>, kinds: Vec<Kind>) -> Vec<Discovered> {
    if kinds.is_empty() {
        return Vec::new();
    }
    let generated = match (&case.spec.matrix, &case.model) {
        (Some(spec), Some(model)) => matrix::generate(spec, model).map_err(|e| e.to_string()),
        _ => Err("perf, accuracy and stress trials need a `matrix` and a `model`".to_string()),
    };
    match generated {
        Err(e) => kinds
            .iter()
            .map(|kind| Discovered::Broken {
                name: format!("{}::matrix", case.spec.name),
                kind: kind.as_str().to_string(),
                message: format!("{}: key `matrix`: {e}", case.path.display()),
            })
            .collect(),
        Ok(combinations) => {
            // Shapes that name the same trial (open-loop combinations differing only in
            // concurrency) are one trial: the first is kept.
            let mut slugs = BTreeSet::new();
            let mut shaped = Vec::new();
            let lengths = format!(
                "{}{}{}{}",
                case.spec.prompts.length_suffix(),
                case.spec.prompts.sessions_suffix(),
                if case.spec.replays_conversations() {
                    "_replay"
                } else {
                    ""
                },
                case.spec
                    .load
                    .profile
                    .map(|p| format!("_{}", p.as_str()))
                    .unwrap_or_default()
            );
            // With `contention`, each point is also measured on each endpoint alone, at the
            // share of the load that endpoint gets when the load is spread.
            let weights: f64 = case.spec.endpoints.iter().map(|e| e.weight).sum();
            let solos: Vec<(&str, f64)> = case
                .spec
                .endpoints
                .iter()
                .filter(|_| case.spec.contention && weights > 0.0)
                .map(|e| (e.name.as_str(), e.weight / weights))
                .collect();
            for combination in combinations {
                for shape in Shape::for_combination(&case.spec.load, &combination) {
                    if slugs.insert(shape.slug(&combination)) {
                        shaped.push(MatrixPoint {
                            combination: combination.clone(),
                            shape,
                            lengths: lengths.clone(),
                            solo: None,
                        });
                        for &(endpoint, share) in &solos {
                            shaped.push(MatrixPoint {
                                combination: combination.clone(),
                                shape: shape.share(share),
                                lengths: lengths.clone(),
                                solo: Some(Solo {
                                    endpoint: endpoint.to_string(),
                                    of: shape,
                                }),
                            });
                        }
                    }
                }
            }
            // An accuracy trial sends no load: one per task, not one per combination.
            let tasks = case.spec.accuracy.as_ref().map_or(0, |a| a.tasks().len());
            let accuracy_trials: Vec<Discovered> =
                if kinds.contains(&Kind::Accuracy) && !shaped.is_empty() {
                    (0..tasks)
                        .map(|task| {
                            Discovered::Plan(TrialPlan::Accuracy(AccuracyTrial {
                                case: Arc::clone(case),
                                task,
                            }))
                        })
                        .collect()
                } else {
                    Vec::new()
                };
            let load_kinds: Vec<LoadKind> = kinds
                .iter()
                .filter_map(|k| match k {
                    Kind::Perf => Some(LoadKind::Perf),
                    Kind::Stress => Some(LoadKind::Stress),
                    Kind::Accuracy | Kind::Sim => None,
                })
                .collect();
            shaped
                .into_iter()
                .flat_map(|point| {
                    load_kinds.iter().map(move |&kind| {
                        Discovered::Plan(TrialPlan::Load(LoadTrial {
                            kind,
                            case: Arc::clone(case),
                            point: point.clone(),
                        }))
                    })
                })
                .chain(accuracy_trials)
                .collect()
        }
    }
}

/// The case in `<cases_dir>/<case>.yaml` for an exact trial name, when that file exists and
/// really holds that case (otherwise full discovery decides).
fn exact_case(
    cases_dir: &Path,
    exact: &str,
    overrides: &Overrides,
) -> Option<(PathBuf, LoadedCase)> {
    let name = match exact.split_once("] ") {
        Some((kind, rest)) if kind.starts_with('[') => rest,
        _ => exact,
    };
    let (case_name, _) = name.split_once("::")?;
    let path = cases_dir.join(format!("{case_name}.yaml"));
    let loaded = case::load_case_with(&path, overrides).ok()?;
    (loaded.spec.name == case_name).then_some((path, loaded))
}
