//! `llm-stress init` on a fresh `cargo new` project, then `cargo nextest run` in it, offline:
//! the trials it scaffolds pass. The project depends on this checkout by path, takes this
//! workspace's `Cargo.lock` (every version already resolved) and builds into this target
//! folder, so only the crates whose features differ are built (minutes the first time, about
//! 15 s after). Ignored unless asked for: it runs cargo inside the test, which under
//! `cargo test` would wait forever for the build folder that `cargo test` holds. CI runs it
//! with `cargo nextest run --run-ignored only -E 'test(/^scaffold::/)'`.

use std::path::{Path, PathBuf};
use std::process::Command;

use llm_stress::cli::init::scaffold;

use crate::support::Temp;

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string()))
}

/// This test binary's target folder: `<target>/debug/deps/pipeline-…`.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.ancestors()
        .nth(3)
        .expect("the binary is in <target>/<profile>/deps")
        .to_path_buf()
}

fn run(command: &mut Command, what: &str) -> String {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{what} failed:\n{text}");
    text
}

#[test]
#[ignore = "runs cargo in this target folder (a deadlock under cargo test): run it with \
            cargo nextest run --run-ignored only -E 'test(/^scaffold::/)'"]
fn a_fresh_project_passes_its_scaffolded_trials() {
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR"));
    let temp = Temp::new("init");
    let project = temp.join("demo");
    run(
        cargo()
            .args(["new", "--quiet", "--vcs", "none", "demo"])
            .current_dir(temp.path()),
        "cargo new",
    );
    let written = scaffold(&project, Some(checkout), false).expect("scaffolded");
    assert!(written.contains(&project.join("tests/stress.rs")));
    std::fs::copy(checkout.join("Cargo.lock"), project.join("Cargo.lock")).expect("lockfile");
    let started = std::time::Instant::now();
    let output = run(
        cargo()
            .args(["nextest", "run", "--offline", "--no-fail-fast"])
            .current_dir(&project)
            .env("CARGO_TARGET_DIR", target_dir())
            .env("LLM_STRESS_OUT", temp.join("out"))
            // The first run writes the snapshots (as a user's first run does).
            .env("INSTA_UPDATE", "unseen")
            .env_remove("LLM_STRESS_URL")
            .env_remove("LLM_STRESS_CASES"),
        "cargo nextest run in the scaffolded project",
    );
    eprintln!("built and ran in {:.0?}", started.elapsed());
    for trial in [
        "[perf] example::isl128_osl64_c1_n4",
        "[perf] example::isl128_osl64_c4_n4",
        "[perf] example_in_rust::isl128_osl64_c2_n4",
    ] {
        assert!(output.contains(trial), "{trial}:\n{output}");
    }
    assert!(output.contains("3 tests run: 3 passed"), "{output}");
    assert!(
        project
            .join("snapshots/perf__example_in_rust__isl128_osl64_c2_n4.snap")
            .is_file()
    );
    let before = std::fs::read_to_string(project.join("Cargo.toml")).expect("manifest");
    let refused = scaffold(&project, Some(checkout), false).expect_err("a second init refuses");
    assert!(
        refused.to_string().contains("nothing was changed"),
        "{refused}"
    );
    let after = std::fs::read_to_string(project.join("Cargo.toml")).expect("manifest");
    assert_eq!(before, after);
}
