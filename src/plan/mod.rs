//! Trial plans: what one trial runs, typed by what it is — a load trial at one matrix point
//! (perf or stress), a case's accuracy trial, or one step of its simulator study — with its
//! stable name and the seed of the prompts it sends. [`discovery`] turns case files into
//! plans.

pub mod discovery;
pub mod shape;

use std::sync::Arc;

use crate::case::{AccuracySpec, Kind, LoadedCase, ServerSpec};
use crate::matrix::Combination;
use crate::sim::study::StudyStep;
pub use shape::Shape;

/// One trial to run.
#[derive(Debug, Clone)]
pub enum TrialPlan {
    /// Load at one matrix point (`perf`; `stress` also asks the accuracy questions meanwhile).
    Load(LoadTrial),
    /// The case's accuracy task, alone (`accuracy`): one per case, no load.
    Accuracy(AccuracyTrial),
    /// One step of the case's simulator study (`sim`).
    Sim(SimTrial),
}

/// The kinds of trial that drive load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoadKind {
    /// Load only.
    Perf,
    /// Load, with the accuracy questions asked while it runs.
    Stress,
}

impl From<LoadKind> for Kind {
    fn from(kind: LoadKind) -> Kind {
        match kind {
            LoadKind::Perf => Kind::Perf,
            LoadKind::Stress => Kind::Stress,
        }
    }
}

/// A load trial: a case driven at one point of its matrix.
#[derive(Debug, Clone)]
pub struct LoadTrial {
    /// Perf or stress.
    pub kind: LoadKind,
    /// The case (shared by all its trials).
    pub case: Arc<LoadedCase>,
    /// The matrix point.
    pub point: MatrixPoint,
}

/// A case's accuracy trial: one per task of its `accuracy` section.
#[derive(Debug, Clone)]
pub struct AccuracyTrial {
    /// The case; its `accuracy` section names the task.
    pub case: Arc<LoadedCase>,
    /// The task's index in the case's `accuracy` section (0 for a single mapping).
    pub task: usize,
}

/// One step of a case's simulator study.
#[derive(Debug, Clone)]
pub struct SimTrial {
    /// The case; its `sim` section configures the study.
    pub case: Arc<LoadedCase>,
    /// The step.
    pub step: SimStep,
}

/// A combination of the matrix and how it is driven.
#[derive(Debug, Clone)]
pub struct MatrixPoint {
    /// The combination.
    pub combination: Combination,
    /// How the combination is driven (closed, open at a rate, users).
    pub shape: Shape,
    /// The name's suffix for per-request length distributions
    /// ([`crate::case::request::PromptSpec::length_suffix`]): empty without one.
    pub lengths: String,
    /// The one endpoint this trial sends to, alone (`contention: true`); `None`: the load is
    /// spread over every endpoint by weight.
    pub solo: Option<Solo>,
}

/// A trial that measures one endpoint alone, at the share of the load it gets when the load
/// is spread over every endpoint (`contention: true`): `shape` is then that share
/// ([`Shape::share`]) of `of`.
#[derive(Debug, Clone, PartialEq)]
pub struct Solo {
    /// The endpoint's name.
    pub endpoint: String,
    /// The spread trial's load, which names the trial.
    pub of: Shape,
}

impl MatrixPoint {
    /// The trial-name part after `case::`, such as `isl128_osl64_c4_n4`, or
    /// `isl512_osl64_c4_n4_isl64-512u` with `prompts.isl_dist`, and `…_solo-large` for the
    /// trial that measures endpoint `large` alone.
    pub fn slug(&self) -> String {
        match &self.solo {
            None => format!("{}{}", self.shape.slug(&self.combination), self.lengths),
            Some(solo) => format!(
                "{}{}{}{}",
                solo.of.slug(&self.combination),
                self.lengths,
                crate::case::SOLO_TAG,
                solo.endpoint
            ),
        }
    }
}

/// One step of the study, as a trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimStep {
    /// Request scaling: every scheduler variant at every request count.
    RequestScaling,
    /// Replica scaling: multi-bin at every replica count.
    ReplicaScaling,
    /// K-bins sensitivity at the knee of replica scaling (which the trial runs first).
    Bins,
}

impl SimStep {
    /// Every step, in the study's order.
    pub const ALL: [SimStep; 3] = [
        SimStep::RequestScaling,
        SimStep::ReplicaScaling,
        SimStep::Bins,
    ];

    /// The step's name in trial names and files (the study's own step names).
    pub fn name(self) -> &'static str {
        match self {
            SimStep::RequestScaling => StudyStep::RequestScaling.name(),
            SimStep::ReplicaScaling => StudyStep::ReplicaScaling.name(),
            SimStep::Bins => StudyStep::Bins { replicas: 1 }.name(),
        }
    }
}

impl TrialPlan {
    /// What the trial does.
    pub fn kind(&self) -> Kind {
        match self {
            TrialPlan::Load(load) => load.kind.into(),
            TrialPlan::Accuracy(_) => Kind::Accuracy,
            TrialPlan::Sim(_) => Kind::Sim,
        }
    }

    /// The case the trial belongs to.
    pub fn case(&self) -> &Arc<LoadedCase> {
        match self {
            TrialPlan::Load(LoadTrial { case, .. })
            | TrialPlan::Accuracy(AccuracyTrial { case, .. })
            | TrialPlan::Sim(SimTrial { case, .. }) => case,
        }
    }

    /// The trial name without the kind: `case::isl128_osl64_c4_n4`, for the accuracy trial the
    /// task and its size, `case::gsm8k_n50`, and for a sim trial the step,
    /// `case::replica-scaling`.
    pub fn name(&self) -> String {
        let case = &self.case().spec.name;
        match self {
            TrialPlan::Load(load) => format!("{case}::{}", load.point.slug()),
            TrialPlan::Accuracy(trial) => format!("{case}::{}", trial.task_slug()),
            TrialPlan::Sim(sim) => format!("{case}::{}", sim.step.name()),
        }
    }

    /// The accuracy task the trial asks: an accuracy trial's own task, the first task of a
    /// stress trial's case; `None` for perf and sim trials and cases without one.
    pub fn accuracy_spec(&self) -> Option<&AccuracySpec> {
        match self {
            TrialPlan::Accuracy(trial) => trial.spec(),
            TrialPlan::Load(load) if load.kind == LoadKind::Stress => {
                load.case.spec.accuracy.as_ref()?.first()
            }
            TrialPlan::Load(_) | TrialPlan::Sim(_) => None,
        }
    }

    /// The name of the accuracy trial a stress trial's score under load is compared with:
    /// that of its case's first task, such as `demo-chat::gsm8k_n50`.
    pub fn accuracy_baseline_trial(&self) -> Option<String> {
        let first = self.case().spec.accuracy.as_ref()?.first()?;
        Some(format!("{}::{}", self.case().spec.name, first.slug()))
    }

    /// The name with the kind, as the harness lists it: `[perf] case::isl128_osl64_c4_n4`.
    pub fn full_name(&self) -> String {
        format!("[{}] {}", self.kind().as_str(), self.name())
    }

    /// Whether the trial's case has one of `tags` (always, when `tags` is empty).
    pub fn has_any_tag(&self, tags: &[String]) -> bool {
        tags.is_empty() || self.case().spec.tags.iter().any(|t| tags.contains(t))
    }

    /// Why this trial cannot run here, if it cannot: a spawned server whose binary or model
    /// is missing (unless `LLM_STRESS_REQUIRE_REAL=1`). A sim trial needs no server.
    pub fn unsupported_reason(&self) -> Option<String> {
        if let TrialPlan::Sim(_) = self {
            return None;
        }
        self.case()
            .spec
            .destinations()
            .iter()
            .find_map(|d| match &d.server {
                ServerSpec::Spawn(spawn) => spawn.missing_requirement(),
                _ => None,
            })
    }
}

impl AccuracyTrial {
    /// The task and its size, such as `gsm8k_n50` (`accuracy` if the case names no task).
    pub fn task_slug(&self) -> String {
        self.spec()
            .map_or_else(|| "accuracy".to_string(), AccuracySpec::slug)
    }

    /// The task this trial scores.
    pub fn spec(&self) -> Option<&AccuracySpec> {
        self.case.spec.accuracy.as_ref()?.get(self.task)
    }
}

impl LoadTrial {
    /// The seed of the prompts this trial sends: the case's `load.seed`, mixed with the case,
    /// the kind and the matrix point, so that no two trials send the same prompts. A server
    /// that caches prompts (llama.cpp's slots, vLLM's prefix cache) would otherwise skip the
    /// prefill of every trial after the first, and TTFT would not include it.
    ///
    /// The mixed-in key is `[kind] case::slug` by construction (FNV-1a over its bytes), which
    /// is what the trial's name read when seeds were first derived: prompts stay the same as
    /// they always were, and a change to how trials are *named* cannot change them.
    pub fn prompt_seed(&self) -> u64 {
        let kind = Kind::from(self.kind).as_str();
        let key = format!("[{kind}] {}::{}", self.case.spec.name, self.point.slug());
        key.bytes()
            .fold(self.case.spec.load.seed ^ 0xcbf2_9ce4_8422_2325, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
            })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use rstest::rstest;

    use super::*;
    use crate::plan::discovery::{Discovered, discover};

    fn demo_chat_plans() -> Vec<TrialPlan> {
        let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("stress-cases");
        discover(&cases, Some("[perf] demo-chat::isl128_osl64_c1_n8"))
            .into_iter()
            .filter_map(|d| match d {
                Discovered::Plan(plan) => Some(plan),
                Discovered::Broken { .. } => None,
            })
            .collect()
    }

    /// The seeds the prompts of these trials have always had: FNV-1a of the trial's full name
    /// over `load.seed` (0 here), as computed before seeds were taken from the plan's parts
    /// (checked independently in Python).
    #[rstest]
    #[case("[stress] demo-chat::isl128_osl64_c4_n8", 0x1cde_1114_5a08_6d72)]
    #[case("[perf] demo-chat::isl128_osl64_c1_n8", 0x88b4_0ce3_e1dc_86de)]
    fn prompt_seeds_are_what_they_always_were(#[case] name: &str, #[case] seed: u64) {
        let plans = demo_chat_plans();
        let plan = plans
            .iter()
            .find(|p| p.full_name() == name)
            .expect("the trial exists");
        let TrialPlan::Load(load) = plan else {
            panic!("{name} is a load trial");
        };
        assert_eq!(load.prompt_seed(), seed);
    }

    #[test]
    fn every_load_trial_of_a_case_has_its_own_seed() {
        let plans = demo_chat_plans();
        let mut seeds: Vec<u64> = plans
            .iter()
            .filter_map(|p| match p {
                TrialPlan::Load(load) => Some(load.prompt_seed()),
                _ => None,
            })
            .collect();
        let n = seeds.len();
        seeds.sort_unstable();
        seeds.dedup();
        assert_eq!((n, seeds.len()), (4, 4));
    }

    #[test]
    fn names_kinds_and_steps_are_as_listed() {
        let plans = demo_chat_plans();
        let names: Vec<String> = plans.iter().map(TrialPlan::full_name).collect();
        assert!(
            names.contains(&"[perf] demo-chat::isl128_osl64_c4_n8".to_string()),
            "{names:?}"
        );
        assert!(plans.iter().all(|p| p.unsupported_reason().is_none()));
        assert_eq!(
            SimStep::ALL.map(SimStep::name),
            ["request-scaling", "replica-scaling", "bins"]
        );
    }
}
