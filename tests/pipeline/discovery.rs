//! Discovery turns case files into sorted, unique, kind-tagged trials; a broken case becomes a
//! failing trial of its own and does not hide the others.

use llm_stress::plan::discovery::{Discovered, discover};

use crate::support::CaseDir;

const MODEL: &str = "name: m\nmax_context: 1024\nmax_concurrency: 4\n";

/// A cases folder holding the model spec `m`.
fn with_model() -> CaseDir {
    let dir = CaseDir::named("disc");
    dir.model("m", MODEL);
    dir
}

use crate::support::trial_names as names;

#[test]
fn trials_are_one_per_kind_and_combination_sorted_and_unique() {
    let dir = with_model();
    dir.case(
        "zeta.yaml",
        "name: zeta\nmodel: m\nkinds: [stress, perf, accuracy]\nmatrix:\n  mode: custom\n  isl: [64]\n  osl: [8]\n  concurrency: [2, 1]\naccuracy: { task: synthetic_arithmetic, limit: 5 }\n",
    )
    .case(
        "alpha.yaml",
        "name: alpha\nmodel: m\nkinds: [perf]\nmatrix: {mode: single}\n",
    );
    let found = discover(dir.cases(), None);
    assert_eq!(
        names(&found),
        vec![
            "[perf] alpha::isl768_osl128_c1_n1",
            // One accuracy trial per case, before the case's load trials.
            "[accuracy] zeta::synthetic_arithmetic_n5",
            "[perf] zeta::isl64_osl8_c1_n1",
            "[stress] zeta::isl64_osl8_c1_n1",
            "[perf] zeta::isl64_osl8_c2_n2",
            "[stress] zeta::isl64_osl8_c2_n2",
        ]
    );
}

#[test]
fn a_broken_case_fails_alone_with_file_line_and_key() {
    let dir = with_model();
    dir.case(
        "good.yaml",
        "name: good\nmodel: m\nkinds: [perf]\nmatrix: {mode: single}\n",
    )
    .case(
        "bad.yaml",
        "name: bad\nmodel: m\nkinds: [perf]\nmatrix:\n  mode: single\n  concurency: [1]\n",
    );
    let found = discover(dir.cases(), None);
    assert_eq!(
        names(&found),
        vec!["[error] bad::case", "[perf] good::isl768_osl128_c1_n1"]
    );
    let Discovered::Broken { message, .. } = &found[0] else {
        panic!("bad.yaml should be broken");
    };
    assert!(
        message.contains("bad.yaml:6:3: key `matrix.concurency`: unknown field `concurency`"),
        "{message}"
    );
    assert!(message.contains("did you mean `concurrency`?"), "{message}");
}

#[test]
fn an_exact_name_reads_only_its_own_case_file() {
    let dir = with_model();
    dir.case(
        "one.yaml",
        "name: one\nmodel: m\nkinds: [perf]\nmatrix: {mode: single}\n",
    )
    // Broken on purpose: the exact path must not even read it.
    .case("two.yaml", "name: [\n");
    let found = discover(dir.cases(), Some("[perf] one::isl768_osl128_c1_n1"));
    assert_eq!(names(&found), vec!["[perf] one::isl768_osl128_c1_n1"]);
    let all = discover(dir.cases(), None);
    assert_eq!(all.len(), 2, "full discovery sees both files");
}

#[test]
fn duplicate_case_names_are_an_error_not_a_silent_merge() {
    let dir = with_model();
    let text = "name: same\nmodel: m\nkinds: [perf]\nmatrix: {mode: single}\n";
    dir.case("a.yaml", text).case("b.yaml", text);
    let found = names(&discover(dir.cases(), None));
    assert_eq!(
        found,
        vec!["[error] b::case", "[perf] same::isl768_osl128_c1_n1"]
    );
}

#[test]
fn a_sim_case_makes_one_trial_per_study_step_beside_its_load_trials() {
    let dir = with_model();
    dir.case("study.yaml", "name: study\nkinds: [sim]\nsim: {}\n")
        .case(
            "both.yaml",
            "name: both\nmodel: m\nkinds: [sim, perf]\nmatrix: {mode: single}\nsim: { preset: small }\n",
        );
    let found = discover(dir.cases(), None);
    assert_eq!(
        names(&found),
        vec![
            "[sim] both::bins",
            "[perf] both::isl768_osl128_c1_n1",
            "[sim] both::replica-scaling",
            "[sim] both::request-scaling",
            "[sim] study::bins",
            "[sim] study::replica-scaling",
            "[sim] study::request-scaling",
        ]
    );
    let exact = discover(dir.cases(), Some("[sim] study::replica-scaling"));
    assert_eq!(exact.len(), 3, "the exact path reads study.yaml alone");
}
