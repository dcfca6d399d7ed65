//! Registrations expand into plans named like YAML trials, with the attribute's overrides.

use rstest::rstest;

use super::*;
use crate::plan::discovery::Discovered;

async fn nothing(t: Trial) -> TrialResult {
    Ok(t.run().await?.into())
}

const fn registration(case: Option<&'static str>) -> Registration {
    Registration {
        function: "f",
        kind: AttrKind::Perf,
        case,
        manifest_dir: env!("CARGO_MANIFEST_DIR"),
        isl: &[],
        osl: &[],
        concurrency: &[],
        rate: &[],
        users: &[],
        cases: &[],
        ignore: None,
        expect_fail: false,
        tags: &[],
        file: file!(),
        line: line!(),
        body: |t| Box::pin(nothing(t)),
    }
}

fn names(registration: &'static Registration) -> Vec<String> {
    let mut names: Vec<String> = registration
        .expand()
        .into_iter()
        .map(|e| match e.discovered {
            Discovered::Plan(plan) => plan.full_name(),
            Discovered::Broken { name, message, .. } => format!("broken {name}: {message}"),
        })
        .collect();
    names.sort();
    names
}

static RUST_MATRIX: Registration = Registration {
    isl: &[128, 1024],
    osl: &[64],
    concurrency: &[1, 4],
    ..registration(None)
};

static YAML_OVERRIDE: Registration = Registration {
    kind: AttrKind::Stress,
    concurrency: &[8],
    ..registration(Some("stress-cases/demo-chat.yaml"))
};

static NAMED_CASES: Registration = Registration {
    cases: &[("short", 128, 64), ("long", 1024, 256)],
    concurrency: &[2],
    ..registration(None)
};

static OPEN_LOOP: Registration = Registration {
    rate: &[5.0],
    ..registration(None)
};

static MISSING_CASE: Registration = registration(Some("stress-cases/no-such-case.yaml"));

#[rstest]
#[case::rust_matrix(&RUST_MATRIX, &[
    "[perf] f::isl1024_osl64_c1_n1",
    "[perf] f::isl1024_osl64_c4_n4",
    "[perf] f::isl128_osl64_c1_n1",
    "[perf] f::isl128_osl64_c4_n4",
])]
#[case::yaml_case_with_override(&YAML_OVERRIDE, &["[stress] f::isl128_osl64_c8_n8"])]
#[case::named_cases(&NAMED_CASES, &[
    "[perf] f::long::isl1024_osl256_c2_n2",
    "[perf] f::short::isl128_osl64_c2_n2",
])]
#[case::open_loop(&OPEN_LOOP, &["[perf] f::isl128_osl64_r5_n1"])]
fn registrations_expand_into_named_trials(
    #[case] registration: &'static Registration,
    #[case] expected: &[&str],
) {
    assert_eq!(names(registration), expected);
}

#[test]
fn a_missing_case_file_is_one_broken_trial_naming_the_function() {
    let names = names(&MISSING_CASE);
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].starts_with("broken f::case: "), "{names:?}");
    assert!(names[0].contains("src/trial/tests.rs:"), "{names:?}");
    assert!(names[0].contains("no-such-case.yaml"), "{names:?}");
}

#[test]
fn expect_fail_tags_and_the_function_name_reach_the_case() {
    static EXPECTS_FAIL: Registration = Registration {
        expect_fail: true,
        tags: &["nightly"],
        ..registration(Some("stress-cases/demo-chat.yaml"))
    };
    let expanded = EXPECTS_FAIL.expand();
    let Some(Discovered::Plan(plan)) = expanded.first().map(|e| &e.discovered) else {
        panic!("a plan: {expanded:?}");
    };
    assert_eq!(plan.case().spec.expect, crate::case::Expect::Fail);
    assert_eq!(plan.case().spec.name, "f");
    assert_eq!(plan.case().spec.kinds, vec![Kind::Perf]);
    assert!(
        plan.has_any_tag(&["nightly".to_string()]),
        "LLM_STRESS_TAG selects it"
    );
}

#[test]
fn the_case_builder_reads_slos_and_refuses_bad_numbers() {
    let case = Case::builder()
        .api(crate::case::Api::Completions)
        .isl([32])
        .concurrency([2, 4])
        .slo("ttft_ms.p95 < 300")
        .build()
        .expect("a case");
    let spec = &case.loaded().spec;
    assert_eq!(spec.api, crate::case::Api::Completions);
    assert_eq!(spec.slo.len(), 1);
    let matrix = spec.matrix.as_ref().expect("a matrix");
    assert_eq!(
        (matrix.isl.clone(), matrix.osl.clone()),
        (Some(vec![32]), Some(vec![64]))
    );
    let err = Case::builder()
        .slo("ttft_ms.p59 < 3")
        .build()
        .expect_err("bad SLO");
    assert!(
        err.to_string().contains("did you mean `ttft_ms.p95`?"),
        "{err}"
    );
    let err = Case::builder().concurrency([0]).build().expect_err("zero");
    assert!(err.to_string().contains("matrix.concurrency"), "{err}");
}

#[test]
fn overrides_apply_to_the_yaml_case_and_the_attributes_lists_win() {
    let overrides = crate::case::Overrides::parse(&["matrix.osl=[32]", "matrix.concurrency=[2]"])
        .expect("overrides");
    let names: Vec<String> = YAML_OVERRIDE
        .expand_with(Ok(overrides))
        .into_iter()
        .map(|e| match e.discovered {
            Discovered::Plan(plan) => plan.full_name(),
            Discovered::Broken { message, .. } => message,
        })
        .collect();
    assert_eq!(names, ["[stress] f::isl128_osl32_c8_n8"]);
}
