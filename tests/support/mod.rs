//! What the integration tests share: temporary folders (from `tempfile`, removed on drop), a
//! cases folder built from model specs and case files ([`CaseDir`]), and made-up runs for the
//! report tests ([`runs`]), and the hostile corpus's scripted servers and measured runs
//! ([`hostile`]).
//!
//! Each test binary includes this module with `#[path = "../support/mod.rs"] mod support;`.

#![allow(dead_code)] // Each test binary uses its own part of this module.

pub mod hostile;
pub mod runs;

use std::ops::Deref;
use std::path::{Path, PathBuf};

use llm_stress::plan::TrialPlan;
use llm_stress::plan::discovery::{Discovered, discover};
use llm_stress::session::sinks::TrialFiles;
use llm_stress::session::{RunContext, Session};
use tempfile::TempDir;

/// A run writing under `out` (attached to `url` when given), with run id `run_id`.
pub fn context(run_id: &str, out: PathBuf, url: Option<String>) -> RunContext {
    RunContext {
        run_id: run_id.to_string(),
        out_dir: out,
        url_override: url,
    }
}

/// A session that writes each trial's folder and `results.csv` row, as the harness and the
/// CLI do.
pub fn session(context: RunContext) -> Session {
    let out = context.out_dir.clone();
    Session::new(context).with_sink(TrialFiles::new(out))
}

/// The full names of discovered trials (`[kind] case::…`; a broken case's as `[error] …`).
pub fn trial_names(found: &[Discovered]) -> Vec<String> {
    found
        .iter()
        .map(|d| match d {
            Discovered::Plan(p) => p.full_name(),
            Discovered::Broken { name, kind, .. } => format!("[{kind}] {name}"),
        })
        .collect()
}

/// A fresh temporary folder, removed (with everything in it) on drop.
pub struct Temp(TempDir);

impl Temp {
    /// A new folder whose name starts with `llm-stress-{tag}-`, under the system's temporary
    /// folder.
    pub fn new(tag: &str) -> Temp {
        let dir = tempfile::Builder::new()
            .prefix(&format!("llm-stress-{tag}-"))
            .tempdir()
            .expect("a temporary folder");
        Temp(dir)
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Deref for Temp {
    type Target = Path;

    fn deref(&self) -> &Path {
        self.path()
    }
}

impl AsRef<Path> for Temp {
    fn as_ref(&self) -> &Path {
        self.path()
    }
}

/// A temporary folder holding a cases folder, `cases/` (with its `models/`), and room for a
/// run's output, `out/`: the layout trials are discovered from and write to.
///
/// ```ignore
/// let dir = CaseDir::new();
/// let plans = dir.model("m", MODEL).case("c", CASE).plans();
/// support::session(support::context("run", dir.out(), None)).run_trial(&plans[0]);
/// ```
pub struct CaseDir {
    temp: Temp,
    cases: PathBuf,
}

impl Default for CaseDir {
    fn default() -> CaseDir {
        CaseDir::new()
    }
}

impl CaseDir {
    /// An empty cases folder (with an empty `models/`).
    pub fn new() -> CaseDir {
        CaseDir::named("cases")
    }

    /// An empty cases folder in a temporary folder named after `tag`.
    pub fn named(tag: &str) -> CaseDir {
        let temp = Temp::new(tag);
        let cases = temp.path().join("cases");
        std::fs::create_dir_all(cases.join("models")).expect("cases/models");
        CaseDir { temp, cases }
    }

    /// Writes the model spec `models/{name}.yaml`.
    pub fn model(&self, name: &str, yaml: &str) -> &CaseDir {
        self.file(&format!("models/{}", yaml_file(name)), yaml)
    }

    /// Writes the case file `{name}.yaml` (`name` as it is when it already ends in `.yaml`
    /// or `.yml`), replacing one of that name.
    pub fn case(&self, name: &str, yaml: &str) -> &CaseDir {
        self.file(&yaml_file(name), yaml)
    }

    /// Writes any file at `relative` inside the cases folder.
    pub fn file(&self, relative: &str, text: &str) -> &CaseDir {
        let path = self.cases.join(relative);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        self
    }

    /// The temporary folder holding `cases/` and `out/`.
    pub fn path(&self) -> &Path {
        self.temp.path()
    }

    /// The cases folder (what `llm-stress run` and `LLM_STRESS_CASES` take).
    pub fn cases(&self) -> &Path {
        &self.cases
    }

    /// The folder for the run's output (not created).
    pub fn out(&self) -> PathBuf {
        self.path().join("out")
    }

    /// Every trial discovery finds in the cases folder, broken ones included.
    pub fn discover(&self) -> Vec<Discovered> {
        discover(&self.cases, None)
    }

    /// The trial plans, in discovery order; panics on a broken case, with its message.
    pub fn plans(&self) -> Vec<TrialPlan> {
        self.discover()
            .into_iter()
            .map(|found| match found {
                Discovered::Plan(plan) => plan,
                Discovered::Broken { name, message, .. } => panic!("{name}: {message}"),
            })
            .collect()
    }

    /// The one trial plan; panics unless there is exactly one.
    pub fn plan(&self) -> TrialPlan {
        let mut plans = self.plans();
        assert_eq!(plans.len(), 1, "one plan expected");
        plans.pop().expect("one plan")
    }
}

/// `name` with `.yaml` appended unless it already ends in `.yaml` or `.yml`.
fn yaml_file(name: &str) -> String {
    if name.ends_with(".yaml") || name.ends_with(".yml") {
        name.to_string()
    } else {
        format!("{name}.yaml")
    }
}
