//! A cases folder without cases (empty or missing) is an error: one failing trial,
//! `[error] cases::discovery`, naming the folder; the `stress` harness and the CLI's `run` fail
//! on it instead of passing with no trial.

use std::path::{Path, PathBuf};

use llm_stress::plan::discovery::{Discovered, discover};

use crate::support::CaseDir;

#[test]
fn an_empty_or_missing_cases_folder_is_one_failing_trial_not_a_run_of_none() {
    let dir = CaseDir::named("disc-empty");
    let missing = dir.path().join("no-such-folder");
    for (folder, wanted) in [
        (dir.cases(), "no case file (*.yaml) in the folder"),
        (missing.as_path(), "cannot read"),
    ] {
        let found = discover(folder, None);
        let [
            Discovered::Broken {
                name,
                kind,
                message,
            },
        ] = found.as_slice()
        else {
            panic!("one broken trial expected: {found:?}");
        };
        assert_eq!(format!("[{kind}] {name}"), "[error] cases::discovery");
        assert!(message.contains(&folder.display().to_string()), "{message}");
        assert!(message.contains(wanted), "{message}");
    }
}

#[test]
fn the_cli_run_fails_on_an_empty_cases_folder() {
    let dir = CaseDir::named("disc-cli");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_llm-stress"))
        .arg("run")
        .arg(dir.cases())
        .arg("--out")
        .arg(dir.out())
        .env_remove("LLM_STRESS_URL")
        .output()
        .expect("llm-stress run");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "{}: {stderr}", run.status);
    assert!(
        stderr.contains(&format!("{}: no case file", dir.cases().display())),
        "{stderr}"
    );
}

/// The `stress` test target's binary beside this one (cargo and nextest build every test
/// target into the same folder): the newest whose dep-info file says it was built from this
/// package. Other packages' `stress` targets may be there too: CI builds the example consumer
/// and an `llm-stress init` project into this target folder.
fn harness_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("this test binary");
    let folder = exe.parent().expect("its folder");
    let this_package = format!(
        "# env-dep:CARGO_MANIFEST_DIR={}",
        env!("CARGO_MANIFEST_DIR")
    );
    let ours = |binary: &Path| {
        std::fs::read_to_string(binary.with_extension("d"))
            .is_ok_and(|deps| deps.lines().any(|line| line == this_package))
    };
    std::fs::read_dir(folder)
        .expect("the test binaries' folder")
        .flatten()
        .filter(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            name.strip_prefix("stress-")
                .is_some_and(|hash| hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
                && ours(&entry.path())
        })
        .filter_map(|entry| Some((entry.metadata().ok()?.modified().ok()?, entry.path())))
        .max()
        .map(|(_, path)| path)
        .unwrap_or_else(|| {
            panic!(
                "no `stress` test binary of this package in {}: build it (cargo test --no-run)",
                folder.display()
            )
        })
}

#[test]
fn the_harness_binary_fails_on_an_empty_cases_folder() {
    let dir = CaseDir::named("disc-harness");
    let run = std::process::Command::new(harness_binary())
        .env("LLM_STRESS_CASES", dir.cases())
        .env_remove("LLM_STRESS_URL")
        .output()
        .expect("the harness runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "{}: {stdout}{stderr}", run.status);
    assert!(stdout.contains("[error] cases::discovery"), "{stdout}");
    assert!(
        format!("{stdout}{stderr}").contains(&format!("{}: no case file", dir.cases().display())),
        "{stdout}{stderr}"
    );
    assert!(stdout.contains("1 failed"), "{stdout}");
}
